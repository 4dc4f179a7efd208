//! Why: some landing servers forbid TCP forwarding, or are only reached by Telnet, so a
//! tunnel cannot pass through them. In *interactive mode* the gateway logs in to such a
//! landing server's shell (over SSH, with its vault account and host-key pin) and types the
//! client command for the next hop (`exec ssh ...` / `exec telnet ...`), answering its prompts
//! from the vault: the host-key question (decided by the gateway's own pin for that machine,
//! never by the landing server's known_hosts), the password, and for a Telnet target the
//! resource's logon script. `exec` replaces the landing server's shell, so when the target
//! session ends the user is never left in a landing server's shell.
//!
//! What the landing servers print is kept out of the terminal: it goes to the session's
//! connection log (a timeline marker) with every vault secret masked. The user's terminal
//! starts at the target's prompt.

use std::time::Duration;

use regex::bytes::{Regex, RegexBuilder};
use russh::ChannelMsg;
use tokio::sync::mpsc;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::adapter::{AdapterFuture, AdapterIo, ProtocolAdapter, TargetStream};
use crate::event::{ClientInput, FailureKind, Lifecycle, Protocol, SessionEvent};
use crate::host_key::{HostKeyObservation, HostKeyPolicy};
use crate::ssh::{login, SshTarget};
use crate::telnet::logon::{
    fill_value, mask_secret, visible_text, CompiledScript, Credentials, LogonAction, LogonRun,
    Piece, SETTLE,
};
use crate::telnet::protocol::TelnetProtocol;
use crate::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Default client commands, with `{host}`, `{port}` and `{username}` (each filled in quoted
/// for the shell, see `fill`). The SSH command keeps the landing server's known_hosts out of
/// it: the gateway checks the key itself. `--` ends the options, so a destination is never
/// read as one.
pub const DEFAULT_SSH_COMMAND: &str = "exec ssh -p {port} -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=ask -o PreferredAuthentications=keyboard-interactive,password -o NumberOfPasswordPrompts=1 -- {username}@{host}";
pub const DEFAULT_TELNET_COMMAND: &str = "exec telnet -- {host} {port}";

const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Before typing the command for a landing server that has a secondary, the gateway asks
/// from the current shell whether its primary answers, without logging in: `ssh` in batch
/// mode with no known hosts ends at "Host key verification failed." when the machine speaks
/// SSH, and at "Connection refused" / "timed out" (TCP or the SSH banner, within the
/// failover time) when it does not; `telnet` with no input connects and closes at once.
/// Only then is the real command typed with `exec`, which a failed attempt could not
/// survive (the shell it replaced is gone). Costs one SSH handshake, only with a secondary.
const SSH_PROBE: &str = "ssh -p {port} -o BatchMode=yes -o ConnectTimeout={secs} -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -- {username}@{host} true </dev/null";
const TELNET_PROBE: &str = "telnet -- {host} {port} </dev/null";
/// How long past the failover time the gateway waits for a probe before interrupting it.
const PROBE_GRACE: Duration = Duration::from_secs(3);
const WINDOW: usize = 16 * 1024;
const LOG_TAIL: usize = 4000;

/// A machine reached by typing `ssh` at the previous shell.
pub struct TypedSshHop {
    /// For messages: "hop 2 of 3, landing server DC-2" or "the target web-1".
    pub label: String,
    pub resource_id: String,
    pub resource_name: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Secret,
    pub host_key: HostKeyPolicy,
    /// The command template (see `DEFAULT_SSH_COMMAND`).
    pub command: String,
}

/// A machine reached by typing `telnet` at the previous shell (or, as the first landing
/// server, by Telnet from the gateway), logged in to by its logon script.
pub struct TypedTelnetHop {
    pub label: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Secret,
    pub enable_secret: Option<Secret>,
    pub script: CompiledScript,
    /// The command template (see `DEFAULT_TELNET_COMMAND`); unused for a first hop.
    pub command: String,
}

pub enum TypedHop {
    Ssh(TypedSshHop),
    Telnet(TypedTelnetHop),
}

impl TypedHop {
    fn label(&self) -> &str {
        match self {
            TypedHop::Ssh(h) => &h.label,
            TypedHop::Telnet(t) => &t.label,
        }
    }
}

/// A landing server reached by typing at the previous one's shell: its primary machine, and
/// the secondary to type instead when the primary does not answer (see `probe`).
pub struct TypedLandingServer {
    pub name: String,
    pub primary: TypedHop,
    pub secondary: Option<TypedHop>,
}

/// A landing server reached by typing whose primary did not answer, so its secondary was
/// used (for the audit).
pub struct Failover {
    pub landing_server: String,
    pub primary: String,
    pub secondary: String,
    pub why: String,
}

pub enum TypedTarget {
    Ssh(TypedSshHop),
    Telnet(TypedTelnetHop),
}

/// How the gateway logs in to the first interactive landing server.
pub enum FirstHop {
    Ssh(SshTarget),
    Telnet(TypedTelnetHop),
}

pub struct InteractiveChain {
    /// The first interactive landing server, logged in to on the given stream.
    pub first: FirstHop,
    pub first_label: String,
    /// Further landing servers, each reached by typing at the previous one's shell.
    pub hops: Vec<TypedLandingServer>,
    pub target: TypedTarget,
    /// Host keys seen by the typed `ssh` commands: (resource id, resource name, observation).
    pub report: mpsc::UnboundedSender<(String, String, HostKeyObservation)>,
    /// The first landing server's own key (as the SSH adapter reports it).
    pub first_report: tokio::sync::oneshot::Sender<HostKeyObservation>,
    /// Typed landing servers whose secondary was used.
    pub failovers: mpsc::UnboundedSender<Failover>,
}

impl ProtocolAdapter for InteractiveChain {
    fn protocol(&self) -> Protocol {
        match self.target {
            TypedTarget::Ssh(_) => Protocol::Ssh,
            TypedTarget::Telnet(_) => Protocol::Telnet,
        }
    }

    fn run(self: Box<Self>, target: TargetStream, io: AdapterIo) -> AdapterFuture {
        Box::pin(run(*self, target, io))
    }
}

fn re(p: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(p).case_insensitive(true).build()
}

struct Patterns {
    prompt: Regex,
    password: Regex,
    host_key: Regex,
    fingerprint: Regex,
    /// What `ssh`/`telnet` say when the machine does not answer (see `SSH_PROBE`).
    unreachable: Regex,
    failure: Regex,
}

impl Patterns {
    /// The patterns are constants of this file (a unit test compiles them).
    fn new() -> Result<Self, regex::Error> {
        Ok(Patterns {
            prompt: re(r"[$#%>] ?$")?,
            password: re(r"password:\s*$")?,
            host_key: re(r"continue connecting \(yes/no")?,
            fingerprint: re(r"(SHA256:[A-Za-z0-9+/=]+)")?,
            unreachable: re(
                r"connection refused|no route to host|network is unreachable|could not resolve|name or service not known|temporary failure in name resolution|unknown host|timed out|unable to connect",
            )?,
            failure: re(
                r"permission denied|connection refused|no route to host|could not resolve hostname|connection timed out|host key verification failed|remote host identification has changed|connection closed|unable to connect|login incorrect",
            )?,
        })
    }
}

type Fail = (FailureKind, String);

/// The first landing server's terminal: a shell channel over SSH, or a Telnet connection.
enum Wire {
    Ssh {
        channel: russh::Channel<russh::client::Msg>,
        /// The connection lives as long as the terminal.
        _handle: crate::ssh::SshHandle,
    },
    Telnet(TelnetWire),
}

/// A Telnet connection as a terminal: a reader task answers the protocol and passes terminal
/// data on a queue, so `recv` is cancel-safe inside `select!`.
struct TelnetWire {
    rx: mpsc::Receiver<Vec<u8>>,
    wr: std::sync::Arc<tokio::sync::Mutex<tokio::io::WriteHalf<TargetStream>>>,
    proto: std::sync::Arc<std::sync::Mutex<TelnetProtocol>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for TelnetWire {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

enum WireEvent {
    Data(Vec<u8>),
    Exit(u32),
    Closed,
    Other,
}

impl TelnetWire {
    async fn start(stream: TargetStream, cols: u16, rows: u16) -> Result<TelnetWire, String> {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut proto = TelnetProtocol::new(cols, rows);
        let mut hello = Vec::new();
        proto.start(&mut hello);
        wr.write_all(&hello).await.map_err(|e| e.to_string())?;
        let wr = std::sync::Arc::new(tokio::sync::Mutex::new(wr));
        let proto = std::sync::Arc::new(std::sync::Mutex::new(proto));
        let (tx, rx) = mpsc::channel(64);
        let (w, pr) = (wr.clone(), proto.clone());
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let (mut data, mut reply) = (Vec::new(), Vec::new());
                match pr.lock() {
                    Ok(mut p) => p.receive(&buf[..n], &mut data, &mut reply),
                    Err(_) => return,
                }
                if !reply.is_empty() && w.lock().await.write_all(&reply).await.is_err() {
                    return;
                }
                if !data.is_empty() && tx.send(data).await.is_err() {
                    return;
                }
            }
        });
        Ok(TelnetWire {
            rx,
            wr,
            proto,
            reader,
        })
    }
}

impl Wire {
    /// The next thing the terminal did. Cancel-safe.
    async fn recv(&mut self) -> WireEvent {
        match self {
            Wire::Ssh { channel, .. } => match channel.wait().await {
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    WireEvent::Data(data.to_vec())
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => WireEvent::Exit(exit_status),
                // OpenSSH sends the exit status after EOF: keep reading until Close.
                Some(ChannelMsg::Close) | None => WireEvent::Closed,
                Some(_) => WireEvent::Other,
            },
            Wire::Telnet(t) => match t.rx.recv().await {
                Some(d) => WireEvent::Data(d),
                None => WireEvent::Closed,
            },
        }
    }

    async fn send(&mut self, data: &[u8]) -> Result<(), String> {
        match self {
            Wire::Ssh { channel, .. } => channel.data(data).await.map_err(|e| e.to_string()),
            Wire::Telnet(t) => {
                let mut out = Zeroizing::new(Vec::with_capacity(data.len() + 4));
                match t.proto.lock() {
                    Ok(p) => p.encode_input(data, &mut out),
                    Err(_) => return Err("the Telnet state is unusable".into()),
                }
                t.wr.lock()
                    .await
                    .write_all(&out)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    async fn resize(&mut self, cols: u16, rows: u16) {
        match self {
            Wire::Ssh { channel, .. } => {
                let _ = channel.window_change(cols as u32, rows as u32, 0, 0).await;
            }
            Wire::Telnet(t) => {
                let mut out = Vec::new();
                if let Ok(mut p) = t.proto.lock() {
                    p.resize(cols, rows, &mut out);
                }
                if !out.is_empty() {
                    let _ = t.wr.lock().await.write_all(&out).await;
                }
            }
        }
    }

    async fn close(&mut self) {
        match self {
            Wire::Ssh { channel, .. } => {
                let _ = channel.close().await;
            }
            Wire::Telnet(t) => {
                let _ = t.wr.lock().await.shutdown().await;
            }
        }
    }
}

/// The landing server's terminal while the chain is being built.
struct Term {
    wire: Wire,
    seen: Vec<u8>,
    log: Vec<u8>,
    masks: Vec<Zeroizing<Vec<u8>>>,
}

impl Term {
    fn mask(&self, data: &mut [u8]) {
        for m in &self.masks {
            mask_secret(data, m);
        }
    }

    /// Waits for more output until `deadline`: the new bytes (masked), or None when the
    /// deadline passed.
    async fn read_more(&mut self, deadline: Instant, label: &str) -> Result<Option<Vec<u8>>, Fail> {
        loop {
            match tokio::time::timeout_at(deadline, self.wire.recv()).await {
                Err(_) => return Ok(None),
                Ok(WireEvent::Data(data)) => {
                    let mut d = data;
                    self.mask(&mut d);
                    self.seen.extend_from_slice(&d);
                    self.log.extend_from_slice(&d);
                    for buf in [&mut self.seen, &mut self.log] {
                        if buf.len() > WINDOW {
                            let cut = buf.len() - WINDOW;
                            buf.drain(..cut);
                        }
                    }
                    return Ok(Some(d));
                }
                Ok(WireEvent::Closed) => {
                    return Err((
                        FailureKind::Unreachable,
                        format!(
                            "{label}: the connection closed. It last said: \u{201c}{}\u{201d}",
                            self.tail(120)
                        ),
                    ))
                }
                Ok(WireEvent::Exit(_)) | Ok(WireEvent::Other) => {}
            }
        }
    }

    /// Keeps reading until the target is quiet for `SETTLE` (before typing a secret: many
    /// programs print the prompt before they turn echo off).
    async fn settle(&mut self, deadline: Instant, label: &str) -> Result<(), Fail> {
        loop {
            let until = std::cmp::min(Instant::now() + SETTLE, deadline);
            if self.read_more(until, label).await?.is_none() || Instant::now() >= deadline {
                return Ok(());
            }
        }
    }

    async fn type_line(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        let mut line = Zeroizing::new(bytes.to_vec());
        line.push(b'\r');
        self.wire.send(&line[..]).await.map_err(|e| {
            (
                FailureKind::Unreachable,
                format!("sending to the landing server failed: {e}"),
            )
        })
    }

    fn text(&self) -> String {
        visible_text(&self.seen)
    }

    /// The end of the output so far, for an error message. Masked again as a whole: a secret
    /// echoed across two reads escapes the per-read mask.
    fn tail(&self, n: usize) -> String {
        let mut seen = self.seen.clone();
        self.mask(&mut seen);
        let t = visible_text(&seen);
        let t = t.trim();
        let start = t
            .char_indices()
            .rev()
            .nth(n.saturating_sub(1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        t[start..].replace(['\r', '\n'], " ")
    }
}

/// What `text` says from byte `at` to the end of that line, trimmed, for quoting in a
/// message.
fn said_from(text: &str, at: usize) -> String {
    String::from_utf8_lossy(&text.as_bytes()[at..])
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// A client command line for `host`, `port` and `username`, each value quoted for the shell
/// it is typed at (the template is an administrator's; the values are not). A user name the
/// shell or the client could misread is refused before anything is typed.
fn fill(template: &str, host: &str, port: u16, username: &str) -> Result<String, String> {
    if template.contains("{username}") {
        crate::shell::check_username(username)?;
    }
    // One pass, so a value that itself reads "{host}" is never filled in again.
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (value, len) = if tail.starts_with("{host}") {
            (crate::shell::quote(host), "{host}".len())
        } else if tail.starts_with("{port}") {
            (port.to_string(), "{port}".len())
        } else if tail.starts_with("{username}") {
            (crate::shell::quote(username), "{username}".len())
        } else {
            ("{".to_string(), 1)
        };
        out.push_str(&value);
        rest = &tail[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A command line the gateway will not type (see `fill`).
fn refused(label: &str, why: String) -> Fail {
    (
        FailureKind::PermissionDenied,
        format!("{label}: not typed at the landing server's shell: {why}"),
    )
}

async fn marker(io: &AdapterIo, text: String) {
    let _ = io.events.send(SessionEvent::Marker(text)).await;
}

/// Asks from the current shell whether `hop`'s machine answers (see `SSH_PROBE`): None when
/// it does, else what was said.
async fn probe(term: &mut Term, hop: &TypedHop, p: &Patterns) -> Result<Option<String>, Fail> {
    let secs = crate::hop_chain::FAILOVER_AFTER.as_secs().to_string();
    let (label, command) = match hop {
        TypedHop::Ssh(h) => (
            &h.label,
            fill(
                &SSH_PROBE.replace("{secs}", &secs),
                &h.host,
                h.port,
                &h.username,
            ),
        ),
        TypedHop::Telnet(t) => (&t.label, fill(TELNET_PROBE, &t.host, t.port, &t.username)),
    };
    let command = command.map_err(|e| refused(label, e))?;
    term.seen.clear();
    term.type_line(command.as_bytes()).await?;
    let deadline = Instant::now() + crate::hop_chain::FAILOVER_AFTER + PROBE_GRACE;
    loop {
        // What follows the echoed command line, up to the shell's next prompt.
        let text = term.text();
        let after = text.split_once('\n').map(|(_, a)| a).unwrap_or("");
        if p.prompt.is_match(after.as_bytes()) {
            return Ok(p.unreachable.find(after.as_bytes()).map(|m| {
                // The whole line: "ssh: connect to host ...: Connection refused".
                let line_start = after[..m.start()].rfind('\n').map(|i| i + 1).unwrap_or(0);
                said_from(after, line_start)
            }));
        }
        if term.read_more(deadline, label).await?.is_none() {
            // Still waiting: interrupt it and get the shell back.
            term.seen.clear();
            term.wire.send(b"\x03").await.map_err(|e| {
                (
                    FailureKind::Unreachable,
                    format!("{label}: sending to the landing server failed: {e}"),
                )
            })?;
            let back = Instant::now() + PROBE_GRACE;
            while !p.prompt.is_match(term.text().as_bytes()) {
                if term.read_more(back, label).await?.is_none() {
                    return Err((
                        FailureKind::TimedOut,
                        format!("{label}: checking whether it answers, the previous landing server's shell did not come back. It last said: \u{201c}{}\u{201d}", term.tail(120)),
                    ));
                }
            }
            return Ok(Some(format!(
                "no answer within {} s",
                crate::hop_chain::FAILOVER_AFTER.as_secs()
            )));
        }
    }
}

/// Types `ssh` for `hop` at the current shell and answers its prompts until the next shell
/// prompt appears.
async fn typed_ssh(
    term: &mut Term,
    hop: &TypedSshHop,
    p: &Patterns,
    io: &AdapterIo,
    report: &mpsc::UnboundedSender<(String, String, HostKeyObservation)>,
) -> Result<(), Fail> {
    term.seen.clear();
    term.masks
        .push(Zeroizing::new(hop.password.expose().to_vec()));
    let command = fill(&hop.command, &hop.host, hop.port, &hop.username)
        .map_err(|e| refused(&hop.label, e))?;
    term.type_line(command.as_bytes()).await?;
    marker(io, format!("{}: typed the ssh command", hop.label)).await;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut password_sent = false;
    // Whether the gateway judged the machine's key: a password is typed only after it did,
    // unless no pin applies yet (trust on first use), which then has nothing to compare.
    let mut key_judged = false;
    loop {
        let text = term.text();
        if let Some(m) = p.failure.find(text.as_bytes()) {
            let said = said_from(&text, m.start());
            let kind = if said.to_lowercase().contains("host key")
                || said.to_lowercase().contains("identification")
            {
                FailureKind::HostKeyMismatch
            } else if password_sent || said.to_lowercase().contains("permission denied") {
                FailureKind::AuthenticationFailed
            } else {
                FailureKind::Unreachable
            };
            return Err((
                kind,
                format!(
                    "{}: the landing server's ssh said \u{201c}{said}\u{201d}",
                    hop.label
                ),
            ));
        }
        if p.host_key.is_match(text.as_bytes()) {
            let presented = p
                .fingerprint
                .captures(text.as_bytes())
                .and_then(|c| c.get(1))
                .map(|m| String::from_utf8_lossy(m.as_bytes()).to_string())
                .unwrap_or_default();
            if presented.is_empty() {
                // A question without a fingerprint the gateway can read: nothing to judge.
                let _ = term.type_line(b"no").await;
                return Err((
                    FailureKind::HostKeyUnknown,
                    format!(
                        "{}: the landing server's ssh asked about the host key without showing a SHA256 fingerprint, so the gateway could not check it against its pin. It said: \u{201c}{}\u{201d}",
                        hop.label,
                        term.tail(160)
                    ),
                ));
            }
            key_judged = true;
            let (obs, accept) = hop.host_key.judge(presented);
            let _ = report.send((
                hop.resource_id.clone(),
                hop.resource_name.clone(),
                obs.clone(),
            ));
            if !accept {
                let _ = term.type_line(b"no").await;
                return Err(match obs.refusal(&hop.resource_name) {
                    Some((kind, why)) => (kind, format!("{}: {why}", hop.label)),
                    None => (
                        FailureKind::Protocol,
                        format!("{}: host key refused", hop.label),
                    ),
                });
            }
            term.seen.clear();
            term.type_line(b"yes").await?;
            continue;
        }
        if p.password.is_match(text.as_bytes()) {
            if !key_judged && !matches!(hop.host_key, HostKeyPolicy::TrustOnFirstUse) {
                // The landing server's ssh accepted a key on its own (its known_hosts or
                // options): the gateway's pin was never checked, so no password is typed.
                let _ = term.wire.send(b"\x03").await;
                return Err((
                    FailureKind::HostKeyUnknown,
                    format!(
                        "{}: the landing server's ssh asked for the password without showing the host key, so the gateway could not check it against its pin; nothing was typed. Keep -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=ask in the landing server's ssh command",
                        hop.label
                    ),
                ));
            }
            if password_sent {
                return Err((FailureKind::AuthenticationFailed, format!("{}: the vault's password for {} was refused. The stored secret is probably out of date: verify or rotate it.", hop.label, hop.username)));
            }
            term.settle(deadline, &hop.label).await?;
            term.seen.clear();
            term.type_line(hop.password.expose()).await?;
            password_sent = true;
            marker(
                io,
                format!("{}: typed the password (not recorded)", hop.label),
            )
            .await;
            continue;
        }
        if password_sent && p.prompt.is_match(text.as_bytes()) {
            return Ok(());
        }
        if term.read_more(deadline, &hop.label).await?.is_none() {
            return Err((
                FailureKind::TimedOut,
                format!(
                    "{}: no shell prompt within {} s. It last said: \u{201c}{}\u{201d}",
                    hop.label,
                    STEP_TIMEOUT.as_secs(),
                    term.tail(120)
                ),
            ));
        }
    }
}

/// Runs `hop`'s logon script over the terminal, after typing its `telnet` command at the
/// current shell when `type_command` (a first hop is already connected by Telnet).
async fn telnet_logon(
    term: &mut Term,
    hop: &TypedTelnetHop,
    type_command: bool,
    p: &Patterns,
    io: &AdapterIo,
) -> Result<(), Fail> {
    let TypedTelnetHop {
        label,
        host,
        port,
        username,
        password,
        enable_secret,
        script,
        command,
    } = hop;
    let label = label.as_str();
    term.seen.clear();
    term.masks.push(Zeroizing::new(password.expose().to_vec()));
    if let Some(e) = enable_secret {
        term.masks.push(Zeroizing::new(e.expose().to_vec()));
    }
    if type_command {
        let command = fill(command, host, *port, username).map_err(|e| refused(label, e))?;
        term.type_line(command.as_bytes()).await?;
        marker(io, format!("{label}: typed the telnet command")).await;
    }
    let mut run = LogonRun::new(script.clone());
    let mut deadline = Instant::now() + run.step_timeout();
    let mut pending: Vec<u8> = Vec::new();
    loop {
        if run.step_index() == 0 {
            let text = term.text();
            if let Some(m) = p.failure.find(text.as_bytes()) {
                let said = said_from(&text, m.start());
                return Err((
                    FailureKind::Unreachable,
                    format!("{label}: the landing server's telnet said \u{201c}{said}\u{201d}"),
                ));
            }
        }
        let mut chunk = std::mem::take(&mut pending);
        loop {
            let total = run.step_count();
            let action = match run.feed(&chunk) {
                LogonAction::Wait => None,
                LogonAction::Done => return Ok(()),
                LogonAction::Failed { index, label: step, said } => {
                    return Err((FailureKind::AuthenticationFailed, format!("{label}: logon step {} of {total} ({step}) failed: the target said \u{201c}{said}\u{201d}. The vault's credential for {username} was probably refused: verify or rotate it.", index + 1)))
                }
                LogonAction::Matched { index, label: step, send } => Some((index, step.to_string(), send.map(|s| s.to_vec()))),
            };
            chunk.clear();
            let Some((index, step, send)) = action else {
                break;
            };
            if let Some(pieces) = send {
                let creds = Credentials {
                    username,
                    password,
                    enable_secret: enable_secret.as_ref(),
                    rotation: None,
                };
                let (value, _) = fill_value(&pieces, &creds)
                    .map_err(|m| (FailureKind::Protocol, format!("{label}: {m}")))?;
                let secret = pieces.iter().any(Piece::is_secret);
                if secret {
                    let before = term.seen.len();
                    term.settle(deadline, label).await?;
                    // What arrived while settling belongs to the next step.
                    chunk = term.seen[before.min(term.seen.len())..].to_vec();
                    run.append(&chunk);
                    chunk.clear();
                }
                term.type_line(&value).await?;
                marker(
                    io,
                    format!(
                        "{label}: logon step {} of {total} ({step}): typed {}",
                        index + 1,
                        if secret {
                            "a secret (not recorded)"
                        } else {
                            "a value"
                        }
                    ),
                )
                .await;
            }
            if run.finished() {
                return Ok(());
            }
            deadline = Instant::now() + run.step_timeout();
        }
        match term.read_more(deadline, label).await? {
            Some(d) => pending = d,
            None => {
                return Err((
                    FailureKind::TimedOut,
                    format!(
                    "{label}: logon step {} of {} ({}) timed out. It last said: \u{201c}{}\u{201d}",
                    run.step_index() + 1,
                    run.step_count(),
                    run.step_label(),
                    term.tail(120)
                ),
                ))
            }
        }
    }
}

async fn build(
    chain: &mut InteractiveChain,
    stream: TargetStream,
    io: &AdapterIo,
) -> Result<Term, Fail> {
    let p = Patterns::new().map_err(|e| {
        (
            FailureKind::Protocol,
            format!("internal pattern error: {e}"),
        )
    })?;
    let mut term = match &chain.first {
        FirstHop::Ssh(first) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let handle = login(first, tx, stream)
                .await
                .map_err(|(k, m)| (k, format!("{}: {m}", chain.first_label)));
            if let Ok(obs) = rx.await {
                let (done_tx, _) = tokio::sync::oneshot::channel();
                let report = std::mem::replace(&mut chain.first_report, done_tx);
                let _ = report.send(obs);
            }
            let handle = handle?;
            let shell = async {
                let c = handle.channel_open_session().await?;
                c.request_pty(
                    true,
                    "xterm-256color",
                    io.cols as u32,
                    io.rows as u32,
                    0,
                    0,
                    &[],
                )
                .await?;
                c.request_shell(true).await?;
                Ok::<_, russh::Error>(c)
            };
            let channel = shell.await.map_err(|e| {
                (
                    FailureKind::PermissionDenied,
                    format!("{}: no shell: {e}", chain.first_label),
                )
            })?;
            let mut term = Term {
                wire: Wire::Ssh {
                    channel,
                    _handle: handle,
                },
                seen: Vec::new(),
                log: Vec::new(),
                masks: Vec::new(),
            };
            let deadline = Instant::now() + STEP_TIMEOUT;
            while !p.prompt.is_match(term.text().as_bytes()) {
                if term
                    .read_more(deadline, &chain.first_label)
                    .await?
                    .is_none()
                {
                    return Err((
                        FailureKind::TimedOut,
                        format!(
                            "{}: no shell prompt within {} s",
                            chain.first_label,
                            STEP_TIMEOUT.as_secs()
                        ),
                    ));
                }
            }
            term
        }
        FirstHop::Telnet(first) => {
            // Telnet has no host key; the first landing server is logged in by its script.
            let wire = TelnetWire::start(stream, io.cols, io.rows)
                .await
                .map_err(|e| {
                    (
                        FailureKind::Unreachable,
                        format!("{}: {e}", chain.first_label),
                    )
                })?;
            let mut term = Term {
                wire: Wire::Telnet(wire),
                seen: Vec::new(),
                log: Vec::new(),
                masks: Vec::new(),
            };
            telnet_logon(&mut term, first, false, &p, io).await?;
            term
        }
    };
    marker(
        io,
        format!("{}: logged in (interactive mode)", chain.first_label),
    )
    .await;
    for landing in &chain.hops {
        let mut hop = &landing.primary;
        if let Some(secondary) = &landing.secondary {
            if let Some(why) = probe(&mut term, hop, &p).await? {
                marker(
                    io,
                    format!(
                        "{}: did not answer ({why}); using its secondary, {}",
                        hop.label(),
                        secondary.label()
                    ),
                )
                .await;
                let _ = chain.failovers.send(Failover {
                    landing_server: landing.name.clone(),
                    primary: hop.label().to_string(),
                    secondary: secondary.label().to_string(),
                    why,
                });
                hop = secondary;
            }
        }
        match hop {
            TypedHop::Ssh(h) => typed_ssh(&mut term, h, &p, io, &chain.report).await?,
            TypedHop::Telnet(h) => telnet_logon(&mut term, h, true, &p, io).await?,
        }
    }
    match &chain.target {
        TypedTarget::Ssh(t) => typed_ssh(&mut term, t, &p, io, &chain.report).await?,
        TypedTarget::Telnet(t) => telnet_logon(&mut term, t, true, &p, io).await?,
    }
    Ok(term)
}

async fn run(mut chain: InteractiveChain, stream: TargetStream, mut io: AdapterIo) {
    let _ = io
        .events
        .send(SessionEvent::Lifecycle(Lifecycle::Connecting))
        .await;
    let built = build(&mut chain, stream, &io).await;
    let mut term = match built {
        Ok(t) => t,
        Err((kind, message)) => {
            let _ = io
                .events
                .send(SessionEvent::Lifecycle(Lifecycle::Failed { kind, message }))
                .await;
            return;
        }
    };
    // The landing servers' output goes to the connection log, not the terminal; the user's
    // screen starts with the target's prompt line.
    let mut log = term.log.clone();
    term.mask(&mut log);
    let log = visible_text(&log);
    let start = log
        .char_indices()
        .rev()
        .nth(LOG_TAIL)
        .map(|(i, _)| i)
        .unwrap_or(0);
    marker(&io, format!("Connection log: {}", log[start..].trim())).await;
    let prompt_line = match term.seen.iter().rposition(|b| *b == b'\n') {
        Some(i) => term.seen[i + 1..].to_vec(),
        None => term.seen.clone(),
    };
    let _ = io
        .events
        .send(SessionEvent::Lifecycle(Lifecycle::Connected))
        .await;
    if !prompt_line.is_empty() {
        let _ = io
            .events
            .send(SessionEvent::Output(prompt_line.as_slice().into()))
            .await;
    }
    let mut exit_status = None;
    let reason = loop {
        tokio::select! {
            ev = term.wire.recv() => match ev {
                WireEvent::Data(data) => {
                    let delivered = io.events.send(SessionEvent::Output(data.as_slice().into())).await;
                    if delivered.is_err() {
                        break "the gateway closed the session".to_string();
                    }
                }
                WireEvent::Exit(s) => exit_status = Some(s),
                WireEvent::Closed => break "The session through the landing servers ended.".to_string(),
                WireEvent::Other => {}
            },
            input = io.input.recv() => match input {
                Some(ClientInput::Data(d)) => {
                    if let Err(e) = term.wire.send(&d[..]).await {
                        break format!("Sending through the landing server failed: {e}");
                    }
                }
                Some(ClientInput::Secret(k)) => {
                    if let Err(e) = term.wire.send(k.0.expose()).await {
                        break format!("Sending through the landing server failed: {e}");
                    }
                }
                Some(ClientInput::Resize { cols, rows }) => {
                    term.wire.resize(cols, rows).await;
                    let _ = io.events.send(SessionEvent::Resize { cols, rows }).await;
                }
                Some(ClientInput::Terminate { reason }) => break reason,
                // Desktop input means nothing to a terminal.
                Some(ClientInput::Key { .. } | ClientInput::Pointer { .. } | ClientInput::Wheel { .. } | ClientInput::ReleaseAll | ClientInput::Clipboard { .. }) => {}
                None => break "The session was closed by the gateway.".to_string(),
            },
        }
    };
    term.wire.close().await;
    let _ = io
        .events
        .send(SessionEvent::Lifecycle(Lifecycle::Ended {
            reason,
            exit_status,
        }))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile_and_match_openssh_prompts() {
        let p = Patterns::new().expect("the patterns compile");
        assert!(p
            .host_key
            .is_match(b"Are you sure you want to continue connecting (yes/no/[fingerprint])? "));
        let fp = p
            .fingerprint
            .captures(b"ED25519 key fingerprint is SHA256:abc+/9=.\r\n")
            .and_then(|c| c.get(1))
            .map(|m| m.as_bytes().to_vec());
        assert_eq!(fp.as_deref(), Some(&b"SHA256:abc+/9="[..]));
        assert!(p.password.is_match(b"ops@10.0.0.5's password: "));
        assert!(p.failure.is_match(b"Permission denied, please try again."));
        assert!(p.prompt.is_match(b"ops@web-1:~$ "));
        assert!(!p.prompt.is_match(b"exec ssh -p 22 ops@10.0.0.5\r\n"));
        // The probe: a machine that does not answer, and one that does.
        for said in [
            "ssh: connect to host 10.0.0.5 port 22: Connection refused",
            "Connection timed out during banner exchange",
            "ssh: connect to host 10.0.0.5 port 22: No route to host",
            "telnet: Unable to connect to remote host: Connection refused",
        ] {
            assert!(p.unreachable.is_match(said.as_bytes()), "{said}");
        }
        for said in [
            "Host key verification failed.",
            "Connected to 10.0.0.5.\r\nEscape character is '^]'.\r\nConnection closed by foreign host.",
            &fill(SSH_PROBE, "10.0.0.5", 22, "ops").expect("filled"),
        ] {
            assert!(!p.unreachable.is_match(said.as_bytes()), "{said}");
        }
    }

    #[test]
    fn commands_are_filled_in() {
        assert_eq!(
            fill(DEFAULT_TELNET_COMMAND, "10.0.0.9", 23, "x").expect("filled"),
            "exec telnet -- 10.0.0.9 23"
        );
        let ssh = fill(DEFAULT_SSH_COMMAND, "h", 2222, "ops").expect("filled");
        assert!(
            ssh.starts_with("exec ssh -p 2222 ") && ssh.ends_with(" -- ops@h"),
            "{ssh}"
        );
    }

    /// The words a POSIX shell makes of a filled command line (with `ssh` and `telnet`
    /// standing in as functions that print their arguments), and whether anything ran.
    fn shell_words(line: &str, canary: &std::path::Path) -> Vec<String> {
        let script = format!(
            "cd {dir} || exit 9; ssh() {{ printf '<%s>\\n' \"$@\"; }}; telnet() {{ ssh \"$@\"; }}; {line}",
            dir = canary.parent().expect("dir").display(),
            line = line.strip_prefix("exec ").unwrap_or(line),
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_start_matches('<').trim_end_matches('>').to_string())
            .collect()
    }

    #[test]
    fn hostile_values_are_typed_as_literal_words_or_refused() {
        let dir = std::env::temp_dir().join(format!("pc-fill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let canary = dir.join("ran");
        let _ = std::fs::remove_file(&canary);
        // Hosts the vault refuses anyway, quoted all the same.
        for host in [
            "h$(touch ran)",
            "h;touch ran",
            "-oProxyCommand=touch ran",
            "h`touch ran`",
        ] {
            for template in [
                DEFAULT_SSH_COMMAND,
                SSH_PROBE,
                DEFAULT_TELNET_COMMAND,
                TELNET_PROBE,
            ] {
                let line = fill(template, host, 22, "ops").expect("host is quoted, not refused");
                let words = shell_words(&line, &canary);
                assert!(!canary.exists(), "{line} ran something");
                let want = if template.contains("{username}") {
                    format!("ops@{host}")
                } else {
                    host.to_string()
                };
                let at = words.iter().position(|w| w == "--").expect("-- typed");
                assert_eq!(words.get(at + 1), Some(&want), "{line}: {words:?}");
            }
        }
        // User names are refused before anything is typed.
        for user in [
            "x$(touch ran)",
            "x`touch ran`",
            "a;touch ran",
            "-oProxyCommand=x",
            "a b",
            "a\nb",
        ] {
            for template in [DEFAULT_SSH_COMMAND, SSH_PROBE] {
                let err = fill(template, "h", 22, user).expect_err(user);
                assert!(err.contains("user name"), "{err}");
            }
        }
        // A value that reads like a placeholder is not filled in again.
        assert_eq!(
            fill("exec telnet -- {host} {port}", "{port}", 23, "x").expect("filled"),
            "exec telnet -- '{port}' 23"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
