//! Why: accounts hold the secrets. This module is the only code that seals and opens them:
//! listing shows metadata only; `reveal` (View level, a reason, audited before the secret is
//! returned) is the one way out to a person; Connect-level users can use an account through
//! the gateway without ever being able to read it.

use serde::{Deserialize, Serialize};

use super::policy::{self, Policy};
use super::resources::{self, require, ResourceRow};
use super::{check_text, AccessView};
use crate::audit::Outcome;
use crate::audited::{audit, audit_outcome, denied, exec_audited, unique_or};
use crate::core::Core;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::identity::{Level, Principal};
use secret::Secret;

#[derive(Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: String,
    pub resource_id: String,
    pub username: String,
    pub secret_kind: String,
    pub secret_enc: String,
    pub passphrase_enc: Option<String>,
    pub notes: String,
    pub secret_changed_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub const COLUMNS: &str = "id, resource_id, username, secret_kind, secret_enc, passphrase_enc, notes, secret_changed_at, created_at, updated_at";

/// What anyone with access sees of an account: never the secret.
#[derive(Serialize)]
pub struct AccountView {
    pub id: String,
    pub resource_id: String,
    pub resource_name: String,
    pub resource_type: String,
    pub host: String,
    /// The resource's SSH port: sessions can be opened when set.
    pub ssh_port: Option<i64>,
    /// The resource's Telnet port: Telnet sessions can be opened when set.
    pub telnet_port: Option<i64>,
    /// The resource's RDP port: desktop sessions can be opened when set.
    pub rdp_port: Option<i64>,
    /// The landing servers a session goes through, first hop first (empty: direct).
    pub path: Vec<String>,
    pub username: String,
    pub secret_kind: String,
    pub has_passphrase: bool,
    pub notes: String,
    pub secret_changed_at: String,
    /// True when the resource's policy has a maximum age and the secret is older.
    pub secret_expired: bool,
    pub access: Level,
    pub created_at: String,
}

pub fn secret_context(id: &str) -> String {
    format!("accounts/{id}/secret")
}
fn passphrase_context(id: &str) -> String {
    format!("accounts/{id}/passphrase")
}
fn history_context(id: &str) -> String {
    format!("password_history/{id}/secret")
}

fn view(a: &AccountRow, r: &ResourceRow, access: Level, max_age_days: i64) -> AccountView {
    AccountView {
        id: a.id.clone(),
        resource_id: r.id.clone(),
        resource_name: r.name.clone(),
        resource_type: r.resource_type.clone(),
        host: r.host.clone(),
        ssh_port: r.ssh_port,
        telnet_port: r.telnet_port,
        rdp_port: r.rdp_port,
        path: Vec::new(),
        username: a.username.clone(),
        secret_kind: a.secret_kind.clone(),
        has_passphrase: a.passphrase_enc.is_some(),
        notes: a.notes.clone(),
        secret_changed_at: db::rfc3339(a.secret_changed_at),
        secret_expired: max_age_days > 0
            && db::now_ms() - a.secret_changed_at > max_age_days * 86_400_000,
        access,
        created_at: db::rfc3339(a.created_at),
    }
}

pub(crate) async fn load_policy(core: &Core, id: &str) -> ApiResult<Policy> {
    sqlx::query_as::<_, Policy>(crate::db::sql(format!(
        "SELECT {} FROM password_policies WHERE id = $1",
        policy::COLUMNS
    )))
    .bind(id)
    .fetch_optional(&core.db.pool)
    .await?
    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("resource refers to a missing policy {id}")))
}

pub(crate) async fn get(core: &Core, id: &str) -> ApiResult<AccountRow> {
    sqlx::query_as::<_, AccountRow>(crate::db::sql(format!(
        "SELECT {COLUMNS} FROM accounts WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&core.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("account"))
}

/// The account, its resource and the caller's level; 404 when the caller has no access.
pub async fn get_for(
    core: &Core,
    p: &Principal,
    id: &str,
) -> ApiResult<(AccountRow, ResourceRow, Level)> {
    let a = get(core, id).await?;
    let r = resources::get(core, &a.resource_id).await?;
    match super::level_on(core, p, &r.owner_id, Some(&a.id), &r.id).await? {
        Some(l) => Ok((a, r, l)),
        None => Err(ApiError::not_found("account")),
    }
}

pub async fn show(core: &Core, p: &Principal, id: &str) -> ApiResult<AccountView> {
    let (a, r, l) = get_for(core, p, id).await?;
    let pol = load_policy(core, &r.policy_id).await?;
    Ok(view(&a, &r, l, pol.max_age_days))
}

/// Every account the caller can at least connect with, optionally of one resource.
pub async fn list(
    core: &Core,
    p: &Principal,
    resource_id: Option<&str>,
) -> ApiResult<Vec<AccountView>> {
    let accounts = sqlx::query_as::<_, AccountRow>(crate::db::sql(format!(
        "SELECT {COLUMNS} FROM accounts ORDER BY username"
    )))
    .fetch_all(&core.db.pool)
    .await?;
    let res: Vec<ResourceRow> = sqlx::query_as(crate::db::sql(format!(
        "SELECT {} FROM resources",
        resources::COLUMNS
    )))
    .fetch_all(&core.db.pool)
    .await?;
    let pols: Vec<Policy> = sqlx::query_as(crate::db::sql(format!(
        "SELECT {} FROM password_policies",
        policy::COLUMNS
    )))
    .fetch_all(&core.db.pool)
    .await?;
    let res: std::collections::HashMap<&str, &ResourceRow> =
        res.iter().map(|r| (r.id.as_str(), r)).collect();
    let pols: std::collections::HashMap<&str, i64> = pols
        .iter()
        .map(|x| (x.id.as_str(), x.max_age_days))
        .collect();
    let access = AccessView::load(core, p).await?;
    let paths = crate::hop_path::PathIndex::load(core).await?;
    let mut out = Vec::new();
    for a in &accounts {
        if resource_id.is_some_and(|rid| rid != a.resource_id) {
            continue;
        }
        let Some(r) = res.get(a.resource_id.as_str()) else {
            continue;
        };
        if let Some(l) = access.level(p, &r.owner_id, Some(&a.id), &r.id) {
            let age = pols.get(r.policy_id.as_str()).copied().unwrap_or(0);
            let mut v = view(a, r, l, age);
            v.path = paths.path(&r.id);
            out.push(v);
        }
    }
    out.sort_by(|x, y| {
        (x.resource_name.as_str(), x.username.as_str())
            .cmp(&(y.resource_name.as_str(), y.username.as_str()))
    });
    Ok(out)
}

/// Input for creating or changing an account. `secret` and `passphrase` are taken into a
/// `Secret` at once; the request struct is dropped (and zeroized) right after.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    pub username: Option<String>,
    pub secret_kind: Option<String>,
    pub secret: Option<String>,
    pub passphrase: Option<String>,
    /// Generate the password from the resource's policy instead of giving one.
    #[serde(default)]
    pub generate: bool,
    pub notes: Option<String>,
}

impl Drop for AccountInput {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some(s) = self.secret.as_mut() {
            s.zeroize();
        }
        if let Some(s) = self.passphrase.as_mut() {
            s.zeroize();
        }
    }
}

fn validate_account_username(u: &str) -> ApiResult<()> {
    check_text("username", u, 1, 128)?;
    if u.chars().any(|c| c.is_whitespace()) {
        return Err(ApiError::field("username", "must not contain spaces"));
    }
    Ok(())
}

/// Decides the new secret (given or generated) and checks it against kind and policy.
fn new_secret(input: &mut AccountInput, kind: &str, pol: &Policy) -> ApiResult<Secret> {
    if input.generate {
        if kind != "password" {
            return Err(ApiError::field(
                "generate",
                "only passwords can be generated",
            ));
        }
        return Ok(Secret::from(pol.generate()));
    }
    let Some(s) = input.secret.take() else {
        return Err(ApiError::field(
            "secret",
            "enter the password or private key, or ask for a generated password",
        ));
    };
    let secret = Secret::from(s);
    match kind {
        "password" => {
            let text = secret.expose_str().unwrap_or("");
            let v = pol.violations(text);
            if !v.is_empty() {
                return Err(ApiError::field(
                    "secret",
                    format!(
                        "The password does not meet the {} policy: it {}.",
                        pol.name,
                        v.join("; it ")
                    ),
                ));
            }
        }
        _ => {
            let text = secret.expose_str().unwrap_or("");
            if !(text.trim_start().starts_with("-----BEGIN") && text.contains("PRIVATE KEY-----")) {
                return Err(ApiError::field("secret", "an SSH private key must be in PEM/OpenSSH format (-----BEGIN ... PRIVATE KEY-----)"));
            }
            if secret.len() > 16 * 1024 {
                return Err(ApiError::field(
                    "secret",
                    "the private key is too large (16 KiB at most)",
                ));
            }
        }
    }
    Ok(secret)
}

pub async fn create(
    core: &Core,
    p: &Principal,
    resource_id: &str,
    mut input: AccountInput,
) -> ApiResult<AccountView> {
    let (r, level) = resources::get_for(core, p, resource_id).await?;
    if let Err(e) = require(level, Level::Modify, "add accounts to this resource") {
        return Err(denied(core, p, "account.create", "resource", &r.id, &r.name, e).await);
    }
    // Adding an account to a resource rotated by its privileged account chooses a user whose
    // password the privileged account may be told to change (see `update`).
    if rotates_through_privileged_account(core, &r.id).await? {
        if let Err(e) = require(
            level,
            Level::Manage,
            "add accounts to a resource whose rotation runs as a privileged account",
        ) {
            return Err(denied(core, p, "account.create", "resource", &r.id, &r.name, e).await);
        }
    }
    let username = input
        .username
        .clone()
        .unwrap_or_default()
        .trim()
        .to_string();
    validate_account_username(&username)?;
    let kind = input
        .secret_kind
        .clone()
        .unwrap_or_else(|| "password".into());
    if kind != "password" && kind != "ssh_key" {
        return Err(ApiError::field(
            "secret_kind",
            "must be password or ssh_key",
        ));
    }
    let notes = input.notes.clone().unwrap_or_default();
    check_text("notes", &notes, 0, 4000)?;
    let pol = load_policy(core, &r.policy_id).await?;
    let secret = new_secret(&mut input, &kind, &pol)?;
    let passphrase = input
        .passphrase
        .take()
        .filter(|s| !s.is_empty())
        .map(Secret::from);
    if passphrase.is_some() && kind != "ssh_key" {
        return Err(ApiError::field(
            "passphrase",
            "only SSH private keys have a passphrase",
        ));
    }
    let id = db::new_id();
    let now = db::now_ms();
    let mut tx = core.db.begin_write().await?;
    let res = sqlx::query(crate::db::sql(format!(
        "INSERT INTO accounts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8)"
    )))
    .bind(&id)
    .bind(&r.id)
    .bind(&username)
    .bind(&kind)
    .bind(core.crypto.seal(&secret_context(&id), secret.expose()))
    .bind(
        passphrase
            .as_ref()
            .map(|s| core.crypto.seal(&passphrase_context(&id), s.expose())),
    )
    .bind(&notes)
    .bind(now)
    .execute(tx.conn())
    .await;
    unique_or(
        res,
        "username",
        &format!("{} already has an account named {username}", r.name),
    )?;
    audit(
        core,
        &mut tx,
        p,
        "account.create",
        &id,
        &format!("{username}@{}", r.name),
        serde_json::json!({ "kind": kind, "generated": input.generate }),
    )
    .await?;
    tx.commit().await?;
    show(core, p, &id).await
}

pub async fn update(
    core: &Core,
    p: &Principal,
    id: &str,
    input: AccountInput,
) -> ApiResult<AccountView> {
    let (a, r, level) = get_for(core, p, id).await?;
    if let Err(e) = require(Some(level), Level::Modify, "change this account") {
        return Err(denied(core, p, "account.update", "account", &a.id, &a.username, e).await);
    }
    if input.secret.is_some() || input.generate || input.passphrase.is_some() {
        return Err(ApiError::field(
            "secret",
            "change the secret with PUT /api/v1/accounts/{id}/secret",
        ));
    }
    let username = input
        .username
        .clone()
        .map(|u| u.trim().to_string())
        .unwrap_or(a.username.clone());
    validate_account_username(&username)?;
    // A rotation through the resource's privileged account changes whichever user the name
    // says: renaming such an account chooses whose password it changes, an administrator's
    // decision (Manage), and an alert in the audit log.
    let renamed = username != a.username;
    let privileged_rotation = renamed && rotates_through_privileged_account(core, &r.id).await?;
    if privileged_rotation {
        if let Err(e) = require(
            Some(level),
            Level::Manage,
            "rename an account of a resource whose rotation runs as a privileged account",
        ) {
            return Err(denied(core, p, "account.update", "account", &a.id, &a.username, e).await);
        }
    }
    let notes = input.notes.clone().unwrap_or(a.notes.clone());
    check_text("notes", &notes, 0, 4000)?;
    let mut tx = core.db.begin_write().await?;
    let res =
        sqlx::query("UPDATE accounts SET username = $1, notes = $2, updated_at = $3 WHERE id = $4")
            .bind(&username)
            .bind(&notes)
            .bind(db::now_ms())
            .bind(&a.id)
            .execute(tx.conn())
            .await;
    unique_or(
        res,
        "username",
        &format!("{} already has an account named {username}", r.name),
    )?;
    audit(
        core,
        &mut tx,
        p,
        "account.update",
        &a.id,
        &format!("{username}@{}", r.name),
        if privileged_rotation {
            serde_json::json!({ "previous_username": a.username, "alert": true, "why": "renamed an account that the resource's privileged account rotates" })
        } else {
            serde_json::json!({ "previous_username": a.username })
        },
    )
    .await?;
    tx.commit().await?;
    show(core, p, id).await
}

/// Whether `resource_id`'s rotation method runs as a privileged account (sudo, su, a script
/// with one, or a database's privileged role).
async fn rotates_through_privileged_account(core: &Core, resource_id: &str) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT method FROM resource_rotation WHERE resource_id = $1 AND privileged_account_id IS NOT NULL",
    )
    .bind(resource_id)
    .fetch_optional(&core.db.pool)
    .await?;
    Ok(row.is_some_and(|(method,)| method != "passwd"))
}

pub async fn delete(core: &Core, p: &Principal, id: &str) -> ApiResult<()> {
    let (a, r, level) = get_for(core, p, id).await?;
    if let Err(e) = require(Some(level), Level::Manage, "delete this account") {
        return Err(denied(core, p, "account.delete", "account", &a.id, &a.username, e).await);
    }
    let landing = crate::hop_path::landing_servers_where(core, "account_id = $1", &a.id).await?;
    if !landing.is_empty() {
        return Err(ApiError::conflict(
            "id",
            format!(
                "{} logs in to landing server {}: choose another login account there first",
                a.username,
                landing.join(", ")
            ),
        ));
    }
    exec_audited(
        core,
        p,
        &[
            "DELETE FROM shares WHERE object_kind = 'account' AND object_id = $1",
            "DELETE FROM accounts WHERE id = $1",
        ],
        &a.id,
        "account.delete",
        &format!("{}@{}", a.username, r.name),
        serde_json::json!({}),
    )
    .await?;
    core.access.changed(core).await;
    Ok(())
}

/// Replaces the secret; the old one moves to the password history (re-sealed to the history
/// row, as ciphertexts are bound to their row). Refuses a secret found in the last
/// `history_depth` versions.
pub async fn set_secret(
    core: &Core,
    p: &Principal,
    id: &str,
    mut input: AccountInput,
) -> ApiResult<AccountView> {
    let (a, r, level) = get_for(core, p, id).await?;
    if let Err(e) = require(Some(level), Level::Modify, "change this account's secret") {
        return Err(denied(
            core,
            p,
            "account.secret.change",
            "account",
            &a.id,
            &a.username,
            e,
        )
        .await);
    }
    let kind = input.secret_kind.clone().unwrap_or(a.secret_kind.clone());
    if kind != "password" && kind != "ssh_key" {
        return Err(ApiError::field(
            "secret_kind",
            "must be password or ssh_key",
        ));
    }
    let pol = load_policy(core, &r.policy_id).await?;
    let secret = new_secret(&mut input, &kind, &pol)?;
    let passphrase = input
        .passphrase
        .take()
        .filter(|s| !s.is_empty())
        .map(Secret::from);
    let old = open(core, &secret_context(&a.id), &a.secret_enc)?;
    if pol.history_depth > 0 {
        if old.ct_eq(secret.expose()) {
            return Err(ApiError::field(
                "secret",
                "the new secret is the same as the current one",
            ));
        }
        let hist: Vec<(String, String)> = sqlx::query_as("SELECT id, secret_enc FROM password_history WHERE account_id = $1 ORDER BY changed_at DESC")
            .bind(&a.id)
            .fetch_all(&core.db.pool)
            .await?;
        for (hid, enc) in hist.iter().take((pol.history_depth - 1).max(0) as usize) {
            if open(core, &history_context(hid), enc)?.ct_eq(secret.expose()) {
                return Err(ApiError::field(
                    "secret",
                    format!(
                        "the {} policy forbids reusing any of the last {} secrets",
                        pol.name, pol.history_depth
                    ),
                ));
            }
        }
    }
    let now = db::now_ms();
    let mut tx = core.db.begin_write().await?;
    push_history(core, &mut tx, &a, &old, &p.username, &p.addr, now).await?;
    sqlx::query("UPDATE accounts SET secret_kind = $1, secret_enc = $2, passphrase_enc = $3, secret_changed_at = $4, updated_at = $4 WHERE id = $5")
        .bind(&kind)
        .bind(core.crypto.seal(&secret_context(&a.id), secret.expose()))
        .bind(passphrase.as_ref().map(|s| core.crypto.seal(&passphrase_context(&a.id), s.expose())))
        .bind(now)
        .bind(&a.id)
        .execute(tx.conn())
        .await?;
    audit(
        core,
        &mut tx,
        p,
        "account.secret.change",
        &a.id,
        &format!("{}@{}", a.username, r.name),
        serde_json::json!({ "kind": kind, "generated": input.generate }),
    )
    .await?;
    tx.commit().await?;
    show(core, p, id).await
}

/// Puts the account's current secret `old` into its history (sealed), inside `tx`, as
/// changed by `by` from `addr` at `now`.
pub(crate) async fn push_history(
    core: &Core,
    tx: &mut db::WriteTx,
    a: &AccountRow,
    old: &Secret,
    by: &str,
    addr: &str,
    now: i64,
) -> ApiResult<()> {
    push_history_noted(core, tx, a, old, (by, addr, now), "").await
}

/// Keeps `secret` in the account's history with a note (a rotation's pending secret that was
/// discarded says so, and why).
pub(crate) async fn push_history_noted(
    core: &Core,
    tx: &mut db::WriteTx,
    a: &AccountRow,
    secret: &Secret,
    (by, addr, now): (&str, &str, i64),
    note: &str,
) -> ApiResult<()> {
    let hid = db::new_id();
    sqlx::query("INSERT INTO password_history (id, account_id, secret_kind, secret_enc, changed_by, client_addr, changed_at, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&hid)
        .bind(&a.id)
        .bind(&a.secret_kind)
        .bind(core.crypto.seal(&history_context(&hid), secret.expose()))
        .bind(by)
        .bind(addr)
        .bind(now)
        .bind(note)
        .execute(tx.conn())
        .await?;
    Ok(())
}

fn open(core: &Core, context: &str, enc: &str) -> ApiResult<Secret> {
    core.crypto
        .open(context, enc)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{context}: {e}")))
}

pub struct Revealed {
    pub kind: String,
    pub secret: Secret,
    pub passphrase: Option<Secret>,
}

/// Returns the secret to a person with View access who gave a reason. The audit record is
/// committed before the secret is returned: no reveal without its trace.
pub async fn reveal(core: &Core, p: &Principal, id: &str, reason: &str) -> ApiResult<Revealed> {
    let (a, r, level) = get_for(core, p, id).await?;
    let name = format!("{}@{}", a.username, r.name);
    if let Err(e) = require(Some(level), Level::View, "see this account's secret") {
        return Err(denied(core, p, "account.reveal", "account", &a.id, &name, e).await);
    }
    let reason = reason.trim();
    if reason.chars().count() < 3 || reason.chars().count() > 500 {
        return Err(ApiError::field(
            "reason",
            "say why you need the secret (3-500 characters); it is recorded in the audit log",
        ));
    }
    let opened = open(core, &secret_context(&a.id), &a.secret_enc).and_then(|s| {
        let pp = match &a.passphrase_enc {
            Some(enc) => Some(open(core, &passphrase_context(&a.id), enc)?),
            None => None,
        };
        Ok((s, pp))
    });
    let mut tx = core.db.begin_write().await?;
    let outcome = if opened.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    let detail = match &opened {
        Ok(_) => serde_json::json!({ "reason": reason }),
        Err(_) => {
            serde_json::json!({ "reason": reason, "error": "stored secret failed its integrity check" })
        }
    };
    audit_outcome(
        core,
        &mut tx,
        p,
        "account.reveal",
        outcome,
        &a.id,
        &name,
        detail,
    )
    .await?;
    tx.commit().await?;
    let (secret, passphrase) = opened?;
    Ok(Revealed {
        kind: a.secret_kind,
        secret,
        passphrase,
    })
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    id: String,
    secret_kind: String,
    changed_by: String,
    client_addr: String,
    changed_at: i64,
    /// Why an entry that was never the account's secret is kept (a discarded pending one).
    note: String,
}

/// Who changed the secret, when and from where (the old secrets themselves stay sealed).
pub async fn history(core: &Core, p: &Principal, id: &str) -> ApiResult<Vec<serde_json::Value>> {
    let (a, _r, level) = get_for(core, p, id).await?;
    require(
        Some(level),
        Level::View,
        "see this account's password history",
    )?;
    let rows = sqlx::query_as::<_, HistoryRow>("SELECT id, secret_kind, changed_by, client_addr, changed_at, note FROM password_history WHERE account_id = $1 ORDER BY changed_at DESC")
        .bind(&a.id)
        .fetch_all(&core.db.pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|h| serde_json::json!({ "id": h.id, "secret_kind": h.secret_kind, "changed_by": h.changed_by, "client_addr": h.client_addr, "changed_at": db::rfc3339(h.changed_at), "note": h.note }))
        .collect())
}

/// What the gateway needs to log in with an account: its resource and its secret, opened
/// for a caller with at least Connect. The secret goes to the protocol adapter, never to the
/// caller; the session's own audit records (start/end) cover its use.
pub struct SessionCredential {
    pub account: AccountRow,
    pub resource: ResourceRow,
    pub secret: Secret,
    pub passphrase: Option<Secret>,
}

/// The password of `id`, an account of `resource_id`, for a Telnet logon script's enable
/// step. The launcher has checked the user's access to the session's own account; the
/// enable account is the resource's, chosen by an administrator, and its use is audited
/// with the session start.
pub async fn open_enable_secret(core: &Core, id: &str, resource_id: &str) -> ApiResult<Secret> {
    let a = get(core, id).await?;
    if a.resource_id != resource_id || a.secret_kind != "password" {
        return Err(ApiError::not_found("enable account"));
    }
    open(core, &secret_context(&a.id), &a.secret_enc)
}

/// A landing server's login, opened for a hop chain: the landing server's account when
/// `resource_id` is its own resource, else (a secondary) the account of `resource_id` with
/// the same user name. Landing-server logins are configured by administrators and used by
/// the gateway on the user's behalf; they never reach the user.
pub async fn open_landing_login(
    core: &Core,
    account_id: &str,
    resource_id: &str,
) -> ApiResult<LandingLogin> {
    let a = get(core, account_id).await?;
    let a = if a.resource_id == resource_id {
        a
    } else {
        sqlx::query_as::<_, AccountRow>(crate::db::sql(format!(
            "SELECT {COLUMNS} FROM accounts WHERE resource_id = $1 AND username = $2"
        )))
        .bind(resource_id)
        .bind(&a.username)
        .fetch_optional(&core.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?
    };
    let secret = open(core, &secret_context(&a.id), &a.secret_enc)?;
    let passphrase = match &a.passphrase_enc {
        Some(enc) => Some(open(core, &passphrase_context(&a.id), enc)?),
        None => None,
    };
    Ok(LandingLogin {
        username: a.username,
        kind: a.secret_kind,
        secret,
        passphrase,
    })
}

pub struct LandingLogin {
    pub username: String,
    pub kind: String,
    pub secret: Secret,
    pub passphrase: Option<Secret>,
}

/// The key passphrase of an SSH-key account, if it has one (the rotation engine logs in with
/// it as a session would).
pub fn open_passphrase(core: &Core, a: &AccountRow) -> ApiResult<Option<Secret>> {
    match &a.passphrase_enc {
        Some(enc) => Ok(Some(open(core, &passphrase_context(&a.id), enc)?)),
        None => Ok(None),
    }
}

pub async fn open_for_session(
    core: &Core,
    p: &Principal,
    id: &str,
) -> ApiResult<SessionCredential> {
    let (a, r, _level) = get_for(core, p, id).await?;
    let secret = open(core, &secret_context(&a.id), &a.secret_enc)?;
    let passphrase = match &a.passphrase_enc {
        Some(enc) => Some(open(core, &passphrase_context(&a.id), enc)?),
        None => None,
    };
    Ok(SessionCredential {
        account: a,
        resource: r,
        secret,
        passphrase,
    })
}
