//! Live sessions: session broker, protocol adapters (SSH, Telnet, RDP), hop chains and
//! viewers. This crate knows nothing about HTTP routing beyond what a session needs.
//!
//! Today it holds the one type every layer shares: [`Secret`], the only way a credential
//! travels from the vault to a protocol adapter. The broker and adapters arrive with the
//! session issues; see ARCHITECTURE.md for the plan.

pub mod secret;

pub use secret::Secret;
