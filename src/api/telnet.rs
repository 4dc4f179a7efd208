//! Why: administrators choose Telnet logon scripts (per resource type, and per resource with
//! its enable account and the "only through a landing server" rule); everyone who can see a
//! resource can see which script applies and that Telnet is plaintext. Every change is
//! audited; scripts are checked before they are stored.

use axum::extract::{Path, State};
use axum::Json;
use gateway::telnet::logon;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Auth, Body};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::telnet_logon::{self as tl, ChoiceInput, ResourceTelnet};

const PLAINTEXT: &str = "Telnet is not encrypted: everything on the wire, including the password the logon script types, can be read by anyone on the network path between this gateway and the target.";

/// `GET /api/v1/logon-scripts`: the built-in scripts and the script each resource type uses.
pub async fn list(State(app): State<App>, Auth(_p): Auth) -> ApiResult<Json<Value>> {
    let builtins: serde_json::Map<String, Value> = logon::BUILTIN_NAMES
        .iter()
        .filter_map(|n| logon::builtin(n).map(|s| (n.to_string(), json!(s))))
        .collect();
    let mut types = Vec::new();
    for t in crate::vault::resources::TYPES {
        let e = tl::effective(&app, t, &ResourceTelnet::default()).await?;
        types.push(json!({ "resource_type": t, "default_builtin": logon::default_for_type(t), "applied": e.to_json() }));
    }
    Ok(Json(json!({ "builtins": builtins, "types": types })))
}

/// `PUT /api/v1/logon-scripts/{resource_type}`: `{"builtin": "cisco"}`, `{"script": {...}}`,
/// or `{}` for the type's default. Administrators; audited.
pub async fn set_for_type(
    State(app): State<App>,
    Auth(p): Auth,
    Path(rtype): Path<String>,
    Body(input): Body<ChoiceInput>,
) -> ApiResult<Json<Value>> {
    crate::audited::require_admin(
        &app,
        &p,
        "logon_script.set",
        "logon_script",
        &rtype,
        "Only administrators change logon scripts.",
    )
    .await?;
    if !crate::vault::resources::TYPES.contains(&rtype.as_str()) {
        return Err(ApiError::not_found("resource type"));
    }
    let choice = input.validate()?;
    let alert = crate::audited::require_super_for_embedded_secret(
        &app,
        &p,
        "logon_script.set",
        "logon_script",
        &rtype,
        custom(choice.as_ref()),
    )
    .await?;
    let mut tx = app.db.begin_write().await?;
    tl::set_type_choice(&mut tx, &rtype, choice.as_ref(), &p.username).await?;
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "logon_script.set",
        &rtype,
        &rtype,
        json!({ "choice": choice.as_ref().map(|c| c.to_json()), "alert": alert.then_some("the script types a secret inside other text") }),
    )
    .await?;
    tx.commit().await?;
    let e = tl::effective(&app, &rtype, &ResourceTelnet::default()).await?;
    Ok(Json(
        json!({ "resource_type": rtype, "applied": e.to_json() }),
    ))
}

/// `GET /api/v1/resources/{id}/telnet`: the resource's Telnet settings and the script that
/// applies, with the plaintext warning.
pub async fn resource(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (r, _) = crate::vault::resources::get_for(&app, &p, &id).await?;
    let own = tl::resource_settings(&app, &r.id).await?;
    let e = tl::effective(&app, &r.resource_type, &own).await?;
    Ok(Json(json!({
        "port": r.telnet_port,
        "plaintext_warning": PLAINTEXT,
        "override": own.choice.as_ref().map(|c| c.to_json()),
        "enable_account_id": own.enable_account_id,
        "require_landing": own.require_landing,
        "applied": e.to_json(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceTelnetInput {
    /// The script override: `{"builtin": ..}`, `{"script": ..}`, or null/absent for the
    /// resource type's script.
    #[serde(default)]
    script_override: Option<ChoiceInput>,
    #[serde(default)]
    enable_account_id: Option<String>,
    #[serde(default)]
    require_landing: bool,
}

/// `PUT /api/v1/resources/{id}/telnet`: administrators; audited.
pub async fn set_resource(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<ResourceTelnetInput>,
) -> ApiResult<Json<Value>> {
    crate::audited::require_admin(
        &app,
        &p,
        "resource.telnet",
        "resource",
        &id,
        "Only administrators change a resource's Telnet settings.",
    )
    .await?;
    let r = crate::vault::resources::get(&app, &id).await?;
    let choice = match input.script_override {
        Some(c) => c.validate()?,
        None => None,
    };
    let alert = crate::audited::require_super_for_embedded_secret(
        &app,
        &p,
        "resource.telnet",
        "resource",
        &id,
        custom(choice.as_ref()),
    )
    .await?;
    let enable = match input.enable_account_id.filter(|s| !s.is_empty()) {
        None => None,
        Some(aid) => {
            let row: Option<(String, String)> =
                sqlx::query_as("SELECT resource_id, secret_kind FROM accounts WHERE id = $1")
                    .bind(&aid)
                    .fetch_optional(&app.db.pool)
                    .await?;
            match row {
                Some((rid, kind)) if rid == r.id && kind == "password" => Some(aid),
                Some((rid, _)) if rid == r.id => {
                    return Err(ApiError::field(
                        "enable_account_id",
                        "the enable secret must be a password account",
                    ))
                }
                _ => {
                    return Err(ApiError::field(
                        "enable_account_id",
                        "the enable account must be an account of this resource",
                    ))
                }
            }
        }
    };
    let settings = ResourceTelnet {
        choice,
        enable_account_id: enable,
        require_landing: input.require_landing,
    };
    let mut tx = app.db.begin_write().await?;
    tl::set_resource_settings(&mut tx, &r.id, &settings, &p.username).await?;
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "resource.telnet",
        &r.id,
        &r.name,
        json!({
            "override": settings.choice.as_ref().map(|c| c.to_json()),
            "enable_account_id": settings.enable_account_id,
            "require_landing": settings.require_landing,
            "alert": alert.then_some("the script types a secret inside other text"),
        }),
    )
    .await?;
    tx.commit().await?;
    let e = tl::effective(&app, &r.resource_type, &settings).await?;
    Ok(Json(json!({
        "override": settings.choice.as_ref().map(|c| c.to_json()),
        "enable_account_id": settings.enable_account_id,
        "require_landing": settings.require_landing,
        "applied": e.to_json(),
    })))
}

/// The administrator's own script of a choice (a built-in is ours, and types no secret
/// inside text).
fn custom(choice: Option<&tl::ScriptChoice>) -> Option<&gateway::telnet::logon::LogonScript> {
    match choice {
        Some(tl::ScriptChoice::Custom(s)) => Some(s),
        _ => None,
    }
}
