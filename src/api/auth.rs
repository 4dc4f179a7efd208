//! Why: logging in and out, the second factor, password changes and personal API tokens:
//! everything a user does about their own identity.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AnyAuth, Auth, Body, ClientAddr};
use crate::app::App;
use crate::audit::{Event, Outcome};
use crate::audited::audit_self;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::identity::sessions::{self, COOKIE};
use crate::identity::{passwords, totp};

fn session_cookie(value: &str, max_age: Option<i64>) -> HeaderValue {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Strict{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    username: String,
    password: String,
}

impl Drop for LoginInput {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.password.zeroize();
    }
}

fn me_json(user: &crate::identity::users::UserRow, csrf: Option<&str>, mfa_pending: bool) -> Value {
    json!({
        "user": user.view(),
        "csrf_token": csrf,
        "mfa_pending": mfa_pending,
        "must_change_password": user.must_change_password == 1,
        "capabilities": {
            "manage_users": user.role().can_manage_users(),
            "read_audit": user.role().can_read_audit(),
            "create_resources": user.role().can_create_resources(),
            "manage_policies": user.role().can_manage_policies(),
        }
    })
}

/// A login from another site's page (a form posting `text/plain`, or a script elsewhere)
/// would log the victim's browser in as the attacker ("login CSRF"): the login takes JSON
/// only, and a request whose `Origin` is another site is refused. A script without a
/// browser sends no `Origin` and still logs in.
fn same_site_json(headers: &axum::http::HeaderMap, uri: &axum::http::Uri) -> ApiResult<()> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err(ApiError::invalid("A login is sent as application/json."));
    }
    if !super::same_origin(headers, uri) {
        return Err(ApiError::forbidden(
            "A login from another site's page is refused.",
        ));
    }
    Ok(())
}

pub async fn login(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    Body(input): Body<LoginInput>,
) -> ApiResult<Response> {
    same_site_json(&headers, &uri)?;
    if input.username.is_empty() {
        return Err(ApiError::field("username", "enter your user name"));
    }
    let out = sessions::login(&app, &input.username, &input.password, &addr).await?;
    let body = me_json(&out.user, Some(&out.csrf), out.mfa_required);
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&out.cookie, None));
    Ok(res)
}

pub async fn logout(State(app): State<App>, a: AnyAuth) -> ApiResult<Response> {
    if let Some(s) = &a.session {
        let mut tx = app.db.begin_write().await?;
        sqlx::query("DELETE FROM web_sessions WHERE id = $1")
            .bind(&s.id)
            .execute(tx.conn())
            .await?;
        audit_self(
            &app,
            &mut tx,
            &a.principal.actor(),
            "auth.logout",
            Outcome::Ok,
            json!({}),
        )
        .await?;
        tx.commit().await?;
    }
    if let Some(s) = &a.session {
        crate::sessions::terminate_where(
            &app,
            "You logged out; the session was ended.",
            |_, web| web == Some(s.id.as_str()),
        )
        .await;
    }
    let mut res = Json(json!({ "ok": true })).into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", Some(0)));
    Ok(res)
}

pub async fn me(a: AnyAuth) -> Json<Value> {
    Json(me_json(
        &a.user,
        a.session.as_ref().map(|s| s.csrf.as_str()),
        a.session.as_ref().is_some_and(|s| s.mfa_pending),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordInput {
    current_password: String,
    new_password: String,
    /// Also end this user's gateway sessions opened from other web logins and revoke
    /// their API tokens (other web logins end in any case).
    #[serde(default)]
    end_other_access: bool,
}

impl Drop for PasswordInput {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.current_password.zeroize();
        self.new_password.zeroize();
    }
}

pub async fn change_password(
    State(app): State<App>,
    a: AnyAuth,
    Body(input): Body<PasswordInput>,
) -> ApiResult<Json<Value>> {
    if a.session.as_ref().is_some_and(|s| s.mfa_pending) {
        return Err(ApiError::Unauthenticated(
            "Enter your two-factor code first.".into(),
        ));
    }
    sessions::verify_own_password(
        &app,
        &a.user,
        &a.principal.actor(),
        &input.current_password,
        "current_password",
        "auth.password.change",
    )
    .await?;
    passwords::check_login_password_strength(&input.new_password, &a.user.username)
        .map_err(|m| ApiError::field("new_password", format!("The new password {m}.")))?;
    if input.new_password == input.current_password {
        return Err(ApiError::field(
            "new_password",
            "choose a password different from the current one",
        ));
    }
    let mut tx = app.db.begin_write().await?;
    sqlx::query("UPDATE users SET password_hash = $1, must_change_password = 0, updated_at = $2 WHERE id = $3")
        .bind(passwords::hash(&input.new_password))
        .bind(db::now_ms())
        .bind(&a.user.id)
        .execute(tx.conn())
        .await?;
    // Other web sessions of this user end: a changed password must lock out whoever had it.
    sqlx::query("DELETE FROM web_sessions WHERE user_id = $1 AND id <> $2")
        .bind(&a.user.id)
        .bind(a.session.as_ref().map(|s| s.id.as_str()).unwrap_or(""))
        .execute(tx.conn())
        .await?;
    audit_self(
        &app,
        &mut tx,
        &a.principal.actor(),
        "auth.password.change",
        Outcome::Ok,
        json!({ "end_other_access": input.end_other_access }),
    )
    .await?;
    tx.commit().await?;
    if input.end_other_access {
        let keep = a.session.as_ref().map(|s| s.id.as_str()).unwrap_or("");
        crate::revocation::revoke_user_access(
            &app,
            &a.principal,
            &a.user.id,
            &a.user.username,
            "You changed your password and ended your other sessions.",
            crate::revocation::Keep::WebLogin(keep),
        )
        .await?;
    }
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeInput {
    code: String,
}

pub async fn totp_verify(
    State(app): State<App>,
    a: AnyAuth,
    Body(input): Body<CodeInput>,
) -> ApiResult<Response> {
    let Some(s) = &a.session else {
        return Err(ApiError::invalid("API tokens do not use a second factor"));
    };
    if !s.mfa_pending {
        return Err(ApiError::invalid(
            "This login is not waiting for a two-factor code.",
        ));
    }
    let ws = sessions::WebSession {
        id: s.id.clone(),
        csrf: s.csrf.clone(),
        mfa_pending: true,
        user: a.user.clone(),
    };
    let cookie = sessions::complete_mfa(&app, &ws, &input.code, &a.principal.addr).await?;
    let mut res = Json(me_json(&a.user, Some(&s.csrf), false)).into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&cookie, None));
    Ok(res)
}

pub async fn totp_enroll(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let seed = totp::generate_seed();
    // The seed is stored sealed but not yet enabled until a code confirms the app has it.
    sqlx::query("UPDATE users SET totp_secret_enc = $1, totp_enabled = 0 WHERE id = $2 AND totp_enabled = 0")
        .bind(app.crypto.seal(&format!("users/{}/totp", p.user_id), seed.expose()))
        .bind(&p.user_id)
        .execute(&app.db.pool)
        .await?;
    let user = crate::identity::users::by_id(&app, &p.user_id).await?;
    if user.totp_enabled == 1 {
        return Err(ApiError::Conflict {
            field: None,
            message:
                "Two-factor authentication is already on. Turn it off first to enrol a new device."
                    .into(),
        });
    }
    Ok(Json(
        json!({ "otpauth_uri": totp::otpauth_uri(&seed, "Portcullis", &p.username), "secret_base32": totp::base32(seed.expose()) }),
    ))
}

pub async fn totp_confirm(
    State(app): State<App>,
    Auth(p): Auth,
    Body(input): Body<CodeInput>,
) -> ApiResult<Json<Value>> {
    let user = crate::identity::users::by_id(&app, &p.user_id).await?;
    let Some(enc) = user
        .totp_secret_enc
        .as_ref()
        .filter(|_| user.totp_enabled == 0)
    else {
        return Err(ApiError::invalid(
            "Start enrolment first (POST /api/v1/auth/totp/enroll).",
        ));
    };
    let seed = app
        .crypto
        .open(&format!("users/{}/totp", p.user_id), enc)
        .map_err(|e| anyhow::anyhow!("totp seed: {e}"))?;
    let Some(step) = totp::check(&seed, &input.code, totp::now_secs()) else {
        return Err(ApiError::field("code", "That code does not match. Check the time on your phone and enter the current 6-digit code."));
    };
    let codes: Vec<String> = (0..10)
        .map(|_| passwords::random_token(8).replace(['-', '_'], "x")[..10].to_lowercase())
        .collect();
    let hashes: Vec<String> = codes.iter().map(|c| passwords::sha256_hex(c)).collect();
    let mut tx = app.db.begin_write().await?;
    sqlx::query(
        "UPDATE users SET totp_enabled = 1, totp_last_step = $1, recovery_codes = $2 WHERE id = $3",
    )
    .bind(step as i64)
    .bind(serde_json::to_string(&hashes).unwrap_or_else(|_| "[]".into()))
    .bind(&p.user_id)
    .execute(tx.conn())
    .await?;
    audit_self(
        &app,
        &mut tx,
        &p.actor(),
        "auth.mfa.enable",
        Outcome::Ok,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordOnly {
    password: String,
}

impl Drop for PasswordOnly {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.password.zeroize();
    }
}

pub async fn totp_disable(
    State(app): State<App>,
    a: AnyAuth,
    Body(input): Body<PasswordOnly>,
) -> ApiResult<Json<Value>> {
    if a.session.as_ref().is_some_and(|s| s.mfa_pending) || a.must_change_password() {
        return Err(ApiError::Unauthenticated("Finish logging in first.".into()));
    }
    sessions::verify_own_password(
        &app,
        &a.user,
        &a.principal.actor(),
        &input.password,
        "password",
        "auth.mfa.disable",
    )
    .await?;
    let mut tx = app.db.begin_write().await?;
    sqlx::query("UPDATE users SET totp_enabled = 0, totp_secret_enc = NULL, recovery_codes = '[]' WHERE id = $1").bind(&a.user.id).execute(tx.conn()).await?;
    audit_self(
        &app,
        &mut tx,
        &a.principal.actor(),
        "auth.mfa.disable",
        Outcome::Ok,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "ok": true })))
}

pub async fn list_tokens(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    type TokenRow = (String, String, String, i64, Option<i64>, Option<i64>);
    let rows: Vec<TokenRow> =
        sqlx::query_as("SELECT id, name, prefix, created_at, expires_at, last_used_at FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC")
            .bind(&p.user_id)
            .fetch_all(&app.db.pool)
            .await?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|(id, name, prefix, c, e, u)| json!({ "id": id, "name": name, "prefix": prefix, "created_at": db::rfc3339(c), "expires_at": e.map(db::rfc3339), "last_used_at": u.map(db::rfc3339) }))
            .collect(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    name: String,
    expires_in_days: Option<i64>,
}

pub async fn create_token(
    State(app): State<App>,
    a: AnyAuth,
    Body(input): Body<TokenInput>,
) -> ApiResult<Json<Value>> {
    // Tokens are made only from an interactive session, never with another token.
    if a.session.is_none() {
        return Err(ApiError::forbidden(
            "API tokens can only be created from a logged-in web session.",
        ));
    }
    let Auth(p) = full(a)?;
    crate::vault::check_text("name", input.name.trim(), 1, 64)?;
    if let Some(d) = input.expires_in_days {
        if !(1..=3650).contains(&d) {
            return Err(ApiError::field(
                "expires_in_days",
                "must be between 1 and 3650, or left out for no expiry",
            ));
        }
    }
    let token = format!("pct_{}", passwords::random_token(32));
    let id = db::new_id();
    let now = db::now_ms();
    let mut tx = app.db.begin_write().await?;
    sqlx::query("INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, created_at, expires_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)")
        .bind(&id)
        .bind(&p.user_id)
        .bind(input.name.trim())
        .bind(passwords::sha256_hex(&token))
        .bind(&token[..10])
        .bind(now)
        .bind(input.expires_in_days.map(|d| now + d * 86_400_000))
        .execute(tx.conn())
        .await?;
    app.audit
        .append_in(
            &mut tx,
            Event {
                actor: &p.actor(),
                action: "token.create",
                outcome: Outcome::Ok,
                object_kind: "token",
                object_id: &id,
                object_name: input.name.trim(),
                detail: json!({ "expires_in_days": input.expires_in_days }),
            },
        )
        .await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "id": id, "token": token, "note": "This token is shown once. Store it now." }),
    ))
}

fn full(a: AnyAuth) -> ApiResult<Auth> {
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

pub async fn delete_token(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut tx = app.db.begin_write().await?;
    let res = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
        .bind(&id)
        .bind(&p.user_id)
        .execute(tx.conn())
        .await?;
    if res.rows_affected() == 0 {
        return Err(ApiError::not_found("token"));
    }
    app.audit
        .append_in(
            &mut tx,
            Event {
                actor: &p.actor(),
                action: "token.revoke",
                outcome: Outcome::Ok,
                object_kind: "token",
                object_id: &id,
                object_name: "",
                detail: json!({}),
            },
        )
        .await?;
    tx.commit().await?;
    Ok(Json(json!({ "ok": true })))
}
