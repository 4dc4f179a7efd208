//! Why: RDP targets differ in what they accept (NLA or only TLS), in keyboard layout and in
//! what the organisation allows through the clipboard; these are per-resource settings,
//! read when a session starts and changed by administrators (audited).

use crate::app::App;
use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdpSettings {
    /// 'nla', 'nla_preferred' or 'tls' (see `gateway::rdp::RdpSecurity`).
    pub security: String,
    /// Windows keyboard layout id.
    pub keyboard_layout: i64,
    /// 'off', 'to_target' or 'both'.
    pub clipboard: String,
}

impl Default for RdpSettings {
    fn default() -> Self {
        RdpSettings {
            security: "nla_preferred".into(),
            keyboard_layout: 0x409,
            clipboard: "off".into(),
        }
    }
}

impl RdpSettings {
    /// Checks values coming from an administrator; the error names the field.
    pub fn check(&self) -> ApiResult<()> {
        if gateway::rdp::RdpSecurity::parse(&self.security).is_none() {
            return Err(ApiError::field(
                "security",
                "must be nla (NLA required), nla_preferred (NLA, else TLS) or tls (TLS only)",
            ));
        }
        if !(1..=0xFFFF_FFFF).contains(&self.keyboard_layout) {
            return Err(ApiError::field(
                "keyboard_layout",
                "must be a Windows keyboard layout id such as 1033 (0x409, US English)",
            ));
        }
        if !matches!(self.clipboard.as_str(), "off" | "to_target" | "both") {
            return Err(ApiError::field(
                "clipboard",
                "must be off, to_target or both",
            ));
        }
        Ok(())
    }
}

pub async fn for_resource(app: &App, resource_id: &str) -> ApiResult<RdpSettings> {
    let row: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT security, keyboard_layout, clipboard FROM resource_rdp WHERE resource_id = $1",
    )
    .bind(resource_id)
    .fetch_optional(&app.db.pool)
    .await?;
    Ok(match row {
        None => RdpSettings::default(),
        Some((security, keyboard_layout, clipboard)) => RdpSettings {
            security,
            keyboard_layout,
            clipboard,
        },
    })
}

pub async fn set(
    tx: &mut crate::db::WriteTx,
    resource_id: &str,
    s: &RdpSettings,
    by: &str,
) -> ApiResult<()> {
    sqlx::query("DELETE FROM resource_rdp WHERE resource_id = $1")
        .bind(resource_id)
        .execute(tx.conn())
        .await?;
    sqlx::query("INSERT INTO resource_rdp (resource_id, security, keyboard_layout, clipboard, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(resource_id)
        .bind(&s.security)
        .bind(s.keyboard_layout)
        .bind(&s.clipboard)
        .bind(by)
        .bind(crate::db::now_ms())
        .execute(tx.conn())
        .await?;
    Ok(())
}
