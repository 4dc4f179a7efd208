//! Why: shares grant a user or a user group a level (connect, view, modify, manage) on an
//! account, a resource or a resource group. Only someone with Manage on the object may share
//! it or see who it is shared with; every grant and revocation is audited.

use serde::{Deserialize, Serialize};

use super::resources::{self, require};
use crate::audited::{audit, denied};
use crate::core::Core;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::identity::{Level, Principal};

#[derive(Serialize, sqlx::FromRow)]
pub struct ShareView {
    pub id: String,
    pub subject_kind: String,
    pub subject_id: String,
    pub subject_name: String,
    pub object_kind: String,
    pub object_id: String,
    pub level: String,
    pub created_by: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareInput {
    pub subject_kind: String,
    pub subject_id: String,
    pub object_kind: String,
    pub object_id: String,
    pub level: String,
}

/// The caller's level on an object, its display name, and 404 if it cannot see it.
async fn object_level(
    core: &Core,
    p: &Principal,
    kind: &str,
    id: &str,
) -> ApiResult<(Option<Level>, String)> {
    match kind {
        "account" => {
            let (a, r, l) = super::accounts::get_for(core, p, id).await?;
            Ok((Some(l), format!("{}@{}", a.username, r.name)))
        }
        "resource" => {
            let (r, l) = resources::get_for(core, p, id).await?;
            Ok((l, r.name))
        }
        "resource_group" => {
            let (g, l) = resources::group_for(core, p, id).await?;
            Ok((Some(l), g.name))
        }
        _ => Err(ApiError::field(
            "object_kind",
            "must be account, resource or resource_group",
        )),
    }
}

pub async fn list(core: &Core, p: &Principal, kind: &str, id: &str) -> ApiResult<Vec<ShareView>> {
    let (level, _) = object_level(core, p, kind, id).await?;
    require(level, Level::Manage, "see who this is shared with")?;
    Ok(sqlx::query_as::<_, ShareView>(
        "SELECT s.id, s.subject_kind, s.subject_id, COALESCE(u.username, g.name, '?') AS subject_name, s.object_kind, s.object_id, s.level, s.created_by \
         FROM shares s LEFT JOIN users u ON s.subject_kind = 'user' AND u.id = s.subject_id LEFT JOIN user_groups g ON s.subject_kind = 'group' AND g.id = s.subject_id \
         WHERE s.object_kind = $1 AND s.object_id = $2 ORDER BY subject_name",
    )
    .bind(kind)
    .bind(id)
    .fetch_all(&core.db.pool)
    .await?)
}

/// Grants (or changes) a share. Sharing again to the same subject replaces the level.
pub async fn grant(core: &Core, p: &Principal, s: ShareInput) -> ApiResult<ShareView> {
    let level = Level::parse(&s.level)
        .ok_or_else(|| ApiError::field("level", "must be connect, view, modify or manage"))?;
    let (have, obj_name) = object_level(core, p, &s.object_kind, &s.object_id).await?;
    if let Err(e) = require(have, Level::Manage, "share this") {
        return Err(denied(
            core,
            p,
            "share.grant",
            &s.object_kind,
            &s.object_id,
            &obj_name,
            e,
        )
        .await);
    }
    let subject_name: Option<(String,)> = match s.subject_kind.as_str() {
        "user" => {
            sqlx::query_as("SELECT username FROM users WHERE id = $1")
                .bind(&s.subject_id)
                .fetch_optional(&core.db.pool)
                .await?
        }
        "group" => {
            sqlx::query_as("SELECT name FROM user_groups WHERE id = $1")
                .bind(&s.subject_id)
                .fetch_optional(&core.db.pool)
                .await?
        }
        _ => return Err(ApiError::field("subject_kind", "must be user or group")),
    };
    let (subject_name,) = subject_name.ok_or_else(|| {
        ApiError::field("subject_id", format!("no {} with that id", s.subject_kind))
    })?;
    let mut tx = core.db.begin_write().await?;
    sqlx::query("DELETE FROM shares WHERE subject_kind = $1 AND subject_id = $2 AND object_kind = $3 AND object_id = $4")
        .bind(&s.subject_kind)
        .bind(&s.subject_id)
        .bind(&s.object_kind)
        .bind(&s.object_id)
        .execute(tx.conn())
        .await?;
    let id = db::new_id();
    sqlx::query("INSERT INTO shares (id, subject_kind, subject_id, object_kind, object_id, level, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&id)
        .bind(&s.subject_kind)
        .bind(&s.subject_id)
        .bind(&s.object_kind)
        .bind(&s.object_id)
        .bind(level.as_str())
        .bind(&p.username)
        .bind(db::now_ms())
        .execute(tx.conn())
        .await?;
    audit(core, &mut tx, p, "share.grant", &s.object_id, &obj_name, serde_json::json!({ "object_kind": s.object_kind, "to": subject_name, "to_kind": s.subject_kind, "level": level.as_str() })).await?;
    tx.commit().await?;
    Ok(ShareView {
        id,
        subject_kind: s.subject_kind,
        subject_id: s.subject_id,
        subject_name,
        object_kind: s.object_kind,
        object_id: s.object_id,
        level: level.as_str().into(),
        created_by: p.username.clone(),
    })
}

pub async fn revoke(core: &Core, p: &Principal, share_id: &str) -> ApiResult<()> {
    let row: Option<(String, String, String, String)> = sqlx::query_as(
        "SELECT object_kind, object_id, subject_kind, subject_id FROM shares WHERE id = $1",
    )
    .bind(share_id)
    .fetch_optional(&core.db.pool)
    .await?;
    let (kind, oid, skind, sid) = row.ok_or_else(|| ApiError::not_found("share"))?;
    let (have, obj_name) = object_level(core, p, &kind, &oid).await?;
    if let Err(e) = require(have, Level::Manage, "change who this is shared with") {
        return Err(denied(core, p, "share.revoke", &kind, &oid, &obj_name, e).await);
    }
    let mut tx = core.db.begin_write().await?;
    sqlx::query("DELETE FROM shares WHERE id = $1")
        .bind(share_id)
        .execute(tx.conn())
        .await?;
    audit(
        core,
        &mut tx,
        p,
        "share.revoke",
        &oid,
        &obj_name,
        serde_json::json!({ "object_kind": kind, "from_kind": skind, "from": sid }),
    )
    .await?;
    tx.commit().await?;
    core.access.changed(core).await;
    Ok(())
}
