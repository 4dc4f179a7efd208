//! Why: rotation on demand from a shell (`portcullis rotation rotate|verify ACCOUNT`), for
//! operators and scripts. The command queues an ordinary job in the database and, with
//! `--wait`, follows it; the running server's dispatcher picks it up within seconds, so the
//! queue, its limits, the deferral for live sessions and the audit are the same as from the
//! UI or the API.

use std::time::Duration;

use serde_json::json;

use crate::audit::{Actor, Event, Outcome};
use crate::config::Config;
use crate::vault::accounts::{self, AccountRow};
use crate::vault::resources;

use crate::rotation::{self, JobKind};

/// `ACCOUNT` is an account id or `user@resource`.
async fn find(app: &crate::app::App, account: &str) -> anyhow::Result<AccountRow> {
    if let Ok(a) = accounts::get(app, account).await {
        return Ok(a);
    }
    let (user, resource) = account
        .rsplit_once('@')
        .ok_or_else(|| anyhow::anyhow!("no account {account}: give its id or user@resource"))?;
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT a.id FROM accounts a JOIN resources r ON r.id = a.resource_id WHERE a.username = $1 AND r.name = $2",
    )
    .bind(user)
    .bind(resource)
    .fetch_optional(&app.db.pool)
    .await?;
    let (id,) =
        row.ok_or_else(|| anyhow::anyhow!("no account {user} on a resource named {resource}"))?;
    accounts::get(app, &id)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// Queues the job; with `wait`, prints its steps until it ends. Exit status: 0 when queued
/// (or, waiting, when it succeeded).
pub async fn run(cfg: Config, kind: JobKind, account: &str, wait: bool) -> anyhow::Result<bool> {
    let crate::server::Opened { app, .. } = crate::server::open_app(cfg, &mut |_| {}).await?;
    let a = find(&app, account).await?;
    let r = resources::get(&app, &a.resource_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    let by = format!("cli ({operator})");
    let job = rotation::request(&app, &a, &r, kind, "cli", &by, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let actor = Actor {
        id: "cli".into(),
        name: by.clone(),
        addr: "local".into(),
    };
    app.audit
        .append(Event {
            actor: &actor,
            action: &format!("account.{}.request", kind.as_str()),
            outcome: Outcome::Ok,
            object_kind: "account",
            object_id: &a.id,
            object_name: &format!("{}@{}", a.username, r.name),
            detail: json!({ "job": job.id, "via": "cli" }),
        })
        .await?;
    println!(
        "{} of {}@{} queued as job {} (the running server carries it out)",
        kind.as_str(),
        a.username,
        r.name,
        job.id
    );
    if !wait {
        return Ok(true);
    }
    let mut last = String::new();
    for _ in 0..1200 {
        let j = rotation::job(&app, &job.id)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let now = format!("{}: {}", j.state, j.step);
        if now != last {
            println!("{now}");
            last = now;
        }
        if j.state == "succeeded" || j.state == "failed" {
            println!("{}", j.message);
            return Ok(j.state == "succeeded");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("still not finished after 10 minutes (is the server running?)");
    Ok(false)
}
