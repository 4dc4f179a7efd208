//! Why: the vault's rules in one place, callable from the API, the CLI and benchmarks alike:
//! resources, resource groups, accounts, shares, password history and the audited *reveal*.
//! Every function takes the calling `Principal` and checks its access itself; callers cannot
//! forget to. Secrets only leave sealed (`Crypto::seal`) or as a `Secret`.

pub mod accounts;
pub mod data_keys;
pub mod policy;
pub mod resources;
pub mod shares;

use std::collections::HashMap;

use crate::core::Core;
use crate::error::ApiResult;
use crate::identity::{resolve_level, Level, Principal, ShareRow};

const SUBJECT_FILTER: &str = "((s.subject_kind = 'user' AND s.subject_id = $1) OR (s.subject_kind = 'group' AND s.subject_id IN (SELECT group_id FROM user_group_members WHERE user_id = $1)))";

/// Everything needed to resolve a principal's level on many objects at once (for lists).
pub struct AccessView {
    shares: Vec<ShareRow>,
    groups_of: HashMap<String, Vec<String>>,
}

impl AccessView {
    pub async fn load(core: &Core, p: &Principal) -> ApiResult<AccessView> {
        if p.super_admin {
            return Ok(AccessView {
                shares: Vec::new(),
                groups_of: HashMap::new(),
            });
        }
        let shares = sqlx::query_as::<_, ShareRow>(crate::db::sql(format!(
            "SELECT s.subject_kind, s.object_kind, s.object_id, s.level FROM shares s WHERE {SUBJECT_FILTER}"
        )))
        .bind(&p.user_id)
        .fetch_all(&core.db.pool)
        .await?;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT resource_id, group_id FROM resource_group_members")
                .fetch_all(&core.db.pool)
                .await?;
        let mut groups_of: HashMap<String, Vec<String>> = HashMap::new();
        for (r, g) in rows {
            groups_of.entry(r).or_default().push(g);
        }
        Ok(AccessView { shares, groups_of })
    }

    pub fn level(
        &self,
        p: &Principal,
        owner_id: &str,
        account_id: Option<&str>,
        resource_id: &str,
    ) -> Option<Level> {
        let groups = self
            .groups_of
            .get(resource_id)
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        resolve_level(p, owner_id, &self.shares, account_id, resource_id, groups)
    }

    /// True if the principal holds any share on an account of this resource (which makes the
    /// resource visible, read-only, without granting access to its other accounts).
    pub fn has_account_share_in(&self, account_ids: &[&str]) -> bool {
        self.shares
            .iter()
            .any(|s| s.object_kind == "account" && account_ids.contains(&s.object_id.as_str()))
    }
}

/// The principal's level on one account (or, with `account_id = None`, one resource), with
/// a query narrowed to that object: the hot path of reveal and session launch.
pub async fn level_on(
    core: &Core,
    p: &Principal,
    owner_id: &str,
    account_id: Option<&str>,
    resource_id: &str,
) -> ApiResult<Option<Level>> {
    if p.super_admin || owner_id == p.user_id {
        return Ok(Some(Level::Manage));
    }
    let shares = sqlx::query_as::<_, ShareRow>(crate::db::sql(format!(
        "SELECT s.subject_kind, s.object_kind, s.object_id, s.level FROM shares s WHERE {SUBJECT_FILTER} AND \
         ((s.object_kind = 'account' AND s.object_id = $2) OR (s.object_kind = 'resource' AND s.object_id = $3) OR \
          (s.object_kind = 'resource_group' AND s.object_id IN (SELECT group_id FROM resource_group_members WHERE resource_id = $3)))"
    )))
    .bind(&p.user_id)
    .bind(account_id.unwrap_or(""))
    .bind(resource_id)
    .fetch_all(&core.db.pool)
    .await?;
    let groups: Vec<String> = shares
        .iter()
        .filter(|s| s.object_kind == "resource_group")
        .map(|s| s.object_id.clone())
        .collect();
    Ok(resolve_level(
        p,
        owner_id,
        &shares,
        account_id,
        resource_id,
        &groups,
    ))
}

/// Shared text checks for names and free text.
pub fn check_text(field: &str, v: &str, min: usize, max: usize) -> ApiResult<()> {
    let n = v.chars().count();
    if n < min || n > max {
        let msg = if min > 0 {
            format!("must be {min}-{max} characters")
        } else {
            format!("must be at most {max} characters")
        };
        return Err(crate::error::ApiError::field(field, msg));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(crate::error::ApiError::field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}
