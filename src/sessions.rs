//! Why: where the vault meets the gateway. Launching a session checks the caller's Connect
//! access, opens the account's secret for the protocol adapter (the caller never gets it),
//! applies the resource's host-key pin, starts the session in the broker and audits its
//! start, host-key decisions and end. Launch tickets bind a WebSocket to the user, the web
//! login and the account, are single-use and live 30 seconds. What depends on the path
//! through landing servers is in `session_paths`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::adapter::ProtocolAdapter;
use gateway::broker::{Delivery, LiveSession, SessionInfo};
use gateway::event::{ClientInput, FailureKind, Lifecycle, Protocol};
use gateway::host_key::HostKeyObservation;
use serde_json::json;

use crate::app::App;
use crate::audit::{Actor, Event, Outcome};
use crate::db;
use crate::error::ApiError;
use crate::host_key_pins::{host_key_policy, record_host_key, PinKind};
use crate::identity::passwords;
use crate::identity::Principal;
use crate::session_paths::{connect_terminal, path_stream, TerminalLogin};
use crate::vault::accounts;

pub const TICKET_TTL: Duration = Duration::from_secs(30);

pub enum TicketFor {
    NewSession {
        account_id: String,
        /// None: SSH when the resource has an SSH port, else Telnet.
        protocol: Option<Protocol>,
        cols: u16,
        rows: u16,
    },
    Attach {
        session_id: String,
    },
    /// Watch someone's session, read-only (administrators; auditors if allowed).
    Watch {
        session_id: String,
    },
    /// Join someone's session as a peer, who types when given the keyboard (administrators).
    Join {
        session_id: String,
    },
}

pub struct Ticket {
    pub user_id: String,
    pub web_session_id: String,
    pub purpose: TicketFor,
    expires: Instant,
}

/// Sessions' server-side bookkeeping: tickets, and which web login owns which session.
#[derive(Default)]
pub struct SessionDesk {
    tickets: Mutex<HashMap<String, Ticket>>,
    web_login_of: Mutex<HashMap<String, String>>,
}

impl SessionDesk {
    pub fn issue(&self, user_id: &str, web_session_id: &str, purpose: TicketFor) -> String {
        let token = passwords::random_token(32);
        let now = Instant::now();
        if let Ok(mut t) = self.tickets.lock() {
            t.retain(|_, v| v.expires > now);
            t.insert(
                token.clone(),
                Ticket {
                    user_id: user_id.into(),
                    web_session_id: web_session_id.into(),
                    purpose,
                    expires: now + TICKET_TTL,
                },
            );
        }
        token
    }

    /// Takes a ticket (single use). `None` if unknown or expired.
    pub fn take(&self, token: &str) -> Option<Ticket> {
        let t = self.tickets.lock().ok()?.remove(token)?;
        (t.expires > Instant::now()).then_some(t)
    }

    pub fn web_login_of(&self, session_id: &str) -> Option<String> {
        self.web_login_of.lock().ok()?.get(session_id).cloned()
    }

    fn bind(&self, session_id: &str, web_session_id: &str) {
        if let Ok(mut m) = self.web_login_of.lock() {
            m.insert(session_id.into(), web_session_id.into());
        }
    }

    fn forget(&self, session_id: &str) {
        if let Ok(mut m) = self.web_login_of.lock() {
            m.remove(session_id);
        }
    }
}

/// Ends every live session that matches `which`, with `reason` shown to its viewers.
pub async fn terminate_where(
    app: &App,
    reason: &str,
    which: impl Fn(&SessionInfo, Option<&str>) -> bool,
) -> usize {
    let mut n = 0;
    for info in app.broker.list() {
        let web = app.desk.web_login_of(&info.id);
        if which(&info, web.as_deref()) {
            if let Some(s) = app.broker.get(&info.id) {
                if s.send_input(ClientInput::Terminate {
                    reason: reason.into(),
                })
                .await
                .is_ok()
                {
                    n += 1;
                }
            }
        }
    }
    n
}

async fn audit_event(
    app: &App,
    actor: &Actor,
    action: &str,
    outcome: Outcome,
    info: &SessionInfo,
    detail: serde_json::Value,
) {
    let r = app
        .audit
        .append(Event {
            actor,
            action,
            outcome,
            object_kind: "session",
            object_id: &info.id,
            object_name: &format!("{}@{}", info.account_name, info.resource_name),
            detail,
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, action, "could not audit a session event");
    }
}

/// Failure before the session exists (no such account, no SSH port, unreachable): audited
/// and returned for the WebSocket to show.
pub struct LaunchFailure {
    pub kind: FailureKind,
    pub message: String,
}

/// Starts an SSH session for `p` with `account_id`. Called after the WebSocket is open, so
/// every failure can be shown to the user in plain words; every failure is audited.
pub async fn launch(
    app: &App,
    p: &Principal,
    web_session_id: &str,
    account_id: &str,
    protocol: Option<Protocol>,
    cols: u16,
    rows: u16,
) -> Result<Arc<LiveSession>, LaunchFailure> {
    let result = try_launch(app, p, web_session_id, account_id, protocol, cols, rows).await;
    if let Err(f) = &result {
        let r = app
            .audit
            .append(Event {
                actor: &p.actor(),
                action: "session.start",
                outcome: Outcome::Failed,
                object_kind: "account",
                object_id: account_id,
                object_name: "",
                detail: json!({ "failure": f.kind, "message": f.message }),
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "could not audit a failed session start");
        }
    }
    result
}

async fn try_launch(
    app: &App,
    p: &Principal,
    web_session_id: &str,
    account_id: &str,
    protocol: Option<Protocol>,
    mut cols: u16,
    mut rows: u16,
) -> Result<Arc<LiveSession>, LaunchFailure> {
    let fail = |kind, message: String| LaunchFailure { kind, message };
    // The limits come first: a refused session never opens a credential.
    let live = app.broker.list();
    if live.len() >= app.config.max_sessions {
        return Err(fail(
            FailureKind::PermissionDenied,
            format!(
                "The gateway holds {} live sessions, its limit (max_sessions). Try again when one has ended.",
                live.len()
            ),
        ));
    }
    let own = live.iter().filter(|s| s.owner_id == p.user_id).count();
    if own >= app.config.max_sessions_per_user {
        return Err(fail(
            FailureKind::PermissionDenied,
            format!(
                "You have {own} live sessions, the most one user may have (max_sessions_per_user). End one to open another."
            ),
        ));
    }
    let cred = accounts::open_for_session(app, p, account_id)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => fail(
                FailureKind::PermissionDenied,
                "That account does not exist or is not shared with you.".into(),
            ),
            _ => fail(
                FailureKind::Protocol,
                "The account's credential could not be opened; the event was logged.".into(),
            ),
        })?;
    let r = &cred.resource;
    let protocol = match protocol {
        Some(p) => p,
        None if r.ssh_port.is_some() => Protocol::Ssh,
        None if r.telnet_port.is_some() => Protocol::Telnet,
        None if r.rdp_port.is_some() => Protocol::Rdp,
        None => {
            return Err(fail(
                FailureKind::Protocol,
                format!("{} has no SSH, Telnet or RDP port configured.", r.name),
            ))
        }
    };
    let port = match protocol {
        Protocol::Ssh => r.ssh_port,
        Protocol::Telnet => r.telnet_port,
        Protocol::Rdp => r.rdp_port,
    };
    let Some(port) = port else {
        return Err(fail(
            FailureKind::Protocol,
            format!(
                "{} has no {} port configured.",
                r.name,
                protocol_name(protocol)
            ),
        ));
    };
    let info = SessionInfo {
        id: db::new_id(),
        owner_id: p.user_id.clone(),
        owner_name: p.username.clone(),
        account_id: cred.account.id.clone(),
        account_name: cred.account.username.clone(),
        resource_id: r.id.clone(),
        resource_name: r.name.clone(),
        protocol,
        path: vec![],
        client_addr: p.addr.clone(),
        started_at_ms: db::now_ms(),
        state: "connecting".into(),
        bytes_from_target: 0,
        bytes_to_target: 0,
        recording_id: None,
        participants: Vec::new(),
        control: Default::default(),
    };
    let mut info = info;
    let actor = p.actor();
    // Landing servers between the gateway and the target (resolved before anything else, so
    // the Telnet landing-only rule, the recording and the audit all know the path).
    let chain = crate::hop_path::resolve(app, &r.id)
        .await
        .map_err(|e| match e {
            ApiError::Conflict { message, .. } => fail(FailureKind::Protocol, message),
            _ => fail(
                FailureKind::Protocol,
                "The path to this resource could not be resolved; the event was logged.".into(),
            ),
        })?;
    info.path = chain.iter().map(|l| l.name.clone()).collect();
    // The gateway connects to the target itself (no landing server): where it points must
    // be a network resources may point at, whatever the name resolves to today.
    let direct = if chain.is_empty() {
        Some(&r.host)
    } else {
        None
    };
    if let Some(host) = direct {
        crate::network_policy::check_resolved(
            &app.config.resource_networks,
            host,
            u16::try_from(port).unwrap_or(0),
        )
        .await
        .map_err(|why| fail(FailureKind::PermissionDenied, format!("{}: {why}", r.name)))?;
    }
    let label = format!("{} ({}:{port})", r.name, r.host);
    let (adapter, host_key, mut audit_detail, stream): (
        Box<dyn ProtocolAdapter>,
        Option<tokio::sync::oneshot::Receiver<HostKeyObservation>>,
        serde_json::Value,
        gateway::adapter::TargetStream,
    ) = match (protocol, chain.iter().position(|l| l.mode == "interactive")) {
        (Protocol::Rdp, Some(k)) => {
            return Err(fail(
                FailureKind::Protocol,
                format!("{} is reached through landing server {}, which is in interactive mode (commands typed at its shell); RDP needs a tunnel, so every landing server on its path must be in tunnel mode.", r.name, chain[k].name),
            ))
        }
        (Protocol::Rdp, None) => {
            let (adapter, host_key, mut audit_detail): (
                Box<dyn ProtocolAdapter>,
                Option<tokio::sync::oneshot::Receiver<HostKeyObservation>>,
                serde_json::Value,
            ) = {
                    let db_down = |_| {
                        fail(
                            FailureKind::Protocol,
                            "The gateway's database is unavailable.".into(),
                        )
                    };
                    if cred.account.secret_kind != "password" {
                        return Err(fail(
                            FailureKind::AuthenticationFailed,
                            format!("RDP logs in with a password, and the account {} holds an SSH key.", cred.account.username),
                        ));
                    }
                    let settings = crate::rdp_settings::for_resource(app, &r.id)
                        .await
                        .map_err(db_down)?;
                    let security = gateway::rdp::RdpSecurity::parse(&settings.security)
                        .unwrap_or(gateway::rdp::RdpSecurity::NlaPreferred);
                    let clipboard = gateway::rdp::clipboard::ClipboardPolicy::parse(&settings.clipboard)
                        .unwrap_or(gateway::rdp::clipboard::ClipboardPolicy::Off);
                    // Every clipboard transfer is audited (its size; the text is in the recording).
                    let (clipboard_log, mut transfers) = tokio::sync::mpsc::unbounded_channel::<(bool, usize)>();
                    {
                        let (app, actor, info) = (app.clone(), actor.clone(), info.clone());
                        tokio::spawn(async move {
                            while let Some((to_target, chars)) = transfers.recv().await {
                                let direction = if to_target { "browser to target" } else { "target to browser" };
                                audit_event(&app, &actor, "session.clipboard", Outcome::Ok, &info, json!({ "direction": direction, "characters": chars })).await;
                            }
                        });
                    }
                    let certificate = host_key_policy(app, &r.id, PinKind::Rdp).await.map_err(|_| {
                        fail(
                            FailureKind::Protocol,
                            "The gateway's database is unavailable.".into(),
                        )
                    })?;
                    // The recording and the broker start at the size the desktop starts with.
                    (cols, rows) = settings.start_size((cols, rows));
                    let (adapter, seen) = gateway::rdp::RdpAdapter::new(gateway::rdp::RdpTarget {
                        label: format!("the target {label}"),
                        server_name: r.host.clone(),
                        username: cred.account.username.clone(),
                        password: cred.secret,
                        security,
                        certificate,
                        keyboard_layout: settings.keyboard_layout as u32,
                        width: cols,
                        height: rows,
                        follow_tab: settings.display == "follow",
                        clipboard,
                        clipboard_log,
                        lossless_only: settings.image_quality == "lossless",
                        flood_pacing: gateway::rdp::pacing::FloodPacing::parse(
                            &settings.flood_pacing,
                        )
                        .unwrap_or_default(),
                    });
                    (
                        Box::new(adapter),
                        Some(seen),
                        json!({ "rdp_security": settings.security }),
                    )
                            };
            let stream = path_stream(app, &actor, &info, &chain, &r.host, port as u16, &mut audit_detail)
                .await
                .map_err(|(kind, message)| fail(kind, message))?;
            (adapter, host_key, audit_detail, stream)
        }
        _ => connect_terminal(
            app,
            &actor,
            &info,
            &chain,
            r,
            port as u16,
            protocol,
            TerminalLogin {
                account: &cred.account,
                secret: cred.secret,
                passphrase: cred.passphrase,
            },
        )
        .await
        .map_err(|(kind, message)| fail(kind, message))?,
    };
    // The recording exists before the session starts, so it holds every event.
    let planned = match crate::recordings::plan(app, &info, cols, rows).await {
        Ok(p) => p,
        Err(why) => match app.config.recording_failure {
            crate::config::RecordingFailure::Terminate => {
                return Err(fail(
                    FailureKind::Protocol,
                    format!("The session cannot be recorded ({why}), and this gateway does not allow unrecorded sessions."),
                ))
            }
            crate::config::RecordingFailure::Continue => {
                audit_event(app, &actor, "recording.failed", Outcome::Failed, &info, json!({ "error": why, "alert": true, "policy": "continue" })).await;
                None
            }
        },
    };
    info.recording_id = planned.as_ref().map(|p| p.id.clone());
    let keyframes = planned.as_ref().map(|_| {
        (
            Duration::from_millis(recorder::writer::KEYFRAME_EVERY_MS),
            // A desktop's keyframe is a whole picture: every 10 s is enough for seeking
            // (replaying 10 s of rectangles is quick), more often only costs bytes.
            match protocol {
                Protocol::Rdp => DESKTOP_KEYFRAME_BYTES,
                _ => recorder::writer::KEYFRAME_EVERY_BYTES,
            },
        )
    });
    let (session, tap) =
        app.broker
            .start_tapped(info.clone(), adapter, stream, cols, rows, keyframes);
    if let (Some(planned), Some(tap)) = (planned, tap) {
        crate::recordings::spawn_writer(app.clone(), actor.clone(), planned, tap, session.clone());
    }
    app.desk.bind(&info.id, web_session_id);
    audit_event(app, &actor, "session.start", Outcome::Ok, &info, {
        audit_detail["protocol"] = json!(protocol_name(protocol).to_lowercase());
        audit_detail["host"] = json!(r.host);
        audit_detail["port"] = json!(port);
        audit_detail["recording_id"] = json!(info.recording_id);
        audit_detail
    })
    .await;
    if let (Some(host_key), Some(kind)) = (host_key, PinKind::of(protocol)) {
        tokio::spawn(record_host_key(
            app.core.clone(),
            actor.clone(),
            info.clone(),
            kind,
            host_key,
        ));
    }
    if let Err(e) = track_live(app, &info).await {
        tracing::error!(error = %e, "could not note a live session for crash recovery");
    }
    match crate::session_limits::for_resource(app, &r.id).await {
        Ok(limits) => crate::session_limits::spawn_watchdog(session.clone(), limits),
        Err(e) => tracing::error!(error = %e, "could not read the session limits; none applied"),
    }
    tokio::spawn(watch_end(app.clone(), actor, session.clone()));
    Ok(session)
}

/// Desktop pictures between two recording keyframes at most (besides the 10 s rule).
const DESKTOP_KEYFRAME_BYTES: u64 = 8 * 1024 * 1024;

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Ssh => "SSH",
        Protocol::Telnet => "Telnet",
        Protocol::Rdp => "RDP",
    }
}

/// Waits for the session to end and audits it (duration, bytes, how it ended).
async fn watch_end(app: App, actor: Actor, session: Arc<LiveSession>) {
    let (_, mut sub) = session.subscribe();
    while sub.next().await != Delivery::Closed {}
    let end = session.lifecycle();
    let info = session.info();
    app.desk.forget(&info.id);
    let duration_s = (db::now_ms() - info.started_at_ms) / 1000;
    let (outcome, how) = match end {
        Some(Lifecycle::Failed { kind, message }) => (
            Outcome::Failed,
            json!({ "failure": kind, "message": message }),
        ),
        Some(Lifecycle::Ended {
            reason,
            exit_status,
        }) => (
            Outcome::Ok,
            json!({ "reason": reason, "exit_status": exit_status }),
        ),
        _ => (Outcome::Ok, json!({ "reason": "closed" })),
    };
    // An account whose policy says so gets a new secret after each session.
    crate::rotation::after_session(&app, &info.account_id, &info.owner_name).await;
    audit_event(&app, &actor, "session.end", outcome, &info, json!({ "duration_s": duration_s, "bytes_from_target": info.bytes_from_target, "bytes_to_target": info.bytes_to_target, "end": how, "recording_id": info.recording_id })).await;
    let untracked = async {
        let mut tx = app.db.begin_write().await?;
        sqlx::query("DELETE FROM live_sessions WHERE id = $1")
            .bind(&info.id)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    };
    if let Err(e) = untracked.await {
        tracing::error!(error = %e, "could not clear a live-session note");
    }
}

/// Notes a live session in the database, so that the next start can audit its end if this
/// process dies first.
async fn track_live(app: &App, info: &SessionInfo) -> Result<(), sqlx::Error> {
    let mut tx = app.db.begin_write().await?;
    sqlx::query("INSERT INTO live_sessions (id, user_id, user_name, account_name, resource_id, resource_name, client_addr, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&info.id)
        .bind(&info.owner_id)
        .bind(&info.owner_name)
        .bind(&info.account_name)
        .bind(&info.resource_id)
        .bind(&info.resource_name)
        .bind(&info.client_addr)
        .bind(info.started_at_ms)
        .execute(tx.conn())
        .await?;
    tx.commit().await
}

/// At start-up: sessions the last process did not see end (it was killed or crashed). Each
/// gets its `session.end` audit record, naming its recording (marked incomplete before this
/// runs, see `recordings::recover_interrupted`). Returns how many.
pub async fn recover_stopped(app: &App) -> anyhow::Result<usize> {
    #[derive(sqlx::FromRow)]
    struct Stopped {
        id: String,
        user_id: String,
        user_name: String,
        account_name: String,
        resource_id: String,
        resource_name: String,
        client_addr: String,
        started_at: i64,
    }
    let rows: Vec<Stopped> = sqlx::query_as("SELECT id, user_id, user_name, account_name, resource_id, resource_name, client_addr, started_at FROM live_sessions")
        .fetch_all(&app.db.pool)
        .await?;
    for r in &rows {
        let recording: Option<(String, String)> =
            sqlx::query_as("SELECT id, status FROM recordings WHERE session_id = $1")
                .bind(&r.id)
                .fetch_optional(&app.db.pool)
                .await?;
        let actor = Actor {
            id: r.user_id.clone(),
            name: r.user_name.clone(),
            addr: r.client_addr.clone(),
        };
        let mut tx = app.db.begin_write().await?;
        app.audit
            .append_in(
                &mut tx,
                Event {
                    actor: &actor,
                    action: "session.end",
                    outcome: Outcome::Failed,
                    object_kind: "session",
                    object_id: &r.id,
                    object_name: &format!("{}@{}", r.account_name, r.resource_name),
                    detail: json!({ "resource_id": r.resource_id, "end": { "reason": "the gateway stopped during the session" }, "started_at": db::rfc3339(r.started_at), "recording_id": recording.as_ref().map(|x| &x.0), "recording": recording.as_ref().map(|x| &x.1) }),
                },
            )
            .await?;
        sqlx::query("DELETE FROM live_sessions WHERE id = $1")
            .bind(&r.id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
    }
    Ok(rows.len())
}

/// Ends live sessions whose owner no longer has access to the account (a share revoked, a
/// group membership removed, the account deleted). Called after every change of that kind.
/// The launcher's watcher of access changes (`core::AccessSignal`): after a share, an
/// account or a group changed, every live session whose owner lost access to its account is
/// ended, before the change's request returns.
pub struct EndSessionsWithoutAccess(pub Arc<gateway::broker::Broker>);

impl crate::core::AccessWatcher for EndSessionsWithoutAccess {
    fn access_changed<'a>(
        &'a self,
        core: &'a crate::core::Core,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(end_sessions_without_access(core, &self.0))
    }
}

async fn end_sessions_without_access(core: &crate::core::Core, broker: &gateway::broker::Broker) {
    for info in broker.list() {
        let Ok(user) = crate::identity::users::by_id(core, &info.owner_id).await else {
            continue;
        };
        let p = crate::identity::sessions::principal(&user, &info.client_addr);
        if accounts::get_for(core, &p, &info.account_id).await.is_err() {
            if let Some(s) = broker.get(&info.id) {
                let _ = s
                    .send_input(ClientInput::Terminate {
                        reason: "Your access to this account was removed; the session was ended."
                            .into(),
                    })
                    .await;
            }
        }
    }
}
