//! Why: resources (servers, devices, databases) and static resource groups. The creator owns
//! what they add; others see a resource only through a share on it, on a group holding it,
//! or on one of its accounts (the last gives sight of the resource, not of its other accounts).

use serde::{Deserialize, Serialize};

use super::{check_text, AccessView};
use crate::audited::{audit, denied, exec_audited, unique_or};
use crate::core::Core;
use crate::db::{self, WriteTx};
use crate::error::{ApiError, ApiResult};
use crate::identity::{Level, Principal};

pub const TYPES: &[&str] = &["linux", "windows", "network_device", "database", "generic"];

#[derive(Clone, sqlx::FromRow)]
pub struct ResourceRow {
    pub id: String,
    pub name: String,
    pub host: String,
    pub resource_type: String,
    pub description: String,
    pub tags: String,
    pub ssh_port: Option<i64>,
    pub telnet_port: Option<i64>,
    pub rdp_port: Option<i64>,
    pub db_port: Option<i64>,
    pub policy_id: String,
    pub owner_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub const COLUMNS: &str = "id, name, host, resource_type, description, tags, ssh_port, telnet_port, rdp_port, db_port, policy_id, owner_id, created_at, updated_at";

#[derive(Serialize)]
pub struct Ports {
    pub ssh: Option<i64>,
    pub telnet: Option<i64>,
    pub rdp: Option<i64>,
    pub database: Option<i64>,
}

#[derive(Serialize)]
pub struct ResourceView {
    pub id: String,
    pub name: String,
    pub host: String,
    pub resource_type: String,
    pub description: String,
    pub tags: Vec<String>,
    pub ports: Ports,
    pub policy_id: String,
    pub owner_id: String,
    /// The caller's level on the resource itself; null when it is visible only through an
    /// account share.
    pub access: Option<Level>,
    pub created_at: String,
    pub updated_at: String,
}

impl ResourceRow {
    pub fn view(&self, access: Option<Level>) -> ResourceView {
        ResourceView {
            id: self.id.clone(),
            name: self.name.clone(),
            host: self.host.clone(),
            resource_type: self.resource_type.clone(),
            description: self.description.clone(),
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            ports: Ports {
                ssh: self.ssh_port,
                telnet: self.telnet_port,
                rdp: self.rdp_port,
                database: self.db_port,
            },
            policy_id: self.policy_id.clone(),
            owner_id: self.owner_id.clone(),
            access,
            created_at: db::rfc3339(self.created_at),
            updated_at: db::rfc3339(self.updated_at),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResourceInput {
    pub name: Option<String>,
    pub host: Option<String>,
    pub resource_type: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub ports: Option<PortsInput>,
    pub policy_id: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct PortsInput {
    pub ssh: Option<i64>,
    pub telnet: Option<i64>,
    pub rdp: Option<i64>,
    pub database: Option<i64>,
}

pub async fn get(core: &Core, id: &str) -> ApiResult<ResourceRow> {
    sqlx::query_as::<_, ResourceRow>(crate::db::sql(format!(
        "SELECT {COLUMNS} FROM resources WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&core.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("resource"))
}

/// The resource and the caller's level on it; 404 if the caller may not see it at all (so
/// ids of invisible resources are not confirmed to exist).
pub async fn get_for(
    core: &Core,
    p: &Principal,
    id: &str,
) -> ApiResult<(ResourceRow, Option<Level>)> {
    let r = get(core, id).await?;
    let level = super::level_on(core, p, &r.owner_id, None, &r.id).await?;
    if level.is_none() {
        let (n,): (i64,) = sqlx::query_as(crate::db::sql(format!(
            "SELECT COUNT(*) FROM shares s JOIN accounts a ON s.object_kind = 'account' AND s.object_id = a.id WHERE a.resource_id = $2 AND {}",
            super::SUBJECT_FILTER
        )))
        .bind(&p.user_id)
        .bind(&r.id)
        .fetch_one(&core.db.pool)
        .await?;
        if n == 0 {
            return Err(ApiError::not_found("resource"));
        }
    }
    Ok((r, level))
}

pub fn require(level: Option<Level>, need: Level, what: &str) -> ApiResult<()> {
    if level.is_some_and(|l| l >= need) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "You need {} access to {what}.",
            need.as_str()
        )))
    }
}

pub async fn list(core: &Core, p: &Principal) -> ApiResult<Vec<ResourceView>> {
    let rows = sqlx::query_as::<_, ResourceRow>(crate::db::sql(format!(
        "SELECT {COLUMNS} FROM resources ORDER BY name"
    )))
    .fetch_all(&core.db.pool)
    .await?;
    let access = AccessView::load(core, p).await?;
    let mut accounts_of: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    if !p.super_admin {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, resource_id FROM accounts")
            .fetch_all(&core.db.pool)
            .await?;
        for (id, rid) in rows {
            accounts_of.entry(rid).or_default().push(id);
        }
    }
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let level = access.level(p, &r.owner_id, None, &r.id);
            let ids: Vec<&str> = accounts_of
                .get(&r.id)
                .map(|v| v.iter().map(String::as_str).collect())
                .unwrap_or_default();
            (level.is_some() || access.has_account_share_in(&ids)).then(|| r.view(level))
        })
        .collect())
}

fn validate_host(host: &str) -> ApiResult<()> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:_[]".contains(c))
        && !host.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "host",
            "must be a host name or IP address, such as db1.example.com or 10.0.0.5",
        ))
    }
}

fn validate_port(field: &str, p: Option<i64>) -> ApiResult<()> {
    match p {
        Some(n) if !(1..=65535).contains(&n) => Err(ApiError::field(
            field,
            "must be a port number from 1 to 65535",
        )),
        _ => Ok(()),
    }
}

fn validate_tags(tags: &[String]) -> ApiResult<()> {
    if tags.len() > 20 {
        return Err(ApiError::field("tags", "at most 20 tags"));
    }
    for t in tags {
        check_text("tags", t, 1, 40)?;
    }
    Ok(())
}

async fn policy_exists(core: &Core, id: &str) -> ApiResult<()> {
    let found: Option<(String,)> = sqlx::query_as("SELECT id FROM password_policies WHERE id = $1")
        .bind(id)
        .fetch_optional(&core.db.pool)
        .await?;
    found
        .map(|_| ())
        .ok_or_else(|| ApiError::field("policy_id", "no such password policy"))
}

pub async fn create(core: &Core, p: &Principal, input: ResourceInput) -> ApiResult<ResourceView> {
    if !p.role.can_create_resources() {
        return Err(ApiError::forbidden(
            "Only administrators and password administrators can add resources.",
        ));
    }
    let name = input.name.unwrap_or_default().trim().to_string();
    check_text("name", &name, 1, 100)?;
    let host = input.host.unwrap_or_default().trim().to_string();
    validate_host(&host)?;
    core.config
        .resource_networks
        .check_host(&host)
        .map_err(|why| ApiError::field("host", why))?;
    let rtype = input.resource_type.unwrap_or_else(|| "linux".into());
    if !TYPES.contains(&rtype.as_str()) {
        return Err(ApiError::field(
            "resource_type",
            format!("must be one of {}", TYPES.join(", ")),
        ));
    }
    let description = input.description.unwrap_or_default();
    check_text("description", &description, 0, 2000)?;
    let tags = input.tags.unwrap_or_default();
    validate_tags(&tags)?;
    let ports = input.ports.unwrap_or_else(|| default_ports(&rtype));
    for (f, v) in [
        ("ports.ssh", ports.ssh),
        ("ports.telnet", ports.telnet),
        ("ports.rdp", ports.rdp),
        ("ports.database", ports.database),
    ] {
        validate_port(f, v)?;
    }
    let policy_id = input.policy_id.unwrap_or_else(|| "policy-strong".into());
    policy_exists(core, &policy_id).await?;
    let id = db::new_id();
    let now = db::now_ms();
    let mut tx = core.db.begin_write().await?;
    let res = sqlx::query(crate::db::sql(format!("INSERT INTO resources ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)")))
        .bind(&id)
        .bind(&name)
        .bind(&host)
        .bind(&rtype)
        .bind(&description)
        .bind(serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()))
        .bind(ports.ssh)
        .bind(ports.telnet)
        .bind(ports.rdp)
        .bind(ports.database)
        .bind(&policy_id)
        .bind(&p.user_id)
        .bind(now)
        .execute(tx.conn())
        .await;
    unique_or(
        res,
        "name",
        &format!("a resource named {name} already exists"),
    )?;
    audit(
        core,
        &mut tx,
        p,
        "resource.create",
        &id,
        &name,
        serde_json::json!({ "host": host, "type": rtype }),
    )
    .await?;
    tx.commit().await?;
    Ok(get(core, &id).await?.view(Some(Level::Manage)))
}

fn default_ports(rtype: &str) -> PortsInput {
    match rtype {
        "windows" => PortsInput {
            rdp: Some(3389),
            ..Default::default()
        },
        "network_device" => PortsInput {
            ssh: Some(22),
            telnet: Some(23),
            ..Default::default()
        },
        "database" => PortsInput {
            database: Some(5432),
            ..Default::default()
        },
        _ => PortsInput {
            ssh: Some(22),
            ..Default::default()
        },
    }
}

pub async fn update(
    core: &Core,
    p: &Principal,
    id: &str,
    input: ResourceInput,
) -> ApiResult<ResourceView> {
    let (r, level) = get_for(core, p, id).await?;
    if let Err(e) = require(level, Level::Manage, "change this resource") {
        return Err(denied(core, p, "resource.update", "resource", &r.id, &r.name, e).await);
    }
    let name = input
        .name
        .map(|n| n.trim().to_string())
        .unwrap_or(r.name.clone());
    check_text("name", &name, 1, 100)?;
    let host = input
        .host
        .map(|h| h.trim().to_string())
        .unwrap_or(r.host.clone());
    validate_host(&host)?;
    core.config
        .resource_networks
        .check_host(&host)
        .map_err(|why| ApiError::field("host", why))?;
    let rtype = input.resource_type.unwrap_or(r.resource_type.clone());
    if !TYPES.contains(&rtype.as_str()) {
        return Err(ApiError::field(
            "resource_type",
            format!("must be one of {}", TYPES.join(", ")),
        ));
    }
    let description = input.description.unwrap_or(r.description.clone());
    check_text("description", &description, 0, 2000)?;
    let tags = match input.tags {
        Some(t) => {
            validate_tags(&t)?;
            serde_json::to_string(&t).unwrap_or_else(|_| "[]".into())
        }
        None => r.tags.clone(),
    };
    let ports = input.ports.unwrap_or(PortsInput {
        ssh: r.ssh_port,
        telnet: r.telnet_port,
        rdp: r.rdp_port,
        database: r.db_port,
    });
    for (f, v) in [
        ("ports.ssh", ports.ssh),
        ("ports.telnet", ports.telnet),
        ("ports.rdp", ports.rdp),
        ("ports.database", ports.database),
    ] {
        validate_port(f, v)?;
    }
    let policy_id = input.policy_id.unwrap_or(r.policy_id.clone());
    policy_exists(core, &policy_id).await?;
    // A landing server's machine moved: every session through it would go to the new host.
    // That is an administrator's decision, the old pins no longer describe the machine
    // (they are forgotten, so the new one is pinned or approved afresh), and it is an alert.
    let moved = host != r.host;
    let landing_machine = moved
        && !crate::hop_path::landing_servers_where(
            core,
            "primary_resource_id = $1 OR secondary_resource_id = $1",
            &r.id,
        )
        .await?
        .is_empty();
    if landing_machine && !p.role.can_manage_users() {
        let e = ApiError::forbidden(
            "This resource is a landing server's machine: only an administrator changes its host.",
        );
        return Err(denied(core, p, "resource.update", "resource", &r.id, &r.name, e).await);
    }
    let mut tx = core.db.begin_write().await?;
    // (A target that moved keeps its pins: its next connection is refused until an
    // administrator approves the new machine's key.)
    if landing_machine {
        sqlx::query("DELETE FROM host_key_pins WHERE resource_id = $1")
            .bind(&r.id)
            .execute(tx.conn())
            .await?;
    }
    let res = sqlx::query("UPDATE resources SET name = $1, host = $2, resource_type = $3, description = $4, tags = $5, ssh_port = $6, telnet_port = $7, rdp_port = $8, db_port = $9, policy_id = $10, updated_at = $11 WHERE id = $12")
        .bind(&name)
        .bind(&host)
        .bind(&rtype)
        .bind(&description)
        .bind(&tags)
        .bind(ports.ssh)
        .bind(ports.telnet)
        .bind(ports.rdp)
        .bind(ports.database)
        .bind(&policy_id)
        .bind(db::now_ms())
        .bind(&r.id)
        .execute(tx.conn())
        .await;
    unique_or(
        res,
        "name",
        &format!("a resource named {name} already exists"),
    )?;
    audit(
        core,
        &mut tx,
        p,
        "resource.update",
        &r.id,
        &name,
        if landing_machine {
            serde_json::json!({ "previous_name": r.name, "host": host, "previous_host": r.host, "pins_forgotten": true, "alert": true })
        } else {
            serde_json::json!({ "previous_name": r.name, "host": host })
        },
    )
    .await?;
    tx.commit().await?;
    Ok(get(core, id).await?.view(level))
}

pub async fn delete(core: &Core, p: &Principal, id: &str) -> ApiResult<()> {
    let (r, level) = get_for(core, p, id).await?;
    if let Err(e) = require(level, Level::Manage, "delete this resource") {
        return Err(denied(core, p, "resource.delete", "resource", &r.id, &r.name, e).await);
    }
    let landing = crate::hop_path::landing_servers_where(
        core,
        "primary_resource_id = $1 OR secondary_resource_id = $1 OR account_id IN (SELECT id FROM accounts WHERE resource_id = $1)",
        &r.id,
    )
    .await?;
    if !landing.is_empty() {
        return Err(ApiError::conflict(
            "id",
            format!(
                "{} is the machine of landing server {}: change or delete the landing server first",
                r.name,
                landing.join(", ")
            ),
        ));
    }
    exec_audited(core, p, &["DELETE FROM shares WHERE (object_kind = 'resource' AND object_id = $1) OR (object_kind = 'account' AND object_id IN (SELECT id FROM accounts WHERE resource_id = $1))", "DELETE FROM resources WHERE id = $1"], &r.id, "resource.delete", &r.name, serde_json::json!({})).await?;
    core.access.changed(core).await;
    Ok(())
}

// ---- resource groups -------------------------------------------------------------------

#[derive(Clone, sqlx::FromRow)]
pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub owner_id: String,
    pub created_at: i64,
}

#[derive(Serialize)]
pub struct GroupView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub owner_id: String,
    pub resource_ids: Vec<String>,
    pub access: Level,
    pub created_at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub resource_ids: Option<Vec<String>>,
}

async fn group_level(core: &Core, p: &Principal, g: &GroupRow) -> ApiResult<Option<Level>> {
    if p.super_admin || g.owner_id == p.user_id {
        return Ok(Some(Level::Manage));
    }
    let rows = sqlx::query_as::<_, crate::identity::ShareRow>(crate::db::sql(format!(
        "SELECT s.subject_kind, s.object_kind, s.object_id, s.level FROM shares s WHERE {} AND s.object_kind = 'resource_group' AND s.object_id = $2",
        super::SUBJECT_FILTER
    )))
    .bind(&p.user_id)
    .bind(&g.id)
    .fetch_all(&core.db.pool)
    .await?;
    Ok(crate::identity::resolve_level(
        p,
        &g.owner_id,
        &rows,
        None,
        "",
        std::slice::from_ref(&g.id),
    ))
}

pub async fn group_for(core: &Core, p: &Principal, id: &str) -> ApiResult<(GroupRow, Level)> {
    let g = sqlx::query_as::<_, GroupRow>(
        "SELECT id, name, description, owner_id, created_at FROM resource_groups WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&core.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("resource group"))?;
    match group_level(core, p, &g).await? {
        Some(l) => Ok((g, l)),
        None => Err(ApiError::not_found("resource group")),
    }
}

async fn group_view(core: &Core, g: GroupRow, access: Level) -> ApiResult<GroupView> {
    let ids: Vec<(String,)> = sqlx::query_as("SELECT m.resource_id FROM resource_group_members m JOIN resources r ON r.id = m.resource_id WHERE m.group_id = $1 ORDER BY r.name")
        .bind(&g.id)
        .fetch_all(&core.db.pool)
        .await?;
    Ok(GroupView {
        id: g.id,
        name: g.name,
        description: g.description,
        owner_id: g.owner_id,
        resource_ids: ids.into_iter().map(|(i,)| i).collect(),
        access,
        created_at: db::rfc3339(g.created_at),
    })
}

pub async fn list_groups(core: &Core, p: &Principal) -> ApiResult<Vec<GroupView>> {
    let rows = sqlx::query_as::<_, GroupRow>(
        "SELECT id, name, description, owner_id, created_at FROM resource_groups ORDER BY name",
    )
    .fetch_all(&core.db.pool)
    .await?;
    let mut out = Vec::new();
    for g in rows {
        if let Some(l) = group_level(core, p, &g).await? {
            out.push(group_view(core, g, l).await?);
        }
    }
    Ok(out)
}

pub async fn get_group(core: &Core, p: &Principal, id: &str) -> ApiResult<GroupView> {
    let (g, l) = group_for(core, p, id).await?;
    group_view(core, g, l).await
}

/// Adding a resource to a group needs Manage on the resource, or a group could be used to
/// re-share resources its owner does not control.
async fn check_members(core: &Core, p: &Principal, ids: &[String]) -> ApiResult<()> {
    if ids.len() > 10_000 {
        return Err(ApiError::field(
            "resource_ids",
            "at most 10000 resources per group",
        ));
    }
    for rid in ids {
        let r = get(core, rid)
            .await
            .map_err(|_| ApiError::field("resource_ids", format!("no resource with id {rid}")))?;
        let level = super::level_on(core, p, &r.owner_id, None, &r.id).await?;
        if level.is_none_or(|l| l < Level::Manage) {
            return Err(ApiError::forbidden(format!(
                "You need manage access to resource {} to put it in a group.",
                r.name
            )));
        }
    }
    Ok(())
}

async fn set_members(tx: &mut WriteTx, gid: &str, ids: &[String]) -> ApiResult<()> {
    sqlx::query("DELETE FROM resource_group_members WHERE group_id = $1")
        .bind(gid)
        .execute(tx.conn())
        .await?;
    let mut seen = std::collections::HashSet::new();
    for rid in ids.iter().filter(|r| seen.insert(r.as_str())) {
        sqlx::query("INSERT INTO resource_group_members (group_id, resource_id) VALUES ($1, $2)")
            .bind(gid)
            .bind(rid)
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

pub async fn create_group(core: &Core, p: &Principal, input: GroupInput) -> ApiResult<GroupView> {
    if !p.role.can_create_resources() {
        return Err(ApiError::forbidden(
            "Only administrators and password administrators can add resource groups.",
        ));
    }
    let name = input.name.unwrap_or_default().trim().to_string();
    check_text("name", &name, 1, 100)?;
    let description = input.description.unwrap_or_default();
    check_text("description", &description, 0, 2000)?;
    let ids = input.resource_ids.unwrap_or_default();
    check_members(core, p, &ids).await?;
    let id = db::new_id();
    let mut tx = core.db.begin_write().await?;
    let res = sqlx::query("INSERT INTO resource_groups (id, name, description, owner_id, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(&name)
        .bind(&description)
        .bind(&p.user_id)
        .bind(db::now_ms())
        .execute(tx.conn())
        .await;
    unique_or(
        res,
        "name",
        &format!("a resource group named {name} already exists"),
    )?;
    set_members(&mut tx, &id, &ids).await?;
    audit(
        core,
        &mut tx,
        p,
        "resource_group.create",
        &id,
        &name,
        serde_json::json!({ "resources": ids.len() }),
    )
    .await?;
    tx.commit().await?;
    get_group(core, p, &id).await
}

pub async fn update_group(
    core: &Core,
    p: &Principal,
    id: &str,
    input: GroupInput,
) -> ApiResult<GroupView> {
    let (g, level) = group_for(core, p, id).await?;
    if let Err(e) = require(Some(level), Level::Manage, "change this resource group") {
        return Err(denied(
            core,
            p,
            "resource_group.update",
            "resource_group",
            &g.id,
            &g.name,
            e,
        )
        .await);
    }
    let name = input
        .name
        .map(|n| n.trim().to_string())
        .unwrap_or(g.name.clone());
    check_text("name", &name, 1, 100)?;
    let description = input.description.unwrap_or(g.description.clone());
    check_text("description", &description, 0, 2000)?;
    if let Some(ids) = &input.resource_ids {
        check_members(core, p, ids).await?;
    }
    let mut tx = core.db.begin_write().await?;
    let res = sqlx::query("UPDATE resource_groups SET name = $1, description = $2 WHERE id = $3")
        .bind(&name)
        .bind(&description)
        .bind(&g.id)
        .execute(tx.conn())
        .await;
    unique_or(
        res,
        "name",
        &format!("a resource group named {name} already exists"),
    )?;
    if let Some(ids) = &input.resource_ids {
        set_members(&mut tx, &g.id, ids).await?;
    }
    audit(
        core,
        &mut tx,
        p,
        "resource_group.update",
        &g.id,
        &name,
        serde_json::json!({ "resources": input.resource_ids.as_ref().map(|v| v.len()) }),
    )
    .await?;
    tx.commit().await?;
    core.access.changed(core).await;
    get_group(core, p, id).await
}

pub async fn delete_group(core: &Core, p: &Principal, id: &str) -> ApiResult<()> {
    let (g, level) = group_for(core, p, id).await?;
    if let Err(e) = require(Some(level), Level::Manage, "delete this resource group") {
        return Err(denied(
            core,
            p,
            "resource_group.delete",
            "resource_group",
            &g.id,
            &g.name,
            e,
        )
        .await);
    }
    exec_audited(
        core,
        p,
        &[
            "DELETE FROM shares WHERE object_kind = 'resource_group' AND object_id = $1",
            "DELETE FROM resource_groups WHERE id = $1",
        ],
        &g.id,
        "resource_group.delete",
        &g.name,
        serde_json::json!({}),
    )
    .await?;
    core.access.changed(core).await;
    Ok(())
}
