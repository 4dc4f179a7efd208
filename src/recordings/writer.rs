//! Why: the recorder task. It subscribes to a live session's lossless tap, turns events
//! into the recording's, seals chunks every second (the open chunk's tail too, for crash
//! safety), keeps hidden input sealed apart, raises the redaction alert, and closes the
//! recording with its signed manifest; a storage failure follows the configured policy.

use super::*;

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

pub(super) async fn update_row(
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
