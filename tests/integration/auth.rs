//! Identity: cookies, CSRF, lockout, rate limit, idle timeout, TOTP, API tokens, role rules.

use serde_json::json;

use crate::harness::{Backend, Client, Site, ADMIN_PASSWORD, USER_PASSWORD};

pub(crate) fn base32_decode(s: &str) -> Vec<u8> {
    const A: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buf, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.chars() {
        buf = (buf << 5) | A.find(c).expect("base32") as u32;
        bits += 5;
        if bits >= 8 {
            out.push((buf >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

/// The code for the current 30 s step, plus `ahead` steps (the server accepts one step of skew).
pub(crate) fn code_now(seed: &[u8], ahead: u64) -> String {
    let seed = gateway::Secret::new(seed.to_vec());
    let now = portcullis::identity::totp::now_secs();
    format!(
        "{:06}",
        portcullis::identity::totp::code_at(&seed, now / 30 + ahead)
    )
}

#[tokio::test]
async fn session_cookie_flags_and_csrf() {
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let login = server.client().login("admin", ADMIN_PASSWORD).await;
    let cookie = login
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "cookie lacks {flag}: {cookie}");
    }
    // State-changing request without the CSRF header: refused and nothing created.
    let r = admin
        .raw(
            "POST",
            "/resources",
            Some(json!({ "name": "x", "host": "h" })),
            false,
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.error_message().contains("CSRF"));
    assert_eq!(
        admin.get("/resources").await.ok().as_array().unwrap().len(),
        0
    );
    // Security headers on pages and API.
    assert!(
        r.headers.get("content-security-policy").is_some()
            && r.headers.get("strict-transport-security").is_some()
    );
    assert_eq!(
        admin
            .get("/resources")
            .await
            .headers
            .get("cache-control")
            .unwrap(),
        "no-store"
    );
}

#[tokio::test]
async fn lockout_after_failures_and_admin_unlock() {
    let mut site = Site::new(Backend::Sqlite);
    site.env
        .push(("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "3".into()));
    let server = site.start();
    let admin = server.admin().await;
    let (_, _id) = server.user(&admin, "eve", "password_user").await;
    let c = server.client();
    for _ in 0..3 {
        assert_eq!(c.login("eve", "wrong password here").await.status, 401);
    }
    // Locked: the right password gets the reply a wrong one gets (the audit says why).
    let r = c.login("eve", USER_PASSWORD).await;
    assert_eq!(
        (r.status, r.error_message()),
        (401, "Wrong user name or password."),
        "locked user logged in: {:?}",
        r.body
    );
    let denied = admin
        .get("/audit?action=auth.login&outcome=denied")
        .await
        .ok();
    assert!(denied.to_string().contains("temporary lockout"), "{denied}");
    let users = admin.get("/users").await.ok();
    let eve = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "eve")
        .unwrap()
        .clone();
    assert!(eve["locked_until"].is_string());
    admin
        .call(
            "POST",
            &format!("/users/{}/unlock", eve["id"].as_str().unwrap()),
            json!({}),
        )
        .await
        .ok();
    c.login_ok("eve", USER_PASSWORD).await;
    let audit = admin
        .get("/audit?action=auth.login&outcome=failed")
        .await
        .ok();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"] == "eve")
            .count()
            >= 3,
        "{audit}"
    );
    // Unknown users fail the same way, and are audited too.
    let r = c.login("nobody", "whatever password").await;
    assert_eq!(
        (r.status, r.error_message()),
        (401, "Wrong user name or password.")
    );
}

#[tokio::test]
async fn login_rate_limit_per_address() {
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let c = server.client();
    let mut limited = false;
    for _ in 0..40 {
        let r = c.login("ghost", "not a password").await;
        if r.status == 429 {
            limited = true;
            break;
        }
        assert_eq!(r.status, 401);
    }
    assert!(limited, "40 rapid login attempts were never throttled");
}

#[tokio::test]
async fn idle_sessions_expire() {
    let mut site = Site::new(Backend::Sqlite);
    site.env
        .push(("PORTCULLIS_SESSION_IDLE_TIMEOUT".into(), "2s".into()));
    let server = site.start();
    let admin = server.admin().await;
    admin.get("/resources").await.ok();
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    let r = admin.get("/resources").await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    assert!(r.error_message().contains("expired") || r.error_message().contains("not logged in"));
}

#[tokio::test]
async fn totp_enrolment_login_and_recovery_codes() {
    let site = Site::new(Backend::Postgres);
    let server = site.start();
    let admin = server.admin().await;
    let (alice, _) = server.user(&admin, "alice", "password_user").await;
    let e = alice
        .call("POST", "/auth/totp/enroll", json!({}))
        .await
        .ok();
    assert!(e["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/Portcullis:alice?secret="));
    let seed = base32_decode(e["secret_base32"].as_str().unwrap());
    let bad = alice
        .call("POST", "/auth/totp/confirm", json!({ "code": "000000" }))
        .await;
    assert_eq!((bad.status, bad.error_field()), (400, Some("code")));
    let confirmed = code_now(&seed, 0);
    let codes = alice
        .call("POST", "/auth/totp/confirm", json!({ "code": confirmed }))
        .await
        .ok();
    let codes: Vec<String> = codes["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);

    // Password alone is not enough any more.
    let c = server.client();
    let me = c.login_ok("alice", USER_PASSWORD).await;
    assert_eq!(me["mfa_pending"], true);
    assert_eq!(c.get("/resources").await.status, 401);
    let wrong = c
        .call("POST", "/auth/totp", json!({ "code": "123456" }))
        .await;
    assert_eq!((wrong.status, wrong.error_field()), (400, Some("code")));
    // The code used to confirm enrolment cannot be used again (no replay within its window);
    // the next step's code is accepted.
    let replay = c
        .call("POST", "/auth/totp", json!({ "code": confirmed }))
        .await;
    assert_eq!(
        (replay.status, replay.error_field()),
        (400, Some("code")),
        "a TOTP code was accepted twice"
    );
    let next = code_now(&seed, 1);
    c.call("POST", "/auth/totp", json!({ "code": next }))
        .await
        .ok();
    c.get("/resources").await.ok();
    let again = server.client();
    again.login_ok("alice", USER_PASSWORD).await;
    assert_eq!(
        again
            .call("POST", "/auth/totp", json!({ "code": next }))
            .await
            .status,
        400,
        "replayed code accepted"
    );

    // A recovery code works exactly once.
    for (i, expect_ok) in [(0, true), (1, false)] {
        let c = server.client();
        c.login_ok("alice", USER_PASSWORD).await;
        let r = c
            .call("POST", "/auth/totp", json!({ "code": codes[0] }))
            .await;
        assert_eq!(r.status == 200, expect_ok, "attempt {i}: {:?}", r.body);
    }
    let audit = admin.get("/audit?action=auth.mfa").await.ok();
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["detail"]["method"] == "recovery code"));
}

#[tokio::test]
async fn api_tokens_authenticate_and_can_be_revoked() {
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let t = admin
        .call(
            "POST",
            "/tokens",
            json!({ "name": "ci", "expires_in_days": 30 }),
        )
        .await
        .ok();
    let token = t["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("pct_"));
    let listed = admin.get("/tokens").await.ok();
    assert!(
        !listed.to_string().contains(&token),
        "the token is shown only once"
    );
    let bot = admin.with_token(&token);
    bot.call(
        "POST",
        "/resources",
        json!({ "name": "from-token", "host": "10.9.9.9" }),
    )
    .await
    .ok();
    // Tokens cannot mint tokens.
    assert_eq!(
        bot.call("POST", "/tokens", json!({ "name": "more" }))
            .await
            .status,
        403
    );
    let bad = Client::new(&server.url).with_token("pct_not-a-real-token");
    assert_eq!(bad.get("/resources").await.status, 401);
    admin
        .call(
            "DELETE",
            &format!("/tokens/{}", t["id"].as_str().unwrap()),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(bot.get("/resources").await.status, 401);
    // An expired token is refused.
    let t2 = admin
        .call(
            "POST",
            "/tokens",
            json!({ "name": "short-lived", "expires_in_days": 1 }),
        )
        .await
        .ok();
    let short = admin.with_token(t2["token"].as_str().unwrap());
    short.get("/resources").await.ok();
    site.raw_sql(&format!(
        "UPDATE api_tokens SET expires_at = 1 WHERE id = '{}'",
        t2["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(
        short.get("/resources").await.status,
        401,
        "an expired token still works"
    );
}

#[tokio::test]
async fn nobody_changes_their_own_role_or_deletes_themselves() {
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let root = server.admin().await; // super administrator
    let me = root.get("/auth/me").await.ok();
    let root_id = me["user"]["id"].as_str().unwrap().to_string();
    let r = root
        .call(
            "PATCH",
            &format!("/users/{root_id}"),
            json!({ "role": "password_user" }),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        root.call("DELETE", &format!("/users/{root_id}"), json!({}))
            .await
            .status,
        403
    );
    let r = root
        .call(
            "PATCH",
            &format!("/users/{root_id}"),
            json!({ "super_admin": false }),
        )
        .await;
    assert_eq!(r.status, 403);

    // A plain administrator cannot grant the super scope, to others or itself.
    let (admin2, admin2_id) = server.user(&root, "admin2", "administrator").await;
    let (_, u_id) = server.user(&root, "u1", "password_user").await;
    assert_eq!(
        admin2
            .call(
                "PATCH",
                &format!("/users/{admin2_id}"),
                json!({ "super_admin": true })
            )
            .await
            .status,
        403
    );
    assert_eq!(
        admin2
            .call(
                "POST",
                "/users",
                json!({ "username": "x", "role": "administrator", "super_admin": true })
            )
            .await
            .status,
        403
    );
    let r = admin2
        .call(
            "PATCH",
            &format!("/users/{u_id}"),
            json!({ "role": "administrator", "super_admin": true }),
        )
        .await;
    assert_eq!(r.status, 403);
    // ...nor touch a super administrator.
    assert_eq!(
        admin2
            .call("DELETE", &format!("/users/{root_id}"), json!({}))
            .await
            .status,
        403
    );
    // Another super administrator can grant it.
    root.call(
        "PATCH",
        &format!("/users/{admin2_id}"),
        json!({ "super_admin": true }),
    )
    .await
    .ok();
    // A role change ends the user's logins: they log in again with the new rights.
    assert_eq!(admin2.get("/auth/me").await.status, 401);
    let admin2 = server.client();
    admin2.login_ok("admin2", USER_PASSWORD).await;
    let me2 = admin2.get("/auth/me").await.ok();
    assert_eq!(me2["user"]["super_admin"], true);
    let audit = root.get("/audit?action=user.role.change").await.ok();
    assert!(!audit.as_array().unwrap().is_empty());
    let denied = root.get("/audit?outcome=denied").await.ok();
    assert!(
        denied.as_array().unwrap().len() >= 4,
        "refusals are audited: {denied}"
    );
}

#[tokio::test]
async fn locking_a_user_ends_their_web_sessions() {
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let admin = server.admin().await;
    let (bob, bob_id) = server.user(&admin, "bob", "password_user").await;
    bob.get("/accounts").await.ok();
    admin
        .call(
            "PATCH",
            &format!("/users/{bob_id}"),
            json!({ "disabled": true }),
        )
        .await
        .ok();
    assert_eq!(bob.get("/accounts").await.status, 401);
    let r = server.client().login("bob", USER_PASSWORD).await;
    assert_eq!(
        (r.status, r.error_message()),
        (401, "Wrong user name or password.")
    );
}
