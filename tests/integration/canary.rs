//! Canary secrets: a known secret must never appear in the database files, the server log or
//! any HTTP response, except the response to the explicit reveal call.

use base64::Engine;
use serde_json::json;

use crate::harness::{Site, BACKENDS};

const CANARY: &str = "CANARY-q7Zx-Pw-4411!k";
const CANARY2: &str = "CANARY-second-Vv93-22!m";
const PASSPHRASE: &str = "CANARY-passphrase-8812";
const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nCANARYKEYMATERIALb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

fn forms(s: &str) -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        s.as_bytes().to_vec(),
        b64.encode(s).into_bytes(),
        hex::encode(s).into_bytes(),
    ]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn canary_secrets_never_leak() {
    for backend in BACKENDS {
        let site = Site::new(backend);
        let server = site.start();
        let admin = server.admin().await;
        let (user, uid) = server.user(&admin, "connector", "password_user").await;
        let r = admin
            .call(
                "POST",
                "/resources",
                json!({ "name": "canary-host", "host": "10.4.0.1", "policy_id": "policy-low" }),
            )
            .await
            .ok();
        let rid = r["id"].as_str().unwrap();
        let a = admin
            .call(
                "POST",
                &format!("/resources/{rid}/accounts"),
                json!({ "username": "root", "secret": CANARY }),
            )
            .await
            .ok();
        let aid = a["id"].as_str().unwrap();
        let k = admin.call("POST", &format!("/resources/{rid}/accounts"), json!({ "username": "deploy", "secret_kind": "ssh_key", "secret": KEY, "passphrase": PASSPHRASE })).await.ok();
        // Error paths that carry the secret in the request must not echo it back.
        let dup = admin
            .call(
                "POST",
                &format!("/resources/{rid}/accounts"),
                json!({ "username": "root", "secret": CANARY }),
            )
            .await;
        assert_eq!(dup.status, 409);
        // A secret typed into a field of the wrong type must not be quoted back by the parser.
        let typo = admin
            .call(
                "POST",
                &format!("/resources/{rid}/accounts"),
                json!({ "username": "typo", "generate": CANARY }),
            )
            .await;
        assert_eq!((typo.status, typo.error_field()), (400, Some("generate")));
        admin.call("POST", "/shares", json!({ "subject_kind": "user", "subject_id": uid, "object_kind": "account", "object_id": aid, "level": "connect" })).await.ok();
        // Everything a user or admin would browse.
        for path in [
            "/accounts",
            &format!("/accounts/{aid}"),
            &format!("/resources/{rid}/accounts"),
            "/resources",
            &format!("/accounts/{aid}/history"),
            "/audit?limit=1000",
            "/settings",
            "/users",
            "/openapi.json",
        ] {
            admin.get(path).await;
            user.get(path).await;
        }
        assert_eq!(
            user.call(
                "POST",
                &format!("/accounts/{aid}/reveal"),
                json!({ "reason": "connect user tries" })
            )
            .await
            .status,
            403
        );
        admin
            .call(
                "PUT",
                &format!("/accounts/{aid}/secret"),
                json!({ "secret": CANARY2 }),
            )
            .await
            .ok();
        admin.get(&format!("/accounts/{aid}/history")).await;
        // The audit log, including the rejected requests above, is browsable too.
        admin.get("/audit?limit=1000").await.ok();

        // The one allowed exit: reveal, by someone with View, with a reason.
        let revealer = server.client();
        revealer
            .login_ok("admin", crate::harness::ADMIN_PASSWORD)
            .await;
        let shown = revealer
            .call(
                "POST",
                &format!("/accounts/{aid}/reveal"),
                json!({ "reason": "canary test" }),
            )
            .await
            .ok();
        assert_eq!(shown["secret"], CANARY2);
        let key = revealer
            .call(
                "POST",
                &format!("/accounts/{}/reveal", k["id"].as_str().unwrap()),
                json!({ "reason": "canary test" }),
            )
            .await
            .ok();
        assert_eq!(key["passphrase"], PASSPHRASE);

        let everything = format!("{}\n{}", admin.transcript(), user.transcript());
        for secret in [CANARY, CANARY2, PASSPHRASE, "CANARYKEYMATERIAL"] {
            for f in forms(secret) {
                assert!(
                    !contains(everything.as_bytes(), &f),
                    "{backend:?}: {secret} appeared in an HTTP response"
                );
                assert!(
                    !contains(server.log().as_bytes(), &f),
                    "{backend:?}: {secret} appeared in the server log"
                );
                for file in site.storage_files() {
                    let bytes = std::fs::read(&file).unwrap_or_default();
                    assert!(
                        !contains(&bytes, &f),
                        "{backend:?}: {secret} found in {}",
                        file.display()
                    );
                }
            }
        }
    }
}
