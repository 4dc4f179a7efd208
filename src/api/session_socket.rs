//! Why: the session WebSocket on the same HTTPS port, opened with a ticket from `sessions`.
//! It carries terminal bytes and desktop frames as binary messages and a small typed control
//! vocabulary as text (`wire`, docs/websocket-protocol.md), for the owner, observers and
//! peers alike, and keeps a slow browser's desktop frames in step (`FrameWindow`).

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::wire::{frame_message, ClientMsg, Role, ServerMsg};
use super::AnyAuth;
use crate::app::App;
use crate::error::ApiError;
use crate::sessions::{self, TicketFor};
use gateway::broker::{Delivery, LiveSession, Presence, Subscription};
use gateway::event::{ClientInput, Lifecycle, Protocol, SessionEvent};
use gateway::frame_window::{DrawingStats, FrameWindow};
#[derive(Deserialize)]
pub struct WsQuery {
    ticket: String,
}

/// `GET /api/v1/sessions/ws?ticket=...`: the session WebSocket.
pub async fn socket(
    State(app): State<App>,
    a: AnyAuth,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if origin != format!("https://{host}") {
        return ApiError::forbidden("Cross-origin WebSocket refused.").into_response();
    }
    let web = match super::sessions::web_login(&a) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let Some(ticket) = app.desk.take(&q.ticket) else {
        return ApiError::forbidden(
            "The launch ticket is unknown, used or expired. Open the session again.",
        )
        .into_response();
    };
    if ticket.user_id != a.principal.user_id || ticket.web_session_id != web {
        return ApiError::forbidden("This launch ticket belongs to another login.").into_response();
    }
    // Browsers send keystrokes and small control messages: a 16 KiB read buffer (instead of
    // axum's 128 KiB default) keeps idle sessions small. A browser message is at most 1 MiB
    // and a frame 256 KiB (a paste is sent in pieces); more closes the socket with 1009 and
    // the limit named (`closed_for`).
    ws.read_buffer_size(16 * 1024)
        .max_message_size(MAX_BROWSER_MESSAGE)
        .max_frame_size(MAX_BROWSER_FRAME)
        .on_upgrade(move |socket| serve_socket(app, a, web, ticket.purpose, socket))
}

/// The largest message and frame a browser may send.
pub const MAX_BROWSER_MESSAGE: usize = 1 << 20;
pub const MAX_BROWSER_FRAME: usize = 256 << 10;

/// Closes a socket whose read failed, saying why when it was a message over the limits
/// (1009, "message too big"); other failures close it silently (the peer is gone).
async fn closed_for(ws: &mut WebSocket, e: &axum::Error) {
    let why = e.to_string();
    if why.contains("too long") || why.contains("Space limit") || why.contains("too big") {
        let frame = axum::extract::ws::CloseFrame {
            code: axum::extract::ws::close_code::SIZE,
            reason: "a message over 1 MiB (or a frame over 256 KiB) was refused".into(),
        };
        let _ = ws.send(Message::Close(Some(frame))).await;
    }
}

async fn send(ws: &mut WebSocket, m: &ServerMsg<'_>) -> bool {
    ws.send(Message::Text(m.text().into())).await.is_ok()
}

/// `exit` with the reason the browser shows.
async fn send_exit(ws: &mut WebSocket, reason: &str) -> bool {
    send(
        ws,
        &ServerMsg::Exit {
            reason,
            exit_status: None,
        },
    )
    .await
}

enum PurposeKind {
    Join,
    Other,
}

async fn serve_socket(app: App, a: AnyAuth, web: String, purpose: TicketFor, mut ws: WebSocket) {
    let purpose_kind = if matches!(purpose, TicketFor::Join { .. }) {
        PurposeKind::Join
    } else {
        PurposeKind::Other
    };
    let session = match purpose {
        TicketFor::NewSession {
            account_id,
            protocol,
            cols,
            rows,
        } => {
            let _ = send(&mut ws, &ServerMsg::lifecycle(&Lifecycle::Connecting)).await;
            match sessions::launch(&app, &a.principal, &web, &account_id, protocol, cols, rows)
                .await
            {
                Ok(s) => s,
                Err(f) => {
                    let failed = ServerMsg::Error {
                        kind: f.kind,
                        message: &f.message,
                    };
                    let _ = send(&mut ws, &failed).await;
                    let _ = ws.send(Message::Close(None)).await;
                    return;
                }
            }
        }
        TicketFor::Watch { session_id } | TicketFor::Join { session_id } => {
            match app.broker.get(&session_id) {
                Some(s) => {
                    let role = if matches!(purpose_kind, PurposeKind::Join) {
                        Role::Peer
                    } else {
                        Role::Observer
                    };
                    let name = if role == Role::Peer {
                        "peer"
                    } else {
                        "observer"
                    };
                    // Subscribed before joining, so a revocation from here on is heard.
                    let mut revocations = app.revocations.subscribe();
                    let presence = s.join(&a.principal.username, name, crate::db::now_ms());
                    let guest = Guest {
                        user_id: &a.principal.user_id,
                        revocations: &mut revocations,
                    };
                    pump(
                        &a.principal.username,
                        role,
                        true,
                        &s,
                        &presence,
                        Some(guest),
                        &mut ws,
                    )
                    .await;
                    let _ = ws.send(Message::Close(None)).await;
                    drop(presence);
                    audit_leave(&app, &a.principal, &s, name).await;
                    return;
                }
                None => {
                    let _ = send_exit(&mut ws, "The session has already ended.").await;
                    let _ = ws.send(Message::Close(None)).await;
                    return;
                }
            }
        }
        TicketFor::Attach { session_id } => match app.broker.get(&session_id) {
            Some(s) => s,
            None => {
                let _ = send_exit(&mut ws, "The session has already ended.").await;
                let _ = ws.send(Message::Close(None)).await;
                return;
            }
        },
    };
    {
        let presence = session.join(&a.principal.username, "owner", crate::db::now_ms());
        let notify = app.config.notify_owner_of_observers;
        pump(
            &a.principal.username,
            Role::Owner,
            notify,
            &session,
            &presence,
            None,
            &mut ws,
        )
        .await;
    }
    let _ = ws.send(Message::Close(None)).await;
    // If the browser went away but the session lives on, give it the grace period to come
    // back (reload, network drop), then end it.
    if session
        .lifecycle()
        .is_some_and(|l| matches!(l, Lifecycle::Connected | Lifecycle::Connecting))
    {
        let grace = app.config.session_reattach_grace;
        let id = session.id();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if session.attached() == 0 {
                let reason = format!(
                    "The browser did not come back within {} s; the session was ended.",
                    grace.as_secs()
                );
                let _ = session.send_input(ClientInput::Terminate { reason }).await;
                tracing::info!(session = %id, "ended a session left without its browser");
            }
        });
    }
}

/// Audits an observer or peer leaving a session (joining was audited with its ticket).
async fn audit_leave(app: &App, p: &crate::identity::Principal, session: &LiveSession, role: &str) {
    let info = session.info();
    let left = async {
        let mut tx = app.db.begin_write().await?;
        crate::audited::audit(
            app,
            &mut tx,
            p,
            "session.leave",
            &info.id,
            &super::sessions::session_name(&info),
            json!({ "role": role }),
        )
        .await?;
        tx.commit().await?;
        Ok::<(), ApiError>(())
    };
    if left.await.is_err() {
        tracing::error!(session = %info.id, "could not audit a participant leaving");
    }
}

/// Who is in the session now, and who has the keyboard.
async fn send_participants(ws: &mut WebSocket, session: &LiveSession) -> bool {
    let (participants, control) = (session.participants(), session.control());
    send(
        ws,
        &ServerMsg::Participants {
            participants: &participants,
            control: &control,
        },
    )
    .await
}

/// An observer or peer: who, and where revoked access is announced. Their socket closes
/// when their access is revoked (the owner's closes when the session it owns is ended).
struct Guest<'a> {
    user_id: &'a str,
    revocations: &'a mut tokio::sync::broadcast::Receiver<crate::revocation::Revoked>,
}

/// Moves events to the browser and (for the owner) input to the session until either side
/// ends. `show_participants`: send who is in the session whenever it changes. `presence`
/// lists how this browser keeps up with a desktop's frames.
async fn pump(
    username: &str,
    role: Role,
    show_participants: bool,
    session: &std::sync::Arc<LiveSession>,
    presence: &Presence,
    mut guest: Option<Guest<'_>>,
    ws: &mut WebSocket,
) {
    let _guard = (role == Role::Owner).then(|| session.attach());
    let (snapshot, mut sub) = session.subscribe();
    let info = session.info();
    let hello = ServerMsg::Session {
        id: &info.id,
        account: &info.account_name,
        resource: &info.resource_name,
        protocol: info.protocol,
        path: &info.path,
        started_at_ms: info.started_at_ms,
        recorded: info.recording_id.is_some(),
        owner: &info.owner_name,
        you: username,
        control: &info.control,
        role,
    };
    if !send(ws, &hello).await {
        return;
    }
    if let Some(l) = session.lifecycle() {
        if !send(ws, &ServerMsg::lifecycle(&l)).await {
            return;
        }
    }
    if !send_snapshot(ws, snapshot).await {
        return;
    }
    let desktop = info.protocol == Protocol::Rdp;
    // A desktop's frames in flight to this browser (a slow browser is sent fewer, newer
    // pictures; `gateway::frame_window`).
    let mut window = FrameWindow::default();
    let mut reported = DrawingStats::default();
    if desktop {
        window.sent(std::time::Instant::now(), None);
        report_drawing(presence, &window, &mut reported);
    }
    if show_participants && !send_participants(ws, session).await {
        return;
    }
    let mut last_notice: Option<std::time::Instant> = None;
    loop {
        let access_revoked = async {
            match guest.as_mut() {
                Some(g) => crate::revocation::revoked(g.revocations, g.user_id).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            reason = access_revoked => {
                let _ = send_exit(ws, &reason).await;
                return;
            }
            d = sub.next() => {
                let participants = show_participants.then_some(&**session);
                if desktop {
                    if !deliver_desktop(ws, &mut sub, d, participants, &mut window).await { return; }
                    report_drawing(presence, &window, &mut reported);
                    continue;
                }
                // Observers do not need per-keystroke latency: their output is gathered for a
                // few milliseconds, so the typist's own echo goes out first and fifty watchers
                // cost a few frames instead of one per key. The wait is drawn at random for
                // each frame: with one fixed wait, every observer of a session wakes at the
                // same instant (they all got the same output) and the typist's next echo
                // queues behind fifty sends; spread out, it meets one or two at most.
                let gather = (role == Role::Observer).then(observer_gather);
                if !deliver(ws, &mut sub, d, participants, gather).await { return; }
            }
            m = ws.recv() => {
                // Text is parsed once; every desktop viewer says how many frames it has drawn.
                let msg = match &m {
                    Some(Ok(Message::Text(t))) => ClientMsg::parse(t.as_str()),
                    _ => None,
                };
                let drawn = match &msg {
                    Some(ClientMsg::Drawn { frames }) if desktop => Some(*frames),
                    _ => None,
                };
                if let Some(frames) = drawn {
                    window.drawn(frames, std::time::Instant::now());
                    if window.behind() && window.may_send() {
                        let participants = show_participants.then_some(&**session);
                        if !catch_up(ws, &mut sub, participants, &mut window).await { return; }
                    }
                    report_drawing(presence, &window, &mut reported);
                    continue;
                }
                match m {
                    // An observer's keys and resizes go nowhere.
                    Some(Ok(Message::Binary(_) | Message::Text(_))) if role == Role::Observer => {}
                    Some(Ok(Message::Binary(b))) => {
                        if !session.may_type(username) {
                            // Said once per second at most, however fast the keys come.
                            if last_notice.is_none_or(|t: std::time::Instant| t.elapsed() > std::time::Duration::from_secs(1)) {
                                last_notice = Some(std::time::Instant::now());
                                let holder = session.control().holder;
                                let notice = ServerMsg::Notice { message: format!("{holder} has the keyboard; your keys are not sent.") };
                                if !send(ws, &notice).await { return; }
                            }
                            continue;
                        }
                        if session.type_input(username, b.to_vec()).await.is_err() { return; }
                    }
                    // Only the owner's browser sets the terminal size (a desktop's input also
                    // travels as text: a peer with the keyboard may send it).
                    Some(Ok(Message::Text(_))) if role == Role::Peer && !desktop => {}
                    Some(Ok(Message::Text(_))) if desktop => {
                        let Some(msg) = msg else { continue };
                        // The owner's tab sizes the desktop (others' tabs scale the picture).
                        if let Some((width, height)) = msg.desktop_size() {
                            if role == Role::Owner && session.send_input(ClientInput::Resize { cols: width, rows: height }).await.is_err() { return; }
                            continue;
                        }
                        let Some((input, typed)) = msg.desktop_input() else { continue };
                        if !session.may_type(username) {
                            continue;
                        }
                        if session.desktop_input(username, input, typed).await.is_err() { return; }
                    }
                    Some(Ok(Message::Text(_))) => {
                        if let Some((cols, rows)) = msg.as_ref().and_then(ClientMsg::terminal_size) {
                            if session.send_input(ClientInput::Resize { cols, rows }).await.is_err() { return; }
                        }
                    }
                    Some(Err(e)) => { closed_for(ws, &e).await; return; }
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

/// Lists what `window` measured with the session's participants, when it changed since
/// `reported`.
fn report_drawing(presence: &Presence, window: &FrameWindow, reported: &mut DrawingStats) {
    let stats = window.stats();
    if stats != *reported {
        *reported = stats;
        presence.report_drawing(stats);
    }
}

/// Sends a desktop delivery to a browser that may draw slower than frames come: a frame
/// goes only while fewer than `FRAMES_IN_FLIGHT` are undrawn; otherwise its regions wait for
/// the catch-up (the current picture of them, once the browser has drawn enough).
async fn deliver_desktop(
    ws: &mut WebSocket,
    sub: &mut Subscription,
    d: Delivery,
    participants: Option<&LiveSession>,
    window: &mut FrameWindow,
) -> bool {
    match d {
        Delivery::Event(SessionEvent::Frame(rects, since))
            if window.behind() || !window.may_send() =>
        {
            window.skip(&rects, since);
            !window.may_send() || catch_up(ws, sub, participants, window).await
        }
        d => deliver_counted(ws, sub, d, participants, window).await,
    }
}

/// Sends a desktop delivery, counting the binary frames among what goes.
async fn deliver_counted(
    ws: &mut WebSocket,
    sub: &mut Subscription,
    d: Delivery,
    participants: Option<&LiveSession>,
    window: &mut FrameWindow,
) -> bool {
    let binary = matches!(
        d,
        Delivery::Event(SessionEvent::Frame(..)) | Delivery::Resync(_)
    );
    // A snapshot's age is not known: it is the picture as it is, however it came.
    let since = match &d {
        Delivery::Event(SessionEvent::Frame(_, since)) => *since,
        _ => None,
    };
    match &d {
        Delivery::Resync(_) => window.resynchronised(),
        Delivery::Event(SessionEvent::Resize { .. }) => window.resized(),
        _ => {}
    }
    if !deliver(ws, sub, d, participants, None).await {
        return false;
    }
    if binary {
        window.sent(std::time::Instant::now(), since);
    }
    true
}

/// Sends a browser that held frames back what it missed: the events that are not frames,
/// then the current picture of every region the held-back frames changed.
async fn catch_up(
    ws: &mut WebSocket,
    sub: &mut Subscription,
    participants: Option<&LiveSession>,
    window: &mut FrameWindow,
) -> bool {
    for d in sub.catch_up(window) {
        if !deliver_counted(ws, sub, d, participants, window).await {
            return false;
        }
    }
    true
}

/// How long an observer's output is gathered before it is sent: 16 ms on average (a frame at
/// 60 Hz; at most 24 ms behind the typist, below what a watcher notices), spread evenly from
/// 8 to 24 ms.
fn observer_gather() -> std::time::Duration {
    use rand::Rng;
    std::time::Duration::from_micros(rand::thread_rng().gen_range(8_000..24_000))
}

/// Largest WebSocket frame built from output that was already waiting.
const MAX_FRAME: usize = 64 * 1024;

/// Sends one delivery to the browser; `false` when the socket or the session is gone.
/// Output that is already waiting behind it goes out in the same frame.
/// A marker (someone joined or left, a termination) is sent as text, followed by the
/// participant list when `participants` is given.
async fn deliver(
    ws: &mut WebSocket,
    sub: &mut Subscription,
    first: Delivery,
    participants: Option<&LiveSession>,
    gather: Option<std::time::Duration>,
) -> bool {
    let mut pending = Some(first);
    while let Some(d) = pending.take() {
        let sent = match d {
            Delivery::Event(SessionEvent::Output(b)) => {
                if let Some(wait) = gather {
                    tokio::time::sleep(wait).await;
                }
                let mut frame = b.to_vec();
                while frame.len() < MAX_FRAME {
                    match sub.try_next() {
                        Some(Delivery::Event(SessionEvent::Output(more))) => {
                            frame.extend_from_slice(&more)
                        }
                        other => {
                            pending = other;
                            break;
                        }
                    }
                }
                ws.send(Message::Binary(frame.into())).await.is_ok()
            }
            Delivery::Event(SessionEvent::Cursor(c)) => send(ws, &ServerMsg::cursor(&c)).await,
            // Text copied on the desktop goes to the browsers' clipboards (the policy allowed it).
            Delivery::Event(SessionEvent::Clipboard {
                to_target: false,
                text,
            }) => send(ws, &ServerMsg::Clipboard { text: &text }).await,
            Delivery::Event(SessionEvent::Frame(rects, _)) => ws
                .send(Message::Binary(frame_message(&rects).into()))
                .await
                .is_ok(),
            Delivery::Event(SessionEvent::Resize { cols, rows }) => {
                send(ws, &ServerMsg::Resize { cols, rows }).await
            }
            Delivery::Event(SessionEvent::Lifecycle(l)) => {
                send(ws, &ServerMsg::lifecycle(&l)).await
            }
            Delivery::Event(SessionEvent::Marker(text)) => {
                send(ws, &ServerMsg::Marker { text: &text }).await
                    && match participants {
                        Some(session) => send_participants(ws, session).await,
                        None => true,
                    }
            }
            Delivery::Resync(s) => send_snapshot(ws, s).await,
            Delivery::Closed => false,
            Delivery::Event(_) => true,
        };
        if !sent {
            return false;
        }
    }
    true
}

async fn send_snapshot(ws: &mut WebSocket, s: gateway::screen::ScreenSnapshot) -> bool {
    if s.desktop {
        // The pointer shape comes with the picture, so a late viewer has it at once.
        if let Some(c) = &s.cursor {
            if !send(ws, &ServerMsg::cursor(c)).await {
                return false;
            }
        }
        let whole = gateway::event::FrameRect {
            x: 0,
            y: 0,
            width: s.cols,
            height: s.rows,
            encoding: gateway::desktop::PNG,
            data: s.data.into(),
        };
        return send(ws, &ServerMsg::desktop_snapshot(s.cols, s.rows)).await
            && ws
                .send(Message::Binary(frame_message(&[whole]).into()))
                .await
                .is_ok();
    }
    send(ws, &ServerMsg::terminal_snapshot(s.cols, s.rows)).await
        && ws.send(Message::Binary(s.data.into())).await.is_ok()
}
