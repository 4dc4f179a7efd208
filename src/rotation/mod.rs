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

pub mod guard;
pub mod keys;
pub mod mysql;
pub mod postgres;
pub mod schedule;
pub mod scripts;
pub mod settings;
pub mod terminal;

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

/// The test hook that proves crash safety: with `PORTCULLIS_TEST_PAUSE_AT` set to `stored`,
/// `changed` or `verified`, a job stops at that point (its step says so) and waits, so a
/// test can kill the process there with SIGKILL. Unset in production.
const PAUSE_ENV: &str = "PORTCULLIS_TEST_PAUSE_AT";

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
async fn dispatch(app: &App) -> ApiResult<()> {
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

async fn set_step(app: &App, id: &str, state: &str, step: &str) -> ApiResult<()> {
    sqlx::query("UPDATE rotation_jobs SET state = $2, step = $3 WHERE id = $1")
        .bind(id)
        .bind(state)
        .bind(step)
        .execute(&app.db.pool)
        .await?;
    Ok(())
}

/// Stops here when the test hook names this point (see `PAUSE_ENV`).
async fn pause_point(app: &App, id: &str, point: &str) {
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
async fn run(app: &App, id: &str) {
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

async fn system_event(
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

/// Why a change failed, and whether the target may have been changed at all: a change that
/// never reached the target (no login, a guard refused it) leaves nothing to settle.
pub struct ChangeError {
    pub message: String,
    /// Nothing was sent to the target that could change the secret.
    pub untouched: bool,
}

impl ChangeError {
    /// A failure before anything that could change the secret was sent.
    pub fn untouched(message: impl Into<String>) -> Self {
        ChangeError {
            message: message.into(),
            untouched: true,
        }
    }
}

/// Any other failure: the target may have taken the change.
impl From<String> for ChangeError {
    fn from(message: String) -> Self {
        ChangeError {
            message,
            untouched: false,
        }
    }
}

impl From<&str> for ChangeError {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Where an account's secret is changed, and how.
enum Target {
    Postgres(postgres::PgTarget),
    Mysql(mysql::MyTarget),
    /// A shell (SSH, or Telnet), reached over the resource's path like a session.
    Terminal(Box<TerminalTarget>),
}

struct TerminalTarget {
    resource: ResourceRow,
    /// The method (`scripts::METHODS`), or "ssh_key" for key accounts.
    method: String,
    /// The password-changing script (None for key accounts: `scripts::install_key`).
    script: Option<LogonScript>,
    /// The resource's privileged account and its password.
    privileged: Option<(AccountRow, Secret)>,
}

/// The actor a rotation's own connections are audited as (host-key pins, failures).
fn rotation_actor(requested_by: &str) -> Actor {
    Actor {
        id: "system".into(),
        name: format!("rotation (for {requested_by})"),
        addr: "local".into(),
    }
}

/// Where `a`'s secret is changed and how: SSH-key accounts by installing a new key over
/// SSH; password accounts by the resource's rotation method.
async fn target_for(app: &App, a: &AccountRow, r: &ResourceRow) -> Result<Target, String> {
    if a.secret_kind == "ssh_key" {
        if r.ssh_port.is_none() {
            return Err(format!(
                "{} has no SSH port, and an SSH key is rotated over SSH",
                r.name
            ));
        }
        return Ok(Target::Terminal(Box::new(TerminalTarget {
            resource: r.clone(),
            method: "ssh_key".into(),
            script: None,
            privileged: None,
        })));
    }
    let s = settings::for_resource(app, &r.id)
        .await
        .map_err(|_| "the gateway's database is unavailable".to_string())?
        .ok_or_else(|| {
            format!(
                "{} has no rotation method set (resource settings, Rotation)",
                r.name
            )
        })?;
    let privileged = match &s.privileged_account_id {
        None => None,
        Some(admin_id) => {
            let admin = accounts::get(app, admin_id).await.map_err(|_| {
                format!(
                    "{}: the privileged account for rotation no longer exists",
                    r.name
                )
            })?;
            let password = app
                .crypto
                .open(&secret_context(&admin.id), &admin.secret_enc)
                .map_err(|e| format!("the privileged account's secret could not be opened: {e}"))?;
            // The privileged account changes another account's password: never one of the
            // names it must not change (renaming an ordinary account to one of them).
            if admin.id != a.id && s.method != "passwd" {
                guard::privileged_may_change(&a.username, &admin.username)
                    .map_err(|e| format!("refused: {e}"))?;
            }
            Some((admin, password))
        }
    };
    if s.method == "su" {
        return Err(scripts::SU_REFUSED.to_string());
    }
    if scripts::is_terminal(&s.method) {
        if !terminal::reachable_by_terminal(r) {
            return Err(format!(
                "{} has no SSH or Telnet port for the {} method",
                r.name, s.method
            ));
        }
        return Ok(Target::Terminal(Box::new(TerminalTarget {
            resource: r.clone(),
            method: s.method.clone(),
            script: s.effective_script(),
            privileged,
        })));
    }
    let port = r
        .db_port
        .ok_or_else(|| format!("{} has no database port", r.name))?;
    // The database is reached directly: only where resources may point.
    crate::network_policy::check_resolved(
        &app.config.resource_networks,
        &r.host,
        u16::try_from(port).unwrap_or(0),
    )
    .await
    .map_err(|why| format!("{}: {why}", r.name))?;
    if s.method == "mysql" {
        return Ok(Target::Mysql(mysql::MyTarget {
            host: r.host.clone(),
            port: u16::try_from(port).map_err(|_| format!("{}: bad database port", r.name))?,
            database: s.db_name,
            tls: mysql::tls_mode(&s.db_tls).unwrap_or(sqlx::mysql::MySqlSslMode::VerifyIdentity),
            ca: s.db_ca.clone().map(String::into_bytes),
            admin: privileged.map(|(a, p)| (a.username, p)),
        }));
    }
    Ok(Target::Postgres(postgres::PgTarget {
        host: r.host.clone(),
        port: u16::try_from(port).map_err(|_| format!("{}: bad database port", r.name))?,
        database: s.db_name,
        tls: postgres::tls_mode(&s.db_tls).unwrap_or(sqlx::postgres::PgSslMode::VerifyFull),
        ca: s.db_ca.clone().map(String::into_bytes),
        admin: privileged.map(|(a, p)| (a.username, p)),
    }))
}

/// A new secret of the account's kind: a password from the resource's policy, or a new
/// ed25519 key (OpenSSH format, no passphrase: the vault encrypts it).
async fn new_secret(app: &App, a: &AccountRow, r: &ResourceRow) -> Result<Secret, String> {
    if a.secret_kind == "ssh_key" {
        return keys::generate(&format!("portcullis {}@{}", a.username, r.name));
    }
    let policy = accounts::load_policy(app, &r.policy_id)
        .await
        .map_err(|_| "the gateway's database is unavailable".to_string())?;
    Ok(Secret::from(policy.generate()))
}

/// Progress of a job, written to its row as it goes (the jobs page shows it). One writer
/// per job, in order, and only while the job runs: a late note never reopens a finished job.
fn progress_writer(app: &App, id: &str, prefix: &'static str) -> impl FnMut(String) + Send {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (app, id) = (app.clone(), id.to_string());
    tokio::spawn(async move {
        while let Some(s) = rx.recv().await {
            let _ = sqlx::query(
                "UPDATE rotation_jobs SET step = $2 WHERE id = $1 AND state = 'running'",
            )
            .bind(&id)
            .bind(format!("{prefix}: {s}"))
            .execute(&app.db.pool)
            .await;
        }
    });
    move |s: String| {
        let _ = tx.send(s);
    }
}

impl Target {
    /// Changes `a`'s secret from `current` to `new` on the target.
    async fn change(
        &self,
        app: &App,
        actor: &Actor,
        a: &AccountRow,
        current: &Secret,
        new: &Secret,
        progress: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), ChangeError> {
        let t = match self {
            Target::Postgres(pg) => return pg.change(&a.username, current, new).await,
            Target::Mysql(my) => return my.change(&a.username, current, new).await,
            Target::Terminal(t) => t,
        };
        if t.method == "ssh_key" {
            let public = keys::public_line(new, None).map_err(ChangeError::untouched)?;
            let passphrase = passphrase_of(app, a).map_err(ChangeError::untouched)?;
            return t
                .key_script(
                    app,
                    actor,
                    a,
                    (current, passphrase),
                    scripts::install_key(&public),
                    progress,
                )
                .await
                .map_err(|e| format!("{} could not install its new key: {e}", a.username).into());
        }
        let script = t
            .script
            .as_ref()
            .ok_or_else(|| ChangeError::untouched("the rotation method has no script"))?;
        // The account's name is typed at a shell (`chpasswd` reads `name:password`): a name
        // the shell or chpasswd would misread changes nothing (a `root:x` would be root's).
        gateway::shell::check_username(&a.username).map_err(ChangeError::untouched)?;
        // Who logs in: the privileged account for sudo (and for a script, when one is set);
        // the account itself otherwise (passwd, or a script without one).
        let as_privileged = t.method == "sudo" || (t.method == "script" && t.privileged.is_some());
        let (login_account, login_secret) = match (&t.privileged, as_privileged) {
            (Some((pa, ps)), true) => (pa, ps),
            (None, true) => {
                return Err(ChangeError::untouched(
                    "the rotation method needs a privileged account",
                ))
            }
            (_, false) => (a, current),
        };
        // Secrets are typed at this account's shell: nobody may hold a session as it
        // without seeing its password.
        let holders = guard::connect_holders(app, &login_account.id, &t.resource.id)
            .await
            .map_err(|_| ChangeError::untouched("the gateway's database is unavailable"))?;
        if !holders.is_empty() {
            return Err(ChangeError::untouched(guard::shell_not_private(
                &login_account.username,
                &holders,
            )));
        }
        let mut term = t
            .open(app, actor, login_account, login_secret, None)
            .await
            .map_err(|e| {
                ChangeError::untouched(format!(
                    "{} could not log in to change the password ({e})",
                    login_account.username
                ))
            })?;
        let privileged = t.privileged.as_ref().map(|(_, s)| s);
        let c = Credentials {
            username: &login_account.username,
            password: login_secret,
            enable_secret: None,
            rotation: Some(RotationCredentials {
                account: &a.username,
                current,
                new,
                privileged,
            }),
        };
        let mut mask = vec![current, new, login_secret];
        mask.extend(privileged);
        let script = compile(script.clone()).map_err(ChangeError::untouched)?;
        let done = term.run_script(script, &c, &mask, progress).await;
        term.close().await;
        done.map_err(ChangeError::from)
    }

    /// Logs in as `a` with `secret` (and leaves).
    async fn login(
        &self,
        app: &App,
        actor: &Actor,
        a: &AccountRow,
        secret: &Secret,
        passphrase: Option<Secret>,
    ) -> Result<(), LoginError> {
        match self {
            Target::Postgres(pg) => pg.login(&a.username, secret).await,
            Target::Mysql(my) => my.login(&a.username, secret).await,
            Target::Terminal(t) => {
                t.open(app, actor, a, secret, passphrase)
                    .await?
                    .close()
                    .await;
                Ok(())
            }
        }
    }

    /// What is left after the new secret works: an SSH key account's old key is removed
    /// from `authorized_keys` (logged in with the new key).
    async fn finish(
        &self,
        app: &App,
        actor: &Actor,
        a: &AccountRow,
        old: &Secret,
        new: &Secret,
        progress: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), String> {
        let Target::Terminal(t) = self else {
            return Ok(());
        };
        if t.method != "ssh_key" {
            return Ok(());
        }
        let old_body = keys::public_body(old, passphrase_of(app, a)?.as_ref())?;
        let new_body = keys::public_body(new, None)?;
        if old_body == new_body {
            return Ok(());
        }
        t.key_script(
            app,
            actor,
            a,
            (new, None),
            scripts::remove_key(&old_body),
            progress,
        )
        .await
        .map_err(|e| format!("the old key could not be removed: {e}"))
    }
}

impl TerminalTarget {
    /// Logs in as the key account itself with `key` (and its passphrase) and runs `script`.
    async fn key_script(
        &self,
        app: &App,
        actor: &Actor,
        a: &AccountRow,
        key: (&Secret, Option<Secret>),
        script: LogonScript,
        progress: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), String> {
        let (pem, passphrase) = key;
        let mut term = self
            .open(app, actor, a, pem, passphrase)
            .await
            .map_err(|e| format!("the login failed ({e})"))?;
        let c = Credentials {
            username: &a.username,
            password: pem,
            enable_secret: None,
            rotation: None,
        };
        let done = term.run_script(compile(script)?, &c, &[], progress).await;
        term.close().await;
        done
    }

    async fn open(
        &self,
        app: &App,
        actor: &Actor,
        a: &AccountRow,
        secret: &Secret,
        passphrase: Option<Secret>,
    ) -> Result<terminal::Terminal, LoginError> {
        terminal::Terminal::open(
            app,
            actor,
            &self.resource,
            terminal::Login {
                account: a,
                secret: secret.duplicate(),
                passphrase,
            },
        )
        .await
    }
}

fn compile(s: LogonScript) -> Result<gateway::telnet::logon::CompiledScript, String> {
    s.compile_rotation()
        .map_err(|e| format!("the rotation script is invalid ({e}); an administrator must fix it"))
}

fn passphrase_of(app: &App, a: &AccountRow) -> Result<Option<Secret>, String> {
    accounts::open_passphrase(app, a)
        .map_err(|_| "the account's key passphrase could not be opened".to_string())
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

fn pending_context(account_id: &str) -> String {
    format!("pending_secrets/{account_id}/secret")
}

/// A pending secret the account will not take: kept in the password history as discarded
/// (with `why`), never deleted, since a target behind a VIP or one that caches credentials
/// may hold it after all.
async fn discard_pending(app: &App, account_id: &str, why: &str) -> ApiResult<()> {
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
async fn commit(
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
enum Settled {
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
fn backoff_ms(attempts: i64) -> i64 {
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
async fn record_settled(
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
async fn settle(
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

async fn try_settle(
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
