//! Why: the vault, identity and audit code is written once against `sqlx::Any`, so SQLite
//! (zero-config default) and PostgreSQL (larger deployments) run the same queries on the same
//! schema. Placeholders are `$1, $2, ...` (both drivers accept them); values are TEXT and
//! BIGINT only (see migrations/).

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub type Db = AnyPool;

/// The pool plus what the store needs to know about itself.
#[derive(Clone)]
pub struct Database {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite has one writer at a time; queueing writers here (instead of in SQLite's
    /// sleeping busy handler) keeps write latency flat under load. PostgreSQL does not use it.
    write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// A write transaction. On SQLite it holds the process-wide write lock and began with
/// `BEGIN IMMEDIATE`, so it can never fail half-way with a busy snapshot.
pub struct WriteTx {
    pub tx: sqlx::Transaction<'static, sqlx::Any>,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl WriteTx {
    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// Runs `f` only if the transaction commits (e.g. forwarding an audit event to syslog).
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(f));
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await?;
        for f in self.after_commit {
            f();
        }
        Ok(())
    }
}

impl Database {
    pub async fn open(url: &str) -> anyhow::Result<Database> {
        let pool = connect(url).await?;
        Ok(Database {
            pool,
            backend: backend_of(url),
            write_lock: Default::default(),
        })
    }

    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let guard = self.write_lock.clone().lock_owned().await;
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(WriteTx {
                    tx,
                    _guard: Some(guard),
                    after_commit: Vec::new(),
                })
            }
            Backend::Postgres => {
                let tx = self.pool.begin().await?;
                Ok(WriteTx {
                    tx,
                    _guard: None,
                    after_commit: Vec::new(),
                })
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend_of(url: &str) -> Backend {
    if url.starts_with("sqlite:") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    }
}

/// Opens the pool and applies migrations. For SQLite the file is created if missing.
pub async fn connect(url: &str) -> anyhow::Result<Db> {
    sqlx::any::install_default_drivers();
    let backend = backend_of(url);
    let url = if backend == Backend::Sqlite && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_string()
    };
    if backend == Backend::Sqlite {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .and_then(|p| p.split('?').next())
        {
            if let Some(parent) = Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent)?;
                }
            }
        }
    }
    let opts: AnyConnectOptions = url.parse()?;
    let pool = AnyPoolOptions::new()
        .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run during a write; NORMAL sync is durable across
                    // process crashes (the kill -9 case) and fast; busy_timeout absorbs
                    // write contention between pooled connections.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                }
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot open database: {}", redact_url_error(&e.to_string()))
        })?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|e| anyhow::anyhow!("cannot apply database migrations: {e}"))?;
    Ok(pool)
}

/// Error texts from drivers can echo the URL; never let a database password through.
fn redact_url_error(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(' ') {
        if !out.is_empty() {
            out.push(' ');
        }
        if let Some(at) = word.find('@') {
            if let Some(scheme) = word.find("://") {
                out.push_str(&word[..scheme + 3]);
                out.push_str("***");
                out.push_str(&word[at..]);
                continue;
            }
        }
        out.push_str(word);
    }
    out
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// RFC 3339 text for an epoch-milliseconds timestamp, as the API shows times.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub fn b(v: bool) -> i64 {
    v as i64
}

/// True when a database error is a unique-constraint violation (name already taken).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.code()
                .map(|c| c == "23505" || c == "2067" || c == "1555")
                .unwrap_or(false)
                || d.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

/// Marks SQL assembled at run time as reviewed. Every caller builds its text only from
/// compile-time constants (column lists, fixed fragments); values always go through `bind`.
pub fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        let s = redact_url_error("failed to connect postgres://bob:hunter2@127.0.0.1:5/db now");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("@127.0.0.1:5/db"));
    }

    #[test]
    fn time_round_trip() {
        let ms = 1_700_000_000_123;
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
    }
}
