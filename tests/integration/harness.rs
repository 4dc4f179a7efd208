//! Why: every integration test drives the real `portcullis` binary over HTTPS, as a user or
//! script would. This module starts it (SQLite or a fresh PostgreSQL database), finds its port
//! and bootstrap password, and gives tests an HTTP client that keeps cookies, sends the CSRF
//! token and remembers every response body (for the canary checks). Servers are killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::postgres_cluster;

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// A data directory and database that outlive one server process (for restart tests).
/// Every network: the test peers listen on loopback, which the default policy refuses.
pub const TEST_NETWORKS: &str = "0.0.0.0/0,::/0";

pub struct Site {
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    pub database_url: String,
    pub key_file: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Site {
    pub fn new(backend: Backend) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = match backend {
            Backend::Sqlite => format!(
                "sqlite://{}",
                dir.path().join("data/portcullis.db").display()
            ),
            Backend::Postgres => postgres_cluster::cluster().fresh_database(),
        };
        let key_file = dir.path().join("keys/master.key");
        Site {
            dir,
            backend,
            database_url,
            key_file,
            env: Vec::new(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The standard flags for this site.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.data_dir().display().to_string(),
            "--database-url".into(),
            self.database_url.clone(),
            "--master-key-file".into(),
            self.key_file.display().to_string(),
        ]
    }

    pub fn start(&self) -> Server {
        self.start_with(&[])
    }

    pub fn start_with(&self, extra: &[&str]) -> Server {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let out = self.dir.path().join(format!("stdout-{n}.log"));
        let err = self.dir.path().join(format!("stderr-{n}.log"));
        let mut cmd = Command::new(BIN);
        cmd.args(self.args())
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .arg("serve");
        cmd.current_dir(self.dir.path());
        cmd.env_remove("PORTCULLIS_CONFIG");
        // No nightly verification run in tests unless one asks for it (it would add jobs).
        cmd.env("PORTCULLIS_ROTATION_VERIFY_AT", "off");
        // The test peers listen on loopback: resources may point anywhere here unless a test
        // sets the policy itself.
        cmd.env("PORTCULLIS_RESOURCE_NETWORKS", TEST_NETWORKS);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout log"))
            .stderr(std::fs::File::create(&err).expect("stderr log"));
        let child = cmd.spawn().expect("spawn portcullis");
        let mut server = Server {
            child: Some(child),
            url: String::new(),
            stdout: out,
            stderr: err,
            bootstrap_password: None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&server.stdout).unwrap_or_default();
            if let Some(rest) = text.split("listening on ").nth(1) {
                server.url = rest.lines().next().unwrap_or("").trim().to_string();
                break;
            }
            if let Some(Ok(Some(status))) = server.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "portcullis exited with {status} before listening:\n{}",
                    server.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "portcullis did not start in time:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(&server.stderr).unwrap_or_default();
        server.bootstrap_password = log
            .split("one-time password:")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .map(str::to_string);
        server
    }

    /// Starts the server with an operator-supplied certificate for `localhost` (instead of
    /// the generated one), so clients can verify TLS properly.
    pub fn start_with_operator_cert(&self) -> (Server, OperatorCert) {
        let ck =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let cert = self.dir.path().join("operator-cert.pem");
        let key = self.dir.path().join("operator-key.pem");
        std::fs::write(&cert, ck.cert.pem()).expect("write cert");
        std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
        let server = self.start_with(&[
            "--tls-cert",
            cert.to_str().unwrap_or_default(),
            "--tls-key",
            key.to_str().unwrap_or_default(),
        ]);
        (
            server,
            OperatorCert {
                pem: ck.cert.pem(),
                cert,
            },
        )
    }

    /// Runs a one-shot CLI command (`key rotate`, `audit verify`, ...) against this site.
    /// Fails the test if the command runs longer than a minute (a `serve` that should have
    /// been refused would otherwise hang the suite).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut child = Command::new(BIN)
            .args(self.args())
            .args(args)
            .current_dir(self.dir.path())
            .env("PORTCULLIS_RESOURCE_NETWORKS", TEST_NETWORKS)
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run portcullis");
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "portcullis {args:?} did not finish: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    }

    /// Starts a CLI command in the background with its stdout going to a file (crash tests).
    pub fn cli_spawn(&self, args: &[&str], stdout: &Path) -> Child {
        Command::new(BIN)
            .args(self.args())
            .args(args)
            .current_dir(self.dir.path())
            .env("PORTCULLIS_RESOURCE_NETWORKS", TEST_NETWORKS)
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(stdout).expect("stdout file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn portcullis")
    }

    /// Runs SQL directly against the site's database, bypassing Portcullis (tamper tests).
    /// Returns the first column of each row, as text.
    pub async fn raw_sql(&self, sql: &str) -> Vec<String> {
        use sqlx::Row;
        sqlx::any::install_default_drivers();
        let url = if self.backend == Backend::Sqlite {
            format!("{}?mode=rw", self.database_url)
        } else {
            self.database_url.clone()
        };
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .expect("raw connection");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|r| {
                r.try_get::<String, _>(0)
                    .or_else(|_| r.try_get::<i64, _>(0).map(|v| v.to_string()))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Every file that holds this site's stored data (database files, WAL, key dir).
    pub fn storage_files(&self) -> Vec<PathBuf> {
        let mut roots = vec![self.data_dir()];
        if self.backend == Backend::Postgres {
            let c = postgres_cluster::cluster();
            c.psql("postgres", "CHECKPOINT");
            roots.push(c.data_dir());
        }
        let mut out = Vec::new();
        for r in roots {
            walk(&r, &mut out);
        }
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

pub struct OperatorCert {
    pub pem: String,
    pub cert: PathBuf,
}

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub bootstrap_password: Option<String>,
}

impl Server {
    /// The gateway's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log(&self) -> String {
        format!(
            "{}{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Logs in as `admin` with the bootstrap password and sets a permanent one.
    pub async fn admin(&self) -> Client {
        let c = self.client();
        let otp = self
            .bootstrap_password
            .clone()
            .expect("bootstrap password printed on first start");
        c.login_ok("admin", &otp).await;
        c.call(
            "POST",
            "/auth/password",
            json!({ "current_password": otp, "new_password": ADMIN_PASSWORD }),
        )
        .await
        .ok();
        c
    }

    /// Creates a user with a role and a known password, logged in and ready.
    pub async fn user(&self, admin: &Client, name: &str, role: &str) -> (Client, String) {
        let created = admin
            .call("POST", "/users", json!({ "username": name, "role": role }))
            .await
            .ok();
        let id = created["user"]["id"].as_str().expect("user id").to_string();
        let otp = created["one_time_password"]
            .as_str()
            .expect("otp")
            .to_string();
        let c = self.client();
        c.login_ok(name, &otp).await;
        c.call(
            "POST",
            "/auth/password",
            json!({ "current_password": otp, "new_password": USER_PASSWORD }),
        )
        .await
        .ok();
        (c, id)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub const ADMIN_PASSWORD: &str = "the root operator passphrase";
pub const USER_PASSWORD: &str = "a member passphrase, long";

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The body, asserting a 2xx status.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "expected success, got {}: {}",
            self.status,
            self.body
        );
        self.body
    }
    pub fn error_field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }
    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

/// An HTTP client for one user: cookies, CSRF header, optional bearer token. Every response
/// body is kept in `seen` (shared with clones) for canary checks.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    pub base: String,
    csrf: Arc<Mutex<Option<String>>>,
    pub bearer: Option<String>,
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .cookie_store(true)
            .build()
            .expect("http client");
        Client {
            http,
            base: base.to_string(),
            csrf: Arc::new(Mutex::new(None)),
            bearer: None,
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn with_token(&self, token: &str) -> Client {
        let mut c = Client::new(&self.base);
        c.bearer = Some(token.to_string());
        c.seen = self.seen.clone();
        c
    }

    pub async fn raw(&self, method: &str, path: &str, body: Option<Value>, csrf: bool) -> Reply {
        let url = format!("{}/api/v1{}", self.base, path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, &url);
        if let Some(t) = &self.bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if csrf {
            if let Some(t) = self.csrf.lock().unwrap().clone() {
                req = req.header("x-csrf-token", t);
            }
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        self.seen
            .lock()
            .unwrap()
            .push(format!("{method} {path} -> {status}\n{headers:?}\n{text}"));
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if let Some(t) = body.get("csrf_token").and_then(|v| v.as_str()) {
            *self.csrf.lock().unwrap() = Some(t.to_string());
        }
        Reply {
            status,
            body,
            headers,
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Value) -> Reply {
        let b = if method == "GET" { None } else { Some(body) };
        self.raw(method, path, b, true).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.raw("GET", path, None, true).await
    }

    pub async fn login(&self, user: &str, password: &str) -> Reply {
        self.raw(
            "POST",
            "/auth/login",
            Some(json!({ "username": user, "password": password })),
            false,
        )
        .await
    }

    pub async fn login_ok(&self, user: &str, password: &str) -> Value {
        self.login(user, password).await.ok()
    }

    /// Adds a resource (Strong policy, SSH) and returns its id.
    pub async fn resource(&self, name: &str) -> String {
        let r = self
            .call(
                "POST",
                "/resources",
                json!({ "name": name, "host": "10.3.0.1" }),
            )
            .await
            .ok();
        r["id"].as_str().expect("resource id").to_string()
    }

    /// Adds a password account to a resource and returns its id.
    pub async fn account(&self, resource_id: &str, username: &str, secret: &str) -> String {
        let a = self
            .call(
                "POST",
                &format!("/resources/{resource_id}/accounts"),
                json!({ "username": username, "secret": secret }),
            )
            .await
            .ok();
        a["id"].as_str().expect("account id").to_string()
    }

    /// Every response body this client (and its clones) received.
    pub fn transcript(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }
}
