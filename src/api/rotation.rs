//! Why: the rotation engine's HTTP face: per-resource rotation settings (administrators,
//! audited), "rotate now" for an account (whoever may change its secret), and the job queue
//! with each job's state, step and outcome for the people who oversee the vault.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{Auth, Body};
use crate::app::App;
use crate::audited::{audit, denied};
use crate::error::{ApiError, ApiResult};
use crate::identity::{Level, Principal};
use crate::rotation::settings::{self, RotationSettings};

/// `GET /api/v1/resources/{id}/rotation`: anyone who can see the resource.
pub async fn resource(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (r, _) = crate::vault::resources::get_for(&app, &p, &id).await?;
    let s = settings::for_resource(&app, &r.id).await?;
    let script = s.as_ref().and_then(|s| s.effective_script());
    Ok(Json(
        json!({ "resource_id": r.id, "settings": s, "effective_script": script, "builtin_scripts": builtins() }),
    ))
}

/// The built-in scripts, so the page can show what a method types (and offer one as the
/// start of a custom script).
fn builtins() -> Value {
    crate::rotation::scripts::METHODS
        .iter()
        .filter_map(|m| crate::rotation::scripts::builtin(m).map(|s| (m.to_string(), json!(s))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationInput {
    method: String,
    privileged_account_id: Option<String>,
    db_name: Option<String>,
    db_tls: Option<String>,
    script: Option<gateway::telnet::logon::LogonScript>,
}

/// `PUT /api/v1/resources/{id}/rotation`: administrators; audited.
pub async fn set_resource(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<RotationInput>,
) -> ApiResult<Json<Value>> {
    crate::audited::require_admin(
        &app,
        &p,
        "resource.rotation",
        "resource",
        &id,
        "Only administrators change how a resource's accounts are rotated.",
    )
    .await?;
    let r = crate::vault::resources::get(&app, &id).await?;
    let s = RotationSettings {
        method: input.method,
        privileged_account_id: input.privileged_account_id,
        db_name: input.db_name.unwrap_or_else(|| "postgres".into()),
        db_tls: input.db_tls.unwrap_or_else(|| "prefer".into()),
        script: input.script,
    };
    s.check()?;
    // The privileged account, when there is one, is one of this resource's password
    // accounts (without one, each account changes its own password).
    let mut admin_name = None;
    if let Some(admin_id) = &s.privileged_account_id {
        let admin = crate::vault::accounts::get(&app, admin_id)
            .await
            .ok()
            .filter(|a| a.resource_id == r.id && a.secret_kind == "password")
            .ok_or_else(|| {
                ApiError::field(
                    "privileged_account_id",
                    "must be a password account of this resource",
                )
            })?;
        admin_name = Some(admin.username);
    }
    let mut tx = app.db.begin_write().await?;
    settings::set(&mut tx, &r.id, &s, &p.username).await?;
    audit(
        &app,
        &mut tx,
        &p,
        "resource.rotation",
        &r.id,
        &r.name,
        json!({ "method": s.method, "privileged_account": admin_name, "db_name": s.db_name, "db_tls": s.db_tls, "script": s.script }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "resource_id": r.id, "settings": s })))
}

/// `POST /api/v1/accounts/{id}/rotate`: whoever may change the account's secret (Modify);
/// queues a job (or returns the one already queued or running). Audited.
pub async fn rotate(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (a, r, level) = crate::vault::accounts::get_for(&app, &p, &id).await?;
    if let Err(e) =
        crate::vault::resources::require(Some(level), Level::Modify, "rotate this account's secret")
    {
        return Err(denied(
            &app,
            &p,
            "account.rotate.request",
            "account",
            &a.id,
            &a.username,
            e,
        )
        .await);
    }
    let job = crate::rotation::request(&app, &a, &r, "on_demand", &p.username).await?;
    let mut tx = app.db.begin_write().await?;
    audit(
        &app,
        &mut tx,
        &p,
        "account.rotate.request",
        &a.id,
        &format!("{}@{}", a.username, r.name),
        json!({ "job": job.id }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))))
}

fn may_oversee(p: &Principal) -> bool {
    p.role.can_read_audit() || p.role.can_create_resources()
}

#[derive(Deserialize)]
pub struct JobsQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/rotation/jobs`: administrators, password administrators and auditors.
pub async fn jobs(
    State(app): State<App>,
    Auth(p): Auth,
    Query(q): Query<JobsQuery>,
) -> ApiResult<Json<Value>> {
    if !may_oversee(&p) {
        return Err(ApiError::forbidden(
            "Only administrators and auditors see the rotation jobs.",
        ));
    }
    let list = crate::rotation::jobs(&app, q.limit.unwrap_or(200).clamp(1, 1000)).await?;
    Ok(Json(json!({ "jobs": list })))
}

/// `GET /api/v1/rotation/jobs/{id}`: as above, one job.
pub async fn job(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if !may_oversee(&p) {
        return Err(ApiError::forbidden(
            "Only administrators and auditors see the rotation jobs.",
        ));
    }
    Ok(Json(
        json!({ "job": crate::rotation::job(&app, &id).await? }),
    ))
}
