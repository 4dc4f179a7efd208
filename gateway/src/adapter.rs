//! Why: every protocol (SSH, Telnet, RDP) plugs into the session core the same way: it is
//! handed a byte stream to the target (a TCP socket, or a channel through landing servers:
//! the adapter cannot tell) and a pair of queues, and it turns the protocol into
//! `SessionEvent`s and `ClientInput` into protocol messages. Credentials are given to an
//! adapter when it is built, as `Secret`s, and never leave it.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::event::{ClientInput, Protocol, SessionEvent};

/// A bidirectional byte stream to the target.
pub trait TargetIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> TargetIo for T {}

pub type TargetStream = Box<dyn TargetIo>;

/// The adapter's side of a session.
pub struct AdapterIo {
    /// Events for the broker. Bounded: when viewers and the recorder fall behind, the
    /// adapter waits, which slows the target through the protocol's own flow control
    /// instead of growing memory.
    pub events: mpsc::Sender<SessionEvent>,
    /// Keystrokes, resizes and (later) pointer events from the participant in control.
    pub input: mpsc::Receiver<ClientInput>,
    /// The initial terminal size (cols x rows).
    pub cols: u16,
    pub rows: u16,
}

pub type AdapterFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One protocol. `run` drives the whole session and returns when it is over, after having
/// sent a final `Lifecycle::Ended` or `Lifecycle::Failed` event.
pub trait ProtocolAdapter: Send {
    fn protocol(&self) -> Protocol;
    /// For a desktop: whether every region must reach browsers exactly, with no lossy
    /// encoding while it moves.
    fn lossless_only(&self) -> bool {
        false
    }
    fn run(self: Box<Self>, target: TargetStream, io: AdapterIo) -> AdapterFuture;
}
