//! Why: user records and the rules about them that hold whatever the caller (API, CLI,
//! bootstrap): names are unique and tidy, nobody changes their own role or scope, nobody
//! deletes themselves, only another super administrator grants the super-administrator scope.

use serde::Serialize;

use super::{passwords, Principal, Role};
use crate::audit::{Actor, Event, Outcome};
use crate::core::Core;
use crate::db::{self, b};
use crate::error::{ApiError, ApiResult};

#[derive(Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub full_name: String,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub super_admin: i64,
    pub must_change_password: i64,
    pub disabled: i64,
    pub failed_logins: i64,
    pub locked_until: i64,
    pub totp_secret_enc: Option<String>,
    pub totp_enabled: i64,
    pub totp_last_step: i64,
    pub recovery_codes: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub const USER_COLUMNS: &str = "id, username, full_name, email, password_hash, role, super_admin, must_change_password, disabled, failed_logins, locked_until, totp_secret_enc, totp_enabled, totp_last_step, recovery_codes, created_at, updated_at";

/// What the API shows of a user. No hashes, no TOTP seed.
#[derive(Serialize, Clone, Debug)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub full_name: String,
    pub email: String,
    pub role: String,
    pub super_admin: bool,
    pub must_change_password: bool,
    pub disabled: bool,
    pub locked_until: Option<String>,
    pub totp_enabled: bool,
    pub created_at: String,
}

impl UserRow {
    pub fn view(&self) -> UserView {
        UserView {
            id: self.id.clone(),
            username: self.username.clone(),
            full_name: self.full_name.clone(),
            email: self.email.clone(),
            role: self.role.clone(),
            super_admin: self.super_admin == 1,
            must_change_password: self.must_change_password == 1,
            disabled: self.disabled == 1,
            locked_until: (self.locked_until > db::now_ms())
                .then(|| db::rfc3339(self.locked_until)),
            totp_enabled: self.totp_enabled == 1,
            created_at: db::rfc3339(self.created_at),
        }
    }
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::PasswordUser)
    }
}

pub async fn by_id(core: &Core, id: &str) -> ApiResult<UserRow> {
    sqlx::query_as::<_, UserRow>(crate::db::sql(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&core.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("user"))
}

pub async fn by_name(core: &Core, username: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(crate::db::sql(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
    )))
    .bind(username)
    .fetch_optional(&core.db.pool)
    .await
}

pub fn validate_username(name: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "username",
            "use 1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit",
        ))
    }
}

pub struct NewUser {
    pub username: String,
    pub full_name: String,
    pub email: String,
    pub role: Role,
    pub super_admin: bool,
    /// `None`: generate a one-time password (returned once).
    pub password: Option<String>,
}

/// Creates a user who must change the password at first login. Returns the user and the
/// one-time password if one was generated.
pub async fn create(
    core: &Core,
    actor: &Actor,
    creator: Option<&Principal>,
    u: NewUser,
) -> ApiResult<(UserView, Option<String>)> {
    validate_username(&u.username)?;
    if u.full_name.len() > 200 {
        return Err(ApiError::field(
            "full_name",
            "must be at most 200 characters",
        ));
    }
    if !u.email.is_empty() && (!u.email.contains('@') || u.email.len() > 254) {
        return Err(ApiError::field(
            "email",
            "must be an e-mail address such as name@example.com",
        ));
    }
    if u.super_admin {
        if u.role != Role::Administrator {
            return Err(ApiError::field(
                "super_admin",
                "only administrators can have the super-administrator scope",
            ));
        }
        if let Some(c) = creator {
            if !c.super_admin {
                return Err(ApiError::forbidden(
                    "only a super administrator can grant the super-administrator scope",
                ));
            }
        }
    }
    let (mut password, generated) = match u.password {
        Some(p) => {
            passwords::check_login_password_strength(&p, &u.username)
                .map_err(|m| ApiError::field("password", m))?;
            (p, None)
        }
        None => {
            let p = passwords::one_time_password();
            (p.clone(), Some(p))
        }
    };
    let password_hash = passwords::hash(&password);
    {
        use zeroize::Zeroize;
        password.zeroize();
    }
    let id = db::new_id();
    let now = db::now_ms();
    let mut tx = core.db.begin_write().await?;
    let res = sqlx::query(
        "INSERT INTO users (id, username, full_name, email, password_hash, role, super_admin, must_change_password, disabled, failed_logins, locked_until, totp_secret_enc, totp_enabled, totp_last_step, recovery_codes, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 0, 0, 0, NULL, 0, 0, '[]', $8, $8)",
    )
    .bind(&id)
    .bind(&u.username)
    .bind(&u.full_name)
    .bind(&u.email)
    .bind(&password_hash)
    .bind(u.role.as_str())
    .bind(b(u.super_admin))
    .bind(now)
    .execute(tx.conn())
    .await;
    if let Err(e) = res {
        if db::is_unique_violation(&e) {
            return Err(ApiError::conflict(
                "username",
                format!("the user name {} is taken", u.username),
            ));
        }
        return Err(e.into());
    }
    core.audit
        .append_in(&mut tx, Event {
            actor,
            action: "user.create",
            outcome: Outcome::Ok,
            object_kind: "user",
            object_id: &id,
            object_name: &u.username,
            detail: serde_json::json!({ "role": u.role.as_str(), "super_admin": u.super_admin }),
        })
        .await?;
    tx.commit().await?;
    Ok((by_id(core, &id).await?.view(), generated))
}

/// On a database with no users: creates `admin` (Administrator, super scope) with a random
/// one-time password, which the caller prints once.
pub async fn bootstrap_admin(core: &Core) -> ApiResult<Option<String>> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&core.db.pool)
        .await?;
    if n > 0 {
        return Ok(None);
    }
    let (_, pw) = create(
        core,
        &Actor::system(),
        None,
        NewUser {
            username: "admin".into(),
            full_name: "Bootstrap administrator".into(),
            email: String::new(),
            role: Role::Administrator,
            super_admin: true,
            password: None,
        },
    )
    .await?;
    Ok(pw)
}
