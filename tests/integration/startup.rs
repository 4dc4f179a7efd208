//! Start-up: zero configuration, configuration errors, master key refusal rules.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Backend, Client, Site, BACKENDS, BIN};

fn wait_listening(out: &std::path::Path, child: &mut std::process::Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if let Some(rest) = text.split("listening on ").nth(1) {
            return rest.lines().next().unwrap_or("").trim().to_string();
        }
        if let Ok(Some(s)) = child.try_wait() {
            panic!("exited early with {s}");
        }
        assert!(Instant::now() < deadline, "did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn zero_configuration_start_then_restart() {
    let cwd = tempfile::tempdir().unwrap();
    let spawn = |tag: &str| {
        let out = cwd.path().join(format!("{tag}.out"));
        let err = cwd.path().join(format!("{tag}.err"));
        // No flags, no config file: only the port is moved off 7272 so tests can run in parallel.
        let child = Command::new(BIN)
            .current_dir(cwd.path())
            .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        (child, out, err)
    };
    let (mut child, out, err) = spawn("first");
    let url = wait_listening(&out, &mut child);
    let data = cwd.path().join("portcullis-data");
    for f in ["portcullis.db", "master.key", "tls/cert.pem", "tls/key.pem"] {
        assert!(data.join(f).exists(), "{f} was not created");
    }
    let stderr = std::fs::read_to_string(&err).unwrap();
    let otp = stderr
        .split("one-time password:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("bootstrap password printed")
        .to_string();

    let c = Client::new(&url);
    let me = c.login_ok("admin", &otp).await;
    assert_eq!(me["must_change_password"], true);
    let r = c.get("/resources").await;
    assert_eq!(
        r.status, 403,
        "nothing but a password change is allowed first: {:?}",
        r.body
    );
    let weak = c
        .call(
            "POST",
            "/auth/password",
            json!({ "current_password": otp, "new_password": "short" }),
        )
        .await;
    assert_eq!(
        (weak.status, weak.error_field()),
        (400, Some("new_password"))
    );
    c.call(
        "POST",
        "/auth/password",
        json!({ "current_password": otp, "new_password": "a brand new operator passphrase" }),
    )
    .await
    .ok();
    c.get("/resources").await.ok();
    let key_before = std::fs::read(data.join("master.key")).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    // Second start: same key, no new bootstrap password, the changed password still works.
    let (mut child, out, err) = spawn("second");
    let url = wait_listening(&out, &mut child);
    assert!(!std::fs::read_to_string(&err)
        .unwrap()
        .contains("one-time password"));
    assert_eq!(std::fs::read(data.join("master.key")).unwrap(), key_before);
    let c = Client::new(&url);
    assert_eq!(c.login("admin", &otp).await.status, 401);
    c.login_ok("admin", "a brand new operator passphrase").await;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn invalid_settings_stop_start_up_naming_setting_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("site.toml");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let o = Command::new(BIN)
            .current_dir(dir.path())
            .args(args)
            .envs(env.iter().cloned())
            .arg("serve")
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    std::fs::write(&cfg, "listen = \"everywhere\"\n").unwrap();
    let (code, err) = run(&["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("`listen`") && err.contains(cfg.to_str().unwrap()),
        "{err}"
    );

    std::fs::write(&cfg, "data_dir = \"x\"\nsesion_idle_timeout = \"5m\"\n").unwrap();
    let (code, err) = run(&["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("`sesion_idle_timeout`") && err.contains("unknown field"),
        "{err}"
    );

    let (code, err) = run(&[], &[("PORTCULLIS_LOGIN_LOCKOUT", "forever")]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("`login_lockout`") && err.contains("PORTCULLIS_LOGIN_LOCKOUT"),
        "{err}"
    );

    let (code, err) = run(&["--database-url", "mysql://x"], &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("`database_url`") && err.contains("--database-url"),
        "{err}"
    );
    assert!(
        !dir.path().join("portcullis-data").exists(),
        "a refused start must not create data"
    );
}

#[test]
fn help_documents_every_setting() {
    let o = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for (key, env, _, _) in portcullis::config::SETTINGS {
        assert!(
            help.contains(key) && help.contains(env),
            "--help does not mention {key} / {env}"
        );
    }
}

#[tokio::test]
async fn missing_or_wrong_master_key_refuses_start_and_touches_nothing() {
    for backend in BACKENDS {
        let site = Site::new(backend);
        let mut server = site.start();
        let admin = server.admin().await;
        let rid = admin.resource("db1").await;
        let account = admin.account(&rid, "root", "Kept-Secret-1234!x").await;
        server.kill();

        let key = site.key_file.clone();
        let moved = key.with_extension("away");
        std::fs::rename(&key, &moved).unwrap();
        let before = site
            .raw_sql("SELECT wrapped FROM data_keys ORDER BY id")
            .await;
        let out = site.cli(&["serve", "--listen", "127.0.0.1:0"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{backend:?}: started without its key"
        );
        assert!(
            err.contains("is missing") && err.contains("never re-initialises"),
            "{backend:?}: {err}"
        );
        assert!(
            !key.exists(),
            "{backend:?}: a new key was generated over existing data"
        );
        assert_eq!(
            site.raw_sql("SELECT wrapped FROM data_keys ORDER BY id")
                .await,
            before
        );

        // A different key file: refused, named as the wrong key.
        let other = tempfile::tempdir().unwrap();
        let other_site_key = other.path().join("k");
        let o = Command::new(BIN)
            .args([
                "--data-dir",
                other.path().join("d").to_str().unwrap(),
                "--master-key-file",
                other_site_key.to_str().unwrap(),
                "audit",
                "verify",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::copy(&other_site_key, &key).unwrap();
        let out = site.cli(&["serve", "--listen", "127.0.0.1:0"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("wrong key file"),
            "{backend:?}: {err}"
        );
        assert_eq!(
            site.raw_sql("SELECT wrapped FROM data_keys ORDER BY id")
                .await,
            before
        );

        // The right key again: everything is there.
        std::fs::rename(&moved, &key).unwrap();
        let server = site.start();
        let c = server.client();
        c.login_ok("admin", crate::harness::ADMIN_PASSWORD).await;
        let s = c
            .call(
                "POST",
                &format!("/accounts/{account}/reveal"),
                json!({ "reason": "check after restore" }),
            )
            .await
            .ok();
        assert_eq!(s["secret"], "Kept-Secret-1234!x", "{backend:?}");
    }
}

#[test]
fn strict_mode_refuses_a_key_inside_the_data_directory() {
    let site = Site::new(Backend::Sqlite);
    let data = site.data_dir();
    let out = Command::new(BIN)
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--strict",
            "--listen",
            "127.0.0.1:0",
            "serve",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("strict mode")
            && err.contains("inside the data directory"),
        "{err}"
    );
    assert!(
        !data.join("master.key").exists(),
        "strict refusal must happen before a key is generated"
    );
    // With the key outside, strict starts.
    let mut server = site.start_with(&["--strict"]);
    assert!(server.bootstrap_password.is_some());
    server.kill();
}

#[tokio::test]
async fn openapi_documents_every_route_and_every_documented_route_exists() {
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let c = server.client();
    let doc = c.get("/openapi.json").await.ok();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let mut n = 0;
    for (path, ops) in paths {
        for (method, _) in ops.as_object().unwrap() {
            n += 1;
            // Anonymous calls: a documented route answers 401 (or works when public), never
            // the router's "no such route".
            let p = path
                .replace("{id}", "00000000-0000-0000-0000-000000000000")
                .replacen("/api/v1", "", 1);
            let r = c
                .raw(&method.to_uppercase(), &p, Some(json!({})), false)
                .await;
            assert_ne!(
                r.body["error"]["code"], "no_route",
                "{method} {path} is documented but not routed"
            );
            assert!(
                r.status != 404 || r.body["error"]["code"] == "not_found",
                "{method} {path}: {:?}",
                r.body
            );
        }
    }
    assert_eq!(n, portcullis::api::ROUTES.len());
    assert_eq!(
        c.get("/no/such/thing").await.body["error"]["code"],
        "no_route"
    );
}

#[tokio::test]
async fn serves_the_operators_certificate_when_given() {
    let site = Site::new(Backend::Sqlite);
    let (server, op) = site.start_with_operator_cert();
    let cert = op.cert.clone();
    assert!(
        !site.data_dir().join("tls/cert.pem").exists(),
        "a certificate was generated although one was given"
    );
    // A client that trusts only the operator's certificate (and checks it) can connect.
    let port = server.url.rsplit(':').next().unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(op.pem.as_bytes()).unwrap()])
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{port}/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A missing key file is a named configuration error.
    let out = site.cli(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        "/nonexistent/key.pem",
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("tls_key"), "{err}");
}
