//! Why: the administrators' view of pinned and pending SSH host keys and RDP certificates
//! (one pin per resource and protocol), approving a key and forgetting a pin. The rules live
//! in `host_key_pins`; these are thin handlers.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Auth, Body};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::host_key_pins;
/// Host keys are administrators' business: the refusal every handler here gives.
const ADMINS_ONLY: &str = "Only administrators manage SSH host keys.";

/// `GET /api/v1/host-keys`: pinned and pending host keys and RDP certificates, one per
/// resource and protocol.
pub async fn host_keys(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    crate::audited::require_admin(&app, &p, "hostkey.read", "resource", "", ADMINS_ONLY).await?;
    let rows = host_key_pins::list(&app).await?;
    Ok(Json(json!(rows
        .into_iter()
        .map(|h| json!({ "resource_id": h.resource_id, "protocol": h.protocol, "resource_name": h.resource_name, "fingerprint": h.fingerprint, "status": h.status, "decided_by": h.decided_by, "updated_at": crate::db::rfc3339(h.updated_at), "offered_fingerprint": h.offered_fingerprint, "offered_at": h.offered_at.map(crate::db::rfc3339) }))
        .collect::<Vec<_>>())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveInput {
    fingerprint: String,
    /// `ssh` (the default) or `rdp`.
    #[serde(default)]
    protocol: Option<String>,
}

/// The pin a request names: `ssh` unless it says `rdp`.
fn pin_kind(protocol: Option<&str>) -> ApiResult<host_key_pins::PinKind> {
    match protocol {
        None | Some("") => Ok(host_key_pins::PinKind::Ssh),
        Some(p) => host_key_pins::PinKind::parse(p)
            .ok_or_else(|| ApiError::field("protocol", "must be ssh or rdp")),
    }
}

/// `POST /api/v1/host-keys/{resource_id}/approve`: pin this fingerprint (approve a pending
/// key, or pin one checked out of band) for the protocol given (`ssh` by default).
pub async fn approve_host_key(
    State(app): State<App>,
    Auth(p): Auth,
    Path(resource_id): Path<String>,
    Body(input): Body<ApproveInput>,
) -> ApiResult<Json<Value>> {
    crate::audited::require_admin(&app, &p, "hostkey.approve", "resource", "", ADMINS_ONLY).await?;
    let kind = pin_kind(input.protocol.as_deref())?;
    let fp = input.fingerprint.trim().to_string();
    if !fp.starts_with("SHA256:")
        || fp.len() < 20
        || fp.len() > 80
        || fp.contains(char::is_whitespace)
    {
        return Err(ApiError::field(
            "fingerprint",
            "must be a SHA256 fingerprint such as SHA256:AbC... (ssh-keygen -lf; for RDP, the certificate's)",
        ));
    }
    let r = crate::vault::resources::get(&app, &resource_id).await?;
    let mut tx = app.db.begin_write().await?;
    sqlx::query("DELETE FROM host_key_pins WHERE resource_id = $1 AND protocol = $2")
        .bind(&r.id)
        .bind(kind.as_str())
        .execute(tx.conn())
        .await?;
    sqlx::query("INSERT INTO host_key_pins (resource_id, protocol, fingerprint, status, decided_by, updated_at) VALUES ($1, $2, $3, 'pinned', $4, $5)")
        .bind(&r.id)
        .bind(kind.as_str())
        .bind(&fp)
        .bind(&p.username)
        .bind(crate::db::now_ms())
        .execute(tx.conn())
        .await?;
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "hostkey.approve",
        &r.id,
        &r.name,
        json!({ "fingerprint": fp, "protocol": kind.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "resource_id": r.id, "protocol": kind.as_str(), "fingerprint": fp, "status": "pinned" }),
    ))
}

#[derive(Deserialize)]
pub struct ForgetQuery {
    protocol: Option<String>,
}

/// `DELETE /api/v1/host-keys/{resource_id}[?protocol=ssh|rdp]`: forget the pin (every pin of
/// the resource when no protocol is given); the next connection is a first contact again
/// (pinned on use, or held for approval, by `host_key_policy`).
pub async fn forget_host_key(
    State(app): State<App>,
    Auth(p): Auth,
    Path(resource_id): Path<String>,
    Query(q): Query<ForgetQuery>,
) -> ApiResult<Json<Value>> {
    crate::audited::require_admin(&app, &p, "hostkey.forget", "resource", "", ADMINS_ONLY).await?;
    let r = crate::vault::resources::get(&app, &resource_id).await?;
    let mut tx = app.db.begin_write().await?;
    let protocol = match q.protocol.as_deref() {
        None | Some("") => {
            sqlx::query("DELETE FROM host_key_pins WHERE resource_id = $1")
                .bind(&r.id)
                .execute(tx.conn())
                .await?;
            None
        }
        Some(_) => {
            let kind = pin_kind(q.protocol.as_deref())?;
            sqlx::query("DELETE FROM host_key_pins WHERE resource_id = $1 AND protocol = $2")
                .bind(&r.id)
                .bind(kind.as_str())
                .execute(tx.conn())
                .await?;
            Some(kind.as_str())
        }
    };
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "hostkey.forget",
        &r.id,
        &r.name,
        json!({ "protocol": protocol.unwrap_or("all") }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "ok": true })))
}
