//! Why: the gateway, not the user and not a landing server, decides whether the machine it
//! reached is the one it was told about. Each resource has one pin per protocol: its SSH host
//! key (targets and landing servers) and its RDP server certificate, each a `SHA256:`
//! fingerprint, pinned on first use or held for an administrator's approval
//! (`host_key_policy` setting). A mismatch refuses the connection, keeps the key that was
//! offered for the administrator to compare, and is an audit alert.

use serde_json::json;

use crate::audit::{Actor, Event, Outcome};
use crate::config::HostKeyFirstUse;
use crate::core::Core;
use crate::db;
use gateway::broker::SessionInfo;
use gateway::event::Protocol;
use gateway::host_key::{HostKeyObservation, HostKeyPolicy};

/// What a pin identifies: an SSH host key or an RDP server's TLS certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinKind {
    Ssh,
    Rdp,
}

impl PinKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PinKind::Ssh => "ssh",
            PinKind::Rdp => "rdp",
        }
    }

    pub fn parse(s: &str) -> Option<PinKind> {
        match s {
            "ssh" => Some(PinKind::Ssh),
            "rdp" => Some(PinKind::Rdp),
            _ => None,
        }
    }

    /// The pin a session's own target uses (Telnet has none).
    pub fn of(protocol: Protocol) -> Option<PinKind> {
        match protocol {
            Protocol::Ssh => Some(PinKind::Ssh),
            Protocol::Rdp => Some(PinKind::Rdp),
            Protocol::Telnet => None,
        }
    }
}

/// What to accept from `resource_id` for `kind`: its pin, else the first-use setting.
pub async fn host_key_policy(
    core: &Core,
    resource_id: &str,
    kind: PinKind,
) -> Result<HostKeyPolicy, sqlx::Error> {
    let pinned: Option<(String, String)> = sqlx::query_as(
        "SELECT fingerprint, status FROM host_key_pins WHERE resource_id = $1 AND protocol = $2",
    )
    .bind(resource_id)
    .bind(kind.as_str())
    .fetch_optional(&core.db.pool)
    .await?;
    Ok(match (pinned, core.config.host_key_policy) {
        (Some((fp, status)), _) if status == "pinned" => HostKeyPolicy::Pinned(fp),
        (_, HostKeyFirstUse::Trust) => HostKeyPolicy::TrustOnFirstUse,
        (_, HostKeyFirstUse::Approve) => HostKeyPolicy::RequireApproval,
    })
}

/// Pins a first-use key, records one awaiting approval, and raises an alert on a mismatch.
/// `info` names the machine (for a landing server, its resource); `kind` the pin.
pub async fn record_host_key(
    core: Core,
    actor: Actor,
    info: SessionInfo,
    kind: PinKind,
    rx: tokio::sync::oneshot::Receiver<HostKeyObservation>,
) {
    let Ok(obs) = rx.await else { return };
    let (status, fp, action, outcome, detail) = match &obs {
        HostKeyObservation::Matched(_) => return,
        HostKeyObservation::TrustedOnFirstUse(fp) => (
            "pinned",
            fp.clone(),
            "hostkey.pin",
            Outcome::Ok,
            json!({ "fingerprint": fp, "protocol": kind.as_str(), "policy": "trust on first use" }),
        ),
        HostKeyObservation::AwaitingApproval(fp) => (
            "pending",
            fp.clone(),
            "hostkey.pending",
            Outcome::Denied,
            json!({ "fingerprint": fp, "protocol": kind.as_str() }),
        ),
        HostKeyObservation::Mismatch { pinned, presented } => {
            tracing::warn!(resource = %info.resource_name, %pinned, %presented, "SSH host key mismatch: connection refused");
            // Kept for the administrator to compare and, if it checks out, accept.
            let offered = async {
                let mut tx = core.db.begin_write().await?;
                sqlx::query(
                    "UPDATE host_key_pins SET offered_fingerprint = $1, offered_at = $2 WHERE resource_id = $3 AND protocol = $4 AND fingerprint = $5",
                )
                .bind(presented)
                .bind(db::now_ms())
                .bind(&info.resource_id)
                .bind(kind.as_str())
                .bind(pinned)
                .execute(tx.conn())
                .await?;
                tx.commit().await
            };
            if let Err(e) = offered.await {
                tracing::error!(error = %e, "could not record the offered host key");
            }
            // Audited against the session that was refused, like its other events.
            let alert = core
                .audit
                .append(Event {
                    actor: &actor,
                    action: "hostkey.mismatch",
                    outcome: Outcome::Failed,
                    object_kind: "session",
                    object_id: &info.id,
                    object_name: &format!("{}@{}", info.account_name, info.resource_name),
                    detail: json!({ "pinned": pinned, "presented": presented, "protocol": kind.as_str(), "alert": true }),
                })
                .await;
            if let Err(e) = alert {
                tracing::error!(error = %e, "could not audit a host key mismatch");
            }
            return;
        }
    };
    let res = async {
        let mut tx = core.db.begin_write().await?;
        sqlx::query("DELETE FROM host_key_pins WHERE resource_id = $1 AND protocol = $2").bind(&info.resource_id).bind(kind.as_str()).execute(tx.conn()).await?;
        sqlx::query("INSERT INTO host_key_pins (resource_id, protocol, fingerprint, status, decided_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&info.resource_id)
            .bind(kind.as_str())
            .bind(&fp)
            .bind(status)
            .bind(&actor.name)
            .bind(db::now_ms())
            .execute(tx.conn())
            .await?;
        core.audit
            .append_in(&mut tx, Event { actor: &actor, action, outcome, object_kind: "resource", object_id: &info.resource_id, object_name: &info.resource_name, detail })
            .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "could not record a host key");
    }
}

#[derive(serde::Serialize, sqlx::FromRow)]
pub struct HostKeyRow {
    pub resource_id: String,
    /// `ssh` or `rdp` (`PinKind`).
    pub protocol: String,
    pub resource_name: String,
    pub fingerprint: String,
    pub status: String,
    pub decided_by: String,
    pub updated_at: i64,
    /// A different key the target presented since (the connection was refused).
    pub offered_fingerprint: Option<String>,
    pub offered_at: Option<i64>,
}

/// Every pin, for the administrators' list.
pub async fn list(core: &Core) -> Result<Vec<HostKeyRow>, sqlx::Error> {
    sqlx::query_as::<_, HostKeyRow>(
        "SELECT h.resource_id, h.protocol, r.name AS resource_name, h.fingerprint, h.status, h.decided_by, h.updated_at, h.offered_fingerprint, h.offered_at FROM host_key_pins h JOIN resources r ON r.id = h.resource_id ORDER BY r.name, h.protocol",
    )
    .fetch_all(&core.db.pool)
    .await
}
