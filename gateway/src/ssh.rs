//! Why: the SSH protocol adapter. It logs in to the target with the vault's credential
//! (password, keyboard-interactive answered with the password, or a private key with an
//! optional passphrase), checks the target's host key against the pin for the resource, opens
//! an `xterm-256color` PTY and shell, and turns the channel into session events. It runs over
//! any byte stream, so a landing-server tunnel can stand in for the TCP socket later.
//!
//! Secrets: the credential arrives as `Secret`s and is exposed only to build russh's
//! authentication request (russh copies it into its own buffers for the duration of the
//! call; that copy is outside our control and is the one known exception).

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::ChannelMsg;
use tokio::sync::oneshot;

use crate::adapter::{AdapterFuture, AdapterIo, ProtocolAdapter, TargetStream};
use crate::event::{ClientInput, FailureKind, Lifecycle, Protocol, SessionEvent};
use crate::host_key::{HostKeyObservation, HostKeyPolicy};
use crate::Secret;

pub enum SshCredential {
    Password(Secret),
    PrivateKey {
        pem: Secret,
        passphrase: Option<Secret>,
    },
}

pub struct SshTarget {
    pub username: String,
    pub credential: SshCredential,
    pub host_key: HostKeyPolicy,
    /// `host:port` as the user knows it, for messages.
    pub label: String,
    pub handshake_timeout: Duration,
}

pub struct SshAdapter {
    target: SshTarget,
    report: oneshot::Sender<HostKeyObservation>,
}

impl SshAdapter {
    /// The receiver gets the host-key observation as soon as the key was checked.
    pub fn new(target: SshTarget) -> (SshAdapter, oneshot::Receiver<HostKeyObservation>) {
        let (tx, rx) = oneshot::channel();
        (SshAdapter { target, report: tx }, rx)
    }
}

/// `SHA256:<base64>` as OpenSSH prints it.
pub fn fingerprint(key: &russh::keys::PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

pub struct Client {
    policy: HostKeyPolicy,
    report: Option<oneshot::Sender<HostKeyObservation>>,
    /// Why the key was refused, for the error message.
    refused: Arc<std::sync::Mutex<Option<HostKeyObservation>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => fingerprint(key),
            PublicKeyOrCertificate::Certificate(c) => {
                c.public_key().fingerprint(HashAlg::Sha256).to_string()
            }
        };
        let (obs, ok) = self.policy.judge(presented);
        if !ok {
            if let Ok(mut r) = self.refused.lock() {
                *r = Some(obs.clone());
            }
        }
        if let Some(tx) = self.report.take() {
            let _ = tx.send(obs);
        }
        Ok(ok)
    }
}

async fn fail(io: &AdapterIo, kind: FailureKind, message: String) {
    let _ = io
        .events
        .send(SessionEvent::Lifecycle(Lifecycle::Failed { kind, message }))
        .await;
}

impl ProtocolAdapter for SshAdapter {
    fn protocol(&self) -> Protocol {
        Protocol::Ssh
    }

    fn run(self: Box<Self>, target: TargetStream, io: AdapterIo) -> AdapterFuture {
        Box::pin(async move {
            let SshAdapter { target: t, report } = *self;
            run(t, report, target, io).await;
        })
    }
}

/// The ciphers offered to targets, best first. Where the CPU has AES instructions, AES-GCM
/// costs a fraction of ChaCha20-Poly1305 on both ends (the gateway decrypts every byte a
/// session prints; a target's sshd encrypts it); without them ChaCha20 is the faster and the
/// safer choice (no table-based AES). Both are AEAD ciphers of equal standing; CTR modes stay
/// last for old targets.
fn cipher_order() -> &'static [russh::cipher::Name] {
    use russh::cipher::{AES_128_CTR, AES_192_CTR, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305};
    const AES_FIRST: &[russh::cipher::Name] = &[
        AES_256_GCM,
        CHACHA20_POLY1305,
        AES_256_CTR,
        AES_192_CTR,
        AES_128_CTR,
    ];
    const CHACHA_FIRST: &[russh::cipher::Name] = &[
        CHACHA20_POLY1305,
        AES_256_GCM,
        AES_256_CTR,
        AES_192_CTR,
        AES_128_CTR,
    ];
    if aes_in_hardware() {
        AES_FIRST
    } else {
        CHACHA_FIRST
    }
}

fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Bytes read from the target's socket at a time.
const READ_BUFFER: usize = 16 * 1024;

/// An authenticated SSH connection (the target, or a landing server on a hop chain).
pub type SshHandle = client::Handle<Client>;

/// Runs the SSH handshake over `stream`, checks the host key against `t.host_key` (the
/// observation goes to `report` as soon as the key was seen) and authenticates with the
/// vault's credential. Errors are in the words a user sees, naming `t.label`.
pub async fn login(
    t: &SshTarget,
    report: oneshot::Sender<HostKeyObservation>,
    stream: TargetStream,
) -> Result<SshHandle, (FailureKind, String)> {
    let refused = Arc::new(std::sync::Mutex::new(None));
    let handler = Client {
        policy: t.host_key.clone(),
        report: Some(report),
        refused: refused.clone(),
    };
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(cipher_order()),
            ..Default::default()
        },
        ..Default::default()
    });
    // russh reads each packet with two exact reads (length, then body); a read buffer turns
    // that into one system call per several packets under bulk output (a PTY yields packets
    // of about 4 KiB). Kept small: it is paid by every idle session.
    let stream = tokio::io::BufReader::with_capacity(READ_BUFFER, stream);
    let mut handle = match tokio::time::timeout(
        t.handshake_timeout,
        client::connect_stream(config, stream, handler),
    )
    .await
    {
        Err(_) => {
            return Err((
                FailureKind::TimedOut,
                format!(
                    "{} did not complete the SSH handshake within {} s",
                    t.label,
                    t.handshake_timeout.as_secs()
                ),
            ))
        }
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            let why = refused.lock().ok().and_then(|r| r.clone());
            return Err(match why.as_ref().and_then(|o| o.refusal(&t.label)) {
                Some(refused) => refused,
                None => (
                    FailureKind::Protocol,
                    format!("The SSH handshake with {} failed: {e}", t.label),
                ),
            });
        }
    };
    match authenticate(&mut handle, t).await {
        Ok(true) => Ok(handle),
        Ok(false) => Err((FailureKind::AuthenticationFailed, format!("{} refused the vault's credential for {}. The stored secret is probably out of date: verify or rotate it.", t.label, t.username))),
        Err(msg) => Err((FailureKind::AuthenticationFailed, msg)),
    }
}

async fn run(
    t: SshTarget,
    report: oneshot::Sender<HostKeyObservation>,
    stream: TargetStream,
    mut io: AdapterIo,
) {
    let _ = io
        .events
        .send(SessionEvent::Lifecycle(Lifecycle::Connecting))
        .await;
    let handle = match login(&t, report, stream).await {
        Ok(h) => h,
        Err((kind, message)) => return fail(&io, kind, message).await,
    };

    let channel = match handle.channel_open_session().await {
        Ok(c) => c,
        Err(e) => {
            return fail(
                &io,
                FailureKind::PermissionDenied,
                format!(
                    "{} refused to open a session for {}: {e}",
                    t.label, t.username
                ),
            )
            .await
        }
    };
    let opened = async {
        channel
            .request_pty(
                true,
                "xterm-256color",
                io.cols as u32,
                io.rows as u32,
                0,
                0,
                &[],
            )
            .await?;
        channel.request_shell(true).await
    };
    if let Err(e) = opened.await {
        return fail(
            &io,
            FailureKind::PermissionDenied,
            format!("{} refused a terminal for {}: {e}", t.label, t.username),
        )
        .await;
    }
    let _ = io
        .events
        .send(SessionEvent::Lifecycle(Lifecycle::Connected))
        .await;

    let mut channel = channel;
    let mut exit_status = None;
    let reason = loop {
        tokio::select! {
            msg = channel.wait() => match msg {
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    let delivered = io.events.send(SessionEvent::Output(data.as_ref().into())).await;
                    if delivered.is_err() {
                        break "the gateway closed the session".to_string();
                    }
                }
                Some(ChannelMsg::ExitStatus { exit_status: s }) => exit_status = Some(s),
                // OpenSSH sends the exit status after EOF: keep reading until Close.
                Some(ChannelMsg::Eof) => {}
                Some(ChannelMsg::Close) | None => break match exit_status {
                    Some(s) => format!("The shell on {} exited with status {s}.", t.label),
                    None => format!("{} closed the connection.", t.label),
                },
                _ => {}
            },
            input = io.input.recv() => match input {
                Some(ClientInput::Data(d)) => {
                    if let Err(e) = channel.data(&d[..]).await {
                        break format!("Sending to {} failed: {e}", t.label);
                    }
                }
                Some(ClientInput::Secret(k)) => {
                    if let Err(e) = channel.data(k.0.expose()).await {
                        break format!("Sending to {} failed: {e}", t.label);
                    }
                }
                Some(ClientInput::Resize { cols, rows }) => {
                    let _ = channel.window_change(cols as u32, rows as u32, 0, 0).await;
                    let _ = io.events.send(SessionEvent::Resize { cols, rows }).await;
                }
                Some(ClientInput::Terminate { reason }) => break reason,
                // Desktop input means nothing to a terminal.
                Some(ClientInput::Key { .. } | ClientInput::Pointer { .. } | ClientInput::Wheel { .. } | ClientInput::ReleaseAll | ClientInput::Clipboard { .. }) => {}
                None => break "The session was closed by the gateway.".to_string(),
            },
        }
    };
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    let _ = io
        .events
        .send(SessionEvent::Lifecycle(Lifecycle::Ended {
            reason,
            exit_status,
        }))
        .await;
}

/// `Ok(false)`: the target refused the credential; `Err`: the credential itself is unusable.
async fn authenticate(handle: &mut client::Handle<Client>, t: &SshTarget) -> Result<bool, String> {
    let user = t.username.clone();
    let protocol_error = |e: russh::Error| format!("Authentication with {} failed: {e}", t.label);
    match &t.credential {
        SshCredential::Password(pw) => {
            let text = pw
                .expose_str()
                .ok_or_else(|| "The vault's password is not valid text.".to_string())?;
            if handle
                .authenticate_password(user.clone(), text)
                .await
                .map_err(protocol_error)?
                .success()
            {
                return Ok(true);
            }
            // Many servers (PAM) offer keyboard-interactive instead: answer hidden prompts
            // with the password, visible ones with nothing, for a few rounds.
            let mut reply = handle
                .authenticate_keyboard_interactive_start(user, None)
                .await
                .map_err(protocol_error)?;
            for _ in 0..3 {
                match reply {
                    client::KeyboardInteractiveAuthResponse::Success => return Ok(true),
                    client::KeyboardInteractiveAuthResponse::Failure { .. } => return Ok(false),
                    client::KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                        let answers = prompts
                            .iter()
                            .map(|p| {
                                if p.echo {
                                    String::new()
                                } else {
                                    text.to_string()
                                }
                            })
                            .collect();
                        reply = handle
                            .authenticate_keyboard_interactive_respond(answers)
                            .await
                            .map_err(protocol_error)?;
                    }
                }
            }
            Ok(false)
        }
        SshCredential::PrivateKey { pem, passphrase } => {
            let pem = pem
                .expose_str()
                .ok_or_else(|| "The vault's private key is not valid text.".to_string())?;
            let pass = passphrase.as_ref().and_then(|p| p.expose_str());
            let key = russh::keys::decode_secret_key(pem, pass)
                .map_err(|_| "The vault's private key cannot be read (wrong passphrase, or not an OpenSSH/PEM key).".to_string())?;
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(protocol_error)?
                .flatten();
            let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            Ok(handle
                .authenticate_publickey(user, key)
                .await
                .map_err(protocol_error)?
                .success())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_offered_aead_first_and_never_cbc_or_none() {
        use russh::cipher::{AES_256_GCM, CHACHA20_POLY1305};
        let order = cipher_order();
        let first = if aes_in_hardware() {
            AES_256_GCM
        } else {
            CHACHA20_POLY1305
        };
        assert_eq!(order[0], first);
        assert!(order[..2].contains(&AES_256_GCM) && order[..2].contains(&CHACHA20_POLY1305));
        for name in order {
            let n = name.as_ref();
            assert!(
                n.ends_with("-gcm@openssh.com") || n.starts_with("chacha20") || n.ends_with("-ctr"),
                "{n}"
            );
        }
    }
}
