//! Why: the Telnet protocol adapter, for servers and network devices that speak nothing
//! else. Telnet has no authentication of its own, so after option negotiation
//! (`protocol`) the adapter runs a logon script (`logon`): it reads the target's prompts,
//! publishes them as ordinary output (the recording shows them), and types the answers
//! itself. Secrets from the vault are written straight to the socket: they never become a
//! session `Input` event, so no viewer, recording or log sees them. Once the script's last
//! step matches, the session is `Connected` and the browser's keystrokes go through.
//!
//! Telnet is plaintext on the wire; the resource page says so, and the launcher can refuse
//! it outside a landing-server path.

pub mod logon;
pub mod protocol;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::adapter::{AdapterFuture, AdapterIo, ProtocolAdapter, TargetStream};
use crate::event::{ClientInput, FailureKind, Lifecycle, Protocol, SessionEvent};
use crate::Secret;
use logon::{CompiledScript, LogonAction, LogonRun, Piece};
use protocol::TelnetProtocol;

pub struct TelnetTarget {
    pub username: String,
    pub password: Secret,
    /// The enable secret (another account's password), for scripts that use it.
    pub enable_secret: Option<Secret>,
    pub script: CompiledScript,
    /// `name (host:port)`, for messages.
    pub label: String,
}

pub struct TelnetAdapter {
    target: TelnetTarget,
}

impl TelnetAdapter {
    pub fn new(target: TelnetTarget) -> Self {
        TelnetAdapter { target }
    }
}

impl ProtocolAdapter for TelnetAdapter {
    fn protocol(&self) -> Protocol {
        Protocol::Telnet
    }

    fn run(self: Box<Self>, target: TargetStream, io: AdapterIo) -> AdapterFuture {
        Box::pin(async move {
            let TelnetAdapter { target: t } = *self;
            run(t, target, io).await;
        })
    }
}

async fn send(io: &AdapterIo, ev: SessionEvent) -> bool {
    io.events.send(ev).await.is_ok()
}

async fn fail(io: &AdapterIo, kind: FailureKind, message: String) {
    send(
        io,
        SessionEvent::Lifecycle(Lifecycle::Failed { kind, message }),
    )
    .await;
}

/// What the script is doing.
enum Phase {
    LoggingIn { run: LogonRun, deadline: Instant },
    LoggedIn,
}

/// The bytes a step types (value and Enter), already encoded for the wire, in a buffer that
/// is wiped when dropped; and how the timeline describes them.
fn typed_bytes(
    t: &TelnetTarget,
    proto: &TelnetProtocol,
    pieces: &[Piece],
) -> Result<(Zeroizing<Vec<u8>>, String), String> {
    let mut value = Zeroizing::new(Vec::new());
    let mut said = Vec::new();
    for p in pieces {
        match p {
            Piece::Text(s) => {
                value.extend_from_slice(s.as_bytes());
                said.push(format!("\u{201c}{s}\u{201d}"));
            }
            Piece::Username => {
                value.extend_from_slice(t.username.as_bytes());
                said.push("the user name".into());
            }
            Piece::Password => {
                value.extend_from_slice(t.password.expose());
                said.push("the password (not recorded)".into());
            }
            Piece::EnableSecret => match &t.enable_secret {
                Some(s) => {
                    value.extend_from_slice(s.expose());
                    said.push("the enable secret (not recorded)".into());
                }
                None => return Err("the script sends {enable_secret}, but the resource has no enable account: an administrator sets one in the resource's Telnet settings".into()),
            },
        }
    }
    if said.is_empty() {
        said.push("Enter".into());
    }
    value.push(b'\r');
    let mut wire = Zeroizing::new(Vec::with_capacity(value.len() + 4));
    proto.encode_input(&value, &mut wire);
    Ok((wire, said.join(" + ")))
}

async fn run(t: TelnetTarget, stream: TargetStream, mut io: AdapterIo) {
    send(&io, SessionEvent::Lifecycle(Lifecycle::Connecting)).await;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut proto = TelnetProtocol::new(io.cols, io.rows);
    let mut reply = Vec::new();
    proto.start(&mut reply);
    if let Err(e) = wr.write_all(&reply).await {
        return fail(
            &io,
            FailureKind::Unreachable,
            format!("{} closed the connection: {e}", t.label),
        )
        .await;
    }
    let mut phase = {
        let run = LogonRun::new(t.script.clone());
        let deadline = Instant::now() + run.step_timeout();
        Phase::LoggingIn { run, deadline }
    };
    let mut buf = vec![0u8; 16 * 1024];
    let reason = loop {
        let deadline = match &phase {
            Phase::LoggingIn { deadline, .. } => Some(*deadline),
            Phase::LoggedIn => None,
        };
        tokio::select! {
            read = rd.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => {
                        if let Phase::LoggingIn { run, .. } = &phase {
                            let said = run.last_output();
                            return fail(&io, FailureKind::AuthenticationFailed, format!(
                                "{} closed the connection during logon step {} of {} ({}).{}",
                                t.label, run.step_index() + 1, run.step_count(), run.step_label(),
                                if said.is_empty() { String::new() } else { format!(" It last said: \u{201c}{said}\u{201d}") },
                            )).await;
                        }
                        break format!("{} closed the connection.", t.label);
                    }
                    Ok(n) => n,
                };
                let mut data = Vec::with_capacity(n);
                reply.clear();
                proto.receive(&buf[..n], &mut data, &mut reply);
                if !reply.is_empty() && wr.write_all(&reply).await.is_err() {
                    break format!("{} closed the connection.", t.label);
                }
                if !data.is_empty() && !send(&io, SessionEvent::Output(data.as_slice().into())).await {
                    break "the gateway closed the session".to_string();
                }
                if let Phase::LoggingIn { run, deadline } = &mut phase {
                    match drive_logon(&t, &proto, &io, run, deadline, &data, &mut wr).await {
                        Ok(true) => {
                            phase = Phase::LoggedIn;
                            send(&io, SessionEvent::Marker("Logged in by the logon script".into())).await;
                            send(&io, SessionEvent::Lifecycle(Lifecycle::Connected)).await;
                        }
                        Ok(false) => {}
                        Err((kind, message)) => return fail(&io, kind, message).await,
                    }
                }
            }
            _ = sleep_until_opt(deadline) => {
                if let Phase::LoggingIn { run, .. } = &phase {
                    let said = run.last_output();
                    return fail(&io, FailureKind::TimedOut, format!(
                        "Logon step {} of {} ({}) timed out: {} did not show /{}/ within {} s.{}",
                        run.step_index() + 1, run.step_count(), run.step_label(), t.label,
                        run.step_pattern(), run.step_timeout().as_secs(),
                        if said.is_empty() { " It sent nothing.".to_string() } else { format!(" It last said: \u{201c}{said}\u{201d}") },
                    )).await;
                }
            }
            input = io.input.recv() => match input {
                Some(ClientInput::Data(d)) => {
                    // Keystrokes during the scripted logon would interleave with it.
                    if matches!(phase, Phase::LoggedIn) {
                        let mut out = Vec::with_capacity(d.len() + 4);
                        proto.encode_input(&d, &mut out);
                        if let Err(e) = wr.write_all(&out).await {
                            break format!("Sending to {} failed: {e}", t.label);
                        }
                    }
                }
                Some(ClientInput::Resize { cols, rows }) => {
                    let mut out = Vec::new();
                    proto.resize(cols, rows, &mut out);
                    if !out.is_empty() && wr.write_all(&out).await.is_err() {
                        break format!("{} closed the connection.", t.label);
                    }
                    send(&io, SessionEvent::Resize { cols, rows }).await;
                }
                Some(ClientInput::Terminate { reason }) => break reason,
                None => break "The session was closed by the gateway.".to_string(),
            },
        }
    };
    let _ = wr.shutdown().await;
    send(
        &io,
        SessionEvent::Lifecycle(Lifecycle::Ended {
            reason,
            exit_status: None,
        }),
    )
    .await;
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Feeds new output to the script and types what it asks for. `Ok(true)`: logged in.
async fn drive_logon<W: tokio::io::AsyncWrite + Unpin>(
    t: &TelnetTarget,
    proto: &TelnetProtocol,
    io: &AdapterIo,
    run: &mut LogonRun,
    deadline: &mut Instant,
    data: &[u8],
    wr: &mut W,
) -> Result<bool, (FailureKind, String)> {
    let mut chunk = data;
    loop {
        let total = run.step_count();
        let (index, label, pieces) = match run.feed(chunk) {
            LogonAction::Wait => return Ok(false),
            LogonAction::Done => return Ok(true),
            LogonAction::Failed { index, label, said } => {
                return Err((
                    FailureKind::AuthenticationFailed,
                    format!(
                        "Logon step {} of {total} ({label}) failed: {} said \u{201c}{said}\u{201d}. The vault's credential for {} was probably refused: verify or rotate it.",
                        index + 1, t.label, t.username
                    ),
                ))
            }
            LogonAction::Matched { index, label, send } => {
                (index, label.to_string(), send.map(|p| p.to_vec()))
            }
        };
        chunk = &[];
        let note = match pieces {
            Some(pieces) => {
                let (wire, said) = typed_bytes(t, proto, &pieces).map_err(|m| {
                    (
                        FailureKind::Protocol,
                        format!("Logon step {} of {total} ({label}): {m}.", index + 1),
                    )
                })?;
                wr.write_all(&wire).await.map_err(|e| {
                    (
                        FailureKind::Unreachable,
                        format!("Sending to {} failed: {e}", t.label),
                    )
                })?;
                format!(
                    "Logon step {} of {total} ({label}): typed {said}",
                    index + 1
                )
            }
            None => format!("Logon step {} of {total} ({label}): seen", index + 1),
        };
        send(io, SessionEvent::Marker(note)).await;
        if run.finished() {
            return Ok(true);
        }
        *deadline = Instant::now() + run.step_timeout();
    }
}
