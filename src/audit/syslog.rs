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

/// Control characters (a newline above all: a collector reading lines would take what
/// follows it as a message of its own, with any header the attacker wrote) and Unicode line
/// and paragraph separators become visible `\u{..}` escapes. Every free-text field goes
/// through this: user names (even unknown ones typed at the login page), object names, detail.
fn visible(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// A structured-data parameter value (RFC 5424 6.3.3): `\`, `"` and `]` escaped, control
/// characters made visible.
fn sd_escape(s: &str) -> String {
    visible(s)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

/// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`, facility authpriv (10).
pub fn format_5424(row: &AuditRow) -> String {
    let severity = if row.outcome == "ok" { 5 } else { 4 };
    // HOSTNAME is PRINTUSASCII without spaces (RFC 5424 6.2.4).
    let host: String = std::env::var("HOSTNAME")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let host = if host.is_empty() { "-".into() } else { host };
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
        visible(&row.actor_name),
        visible(&row.action),
        visible(&row.object_name),
        visible(&row.detail)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_field_can_start_a_line_of_its_own() {
        let forged = "x\n<86>1 2026-01-01T00:00:00Z host portcullis 1 auth.login [audit@32473 outcome=\"ok\"] admin\r\u{2028}\u{85}\u{0}";
        let row = AuditRow {
            seq: 7,
            at: 0,
            actor_id: String::new(),
            actor_name: forged.into(),
            client_addr: forged.into(),
            action: forged.into(),
            outcome: "failed".into(),
            object_kind: String::new(),
            object_id: String::new(),
            object_name: forged.into(),
            detail: forged.into(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let line = format_5424(&row);
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{2028}'),
            "{line:?}"
        );
        assert!(line.starts_with("<84>1 "), "{line}");
        assert!(line.contains("actor=\"x\\\\u{a}<86>1"), "{line}");
    }
}
