//! Benchmark: rotate and verify 1,000 PostgreSQL roles through the release gateway (issue 9:
//! target <= 60 s). Every rotation is the whole two-phase job: pending secret stored, ALTER
//! ROLE with a SCRAM verifier as the privileged role, a login with the new password, commit
//! with history and audit. Prints throughput and the concurrency used; afterwards a sample of
//! roles is checked from outside (the vault's password logs in, the old one does not). Then
//! the same for 100 Linux accounts over SSH (OpenSSH + PAM on a private /etc, method
//! `passwd`: each job logs in, runs passwd, logs in again with the new password). Not a
//! test: it asserts nothing. Run with `cargo bench --bench rotation` (bench/README.md).

// Shared with the tests; the benchmark uses only part of them.
#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway_support;
#[allow(dead_code)]
#[path = "../tests/support/postgres.rs"]
mod postgres_cluster;
#[allow(dead_code)]
#[path = "../tests/support/sshd.rs"]
mod sshd_server;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

const ROLES: usize = 1000;
const LINUX_ACCOUNTS: usize = 100;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pg = postgres_cluster::cluster();
    let group = pg.password_group();
    pg.psql(
        "postgres",
        &format!("CREATE ROLE rb_admin LOGIN CREATEROLE PASSWORD 'Bench-Admin-Pw' IN ROLE {group}"),
    );
    pg.psql(
        "postgres",
        &format!("DO $$ BEGIN FOR i IN 1..{ROLES} LOOP EXECUTE format('CREATE ROLE rb_%s LOGIN PASSWORD %L IN ROLE {group}', i, 'Bench-Old-' || i); END LOOP; END $$"),
    );
    let g = gateway_support::Gateway::start(&[]).await?;
    let r = g
        .post(
            "/resources",
            json!({ "name": "bench-pg", "host": "127.0.0.1", "resource_type": "database", "ports": { "database": pg.port }, "policy_id": "policy-low" }),
        )
        .await?;
    let rid = r["id"].as_str().unwrap_or_default().to_string();
    let admin = g
        .post(
            &format!("/resources/{rid}/accounts"),
            json!({ "username": "rb_admin", "secret": "Bench-Admin-Pw" }),
        )
        .await?;
    g.call(
        "PUT",
        &format!("/resources/{rid}/rotation"),
        json!({ "method": "postgres", "privileged_account_id": admin["id"], "db_name": "postgres", "db_tls": "disable" }),
    )
    .await?;
    let g = &g;
    let rid = &rid;
    let accounts: Vec<String> = futures_util::stream::iter(1..=ROLES)
        .map(|i| async move {
            g.post(
                &format!("/resources/{rid}/accounts"),
                json!({ "username": format!("rb_{i}"), "secret": format!("Bench-Old-{i}") }),
            )
            .await
            .map(|a| a["id"].as_str().unwrap_or_default().to_string())
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;

    // The concurrency the server runs with (settings rotation_concurrency and
    // rotation_per_target), as its jobs page reports it.
    let load = g.call("GET", "/rotation/jobs?limit=1", json!({})).await?["load"].clone();
    println!(
        "Rotation through the gateway: {ROLES} PostgreSQL roles on one server (local PostgreSQL 15, SQLite vault), \
         at most {} jobs at once ({} per resource)\n",
        load["global_limit"], load["per_resource_limit"]
    );
    let started = Instant::now();
    futures_util::stream::iter(accounts.iter())
        .map(|a| async move { g.post(&format!("/accounts/{a}/rotate"), json!({})).await })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let queued_in = started.elapsed();
    let (mut ok, mut failed) = (0, 0);
    while started.elapsed() < Duration::from_secs(600) {
        let jobs = g
            .call("GET", "/rotation/jobs?limit=1000", json!({}))
            .await?;
        let list = jobs["jobs"].as_array().cloned().unwrap_or_default();
        ok = list.iter().filter(|j| j["state"] == "succeeded").count();
        failed = list.iter().filter(|j| j["state"] == "failed").count();
        if ok + failed >= ROLES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    // From outside: a sample of roles log in with the vault's password and not the old one.
    let mut checked = 0;
    let mut agree = 0;
    for (i, a) in accounts.iter().enumerate().step_by(ROLES / 20) {
        let s = g
            .post(
                &format!("/accounts/{a}/reveal"),
                json!({ "reason": "benchmark check" }),
            )
            .await?;
        let new = s["secret"].as_str().unwrap_or_default();
        let role = format!("rb_{}", i + 1);
        checked += 1;
        if pg.login_works(&role, new) && !pg.login_works(&role, &format!("Bench-Old-{}", i + 1)) {
            agree += 1;
        }
    }
    println!("| measure | gateway | target |");
    println!("| --- | ---: | --- |");
    println!(
        "| {ROLES} PostgreSQL roles rotated and verified | {:.1} s | <= 60 s |",
        took.as_secs_f64()
    );
    println!(
        "| throughput | {:.0} rotations/s | |",
        ok as f64 / took.as_secs_f64()
    );
    println!("| succeeded / failed | {ok} / {failed} | {ROLES} / 0 |");
    println!(
        "| requests queued in | {:.1} s | |",
        queued_in.as_secs_f64()
    );
    println!(
        "| sample checked from outside (new logs in, old refused) | {agree} of {checked} | all |"
    );
    let (took, ok, failed, agree, checked) = linux_accounts(g).await?;
    println!(
        "| {LINUX_ACCOUNTS} Linux accounts over SSH rotated and verified (passwd) | {:.1} s | <= 60 s |",
        took.as_secs_f64()
    );
    println!(
        "| throughput | {:.1} rotations/s | |",
        ok as f64 / took.as_secs_f64()
    );
    println!("| succeeded / failed | {ok} / {failed} | {LINUX_ACCOUNTS} / 0 |");
    println!(
        "| sample checked from outside (new logs in, old refused) | {agree} of {checked} | all |"
    );
    Ok(())
}

/// 100 accounts of one Linux resource (a private sshd), rotated with `passwd`; the time from
/// the first request to the last job's end, the counts, and a sample checked with the
/// benchmark's own SSH client.
async fn linux_accounts(
    g: &gateway_support::Gateway,
) -> anyhow::Result<(Duration, usize, usize, usize, usize)> {
    let s = sshd_server::private_sshd();
    let users: Vec<String> = (0..LINUX_ACCOUNTS)
        .map(|i| s.user(&format!("Linux-Old-{i}")))
        .collect();
    let r = g
        .post(
            "/resources",
            json!({ "name": "bench-linux", "host": "127.0.0.1", "resource_type": "linux", "ports": { "ssh": s.port }, "policy_id": "policy-low" }),
        )
        .await?;
    let rid = r["id"].as_str().unwrap_or_default().to_string();
    g.call(
        "PUT",
        &format!("/resources/{rid}/rotation"),
        json!({ "method": "passwd" }),
    )
    .await?;
    let mut accounts = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let a = g
            .post(
                &format!("/resources/{rid}/accounts"),
                json!({ "username": u, "secret": format!("Linux-Old-{i}") }),
            )
            .await?;
        accounts.push(a["id"].as_str().unwrap_or_default().to_string());
    }
    let load = g.call("GET", "/rotation/jobs?limit=1", json!({})).await?["load"].clone();
    println!(
        "\nRotation over SSH: {LINUX_ACCOUNTS} accounts of one Linux resource (OpenSSH + PAM, yescrypt), \
         at most {} jobs at once, {} per resource\n",
        load["global_limit"], load["per_resource_limit"]
    );
    let started = Instant::now();
    for a in &accounts {
        g.post(&format!("/accounts/{a}/rotate"), json!({})).await?;
    }
    let (mut ok, mut failed) = (0, 0);
    while started.elapsed() < Duration::from_secs(600) {
        let jobs = g
            .call("GET", "/rotation/jobs?limit=1000", json!({}))
            .await?;
        let list: Vec<serde_json::Value> = jobs["jobs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|j| j["resource_name"] == "bench-linux")
            .collect();
        ok = list.iter().filter(|j| j["state"] == "succeeded").count();
        failed = list.iter().filter(|j| j["state"] == "failed").count();
        if ok + failed >= LINUX_ACCOUNTS {
            if let Some(j) = list.iter().find(|j| j["state"] == "failed") {
                println!("a failed job said: {}", j["message"]);
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    let (mut checked, mut agree) = (0, 0);
    for (i, a) in accounts.iter().enumerate().step_by(LINUX_ACCOUNTS / 10) {
        let new = g
            .post(
                &format!("/accounts/{a}/reveal"),
                json!({ "reason": "benchmark check" }),
            )
            .await?["secret"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        checked += 1;
        let port = s.port;
        if sshd_server::password_login_works("127.0.0.1", port, &users[i], &new).await
            && !sshd_server::password_login_works(
                "127.0.0.1",
                port,
                &users[i],
                &format!("Linux-Old-{i}"),
            )
            .await
        {
            agree += 1;
        }
    }
    Ok((took, ok, failed, agree, checked))
}
