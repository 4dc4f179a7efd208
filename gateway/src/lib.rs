//! Live sessions: session broker, protocol adapters (SSH, Telnet, RDP), hop chains and
//! viewers. This crate knows nothing about HTTP routing or the database; it gets credentials
//! as `Secret`s and reports what happened as one typed event stream (`event`) that the broker
//! (`broker`) fans out to browsers and the recorder. The adapters (`ssh`, `telnet`, `rdp`)
//! implement one trait over any byte stream (`adapter`) and never use one another: what they
//! share is `host_key`, `tcp`, `screen` and `desktop`. See ARCHITECTURE.md.

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
pub mod shell;
pub mod ssh;
pub mod tcp;
pub mod telnet;

pub use secret::Secret;
