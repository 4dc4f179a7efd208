//! Why: the vault is only as good as the freshness of what it holds. The rotation engine
//! changes an account's secret on the target and in the vault together, in two phases so that
//! the working secret is always in the vault:
//!
//! 1. the new secret is stored as *pending* (sealed) before the target is touched;
//! 2. the target is changed (the pending row then says so);
//! 3. a login with the new secret is tried;
//! 4. only then does it replace the old one (which goes to the history), in one transaction
//!    with the job's success and the audit record.
//!
//! A gateway that dies between steps finds its pending secrets at start-up and settles each
//! against the target: committed if the new one logs in, discarded if the old one does, kept
//! for an administrator (both sealed) if neither does. Jobs are rows, so they survive
//! restarts; a small dispatcher runs them with a global and a per-resource limit, and a job
//! for an account with a live session waits ("deferred") until the session ends.
//!
//! Here: the two phases (`rotate`, `verify`) and after-session rotation; `job` (the rows),
//! `engine` (the queue and its dispatcher), `target` (what a job logs in to and changes:
//! a database or a terminal), `pending` (settling, promoting and discarding pending secrets).

pub mod guard;
pub mod keys;
pub mod mysql;
pub mod postgres;
pub mod schedule;
pub mod scripts;
pub mod settings;
pub mod terminal;

mod engine;
mod job;
mod pending;
mod target;

use engine::*;
pub use engine::{start, Engine};
pub use job::{job, jobs, jobs_of_run, request, JobKind, JobRow, JOB_COLUMNS};
use pending::*;
pub use pending::{decide_pending, pending_of, recover, settle_open, PendingDecision};
pub use target::ChangeError;
use target::*;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use crate::app::App;
use crate::audit::{Actor, Event, Outcome};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::vault::accounts::{self, secret_context, AccountRow};
use crate::vault::resources::{self, ResourceRow};
use gateway::telnet::logon::{Credentials, LogonScript, RotationCredentials};
use secret::Secret;

/// Why a login did not work.
#[derive(Debug)]
pub enum LoginError {
    /// The target answered and refused the credential.
    Refused(String),
    /// The target could not be reached, or the exchange broke off.
    Unreachable(String),
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Refused(m) => write!(f, "refused: {m}"),
            LoginError::Unreachable(m) => write!(f, "unreachable: {m}"),
        }
    }
}

/// The two phases (module comment). Errors are for people: what happened, and what the
/// vault holds now.
async fn rotate(app: &App, id: &str) -> Result<(), String> {
    let db_down = |_| "the gateway's database is unavailable".to_string();
    let j = job(app, id).await.map_err(db_down)?;
    let a = accounts::get(app, &j.account_id).await.map_err(db_down)?;
    let r = resources::get(app, &a.resource_id).await.map_err(db_down)?;
    let actor = rotation_actor(&j.requested_by);
    let target = target_for(app, &a, &r).await?;
    let old = app
        .crypto
        .open(&secret_context(&a.id), &a.secret_enc)
        .map_err(|e| format!("the account's secret could not be opened: {e}"))?;
    let new = new_secret(app, &a, &r).await?;

    // Phase 1: the new secret is in the vault (pending) before the target hears of it.
    set_step(app, id, "running", "storing the new secret as pending")
        .await
        .map_err(db_down)?;
    let stored = sqlx::query("INSERT INTO pending_secrets (account_id, job_id, secret_enc, phase, created_at, started_from) VALUES ($1, $2, $3, 'stored', $4, $5)")
        .bind(&a.id)
        .bind(id)
        .bind(app.crypto.seal(&pending_context(&a.id), new.expose()))
        .bind(db::now_ms())
        .bind(&a.secret_enc)
        .execute(&app.db.pool)
        .await;
    if stored.is_err() {
        return Err("a pending secret from an earlier rotation of this account is not settled yet: it is checked again with back-off (see GET /api/v1/accounts/{id}/pending), and a super administrator may promote or discard it".into());
    }
    pause_point(app, id, "stored").await;

    set_step(app, id, "running", "changing the secret on the target")
        .await
        .map_err(db_down)?;
    let mut progress = progress_writer(app, id, "changing the secret on the target");
    if let Err(e) = target
        .change(app, &actor, &a, &old, &new, &mut progress)
        .await
    {
        if e.untouched {
            // Nothing reached the target: the pending secret never became anyone's.
            discard_pending(
                app,
                &a.id,
                &format!("the change was refused before it reached the target: {e}"),
            )
            .await
            .map_err(db_down)?;
            return Err(format!(
                "the change was refused before anything was changed on the target: {e}. The vault keeps the current secret."
            ));
        }
        // The change may have happened before the error (a lost connection after the
        // target took it): only a login with the old secret proves the vault may keep it.
        let old_works = target
            .login(app, &actor, &a, &old, passphrase_of(app, &a)?)
            .await;
        let new_works = target.login(app, &actor, &a, &new, None).await;
        return match (old_works, new_works) {
            (_, Ok(())) => {
                set_step(app, id, "running", "the change reported an error, but the new secret logs in").await.map_err(db_down)?;
                target.finish(app, &actor, &a, &old, &new, &mut progress).await.unwrap_or_else(|e| tracing::warn!(error = %e, "finishing a rotation"));
                if !commit(app, &a, &old, &new, id, &j.requested_by, &format!("rotated: the change reported an error ({e}), but the new secret logs in and is now the account's secret")).await.map_err(db_down)? {
                    return Err(CHANGED_MEANWHILE.into());
                }
                Ok(())
            }
            (Ok(()), Err(_)) => {
                discard_pending(app, &a.id, &format!("the target refused the change: {e}")).await.map_err(db_down)?;
                Err(format!("the target refused the change: {e}. The vault keeps the current secret, which still logs in (the new one is kept in the history as discarded)."))
            }
            (Err(e1), Err(e2)) => Err(format!("the change failed ({e}), and neither the old secret ({e1}) nor the new one ({e2}) logs in now: both are kept (the new one as pending, checked again with back-off); an administrator should look at the target.")),
        };
    }
    sqlx::query("UPDATE pending_secrets SET phase = 'changed' WHERE account_id = $1")
        .bind(&a.id)
        .execute(&app.db.pool)
        .await
        .map_err(|_| "the gateway's database is unavailable after the target was changed; the pending secret is settled at the next start".to_string())?;
    pause_point(app, id, "changed").await;

    // Phase 2: it works, then it is the account's secret.
    set_step(app, id, "running", "verifying the new secret")
        .await
        .map_err(db_down)?;
    if let Err(e) = target.login(app, &actor, &a, &new, None).await {
        return match target
            .login(app, &actor, &a, &old, passphrase_of(app, &a)?)
            .await
        {
            Ok(()) => {
                // A replica behind a VIP or a host that caches credentials may hold the new
                // one after all: it is kept in the history, not deleted.
                discard_pending(app, &a.id, &format!("a login with it failed ({e}) while the old one still worked")).await.map_err(db_down)?;
                Err(format!("a login with the new secret failed ({e}) while the old one still works: the vault keeps the old one (the new one is kept in the history as discarded)."))
            }
            Err(e2) => Err(format!("neither the new secret ({e}) nor the old one ({e2}) logs in: both are kept (the new one as pending, checked again with back-off); an administrator should look at the target.")),
        };
    }
    pause_point(app, id, "verified").await;
    let mut progress = progress_writer(app, id, "removing the old key");
    let finished = target
        .finish(app, &actor, &a, &old, &new, &mut progress)
        .await;
    let message = match &finished {
        Ok(()) if a.secret_kind == "ssh_key" => "rotated: the new key logs in, the old key was removed from authorized_keys, and the new key is now the account's secret".to_string(),
        Ok(()) => "rotated: the new secret logs in and is now the account's secret".to_string(),
        Err(e) => format!("rotated: the new key logs in and is now the account's secret, but the old key could not be removed ({e}); remove it by hand"),
    };
    if !commit(app, &a, &old, &new, id, &j.requested_by, &message)
        .await
        .map_err(db_down)?
    {
        return Err(CHANGED_MEANWHILE.into());
    }
    Ok(())
}

/// Why a rotation whose new secret works was not committed.
const CHANGED_MEANWHILE: &str = "the account's secret was changed in the vault while the rotation ran, so the rotation did not overwrite it; the target now takes the rotated secret, which is kept as pending: a super administrator promotes it (or discards it after setting the target's secret by hand)";

/// A verification: does the vault's secret log in? In sync, out of sync (the target
/// refused it: raised as an alert), or unreachable (the target could not be asked, which
/// says nothing about the secret). The answer is kept per account for the pages.
async fn verify(app: &App, id: &str) {
    let (state, result, message) = match check(app, id).await {
        Ok(()) => ("succeeded", "in_sync", "the stored secret logs in".to_string()),
        Err(LoginError::Refused(m)) => ("failed", "out_of_sync", format!("out of sync: the target refused the stored secret ({m}); rotate it, or set the secret the target has")),
        Err(LoginError::Unreachable(m)) => ("failed", "unreachable", format!("unreachable: {m} (this says nothing about the secret)")),
    };
    let now = db::now_ms();
    let _ = sqlx::query("UPDATE rotation_jobs SET state = $2, step = 'finished', result = $3, message = $4, finished_at = $5 WHERE id = $1")
        .bind(id)
        .bind(state)
        .bind(result)
        .bind(&message)
        .bind(now)
        .execute(&app.db.pool)
        .await;
    let Ok(j) = job(app, id).await else { return };
    let _ = sqlx::query("DELETE FROM account_checks WHERE account_id = $1")
        .bind(&j.account_id)
        .execute(&app.db.pool)
        .await;
    let _ = sqlx::query("INSERT INTO account_checks (account_id, state, message, job_id, checked_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&j.account_id)
        .bind(result)
        .bind(&message)
        .bind(id)
        .bind(now)
        .execute(&app.db.pool)
        .await;
    let outcome = if result == "in_sync" {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    system_event(
        app,
        "account.verify",
        outcome,
        &j,
        json!({ "job": id, "result": result, "message": message, "alert": result == "out_of_sync" }),
    )
    .await;
}

async fn check(app: &App, id: &str) -> Result<(), LoginError> {
    let db_down = |_| LoginError::Unreachable("the gateway's database is unavailable".into());
    let j = job(app, id).await.map_err(db_down)?;
    let a = accounts::get(app, &j.account_id).await.map_err(db_down)?;
    let r = resources::get(app, &a.resource_id).await.map_err(db_down)?;
    let _ = set_step(app, id, "running", "logging in with the stored secret").await;
    let target = target_for(app, &a, &r)
        .await
        .map_err(LoginError::Unreachable)?;
    let secret = app
        .crypto
        .open(&secret_context(&a.id), &a.secret_enc)
        .map_err(|e| {
            LoginError::Unreachable(format!("the account's secret could not be opened: {e}"))
        })?;
    let passphrase = passphrase_of(app, &a).map_err(LoginError::Unreachable)?;
    target
        .login(
            app,
            &rotation_actor(&j.requested_by),
            &a,
            &secret,
            passphrase,
        )
        .await
}

/// Queues a rotation after a session of an account whose policy says so (a one-time
/// password per session). Called when a session ends.
pub async fn after_session(app: &App, account_id: &str, owner: &str) {
    let on: Option<(i64,)> =
        sqlx::query_as("SELECT after_session FROM account_rotation_policy WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(&app.db.pool)
            .await
            .unwrap_or(None);
    if on.is_none_or(|(v,)| v == 0) {
        return;
    }
    let queued = async {
        let a = accounts::get(app, account_id).await?;
        let r = resources::get(app, &a.resource_id).await?;
        request(
            app,
            &a,
            &r,
            JobKind::Rotate,
            "after_session",
            &format!("session end ({owner})"),
            None,
        )
        .await
    };
    if let Err(e) = queued.await {
        tracing::error!(error = ?e, "could not queue the rotation after a session");
    }
}
