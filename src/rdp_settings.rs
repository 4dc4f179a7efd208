//! Why: RDP targets differ in what they accept (NLA or only TLS), in keyboard layout and in
//! what the organisation allows through the clipboard; these are per-resource settings,
//! and in how the desktop is sized (following the browser tab, or fixed); read when a session
//! starts and changed by administrators (audited).

use crate::core::Core;
use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdpSettings {
    /// 'nla', 'nla_preferred' or 'tls' (see `gateway::rdp::RdpSecurity`).
    pub security: String,
    /// Windows keyboard layout id.
    pub keyboard_layout: i64,
    /// 'off', 'to_target' or 'both'.
    pub clipboard: String,
    /// 'follow' (the desktop follows the browser tab's size) or 'fixed'.
    pub display: String,
    /// The desktop size when `display` is 'fixed'.
    pub fixed_width: i64,
    pub fixed_height: i64,
    /// 'auto' (photographic regions travel as JPEG while they change, then exactly) or
    /// 'lossless' (every region exact from the start, at several times the bytes).
    pub image_quality: String,
    /// 'thrifty' (a flooding desktop is held back half a second after each frame: about 2 %
    /// of a core per session), 'responsive' (50 ms: changes seen sooner, at several times
    /// the CPU) or 'immediate' (never held back: as soon as a native client, at about ten
    /// times the CPU). See `gateway::rdp::pacing::FloodPacing`.
    pub flood_pacing: String,
}

impl Default for RdpSettings {
    fn default() -> Self {
        RdpSettings {
            security: "nla_preferred".into(),
            keyboard_layout: 0x409,
            clipboard: "off".into(),
            display: "follow".into(),
            fixed_width: 1280,
            fixed_height: 800,
            image_quality: "auto".into(),
            flood_pacing: "thrifty".into(),
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
        if !matches!(self.display.as_str(), "follow" | "fixed") {
            return Err(ApiError::field(
                "display",
                "must be follow (the desktop follows the browser tab's size) or fixed",
            ));
        }
        if !matches!(self.image_quality.as_str(), "auto" | "lossless") {
            return Err(ApiError::field(
                "image_quality",
                "must be auto (photographs as JPEG while they change, then exact) or lossless",
            ));
        }
        if gateway::rdp::pacing::FloodPacing::parse(&self.flood_pacing).is_none() {
            return Err(ApiError::field(
                "flood_pacing",
                "must be thrifty (about 2 frames a second under a flood, least CPU), responsive (changes seen sooner, at several times the CPU) or immediate (never held back, about ten times the CPU)",
            ));
        }
        let sides = 200..=i64::from(gateway::desktop::MAX_SIDE);
        if !sides.contains(&self.fixed_width) || self.fixed_width % 2 != 0 {
            return Err(ApiError::field(
                "fixed_width",
                format!(
                    "must be an even number of pixels from 200 to {}",
                    gateway::desktop::MAX_SIDE
                ),
            ));
        }
        if !sides.contains(&self.fixed_height) {
            return Err(ApiError::field(
                "fixed_height",
                format!(
                    "must be a number of pixels from 200 to {}",
                    gateway::desktop::MAX_SIDE
                ),
            ));
        }
        if self.fixed_width * self.fixed_height > i64::from(gateway::desktop::MAX_AREA) {
            return Err(ApiError::field(
                "fixed_height",
                "the desktop may have at most as many pixels as 4096x2160",
            ));
        }
        Ok(())
    }

    /// The desktop size a session starts with, given the browser tab's.
    pub fn start_size(&self, tab: (u16, u16)) -> (u16, u16) {
        if self.display == "fixed" {
            let side = |v: i64| u16::try_from(v).unwrap_or(gateway::desktop::MAX_SIDE);
            return (side(self.fixed_width), side(self.fixed_height));
        }
        gateway::rdp::resize::acceptable(tab.0, tab.1)
    }
}

pub async fn for_resource(core: &Core, resource_id: &str) -> ApiResult<RdpSettings> {
    #[allow(clippy::type_complexity)]
    let row: Option<(String, i64, String, String, i64, i64, String, String)> = sqlx::query_as(
        "SELECT security, keyboard_layout, clipboard, display, fixed_width, fixed_height, image_quality, flood_pacing FROM resource_rdp WHERE resource_id = $1",
    )
    .bind(resource_id)
    .fetch_optional(&core.db.pool)
    .await?;
    Ok(match row {
        None => RdpSettings::default(),
        Some((
            security,
            keyboard_layout,
            clipboard,
            display,
            fixed_width,
            fixed_height,
            image_quality,
            flood_pacing,
        )) => RdpSettings {
            security,
            keyboard_layout,
            clipboard,
            display,
            fixed_width,
            fixed_height,
            image_quality,
            flood_pacing,
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
    sqlx::query("INSERT INTO resource_rdp (resource_id, security, keyboard_layout, clipboard, display, fixed_width, fixed_height, image_quality, flood_pacing, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(resource_id)
        .bind(&s.security)
        .bind(s.keyboard_layout)
        .bind(&s.clipboard)
        .bind(&s.display)
        .bind(s.fixed_width)
        .bind(s.fixed_height)
        .bind(&s.image_quality)
        .bind(&s.flood_pacing)
        .bind(by)
        .bind(crate::db::now_ms())
        .execute(tx.conn())
        .await?;
    Ok(())
}
