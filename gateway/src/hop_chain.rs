//! Why: many targets are reachable only through landing servers (jump hosts). A hop chain
//! logs in to each landing server over SSH with its own vault credential and host-key pin,
//! opens a `direct-tcpip` channel from it to the next hop, and finally to the target; the
//! result is a byte stream, so the target's protocol adapter (SSH, Telnet, later RDP) runs
//! over it unchanged. The chain is resolved by the server (`src/hop_path.rs`); this module
//! only walks it. A hop whose primary landing server does not answer in time fails over to
//! its secondary; errors name the hop ("hop 2, landing server DC1-jump (10.0.0.5:22): ...").

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use crate::adapter::TargetStream;
use crate::event::FailureKind;
use crate::host_key::HostKeyObservation;
use crate::ssh::{login, SshHandle, SshTarget};
use crate::tcp::connect_tcp;

/// One landing server as the chain sees it: where it is and how to log in.
pub struct HopEndpoint {
    /// The resource behind it, for pins and audit.
    pub resource_id: String,
    pub host: String,
    pub port: u16,
    /// Login (user name, credential, host-key policy); its `label` names the landing server.
    pub ssh: SshTarget,
}

pub struct Hop {
    /// The landing server's name, for messages.
    pub name: String,
    pub primary: HopEndpoint,
    pub secondary: Option<HopEndpoint>,
}

/// Which endpoint of a hop was used, and what its host key looked like.
#[derive(Debug)]
pub struct HopUsed {
    pub name: String,
    pub resource_id: String,
    /// The resource's name (the endpoint's login label).
    pub resource_name: String,
    pub secondary: bool,
    pub host_key: Option<HostKeyObservation>,
    /// False for a machine that was tried and failed (the next one was used, or none).
    pub logged_in: bool,
}

/// How long a landing server (or the next hop through it) may take to answer before the
/// secondary is tried.
pub const FAILOVER_AFTER: Duration = Duration::from_secs(5);

/// The stream to the final target through the chain. It owns every landing server's SSH
/// connection, so they live exactly as long as the session's stream.
pub struct ChainStream {
    inner: russh::ChannelStream<russh::client::Msg>,
    _hops: Vec<SshHandle>,
    /// The idle terminal sessions that keep each landing server's connection interactive.
    _interactive: Vec<russh::Channel<russh::client::Msg>>,
}

impl AsyncRead for ChainStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ChainStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Waits until the machine at the other end of `stream` says something (an SSH banner, a
/// Telnet negotiation or prompt), at most `within`; the bytes read are given back first by
/// the returned stream. A machine that accepts connections but says nothing (a stalled
/// server) counts as not answering, so the secondary is tried.
pub async fn answering(mut stream: TargetStream, within: Duration) -> Result<TargetStream, String> {
    use tokio::io::AsyncReadExt;
    let mut first = vec![0u8; 1024];
    match tokio::time::timeout(within, stream.read(&mut first)).await {
        Err(_) => Err(format!(
            "it accepted the connection but said nothing within {} s",
            within.as_secs()
        )),
        Ok(Ok(0)) => Err("it closed the connection at once".into()),
        Ok(Err(e)) => Err(format!("reading from it failed: {e}")),
        Ok(Ok(n)) => {
            first.truncate(n);
            Ok(Box::new(Replayed {
                first,
                at: 0,
                inner: stream,
            }))
        }
    }
}

/// A stream whose first bytes were already read once (see `answering`).
struct Replayed {
    first: Vec<u8>,
    at: usize,
    inner: TargetStream,
}

impl AsyncRead for Replayed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.first.len() {
            let n = buf.remaining().min(self.first.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.first[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replayed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A failure, with the hop it happened at (1-based) for the message and the audit.
#[derive(Debug)]
pub struct ChainError {
    pub kind: FailureKind,
    pub message: String,
    pub used: Vec<HopUsed>,
}

/// The byte stream to `host:port` (the target), through `hops` in order (the first is
/// reached directly from the gateway).
pub async fn open(
    hops: Vec<Hop>,
    host: &str,
    port: u16,
) -> Result<(TargetStream, Vec<HopUsed>), ChainError> {
    let total = hops.len();
    let mut handles: Vec<SshHandle> = Vec::new();
    let mut used: Vec<HopUsed> = Vec::new();
    let mut interactive = Vec::new();
    for (i, hop) in hops.into_iter().enumerate() {
        let n = i + 1;
        let name = |e: &HopEndpoint| {
            format!(
                "hop {n} of {total}, landing server {} ({}:{})",
                hop.name, e.host, e.port
            )
        };
        // Reach the landing server (directly for the first hop, else through the previous)
        // and log in; a machine that does not answer, or does not finish the handshake in
        // time, hands over to the secondary. Refused credentials or host keys do not.
        let previous_name = used
            .iter()
            .rev()
            .find(|u| u.logged_in)
            .map(|u| u.name.clone());
        let previous = handles.last().zip(previous_name.as_deref());
        let endpoints: Vec<(&HopEndpoint, bool)> = std::iter::once((&hop.primary, false))
            .chain(hop.secondary.iter().map(|s| (s, true)))
            .collect();
        let mut failures: Vec<String> = Vec::new();
        let mut last_kind = FailureKind::Unreachable;
        let mut logged_in = None;
        for (endpoint, secondary) in endpoints {
            let stream = match reach(previous, endpoint).await {
                Ok(s) => s,
                Err(why) => {
                    failures.push(format!("{}: not reachable ({why})", name(endpoint)));
                    continue;
                }
            };
            let (tx, rx) = oneshot::channel();
            let result = login(&endpoint.ssh, tx, stream).await;
            used.push(HopUsed {
                name: hop.name.clone(),
                resource_id: endpoint.resource_id.clone(),
                resource_name: endpoint.ssh.label.clone(),
                secondary,
                host_key: rx.await.ok(),
                logged_in: result.is_ok(),
            });
            match result {
                Ok(h) => {
                    logged_in = Some(h);
                    break;
                }
                Err((kind @ (FailureKind::TimedOut | FailureKind::Unreachable), message)) => {
                    last_kind = kind;
                    failures.push(format!("{}: {message}", name(endpoint)));
                }
                Err((kind, message)) => {
                    return Err(ChainError {
                        kind,
                        message: format!("{}: {message}", name(endpoint)),
                        used,
                    })
                }
            }
        }
        match logged_in {
            Some(h) => {
                if let Some(c) = mark_interactive(&h).await {
                    interactive.push(c);
                }
                handles.push(h)
            }
            None => {
                return Err(ChainError {
                    kind: last_kind,
                    message: format!("{}.", failures.join("; then ")),
                    used,
                })
            }
        }
    }
    let Some(last) = handles.last() else {
        return Err(ChainError {
            kind: FailureKind::Protocol,
            message: "an empty hop chain".into(),
            used,
        });
    };
    let channel = match tokio::time::timeout(
        FAILOVER_AFTER,
        last.channel_open_direct_tcpip(host, port as u32, "127.0.0.1", 0),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return Err(ChainError {
                kind: FailureKind::Unreachable,
                message: format!(
                    "the target {host}:{port}: {}",
                    tunnel_refused(used.last().map(|u| u.name.as_str()).unwrap_or(""), &e)
                ),
                used,
            })
        }
        Err(_) => {
            return Err(ChainError {
                kind: FailureKind::TimedOut,
                message: format!(
                    "the last landing server ({}) got no answer from {host}:{port} within {} s",
                    used.last().map(|u| u.name.as_str()).unwrap_or(""),
                    FAILOVER_AFTER.as_secs()
                ),
                used,
            })
        }
    };
    Ok((
        Box::new(ChainStream {
            inner: channel.into_stream(),
            _hops: handles,
            _interactive: interactive,
        }),
        used,
    ))
}

/// OpenSSH's sshd turns Nagle's algorithm off (TCP_NODELAY) on a connection only when it
/// runs a command on a terminal there; a connection that only carries tunnels keeps Nagle on,
/// and then keystroke echoes through the chain stall for a delayed ACK (~40 ms) now and then,
/// and every further hop's handshake through it is slower (bench/README.md, "Hop chains").
/// So each landing server runs an idle command on a terminal for the life of the session
/// (`cat`, which ends when the session's channel closes). Best effort: a landing server that
/// refuses it still tunnels. It also leaves a login record on the landing server.
async fn mark_interactive(h: &SshHandle) -> Option<russh::Channel<russh::client::Msg>> {
    let open = async {
        let c = h.channel_open_session().await.ok()?;
        c.request_pty(true, "dumb", 80, 24, 0, 0, &[]).await.ok()?;
        c.exec(true, "cat > /dev/null").await.ok()?;
        Some(c)
    };
    tokio::time::timeout(FAILOVER_AFTER, open)
        .await
        .ok()
        .flatten()
}

/// Why a landing server did not open a tunnel, in words that point at the likely cause.
fn tunnel_refused(via: &str, e: &russh::Error) -> String {
    match e {
        russh::Error::ChannelOpenFailure(reason) => format!(
            "landing server {via} refused to open a tunnel to it ({reason:?}). If {via} forbids TCP forwarding (sshd AllowTcpForwarding no), set it to interactive mode."
        ),
        other => format!("landing server {via} could not open a tunnel to it: {other}"),
    }
}

/// A byte stream to `e`: a TCP connection from the gateway, or a `direct-tcpip` channel
/// from the previous landing server (named, for messages). Waits at most `FAILOVER_AFTER`.
async fn reach(
    previous: Option<(&SshHandle, &str)>,
    e: &HopEndpoint,
) -> Result<TargetStream, String> {
    match previous {
        None => connect_tcp(&e.host, e.port, FAILOVER_AFTER)
            .await
            .map_err(|(_, m)| m),
        Some((h, via)) => match tokio::time::timeout(
            FAILOVER_AFTER,
            h.channel_open_direct_tcpip(e.host.clone(), e.port as u32, "127.0.0.1", 0),
        )
        .await
        {
            Ok(Ok(c)) => Ok(Box::new(c.into_stream())),
            Ok(Err(err)) => Err(tunnel_refused(via, &err)),
            Err(_) => Err(format!("no answer within {} s", FAILOVER_AFTER.as_secs())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_machine_that_speaks_is_answering_and_its_first_words_are_kept() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        theirs.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await.unwrap();
        let mut s = answering(Box::new(ours), Duration::from_secs(2))
            .await
            .expect("answering");
        theirs.write_all(b"more").await.unwrap();
        let mut got = vec![0u8; 25];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"SSH-2.0-OpenSSH_9.2\r\nmore");
        s.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        theirs.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
    }

    #[tokio::test]
    async fn a_machine_that_accepts_and_says_nothing_is_not_answering() {
        let (ours, _theirs) = tokio::io::duplex(4096);
        let why = answering(Box::new(ours), Duration::from_millis(100))
            .await
            .err()
            .expect("not answering");
        assert!(why.contains("said nothing"), "{why}");
    }
}
