//! Why: an RDP resource's settings (security, keyboard layout, clipboard policy, desktop
//! size, image quality, pacing under a flood) are read by anyone who can see the resource, so the Connect page can
//! say what applies, and changed only by administrators, audited.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{Auth, Body};
use crate::app::App;
use crate::error::ApiResult;
use crate::rdp_settings::{self, RdpSettings};

fn to_json(r: &crate::vault::resources::ResourceRow, s: &RdpSettings) -> Value {
    json!({
        "port": r.rdp_port,
        "security": s.security,
        "keyboard_layout": s.keyboard_layout,
        "clipboard": s.clipboard,
        "display": s.display,
        "fixed_width": s.fixed_width,
        "fixed_height": s.fixed_height,
        "image_quality": s.image_quality,
        "flood_pacing": s.flood_pacing,
        "tls_only_warning": (s.security == "tls").then_some(TLS_ONLY),
    })
}

/// What TLS-only security means for users, shown next to the setting.
const TLS_ONLY: &str = "With TLS only, the password is checked by the server after the desktop starts: a wrong password cannot be detected by the gateway, and the server shows its own login error.";

/// `GET /api/v1/resources/{id}/rdp`
pub async fn resource(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (r, _) = crate::vault::resources::get_for(&app, &p, &id).await?;
    let s = rdp_settings::for_resource(&app, &r.id).await?;
    Ok(Json(to_json(&r, &s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdpInput {
    security: Option<String>,
    keyboard_layout: Option<i64>,
    clipboard: Option<String>,
    display: Option<String>,
    fixed_width: Option<i64>,
    fixed_height: Option<i64>,
    image_quality: Option<String>,
    flood_pacing: Option<String>,
}

/// `PUT /api/v1/resources/{id}/rdp`: administrators; audited. Absent fields keep their value.
pub async fn set_resource(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(input): Body<RdpInput>,
) -> ApiResult<Json<Value>> {
    crate::audited::require_admin(
        &app,
        &p,
        "resource.rdp",
        "resource",
        &id,
        "Only administrators change a resource's RDP settings.",
    )
    .await?;
    let r = crate::vault::resources::get(&app, &id).await?;
    let mut s = rdp_settings::for_resource(&app, &r.id).await?;
    if let Some(v) = input.security {
        s.security = v;
    }
    if let Some(v) = input.keyboard_layout {
        s.keyboard_layout = v;
    }
    if let Some(v) = input.clipboard {
        s.clipboard = v;
    }
    if let Some(v) = input.display {
        s.display = v;
    }
    if let Some(v) = input.fixed_width {
        s.fixed_width = v;
    }
    if let Some(v) = input.fixed_height {
        s.fixed_height = v;
    }
    if let Some(v) = input.image_quality {
        s.image_quality = v;
    }
    if let Some(v) = input.flood_pacing {
        s.flood_pacing = v;
    }
    s.check()?;
    let mut tx = app.db.begin_write().await?;
    rdp_settings::set(&mut tx, &r.id, &s, &p.username).await?;
    crate::audited::audit(
        &app,
        &mut tx,
        &p,
        "resource.rdp",
        &r.id,
        &r.name,
        json!({ "security": s.security, "keyboard_layout": s.keyboard_layout, "clipboard": s.clipboard, "display": s.display, "fixed_width": s.fixed_width, "fixed_height": s.fixed_height, "image_quality": s.image_quality, "flood_pacing": s.flood_pacing }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(to_json(&r, &s)))
}
