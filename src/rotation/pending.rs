//! Why: a pending secret is never lost. After a stop, or when a target was unreachable,
//! each open pending secret is settled against the target with back-off (committed if it
//! logs in, kept in the history as discarded if the old one does); a super administrator
//! may promote or discard one.

use super::*;

pub(super) fn pending_context(account_id: &str) -> String {
    format!("pending_secrets/{account_id}/secret")
}

/// A pending secret the account will not take: kept in the password history as discarded
/// (with `why`), never deleted, since a target behind a VIP or one that caches credentials
/// may hold it after all.
pub(super) async fn discard_pending(app: &App, account_id: &str, why: &str) -> ApiResult<()> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT secret_enc, job_id FROM pending_secrets WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(&app.db.pool)
            .await?;
    let Some((enc, job_id)) = row else {
        return Ok(());
    };
    let a = accounts::get(app, account_id).await?;
    let secret = app
        .crypto
        .open(&pending_context(account_id), &enc)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("a pending secret: {e}")))?;
    let mut tx = app.db.begin_write().await?;
    accounts::push_history_noted(
        app,
        &mut tx,
        &a,
        &secret,
        ("rotation", "local", db::now_ms()),
        &format!("discarded pending secret of rotation job {job_id}: {why}"),
    )
    .await?;
    sqlx::query("DELETE FROM pending_secrets WHERE account_id = $1")
        .bind(account_id)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The new secret becomes the account's, the old one goes to the history, the pending row
/// goes, the job succeeds, and the audit says so: all in one transaction. Only if the
/// account still holds the secret the rotation started from (`a.secret_enc`, compared in the
/// update itself): false, and nothing written, when it was changed in the vault meanwhile.
pub(super) async fn commit(
    app: &App,
    a: &AccountRow,
    old: &Secret,
    new: &Secret,
    job_id: &str,
    requested_by: &str,
    message: &str,
) -> ApiResult<bool> {
    let r = resources::get(app, &a.resource_id).await?;
    let now = db::now_ms();
    let mut tx = app.db.begin_write().await?;
    // A rotated key has no passphrase (the vault encrypts it).
    let swapped = sqlx::query("UPDATE accounts SET secret_enc = $1, passphrase_enc = CASE WHEN secret_kind = 'ssh_key' THEN NULL ELSE passphrase_enc END, secret_changed_at = $2, updated_at = $2 WHERE id = $3 AND secret_enc = $4")
        .bind(app.crypto.seal(&secret_context(&a.id), new.expose()))
        .bind(now)
        .bind(&a.id)
        .bind(&a.secret_enc)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if swapped != 1 {
        return Ok(false);
    }
    let by = format!("rotation (for {requested_by})");
    accounts::push_history(app, &mut tx, a, old, &by, "local", now).await?;
    sqlx::query("DELETE FROM pending_secrets WHERE account_id = $1")
        .bind(&a.id)
        .execute(tx.conn())
        .await?;
    sqlx::query("UPDATE rotation_jobs SET state = 'succeeded', step = 'finished', result = 'rotated', message = $2, finished_at = $3 WHERE id = $1")
        .bind(job_id)
        .bind(message)
        .bind(now)
        .execute(tx.conn())
        .await?;
    let actor = Actor {
        id: "system".into(),
        name: format!("rotation (for {requested_by})"),
        addr: "local".into(),
    };
    app.audit
        .append_in(
            &mut tx,
            Event {
                actor: &actor,
                action: "account.rotate",
                outcome: Outcome::Ok,
                object_kind: "account",
                object_id: &a.id,
                object_name: &format!("{}@{}", a.username, r.name),
                detail: json!({ "job": job_id, "message": message }),
            },
        )
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// What settling a pending secret came to.
pub(super) enum Settled {
    /// The new secret logs in: it is now the account's (the job succeeded).
    Committed(String),
    /// The target still takes the old secret: the pending one was discarded and the job runs
    /// again from the start.
    Again(String),
    /// Neither works, or the target could not be asked: both are kept for later.
    Open(String),
}

/// At start-up: jobs the last stop interrupted, and pending secrets it left. Each pending
/// secret is settled against the target (module comment); an interrupted job whose rotation
/// did not take is queued again, so what was asked for still happens.
pub async fn recover(app: &App) -> ApiResult<()> {
    let pending: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT account_id, job_id, secret_enc, started_from, attempts FROM pending_secrets",
    )
    .fetch_all(&app.db.pool)
    .await?;
    for (account_id, job_id, enc, started_from, attempts) in pending {
        let settled = settle(app, &account_id, &job_id, &enc, &started_from).await;
        record_settled(app, &account_id, &job_id, attempts, settled, true).await?;
    }
    // Interrupted before anything was stored: nothing changed anywhere, so run it again.
    sqlx::query("UPDATE rotation_jobs SET state = 'queued', step = 'queued again after a gateway stop', started_at = NULL WHERE state = 'running' AND account_id NOT IN (SELECT account_id FROM pending_secrets)")
        .execute(&app.db.pool)
        .await?;
    Ok(())
}

/// How long an open pending secret waits before it is settled again: 10 s, doubling with
/// each attempt, at most an hour.
pub(super) fn backoff_ms(attempts: i64) -> i64 {
    let doubled = 10_000i64.saturating_mul(1i64 << attempts.clamp(0, 20));
    doubled.min(3_600_000)
}

/// Settles the open pending secrets whose turn has come (their job no longer runs): a
/// target that was unreachable, or a change that could not be verified, is looked at again
/// with back-off instead of waiting for the next start. Run by the rotation clock.
pub async fn settle_open(app: &App) -> ApiResult<()> {
    let due: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT p.account_id, p.job_id, p.secret_enc, p.started_from, p.attempts FROM pending_secrets p WHERE p.next_check_at <= $1 AND NOT EXISTS (SELECT 1 FROM rotation_jobs j WHERE j.id = p.job_id AND j.state IN ('running', 'queued'))",
    )
    .bind(db::now_ms())
    .fetch_all(&app.db.pool)
    .await?;
    for (account_id, job_id, enc, started_from, attempts) in due {
        let settled = settle(app, &account_id, &job_id, &enc, &started_from).await;
        record_settled(app, &account_id, &job_id, attempts, settled, false).await?;
    }
    Ok(())
}

/// Writes down what settling came to: the job's state and message, the pending secret's
/// next look (back-off) while it stays open, and an audit record.
pub(super) async fn record_settled(
    app: &App,
    account_id: &str,
    job_id: &str,
    attempts: i64,
    settled: Settled,
    at_start: bool,
) -> ApiResult<()> {
    let now = db::now_ms();
    let (state, outcome, text) = match settled {
        Settled::Committed(m) => ("succeeded", Outcome::Ok, m),
        // A job the stop interrupted runs again; a finished one stays as it ended.
        Settled::Again(m) => (if at_start { "queued" } else { "failed" }, Outcome::Ok, m),
        Settled::Open(m) => {
            let next = now + backoff_ms(attempts);
            sqlx::query("UPDATE pending_secrets SET attempts = attempts + 1, next_check_at = $2, last_message = $3 WHERE account_id = $1")
                .bind(account_id)
                .bind(next)
                .bind(&m)
                .execute(&app.db.pool)
                .await?;
            ("failed", Outcome::Failed, m)
        }
    };
    if at_start {
        // The interrupted job goes on with what recovery found (a commit already ended it).
        sqlx::query("UPDATE rotation_jobs SET state = $2, step = $3, message = $3, finished_at = CASE WHEN $2 = 'queued' THEN NULL ELSE $4 END WHERE id = $1 AND state = 'running'")
            .bind(job_id)
            .bind(state)
            .bind(&text)
            .bind(now)
            .execute(&app.db.pool)
            .await?;
    } else if state != "succeeded" {
        sqlx::query("UPDATE rotation_jobs SET message = $2 WHERE id = $1 AND state = 'failed'")
            .bind(job_id)
            .bind(&text)
            .execute(&app.db.pool)
            .await?;
    }
    if let Ok(j) = job(app, job_id).await {
        system_event(
            app,
            if at_start {
                "account.rotate.recover"
            } else {
                "account.rotate.settle"
            },
            outcome,
            &j,
            json!({ "job": job_id, "message": text, "attempt": attempts + 1 }),
        )
        .await;
    }
    Ok(())
}

/// Settles one pending secret against the target. `started_from`: the account's sealed
/// secret when the rotation began (empty for rows from before it was kept).
pub(super) async fn settle(
    app: &App,
    account_id: &str,
    job_id: &str,
    enc: &str,
    started_from: &str,
) -> Settled {
    match try_settle(app, account_id, job_id, enc, started_from).await {
        Ok(s) => s,
        Err(m) => Settled::Open(m),
    }
}

pub(super) async fn try_settle(
    app: &App,
    account_id: &str,
    job_id: &str,
    enc: &str,
    started_from: &str,
) -> Result<Settled, String> {
    let db_down = |_| "the gateway's database is unavailable".to_string();
    let mut a = accounts::get(app, account_id).await.map_err(db_down)?;
    // The commit compares with what the rotation started from, not with what is there now.
    let changed_meanwhile = !started_from.is_empty() && started_from != a.secret_enc;
    let r = resources::get(app, &a.resource_id).await.map_err(db_down)?;
    let new = app
        .crypto
        .open(&pending_context(account_id), enc)
        .map_err(|e| format!("the pending secret could not be opened: {e}"))?;
    let old = app
        .crypto
        .open(&secret_context(&a.id), &a.secret_enc)
        .map_err(|e| format!("the account's secret could not be opened: {e}"))?;
    let target = target_for(app, &a, &r).await?;
    let requested_by = job(app, job_id)
        .await
        .map(|j| j.requested_by)
        .unwrap_or_else(|_| "system".into());
    let actor = rotation_actor(&requested_by);
    match target.login(app, &actor, &a, &new, None).await {
        Ok(()) => {
            let mut progress = |_: String| {};
            let m = match target.finish(app, &actor, &a, &old, &new, &mut progress).await {
                Ok(()) => "settled: the new secret logs in and is now the account's secret".to_string(),
                Err(e) => format!("settled: the new key logs in and is now the account's secret, but the old key could not be removed ({e}); remove it by hand"),
            };
            if changed_meanwhile {
                a.secret_enc = started_from.to_string();
            }
            if !commit(app, &a, &old, &new, job_id, &requested_by, &m)
                .await
                .map_err(db_down)?
            {
                return Ok(Settled::Open(CHANGED_MEANWHILE.into()));
            }
            Ok(Settled::Committed(m))
        }
        Err(LoginError::Unreachable(e)) => Ok(Settled::Open(format!(
            "settling the pending secret could not reach the target ({e}): it is kept and checked again with back-off"
        ))),
        Err(LoginError::Refused(e)) => match target
            .login(app, &actor, &a, &old, passphrase_of(app, &a)?)
            .await
        {
            Ok(()) => {
                discard_pending(app, account_id, &format!("the target still takes the old secret (the new one was refused: {e})")).await.map_err(db_down)?;
                Ok(Settled::Again(format!("the target still takes the old secret (the new one was refused: {e}), which the vault keeps; the new one is kept in the history as discarded")))
            }
            Err(e2) => Ok(Settled::Open(format!(
                "neither the new secret ({e}) nor the old one ({e2}) logs in; both are kept (checked again with back-off) for an administrator"
            ))),
        },
    }
}

/// An account's pending secret as the API shows it (never the secret itself).
pub async fn pending_of(app: &App, account_id: &str) -> ApiResult<Option<serde_json::Value>> {
    type Row = (String, String, i64, i64, i64, String);
    let row: Option<Row> = sqlx::query_as(
        "SELECT job_id, phase, created_at, attempts, next_check_at, last_message FROM pending_secrets WHERE account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(&app.db.pool)
    .await?;
    Ok(row.map(|(job, phase, created, attempts, next, message)| {
        json!({ "job_id": job, "phase": phase, "created_at": db::rfc3339(created), "attempts": attempts, "next_check_at": db::rfc3339(next), "last_message": message })
    }))
}

/// A super administrator decides an open pending secret: `promote` makes it the account's
/// secret (the target took it, as a check by hand showed; the vault's value goes to the
/// history), otherwise it is discarded to the history. Audited as an alert, with the reason.
/// What a super administrator decides about a pending secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PendingDecision {
    /// The target took it: it becomes the account's secret.
    Promote,
    /// It goes to the history, discarded.
    Discard,
}

pub async fn decide_pending(
    app: &App,
    p: &crate::identity::Principal,
    account_id: &str,
    decision: PendingDecision,
    reason: &str,
) -> ApiResult<()> {
    let promote = decision == PendingDecision::Promote;
    let action = if promote {
        "account.pending.promote"
    } else {
        "account.pending.discard"
    };
    // Refused before the account is looked up: no one else learns whether the id exists.
    if !p.super_admin {
        let e = ApiError::forbidden(
            "Only a super administrator decides a pending secret (it may be the only copy of the password the target holds).",
        );
        return Err(crate::audited::denied(app, p, action, "account", account_id, "", e).await);
    }
    let a = accounts::get(app, account_id).await?;
    crate::vault::check_text("reason", reason, 3, 500)?;
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT secret_enc, job_id FROM pending_secrets WHERE account_id = $1")
            .bind(&a.id)
            .fetch_optional(&app.db.pool)
            .await?;
    let (enc, job_id) = row
        .ok_or_else(|| ApiError::conflict("id", "this account has no pending secret to decide"))?;
    let detail = json!({ "job": job_id, "reason": reason, "alert": true });
    if !promote {
        discard_pending(
            app,
            &a.id,
            &format!("discarded by {}: {reason}", p.username),
        )
        .await?;
        let mut tx = app.db.begin_write().await?;
        crate::audited::audit(app, &mut tx, p, action, &a.id, &a.username, detail).await?;
        tx.commit().await?;
    } else {
        let pending = app
            .crypto
            .open(&pending_context(&a.id), &enc)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("a pending secret: {e}")))?;
        let current = app
            .crypto
            .open(&secret_context(&a.id), &a.secret_enc)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("an account's secret: {e}")))?;
        let now = db::now_ms();
        let mut tx = app.db.begin_write().await?;
        accounts::push_history_noted(
            app,
            &mut tx,
            &a,
            &current,
            (&p.username, &p.addr, now),
            &format!("replaced by the pending secret of rotation job {job_id}, promoted: {reason}"),
        )
        .await?;
        sqlx::query("UPDATE accounts SET secret_enc = $1, secret_changed_at = $2, updated_at = $2 WHERE id = $3")
            .bind(app.crypto.seal(&secret_context(&a.id), pending.expose()))
            .bind(now)
            .bind(&a.id)
            .execute(tx.conn())
            .await?;
        sqlx::query("DELETE FROM pending_secrets WHERE account_id = $1")
            .bind(&a.id)
            .execute(tx.conn())
            .await?;
        crate::audited::audit(app, &mut tx, p, action, &a.id, &a.username, detail).await?;
        tx.commit().await?;
    }
    Ok(())
}
