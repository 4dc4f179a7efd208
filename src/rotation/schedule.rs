//! Why: rotation and verification must happen without anyone remembering to ask. A small
//! clock loop turns *schedules* (per resource or resource group: every N days at a time of
//! day, with a notice some minutes before) and the *nightly verification* (a setting) into
//! *runs*: batches of ordinary jobs with a run id, so the queue, its limits and its
//! crash-safety apply unchanged, and each run has a summary (how many in sync, out of sync,
//! unreachable, rotated, failed).

use std::time::Duration;

use serde_json::json;

use crate::app::App;
use crate::audit::{Actor, Event, Outcome};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::vault::accounts::{AccountRow, COLUMNS as ACCOUNT_COLUMNS};
use crate::vault::resources;

use super::JobKind;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub kind: String,
    pub trig: String,
    pub scope: String,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct ScheduleRow {
    pub id: String,
    pub target_kind: String,
    pub target_id: String,
    pub interval_days: i64,
    pub time_of_day: i64,
    pub notice_minutes: i64,
    pub next_run_at: i64,
    pub notice_sent_for: Option<i64>,
    pub last_run_id: Option<String>,
    pub created_by: String,
    pub created_at: i64,
}

const SCHEDULE_COLUMNS: &str = "id, target_kind, target_id, interval_days, time_of_day, notice_minutes, next_run_at, notice_sent_for, last_run_id, created_by, created_at";

/// The first moment at or after `now` that is `minute` minutes after a UTC midnight.
pub fn next_time_of_day(now: i64, minute: i64) -> i64 {
    let midnight = now - now.rem_euclid(DAY_MS);
    let t = midnight + minute * 60_000;
    if t >= now {
        t
    } else {
        t + DAY_MS
    }
}

/// Starts the clock loop (every 5 s; a run is never started twice for one due time), and
/// beside it the settling of open pending secrets (each with its own back-off).
pub fn spawn(app: &App) {
    let clock = app.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = tick(&clock, db::now_ms()).await {
                tracing::warn!(error = ?e, "rotation scheduler");
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let settler = app.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            if let Err(e) = super::settle_open(&settler).await {
                tracing::warn!(error = ?e, "settling pending secrets");
            }
        }
    });
}

/// One look at the clock: due notices, due schedules, the nightly verification.
pub async fn tick(app: &App, now: i64) -> ApiResult<()> {
    let schedules: Vec<ScheduleRow> = sqlx::query_as(db::sql(format!(
        "SELECT {SCHEDULE_COLUMNS} FROM rotation_schedules"
    )))
    .fetch_all(&app.db.pool)
    .await?;
    for s in schedules {
        let notice_at = s.next_run_at - s.notice_minutes * 60_000;
        if s.notice_minutes > 0
            && now >= notice_at
            && now < s.next_run_at
            && s.notice_sent_for != Some(s.next_run_at)
        {
            notice(app, &s).await?;
        }
        if now >= s.next_run_at {
            let run = start_run(
                app,
                JobKind::Rotate,
                "schedule",
                &s.target_kind,
                &s.target_id,
                "the schedule",
            )
            .await?;
            // The next due time keeps the time of day (due times are always at it), whatever
            // the delay of this run; missed ones are skipped, not run in a burst.
            let interval = s.interval_days.max(1) * DAY_MS;
            let mut next = s.next_run_at + interval;
            while next <= now {
                next += interval;
            }
            sqlx::query(
                "UPDATE rotation_schedules SET next_run_at = $2, last_run_id = $3 WHERE id = $1",
            )
            .bind(&s.id)
            .bind(next)
            .bind(&run.id)
            .execute(&app.db.pool)
            .await?;
        }
    }
    if let Some(minute) = app.config.rotation_verify_at {
        // The latest nightly time (UTC) at or before now. A run counts for it if started at
        // or after it; a gateway that was down then catches up within 6 hours, not later
        // (a verification in the middle of the working day is not what was asked for).
        let due = next_time_of_day(now - DAY_MS + 1, minute as i64);
        if now - due < 6 * 60 * 60 * 1000 {
            let done: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM rotation_runs WHERE trig = 'nightly' AND created_at >= $1",
            )
            .bind(due)
            .fetch_optional(&app.db.pool)
            .await?;
            if done.is_none() {
                start_run(
                    app,
                    JobKind::Verify,
                    "nightly",
                    "all",
                    "",
                    "the nightly verification",
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// The accounts a run covers: of one resource, of a group's resources, or every account
/// that can be rotated (its resource has a rotation method, or it holds an SSH key).
async fn accounts_of(app: &App, target_kind: &str, target_id: &str) -> ApiResult<Vec<AccountRow>> {
    let a = ACCOUNT_COLUMNS
        .split(", ")
        .map(|c| format!("a.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = match target_kind {
        "resource" => format!("SELECT {a} FROM accounts a WHERE a.resource_id = $1 ORDER BY a.username"),
        "group" => format!("SELECT {a} FROM accounts a JOIN resource_group_members m ON m.resource_id = a.resource_id WHERE m.group_id = $1 ORDER BY a.username"),
        _ => format!("SELECT {a} FROM accounts a WHERE ($1 = '' OR $1 <> '') AND (a.secret_kind = 'ssh_key' OR a.resource_id IN (SELECT resource_id FROM resource_rotation)) ORDER BY a.username"),
    };
    Ok(sqlx::query_as(db::sql(sql))
        .bind(target_id)
        .fetch_all(&app.db.pool)
        .await?)
}

/// What a schedule or run is about, in words.
async fn scope_name(app: &App, target_kind: &str, target_id: &str) -> String {
    match target_kind {
        "resource" => resources::get(app, target_id)
            .await
            .map(|r| format!("resource {}", r.name))
            .unwrap_or_else(|_| format!("resource {target_id}")),
        "group" => sqlx::query_as::<_, (String,)>("SELECT name FROM resource_groups WHERE id = $1")
            .bind(target_id)
            .fetch_optional(&app.db.pool)
            .await
            .ok()
            .flatten()
            .map(|(n,)| format!("group {n}"))
            .unwrap_or_else(|| format!("group {target_id}")),
        _ => "every rotatable account".into(),
    }
}

/// Starts a run: one job per account in scope, all carrying the run's id. Audited.
pub async fn start_run(
    app: &App,
    kind: JobKind,
    trig: &str,
    target_kind: &str,
    target_id: &str,
    by: &str,
) -> ApiResult<RunRow> {
    let scope = scope_name(app, target_kind, target_id).await;
    let id = db::new_id();
    let now = db::now_ms();
    sqlx::query("INSERT INTO rotation_runs (id, kind, trig, scope, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&id)
        .bind(kind.as_str())
        .bind(trig)
        .bind(&scope)
        .bind(by)
        .bind(now)
        .execute(&app.db.pool)
        .await?;
    let accounts = accounts_of(app, target_kind, target_id).await?;
    for a in &accounts {
        let r = resources::get(app, &a.resource_id).await?;
        super::request(app, a, &r, kind, trig, by, Some(&id)).await?;
    }
    audit_system(
        app,
        &format!("rotation.run.{}", kind.as_str()),
        &id,
        &scope,
        json!({ "trigger": trig, "accounts": accounts.len(), "requested_by": by }),
    )
    .await;
    Ok(RunRow {
        id,
        kind: kind.as_str().into(),
        trig: trig.into(),
        scope,
        created_by: by.into(),
        created_at: now,
    })
}

/// The notice before a scheduled rotation: audited (and so forwarded to syslog) and shown
/// with the schedule on the rotation page.
async fn notice(app: &App, s: &ScheduleRow) -> ApiResult<()> {
    let scope = scope_name(app, &s.target_kind, &s.target_id).await;
    let accounts = accounts_of(app, &s.target_kind, &s.target_id).await?;
    audit_system(
        app,
        "rotation.notice",
        &s.id,
        &scope,
        json!({ "runs_at": s.next_run_at, "accounts": accounts.iter().map(|a| a.username.clone()).collect::<Vec<_>>() }),
    )
    .await;
    sqlx::query("UPDATE rotation_schedules SET notice_sent_for = $2 WHERE id = $1")
        .bind(&s.id)
        .bind(s.next_run_at)
        .execute(&app.db.pool)
        .await?;
    Ok(())
}

async fn audit_system(app: &App, action: &str, id: &str, name: &str, detail: serde_json::Value) {
    let actor = Actor {
        id: "system".into(),
        name: "rotation scheduler".into(),
        addr: "local".into(),
    };
    if let Err(e) = app
        .audit
        .append(Event {
            actor: &actor,
            action,
            outcome: Outcome::Ok,
            object_kind: "rotation",
            object_id: id,
            object_name: name,
            detail,
        })
        .await
    {
        tracing::error!(error = ?e, "could not audit a rotation schedule event");
    }
}

/// A run with its summary: jobs per state and per result.
pub async fn run_summary(app: &App, run: &RunRow) -> ApiResult<serde_json::Value> {
    let counts: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT state, result, COUNT(*) FROM rotation_jobs WHERE run_id = $1 GROUP BY state, result",
    )
    .bind(&run.id)
    .fetch_all(&app.db.pool)
    .await?;
    Ok(summarize(run, counts))
}

/// A run's summary from (state, result, count) rows: totals by state and by result, and how
/// many jobs are still open. Pure, so a summary of only the jobs a caller may see is the same
/// shape as the whole one.
pub fn summarize(
    run: &RunRow,
    counts: impl IntoIterator<Item = (String, String, i64)>,
) -> serde_json::Value {
    let mut by_state = serde_json::Map::new();
    let mut by_result = serde_json::Map::new();
    let mut total = 0;
    for (state, result, n) in counts {
        total += n;
        let e = by_state.entry(state).or_insert(json!(0));
        *e = json!(e.as_i64().unwrap_or(0) + n);
        if !result.is_empty() {
            let e = by_result.entry(result).or_insert(json!(0));
            *e = json!(e.as_i64().unwrap_or(0) + n);
        }
    }
    let open = ["queued", "deferred", "running"]
        .iter()
        .map(|s| by_state.get(*s).and_then(|v| v.as_i64()).unwrap_or(0))
        .sum::<i64>();
    json!({ "run": run, "total": total, "open": open, "by_state": by_state, "by_result": by_result })
}

pub async fn runs(app: &App, limit: i64) -> ApiResult<Vec<RunRow>> {
    Ok(sqlx::query_as("SELECT id, kind, trig, scope, created_by, created_at FROM rotation_runs ORDER BY created_at DESC LIMIT $1")
        .bind(limit)
        .fetch_all(&app.db.pool)
        .await?)
}

pub async fn run(app: &App, id: &str) -> ApiResult<RunRow> {
    sqlx::query_as(
        "SELECT id, kind, trig, scope, created_by, created_at FROM rotation_runs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&app.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("rotation run"))
}

pub async fn schedules(app: &App) -> ApiResult<Vec<serde_json::Value>> {
    let rows: Vec<ScheduleRow> = sqlx::query_as(db::sql(format!(
        "SELECT {SCHEDULE_COLUMNS} FROM rotation_schedules ORDER BY next_run_at"
    )))
    .fetch_all(&app.db.pool)
    .await?;
    let mut out = Vec::new();
    for s in rows {
        let scope = scope_name(app, &s.target_kind, &s.target_id).await;
        out.push(json!({ "schedule": s, "scope": scope }));
    }
    Ok(out)
}

/// A new schedule, checked (the target exists; 1 to 365 days; notice up to 7 days).
pub struct NewSchedule {
    pub target_kind: String,
    pub target_id: String,
    pub interval_days: i64,
    pub time_of_day: String,
    pub notice_minutes: i64,
}

pub async fn create_schedule(
    app: &App,
    tx: &mut db::WriteTx,
    s: &NewSchedule,
    by: &str,
) -> ApiResult<ScheduleRow> {
    match s.target_kind.as_str() {
        "resource" => {
            resources::get(app, &s.target_id)
                .await
                .map_err(|_| ApiError::field("target_id", "no such resource"))?;
        }
        "group" => {
            let g: Option<(String,)> =
                sqlx::query_as("SELECT id FROM resource_groups WHERE id = $1")
                    .bind(&s.target_id)
                    .fetch_optional(&app.db.pool)
                    .await?;
            g.ok_or_else(|| ApiError::field("target_id", "no such resource group"))?;
        }
        _ => return Err(ApiError::field("target_kind", "must be resource or group")),
    }
    if !(1..=365).contains(&s.interval_days) {
        return Err(ApiError::field("interval_days", "must be 1 to 365 days"));
    }
    let minute = crate::config::parse_time_of_day(&s.time_of_day)
        .ok_or_else(|| ApiError::field("time_of_day", "must be HH:MM (UTC)"))?;
    if !(0..=7 * 24 * 60).contains(&s.notice_minutes) {
        return Err(ApiError::field(
            "notice_minutes",
            "must be 0 to 10080 minutes (7 days)",
        ));
    }
    let now = db::now_ms();
    let row = ScheduleRow {
        id: db::new_id(),
        target_kind: s.target_kind.clone(),
        target_id: s.target_id.clone(),
        interval_days: s.interval_days,
        time_of_day: minute as i64,
        notice_minutes: s.notice_minutes,
        next_run_at: next_time_of_day(now, minute as i64),
        notice_sent_for: None,
        last_run_id: None,
        created_by: by.into(),
        created_at: now,
    };
    sqlx::query("INSERT INTO rotation_schedules (id, target_kind, target_id, interval_days, time_of_day, notice_minutes, next_run_at, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&row.id)
        .bind(&row.target_kind)
        .bind(&row.target_id)
        .bind(row.interval_days)
        .bind(row.time_of_day)
        .bind(row.notice_minutes)
        .bind(row.next_run_at)
        .bind(by)
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_time_of_day_is_today_or_tomorrow() {
        let midnight = 20_000 * DAY_MS;
        // 01:00 asked at 00:30 -> today 01:00; asked at 02:00 -> tomorrow 01:00.
        assert_eq!(
            next_time_of_day(midnight + 30 * 60_000, 60),
            midnight + 60 * 60_000
        );
        assert_eq!(
            next_time_of_day(midnight + 120 * 60_000, 60),
            midnight + DAY_MS + 60 * 60_000
        );
        // Exactly at the time: now.
        assert_eq!(
            next_time_of_day(midnight + 60 * 60_000, 60),
            midnight + 60 * 60_000
        );
    }
}
