//! Why: where sessions become recordings. The recorder is a subscriber of the session's event
//! stream (a lossless tap, see gateway::broker), writes chained, encrypted chunks through the
//! recorder crate into the recording store, flushes at least every second, and closes the
//! recording with a manifest signed by the server's Ed25519 key. The per-recording key is
//! sealed by the vault (in `recording_keys`, and in the file header of the day); content is
//! never stored in clear. A storage failure follows the configured policy (end the session,
//! or continue and alert).
//!
//! Here: the service (store, signing key, search key) and planning a recording; `writer`
//! (the recorder task), `recovery` (what a stop cut off), `retention` (the purge) and
//! `search` (the index and its queries).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::broker::{LiveSession, SessionInfo, Tap, TapItem};
use gateway::event::{ClientInput, Lifecycle, SessionEvent};
use recorder::event::{RecordedEvent, Timed};
use recorder::hidden::HiddenInputKey;
use recorder::storage::{LocalDirStore, RecordingStore};
use recorder::{Recording, RecordingHeader, RecordingKey, RecordingWriter, SigningKey};
use serde_json::json;

use crate::app::App;
use crate::audit::{Actor, Event, Outcome};
use crate::config::RecordingFailure;
use crate::db;

mod recovery;
mod retention;
mod search;
mod writer;

pub use recovery::recover_interrupted;
pub use retention::{purge_expired, spawn_retention};
pub use search::{index_recording, search, Hit};
pub use writer::spawn_writer;

/// Search filters kept in memory (16 KiB each).
const MAX_CACHED_FILTERS: usize = 4096;

/// How often buffered events are sealed and synced to storage.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The recording store and the server's manifest signing key.
pub struct Recordings {
    pub store: Arc<dyn RecordingStore>,
    signer: SigningKey,
    pub public_key: String,
    /// HMAC key of the search index (never leaves the server).
    search_key: zeroize::Zeroizing<[u8; 32]>,
    /// Decoded Bloom filters by recording id (they never change once written).
    blooms: std::sync::Mutex<std::collections::HashMap<String, Arc<recorder::search::Bloom>>>,
}

fn key_context(recording_id: &str) -> String {
    format!("recordings/{recording_id}/key")
}

/// Loads the newest key kept for `purpose` (sealed by the vault), or creates and stores one.
/// Returns the raw key bytes (32).
async fn load_or_create_key(
    db: &db::Database,
    crypto: &crate::keys::Crypto,
    purpose: &str,
    create: impl FnOnce() -> ([u8; 32], String),
) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT id, sealed_private FROM signing_keys WHERE purpose = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(purpose)
    .fetch_optional(&db.pool)
    .await?;
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    match row {
        Some((id, sealed)) => {
            let raw = crypto
                .open(&format!("signing_keys/{id}"), &sealed)
                .map_err(|e| anyhow::anyhow!("cannot open the {purpose} key: {e}"))?;
            if raw.expose().len() != 32 {
                anyhow::bail!("the stored {purpose} key has the wrong length");
            }
            out.copy_from_slice(raw.expose());
        }
        None => {
            let (key, public) = create();
            let id = db::new_id();
            let sealed = crypto.seal(&format!("signing_keys/{id}"), &key);
            let mut tx = db.begin_write().await?;
            sqlx::query("INSERT INTO signing_keys (id, purpose, public_key, sealed_private, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&id)
                .bind(purpose)
                .bind(public)
                .bind(sealed)
                .bind(db::now_ms())
                .execute(tx.conn())
                .await?;
            tx.commit().await?;
            out.copy_from_slice(&key);
        }
    }
    Ok(out)
}

impl Recordings {
    /// A copy of the recording signing key for one recording's writer (which signs each
    /// chunk it seals).
    fn chunk_signer(&self) -> anyhow::Result<SigningKey> {
        let bytes = zeroize::Zeroizing::new(self.signer.expose());
        SigningKey::from_bytes(&bytes[..]).map_err(|e| anyhow::anyhow!("the signing key: {e}"))
    }

    /// Opens the store under `data_dir/recordings` and loads (or, the first time, creates)
    /// the manifest signing key and the search-index key, both sealed by the vault.
    pub async fn open(
        db: &db::Database,
        crypto: &crate::keys::Crypto,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Recordings> {
        let store = LocalDirStore::new(data_dir.join("recordings"))
            .map_err(|e| anyhow::anyhow!("cannot create the recordings directory: {e}"))?;
        let signing = load_or_create_key(db, crypto, "recordings", || {
            let k = SigningKey::generate();
            (k.expose(), k.public_key_b64())
        })
        .await?;
        let signer = SigningKey::from_bytes(&signing[..])?;
        let search_key = load_or_create_key(db, crypto, "search-index", || {
            let mut k = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
            (k, String::new())
        })
        .await?;
        Ok(Recordings {
            store: Arc::new(store),
            public_key: signer.public_key_b64(),
            signer,
            search_key,
            blooms: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The key of a recording, unwrapped by the vault from the file header.
    /// The recording's key: the database's copy (`recording_keys`, which a data-key rotation
    /// re-encrypts), else the file header's (recordings made before that table).
    pub async fn key_of(app: &App, header: &RecordingHeader) -> Result<RecordingKey, String> {
        let wrapped = Self::stored_key(app, &header.recording_id)
            .await
            .map_err(|e| format!("the recording key cannot be read: {e}"))?
            .unwrap_or_else(|| header.wrapped_key.clone());
        Self::open_key(&app.crypto, &header.recording_id, &wrapped)
    }

    /// The database's copy of a recording's sealed key, if it has one.
    pub async fn stored_key(app: &App, recording_id: &str) -> Result<Option<String>, sqlx::Error> {
        let stored: Option<(String,)> =
            sqlx::query_as("SELECT wrapped_key FROM recording_keys WHERE recording_id = $1")
                .bind(recording_id)
                .fetch_optional(&app.db.pool)
                .await?;
        Ok(stored.map(|(w,)| w))
    }

    pub fn open_key(
        crypto: &crate::keys::Crypto,
        recording_id: &str,
        wrapped: &str,
    ) -> Result<RecordingKey, String> {
        let raw = crypto
            .open(&key_context(recording_id), wrapped)
            .map_err(|e| format!("the recording key cannot be opened: {e}"))?;
        RecordingKey::from_slice(raw.expose()).map_err(|e| e.to_string())
    }
}

/// A recording about to start: its writer and id, and the key that seals what is typed at
/// secret prompts (None when input is not recorded).
pub struct Planned {
    pub id: String,
    writer: RecordingWriter,
    hidden: Option<HiddenInputKey>,
}

fn hidden_key_context(recording_id: &str) -> String {
    format!("recordings/{recording_id}/hidden-key")
}

/// Creates the recording for a session that is about to start, or `Ok(None)` when the
/// settings say not to record. `Err`: the recording cannot be created (the caller applies
/// the failure policy).
pub async fn plan(
    app: &App,
    info: &SessionInfo,
    cols: u16,
    rows: u16,
) -> Result<Option<Planned>, String> {
    let mode = resource_mode(app, &info.resource_id)
        .await
        .map_err(|e| format!("the recording setting cannot be read: {e}"))?;
    let record = match mode.as_str() {
        "always" => true,
        "never" => false,
        _ => app.config.record_terminal_sessions,
    };
    if !record {
        return Ok(None);
    }
    let id = db::new_id();
    let key = RecordingKey::generate();
    let header = RecordingHeader {
        format_version: recorder::FORMAT_VERSION,
        recording_id: id.clone(),
        session_id: info.id.clone(),
        protocol: format!("{:?}", info.protocol).to_lowercase(),
        started_at_ms: info.started_at_ms,
        cols,
        rows,
        user: info.owner_name.clone(),
        account: info.account_name.clone(),
        resource: info.resource_name.clone(),
        client_addr: info.client_addr.clone(),
        input_recorded: app.config.record_input,
        path: info.path.clone(),
        wrapped_key: app.crypto.seal(&key_context(&id), key.expose()),
        signing_key: None,
    };
    // Every sealed chunk is signed with the server's recording key, so each can be checked
    // offline even if the manifest is removed (docs/recording-format.md, format 6).
    let (writer, header_bytes) = RecordingWriter::new_signed(
        &header,
        key,
        app.recordings.chunk_signer().map_err(|e| e.to_string())?,
    );
    let store = app.recordings.store.clone();
    let sid = id.clone();
    tokio::task::spawn_blocking(move || store.create(&sid, &header_bytes))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the recording store refused a new recording: {e}"))?;
    let mut tx = app.db.begin_write().await.map_err(|e| e.to_string())?;
    sqlx::query("INSERT INTO recordings (id, session_id, user_id, user_name, account_id, account_name, resource_id, resource_name, protocol, client_addr, started_at, status, path) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'recording', $12)")
        .bind(&id)
        .bind(&info.id)
        .bind(&info.owner_id)
        .bind(&info.owner_name)
        .bind(&info.account_id)
        .bind(&info.account_name)
        .bind(&info.resource_id)
        .bind(&info.resource_name)
        .bind(&header.protocol)
        .bind(&info.client_addr)
        .bind(info.started_at_ms)
        .bind(info.path.join(" -> "))
        .execute(tx.conn())
        .await
        .map_err(|e| e.to_string())?;
    let hidden = app.config.record_input.then(HiddenInputKey::generate);
    sqlx::query(
        "INSERT INTO recording_keys (recording_id, wrapped_key, hidden_key) VALUES ($1, $2, $3)",
    )
    .bind(&id)
    .bind(&header.wrapped_key)
    .bind(
        hidden
            .as_ref()
            .map(|k| app.crypto.seal(&hidden_key_context(&id), k.expose())),
    )
    .execute(tx.conn())
    .await
    .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(Some(Planned { id, writer, hidden }))
}

/// The resource's recording override: `always`, `never` or `default` (the global toggle).
pub async fn resource_mode(app: &App, resource_id: &str) -> Result<String, sqlx::Error> {
    let mode: Option<(String,)> =
        sqlx::query_as("SELECT mode FROM resource_recording WHERE resource_id = $1")
            .bind(resource_id)
            .fetch_optional(&app.db.pool)
            .await?;
    Ok(mode.map(|(m,)| m).unwrap_or_else(|| "default".into()))
}
