//! Audit chain: tampering with the stored rows is named by `portcullis audit verify` (and the
//! API); audit events are forwarded to syslog.

use serde_json::json;

use crate::harness::{Backend, Site, BACKENDS};

/// A site with a few audit rows and no server running.
async fn seeded(backend: Backend) -> Site {
    let site = Site::new(backend);
    let mut server = site.start();
    let admin = server.admin().await;
    for i in 0..3 {
        admin
            .call(
                "POST",
                "/resources",
                json!({ "name": format!("r{i}"), "host": "10.5.0.1" }),
            )
            .await
            .ok();
    }
    server.kill();
    let ok = site.cli(&["audit", "verify"]);
    assert!(
        ok.status.success(),
        "fresh chain does not verify: {}",
        String::from_utf8_lossy(&ok.stdout)
    );
    site
}

fn verify(site: &Site) -> (bool, String) {
    let o = site.cli(&["audit", "verify"]);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string(),
    )
}

#[tokio::test]
async fn tampering_is_detected_and_the_row_named() {
    for backend in BACKENDS {
        // Altered row.
        let site = seeded(backend).await;
        site.raw_sql("UPDATE audit_log SET actor_name = 'mallory' WHERE seq = 4")
            .await;
        let (ok, out) = verify(&site);
        assert!(
            !ok && out.contains("row 4 was altered"),
            "{backend:?}: {out}"
        );

        // Deleted row in the middle.
        let site = seeded(backend).await;
        site.raw_sql("DELETE FROM audit_log WHERE seq = 3").await;
        let (ok, out) = verify(&site);
        assert!(
            !ok && out.contains("row 3 is missing"),
            "{backend:?}: {out}"
        );

        // Rows deleted from the end.
        let site = seeded(backend).await;
        let last: i64 = site.raw_sql("SELECT MAX(seq) FROM audit_log").await[0]
            .parse()
            .unwrap();
        site.raw_sql(&format!("DELETE FROM audit_log WHERE seq = {last}"))
            .await;
        let (ok, out) = verify(&site);
        assert!(
            !ok && out.contains(&format!("first bad row: {last}")),
            "{backend:?}: {out}"
        );

        // A forged row inserted (the forger cannot compute the HMAC without the master key).
        let site = seeded(backend).await;
        site.raw_sql("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 5")
            .await;
        site.raw_sql("INSERT INTO audit_log (seq, at, actor_id, actor_name, client_addr, action, outcome, object_kind, object_id, object_name, detail, prev_hash, hash) \
                      SELECT 5, at, actor_id, 'mallory', client_addr, 'account.reveal', 'ok', object_kind, object_id, object_name, '{}', hash, hash FROM audit_log WHERE seq = 4").await;
        let (ok, out) = verify(&site);
        assert!(
            !ok && out.contains("first bad row: 5"),
            "{backend:?}: {out}"
        );
    }
}

#[tokio::test]
async fn api_verify_reports_the_same() {
    let site = seeded(Backend::Sqlite).await;
    site.raw_sql("UPDATE audit_log SET detail = '{\"x\":1}' WHERE seq = 2")
        .await;
    let server = site.start();
    let c = server.client();
    c.login_ok("admin", crate::harness::ADMIN_PASSWORD).await;
    let r = c.get("/audit/verify").await.ok();
    assert_eq!(r["ok"], false);
    assert_eq!(r["problem"]["seq"], 2);
    assert_eq!(r["problem"]["kind"], "altered");
}

#[tokio::test]
async fn audit_events_go_to_syslog_udp_and_tcp() {
    use tokio::io::AsyncReadExt;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    for (proto, addr) in [
        ("udp", udp.local_addr().unwrap()),
        ("tcp", tcp.local_addr().unwrap()),
    ] {
        let mut site = Site::new(Backend::Sqlite);
        site.env
            .push(("PORTCULLIS_SYSLOG".into(), format!("{proto}://{addr}")));
        let server = site.start();
        server.client().login("nosuchuser", "wrong password!").await;
        let text = if proto == "udp" {
            let mut all = String::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !all.contains("auth.login") && std::time::Instant::now() < deadline {
                let mut buf = vec![0u8; 4096];
                if let Ok(Ok((n, _))) =
                    tokio::time::timeout(std::time::Duration::from_secs(5), udp.recv_from(&mut buf))
                        .await
                {
                    all.push_str(&String::from_utf8_lossy(&buf[..n]));
                    all.push('\n');
                }
            }
            all
        } else {
            let (mut s, _) = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.accept())
                .await
                .unwrap()
                .unwrap();
            let mut all = String::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !all.contains("auth.login") && std::time::Instant::now() < deadline {
                let mut buf = vec![0u8; 4096];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await
                {
                    all.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
            all
        };
        let line = text
            .lines()
            .find(|l| l.contains("auth.login"))
            .unwrap_or_else(|| panic!("{proto}: no auth.login in {text:?}"));
        // RFC 5424: <PRI>1 TIMESTAMP ..., authpriv facility, warning severity for a failure.
        assert!(
            line.contains("<84>1 ")
                && line.contains("outcome=\"failed\"")
                && line.contains("actor=\"unknown user #")
                && !line.contains("nosuchuser"),
            "{proto}: {line}"
        );
    }
}
