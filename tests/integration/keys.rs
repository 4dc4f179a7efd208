//! Master key rotation: completes, keeps the old key, and survives `kill -9` at every step.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Site, ADMIN_PASSWORD, BACKENDS};

const SECRET: &str = "Rotation-Canary-9876!x";

/// Seeds a site with an account and a TOTP-free admin; returns the account id.
async fn seed(site: &Site) -> String {
    let mut server = site.start();
    let admin = server.admin().await;
    let rid = admin.resource("rot").await;
    let account = admin.account(&rid, "svc", SECRET).await;
    server.kill();
    account
}

async fn reveal_after_restart(site: &Site, account: &str) -> String {
    let server = site.start();
    let c = server.client();
    c.login_ok("admin", ADMIN_PASSWORD).await;
    let r = c
        .call(
            "POST",
            &format!("/accounts/{account}/reveal"),
            json!({ "reason": "rotation check" }),
        )
        .await
        .ok();
    r["secret"].as_str().unwrap().to_string()
}

fn key_id(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("id="))
        .unwrap()
        .to_string()
}

fn next_file(site: &Site) -> std::path::PathBuf {
    let mut p = site.key_file.as_os_str().to_os_string();
    p.push(".next");
    p.into()
}

#[tokio::test]
async fn rotation_rewraps_and_keeps_the_old_key() {
    for backend in BACKENDS {
        let site = Site::new(backend);
        let account = seed(&site).await;
        let old = key_id(&site.key_file);
        let out = site.cli(&["key", "rotate"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{backend:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("re-wrapped data key 1/2") && text.contains("re-wrapped data key 2/2"),
            "progress: {text}"
        );
        let new = key_id(&site.key_file);
        assert_ne!(old, new);
        let retired = site
            .key_file
            .parent()
            .unwrap()
            .join(format!("master.key.retired-{old}"));
        assert!(retired.exists(), "{backend:?}: old key not kept");
        let ids = site.raw_sql("SELECT master_key_id FROM data_keys").await;
        assert!(ids.iter().all(|i| *i == new), "{backend:?}: {ids:?}");
        assert_eq!(reveal_after_restart(&site, &account).await, SECRET);
        let audit = site.cli(&["audit", "verify"]);
        assert!(audit.status.success());
    }
}

/// Kills `key rotate` after the given progress line appears, then recovers with `recover`.
async fn crash_at(backend: crate::harness::Backend, marker: &str, recover_with_serve: bool) {
    let mut site = Site::new(backend);
    let account = seed(&site).await;
    let old = key_id(&site.key_file);
    site.env.push((
        "PORTCULLIS_TEST_ROTATION_STEP_DELAY_MS".into(),
        "1500".into(),
    ));
    let out = site.dir.path().join("rotate.out");
    let mut child = site.cli_spawn(&["key", "rotate"], &out);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&out)
        .unwrap_or_default()
        .contains(marker)
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "rotate finished before `{marker}`"
        );
        assert!(
            Instant::now() < deadline,
            "no `{marker}` in {}",
            std::fs::read_to_string(&out).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    site.env.clear();
    assert!(
        next_file(&site).exists(),
        "the crash should leave the rotation unfinished"
    );

    if recover_with_serve {
        assert_eq!(
            reveal_after_restart(&site, &account).await,
            SECRET,
            "{backend:?} after crash at `{marker}`"
        );
    } else {
        let o = site.cli(&["key", "rotate"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(reveal_after_restart(&site, &account).await, SECRET);
    }
    assert!(
        !next_file(&site).exists(),
        "the interrupted rotation was not completed"
    );
    assert_ne!(key_id(&site.key_file), old);
    let ids = site.raw_sql("SELECT master_key_id FROM data_keys").await;
    let current = key_id(&site.key_file);
    assert!(
        ids.iter().all(|i| *i == current),
        "{backend:?}: rows not all under the current key: {ids:?}"
    );
    assert!(site
        .key_file
        .parent()
        .unwrap()
        .join(format!("master.key.retired-{old}"))
        .exists());
}

#[tokio::test]
async fn rotation_survives_kill_9_at_every_step() {
    for backend in BACKENDS {
        // New key written, nothing re-wrapped yet.
        crash_at(backend, "step 2/3", true).await;
        // One data key re-wrapped, one not: the database holds both keys' rows.
        crash_at(backend, "re-wrapped data key 1/2", false).await;
        // Every row re-wrapped, old key not yet retired.
        crash_at(backend, "re-wrapped data key 2/2", true).await;
    }
}
