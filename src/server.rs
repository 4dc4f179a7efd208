//! Why: start-up in one readable sequence: configuration -> data directory -> database and
//! migrations -> vault keys (refusing a wrong or missing key, never re-initialising data) ->
//! audit chain -> built-in policies -> bootstrap administrator -> HTTPS. The CLI commands that
//! need the vault (`cli/`) open it through the same `open_app`.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::app::App;
use crate::audit::{self, Actor, Audit, Event, Outcome};
use crate::config::Config;
use crate::db::{self, Database};
use crate::keys::{self, KeyError, OpenOutcome};
use crate::throttle::LoginLimiter;
use crate::vault::policy::Policy;

pub struct Opened {
    pub app: App,
    pub key_outcome: OpenOutcome,
}

/// Opens everything the server needs. `progress` receives human-readable steps.
pub async fn open_app(cfg: Config, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Opened> {
    if cfg.strict && cfg.master_key_inside_data_dir() {
        return Err(KeyError::InsideDataDir {
            key: cfg.master_key_file.clone(),
            data_dir: cfg.data_dir.clone(),
        }
        .into());
    }
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data directory {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    let db = Database::open(&cfg.database_url).await?;
    let (crypto, master, key_outcome) =
        keys::open(&db.pool, &cfg.master_key_file, progress).await?;
    progress(&format!(
        "vault opened with master key {} ({})",
        master.id,
        cfg.master_key_file.display()
    ));
    let syslog = cfg.syslog.clone().map(audit::syslog::Forwarder::start);
    let audit = Audit::new(db.clone(), *crypto.audit_key(), syslog);
    audit.init().await?;
    seed_policies(&db).await?;
    let recordings = crate::recordings::Recordings::open(&db, &crypto, &cfg.data_dir).await?;
    let rotation = crate::rotation::Engine::new(cfg.rotation_concurrency, cfg.rotation_per_target);
    let broker = Arc::new(gateway::broker::Broker::default());
    let core = crate::core::Core {
        db,
        crypto: Arc::new(crypto),
        audit,
        config: Arc::new(cfg),
        limiter: Arc::new(LoginLimiter::new(30)),
        access: Default::default(),
    };
    // The launcher re-checks live sessions whenever the vault says access changed.
    core.access
        .watch(Arc::new(crate::sessions::EndSessionsWithoutAccess(
            broker.clone(),
        )));
    let app = App {
        core,
        broker,
        desk: Arc::new(crate::sessions::SessionDesk::default()),
        revocations: Arc::new(crate::revocation::Revocations::default()),
        recordings: Arc::new(recordings),
        rotation: Arc::new(rotation),
    };
    Ok(Opened { app, key_outcome })
}

async fn seed_policies(db: &Database) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    for p in Policy::builtins() {
        let exists: Option<(String,)> =
            sqlx::query_as("SELECT id FROM password_policies WHERE id = $1")
                .bind(&p.id)
                .fetch_optional(tx.conn())
                .await?;
        if exists.is_none() {
            sqlx::query(crate::db::sql(format!("INSERT INTO password_policies ({}) VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)", crate::vault::policy::COLUMNS)))
                .bind(&p.id)
                .bind(&p.name)
                .bind(p.min_length)
                .bind(p.max_length)
                .bind(p.min_lower)
                .bind(p.min_upper)
                .bind(p.min_digits)
                .bind(p.min_special)
                .bind(&p.special_chars)
                .bind(p.start_with_letter)
                .bind(p.history_depth)
                .bind(p.max_age_days)
                .bind(db::now_ms())
                .execute(tx.conn())
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Audits a configuration that differs from the one the server last started with.
async fn audit_config_change(app: &App) -> anyhow::Result<()> {
    let now = crate::config::summary(&app.config);
    let prev: Option<(String,)> =
        sqlx::query_as("SELECT value FROM settings WHERE key = 'last_config'")
            .fetch_optional(&app.db.pool)
            .await?;
    let prev: Value = prev
        .and_then(|(v,)| serde_json::from_str(&v).ok())
        .unwrap_or(Value::Null);
    if prev == now {
        return Ok(());
    }
    let changed: Vec<String> = match (&prev, &now) {
        (Value::Object(a), Value::Object(b)) => b
            .keys()
            .filter(|k| a.get(*k) != b.get(*k))
            .cloned()
            .collect(),
        _ => vec!["(first start)".into()],
    };
    let mut tx = app.db.begin_write().await?;
    sqlx::query("DELETE FROM settings WHERE key = 'last_config'")
        .execute(tx.conn())
        .await?;
    sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES ('last_config', $1, $2)")
        .bind(now.to_string())
        .bind(db::now_ms())
        .execute(tx.conn())
        .await?;
    app.audit
        .append_in(
            &mut tx,
            Event {
                actor: &Actor::system(),
                action: "config.change",
                outcome: Outcome::Ok,
                object_kind: "config",
                object_id: "",
                object_name: "",
                detail: json!({ "changed": changed, "from": prev, "to": now }),
            },
        )
        .await?;
    tx.commit().await?;
    Ok(())
}

/// `portcullis serve`.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let tls = crate::tls::ensure(&cfg)?;
    let mut progress = |m: &str| tracing::info!("{m}");
    let Opened { app, key_outcome } = open_app(cfg, &mut progress).await?;
    match key_outcome {
        OpenOutcome::Initialised {
            generated_key: true,
        } => {
            tracing::warn!(path = %app.config.master_key_file.display(), "generated a new master key; back it up and keep it apart from the data directory")
        }
        OpenOutcome::RotationCompleted => {
            app.audit
                .append(Event {
                    actor: &Actor::system(),
                    action: "key.rotate.resume",
                    outcome: Outcome::Ok,
                    object_kind: "key",
                    object_id: "",
                    object_name: "",
                    detail: json!({}),
                })
                .await?;
        }
        _ => {}
    }
    audit_config_change(&app).await?;
    let interrupted = crate::recordings::recover_interrupted(&app).await?;
    if interrupted > 0 {
        tracing::warn!(
            count = interrupted,
            "recordings cut off by the last stop are marked incomplete"
        );
    }
    let stopped = crate::sessions::recover_stopped(&app).await?;
    if stopped > 0 {
        tracing::warn!(
            count = stopped,
            "sessions cut off by the last stop: their end is audited"
        );
    }
    crate::recordings::spawn_retention(app.clone());
    // Pending secrets a stop left behind are settled before anything else may rotate.
    crate::rotation::start(&app).await?;
    crate::vault::data_keys::resume(&app, app.recordings.store.clone()).await?;
    if let Some(pw) = crate::identity::users::bootstrap_admin(&app)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
    {
        // Printed once, to the console only (not through the logger): the operator's first login.
        eprintln!("\n================================================================");
        eprintln!(" First start: created user `admin` with one-time password:");
        eprintln!("     {pw}");
        eprintln!(" Log in and choose a new password. This is shown only once.");
        eprintln!("================================================================\n");
    }
    if tls.generated {
        tracing::info!(cert = %tls.cert.display(), "generated a self-signed TLS certificate");
    }
    app.audit
        .append(Event {
            actor: &Actor::system(),
            action: "server.start",
            outcome: Outcome::Ok,
            object_kind: "server",
            object_id: "",
            object_name: "",
            detail: json!({ "version": env!("CARGO_PKG_VERSION") }),
        })
        .await?;

    let rustls_cfg = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load TLS certificate/key ({} / {}): {e}",
                tls.cert.display(),
                tls.key.display()
            )
        })?;
    let listener = std::net::TcpListener::bind(app.config.listen).map_err(|e| {
        anyhow::anyhow!(
            "invalid setting `listen`: cannot listen on {}: {e}",
            app.config.listen
        )
    })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to find the port when listen uses port 0.
    tracing::info!("listening on https://{addr}");
    println!("portcullis listening on https://{addr}");
    let handle = axum_server::Handle::new();
    let h2 = handle.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        h2.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });
    let janitor = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            if let Err(e) = crate::identity::sessions::purge_idle(&janitor).await {
                tracing::warn!(error = %e, "could not purge idle web sessions");
            }
        }
    });
    let router = crate::api::router(app.clone());
    // TCP_NODELAY on every accepted connection: keystrokes are tiny writes, and Nagle's
    // algorithm with delayed ACKs would hold some of them for ~40 ms.
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls_cfg)
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .handle(handle)
        .serve(router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await?;
    Ok(())
}
