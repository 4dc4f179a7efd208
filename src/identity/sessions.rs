//! Why: web logins and API tokens turn a request into a `Principal`. Cookies are opaque
//! random values stored only as hashes; each web session carries its own CSRF token; failed
//! logins are throttled per address and lock the account for a while after too many tries;
//! idle sessions expire. A session waiting for its TOTP code, or whose user must change the
//! password, can do nothing else.

use super::users::{self, UserRow};
use super::{passwords, totp, Principal};
use crate::audit::{Actor, Event, Outcome};
use crate::core::Core;
use crate::db;
use crate::error::{ApiError, ApiResult};

/// The `__Host-` prefix makes browsers refuse the cookie unless it is `Secure`, has
/// `Path=/` and no `Domain`: a sibling host cannot set or shadow it.
pub const COOKIE: &str = "__Host-pc_session";

/// Checks a logged-in user's own password (changing it, turning the second factor off):
/// a wrong one counts like a failed login, so a stolen web session cannot guess the password
/// faster than the login page could; while the user is locked, nothing is checked. Wrong
/// guesses are audited as `action`. `field` names the input in the error.
pub async fn verify_own_password(
    core: &Core,
    user: &UserRow,
    actor: &Actor,
    password: &str,
    field: &str,
    action: &str,
) -> ApiResult<()> {
    let now = db::now_ms();
    if user.locked_until > now {
        let mins = (user.locked_until - now) / 60_000 + 1;
        return Err(ApiError::TooMany(format!(
            "Too many wrong passwords: try again in {mins} minute(s)."
        )));
    }
    if passwords::verify(password, &user.password_hash) {
        return Ok(());
    }
    let mut tx = core.db.begin_write().await?;
    let locked = count_failure(core, &mut tx, &user.id, Failures::Password).await?;
    core.audit
        .append_in(&mut tx, Event {
            actor,
            action,
            outcome: Outcome::Failed,
            object_kind: "user",
            object_id: &user.id,
            object_name: &user.username,
            detail: serde_json::json!({ "reason": if locked { "wrong password; user locked temporarily" } else { "wrong password" } }),
        })
        .await?;
    tx.commit().await?;
    Err(ApiError::field(field, "this is not your current password"))
}

/// The one reply to a refused login: wrong password, unknown user, locked or disabled user.
pub const REFUSED: &str = "Wrong user name or password.";

/// What a failure counts against: wrong passwords (`users.failed_logins`) or wrong
/// second-factor codes (`users.mfa_failures`, which a right password does not reset).
#[derive(Clone, Copy)]
enum Failures {
    Password,
    Code,
}

impl Failures {
    /// (count one more and return the count; restart the count and lock the user)
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Failures::Password => (
                "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
                "UPDATE users SET failed_logins = 0, locked_until = $1 WHERE id = $2",
            ),
            Failures::Code => (
                "UPDATE users SET mfa_failures = mfa_failures + 1 WHERE id = $1 RETURNING mfa_failures",
                "UPDATE users SET mfa_failures = 0, locked_until = $1 WHERE id = $2",
            ),
        }
    }
}

/// Counts one more failure in one statement, so concurrent failures cannot overwrite each
/// other's count. At the limit the count restarts, the user is locked for the lockout time
/// and every login of the user still waiting for a code ends. Returns whether it locked.
async fn count_failure(
    core: &Core,
    tx: &mut db::WriteTx,
    user_id: &str,
    what: Failures,
) -> ApiResult<bool> {
    let (count, lock) = what.sql();
    let (failures,): (i64,) = sqlx::query_as(count)
        .bind(user_id)
        .fetch_one(tx.conn())
        .await?;
    if failures < core.config.login_max_failures as i64 {
        return Ok(false);
    }
    sqlx::query(lock)
        .bind(db::now_ms() + core.config.login_lockout.as_millis() as i64)
        .bind(user_id)
        .execute(tx.conn())
        .await?;
    sqlx::query("DELETE FROM web_sessions WHERE user_id = $1 AND mfa_pending = 1")
        .bind(user_id)
        .execute(tx.conn())
        .await?;
    Ok(true)
}

pub struct LoginOutcome {
    pub cookie: String,
    pub csrf: String,
    pub user: UserRow,
    pub mfa_required: bool,
}

/// Checks a user name and password. Every outcome is audited.
pub async fn login(
    core: &Core,
    username: &str,
    password: &str,
    addr: &str,
) -> ApiResult<LoginOutcome> {
    // A name that is no user's is often a password typed in the wrong box: the audit log
    // keeps a stand-in for it, never the text.
    let anon = Actor {
        id: String::new(),
        name: format!("unknown user {}", core.audit.pseudonym(username)),
        addr: addr.to_string(),
    };
    if !core.limiter.allow(addr) {
        audit_login(core, &anon, Outcome::Denied, "rate limited").await?;
        return Err(ApiError::TooMany(
            "Too many login attempts from your address. Wait a minute and try again.".into(),
        ));
    }
    // Unknown, locked and disabled users get the reply a wrong password gets, after the same
    // work (one argon2 check), so the reply does not tell which names exist or are locked.
    // The audit log records the real reason.
    let refused = || ApiError::Unauthenticated(REFUSED.into());
    let Some(user) = users::by_name(core, username).await? else {
        passwords::verify(password, passwords::dummy_hash());
        audit_login(core, &anon, Outcome::Failed, "unknown user").await?;
        return Err(refused());
    };
    let actor = Actor {
        id: user.id.clone(),
        name: user.username.clone(),
        addr: addr.to_string(),
    };
    let now = db::now_ms();
    let password_ok = passwords::verify(password, &user.password_hash);
    if user.disabled == 1 {
        audit_login(
            core,
            &actor,
            Outcome::Denied,
            "user is locked by an administrator",
        )
        .await?;
        return Err(refused());
    }
    if user.locked_until > now {
        audit_login(core, &actor, Outcome::Denied, "temporary lockout").await?;
        return Err(refused());
    }
    if !password_ok {
        let mut tx = core.db.begin_write().await?;
        let locked = count_failure(core, &mut tx, &user.id, Failures::Password).await?;
        let why = if locked {
            "wrong password; user locked temporarily"
        } else {
            "wrong password"
        };
        append_login(core, &mut tx, &actor, Outcome::Failed, why).await?;
        tx.commit().await?;
        return Err(refused());
    }
    let cookie = passwords::random_token(32);
    let csrf = passwords::random_token(24);
    let mfa = user.totp_enabled == 1;
    let mut tx = core.db.begin_write().await?;
    sqlx::query("UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = $1")
        .bind(&user.id)
        .execute(tx.conn())
        .await?;
    sqlx::query("INSERT INTO web_sessions (id, user_id, csrf_token, mfa_pending, client_addr, created_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $6)")
        .bind(passwords::sha256_hex(&cookie))
        .bind(&user.id)
        .bind(&csrf)
        .bind(db::b(mfa))
        .bind(addr)
        .bind(now)
        .execute(tx.conn())
        .await?;
    append_login(
        core,
        &mut tx,
        &actor,
        Outcome::Ok,
        if mfa {
            "password ok; TOTP code required"
        } else {
            "password ok"
        },
    )
    .await?;
    tx.commit().await?;
    Ok(LoginOutcome {
        cookie,
        csrf,
        user,
        mfa_required: mfa,
    })
}

async fn audit_login(core: &Core, actor: &Actor, outcome: Outcome, why: &str) -> ApiResult<()> {
    let mut tx = core.db.begin_write().await?;
    append_login(core, &mut tx, actor, outcome, why).await?;
    tx.commit().await?;
    Ok(())
}

async fn append_login(
    core: &Core,
    tx: &mut db::WriteTx,
    actor: &Actor,
    outcome: Outcome,
    why: &str,
) -> ApiResult<()> {
    core.audit
        .append_in(
            tx,
            crate::audit::Event {
                actor,
                action: "auth.login",
                outcome,
                object_kind: "user",
                object_id: &actor.id,
                object_name: &actor.name,
                detail: serde_json::json!({ "reason": why }),
            },
        )
        .await?;
    Ok(())
}

/// A live web session, as found from its cookie.
pub struct WebSession {
    pub id: String,
    pub csrf: String,
    pub mfa_pending: bool,
    pub user: UserRow,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    user_id: String,
    csrf_token: String,
    mfa_pending: i64,
    last_seen: i64,
    created_at: i64,
}

pub async fn from_cookie(core: &Core, cookie: &str) -> ApiResult<WebSession> {
    let expired = || {
        ApiError::Unauthenticated(
            "You are not logged in, or your login expired. Log in again.".into(),
        )
    };
    let id = passwords::sha256_hex(cookie);
    let row = sqlx::query_as::<_, SessionRow>(
        "SELECT id, user_id, csrf_token, mfa_pending, last_seen, created_at FROM web_sessions WHERE id = $1",
    )
    .bind(&id)
    .fetch_optional(&core.db.pool)
    .await?
    .ok_or_else(expired)?;
    let now = db::now_ms();
    let idle = core.config.session_idle_timeout.as_millis() as i64;
    let lifetime = core.config.web_login_lifetime.as_millis() as i64;
    if now - row.last_seen > idle || now - row.created_at > lifetime {
        sqlx::query("DELETE FROM web_sessions WHERE id = $1")
            .bind(&id)
            .execute(&core.db.pool)
            .await?;
        return Err(expired());
    }
    // Refresh last_seen at most every idle/8 (and at least every 15 s) to spare writes.
    if now - row.last_seen > (idle / 8).min(15_000) {
        let mut tx = core.db.begin_write().await?;
        sqlx::query("UPDATE web_sessions SET last_seen = $1 WHERE id = $2")
            .bind(now)
            .bind(&id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
    }
    let user = users::by_id(core, &row.user_id)
        .await
        .map_err(|_| expired())?;
    if user.disabled == 1 {
        return Err(ApiError::Unauthenticated(
            "This user was locked by an administrator.".into(),
        ));
    }
    Ok(WebSession {
        id: row.id,
        csrf: row.csrf_token,
        mfa_pending: row.mfa_pending == 1,
        user,
    })
}

pub async fn from_bearer(core: &Core, token: &str) -> ApiResult<UserRow> {
    let bad = || {
        ApiError::Unauthenticated(
            "The API token is not valid (unknown, revoked or expired).".into(),
        )
    };
    type TokenRow = (String, String, Option<i64>, Option<i64>);
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT id, user_id, expires_at, last_used_at FROM api_tokens WHERE token_hash = $1",
    )
    .bind(passwords::sha256_hex(token))
    .fetch_optional(&core.db.pool)
    .await?;
    let (tid, user_id, expires, last_used) = row.ok_or_else(bad)?;
    let now = db::now_ms();
    if expires.is_some_and(|e| e <= now) {
        return Err(bad());
    }
    let user = users::by_id(core, &user_id).await.map_err(|_| bad())?;
    if user.disabled == 1 || user.must_change_password == 1 {
        return Err(ApiError::Unauthenticated(
            "The token's user is locked or must change the password first.".into(),
        ));
    }
    // "Last used" is shown to a minute's precision; this spares a write per API call.
    if last_used.is_none_or(|t| now - t > 60_000) {
        let mut tx = core.db.begin_write().await?;
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(tid)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
    }
    Ok(user)
}

/// Deletes web sessions idle for longer than the timeout (they would be refused anyway);
/// run periodically by the server so abandoned sessions do not pile up.
pub async fn purge_idle(core: &Core) -> Result<u64, sqlx::Error> {
    let now = db::now_ms();
    let cutoff = now - core.config.session_idle_timeout.as_millis() as i64;
    let born_before = now - core.config.web_login_lifetime.as_millis() as i64;
    let mut tx = core.db.begin_write().await?;
    let n = sqlx::query("DELETE FROM web_sessions WHERE last_seen < $1 OR created_at < $2")
        .bind(cutoff)
        .bind(born_before)
        .execute(tx.conn())
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n)
}

pub fn principal(user: &UserRow, addr: &str) -> Principal {
    Principal {
        user_id: user.id.clone(),
        username: user.username.clone(),
        role: user.role(),
        super_admin: user.super_admin == 1,
        addr: addr.to_string(),
    }
}

/// The most wrong codes one pending login may send before it ends (the user's own count,
/// across pending logins, is held to `login_max_failures`).
pub const MFA_TRIES_PER_LOGIN: i64 = 5;

/// Completes a login that waits for its second factor: a TOTP code or an unused recovery
/// code. On success the web session gets a new id (returned: the new cookie value), so a
/// cookie seen before the second factor is worth nothing after it.
///
/// Each code is used once even when two requests carry it at the same moment: the time step
/// (or the list of recovery codes) is changed by a conditional update, and only the request
/// whose update took effect gets in. Wrong codes count per pending login and per user; at
/// the limit the pending login ends and the user is locked for the lockout time.
pub async fn complete_mfa(
    core: &Core,
    session: &WebSession,
    code: &str,
    addr: &str,
) -> ApiResult<String> {
    let user = &session.user;
    let actor = Actor {
        id: user.id.clone(),
        name: user.username.clone(),
        addr: addr.to_string(),
    };
    if !core.limiter.allow(addr) {
        return Err(ApiError::TooMany(
            "Too many attempts from your address. Wait a minute and try again.".into(),
        ));
    }
    if user.locked_until > db::now_ms() {
        end_pending(core, session, &actor, "user is locked").await?;
        return Err(ApiError::Unauthenticated(MFA_ENDED.into()));
    }
    let seed = match &user.totp_secret_enc {
        Some(enc) => Some(
            core.crypto
                .open(&format!("users/{}/totp", user.id), enc)
                .map_err(|e| anyhow::anyhow!("totp seed: {e}"))?,
        ),
        None => None,
    };
    let step = seed
        .as_ref()
        .and_then(|s| totp::check(s, code, totp::now_secs()));
    let mut tx = core.db.begin_write().await?;
    // A TOTP code is accepted once: its time step must be newer than the last one used.
    let (mut ok, mut method, mut remaining) = (false, "totp", None);
    if let Some(st) = step {
        ok = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1",
        )
        .bind(st as i64)
        .bind(&user.id)
        .execute(tx.conn())
        .await?
        .rows_affected()
            == 1;
        if !ok {
            method = "totp (replayed code refused)";
        }
    } else {
        let mut codes: Vec<String> = serde_json::from_str(&user.recovery_codes).unwrap_or_default();
        let h = passwords::sha256_hex(code.trim());
        if let Some(i) = codes.iter().position(|c| *c == h) {
            codes.remove(i);
            let left = serde_json::to_string(&codes).unwrap_or_else(|_| "[]".into());
            method = "recovery code";
            ok = sqlx::query(
                "UPDATE users SET recovery_codes = $1 WHERE id = $2 AND recovery_codes = $3",
            )
            .bind(left)
            .bind(&user.id)
            .bind(&user.recovery_codes)
            .execute(tx.conn())
            .await?
            .rows_affected()
                == 1;
            if ok {
                remaining = Some(codes.len());
            } else {
                method = "recovery code (used at the same time by another request)";
            }
        }
    }
    let new_cookie = passwords::random_token(32);
    if ok {
        // The pending login is completed once, under its new id.
        ok = sqlx::query(
            "UPDATE web_sessions SET id = $1, mfa_pending = 0, mfa_failures = 0 WHERE id = $2 AND mfa_pending = 1",
        )
        .bind(passwords::sha256_hex(&new_cookie))
        .bind(&session.id)
        .execute(tx.conn())
        .await?
        .rows_affected()
            == 1;
        sqlx::query("UPDATE users SET mfa_failures = 0 WHERE id = $1")
            .bind(&user.id)
            .execute(tx.conn())
            .await?;
    }
    let mut ended = false;
    let mut why = serde_json::Value::Null;
    if !ok {
        // None: the pending login was ended meanwhile (a lockout from another one).
        let per_login: Option<(i64,)> = sqlx::query_as(
            "UPDATE web_sessions SET mfa_failures = mfa_failures + 1 WHERE id = $1 RETURNING mfa_failures",
        )
        .bind(&session.id)
        .fetch_optional(tx.conn())
        .await?;
        let per_login = per_login.map_or(MFA_TRIES_PER_LOGIN, |(n,)| n);
        let locked = count_failure(core, &mut tx, &user.id, Failures::Code).await?;
        if locked {
            why = "too many wrong codes for this user: login ended, user locked temporarily".into();
            ended = true;
        } else if per_login >= MFA_TRIES_PER_LOGIN {
            sqlx::query("DELETE FROM web_sessions WHERE id = $1")
                .bind(&session.id)
                .execute(tx.conn())
                .await?;
            why = "too many wrong codes for this login: login ended".into();
            ended = true;
        }
    }
    core.audit
        .append_in(&mut tx, Event {
            actor: &actor,
            action: "auth.mfa",
            outcome: if ok { Outcome::Ok } else { Outcome::Failed },
            object_kind: "user",
            object_id: &user.id,
            object_name: &user.username,
            detail: serde_json::json!({ "method": method, "recovery_codes_left": remaining, "ended": why }),
        })
        .await?;
    tx.commit().await?;
    if ok {
        Ok(new_cookie)
    } else if ended {
        Err(ApiError::Unauthenticated(MFA_ENDED.into()))
    } else {
        Err(ApiError::field("code", "That code is not valid. Enter the current 6-digit code from your authenticator app, or a recovery code."))
    }
}

/// What a pending login that was ended for wrong codes (or a lockout) is told.
const MFA_ENDED: &str = "Too many wrong codes: this login was ended. Log in again later.";

/// Ends a pending login that may not go on, with an audit record saying why.
async fn end_pending(core: &Core, session: &WebSession, actor: &Actor, why: &str) -> ApiResult<()> {
    let mut tx = core.db.begin_write().await?;
    sqlx::query("DELETE FROM web_sessions WHERE id = $1")
        .bind(&session.id)
        .execute(tx.conn())
        .await?;
    core.audit
        .append_in(
            &mut tx,
            Event {
                actor,
                action: "auth.mfa",
                outcome: Outcome::Denied,
                object_kind: "user",
                object_id: &session.user.id,
                object_name: &session.user.username,
                detail: serde_json::json!({ "ended": why }),
            },
        )
        .await?;
    tx.commit().await?;
    Ok(())
}
