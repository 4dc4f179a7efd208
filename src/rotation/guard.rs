//! Why: a privileged rotation changes the password of whatever user the account's *name*
//! says, with the resource's privileged account. A user with Modify on an ordinary account
//! could rename it to `root` (or to the privileged account's own name), press Rotate, and
//! then reveal the new password of a user they were never given. So renaming an account of
//! such a resource needs Manage (`vault::accounts::update`), and the engine itself refuses
//! names a privileged rotation must never change: the privileged account's own and the
//! usual superusers.
//!
//! A rotation over a terminal types secrets at the shell of the account it logs in as, and
//! that shell runs the account's rc files. Whoever can open a session as the account without
//! seeing its password (a Connect share) can write those files, and a `passwd` or `sudo`
//! function there captures what is typed. So a terminal rotation refuses to log in as an
//! account anyone holds Connect on (`connect_holders`).

use crate::app::App;

/// User names that are a system's superuser or service owner somewhere (Unix, PostgreSQL,
/// MariaDB, SQL Server, managed databases). Compared without regard to case.
pub const PROTECTED_NAMES: &[&str] = &[
    "root",
    "toor",
    "admin",
    "administrator",
    "postgres",
    "sa",
    "sys",
    "system",
    "mysql",
    "mariadb.sys",
    "debian-sys-maint",
    "rdsadmin",
    "azure_superuser",
    "cloudsqladmin",
];

/// Whether the privileged account `privileged` may change the password of the user named
/// `account` (a different vault account of the same resource). The error is the job's
/// failure message.
pub fn privileged_may_change(account: &str, privileged: &str) -> Result<(), String> {
    let name = account.trim();
    if name.eq_ignore_ascii_case(privileged.trim()) {
        return Err(format!(
            "{name} is the name of the resource's privileged account: a rotation through the privileged account never changes that account's own password under another account's name"
        ));
    }
    if PROTECTED_NAMES.iter().any(|p| name.eq_ignore_ascii_case(p)) {
        return Err(format!(
            "{name} is a superuser's name, which a rotation through the privileged account never changes (protected: {}). Rotate it as its own account (method passwd, or no privileged account), or rename the account (needs Manage)",
            PROTECTED_NAMES.join(", ")
        ));
    }
    Ok(())
}

/// Who may open sessions as the account without seeing its secret: every user and user
/// group with a Connect share on the account, its resource or one of its resource groups,
/// named for a message ("user engineer", "group dbas"). Conservative: a more specific View
/// share of the same user does not take the name off the list.
pub async fn connect_holders(
    app: &App,
    account_id: &str,
    resource_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT s.subject_kind, COALESCE(u.username, g.name) FROM shares s \
         LEFT JOIN users u ON s.subject_kind = 'user' AND u.id = s.subject_id \
         LEFT JOIN user_groups g ON s.subject_kind = 'group' AND g.id = s.subject_id \
         WHERE s.level = 'connect' AND ((s.object_kind = 'account' AND s.object_id = $1) \
            OR (s.object_kind = 'resource' AND s.object_id = $2) \
            OR (s.object_kind = 'resource_group' AND s.object_id IN \
                (SELECT group_id FROM resource_group_members WHERE resource_id = $2))) \
         ORDER BY s.subject_kind DESC, 2",
    )
    .bind(account_id)
    .bind(resource_id)
    .fetch_all(&app.db.pool)
    .await?;
    let mut names: Vec<String> = rows
        .into_iter()
        .map(|(kind, name)| format!("{kind} {}", name.unwrap_or_else(|| "(deleted)".into())))
        .collect();
    names.dedup();
    Ok(names)
}

/// The refusal for a terminal rotation that would type secrets at `login`'s shell while
/// `holders` may write its rc files.
pub fn shell_not_private(login: &str, holders: &[String]) -> String {
    format!(
        "refused: this rotation types secrets at {login}'s shell, and {} may open sessions as {login} without seeing its password (Connect): a function in its ~/.bashrc would capture them. Rotate through a privileged account that nobody holds Connect on (sudo), or share {login} at View instead of Connect",
        holders.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superusers_and_the_privileged_account_are_never_changed_by_it() {
        for bad in [
            "root",
            "ROOT",
            " postgres",
            "sa",
            "Administrator",
            "mariadb.sys",
        ] {
            assert!(privileged_may_change(bad, "ops").is_err(), "{bad}");
        }
        let e = privileged_may_change("Ops", "ops").expect_err("own name");
        assert!(e.contains("privileged account"), "{e}");
        for ok in ["app", "svc_backup", "rooted", "postgres_app"] {
            assert!(privileged_may_change(ok, "ops").is_ok(), "{ok}");
        }
    }
}
