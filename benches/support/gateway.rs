//! Why: every session benchmark starts the release `portcullis` binary on loopback with its
//! own TLS certificate, logs in as the bootstrap administrator and opens session sockets the
//! way the browser does. This is that part, shared by `benches/sessions.rs` and
//! `benches/desktop.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

pub struct Gateway {
    pub child: std::process::Child,
    pub port: u16,
    pub cert_pem: String,
    pub cookie: String,
    pub http: reqwest::Client,
    pub csrf: String,
    /// The account sessions are opened with (set by the benchmark).
    pub account: String,
    pub _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Starts the gateway with `env` and logs in as the administrator (new passphrase set).
    pub async fn start(env: &[(&str, &str)]) -> anyhow::Result<Gateway> {
        let dir = tempfile::tempdir()?;
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
        std::fs::write(dir.path().join("c.pem"), ck.cert.pem())?;
        std::fs::write(dir.path().join("k.pem"), ck.signing_key.serialize_pem())?;
        let out = dir.path().join("out");
        let err = dir.path().join("err");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args([
                "--data-dir",
                dir.path().join("d").to_str().unwrap_or_default(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args([
                "--tls-cert",
                dir.path().join("c.pem").to_str().unwrap_or_default(),
                "--tls-key",
                dir.path().join("k.pem").to_str().unwrap_or_default(),
                "serve",
            ])
            .env("PORTCULLIS_LOG", "warn")
            // The peers listen on loopback, which the default resource_networks refuses.
            .env("PORTCULLIS_RESOURCE_NETWORKS", "0.0.0.0/0,::/0")
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&err)?)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(rest) = text.split("listening on https://127.0.0.1:").nth(1) {
                break rest.trim().parse()?;
            }
            anyhow::ensure!(Instant::now() < deadline, "gateway did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let otp = std::fs::read_to_string(&err)?
            .split("one-time password:")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_default()
            .to_string();
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .cookie_store(true)
            .build()?;
        let base = format!("https://127.0.0.1:{port}/api/v1");
        let login = http
            .post(format!("{base}/auth/login"))
            .json(&json!({ "username": "admin", "password": otp }))
            .send()
            .await?;
        let cookie = login
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        let me: Value = login.json().await?;
        let csrf = me["csrf_token"].as_str().unwrap_or_default().to_string();
        let g = Gateway {
            child,
            port,
            cert_pem: ck.cert.pem(),
            cookie,
            http,
            csrf,
            account: String::new(),
            _dir: dir,
        };
        g.post(
            "/auth/password",
            json!({ "current_password": otp, "new_password": "benchmark operator passphrase" }),
        )
        .await?;
        Ok(g)
    }

    /// A JSON request to the API as the administrator.
    pub async fn call(&self, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("https://127.0.0.1:{}/api/v1{path}", self.port);
        let req = match method {
            "GET" => self.http.get(url),
            "PUT" => self.http.put(url).json(&body),
            _ => self.http.post(url).json(&body),
        };
        let r = req.header("x-csrf-token", &self.csrf).send().await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{method} {path}: {status} {v}");
        Ok(v)
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call("POST", path, body).await
    }

    /// A resource with `ports` and an account on it; the account becomes the session account.
    pub async fn add_account(
        &mut self,
        ports: Value,
        username: &str,
        password: &str,
    ) -> anyhow::Result<String> {
        let r = self
            .post(
                "/resources",
                json!({ "name": format!("bench-{username}"), "host": "127.0.0.1", "ports": ports, "policy_id": "policy-low" }),
            )
            .await?;
        let rid = r["id"].as_str().unwrap_or_default().to_string();
        let a = self
            .post(
                &format!("/resources/{rid}/accounts"),
                json!({ "username": username, "secret": password }),
            )
            .await?;
        self.account = a["id"].as_str().unwrap_or_default().to_string();
        Ok(rid)
    }

    /// Asks the API at `path` for a ticket (a new session, or watching one) and opens its socket.
    pub async fn open_ws_at(&self, path: &str, body: Value) -> anyhow::Result<Ws> {
        let t = self.post(path, body).await?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::pem::PemObject::from_pem_slice(
            self.cert_pem.as_bytes(),
        )?)?;
        let cfg = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(rustls::pki_types::ServerName::try_from("localhost")?, tcp)
            .await?;
        let mut req = format!(
            "wss://localhost:{}{}",
            self.port,
            t["url"].as_str().unwrap_or_default()
        )
        .into_client_request()?;
        req.headers_mut().insert("cookie", self.cookie.parse()?);
        req.headers_mut().insert(
            "origin",
            format!("https://localhost:{}", self.port).parse()?,
        );
        let (ws, _) = tokio_tungstenite::client_async(req, tls).await?;
        Ok(ws)
    }
}

/// The `p`th percentile of `v`, in microseconds.
pub fn pct(v: &mut [Duration], p: usize) -> f64 {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)].as_secs_f64() * 1e6
}

/// A process's resident memory (KiB) and CPU time so far (clock ticks).
pub fn proc_stat(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(") ")
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    (rss_kib, ticks)
}
