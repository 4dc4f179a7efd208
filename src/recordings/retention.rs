//! Why: recordings older than the retention setting are purged (files and rows), and the
//! purge is audited.

use super::*;

/// Deletes recordings that ended longer ago than the retention setting (files and rows), and
/// audits what was purged. Returns how many.
pub async fn purge_expired(app: &App) -> anyhow::Result<usize> {
    let Some(keep) = app.config.recording_retention else {
        return Ok(0);
    };
    let cutoff = db::now_ms() - keep.as_millis() as i64;
    let ids: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM recordings WHERE status <> 'recording' AND COALESCE(ended_at, started_at) < $1 ORDER BY started_at",
    )
    .bind(cutoff)
    .fetch_all(&app.db.pool)
    .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = ids.into_iter().map(|(id,)| id).collect();
    for id in &ids {
        let (store, rid) = (app.recordings.store.clone(), id.clone());
        tokio::task::spawn_blocking(move || store.delete(&rid)).await??;
    }
    let mut tx = app.db.begin_write().await?;
    for id in &ids {
        for sql in [
            "DELETE FROM recording_index WHERE recording_id = $1",
            "DELETE FROM recording_index_lines WHERE recording_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(tx.conn()).await?;
        }
        sqlx::query("DELETE FROM recordings WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        if let Ok(mut m) = app.recordings.blooms.lock() {
            m.remove(id);
        }
    }
    app.audit
        .append_in(
            &mut tx,
            Event {
                actor: &Actor::system(),
                action: "recording.purge",
                outcome: Outcome::Ok,
                object_kind: "recording",
                object_id: "",
                object_name: "",
                detail: json!({ "count": ids.len(), "recording_ids": ids, "retention_s": keep.as_secs() }),
            },
        )
        .await?;
    tx.commit().await?;
    Ok(ids.len())
}

/// Runs `purge_expired` now and then periodically (a quarter of the retention, between one
/// second and one hour).
pub fn spawn_retention(app: App) {
    let Some(keep) = app.config.recording_retention else {
        return;
    };
    let every = (keep / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match purge_expired(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "purged recordings past their retention"),
                Err(e) => tracing::error!(error = %e, "purging expired recordings failed"),
            }
        }
    });
}
