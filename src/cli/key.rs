//! Why: the operator's key commands, run with the server stopped or beside it:
//! `key rotate` (a new master key, crash-safe) and `key purge` (deleting, on purpose, what
//! key rotations kept).

use serde_json::json;

use crate::audit::{Actor, Event, Outcome};
use crate::config::Config;
use crate::db::{self, Database};
use crate::keys;
use crate::server::{open_app, Opened};

/// `portcullis key rotate`.
pub async fn rotate(cfg: Config) -> anyhow::Result<()> {
    let db = Database::open(&cfg.database_url).await?;
    let mut say = |m: &str| println!("{m}");
    if db.backend == db::Backend::Sqlite {
        let snap = cfg
            .data_dir
            .join("backups")
            .join(format!("before-key-rotation-{}.db", db::now_ms()));
        std::fs::create_dir_all(snap.parent().unwrap_or(&cfg.data_dir))?;
        sqlx::query(crate::db::sql(format!(
            "VACUUM INTO '{}'",
            snap.display().to_string().replace('\'', "''")
        )))
        .execute(&db.pool)
        .await?;
        say(&format!(
            "snapshot of the database written to {}",
            snap.display()
        ));
    } else {
        say("PostgreSQL: take your usual backup before rotating (no automatic snapshot)");
    }
    let (old, new) = keys::rotate(&db.pool, &cfg.master_key_file, &mut say).await?;
    let Opened { app, .. } = open_app(cfg, &mut |_| {}).await?;
    app.audit
        .append(Event {
            actor: &Actor::cli(),
            action: "key.rotate",
            outcome: Outcome::Ok,
            object_kind: "key",
            object_id: &new,
            object_name: "",
            detail: json!({ "old_key": old, "new_key": new }),
        })
        .await?;
    say(&format!("master key rotated: {old} -> {new}"));
    Ok(())
}

/// `portcullis key purge [--yes]`: what key rotations kept on purpose, listed, and deleted
/// only when asked: retired data keys no sealed value refers to any more, master-key files
/// `<key>.retired-<id>` no data key is wrapped under, and the `before-key-rotation-*.db`
/// snapshots (which hold data keys wrapped under those retired master keys). Audited.
pub async fn purge(cfg: Config, yes: bool) -> anyhow::Result<()> {
    let db = Database::open(&cfg.database_url).await?;
    let plan = crate::vault::data_keys::purge_plan(&db.pool).await?;
    let wrapping: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT master_key_id FROM data_keys")
        .fetch_all(&db.pool)
        .await?;
    let key_dir = cfg
        .master_key_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let key_name = cfg
        .master_key_file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&key_dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(id) = name.strip_prefix(&format!("{key_name}.retired-")) {
            if wrapping.iter().any(|(w,)| w == id) {
                println!(
                    "keep {}: data keys are still wrapped under it",
                    entry.path().display()
                );
            } else {
                files.push(entry.path());
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(cfg.data_dir.join("backups")) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("before-key-rotation-") && name.ends_with(".db") {
                files.push(entry.path());
            }
        }
    }
    for (id, n) in &plan.still_used {
        println!("keep data key {id}: retired, but {n} sealed values still refer to it");
    }
    for id in &plan.data_keys {
        println!(
            "{} retired data key {id}",
            if yes { "deleting" } else { "would delete" }
        );
    }
    for f in &files {
        println!(
            "{} {}",
            if yes { "deleting" } else { "would delete" },
            f.display()
        );
    }
    if plan.data_keys.is_empty() && files.is_empty() {
        println!("nothing to purge");
        return Ok(());
    }
    if !yes {
        println!("nothing deleted; run `portcullis key purge --yes` to delete the above (after a backup of the current database and master key)");
        return Ok(());
    }
    let mut deleted_keys = Vec::new();
    for id in &plan.data_keys {
        if crate::vault::data_keys::delete_retired(&db, id).await? {
            deleted_keys.push(id.clone());
        }
    }
    let mut deleted_files = Vec::new();
    for f in &files {
        std::fs::remove_file(f)
            .map_err(|e| anyhow::anyhow!("cannot delete {}: {e}", f.display()))?;
        deleted_files.push(f.display().to_string());
    }
    let Opened { app, .. } = open_app(cfg, &mut |_| {}).await?;
    app.audit
        .append(Event {
            actor: &Actor::cli(),
            action: "key.purge",
            outcome: Outcome::Ok,
            object_kind: "key",
            object_id: "",
            object_name: "",
            detail: json!({ "data_keys": deleted_keys, "files": deleted_files }),
        })
        .await?;
    println!(
        "purged {} data keys and {} files",
        deleted_keys.len(),
        deleted_files.len()
    );
    Ok(())
}
