//! Portcullis server library: configuration, vault, identity, audit and the HTTP API. The
//! `portcullis` binary (src/main.rs) is a thin CLI over it; benchmarks and tests use it too.
//! See ARCHITECTURE.md for the map.

pub mod api;
pub mod app;
pub mod audit;
pub mod audited;
pub mod cli;
pub mod config;
pub mod core;
pub mod db;
pub mod error;
pub mod hop_path;
pub mod host_key_pins;
pub mod identity;
pub mod keys;
pub mod network_policy;
pub mod rdp_settings;
pub mod recordings;
pub mod revocation;
pub mod rotation;
pub mod server;
pub mod session_limits;
mod session_paths;
pub mod sessions;
pub mod telnet_logon;
pub mod throttle;
pub mod tls;
pub mod vault;
pub mod web_assets;
