//! Why: which logon script a Telnet session runs, and the resource's other Telnet settings.
//! A resource uses its own override if an administrator set one, else the script chosen for
//! its resource type, else the type's built-in default (`unix`, or `cisco` for network
//! devices). Scripts are stored as JSON and checked (patterns compile, placeholders exist)
//! before they are saved, so a session never meets a broken one.

use gateway::broker::SessionInfo;
use gateway::event::FailureKind;
use gateway::telnet::logon::{self, LogonScript};
use gateway::telnet::TelnetTarget;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::core::Core;
use crate::error::{ApiError, ApiResult};
use crate::vault::accounts;

/// A script as chosen by an administrator: a built-in by name, or a custom one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptChoice {
    Builtin(String),
    Custom(LogonScript),
}

/// The JSON shape of a choice: `{"builtin": "cisco"}` or `{"script": {...}}`; neither: the
/// default.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceInput {
    #[serde(default)]
    pub builtin: Option<String>,
    #[serde(default)]
    pub script: Option<LogonScript>,
}

impl ChoiceInput {
    /// Checks the choice; `None` means "the default".
    pub fn validate(self) -> ApiResult<Option<ScriptChoice>> {
        match (self.builtin, self.script) {
            (Some(_), Some(_)) => Err(ApiError::field(
                "builtin",
                "choose a built-in script or write a custom one, not both",
            )),
            (Some(b), None) => match logon::builtin(&b) {
                Some(_) => Ok(Some(ScriptChoice::Builtin(b))),
                None => Err(ApiError::field(
                    "builtin",
                    format!(
                        "no built-in script is called {b:?}; there are: {}",
                        logon::BUILTIN_NAMES.join(", ")
                    ),
                )),
            },
            (None, Some(s)) => {
                s.compile()
                    .map_err(|e| ApiError::field(&format!("script.{}", e.field), e.message))?;
                Ok(Some(ScriptChoice::Custom(s)))
            }
            (None, None) => Ok(None),
        }
    }
}

impl ScriptChoice {
    pub fn script(&self) -> Option<LogonScript> {
        match self {
            ScriptChoice::Builtin(b) => logon::builtin(b),
            ScriptChoice::Custom(s) => Some(s.clone()),
        }
    }

    /// The two stored columns (builtin, script JSON).
    fn columns(&self) -> (Option<String>, Option<String>) {
        match self {
            ScriptChoice::Builtin(b) => (Some(b.clone()), None),
            ScriptChoice::Custom(s) => (None, serde_json::to_string(s).ok()),
        }
    }

    fn from_columns(builtin: Option<String>, script: Option<String>) -> Option<ScriptChoice> {
        match (builtin, script) {
            (Some(b), _) => Some(ScriptChoice::Builtin(b)),
            (None, Some(s)) => serde_json::from_str(&s).ok().map(ScriptChoice::Custom),
            (None, None) => None,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            ScriptChoice::Builtin(b) => json!({ "builtin": b }),
            ScriptChoice::Custom(s) => json!({ "script": s }),
        }
    }
}

/// The script a session will run, and where it came from (for the UI and the audit).
pub struct Effective {
    pub script: LogonScript,
    /// "resource", "resource type" or "default".
    pub source: &'static str,
    pub choice: ScriptChoice,
}

impl Effective {
    pub fn to_json(&self) -> Value {
        let mut v = self.choice.to_json();
        v["source"] = json!(self.source);
        v["steps"] = json!(self.script.steps);
        v["failure"] = json!(self.script.failure);
        v
    }
}

/// The administrator's choice for a resource type, if any.
pub async fn type_choice(core: &Core, resource_type: &str) -> ApiResult<Option<ScriptChoice>> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT builtin, script FROM logon_scripts WHERE resource_type = $1")
            .bind(resource_type)
            .fetch_optional(&core.db.pool)
            .await?;
    Ok(row.and_then(|(b, s)| ScriptChoice::from_columns(b, s)))
}

pub async fn set_type_choice(
    tx: &mut crate::db::WriteTx,
    resource_type: &str,
    choice: Option<&ScriptChoice>,
    by: &str,
) -> ApiResult<()> {
    sqlx::query("DELETE FROM logon_scripts WHERE resource_type = $1")
        .bind(resource_type)
        .execute(tx.conn())
        .await?;
    if let Some(c) = choice {
        let (b, s) = c.columns();
        sqlx::query("INSERT INTO logon_scripts (resource_type, builtin, script, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(resource_type)
            .bind(b)
            .bind(s)
            .bind(by)
            .bind(crate::db::now_ms())
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

/// A resource's own Telnet settings.
#[derive(Clone, Debug, Default)]
pub struct ResourceTelnet {
    pub choice: Option<ScriptChoice>,
    pub enable_account_id: Option<String>,
    pub require_landing: bool,
}

/// builtin, script, enable_account_id, require_landing
type TelnetRow = (Option<String>, Option<String>, Option<String>, i64);

pub async fn resource_settings(core: &Core, resource_id: &str) -> ApiResult<ResourceTelnet> {
    let row: Option<TelnetRow> = sqlx::query_as(
        "SELECT builtin, script, enable_account_id, require_landing FROM resource_telnet WHERE resource_id = $1",
    )
    .bind(resource_id)
    .fetch_optional(&core.db.pool)
    .await?;
    Ok(match row {
        None => ResourceTelnet::default(),
        Some((b, s, enable, landing)) => ResourceTelnet {
            choice: ScriptChoice::from_columns(b, s),
            enable_account_id: enable,
            require_landing: landing != 0,
        },
    })
}

pub async fn set_resource_settings(
    tx: &mut crate::db::WriteTx,
    resource_id: &str,
    s: &ResourceTelnet,
    by: &str,
) -> ApiResult<()> {
    sqlx::query("DELETE FROM resource_telnet WHERE resource_id = $1")
        .bind(resource_id)
        .execute(tx.conn())
        .await?;
    let (b, script) = match &s.choice {
        Some(c) => c.columns(),
        None => (None, None),
    };
    sqlx::query("INSERT INTO resource_telnet (resource_id, builtin, script, enable_account_id, require_landing, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(resource_id)
        .bind(b)
        .bind(script)
        .bind(&s.enable_account_id)
        .bind(s.require_landing as i64)
        .bind(by)
        .bind(crate::db::now_ms())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The script for a resource: its own, else its type's, else the type's default.
pub async fn effective(
    core: &Core,
    resource_type: &str,
    own: &ResourceTelnet,
) -> ApiResult<Effective> {
    let (choice, source) = match &own.choice {
        Some(c) => (c.clone(), "resource"),
        None => match type_choice(core, resource_type).await? {
            Some(c) => (c, "resource type"),
            None => (
                ScriptChoice::Builtin(logon::default_for_type(resource_type).to_string()),
                "default",
            ),
        },
    };
    let script = choice
        .script()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored logon script is unreadable")))?;
    Ok(Effective {
        script,
        source,
        choice,
    })
}

/// Who a Telnet logon script logs in as.
pub struct TelnetLogin<'a> {
    pub username: &'a str,
    pub secret_kind: &'a str,
}

/// Everything a Telnet session needs: a password account, the logon script that applies
/// (checked), the enable secret when the script uses one, and the resource's rule on
/// direct (not landing-server) Telnet. Returns the target and what to add to the audit.
pub async fn telnet_target(
    core: &Core,
    account: &TelnetLogin<'_>,
    r: &crate::vault::resources::ResourceRow,
    password: secret::Secret,
    label: String,
    info: &SessionInfo,
) -> Result<(TelnetTarget, serde_json::Value), (FailureKind, String)> {
    let db_down = |_| {
        (
            FailureKind::Protocol,
            "The gateway's database is unavailable.".to_string(),
        )
    };
    if account.secret_kind != "password" {
        return Err((
            FailureKind::AuthenticationFailed,
            format!(
                "Telnet logs in with a password, and the account {} holds an SSH key.",
                account.username
            ),
        ));
    }
    let settings = crate::telnet_logon::resource_settings(core, &r.id)
        .await
        .map_err(db_down)?;
    if settings.require_landing && info.path.is_empty() {
        return Err((
            FailureKind::PermissionDenied,
            format!("{} allows Telnet only through a landing server (Telnet is plaintext), and this session would go to it directly. An administrator can change this in the resource's Telnet settings.", r.name),
        ));
    }
    let effective = crate::telnet_logon::effective(core, &r.resource_type, &settings)
        .await
        .map_err(db_down)?;
    let script = effective.script.compile().map_err(|e| {
        (
            FailureKind::Protocol,
            format!(
                "The logon script for {} is invalid ({e}); an administrator must fix it.",
                r.name
            ),
        )
    })?;
    let enable_secret = match (&settings.enable_account_id, effective.script.uses_enable_secret()) {
        (Some(id), true) => Some(
            accounts::open_enable_secret(core, id, &r.id)
                .await
                .map_err(|_| {
                    (
                        FailureKind::Protocol,
                        format!("The enable account of {} could not be opened; the event was logged.", r.name),
                    )
                })?,
        ),
        (None, true) => {
            return Err((
                FailureKind::Protocol,
                format!("The logon script for {} types an enable secret, but the resource has no enable account: an administrator sets one in the resource's Telnet settings.", r.name),
            ))
        }
        (_, false) => None,
    };
    let detail = json!({
        "logon_script": effective.choice.to_json(),
        "logon_script_source": effective.source,
        "enable_account_id": if enable_secret.is_some() { settings.enable_account_id.clone() } else { None },
    });
    Ok((
        TelnetTarget {
            username: account.username.to_string(),
            password,
            enable_secret,
            script,
            label,
        },
        detail,
    ))
}
