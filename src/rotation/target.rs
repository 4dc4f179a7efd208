//! Why: what a job logs in to and changes, built from the resource's rotation settings: a
//! database (PostgreSQL, MariaDB) or a terminal reached like a session (SSH or Telnet,
//! through its landing servers), with the errors a job reports.

use super::*;

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
pub(super) enum Target {
    Postgres(postgres::PgTarget),
    Mysql(mysql::MyTarget),
    /// A shell (SSH, or Telnet), reached over the resource's path like a session.
    Terminal(Box<TerminalTarget>),
}

pub(super) struct TerminalTarget {
    resource: ResourceRow,
    /// The method (`scripts::METHODS`), or "ssh_key" for key accounts.
    method: String,
    /// The password-changing script (None for key accounts: `scripts::install_key`).
    script: Option<LogonScript>,
    /// The resource's privileged account and its password.
    privileged: Option<(AccountRow, Secret)>,
}

/// The actor a rotation's own connections are audited as (host-key pins, failures).
pub(super) fn rotation_actor(requested_by: &str) -> Actor {
    Actor {
        id: "system".into(),
        name: format!("rotation (for {requested_by})"),
        addr: "local".into(),
    }
}

/// Where `a`'s secret is changed and how: SSH-key accounts by installing a new key over
/// SSH; password accounts by the resource's rotation method.
pub(super) async fn target_for(
    app: &App,
    a: &AccountRow,
    r: &ResourceRow,
) -> Result<Target, String> {
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
pub(super) async fn new_secret(
    app: &App,
    a: &AccountRow,
    r: &ResourceRow,
) -> Result<Secret, String> {
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
pub(super) fn progress_writer(
    app: &App,
    id: &str,
    prefix: &'static str,
) -> impl FnMut(String) + Send {
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
    pub(super) async fn change(
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
    pub(super) async fn login(
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
    pub(super) async fn finish(
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

pub(super) fn compile(s: LogonScript) -> Result<gateway::telnet::logon::CompiledScript, String> {
    s.compile_rotation()
        .map_err(|e| format!("the rotation script is invalid ({e}); an administrator must fix it"))
}

pub(super) fn passphrase_of(app: &App, a: &AccountRow) -> Result<Option<Secret>, String> {
    accounts::open_passphrase(app, a)
        .map_err(|_| "the account's key passphrase could not be opened".to_string())
}
