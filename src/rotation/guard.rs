//! Why: a privileged rotation changes the password of whatever user the account's *name*
//! says, with the resource's privileged account. A user with Modify on an ordinary account
//! could rename it to `root` (or to the privileged account's own name), press Rotate, and
//! then reveal the new password of a user they were never given. So renaming an account of
//! such a resource needs Manage (`vault::accounts::update`), and the engine itself refuses
//! names a privileged rotation must never change: the privileged account's own and the
//! usual superusers.

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
