//! Why: API clients need a machine-readable description; generating it from `ROUTES` keeps
//! it in step with the router (a test checks every documented route exists).

use axum::Json;
use serde_json::{json, Map, Value};

use super::ROUTES;

pub fn build() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in ROUTES {
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut op = json!({
            "summary": r.summary,
            "tags": [r.tag],
            "description": format!("Who may call it: {}.", r.access),
            "parameters": params,
            "responses": {
                "200": { "description": "Success", "content": { "application/json": { "schema": { "type": "object" } } } },
                "400": { "$ref": "#/components/responses/Error" },
                "401": { "$ref": "#/components/responses/Error" },
                "403": { "$ref": "#/components/responses/Error" },
                "404": { "$ref": "#/components/responses/Error" }
            }
        });
        if r.access == "public" {
            op["security"] = json!([]);
        }
        if !r.body.is_empty() {
            let props: Map<String, Value> = r
                .body
                .iter()
                .map(|(f, t)| (f.to_string(), json!({ "type": t })))
                .collect();
            op["requestBody"] = json!({ "content": { "application/json": { "schema": { "type": "object", "properties": props } } } });
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Portcullis API", "version": "1", "description": "Privileged-access gateway. Authenticate with the session cookie (plus X-CSRF-Token on writes) or with a personal API token as `Authorization: Bearer pct_...`." },
        "servers": [{ "url": "/" }],
        "security": [{ "cookie": [] }, { "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "cookie": { "type": "apiKey", "in": "cookie", "name": "__Host-pc_session" },
                "bearer": { "type": "http", "scheme": "bearer" }
            },
            "responses": {
                "Error": { "description": "Error", "content": { "application/json": { "schema": { "type": "object", "properties": { "error": { "type": "object", "properties": { "code": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string", "nullable": true } } } } } } } }
            }
        }
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}
