//! Why: administrators describe landing servers (jump hosts) and which resources they reach;
//! everyone who can see a resource can see the path a session to it will take. Every
//! change is audited; loops and dangling references are refused when configured.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Auth, Body};
use crate::app::App;
use crate::audited;
use crate::error::{ApiError, ApiResult};
use crate::hop_path::{self, LandingServer};
use crate::vault::resources;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LandingInput {
    name: Option<String>,
    location: Option<String>,
    notes: Option<String>,
    primary_resource_id: Option<String>,
    /// "" or null: none.
    #[serde(default)]
    secondary_resource_id: Option<String>,
    account_id: Option<String>,
    mode: Option<String>,
    /// Interactive mode: the commands typed at the shell ({host}, {port}, {username}).
    ssh_command: Option<String>,
    telnet_command: Option<String>,
}

async fn view(app: &App, l: &LandingServer) -> ApiResult<Value> {
    let primary = resources::get(app, &l.primary_resource_id).await?;
    let secondary = match &l.secondary_resource_id {
        Some(id) => resources::get(app, id).await.ok(),
        None => None,
    };
    let user: Option<(String,)> = sqlx::query_as("SELECT username FROM accounts WHERE id = $1")
        .bind(&l.account_id)
        .fetch_optional(&app.db.pool)
        .await?;
    let reaches: Vec<(String, String)> = sqlx::query_as(
        "SELECT r.id, r.name FROM resource_landing rl JOIN resources r ON r.id = rl.resource_id WHERE rl.landing_server_id = $1 ORDER BY r.name",
    )
    .bind(&l.id)
    .fetch_all(&app.db.pool)
    .await?;
    let through = match hop_path::landing_of(app, &l.primary_resource_id).await? {
        Some(id) => hop_path::get(app, &id).await.ok().map(|x| x.name),
        None => None,
    };
    Ok(json!({
        "id": l.id, "name": l.name, "location": l.location, "notes": l.notes, "mode": l.mode,
        "ssh_command": l.ssh_command, "telnet_command": l.telnet_command,
        "primary": { "id": primary.id, "name": primary.name, "host": primary.host, "ssh_port": primary.ssh_port },
        "secondary": secondary.map(|s| json!({ "id": s.id, "name": s.name, "host": s.host, "ssh_port": s.ssh_port })),
        "account": { "id": l.account_id, "username": user.map(|u| u.0) },
        "reaches": reaches.iter().map(|(id, name)| json!({ "id": id, "name": name })).collect::<Vec<_>>(),
        "reached_through": through,
        "created_by": l.created_by,
        "created_at": crate::db::rfc3339(l.created_at), "updated_at": crate::db::rfc3339(l.updated_at),
    }))
}

/// Checks a landing server's fields; `own_id` is the server being changed (for uniqueness).
async fn validate(app: &App, l: &LandingServer, own_id: Option<&str>) -> ApiResult<()> {
    let name = l.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::field("name", "a name of 1 to 100 characters"));
    }
    let clash: Option<(String,)> = sqlx::query_as("SELECT id FROM landing_servers WHERE name = $1")
        .bind(name)
        .fetch_optional(&app.db.pool)
        .await?;
    if clash.is_some_and(|(id,)| Some(id.as_str()) != own_id) {
        return Err(ApiError::conflict(
            "name",
            "another landing server has that name",
        ));
    }
    if l.mode != "tunnel" && l.mode != "interactive" {
        return Err(ApiError::field(
            "mode",
            "the mode is tunnel (SSH forwarding) or interactive (typing ssh/telnet at the landing server's shell)",
        ));
    }
    for (field, cmd) in [
        ("ssh_command", &l.ssh_command),
        ("telnet_command", &l.telnet_command),
    ] {
        if cmd.len() > 500 || cmd.contains(['\r', '\n']) {
            return Err(ApiError::field(field, "one line of at most 500 characters"));
        }
        if !cmd.is_empty() && !cmd.contains("{host}") {
            return Err(ApiError::field(
                field,
                "the command must contain {host} (and usually {port} and {username})",
            ));
        }
    }
    let primary = resources::get(app, &l.primary_resource_id)
        .await
        .map_err(|_| ApiError::field("primary_resource_id", "no such resource"))?;
    if primary.ssh_port.is_none() && (l.mode == "tunnel" || primary.telnet_port.is_none()) {
        return Err(ApiError::field(
            "primary_resource_id",
            if l.mode == "tunnel" {
                format!("{} has no SSH port: tunnel mode logs in to the landing server over SSH (interactive mode can use Telnet)", primary.name)
            } else {
                format!("{} has neither an SSH nor a Telnet port", primary.name)
            },
        ));
    }
    let account: Option<(String, String)> =
        sqlx::query_as("SELECT resource_id, username FROM accounts WHERE id = $1")
            .bind(&l.account_id)
            .fetch_optional(&app.db.pool)
            .await?;
    let username = match account {
        Some((rid, u)) if rid == primary.id => u,
        _ => {
            return Err(ApiError::field(
                "account_id",
                format!("the login account must be an account of {}", primary.name),
            ))
        }
    };
    if let Some(sid) = &l.secondary_resource_id {
        let s = resources::get(app, sid)
            .await
            .map_err(|_| ApiError::field("secondary_resource_id", "no such resource"))?;
        if s.id == primary.id || s.ssh_port.is_none() {
            return Err(ApiError::field(
                "secondary_resource_id",
                "the secondary must be another resource with an SSH port",
            ));
        }
        let same: Option<(String,)> =
            sqlx::query_as("SELECT id FROM accounts WHERE resource_id = $1 AND username = $2")
                .bind(&s.id)
                .bind(&username)
                .fetch_optional(&app.db.pool)
                .await?;
        if same.is_none() {
            return Err(ApiError::field(
                "secondary_resource_id",
                format!("{} has no account {username}: the secondary is logged in to with the same user name", s.name),
            ));
        }
    }
    Ok(())
}

fn apply(l: &mut LandingServer, input: LandingInput) {
    if let Some(v) = input.name {
        l.name = v.trim().to_string();
    }
    if let Some(v) = input.location {
        l.location = v;
    }
    if let Some(v) = input.notes {
        l.notes = v;
    }
    if let Some(v) = input.primary_resource_id {
        l.primary_resource_id = v;
    }
    if let Some(v) = input.secondary_resource_id {
        l.secondary_resource_id = Some(v).filter(|s| !s.is_empty());
    }
    if let Some(v) = input.account_id {
        l.account_id = v;
    }
    if let Some(v) = input.mode {
        l.mode = v;
    }
    if let Some(v) = input.ssh_command {
        l.ssh_command = v.trim().to_string();
    }
    if let Some(v) = input.telnet_command {
        l.telnet_command = v.trim().to_string();
    }
}

/// The landing servers `p` may see: every one for those who configure paths or audit them
/// (administrators, password administrators, auditors); for anyone else, those on the path
/// of a resource they can see (None: all).
async fn visible_to(
    app: &App,
    p: &crate::identity::Principal,
) -> ApiResult<Option<std::collections::HashSet<String>>> {
    if p.super_admin
        || p.role.can_manage_users()
        || p.role.can_create_resources()
        || p.role.can_read_audit()
    {
        return Ok(None);
    }
    let mut on_path = std::collections::HashSet::new();
    for r in resources::list(app, p).await? {
        for l in hop_path::resolve(app, &r.id).await? {
            on_path.insert(l.id);
        }
    }
    Ok(Some(on_path))
}

/// `GET /api/v1/landing-servers`: those the caller may see (`visible_to`).
pub async fn list(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let visible = visible_to(&app, &p).await?;
    let mut out = Vec::new();
    for l in hop_path::list(&app).await? {
        if visible.as_ref().is_none_or(|v| v.contains(&l.id)) {
            out.push(view(&app, &l).await?);
        }
    }
    Ok(Json(json!(out)))
}

/// `GET /api/v1/landing-servers/{id}`: one the caller may see, else 404.
pub async fn show(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let l = hop_path::get(&app, &id).await?;
    if visible_to(&app, &p)
        .await?
        .is_some_and(|v| !v.contains(&l.id))
    {
        return Err(ApiError::not_found("landing server"));
    }
    Ok(Json(view(&app, &l).await?))
}

/// `POST /api/v1/landing-servers`: administrators; audited.
pub async fn create(
    State(app): State<App>,
    Auth(p): Auth,
    Body(input): Body<LandingInput>,
) -> ApiResult<Json<Value>> {
    audited::require_admin(
        &app,
        &p,
        "landing_server.create",
        "landing_server",
        "",
        "Only administrators manage landing servers.",
    )
    .await?;
    let now = crate::db::now_ms();
    let mut l = LandingServer {
        id: crate::db::new_id(),
        name: String::new(),
        location: String::new(),
        notes: String::new(),
        primary_resource_id: String::new(),
        secondary_resource_id: None,
        account_id: String::new(),
        mode: "tunnel".into(),
        ssh_command: String::new(),
        telnet_command: String::new(),
        created_by: p.username.clone(),
        created_at: now,
        updated_at: now,
    };
    apply(&mut l, input);
    validate(&app, &l, None).await?;
    let mut tx = app.db.begin_write().await?;
    sqlx::query("INSERT INTO landing_servers (id, name, location, notes, primary_resource_id, secondary_resource_id, account_id, mode, ssh_command, telnet_command, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
        .bind(&l.id).bind(&l.name).bind(&l.location).bind(&l.notes).bind(&l.primary_resource_id)
        .bind(&l.secondary_resource_id).bind(&l.account_id).bind(&l.mode).bind(&l.ssh_command).bind(&l.telnet_command).bind(&l.created_by)
        .bind(l.created_at).bind(l.updated_at)
        .execute(tx.conn())
        .await?;
    audited::audit(&app, &mut tx, &p, "landing_server.create", &l.id, &l.name, json!({ "primary_resource_id": l.primary_resource_id, "secondary_resource_id": l.secondary_resource_id, "account_id": l.account_id, "mode": l.mode })).await?;
    tx.commit().await?;
    Ok(Json(view(&app, &l).await?))
}

/// `PATCH /api/v1/landing-servers/{id}`: administrators; audited.
pub async fn update(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<LandingInput>,
) -> ApiResult<Json<Value>> {
    audited::require_admin(
        &app,
        &p,
        "landing_server.update",
        "landing_server",
        &id,
        "Only administrators manage landing servers.",
    )
    .await?;
    let mut l = hop_path::get(&app, &id).await?;
    let old_primary = l.primary_resource_id.clone();
    let before = routing(&l);
    apply(&mut l, input);
    // Which machines, login and commands a landing server uses decide who sees the sessions
    // of every resource reached through it: changed on a landing server in use, that is for
    // a super administrator (and an alert).
    let rerouted = routing(&l) != before;
    if rerouted && in_use(&app, &l.id).await? && !p.super_admin {
        let e = ApiError::forbidden("Resources are reached through this landing server: changing its machines, login account, mode or commands needs the super-administrator scope.");
        return Err(audited::denied(
            &app,
            &p,
            "landing_server.update",
            "landing_server",
            &l.id,
            &l.name,
            e,
        )
        .await);
    }
    validate(&app, &l, Some(&l.id)).await?;
    if l.primary_resource_id != old_primary {
        hop_path::check_primary(&app, &l.id, &l.primary_resource_id).await?;
    }
    l.updated_at = crate::db::now_ms();
    let mut tx = app.db.begin_write().await?;
    sqlx::query("UPDATE landing_servers SET name = $1, location = $2, notes = $3, primary_resource_id = $4, secondary_resource_id = $5, account_id = $6, mode = $7, ssh_command = $8, telnet_command = $9, updated_at = $10 WHERE id = $11")
        .bind(&l.name).bind(&l.location).bind(&l.notes).bind(&l.primary_resource_id)
        .bind(&l.secondary_resource_id).bind(&l.account_id).bind(&l.mode).bind(&l.ssh_command).bind(&l.telnet_command).bind(l.updated_at).bind(&l.id)
        .execute(tx.conn())
        .await?;
    audited::audit(&app, &mut tx, &p, "landing_server.update", &l.id, &l.name, json!({ "primary_resource_id": l.primary_resource_id, "secondary_resource_id": l.secondary_resource_id, "account_id": l.account_id, "mode": l.mode, "alert": rerouted })).await?;
    tx.commit().await?;
    Ok(Json(view(&app, &l).await?))
}

/// `DELETE /api/v1/landing-servers/{id}`: refused while resources are reached through it.
pub async fn delete(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    audited::require_admin(
        &app,
        &p,
        "landing_server.delete",
        "landing_server",
        &id,
        "Only administrators manage landing servers.",
    )
    .await?;
    let l = hop_path::get(&app, &id).await?;
    let users: Vec<(String,)> = sqlx::query_as("SELECT r.name FROM resource_landing rl JOIN resources r ON r.id = rl.resource_id WHERE rl.landing_server_id = $1 ORDER BY r.name")
        .bind(&l.id)
        .fetch_all(&app.db.pool)
        .await?;
    if !users.is_empty() {
        return Err(ApiError::conflict("id", format!("{} still reaches {}; associate those resources with another landing server (or none) first", l.name, users.iter().map(|u| u.0.as_str()).collect::<Vec<_>>().join(", "))));
    }
    audited::exec_audited(
        &app,
        &p,
        &["DELETE FROM landing_servers WHERE id = $1"],
        &l.id,
        "landing_server.delete",
        &l.name,
        json!({}),
    )
    .await?;
    Ok(Json(json!({ "deleted": l.id })))
}

/// What decides which machines see the sessions through a landing server.
fn routing(l: &LandingServer) -> [Option<String>; 6] {
    [
        Some(l.primary_resource_id.clone()),
        l.secondary_resource_id.clone(),
        Some(l.account_id.clone()),
        Some(l.mode.clone()),
        Some(l.ssh_command.clone()),
        Some(l.telnet_command.clone()),
    ]
}

/// Whether any resource is reached through landing server `id`.
async fn in_use(app: &App, id: &str) -> ApiResult<bool> {
    let n: Option<(String,)> =
        sqlx::query_as("SELECT resource_id FROM resource_landing WHERE landing_server_id = $1")
            .bind(id)
            .fetch_optional(&app.db.pool)
            .await?;
    Ok(n.is_some())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssociationInput {
    landing_server_id: Option<String>,
}

/// `PUT /api/v1/resources/{id}/landing-server`: `{"landing_server_id": id | null}`.
/// Administrators; audited; a loop is refused naming it.
pub async fn set_resource_landing(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<AssociationInput>,
) -> ApiResult<Json<Value>> {
    audited::require_admin(
        &app,
        &p,
        "resource.landing",
        "resource",
        &id,
        "Only administrators decide how resources are reached.",
    )
    .await?;
    let r = resources::get(&app, &id).await?;
    // The landing server's machine sees the resource's sessions (an interactive one gets the
    // target's password typed at its shell): choosing it is for whoever manages the resource.
    let level = crate::vault::level_on(&app, &p, &r.owner_id, None, &r.id).await?;
    if !p.super_admin && level != Some(crate::identity::Level::Manage) {
        let e = ApiError::forbidden("Choosing the landing server decides which machine sees this resource's sessions: it needs Manage on the resource or the super-administrator scope.");
        return Err(
            audited::denied(&app, &p, "resource.landing", "resource", &r.id, &r.name, e).await,
        );
    }
    let target = input.landing_server_id.filter(|s| !s.is_empty());
    if let Some(lid) = &target {
        hop_path::get(&app, lid)
            .await
            .map_err(|_| ApiError::field("landing_server_id", "no such landing server"))?;
        hop_path::check_association(&app, &r.id, lid).await?;
    }
    let mut tx = app.db.begin_write().await?;
    sqlx::query("DELETE FROM resource_landing WHERE resource_id = $1")
        .bind(&r.id)
        .execute(tx.conn())
        .await?;
    if let Some(lid) = &target {
        sqlx::query("INSERT INTO resource_landing (resource_id, landing_server_id, updated_by, updated_at) VALUES ($1, $2, $3, $4)")
            .bind(&r.id).bind(lid).bind(&p.username).bind(crate::db::now_ms())
            .execute(tx.conn())
            .await?;
    }
    audited::audit(
        &app,
        &mut tx,
        &p,
        "resource.landing",
        &r.id,
        &r.name,
        json!({ "landing_server_id": target, "alert": true }),
    )
    .await?;
    tx.commit().await?;
    path_json(&app, &r.id).await.map(Json)
}

async fn path_json(app: &App, resource_id: &str) -> ApiResult<Value> {
    let r = resources::get(app, resource_id).await?;
    let mut hops = Vec::new();
    for l in hop_path::resolve(app, resource_id).await? {
        let primary = resources::get(app, &l.primary_resource_id).await?;
        let secondary = match &l.secondary_resource_id {
            Some(id) => resources::get(app, id).await.ok(),
            None => None,
        };
        hops.push(json!({
            "id": l.id, "name": l.name, "location": l.location,
            "host": primary.host, "port": primary.ssh_port,
            "secondary": secondary.map(|s| json!({ "name": s.name, "host": s.host, "port": s.ssh_port })),
        }));
    }
    Ok(json!({ "resource": { "id": r.id, "name": r.name, "host": r.host }, "hops": hops }))
}

/// `GET /api/v1/resources/{id}/path`: the landing servers a session to the resource goes
/// through, first hop first (empty: direct).
pub async fn resource_path(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (r, _) = resources::get_for(&app, &p, &id).await?;
    path_json(&app, &r.id).await.map(Json)
}
