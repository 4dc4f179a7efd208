//! Why: after a stop, recordings that were being written are closed as incomplete and
//! their sessions' ends audited, so an auditor sees what the crash cut off.

use super::writer::update_row;
use super::*;

/// After a restart: recordings still marked as being written were cut off by the stop.
/// Each becomes *incomplete* (verifiable up to its last flushed chunk) and is indexed; the
/// end of its session is audited by `sessions::recover_stopped`.
pub async fn recover_interrupted(app: &App) -> anyhow::Result<usize> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM recordings WHERE status = 'recording'")
            .fetch_all(&app.db.pool)
            .await?;
    for (id,) in &rows {
        let store = app.recordings.store.clone();
        let rid = id.clone();
        let parsed =
            tokio::task::spawn_blocking(move || store.read(&rid).map(Recording::parse)).await?;
        let (duration, chunks) = match parsed {
            Ok(Ok(r)) => (r.duration_ms(), r.chunks.len() as u64),
            _ => (0, 0),
        };
        let size = app.recordings.store.size(id).unwrap_or(0);
        update_row(
            app,
            id,
            "incomplete",
            "the gateway stopped during the session",
            duration,
            chunks,
            size,
        )
        .await?;
        if let Err(e) = index_recording(app, id).await {
            tracing::error!(recording = %id, error = %e, "could not index an incomplete recording");
        }
    }
    Ok(rows.len())
}
