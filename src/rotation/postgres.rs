//! Why: PostgreSQL roles are rotated with `ALTER ROLE ... PASSWORD`, run as the resource's
//! privileged account from the vault. The new password is sent as a SCRAM-SHA-256 verifier
//! computed here (as `psql`'s `\password` does), so the plaintext never reaches the
//! server's statement log; a login with it proves it works.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection};

use secret::Secret;

/// How long a connection to the database may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Iterations of the SCRAM verifier (PostgreSQL's default).
const SCRAM_ITERATIONS: u32 = 4096;

/// A PostgreSQL server, and the privileged account that changes passwords on it (None: each
/// role changes its own, logged in with its current password).
pub struct PgTarget {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub tls: PgSslMode,
    /// The CA certificate(s) to check the server's against, PEM (None: the public roots).
    pub ca: Option<Vec<u8>>,
    pub admin: Option<(String, Secret)>,
}

pub use super::LoginError;

/// `db_tls` setting values as sqlx modes. `require` checks the certificate against the CA
/// (sqlx's own `Require` would take any certificate).
pub fn tls_mode(s: &str) -> Option<PgSslMode> {
    Some(match s {
        "disable" => PgSslMode::Disable,
        "prefer" => PgSslMode::Prefer,
        "require" => PgSslMode::VerifyCa,
        "verify_full" => PgSslMode::VerifyFull,
        _ => return None,
    })
}

impl PgTarget {
    fn options(&self, user: &str, password: &Secret) -> Result<PgConnectOptions, LoginError> {
        let pw = std::str::from_utf8(password.expose())
            .map_err(|_| LoginError::Refused("the secret is not UTF-8 text".into()))?;
        let opts = PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .database(&self.database)
            .username(user)
            .password(pw)
            .ssl_mode(self.tls)
            .application_name("portcullis-rotation")
            .disable_statement_logging();
        Ok(match &self.ca {
            Some(pem) => opts.ssl_root_cert_from_pem(pem.clone()),
            None => opts,
        })
    }

    async fn connect(
        &self,
        user: &str,
        password: &Secret,
    ) -> Result<sqlx::PgConnection, LoginError> {
        let opts = self.options(user, password)?;
        match tokio::time::timeout(CONNECT_TIMEOUT, opts.connect()).await {
            Err(_) => Err(LoginError::Unreachable(format!(
                "no answer from {}:{} within {} s",
                self.host,
                self.port,
                CONNECT_TIMEOUT.as_secs()
            ))),
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(classify(e)),
        }
    }

    /// Logs in as `user` with `password` (and leaves).
    pub async fn login(&self, user: &str, password: &Secret) -> Result<(), LoginError> {
        let c = self.connect(user, password).await?;
        let _ = c.close().await;
        Ok(())
    }

    /// Sets `role`'s password, as the privileged account, or as the role itself with its
    /// `current` password.
    pub async fn change(
        &self,
        role: &str,
        current: &Secret,
        new: &Secret,
    ) -> Result<(), super::ChangeError> {
        let (user, password) = match &self.admin {
            Some((u, p)) => (u.as_str(), p),
            None => (role, current),
        };
        let mut c = self.connect(user, password).await.map_err(|e| {
            super::ChangeError::untouched(format!(
                "{user} could not log in to change the password ({e})"
            ))
        })?;
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let verifier = scram_verifier(new.expose(), &salt, SCRAM_ITERATIONS);
        let sql = format!(
            "ALTER ROLE {} PASSWORD '{}'",
            quote_ident(role),
            verifier.replace('\'', "''")
        );
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await;
        let _ = c.close().await;
        done.map(|_| ()).map_err(|e| match e {
            // The server refused the statement: nothing changed.
            sqlx::Error::Database(d) => super::ChangeError::untouched(d.message()),
            other => other.to_string().into(),
        })
    }
}

fn classify(e: sqlx::Error) -> LoginError {
    match &e {
        // 28P01 invalid_password, 28000 invalid_authorization_specification.
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c == "28P01" || c == "28000") => {
            LoginError::Refused(d.message().to_string())
        }
        sqlx::Error::Database(d) => LoginError::Refused(d.message().to_string()),
        _ => LoginError::Unreachable(e.to_string()),
    }
}

/// A role name as a quoted SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802, RFC 7677):
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`. Generated passwords are
/// ASCII, for which SASLprep changes nothing.
pub fn scram_verifier(password: &[u8], salt: &[u8], iterations: u32) -> String {
    type H = Hmac<Sha256>;
    let hmac = |key: &[u8], data: &[u8]| -> [u8; 32] {
        // An HMAC key may have any length: this cannot fail.
        let mut m = <H as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        m.update(data);
        m.finalize().into_bytes().into()
    };
    // Hi(): PBKDF2 with HMAC-SHA-256, one block.
    let mut u = hmac(password, &[salt, &1u32.to_be_bytes()].concat());
    let mut salted = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (s, x) in salted.iter_mut().zip(u.iter()) {
            *s ^= x;
        }
    }
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scram_verifier_matches_an_independent_computation() {
        // RFC 7677 section 3's password "pencil" and salt "W22ZaJ0SNY7soEsUEjb6gQ==", 4096
        // iterations. The expected StoredKey and ServerKey were computed independently with
        // Python's hashlib.pbkdf2_hmac and hmac (the integration test also logs in with a
        // rotated password, which PostgreSQL checks against this verifier).
        let salt = base64::engine::general_purpose::STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap_or_default();
        let v = scram_verifier(b"pencil", &salt, 4096);
        assert_eq!(
            v,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("app"), "\"app\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
