//! Telnet sessions through the real binary against a real `inetutils-telnetd` (under
//! openbsd-inetd, with /bin/login and PAM): the built-in Unix script logs in, NAWS follows
//! the browser's size, a wrong vault password fails at a named step, a custom script with an
//! extra prompt works, the Cisco-style script reaches privileged mode with the enable secret,
//! observers and terminate work as for SSH, and the passwords the scripts type never reach
//! the browser, the recording or the log (canaries).

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Backend, Client, Server, Site};
use crate::live::{
    connected, cookie_of, exit_shell, open_session, open_ws, read_until, screen_has_line, start,
    terminal_has, type_line, Received, Tls,
};
use crate::sshd_server::sshd;

const PASSWORD: &str = "Telnet-Canary-Pw-5150!";
const ENABLE_SECRET: &str = "Enable-Canary-Secret-8086";

struct World {
    server: Server,
    tls: Tls,
    admin: Client,
    resource: String,
    account: String,
    eng: Client,
    cookie: String,
    unix_user: String,
    _site: Site,
}

/// A Telnet-only resource (`resource_type`) for a fresh local user with PASSWORD, an
/// account for it, and an engineer with Connect on the account.
async fn world(resource_type: &str, password: &str) -> World {
    let unix_user = sshd().user(PASSWORD);
    let site = Site::new(Backend::Sqlite);
    let (server, tls) = start(&site);
    let admin = server.admin().await;
    let r = admin
        .call(
            "POST",
            "/resources",
            json!({ "name": "telnet-box", "host": "127.0.0.1", "resource_type": resource_type,
                    "ports": { "telnet": sshd().telnet_port() }, "policy_id": "policy-low" }),
        )
        .await
        .ok();
    let resource = r["id"].as_str().unwrap().to_string();
    let account = admin.account(&resource, &unix_user, password).await;
    let (_, eng_id) = server.user(&admin, "engineer", "password_user").await;
    admin.call("POST", "/shares", json!({ "subject_kind": "user", "subject_id": eng_id, "object_kind": "account", "object_id": account, "level": "connect" })).await.ok();
    let eng = server.client();
    let cookie = cookie_of(&eng.login("engineer", crate::harness::USER_PASSWORD).await);
    World {
        server,
        tls,
        admin,
        resource,
        account,
        eng,
        cookie,
        unix_user,
        _site: site,
    }
}

fn session_id(got: &Received) -> String {
    got.controls
        .iter()
        .find(|c| c["type"] == "session")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn first_error(w: &World) -> Value {
    let (err, raw) =
        crate::live::error_and_bytes(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    assert!(!raw
        .windows(PASSWORD.len())
        .any(|x| x == PASSWORD.as_bytes()));
    err
}

/// Waits for the recording of the (only) session to be complete; returns the player's
/// events and the asciicast export as text.
async fn finished_recording(admin: &Client) -> (String, Value, String) {
    for _ in 0..100 {
        let list = admin.get("/recordings").await.ok();
        if let Some(r) = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["status"] == "complete")
        {
            let id = r["id"].as_str().unwrap().to_string();
            let events = admin.get(&format!("/recordings/{id}/events")).await.ok();
            let cast = admin
                .raw("GET", &format!("/recordings/{id}/cast"), None, false)
                .await;
            let cast = cast.body.as_str().unwrap_or_default().to_string();
            return (id, events, cast);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no complete recording: {:?}",
        admin.get("/recordings").await.ok()
    );
}

#[tokio::test]
async fn the_unix_script_logs_in_naws_follows_the_browser_and_the_password_stays_secret() {
    let w = world("linux", PASSWORD).await;
    // Telnet is plaintext: the resource says so.
    let settings = w
        .eng
        .get(&format!("/resources/{}/telnet", w.resource))
        .await
        .ok();
    assert!(settings["plaintext_warning"]
        .as_str()
        .unwrap()
        .contains("not encrypted"));
    assert_eq!(settings["applied"]["builtin"], "unix", "{settings}");
    assert_eq!(settings["applied"]["source"], "default");

    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "logged in at a prompt", |g| {
        connected(g) && terminal_has(g, "$ ")
    })
    .await;
    let hello = got
        .controls
        .iter()
        .find(|c| c["type"] == "session")
        .unwrap();
    assert_eq!(hello["protocol"], "telnet");
    // The timeline says what the script typed, never the value of a secret.
    let markers: Vec<String> = got
        .controls
        .iter()
        .filter(|c| c["type"] == "marker")
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        markers
            .iter()
            .any(|m| m.contains("(password prompt): typed the password (not recorded)")),
        "{markers:?}"
    );
    type_line(&mut ws, &mut got, "echo $((6*7))", "42").await;
    type_line(&mut ws, &mut got, "whoami", &w.unix_user).await;

    // The browser's size reaches the target through NAWS.
    ws.send(Message::Text(
        json!({ "type": "resize", "cols": 100, "rows": 30 })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    read_until(&mut ws, &mut got, "the resize echoed", |g| {
        g.controls
            .iter()
            .any(|c| c["type"] == "resize" && c["cols"] == 100)
    })
    .await;
    type_line(&mut ws, &mut got, "stty size", "30 100").await;

    ws.send(Message::Binary(b"exit\r".to_vec().into()))
        .await
        .unwrap();
    read_until(&mut ws, &mut got, "the end", |g| {
        g.controls
            .iter()
            .any(|c| c["type"] == "exit" || c["type"] == "error")
    })
    .await;
    let end = got.controls.iter().find(|c| c["type"] == "exit").unwrap();
    assert!(
        end["reason"]
            .as_str()
            .unwrap()
            .contains("closed the connection"),
        "{end}"
    );

    // Audited with the protocol and the script that ran.
    let audit = w.admin.get("/audit?action=session.start").await.ok();
    assert_eq!(audit[0]["detail"]["protocol"], "telnet", "{audit}");
    assert_eq!(audit[0]["detail"]["logon_script"]["builtin"], "unix");

    // Recorded: the prompts and the commands are there, the password is not.
    let (id, events, cast) = finished_recording(&w.admin).await;
    let text = events.to_string();
    let detail = w.admin.get(&format!("/recordings/{id}")).await.ok();
    assert!(detail.to_string().contains("echo $((6*7))"), "{detail}");
    assert!(
        cast.contains("login:") && cast.contains("Password:"),
        "{cast}"
    );
    assert!(text.contains("typed the password (not recorded)"), "{text}");
    // The replay holds the session's output, and the list files it under Telnet.
    let output: String = cast
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e[1] == "o")
        .map(|e| e[2].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(output.contains("\r42\r\n"), "{output}");
    let list = w.admin.get("/recordings?protocol=telnet").await.ok();
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    for (what, hay) in [
        ("browser", String::from_utf8_lossy(&got.raw).to_string()),
        ("player events", text),
        ("asciicast", cast),
        ("server log", w.server.log()),
        ("audit", w.admin.get("/audit").await.ok().to_string()),
    ] {
        assert!(!hay.contains(PASSWORD), "the password reached the {what}");
    }
}

#[tokio::test]
async fn a_wrong_vault_password_fails_at_the_named_step_with_the_targets_words() {
    let w = world("linux", "Not-The-Real-Password-1").await;
    let err = first_error(&w).await;
    let msg = err["message"].as_str().unwrap();
    assert_eq!(err["kind"], "authentication_failed", "{err}");
    assert!(
        // The failure pattern ended it (a timeout would say "timed out").
        msg.contains("Logon step 3 of 3 (shell prompt) failed") && msg.contains("Login incorrect"),
        "{msg}"
    );
    // The session's end is audited as a failure with the same words.
    let mut audit = Value::Null;
    for _ in 0..50 {
        audit = w.admin.get("/audit?action=session.end").await.ok();
        if !audit.as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(audit[0]["outcome"], "failed", "{audit}");
    assert!(
        audit[0]["detail"]["end"]["message"]
            .as_str()
            .unwrap()
            .contains("Login incorrect"),
        "{audit}"
    );
}

#[tokio::test]
async fn a_custom_script_with_an_extra_prompt_works_and_bad_scripts_are_refused() {
    let w = world("linux", PASSWORD).await;
    sshd().write_home_file(
        &w.unix_user,
        ".bash_profile",
        "644",
        "read -r -p 'Site code: ' SITE\nexport SITE\n",
    );
    let path = format!("/resources/{}/telnet", w.resource);
    let mut script = json!({
        "steps": [
            { "label": "login prompt", "expect": "login:\\s*$", "send": "{username}" },
            { "label": "password prompt", "expect": "password:\\s*$", "send": "{password}" },
            { "label": "site code", "expect": "site code:\\s*$", "send": "lab-{{7}}", "timeout_s": 15 },
            { "label": "shell prompt", "expect": "[$#] ?$" }
        ],
        "failure": ["login incorrect"]
    });

    // Only administrators change scripts; the refusal is audited.
    let r = w
        .eng
        .call(
            "PUT",
            &path,
            json!({ "script_override": { "script": script } }),
        )
        .await;
    assert_eq!(r.status, 403);
    // Mistakes are named by field, and nothing is stored.
    script["steps"][2]["expect"] = json!("site (code");
    let r = w
        .admin
        .call(
            "PUT",
            &path,
            json!({ "script_override": { "script": script } }),
        )
        .await;
    assert_eq!(
        (r.status, r.error_field()),
        (400, Some("script.steps[2].expect")),
        "{}",
        r.error_message()
    );
    script["steps"][2]["expect"] = json!("site code:\\s*$");
    script["steps"][2]["send"] = json!("{site}");
    let r = w
        .admin
        .call(
            "PUT",
            &path,
            json!({ "script_override": { "script": script } }),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("unknown placeholder {site}"),
        "{}",
        r.error_message()
    );
    let r = w
        .admin
        .call(
            "PUT",
            &path,
            json!({ "script_override": { "builtin": "vms" } }),
        )
        .await;
    assert_eq!((r.status, r.error_field()), (400, Some("builtin")));
    assert_eq!(
        w.admin.get(&path).await.ok()["applied"]["source"],
        "default"
    );

    script["steps"][2]["send"] = json!("lab-{{7}}");
    let saved = w
        .admin
        .call(
            "PUT",
            &path,
            json!({ "script_override": { "script": script } }),
        )
        .await
        .ok();
    assert_eq!(saved["applied"]["source"], "resource", "{saved}");
    let audit = w.admin.get("/audit?action=resource.telnet").await.ok();
    assert_eq!(audit[0]["object_id"], w.resource.as_str(), "{audit}");

    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    // Typed before the logon is done: held back until the script has finished, then sent.
    ws.send(Message::Binary(b"echo early-$((1+2))\r".to_vec().into()))
        .await
        .unwrap();
    read_until(&mut ws, &mut got, "logged in past the site code", |g| {
        connected(g) && terminal_has(g, "$ ")
    })
    .await;
    read_until(&mut ws, &mut got, "the type-ahead", |g| {
        screen_has_line(g, "early-3")
    })
    .await;
    type_line(&mut ws, &mut got, "echo site=$SITE", "site=lab-{7}").await;
    assert!(got.controls.iter().any(|c| c["type"] == "marker"
        && c["text"]
            .as_str()
            .unwrap()
            .contains("(site code): typed \u{201c}lab-{7}\u{201d}")));
}

#[tokio::test]
async fn the_cisco_script_reaches_privileged_mode_with_the_enable_secret() {
    let w = world("network_device", PASSWORD).await;
    let s = sshd();
    s.write_home_file(
        &w.unix_user,
        ".enable",
        "600",
        &format!("{ENABLE_SECRET}\n"),
    );
    s.write_home_file(
        &w.unix_user,
        "fake-ios",
        "755",
        include_str!("../support/fake-ios.sh"),
    );
    s.set_shell(&w.unix_user, &format!("/home/{}/fake-ios", w.unix_user));

    // Network devices use the Cisco-style script by default; it needs an enable account.
    let path = format!("/resources/{}/telnet", w.resource);
    assert_eq!(w.admin.get(&path).await.ok()["applied"]["builtin"], "cisco");
    let err = first_error(&w).await;
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("has no enable account"),
        "{err}"
    );

    // The enable account must be a password account of the same resource.
    let other = w
        .admin
        .call(
            "POST",
            "/resources",
            json!({ "name": "elsewhere", "host": "127.0.0.1", "policy_id": "policy-low" }),
        )
        .await
        .ok();
    let foreign = w
        .admin
        .account(other["id"].as_str().unwrap(), "enable", "x-Other-1")
        .await;
    let r = w
        .admin
        .call("PUT", &path, json!({ "enable_account_id": foreign }))
        .await;
    assert_eq!(
        (r.status, r.error_field()),
        (400, Some("enable_account_id"))
    );
    let enable = w.admin.account(&w.resource, "enable", ENABLE_SECRET).await;
    w.admin
        .call("PUT", &path, json!({ "enable_account_id": enable }))
        .await
        .ok();

    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the privileged prompt", |g| {
        connected(g) && terminal_has(g, "router1#")
    })
    .await;
    type_line(
        &mut ws,
        &mut got,
        "show privilege",
        "Current privilege level is 15",
    )
    .await;
    assert!(got.controls.iter().any(|c| c["type"] == "marker"
        && c["text"]
            .as_str()
            .unwrap()
            .contains("typed the enable secret (not recorded)")));
    exit_shell(&mut ws, &mut got).await;
    let audit = w.admin.get("/audit?action=session.start").await.ok();
    let started = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["outcome"] == "ok")
        .unwrap();
    assert_eq!(
        started["detail"]["enable_account_id"],
        enable.as_str(),
        "{started}"
    );
    let (_, events, cast) = finished_recording(&w.admin).await;
    for (what, hay) in [
        ("browser", String::from_utf8_lossy(&got.raw).to_string()),
        ("player events", events.to_string()),
        ("asciicast", cast),
        ("server log", w.server.log()),
    ] {
        assert!(!hay.contains(PASSWORD), "the password reached the {what}");
        assert!(
            !hay.contains(ENABLE_SECRET),
            "the enable secret reached the {what}"
        );
    }
}

#[tokio::test]
async fn an_admin_watches_and_terminates_a_telnet_session_and_direct_telnet_can_be_forbidden() {
    let w = world("linux", PASSWORD).await;
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "logged in", |g| {
        connected(g) && terminal_has(g, "$ ")
    })
    .await;
    type_line(&mut ws, &mut got, "echo seen-$((2+3))", "seen-5").await;
    let sid = session_id(&got);

    let ac = w.server.client();
    let acookie = cookie_of(&ac.login("admin", crate::harness::ADMIN_PASSWORD).await);
    let t = ac
        .call("POST", &format!("/sessions/{sid}/watch"), json!({}))
        .await
        .ok();
    let mut aws = open_ws(&w.server, &w.tls, &acookie, t["url"].as_str().unwrap()).await;
    let mut agot = Received::default();
    read_until(&mut aws, &mut agot, "the screen so far", |g| {
        screen_has_line(g, "seen-5")
    })
    .await;
    type_line(&mut ws, &mut got, "echo live-$((3+4))", "live-7").await;
    read_until(&mut aws, &mut agot, "live output", |g| {
        screen_has_line(g, "live-7")
    })
    .await;

    ac.call(
        "POST",
        &format!("/sessions/{sid}/terminate"),
        json!({ "reason": "telnet audit check" }),
    )
    .await
    .ok();
    for (sock, g) in [(&mut ws, &mut got), (&mut aws, &mut agot)] {
        read_until(sock, g, "the termination", |g| {
            g.controls.iter().any(|c| {
                c["type"] == "exit"
                    && c["reason"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("telnet audit check")
            })
        })
        .await;
    }
    assert!(!String::from_utf8_lossy(&agot.raw).contains(PASSWORD));

    // A resource can refuse Telnet that does not go through a landing server.
    let path = format!("/resources/{}/telnet", w.resource);
    w.admin
        .call("PUT", &path, json!({ "require_landing": true }))
        .await
        .ok();
    let err = first_error(&w).await;
    assert_eq!(err["kind"], "permission_denied", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("only through a landing server"),
        "{err}"
    );
}

#[tokio::test]
async fn a_step_whose_prompt_never_comes_times_out_naming_step_and_pattern() {
    let w = world("linux", PASSWORD).await;
    let script = json!({
        "steps": [
            { "label": "login prompt", "expect": "login:\\s*$", "send": "{username}" },
            { "label": "password prompt", "expect": "password:\\s*$", "send": "{password}" },
            { "label": "banner", "expect": "no-such-banner", "timeout_s": 2 }
        ]
    });
    w.admin
        .call(
            "PUT",
            &format!("/resources/{}/telnet", w.resource),
            json!({ "script_override": { "script": script } }),
        )
        .await
        .ok();
    let err = first_error(&w).await;
    assert_eq!(err["kind"], "timed_out", "{err}");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("Logon step 3 of 3 (banner) timed out")
            && msg.contains("/no-such-banner/ within 2 s"),
        "{msg}"
    );
}
