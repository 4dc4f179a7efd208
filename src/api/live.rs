//! Why: the browser's way into a live session. The web app asks for a single-use launch
//! ticket (Connect access checked here), then opens the session WebSocket on the same HTTPS
//! port with it. The socket carries terminal bytes as binary frames and a small JSON control
//! vocabulary as text frames (docs/websocket-protocol.md).

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AnyAuth, Auth, Body};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::host_key_pins;
use crate::sessions::{self, TicketFor};
use gateway::broker::{Delivery, LiveSession, Presence, Subscription};
use gateway::event::{ClientInput, Lifecycle, Protocol, SessionEvent};
use gateway::frame_window::{DrawingStats, FrameWindow};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchInput {
    account_id: String,
    /// "ssh", "telnet" or "rdp"; absent: SSH if the resource has an SSH port, else Telnet,
    /// else RDP.
    #[serde(default)]
    protocol: Option<String>,
    /// The desktop size in pixels (RDP): the browser tab's.
    #[serde(default = "default_width")]
    width: u16,
    #[serde(default = "default_height")]
    height: u16,
    #[serde(default = "default_cols")]
    cols: u16,
    #[serde(default = "default_rows")]
    rows: u16,
}

fn default_cols() -> u16 {
    80
}
fn default_rows() -> u16 {
    24
}
fn default_width() -> u16 {
    1280
}
fn default_height() -> u16 {
    800
}

fn web_login(a: &AnyAuth) -> ApiResult<String> {
    match &a.session {
        Some(s) if !s.mfa_pending && a.user.must_change_password == 0 => Ok(s.id.clone()),
        Some(_) => Err(ApiError::forbidden("Finish logging in first.")),
        None => Err(ApiError::forbidden(
            "Sessions are opened from a logged-in browser, not with an API token.",
        )),
    }
}

fn ticket_reply(ticket: String) -> Json<Value> {
    Json(
        json!({ "ticket": ticket, "url": format!("/api/v1/sessions/ws?ticket={ticket}"), "expires_in_s": sessions::TICKET_TTL.as_secs() }),
    )
}

/// `POST /api/v1/sessions`: a ticket to open a new session with an account (Connect).
pub async fn launch_ticket(
    State(app): State<App>,
    a: AnyAuth,
    Body(input): Body<LaunchInput>,
) -> ApiResult<Json<Value>> {
    let web = web_login(&a)?;
    if !(2..=1000).contains(&input.cols) || !(2..=1000).contains(&input.rows) {
        return Err(ApiError::field(
            "cols",
            "the terminal size must be between 2 and 1000 columns and rows",
        ));
    }
    // Connect (or more) on the account is what a session needs; 404 if not shared.
    crate::vault::accounts::show(&app, &a.principal, &input.account_id).await?;
    let protocol = match input.protocol.as_deref() {
        None | Some("") => None,
        Some("ssh") => Some(Protocol::Ssh),
        Some("telnet") => Some(Protocol::Telnet),
        Some("rdp") => Some(Protocol::Rdp),
        Some(_) => {
            return Err(ApiError::field(
                "protocol",
                "sessions speak ssh, telnet or rdp",
            ))
        }
    };
    if protocol == Some(Protocol::Rdp)
        && (!(200..=gateway::desktop::MAX_SIDE).contains(&input.width)
            || !(200..=gateway::desktop::MAX_SIDE).contains(&input.height))
    {
        return Err(ApiError::field(
            "width",
            "the desktop size must be between 200 and 8192 pixels each way",
        ));
    }
    // A desktop's size travels in pixels where a terminal's travels in cells.
    let (cols, rows) = match protocol {
        Some(Protocol::Rdp) => (input.width, input.height),
        _ => (input.cols, input.rows),
    };
    let t = app.desk.issue(
        &a.principal.user_id,
        &web,
        TicketFor::NewSession {
            account_id: input.account_id,
            protocol,
            cols,
            rows,
        },
    );
    Ok(ticket_reply(t))
}

/// `POST /api/v1/sessions/{id}/attach`: a ticket to re-attach to one of your own sessions
/// (after a reload or a network drop).
pub async fn attach_ticket(
    State(app): State<App>,
    a: AnyAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let web = web_login(&a)?;
    match app.broker.get(&id) {
        Some(s) if s.info().owner_id == a.principal.user_id => {}
        _ => return Err(ApiError::not_found("live session")),
    }
    let t = app.desk.issue(
        &a.principal.user_id,
        &web,
        TicketFor::Attach { session_id: id },
    );
    Ok(ticket_reply(t))
}

/// `GET /api/v1/sessions`: live sessions (administrators and auditors: all; others: own).
pub async fn list(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let all = p.role.can_manage_users() || p.role.can_read_audit();
    let rows: Vec<_> = app
        .broker
        .list()
        .into_iter()
        .filter(|s| all || s.owner_id == p.user_id)
        .collect();
    Ok(Json(json!(rows)))
}

#[derive(Deserialize)]
pub struct WsQuery {
    ticket: String,
}

/// Whether `p` may watch other people's sessions: administrators, and auditors when the
/// `auditors_may_observe` setting allows. Refusals are audited.
async fn require_observer(app: &App, p: &crate::identity::Principal, id: &str) -> ApiResult<()> {
    if p.role.can_manage_users() || (p.role.can_read_audit() && app.config.auditors_may_observe) {
        return Ok(());
    }
    Err(crate::audited::denied(
        app,
        p,
        "session.watch",
        "session",
        id,
        "",
        ApiError::forbidden("Only administrators (and, if the gateway allows it, auditors) watch other people's sessions."),
    )
    .await)
}

/// `POST /api/v1/sessions/{id}/watch`: a ticket to watch a live session, read-only.
pub async fn watch_ticket(
    State(app): State<App>,
    a: AnyAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let web = web_login(&a)?;
    require_observer(&app, &a.principal, &id).await?;
    guest_ticket(
        &app,
        &a,
        web,
        "session.watch",
        TicketFor::Watch { session_id: id },
    )
    .await
}

/// "account@resource by owner": how audit records name a live session.
fn session_name(info: &gateway::broker::SessionInfo) -> String {
    format!(
        "{}@{} by {}",
        info.account_name, info.resource_name, info.owner_name
    )
}

/// Audits `action` on the live session of the ticket `purpose` (watch or join) and issues it.
async fn guest_ticket(
    app: &App,
    a: &AnyAuth,
    web: String,
    action: &str,
    purpose: TicketFor,
) -> ApiResult<Json<Value>> {
    let (TicketFor::Watch { session_id } | TicketFor::Join { session_id }) = &purpose else {
        return Err(ApiError::invalid("not a ticket to someone else's session"));
    };
    let Some(session) = app.broker.get(session_id) else {
        return Err(ApiError::not_found("live session"));
    };
    let info = session.info();
    let mut tx = app.db.begin_write().await?;
    crate::audited::audit(
        app,
        &mut tx,
        &a.principal,
        action,
        &info.id,
        &session_name(&info),
        json!({ "owner": info.owner_name }),
    )
    .await?;
    tx.commit().await?;
    Ok(ticket_reply(app.desk.issue(
        &a.principal.user_id,
        &web,
        purpose,
    )))
}

/// `POST /api/v1/sessions/{id}/join`: a ticket to join a live session as a peer: you see it
/// and type when the owner (or an administrator) gives you the keyboard. Administrators only.
pub async fn join_ticket(
    State(app): State<App>,
    a: AnyAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let web = web_login(&a)?;
    crate::audited::require_admin(
        &app,
        &a.principal,
        "session.join",
        "session",
        &id,
        "Only administrators join other people's sessions.",
    )
    .await?;
    guest_ticket(
        &app,
        &a,
        web,
        "session.join",
        TicketFor::Join { session_id: id },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlInput {
    /// Give the keyboard to this participant.
    holder: Option<String>,
    /// Let everyone who may type do so at once.
    shared: Option<bool>,
}

/// `POST /api/v1/sessions/{id}/control`: hand the keyboard over, take it back, or allow shared
/// typing. The session's owner or an administrator; audited.
pub async fn control(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<ControlInput>,
) -> ApiResult<Json<Value>> {
    let Some(session) = app.broker.get(&id) else {
        return Err(ApiError::not_found("live session"));
    };
    let info = session.info();
    if info.owner_id != p.user_id && !p.role.can_manage_users() {
        // Someone else's session is not confirmed to exist (as in the session list).
        return Err(crate::audited::denied(
            &app,
            &p,
            "session.control",
            "session",
            &id,
            "",
            ApiError::not_found("live session"),
        )
        .await);
    }
    if input.holder.is_none() && input.shared.is_none() {
        return Err(ApiError::invalid(
            "Say who gets the keyboard (holder) or whether typing is shared (shared).",
        ));
    }
    if let Some(h) = &input.holder {
        let typists = info
            .participants
            .iter()
            .filter(|x| x.role == "owner" || x.role == "peer");
        if !typists.clone().any(|x| &x.name == h) {
            return Err(ApiError::field(
                "holder",
                "must be the owner or a peer in the session now",
            ));
        }
    }
    let mut tx = app.db.begin_write().await?;
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "session.control",
        &id,
        &session_name(&info),
        json!({ "holder": input.holder, "shared": input.shared }),
    )
    .await?;
    tx.commit().await?;
    session.set_control(input.holder.as_deref(), input.shared, &p.username);
    Ok(Json(json!(session.control())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminateInput {
    reason: String,
}

/// `POST /api/v1/sessions/{id}/terminate`: ends a live session now, with a reason everyone
/// in it is shown. Administrators only; audited.
pub async fn terminate(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<TerminateInput>,
) -> ApiResult<Json<Value>> {
    crate::audited::require_admin(
        &app,
        &p,
        "session.terminate",
        "session",
        &id,
        "Only administrators terminate sessions.",
    )
    .await?;
    let reason = input.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::field(
            "reason",
            "say why, in 1 to 500 characters (the user is shown it)",
        ));
    }
    let Some(session) = app.broker.get(&id) else {
        return Err(ApiError::not_found("live session"));
    };
    let info = session.info();
    let at = crate::db::rfc3339(crate::db::now_ms());
    let shown = format!("Terminated by {} at {at}: {reason}", p.username);
    let mut tx = app.db.begin_write().await?;
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "session.terminate",
        &id,
        &session_name(&info),
        json!({ "reason": reason, "owner": info.owner_name }),
    )
    .await?;
    tx.commit().await?;
    session.apply_marker(&format!("terminated by {}: {reason}", p.username));
    let _ = session
        .send_input(ClientInput::Terminate {
            reason: shown.clone(),
        })
        .await;
    Ok(Json(json!({ "terminated": id, "message": shown })))
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
    let web = match web_login(&a) {
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

async fn send_json(ws: &mut WebSocket, v: Value) -> bool {
    ws.send(Message::Text(v.to_string().into())).await.is_ok()
}

fn lifecycle_json(l: &Lifecycle) -> Value {
    match l {
        Lifecycle::Connecting => json!({ "type": "status", "state": "connecting" }),
        Lifecycle::Connected => json!({ "type": "status", "state": "connected" }),
        Lifecycle::Ended {
            reason,
            exit_status,
        } => json!({ "type": "exit", "reason": reason, "exit_status": exit_status }),
        Lifecycle::Failed { kind, message } => {
            json!({ "type": "error", "kind": kind, "message": message })
        }
    }
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
            let _ = send_json(&mut ws, json!({ "type": "status", "state": "connecting" })).await;
            match sessions::launch(&app, &a.principal, &web, &account_id, protocol, cols, rows)
                .await
            {
                Ok(s) => s,
                Err(f) => {
                    let _ = send_json(
                        &mut ws,
                        json!({ "type": "error", "kind": f.kind, "message": f.message }),
                    )
                    .await;
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
                    let _ = send_json(&mut ws, json!({ "type": "exit", "reason": "The session has already ended.", "exit_status": null })).await;
                    let _ = ws.send(Message::Close(None)).await;
                    return;
                }
            }
        }
        TicketFor::Attach { session_id } => match app.broker.get(&session_id) {
            Some(s) => s,
            None => {
                let _ = send_json(&mut ws, json!({ "type": "exit", "reason": "The session has already ended.", "exit_status": null })).await;
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
            &session_name(&info),
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

/// What a browser may do in a session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Types, resizes; counted for the re-attach grace period.
    Owner,
    /// Sees everything, sends nothing.
    Observer,
    /// Sees everything; types when given the keyboard.
    Peer,
}

fn participants_json(session: &LiveSession) -> Value {
    json!({ "type": "participants", "participants": session.participants(), "control": session.control() })
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
    let hello = json!({ "type": "session", "id": info.id, "account": info.account_name, "resource": info.resource_name, "protocol": info.protocol, "path": info.path, "started_at_ms": info.started_at_ms, "recorded": info.recording_id.is_some(), "owner": info.owner_name, "you": username, "control": info.control, "role": match role { Role::Owner => "owner", Role::Observer => "observer", Role::Peer => "peer" } });
    if !send_json(ws, hello).await {
        return;
    }
    if let Some(l) = session.lifecycle() {
        if !send_json(ws, lifecycle_json(&l)).await {
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
    if show_participants && !send_json(ws, participants_json(session)).await {
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
                let _ = send_json(ws, json!({ "type": "exit", "reason": reason, "exit_status": null })).await;
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
                // Every desktop viewer says how many frames it has drawn.
                let drawn = match &m {
                    Some(Ok(Message::Text(t))) if desktop => parse_drawn(t.as_str()),
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
                                if !send_json(ws, json!({ "type": "notice", "message": format!("{holder} has the keyboard; your keys are not sent.") })).await { return; }
                            }
                            continue;
                        }
                        if session.type_input(username, b.to_vec()).await.is_err() { return; }
                    }
                    // Only the owner's browser sets the terminal size (a desktop's input also
                    // travels as text: a peer with the keyboard may send it).
                    Some(Ok(Message::Text(_))) if role == Role::Peer && !desktop => {}
                    Some(Ok(Message::Text(t))) if desktop => {
                        // The owner's tab sizes the desktop (others' tabs scale the picture).
                        if let Some((width, height)) = parse_desktop_size(t.as_str()) {
                            if role == Role::Owner && session.send_input(ClientInput::Resize { cols: width, rows: height }).await.is_err() { return; }
                            continue;
                        }
                        let Some((input, typed)) = parse_desktop_input(t.as_str()) else { continue };
                        if !session.may_type(username) {
                            continue;
                        }
                        if session.desktop_input(username, input, typed).await.is_err() { return; }
                    }
                    Some(Ok(Message::Text(t))) => {
                        if let Some((cols, rows)) = parse_resize(t.as_str()) {
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

/// `{"type": "drawn", "frames": N}`: the browser has drawn N of the binary frames this
/// socket sent (docs/websocket-protocol.md).
fn parse_drawn(text: &str) -> Option<u64> {
    // Cheap first test: most text from a desktop tab is input.
    if !text.contains("\"drawn\"") {
        return None;
    }
    let v: Value = serde_json::from_str(text).ok()?;
    (v["type"].as_str()? == "drawn").then_some(())?;
    v["frames"].as_u64()
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
            Delivery::Event(SessionEvent::Cursor(c)) => send_json(ws, cursor_json(&c)).await,
            // Text copied on the desktop goes to the browsers' clipboards (the policy allowed it).
            Delivery::Event(SessionEvent::Clipboard {
                to_target: false,
                text,
            }) => send_json(ws, json!({ "type": "clipboard", "text": &*text })).await,
            Delivery::Event(SessionEvent::Frame(rects, _)) => ws
                .send(Message::Binary(frame_message(&rects).into()))
                .await
                .is_ok(),
            Delivery::Event(SessionEvent::Resize { cols, rows }) => {
                send_json(ws, json!({ "type": "resize", "cols": cols, "rows": rows })).await
            }
            Delivery::Event(SessionEvent::Lifecycle(l)) => send_json(ws, lifecycle_json(&l)).await,
            Delivery::Event(SessionEvent::Marker(text)) => {
                send_json(ws, json!({ "type": "marker", "text": text })).await
                    && match participants {
                        Some(session) => send_json(ws, participants_json(session)).await,
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

/// A desktop's pointer shape for the browser (docs/websocket-protocol.md).
fn cursor_json(c: &gateway::event::Cursor) -> Value {
    use base64::Engine;
    match c {
        gateway::event::Cursor::Default => json!({ "type": "cursor", "shape": "default" }),
        gateway::event::Cursor::Hidden => json!({ "type": "cursor", "shape": "hidden" }),
        gateway::event::Cursor::Image {
            png,
            hotspot_x,
            hotspot_y,
        } => {
            json!({ "type": "cursor", "png": base64::engine::general_purpose::STANDARD.encode(png), "x": hotspot_x, "y": hotspot_y })
        }
    }
}

async fn send_snapshot(ws: &mut WebSocket, s: gateway::screen::ScreenSnapshot) -> bool {
    if s.desktop {
        // The pointer shape comes with the picture, so a late viewer has it at once.
        if let Some(c) = &s.cursor {
            if !send_json(ws, cursor_json(c)).await {
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
        return send_json(
            ws,
            json!({ "type": "snapshot", "desktop": true, "width": s.cols, "height": s.rows }),
        )
        .await
            && ws
                .send(Message::Binary(frame_message(&[whole]).into()))
                .await
                .is_ok();
    }
    send_json(
        ws,
        json!({ "type": "snapshot", "cols": s.cols, "rows": s.rows }),
    )
    .await
        && ws.send(Message::Binary(s.data.into())).await.is_ok()
}

/// A desktop update as one binary frame: for each rectangle, x, y, width, height (u16,
/// big-endian), the length of its PNG (u32, big-endian), then the PNG.
pub fn frame_message(rects: &[gateway::event::FrameRect]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rects.iter().map(|r| r.data.len() + 12).sum());
    for r in rects {
        for v in [r.x, r.y, r.width, r.height] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        // A copy within the picture (a scroll) is marked by a length of all ones; its 4
        // bytes are the source's x and y.
        let len = if r.encoding == gateway::desktop::COPY {
            COPY_MARK
        } else {
            r.data.len() as u32
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&r.data);
    }
    out
}

/// The length field of a copied rectangle in a desktop frame.
pub const COPY_MARK: u32 = u32::MAX;

/// A desktop session's input from the browser (docs/websocket-protocol.md): the input, and
/// the text a key press made (for the recording), if any.
fn parse_desktop_input(text: &str) -> Option<(ClientInput, Option<String>)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let small = |k: &str| v[k].as_u64().and_then(|n| u16::try_from(n).ok());
    match v["type"].as_str()? {
        "key" => {
            let (extended, scancode) = gateway::rdp::keys::scancode(v["code"].as_str()?)?;
            let down = v["down"].as_bool()?;
            // What the key made, as the browser's layout says: one character, or Enter.
            let typed = match v["key"].as_str() {
                Some(k) if down && k.chars().count() == 1 => Some(k.to_string()),
                Some("Enter") if down => Some("\n".to_string()),
                _ => None,
            };
            Some((
                ClientInput::Key {
                    scancode,
                    extended,
                    down,
                },
                typed,
            ))
        }
        "pointer" => Some((
            ClientInput::Pointer {
                x: small("x")?,
                y: small("y")?,
                buttons: u8::try_from(v["buttons"].as_u64()?).ok()? & 7,
            },
            None,
        )),
        "release" => Some((ClientInput::ReleaseAll, None)),
        "clipboard" => Some((
            ClientInput::Clipboard {
                text: v["text"].as_str()?.to_string(),
            },
            None,
        )),
        "wheel" => {
            let steps = v["steps"].as_i64()?.clamp(-10, 10) as i16;
            Some((ClientInput::Wheel { steps }, None))
        }
        _ => None,
    }
}

/// `{"type": "resize", "width": W, "height": H}` from a desktop tab (pixels).
fn parse_desktop_size(text: &str) -> Option<(u16, u16)> {
    let v: Value = serde_json::from_str(text).ok()?;
    if v["type"] != "resize" {
        return None;
    }
    let side = |k: &str| {
        v[k].as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| (1..=gateway::desktop::MAX_SIDE).contains(n))
    };
    Some((side("width")?, side("height")?))
}

fn parse_resize(text: &str) -> Option<(u16, u16)> {
    let v: Value = serde_json::from_str(text).ok()?;
    if v["type"] != "resize" {
        return None;
    }
    let cols = u16::try_from(v["cols"].as_u64()?).ok()?;
    let rows = u16::try_from(v["rows"].as_u64()?).ok()?;
    ((2..=1000).contains(&cols) && (2..=1000).contains(&rows)).then_some((cols, rows))
}

async fn require_admin(app: &App, p: &crate::identity::Principal, action: &str) -> ApiResult<()> {
    crate::audited::require_admin(
        app,
        p,
        action,
        "resource",
        "",
        "Only administrators manage SSH host keys.",
    )
    .await
}

/// `GET /api/v1/host-keys`: pinned and pending host keys and RDP certificates, one per
/// resource and protocol.
pub async fn host_keys(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    require_admin(&app, &p, "hostkey.read").await?;
    let rows = host_key_pins::list(&app).await?;
    Ok(Json(json!(rows
        .into_iter()
        .map(|h| json!({ "resource_id": h.resource_id, "protocol": h.protocol, "resource_name": h.resource_name, "fingerprint": h.fingerprint, "status": h.status, "decided_by": h.decided_by, "updated_at": crate::db::rfc3339(h.updated_at), "offered_fingerprint": h.offered_fingerprint, "offered_at": h.offered_at.map(crate::db::rfc3339) }))
        .collect::<Vec<_>>())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveInput {
    fingerprint: String,
    /// `ssh` (the default) or `rdp`.
    #[serde(default)]
    protocol: Option<String>,
}

/// The pin a request names: `ssh` unless it says `rdp`.
fn pin_kind(protocol: Option<&str>) -> ApiResult<host_key_pins::PinKind> {
    match protocol {
        None | Some("") => Ok(host_key_pins::PinKind::Ssh),
        Some(p) => host_key_pins::PinKind::parse(p)
            .ok_or_else(|| ApiError::field("protocol", "must be ssh or rdp")),
    }
}

/// `POST /api/v1/host-keys/{resource_id}/approve`: pin this fingerprint (approve a pending
/// key, or pin one checked out of band) for the protocol given (`ssh` by default).
pub async fn approve_host_key(
    State(app): State<App>,
    Auth(p): Auth,
    Path(resource_id): Path<String>,
    Body(input): Body<ApproveInput>,
) -> ApiResult<Json<Value>> {
    require_admin(&app, &p, "hostkey.approve").await?;
    let kind = pin_kind(input.protocol.as_deref())?;
    let fp = input.fingerprint.trim().to_string();
    if !fp.starts_with("SHA256:")
        || fp.len() < 20
        || fp.len() > 80
        || fp.contains(char::is_whitespace)
    {
        return Err(ApiError::field(
            "fingerprint",
            "must be a SHA256 fingerprint such as SHA256:AbC... (ssh-keygen -lf; for RDP, the certificate's)",
        ));
    }
    let r = crate::vault::resources::get(&app, &resource_id).await?;
    let mut tx = app.db.begin_write().await?;
    sqlx::query("DELETE FROM host_key_pins WHERE resource_id = $1 AND protocol = $2")
        .bind(&r.id)
        .bind(kind.as_str())
        .execute(tx.conn())
        .await?;
    sqlx::query("INSERT INTO host_key_pins (resource_id, protocol, fingerprint, status, decided_by, updated_at) VALUES ($1, $2, $3, 'pinned', $4, $5)")
        .bind(&r.id)
        .bind(kind.as_str())
        .bind(&fp)
        .bind(&p.username)
        .bind(crate::db::now_ms())
        .execute(tx.conn())
        .await?;
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "hostkey.approve",
        &r.id,
        &r.name,
        json!({ "fingerprint": fp, "protocol": kind.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "resource_id": r.id, "protocol": kind.as_str(), "fingerprint": fp, "status": "pinned" }),
    ))
}

#[derive(Deserialize)]
pub struct ForgetQuery {
    protocol: Option<String>,
}

/// `DELETE /api/v1/host-keys/{resource_id}[?protocol=ssh|rdp]`: forget the pin (every pin of
/// the resource when no protocol is given); the next connection is a first contact again
/// (pinned on use, or held for approval, by `host_key_policy`).
pub async fn forget_host_key(
    State(app): State<App>,
    Auth(p): Auth,
    Path(resource_id): Path<String>,
    Query(q): Query<ForgetQuery>,
) -> ApiResult<Json<Value>> {
    require_admin(&app, &p, "hostkey.forget").await?;
    let r = crate::vault::resources::get(&app, &resource_id).await?;
    let mut tx = app.db.begin_write().await?;
    let protocol = match q.protocol.as_deref() {
        None | Some("") => {
            sqlx::query("DELETE FROM host_key_pins WHERE resource_id = $1")
                .bind(&r.id)
                .execute(tx.conn())
                .await?;
            None
        }
        Some(_) => {
            let kind = pin_kind(q.protocol.as_deref())?;
            sqlx::query("DELETE FROM host_key_pins WHERE resource_id = $1 AND protocol = $2")
                .bind(&r.id)
                .bind(kind.as_str())
                .execute(tx.conn())
                .await?;
            Some(kind.as_str())
        }
    };
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "hostkey.forget",
        &r.id,
        &r.name,
        json!({ "protocol": protocol.unwrap_or("all") }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "ok": true })))
}

fn limit_json(own: Option<i64>) -> Value {
    match own {
        None => json!("default"),
        Some(0) => json!("off"),
        Some(s) => json!(format!("{s}s")),
    }
}

/// `GET /api/v1/resources/{id}/session-limits`: the resource's own limits and what applies.
pub async fn session_limits(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (r, _) = crate::vault::resources::get_for(&app, &p, &id).await?;
    let own: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT idle_limit_s, max_duration_s FROM resource_session_limits WHERE resource_id = $1",
    )
    .bind(&r.id)
    .fetch_optional(&app.db.pool)
    .await?;
    let (idle, max) = own.unwrap_or((None, None));
    let applied = crate::session_limits::for_resource(&app, &r.id).await?;
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs());
    Ok(Json(json!({
        "idle_limit": limit_json(idle), "max_duration": limit_json(max),
        "applied": { "idle_limit_s": secs(applied.idle), "max_duration_s": secs(applied.max) },
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsInput {
    idle_limit: String,
    max_duration: String,
}

/// `PUT /api/v1/resources/{id}/session-limits`: each of `idle_limit` and `max_duration` is
/// `default` (the global setting), `off`, or a duration such as `15m`. Administrators only,
/// audited; applies to sessions started afterwards.
pub async fn set_session_limits(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<LimitsInput>,
) -> ApiResult<Json<Value>> {
    crate::audited::require_admin(
        &app,
        &p,
        "session.limits",
        "resource",
        &id,
        "Only administrators set session limits.",
    )
    .await?;
    let parse = |field: &str, v: &str| -> ApiResult<Option<i64>> {
        match v.trim() {
            "default" => Ok(None),
            "off" => Ok(Some(0)),
            other => crate::config::parse_duration(other)
                .map(|d| Some(d.as_secs() as i64))
                .ok_or_else(|| {
                    ApiError::field(
                        field,
                        "must be default, off, or a duration such as 90s, 30m or 8h",
                    )
                }),
        }
    };
    let idle = parse("idle_limit", &input.idle_limit)?;
    let max = parse("max_duration", &input.max_duration)?;
    let r = crate::vault::resources::get(&app, &id).await?;
    let mut tx = app.db.begin_write().await?;
    sqlx::query("DELETE FROM resource_session_limits WHERE resource_id = $1")
        .bind(&r.id)
        .execute(tx.conn())
        .await?;
    if idle.is_some() || max.is_some() {
        sqlx::query("INSERT INTO resource_session_limits (resource_id, idle_limit_s, max_duration_s, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&r.id)
            .bind(idle)
            .bind(max)
            .bind(&p.username)
            .bind(crate::db::now_ms())
            .execute(tx.conn())
            .await?;
    }
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "session.limits",
        &r.id,
        &r.name,
        json!({ "idle_limit": limit_json(idle), "max_duration": limit_json(max) }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "idle_limit": limit_json(idle), "max_duration": limit_json(max) }),
    ))
}
