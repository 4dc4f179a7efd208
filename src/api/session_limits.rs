//! Why: a resource's idle limit and maximum session duration (its own, and what applies),
//! read by anyone who can see the resource and set by administrators. The watchdog that
//! enforces them is `crate::session_limits`.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Auth, Body};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
fn limit_json(own: Option<i64>) -> Value {
    match own {
        None => json!("default"),
        Some(0) => json!("off"),
        Some(s) => json!(format!("{s}s")),
    }
}

/// `GET /api/v1/resources/{id}/session-limits`: the resource's own limits and what applies.
pub async fn session_limits(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (r, _) = crate::vault::resources::get_for(&app, &p, &id).await?;
    let own: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT idle_limit_s, max_duration_s FROM resource_session_limits WHERE resource_id = $1",
    )
    .bind(&r.id)
    .fetch_optional(&app.db.pool)
    .await?;
    let (idle, max) = own.unwrap_or((None, None));
    let applied = crate::session_limits::for_resource(&app, &r.id).await?;
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs());
    Ok(Json(json!({
        "idle_limit": limit_json(idle), "max_duration": limit_json(max),
        "applied": { "idle_limit_s": secs(applied.idle), "max_duration_s": secs(applied.max) },
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsInput {
    idle_limit: String,
    max_duration: String,
}

/// `PUT /api/v1/resources/{id}/session-limits`: each of `idle_limit` and `max_duration` is
/// `default` (the global setting), `off`, or a duration such as `15m`. Administrators only,
/// audited; applies to sessions started afterwards.
pub async fn set_session_limits(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<LimitsInput>,
) -> ApiResult<Json<Value>> {
    crate::audited::require_admin(
        &app,
        &p,
        "session.limits",
        "resource",
        &id,
        "Only administrators set session limits.",
    )
    .await?;
    let parse = |field: &str, v: &str| -> ApiResult<Option<i64>> {
        match v.trim() {
            "default" => Ok(None),
            "off" => Ok(Some(0)),
            other => crate::config::parse_duration(other)
                .map(|d| Some(d.as_secs() as i64))
                .ok_or_else(|| {
                    ApiError::field(
                        field,
                        "must be default, off, or a duration such as 90s, 30m or 8h",
                    )
                }),
        }
    };
    let idle = parse("idle_limit", &input.idle_limit)?;
    let max = parse("max_duration", &input.max_duration)?;
    let r = crate::vault::resources::get(&app, &id).await?;
    let mut tx = app.db.begin_write().await?;
    sqlx::query("DELETE FROM resource_session_limits WHERE resource_id = $1")
        .bind(&r.id)
        .execute(tx.conn())
        .await?;
    if idle.is_some() || max.is_some() {
        sqlx::query("INSERT INTO resource_session_limits (resource_id, idle_limit_s, max_duration_s, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&r.id)
            .bind(idle)
            .bind(max)
            .bind(&p.username)
            .bind(crate::db::now_ms())
            .execute(tx.conn())
            .await?;
    }
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "session.limits",
        &r.id,
        &r.name,
        json!({ "idle_limit": limit_json(idle), "max_duration": limit_json(max) }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "idle_limit": limit_json(idle), "max_duration": limit_json(max) }),
    ))
}
