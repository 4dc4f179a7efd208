//! Browser-path SSH sessions through the real binary: login, launch ticket, the session
//! WebSocket over HTTPS, a real sshd. Also: every byte the "browser" receives is checked for
//! the account's password (canary), and logout ends the session.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Backend, Client, Server, Site};
use crate::sshd_server::sshd;

pub(crate) const PASSWORD: &str = "Live-Canary-Pw-7731!";

pub(crate) struct Tls {
    pub(crate) cert_pem: String,
}

/// A server started with an operator certificate for `localhost`, so the WebSocket client
/// can verify TLS properly.
pub(crate) fn start(site: &Site) -> (Server, Tls) {
    let (server, op) = site.start_with_operator_cert();
    (server, Tls { cert_pem: op.pem })
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

pub(crate) async fn open_ws(server: &Server, tls: &Tls, cookie: &str, ticket_url: &str) -> Ws {
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(tls.cert_pem.as_bytes()).unwrap();
    roots.add(der).unwrap();
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    let mut req = format!("wss://localhost:{port}{ticket_url}")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut().insert(
        "origin",
        format!("https://localhost:{port}").parse().unwrap(),
    );
    let (ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    ws
}

/// Everything received, as raw bytes (binary frames) and JSON (text frames).
#[derive(Default)]
pub(crate) struct Received {
    pub(crate) raw: Vec<u8>,
    pub(crate) terminal: Vec<u8>,
    pub(crate) controls: Vec<Value>,
}

pub(crate) async fn read_until(
    ws: &mut Ws,
    got: &mut Received,
    what: &str,
    done: impl Fn(&Received) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done(got) {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out waiting for {what}: {:?} / {}",
                    got.controls,
                    String::from_utf8_lossy(&got.terminal)
                )
            });
        match msg {
            Some(Ok(Message::Binary(b))) => {
                got.raw.extend_from_slice(&b);
                got.terminal.extend_from_slice(&b);
            }
            Some(Ok(Message::Text(t))) => {
                got.raw.extend_from_slice(t.as_bytes());
                got.controls.push(serde_json::from_str(t.as_str()).unwrap());
            }
            Some(Ok(_)) => {}
            _ => panic!("socket closed while waiting for {what}: {:?}", got.controls),
        }
    }
}

pub(crate) fn terminal_has(got: &Received, s: &str) -> bool {
    String::from_utf8_lossy(&got.terminal).contains(s)
}

/// True when the rendered screen (as a browser terminal would show it) has this line.
pub(crate) fn screen_has_line(got: &Received, line: &str) -> bool {
    let mut screen = gateway::screen::TerminalScreen::new(120, 40);
    screen.process(&got.terminal);
    screen.text().lines().any(|l| l.trim_end() == line)
}

pub(crate) async fn setup(admin: &Client, user: &str) -> String {
    let r = admin.call("POST", "/resources", json!({ "name": "sshd-box", "host": "127.0.0.1", "ports": { "ssh": sshd().port }, "policy_id": "policy-low" })).await.ok();
    admin
        .account(r["id"].as_str().unwrap(), user, PASSWORD)
        .await
}

pub(crate) fn cookie_of(login: &crate::harness::Reply) -> String {
    let set = login.headers.get("set-cookie").unwrap().to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

/// An sshd user, a server with an account for it, and a logged-in Password User
/// ("engineer") who has Connect on that account.
pub(crate) struct EngineerWorld {
    pub(crate) server: Server,
    pub(crate) tls: Tls,
    pub(crate) admin: Client,
    pub(crate) account: String,
    pub(crate) share: Value,
    pub(crate) eng: Client,
    /// The engineer's user id.
    pub(crate) eng_id: String,
    pub(crate) cookie: String,
    /// The target account's user on the test sshd.
    pub(crate) ssh_user: String,
    // Last: dropped after the server is stopped.
    pub(crate) _site: Site,
}

pub(crate) async fn engineer_with_connect() -> EngineerWorld {
    engineer_with_connect_env(&[]).await
}

/// The same, with extra `PORTCULLIS_*` settings for the server.
pub(crate) async fn engineer_with_connect_env(env: &[(&str, &str)]) -> EngineerWorld {
    let user = sshd().user(PASSWORD);
    let mut site = Site::new(Backend::Sqlite);
    for (k, v) in env {
        site.env.push((k.to_string(), v.to_string()));
    }
    let (server, tls) = start(&site);
    let admin = server.admin().await;
    let account = setup(&admin, &user).await;
    let (_, eng_id) = server.user(&admin, "engineer", "password_user").await;
    let share = admin.call("POST", "/shares", json!({ "subject_kind": "user", "subject_id": eng_id, "object_kind": "account", "object_id": account, "level": "connect" })).await.ok();
    let eng = server.client();
    let cookie = cookie_of(&eng.login("engineer", crate::harness::USER_PASSWORD).await);
    EngineerWorld {
        _site: site,
        server,
        tls,
        admin,
        account,
        share,
        eng,
        eng_id,
        cookie,
        ssh_user: user,
    }
}

#[tokio::test]
async fn browser_path_session_runs_commands_is_audited_and_ends_on_logout() {
    let s = sshd();
    let w = engineer_with_connect().await;
    let (server, tls, admin, account, eng, cookie) =
        (&w.server, &w.tls, &w.admin, &w.account, &w.eng, &w.cookie);

    // API tokens cannot open sessions; tickets are single-use.
    let t = eng
        .call(
            "POST",
            "/sessions",
            json!({ "account_id": account, "cols": 100, "rows": 30 }),
        )
        .await
        .ok();
    let url = t["url"].as_str().unwrap().to_string();
    let mut ws = open_ws(server, tls, cookie, &url).await;
    let mut got = Received::default();
    // Type at the prompt, as a person would (a shell may drop type-ahead while starting).
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    ws.send(Message::Binary(b"echo $((6*7))\r".to_vec().into()))
        .await
        .unwrap();
    read_until(&mut ws, &mut got, "42", |g| screen_has_line(g, "42")).await;
    assert!(
        got.controls
            .iter()
            .any(|c| c["type"] == "status" && c["state"] == "connected"),
        "{:?}",
        got.controls
    );
    assert!(got
        .controls
        .iter()
        .any(|c| c["type"] == "session" && c["resource"] == "sshd-box"));

    // Resize follows the browser.
    ws.send(Message::Text(
        json!({ "type": "resize", "cols": 120, "rows": 40 })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Binary(b"stty size\r".to_vec().into()))
        .await
        .unwrap();
    read_until(&mut ws, &mut got, "stty", |g| screen_has_line(g, "40 120")).await;

    // Listed as live, for the engineer and the admin.
    let live = eng.get("/sessions").await.ok();
    assert_eq!(live.as_array().unwrap().len(), 1, "{live}");
    assert_eq!(live[0]["owner_name"], "engineer");
    assert_eq!(
        admin.get("/sessions").await.ok().as_array().unwrap().len(),
        1
    );
    assert_eq!(admin.get("/sessions").await.ok()[0]["state"], "connected");

    // A used ticket does not open a second socket.
    let again = server
        .client()
        .raw("GET", &url.replacen("/api/v1", "", 1), None, false)
        .await;
    assert!(
        again.status == 401 || again.status == 403,
        "{:?}",
        again.body
    );

    // Logout ends the session; the browser is told why.
    eng.call("POST", "/auth/logout", json!({})).await.ok();
    read_until(&mut ws, &mut got, "exit", |g| {
        g.controls.iter().any(|c| c["type"] == "exit")
    })
    .await;
    let exit = got.controls.iter().find(|c| c["type"] == "exit").unwrap();
    assert!(
        exit["reason"].as_str().unwrap().contains("logged out"),
        "{exit}"
    );

    // Audited: start, host key pinned on first use, end with duration.
    let mut audit = Value::Null;
    for _ in 0..50 {
        audit = admin.get("/audit?action=session&limit=50").await.ok();
        if audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "session.end")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = audit.as_array().unwrap();
    assert!(
        rows.iter().any(|e| e["action"] == "session.start"
            && e["actor"] == "engineer"
            && e["outcome"] == "ok"),
        "{audit}"
    );
    let end = rows
        .iter()
        .find(|e| e["action"] == "session.end")
        .expect("session.end audited");
    assert!(end["detail"]["duration_s"].is_number());
    let pins = admin.get("/audit?action=hostkey.pin").await.ok();
    assert_eq!(pins[0]["detail"]["fingerprint"], s.fingerprint.as_str());

    // Canary: the password never reached the "browser" (frames, API responses) or the log.
    for form in [
        PASSWORD.as_bytes().to_vec(),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, PASSWORD).into_bytes(),
    ] {
        assert!(
            !got.raw.windows(form.len()).any(|w| w == form.as_slice()),
            "password in a WebSocket frame"
        );
        assert!(
            !eng.transcript()
                .as_bytes()
                .windows(form.len())
                .any(|w| w == form.as_slice()),
            "password in an API response"
        );
        assert!(
            !server
                .log()
                .as_bytes()
                .windows(form.len())
                .any(|w| w == form.as_slice()),
            "password in the server log"
        );
    }
}

#[tokio::test]
async fn a_wrong_vault_password_is_shown_as_a_clear_error() {
    let s = sshd();
    let user = s.user("The-Real-Passw0rd!");
    let site = Site::new(Backend::Sqlite);
    let (server, tls) = start(&site);
    let admin = server.admin().await;
    let account = setup(&admin, &user).await; // stores PASSWORD, which is not the user's
    let login = server.client();
    let cookie = cookie_of(&login.login("admin", crate::harness::ADMIN_PASSWORD).await);
    let err = first_error(&server, &tls, &login, &cookie, &account).await;
    assert_eq!(err["kind"], "authentication_failed", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("verify or rotate"),
        "{err}"
    );

    // A resource without a session port: a clear error, and a failed start in the audit log.
    let r = admin.call("POST", "/resources", json!({ "name": "db-only", "host": "127.0.0.1", "resource_type": "database", "policy_id": "policy-low" })).await.ok();
    let acc = admin
        .account(r["id"].as_str().unwrap(), "Administrator", "Whatever-Pw-1")
        .await;
    let err = first_error(&server, &tls, &login, &cookie, &acc).await;
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("no SSH, Telnet or RDP port"),
        "{err}"
    );
    let mut audit = Value::Null;
    for _ in 0..50 {
        audit = admin.get("/audit?action=session&outcome=failed").await.ok();
        if audit.as_array().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = audit.as_array().unwrap();
    assert!(
        rows.iter().any(|e| e["action"] == "session.start"
            && e["detail"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("no SSH, Telnet or RDP port")),
        "{audit}"
    );
    assert!(
        rows.iter().any(|e| e["action"] == "session.end"
            && e["detail"]["end"]["failure"] == "authentication_failed"),
        "{audit}"
    );
}

/// Opens a session with `account` and returns the first `error` control message.
pub(crate) async fn first_error(
    server: &Server,
    tls: &Tls,
    who: &Client,
    cookie: &str,
    account: &str,
) -> Value {
    error_and_bytes(server, tls, who, cookie, account).await.0
}

/// The first `error` control message, and every byte the "browser" received until then.
pub(crate) async fn error_and_bytes(
    server: &Server,
    tls: &Tls,
    who: &Client,
    cookie: &str,
    account: &str,
) -> (Value, Vec<u8>) {
    let (mut ws, mut got) = open_session(server, tls, who, cookie, account).await;
    read_until(&mut ws, &mut got, "an error", |g| {
        g.controls.iter().any(|c| c["type"] == "error")
    })
    .await;
    let err = got
        .controls
        .into_iter()
        .find(|c| c["type"] == "error")
        .unwrap_or_default();
    (err, got.raw)
}

/// Types a line (and Enter) and waits until the screen shows `expect` as a line of its own.
pub(crate) async fn type_line(ws: &mut Ws, got: &mut Received, line: &str, expect: &str) {
    ws.send(Message::Binary(format!("{line}\r").into_bytes().into()))
        .await
        .unwrap();
    read_until(ws, got, expect, |g| screen_has_line(g, expect)).await;
}

/// Types `exit` and waits until the session reports that the shell exited.
pub(crate) async fn exit_shell(ws: &mut Ws, got: &mut Received) {
    ws.send(Message::Binary(b"exit\r".to_vec().into()))
        .await
        .unwrap();
    read_until(ws, got, "the end", |g| {
        g.controls.iter().any(|c| c["type"] == "exit")
    })
    .await;
}

/// Whether the session reported that it is connected (logged in).
pub(crate) fn connected(g: &Received) -> bool {
    g.controls
        .iter()
        .any(|c| c["type"] == "status" && c["state"] == "connected")
}

pub(crate) async fn open_session(
    server: &Server,
    tls: &Tls,
    who: &Client,
    cookie: &str,
    account: &str,
) -> (Ws, Received) {
    let t = who
        .call("POST", "/sessions", json!({ "account_id": account }))
        .await
        .ok();
    let ws = open_ws(server, tls, cookie, t["url"].as_str().unwrap()).await;
    (ws, Received::default())
}

#[tokio::test]
async fn revoking_the_connect_share_ends_the_session() {
    let w = engineer_with_connect().await;
    let (server, tls, admin, account, eng, cookie) =
        (&w.server, &w.tls, &w.admin, &w.account, &w.eng, &w.cookie);
    let share = &w.share;
    let (mut ws, mut got) = open_session(server, tls, eng, cookie, account).await;
    read_until(&mut ws, &mut got, "connected", |g| {
        g.controls.iter().any(|c| c["state"] == "connected")
    })
    .await;
    admin
        .call(
            "DELETE",
            &format!("/shares/{}", share["id"].as_str().unwrap()),
            json!({}),
        )
        .await
        .ok();
    read_until(&mut ws, &mut got, "exit", |g| {
        g.controls.iter().any(|c| c["type"] == "exit")
    })
    .await;
    let exit = got.controls.iter().find(|c| c["type"] == "exit").unwrap();
    assert!(
        exit["reason"]
            .as_str()
            .unwrap()
            .contains("access to this account was removed"),
        "{exit}"
    );
}

#[tokio::test]
async fn host_keys_wait_for_approval_are_pinned_and_a_changed_key_is_refused_and_alerted() {
    let s = sshd();
    let user = s.user(PASSWORD);
    let mut site = Site::new(Backend::Sqlite);
    site.env
        .push(("PORTCULLIS_HOST_KEY_POLICY".into(), "approve".into()));
    let (server, tls) = start(&site);
    let admin = server.admin().await;
    let account = setup(&admin, &user).await;
    let c = server.client();
    let cookie = cookie_of(&c.login("admin", crate::harness::ADMIN_PASSWORD).await);
    let error_of = |got: &Received| got.controls.iter().find(|c| c["type"] == "error").cloned();

    // First contact under "approve": refused, and the key waits for an administrator.
    let (mut ws, mut got) = open_session(&server, &tls, &c, &cookie, &account).await;
    read_until(&mut ws, &mut got, "error", |g| error_of(g).is_some()).await;
    assert_eq!(error_of(&got).unwrap()["kind"], "host_key_unknown");
    let mut keys = Value::Null;
    for _ in 0..50 {
        keys = admin.get("/host-keys").await.ok();
        if !keys.as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(keys[0]["status"], "pending", "{keys}");
    assert_eq!(keys[0]["fingerprint"], s.fingerprint.as_str());
    let rid = keys[0]["resource_id"].as_str().unwrap().to_string();

    // Approved: the next session connects.
    admin
        .call(
            "POST",
            &format!("/host-keys/{rid}/approve"),
            json!({ "fingerprint": s.fingerprint }),
        )
        .await
        .ok();
    let (mut ws, mut got) = open_session(&server, &tls, &c, &cookie, &account).await;
    read_until(&mut ws, &mut got, "connected", |g| {
        g.controls.iter().any(|c| c["state"] == "connected")
    })
    .await;
    drop(ws);

    // A pin that no longer matches: refused with both fingerprints, and an audit alert.
    let other = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
    admin
        .call(
            "POST",
            &format!("/host-keys/{rid}/approve"),
            json!({ "fingerprint": other }),
        )
        .await
        .ok();
    let (mut ws, mut got) = open_session(&server, &tls, &c, &cookie, &account).await;
    read_until(&mut ws, &mut got, "error", |g| error_of(g).is_some()).await;
    let err = error_of(&got).unwrap();
    assert_eq!(err["kind"], "host_key_mismatch");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains(other) && msg.contains(&s.fingerprint), "{msg}");
    let mut alerts = Value::Null;
    for _ in 0..50 {
        alerts = admin.get("/audit?action=hostkey.mismatch").await.ok();
        if !alerts.as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alerts[0]["detail"]["alert"], true, "{alerts}");
    // The presented key waits beside the pin for the administrator to compare and accept.
    let keys = admin.get("/host-keys").await.ok();
    assert_eq!(keys[0]["fingerprint"], other, "{keys}");
    assert_eq!(
        keys[0]["offered_fingerprint"],
        s.fingerprint.as_str(),
        "{keys}"
    );
    admin
        .call(
            "POST",
            &format!("/host-keys/{rid}/approve"),
            json!({ "fingerprint": s.fingerprint }),
        )
        .await
        .ok();
    let keys = admin.get("/host-keys").await.ok();
    assert_eq!(keys[0]["fingerprint"], s.fingerprint.as_str(), "{keys}");
    assert!(keys[0]["offered_fingerprint"].is_null(), "{keys}");

    // Forgetting the pin makes the next contact a first contact again.
    admin
        .call("DELETE", &format!("/host-keys/{rid}"), json!({}))
        .await
        .ok();
    let bad = admin
        .call(
            "POST",
            &format!("/host-keys/{rid}/approve"),
            json!({ "fingerprint": "not a fingerprint" }),
        )
        .await;
    assert_eq!((bad.status, bad.error_field()), (400, Some("fingerprint")));
    assert!(admin
        .get("/host-keys")
        .await
        .ok()
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_admin_watches_read_only_and_terminates_with_a_reason_everyone_sees() {
    let w = engineer_with_connect().await;
    let (server, tls) = (&w.server, &w.tls);
    let (mut ws, mut got) = open_session(server, tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    ws.send(Message::Binary(
        b"echo before-watch-$((1+1))\r".to_vec().into(),
    ))
    .await
    .unwrap();
    read_until(&mut ws, &mut got, "before-watch-2", |g| {
        screen_has_line(g, "before-watch-2")
    })
    .await;
    let sid = got
        .controls
        .iter()
        .find(|c| c["type"] == "session")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Nobody but administrators may watch or terminate (auditors only if a setting allows).
    let (auditor, _) = server.user(&w.admin, "auditor1", "password_auditor").await;
    for who in [&w.eng, &auditor] {
        assert_eq!(
            who.call("POST", &format!("/sessions/{sid}/watch"), json!({}))
                .await
                .status,
            403
        );
        assert_eq!(
            who.call(
                "POST",
                &format!("/sessions/{sid}/terminate"),
                json!({ "reason": "x" })
            )
            .await
            .status,
            403
        );
    }

    // The administrator watches: the screen so far at once, then live; read-only.
    let ac = server.client();
    let acookie = cookie_of(&ac.login("admin", crate::harness::ADMIN_PASSWORD).await);
    let t = ac
        .call("POST", &format!("/sessions/{sid}/watch"), json!({}))
        .await
        .ok();
    let mut aws = open_ws(server, tls, &acookie, t["url"].as_str().unwrap()).await;
    let mut agot = Received::default();
    read_until(&mut aws, &mut agot, "earlier output on join", |g| {
        screen_has_line(g, "before-watch-2")
    })
    .await;
    assert!(agot
        .controls
        .iter()
        .any(|c| c["type"] == "session" && c["role"] == "observer" && c["owner"] == "engineer"));
    // The owner is told who is watching.
    read_until(&mut ws, &mut got, "the observer in the participants", |g| {
        g.controls.iter().any(|c| {
            c["type"] == "participants"
                && c["participants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == "admin" && p["role"] == "observer")
        })
    })
    .await;
    let live = w.admin.get("/sessions").await.ok();
    assert!(live.to_string().contains("\"role\":\"observer\""), "{live}");
    // The observer's keys go nowhere; the owner's run and both see them.
    aws.send(Message::Binary(
        b"echo observer-typed-$((3*3))\r".to_vec().into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Binary(
        b"echo owner-typed-$((4*4))\r".to_vec().into(),
    ))
    .await
    .unwrap();
    read_until(&mut ws, &mut got, "owner-typed-16", |g| {
        screen_has_line(g, "owner-typed-16")
    })
    .await;
    read_until(&mut aws, &mut agot, "owner-typed-16 (observer)", |g| {
        screen_has_line(g, "owner-typed-16")
    })
    .await;
    assert!(
        !terminal_has(&got, "observer-typed"),
        "the observer's keys reached the shell"
    );

    // Terminate: a reason is required; then both browsers are told who, when and why.
    let bad = ac
        .call(
            "POST",
            &format!("/sessions/{sid}/terminate"),
            json!({ "reason": "  " }),
        )
        .await;
    assert_eq!((bad.status, bad.error_field()), (400, Some("reason")));
    ac.call(
        "POST",
        &format!("/sessions/{sid}/terminate"),
        json!({ "reason": "maintenance window" }),
    )
    .await
    .ok();
    let exit_of = |g: &Received| g.controls.iter().find(|c| c["type"] == "exit").cloned();
    read_until(&mut ws, &mut got, "the owner's end", |g| {
        exit_of(g).is_some()
    })
    .await;
    read_until(&mut aws, &mut agot, "the observer's end", |g| {
        exit_of(g).is_some()
    })
    .await;
    for g in [&got, &agot] {
        let reason = exit_of(g).unwrap()["reason"].as_str().unwrap().to_string();
        assert!(
            reason.starts_with("Terminated by admin at ")
                && reason.ends_with(": maintenance window"),
            "{reason}"
        );
    }
    let audit = w.admin.get("/audit?action=session.terminate").await.ok();
    assert_eq!(audit[0]["detail"]["reason"], "maintenance window");
    // The shell on the target is gone: no process of the target user is left.
    let mut left = String::from("?");
    for _ in 0..50 {
        let out = std::process::Command::new("pgrep")
            .args(["-u", &w.ssh_user, "-l"])
            .output()
            .unwrap();
        left = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        left.is_empty(),
        "processes of {} left after terminate: {left}",
        w.ssh_user
    );
    assert_eq!(
        w.admin
            .get("/audit?action=session.watch&outcome=ok")
            .await
            .ok()[0]["actor"],
        "admin"
    );
    assert!(
        w.admin
            .get("/audit?action=session.watch&outcome=denied")
            .await
            .ok()
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    for _ in 0..50 {
        if w.admin
            .get("/sessions")
            .await
            .ok()
            .as_array()
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(w
        .admin
        .get("/sessions")
        .await
        .ok()
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn idle_and_maximum_duration_limits_warn_first_then_end_the_session() {
    // Global idle limit of 4 s: a warning at 2 s of silence, the end at 4 s.
    let w = engineer_with_connect_env(&[("PORTCULLIS_SESSION_IDLE_LIMIT", "4s")]).await;
    let (server, tls) = (&w.server, &w.tls);
    let (mut ws, mut got) = open_session(server, tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    let started = std::time::Instant::now();
    let warned = |g: &Received| {
        g.controls.iter().any(|c| {
            c["type"] == "marker"
                && c["text"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("Warning: this session has been idle")
        })
    };
    let exit_of = |g: &Received| g.controls.iter().find(|c| c["type"] == "exit").cloned();
    read_until(&mut ws, &mut got, "the idle warning", warned).await;
    assert!(exit_of(&got).is_none(), "ended before warning");
    read_until(&mut ws, &mut got, "the idle end", |g| exit_of(g).is_some()).await;
    let reason = exit_of(&got).unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("Nobody typed in this session for 4 s"),
        "{reason}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "ended too early"
    );

    // A resource's own limits override the global ones: no idle limit, 3 s in all.
    let account = w.admin.get(&format!("/accounts/{}", w.account)).await.ok();
    let rid = account["resource_id"].as_str().unwrap().to_string();
    let bad = w
        .admin
        .call(
            "PUT",
            &format!("/resources/{rid}/session-limits"),
            json!({ "idle_limit": "soon", "max_duration": "3s" }),
        )
        .await;
    assert_eq!((bad.status, bad.error_field()), (400, Some("idle_limit")));
    assert_eq!(
        w.eng
            .call(
                "PUT",
                &format!("/resources/{rid}/session-limits"),
                json!({ "idle_limit": "off", "max_duration": "3s" })
            )
            .await
            .status,
        403
    );
    w.admin
        .call(
            "PUT",
            &format!("/resources/{rid}/session-limits"),
            json!({ "idle_limit": "off", "max_duration": "3s" }),
        )
        .await
        .ok();
    let limits = w
        .eng
        .get(&format!("/resources/{rid}/session-limits"))
        .await
        .ok();
    assert_eq!(
        limits["applied"],
        json!({ "idle_limit_s": null, "max_duration_s": 3 }),
        "{limits}"
    );
    let (mut ws, mut got) = open_session(server, tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    // Typing does not extend a maximum duration.
    for _ in 0..4 {
        ws.send(Message::Binary(b"true\r".to_vec().into()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    read_until(&mut ws, &mut got, "the maximum-duration end", |g| {
        exit_of(g).is_some()
    })
    .await;
    assert!(got.controls.iter().any(|c| c["type"] == "marker"
        && c["text"]
            .as_str()
            .unwrap_or("")
            .starts_with("Warning: this session reaches its maximum duration of 3 s")));
    let reason = exit_of(&got).unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("maximum duration of 3 s"), "{reason}");
    assert_eq!(
        w.admin.get("/audit?action=session.limits").await.ok()[0]["detail"]["max_duration"],
        "3s"
    );
}

#[tokio::test]
async fn a_peer_types_only_with_the_keyboard_which_the_owner_hands_over_and_takes_back() {
    let w = engineer_with_connect().await;
    let (server, tls) = (&w.server, &w.tls);
    let (mut ws, mut got) = open_session(server, tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    let sid = got
        .controls
        .iter()
        .find(|c| c["type"] == "session")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Only administrators join; only the owner or an administrator hands the keyboard over
    // (to anyone else the session is not confirmed to exist: 404).
    let (other, _) = server.user(&w.admin, "other", "password_user").await;
    assert_eq!(
        other
            .call("POST", &format!("/sessions/{sid}/join"), json!({}))
            .await
            .status,
        403
    );
    assert_eq!(
        other
            .call(
                "POST",
                &format!("/sessions/{sid}/control"),
                json!({ "shared": true })
            )
            .await
            .status,
        404
    );

    let ac = server.client();
    let acookie = cookie_of(&ac.login("admin", crate::harness::ADMIN_PASSWORD).await);
    let t = ac
        .call("POST", &format!("/sessions/{sid}/join"), json!({}))
        .await
        .ok();
    let mut aws = open_ws(server, tls, &acookie, t["url"].as_str().unwrap()).await;
    let mut agot = Received::default();
    read_until(&mut aws, &mut agot, "the peer's hello", |g| {
        g.controls
            .iter()
            .any(|c| c["type"] == "session" && c["role"] == "peer")
    })
    .await;
    read_until(&mut ws, &mut got, "the peer in the participants", |g| {
        g.controls.iter().any(|c| {
            c["type"] == "participants"
                && c["participants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == "admin" && p["role"] == "peer")
        })
    })
    .await;

    // The owner has the keyboard: the peer's keys are refused, with a notice.
    aws.send(Message::Binary(
        b"echo peer-early-$((1+1))\r".to_vec().into(),
    ))
    .await
    .unwrap();
    read_until(&mut aws, &mut agot, "the notice", |g| {
        g.controls.iter().any(|c| {
            c["type"] == "notice"
                && c["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("engineer has the keyboard")
        })
    })
    .await;
    // Not a participant: refused.
    let bad = w
        .eng
        .call(
            "POST",
            &format!("/sessions/{sid}/control"),
            json!({ "holder": "nobody" }),
        )
        .await;
    assert_eq!((bad.status, bad.error_field()), (400, Some("holder")));
    // The owner hands it over: the peer's command runs, the owner's keys are now refused.
    w.eng
        .call(
            "POST",
            &format!("/sessions/{sid}/control"),
            json!({ "holder": "admin" }),
        )
        .await
        .ok();
    read_until(&mut aws, &mut agot, "the hand-over", |g| {
        g.controls
            .iter()
            .any(|c| c["type"] == "participants" && c["control"]["holder"] == "admin")
    })
    .await;
    aws.send(Message::Binary(
        b"echo peer-typed-$((2+2))\r".to_vec().into(),
    ))
    .await
    .unwrap();
    read_until(&mut ws, &mut got, "peer-typed-4 (owner)", |g| {
        screen_has_line(g, "peer-typed-4")
    })
    .await;
    ws.send(Message::Binary(
        b"echo owner-while-not-holding\r".to_vec().into(),
    ))
    .await
    .unwrap();
    read_until(&mut ws, &mut got, "the owner's notice", |g| {
        g.controls.iter().any(|c| c["type"] == "notice")
    })
    .await;
    // The owner takes it back, then allows shared typing: both type.
    w.eng
        .call(
            "POST",
            &format!("/sessions/{sid}/control"),
            json!({ "holder": "engineer", "shared": true }),
        )
        .await
        .ok();
    read_until(&mut ws, &mut got, "shared typing", |g| {
        g.controls
            .iter()
            .any(|c| c["type"] == "participants" && c["control"]["shared"] == true)
    })
    .await;
    ws.send(Message::Binary(
        b"echo owner-shared-$((3+3))\r".to_vec().into(),
    ))
    .await
    .unwrap();
    read_until(&mut aws, &mut agot, "owner-shared-6", |g| {
        screen_has_line(g, "owner-shared-6")
    })
    .await;
    aws.send(Message::Binary(
        b"echo peer-shared-$((4+4))\r".to_vec().into(),
    ))
    .await
    .unwrap();
    read_until(&mut ws, &mut got, "peer-shared-8", |g| {
        screen_has_line(g, "peer-shared-8")
    })
    .await;
    assert!(
        !terminal_has(&got, "peer-early-2") && !terminal_has(&got, "owner-while-not-holding"),
        "refused keys reached the shell"
    );
    drop(aws);
    let mut leaves = Value::Null;
    for _ in 0..50 {
        leaves = w.admin.get("/audit?action=session.leave").await.ok();
        if !leaves.as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(leaves[0]["detail"]["role"], "peer", "{leaves}");
    let audit = w.admin.get("/audit?action=session.control").await.ok();
    assert!(audit.as_array().unwrap().len() >= 2, "{audit}");
    assert_eq!(
        w.admin.get("/audit?action=session.join").await.ok()[0]["actor"],
        "admin"
    );
}

#[tokio::test]
async fn locking_a_user_ends_their_live_sessions_and_refuses_new_ones() {
    let w = engineer_with_connect().await;
    let (server, tls) = (&w.server, &w.tls);
    let (mut ws, mut got) = open_session(server, tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    let eng_id = &w.eng_id;
    w.admin
        .call(
            "PATCH",
            &format!("/users/{eng_id}"),
            json!({ "disabled": true }),
        )
        .await
        .ok();
    read_until(&mut ws, &mut got, "the end", |g| {
        g.controls.iter().any(|c| c["type"] == "exit")
    })
    .await;
    let exit = got.controls.iter().find(|c| c["type"] == "exit").unwrap();
    assert_eq!(
        exit["reason"],
        "Your user was locked by an administrator; the session was ended."
    );
    // No new session: the login is gone and a new one is refused with a reason.
    assert_eq!(
        w.eng
            .call("POST", "/sessions", json!({ "account_id": w.account }))
            .await
            .status,
        401
    );
    let again = server
        .client()
        .login("engineer", crate::harness::USER_PASSWORD)
        .await;
    // Refused with the reply any refused login gets (the audit log says it is locked).
    assert_eq!(
        (again.status, again.error_message()),
        (401, "Wrong user name or password.")
    );
    assert!(w
        .admin
        .get("/sessions")
        .await
        .ok()
        .as_array()
        .unwrap()
        .is_empty());
}
