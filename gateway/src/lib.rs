//! Live sessions: session broker, protocol adapters (SSH, Telnet, RDP), hop chains and
//! viewers. This crate knows nothing about HTTP routing beyond what a session needs.
//!
//! Built so far: the typed session event stream (`event`), the protocol adapter trait over a
//! byte stream (`adapter`), the server-side terminal screen (`screen`) and the broker that
//! owns live sessions and fans their events out (`broker`), plus `Secret`, the only way a
//! credential travels from the vault to an adapter. The SSH adapter, the WebSocket endpoint
//! and the browser terminal are the rest of issue 3; see ARCHITECTURE.md.

pub mod adapter;
pub mod broker;
pub mod desktop;
pub mod event;
pub mod frame_window;
pub mod hop_chain;
pub mod host_key;
pub mod interactive_hop;
pub mod lossy;
pub mod rdp;
pub mod screen;
pub mod secret;
pub mod shell;
pub mod ssh;
pub mod tcp;
pub mod telnet;

pub use secret::Secret;
