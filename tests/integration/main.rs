//! Integration tests: the real `portcullis` binary over HTTPS, against SQLite and a private
//! PostgreSQL cluster. One test binary (faster to link); modules by concern.

#[path = "../support/postgres.rs"]
mod postgres_cluster;

#[path = "../support/mariadb.rs"]
mod mariadb_server;

#[path = "../support/sshd.rs"]
mod sshd_server;

#[path = "../support/netns.rs"]
mod netns_chain;

#[path = "../support/xrdp.rs"]
mod xrdp_server;

#[path = "../support/desktop_view.rs"]
mod desktop_view;

mod harness;

mod attacks;
mod audit;
mod auth;
mod authz_matrix;
mod canary;
mod hops;
mod keys;
mod live;
mod rdp;
mod recordings;
mod rotation;
mod rotation_terminal;
mod ssh;
mod startup;
mod telnet;
mod vault;
