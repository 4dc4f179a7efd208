//! Benchmark: audited secret reveals per second (share-based authorization, AES-GCM decrypt,
//! hash-chained audit append, committed), with p50/p99 latency, on SQLite and PostgreSQL.
//! Run with `cargo bench --bench reveal` (see bench/README.md). Not a test: it asserts
//! nothing; it prints the figures next to the target.

// Shared with the tests; the benchmark uses only part of it.
#[allow(dead_code)]
#[path = "../tests/support/postgres.rs"]
mod postgres_cluster;

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::config::{Config, FlagConfig};
use portcullis::identity::{Principal, Role};
use portcullis::server::open_app;
use portcullis::vault::{accounts, resources};

const TASKS: usize = 8;
const WARMUP: usize = 500;
const REVEALS: usize = 20_000;

struct Figures {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

async fn run(database_url: &str, data: &std::path::Path) -> anyhow::Result<Figures> {
    let flags = FlagConfig {
        data_dir: Some(data.display().to_string()),
        database_url: Some(database_url.to_string()),
        ..Default::default()
    };
    let cfg = Config::load(&flags, &Default::default())?;
    let app = open_app(cfg, &mut |_| {}).await?.app;
    let (owner, _) = portcullis::identity::users::create(
        &app,
        &portcullis::audit::Actor::system(),
        None,
        portcullis::identity::users::NewUser {
            username: "owner".into(),
            full_name: String::new(),
            email: String::new(),
            role: Role::Administrator,
            super_admin: false,
            password: Some("benchmark passphrase one".into()),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let (reader, _) = portcullis::identity::users::create(
        &app,
        &portcullis::audit::Actor::system(),
        None,
        portcullis::identity::users::NewUser {
            username: "reader".into(),
            full_name: String::new(),
            email: String::new(),
            role: Role::PasswordUser,
            super_admin: false,
            password: Some("benchmark passphrase two".into()),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let owner_p = Principal {
        user_id: owner.id.clone(),
        username: owner.username,
        role: Role::Administrator,
        super_admin: false,
        addr: "127.0.0.1".into(),
    };
    let reader_p = Principal {
        user_id: reader.id.clone(),
        username: reader.username,
        role: Role::PasswordUser,
        super_admin: false,
        addr: "127.0.0.1".into(),
    };
    // 50 resources with 4 accounts each; the reader has View on every resource (so each
    // reveal resolves a resource-level share), and some unrelated shares exist too.
    let mut ids = Vec::new();
    for r in 0..50 {
        let res = resources::create(&app, &owner_p, serde_json::from_value(serde_json::json!({ "name": format!("r{r}"), "host": "10.0.0.1", "policy_id": "policy-low" }))?).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        portcullis::vault::shares::grant(&app, &owner_p, serde_json::from_value(serde_json::json!({ "subject_kind": "user", "subject_id": reader.id, "object_kind": "resource", "object_id": res.id, "level": "view" }))?).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for a in 0..4 {
            let acc = accounts::create(&app, &owner_p, &res.id, serde_json::from_value(serde_json::json!({ "username": format!("u{a}"), "secret": format!("secret-{r}-{a}") }))?).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            ids.push(acc.id);
        }
    }
    let ids = Arc::new(ids);
    let reader_p = Arc::new(reader_p);
    // Warm-up, then the measured run.
    for i in 0..WARMUP {
        accounts::reveal(&app, &reader_p, &ids[i % ids.len()], "benchmark warm-up")
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let (app, ids, p) = (app.clone(), ids.clone(), reader_p.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(REVEALS / TASKS);
            for i in 0..REVEALS / TASKS {
                let t0 = Instant::now();
                let s = accounts::reveal(&app, &p, &ids[(i * TASKS + t) % ids.len()], "benchmark")
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                lat.push(t0.elapsed());
                std::hint::black_box(s.secret.len());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await??);
    }
    let elapsed = start.elapsed();
    all.sort();
    let report = app.audit.verify().await?;
    anyhow::ensure!(
        report.ok && report.rows_checked >= REVEALS,
        "audit chain broken after the benchmark"
    );
    Ok(Figures {
        per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
    })
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("Audited secret reveals (authz + decrypt + audit append), {TASKS} concurrent callers, {REVEALS} reveals, {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    println!(
        "{:<12} {:>12} {:>10} {:>10}   target / peer",
        "store", "reveals/s", "p50", "p99"
    );
    for store in ["sqlite", "postgres"] {
        let dir = tempfile::tempdir()?;
        let url = match store {
            "sqlite" => format!("sqlite://{}", dir.path().join("bench.db").display()),
            _ => postgres_cluster::cluster().fresh_database(),
        };
        let f = rt.block_on(run(&url, dir.path()))?;
        let target = if store == "sqlite" {
            ">= 2000/s, p99 <= 10 ms"
        } else {
            "(no target set)"
        };
        println!(
            "{:<12} {:>12.0} {:>8.2}ms {:>8.2}ms   {target}; ManageEngine PMP publishes no figure",
            store,
            f.per_sec,
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
