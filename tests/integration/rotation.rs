//! The rotation engine against a real PostgreSQL (the test cluster, with password checks for
//! the roles made here): a rotation changes the role's password so that the old one no
//! longer logs in and the vault's new one does; a change the server refuses leaves the vault
//! as it was; and a gateway killed with SIGKILL at each step of the two-phase change loses
//! nothing: after a restart the vault holds a password that logs in, and no pending secret.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Backend, Client, Server, Site, ADMIN_PASSWORD};
use crate::postgres_cluster::cluster;

pub(crate) static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A role in the test cluster that must log in with `password`; its name.
pub(crate) fn role(prefix: &str, password: &str, extra: &str) -> String {
    let c = cluster();
    let group = c.password_group();
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    c.psql(
        "postgres",
        &format!("CREATE ROLE {name} LOGIN {extra} PASSWORD '{password}' IN ROLE {group}"),
    );
    name
}

/// A database resource on the test cluster, rotated by `admin_password`'s role (CREATEROLE);
/// its id and the privileged account's id.
pub(crate) async fn pg_resource(admin: &Client, name: &str) -> (String, String) {
    let admin_role = role("rot_admin", "Adm-Pw-77x", "CREATEROLE");
    let r = admin
        .call("POST", "/resources", json!({ "name": name, "host": "127.0.0.1", "resource_type": "database", "ports": { "database": cluster().port }, "policy_id": "policy-low" }))
        .await
        .ok();
    let rid = r["id"].as_str().unwrap().to_string();
    let privileged = admin.account(&rid, &admin_role, "Adm-Pw-77x").await;
    admin
        .call(
            "PUT",
            &format!("/resources/{rid}/rotation"),
            json!({ "method": "postgres", "privileged_account_id": privileged, "db_name": "postgres", "db_tls": "prefer" }),
        )
        .await
        .ok();
    (rid, privileged)
}

/// The account's secret as the vault holds it (a reveal, audited).
pub(crate) async fn reveal(admin: &Client, account: &str) -> String {
    admin
        .call(
            "POST",
            &format!("/accounts/{account}/reveal"),
            json!({ "reason": "rotation test" }),
        )
        .await
        .ok()["secret"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until the job is finished (or its step contains `until`); returns it.
pub(crate) async fn wait_job(admin: &Client, id: &str, until: Option<&str>) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        last = admin.get(&format!("/rotation/jobs/{id}")).await.ok()["job"].clone();
        let step = last["step"].as_str().unwrap_or("");
        match until {
            Some(u) if step.contains(u) => return last,
            None if last["state"] == "succeeded" || last["state"] == "failed" => return last,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the rotation job did not get there: {last}");
}

#[tokio::test]
async fn a_postgres_role_is_rotated_and_a_refused_change_keeps_the_vault_as_it_was() {
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let (rid, _) = pg_resource(&admin, "pg-rot-1").await;
    let app_role = role("rot_app", "Old-App-Pw-1", "");
    let account = admin.account(&rid, &app_role, "Old-App-Pw-1").await;

    let r = admin
        .call("POST", &format!("/accounts/{account}/rotate"), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let job = wait_job(&admin, r.body["job"]["id"].as_str().unwrap(), None).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let new = reveal(&admin, &account).await;
    assert_ne!(new, "Old-App-Pw-1");
    assert!(
        cluster().login_works(&app_role, &new),
        "the new password does not log in"
    );
    assert!(
        !cluster().login_works(&app_role, "Old-App-Pw-1"),
        "the old password still logs in"
    );
    // The old secret is in the history; the rotation is audited.
    let history = admin
        .get(&format!("/accounts/{account}/history"))
        .await
        .ok();
    assert!(
        history.as_array().is_some_and(|h| !h.is_empty()),
        "{history}"
    );
    let audit = admin.get("/audit?action=account.rotate").await.ok();
    assert!(audit.to_string().contains(&app_role), "{audit}");
    // The verifier went to the server, not the password: it is not in the server's log.
    let log = std::fs::read_to_string(cluster().dir.join("postgres.log")).unwrap_or_default();
    assert!(
        !log.contains(&new),
        "the new password is in PostgreSQL's log"
    );

    // A change the server refuses (CREATEROLE cannot alter a superuser): the job fails with
    // the server's words, and the vault and the target keep the old password.
    let su = role("rot_su", "Su-Old-Pw-9", "SUPERUSER");
    let su_account = admin.account(&rid, &su, "Su-Old-Pw-9").await;
    let r = admin
        .call("POST", &format!("/accounts/{su_account}/rotate"), json!({}))
        .await;
    let job = wait_job(&admin, r.body["job"]["id"].as_str().unwrap(), None).await;
    assert_eq!(job["state"], "failed", "{job}");
    let message = job["message"].as_str().unwrap_or("");
    assert!(
        message.contains("refused") && message.contains("keeps the current secret"),
        "{message}"
    );
    assert_eq!(reveal(&admin, &su_account).await, "Su-Old-Pw-9");
    assert!(cluster().login_works(&su, "Su-Old-Pw-9"));
    let failed = admin.get("/audit?action=account.rotate").await.ok();
    assert!(
        failed.to_string().contains("failed"),
        "the failed rotation is not audited: {failed}"
    );
    // The job list shows both.
    let jobs = admin.get("/rotation/jobs").await.ok();
    assert_eq!(jobs["jobs"].as_array().map(|j| j.len()), Some(2), "{jobs}");
}

async fn admin_again(server: &Server) -> Client {
    let c = server.client();
    c.login_ok("admin", ADMIN_PASSWORD).await;
    c
}

#[tokio::test]
async fn a_gateway_killed_at_any_step_of_a_rotation_loses_no_password() {
    let mut site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let (rid, _) = pg_resource(&admin, "pg-rot-kill").await;
    drop(admin);
    let mut server = server;
    // At "stored" the target was never asked: the job runs again after the restart. At
    // "changed" and "verified" the new password already works: it is committed.
    for step in ["stored", "changed", "verified"] {
        let role_name = role("rot_kill", "Kill-Old-Pw-3", "");
        site.env = vec![("PORTCULLIS_TEST_PAUSE_AT".into(), step.into())];
        server.kill();
        server = site.start();
        let admin = admin_again(&server).await;
        let account = admin.account(&rid, &role_name, "Kill-Old-Pw-3").await;
        let r = admin
            .call("POST", &format!("/accounts/{account}/rotate"), json!({}))
            .await;
        let job_id = r.body["job"]["id"].as_str().unwrap().to_string();
        wait_job(&admin, &job_id, Some(&format!("paused after {step}"))).await;
        // SIGKILL: no shutdown, no cleanup.
        server.kill();
        site.env.clear();
        server = site.start();
        let admin = admin_again(&server).await;
        let job = wait_job(&admin, &job_id, None).await;
        assert_eq!(job["state"], "succeeded", "after a kill at {step}: {job}");
        let held = reveal(&admin, &account).await;
        assert!(
            cluster().login_works(&role_name, &held),
            "after a kill at {step} the vault's password does not log in"
        );
        assert_ne!(
            held, "Kill-Old-Pw-3",
            "after a kill at {step}: {}",
            job["message"]
        );
        assert!(!cluster().login_works(&role_name, "Kill-Old-Pw-3"));
        let pending = site.raw_sql("SELECT COUNT(*) FROM pending_secrets").await;
        assert_eq!(pending, vec!["0".to_string()], "after a kill at {step}");
    }
}

#[tokio::test]
async fn a_live_session_defers_the_rotation_of_its_account_until_it_ends() {
    use crate::live::start;
    use crate::sshd_server::sshd;
    // A database host that also has SSH: the machine user and the PostgreSQL role share a
    // name and a password, so the account has a live session (SSH) while it is rotated
    // (PostgreSQL).
    let site = Site::new(Backend::Sqlite);
    let (server, tls) = start(&site);
    let admin = server.admin().await;
    let user = sshd().user("Both-Old-Pw-5");
    let c = cluster();
    c.psql(
        "postgres",
        &format!(
            "CREATE ROLE {user} LOGIN PASSWORD 'Both-Old-Pw-5' IN ROLE {}",
            c.password_group()
        ),
    );
    let r = admin
        .call("POST", "/resources", json!({ "name": "pg-ssh-host", "host": "127.0.0.1", "resource_type": "database", "ports": { "database": c.port, "ssh": sshd().port }, "policy_id": "policy-low" }))
        .await
        .ok();
    let rid = r["id"].as_str().unwrap().to_string();
    admin
        .call(
            "PUT",
            &format!("/resources/{rid}/rotation"),
            // The default TLS mode checks the server's certificate: against the test CA.
            json!({ "method": "postgres", "db_ca": c.ca_pem() }),
        )
        .await
        .ok();
    let account = admin.account(&rid, &user, "Both-Old-Pw-5").await;
    let (ws, sid) = live_ssh_session(&server, &tls, &admin, &account).await;

    let r = admin
        .call("POST", &format!("/accounts/{account}/rotate"), json!({}))
        .await;
    let job_id = r.body["job"]["id"].as_str().unwrap().to_string();
    let job = wait_job(
        &admin,
        &job_id,
        Some("waiting for the account's live session"),
    )
    .await;
    assert_eq!(job["state"], "deferred", "{job}");
    // Still deferred a moment later, and nothing changed on the target.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let job = admin.get(&format!("/rotation/jobs/{job_id}")).await.ok()["job"].clone();
    assert_eq!(job["state"], "deferred", "{job}");
    assert!(c.login_works(&user, "Both-Old-Pw-5"));

    // The session ends: the rotation runs.
    admin
        .call(
            "POST",
            &format!("/sessions/{sid}/terminate"),
            json!({ "reason": "rotation test" }),
        )
        .await
        .ok();
    drop(ws);
    let job = wait_job(&admin, &job_id, None).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let new = reveal(&admin, &account).await;
    assert!(c.login_works(&user, &new));
    assert!(!c.login_works(&user, "Both-Old-Pw-5"));
}

#[tokio::test]
async fn a_mariadb_user_is_rotated_on_every_host_and_a_refused_change_keeps_the_vault() {
    use crate::mariadb_server::mariadb;
    let m = mariadb();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (admin_user, app_user) = (format!("rotadm{n}"), format!("rotapp{n}"));
    // The privileged account may change others' passwords (and read mysql.user); the app
    // user exists for two hosts, both of which must change.
    m.sql(&format!(
        "CREATE USER '{admin_user}'@'%' IDENTIFIED BY 'My-Admin-Pw-1'; GRANT CREATE USER, SELECT ON *.* TO '{admin_user}'@'%'; CREATE USER '{app_user}'@'%' IDENTIFIED BY 'My-App-Old-2'; CREATE USER '{app_user}'@'127.0.0.1' IDENTIFIED BY 'My-App-Old-2';"
    ));
    assert!(m.login_works(&app_user, "My-App-Old-2"));
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let r = admin
        .call("POST", "/resources", json!({ "name": "maria-1", "host": "127.0.0.1", "resource_type": "database", "ports": { "database": m.port }, "policy_id": "policy-low" }))
        .await
        .ok();
    let rid = r["id"].as_str().unwrap().to_string();
    let privileged = admin.account(&rid, &admin_user, "My-Admin-Pw-1").await;
    let set = admin
        .call("PUT", &format!("/resources/{rid}/rotation"), json!({ "method": "mysql", "privileged_account_id": privileged, "db_name": "", "db_tls": "prefer" }))
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let account = admin.account(&rid, &app_user, "My-App-Old-2").await;
    let r = admin
        .call("POST", &format!("/accounts/{account}/rotate"), json!({}))
        .await;
    let job = wait_job(&admin, r.body["job"]["id"].as_str().unwrap(), None).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let new = reveal(&admin, &account).await;
    assert!(
        m.login_works(&app_user, &new),
        "the new password does not log in"
    );
    assert!(
        !m.login_works(&app_user, "My-App-Old-2"),
        "the old one still does"
    );
    // Both host entries carry the new password's hash; the server never saw the plaintext.
    let hashes = m.sql(&format!(
        "SELECT DISTINCT authentication_string FROM mysql.user WHERE User = '{app_user}'"
    ));
    assert_eq!(hashes.lines().count(), 1, "{hashes}");
    let expected = m.sql(&format!("SELECT PASSWORD('{new}')"));
    assert_eq!(hashes, expected);

    // The account itself (no privileged account): SET PASSWORD with its current one.
    let self_user = format!("rotself{n}");
    m.sql(&format!(
        "CREATE USER '{self_user}'@'%' IDENTIFIED BY 'My-Self-Old-3';"
    ));
    let own = admin.account(&rid, &self_user, "My-Self-Old-3").await;
    admin
        .call(
            "PUT",
            &format!("/resources/{rid}/rotation"),
            json!({ "method": "mysql", "db_name": "", "db_tls": "prefer" }),
        )
        .await
        .ok();
    let r = admin
        .call("POST", &format!("/accounts/{own}/rotate"), json!({}))
        .await;
    let job = wait_job(&admin, r.body["job"]["id"].as_str().unwrap(), None).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let new = reveal(&admin, &own).await;
    assert!(m.login_works(&self_user, &new) && !m.login_works(&self_user, "My-Self-Old-3"));

    // A change the server refuses: without CREATE USER the privileged account may not alter
    // another user. The vault keeps the old password, which still logs in.
    let weak = format!("rotweak{n}");
    let victim = format!("rotvic{n}");
    m.sql(&format!("CREATE USER '{weak}'@'%' IDENTIFIED BY 'My-Weak-4'; GRANT SELECT ON mysql.* TO '{weak}'@'%'; CREATE USER '{victim}'@'%' IDENTIFIED BY 'My-Victim-5';"));
    let weak_acc = admin.account(&rid, &weak, "My-Weak-4").await;
    admin
        .call("PUT", &format!("/resources/{rid}/rotation"), json!({ "method": "mysql", "privileged_account_id": weak_acc, "db_name": "", "db_tls": "prefer" }))
        .await
        .ok();
    let v = admin.account(&rid, &victim, "My-Victim-5").await;
    let r = admin
        .call("POST", &format!("/accounts/{v}/rotate"), json!({}))
        .await;
    let job = wait_job(&admin, r.body["job"]["id"].as_str().unwrap(), None).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["message"]
            .as_str()
            .unwrap_or("")
            .contains("keeps the current secret"),
        "{job}"
    );
    assert_eq!(reveal(&admin, &v).await, "My-Victim-5");
    assert!(m.login_works(&victim, "My-Victim-5"));
}

/// Opens an SSH session of `account` as the administrator, through the WebSocket, and waits
/// until the gateway lists it as connected; the socket (the session lives while it is open)
/// and the session id.
pub(crate) async fn live_ssh_session(
    server: &Server,
    tls: &crate::live::Tls,
    admin: &Client,
    account: &str,
) -> (crate::live::Ws, String) {
    use crate::live::{cookie_of, open_ws};
    let ac = server.client();
    let cookie = cookie_of(&ac.login("admin", ADMIN_PASSWORD).await);
    let t = ac
        .call(
            "POST",
            "/sessions",
            json!({ "account_id": account, "protocol": "ssh", "cols": 80, "rows": 24 }),
        )
        .await
        .ok();
    let ws = open_ws(server, tls, &cookie, t["url"].as_str().unwrap_or_default()).await;
    for _ in 0..100 {
        let live = admin.get("/sessions").await.ok();
        if let Some(s) = live
            .as_array()
            .and_then(|l| l.iter().find(|s| s["state"] == "connected"))
        {
            return (ws, s["id"].as_str().unwrap_or_default().to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the SSH session did not connect");
}
