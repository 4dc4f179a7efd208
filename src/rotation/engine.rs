//! Why: the queue's state in memory (running jobs per resource, limits) and the dispatcher
//! that claims queued jobs, defers those whose account has a live session, and runs each;
//! the test hook that pauses a job at a step so a crash test can kill the process there.

use super::*;

/// The test hook that proves crash safety: with `PORTCULLIS_TEST_PAUSE_AT` set to `stored`,
/// `changed` or `verified`, a job stops at that point (its step says so) and waits, so a
/// test can kill the process there with SIGKILL. Unset in production.
pub(super) const PAUSE_ENV: &str = "PORTCULLIS_TEST_PAUSE_AT";

pub struct Engine {
    wake: tokio::sync::Notify,
    /// Jobs running per resource id.
    running: Mutex<HashMap<String, usize>>,
    /// Jobs running at once, in all and against one resource (settings).
    global_limit: usize,
    per_resource_limit: usize,
}

impl Engine {
    pub fn new(global_limit: usize, per_resource_limit: usize) -> Engine {
        Engine {
            wake: Default::default(),
            running: Default::default(),
            global_limit: global_limit.max(1),
            per_resource_limit: per_resource_limit.max(1),
        }
    }

    /// What the jobs page shows of the limits and the load.
    pub fn load(&self) -> serde_json::Value {
        json!({ "running": self.running_total(), "global_limit": self.global_limit, "per_resource_limit": self.per_resource_limit })
    }
}

impl Engine {
    /// Asks the dispatcher to look at the queue now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn running_total(&self) -> usize {
        self.running.lock().map(|m| m.values().sum()).unwrap_or(0)
    }

    fn try_claim(&self, resource_id: &str) -> bool {
        let Ok(mut m) = self.running.lock() else {
            return false;
        };
        if m.values().sum::<usize>() >= self.global_limit {
            return false;
        }
        let n = m.entry(resource_id.to_string()).or_insert(0);
        if *n >= self.per_resource_limit {
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, resource_id: &str) {
        if let Ok(mut m) = self.running.lock() {
            if let Some(n) = m.get_mut(resource_id) {
                *n = n.saturating_sub(1);
            }
        }
        self.wake();
    }
}

/// Settles what the last stop left (pending secrets, interrupted jobs), then runs the queue.
pub async fn start(app: &App) -> anyhow::Result<()> {
    recover(app).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    schedule::spawn(app);
    let app = app.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = dispatch(&app).await {
                tracing::warn!(error = ?e, "rotation dispatcher");
            }
            tokio::select! {
                _ = app.rotation.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    });
    Ok(())
}

/// Starts the queued (and deferred) jobs that may run now.
pub(super) async fn dispatch(app: &App) -> ApiResult<()> {
    let waiting: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT id, account_id, resource_id, state, kind FROM rotation_jobs WHERE state IN ('queued', 'deferred') ORDER BY created_at",
    )
    .fetch_all(&app.db.pool)
    .await?;
    if waiting.is_empty() {
        return Ok(());
    }
    // One job per account at a time: a verification during a rotation would see the
    // target change under it (and raise a false alarm), and the other way round.
    let mut busy: std::collections::HashSet<String> = sqlx::query_as::<_, (String,)>(
        "SELECT account_id FROM rotation_jobs WHERE state = 'running'",
    )
    .fetch_all(&app.db.pool)
    .await?
    .into_iter()
    .map(|(a,)| a)
    .collect();
    let live: Vec<String> = app
        .broker
        .list()
        .into_iter()
        .filter(|s| s.state != "ended" && s.state != "failed")
        .map(|s| s.account_id)
        .collect();
    for (id, account_id, resource_id, state, kind) in waiting {
        // A verification changes nothing: it does not wait for sessions.
        if kind == "rotate" && live.contains(&account_id) {
            if state != "deferred" {
                set_step(
                    app,
                    &id,
                    "deferred",
                    "waiting for the account's live session to end",
                )
                .await?;
            }
            continue;
        }
        if busy.contains(&account_id) {
            continue;
        }
        if app.rotation.running_total() >= app.rotation.global_limit {
            break;
        }
        if !app.rotation.try_claim(&resource_id) {
            continue;
        }
        let claimed = sqlx::query("UPDATE rotation_jobs SET state = 'running', step = 'starting', started_at = $2 WHERE id = $1 AND state IN ('queued', 'deferred')")
            .bind(&id)
            .bind(db::now_ms())
            .execute(&app.db.pool)
            .await?
            .rows_affected();
        if claimed != 1 {
            app.rotation.release(&resource_id);
            continue;
        }
        busy.insert(account_id.clone());
        let app = app.clone();
        tokio::spawn(async move {
            run(&app, &id).await;
            app.rotation.release(&resource_id);
        });
    }
    Ok(())
}

pub(super) async fn set_step(app: &App, id: &str, state: &str, step: &str) -> ApiResult<()> {
    sqlx::query("UPDATE rotation_jobs SET state = $2, step = $3 WHERE id = $1")
        .bind(id)
        .bind(state)
        .bind(step)
        .execute(&app.db.pool)
        .await?;
    Ok(())
}

/// Stops here when the test hook names this point (see `PAUSE_ENV`).
pub(super) async fn pause_point(app: &App, id: &str, point: &str) {
    if std::env::var(PAUSE_ENV).is_ok_and(|v| v == point) {
        let _ = set_step(
            app,
            id,
            "running",
            &format!("paused after {point} (test hook)"),
        )
        .await;
        std::future::pending::<()>().await;
    }
}

/// Runs one job to its end and records how it ended.
pub(super) async fn run(app: &App, id: &str) {
    if job(app, id).await.is_ok_and(|j| j.kind == "verify") {
        return verify(app, id).await;
    }
    let outcome = rotate(app, id).await;
    let (state, message) = match &outcome {
        Ok(()) => return, // committed together with the new secret
        Err(m) => ("failed", m.clone()),
    };
    let _ = sqlx::query("UPDATE rotation_jobs SET state = $2, step = 'finished', message = $3, finished_at = $4 WHERE id = $1")
        .bind(id)
        .bind(state)
        .bind(&message)
        .bind(db::now_ms())
        .execute(&app.db.pool)
        .await;
    if let Ok(j) = job(app, id).await {
        system_event(
            app,
            "account.rotate",
            Outcome::Failed,
            &j,
            json!({ "job": id, "error": message, "alert": true }),
        )
        .await;
    }
}

pub(super) async fn system_event(
    app: &App,
    action: &str,
    outcome: Outcome,
    j: &JobRow,
    detail: serde_json::Value,
) {
    let actor = Actor {
        id: "system".into(),
        name: format!("rotation (for {})", j.requested_by),
        addr: "local".into(),
    };
    if let Err(e) = app
        .audit
        .append(Event {
            actor: &actor,
            action,
            outcome,
            object_kind: "account",
            object_id: &j.account_id,
            object_name: &format!("{}@{}", j.account_name, j.resource_name),
            detail,
        })
        .await
    {
        tracing::error!(error = ?e, "could not audit a rotation event");
    }
}
