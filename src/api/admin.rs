//! Why: administration: users and their roles, user groups, password policies, the audit
//! log and the running settings. Role rules are checked here against `Role`'s capability
//! methods; the self-protection rules (no self role change, no self delete, super scope only
//! from another super administrator) too.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Auth, Body};
use crate::app::App;
use crate::audit::{Event, Filter, Outcome};
use crate::audited::{audit, denied, exec_audited, unique_or};
use crate::db::{self, b};
use crate::error::{ApiError, ApiResult};
use crate::identity::users::{self, NewUser, UserRow};
use crate::identity::{passwords, Principal, Role};
use crate::revocation::{revoke_user_access, Keep};
use crate::vault::policy::{self, Policy};

async fn require_admin(app: &App, p: &Principal, action: &str) -> ApiResult<()> {
    if p.role.can_manage_users() {
        return Ok(());
    }
    Err(denied(
        app,
        p,
        action,
        "user",
        "",
        "",
        ApiError::forbidden("Only administrators can do this."),
    )
    .await)
}

pub async fn list_users(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let rows = sqlx::query_as::<_, UserRow>(crate::db::sql(format!(
        "SELECT {} FROM users ORDER BY username",
        users::USER_COLUMNS
    )))
    .fetch_all(&app.db.pool)
    .await?;
    if p.role.can_manage_users() {
        return Ok(Json(json!(rows
            .iter()
            .map(|u| u.view())
            .collect::<Vec<_>>())));
    }
    // Everyone else gets a directory, enough to pick whom to share with.
    Ok(Json(json!(rows
        .iter()
        .map(|u| json!({ "id": u.id, "username": u.username, "full_name": u.full_name }))
        .collect::<Vec<_>>())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    email: String,
    role: String,
    #[serde(default)]
    super_admin: bool,
    password: Option<String>,
}

impl Drop for CreateUser {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some(p) = self.password.as_mut() {
            p.zeroize();
        }
    }
}

pub async fn create_user(
    State(app): State<App>,
    Auth(p): Auth,
    Body(mut input): Body<CreateUser>,
) -> ApiResult<Json<Value>> {
    require_admin(&app, &p, "user.create").await?;
    let role = Role::parse(&input.role).ok_or_else(|| {
        ApiError::field(
            "role",
            "must be administrator, password_administrator, password_auditor or password_user",
        )
    })?;
    let (user, otp) = users::create(
        &app,
        &p.actor(),
        Some(&p),
        NewUser {
            username: input.username.trim().to_string(),
            full_name: std::mem::take(&mut input.full_name),
            email: std::mem::take(&mut input.email),
            role,
            super_admin: input.super_admin,
            password: input.password.take(),
        },
    )
    .await?;
    Ok(Json(json!({ "user": user, "one_time_password": otp })))
}

pub async fn get_user(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if id != p.user_id {
        require_admin(&app, &p, "user.read").await?;
    }
    Ok(Json(json!(users::by_id(&app, &id).await?.view())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    full_name: Option<String>,
    email: Option<String>,
    role: Option<String>,
    super_admin: Option<bool>,
    disabled: Option<bool>,
}

pub async fn update_user(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<UpdateUser>,
) -> ApiResult<Json<Value>> {
    let target = users::by_id(&app, &id).await?;
    let is_self = id == p.user_id;
    let privileged =
        input.role.is_some() || input.super_admin.is_some() || input.disabled.is_some();
    if !is_self || privileged {
        require_admin(&app, &p, "user.update").await?;
    }
    if is_self && privileged {
        let e = ApiError::forbidden(
            "Nobody can change their own role, scope or lock. Ask another administrator.",
        );
        return Err(denied(&app, &p, "user.update", "user", &id, &target.username, e).await);
    }
    if target.super_admin == 1 && !p.super_admin && !is_self {
        let e = ApiError::forbidden("Only a super administrator can change a super administrator.");
        return Err(denied(&app, &p, "user.update", "user", &id, &target.username, e).await);
    }
    let role = match &input.role {
        Some(r) => Role::parse(r).ok_or_else(|| {
            ApiError::field(
                "role",
                "must be administrator, password_administrator, password_auditor or password_user",
            )
        })?,
        None => target.role(),
    };
    let super_admin = input.super_admin.unwrap_or(target.super_admin == 1);
    if super_admin != (target.super_admin == 1) && !p.super_admin {
        let e = ApiError::forbidden(
            "Only a super administrator can grant or remove the super-administrator scope.",
        );
        return Err(denied(&app, &p, "user.update", "user", &id, &target.username, e).await);
    }
    if super_admin && role != Role::Administrator {
        return Err(ApiError::field(
            "super_admin",
            "only administrators can have the super-administrator scope",
        ));
    }
    let full_name = input.full_name.unwrap_or(target.full_name.clone());
    crate::vault::check_text("full_name", &full_name, 0, 200)?;
    let email = input.email.unwrap_or(target.email.clone());
    if !email.is_empty() && !email.contains('@') {
        return Err(ApiError::field(
            "email",
            "must be an e-mail address such as name@example.com",
        ));
    }
    let disabled = input.disabled.unwrap_or(target.disabled == 1);
    let mut tx = app.db.begin_write().await?;
    sqlx::query("UPDATE users SET full_name = $1, email = $2, role = $3, super_admin = $4, disabled = $5, updated_at = $6 WHERE id = $7")
        .bind(&full_name)
        .bind(&email)
        .bind(role.as_str())
        .bind(b(super_admin))
        .bind(b(disabled))
        .bind(db::now_ms())
        .bind(&id)
        .execute(tx.conn())
        .await?;
    if disabled {
        sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
            .bind(&id)
            .execute(tx.conn())
            .await?;
    }
    let mut changes = serde_json::Map::new();
    if role != target.role() {
        changes.insert(
            "role".into(),
            json!({ "from": target.role, "to": role.as_str() }),
        );
    }
    if super_admin != (target.super_admin == 1) {
        changes.insert("super_admin".into(), json!(super_admin));
    }
    if disabled != (target.disabled == 1) {
        changes.insert("locked".into(), json!(disabled));
    }
    let action = if changes.contains_key("role") || changes.contains_key("super_admin") {
        "user.role.change"
    } else if changes.contains_key("locked") {
        "user.lock"
    } else {
        "user.update"
    };
    audit(
        &app,
        &mut tx,
        &p,
        action,
        &id,
        &target.username,
        Value::Object(changes),
    )
    .await?;
    tx.commit().await?;
    // Locked, or given other rights: everything the user holds ends (they log in again
    // with what they have now).
    let reason = if disabled && target.disabled == 0 {
        Some("Your user was locked by an administrator; the session was ended.")
    } else if role != target.role() || super_admin != (target.super_admin == 1) {
        Some("An administrator changed your role; the session was ended. Log in again.")
    } else {
        None
    };
    if let Some(reason) = reason {
        revoke_user_access(&app, &p, &id, &target.username, reason, Keep::Nothing).await?;
    }
    Ok(Json(json!(users::by_id(&app, &id).await?.view())))
}

pub async fn delete_user(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_admin(&app, &p, "user.delete").await?;
    let target = users::by_id(&app, &id).await?;
    if id == p.user_id {
        return Err(denied(
            &app,
            &p,
            "user.delete",
            "user",
            &id,
            &target.username,
            ApiError::forbidden("You cannot delete yourself."),
        )
        .await);
    }
    if target.super_admin == 1 && !p.super_admin {
        return Err(denied(
            &app,
            &p,
            "user.delete",
            "user",
            &id,
            &target.username,
            ApiError::forbidden("Only a super administrator can delete a super administrator."),
        )
        .await);
    }
    exec_audited(
        &app,
        &p,
        &[
            "DELETE FROM shares WHERE subject_kind = 'user' AND subject_id = $1",
            "DELETE FROM users WHERE id = $1",
        ],
        &id,
        "user.delete",
        &target.username,
        json!({}),
    )
    .await?;
    revoke_user_access(
        &app,
        &p,
        &id,
        &target.username,
        "Your user was deleted by an administrator; the session was ended.",
        Keep::Nothing,
    )
    .await?;
    Ok(Json(json!({ "ok": true })))
}

async fn admin_action_on(app: &App, p: &Principal, id: &str, action: &str) -> ApiResult<UserRow> {
    require_admin(app, p, action).await?;
    let target = users::by_id(app, id).await?;
    if id == p.user_id {
        return Err(denied(
            app,
            p,
            action,
            "user",
            id,
            &target.username,
            ApiError::forbidden("Ask another administrator to do this for you."),
        )
        .await);
    }
    if target.super_admin == 1 && !p.super_admin {
        return Err(denied(
            app,
            p,
            action,
            "user",
            id,
            &target.username,
            ApiError::forbidden("Only a super administrator can do this to a super administrator."),
        )
        .await);
    }
    Ok(target)
}

pub async fn unlock_user(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let target = admin_action_on(&app, &p, &id, "user.unlock").await?;
    exec_audited(
        &app,
        &p,
        &["UPDATE users SET disabled = 0, failed_logins = 0, locked_until = 0 WHERE id = $1"],
        &id,
        "user.unlock",
        &target.username,
        json!({}),
    )
    .await?;
    Ok(Json(json!(users::by_id(&app, &id).await?.view())))
}

pub async fn reset_password(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let target = admin_action_on(&app, &p, &id, "user.password.reset").await?;
    // The one-time password logs in as the user, with every share they hold: for a user who
    // holds any, that is a super administrator's decision (and an alert).
    let holds = holds_access(&app, &id).await?;
    if holds && !p.super_admin {
        let e = ApiError::forbidden("This user holds shares: setting their password would give you their access, which needs the super-administrator scope.");
        return Err(denied(
            &app,
            &p,
            "user.password.reset",
            "user",
            &id,
            &target.username,
            e,
        )
        .await);
    }
    let otp = passwords::one_time_password();
    let mut tx = app.db.begin_write().await?;
    sqlx::query("UPDATE users SET password_hash = $1, must_change_password = 1, failed_logins = 0, locked_until = 0 WHERE id = $2").bind(passwords::hash(&otp)).bind(&id).execute(tx.conn()).await?;
    audit(
        &app,
        &mut tx,
        &p,
        "user.password.reset",
        &id,
        &target.username,
        json!({ "alert": holds }),
    )
    .await?;
    tx.commit().await?;
    revoke_user_access(
        &app,
        &p,
        &id,
        &target.username,
        "An administrator reset your password; the session was ended.",
        Keep::Nothing,
    )
    .await?;
    Ok(Json(json!({ "one_time_password": otp })))
}

pub async fn reset_mfa(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let target = admin_action_on(&app, &p, &id, "user.mfa.reset").await?;
    exec_audited(&app, &p, &["UPDATE users SET totp_enabled = 0, totp_secret_enc = NULL, recovery_codes = '[]' WHERE id = $1"], &id, "user.mfa.reset", &target.username, json!({})).await?;
    revoke_user_access(
        &app,
        &p,
        &id,
        &target.username,
        "An administrator reset your second factor; the session was ended.",
        Keep::Nothing,
    )
    .await?;
    Ok(Json(json!(users::by_id(&app, &id).await?.view())))
}

// ---- user groups -----------------------------------------------------------------------

async fn group_json(app: &App, id: &str) -> ApiResult<Value> {
    let g: Option<(String, String, String, i64)> =
        sqlx::query_as("SELECT id, name, description, created_at FROM user_groups WHERE id = $1")
            .bind(id)
            .fetch_optional(&app.db.pool)
            .await?;
    let (id, name, description, created) = g.ok_or_else(|| ApiError::not_found("user group"))?;
    let members: Vec<(String,)> =
        sqlx::query_as("SELECT user_id FROM user_group_members WHERE group_id = $1")
            .bind(&id)
            .fetch_all(&app.db.pool)
            .await?;
    Ok(
        json!({ "id": id, "name": name, "description": description, "member_ids": members.into_iter().map(|(m,)| m).collect::<Vec<_>>(), "created_at": db::rfc3339(created) }),
    )
}

/// Whether `p` sees every user group (who is in which group is administration): those who
/// manage users, share objects or audit; a Password User sees the groups they are in.
fn sees_all_groups(p: &Principal) -> bool {
    p.super_admin
        || p.role.can_manage_users()
        || p.role.can_create_resources()
        || p.role.can_read_audit()
}

pub async fn list_groups(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let ids: Vec<(String,)> = if sees_all_groups(&p) {
        sqlx::query_as("SELECT id FROM user_groups ORDER BY name")
            .fetch_all(&app.db.pool)
            .await?
    } else {
        sqlx::query_as("SELECT g.id FROM user_groups g JOIN user_group_members m ON m.group_id = g.id WHERE m.user_id = $1 ORDER BY g.name")
            .bind(&p.user_id)
            .fetch_all(&app.db.pool)
            .await?
    };
    let mut out = Vec::new();
    for (id,) in ids {
        out.push(group_json(&app, &id).await?);
    }
    Ok(Json(Value::Array(out)))
}

pub async fn get_group(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let g = group_json(&app, &id).await?;
    let member = g["member_ids"]
        .as_array()
        .is_some_and(|m| m.iter().any(|u| u == p.user_id.as_str()));
    if !sees_all_groups(&p) && !member {
        return Err(ApiError::not_found("user group"));
    }
    Ok(Json(g))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    name: Option<String>,
    description: Option<String>,
    member_ids: Option<Vec<String>>,
}

async fn set_group_members(
    app: &App,
    tx: &mut db::WriteTx,
    gid: &str,
    ids: &[String],
) -> ApiResult<()> {
    for uid in ids {
        users::by_id(app, uid)
            .await
            .map_err(|_| ApiError::field("member_ids", format!("no user with id {uid}")))?;
    }
    sqlx::query("DELETE FROM user_group_members WHERE group_id = $1")
        .bind(gid)
        .execute(tx.conn())
        .await?;
    let mut seen = std::collections::HashSet::new();
    for uid in ids.iter().filter(|u| seen.insert(u.as_str())) {
        sqlx::query("INSERT INTO user_group_members (group_id, user_id) VALUES ($1, $2)")
            .bind(gid)
            .bind(uid)
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

pub async fn create_group(
    State(app): State<App>,
    Auth(p): Auth,
    Body(input): Body<GroupInput>,
) -> ApiResult<Json<Value>> {
    require_admin(&app, &p, "user_group.create").await?;
    let name = input.name.unwrap_or_default().trim().to_string();
    crate::vault::check_text("name", &name, 1, 100)?;
    let description = input.description.unwrap_or_default();
    crate::vault::check_text("description", &description, 0, 2000)?;
    let id = db::new_id();
    let mut tx = app.db.begin_write().await?;
    let res = sqlx::query(
        "INSERT INTO user_groups (id, name, description, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(&name)
    .bind(&description)
    .bind(db::now_ms())
    .execute(tx.conn())
    .await;
    unique_or(
        res,
        "name",
        &format!("a user group named {name} already exists"),
    )?;
    let members = input.member_ids.unwrap_or_default();
    set_group_members(&app, &mut tx, &id, &members).await?;
    audit(
        &app,
        &mut tx,
        &p,
        "user_group.create",
        &id,
        &name,
        json!({ "members": members.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(group_json(&app, &id).await?))
}

pub async fn update_group(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<GroupInput>,
) -> ApiResult<Json<Value>> {
    require_admin(&app, &p, "user_group.update").await?;
    let current = group_json(&app, &id).await?;
    // Adding someone to a group that holds shares gives them those shares: an administrator
    // could add themselves. That is a super administrator's decision (and an alert).
    let before: Vec<&str> = current["member_ids"]
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let added: Vec<String> = input
        .member_ids
        .iter()
        .flatten()
        .filter(|m| !before.contains(&m.as_str()))
        .cloned()
        .collect();
    let holds_shares = group_holds_shares(&app, &id).await?;
    if !added.is_empty() && holds_shares && !p.super_admin {
        let e = ApiError::forbidden("This group holds shares: adding members gives them that access, which needs the super-administrator scope.");
        let group_name = current["name"].as_str().unwrap_or_default();
        return Err(denied(
            &app,
            &p,
            "user_group.update",
            "user_group",
            &id,
            group_name,
            e,
        )
        .await);
    }
    let name = input
        .name
        .map(|n| n.trim().to_string())
        .unwrap_or_else(|| current["name"].as_str().unwrap_or("").to_string());
    crate::vault::check_text("name", &name, 1, 100)?;
    let description = input
        .description
        .unwrap_or_else(|| current["description"].as_str().unwrap_or("").to_string());
    crate::vault::check_text("description", &description, 0, 2000)?;
    let mut tx = app.db.begin_write().await?;
    let res = sqlx::query("UPDATE user_groups SET name = $1, description = $2 WHERE id = $3")
        .bind(&name)
        .bind(&description)
        .bind(&id)
        .execute(tx.conn())
        .await;
    unique_or(
        res,
        "name",
        &format!("a user group named {name} already exists"),
    )?;
    if let Some(m) = &input.member_ids {
        set_group_members(&app, &mut tx, &id, m).await?;
    }
    audit(
        &app,
        &mut tx,
        &p,
        "user_group.update",
        &id,
        &name,
        json!({ "members": input.member_ids.as_ref().map(|m| m.len()), "added": added, "alert": !added.is_empty() && holds_shares }),
    )
    .await?;
    tx.commit().await?;
    app.access.changed(&app).await;
    Ok(Json(group_json(&app, &id).await?))
}

/// Whether anything is shared to user group `id`.
async fn group_holds_shares(app: &App, id: &str) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM shares WHERE subject_kind = 'group' AND subject_id = $1 LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&app.db.pool)
    .await?;
    Ok(row.is_some())
}

/// Whether user `id` holds access to any object: a share of their own or of one of their
/// groups, or a resource they own.
async fn holds_access(app: &App, id: &str) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM shares WHERE (subject_kind = 'user' AND subject_id = $1) OR (subject_kind = 'group' AND subject_id IN (SELECT group_id FROM user_group_members WHERE user_id = $1)) UNION SELECT id FROM resources WHERE owner_id = $1 LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&app.db.pool)
    .await?;
    Ok(row.is_some())
}

pub async fn delete_group(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_admin(&app, &p, "user_group.delete").await?;
    let current = group_json(&app, &id).await?;
    exec_audited(
        &app,
        &p,
        &[
            "DELETE FROM shares WHERE subject_kind = 'group' AND subject_id = $1",
            "DELETE FROM user_groups WHERE id = $1",
        ],
        &id,
        "user_group.delete",
        current["name"].as_str().unwrap_or(""),
        json!({}),
    )
    .await?;
    app.access.changed(&app).await;
    Ok(Json(json!({ "ok": true })))
}

// ---- password policies -----------------------------------------------------------------

pub async fn list_policies(State(app): State<App>, Auth(_p): Auth) -> ApiResult<Json<Vec<Policy>>> {
    Ok(Json(
        sqlx::query_as::<_, Policy>(crate::db::sql(format!(
            "SELECT {} FROM password_policies ORDER BY builtin DESC, name",
            policy::COLUMNS
        )))
        .fetch_all(&app.db.pool)
        .await?,
    ))
}

async fn require_policy_admin(app: &App, p: &Principal, action: &str) -> ApiResult<()> {
    if p.role.can_manage_policies() {
        return Ok(());
    }
    Err(denied(
        app,
        p,
        action,
        "policy",
        "",
        "",
        ApiError::forbidden(
            "Only administrators and password administrators manage password policies.",
        ),
    )
    .await)
}

async fn get_policy(app: &App, id: &str) -> ApiResult<Policy> {
    sqlx::query_as::<_, Policy>(crate::db::sql(format!(
        "SELECT {} FROM password_policies WHERE id = $1",
        policy::COLUMNS
    )))
    .bind(id)
    .fetch_optional(&app.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("password policy"))
}

async fn write_policy(app: &App, p: &Principal, pol: &Policy, insert: bool) -> ApiResult<()> {
    pol.validate().map_err(|(f, m)| ApiError::field(f, m))?;
    let mut tx = app.db.begin_write().await?;
    // Same column order for both statements: id first, created_at last.
    let sql = if insert {
        format!("INSERT INTO password_policies ({}) VALUES ($1, $2, 0, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)", policy::COLUMNS)
    } else {
        "UPDATE password_policies SET name = $2, min_length = $3, max_length = $4, min_lower = $5, min_upper = $6, min_digits = $7, min_special = $8, special_chars = $9, start_with_letter = $10, history_depth = $11, max_age_days = $12 WHERE id = $1".to_string()
    };
    let mut q = sqlx::query(crate::db::sql(sql))
        .bind(&pol.id)
        .bind(pol.name.trim())
        .bind(pol.min_length)
        .bind(pol.max_length)
        .bind(pol.min_lower)
        .bind(pol.min_upper)
        .bind(pol.min_digits)
        .bind(pol.min_special)
        .bind(&pol.special_chars)
        .bind(pol.start_with_letter.clamp(0, 1))
        .bind(pol.history_depth)
        .bind(pol.max_age_days);
    if insert {
        q = q.bind(pol.created_at);
    }
    let res = q.execute(tx.conn()).await;
    unique_or(
        res,
        "name",
        &format!("a policy named {} already exists", pol.name.trim()),
    )?;
    audit(
        app,
        &mut tx,
        p,
        if insert {
            "policy.create"
        } else {
            "policy.update"
        },
        &pol.id,
        &pol.name,
        json!({ "min_length": pol.min_length, "max_length": pol.max_length }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn create_policy(
    State(app): State<App>,
    Auth(p): Auth,
    Body(mut pol): Body<Policy>,
) -> ApiResult<Json<Policy>> {
    require_policy_admin(&app, &p, "policy.create").await?;
    pol.id = db::new_id();
    pol.builtin = 0;
    pol.created_at = db::now_ms();
    write_policy(&app, &p, &pol, true).await?;
    Ok(Json(get_policy(&app, &pol.id).await?))
}

pub async fn update_policy(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(patch): Body<serde_json::Map<String, Value>>,
) -> ApiResult<Json<Policy>> {
    require_policy_admin(&app, &p, "policy.update").await?;
    let current = get_policy(&app, &id).await?;
    if current.builtin == 1 {
        return Err(ApiError::forbidden(
            "Built-in policies cannot be changed; create your own instead.",
        ));
    }
    let mut merged = serde_json::to_value(&current).map_err(anyhow::Error::from)?;
    for (k, v) in patch {
        if matches!(k.as_str(), "id" | "builtin" | "created_at") || merged.get(&k).is_none() {
            return Err(ApiError::field(
                &k,
                "this field cannot be changed or does not exist",
            ));
        }
        merged[k] = v;
    }
    let pol: Policy = serde_json::from_value(merged)
        .map_err(|e| ApiError::invalid(format!("The request body is not valid: {e}.")))?;
    write_policy(&app, &p, &pol, false).await?;
    Ok(Json(get_policy(&app, &id).await?))
}

pub async fn delete_policy(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_policy_admin(&app, &p, "policy.delete").await?;
    let current = get_policy(&app, &id).await?;
    if current.builtin == 1 {
        return Err(ApiError::forbidden("Built-in policies cannot be deleted."));
    }
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM resources WHERE policy_id = $1")
        .bind(&id)
        .fetch_one(&app.db.pool)
        .await?;
    if n > 0 {
        return Err(ApiError::Conflict {
            field: None,
            message: format!("{n} resource(s) use this policy; move them to another policy first."),
        });
    }
    exec_audited(
        &app,
        &p,
        &["DELETE FROM password_policies WHERE id = $1"],
        &id,
        "policy.delete",
        &current.name,
        json!({}),
    )
    .await?;
    Ok(Json(json!({ "ok": true })))
}

pub async fn generate_password(
    State(app): State<App>,
    Auth(_p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let pol = get_policy(&app, &id).await?;
    Ok(Json(json!({ "password": pol.generate() })))
}

// ---- audit and settings ----------------------------------------------------------------

async fn require_auditor(app: &App, p: &Principal, action: &str) -> ApiResult<()> {
    if p.role.can_read_audit() {
        return Ok(());
    }
    Err(denied(
        app,
        p,
        action,
        "audit",
        "",
        "",
        ApiError::forbidden("Only administrators and password auditors can read the audit log."),
    )
    .await)
}

#[derive(Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    object: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

pub async fn audit_list(
    State(app): State<App>,
    Auth(p): Auth,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    require_auditor(&app, &p, "audit.read").await?;
    let Query(q) = q.map_err(|e| ApiError::invalid(format!("Bad query: {e}")))?;
    if let Some(o) = q.outcome.as_deref().filter(|s| !s.is_empty()) {
        if !["ok", "denied", "failed"].contains(&o) {
            return Err(ApiError::field("outcome", "must be ok, denied or failed"));
        }
    }
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let f = Filter {
        from: super::time_param("from", &q.from)?,
        to: super::time_param("to", &q.to)?,
        actor: nonempty(q.actor),
        action: nonempty(q.action),
        outcome: nonempty(q.outcome),
        object: nonempty(q.object),
        before_seq: q.before,
        limit: q.limit.unwrap_or(200),
    };
    let rows = app.audit.query(&f).await?;
    Ok(Json(json!(rows
        .into_iter()
        .map(|r| json!({ "seq": r.seq, "at": db::rfc3339(r.at), "actor": r.actor_name, "actor_id": r.actor_id, "client_addr": r.client_addr, "action": r.action, "outcome": r.outcome, "object_kind": r.object_kind, "object_id": r.object_id, "object_name": r.object_name, "detail": serde_json::from_str::<Value>(&r.detail).unwrap_or(Value::Null) }))
        .collect::<Vec<_>>())))
}

pub async fn audit_verify(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    require_auditor(&app, &p, "audit.verify").await?;
    let report = app.audit.verify().await?;
    app.audit
        .append(Event {
            actor: &p.actor(),
            action: "audit.verify",
            outcome: if report.ok {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
            object_kind: "audit",
            object_id: "",
            object_name: "",
            detail: json!({ "rows": report.rows_checked, "problem": report.problem }),
        })
        .await?;
    Ok(Json(json!(report)))
}

pub async fn settings(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    require_admin(&app, &p, "settings.read").await?;
    Ok(Json(crate::config::summary(&app.config)))
}
