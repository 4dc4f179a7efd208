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
use tokio::sync::mpsc;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::adapter::{AdapterFuture, AdapterIo, ProtocolAdapter, TargetStream};
use crate::event::{ClientInput, FailureKind, Lifecycle, Protocol, SessionEvent};
use crate::Secret;
use logon::{
    fill_value, mask_secret, CompiledScript, Credentials, LogonAction, LogonRun, Piece, StreamMask,
    SETTLE,
};
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
    let creds = Credentials {
        username: &t.username,
        password: &t.password,
        enable_secret: t.enable_secret.as_ref(),
        rotation: None,
    };
    let (mut value, said) = fill_value(pieces, &creds)?;
    value.push(b'\r');
    let mut wire = Zeroizing::new(Vec::with_capacity(value.len() + 4));
    proto.encode_input(&value, &mut wire);
    Ok((wire, said))
}

/// Keystrokes kept while the script logs in (the rest are dropped).
const TYPE_AHEAD: usize = 4096;

type Reader = tokio::io::ReadHalf<TargetStream>;
type Writer = tokio::io::WriteHalf<TargetStream>;

/// The connection's moving parts, so reads look the same in every phase.
struct Conn {
    rd: Reader,
    wr: Writer,
    proto: TelnetProtocol,
    buf: Vec<u8>,
    reply: Vec<u8>,
    /// While logging in: the vault secrets masked in what is published, across reads.
    shown: Option<StreamMask>,
}

enum Read {
    /// Terminal data, already published.
    Data(Vec<u8>),
    Closed,
    /// The gateway side is gone.
    Abandoned,
}

impl Conn {
    /// Handles what one read from the target returned (`rd.read(&mut buf)`, awaited alone
    /// so that it stays cancel-safe inside `select!`): answers the protocol and publishes
    /// the terminal data. While logging in, any copy of a vault secret in the output is
    /// masked first (defence in depth against a target that echoes what the script typed).
    async fn handle(
        &mut self,
        read: std::io::Result<usize>,
        events: &mpsc::Sender<SessionEvent>,
        mask: Option<&TelnetTarget>,
    ) -> Read {
        let n = match read {
            Ok(0) | Err(_) => return Read::Closed,
            Ok(n) => n,
        };
        let mut data = Vec::with_capacity(n);
        self.reply.clear();
        self.proto
            .receive(&self.buf[..n], &mut data, &mut self.reply);
        if !self.reply.is_empty() && self.wr.write_all(&self.reply).await.is_err() {
            return Read::Closed;
        }
        // Published: masked across reads (a secret split between two is caught). The
        // script's runner gets this read at once, masked on its own.
        let published = match (&mut self.shown, mask) {
            (Some(m), Some(_)) => m.feed(&data),
            _ => data.clone(),
        };
        if let Some(t) = mask {
            hide_secrets(t, &mut data);
        }
        if !published.is_empty()
            && events
                .send(SessionEvent::Output(published.into()))
                .await
                .is_err()
        {
            return Read::Abandoned;
        }
        Read::Data(data)
    }
}

/// Masks every vault secret of `t` in `data`.
fn hide_secrets(t: &TelnetTarget, data: &mut [u8]) {
    mask_secret(data, t.password.expose());
    if let Some(e) = &t.enable_secret {
        mask_secret(data, e.expose());
    }
}

/// What the target last said, for a message: masked as a whole, since the runner's reads
/// were masked one by one and a secret split between two escaped that.
fn last_said(t: &TelnetTarget, run: &LogonRun) -> String {
    let mut said = run.last_output().into_bytes();
    hide_secrets(t, &mut said);
    String::from_utf8_lossy(&said).into_owned()
}

fn closed_during_logon(t: &TelnetTarget, run: &LogonRun) -> (FailureKind, String) {
    let said = last_said(t, run);
    (
        FailureKind::AuthenticationFailed,
        format!(
            "{} closed the connection during logon step {} of {} ({}).{}",
            t.label,
            run.step_index() + 1,
            run.step_count(),
            run.step_label(),
            if said.is_empty() {
                String::new()
            } else {
                format!(" It last said: \u{201c}{said}\u{201d}")
            },
        ),
    )
}

async fn run(t: TelnetTarget, stream: TargetStream, mut io: AdapterIo) {
    send(&io, SessionEvent::Lifecycle(Lifecycle::Connecting)).await;
    let (rd, wr) = tokio::io::split(stream);
    let mut c = Conn {
        rd,
        wr,
        proto: TelnetProtocol::new(io.cols, io.rows),
        buf: vec![0u8; 16 * 1024],
        reply: Vec::new(),
        shown: Some(StreamMask::new(
            &[Some(&t.password), t.enable_secret.as_ref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>(),
        )),
    };
    let mut hello = Vec::new();
    c.proto.start(&mut hello);
    if let Err(e) = c.wr.write_all(&hello).await {
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
    let mut type_ahead: Vec<u8> = Vec::new();
    let reason = loop {
        let (deadline, mask) = match &phase {
            Phase::LoggingIn { deadline, .. } => (Some(*deadline), Some(&t)),
            Phase::LoggedIn => (None, None),
        };
        tokio::select! {
            read = c.rd.read(&mut c.buf) => match c.handle(read, &io.events, mask).await {
                Read::Closed => {
                    if let Phase::LoggingIn { run, .. } = &phase {
                        let (kind, message) = closed_during_logon(&t, run);
                        return fail(&io, kind, message).await;
                    }
                    break format!("{} closed the connection.", t.label);
                }
                Read::Abandoned => break "the gateway closed the session".to_string(),
                Read::Data(data) => {
                    if let Phase::LoggingIn { run, deadline } = &mut phase {
                        match drive_logon(&t, &mut c, &io, run, deadline, &data).await {
                            Ok(true) => {
                                phase = Phase::LoggedIn;
                                // What was held back in case it began a secret goes out.
                                if let Some(rest) = c.shown.take().map(|mut m| m.finish()).filter(|r| !r.is_empty()) {
                                    send(&io, SessionEvent::Output(rest.into())).await;
                                }
                                send(&io, SessionEvent::Marker("Logged in by the logon script".into())).await;
                                send(&io, SessionEvent::Lifecycle(Lifecycle::Connected)).await;
                                if !type_ahead.is_empty() {
                                    let mut out = Vec::with_capacity(type_ahead.len() + 4);
                                    c.proto.encode_input(&std::mem::take(&mut type_ahead), &mut out);
                                    if let Err(e) = c.wr.write_all(&out).await {
                                        break format!("Sending to {} failed: {e}", t.label);
                                    }
                                }
                            }
                            Ok(false) => {}
                            Err((kind, message)) => return fail(&io, kind, message).await,
                        }
                    }
                }
            },
            _ = sleep_until_opt(deadline) => {
                if let Phase::LoggingIn { run, .. } = &phase {
                    let said = last_said(&t, run);
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
                    // Keystrokes during the scripted logon would interleave with it: they
                    // wait (bounded, like a terminal's type-ahead) until it is done.
                    if matches!(phase, Phase::LoggedIn) {
                        let mut out = Vec::with_capacity(d.len() + 4);
                        c.proto.encode_input(&d, &mut out);
                        if let Err(e) = c.wr.write_all(&out).await {
                            break format!("Sending to {} failed: {e}", t.label);
                        }
                    } else {
                        let room = TYPE_AHEAD.saturating_sub(type_ahead.len());
                        type_ahead.extend_from_slice(&d[..d.len().min(room)]);
                    }
                }
                // Typed by the gateway only once logged in (it waits for that); dropped
                // before, like nothing else, since a secret must not sit in a type-ahead.
                Some(ClientInput::Secret(k)) => {
                    if matches!(phase, Phase::LoggedIn) {
                        let mut out = Zeroizing::new(Vec::with_capacity(k.0.len() + 4));
                        c.proto.encode_input(k.0.expose(), &mut out);
                        if let Err(e) = c.wr.write_all(&out).await {
                            break format!("Sending to {} failed: {e}", t.label);
                        }
                    }
                }
                Some(ClientInput::Resize { cols, rows }) => {
                    let mut out = Vec::new();
                    c.proto.resize(cols, rows, &mut out);
                    if !out.is_empty() && c.wr.write_all(&out).await.is_err() {
                        break format!("{} closed the connection.", t.label);
                    }
                    send(&io, SessionEvent::Resize { cols, rows }).await;
                }
                Some(ClientInput::Terminate { reason }) => break reason,
                // Desktop input means nothing to a terminal.
                Some(ClientInput::Key { .. } | ClientInput::Pointer { .. } | ClientInput::Wheel { .. } | ClientInput::ReleaseAll | ClientInput::Clipboard { .. }) => {}
                None => break "The session was closed by the gateway.".to_string(),
            },
        }
    };
    let _ = c.wr.shutdown().await;
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

/// Reads until the target has been quiet for `SETTLE` (or the step deadline passes); what
/// arrives meanwhile is published and kept for the next step's pattern.
async fn settle(
    t: &TelnetTarget,
    c: &mut Conn,
    io: &AdapterIo,
    run: &mut LogonRun,
    deadline: Instant,
) -> Result<(), (FailureKind, String)> {
    loop {
        let until = std::cmp::min(Instant::now() + SETTLE, deadline);
        let read = match tokio::time::timeout_at(until, c.rd.read(&mut c.buf)).await {
            Err(_) => return Ok(()),
            Ok(read) => read,
        };
        match c.handle(read, &io.events, Some(t)).await {
            Read::Data(data) => run.append(&data),
            Read::Closed => return Err(closed_during_logon(t, run)),
            Read::Abandoned => {
                return Err((
                    FailureKind::Protocol,
                    "the gateway closed the session".into(),
                ))
            }
        }
        if Instant::now() >= deadline {
            return Ok(());
        }
    }
}

/// Feeds new output to the script and types what it asks for. `Ok(true)`: logged in.
async fn drive_logon(
    t: &TelnetTarget,
    c: &mut Conn,
    io: &AdapterIo,
    run: &mut LogonRun,
    deadline: &mut Instant,
    data: &[u8],
) -> Result<bool, (FailureKind, String)> {
    let mut chunk = data;
    loop {
        let total = run.step_count();
        let (index, label, pieces) = match run.feed(chunk) {
            LogonAction::Wait => return Ok(false),
            LogonAction::Done => return Ok(true),
            LogonAction::Failed { index, label, said } => {
                let mut said = said.into_bytes();
                hide_secrets(t, &mut said);
                let said = String::from_utf8_lossy(&said);
                return Err((
                    FailureKind::AuthenticationFailed,
                    format!(
                        "Logon step {} of {total} ({label}) failed: {} said \u{201c}{said}\u{201d}. The vault's credential for {} was probably refused: verify or rotate it.",
                        index + 1, t.label, t.username
                    ),
                ));
            }
            LogonAction::Matched { index, label, send } => {
                (index, label.to_string(), send.map(|p| p.to_vec()))
            }
        };
        chunk = &[];
        let note = match pieces {
            Some(pieces) => {
                if pieces.iter().any(Piece::is_secret) {
                    settle(t, c, io, run, *deadline).await?;
                }
                let (wire, said) = typed_bytes(t, &c.proto, &pieces).map_err(|m| {
                    (
                        FailureKind::Protocol,
                        format!("Logon step {} of {total} ({label}): {m}.", index + 1),
                    )
                })?;
                c.wr.write_all(&wire).await.map_err(|e| {
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
