//! Why: MariaDB accounts are rotated with `ALTER USER`, run
//! as the resource's privileged account from the vault, or with `SET PASSWORD` by the
//! account itself. The new password is sent as its `mysql_native_password` hash computed
//! here (`*` + SHA1(SHA1(password)), as the server stores it), so the plaintext never reaches
//! the server's query or general log; a login with it proves it works. A user name that
//! exists for several hosts (`'app'@'%'`, `'app'@'localhost'`) is changed for every one.
//! Oracle MySQL reads these statements differently and is refused (`check_server`).

use std::time::Duration;

use sha1::{Digest, Sha1};
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::{ConnectOptions, Connection};

use secret::Secret;

use super::LoginError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A MariaDB server, and the privileged account that changes passwords on it (None: each
/// account changes its own, logged in with its current password).
pub struct MyTarget {
    pub host: String,
    pub port: u16,
    /// Empty: no default database.
    pub database: String,
    pub tls: MySqlSslMode,
    /// The CA certificate(s) to check the server's against, PEM (None: the public roots).
    pub ca: Option<Vec<u8>>,
    pub admin: Option<(String, Secret)>,
}

/// `db_tls` setting values as sqlx modes. `require` checks the certificate against the CA.
pub fn tls_mode(s: &str) -> Option<MySqlSslMode> {
    Some(match s {
        "disable" => MySqlSslMode::Disabled,
        "prefer" => MySqlSslMode::Preferred,
        "require" => MySqlSslMode::VerifyCa,
        "verify_full" => MySqlSslMode::VerifyIdentity,
        _ => return None,
    })
}

/// The `mysql_native_password` form of a password: `*` and the upper-case hex of
/// SHA1(SHA1(password)).
pub fn native_hash(password: &[u8]) -> String {
    let inner = Sha1::digest(password);
    let outer = Sha1::digest(inner);
    format!("*{}", hex::encode_upper(outer))
}

/// Refuses anything but MariaDB, from the server's version string. Oracle MySQL 5.7.6 and
/// later take `IDENTIFIED BY PASSWORD '<hash>'` / `SET PASSWORD = '<hash>'` as the literal
/// new password (or reject the syntax): the account would be locked out with the vault
/// holding a password the server does not know. Until MySQL's own statements are supported,
/// its servers are refused before anything is changed.
pub fn check_server(version: &str) -> Result<(), String> {
    if version.to_ascii_lowercase().contains("mariadb") {
        Ok(())
    } else {
        Err(format!(
            "the server says it is version \u{201c}{}\u{201d}, which is not MariaDB: rotation sends MariaDB's native password hash, which Oracle MySQL 5.7.6 and later would take as the literal new password and lock the account out. Oracle MySQL is not supported yet; nothing was changed",
            version.chars().filter(|c| !c.is_control()).take(80).collect::<String>()
        ))
    }
}

/// Asks the connected server its version and refuses it unless it is MariaDB.
async fn require_mariadb(c: &mut sqlx::MySqlConnection) -> Result<(), String> {
    let (version,): (String,) = sqlx::query_as("SELECT CAST(VERSION() AS CHAR)")
        .fetch_one(&mut *c)
        .await
        .map_err(|e| format!("could not ask the server its version ({e})"))?;
    check_server(&version)
}

/// A string as a quoted SQL literal (MariaDB's default mode: backslash and quote escaped).
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

impl MyTarget {
    async fn connect(
        &self,
        user: &str,
        password: &Secret,
    ) -> Result<sqlx::MySqlConnection, LoginError> {
        let pw = password
            .expose_str()
            .ok_or_else(|| LoginError::Refused("the secret is not UTF-8 text".into()))?;
        let mut opts = MySqlConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(user)
            .password(pw)
            .ssl_mode(self.tls)
            .disable_statement_logging();
        if !self.database.is_empty() {
            opts = opts.database(&self.database);
        }
        if let Some(pem) = &self.ca {
            opts = opts.ssl_ca_from_pem(pem.clone());
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, opts.connect()).await {
            Err(_) => Err(LoginError::Unreachable(format!(
                "no answer from {}:{} within {} s",
                self.host,
                self.port,
                CONNECT_TIMEOUT.as_secs()
            ))),
            Ok(Ok(c)) => Ok(c),
            Ok(Err(sqlx::Error::Database(d))) => Err(LoginError::Refused(d.message().to_string())),
            Ok(Err(e)) => Err(LoginError::Unreachable(e.to_string())),
        }
    }

    /// Logs in as `user` with `password` (and leaves).
    pub async fn login(&self, user: &str, password: &Secret) -> Result<(), LoginError> {
        let c = self.connect(user, password).await?;
        let _ = c.close().await;
        Ok(())
    }

    /// Sets `user`'s password for every host it is defined for (as the privileged account),
    /// or its own (with its `current` password).
    pub async fn change(
        &self,
        user: &str,
        current: &Secret,
        new: &Secret,
    ) -> Result<(), super::ChangeError> {
        use super::ChangeError;
        let hash = native_hash(new.expose());
        let db_error = |e: sqlx::Error| match e {
            sqlx::Error::Database(d) => d.message().to_string(),
            other => other.to_string(),
        };
        let Some((admin, admin_pw)) = &self.admin else {
            let mut c = self.connect(user, current).await.map_err(|e| {
                ChangeError::untouched(format!(
                    "{user} could not log in to change its password ({e})"
                ))
            })?;
            if let Err(e) = require_mariadb(&mut c).await {
                let _ = c.close().await;
                return Err(ChangeError::untouched(e));
            }
            let done = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "SET PASSWORD = {}",
                quote(&hash)
            )))
            .execute(&mut c)
            .await;
            let _ = c.close().await;
            return done.map(|_| ()).map_err(|e| db_error(e).into());
        };
        let mut c = self.connect(admin, admin_pw).await.map_err(|e| {
            ChangeError::untouched(format!(
                "{admin} could not log in to change the password ({e})"
            ))
        })?;
        if let Err(e) = require_mariadb(&mut c).await {
            let _ = c.close().await;
            return Err(ChangeError::untouched(e));
        }
        let hosts: Result<Vec<(String,)>, _> =
            sqlx::query_as("SELECT CAST(Host AS CHAR) FROM mysql.user WHERE User = ?")
                .bind(user)
                .fetch_all(&mut c)
                .await;
        let hosts = match hosts {
            Ok(h) if h.is_empty() => {
                let _ = c.close().await;
                return Err(ChangeError::untouched(format!(
                    "there is no user {user} on the server"
                )));
            }
            Ok(h) => h,
            Err(e) => {
                let _ = c.close().await;
                return Err(ChangeError::untouched(format!(
                    "{admin} cannot read the server's users ({})",
                    db_error(e)
                )));
            }
        };
        for (host,) in hosts {
            let sql = format!(
                "ALTER USER {}@{} IDENTIFIED BY PASSWORD {}",
                quote(user),
                quote(&host),
                quote(&hash)
            );
            if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
            {
                let _ = c.close().await;
                return Err(format!("'{user}'@'{host}': {}", db_error(e)).into());
            }
        }
        let _ = c.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_hash_is_the_servers() {
        // Computed independently with Python's hashlib
        // ('*' + sha1(sha1(b"pencil").digest()).hexdigest().upper()); the integration test
        // logs in with a rotated password, which MariaDB checks against this hash.
        assert_eq!(
            native_hash(b"pencil"),
            "*7614BE58636C810A9D8970A50B3B2A78450413E4"
        );
    }

    #[test]
    fn only_mariadb_is_rotated() {
        for mariadb in [
            "10.11.6-MariaDB-0+deb12u1",
            "11.4.2-MariaDB",
            "5.5.5-10.6.12-MariaDB-log",
        ] {
            assert!(check_server(mariadb).is_ok(), "{mariadb}");
        }
        for mysql in ["8.0.36", "5.7.44-log", "8.4.0-commercial", "5.7.6"] {
            let e = check_server(mysql).expect_err(mysql);
            assert!(e.contains("not MariaDB") && e.contains(mysql), "{e}");
        }
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote("a'b\\c"), "'a''b\\\\c'");
    }
}
