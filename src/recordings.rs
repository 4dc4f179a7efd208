//! Why: where sessions become recordings. The recorder is a subscriber of the session's event
//! stream (a lossless tap, see gateway::broker), writes chained, encrypted chunks through the
//! recorder crate into the recording store, flushes at least every second, and closes the
//! recording with a manifest signed by the server's Ed25519 key. The per-recording key is
//! sealed by the vault and kept in the file header; content is never stored in clear.
//! A storage failure follows the configured policy (end the session, or continue and alert).

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

/// Where hidden input is sealed: the recording's key for it, its id and the event's time.
struct HiddenSeal<'a> {
    key: &'a HiddenInputKey,
    recording_id: &'a str,
    t_ms: u64,
}

fn to_recorded(
    ev: SessionEvent,
    record_input: bool,
    hidden: Option<HiddenSeal<'_>>,
) -> Vec<RecordedEvent> {
    match ev {
        SessionEvent::Output(b) => vec![RecordedEvent::Output(b.to_vec())],
        SessionEvent::Input {
            by,
            redacted: true,
            data,
        } => vec![RecordedEvent::RedactedInput {
            len: data.len() as u32,
            submitted: data.iter().any(|&c| c == b'\r' || c == b'\n'),
            hidden: hidden
                .map(|h| recorder::hidden::seal(h.key, h.recording_id, h.t_ms, &by, &data)),
            by,
        }],
        SessionEvent::Input { by, data, .. } if record_input => vec![RecordedEvent::Input {
            by,
            data: data.to_vec(),
        }],
        SessionEvent::Input { .. } => vec![],
        SessionEvent::Resize { cols, rows } => vec![RecordedEvent::Resize { cols, rows }],
        SessionEvent::Marker(m) => vec![RecordedEvent::Marker(m)],
        // The pointer's shape is not part of what happened.
        SessionEvent::Cursor(_) => vec![],
        // A clipboard transfer: a note in the timeline, and the text as input (so search
        // finds it), under the same rule as keystrokes.
        SessionEvent::Clipboard { to_target, text } => {
            let way = if to_target {
                "from the browser to the desktop"
            } else {
                "from the desktop to the browser"
            };
            let mut v = vec![RecordedEvent::Marker(format!(
                "Clipboard: {} characters {way}",
                text.chars().count()
            ))];
            if record_input {
                v.push(RecordedEvent::Input {
                    by: format!("clipboard, {way}"),
                    data: text.as_bytes().to_vec(),
                });
            }
            v
        }
        SessionEvent::Lifecycle(l) => {
            vec![RecordedEvent::Lifecycle(lifecycle_json(&l).to_string())]
        }
        SessionEvent::Frame(rects, _) => rects
            .iter()
            .map(|r| RecordedEvent::Frame {
                x: r.x,
                y: r.y,
                width: r.width,
                height: r.height,
                encoding: r.encoding.to_string(),
                data: r.data.to_vec(),
            })
            .collect(),
    }
}

fn lifecycle_json(l: &Lifecycle) -> serde_json::Value {
    match l {
        Lifecycle::Connecting => json!({ "state": "connecting" }),
        Lifecycle::Connected => json!({ "state": "connected" }),
        Lifecycle::Ended {
            reason,
            exit_status,
        } => json!({ "state": "ended", "reason": reason, "exit_status": exit_status }),
        Lifecycle::Failed { kind, message } => {
            json!({ "state": "failed", "kind": kind, "message": message })
        }
    }
}

/// Runs CPU-bound work of some tens of milliseconds (sealing a chunk at the strong level)
/// without stalling the other tasks of this worker thread, among them other sessions'
/// keystrokes: on the multi-threaded runtime the worker hands its tasks to another first.
fn off_the_runtime<R>(work: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// How many lines a session may hide as answers to secret prompts before it is an alert.
const HIDDEN_LINES_ALERT: u32 = 4;

/// The audit alert for a session that hid `n` lines as secret answers.
async fn alert_hidden_lines(app: &App, actor: &Actor, session: &LiveSession, id: &str, n: u32) {
    let info = session.info();
    let r = app
        .audit
        .append(Event {
            actor,
            action: "session.redaction",
            outcome: Outcome::Ok,
            object_kind: "session",
            object_id: &info.id,
            object_name: &format!("{}@{}", info.account_name, info.resource_name),
            detail: json!({ "alert": true, "hidden_lines": n, "recording_id": id, "why": "more lines were typed at what looked like password prompts than a login needs: a shell prompt made to look like one hides the commands typed at it from the recording" }),
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "could not audit hidden input");
    }
}

/// Runs the recorder of one session until the session is over.
pub fn spawn_writer(
    app: App,
    actor: Actor,
    planned: Planned,
    mut tap: Tap,
    session: Arc<LiveSession>,
) {
    tokio::spawn(async move {
        let Planned {
            id,
            mut writer,
            hidden,
        } = planned;
        let started = Instant::now();
        let store = app.recordings.store.clone();
        let record_input = app.config.record_input;
        let mut pending: Vec<u8> = Vec::new();
        let mut failure: Option<String> = None;
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut end_reason = String::from("closed");
        // Lines hidden as answers to secret prompts. A session that hides more than a few is
        // an alert: `PS1='token: '; stty -echo` makes every command look like a password.
        let mut hidden_lines = 0u32;
        loop {
            tokio::select! {
                item = tap.recv_timed() => {
                    let Some((item, at)) = item else { break };
                    let t_ms = at.saturating_duration_since(started).as_millis() as u64;
                    let events = match item {
                        TapItem::Event(ev) => {
                            if let SessionEvent::Input { redacted: true, data, .. } = &ev {
                                if data.iter().any(|&c| c == b'\r' || c == b'\n') {
                                    hidden_lines += 1;
                                    if hidden_lines == HIDDEN_LINES_ALERT {
                                        alert_hidden_lines(&app, &actor, &session, &id, hidden_lines).await;
                                    }
                                }
                            }
                            if let SessionEvent::Lifecycle(Lifecycle::Ended { reason, .. }) = &ev { end_reason = reason.clone(); }
                            if let SessionEvent::Lifecycle(Lifecycle::Failed { message, .. }) = &ev { end_reason = message.clone(); }
                            let seal = hidden.as_ref().map(|key| HiddenSeal { key, recording_id: &id, t_ms });
                            to_recorded(ev, record_input, seal)
                        }
                        TapItem::Keyframe(s) => vec![RecordedEvent::Keyframe { cols: s.cols, rows: s.rows, data: s.data }],
                        TapItem::Overflowed => {
                            failure = Some("the recorder fell too far behind the session (storage too slow)".into());
                            break;
                        }
                    };
                    for event in events {
                        match writer.push(Timed { t_ms, event }) {
                            Ok(Some(b)) => pending.extend_from_slice(&b),
                            Ok(None) => {}
                            Err(e) => { failure = Some(e.to_string()); break; }
                        }
                    }
                    if failure.is_some() { break; }
                    if pending.len() >= 4 * 1024 * 1024 {
                        if let Err(e) = append(&store, &id, std::mem::take(&mut pending)).await { failure = Some(e); break; }
                    }
                }
                _ = flush.tick() => {
                    // Every second: sealed chunks are appended, and the open chunk's events so
                    // far are stored as its tail (crash safety without a chunk per second).
                    let now_ms = started.elapsed().as_millis() as u64;
                    let tick = if writer.tick_is_heavy(now_ms) {
                        off_the_runtime(|| writer.tick(now_ms))
                    } else {
                        writer.tick(now_ms)
                    };
                    let tick = match tick {
                        Ok(t) => t,
                        Err(e) => { failure = Some(e.to_string()); break; }
                    };
                    if let Some(b) = tick.sealed { pending.extend_from_slice(&b); }
                    let sealed = !pending.is_empty();
                    if sealed {
                        if let Err(e) = append(&store, &id, std::mem::take(&mut pending)).await { failure = Some(e); break; }
                    }
                    let stored = match tick.tail {
                        Some(tail) => with_store(&store, &id, move |s, id| s.write_tail(id, &tail)).await,
                        None if sealed => with_store(&store, &id, |s, id| s.clear_tail(id)).await,
                        None => Ok(()),
                    };
                    if let Err(e) = stored { failure = Some(e); break; }
                }
            }
        }
        if let Some(why) = failure {
            recording_failed(&app, &actor, &id, &session, &why, &store).await;
            return;
        }
        let (last, manifest) = match off_the_runtime(|| writer.finish(db::now_ms(), &end_reason)) {
            Ok(x) => x,
            Err(e) => {
                recording_failed(&app, &actor, &id, &session, &e.to_string(), &store).await;
                return;
            }
        };
        if let Some(b) = last {
            pending.extend_from_slice(&b);
        }
        let signed = app.recordings.signer.sign(manifest);
        let (st, sid, duration_ms, chunks) = (
            store.clone(),
            id.clone(),
            signed.manifest.duration_ms,
            signed.manifest.chunks,
        );
        let closed = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            if !pending.is_empty() {
                st.append(&sid, &pending)?;
            }
            st.clear_tail(&sid)?;
            st.write_manifest(&sid, &signed)?;
            st.size(&sid)
        })
        .await;
        let closed = closed
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match closed {
            Ok(size) => {
                let _ = update_row(
                    &app,
                    &id,
                    "complete",
                    &end_reason,
                    duration_ms,
                    chunks,
                    size,
                )
                .await;
                if let Err(e) = index_recording(&app, &id).await {
                    tracing::error!(recording = %id, error = %e, "could not index a recording for search");
                }
            }
            Err(why) => recording_failed(&app, &actor, &id, &session, &why, &store).await,
        }
    });
}

async fn append(store: &Arc<dyn RecordingStore>, id: &str, bytes: Vec<u8>) -> Result<(), String> {
    with_store(store, id, move |s, id| s.append(id, &bytes)).await
}

/// Runs a storage call off the async workers (it syncs to disk).
async fn with_store(
    store: &Arc<dyn RecordingStore>,
    id: &str,
    call: impl FnOnce(&dyn RecordingStore, &str) -> std::io::Result<()> + Send + 'static,
) -> Result<(), String> {
    let (store, id) = (store.clone(), id.to_string());
    tokio::task::spawn_blocking(move || call(&*store, &id))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("writing the recording failed: {e}"))
}

async fn update_row(
    app: &App,
    id: &str,
    status: &str,
    reason: &str,
    duration_ms: u64,
    chunks: u64,
    size: u64,
) -> Result<(), sqlx::Error> {
    let mut tx = app.db.begin_write().await?;
    sqlx::query("UPDATE recordings SET status = $1, end_reason = $2, ended_at = $3, duration_ms = $4, chunks = $5, size_bytes = $6 WHERE id = $7")
        .bind(status)
        .bind(reason)
        .bind(db::now_ms())
        .bind(duration_ms as i64)
        .bind(chunks as i64)
        .bind(size as i64)
        .bind(id)
        .execute(tx.conn())
        .await?;
    tx.commit().await
}

/// Storage failed: mark the recording, raise an audit alert, and apply the policy.
async fn recording_failed(
    app: &App,
    actor: &Actor,
    id: &str,
    session: &Arc<LiveSession>,
    why: &str,
    store: &Arc<dyn RecordingStore>,
) {
    tracing::error!(recording = %id, error = %why, "recording failed");
    let size = store.size(id).unwrap_or(0);
    let _ = update_row(app, id, "failed", why, 0, 0, size).await;
    let info = session.info();
    let terminate = app.config.recording_failure == RecordingFailure::Terminate;
    let detail = json!({ "recording_id": id, "error": why, "alert": true, "policy": if terminate { "terminate" } else { "continue" } });
    let _ = app
        .audit
        .append(Event {
            actor,
            action: "recording.failed",
            outcome: Outcome::Failed,
            object_kind: "session",
            object_id: &info.id,
            object_name: &format!("{}@{}", info.account_name, info.resource_name),
            detail,
        })
        .await;
    if terminate {
        let _ = session
            .send_input(ClientInput::Terminate {
                reason: "The session could not be recorded (the recording store failed), and this gateway does not allow unrecorded sessions. The session was ended.".into(),
            })
            .await;
    }
}

/// After a restart: recordings still marked as being written were cut off by the stop.
/// Each becomes *incomplete* (verifiable up to its last flushed chunk) and is indexed; the
/// end of its session is audited by `sessions::recover_stopped`.
pub async fn recover_interrupted(app: &App) -> anyhow::Result<usize> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM recordings WHERE status = 'recording'")
            .fetch_all(&app.db.pool)
            .await?;
    for (id,) in &rows {
        let store = app.recordings.store.clone();
        let rid = id.clone();
        let parsed =
            tokio::task::spawn_blocking(move || store.read(&rid).map(Recording::parse)).await?;
        let (duration, chunks) = match parsed {
            Ok(Ok(r)) => (r.duration_ms(), r.chunks.len() as u64),
            _ => (0, 0),
        };
        let size = app.recordings.store.size(id).unwrap_or(0);
        update_row(
            app,
            id,
            "incomplete",
            "the gateway stopped during the session",
            duration,
            chunks,
            size,
        )
        .await?;
        if let Err(e) = index_recording(app, id).await {
            tracing::error!(recording = %id, error = %e, "could not index an incomplete recording");
        }
    }
    Ok(rows.len())
}

/// Deletes recordings that ended longer ago than the retention setting (files and rows), and
/// audits what was purged. Returns how many.
pub async fn purge_expired(app: &App) -> anyhow::Result<usize> {
    let Some(keep) = app.config.recording_retention else {
        return Ok(0);
    };
    let cutoff = db::now_ms() - keep.as_millis() as i64;
    let ids: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM recordings WHERE status <> 'recording' AND COALESCE(ended_at, started_at) < $1 ORDER BY started_at",
    )
    .bind(cutoff)
    .fetch_all(&app.db.pool)
    .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = ids.into_iter().map(|(id,)| id).collect();
    for id in &ids {
        let (store, rid) = (app.recordings.store.clone(), id.clone());
        tokio::task::spawn_blocking(move || store.delete(&rid)).await??;
    }
    let mut tx = app.db.begin_write().await?;
    for id in &ids {
        for sql in [
            "DELETE FROM recording_index WHERE recording_id = $1",
            "DELETE FROM recording_index_lines WHERE recording_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(tx.conn()).await?;
        }
        sqlx::query("DELETE FROM recordings WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        if let Ok(mut m) = app.recordings.blooms.lock() {
            m.remove(id);
        }
    }
    app.audit
        .append_in(
            &mut tx,
            Event {
                actor: &Actor::system(),
                action: "recording.purge",
                outcome: Outcome::Ok,
                object_kind: "recording",
                object_id: "",
                object_name: "",
                detail: json!({ "count": ids.len(), "recording_ids": ids, "retention_s": keep.as_secs() }),
            },
        )
        .await?;
    tx.commit().await?;
    Ok(ids.len())
}

/// Runs `purge_expired` now and then periodically (a quarter of the retention, between one
/// second and one hour).
pub fn spawn_retention(app: App) {
    let Some(keep) = app.config.recording_retention else {
        return;
    };
    let every = (keep / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match purge_expired(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "purged recordings past their retention"),
                Err(e) => tracing::error!(error = %e, "purging expired recordings failed"),
            }
        }
    });
}

/// The vault context of segment `seq` of a recording's index lines. Segment 0 keeps the
/// context of the single sealed blob it replaced (migration 0013), so indexes built before
/// segments still open.
fn lines_context(recording_id: &str, seq: i64) -> String {
    match seq {
        0 => format!("recordings/{recording_id}/lines"),
        n => format!("recordings/{recording_id}/lines/{n}"),
    }
}

/// A segment's lines, unpacked, are at most this large (a segment closes at about 1 MiB of
/// text; this bounds what a corrupt or hostile row can make the server allocate).
const MAX_SEGMENT_JSON: usize = 64 * 1024 * 1024;

/// Builds the search index of a closed (or cut-off) recording: its Bloom filter of keyed word
/// hashes, and its lines in segments sealed by the vault. Replaces any earlier index of it.
/// The recording is read on a blocking thread one chunk at a time and each segment is stored
/// as soon as it is full, so memory stays near one segment whatever the recording's length (a
/// session that printed a gigabyte used to cost gigabytes here). The filter row goes in last:
/// until it exists, search passes the recording by. Returns the number of lines.
pub async fn index_recording(app: &App, id: &str) -> anyhow::Result<u64> {
    use base64::Engine;
    use std::ops::ControlFlow;
    let mut tx = app.db.begin_write().await?;
    for sql in [
        "DELETE FROM recording_index WHERE recording_id = $1",
        "DELETE FROM recording_index_lines WHERE recording_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(tx.conn()).await?;
    }
    tx.commit().await?;
    if let Ok(mut m) = app.recordings.blooms.lock() {
        m.remove(id);
    }

    let (segments_tx, mut segments) = tokio::sync::mpsc::channel::<(i64, String)>(2);
    let (store, rid, crypto) = (
        app.recordings.store.clone(),
        id.to_string(),
        app.crypto.clone(),
    );
    let search_key = app.recordings.search_key.clone();
    let stored_key = Recordings::stored_key(app, id).await?;
    let worker = tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<u8>, u64)> {
        let rec = Recording::parse(store.read(&rid)?)?;
        let wrapped = stored_key.unwrap_or_else(|| rec.header.wrapped_key.clone());
        let key = Recordings::open_key(&crypto, &rid, &wrapped).map_err(|e| anyhow::anyhow!(e))?;
        let mut indexer = recorder::search::Indexer::new(&search_key);
        let mut next_seq = 0i64;
        let mut failed: Option<anyhow::Error> = None;
        let mut store_segment = |lines: Vec<recorder::search::Line>| -> anyhow::Result<()> {
            let packed = zstd::bulk::compress(&serde_json::to_vec(&lines)?, 3)?;
            let sealed = crypto.seal(&lines_context(&rid, next_seq), &packed);
            segments_tx
                .blocking_send((next_seq, sealed))
                .map_err(|_| anyhow::anyhow!("the index writer stopped"))?;
            next_seq += 1;
            Ok(())
        };
        // An incomplete recording may end in a chunk that does not decrypt: index what does.
        rec.for_each_readable_chunk(&key, |events| {
            for e in &events {
                if let Some(full) = indexer.feed(e) {
                    if let Err(e) = store_segment(full) {
                        failed = Some(e);
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let (bloom, last, count) = indexer.finish();
        if !last.is_empty() {
            store_segment(last)?;
        }
        Ok((bloom.0, count))
    });
    while let Some((seq, sealed)) = segments.recv().await {
        let mut tx = app.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO recording_index_lines (recording_id, seq, sealed_lines) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(seq)
        .bind(sealed)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
    }
    let (bloom, count) = worker.await??;
    let mut tx = app.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO recording_index (recording_id, bloom, line_count) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(base64::engine::general_purpose::STANDARD.encode(&bloom))
    .bind(count as i64)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(count)
}

/// One search hit: where in which recording the text appeared (or was typed).
#[derive(serde::Serialize)]
pub struct Hit {
    pub recording_id: String,
    pub t_ms: u64,
    pub line: String,
    pub typed: bool,
}

/// Searches the recordings among `visible` (ids) for `query`: Bloom filters first (no
/// decryption), then the lines of the candidates. At most `per_recording` hits each and
/// `limit` in all, newest recordings first.
pub async fn search(
    app: &App,
    visible: &[String],
    query: &str,
    per_recording: usize,
    limit: usize,
) -> anyhow::Result<Vec<Hit>> {
    use base64::Engine;
    use recorder::search::Match;
    let q = recorder::search::Query::new(query);
    let words = recorder::search::words(query);
    let hashes: Vec<[u8; 32]> = words
        .iter()
        .map(|w| recorder::search::term_hash(&app.recordings.search_key, w))
        .collect();
    let mut hits = Vec::new();
    for id in visible {
        let cached = app
            .recordings
            .blooms
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned());
        let bloom = match cached {
            Some(b) => b,
            None => {
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT bloom FROM recording_index WHERE recording_id = $1")
                        .bind(id)
                        .fetch_optional(&app.db.pool)
                        .await?;
                let Some((b64,)) = row else { continue };
                let b = Arc::new(recorder::search::Bloom(
                    base64::engine::general_purpose::STANDARD.decode(b64)?,
                ));
                if let Ok(mut m) = app.recordings.blooms.lock() {
                    // 16 KiB each: beyond 4,096 filters (64 MiB) start over rather than grow.
                    if m.len() >= MAX_CACHED_FILTERS {
                        m.clear();
                    }
                    m.insert(id.clone(), b.clone());
                }
                b
            }
        };
        if !bloom.may_contain_all(&hashes) {
            continue;
        }
        // The candidate's lines, one segment at a time: phrase matches rank first, so the
        // segments are read until enough of those are found (or all are read).
        let seqs: Vec<(i64,)> = sqlx::query_as(
            "SELECT seq FROM recording_index_lines WHERE recording_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&app.db.pool)
        .await?;
        let (mut phrase, mut all_words) = (Vec::new(), Vec::new());
        for (seq,) in seqs {
            if phrase.len() >= per_recording {
                break;
            }
            let (sealed,): (String,) = sqlx::query_as(
                "SELECT sealed_lines FROM recording_index_lines WHERE recording_id = $1 AND seq = $2",
            )
            .bind(id)
            .bind(seq)
            .fetch_one(&app.db.pool)
            .await?;
            let packed = app
                .crypto
                .open(&lines_context(id, seq), &sealed)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let lines: Vec<recorder::search::Line> = serde_json::from_slice(
                &zstd::bulk::decompress(packed.expose(), MAX_SEGMENT_JSON)?,
            )?;
            for l in lines {
                match q.matches(&l) {
                    Some(Match::Phrase) if phrase.len() < per_recording => phrase.push(l),
                    Some(Match::Words) if all_words.len() < per_recording => all_words.push(l),
                    _ => {}
                }
            }
        }
        for l in phrase.into_iter().chain(all_words).take(per_recording) {
            hits.push(Hit {
                recording_id: id.clone(),
                t_ms: l.t_ms,
                line: l.text,
                typed: l.typed,
            });
        }
        if hits.len() >= limit {
            hits.truncate(limit);
            break;
        }
    }
    Ok(hits)
}
