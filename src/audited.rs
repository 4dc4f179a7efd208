//! Why: every change to the vault or to users is written together with its audit record, and
//! every refusal leaves one too. These helpers are the few shapes that takes, so handlers do
//! not each repeat "begin, write, audit, commit".

use crate::audit::{Actor, Event, Outcome};
use crate::core::Core;
use crate::db::{self, WriteTx};
use crate::error::{ApiError, ApiResult};
use crate::identity::Principal;

/// Appends an `ok` event for `action` on an object inside `tx`. The object kind is the
/// action's first word (`resource.create` -> `resource`).
pub async fn audit(
    core: &Core,
    tx: &mut WriteTx,
    p: &Principal,
    action: &str,
    id: &str,
    name: &str,
    detail: serde_json::Value,
) -> ApiResult<()> {
    audit_outcome(core, tx, p, action, Outcome::Ok, id, name, detail).await
}

/// Like `audit`, for events whose outcome may be a failure (e.g. a reveal that could not
/// decrypt).
#[allow(clippy::too_many_arguments)]
pub async fn audit_outcome(
    core: &Core,
    tx: &mut WriteTx,
    p: &Principal,
    action: &str,
    outcome: Outcome,
    id: &str,
    name: &str,
    detail: serde_json::Value,
) -> ApiResult<()> {
    let kind = action.split('.').next().unwrap_or("object");
    core.audit
        .append_in(
            tx,
            Event {
                actor: &p.actor(),
                action,
                outcome,
                object_kind: kind,
                object_id: id,
                object_name: name,
                detail,
            },
        )
        .await?;
    Ok(())
}

/// Runs `statements` (each taking the object id as `$1`) and the audit record in one
/// transaction.
pub async fn exec_audited(
    core: &Core,
    p: &Principal,
    statements: &[&'static str],
    id: &str,
    action: &str,
    name: &str,
    detail: serde_json::Value,
) -> ApiResult<()> {
    let mut tx = core.db.begin_write().await?;
    for sql in statements {
        sqlx::query(*sql).bind(id).execute(tx.conn()).await?;
    }
    audit(core, &mut tx, p, action, id, name, detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Appends an event about the acting user's own account (logout, password change, 2FA).
pub async fn audit_self(
    core: &Core,
    tx: &mut WriteTx,
    actor: &Actor,
    action: &str,
    outcome: Outcome,
    detail: serde_json::Value,
) -> ApiResult<()> {
    core.audit
        .append_in(
            tx,
            Event {
                actor,
                action,
                outcome,
                object_kind: "user",
                object_id: &actor.id,
                object_name: &actor.name,
                detail,
            },
        )
        .await?;
    Ok(())
}

/// Records a refused action in the audit log (with the object it concerned), then returns the
/// refusal marked as audited so the generic rejected-request record is not written twice.
pub async fn denied(
    core: &Core,
    p: &Principal,
    action: &str,
    kind: &str,
    id: &str,
    name: &str,
    err: ApiError,
) -> ApiError {
    let r = core
        .audit
        .append(Event {
            actor: &p.actor(),
            action,
            outcome: Outcome::Denied,
            object_kind: kind,
            object_id: id,
            object_name: name,
            detail: serde_json::json!({}),
        })
        .await;
    match r {
        Ok(_) => ApiError::Audited(Box::new(err)),
        Err(e) => e.into(),
    }
}

/// Maps a unique-constraint violation to a 409 naming the field.
pub fn unique_or(
    res: Result<sqlx::any::AnyQueryResult, sqlx::Error>,
    field: &str,
    msg: &str,
) -> ApiResult<()> {
    match res {
        Ok(_) => Ok(()),
        Err(e) if db::is_unique_violation(&e) => Err(ApiError::conflict(field, msg)),
        Err(e) => Err(e.into()),
    }
}

/// Administrators only: anyone else gets a 403 with `message`, and the refusal is audited
/// against the object (`kind`, `id`).
pub async fn require_admin(
    core: &Core,
    p: &Principal,
    action: &str,
    kind: &str,
    id: &str,
    message: &str,
) -> ApiResult<()> {
    if p.role.can_manage_users() {
        return Ok(());
    }
    Err(denied(core, p, action, kind, id, "", ApiError::forbidden(message)).await)
}

/// A script that types a secret inside other text (`LogonScript::embeds_secret`) may be saved
/// by a super administrator only; anyone else gets a 403 naming the field, audited. Returns
/// whether the script embeds one, for the caller's audit record to carry as an alert.
pub async fn require_super_for_embedded_secret(
    core: &Core,
    p: &Principal,
    action: &str,
    kind: &str,
    id: &str,
    script: Option<&gateway::telnet::logon::LogonScript>,
) -> ApiResult<bool> {
    if !script.is_some_and(|s| s.embeds_secret()) {
        return Ok(false);
    }
    if p.super_admin {
        return Ok(true);
    }
    let e = ApiError::forbidden("This script types a secret inside other text (a command line), where the target's shell, history and process list would see it. Type secrets as the whole answer to a prompt ({password}, or {account}:{new_password} for chpasswd); only a super administrator may save a script that does otherwise.");
    Err(denied(core, p, action, kind, id, "", e).await)
}
