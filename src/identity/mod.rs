//! Why: who may do what. Roles carry what is global (manage users, read the audit log,
//! create resources); shares carry what is per object (connect to, view, modify or manage an
//! account, a resource or a resource group). The share rule lives in one pure function,
//! `resolve_level`, so the API, the web app and later the gateway all agree on it.

pub mod passwords;
pub mod sessions;
pub mod totp;
pub mod users;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Administrator,
    PasswordAdministrator,
    PasswordAuditor,
    PasswordUser,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Administrator,
        Role::PasswordAdministrator,
        Role::PasswordAuditor,
        Role::PasswordUser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::PasswordAdministrator => "password_administrator",
            Role::PasswordAuditor => "password_auditor",
            Role::PasswordUser => "password_user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Users, user groups, roles, server settings.
    pub fn can_manage_users(self) -> bool {
        self == Role::Administrator
    }
    /// The audit log and (later) reports.
    pub fn can_read_audit(self) -> bool {
        matches!(self, Role::Administrator | Role::PasswordAuditor)
    }
    /// Adding resources and resource groups (the creator owns them).
    pub fn can_create_resources(self) -> bool {
        matches!(self, Role::Administrator | Role::PasswordAdministrator)
    }
    /// Password policies.
    pub fn can_manage_policies(self) -> bool {
        matches!(self, Role::Administrator | Role::PasswordAdministrator)
    }
}

/// Share levels, weakest first. Each includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Open sessions with the account; never see its secret.
    Connect,
    /// Also reveal the secret (with a reason, audited).
    View,
    /// Also change the secret and the account.
    Modify,
    /// Also delete and share.
    Manage,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Connect => "connect",
            Level::View => "view",
            Level::Modify => "modify",
            Level::Manage => "manage",
        }
    }
    pub fn parse(s: &str) -> Option<Level> {
        [Level::Connect, Level::View, Level::Modify, Level::Manage]
            .into_iter()
            .find(|l| l.as_str() == s)
    }
}

/// The authenticated caller of an API request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    pub super_admin: bool,
    pub addr: String,
}

impl Principal {
    pub fn actor(&self) -> crate::audit::Actor {
        crate::audit::Actor {
            id: self.user_id.clone(),
            name: self.username.clone(),
            addr: self.addr.clone(),
        }
    }
}

/// A share that may apply to an object, as loaded for one principal.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ShareRow {
    pub subject_kind: String,
    pub object_kind: String,
    pub object_id: String,
    pub level: String,
}

/// What the principal may do with an account (`account_id = Some`) or a resource
/// (`account_id = None`), given the shares that name the principal or one of its groups.
///
/// Rule (product.md): the most specific share wins (account > resource > resource group),
/// even if it grants less; at the same specificity a user's own share beats its groups'
/// shares; among shares of equal standing the highest level counts. Owners of the resource
/// and super administrators have Manage.
pub fn resolve_level(
    p: &Principal,
    owner_id: &str,
    shares: &[ShareRow],
    account_id: Option<&str>,
    resource_id: &str,
    resource_group_ids: &[String],
) -> Option<Level> {
    if p.super_admin || owner_id == p.user_id {
        return Some(Level::Manage);
    }
    let specificity = |s: &ShareRow| -> Option<u8> {
        match s.object_kind.as_str() {
            "account" if Some(s.object_id.as_str()) == account_id => Some(3),
            "resource" if s.object_id == resource_id => Some(2),
            "resource_group" if resource_group_ids.contains(&s.object_id) => Some(1),
            _ => None,
        }
    };
    let mut best: Option<(u8, bool, Level)> = None; // (specificity, user's own, level)
    for s in shares {
        let (Some(spec), Some(level)) = (specificity(s), Level::parse(&s.level)) else {
            continue;
        };
        let own = s.subject_kind == "user";
        let cand = (spec, own, level);
        best = match best {
            None => Some(cand),
            Some(b) => Some(
                if (cand.0, cand.1) > (b.0, b.1) || ((cand.0, cand.1) == (b.0, b.1) && cand.2 > b.2)
                {
                    cand
                } else {
                    b
                },
            ),
        };
    }
    best.map(|b| b.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Principal {
        Principal {
            user_id: "u1".into(),
            username: "u".into(),
            role: Role::PasswordUser,
            super_admin: false,
            addr: String::new(),
        }
    }
    fn s(subject: &str, kind: &str, id: &str, level: &str) -> ShareRow {
        ShareRow {
            subject_kind: subject.into(),
            object_kind: kind.into(),
            object_id: id.into(),
            level: level.into(),
        }
    }

    #[test]
    fn most_specific_share_wins_even_when_lower() {
        let shares = vec![
            s("user", "resource", "r1", "manage"),
            s("user", "account", "a1", "connect"),
        ];
        assert_eq!(
            resolve_level(&p(), "owner", &shares, Some("a1"), "r1", &[]),
            Some(Level::Connect)
        );
        // Another account on the same resource gets the resource share.
        assert_eq!(
            resolve_level(&p(), "owner", &shares, Some("a2"), "r1", &[]),
            Some(Level::Manage)
        );
        let shares = vec![
            s("user", "resource_group", "g1", "view"),
            s("group", "resource", "r1", "connect"),
        ];
        assert_eq!(
            resolve_level(&p(), "owner", &shares, Some("a1"), "r1", &["g1".into()]),
            Some(Level::Connect)
        );
    }

    #[test]
    fn own_share_beats_group_share_at_same_specificity() {
        let shares = vec![
            s("group", "account", "a1", "manage"),
            s("user", "account", "a1", "connect"),
        ];
        assert_eq!(
            resolve_level(&p(), "owner", &shares, Some("a1"), "r1", &[]),
            Some(Level::Connect)
        );
        let shares = vec![
            s("group", "account", "a1", "view"),
            s("group", "account", "a1", "modify"),
        ];
        assert_eq!(
            resolve_level(&p(), "owner", &shares, Some("a1"), "r1", &[]),
            Some(Level::Modify)
        );
    }

    #[test]
    fn no_share_no_access_owner_and_super_manage() {
        assert_eq!(
            resolve_level(&p(), "owner", &[], Some("a1"), "r1", &[]),
            None
        );
        let unrelated = vec![
            s("user", "account", "a9", "manage"),
            s("user", "resource_group", "g9", "manage"),
        ];
        assert_eq!(
            resolve_level(&p(), "owner", &unrelated, Some("a1"), "r1", &["g1".into()]),
            None
        );
        assert_eq!(
            resolve_level(&p(), "u1", &[], Some("a1"), "r1", &[]),
            Some(Level::Manage)
        );
        let sup = Principal {
            super_admin: true,
            ..p()
        };
        assert_eq!(
            resolve_level(&sup, "owner", &[], Some("a1"), "r1", &[]),
            Some(Level::Manage)
        );
    }

    #[test]
    fn account_share_does_not_grant_the_resource() {
        let shares = vec![s("user", "account", "a1", "manage")];
        assert_eq!(resolve_level(&p(), "owner", &shares, None, "r1", &[]), None);
    }
}
