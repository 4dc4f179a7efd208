//! Why: the REST API under `/api/v1`, the only door the web app uses, with the same checks
//! for every client. Authentication is decided once, in the `Auth` extractor: a bearer API
//! token, or a session cookie plus the session's CSRF token on anything that changes state.
//! `ROUTES` lists every route once; the OpenAPI document is generated from it and the
//! authorization-matrix test walks it, so undocumented or untested routes stand out.

pub mod admin;
pub mod auth;
pub mod data_keys;
pub mod host_keys;
pub mod landing;
pub mod openapi;
pub mod rdp;
pub mod recordings;
pub mod rotation;
pub mod session_limits;
pub mod session_socket;
pub mod sessions;
pub mod telnet;
pub mod vault;
pub mod wire;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::Router;

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::identity::sessions::{self as web_logins, COOKIE};
use crate::identity::Principal;

/// One API route: method, path (axum syntax), summary, tag, who may call it, body fields.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    pub access: &'static str,
    pub body: &'static [(&'static str, &'static str)],
}

macro_rules! r {
    ($m:literal, $p:literal, $s:literal, $t:literal, $a:literal) => {
        RouteDoc { method: $m, path: $p, summary: $s, tag: $t, access: $a, body: &[] }
    };
    ($m:literal, $p:literal, $s:literal, $t:literal, $a:literal, [$(($f:literal, $ty:literal)),*]) => {
        RouteDoc { method: $m, path: $p, summary: $s, tag: $t, access: $a, body: &[$(($f, $ty)),*] }
    };
}

pub const ROUTES: &[RouteDoc] = &[
    r!("GET", "/api/v1/health", "Liveness check", "meta", "public"),
    r!("GET", "/api/v1/openapi.json", "This document", "meta", "public"),
    r!("POST", "/api/v1/auth/login", "Log in with user name and password; sets the session cookie", "auth", "public", [("username", "string"), ("password", "string")]),
    r!("POST", "/api/v1/auth/logout", "End the current web session", "auth", "session"),
    r!("GET", "/api/v1/auth/me", "The current user, session state and CSRF token", "auth", "session (also while 2FA or a password change is pending)"),
    r!("POST", "/api/v1/auth/password", "Change your own password", "auth", "session (also while a password change is pending)", [("current_password", "string"), ("new_password", "string")]),
    r!("POST", "/api/v1/auth/totp", "Give the TOTP or recovery code that completes a login", "auth", "session waiting for 2FA", [("code", "string")]),
    r!("POST", "/api/v1/auth/totp/enroll", "Start TOTP enrolment: returns the otpauth URI (shown once)", "auth", "any user"),
    r!("POST", "/api/v1/auth/totp/confirm", "Confirm enrolment with a code; returns recovery codes (shown once)", "auth", "any user", [("code", "string")]),
    r!("POST", "/api/v1/auth/totp/disable", "Turn off your own 2FA (needs your password)", "auth", "any user", [("password", "string")]),
    r!("GET", "/api/v1/tokens", "Your API tokens", "tokens", "any user"),
    r!("POST", "/api/v1/tokens", "Create an API token (the token is shown once)", "tokens", "any user", [("name", "string"), ("expires_in_days", "integer")]),
    r!("DELETE", "/api/v1/tokens/{id}", "Revoke one of your API tokens", "tokens", "any user"),
    r!("GET", "/api/v1/users", "Users (administrators see everything; others a directory)", "users", "any user"),
    r!("POST", "/api/v1/users", "Create a user; returns a one-time password unless one is given", "users", "administrator", [("username", "string"), ("full_name", "string"), ("email", "string"), ("role", "string"), ("super_admin", "boolean"), ("password", "string")]),
    r!("GET", "/api/v1/users/{id}", "One user", "users", "administrator, or the user"),
    r!("PATCH", "/api/v1/users/{id}", "Change a user (role, scope, lock, name, e-mail)", "users", "administrator; users their own name and e-mail", [("full_name", "string"), ("email", "string"), ("role", "string"), ("super_admin", "boolean"), ("disabled", "boolean")]),
    r!("DELETE", "/api/v1/users/{id}", "Delete a user (never yourself)", "users", "administrator"),
    r!("POST", "/api/v1/users/{id}/unlock", "Clear a lockout or an administrator lock", "users", "administrator"),
    r!("POST", "/api/v1/users/{id}/reset-password", "Set a new one-time password (returned once)", "users", "administrator"),
    r!("POST", "/api/v1/users/{id}/reset-mfa", "Turn off a user's 2FA (lost phone)", "users", "administrator"),
    r!("GET", "/api/v1/user-groups", "User groups", "users", "any user"),
    r!("POST", "/api/v1/user-groups", "Create a user group", "users", "administrator", [("name", "string"), ("description", "string"), ("member_ids", "array")]),
    r!("GET", "/api/v1/user-groups/{id}", "One user group", "users", "any user"),
    r!("PATCH", "/api/v1/user-groups/{id}", "Change a user group and its members", "users", "administrator", [("name", "string"), ("description", "string"), ("member_ids", "array")]),
    r!("DELETE", "/api/v1/user-groups/{id}", "Delete a user group", "users", "administrator"),
    r!("GET", "/api/v1/resources", "Resources you can see", "vault", "any user"),
    r!("POST", "/api/v1/resources", "Add a resource (you own it)", "vault", "administrator, password administrator", [("name", "string"), ("host", "string"), ("resource_type", "string"), ("description", "string"), ("tags", "array"), ("ports", "object"), ("policy_id", "string")]),
    r!("GET", "/api/v1/resources/{id}", "One resource", "vault", "any access to it"),
    r!("PATCH", "/api/v1/resources/{id}", "Change a resource", "vault", "manage", [("name", "string"), ("host", "string"), ("resource_type", "string"), ("description", "string"), ("tags", "array"), ("ports", "object"), ("policy_id", "string")]),
    r!("DELETE", "/api/v1/resources/{id}", "Delete a resource and its accounts", "vault", "manage"),
    r!("GET", "/api/v1/resources/{id}/accounts", "Accounts of a resource you can use", "vault", "any access to it"),
    r!("POST", "/api/v1/resources/{id}/accounts", "Add an account to a resource", "vault", "modify", [("username", "string"), ("secret_kind", "string"), ("secret", "string"), ("passphrase", "string"), ("generate", "boolean"), ("notes", "string")]),
    r!("GET", "/api/v1/resource-groups", "Resource groups you can see", "vault", "any user"),
    r!("POST", "/api/v1/resource-groups", "Create a resource group", "vault", "administrator, password administrator", [("name", "string"), ("description", "string"), ("resource_ids", "array")]),
    r!("GET", "/api/v1/resource-groups/{id}", "One resource group", "vault", "any access to it"),
    r!("PATCH", "/api/v1/resource-groups/{id}", "Change a resource group", "vault", "manage", [("name", "string"), ("description", "string"), ("resource_ids", "array")]),
    r!("DELETE", "/api/v1/resource-groups/{id}", "Delete a resource group", "vault", "manage"),
    r!("GET", "/api/v1/accounts", "Accounts you can use (never their secrets)", "vault", "any user"),
    r!("GET", "/api/v1/accounts/{id}", "One account (never its secret)", "vault", "connect"),
    r!("PATCH", "/api/v1/accounts/{id}", "Change an account's user name or notes", "vault", "modify", [("username", "string"), ("notes", "string")]),
    r!("DELETE", "/api/v1/accounts/{id}", "Delete an account", "vault", "manage"),
    r!("POST", "/api/v1/accounts/{id}/reveal", "Reveal the secret: needs a reason; audited", "vault", "view", [("reason", "string")]),
    r!("PUT", "/api/v1/accounts/{id}/secret", "Replace the secret (given or generated from the policy)", "vault", "modify", [("secret_kind", "string"), ("secret", "string"), ("passphrase", "string"), ("generate", "boolean")]),
    r!("GET", "/api/v1/accounts/{id}/history", "Who changed the secret, when, from where", "vault", "view"),
    r!("GET", "/api/v1/shares", "Who an object is shared with (?object_kind=&object_id=)", "vault", "manage"),
    r!("POST", "/api/v1/shares", "Share an account, resource or resource group", "vault", "manage", [("subject_kind", "string"), ("subject_id", "string"), ("object_kind", "string"), ("object_id", "string"), ("level", "string")]),
    r!("DELETE", "/api/v1/shares/{id}", "Revoke a share", "vault", "manage"),
    r!("GET", "/api/v1/password-policies", "Password policies", "policies", "any user"),
    r!("POST", "/api/v1/password-policies", "Create a password policy", "policies", "administrator, password administrator", [("name", "string"), ("min_length", "integer"), ("max_length", "integer"), ("min_lower", "integer"), ("min_upper", "integer"), ("min_digits", "integer"), ("min_special", "integer"), ("special_chars", "string"), ("start_with_letter", "integer"), ("history_depth", "integer"), ("max_age_days", "integer")]),
    r!("PATCH", "/api/v1/password-policies/{id}", "Change a custom password policy", "policies", "administrator, password administrator", [("name", "string"), ("min_length", "integer"), ("max_length", "integer")]),
    r!("DELETE", "/api/v1/password-policies/{id}", "Delete an unused custom password policy", "policies", "administrator, password administrator"),
    r!("POST", "/api/v1/password-policies/{id}/generate", "A sample password that satisfies the policy", "policies", "any user"),
    r!("GET", "/api/v1/audit", "Audit events, newest first (filters: actor, action, outcome, object, from, to, before, limit)", "audit", "administrator, password auditor"),
    r!("GET", "/api/v1/audit/verify", "Check the audit chain; names the first bad row", "audit", "administrator, password auditor"),
    r!("GET", "/api/v1/settings", "The running configuration (no secrets)", "settings", "administrator"),
    r!("GET", "/api/v1/sessions", "Live sessions (administrators and auditors: all; others: their own)", "sessions", "any user"),
    r!("POST", "/api/v1/sessions", "A single-use launch ticket (30 s) to open a session with an account", "sessions", "connect, from a web login", [("account_id", "string"), ("protocol", "string"), ("cols", "integer"), ("rows", "integer")]),
    r!("POST", "/api/v1/sessions/{id}/attach", "A launch ticket to re-attach to your own live session", "sessions", "the session's owner, from a web login"),
    r!("POST", "/api/v1/sessions/{id}/watch", "A ticket to watch a live session read-only; audited", "sessions", "administrator (auditors if auditors_may_observe), from a web login"),
    r!("POST", "/api/v1/sessions/{id}/join", "A ticket to join a live session as a peer (types when given the keyboard); audited", "sessions", "administrator, from a web login"),
    r!("POST", "/api/v1/sessions/{id}/control", "Hand the keyboard to a participant, or allow shared typing; audited", "sessions", "the session's owner, administrator", [("holder", "string"), ("shared", "boolean")]),
    r!("POST", "/api/v1/sessions/{id}/terminate", "End a live session now; everyone in it is shown who, when and why; audited", "sessions", "administrator", [("reason", "string")]),
    r!("GET", "/api/v1/resources/{id}/session-limits", "The resource's session idle limit and maximum duration (own and applied)", "sessions", "anyone who can see the resource"),
    r!("PUT", "/api/v1/resources/{id}/session-limits", "Set the resource's idle limit and maximum duration: default, off or a duration; audited", "sessions", "administrator", [("idle_limit", "string"), ("max_duration", "string")]),
    r!("GET", "/api/v1/landing-servers", "Landing servers (jump hosts), what each reaches and what reaches it", "landing servers", "any user"),
    r!("POST", "/api/v1/landing-servers", "Add a landing server: primary (and optional secondary) resource, login account, mode; audited", "landing servers", "administrator", [("name", "string"), ("location", "string"), ("notes", "string"), ("primary_resource_id", "string"), ("secondary_resource_id", "string"), ("account_id", "string"), ("mode", "string"), ("ssh_command", "string"), ("telnet_command", "string")]),
    r!("GET", "/api/v1/landing-servers/{id}", "One landing server", "landing servers", "any user"),
    r!("PATCH", "/api/v1/landing-servers/{id}", "Change a landing server (a loop is refused); audited", "landing servers", "administrator", [("name", "string"), ("location", "string"), ("notes", "string"), ("primary_resource_id", "string"), ("secondary_resource_id", "string"), ("account_id", "string"), ("mode", "string"), ("ssh_command", "string"), ("telnet_command", "string")]),
    r!("DELETE", "/api/v1/landing-servers/{id}", "Delete a landing server that reaches nothing; audited", "landing servers", "administrator"),
    r!("PUT", "/api/v1/resources/{id}/landing-server", "Reach a resource through a landing server (or directly: null); a loop is refused naming it; audited", "landing servers", "administrator", [("landing_server_id", "string")]),
    r!("GET", "/api/v1/resources/{id}/path", "The landing servers a session to the resource goes through, first hop first", "landing servers", "anyone who can see the resource"),
    r!("GET", "/api/v1/logon-scripts", "Built-in Telnet logon scripts and the script each resource type uses", "sessions", "any user"),
    r!("PUT", "/api/v1/logon-scripts/{id}", "Choose a resource type's Telnet logon script: a built-in, a custom one, or the default; audited", "sessions", "administrator", [("builtin", "string"), ("script", "object")]),
    r!("GET", "/api/v1/resources/{id}/telnet", "The resource's Telnet settings, the logon script that applies, and the plaintext warning", "sessions", "anyone who can see the resource"),
    r!("GET", "/api/v1/resources/{id}/rdp", "The resource's RDP settings: security (NLA required, NLA preferred, TLS only), keyboard layout, clipboard policy", "sessions", "anyone who can see the resource"),
    r!("PUT", "/api/v1/resources/{id}/rdp", "Change the resource's RDP settings; audited", "sessions", "administrator", [("security", "string"), ("keyboard_layout", "integer"), ("clipboard", "string"), ("display", "string"), ("fixed_width", "integer"), ("fixed_height", "integer")]),
    r!("GET", "/api/v1/resources/{id}/rotation", "How the resource's accounts are rotated (method, privileged account, database, TLS), or null", "rotation", "anyone who can see the resource"),
    r!("PUT", "/api/v1/resources/{id}/rotation", "Set how the resource's accounts are rotated; audited", "rotation", "administrator", [("method", "string"), ("privileged_account_id", "string"), ("db_name", "string"), ("db_tls", "string")]),
    r!("POST", "/api/v1/accounts/{id}/rotate", "Queue a rotation of the account's secret (two-phase: pending, target, verify, commit); returns the job; audited", "rotation", "Modify on the account"),
    r!("GET", "/api/v1/accounts/{id}/pending", "The account's open pending secret (job, phase, attempts, next look, last result; never the secret), or null", "rotation", "View on the account"),
    r!("POST", "/api/v1/accounts/{id}/pending/promote", "Make the pending secret the account's (the target took it); audited alert", "rotation", "super administrator", [("reason", "string")]),
    r!("POST", "/api/v1/accounts/{id}/pending/discard", "Discard the pending secret (kept in the history); audited alert", "rotation", "super administrator", [("reason", "string")]),
    r!("GET", "/api/v1/vault/data-keys", "The vault's data keys (ids, purpose, active, retired) and data-key rotations with progress; never key material", "vault", "administrator, auditor"),
    r!("POST", "/api/v1/vault/data-keys/rotate", "Start a data-key rotation: a new key for new seals, every sealed value re-encrypted in the background, the old key retired; audited alert", "vault", "super administrator"),
    r!("GET", "/api/v1/rotation/jobs", "Rotation jobs: running, queued and deferred first, then finished ones, with step and outcome", "rotation", "administrator, password administrator, auditor"),
    r!("GET", "/api/v1/rotation/jobs/{id}", "One rotation job", "rotation", "administrator, password administrator, auditor"),
    r!("POST", "/api/v1/accounts/{id}/verify", "Queue a verification of the account's secret (a login with it: in sync, out of sync, unreachable); returns the job; audited", "rotation", "Modify on the account"),
    r!("GET", "/api/v1/accounts/{id}/rotation", "The account's rotation policy (rotate after each session) and its last verification", "rotation", "anyone who can see the account"),
    r!("PUT", "/api/v1/accounts/{id}/rotation", "Set the account's rotation policy; audited", "rotation", "Modify on the account", [("after_session", "boolean")]),
    r!("POST", "/api/v1/resources/{id}/rotation/run", "Rotate or verify every account of the resource as one run; returns the run's summary; audited", "rotation", "administrator", [("kind", "string")]),
    r!("GET", "/api/v1/rotation/runs", "Rotation and verification runs (scheduled, nightly, on demand) with their summaries", "rotation", "administrator, password administrator, auditor"),
    r!("GET", "/api/v1/rotation/runs/{id}", "One run: its summary and its jobs", "rotation", "administrator, password administrator, auditor"),
    r!("GET", "/api/v1/rotation/schedules", "Rotation schedules with their next run and notice", "rotation", "administrator, password administrator, auditor"),
    r!("POST", "/api/v1/rotation/schedules", "Schedule rotations of a resource or resource group (every N days at HH:MM UTC, notice N minutes before); audited", "rotation", "administrator", [("target_kind", "string"), ("target_id", "string"), ("interval_days", "integer"), ("time_of_day", "string"), ("notice_minutes", "integer")]),
    r!("DELETE", "/api/v1/rotation/schedules/{id}", "Remove a rotation schedule; audited", "rotation", "administrator"),
    r!("PUT", "/api/v1/resources/{id}/telnet", "Set the resource's logon-script override, enable account and landing-server rule; audited", "sessions", "administrator", [("script_override", "object"), ("enable_account_id", "string"), ("require_landing", "boolean")]),
    r!("GET", "/api/v1/host-keys", "Pinned and pending SSH host keys", "sessions", "administrator"),
    r!("POST", "/api/v1/host-keys/{id}/approve", "Pin a fingerprint for a resource (approve a pending key)", "sessions", "administrator", [("fingerprint", "string")]),
    r!("DELETE", "/api/v1/host-keys/{id}", "Forget a resource's pin (re-pin on next contact)", "sessions", "administrator"),
    r!("GET", "/api/v1/sessions/ws", "The session WebSocket (?ticket=...); see docs/websocket-protocol.md", "sessions", "the ticket's web login, same origin"),
    r!("GET", "/api/v1/resources/{id}/recording", "The resource's recording mode (default, always, never) and whether sessions are recorded", "recordings", "anyone who can see the resource"),
    r!("PUT", "/api/v1/resources/{id}/recording", "Override the global recording toggle for a resource; audited", "recordings", "administrator", [("mode", "string")]),
    r!("GET", "/api/v1/recordings", "Session recordings, newest first (filters: user, resource, protocol, from, to, min_duration_s, limit)", "recordings", "administrators and auditors: all; others: their own"),
    r!("GET", "/api/v1/recordings/search", "Search recordings for text shown or typed (?q=words&limit=); hits are (recording, time, line); audited", "recordings", "administrators and auditors: all; others: their own"),
    r!("GET", "/api/v1/recordings/signing-key", "The Ed25519 public key that signs recording manifests", "recordings", "any user"),
    r!("GET", "/api/v1/recordings/{id}", "A recording: metadata, verification, seek index, typed commands", "recordings", "administrators and auditors; the session's user"),
    r!("GET", "/api/v1/recordings/{id}/events", "The recording's events for the player; audited as a playback", "recordings", "administrators and auditors; the session's user"),
    r!("GET", "/api/v1/recordings/{id}/cast", "The recording as an asciicast v2 download; audited as an export", "recordings", "administrators and auditors; the session's user"),
    r!("POST", "/api/v1/recordings/{id}/hidden-input", "What was typed at secret prompts, line by line (kept sealed under the recording's own hidden-input key); audited alert with the reason", "recordings", "super administrator", [("reason", "string")]),
    r!("GET", "/api/v1/recordings/{id}/bundle", "Signed bundle for offline `portcullis recording verify`; audited", "recordings", "administrators and auditors; the session's user"),
];

pub fn router(app: App) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/health",
            get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/auth/password", post(auth::change_password))
        .route("/api/v1/auth/totp", post(auth::totp_verify))
        .route("/api/v1/auth/totp/enroll", post(auth::totp_enroll))
        .route("/api/v1/auth/totp/confirm", post(auth::totp_confirm))
        .route("/api/v1/auth/totp/disable", post(auth::totp_disable))
        .route(
            "/api/v1/tokens",
            get(auth::list_tokens).post(auth::create_token),
        )
        .route("/api/v1/tokens/{id}", delete(auth::delete_token))
        .route(
            "/api/v1/users",
            get(admin::list_users).post(admin::create_user),
        )
        .route(
            "/api/v1/users/{id}",
            get(admin::get_user)
                .patch(admin::update_user)
                .delete(admin::delete_user),
        )
        .route("/api/v1/users/{id}/unlock", post(admin::unlock_user))
        .route(
            "/api/v1/users/{id}/reset-password",
            post(admin::reset_password),
        )
        .route("/api/v1/users/{id}/reset-mfa", post(admin::reset_mfa))
        .route(
            "/api/v1/user-groups",
            get(admin::list_groups).post(admin::create_group),
        )
        .route(
            "/api/v1/user-groups/{id}",
            get(admin::get_group)
                .patch(admin::update_group)
                .delete(admin::delete_group),
        )
        .route(
            "/api/v1/resources",
            get(vault::list_resources).post(vault::create_resource),
        )
        .route(
            "/api/v1/resources/{id}",
            get(vault::get_resource)
                .patch(vault::update_resource)
                .delete(vault::delete_resource),
        )
        .route(
            "/api/v1/resources/{id}/accounts",
            get(vault::resource_accounts).post(vault::create_account),
        )
        .route(
            "/api/v1/resource-groups",
            get(vault::list_rgroups).post(vault::create_rgroup),
        )
        .route(
            "/api/v1/resource-groups/{id}",
            get(vault::get_rgroup)
                .patch(vault::update_rgroup)
                .delete(vault::delete_rgroup),
        )
        .route("/api/v1/accounts", get(vault::list_accounts))
        .route(
            "/api/v1/accounts/{id}",
            get(vault::get_account)
                .patch(vault::update_account)
                .delete(vault::delete_account),
        )
        .route("/api/v1/accounts/{id}/reveal", post(vault::reveal))
        .route("/api/v1/accounts/{id}/secret", put(vault::set_secret))
        .route("/api/v1/accounts/{id}/history", get(vault::history))
        .route(
            "/api/v1/shares",
            get(vault::list_shares).post(vault::grant_share),
        )
        .route("/api/v1/shares/{id}", delete(vault::revoke_share))
        .route(
            "/api/v1/password-policies",
            get(admin::list_policies).post(admin::create_policy),
        )
        .route(
            "/api/v1/password-policies/{id}",
            patch(admin::update_policy).delete(admin::delete_policy),
        )
        .route(
            "/api/v1/password-policies/{id}/generate",
            post(admin::generate_password),
        )
        .route("/api/v1/audit", get(admin::audit_list))
        .route("/api/v1/audit/verify", get(admin::audit_verify))
        .route("/api/v1/settings", get(admin::settings))
        .route(
            "/api/v1/sessions",
            get(sessions::list).post(sessions::launch_ticket),
        )
        .route(
            "/api/v1/sessions/{id}/attach",
            post(sessions::attach_ticket),
        )
        .route("/api/v1/sessions/{id}/watch", post(sessions::watch_ticket))
        .route("/api/v1/sessions/{id}/join", post(sessions::join_ticket))
        .route("/api/v1/sessions/{id}/control", post(sessions::control))
        .route(
            "/api/v1/resources/{id}/session-limits",
            get(session_limits::session_limits).put(session_limits::set_session_limits),
        )
        .route("/api/v1/sessions/{id}/terminate", post(sessions::terminate))
        .route("/api/v1/logon-scripts", get(telnet::list))
        .route(
            "/api/v1/landing-servers",
            get(landing::list).post(landing::create),
        )
        .route(
            "/api/v1/landing-servers/{id}",
            get(landing::show)
                .patch(landing::update)
                .delete(landing::delete),
        )
        .route(
            "/api/v1/resources/{id}/landing-server",
            axum::routing::put(landing::set_resource_landing),
        )
        .route("/api/v1/resources/{id}/path", get(landing::resource_path))
        .route(
            "/api/v1/logon-scripts/{id}",
            axum::routing::put(telnet::set_for_type),
        )
        .route(
            "/api/v1/resources/{id}/telnet",
            get(telnet::resource).put(telnet::set_resource),
        )
        .route(
            "/api/v1/resources/{id}/rdp",
            get(rdp::resource).put(rdp::set_resource),
        )
        .route(
            "/api/v1/resources/{id}/rotation",
            get(rotation::resource).put(rotation::set_resource),
        )
        .route("/api/v1/accounts/{id}/rotate", post(rotation::rotate))
        .route("/api/v1/accounts/{id}/pending", get(rotation::pending))
        .route(
            "/api/v1/accounts/{id}/pending/promote",
            post(rotation::promote_pending),
        )
        .route(
            "/api/v1/accounts/{id}/pending/discard",
            post(rotation::discard_pending),
        )
        .route("/api/v1/vault/data-keys", get(data_keys::list))
        .route("/api/v1/vault/data-keys/rotate", post(data_keys::rotate))
        .route("/api/v1/rotation/jobs", get(rotation::jobs))
        .route("/api/v1/rotation/jobs/{id}", get(rotation::job))
        .route("/api/v1/accounts/{id}/verify", post(rotation::verify))
        .route(
            "/api/v1/accounts/{id}/rotation",
            get(rotation::account_policy).put(rotation::set_account_policy),
        )
        .route(
            "/api/v1/resources/{id}/rotation/run",
            post(rotation::run_resource),
        )
        .route("/api/v1/rotation/runs", get(rotation::runs))
        .route("/api/v1/rotation/runs/{id}", get(rotation::run))
        .route(
            "/api/v1/rotation/schedules",
            get(rotation::schedules).post(rotation::create_schedule),
        )
        .route(
            "/api/v1/rotation/schedules/{id}",
            axum::routing::delete(rotation::delete_schedule),
        )
        .route("/api/v1/sessions/ws", get(session_socket::socket))
        .route("/api/v1/host-keys", get(host_keys::host_keys))
        .route(
            "/api/v1/host-keys/{id}/approve",
            post(host_keys::approve_host_key),
        )
        .route("/api/v1/host-keys/{id}", delete(host_keys::forget_host_key))
        .route(
            "/api/v1/resources/{id}/recording",
            get(recordings::resource_mode).put(recordings::set_resource_mode),
        )
        .route("/api/v1/recordings", get(recordings::list))
        .route("/api/v1/recordings/search", get(recordings::search))
        .route(
            "/api/v1/recordings/signing-key",
            get(recordings::signing_key),
        )
        .route("/api/v1/recordings/{id}", get(recordings::detail))
        .route("/api/v1/recordings/{id}/events", get(recordings::events))
        .route("/api/v1/recordings/{id}/cast", get(recordings::cast))
        .route("/api/v1/recordings/{id}/bundle", get(recordings::bundle))
        .route(
            "/api/v1/recordings/{id}/hidden-input",
            post(recordings::hidden_input),
        )
        .route("/api/{*rest}", axum::routing::any(no_route))
        .with_state(app.clone());
    api.layer(axum::middleware::from_fn_with_state(app, audit_rejections))
        .fallback(crate::web_assets::serve)
        .layer(axum::middleware::from_fn(security_headers))
}

/// Bad input loses nothing and leaves a trace: every refused state-changing API request
/// (400, 403, 409, 429) is audited with who, the route, the status and the error (never the
/// body). Logins audit themselves; refusals already audited with object details are marked
/// `AlreadyAudited` and skipped.
async fn audit_rejections(
    axum::extract::State(app): axum::extract::State<App>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let res = next.run(req).await;
    let status = res.status().as_u16();
    if method == Method::GET
        || method == Method::HEAD
        || !matches!(status, 400 | 403 | 409 | 429)
        || path == "/api/v1/auth/login"
        || res
            .extensions()
            .get::<crate::error::AlreadyAudited>()
            .is_some()
    {
        return res;
    }
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let err: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let mut actor = crate::audit::Actor {
        id: String::new(),
        name: "anonymous".into(),
        addr,
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let user = match (bearer, cookie_value(&headers, COOKIE)) {
        (Some(t), _) => web_logins::from_bearer(&app, t.trim()).await.ok(),
        (None, Some(c)) => web_logins::from_cookie(&app, &c).await.ok().map(|s| s.user),
        _ => None,
    };
    if let Some(u) = user {
        actor.id = u.id;
        actor.name = u.username;
    }
    let appended = app
        .audit
        .append(crate::audit::Event {
            actor: &actor,
            action: "request.rejected",
            outcome: if status == 400 || status == 409 { crate::audit::Outcome::Failed } else { crate::audit::Outcome::Denied },
            object_kind: "route",
            object_id: "",
            object_name: &format!("{method} {path}"),
            detail: serde_json::json!({ "status": status, "code": err["error"]["code"], "field": err["error"]["field"], "message": err["error"]["message"] }),
        })
        .await;
    if let Err(e) = appended {
        tracing::error!(error = %e, "could not audit a rejected request");
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

async fn no_route() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "error": { "code": "no_route", "message": "There is no such API route; see /api/v1/openapi.json", "field": null } }))).into_response()
}

async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, header::HeaderValue::from_static(v));
    };
    set(h, "strict-transport-security", "max-age=31536000");
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    // Scripts only from this origin. Inline *styles* are allowed because xterm.js injects its
    // colour theme as a <style> element; style injection cannot run code.
    set(h, "content-security-policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    if is_api {
        set(h, "cache-control", "no-store");
    }
    res
}

/// The client's address as the audit log records it.
pub fn client_addr(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The client's address, for handlers that run before authentication (login).
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(parts)))
    }
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        })
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Authentication state of a request, before the "fully logged in" check.
pub struct AnyAuth {
    pub principal: Principal,
    pub session: Option<SessionMeta>,
    pub user: crate::identity::users::UserRow,
}

pub struct SessionMeta {
    pub id: String,
    pub csrf: String,
    pub mfa_pending: bool,
}

impl AnyAuth {
    pub fn must_change_password(&self) -> bool {
        self.user.must_change_password == 1
    }
}

impl FromRequestParts<App> for AnyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let addr = client_addr(parts);
        if let Some(token) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let user = web_logins::from_bearer(app, token.trim()).await?;
            return Ok(AnyAuth {
                principal: web_logins::principal(&user, &addr),
                session: None,
                user,
            });
        }
        let cookie = cookie_value(&parts.headers, COOKIE)
            .ok_or_else(|| ApiError::Unauthenticated("You are not logged in.".into()))?;
        let s = web_logins::from_cookie(app, &cookie).await?;
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent, &s.csrf) {
                return Err(ApiError::forbidden("Missing or wrong CSRF token (X-CSRF-Token header). Reload the page and try again."));
            }
            if !same_origin(&parts.headers, &parts.uri) {
                return Err(ApiError::forbidden("Cross-origin request refused."));
            }
        }
        Ok(AnyAuth {
            principal: web_logins::principal(&s.user, &addr),
            session: Some(SessionMeta {
                id: s.id,
                csrf: s.csrf,
                mfa_pending: s.mfa_pending,
            }),
            user: s.user,
        })
    }
}

/// A fully logged-in caller: second factor done, no password change pending.
pub struct Auth(pub Principal);

impl FromRequestParts<App> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let a = AnyAuth::from_request_parts(parts, app).await?;
        if a.session.as_ref().is_some_and(|s| s.mfa_pending) {
            return Err(ApiError::Unauthenticated(
                "Enter your two-factor code to finish logging in.".into(),
            ));
        }
        if a.must_change_password() {
            return Err(ApiError::forbidden(
                "You must change your password before doing anything else.",
            ));
        }
        Ok(Auth(a.principal))
    }
}

/// serde's type errors quote the offending value (`invalid type: string "...", expected a
/// boolean`). That value may be a secret typed into the wrong field, so only the expectation
/// is kept.
fn scrub_serde_message(msg: &str) -> String {
    if msg.starts_with("invalid type")
        || msg.starts_with("invalid value")
        || msg.starts_with("invalid length")
    {
        if let Some((_, expected)) = msg.split_once(", expected ") {
            return format!("wrong type or value, expected {expected}");
        }
        return "wrong type or value".into();
    }
    msg.to_string()
}

/// JSON body extractor whose errors are 400s that say what is wrong (and name the field
/// when serde can), instead of axum's plain-text rejections.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::invalid("The request body could not be read (too large?)."))?;
        let bytes = if bytes.is_empty() {
            axum::body::Bytes::from_static(b"{}")
        } else {
            bytes
        };
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut de)
            .map(Body)
            .map_err(|e| {
                let path = e.path().to_string();
                let msg = e.inner().to_string();
                let clean = scrub_serde_message(msg.split(" at line").next().unwrap_or(&msg));
                // A missing field is reported at its parent ("."): name the field itself.
                let named = (clean.starts_with("unknown field")
                    || clean.starts_with("missing field"))
                .then(|| clean.split('`').nth(1).map(str::to_string))
                .flatten();
                let field = match (named, path.as_str()) {
                    (named, ".") => named,
                    (_, p) => Some(p.to_string()),
                };
                ApiError::Invalid {
                    field,
                    message: format!("The request body is not valid: {clean}."),
                }
            })
    }
}

/// An optional RFC 3339 time from a query string (`from`, `to`), as Unix milliseconds; a bad
/// value is a 400 naming the field.
pub fn time_param(field: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    match v.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => crate::db::parse_rfc3339(s).map(Some).ok_or_else(|| {
            ApiError::field(
                field,
                "must be an RFC 3339 time such as 2026-01-31T12:00:00Z",
            )
        }),
    }
}

/// The host a request was sent to: the `Host` header (HTTP/1.1), or the URI's authority
/// (HTTP/2's `:authority`, which has no `Host` header).
pub fn request_host(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.as_str().to_string()))
}

/// Whether a request's `Origin`, when it has one, is this server's own (a request from a
/// script outside a browser has none). A request whose host is unknown and that names an
/// origin is refused.
pub fn same_origin(headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    match (origin.to_str().ok(), request_host(headers, uri)) {
        (Some(origin), Some(host)) => origin == format!("https://{host}"),
        _ => false,
    }
}
