//! Authorization matrix: every API route x every role (and the super-administrator scope),
//! with the expected outcome written down as a table. Objects are created fresh by the super
//! administrator for every call; resources and accounts are shared with every other test
//! user at the Connect level, so the table also shows what Connect does and does not allow.
//!
//! Columns: super admin, administrator, password administrator, password auditor, password
//! user. `y` = succeeds (2xx); `f` = forbidden (403: the caller's role or share level is not
//! enough, and the answer says which); `x` = not found (404: the object does not exist, or is
//! not shared with the caller, whose existence is then not confirmed);
//! `r` = passes authorization but the request needs out-of-band data (a TOTP code, the current
//! password), so the answer is a 400 naming what is missing; `c` = passes authorization, then
//! the object is found unusable (the fixture recording has no file): a 409 saying so.
//! Anonymous callers get 401 on everything but the public routes.

use serde_json::{json, Value};

use crate::harness::{Backend, Client, Server, Site, ADMIN_PASSWORD, USER_PASSWORD};

#[derive(Clone, Copy, PartialEq)]
enum Fx {
    None,
    Resource,
    Account,
    RGroup,
    User,
    UGroup,
    Policy,
    Share,
    Token,
    /// A recording of a session of the password user (a row without a file).
    Recording,
    /// A resource type (`linux`), for per-type settings.
    ResourceType,
    /// A landing server on a fresh SSH resource; `account` is its login account.
    Landing,
}

#[derive(Default, Clone)]
struct Ids {
    id: String,
    user: String,
    resource: String,
    account: String,
    n: u32,
}

type BodyFn = fn(&Ids) -> Value;

struct Row {
    method: &'static str,
    path: &'static str,
    query: &'static str,
    fx: Fx,
    body: BodyFn,
    expect: &'static str,
}

fn none(_: &Ids) -> Value {
    json!({})
}

const fn row(
    method: &'static str,
    path: &'static str,
    fx: Fx,
    body: BodyFn,
    expect: &'static str,
) -> Row {
    Row {
        method,
        path,
        query: "",
        fx,
        body,
        expect,
    }
}

const TABLE: &[Row] = &[
    //                                                                                         S A P Au U
    row("GET", "/api/v1/health", Fx::None, none, "yyyyy"),
    row("GET", "/api/v1/openapi.json", Fx::None, none, "yyyyy"),
    row("POST", "/api/v1/auth/login", Fx::None, none, "yyyyy"),
    row("POST", "/api/v1/auth/logout", Fx::None, none, "yyyyy"),
    row("GET", "/api/v1/auth/me", Fx::None, none, "yyyyy"),
    row(
        "POST",
        "/api/v1/auth/password",
        Fx::None,
        |_| json!({ "current_password": "not it", "new_password": "whatever long enough" }),
        "rrrrr",
    ),
    row(
        "POST",
        "/api/v1/auth/totp",
        Fx::None,
        |_| json!({ "code": "000000" }),
        "rrrrr",
    ),
    row("POST", "/api/v1/auth/totp/enroll", Fx::None, none, "yyyyy"),
    row(
        "POST",
        "/api/v1/auth/totp/confirm",
        Fx::None,
        |_| json!({ "code": "000000" }),
        "rrrrr",
    ),
    row(
        "POST",
        "/api/v1/auth/totp/disable",
        Fx::None,
        |_| json!({ "password": "not it" }),
        "rrrrr",
    ),
    row("GET", "/api/v1/tokens", Fx::None, none, "yyyyy"),
    row(
        "POST",
        "/api/v1/tokens",
        Fx::None,
        |_| json!({ "name": "matrix" }),
        "yyyyy",
    ),
    row("DELETE", "/api/v1/tokens/{id}", Fx::Token, none, "yyyyy"),
    row("GET", "/api/v1/users", Fx::None, none, "yyyyy"),
    row(
        "POST",
        "/api/v1/users",
        Fx::None,
        |i| json!({ "username": format!("new{}", i.n), "role": "password_user" }),
        "yyfff",
    ),
    row("GET", "/api/v1/users/{id}", Fx::User, none, "yyfff"),
    row(
        "PATCH",
        "/api/v1/users/{id}",
        Fx::User,
        |_| json!({ "full_name": "Renamed" }),
        "yyfff",
    ),
    row("DELETE", "/api/v1/users/{id}", Fx::User, none, "yyfff"),
    row("POST", "/api/v1/users/{id}/unlock", Fx::User, none, "yyfff"),
    row(
        "POST",
        "/api/v1/users/{id}/reset-password",
        Fx::User,
        none,
        "yyfff",
    ),
    row(
        "POST",
        "/api/v1/users/{id}/reset-mfa",
        Fx::User,
        none,
        "yyfff",
    ),
    row("GET", "/api/v1/user-groups", Fx::None, none, "yyyyy"),
    row(
        "POST",
        "/api/v1/user-groups",
        Fx::None,
        |i| json!({ "name": format!("ug{}", i.n) }),
        "yyfff",
    ),
    // A Password User sees the groups they are in (the fixture's has no members).
    row("GET", "/api/v1/user-groups/{id}", Fx::UGroup, none, "yyyyx"),
    row(
        "PATCH",
        "/api/v1/user-groups/{id}",
        Fx::UGroup,
        |_| json!({ "description": "changed" }),
        "yyfff",
    ),
    row(
        "DELETE",
        "/api/v1/user-groups/{id}",
        Fx::UGroup,
        none,
        "yyfff",
    ),
    row("GET", "/api/v1/resources", Fx::None, none, "yyyyy"),
    row(
        "POST",
        "/api/v1/resources",
        Fx::None,
        |i| json!({ "name": format!("res{}", i.n), "host": "10.6.0.1" }),
        "yyyff",
    ),
    row("GET", "/api/v1/resources/{id}", Fx::Resource, none, "yyyyy"),
    row(
        "PATCH",
        "/api/v1/resources/{id}",
        Fx::Resource,
        |_| json!({ "description": "changed" }),
        "yffff",
    ),
    row(
        "DELETE",
        "/api/v1/resources/{id}",
        Fx::Resource,
        none,
        "yffff",
    ),
    row(
        "GET",
        "/api/v1/resources/{id}/accounts",
        Fx::Resource,
        none,
        "yyyyy",
    ),
    row(
        "POST",
        "/api/v1/resources/{id}/accounts",
        Fx::Resource,
        |i| json!({ "username": format!("acc{}", i.n), "generate": true }),
        "yffff",
    ),
    row("GET", "/api/v1/resource-groups", Fx::None, none, "yyyyy"),
    row(
        "POST",
        "/api/v1/resource-groups",
        Fx::None,
        |i| json!({ "name": format!("rg{}", i.n) }),
        "yyyff",
    ),
    row(
        "GET",
        "/api/v1/resource-groups/{id}",
        Fx::RGroup,
        none,
        "yxxxx",
    ),
    row(
        "PATCH",
        "/api/v1/resource-groups/{id}",
        Fx::RGroup,
        |_| json!({ "description": "changed" }),
        "yxxxx",
    ),
    row(
        "DELETE",
        "/api/v1/resource-groups/{id}",
        Fx::RGroup,
        none,
        "yxxxx",
    ),
    row("GET", "/api/v1/accounts", Fx::None, none, "yyyyy"),
    row("GET", "/api/v1/accounts/{id}", Fx::Account, none, "yyyyy"),
    row(
        "PATCH",
        "/api/v1/accounts/{id}",
        Fx::Account,
        |_| json!({ "notes": "changed" }),
        "yffff",
    ),
    row(
        "DELETE",
        "/api/v1/accounts/{id}",
        Fx::Account,
        none,
        "yffff",
    ),
    row(
        "POST",
        "/api/v1/accounts/{id}/reveal",
        Fx::Account,
        |_| json!({ "reason": "matrix test" }),
        "yffff",
    ),
    row(
        "PUT",
        "/api/v1/accounts/{id}/secret",
        Fx::Account,
        |_| json!({ "generate": true }),
        "yffff",
    ),
    row(
        "GET",
        "/api/v1/accounts/{id}/history",
        Fx::Account,
        none,
        "yffff",
    ),
    Row {
        method: "GET",
        path: "/api/v1/shares",
        query: "?object_kind=resource&object_id={resource}",
        fx: Fx::Resource,
        body: none,
        expect: "yffff",
    },
    row(
        "POST",
        "/api/v1/shares",
        Fx::Resource,
        |i| json!({ "subject_kind": "user", "subject_id": i.user, "object_kind": "resource", "object_id": i.resource, "level": "view" }),
        "yffff",
    ),
    row("DELETE", "/api/v1/shares/{id}", Fx::Share, none, "yffff"),
    row("GET", "/api/v1/password-policies", Fx::None, none, "yyyyy"),
    row(
        "POST",
        "/api/v1/password-policies",
        Fx::None,
        |i| json!({ "name": format!("pol{}", i.n), "min_length": 8, "max_length": 20 }),
        "yyyff",
    ),
    row(
        "PATCH",
        "/api/v1/password-policies/{id}",
        Fx::Policy,
        |_| json!({ "min_length": 10 }),
        "yyyff",
    ),
    row(
        "DELETE",
        "/api/v1/password-policies/{id}",
        Fx::Policy,
        none,
        "yyyff",
    ),
    row(
        "POST",
        "/api/v1/password-policies/{id}/generate",
        Fx::Policy,
        none,
        "yyyyy",
    ),
    row("GET", "/api/v1/audit", Fx::None, none, "yyfyf"),
    row("GET", "/api/v1/audit/verify", Fx::None, none, "yyfyf"),
    row("GET", "/api/v1/settings", Fx::None, none, "yyfff"),
    row("GET", "/api/v1/sessions", Fx::None, none, "yyyyy"),
    // A launch ticket needs Connect on the account: every test user has it on the fixture.
    row(
        "POST",
        "/api/v1/sessions",
        Fx::Account,
        |i| json!({ "account_id": i.id }),
        "yyyyy",
    ),
    // Nobody can attach to a session that is not their own (here: none exists).
    row(
        "POST",
        "/api/v1/sessions/{id}/attach",
        Fx::None,
        none,
        "xxxxx",
    ),
    // Watching and terminating: administrators pass the check and then find no such session
    // (404); everyone else is refused (403). Both paths are exercised with a real session in
    // live::an_admin_watches_read_only_and_terminates_with_a_reason_everyone_sees.
    row(
        "POST",
        "/api/v1/sessions/{id}/watch",
        Fx::None,
        none,
        "xxfff",
    ),
    row(
        "POST",
        "/api/v1/sessions/{id}/join",
        Fx::None,
        none,
        "xxfff",
    ),
    row(
        "POST",
        "/api/v1/sessions/{id}/control",
        Fx::None,
        |_| json!({ "shared": true }),
        "xxxxx",
    ),
    row(
        "POST",
        "/api/v1/sessions/{id}/terminate",
        Fx::None,
        |_| json!({ "reason": "matrix" }),
        "xxfff",
    ),
    row(
        "GET",
        "/api/v1/resources/{id}/session-limits",
        Fx::Resource,
        none,
        "yyyyy",
    ),
    row(
        "PUT",
        "/api/v1/resources/{id}/session-limits",
        Fx::Resource,
        |_| json!({ "idle_limit": "30m", "max_duration": "default" }),
        "yyfff",
    ),
    // Landing servers: those who configure or audit paths see them all, a Password User those
    // on the paths of what they can see; administrators configure them.
    row("GET", "/api/v1/landing-servers", Fx::None, none, "yyyyy"),
    row(
        "POST",
        "/api/v1/landing-servers",
        Fx::Landing,
        |ids| json!({ "name": format!("new{}", ids.n), "primary_resource_id": ids.resource, "account_id": ids.account }),
        "yyfff",
    ),
    row(
        "GET",
        "/api/v1/landing-servers/{id}",
        Fx::Landing,
        none,
        // A Password User sees the landing servers on the paths of resources they can see.
        "yyyyx",
    ),
    row(
        "PATCH",
        "/api/v1/landing-servers/{id}",
        Fx::Landing,
        |_| json!({ "notes": "matrix" }),
        "yyfff",
    ),
    row(
        "DELETE",
        "/api/v1/landing-servers/{id}",
        Fx::Landing,
        none,
        "yyfff",
    ),
    // Choosing how a resource is reached needs Manage on it (or the super scope): the
    // administrator holds only Connect on the fixture resource.
    row(
        "PUT",
        "/api/v1/resources/{id}/landing-server",
        Fx::Resource,
        |_| json!({ "landing_server_id": null }),
        "yffff",
    ),
    row(
        "GET",
        "/api/v1/resources/{id}/path",
        Fx::Resource,
        none,
        "yyyyy",
    ),
    // Telnet logon scripts: everyone reads (no secrets in them), administrators change.
    row("GET", "/api/v1/logon-scripts", Fx::None, none, "yyyyy"),
    row(
        "PUT",
        "/api/v1/logon-scripts/{id}",
        Fx::ResourceType,
        |_| json!({ "builtin": "unix" }),
        "yyfff",
    ),
    row(
        "GET",
        "/api/v1/resources/{id}/telnet",
        Fx::Resource,
        none,
        "yyyyy",
    ),
    row(
        "PUT",
        "/api/v1/resources/{id}/telnet",
        Fx::Resource,
        |_| json!({ "require_landing": true }),
        "yyfff",
    ),
    row(
        "GET",
        "/api/v1/resources/{id}/rdp",
        Fx::Resource,
        none,
        "yyyyy",
    ),
    row(
        "PUT",
        "/api/v1/resources/{id}/rdp",
        Fx::Resource,
        |_| json!({ "security": "tls" }),
        "yyfff",
    ),
    row(
        "GET",
        "/api/v1/resources/{id}/rotation",
        Fx::Resource,
        none,
        "yyyyy",
    ),
    row(
        "PUT",
        "/api/v1/resources/{id}/rotation",
        Fx::Resource,
        |_| json!({ "method": "postgres" }),
        "yyfff",
    ),
    row(
        "POST",
        "/api/v1/accounts/{id}/rotate",
        Fx::Account,
        none,
        "yffff",
    ),
    row(
        "GET",
        "/api/v1/accounts/{id}/pending",
        Fx::Account,
        none,
        "yffff",
    ),
    // Only a super administrator decides a pending secret; the fixture has none (409).
    row(
        "POST",
        "/api/v1/accounts/{id}/pending/promote",
        Fx::Account,
        |_| json!({ "reason": "checked by hand" }),
        "cffff",
    ),
    row(
        "POST",
        "/api/v1/accounts/{id}/pending/discard",
        Fx::Account,
        |_| json!({ "reason": "checked by hand" }),
        "cffff",
    ),
    // The vault's data keys: administrators and auditors see them (ids and dates only); a
    // rotation is for a super administrator.
    row("GET", "/api/v1/vault/data-keys", Fx::None, none, "yyfyf"),
    row(
        "POST",
        "/api/v1/vault/data-keys/rotate",
        Fx::None,
        none,
        "yffff",
    ),
    row("GET", "/api/v1/rotation/jobs", Fx::None, none, "yyyyf"),
    // No such job: those who may see jobs get a 404, the others a 403 (both refusals).
    row("GET", "/api/v1/rotation/jobs/{id}", Fx::None, none, "xxxxf"),
    row(
        "POST",
        "/api/v1/accounts/{id}/verify",
        Fx::Account,
        none,
        "yffff",
    ),
    row(
        "GET",
        "/api/v1/accounts/{id}/rotation",
        Fx::Account,
        none,
        "yyyyy",
    ),
    row(
        "PUT",
        "/api/v1/accounts/{id}/rotation",
        Fx::Account,
        |_| json!({ "after_session": true }),
        "yffff",
    ),
    row(
        "POST",
        "/api/v1/resources/{id}/rotation/run",
        Fx::Resource,
        |_| json!({ "kind": "verify" }),
        "yyfff",
    ),
    row("GET", "/api/v1/rotation/runs", Fx::None, none, "yyyyf"),
    row("GET", "/api/v1/rotation/runs/{id}", Fx::None, none, "xxxxf"),
    row("GET", "/api/v1/rotation/schedules", Fx::None, none, "yyyyf"),
    row(
        "POST",
        "/api/v1/rotation/schedules",
        Fx::Resource,
        |i| json!({ "target_kind": "resource", "target_id": i.id, "interval_days": 7, "time_of_day": "03:00", "notice_minutes": 60 }),
        "yyfff",
    ),
    row(
        "DELETE",
        "/api/v1/rotation/schedules/{id}",
        Fx::None,
        none,
        "xxfff",
    ),
    // Without a ticket and an upgrade request the socket is refused after authentication.
    row("GET", "/api/v1/sessions/ws", Fx::None, none, "rrrrr"),
    row("GET", "/api/v1/host-keys", Fx::None, none, "yyfff"),
    row(
        "POST",
        "/api/v1/host-keys/{id}/approve",
        Fx::Resource,
        |_| json!({ "fingerprint": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s" }),
        "yyfff",
    ),
    row(
        "DELETE",
        "/api/v1/host-keys/{id}",
        Fx::Resource,
        none,
        "yyfff",
    ),
    // Every test user has Connect on the fixture resource, so all may read its mode.
    row(
        "GET",
        "/api/v1/resources/{id}/recording",
        Fx::Resource,
        none,
        "yyyyy",
    ),
    row(
        "PUT",
        "/api/v1/resources/{id}/recording",
        Fx::Resource,
        |_| json!({ "mode": "always" }),
        "yyfff",
    ),
    // Everyone may list: administrators and auditors see all, others their own.
    row("GET", "/api/v1/recordings", Fx::Recording, none, "yyyyy"),
    row(
        "GET",
        "/api/v1/recordings/signing-key",
        Fx::None,
        none,
        "yyyyy",
    ),
    // Searching needs words: without `q` every role gets the 400 naming it.
    row("GET", "/api/v1/recordings/search", Fx::None, none, "rrrrr"),
    // The fixture belongs to the password user; the password administrator is not an
    // auditor and gets a 404 (ids of others' recordings are not confirmed).
    row(
        "GET",
        "/api/v1/recordings/{id}",
        Fx::Recording,
        none,
        "yyxyy",
    ),
    row(
        "GET",
        "/api/v1/recordings/{id}/events",
        Fx::Recording,
        none,
        "ccxcc",
    ),
    row(
        "GET",
        "/api/v1/recordings/{id}/cast",
        Fx::Recording,
        none,
        "ccxcc",
    ),
    // Hidden input is opened like a reveal: a super administrator only (the fixture keeps
    // none: 409).
    row(
        "POST",
        "/api/v1/recordings/{id}/hidden-input",
        Fx::Recording,
        |_| json!({ "reason": "matrix" }),
        "cffff",
    ),
    row(
        "GET",
        "/api/v1/recordings/{id}/bundle",
        Fx::Recording,
        none,
        "ccxcc",
    ),
];

const PUBLIC: &[&str] = &[
    "/api/v1/health",
    "/api/v1/openapi.json",
    "/api/v1/auth/login",
];

struct Caller {
    name: &'static str,
    client: Client,
    password: &'static str,
}

struct World {
    site: &'static Site,
    server: Server,
    root: Client,
    callers: Vec<Caller>,
    user_ids: Vec<String>,
    n: u32,
}

impl World {
    fn next(&mut self) -> u32 {
        self.n += 1;
        self.n
    }

    async fn fixture(&mut self, fx: Fx, caller: &Client) -> Ids {
        let n = self.next();
        let mut ids = Ids {
            n,
            ..Default::default()
        };
        let root = self.root.clone();
        let new_user = |root: Client, n: u32| async move {
            root.call(
                "POST",
                "/users",
                json!({ "username": format!("fx{n}"), "role": "password_user" }),
            )
            .await
            .ok()["user"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        };
        if fx == Fx::ResourceType {
            ids.id = "linux".into();
        }
        if fx == Fx::Landing {
            let r = root
                .call(
                    "POST",
                    "/resources",
                    json!({ "name": format!("fxj{n}"), "host": "10.7.0.2", "ports": { "ssh": 22 } }),
                )
                .await
                .ok();
            ids.resource = r["id"].as_str().unwrap().to_string();
            let a = root
                .call(
                    "POST",
                    &format!("/resources/{}/accounts", ids.resource),
                    json!({ "username": "ops", "generate": true }),
                )
                .await
                .ok();
            ids.account = a["id"].as_str().unwrap().to_string();
            let l = root
                .call(
                    "POST",
                    "/landing-servers",
                    json!({ "name": format!("fxl{n}"), "primary_resource_id": ids.resource, "account_id": ids.account }),
                )
                .await
                .ok();
            ids.id = l["id"].as_str().unwrap().to_string();
        }
        if matches!(fx, Fx::Resource | Fx::Account | Fx::Share) {
            let r = root
                .call(
                    "POST",
                    "/resources",
                    json!({ "name": format!("fxr{n}"), "host": "10.7.0.1" }),
                )
                .await
                .ok();
            ids.resource = r["id"].as_str().unwrap().to_string();
            for uid in &self.user_ids {
                root.call("POST", "/shares", json!({ "subject_kind": "user", "subject_id": uid, "object_kind": "resource", "object_id": ids.resource, "level": "connect" })).await.ok();
            }
            ids.id = ids.resource.clone();
            ids.user = new_user(root.clone(), n).await;
        }
        match fx {
            Fx::Account => {
                let a = root
                    .call(
                        "POST",
                        &format!("/resources/{}/accounts", ids.resource),
                        json!({ "username": "svc", "generate": true }),
                    )
                    .await
                    .ok();
                ids.id = a["id"].as_str().unwrap().to_string();
                for uid in &self.user_ids {
                    root.call("POST", "/shares", json!({ "subject_kind": "user", "subject_id": uid, "object_kind": "account", "object_id": ids.id, "level": "connect" })).await.ok();
                }
            }
            Fx::Share => {
                let s = root.call("POST", "/shares", json!({ "subject_kind": "user", "subject_id": ids.user, "object_kind": "resource", "object_id": ids.resource, "level": "view" })).await.ok();
                ids.id = s["id"].as_str().unwrap().to_string();
            }
            Fx::RGroup => {
                ids.id = root
                    .call(
                        "POST",
                        "/resource-groups",
                        json!({ "name": format!("fxg{n}") }),
                    )
                    .await
                    .ok()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
            Fx::User => ids.id = new_user(root.clone(), n).await,
            Fx::UGroup => {
                ids.id = root
                    .call(
                        "POST",
                        "/user-groups",
                        json!({ "name": format!("fxug{n}") }),
                    )
                    .await
                    .ok()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
            Fx::Policy => {
                ids.id = root
                    .call(
                        "POST",
                        "/password-policies",
                        json!({ "name": format!("fxp{n}"), "min_length": 8, "max_length": 30 }),
                    )
                    .await
                    .ok()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
            Fx::Recording => {
                ids.id = format!("rec{n}");
                let owner = self.user_ids[3].clone();
                self.site
                    .raw_sql(&format!(
                        "INSERT INTO recordings (id, session_id, user_id, user_name, account_id, account_name, resource_id, resource_name, protocol, client_addr, started_at, status) VALUES ('{}', 's{n}', '{owner}', 'passworduser', 'a', 'svc', 'r', 'box', 'ssh', '127.0.0.1', {n}, 'complete')",
                        ids.id
                    ))
                    .await;
            }
            Fx::Token => {
                ids.id = caller
                    .call("POST", "/tokens", json!({ "name": format!("fxt{n}") }))
                    .await
                    .ok()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
            _ => {}
        }
        ids
    }
}

async fn world() -> World {
    let site = Box::leak(Box::new(Site::new(Backend::Sqlite)));
    let server = site.start();
    let root = server.admin().await;
    let mut callers = vec![Caller {
        name: "super admin",
        client: root.clone(),
        password: ADMIN_PASSWORD,
    }];
    let mut user_ids = Vec::new();
    for (name, role) in [
        ("administrator", "administrator"),
        ("password administrator", "password_administrator"),
        ("password auditor", "password_auditor"),
        ("password user", "password_user"),
    ] {
        let username = role.replace('_', "");
        let (c, id) = server.user(&root, &username, role).await;
        callers.push(Caller {
            name,
            client: c,
            password: USER_PASSWORD,
        });
        user_ids.push(id);
    }
    World {
        site,
        server,
        root,
        callers,
        user_ids,
        n: 0,
    }
}

#[tokio::test]
async fn every_route_times_every_role() {
    // The table covers exactly the routes the server documents.
    let documented: std::collections::BTreeSet<(String, String)> = portcullis::api::ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let tested: std::collections::BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, tested, "the matrix and ROUTES disagree");

    let mut w = world().await;
    let mut failures = Vec::new();
    for row in TABLE {
        for ci in 0..w.callers.len() {
            let (name, mut client, password) = (
                w.callers[ci].name,
                w.callers[ci].client.clone(),
                w.callers[ci].password,
            );
            let username = client.get("/auth/me").await.ok()["user"]["username"]
                .as_str()
                .unwrap()
                .to_string();
            let ids = w.fixture(row.fx, &client).await;
            if row.path.ends_with("/auth/login") || row.path.ends_with("/auth/logout") {
                // Use a separate session so the caller's own stays logged in.
                client = w.server.client();
                let r = client.login(&username, password).await;
                if row.path.ends_with("/auth/login") {
                    check(&mut failures, row, name, 'y', r.status, &r.body);
                    continue;
                }
            }
            let path = format!(
                "{}{}",
                row.path.replace(
                    "{id}",
                    if ids.id.is_empty() {
                        "no-such-object"
                    } else {
                        &ids.id
                    }
                ),
                row.query.replace("{resource}", &ids.resource)
            )
            .replacen("/api/v1", "", 1);
            let r = client.call(row.method, &path, (row.body)(&ids)).await;
            let want = row.expect.as_bytes()[ci] as char;
            check(&mut failures, row, name, want, r.status, &r.body);
        }
        // Anonymous.
        let anon = w.server.client();
        let r = anon
            .call(
                row.method,
                &row.path.replace("{id}", "x").replacen("/api/v1", "", 1),
                json!({}),
            )
            .await;
        if PUBLIC.contains(&row.path) {
            if row.path.ends_with("/login") {
                if r.status != 400 {
                    failures.push(format!(
                        "anonymous {} {}: {} (expected a 400 for an empty login)",
                        row.method, row.path, r.status
                    ));
                }
            } else if r.status != 200 {
                failures.push(format!(
                    "anonymous {} {}: {}",
                    row.method, row.path, r.status
                ));
            }
        } else if r.status != 401 {
            failures.push(format!(
                "anonymous {} {}: {} (expected 401)",
                row.method, row.path, r.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} authorization mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn check(failures: &mut Vec<String>, row: &Row, who: &str, want: char, status: u16, body: &Value) {
    let ok = match want {
        'y' => (200..300).contains(&status),
        'f' => status == 403,
        'x' => status == 404,
        'r' => status == 400,
        'c' => status == 409,
        _ => false,
    };
    if !ok {
        failures.push(format!(
            "{who}: {} {} -> {status} (expected {want}): {body}",
            row.method, row.path
        ));
    }
}

/// Each share level's boundary on one account, as a Password User holds it (none, connect,
/// view, modify, manage), against fresh objects for every call: an object not shared with
/// the caller is a 404 (its existence is not confirmed), one shared below what the action
/// needs is a 403 naming the level.
#[tokio::test]
async fn every_share_level_stops_at_its_boundary() {
    const LEVELS: [&str; 5] = ["none", "connect", "view", "modify", "manage"];
    // Expected status for none, connect, view, modify, manage.
    type Case = (&'static str, &'static str, fn() -> Value, [u16; 5]);
    let cases: &[Case] = &[
        (
            "GET",
            "/accounts/{id}",
            || json!(null),
            [404, 200, 200, 200, 200],
        ),
        (
            "POST",
            "/accounts/{id}/reveal",
            || json!({ "reason": "boundary" }),
            [404, 403, 200, 200, 200],
        ),
        (
            "GET",
            "/accounts/{id}/history",
            || json!(null),
            [404, 403, 200, 200, 200],
        ),
        (
            "GET",
            "/accounts/{id}/pending",
            || json!(null),
            [404, 403, 200, 200, 200],
        ),
        (
            "PATCH",
            "/accounts/{id}",
            || json!({ "notes": "boundary" }),
            [404, 403, 403, 200, 200],
        ),
        (
            "PUT",
            "/accounts/{id}/secret",
            || json!({ "secret": "Boundary-Pw-0001!" }),
            [404, 403, 403, 200, 200],
        ),
        (
            "POST",
            "/accounts/{id}/rotate",
            || json!({}),
            [404, 403, 403, 202, 202],
        ),
        (
            "GET",
            "/shares?object_kind=account&object_id={id}",
            || json!(null),
            [404, 403, 403, 403, 200],
        ),
        (
            "DELETE",
            "/accounts/{id}",
            || json!(null),
            [404, 403, 403, 403, 200],
        ),
    ];
    let site = Site::new(Backend::Sqlite);
    let server = site.start();
    let root = server.admin().await;
    let (user, user_id) = server.user(&root, "boundary", "password_user").await;
    let mut n = 0;
    let mut mismatches = Vec::new();
    for (method, path, body, expect) in cases {
        for (level, want) in LEVELS.iter().zip(expect) {
            n += 1;
            let r = root
                .call(
                    "POST",
                    "/resources",
                    json!({ "name": format!("bnd{n}"), "host": "10.9.0.1", "ports": { "ssh": 22 }, "policy_id": "policy-low" }),
                )
                .await
                .ok();
            let rid = r["id"].as_str().unwrap_or_default().to_string();
            let account = root.account(&rid, "svc", "Boundary-Old-0001!").await;
            if *level != "none" {
                root.call("POST", "/shares", json!({ "subject_kind": "user", "subject_id": user_id, "object_kind": "account", "object_id": account, "level": level })).await.ok();
            }
            let path = path.replace("{id}", &account);
            let sent = body();
            let r = user
                .raw(method, &path, (!sent.is_null()).then_some(sent), true)
                .await;
            if r.status != *want {
                mismatches.push(format!(
                    "{level}: {method} {path} -> {} (expected {want}): {}",
                    r.status, r.body
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} share-level mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// The live-session routes against a real SSH session (sshd) owned by a Password User, for
/// every role, another Password User and the owner: who may re-attach, watch, join, hand the
/// keyboard over and terminate, with 403 (the role may never) and 404 (someone else's session
/// is not confirmed to exist) kept apart. Terminating succeeds once per allowed caller, each
/// on a fresh session.
#[tokio::test]
async fn live_session_routes_with_a_real_session() {
    use crate::live::{open_session, read_until, terminal_has};
    const CALLERS: [&str; 6] = [
        "super admin",
        "administrator",
        "password administrator",
        "password auditor",
        "password user",
        "owner",
    ];
    // (method, path, body, expected per caller in CALLERS order)
    type Case = (&'static str, &'static str, fn() -> Value, &'static str);
    let cases: &[Case] = &[
        ("POST", "attach", || json!({}), "xxxxxy"),
        ("POST", "watch", || json!({}), "yyffff"),
        ("POST", "join", || json!({}), "yyffff"),
        ("POST", "control", || json!({ "shared": false }), "yyxxxy"),
        (
            "POST",
            "terminate",
            || json!({ "reason": "matrix" }),
            "yyffff",
        ),
    ];
    let w = crate::live::engineer_with_connect().await;
    let mut callers = vec![w.admin.clone()];
    for (name, role) in [
        ("liveadmin", "administrator"),
        ("livepwadmin", "password_administrator"),
        ("liveauditor", "password_auditor"),
        ("liveother", "password_user"),
    ] {
        callers.push(w.server.user(&w.admin, name, role).await.0);
    }
    callers.push(w.eng.clone());

    let mut open = Vec::new();
    let session = || async {
        let (mut ws, mut got) =
            open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
        read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
        let sid = got
            .controls
            .iter()
            .find(|c| c["type"] == "session")
            .and_then(|c| c["id"].as_str())
            .expect("the session's id")
            .to_string();
        (ws, sid)
    };
    let (ws, mut sid) = session().await;
    open.push(ws);

    let mut mismatches = Vec::new();
    for (method, route, body, expect) in cases {
        for (ci, caller) in callers.iter().enumerate() {
            let want = expect.as_bytes()[ci] as char;
            let r = caller
                .call(method, &format!("/sessions/{sid}/{route}"), body())
                .await;
            let ok = match want {
                'y' => (200..300).contains(&r.status),
                'f' => r.status == 403,
                'x' => r.status == 404,
                _ => false,
            };
            if !ok {
                mismatches.push(format!(
                    "{}: {method} /sessions/{{id}}/{route} -> {} (expected {want}): {}",
                    CALLERS[ci], r.status, r.body
                ));
            }
            if *route == "terminate" && want == 'y' && r.status == 200 {
                let (ws, next) = session().await;
                open.push(ws);
                sid = next;
            }
        }
    }
    // The list: administrators and auditors see every session, others their own only.
    for (ci, caller) in callers.iter().enumerate() {
        let listed = caller
            .get("/sessions")
            .await
            .ok()
            .to_string()
            .contains(&sid);
        let want = matches!(ci, 0 | 1 | 3 | 5);
        if listed != want {
            mismatches.push(format!(
                "{}: GET /sessions lists the session: {listed} (expected {want})",
                CALLERS[ci]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} live-session mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
