//! Why: how a resource's accounts are rotated is a per-resource choice made by an
//! administrator (which method, which privileged account, which database and TLS mode);
//! the engine reads it for every job.

use crate::app::App;
use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RotationSettings {
    /// 'postgres' (the only method built so far).
    pub method: String,
    /// The account of the same resource that changes the others' secrets (None: each
    /// account changes its own, logged in with its current secret).
    pub privileged_account_id: Option<String>,
    /// The database to connect to.
    pub db_name: String,
    /// 'disable', 'prefer', 'require' or 'verify_full'.
    pub db_tls: String,
}

impl RotationSettings {
    pub fn check(&self) -> ApiResult<()> {
        if self.method != "postgres" {
            return Err(ApiError::field(
                "method",
                "must be postgres (ALTER ROLE as the privileged account); SSH, Telnet and MariaDB rotation are not built yet",
            ));
        }
        if super::postgres::tls_mode(&self.db_tls).is_none() {
            return Err(ApiError::field(
                "db_tls",
                "must be disable, prefer, require or verify_full",
            ));
        }
        crate::vault::check_text("db_name", &self.db_name, 1, 63)?;
        Ok(())
    }
}

pub async fn for_resource(app: &App, resource_id: &str) -> ApiResult<Option<RotationSettings>> {
    let row: Option<(String, Option<String>, String, String)> = sqlx::query_as(
        "SELECT method, privileged_account_id, db_name, db_tls FROM resource_rotation WHERE resource_id = $1",
    )
    .bind(resource_id)
    .fetch_optional(&app.db.pool)
    .await?;
    Ok(row.map(
        |(method, privileged_account_id, db_name, db_tls)| RotationSettings {
            method,
            privileged_account_id,
            db_name,
            db_tls,
        },
    ))
}

pub async fn set(
    tx: &mut crate::db::WriteTx,
    resource_id: &str,
    s: &RotationSettings,
    by: &str,
) -> ApiResult<()> {
    sqlx::query("DELETE FROM resource_rotation WHERE resource_id = $1")
        .bind(resource_id)
        .execute(tx.conn())
        .await?;
    sqlx::query("INSERT INTO resource_rotation (resource_id, method, privileged_account_id, db_name, db_tls, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(resource_id)
        .bind(&s.method)
        .bind(&s.privileged_account_id)
        .bind(&s.db_name)
        .bind(&s.db_tls)
        .bind(by)
        .bind(crate::db::now_ms())
        .execute(tx.conn())
        .await?;
    Ok(())
}
