//! The rotation engine over a terminal, against real OpenSSH and inetutils-telnetd with PAM:
//! `passwd` as the account itself (over SSH and over Telnet), `chpasswd` through `sudo` and
//! through `su`, an SSH-key account (new key installed, verified, old key removed), a change
//! the target refuses (the vault keeps the old secret), a gateway killed mid-change (nothing
//! lost), and a target reachable only through a landing server in a network namespace.
//! After each rotation the old secret no longer logs in and the vault's new one does,
//! checked by the tests' own SSH client (or the machine's shadow file), not by the gateway.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Backend, Client, Site, ADMIN_PASSWORD};
use crate::rotation::{reveal, wait_job};
use crate::sshd_server::{key_login_works, password_login_works, private_sshd};

/// Rotates `account` and waits for the job's end.
pub(crate) async fn rotate(admin: &Client, account: &str) -> Value {
    job_for(admin, account, "rotate").await
}

/// Asks for a job of `kind` (`rotate`, `verify`) on `account` and waits for its end.
async fn job_for(admin: &Client, account: &str, kind: &str) -> Value {
    let r = admin
        .call("POST", &format!("/accounts/{account}/{kind}"), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_job(
        admin,
        r.body["job"]["id"].as_str().unwrap_or_default(),
        None,
    )
    .await
}

/// A resource on the private server: SSH (and Telnet) or Telnet only; its id.
pub(crate) async fn resource(admin: &Client, name: &str, ssh: bool) -> String {
    let s = private_sshd();
    let ports = if ssh {
        json!({ "ssh": s.port, "telnet": s.telnet_port })
    } else {
        json!({ "telnet": s.telnet_port })
    };
    let r = admin
        .call("POST", "/resources", json!({ "name": name, "host": "127.0.0.1", "resource_type": "linux", "ports": ports, "policy_id": "policy-low" }))
        .await
        .ok();
    r["id"].as_str().unwrap_or_default().to_string()
}

pub(crate) async fn set_method(admin: &Client, rid: &str, body: Value) -> Value {
    let r = admin
        .call("PUT", &format!("/resources/{rid}/rotation"), body)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

pub(crate) async fn logs_in(user: &str, password: &str) -> bool {
    password_login_works("127.0.0.1", private_sshd().port, user, password).await
}

/// Rotates `account` (machine user `user`, password `old`), expects success, and checks with
/// the tests' own SSH client that the vault's new password logs in and `old` no longer
/// does; the new password.
async fn rotated(admin: &Client, account: &str, user: &str, old: &str) -> String {
    let job = rotate(admin, account).await;
    assert_eq!(job["state"], "succeeded", "{job}\n{}", private_sshd().log());
    let new = reveal(admin, account).await;
    assert_ne!(new, old);
    assert!(
        logs_in(user, &new).await,
        "the new password of {user} does not log in"
    );
    assert!(
        !logs_in(user, old).await,
        "the old password of {user} still logs in"
    );
    new
}

#[tokio::test]
async fn unix_passwords_are_rotated_with_passwd_sudo_and_su_over_ssh_and_telnet() {
    let s = private_sshd();
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;

    // passwd, as the account itself, over SSH.
    let alice = s.user("Alice-Old-Pw-1");
    let r1 = resource(&admin, "unix-passwd", true).await;
    let settings = set_method(&admin, &r1, json!({ "method": "passwd" })).await;
    assert_eq!(settings["settings"]["method"], "passwd", "{settings}");
    let a1 = admin.account(&r1, &alice, "Alice-Old-Pw-1").await;
    let new = rotated(&admin, &a1, &alice, "Alice-Old-Pw-1").await;
    // And again from the rotated one (the vault's new secret is the current one).
    rotated(&admin, &a1, &alice, &new).await;

    // chpasswd through sudo, logged in as the privileged account.
    let padm = s.user("Padm-Pw-22");
    s.sudoer(&padm);
    let bob = s.user("Bob-Old-Pw-2");
    let r2 = resource(&admin, "unix-sudo", true).await;
    let privileged = admin.account(&r2, &padm, "Padm-Pw-22").await;
    set_method(
        &admin,
        &r2,
        json!({ "method": "sudo", "privileged_account_id": privileged }),
    )
    .await;
    let a2 = admin.account(&r2, &bob, "Bob-Old-Pw-2").await;
    let new = rotated(&admin, &a2, &bob, "Bob-Old-Pw-2").await;
    // The privileged account's own password did not change.
    assert!(logs_in(&padm, "Padm-Pw-22").await);

    // A change the target refuses: sudo rejects a wrong privileged password. The job fails
    // with the target's words, the vault and the target keep the old password.
    let wrong = admin.account(&r2, "root", "Not-Roots-Password-1").await;
    set_method(
        &admin,
        &r2,
        json!({ "method": "sudo", "privileged_account_id": wrong }),
    )
    .await;
    let job = rotate(&admin, &a2).await;
    assert_eq!(job["state"], "failed", "{job}");
    let message = job["message"].as_str().unwrap_or_default();
    assert!(message.contains("keeps the current secret"), "{message}");
    assert!(!message.contains("Not-Roots-Password-1"), "{message}");
    assert_eq!(reveal(&admin, &a2).await, new);
    assert!(logs_in(&bob, &new).await);
    // The failed attempt is audited as an alert.
    let failed = admin
        .get("/audit?action=account.rotate")
        .await
        .ok()
        .to_string();
    assert!(failed.contains("\"alert\":true"), "{failed}");

    // su is refused: it typed root's password at the rotated account's own shell.
    let r3 = resource(&admin, "unix-su", true).await;
    let root = admin.account(&r3, "root", "Root-Pw-333").await;
    let su = admin
        .call(
            "PUT",
            &format!("/resources/{r3}/rotation"),
            json!({ "method": "su", "privileged_account_id": root }),
        )
        .await;
    assert_eq!(
        (su.status, su.error_field()),
        (400, Some("method")),
        "{}",
        su.body
    );
    assert!(su.error_message().contains("~/.bashrc"), "{}", su.body);

    // passwd over Telnet (the resource has no SSH port): the logon script logs in, the
    // rotation script runs at the shell.
    let dave = s.user("Dave-Old-Pw-4");
    let r4 = resource(&admin, "unix-telnet", false).await;
    set_method(&admin, &r4, json!({ "method": "passwd" })).await;
    let a4 = admin.account(&r4, &dave, "Dave-Old-Pw-4").await;
    rotated(&admin, &a4, &dave, "Dave-Old-Pw-4").await;

    // Every rotation is audited; no secret reached the API's answers or the audit.
    let audit = admin
        .get("/audit?action=account.rotate")
        .await
        .ok()
        .to_string();
    for user in [&alice, &bob, &dave] {
        assert!(audit.contains(user.as_str()), "{user} not in {audit}");
    }
    for secret in ["Padm-Pw-22", "Root-Pw-333", "Not-Roots-Password-1"] {
        assert!(
            !admin.transcript().contains(secret),
            "{secret} reached an API answer"
        );
    }
}

#[tokio::test]
async fn an_ssh_key_is_replaced_and_the_old_one_removed() {
    let s = private_sshd();
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let erin = s.user("Erin-Unused-Pw-5");
    let old_key = s.key_for(&erin);
    let rid = resource(&admin, "unix-keys", true).await;
    let a = admin
        .call(
            "POST",
            &format!("/resources/{rid}/accounts"),
            json!({ "username": erin, "secret_kind": "ssh_key", "secret": old_key }),
        )
        .await
        .ok();
    let account = a["id"].as_str().unwrap_or_default().to_string();
    assert!(key_login_works("127.0.0.1", s.port, &erin, &old_key).await);

    // No rotation method needed: a key is rotated over SSH by the account itself.
    let job = rotate(&admin, &account).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(
        job["message"]
            .as_str()
            .unwrap_or_default()
            .contains("old key was removed"),
        "{job}"
    );
    let new_key = reveal(&admin, &account).await;
    assert!(new_key.contains("BEGIN OPENSSH PRIVATE KEY"), "not a key");
    assert_ne!(new_key, old_key);
    assert!(
        key_login_works("127.0.0.1", s.port, &erin, &new_key).await,
        "the new key does not log in"
    );
    assert!(
        !key_login_works("127.0.0.1", s.port, &erin, &old_key).await,
        "the old key still logs in"
    );
    // The rotation's SSH connections pinned the server's host key, as a session would.
    let pins = admin.get("/host-keys").await.ok().to_string();
    assert!(pins.contains(&s.fingerprint), "{pins}");
    let keys = s.authorized_keys(&erin);
    assert_eq!(
        keys.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{keys}"
    );
    assert!(keys.starts_with("ssh-ed25519 "), "{keys}");
}

#[tokio::test]
async fn a_gateway_killed_mid_change_over_ssh_keeps_a_working_password() {
    let s = private_sshd();
    let mut site = Site::new(Backend::Sqlite);
    let mut server = site.start();
    let admin = server.admin().await;
    let rid = resource(&admin, "unix-kill", true).await;
    set_method(&admin, &rid, json!({ "method": "passwd" })).await;
    drop(admin);
    // "stored": the target was never asked, the job runs again; "changed": the new
    // password works on the target and is committed at the restart.
    for step in ["stored", "changed"] {
        let user = s.user("Kill-Old-Pw-6");
        site.env = vec![("PORTCULLIS_TEST_PAUSE_AT".into(), step.into())];
        server.kill();
        server = site.start();
        let admin = server.client();
        admin.login_ok("admin", ADMIN_PASSWORD).await;
        let account = admin.account(&rid, &user, "Kill-Old-Pw-6").await;
        let r = admin
            .call("POST", &format!("/accounts/{account}/rotate"), json!({}))
            .await;
        let job_id = r.body["job"]["id"].as_str().unwrap_or_default().to_string();
        wait_job(&admin, &job_id, Some(&format!("paused after {step}"))).await;
        server.kill();
        site.env.clear();
        server = site.start();
        let admin = server.client();
        admin.login_ok("admin", ADMIN_PASSWORD).await;
        let job = wait_job(&admin, &job_id, None).await;
        assert_eq!(job["state"], "succeeded", "after a kill at {step}: {job}");
        let held = reveal(&admin, &account).await;
        assert_ne!(held, "Kill-Old-Pw-6", "after a kill at {step}");
        assert!(logs_in(&user, &held).await, "after a kill at {step}");
        assert!(
            !logs_in(&user, "Kill-Old-Pw-6").await,
            "after a kill at {step}"
        );
        let pending = site.raw_sql("SELECT COUNT(*) FROM pending_secrets").await;
        assert_eq!(pending, vec!["0".to_string()], "after a kill at {step}");
    }
}

/// Whether the machine's shadow file holds `password` for `user` (the nodes of a network
/// namespace chain share the machine's users, and the target is unreachable from here but
/// through the chain: this checks the change itself, independently of any login path).
fn shadow_holds(user: &str, password: &str) -> bool {
    let out = std::process::Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt, spwd, sys; h = spwd.getspnam(sys.argv[1]).sp_pwdp; print(crypt.crypt(sys.argv[2], h) == h)",
            user,
            password,
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "True"
}

#[tokio::test]
async fn a_target_behind_a_landing_server_is_rotated_through_it() {
    let w = crate::hops::hop_world(1).await;
    // The target answers only through the landing server.
    w.chain.assert_isolated(1);
    set_method(&w.admin, &w.target, json!({ "method": "passwd" })).await;
    // passwd types at the account's own shell: nobody may hold Connect on it (the
    // engineer's share goes; attacks.rs shows why).
    let shares = w
        .admin
        .get(&format!(
            "/shares?object_kind=account&object_id={}",
            w.account
        ))
        .await
        .ok();
    for share in shares.as_array().into_iter().flatten() {
        let id = share["id"].as_str().unwrap_or_default();
        w.admin
            .call("DELETE", &format!("/shares/{id}"), json!({}))
            .await
            .ok();
    }
    assert!(shadow_holds(&w.target_user, crate::hops::PASSWORD));
    let job = rotate(&w.admin, &w.account).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let new = reveal(&w.admin, &w.account).await;
    assert!(
        shadow_holds(&w.target_user, &new),
        "the new password is not the target's"
    );
    assert!(
        !shadow_holds(&w.target_user, crate::hops::PASSWORD),
        "the old password still is the target's"
    );

    // The landing server in interactive mode, without TCP forwarding: the rotation types its
    // way to the target through the landing server's shell, as a session does.
    w.chain.no_forwarding(1);
    w.admin
        .call(
            "PATCH",
            &format!("/landing-servers/{}", w.landings[0]),
            json!({ "mode": "interactive" }),
        )
        .await
        .ok();
    let job = rotate(&w.admin, &w.account).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let newer = reveal(&w.admin, &w.account).await;
    assert!(
        shadow_holds(&w.target_user, &newer),
        "the newer password is not the target's"
    );
    assert!(!shadow_holds(&w.target_user, &new));
}

/// A 127.0.0.1 port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    l.local_addr().map(|a| a.port()).unwrap_or(1)
}

#[tokio::test]
async fn verification_tells_in_sync_out_of_sync_and_unreachable_apart_nightly_too() {
    let s = private_sshd();
    let mut site = Site::new(Backend::Sqlite);
    let mut server = site.start();
    let admin = server.admin().await;
    let rid = resource(&admin, "unix-verify", true).await;
    set_method(&admin, &rid, json!({ "method": "passwd" })).await;
    let good_user = s.user("Good-Pw-71");
    let drift_user = s.user("Drift-Pw-72");
    let good = admin.account(&rid, &good_user, "Good-Pw-71").await;
    let drift = admin.account(&rid, &drift_user, "Drift-Pw-72").await;
    // Someone changes a password on the target without the vault.
    s.set_password(&drift_user, "Changed-Behind-The-Vault-73");
    // A machine that does not answer.
    let down = admin
        .call("POST", "/resources", json!({ "name": "unix-down", "host": "127.0.0.1", "resource_type": "linux", "ports": { "ssh": closed_port() }, "policy_id": "policy-low" }))
        .await
        .ok();
    let down_rid = down["id"].as_str().unwrap_or_default().to_string();
    set_method(&admin, &down_rid, json!({ "method": "passwd" })).await;
    let unreachable = admin.account(&down_rid, "nobody", "Whatever-Pw-74").await;

    let verify = |account: String| {
        let admin = &admin;
        async move { job_for(admin, &account, "verify").await }
    };
    let job = verify(good.clone()).await;
    assert_eq!(
        (job["kind"].as_str(), job["result"].as_str()),
        (Some("verify"), Some("in_sync")),
        "{job}"
    );
    let job = verify(drift.clone()).await;
    assert_eq!(job["result"], "out_of_sync", "{job}");
    let job = verify(unreachable.clone()).await;
    assert_eq!(job["result"], "unreachable", "{job}");
    assert!(
        job["message"]
            .as_str()
            .unwrap_or_default()
            .contains("says nothing about the secret"),
        "{job}"
    );
    // The account shows its last check; an out-of-sync secret is an audited alert.
    let policy = admin.get(&format!("/accounts/{drift}/rotation")).await.ok();
    assert_eq!(policy["last_check"]["state"], "out_of_sync", "{policy}");
    let audit = admin
        .get("/audit?action=account.verify")
        .await
        .ok()
        .to_string();
    assert!(audit.contains("\"alert\":true"), "{audit}");
    // Verifying changed nothing: the vault still holds what it held.
    assert_eq!(reveal(&admin, &drift).await, "Drift-Pw-72");
    // From the command line, by user@resource, followed to its end (the running server
    // carries it out): exit status 0 in sync, 1 out of sync.
    let o = site.cli(&[
        "rotation",
        "verify",
        &format!("{good_user}@unix-verify"),
        "--wait",
    ]);
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success() && said.contains("logs in"),
        "{said}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = site.cli(&[
        "rotation",
        "verify",
        &format!("{drift_user}@unix-verify"),
        "--wait",
    ]);
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        !o.status.success() && said.contains("out of sync"),
        "{said}"
    );
    let o = site.cli(&["rotation", "verify", "nobody@no-such-resource"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("no account nobody on a resource named no-such-resource"));

    // A whole resource as one run, with its summary.
    let r = admin
        .call(
            "POST",
            &format!("/resources/{rid}/rotation/run"),
            json!({ "kind": "verify" }),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let run_id = r.body["run"]["id"].as_str().unwrap_or_default().to_string();
    let summary = wait_run(&admin, &run_id).await;
    assert_eq!(summary["total"], 2, "{summary}");
    assert_eq!(
        summary["by_result"],
        json!({ "in_sync": 1, "out_of_sync": 1 }),
        "{summary}"
    );
    assert_eq!(
        summary["jobs"].as_array().map(|j| j.len()),
        Some(2),
        "{summary}"
    );

    // The nightly verification, at a time of day that has just come: it covers every
    // rotatable account once, and not twice.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let hhmm = format!("{:02}:{:02}", (now / 3600) % 24, (now / 60) % 60);
    site.env = vec![("PORTCULLIS_ROTATION_VERIFY_AT".into(), hhmm)];
    drop(admin);
    server.kill();
    server = site.start();
    let admin = server.client();
    admin.login_ok("admin", ADMIN_PASSWORD).await;
    let mut nightly = Value::Null;
    for _ in 0..200 {
        let runs = admin.get("/rotation/runs").await.ok();
        if let Some(n) = runs["runs"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["run"]["trig"] == "nightly"))
        {
            nightly = n.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let nightly_id = nightly["run"]["id"]
        .as_str()
        .expect("a nightly run")
        .to_string();
    let summary = wait_run(&admin, &nightly_id).await;
    assert_eq!(
        summary["by_result"],
        json!({ "in_sync": 1, "out_of_sync": 1, "unreachable": 1 }),
        "{summary}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let runs = admin.get("/rotation/runs").await.ok();
    let count = runs["runs"]
        .as_array()
        .map(|r| r.iter().filter(|r| r["run"]["trig"] == "nightly").count());
    assert_eq!(count, Some(1), "{runs}");
}

/// Waits until a run has no open job; its report.
async fn wait_run(admin: &Client, id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        last = admin.get(&format!("/rotation/runs/{id}")).await.ok();
        if last["open"] == 0 && last["total"].as_i64().unwrap_or(0) > 0 {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the run did not finish: {last}");
}

#[tokio::test]
async fn a_schedule_gives_notice_then_runs_and_moves_on() {
    let s = private_sshd();
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let rid = resource(&admin, "unix-scheduled", true).await;
    set_method(&admin, &rid, json!({ "method": "passwd" })).await;
    let user = s.user("Sched-Old-Pw-91");
    let account = admin.account(&rid, &user, "Sched-Old-Pw-91").await;

    // A schedule due in 10 to 70 s (the next whole minute at least 10 s away) with a 5-minute
    // notice: the notice goes out (audited) at once, once, then the run.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 70;
    let hhmm = format!("{:02}:{:02}", (now / 3600) % 24, (now / 60) % 60);
    // The schedule is for a resource group holding the resource.
    let g = admin
        .call(
            "POST",
            "/resource-groups",
            json!({ "name": "scheduled-servers", "description": "", "resource_ids": [rid] }),
        )
        .await
        .ok();
    let gid = g["id"].as_str().unwrap_or_default().to_string();
    let bad = admin
        .call("POST", "/rotation/schedules", json!({ "target_kind": "resource", "target_id": rid, "interval_days": 0, "time_of_day": hhmm }))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.body["error"]["field"], "interval_days", "{}", bad.body);
    let r = admin
        .call("POST", "/rotation/schedules", json!({ "target_kind": "group", "target_id": gid, "interval_days": 30, "time_of_day": hhmm, "notice_minutes": 5 }))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let schedule_id = r.body["schedule"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut notice = String::new();
    for _ in 0..150 {
        notice = admin
            .get("/audit?action=rotation.notice")
            .await
            .ok()
            .to_string();
        if notice.contains(&user) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        notice.contains(&user),
        "no notice naming the account: {notice}"
    );
    let schedules = admin.get("/rotation/schedules").await.ok();
    let first_due = schedules["schedules"][0]["schedule"]["next_run_at"]
        .as_i64()
        .unwrap_or_default();
    assert_eq!(
        schedules["schedules"][0]["schedule"]["notice_sent_for"],
        json!(first_due),
        "the schedule does not show its notice as sent: {schedules}"
    );

    // The schedule comes due: one run rotates the
    // resource's account, its summary says so, and the next run is 30 days later.
    let mut run = Value::Null;
    for _ in 0..1500 {
        let runs = admin.get("/rotation/runs").await.ok();
        if let Some(r) = runs["runs"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["run"]["trig"] == "schedule"))
        {
            if r["open"] == 0 && r["total"] == 1 {
                run = r.clone();
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(run["by_result"], json!({ "rotated": 1 }), "{run}");
    assert_eq!(run["run"]["scope"], "group scheduled-servers", "{run}");
    let new = reveal(&admin, &account).await;
    assert!(logs_in(&user, &new).await && !logs_in(&user, "Sched-Old-Pw-91").await);
    let schedules = admin.get("/rotation/schedules").await.ok();
    let next = schedules["schedules"][0]["schedule"]["next_run_at"]
        .as_i64()
        .unwrap_or_default();
    assert_eq!(next - first_due, 30 * 24 * 3600 * 1000, "{schedules}");
    let r = admin
        .call(
            "DELETE",
            &format!("/rotation/schedules/{schedule_id}"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
}

#[tokio::test]
async fn a_session_end_rotates_a_one_time_password() {
    use crate::live::start;
    let s = private_sshd();
    let site = Site::new(Backend::Sqlite);
    let (server, tls) = start(&site);
    let admin = server.admin().await;
    let rid = resource(&admin, "unix-otp", true).await;
    set_method(&admin, &rid, json!({ "method": "passwd" })).await;
    let user = s.user("Otp-Old-Pw-81");
    let account = admin.account(&rid, &user, "Otp-Old-Pw-81").await;

    // "Rotate after each session": the account's password changes when a session ends.
    let r = admin
        .call(
            "PUT",
            &format!("/accounts/{account}/rotation"),
            json!({ "after_session": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (ws, sid) = crate::rotation::live_ssh_session(&server, &tls, &admin, &account).await;
    // No rotation while the session is live.
    let jobs = admin.get("/rotation/jobs").await.ok();
    assert_eq!(jobs["jobs"].as_array().map(|j| j.len()), Some(0), "{jobs}");
    admin
        .call(
            "POST",
            &format!("/sessions/{sid}/terminate"),
            json!({ "reason": "done" }),
        )
        .await
        .ok();
    drop(ws);
    let mut job = Value::Null;
    for _ in 0..300 {
        let jobs = admin.get("/rotation/jobs").await.ok();
        if let Some(j) = jobs["jobs"].as_array().and_then(|j| j.first()) {
            if j["state"] == "succeeded" || j["state"] == "failed" {
                job = j.clone();
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job["reason"], "after_session", "{job}");
    assert_eq!(job["state"], "succeeded", "{job}");
    let new = reveal(&admin, &account).await;
    assert!(logs_in(&user, &new).await && !logs_in(&user, "Otp-Old-Pw-81").await);
}

#[tokio::test]
async fn an_administrators_script_rotates_and_a_bad_one_is_refused_naming_the_field() {
    let s = private_sshd();
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let rid = resource(&admin, "unix-script", true).await;
    // A bad pattern, a rotation placeholder that does not exist, an optional last step: each
    // refused with the field at fault.
    for (script, field) in [
        (
            json!({ "steps": [{ "label": "p", "expect": "([", "send": "x" }, { "label": "d", "expect": "x" }] }),
            "script.steps[0].expect",
        ),
        (
            json!({ "steps": [{ "label": "p", "expect": "\\$ $", "send": "{new_pasword}" }, { "label": "d", "expect": "x" }] }),
            "script.steps[0].send",
        ),
        (
            json!({ "steps": [{ "label": "p", "expect": "\\$ $" }, { "label": "d", "expect": "x", "optional": true }] }),
            "script.steps[1].optional",
        ),
    ] {
        let r = admin
            .call(
                "PUT",
                &format!("/resources/{rid}/rotation"),
                json!({ "method": "script", "script": script }),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{}", r.body);
    }
    // A script an administrator wrote (chpasswd through sudo, in their own words).
    let padm = s.user("Script-Adm-Pw-61");
    s.sudoer(&padm);
    let privileged = admin.account(&rid, &padm, "Script-Adm-Pw-61").await;
    let script = json!({
        "steps": [
            { "label": "prompt", "expect": "[$#] ?$", "send": "stty -echo; sudo -k; sudo -p 'Pw for %p: ' sh -c 'PATH=/usr/sbin:$PATH; echo OK-$((40+2)); read l; echo \"$l\" | chpasswd'; echo RC-$?; stty echo" },
            { "label": "sudo", "expect": "Pw for [a-z0-9]+: $", "send": "{privileged_password}" },
            { "label": "ready", "expect": "OK-42", "send": "{account}:{new_password}" },
            { "label": "done", "expect": "RC-0" }
        ],
        "failure": ["RC-[1-9]", "sorry"]
    });
    let set = set_method(
        &admin,
        &rid,
        json!({ "method": "script", "privileged_account_id": privileged, "script": script }),
    )
    .await;
    // Stored as written, with the default step timeout filled in.
    assert_eq!(
        set["settings"]["script"]["steps"][2]["send"], "{account}:{new_password}",
        "{set}"
    );
    assert_eq!(
        set["settings"]["script"]["steps"][3]["timeout_s"], 10,
        "{set}"
    );
    let user = s.user("Script-Old-Pw-62");
    let account = admin.account(&rid, &user, "Script-Old-Pw-62").await;
    rotated(&admin, &account, &user, "Script-Old-Pw-62").await;
}
