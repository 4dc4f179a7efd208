//! Hop chains through the real binary, in network namespaces the tests create: the target is
//! reachable only through 1, 2 or 3 landing servers, each a real sshd with its own login
//! account and host key. SSH and Telnet targets, failover to a secondary, errors that name
//! the hop (wrong password at hop 1, changed host key at hop 2), loops refused at
//! configuration time, and recording / observe / terminate through hops.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Backend, Client, Server, Site};
use crate::live::{
    connected, cookie_of, exit_shell, open_ws, read_until, screen_has_line, start, terminal_has,
    type_line, Received, Tls, Ws,
};
use crate::netns_chain::Chain;
use crate::sshd_server::sshd;

pub(crate) const PASSWORD: &str = "Hop-Target-Canary-Pw-31!";
const HOP_PASSWORD: &str = "Hop-Landing-Canary-Pw-47!";

pub(crate) struct HopWorld {
    pub(crate) chain: Chain,
    server: Server,
    tls: Tls,
    pub(crate) admin: Client,
    eng: Client,
    /// The engineer's user id.
    eng_id: String,
    cookie: String,
    /// Resource ids of the landing servers' machines, first hop first.
    jumps: Vec<String>,
    /// Landing server ids, first hop first.
    pub(crate) landings: Vec<String>,
    /// Login account of each landing server.
    hop_accounts: Vec<String>,
    pub(crate) target: String,
    pub(crate) account: String,
    /// The target account's machine user (the machine's own users, shared by the nodes).
    pub(crate) target_user: String,
    _site: Site,
}

/// `hops` landing servers and a target behind them; the engineer has Connect on the target
/// account only.
pub(crate) async fn hop_world(hops: usize) -> HopWorld {
    let chain = Chain::up(hops + 1);
    let target_user = sshd().user(PASSWORD);
    let hop_user = sshd().user(HOP_PASSWORD);
    let site = Site::new(Backend::Sqlite);
    let (server, tls) = start(&site);
    let admin = server.admin().await;
    let (mut jumps, mut landings, mut hop_accounts) = (vec![], vec![], vec![]);
    for k in 0..hops {
        let r = admin.call("POST", "/resources", json!({ "name": format!("jump-{}", k + 1), "host": chain.nodes[k].addr, "ports": { "ssh": 22 }, "policy_id": "policy-low" })).await.ok();
        let rid = r["id"].as_str().unwrap().to_string();
        let acc = admin.account(&rid, &hop_user, HOP_PASSWORD).await;
        let l = admin.call("POST", "/landing-servers", json!({ "name": format!("DC-{}", k + 1), "location": "lab", "primary_resource_id": rid, "account_id": acc })).await.ok();
        let lid = l["id"].as_str().unwrap().to_string();
        if k > 0 {
            admin
                .call(
                    "PUT",
                    &format!("/resources/{rid}/landing-server"),
                    json!({ "landing_server_id": landings[k - 1] }),
                )
                .await
                .ok();
        }
        jumps.push(rid);
        landings.push(lid);
        hop_accounts.push(acc);
    }
    let t = admin.call("POST", "/resources", json!({ "name": "deep-target", "host": chain.nodes[hops].addr, "ports": { "ssh": 22, "telnet": 23 }, "policy_id": "policy-low" })).await.ok();
    let target = t["id"].as_str().unwrap().to_string();
    if let Some(last) = landings.last() {
        admin
            .call(
                "PUT",
                &format!("/resources/{target}/landing-server"),
                json!({ "landing_server_id": last }),
            )
            .await
            .ok();
    }
    let account = admin.account(&target, &target_user, PASSWORD).await;
    let (_, eng_id) = server.user(&admin, "engineer", "password_user").await;
    admin.call("POST", "/shares", json!({ "subject_kind": "user", "subject_id": eng_id, "object_kind": "account", "object_id": account, "level": "connect" })).await.ok();
    let eng = server.client();
    let cookie = cookie_of(&eng.login("engineer", crate::harness::USER_PASSWORD).await);
    HopWorld {
        chain,
        server,
        tls,
        admin,
        eng,
        eng_id,
        cookie,
        jumps,
        landings,
        hop_accounts,
        target,
        account,
        target_user,
        _site: site,
    }
}

async fn open(w: &HopWorld, protocol: &str) -> (Ws, Received) {
    let t = w
        .eng
        .call(
            "POST",
            "/sessions",
            json!({ "account_id": w.account, "protocol": protocol }),
        )
        .await
        .ok();
    let ws = open_ws(&w.server, &w.tls, &w.cookie, t["url"].as_str().unwrap()).await;
    (ws, Received::default())
}

async fn first_error(w: &HopWorld) -> Value {
    w.first_error().await
}

impl HopWorld {
    /// Opens an SSH session to the target: None once it is connected, else its error.
    pub(crate) async fn first_error_or_connected(&self) -> Option<Value> {
        let (mut ws, mut got) = open(self, "ssh").await;
        read_until(&mut ws, &mut got, "connected or an error", |g| {
            connected(g) || g.controls.iter().any(|c| c["type"] == "error")
        })
        .await;
        got.controls.into_iter().find(|c| c["type"] == "error")
    }

    /// The first error the engineer's session to the target account gets.
    pub(crate) async fn first_error(&self) -> Value {
        crate::live::first_error(
            &self.server,
            &self.tls,
            &self.eng,
            &self.cookie,
            &self.account,
        )
        .await
    }
}

#[tokio::test]
async fn ssh_targets_behind_one_two_and_three_landing_servers() {
    for hops in 1..=3 {
        let w = hop_world(hops).await;
        // The gateway itself cannot reach the target: only the chain can.
        w.chain.assert_isolated(hops + 1);
        // The path is shown before connecting.
        let path = w
            .eng
            .get(&format!("/resources/{}/path", w.target))
            .await
            .ok();
        let names: Vec<&str> = path["hops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap())
            .collect();
        let want: Vec<String> = (1..=hops).map(|k| format!("DC-{k}")).collect();
        assert_eq!(names, want, "{path}");

        let (mut ws, mut got) = open(&w, "ssh").await;
        read_until(&mut ws, &mut got, "the prompt", |g| {
            connected(g) && terminal_has(g, "$ ")
        })
        .await;
        type_line(&mut ws, &mut got, "echo $((6*7))", "42").await;
        // sshd on the target saw the connection come from the last landing server.
        // (the last landing server's address on the target's link ends in .1)
        let from = format!(
            "from-{}.1",
            w.chain.nodes[hops].addr.rsplit_once('.').unwrap().0
        );
        type_line(&mut ws, &mut got, "echo from-${SSH_CONNECTION%% *}", &from).await;

        // The live list, the audit and the recording carry the path.
        let live = w.admin.get("/sessions").await.ok();
        assert_eq!(live[0]["path"], json!(want), "{live}");
        let audit = w.admin.get("/audit?action=session.start").await.ok();
        let audited: Vec<&str> = audit[0]["detail"]["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["landing_server"].as_str().unwrap())
            .collect();
        assert_eq!(audited, want, "{audit}");
        exit_shell(&mut ws, &mut got).await;
        let mut rec = Value::Null;
        for _ in 0..50 {
            rec = w.admin.get("/recordings").await.ok();
            if rec[0]["status"] == "complete" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(rec[0]["path"], json!(want), "{rec}");
        // Every landing server's host key was pinned on first use.
        let keys = w.admin.get("/host-keys").await.ok();
        for (k, jump) in w.jumps.iter().enumerate() {
            assert!(
                keys.as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["resource_id"] == jump.as_str()
                        && h["fingerprint"] == w.chain.nodes[k].fingerprint.as_str()),
                "hop {} not pinned: {keys}",
                k + 1
            );
        }
        let log = w.server.log();
        assert!(!log.contains(PASSWORD) && !log.contains(HOP_PASSWORD));
        assert!(!String::from_utf8_lossy(&got.raw).contains(HOP_PASSWORD));
    }
}

#[tokio::test]
async fn a_telnet_target_through_two_ssh_hops_is_watched_and_terminated() {
    let w = hop_world(2).await;
    let (mut ws, mut got) = open(&w, "telnet").await;
    read_until(&mut ws, &mut got, "logged in by script", |g| {
        connected(g) && terminal_has(g, "$ ")
    })
    .await;
    type_line(&mut ws, &mut got, "echo telnet-$((6*7))", "telnet-42").await;
    let sid = got
        .controls
        .iter()
        .find(|c| c["type"] == "session")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let ac = w.server.client();
    let acookie = cookie_of(&ac.login("admin", crate::harness::ADMIN_PASSWORD).await);
    let t = ac
        .call("POST", &format!("/sessions/{sid}/watch"), json!({}))
        .await
        .ok();
    let mut aws = open_ws(&w.server, &w.tls, &acookie, t["url"].as_str().unwrap()).await;
    let mut agot = Received::default();
    read_until(&mut aws, &mut agot, "the screen so far", |g| {
        screen_has_line(g, "telnet-42")
    })
    .await;
    ac.call(
        "POST",
        &format!("/sessions/{sid}/terminate"),
        json!({ "reason": "hop check" }),
    )
    .await
    .ok();
    read_until(&mut ws, &mut got, "the termination", |g| {
        g.controls.iter().any(|c| {
            c["type"] == "exit"
                && c["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("hop check")
        })
    })
    .await;
    let live = w.admin.get("/sessions").await.ok();
    assert!(
        live.as_array()
            .unwrap()
            .iter()
            .all(|s| s["id"] != sid.as_str()),
        "{live}"
    );
}

#[tokio::test]
async fn errors_name_the_hop_and_a_dead_primary_fails_over_to_the_secondary() {
    let w = hop_world(2).await;
    // A wrong password at hop 1.
    w.admin
        .call(
            "PUT",
            &format!("/accounts/{}/secret", w.hop_accounts[0]),
            json!({ "secret": "Not-The-Hop-Pw-1" }),
        )
        .await
        .ok();
    let err = first_error(&w).await;
    let msg = err["message"].as_str().unwrap();
    assert_eq!(err["kind"], "authentication_failed", "{err}");
    assert!(
        msg.starts_with("hop 1 of 2, landing server DC-1 (")
            && msg.contains("refused the vault's credential"),
        "{msg}"
    );
    w.admin
        .call(
            "PUT",
            &format!("/accounts/{}/secret", w.hop_accounts[0]),
            json!({ "secret": HOP_PASSWORD }),
        )
        .await
        .ok();

    // The first good session pins both hops' keys; then hop 2 is "reinstalled".
    let (mut ws, mut got) = open(&w, "ssh").await;
    read_until(&mut ws, &mut got, "the prompt", |g| {
        connected(g) && terminal_has(g, "$ ")
    })
    .await;
    drop(ws);
    let new_fp = w.chain.rekey(2);
    let err = first_error(&w).await;
    let msg = err["message"].as_str().unwrap();
    assert_eq!(err["kind"], "host_key_mismatch", "{err}");
    assert!(
        msg.starts_with("hop 2 of 2, landing server DC-2 (") && msg.contains(&new_fp),
        "{msg}"
    );
    // The administrator accepts the new key; sessions work again.
    w.admin
        .call(
            "POST",
            &format!("/host-keys/{}/approve", w.jumps[1]),
            json!({ "fingerprint": new_fp }),
        )
        .await
        .ok();

    // DC-1's primary machine dies: a secondary takes over, and the audit says so.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let dead = w.admin.call("POST", "/resources", json!({ "name": "jump-1-old", "host": "127.0.0.1", "ports": { "ssh": dead_port }, "policy_id": "policy-low" })).await.ok();
    let dead_id = dead["id"].as_str().unwrap();
    let hop_user = w
        .admin
        .get(&format!("/accounts/{}", w.hop_accounts[0]))
        .await
        .ok()["username"]
        .as_str()
        .unwrap()
        .to_string();
    let dead_acc = w.admin.account(dead_id, &hop_user, "unused-Pw-1").await;
    w.admin.call("PATCH", &format!("/landing-servers/{}", w.landings[0]), json!({ "primary_resource_id": dead_id, "account_id": dead_acc, "secondary_resource_id": w.jumps[0] })).await.ok();
    let (mut ws, mut got) = open(&w, "ssh").await;
    read_until(&mut ws, &mut got, "the prompt via the secondary", |g| {
        connected(g) && terminal_has(g, "$ ")
    })
    .await;
    type_line(&mut ws, &mut got, "echo via-$((2+2))", "via-4").await;
    let audit = w
        .admin
        .get("/audit?action=session.start&outcome=ok")
        .await
        .ok();
    assert_eq!(
        audit[0]["detail"]["path"][0],
        json!({ "landing_server": "DC-1", "secondary": true }),
        "{audit}"
    );
    assert_eq!(
        audit[0]["detail"]["path"][1],
        json!({ "landing_server": "DC-2", "secondary": false })
    );
    drop(ws);

    // A primary that accepts TCP but never speaks SSH is down too (after 5 s).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let _held = std::thread::spawn(move || {
        if let Ok((_conn, _)) = silent.accept() {
            std::thread::sleep(Duration::from_secs(20));
        }
    });
    w.admin
        .call(
            "PATCH",
            &format!("/resources/{dead_id}"),
            json!({ "ports": { "ssh": silent_port } }),
        )
        .await
        .ok();
    let (mut ws, mut got) = open(&w, "ssh").await;
    read_until(
        &mut ws,
        &mut got,
        "the prompt after a silent primary",
        |g| connected(g) && terminal_has(g, "$ "),
    )
    .await;
    let audit = w
        .admin
        .get("/audit?action=session.start&outcome=ok")
        .await
        .ok();
    assert_eq!(
        audit[0]["detail"]["path"],
        json!([{ "landing_server": "DC-1", "secondary": true }, { "landing_server": "DC-2", "secondary": false }]),
        "{audit}"
    );
}

#[tokio::test]
async fn loops_and_bad_landing_servers_are_refused_when_configured() {
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let mut res = vec![];
    let mut lands = vec![];
    for k in 1..=3 {
        let r = admin.call("POST", "/resources", json!({ "name": format!("j{k}"), "host": format!("10.9.9.{k}"), "ports": { "ssh": 22 }, "policy_id": "policy-low" })).await.ok();
        let rid = r["id"].as_str().unwrap().to_string();
        let acc = admin.account(&rid, "ops", "Ops-Pw-123").await;
        let l = admin
            .call(
                "POST",
                "/landing-servers",
                json!({ "name": format!("L{k}"), "primary_resource_id": rid, "account_id": acc }),
            )
            .await
            .ok();
        res.push(rid);
        lands.push(l["id"].as_str().unwrap().to_string());
    }
    // j2 through L1, j3 through L2: a chain. Then j1 through L3 would close a loop.
    admin
        .call(
            "PUT",
            &format!("/resources/{}/landing-server", res[1]),
            json!({ "landing_server_id": lands[0] }),
        )
        .await
        .ok();
    admin
        .call(
            "PUT",
            &format!("/resources/{}/landing-server", res[2]),
            json!({ "landing_server_id": lands[1] }),
        )
        .await
        .ok();
    let r = admin
        .call(
            "PUT",
            &format!("/resources/{}/landing-server", res[0]),
            json!({ "landing_server_id": lands[2] }),
        )
        .await;
    assert_eq!(
        (r.status, r.error_field()),
        (400, Some("landing_server_id"))
    );
    let msg = r.error_message();
    assert!(
        msg.contains("loop")
            && msg.contains("L3 (on j3)")
            && msg.contains("L2 (on j2)")
            && msg.contains("L1 (on j1)"),
        "{msg}"
    );
    // Reached through itself.
    let r = admin
        .call(
            "PUT",
            &format!("/resources/{}/landing-server", res[0]),
            json!({ "landing_server_id": lands[0] }),
        )
        .await;
    assert_eq!(r.status, 400);
    // Moving L1 onto j3 (which is reached through L2, through L1) is a loop too.
    let acc3: Value = admin
        .get(&format!("/resources/{}/accounts", res[2]))
        .await
        .ok();
    let r = admin
        .call(
            "PATCH",
            &format!("/landing-servers/{}", lands[0]),
            json!({ "primary_resource_id": res[2], "account_id": acc3[0]["id"] }),
        )
        .await;
    assert_eq!(
        (r.status, r.error_field()),
        (400, Some("primary_resource_id")),
        "{}",
        r.error_message()
    );
    // A login account of another machine, a duplicate name, an unknown mode, deleting a
    // landing server in use: all refused with the reason.
    let other_acc = acc3[0]["id"].as_str().unwrap();
    let r = admin
        .call(
            "POST",
            "/landing-servers",
            json!({ "name": "Lx", "primary_resource_id": res[0], "account_id": other_acc }),
        )
        .await;
    assert_eq!((r.status, r.error_field()), (400, Some("account_id")));
    let r = admin
        .call(
            "POST",
            "/landing-servers",
            json!({ "name": "L1", "primary_resource_id": res[2], "account_id": other_acc }),
        )
        .await;
    assert_eq!((r.status, r.error_field()), (409, Some("name")));
    let r = admin.call("POST", "/landing-servers", json!({ "name": "Li", "primary_resource_id": res[2], "account_id": other_acc, "mode": "jump" })).await;
    assert_eq!((r.status, r.error_field()), (400, Some("mode")));
    let r = admin
        .call(
            "DELETE",
            &format!("/landing-servers/{}", lands[0]),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert!(r.error_message().contains("j2"), "{}", r.error_message());
    // Its machine and its login account cannot be deleted from under it either.
    let r = admin
        .call("DELETE", &format!("/resources/{}", res[0]), json!({}))
        .await;
    assert_eq!(r.status, 409);
    assert!(
        r.error_message().contains("landing server L1"),
        "{}",
        r.error_message()
    );
    let acc1: Value = admin
        .get(&format!("/resources/{}/accounts", res[0]))
        .await
        .ok();
    let r = admin
        .call(
            "DELETE",
            &format!("/accounts/{}", acc1[0]["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
    // The path of j3: L1 then L2; each change was audited.
    let path = admin.get(&format!("/resources/{}/path", res[2])).await.ok();
    assert_eq!(path["hops"][0]["name"], "L1");
    assert_eq!(path["hops"][1]["name"], "L2");
    let audit = admin.get("/audit?action=resource.landing").await.ok();
    assert_eq!(audit.as_array().unwrap().len(), 2, "{audit}");
}

#[tokio::test]
async fn a_landing_server_that_forbids_forwarding_is_named_with_the_reason() {
    let w = hop_world(2).await;
    w.chain.no_forwarding(1);
    let err = first_error(&w).await;
    let msg = err["message"].as_str().unwrap();
    assert_eq!(err["kind"], "unreachable", "{err}");
    assert!(
        msg.starts_with("hop 2 of 2, landing server DC-2 (")
            && msg.contains("landing server DC-1 refused to open a tunnel")
            && msg.contains("AllowTcpForwarding no"),
        "{msg}"
    );
    let audit = w
        .admin
        .get("/audit?action=session.start&outcome=failed")
        .await
        .ok();
    assert!(
        audit[0]["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("DC-1"),
        "{audit}"
    );
}

#[tokio::test]
async fn interactive_mode_types_ssh_and_telnet_at_a_landing_server_without_forwarding() {
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

    // SSH: DC-1 tunnels to DC-2, where the gateway types `exec ssh ...` and answers.
    let (mut ws, mut got) = open(&w, "ssh").await;
    read_until(&mut ws, &mut got, "the target's prompt", |g| {
        connected(g) && terminal_has(g, "$ ")
    })
    .await;
    type_line(&mut ws, &mut got, "echo typed-$((6*7))", "typed-42").await;
    let from = format!(
        "from-{}.1",
        w.chain.nodes[2].addr.rsplit_once('.').unwrap().0
    );
    type_line(&mut ws, &mut got, "echo from-${SSH_CONNECTION%% *}", &from).await;
    // The landing server's shell and what it printed stay out of the terminal.
    assert!(
        !terminal_has(&got, "exec ssh"),
        "{}",
        String::from_utf8_lossy(&got.terminal)
    );
    let log = got
        .controls
        .iter()
        .find(|c| {
            c["type"] == "marker"
                && c["text"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("Connection log:")
        })
        .cloned()
        .unwrap_or_default();
    assert!(
        log["text"].as_str().unwrap_or("").contains("exec ssh"),
        "{log}"
    );
    for secret in [PASSWORD, HOP_PASSWORD] {
        assert!(
            !String::from_utf8_lossy(&got.raw).contains(secret),
            "a password reached the browser"
        );
    }
    // The target's key was checked against the gateway's own pin (trust on first use here).
    let keys = w.admin.get("/host-keys").await.ok();
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|h| h["resource_id"] == w.target.as_str()
                && h["fingerprint"] == w.chain.nodes[2].fingerprint.as_str()),
        "{keys}"
    );
    // Leaving the target ends the session: nobody is left in the landing server's shell.
    exit_shell(&mut ws, &mut got).await;
    let audit = w
        .admin
        .get("/audit?action=session.start&outcome=ok")
        .await
        .ok();
    assert_eq!(
        audit[0]["detail"]["path"][1]["interactive"], true,
        "{audit}"
    );

    // Telnet: `exec telnet ...` at DC-2, then the target's logon script.
    let (mut ws, mut got) = open(&w, "telnet").await;
    read_until(&mut ws, &mut got, "the Telnet prompt", |g| {
        connected(g) && terminal_has(g, "$ ")
    })
    .await;
    type_line(
        &mut ws,
        &mut got,
        "echo telnet-typed-$((2*21))",
        "telnet-typed-42",
    )
    .await;
    assert!(!String::from_utf8_lossy(&got.raw).contains(PASSWORD));
    drop(ws);

    // The target is reinstalled: the typed ssh sees a new key, and the gateway refuses it.
    let new_fp = w.chain.rekey(3);
    let err = first_error(&w).await;
    let msg = err["message"].as_str().unwrap();
    assert_eq!(err["kind"], "host_key_mismatch", "{err}");
    assert!(
        msg.starts_with("the target deep-target") && msg.contains(&new_fp),
        "{msg}"
    );
}

#[tokio::test]
async fn a_landing_server_reached_by_telnet_logs_in_by_script_and_types_ssh() {
    let w = hop_world(2).await;
    // DC-2's machine speaks only Telnet: DC-1 tunnels to its Telnet port, the gateway logs in
    // with the machine's logon script (the built-in unix one), then types ssh to the target.
    w.admin
        .call(
            "PATCH",
            &format!("/resources/{}", w.jumps[1]),
            json!({ "ports": { "ssh": null, "telnet": 23 } }),
        )
        .await
        .ok();
    // Tunnel mode needs SSH: refused with the way out named.
    let r = w
        .admin
        .call(
            "PATCH",
            &format!("/landing-servers/{}", w.landings[1]),
            json!({ "notes": "telnet only now" }),
        )
        .await;
    assert_eq!(
        (r.status, r.error_field()),
        (400, Some("primary_resource_id"))
    );
    assert!(
        r.error_message()
            .contains("interactive mode can use Telnet"),
        "{}",
        r.error_message()
    );
    w.admin
        .call(
            "PATCH",
            &format!("/landing-servers/{}", w.landings[1]),
            json!({ "mode": "interactive" }),
        )
        .await
        .ok();
    let (mut ws, mut got) = open(&w, "ssh").await;
    read_until(&mut ws, &mut got, "the target's prompt", |g| {
        connected(g) && terminal_has(g, "$ ")
    })
    .await;
    let from = format!(
        "from-{}.1",
        w.chain.nodes[2].addr.rsplit_once('.').unwrap().0
    );
    type_line(&mut ws, &mut got, "echo from-${SSH_CONNECTION%% *}", &from).await;
    let markers: Vec<String> = got
        .controls
        .iter()
        .filter(|c| c["type"] == "marker")
        .map(|c| c["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        markers.iter().any(|m| m.contains("landing server DC-2")
            && m.contains("Telnet")
            && m.contains("typed a secret (not recorded)")),
        "{markers:?}"
    );
    for secret in [PASSWORD, HOP_PASSWORD] {
        assert!(
            !String::from_utf8_lossy(&got.raw).contains(secret),
            "a password reached the browser"
        );
    }
}

#[tokio::test]
async fn an_interactive_landing_server_whose_primary_is_down_uses_its_secondary() {
    let w = hop_world(2).await;
    // DC-2's primary machine answers nothing (a closed port behind DC-1); its secondary is
    // the real node 2, in interactive mode.
    let dead = w.admin.call("POST", "/resources", json!({ "name": "jump-2-old", "host": w.chain.nodes[1].addr, "ports": { "ssh": 2 }, "policy_id": "policy-low" })).await.ok();
    let dead_id = dead["id"].as_str().unwrap().to_string();
    let hop_user = w
        .admin
        .get(&format!("/accounts/{}", w.hop_accounts[1]))
        .await
        .ok()["username"]
        .as_str()
        .unwrap()
        .to_string();
    let dead_acc = w.admin.account(&dead_id, &hop_user, "unused-Pw-1").await;
    // (like the real node 2, the old machine sits behind DC-1)
    w.admin
        .call(
            "PUT",
            &format!("/resources/{dead_id}/landing-server"),
            json!({ "landing_server_id": w.landings[0] }),
        )
        .await
        .ok();
    w.admin
        .call("PATCH", &format!("/landing-servers/{}", w.landings[1]), json!({ "mode": "interactive", "primary_resource_id": dead_id, "account_id": dead_acc, "secondary_resource_id": w.jumps[1] }))
        .await
        .ok();
    let (mut ws, mut got) = open(&w, "ssh").await;
    read_until(
        &mut ws,
        &mut got,
        "the target's prompt via the secondary",
        |g| connected(g) && terminal_has(g, "$ "),
    )
    .await;
    type_line(&mut ws, &mut got, "echo second-$((3*3))", "second-9").await;
    let audit = w
        .admin
        .get("/audit?action=session.start&outcome=ok")
        .await
        .ok();
    assert_eq!(
        audit[0]["detail"]["path"][1],
        json!({ "landing_server": "DC-2", "secondary": true, "interactive": true }),
        "{audit}"
    );
}

#[tokio::test]
async fn typed_and_stalled_landing_servers_hand_over_to_their_secondaries() {
    let w = hop_world(2).await;
    let hop_user = w
        .admin
        .get(&format!("/accounts/{}", w.hop_accounts[0]))
        .await
        .ok()["username"]
        .as_str()
        .unwrap()
        .to_string();
    // DC-1 (interactive, reached from the gateway): its primary machine accepts connections
    // on loopback and never says a word; its secondary is the real node 1.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalled_port = stalled.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in stalled.incoming() {
            held.push(c);
        }
    });
    let mute = w.admin.call("POST", "/resources", json!({ "name": "jump-1-mute", "host": "127.0.0.1", "ports": { "ssh": stalled_port }, "policy_id": "policy-low" })).await.ok();
    let mute_id = mute["id"].as_str().unwrap().to_string();
    let mute_acc = w.admin.account(&mute_id, &hop_user, "unused-Pw-1").await;
    w.admin
        .call("PATCH", &format!("/landing-servers/{}", w.landings[0]), json!({ "mode": "interactive", "primary_resource_id": mute_id, "account_id": mute_acc, "secondary_resource_id": w.jumps[0] }))
        .await
        .ok();
    // DC-2 (typed at DC-1's shell): its primary is a closed port behind DC-1; its secondary
    // is the real node 2.
    let dead = w.admin.call("POST", "/resources", json!({ "name": "jump-2-old", "host": w.chain.nodes[1].addr, "ports": { "ssh": 2 }, "policy_id": "policy-low" })).await.ok();
    let dead_id = dead["id"].as_str().unwrap().to_string();
    let dead_acc = w.admin.account(&dead_id, &hop_user, "unused-Pw-2").await;
    w.admin
        .call(
            "PUT",
            &format!("/resources/{dead_id}/landing-server"),
            json!({ "landing_server_id": w.landings[0] }),
        )
        .await
        .ok();
    w.admin
        .call("PATCH", &format!("/landing-servers/{}", w.landings[1]), json!({ "primary_resource_id": dead_id, "account_id": dead_acc, "secondary_resource_id": w.jumps[1] }))
        .await
        .ok();

    let (mut ws, mut got) = open(&w, "ssh").await;
    read_until(
        &mut ws,
        &mut got,
        "the target's prompt via both secondaries",
        |g| connected(g) && terminal_has(g, "$ "),
    )
    .await;
    type_line(&mut ws, &mut got, "echo both-$((4*4))", "both-16").await;
    let from = format!(
        "from-{}.1",
        w.chain.nodes[2].addr.rsplit_once('.').unwrap().0
    );
    type_line(&mut ws, &mut got, "echo from-${SSH_CONNECTION%% *}", &from).await;
    // The connection log says why each secondary was used.
    let markers: Vec<String> = got
        .controls
        .iter()
        .filter(|c| c["type"] == "marker")
        .filter_map(|c| c["text"].as_str().map(str::to_string))
        .collect();
    assert!(
        markers
            .iter()
            .any(|m| m.contains("landing server DC-2") && m.contains("did not answer")),
        "{markers:?}"
    );
    // The audit says which machine was used for each.
    let start = w
        .admin
        .get("/audit?action=session.start&outcome=ok")
        .await
        .ok();
    assert_eq!(
        start[0]["detail"]["path"][0],
        json!({ "landing_server": "DC-1", "secondary": true, "interactive": true }),
        "{start}"
    );
    let mut failover = Value::Null;
    for _ in 0..50 {
        failover = w.admin.get("/audit?action=session.hop_failover").await.ok();
        if failover.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        failover[0]["detail"]["landing_server"], "DC-2",
        "{failover}"
    );
    assert_eq!(failover[0]["detail"]["secondary"], true, "{failover}");
    assert!(
        failover[0]["detail"]["why"]
            .as_str()
            .unwrap_or("")
            .contains("refused"),
        "{failover}"
    );
}

/// A Password User sees the landing servers on the paths of what they can use, not the
/// others (nor, by id, a landing server elsewhere); administrators see them all. Likewise
/// user groups: only those they are in.
#[tokio::test]
async fn a_password_user_sees_only_the_landing_servers_and_groups_that_concern_them() {
    let w = hop_world(1).await;
    let r = w
        .admin
        .call(
            "POST",
            "/resources",
            json!({ "name": "elsewhere", "host": "10.77.0.1", "ports": { "ssh": 22 } }),
        )
        .await
        .ok();
    let rid = r["id"].as_str().unwrap_or_default().to_string();
    let acc = w.admin.account(&rid, "ops", "Elsewhere-Pw-0001!").await;
    let other = w
        .admin
        .call(
            "POST",
            "/landing-servers",
            json!({ "name": "DC-other", "primary_resource_id": rid, "account_id": acc }),
        )
        .await
        .ok();
    let other_id = other["id"].as_str().unwrap_or_default().to_string();
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["name"].as_str().map(String::from))
            .collect()
    };
    let mine = w.eng.get("/landing-servers").await.ok();
    assert_eq!(names(&mine), vec!["DC-1".to_string()], "{mine}");
    assert_eq!(
        w.eng
            .get(&format!("/landing-servers/{other_id}"))
            .await
            .status,
        404
    );
    let all = w.admin.get("/landing-servers").await.ok();
    assert_eq!(names(&all).len(), 2, "{all}");
    // Groups: none the engineer is in, then one.
    let g = w
        .admin
        .call("POST", "/user-groups", json!({ "name": "ops-team" }))
        .await
        .ok();
    let gid = g["id"].as_str().unwrap_or_default().to_string();
    w.admin
        .call("POST", "/user-groups", json!({ "name": "dba-team" }))
        .await
        .ok();
    assert_eq!(w.eng.get("/user-groups").await.ok(), json!([]));
    let eng_id = &w.eng_id;
    w.admin
        .call(
            "PATCH",
            &format!("/user-groups/{gid}"),
            json!({ "member_ids": [eng_id] }),
        )
        .await
        .ok();
    let groups = w.eng.get("/user-groups").await.ok();
    assert_eq!(names(&groups), vec!["ops-team".to_string()], "{groups}");
}
