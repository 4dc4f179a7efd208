//! Why: rotating a Unix account's or a network device's password means logging in and
//! answering prompts, as a person at a terminal would. This drives a headless terminal: the
//! same adapter and the same path (direct, tunnelled or typed through landing servers) that a
//! session to the resource uses (`session_paths::connect_terminal`), but nobody watches it,
//! nothing is recorded, and the answers are typed as `ClientInput::Secret`, so they never
//! become session input. The prompts and answers are a script of the logon-script kind
//! (`gateway::telnet::logon`), so a device-specific flow is a script, not new code.

use std::time::Duration;

use gateway::adapter::AdapterIo;
use gateway::broker::SessionInfo;
use gateway::event::{ClientInput, FailureKind, Lifecycle, Protocol, SecretKeys, SessionEvent};
use gateway::telnet::logon::{
    fill_value, mask_secret, CompiledScript, Credentials, LogonAction, LogonRun, SETTLE,
};
use secret::Secret;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::app::App;
use crate::audit::Actor;
use crate::db;
use crate::session_paths::{connect_terminal, TerminalLogin};
use crate::vault::accounts::AccountRow;
use crate::vault::resources::ResourceRow;

use super::LoginError;

/// How long a login (through every landing server) may take before it counts as failed.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(45);

/// A logged-in terminal on the target.
pub struct Terminal {
    events: mpsc::Receiver<SessionEvent>,
    input: mpsc::Sender<ClientInput>,
    task: tokio::task::JoinHandle<()>,
    /// Output seen since login and not yet given to a script.
    backlog: Vec<u8>,
    /// `name (host)` for messages.
    label: String,
}

/// Who logs in, with which secret.
pub struct Login<'a> {
    pub account: &'a AccountRow,
    pub secret: Secret,
    pub passphrase: Option<Secret>,
}

/// The protocol a rotation uses to reach `r`: SSH when it has an SSH port, else Telnet.
fn protocol_of(r: &ResourceRow) -> Option<(Protocol, u16)> {
    let port = |p: Option<i64>| p.and_then(|p| u16::try_from(p).ok());
    match (port(r.ssh_port), port(r.telnet_port)) {
        (Some(p), _) => Some((Protocol::Ssh, p)),
        (None, Some(p)) => Some((Protocol::Telnet, p)),
        _ => None,
    }
}

/// Whether `r` can be reached by a terminal at all.
pub fn reachable_by_terminal(r: &ResourceRow) -> bool {
    protocol_of(r).is_some()
}

impl Terminal {
    /// Logs in to `r` as `login.account` over the resource's path. A refused credential is
    /// `Refused`; everything else that keeps the login from finishing is `Unreachable`.
    pub async fn open(
        app: &App,
        actor: &Actor,
        r: &ResourceRow,
        login: Login<'_>,
    ) -> Result<Terminal, LoginError> {
        let (protocol, port) = protocol_of(r).ok_or_else(|| {
            LoginError::Unreachable(format!("{} has no SSH or Telnet port", r.name))
        })?;
        let chain = crate::hop_path::resolve(app, &r.id).await.map_err(|_| {
            LoginError::Unreachable("the path to the resource could not be resolved".into())
        })?;
        let info = SessionInfo {
            id: format!("rotation-{}", db::new_id()),
            owner_id: actor.id.clone(),
            owner_name: actor.name.clone(),
            account_id: login.account.id.clone(),
            account_name: login.account.username.clone(),
            resource_id: r.id.clone(),
            resource_name: r.name.clone(),
            protocol,
            path: chain.iter().map(|l| l.name.clone()).collect(),
            client_addr: "local".into(),
            started_at_ms: db::now_ms(),
            state: "connecting".into(),
            bytes_from_target: 0,
            bytes_to_target: 0,
            recording_id: None,
            participants: Vec::new(),
            control: Default::default(),
        };
        let (adapter, host_key, _detail, stream) = connect_terminal(
            app,
            actor,
            &info,
            &chain,
            r,
            port,
            protocol,
            TerminalLogin {
                account: login.account,
                secret: login.secret,
                passphrase: login.passphrase,
            },
        )
        .await
        .map_err(|(kind, message)| classify(kind, message))?;
        if let Some(host_key) = host_key {
            // Pinned, trusted on first use or refused exactly as for a session (audited).
            tokio::spawn(crate::host_key_pins::record_host_key(
                app.core.clone(),
                actor.clone(),
                info.clone(),
                crate::host_key_pins::PinKind::Ssh,
                host_key,
            ));
        }
        let (events_tx, events) = mpsc::channel(64);
        let (input, input_rx) = mpsc::channel(16);
        let task = tokio::spawn(adapter.run(
            stream,
            AdapterIo {
                events: events_tx,
                input: input_rx,
                // Wide, so long commands and device output do not wrap.
                cols: 200,
                rows: 50,
            },
        ));
        let mut t = Terminal {
            events,
            input,
            task,
            backlog: Vec::new(),
            label: format!("{} ({})", r.name, r.host),
        };
        let deadline = Instant::now() + LOGIN_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, t.events.recv()).await {
                Err(_) => {
                    let label = t.label.clone();
                    t.close().await;
                    return Err(LoginError::Unreachable(format!(
                        "the login to {label} did not finish within {} s",
                        LOGIN_TIMEOUT.as_secs()
                    )));
                }
                Ok(None) => {
                    return Err(LoginError::Unreachable(format!(
                        "the connection to {} ended during the login",
                        t.label
                    )))
                }
                Ok(Some(SessionEvent::Output(d))) => t.keep(&d),
                Ok(Some(SessionEvent::Lifecycle(Lifecycle::Connected))) => return Ok(t),
                Ok(Some(SessionEvent::Lifecycle(Lifecycle::Failed { kind, message }))) => {
                    t.close().await;
                    return Err(classify(kind, message));
                }
                Ok(Some(SessionEvent::Lifecycle(Lifecycle::Ended { reason, .. }))) => {
                    return Err(LoginError::Unreachable(reason))
                }
                Ok(Some(_)) => {}
            }
        }
    }

    fn keep(&mut self, d: &[u8]) {
        self.backlog.extend_from_slice(d);
        // A script looks at the end (the prompt); a flood before it is not worth keeping.
        if self.backlog.len() > 16 * 1024 {
            let cut = self.backlog.len() - 16 * 1024;
            self.backlog.drain(..cut);
        }
    }

    /// Runs `script` on the logged-in terminal: waits for each step's prompt, types its
    /// value (secrets filled in here, sent as secret keystrokes) and Enter. `mask` lists the
    /// secrets that must not appear in an error message even if the target echoed them.
    /// `progress` hears "step i of n (label)".
    pub async fn run_script(
        &mut self,
        script: CompiledScript,
        creds: &Credentials<'_>,
        mask: &[&Secret],
        progress: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), String> {
        let hide = |s: String| {
            let mut b = s.into_bytes();
            for m in mask {
                mask_secret(&mut b, m.expose());
            }
            String::from_utf8_lossy(&b).into_owned()
        };
        let mut run = LogonRun::new(script);
        let total = run.step_count();
        let mut chunk = std::mem::take(&mut self.backlog);
        let mut deadline = Instant::now() + run.step_timeout();
        progress(format!("step 1 of {total} ({})", run.step_label()));
        loop {
            let action = run.feed(&chunk);
            chunk.clear();
            match action {
                LogonAction::Done => return Ok(()),
                LogonAction::Failed { index, label, said } => {
                    return Err(hide(format!(
                        "step {} of {total} ({label}) failed: {} said \u{201c}{said}\u{201d}",
                        index + 1,
                        self.label
                    )))
                }
                LogonAction::Matched { send, .. } => {
                    if let Some(pieces) = send.map(|p| p.to_vec()) {
                        if pieces.iter().any(|p| p.is_secret()) {
                            // Let the prompt finish turning echo off before a secret.
                            self.settle(&mut run).await;
                        }
                        let (mut value, _said) = fill_value(&pieces, creds)?;
                        value.push(b'\r');
                        let keys = Secret::new(std::mem::take(&mut *value));
                        if self
                            .input
                            .send(ClientInput::Secret(SecretKeys(keys)))
                            .await
                            .is_err()
                        {
                            return Err(format!("the connection to {} ended", self.label));
                        }
                    }
                    if !run.finished() {
                        progress(format!(
                            "step {} of {total} ({})",
                            run.step_index() + 1,
                            run.step_label()
                        ));
                    }
                    deadline = Instant::now() + run.step_timeout();
                }
                LogonAction::Wait => {
                    match tokio::time::timeout_at(deadline, self.events.recv()).await {
                        Err(_) => {
                            let said = run.last_output();
                            return Err(hide(format!(
                            "step {} of {total} ({}) timed out: {} did not show /{}/ within {} s.{}",
                            run.step_index() + 1,
                            run.step_label(),
                            self.label,
                            run.step_pattern(),
                            run.step_timeout().as_secs(),
                            if said.is_empty() {
                                " It sent nothing.".to_string()
                            } else {
                                format!(" It last said: \u{201c}{said}\u{201d}")
                            }
                        )));
                        }
                        Ok(Some(SessionEvent::Output(d))) => chunk.extend_from_slice(&d),
                        Ok(Some(SessionEvent::Lifecycle(
                            Lifecycle::Ended { reason: why, .. }
                            | Lifecycle::Failed { message: why, .. },
                        ))) => {
                            return Err(hide(format!(
                                "the connection ended during step {} of {total} ({}): {why}",
                                run.step_index() + 1,
                                run.step_label()
                            )))
                        }
                        Ok(None) => return Err(format!("the connection to {} ended", self.label)),
                        Ok(Some(_)) => {}
                    }
                }
            }
        }
    }

    /// Waits until the target has been quiet for `SETTLE` (at most 2 s), keeping its output.
    async fn settle(&mut self, run: &mut LogonRun) {
        let give_up = Instant::now() + Duration::from_secs(2);
        while Instant::now() < give_up {
            match tokio::time::timeout(SETTLE, self.events.recv()).await {
                Err(_) => return,
                Ok(Some(SessionEvent::Output(d))) => run.append(&d),
                Ok(Some(_)) => {}
                Ok(None) => return,
            }
        }
    }

    /// Ends the connection (the adapter logs out by closing it).
    pub async fn close(self) {
        let _ = self
            .input
            .send(ClientInput::Terminate {
                reason: "rotation step done".into(),
            })
            .await;
        drop(self.events);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// A failed login in the engine's terms.
fn classify(kind: FailureKind, message: String) -> LoginError {
    match kind {
        FailureKind::AuthenticationFailed | FailureKind::PermissionDenied => {
            LoginError::Refused(message)
        }
        _ => LoginError::Unreachable(message),
    }
}
