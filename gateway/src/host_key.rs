//! Why: what the gateway accepts as a target's identity. SSH host keys and RDP certificates
//! are both judged against the resource's pin here, so the adapters share the rule without
//! importing one another.

use crate::event::FailureKind;

/// What to accept as the target's host key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Only this fingerprint (`SHA256:...`).
    Pinned(String),
    /// No pin yet: accept the key and report it so the caller pins it (audited).
    TrustOnFirstUse,
    /// No pin yet: refuse and report the key so an administrator can approve it.
    RequireApproval,
}

impl HostKeyPolicy {
    /// What to make of the key a server presents (`SHA256:...`): the observation to report,
    /// and whether to accept it.
    pub fn judge(&self, presented: String) -> (HostKeyObservation, bool) {
        match self {
            HostKeyPolicy::Pinned(p) if *p == presented => {
                (HostKeyObservation::Matched(presented), true)
            }
            HostKeyPolicy::Pinned(p) => (
                HostKeyObservation::Mismatch {
                    pinned: p.clone(),
                    presented,
                },
                false,
            ),
            HostKeyPolicy::TrustOnFirstUse => {
                (HostKeyObservation::TrustedOnFirstUse(presented), true)
            }
            HostKeyPolicy::RequireApproval => {
                (HostKeyObservation::AwaitingApproval(presented), false)
            }
        }
    }
}

/// What the adapter saw of the host key, reported once per connection attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeyObservation {
    /// The key matched the pin.
    Matched(String),
    /// First contact, accepted under trust-on-first-use: pin this fingerprint.
    TrustedOnFirstUse(String),
    /// First contact, refused until an administrator approves this fingerprint.
    AwaitingApproval(String),
    /// The key changed: refused.
    Mismatch { pinned: String, presented: String },
}

impl HostKeyObservation {
    /// What the user is told when this key was refused (`server` names the machine); None
    /// for a key that was accepted.
    pub fn refusal(&self, server: &str) -> Option<(FailureKind, String)> {
        match self {
            HostKeyObservation::Mismatch { pinned, presented } => Some((FailureKind::HostKeyMismatch, format!("The host key of {server} has changed: pinned {pinned}, presented {presented}. The connection was refused; an administrator must check the server and accept its new key on the resource's page."))),
            HostKeyObservation::AwaitingApproval(fp) => Some((FailureKind::HostKeyUnknown, format!("{server} presented host key {fp}, which no administrator has approved yet."))),
            _ => None,
        }
    }
}
