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

/// Every sealed column, as the database holds it, mapped to the key ids its values name.
async fn sealing_keys(site: &Site) -> Vec<String> {
    let mut out = Vec::new();
    for (table, col) in [
        ("accounts", "secret_enc"),
        ("password_history", "secret_enc"),
        ("users", "totp_secret_enc"),
        ("signing_keys", "sealed_private"),
        ("recording_keys", "wrapped_key"),
        ("recording_keys", "hidden_key"),
        ("recording_index_lines", "sealed_lines"),
    ] {
        for v in site
            .raw_sql(&format!(
                "SELECT {col} FROM {table} WHERE {col} IS NOT NULL"
            ))
            .await
        {
            out.push(format!(
                "{table}.{col}={}",
                v.split(':').nth(1).unwrap_or("?")
            ));
        }
    }
    out
}

/// Waits for the newest data-key rotation to finish; returns the API's view.
async fn rotated(admin: &crate::harness::Client) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let v = admin.get("/vault/data-keys").await.ok();
        if v["rotations"][0]["state"] != "running" {
            return v;
        }
        assert!(Instant::now() < until, "the rotation did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A data-key rotation: new seals use the new key at once; every sealed value (account
/// secrets, history, second-factor seeds, the signing key) is re-encrypted in the background
/// with progress; the old key is retired, not deleted; everything still opens after a
/// restart; only a super administrator may start it (audited); `key purge` lists first and
/// deletes the retired key only with --yes, after which the server still starts.
#[tokio::test]
async fn data_key_rotation_reencrypts_every_sealed_value_and_purge_is_explicit() {
    use crate::auth::{base32_decode, code_now};
    for backend in BACKENDS {
        let site = Site::new(backend);
        let mut server = site.start();
        let admin = server.admin().await;
        let rid = admin.resource("dk").await;
        let account = admin.account(&rid, "svc", "Data-Key-Old-0001!").await;
        admin
            .call(
                "PUT",
                &format!("/accounts/{account}/secret"),
                json!({ "secret": SECRET }),
            )
            .await
            .ok();
        let (user, _) = server.user(&admin, "dkuser", "administrator").await;
        let e = user.call("POST", "/auth/totp/enroll", json!({})).await.ok();
        let seed = base32_decode(e["secret_base32"].as_str().unwrap_or_default());
        user.call(
            "POST",
            "/auth/totp/confirm",
            json!({ "code": code_now(&seed, 0) }),
        )
        .await
        .ok();
        let before = admin.get("/vault/data-keys").await.ok();
        let old = before["active_key_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            sealing_keys(&site).await.iter().all(|k| k.ends_with(&old)),
            "{backend:?}"
        );

        // Not a super administrator: refused and audited.
        let r = user
            .call("POST", "/vault/data-keys/rotate", json!({}))
            .await;
        assert_eq!(r.status, 403, "{backend:?}: {:?}", r.body);
        let denied = admin.get("/audit?action=key.data.rotate").await.ok();
        assert_eq!(denied[0]["outcome"], "denied", "{denied}");

        // Two at once: one starts, the other is told one is running.
        let (a, b) = tokio::join!(
            admin.call("POST", "/vault/data-keys/rotate", json!({})),
            admin.call("POST", "/vault/data-keys/rotate", json!({}))
        );
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [202, 409],
            "{backend:?}: {:?} {:?}",
            a.body,
            b.body
        );
        let started = if a.status == 202 { a.body } else { b.body };
        let new = started["rotation"]["new_key_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_ne!(new, old);
        let view = rotated(&admin).await;
        let rot = &view["rotations"][0];
        assert_eq!(rot["state"], "finished", "{backend:?}: {view}");
        assert_eq!(rot["done"], rot["total"], "{view}");
        assert!(rot["total"].as_i64().unwrap_or(0) >= 4, "{view}");
        assert_eq!(view["active_key_id"], json!(new));
        let old_row = view["keys"]
            .as_array()
            .and_then(|ks| ks.iter().find(|k| k["id"] == json!(old)))
            .cloned()
            .unwrap_or_default();
        assert!(old_row["retired_at"].as_i64().unwrap_or(0) > 0, "{view}");
        let sealed = sealing_keys(&site).await;
        assert!(
            sealed.iter().all(|k| k.ends_with(&new)),
            "{backend:?}: values left under the old key: {sealed:?}"
        );
        assert!(!view.to_string().contains("wrapped"), "{view}");
        let audit = admin.get("/audit?action=key.data.rotate").await.ok();
        assert!(audit[0]["detail"]["alert"].is_string(), "{audit}");
        server.kill();

        // After a restart everything opens under the new key: the secret and the second
        // factor (the history was opened and re-sealed by the rotation itself).
        assert_eq!(reveal_after_restart(&site, &account).await, SECRET);
        let server = site.start();
        let admin = server.client();
        admin.login_ok("admin", ADMIN_PASSWORD).await;
        let u = server.client();
        let r = u.login("dkuser", crate::harness::USER_PASSWORD).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        u.call("POST", "/auth/totp", json!({ "code": code_now(&seed, 1) }))
            .await
            .ok();
        drop(server);

        // The retired key is deleted only on purpose.
        let listed = site.cli(&["key", "purge"]);
        let text = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.status.success(), "{text}");
        assert!(
            text.contains(&format!("would delete retired data key {old}")),
            "{text}"
        );
        assert_eq!(
            site.raw_sql(&format!("SELECT id FROM data_keys WHERE id = '{old}'"))
                .await
                .len(),
            1
        );
        let purged = site.cli(&["key", "purge", "--yes"]);
        let text = String::from_utf8_lossy(&purged.stdout);
        assert!(
            purged.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&purged.stderr)
        );
        assert!(
            text.contains(&format!("deleting retired data key {old}")),
            "{text}"
        );
        assert!(site
            .raw_sql(&format!("SELECT id FROM data_keys WHERE id = '{old}'"))
            .await
            .is_empty());
        assert_eq!(reveal_after_restart(&site, &account).await, SECRET);
        let audit = site.cli(&["audit", "verify"]);
        assert!(audit.status.success(), "{backend:?}");
    }
}

/// Recordings after a data-key rotation: the key of a recording made before the
/// `recording_keys` table (only in its file's header) is adopted and re-encrypted, the search
/// index too, and the recording still replays and is found after the old key is purged.
/// An account whose rotation is in flight (a pending secret) is left alone: the data-key
/// rotation waits for it, showing why, and finishes once it has settled.
#[tokio::test]
async fn recordings_and_secrets_in_flight_survive_a_data_key_rotation() {
    use crate::live::{
        engineer_with_connect_env, exit_shell, open_session, read_until, terminal_has, type_line,
    };
    let w = engineer_with_connect_env(&[("PORTCULLIS_TEST_DATA_KEY_RETRY_MS", "100")]).await;
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    type_line(&mut ws, &mut got, "echo dkrec-$((6*7))", "dkrec-42").await;
    exit_shell(&mut ws, &mut got).await;
    let rows = crate::recordings::recordings_in(&w.admin, "complete", 1).await;
    let rec = rows[0]["id"].as_str().unwrap_or_default().to_string();
    crate::recordings::hits_for(&w.admin, "dkrec-42").await;
    // As if made before the table existed: the key only in the file's header.
    w._site
        .raw_sql(&format!(
            "DELETE FROM recording_keys WHERE recording_id = '{rec}'"
        ))
        .await;
    // A rotation in flight on the account (its pending secret, sealed like every secret).
    let secret_enc = w
        ._site
        .raw_sql(&format!(
            "SELECT secret_enc FROM accounts WHERE id = '{}'",
            w.account
        ))
        .await
        .remove(0);
    w._site
        .raw_sql(&format!(
            "INSERT INTO pending_secrets (account_id, job_id, secret_enc, phase, created_at, started_from) VALUES ('{}', 'job-x', 'pc1:none:AAAA', 'stored', 0, '{secret_enc}')",
            w.account
        ))
        .await;

    w.admin
        .call("POST", "/vault/data-keys/rotate", json!({}))
        .await
        .ok();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let v = w.admin.get("/vault/data-keys").await.ok();
        let msg = v["rotations"][0]["message"].as_str().unwrap_or_default();
        if msg.starts_with("waiting for 1 values held by a rotation in flight") {
            assert_eq!(v["rotations"][0]["state"], "running", "{v}");
            break;
        }
        assert!(Instant::now() < until, "never waited for the account: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The rotation in flight settles (here: its row goes); the data-key rotation finishes.
    w._site
        .raw_sql(&format!(
            "DELETE FROM pending_secrets WHERE account_id = '{}'",
            w.account
        ))
        .await;
    let view = rotated(&w.admin).await;
    assert_eq!(view["rotations"][0]["state"], "finished", "{view}");
    let new = view["active_key_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let sealed = sealing_keys(&w._site).await;
    assert!(
        sealed.iter().any(|k| k.starts_with("recording_keys.")),
        "the recording's key was not adopted: {sealed:?}"
    );
    assert!(
        sealed.iter().all(|k| k.ends_with(&new)),
        "values left under the old key: {sealed:?}"
    );
    let purged = w._site.cli(&["key", "purge", "--yes"]);
    assert!(
        purged.status.success(),
        "{}",
        String::from_utf8_lossy(&purged.stderr)
    );
    let events = w.admin.get(&format!("/recordings/{rec}/events")).await.ok();
    assert!(
        events.to_string().contains("echo dkrec-$((6*7))"),
        "{events}"
    );
    crate::recordings::hits_for(&w.admin, "dkrec-42").await;
}
