//! Why: the one way the gateway opens a TCP connection to a target, with the errors a user
//! should see and, for a desktop, a socket sized to pace the target. Every adapter and the
//! landing-server chain use it, so none imports another adapter for it.

use std::time::Duration;

use crate::adapter::TargetStream;
use crate::event::FailureKind;

/// Opens the TCP connection to a target, with the errors a user should see.
pub async fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TargetStream, (FailureKind, String)> {
    connect_tcp_sized(host, port, timeout, None).await
}

/// Socket sizes for a connection whose reader paces its server (`rdp::PACED_SOCKET` says why
/// a desktop wants them).
#[derive(Clone, Copy, Debug)]
pub struct SocketSizes {
    /// The kernel's receive buffer, fixed instead of growing with the traffic: how much the
    /// target can send before it waits for the gateway.
    pub receive_buffer: u32,
    /// The largest segment offered to the target in the handshake.
    pub segment: u32,
}

/// The same, with the socket sized as `sizes` says.
pub async fn connect_tcp_sized(
    host: &str,
    port: u16,
    timeout: Duration,
    sizes: Option<SocketSizes>,
) -> Result<TargetStream, (FailureKind, String)> {
    let label = format!("{host}:{port}");
    let connect = async {
        let Some(sizes) = sizes else {
            return tokio::net::TcpStream::connect((host, port)).await;
        };
        let mut last = std::io::Error::other("the name resolves to no address");
        for addr in tokio::net::lookup_host((host, port)).await? {
            let socket = match addr {
                std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            // Set before connecting, so that the handshake offers them.
            socket.set_recv_buffer_size(sizes.receive_buffer)?;
            socket2::SockRef::from(&socket).set_tcp_mss(sizes.segment)?;
            match socket.connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err((
            FailureKind::TimedOut,
            format!("{label} did not answer within {} s.", timeout.as_secs()),
        )),
        Ok(Err(e)) => Err((
            FailureKind::Unreachable,
            format!("{label} cannot be reached: {e}."),
        )),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(Box::new(s))
        }
    }
}
