//! Why: many sites keep their audit trail in a SIEM. Each committed audit event is forwarded
//! as one RFC 5424 message (UDP, or TCP with RFC 6587 octet counting). Forwarding runs on a
//! background task behind a bounded queue: a slow or absent syslog server never slows or
//! blocks the gateway; dropped messages are counted and logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::AuditRow;
use crate::config::SyslogTarget;

#[derive(Clone)]
pub struct Forwarder {
    tx: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
}

impl Forwarder {
    pub fn start(target: SyslogTarget) -> Forwarder {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(target, rx));
        Forwarder {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn send(&self, row: &AuditRow) {
        if self.tx.try_send(format_5424(row)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                dropped = n,
                "syslog queue full; audit event not forwarded (it is still in the audit log)"
            );
        }
    }
}

async fn run(target: SyslogTarget, mut rx: mpsc::Receiver<String>) {
    match target {
        SyslogTarget::Udp(addr) => {
            let bind = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
                tracing::error!("syslog: cannot open a UDP socket; forwarding disabled");
                return;
            };
            while let Some(msg) = rx.recv().await {
                if let Err(e) = sock.send_to(msg.as_bytes(), addr).await {
                    tracing::warn!(error = %e, "syslog: UDP send failed");
                }
            }
        }
        SyslogTarget::Tcp(addr) => {
            let mut conn: Option<tokio::net::TcpStream> = None;
            while let Some(msg) = rx.recv().await {
                let framed = format!("{} {}", msg.len(), msg);
                for _attempt in 0..2 {
                    if conn.is_none() {
                        conn = tokio::net::TcpStream::connect(addr).await.ok();
                    }
                    let written = match conn.as_mut() {
                        Some(c) => c.write_all(framed.as_bytes()).await.is_ok(),
                        None => false,
                    };
                    if written {
                        break;
                    }
                    conn = None;
                }
                if conn.is_none() {
                    tracing::warn!(%addr, "syslog: TCP server unreachable; event not forwarded");
                }
            }
        }
    }
}

fn sd_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

/// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`, facility authpriv (10).
pub fn format_5424(row: &AuditRow) -> String {
    let severity = if row.outcome == "ok" { 5 } else { 4 };
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "-".into());
    let msgid: String = row
        .action
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    format!(
        "<{}>1 {} {} portcullis {} {} [audit@32473 seq=\"{}\" actor=\"{}\" addr=\"{}\" outcome=\"{}\" object=\"{}\"] {} {} {} {}",
        10 * 8 + severity,
        crate::db::rfc3339(row.at),
        host,
        std::process::id(),
        if msgid.is_empty() { "-".into() } else { msgid },
        row.seq,
        sd_escape(&row.actor_name),
        sd_escape(&row.client_addr),
        row.outcome,
        sd_escape(&row.object_name),
        row.actor_name,
        row.action,
        row.object_name,
        row.detail
    )
}
