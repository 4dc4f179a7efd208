//! Why: the auditor's side of recordings over HTTP: find them, check them, play them, export
//! them. Administrators and auditors see every recording; everyone else sees only their own
//! sessions. Playback and export are audited. Decryption happens here, in the server, under
//! the vault's key; the browser gets the terminal stream, never a key.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use recorder::{RecordedEvent, Recording};
use serde::Deserialize;
use serde_json::{json, Value};

use super::Auth;
use crate::app::App;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::identity::Principal;
use crate::recordings::Recordings;

#[derive(sqlx::FromRow, serde::Serialize)]
pub struct RecordingRow {
    pub id: String,
    pub session_id: String,
    pub user_id: String,
    pub user_name: String,
    pub account_id: String,
    pub account_name: String,
    pub resource_id: String,
    pub resource_name: String,
    pub protocol: String,
    pub client_addr: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub duration_ms: i64,
    pub status: String,
    pub end_reason: Option<String>,
    pub size_bytes: i64,
    pub chunks: i64,
    pub path: String,
}

const COLUMNS: &str = "id, session_id, user_id, user_name, account_id, account_name, resource_id, resource_name, protocol, client_addr, started_at, ended_at, duration_ms, status, end_reason, size_bytes, chunks, path";

/// The recording exists but cannot be used (file missing, damaged, key unavailable).
fn unusable(message: String) -> ApiError {
    ApiError::Conflict {
        field: None,
        message,
    }
}

fn sees_all(p: &Principal) -> bool {
    p.role.can_manage_users() || p.role.can_read_audit()
}

fn row_json(r: &RecordingRow) -> Value {
    json!({
        "id": r.id, "session_id": r.session_id, "user": r.user_name, "user_id": r.user_id,
        "account": r.account_name, "account_id": r.account_id, "resource": r.resource_name,
        "resource_id": r.resource_id, "protocol": r.protocol, "client_addr": r.client_addr,
        "started_at": db::rfc3339(r.started_at), "ended_at": r.ended_at.map(db::rfc3339),
        "duration_ms": r.duration_ms, "status": r.status, "end_reason": r.end_reason,
        "size_bytes": r.size_bytes, "chunks": r.chunks,
        "path": if r.path.is_empty() { Vec::new() } else { r.path.split(" -> ").collect::<Vec<_>>() },
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    user: Option<String>,
    resource: Option<String>,
    protocol: Option<String>,
    from: Option<String>,
    to: Option<String>,
    min_duration_s: Option<i64>,
    limit: Option<i64>,
}

/// `GET /api/v1/recordings`: newest first, filtered.
pub async fn list(
    State(app): State<App>,
    Auth(p): Auth,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::invalid(format!("Bad query: {e}")))?;
    let (from, to) = (
        super::time_param("from", &q.from)?,
        super::time_param("to", &q.to)?,
    );
    let mut sql = format!("SELECT {COLUMNS} FROM recordings WHERE 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    let mut add = |cond: &str, v: String| {
        binds.push(v);
        sql.push_str(&format!(" AND {cond} ${}", binds.len()));
    };
    if !sees_all(&p) {
        add("user_id =", p.user_id.clone());
    }
    let like = |s: &str| format!("%{}%", s.to_lowercase());
    if let Some(u) = q.user.as_deref().filter(|s| !s.is_empty()) {
        add("LOWER(user_name) LIKE", like(u));
    }
    if let Some(r) = q.resource.as_deref().filter(|s| !s.is_empty()) {
        add("LOWER(resource_name) LIKE", like(r));
    }
    if let Some(pr) = q.protocol.as_deref().filter(|s| !s.is_empty()) {
        add("protocol =", pr.to_string());
    }
    let mut nums: Vec<i64> = Vec::new();
    let mut num = |sql: &mut String, cond: &str, v: i64, offset: usize| {
        nums.push(v);
        sql.push_str(&format!(" AND {cond} ${}", offset + nums.len()));
    };
    let n = binds.len();
    if let Some(f) = from {
        num(&mut sql, "started_at >=", f, n);
    }
    if let Some(t) = to {
        num(&mut sql, "started_at <=", t, n);
    }
    if let Some(d) = q.min_duration_s {
        num(&mut sql, "duration_ms >=", d.saturating_mul(1000), n);
    }
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    sql.push_str(&format!(" ORDER BY started_at DESC LIMIT {limit}"));
    let mut query = sqlx::query_as::<_, RecordingRow>(db::sql(sql));
    for b in &binds {
        query = query.bind(b);
    }
    for v in &nums {
        query = query.bind(v);
    }
    let rows = query.fetch_all(&app.db.pool).await?;
    Ok(Json(json!(rows.iter().map(row_json).collect::<Vec<_>>())))
}

/// The row, if `p` may see it (404 otherwise, so ids of others' recordings are not confirmed).
async fn visible(app: &App, p: &Principal, id: &str) -> ApiResult<RecordingRow> {
    let row: Option<RecordingRow> = sqlx::query_as(db::sql(format!(
        "SELECT {COLUMNS} FROM recordings WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&app.db.pool)
    .await?;
    match row {
        Some(r) if sees_all(p) || r.user_id == p.user_id => Ok(r),
        _ => Err(ApiError::not_found("Recording")),
    }
}

/// Reads and parses the recording file, and unwraps its key.
async fn open(app: &App, id: &str) -> ApiResult<(Recording, recorder::RecordingKey)> {
    let store = app.recordings.store.clone();
    let rid = id.to_string();
    let bytes = tokio::task::spawn_blocking(move || store.read(&rid))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?
        .map_err(|e| unusable(format!("The recording file cannot be read: {e}")))?;
    let rec = Recording::parse(bytes)
        .map_err(|e| unusable(format!("The recording file is damaged: {e}")))?;
    let key = Recordings::key_of(app, &rec.header)
        .await
        .map_err(unusable)?;
    Ok((rec, key))
}

async fn audit_access(
    app: &App,
    p: &Principal,
    action: &str,
    r: &RecordingRow,
    detail: Value,
) -> ApiResult<()> {
    let mut tx = app.db.begin_write().await?;
    crate::audited::audit(
        app,
        &mut tx,
        p,
        action,
        &r.id,
        &format!("{}@{} by {}", r.account_name, r.resource_name, r.user_name),
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `GET /api/v1/recordings/{id}`: metadata, verification, the seek index and the commands.
pub async fn detail(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = visible(&app, &p, &id).await?;
    let mut out = row_json(&row);
    match open(&app, &id).await {
        Ok((rec, key)) => {
            // The typed commands are the recording's content: seeing them is audited like
            // a playback.
            audit_access(
                &app,
                &p,
                "recording.detail",
                &row,
                json!({ "format": "commands" }),
            )
            .await?;
            // Verifying and listing the commands decrypt every chunk: CPU work, kept off the
            // async workers, and done one chunk at a time (memory is one chunk, not the
            // whole session's output).
            let (store, rid, public_key) = (
                app.recordings.store.clone(),
                id.clone(),
                app.recordings.public_key.clone(),
            );
            let (rec, report, commands, keyframes) = tokio::task::spawn_blocking(move || {
                let manifest = store.read_manifest(&rid).ok().flatten();
                let report = rec.verify(Some(&key), manifest.as_ref(), Some(&public_key));
                let (mut typed, mut commands, mut keyframes) = (
                    recorder::export::TypedCommands::default(),
                    Vec::new(),
                    Vec::new(),
                );
                rec.for_each_readable_chunk(&key, |events| {
                    for e in &events {
                        typed.feed(e, &mut commands);
                        if let RecordedEvent::Keyframe { .. } = e.event {
                            keyframes.push(e.t_ms);
                        }
                    }
                    std::ops::ControlFlow::Continue(())
                });
                (rec, report, commands, keyframes)
            })
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
            let commands: Vec<Value> = commands
                .into_iter()
                .map(|(t, c)| json!({ "t_ms": t, "command": c }))
                .collect();
            out["verification"] = json!(report);
            out["keyframes_ms"] = json!(keyframes);
            out["commands"] = json!(commands);
            out["cols"] = json!(rec.header.cols);
            out["rows"] = json!(rec.header.rows);
            out["input_recorded"] = json!(rec.header.input_recorded);
        }
        Err(ApiError::Conflict { message, .. }) => {
            out["verification"] = json!({ "problem": message });
        }
        Err(e) => return Err(e),
    }
    Ok(Json(out))
}

/// Recordings larger than this (stored bytes, compressed) are not decrypted for the browser.
const MAX_PLAYABLE_BYTES: i64 = 64 * 1024 * 1024;

/// Everything is decrypted into memory for one response (player, export, hidden input):
/// keep that bounded. (Typical interactive hours are ~100 KiB; a multi-hundred-megabyte
/// `cat` is not for the browser.)
fn readable_at_once(row: &RecordingRow) -> ApiResult<()> {
    if row.size_bytes > MAX_PLAYABLE_BYTES {
        return Err(unusable(format!(
            "This recording is {} MiB, more than the {} MiB read at once. Use the signed bundle.",
            row.size_bytes / (1024 * 1024),
            MAX_PLAYABLE_BYTES / (1024 * 1024)
        )));
    }
    Ok(())
}

/// Decrypts every event of a visible recording, auditing the access.
async fn events_for(
    app: &App,
    p: &Principal,
    id: &str,
    action: &str,
    format: &str,
) -> ApiResult<(Recording, Vec<recorder::Timed>)> {
    let row = visible(app, p, id).await?;
    readable_at_once(&row)?;
    let (rec, key) = open(app, id).await?;
    let events = rec
        .events(&key)
        .map_err(|e| unusable(format!("The recording cannot be read: {e}")))?;
    audit_access(app, p, action, &row, json!({ "format": format })).await?;
    Ok((rec, events))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HiddenInputRequest {
    reason: String,
}

/// `POST /api/v1/recordings/{id}/hidden-input`: what was typed at secret prompts, line by
/// line. It may hold passwords (that is why it was hidden), so it is treated like a reveal:
/// a super administrator, a reason, and an audit alert written before the reply.
pub async fn hidden_input(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    crate::api::Body(input): crate::api::Body<HiddenInputRequest>,
) -> ApiResult<Json<Value>> {
    if !p.super_admin {
        return Err(crate::audited::denied(
            &app,
            &p,
            "recording.hidden_input",
            "recording",
            &id,
            "",
            ApiError::forbidden(
                "Only a super administrator opens what was typed at secret prompts.",
            ),
        )
        .await);
    }
    let reason = input.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::field(
            "reason",
            "say why, in 1 to 500 characters (it is kept in the audit log)",
        ));
    }
    let row = visible(&app, &p, &id).await?;
    readable_at_once(&row)?;
    let stored: Option<(Option<String>,)> =
        sqlx::query_as("SELECT hidden_key FROM recording_keys WHERE recording_id = $1")
            .bind(&id)
            .fetch_optional(&app.db.pool)
            .await?;
    let Some(sealed_key) = stored.and_then(|(k,)| k) else {
        return Err(unusable(
            "This recording keeps no hidden input: input recording was off, or it was made before hidden input was kept.".into(),
        ));
    };
    let key = app
        .crypto
        .open(&format!("recordings/{id}/hidden-key"), &sealed_key)
        .map_err(|e| unusable(format!("The hidden-input key cannot be opened: {e}")))
        .and_then(|k| {
            recorder::hidden::HiddenInputKey::from_slice(k.expose())
                .map_err(|e| unusable(e.to_string()))
        })?;
    let (rec, rec_key) = open(&app, &id).await?;
    let events = rec
        .events(&rec_key)
        .map_err(|e| unusable(format!("The recording cannot be read: {e}")))?;
    let lines = hidden_lines(&key, &id, &events)?;
    audit_access(
        &app,
        &p,
        "recording.hidden_input",
        &row,
        json!({ "alert": "hidden input of a recording was opened", "reason": reason, "lines": lines.len() }),
    )
    .await?;
    Ok(Json(json!({ "recording_id": id, "lines": lines })))
}

/// Joins the hidden keystrokes into lines (per typist, ended by Enter), each with the time
/// its first keystroke was typed.
fn hidden_lines(
    key: &recorder::hidden::HiddenInputKey,
    recording_id: &str,
    events: &[recorder::Timed],
) -> ApiResult<Vec<Value>> {
    let mut open_lines: std::collections::HashMap<String, (u64, Vec<u8>)> = Default::default();
    let mut out = Vec::new();
    for e in events {
        let RecordedEvent::RedactedInput {
            by,
            hidden: Some(sealed),
            submitted,
            ..
        } = &e.event
        else {
            continue;
        };
        let data =
            recorder::hidden::open(key, recording_id, e.t_ms, by, sealed).map_err(|err| {
                unusable(format!(
                    "A hidden input at {} ms does not open: {err}",
                    e.t_ms
                ))
            })?;
        let line = open_lines.entry(by.clone()).or_insert((e.t_ms, Vec::new()));
        line.1.extend_from_slice(&data);
        if *submitted {
            if let Some((t, bytes)) = open_lines.remove(by) {
                out.push(hidden_line(t, by, &bytes, true));
            }
        }
    }
    for (by, (t, bytes)) in open_lines {
        out.push(hidden_line(t, &by, &bytes, false));
    }
    out.sort_by_key(|v| v["t_ms"].as_u64());
    Ok(out)
}

fn hidden_line(t_ms: u64, by: &str, bytes: &[u8], submitted: bool) -> Value {
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect();
    json!({ "t_ms": t_ms, "by": by, "text": text, "submitted": submitted })
}

/// `GET /api/v1/recordings/{id}/events`: what the player plays (audited as a playback).
/// Each event is `[t_ms, kind, ...]`: `o` output (base64), `k` keyframe (base64, cols,
/// rows), `r` resize ("COLSxROWS"), `i` typed text, `s` a redacted secret (length), `m` a
/// marker, `l` a lifecycle change (JSON text), `f` a desktop rectangle (x, y, width,
/// height, a PNG or JPEG as base64, told apart by its signature), `c` a desktop region
/// copied within the picture, a scroll (x, y, width, height of the destination, then the
/// source's x and y). For a desktop (`"desktop": true`) a keyframe is a PNG of the whole
/// desktop and the sizes are in pixels.
pub async fn events(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let (rec, events) = events_for(&app, &p, &id, "recording.play", "events").await?;
    let list: Vec<Value> = events
        .iter()
        .map(|e| {
            let t = e.t_ms;
            match &e.event {
                RecordedEvent::Output(b) => json!([t, "o", b64(b)]),
                RecordedEvent::Keyframe { cols, rows, data } => {
                    json!([t, "k", b64(data), cols, rows])
                }
                RecordedEvent::Resize { cols, rows } => json!([t, "r", format!("{cols}x{rows}")]),
                RecordedEvent::Input { by, data } => {
                    json!([t, "i", String::from_utf8_lossy(data), by])
                }
                RecordedEvent::RedactedInput { by, len, .. } => json!([t, "s", len, by]),
                RecordedEvent::Marker(m) => json!([t, "m", m]),
                RecordedEvent::Lifecycle(l) => json!([t, "l", l]),
                RecordedEvent::Frame {
                    x,
                    y,
                    width,
                    height,
                    encoding,
                    data,
                } if encoding == gateway::desktop::COPY && data.len() == 4 => json!([
                    t,
                    "c",
                    x,
                    y,
                    width,
                    height,
                    u16::from_be_bytes([data[0], data[1]]),
                    u16::from_be_bytes([data[2], data[3]])
                ]),
                RecordedEvent::Frame {
                    x,
                    y,
                    width,
                    height,
                    data,
                    ..
                } => json!([t, "f", x, y, width, height, b64(data)]),
            }
        })
        .collect();
    Ok(Json(
        json!({ "cols": rec.header.cols, "rows": rec.header.rows, "desktop": rec.header.protocol == "rdp", "duration_ms": rec.duration_ms(), "events": list }),
    ))
}

/// `GET /api/v1/recordings/{id}/cast`: the recording as an asciicast v2 download (audited
/// as an export).
pub async fn cast(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let row = visible(&app, &p, &id).await?;
    if row.protocol == "rdp" {
        return Err(unusable(
            "A desktop (RDP) recording has no asciicast form: replay it here or download the signed bundle.".to_string(),
        ));
    }
    let (rec, events) = events_for(&app, &p, &id, "recording.export", "asciicast").await?;
    let body = recorder::export::asciicast(&rec.header, &events);
    let mut resp = ([(header::CONTENT_TYPE, "application/x-asciicast")], body).into_response();
    if let Ok(v) = format!("attachment; filename=\"recording-{id}.cast\"").parse() {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `GET /api/v1/recordings/{id}/bundle`: the signed bundle (recording file, manifest and the
/// server's public key) for offline verification with `portcullis recording verify`.
pub async fn bundle(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    use base64::Engine;
    let row = visible(&app, &p, &id).await?;
    let store = app.recordings.store.clone();
    let rid = id.clone();
    let (mut reader, manifest) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        Ok((store.reader(&rid)?, store.read_manifest(&rid)?))
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?
    .map_err(|e| unusable(format!("The recording cannot be read: {e}")))?;
    audit_access(
        &app,
        &p,
        "recording.export",
        &row,
        json!({ "format": "bundle" }),
    )
    .await?;
    // The bundle is written as it is read: the JSON around the recording, and the recording
    // in base64 pieces of 48 KiB (a multiple of 3 bytes, so the pieces join into one valid
    // base64 string). Memory stays a few pieces, however long the recording.
    let head = b"{\"format\":\"portcullis-recording-bundle/1\",\"recording\":\"".to_vec();
    let tail = format!(
        "\",\"manifest\":{},\"public_key\":{}}}",
        serde_json::to_string(&manifest).unwrap_or_else(|_| "null".into()),
        serde_json::to_string(&app.recordings.public_key).unwrap_or_else(|_| "null".into())
    )
    .into_bytes();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<axum::body::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        if tx.blocking_send(Ok(head.into())).is_err() {
            return;
        }
        let mut buf = vec![0u8; 48 * 1024];
        loop {
            let mut filled = 0;
            // Fill the piece completely (a short read would break the 3-byte alignment).
            while filled < buf.len() {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if filled == 0 {
                break;
            }
            let piece = base64::engine::general_purpose::STANDARD.encode(&buf[..filled]);
            if tx.blocking_send(Ok(piece.into_bytes().into())).is_err() {
                return;
            }
            if filled < buf.len() {
                break;
            }
        }
        let _ = tx.blocking_send(Ok(tail.into()));
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    let mut resp = Response::new(axum::body::Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = format!("attachment; filename=\"recording-{id}.bundle.json\"").parse() {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `GET /api/v1/recordings/signing-key`: the public key that signs recording manifests.
pub async fn signing_key(State(app): State<App>, Auth(_p): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "algorithm": "ed25519", "public_key": app.recordings.public_key }),
    ))
}

/// `GET /api/v1/resources/{id}/recording`: the resource's recording mode and what it means now.
pub async fn resource_mode(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    // Visible to whoever can see the resource (get_for refuses the others).
    let (r, _) = crate::vault::resources::get_for(&app, &p, &id).await?;
    let mode = crate::recordings::resource_mode(&app, &r.id).await?;
    let effective = match mode.as_str() {
        "always" => true,
        "never" => false,
        _ => app.config.record_terminal_sessions,
    };
    Ok(Json(
        json!({ "mode": mode, "recorded": effective, "global": app.config.record_terminal_sessions }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeInput {
    mode: String,
}

/// `PUT /api/v1/resources/{id}/recording`: `default`, `always` or `never`. Administrators
/// only (it decides whether privileged work is recorded), audited.
pub async fn set_resource_mode(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    super::Body(input): super::Body<ModeInput>,
) -> ApiResult<Json<Value>> {
    crate::audited::require_admin(
        &app,
        &p,
        "recording.policy",
        "resource",
        &id,
        "Only administrators decide which resources are recorded.",
    )
    .await?;
    if !["default", "always", "never"].contains(&input.mode.as_str()) {
        return Err(ApiError::field("mode", "must be default, always or never"));
    }
    let r = crate::vault::resources::get(&app, &id).await?;
    let mut tx = app.db.begin_write().await?;
    sqlx::query("DELETE FROM resource_recording WHERE resource_id = $1")
        .bind(&r.id)
        .execute(tx.conn())
        .await?;
    if input.mode != "default" {
        sqlx::query("INSERT INTO resource_recording (resource_id, mode, updated_by, updated_at) VALUES ($1, $2, $3, $4)")
            .bind(&r.id)
            .bind(&input.mode)
            .bind(&p.username)
            .bind(db::now_ms())
            .execute(tx.conn())
            .await?;
    }
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "recording.policy",
        &r.id,
        &r.name,
        json!({ "mode": input.mode }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "mode": input.mode })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/recordings/search?q=...`: text that appeared on screen or was typed, across
/// every recording the caller may see. Hits are (recording, time, line); audited.
pub async fn search(
    State(app): State<App>,
    Auth(p): Auth,
    q: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::invalid(format!("Bad query: {e}")))?;
    let text = q.q.unwrap_or_default().trim().to_string();
    if recorder::search::words(&text).is_empty() || text.len() > 200 {
        return Err(ApiError::field(
            "q",
            "give one to a few words to search for (2 characters or more each, 200 at most in all)",
        ));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let rows: Vec<RecordingRow> = if sees_all(&p) {
        sqlx::query_as(db::sql(format!(
            "SELECT {COLUMNS} FROM recordings ORDER BY started_at DESC"
        )))
        .fetch_all(&app.db.pool)
        .await?
    } else {
        sqlx::query_as(db::sql(format!(
            "SELECT {COLUMNS} FROM recordings WHERE user_id = $1 ORDER BY started_at DESC"
        )))
        .bind(&p.user_id)
        .fetch_all(&app.db.pool)
        .await?
    };
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let hits = crate::recordings::search(&app, &ids, &text, 20, limit)
        .await
        .map_err(ApiError::Internal)?;
    let by_id: std::collections::HashMap<&str, &RecordingRow> =
        rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let out: Vec<Value> = hits
        .iter()
        .filter_map(|h| {
            let r = by_id.get(h.recording_id.as_str())?;
            Some(json!({ "recording_id": h.recording_id, "t_ms": h.t_ms, "line": h.line, "typed": h.typed, "user": r.user_name, "account": r.account_name, "resource": r.resource_name, "started_at": db::rfc3339(r.started_at) }))
        })
        .collect();
    let mut tx = app.db.begin_write().await?;
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "recording.search",
        "",
        "",
        // The words searched for can be a secret someone remembers: a stand-in is kept.
        json!({ "query": app.audit.pseudonym(&text), "hits": out.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!(out)))
}
