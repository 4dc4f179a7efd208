//! Why: a rotation or verification job is a row: asked for once (a second request returns
//! the open job), listed with its state, step and outcome.

use super::*;

/// A job as the API shows it.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub account_id: String,
    pub resource_id: String,
    pub account_name: String,
    pub resource_name: String,
    pub reason: String,
    pub requested_by: String,
    pub state: String,
    pub step: String,
    pub message: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// 'rotate' or 'verify'.
    pub kind: String,
    /// verify: 'in_sync', 'out_of_sync', 'unreachable'; rotate: 'rotated' or ''.
    pub result: String,
    /// The scheduled or nightly run the job belongs to.
    pub run_id: Option<String>,
}

pub const JOB_COLUMNS: &str = "id, account_id, resource_id, account_name, resource_name, reason, requested_by, state, step, message, created_at, started_at, finished_at, kind, result, run_id";

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    Rotate,
    Verify,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Rotate => "rotate",
            JobKind::Verify => "verify",
        }
    }
}

/// Queues a rotation or a verification of `account` (the caller checked the right to ask).
/// A second request of the same kind while one is queued or running returns that job.
/// `reason`: 'on_demand', 'schedule', 'nightly', 'after_session', 'cli'.
pub async fn request(
    app: &App,
    a: &AccountRow,
    r: &ResourceRow,
    kind: JobKind,
    reason: &str,
    by: &str,
    run_id: Option<&str>,
) -> ApiResult<JobRow> {
    let open: Option<JobRow> = sqlx::query_as(db::sql(format!(
        "SELECT {JOB_COLUMNS} FROM rotation_jobs WHERE account_id = $1 AND kind = $2 AND state IN ('queued', 'deferred', 'running')"
    )))
    .bind(&a.id)
    .bind(kind.as_str())
    .fetch_optional(&app.db.pool)
    .await?;
    if let Some(j) = open {
        return Ok(j);
    }
    let id = db::new_id();
    sqlx::query("INSERT INTO rotation_jobs (id, account_id, resource_id, account_name, resource_name, reason, requested_by, state, step, message, created_at, kind, run_id) VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 'queued', '', $8, $9, $10)")
        .bind(&id)
        .bind(&a.id)
        .bind(&r.id)
        .bind(&a.username)
        .bind(&r.name)
        .bind(reason)
        .bind(by)
        .bind(db::now_ms())
        .bind(kind.as_str())
        .bind(run_id)
        .execute(&app.db.pool)
        .await?;
    app.rotation.wake();
    job(app, &id).await
}

pub async fn job(app: &App, id: &str) -> ApiResult<JobRow> {
    sqlx::query_as(db::sql(format!(
        "SELECT {JOB_COLUMNS} FROM rotation_jobs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&app.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("rotation job"))
}

/// The newest jobs first (running, queued and deferred ones before finished ones).
pub async fn jobs(app: &App, limit: i64) -> ApiResult<Vec<JobRow>> {
    Ok(sqlx::query_as(db::sql(format!(
        "SELECT {JOB_COLUMNS} FROM rotation_jobs ORDER BY CASE WHEN state IN ('running', 'queued', 'deferred') THEN 0 ELSE 1 END, created_at DESC LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(&app.db.pool)
    .await?)
}

/// The jobs of one run, in the order they were queued.
pub async fn jobs_of_run(app: &App, run_id: &str) -> ApiResult<Vec<JobRow>> {
    Ok(sqlx::query_as(db::sql(format!(
        "SELECT {JOB_COLUMNS} FROM rotation_jobs WHERE run_id = $1 ORDER BY created_at, account_name"
    )))
    .bind(run_id)
    .fetch_all(&app.db.pool)
    .await?)
}
