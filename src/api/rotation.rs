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
        json!({ "resource_id": r.id, "settings": s, "effective_script": script, "builtin_scripts": builtins(), "tls_warning": s.as_ref().and_then(|s| s.tls_warning()) }),
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
    db_ca: Option<String>,
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
        // Unless told otherwise, the server's certificate and name are checked.
        db_tls: input.db_tls.unwrap_or_else(|| "verify_full".into()),
        db_ca: input.db_ca.filter(|c| !c.trim().is_empty()),
        script: input.script,
    };
    s.check()?;
    let alert = crate::audited::require_super_for_embedded_secret(
        &app,
        &p,
        "resource.rotation",
        "resource",
        &id,
        s.script.as_ref().filter(|_| s.method == "script"),
    )
    .await?;
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
        json!({ "method": s.method, "privileged_account": admin_name, "db_name": s.db_name, "db_tls": s.db_tls, "db_ca": s.db_ca.is_some(), "script": s.script, "alert": alert.then_some("the script types a secret inside other text") }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "resource_id": r.id, "tls_warning": s.tls_warning(), "settings": s }),
    ))
}

/// `POST /api/v1/accounts/{id}/rotate`: whoever may change the account's secret (Modify);
/// queues a job (or returns the one already queued or running). Audited.
pub async fn rotate(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    queue(&app, &p, &id, crate::rotation::JobKind::Rotate).await
}

/// `GET /api/v1/accounts/{id}/pending`: the account's open pending secret, if any (never
/// the secret: its job, phase, attempts, next look and last result). View on the account.
pub async fn pending(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (a, _r, level) = crate::vault::accounts::get_for(&app, &p, &id).await?;
    crate::vault::resources::require(
        Some(level),
        Level::View,
        "see this account's pending secret",
    )?;
    Ok(Json(
        json!({ "account_id": a.id, "pending": crate::rotation::pending_of(&app, &a.id).await? }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    reason: String,
}

/// `POST /api/v1/accounts/{id}/pending/promote`: a super administrator makes the pending
/// secret the account's (the target took it); audited as an alert.
pub async fn promote_pending(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<DecisionInput>,
) -> ApiResult<Json<Value>> {
    decide(
        &app,
        &p,
        &id,
        crate::rotation::PendingDecision::Promote,
        &input,
    )
    .await
}

/// `POST /api/v1/accounts/{id}/pending/discard`: a super administrator discards the pending
/// secret (kept in the history); audited as an alert.
pub async fn discard_pending(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<DecisionInput>,
) -> ApiResult<Json<Value>> {
    decide(
        &app,
        &p,
        &id,
        crate::rotation::PendingDecision::Discard,
        &input,
    )
    .await
}

async fn decide(
    app: &App,
    p: &Principal,
    id: &str,
    decision: crate::rotation::PendingDecision,
    input: &DecisionInput,
) -> ApiResult<Json<Value>> {
    crate::rotation::decide_pending(app, p, id, decision, &input.reason).await?;
    let promoted = decision == crate::rotation::PendingDecision::Promote;
    Ok(Json(
        json!({ "account_id": id, "promoted": promoted, "discarded": !promoted }),
    ))
}

/// `POST /api/v1/accounts/{id}/verify`: whoever may change the account's secret (Modify);
/// queues a verification (a login with the stored secret). Audited.
pub async fn verify(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    queue(&app, &p, &id, crate::rotation::JobKind::Verify).await
}

async fn queue(
    app: &App,
    p: &Principal,
    id: &str,
    kind: crate::rotation::JobKind,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let action = format!("account.{}.request", kind.as_str());
    let (a, r, level) = crate::vault::accounts::get_for(app, p, id).await?;
    let what = format!("{} this account's secret", kind.as_str());
    if let Err(e) = crate::vault::resources::require(Some(level), Level::Modify, &what) {
        return Err(denied(app, p, &action, "account", &a.id, &a.username, e).await);
    }
    let job = crate::rotation::request(app, &a, &r, kind, "on_demand", &p.username, None).await?;
    let mut tx = app.db.begin_write().await?;
    audit(
        app,
        &mut tx,
        p,
        &action,
        &a.id,
        &format!("{}@{}", a.username, r.name),
        json!({ "job": job.id }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))))
}

/// Administrators, password administrators and auditors see jobs, runs and schedules.
fn oversee(p: &Principal, what: &str) -> ApiResult<()> {
    if p.role.can_read_audit() || p.role.can_create_resources() {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "Only administrators and auditors see the rotation {what}."
    )))
}

/// Which jobs a caller who oversees rotation sees: administrators and auditors every job; a
/// password administrator only the jobs of accounts they can use (a job names an account, its
/// resource and who asked, which is more than someone without a share should learn).
enum JobScope {
    All,
    Accounts(std::collections::HashSet<String>),
}

impl JobScope {
    async fn of(app: &App, p: &Principal) -> ApiResult<JobScope> {
        if p.super_admin || p.role.can_read_audit() {
            return Ok(JobScope::All);
        }
        let ids = crate::vault::accounts::list(app, p, None)
            .await?
            .into_iter()
            .map(|a| a.id)
            .collect();
        Ok(JobScope::Accounts(ids))
    }

    fn sees(&self, job: &crate::rotation::JobRow) -> bool {
        match self {
            JobScope::All => true,
            JobScope::Accounts(ids) => ids.contains(&job.account_id),
        }
    }
}

#[derive(Deserialize)]
pub struct JobsQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/rotation/jobs`: administrators and auditors all jobs, password
/// administrators those of accounts they can use.
pub async fn jobs(
    State(app): State<App>,
    Auth(p): Auth,
    Query(q): Query<JobsQuery>,
) -> ApiResult<Json<Value>> {
    oversee(&p, "jobs")?;
    let scope = JobScope::of(&app, &p).await?;
    let mut list = crate::rotation::jobs(&app, q.limit.unwrap_or(200).clamp(1, 1000)).await?;
    list.retain(|j| scope.sees(j));
    Ok(Json(json!({ "jobs": list, "load": app.rotation.load() })))
}

/// `GET /api/v1/rotation/jobs/{id}`: as above, one job (404 when out of the caller's scope).
pub async fn job(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    oversee(&p, "jobs")?;
    let job = crate::rotation::job(&app, &id).await?;
    if !JobScope::of(&app, &p).await?.sees(&job) {
        return Err(ApiError::not_found("rotation job"));
    }
    Ok(Json(json!({ "job": job })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// 'rotate' or 'verify'.
    kind: String,
}

/// `POST /api/v1/resources/{id}/rotation/run`: administrators; rotates or verifies every
/// account of the resource as one run (with a summary). Audited.
pub async fn run_resource(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<RunInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    crate::audited::require_admin(
        &app,
        &p,
        "rotation.run",
        "resource",
        &id,
        "Only administrators rotate or verify a whole resource at once.",
    )
    .await?;
    let kind = match input.kind.as_str() {
        "rotate" => crate::rotation::JobKind::Rotate,
        "verify" => crate::rotation::JobKind::Verify,
        _ => return Err(ApiError::field("kind", "must be rotate or verify")),
    };
    let r = crate::vault::resources::get(&app, &id).await?;
    let run = crate::rotation::schedule::start_run(
        &app,
        kind,
        "on_demand",
        "resource",
        &r.id,
        &p.username,
    )
    .await?;
    let summary = crate::rotation::schedule::run_summary(&app, &run).await?;
    Ok((StatusCode::ACCEPTED, Json(summary)))
}

/// `GET /api/v1/rotation/runs`: the runs (scheduled, nightly, on demand) with summaries;
/// a password administrator sees the runs that touched accounts they can use, summarised
/// over those accounts only.
pub async fn runs(
    State(app): State<App>,
    Auth(p): Auth,
    Query(q): Query<JobsQuery>,
) -> ApiResult<Json<Value>> {
    oversee(&p, "runs")?;
    let scope = JobScope::of(&app, &p).await?;
    let mut out = Vec::new();
    for run in crate::rotation::schedule::runs(&app, q.limit.unwrap_or(50).clamp(1, 500)).await? {
        match &scope {
            JobScope::All => out.push(crate::rotation::schedule::run_summary(&app, &run).await?),
            JobScope::Accounts(_) => {
                let jobs = visible_jobs_of_run(&app, &scope, &run.id).await?;
                if !jobs.is_empty() {
                    out.push(summary_of(&run, &jobs));
                }
            }
        }
    }
    Ok(Json(json!({ "runs": out })))
}

/// `GET /api/v1/rotation/runs/{id}`: one run's summary and its jobs (the run's report),
/// narrowed to the caller's scope as in `runs`.
pub async fn run(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    oversee(&p, "runs")?;
    let scope = JobScope::of(&app, &p).await?;
    let run = crate::rotation::schedule::run(&app, &id).await?;
    let jobs = visible_jobs_of_run(&app, &scope, &run.id).await?;
    let mut summary = match scope {
        JobScope::All => crate::rotation::schedule::run_summary(&app, &run).await?,
        JobScope::Accounts(_) if jobs.is_empty() => {
            return Err(ApiError::not_found("rotation run"))
        }
        JobScope::Accounts(_) => summary_of(&run, &jobs),
    };
    summary["jobs"] = json!(jobs);
    Ok(Json(summary))
}

async fn visible_jobs_of_run(
    app: &App,
    scope: &JobScope,
    run_id: &str,
) -> ApiResult<Vec<crate::rotation::JobRow>> {
    let mut jobs = crate::rotation::jobs_of_run(app, run_id).await?;
    jobs.retain(|j| scope.sees(j));
    Ok(jobs)
}

fn summary_of(run: &crate::rotation::schedule::RunRow, jobs: &[crate::rotation::JobRow]) -> Value {
    crate::rotation::schedule::summarize(
        run,
        jobs.iter().map(|j| (j.state.clone(), j.result.clone(), 1)),
    )
}

/// `GET /api/v1/rotation/schedules`: administrators, password administrators, auditors.
pub async fn schedules(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    oversee(&p, "schedules")?;
    Ok(Json(
        json!({ "schedules": crate::rotation::schedule::schedules(&app).await? }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    target_kind: String,
    target_id: String,
    interval_days: i64,
    /// `HH:MM`, UTC.
    time_of_day: String,
    #[serde(default)]
    notice_minutes: i64,
}

/// `POST /api/v1/rotation/schedules`: administrators; audited.
pub async fn create_schedule(
    State(app): State<App>,
    Auth(p): Auth,
    Body(input): Body<ScheduleInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    crate::audited::require_admin(
        &app,
        &p,
        "rotation.schedule.create",
        "rotation",
        "",
        "Only administrators schedule rotations.",
    )
    .await?;
    let s = crate::rotation::schedule::NewSchedule {
        target_kind: input.target_kind,
        target_id: input.target_id,
        interval_days: input.interval_days,
        time_of_day: input.time_of_day,
        notice_minutes: input.notice_minutes,
    };
    let mut tx = app.db.begin_write().await?;
    let row = crate::rotation::schedule::create_schedule(&app, &mut tx, &s, &p.username).await?;
    audit(
        &app,
        &mut tx,
        &p,
        "rotation.schedule.create",
        &row.id,
        &format!("{} {}", row.target_kind, row.target_id),
        json!({ "schedule": row }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({ "schedule": row }))))
}

/// `DELETE /api/v1/rotation/schedules/{id}`: administrators; audited.
pub async fn delete_schedule(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    crate::audited::require_admin(
        &app,
        &p,
        "rotation.schedule.delete",
        "rotation",
        &id,
        "Only administrators remove rotation schedules.",
    )
    .await?;
    let mut tx = app.db.begin_write().await?;
    let gone = sqlx::query("DELETE FROM rotation_schedules WHERE id = $1")
        .bind(&id)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(ApiError::not_found("rotation schedule"));
    }
    audit(
        &app,
        &mut tx,
        &p,
        "rotation.schedule.delete",
        &id,
        &id,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/accounts/{id}/rotation`: anyone who can see the account: its policy
/// ("rotate after each session") and the last verification.
pub async fn account_policy(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (a, _, _) = crate::vault::accounts::get_for(&app, &p, &id).await?;
    let after: Option<(i64,)> =
        sqlx::query_as("SELECT after_session FROM account_rotation_policy WHERE account_id = $1")
            .bind(&a.id)
            .fetch_optional(&app.db.pool)
            .await?;
    let check: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT state, message, checked_at FROM account_checks WHERE account_id = $1",
    )
    .bind(&a.id)
    .fetch_optional(&app.db.pool)
    .await?;
    Ok(Json(json!({
        "account_id": a.id,
        "after_session": after.is_some_and(|(v,)| v != 0),
        "last_check": check.map(|(state, message, at)| json!({ "state": state, "message": message, "checked_at": at })),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    after_session: bool,
}

/// `PUT /api/v1/accounts/{id}/rotation`: Modify on the account; audited.
pub async fn set_account_policy(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<PolicyInput>,
) -> ApiResult<Json<Value>> {
    let (a, r, level) = crate::vault::accounts::get_for(&app, &p, &id).await?;
    if let Err(e) = crate::vault::resources::require(
        Some(level),
        Level::Modify,
        "change this account's rotation policy",
    ) {
        return Err(denied(
            &app,
            &p,
            "account.rotation_policy",
            "account",
            &a.id,
            &a.username,
            e,
        )
        .await);
    }
    let mut tx = app.db.begin_write().await?;
    sqlx::query("DELETE FROM account_rotation_policy WHERE account_id = $1")
        .bind(&a.id)
        .execute(tx.conn())
        .await?;
    sqlx::query("INSERT INTO account_rotation_policy (account_id, after_session, updated_by, updated_at) VALUES ($1, $2, $3, $4)")
        .bind(&a.id)
        .bind(i64::from(input.after_session))
        .bind(&p.username)
        .bind(crate::db::now_ms())
        .execute(tx.conn())
        .await?;
    audit(
        &app,
        &mut tx,
        &p,
        "account.rotation_policy",
        &a.id,
        &format!("{}@{}", a.username, r.name),
        json!({ "after_session": input.after_session }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "account_id": a.id, "after_session": input.after_session }),
    ))
}
