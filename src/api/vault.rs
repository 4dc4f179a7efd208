//! Why: thin HTTP handlers over `crate::vault`; all access rules live there.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Auth, Body};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::vault::accounts::{self, AccountInput};
use crate::vault::resources::{self, GroupInput, ResourceInput};
use crate::vault::shares::{self, ShareInput};

type J = ApiResult<Json<Value>>;

fn ok<T: serde::Serialize>(v: T) -> J {
    Ok(Json(json!(v)))
}

pub async fn list_resources(State(app): State<App>, Auth(p): Auth) -> J {
    ok(resources::list(&app, &p).await?)
}
pub async fn create_resource(
    State(app): State<App>,
    Auth(p): Auth,
    Body(i): Body<ResourceInput>,
) -> J {
    ok(resources::create(&app, &p, i).await?)
}
pub async fn get_resource(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> J {
    let (r, l) = resources::get_for(&app, &p, &id).await?;
    ok(r.view(l))
}
pub async fn update_resource(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(i): Body<ResourceInput>,
) -> J {
    ok(resources::update(&app, &p, &id, i).await?)
}
pub async fn delete_resource(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> J {
    resources::delete(&app, &p, &id).await?;
    ok(json!({ "ok": true }))
}
pub async fn resource_accounts(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> J {
    resources::get_for(&app, &p, &id).await?;
    ok(accounts::list(&app, &p, Some(&id)).await?)
}
pub async fn create_account(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(i): Body<AccountInput>,
) -> J {
    ok(accounts::create(&app, &p, &id, i).await?)
}

pub async fn list_rgroups(State(app): State<App>, Auth(p): Auth) -> J {
    ok(resources::list_groups(&app, &p).await?)
}
pub async fn create_rgroup(State(app): State<App>, Auth(p): Auth, Body(i): Body<GroupInput>) -> J {
    ok(resources::create_group(&app, &p, i).await?)
}
pub async fn get_rgroup(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> J {
    ok(resources::get_group(&app, &p, &id).await?)
}
pub async fn update_rgroup(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(i): Body<GroupInput>,
) -> J {
    ok(resources::update_group(&app, &p, &id, i).await?)
}
pub async fn delete_rgroup(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> J {
    resources::delete_group(&app, &p, &id).await?;
    ok(json!({ "ok": true }))
}

#[derive(Deserialize)]
pub struct AccountFilter {
    resource_id: Option<String>,
}

pub async fn list_accounts(
    State(app): State<App>,
    Auth(p): Auth,
    Query(f): Query<AccountFilter>,
) -> J {
    ok(accounts::list(&app, &p, f.resource_id.as_deref()).await?)
}
pub async fn get_account(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> J {
    ok(accounts::show(&app, &p, &id).await?)
}
pub async fn update_account(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(i): Body<AccountInput>,
) -> J {
    ok(accounts::update(&app, &p, &id, i).await?)
}
pub async fn delete_account(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> J {
    accounts::delete(&app, &p, &id).await?;
    ok(json!({ "ok": true }))
}
pub async fn set_secret(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(i): Body<AccountInput>,
) -> J {
    ok(accounts::set_secret(&app, &p, &id, i).await?)
}
pub async fn history(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> J {
    ok(accounts::history(&app, &p, &id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevealInput {
    #[serde(default)]
    reason: String,
}

/// The one response that carries a vault secret, by design (View level, reason, audited).
pub async fn reveal(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(i): Body<RevealInput>,
) -> J {
    let r = accounts::reveal(&app, &p, &id, &i.reason).await?;
    let text = |s: &secret::Secret| -> ApiResult<String> {
        s.expose_str()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored secret is not UTF-8")))
    };
    let passphrase = match &r.passphrase {
        Some(pp) => Some(text(pp)?),
        None => None,
    };
    Ok(Json(
        json!({ "secret_kind": r.kind, "secret": text(&r.secret)?, "passphrase": passphrase }),
    ))
}

#[derive(Deserialize)]
pub struct ShareFilter {
    object_kind: Option<String>,
    object_id: Option<String>,
}

pub async fn list_shares(State(app): State<App>, Auth(p): Auth, Query(f): Query<ShareFilter>) -> J {
    let kind = f.object_kind.ok_or_else(|| {
        ApiError::field(
            "object_kind",
            "required: account, resource or resource_group",
        )
    })?;
    let id = f
        .object_id
        .ok_or_else(|| ApiError::field("object_id", "required"))?;
    ok(shares::list(&app, &p, &kind, &id).await?)
}
pub async fn grant_share(State(app): State<App>, Auth(p): Auth, Body(i): Body<ShareInput>) -> J {
    ok(shares::grant(&app, &p, i).await?)
}
pub async fn revoke_share(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> J {
    shares::revoke(&app, &p, &id).await?;
    ok(json!({ "ok": true }))
}
