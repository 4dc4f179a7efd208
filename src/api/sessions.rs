//! Why: live sessions as REST resources: a single-use ticket to open one (Connect access
//! checked here), to re-attach, to watch or join someone else's (administrators), the list,
//! handing the keyboard over, and terminating with a reason. The socket the ticket opens is
//! `session_socket`.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AnyAuth, Auth, Body};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::sessions::{self, TicketFor};
use gateway::event::Protocol;

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

pub(super) fn web_login(a: &AnyAuth) -> ApiResult<String> {
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
pub(super) fn session_name(info: &gateway::broker::SessionInfo) -> String {
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
    // The same path as a lock, a logout or a revocation.
    sessions::terminate_where(&app, &shown, |s, _| s.id == id).await;
    Ok(Json(json!({ "terminated": id, "message": shown })))
}
