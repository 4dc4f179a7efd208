//! Why: where a hop chain is resolved. A resource may be associated with the landing server
//! that reaches it; a landing server is reached through the landing server its primary
//! resource is associated with; and so on up to one the gateway reaches directly. This
//! module keeps that graph a set of simple chains: associations that would close a loop are
//! refused when they are configured (naming the loop), and `resolve` turns a target into
//! the ordered list of landing servers a session walks (gateway::hop_chain does the walk).

use std::collections::HashSet;

use serde::Serialize;

use crate::core::Core;
use crate::error::{ApiError, ApiResult};

/// Longer chains are refused: real networks need two or three hops.
pub const MAX_HOPS: usize = 8;

#[derive(sqlx::FromRow, Clone, Debug, Serialize)]
pub struct LandingServer {
    pub id: String,
    pub name: String,
    pub location: String,
    pub notes: String,
    pub primary_resource_id: String,
    pub secondary_resource_id: Option<String>,
    pub account_id: String,
    pub mode: String,
    /// Interactive mode: what to type at this landing server's shell to reach the next hop
    /// (empty: the default command).
    pub ssh_command: String,
    pub telnet_command: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub const COLUMNS: &str = "id, name, location, notes, primary_resource_id, secondary_resource_id, account_id, mode, ssh_command, telnet_command, created_by, created_at, updated_at";

pub async fn get(core: &Core, id: &str) -> ApiResult<LandingServer> {
    sqlx::query_as::<_, LandingServer>(crate::db::sql(format!(
        "SELECT {COLUMNS} FROM landing_servers WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&core.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("landing server"))
}

pub async fn list(core: &Core) -> ApiResult<Vec<LandingServer>> {
    Ok(sqlx::query_as::<_, LandingServer>(crate::db::sql(format!(
        "SELECT {COLUMNS} FROM landing_servers ORDER BY name"
    )))
    .fetch_all(&core.db.pool)
    .await?)
}

/// The landing server that reaches `resource_id`, if any.
pub async fn landing_of(core: &Core, resource_id: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT landing_server_id FROM resource_landing WHERE resource_id = $1")
            .bind(resource_id)
            .fetch_optional(&core.db.pool)
            .await?;
    Ok(row.map(|r| r.0))
}

/// The landing servers between the gateway and `resource_id`, first hop first. Empty: the
/// gateway reaches the resource directly.
pub async fn resolve(core: &Core, resource_id: &str) -> ApiResult<Vec<LandingServer>> {
    let mut chain: Vec<LandingServer> = Vec::new();
    let mut seen = HashSet::new();
    let mut current = resource_id.to_string();
    while let Some(lid) = landing_of(core, &current).await? {
        if !seen.insert(lid.clone()) || chain.len() >= MAX_HOPS {
            // Refused at configuration time; a database edited by hand could still hold one.
            let names: Vec<&str> = chain.iter().rev().map(|l| l.name.as_str()).collect();
            return Err(ApiError::Conflict {
                field: None,
                message: format!(
                    "The landing servers reaching this resource form a loop or a chain longer than {MAX_HOPS} hops ({}); an administrator must fix the associations.",
                    names.join(" -> ")
                ),
            });
        }
        let l = get(core, &lid).await?;
        current = l.primary_resource_id.clone();
        chain.push(l);
    }
    chain.reverse();
    Ok(chain)
}

async fn resource_name(core: &Core, id: &str) -> ApiResult<String> {
    let row: Option<(String,)> = sqlx::query_as("SELECT name FROM resources WHERE id = $1")
        .bind(id)
        .fetch_optional(&core.db.pool)
        .await?;
    Ok(row.map(|r| r.0).unwrap_or_else(|| id.to_string()))
}

/// Names of the landing servers matching `condition` (SQL on `landing_servers`, with `$1`
/// bound to `id`): what would be left dangling by a deletion.
pub async fn landing_servers_where(
    core: &Core,
    condition: &str,
    id: &str,
) -> ApiResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(crate::db::sql(format!(
        "SELECT name FROM landing_servers WHERE {condition} ORDER BY name"
    )))
    .bind(id)
    .fetch_all(&core.db.pool)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Every resource's path at once (for lists), from two queries.
pub struct PathIndex {
    landing_of: std::collections::HashMap<String, String>,
    servers: std::collections::HashMap<String, (String, String)>,
}

impl PathIndex {
    pub async fn load(core: &Core) -> ApiResult<PathIndex> {
        let links: Vec<(String, String)> =
            sqlx::query_as("SELECT resource_id, landing_server_id FROM resource_landing")
                .fetch_all(&core.db.pool)
                .await?;
        let servers: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, name, primary_resource_id FROM landing_servers")
                .fetch_all(&core.db.pool)
                .await?;
        Ok(PathIndex {
            landing_of: links.into_iter().collect(),
            servers: servers
                .into_iter()
                .map(|(id, name, primary)| (id, (name, primary)))
                .collect(),
        })
    }

    /// Landing-server names from the gateway to `resource_id` (bounded against loops).
    pub fn path(&self, resource_id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = resource_id;
        while let Some((name, primary)) = self
            .landing_of
            .get(current)
            .and_then(|lid| self.servers.get(lid))
        {
            if out.len() >= MAX_HOPS {
                break;
            }
            out.push(name.clone());
            current = primary;
        }
        out.reverse();
        out
    }
}

/// Refuses making `resource_id` reached through `landing_id` if that closes a loop: walking
/// from the landing server towards the gateway must never come back to the resource. The
/// message names the loop, e.g. "web-1 -> DC1-jump (on jump-1) -> DC2-jump (on jump-2) ->
/// DC1-jump".
pub async fn check_association(core: &Core, resource_id: &str, landing_id: &str) -> ApiResult<()> {
    let mut names = vec![resource_name(core, resource_id).await?];
    let mut seen = HashSet::new();
    let mut lid = landing_id.to_string();
    loop {
        let l = get(core, &lid).await?;
        let on = resource_name(core, &l.primary_resource_id).await?;
        names.push(format!("{} (on {on})", l.name));
        if l.primary_resource_id == resource_id
            || l.secondary_resource_id.as_deref() == Some(resource_id)
            || !seen.insert(lid.clone())
        {
            return Err(ApiError::field(
                "landing_server_id",
                format!(
                    "that would make a loop: {} -> back to the start. A landing server cannot be reached through itself.",
                    names.join(" -> ")
                ),
            ));
        }
        if names.len() > MAX_HOPS + 1 {
            return Err(ApiError::field(
                "landing_server_id",
                format!("that would make a chain longer than {MAX_HOPS} hops"),
            ));
        }
        match landing_of(core, &l.primary_resource_id).await? {
            Some(next) => lid = next,
            None => return Ok(()),
        }
    }
}

/// Refuses making `new_primary` the primary resource of `landing_id` if the landing server
/// would then be reached through itself.
pub async fn check_primary(core: &Core, landing_id: &str, new_primary: &str) -> ApiResult<()> {
    let mut names = Vec::new();
    let mut current = new_primary.to_string();
    let mut seen = HashSet::new();
    while let Some(lid) = landing_of(core, &current).await? {
        let l = get(core, &lid).await?;
        names.push(l.name.clone());
        if lid == landing_id || !seen.insert(lid.clone()) {
            return Err(ApiError::field(
                "primary_resource_id",
                format!(
                    "that would make a loop: the landing server would be reached through {}",
                    names.join(" -> ")
                ),
            ));
        }
        current = l.primary_resource_id;
    }
    Ok(())
}
