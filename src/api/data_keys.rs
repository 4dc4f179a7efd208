//! Why: the vault's data keys as administrators see them (which key seals new values, which
//! are retired) and the data-key rotation a super administrator starts, with its progress.
//! Key material never appears here: ids, dates and counts only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::api::Auth;
use crate::app::App;
use crate::audited::{audit, denied};
use crate::error::{ApiError, ApiResult};
use crate::vault::data_keys;

/// `GET /api/v1/vault/data-keys`: administrators and auditors.
pub async fn list(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    if !(p.role.can_manage_users() || p.role.can_read_audit()) {
        return Err(ApiError::forbidden(
            "Only administrators and auditors see the vault's data keys.",
        ));
    }
    Ok(Json(json!({
        "active_key_id": app.crypto.active_key_id(),
        "keys": data_keys::keys(&app).await?,
        "rotations": data_keys::rotations(&app).await?,
    })))
}

/// `POST /api/v1/vault/data-keys/rotate`: a super administrator; audited as an alert.
pub async fn rotate(State(app): State<App>, Auth(p): Auth) -> ApiResult<(StatusCode, Json<Value>)> {
    if !p.super_admin {
        return Err(denied(
            &app,
            &p,
            "key.data.rotate",
            "key",
            "",
            "",
            ApiError::forbidden("Only a super administrator rotates the vault's data key."),
        )
        .await);
    }
    let row = data_keys::start(&app, app.recordings.store.clone(), &p.username).await?;
    let mut tx = app.db.begin_write().await?;
    audit(
        &app,
        &mut tx,
        &p,
        "key.data.rotate",
        &row.id,
        &row.new_key_id,
        json!({ "alert": "the vault's data key was rotated", "old_keys": row.old_key_id, "new_key": row.new_key_id }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "rotation": row }))))
}
