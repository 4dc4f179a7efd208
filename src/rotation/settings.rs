//! Why: how a resource's accounts are rotated is a per-resource choice made by an
//! administrator (which method, which privileged account, which database and TLS mode, or
//! which prompt/answer script); the engine reads it for every job.

use gateway::telnet::logon::LogonScript;

use crate::app::App;
use crate::error::{ApiError, ApiResult};

use super::scripts;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RotationSettings {
    /// One of `scripts::METHODS`: 'postgres' (ALTER ROLE), 'mysql' (MariaDB ALTER USER),
    /// 'passwd' (each account changes its own), 'sudo' (chpasswd through the privileged
    /// account), 'script'.
    pub method: String,
    /// The account of the same resource that changes the others' secrets (None: each
    /// account changes its own, logged in with its current secret).
    pub privileged_account_id: Option<String>,
    /// PostgreSQL only: the database to connect to.
    pub db_name: String,
    /// Databases: 'disable', 'prefer' (both refused the certificate check, and warned
    /// about), 'require' (TLS, certificate checked against the CA) or 'verify_full' (also
    /// the host name; the default).
    pub db_tls: String,
    /// Databases: the CA certificate(s) to check the server's against, PEM (None: the usual
    /// public roots).
    pub db_ca: Option<String>,
    /// Method 'script' only: the administrator's script.
    pub script: Option<LogonScript>,
}

impl RotationSettings {
    /// What the resource page says about a database's TLS: the modes that do not check the
    /// server's certificate let a machine in the middle read the password exchange (and ask
    /// for the password in clear, which the driver answers).
    pub fn tls_warning(&self) -> Option<&'static str> {
        let database = self.method == "postgres" || self.method == "mysql";
        match self.db_tls.as_str() {
            "disable" if database => Some("TLS is off: the rotation's logins and password changes cross the network unprotected, and a machine in the middle could ask for the password in clear. Choose verify_full (and the server's CA)."),
            "prefer" if database => Some("The server's certificate is not checked: a machine in the middle could read the rotation's logins or ask for the password in clear. Choose verify_full (and the server's CA)."),
            _ => None,
        }
    }

    pub fn check(&self) -> ApiResult<()> {
        if self.method == "su" {
            return Err(ApiError::field("method", scripts::SU_REFUSED));
        }
        if !scripts::METHODS.contains(&self.method.as_str()) {
            return Err(ApiError::field(
                "method",
                "must be postgres (ALTER ROLE), mysql (MariaDB ALTER USER), passwd (each account changes its own password), sudo (chpasswd through the privileged account) or script (your own prompt/answer script)",
            ));
        }
        if self.method == "postgres" || self.method == "mysql" {
            if super::postgres::tls_mode(&self.db_tls).is_none() {
                return Err(ApiError::field(
                    "db_tls",
                    "must be disable, prefer, require or verify_full",
                ));
            }
            // MariaDB needs no database to log in to.
            let min = if self.method == "mysql" { 0 } else { 1 };
            crate::vault::check_text("db_name", &self.db_name, min, 63)?;
            if let Some(ca) = &self.db_ca {
                if ca.len() > 64 * 1024 || !ca.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(ApiError::field(
                        "db_ca",
                        "must be the CA certificate(s) in PEM (-----BEGIN CERTIFICATE-----), at most 64 KiB",
                    ));
                }
            }
        }
        if scripts::needs_privileged(&self.method) && self.privileged_account_id.is_none() {
            return Err(ApiError::field(
                "privileged_account_id",
                format!(
                    "the {} method needs the privileged account whose password it types",
                    self.method
                ),
            ));
        }
        match (&self.script, self.method == "script") {
            (None, true) => {
                return Err(ApiError::field(
                    "script",
                    "the script method needs a script (steps of expect and send)",
                ))
            }
            (Some(s), true) => {
                s.compile_rotation()
                    .map_err(|e| ApiError::field(&format!("script.{}", e.field), &e.message))?;
                if s.steps.iter().any(|st| {
                    st.send
                        .as_deref()
                        .is_some_and(|v| v.contains("{privileged_password}"))
                }) && self.privileged_account_id.is_none()
                {
                    return Err(ApiError::field(
                        "privileged_account_id",
                        "the script types {privileged_password}: choose the privileged account",
                    ));
                }
            }
            (Some(_), false) => {
                return Err(ApiError::field(
                    "script",
                    "only the script method takes a script; the others use their built-in one",
                ))
            }
            (None, false) => {}
        }
        Ok(())
    }

    /// The script a terminal method runs: the built-in one, or the administrator's.
    pub fn effective_script(&self) -> Option<LogonScript> {
        match self.method.as_str() {
            "script" => self.script.clone(),
            m => scripts::builtin(m),
        }
    }
}

type Row = (
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
);

pub async fn for_resource(app: &App, resource_id: &str) -> ApiResult<Option<RotationSettings>> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT method, privileged_account_id, db_name, db_tls, script, db_ca FROM resource_rotation WHERE resource_id = $1",
    )
    .bind(resource_id)
    .fetch_optional(&app.db.pool)
    .await?;
    let Some((method, privileged_account_id, db_name, db_tls, script, db_ca)) = row else {
        return Ok(None);
    };
    let script = match script {
        Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
            ApiError::Internal(anyhow::anyhow!(
                "a stored rotation script does not parse: {e}"
            ))
        })?),
        None => None,
    };
    Ok(Some(RotationSettings {
        method,
        privileged_account_id,
        db_name,
        db_tls,
        db_ca,
        script,
    }))
}

pub async fn set(
    tx: &mut crate::db::WriteTx,
    resource_id: &str,
    s: &RotationSettings,
    by: &str,
) -> ApiResult<()> {
    let script = match &s.script {
        Some(sc) => Some(
            serde_json::to_string(sc).map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?,
        ),
        None => None,
    };
    sqlx::query("DELETE FROM resource_rotation WHERE resource_id = $1")
        .bind(resource_id)
        .execute(tx.conn())
        .await?;
    sqlx::query("INSERT INTO resource_rotation (resource_id, method, privileged_account_id, db_name, db_tls, script, db_ca, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(resource_id)
        .bind(&s.method)
        .bind(&s.privileged_account_id)
        .bind(&s.db_name)
        .bind(&s.db_tls)
        .bind(script)
        .bind(&s.db_ca)
        .bind(by)
        .bind(crate::db::now_ms())
        .execute(tx.conn())
        .await?;
    Ok(())
}
