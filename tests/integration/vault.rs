//! Vault behaviour through the API: share precedence, ciphertext binding, history, policies,
//! validation. Storage-sensitive tests run on both SQLite and PostgreSQL.

use serde_json::{json, Value};

use crate::harness::{Backend, Client, Site, BACKENDS};

async fn share(
    admin: &Client,
    subject_kind: &str,
    subject: &str,
    kind: &str,
    object: &str,
    level: &str,
) -> Value {
    admin.call("POST", "/shares", json!({ "subject_kind": subject_kind, "subject_id": subject, "object_kind": kind, "object_id": object, "level": level })).await.ok()
}

#[tokio::test]
async fn most_specific_share_wins_and_own_share_beats_group() {
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let (user, uid) = server.user(&admin, "carol", "password_user").await;
    let g = admin
        .call(
            "POST",
            "/user-groups",
            json!({ "name": "ops", "member_ids": [uid] }),
        )
        .await
        .ok();
    let gid = g["id"].as_str().unwrap();
    let rid = admin.resource("srv").await;
    let a1 = admin.account(&rid, "root", "Sup3r-Secret-Value!a").await;
    let a2 = admin.account(&rid, "deploy", "Sup3r-Secret-Value!b").await;
    let reveal = |a: String| {
        let user = user.clone();
        async move {
            user.call(
                "POST",
                &format!("/accounts/{a}/reveal"),
                json!({ "reason": "share test" }),
            )
            .await
            .status
        }
    };
    assert_eq!(
        user.get(&format!("/accounts/{a1}")).await.status,
        404,
        "no share: the account is invisible"
    );

    // Group gets Manage on a resource group holding the resource.
    let rg = admin
        .call(
            "POST",
            "/resource-groups",
            json!({ "name": "dc1", "resource_ids": [rid] }),
        )
        .await
        .ok();
    share(
        &admin,
        "group",
        gid,
        "resource_group",
        rg["id"].as_str().unwrap(),
        "manage",
    )
    .await;
    assert_eq!(reveal(a1.clone()).await, 200);
    // Resource-level share to the group (Connect) is more specific than the group share.
    share(&admin, "group", gid, "resource", &rid, "connect").await;
    assert_eq!(reveal(a1.clone()).await, 403);
    // The user's own resource share (View) beats the group's resource share (Connect).
    let own = share(&admin, "user", &uid, "resource", &rid, "view").await;
    assert_eq!(reveal(a1.clone()).await, 200);
    // An account-level share (Connect) beats everything less specific, even though it is lower.
    share(&admin, "group", gid, "account", &a1, "connect").await;
    assert_eq!(reveal(a1.clone()).await, 403);
    assert_eq!(
        reveal(a2.clone()).await,
        200,
        "the other account still follows the resource share"
    );
    let listed = user.get("/accounts").await.ok();
    let acc = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == a1.as_str())
        .unwrap()
        .clone();
    assert_eq!(acc["access"], "connect");
    assert!(acc.get("secret").is_none() && !listed.to_string().contains("Sup3r-Secret"));
    // Revoking the user's share: back to the group's resource share (Connect) for a2.
    admin
        .call(
            "DELETE",
            &format!("/shares/{}", own["id"].as_str().unwrap()),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(reveal(a2).await, 403);
    let denied = admin
        .get("/audit?action=account.reveal&outcome=denied")
        .await
        .ok();
    assert!(denied.as_array().unwrap().len() >= 3);
}

#[tokio::test]
async fn ciphertext_moved_to_another_row_does_not_decrypt() {
    for backend in BACKENDS {
        let site = Site::new(backend);
        let server = site.start();
        let admin = server.admin().await;
        let rid = admin.resource("bind").await;
        let a = admin.account(&rid, "a", "Value-For-Row-A1!x").await;
        let b = admin.account(&rid, "b", "Value-For-Row-B1!x").await;
        site.raw_sql(&format!("UPDATE accounts SET secret_enc = (SELECT secret_enc FROM accounts WHERE id = '{a}') WHERE id = '{b}'")).await;
        let r = admin
            .call(
                "POST",
                &format!("/accounts/{b}/reveal"),
                json!({ "reason": "tamper check" }),
            )
            .await;
        assert_eq!(
            r.status, 500,
            "{backend:?}: a moved ciphertext opened: {:?}",
            r.body
        );
        assert!(!r.body.to_string().contains("Value-For-Row"), "{backend:?}");
        let ok = admin
            .call(
                "POST",
                &format!("/accounts/{a}/reveal"),
                json!({ "reason": "still fine" }),
            )
            .await
            .ok();
        assert_eq!(ok["secret"], "Value-For-Row-A1!x");
        let failed = admin
            .get("/audit?action=account.reveal&outcome=failed")
            .await
            .ok();
        assert_eq!(
            failed.as_array().unwrap().len(),
            1,
            "{backend:?}: the failed reveal is audited"
        );
    }
}

#[tokio::test]
async fn secret_changes_keep_history_and_follow_the_policy() {
    for backend in BACKENDS {
        let site = Site::new(backend);
        let server = site.start();
        let admin = server.admin().await;
        let rid = admin.resource("hist").await; // Strong policy by default
        let a = admin.account(&rid, "app", "First-Password-123!x").await;
        let weak = admin
            .call(
                "PUT",
                &format!("/accounts/{a}/secret"),
                json!({ "secret": "short" }),
            )
            .await;
        assert_eq!((weak.status, weak.error_field()), (400, Some("secret")));
        assert!(
            weak.error_message().contains("Strong") && weak.error_message().contains("14"),
            "{}",
            weak.error_message()
        );
        admin
            .call(
                "PUT",
                &format!("/accounts/{a}/secret"),
                json!({ "secret": "Second-Password-123!x" }),
            )
            .await
            .ok();
        let reuse = admin
            .call(
                "PUT",
                &format!("/accounts/{a}/secret"),
                json!({ "secret": "First-Password-123!x" }),
            )
            .await;
        assert_eq!(
            (reuse.status, reuse.error_field()),
            (400, Some("secret")),
            "{backend:?}: {:?}",
            reuse.body
        );
        admin
            .call(
                "PUT",
                &format!("/accounts/{a}/secret"),
                json!({ "generate": true }),
            )
            .await
            .ok();
        let s = admin
            .call(
                "POST",
                &format!("/accounts/{a}/reveal"),
                json!({ "reason": "read generated" }),
            )
            .await
            .ok();
        let generated = s["secret"].as_str().unwrap();
        let strong = &portcullis::vault::policy::Policy::builtins()[2];
        assert!(strong.violations(generated).is_empty(), "{generated}");
        let h = admin.get(&format!("/accounts/{a}/history")).await.ok();
        assert_eq!(h.as_array().unwrap().len(), 2, "{backend:?}: {h}");
        assert_eq!(h[0]["changed_by"], "admin");
        assert!(!h.to_string().contains("Password-123"));
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_never_a_500() {
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let rid = admin.resource("dup").await;
    let cases: Vec<(&str, String, Value, u16, Option<&str>)> = vec![
        (
            "POST",
            "/resources".into(),
            json!({ "name": "dup", "host": "h1" }),
            409,
            Some("name"),
        ),
        (
            "POST",
            "/resources".into(),
            json!({ "name": "n", "host": "not a host" }),
            400,
            Some("host"),
        ),
        (
            "POST",
            "/resources".into(),
            json!({ "name": "n", "host": "h", "resource_type": "toaster" }),
            400,
            Some("resource_type"),
        ),
        (
            "POST",
            "/resources".into(),
            json!({ "name": "n", "host": "h", "ports": { "ssh": 70000 } }),
            400,
            Some("ports.ssh"),
        ),
        (
            "POST",
            "/resources".into(),
            json!({ "name": "n", "host": "h", "colour": "red" }),
            400,
            Some("colour"),
        ),
        (
            "POST",
            "/resources".into(),
            json!({ "name": 5, "host": "h" }),
            400,
            Some("name"),
        ),
        (
            "POST",
            format!("/resources/{rid}/accounts"),
            json!({ "username": "x", "secret_kind": "ssh_key", "secret": "not a key" }),
            400,
            Some("secret"),
        ),
        (
            "POST",
            format!("/resources/{rid}/accounts"),
            json!({ "username": "has space", "secret": "Whatever-Pass-1!x" }),
            400,
            Some("username"),
        ),
        (
            "POST",
            "/users".into(),
            json!({ "username": "-bad", "role": "password_user" }),
            400,
            Some("username"),
        ),
        (
            "POST",
            "/users".into(),
            json!({ "username": "ok", "role": "emperor" }),
            400,
            Some("role"),
        ),
        (
            "POST",
            "/password-policies".into(),
            json!({ "name": "p", "min_length": 10, "max_length": 5 }),
            400,
            Some("max_length"),
        ),
        (
            "POST",
            "/shares".into(),
            json!({ "subject_kind": "user", "subject_id": "x", "object_kind": "resource", "object_id": rid, "level": "godmode" }),
            400,
            Some("level"),
        ),
        (
            "GET",
            "/audit?from=yesterday".into(),
            json!(null),
            400,
            Some("from"),
        ),
    ];
    for (m, path, body, status, field) in cases {
        let r = admin.call(m, &path, body.clone()).await;
        assert_eq!(
            (r.status, r.error_field()),
            (status, field),
            "{m} {path} {body}: {:?}",
            r.body
        );
        assert!(!r.error_message().is_empty());
    }
    // Garbage bodies on every write route: always a 4xx.
    for route in portcullis::api::ROUTES
        .iter()
        .filter(|r| r.method != "GET" && !r.path.ends_with("/logout"))
    {
        let path = route.path.replace("{id}", &rid).replacen("/api/v1", "", 1);
        for junk in [
            json!("a string"),
            json!([1, 2]),
            json!({ "username": { "deep": [null] } }),
            json!(12),
        ] {
            let r = admin.call(route.method, &path, junk.clone()).await;
            assert!(
                r.status < 500,
                "{} {path} with {junk}: {} {:?}",
                route.method,
                r.status,
                r.body
            );
        }
    }
    // Each refusal is in the audit log, with the route, status and field (never the body).
    let rejected = admin
        .get("/audit?action=request.rejected&limit=1000")
        .await
        .ok();
    let rows = rejected.as_array().unwrap();
    assert!(
        rows.iter().any(|e| e["detail"]["field"] == "host"
            && e["detail"]["status"] == 400
            && e["object_name"] == "POST /api/v1/resources"
            && e["actor"] == "admin"),
        "{rejected}"
    );
    assert!(rows
        .iter()
        .any(|e| e["detail"]["status"] == 409 && e["detail"]["field"] == "name"));
    let raw = admin.raw("POST", "/resources", None, true).await;
    assert!(
        raw.status == 400 && raw.error_field() == Some("name"),
        "empty body: {:?}",
        raw.body
    );
}
