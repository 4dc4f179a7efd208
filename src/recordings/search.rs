//! Why: finding words in recordings without a plaintext index: a keyed Bloom filter per
//! recording and its lines sealed by the vault in segments of about 1 MiB, built chunk by
//! chunk after the session; a query opens one segment at a time.

use super::*;

/// The vault context of segment `seq` of a recording's index lines. Segment 0 keeps the
/// context of the single sealed blob it replaced (migration 0013), so indexes built before
/// segments still open.
fn lines_context(recording_id: &str, seq: i64) -> String {
    match seq {
        0 => format!("recordings/{recording_id}/lines"),
        n => format!("recordings/{recording_id}/lines/{n}"),
    }
}

/// A segment's lines, unpacked, are at most this large (a segment closes at about 1 MiB of
/// text; this bounds what a corrupt or hostile row can make the server allocate).
const MAX_SEGMENT_JSON: usize = 64 * 1024 * 1024;

/// Builds the search index of a closed (or cut-off) recording: its Bloom filter of keyed word
/// hashes, and its lines in segments sealed by the vault. Replaces any earlier index of it.
/// The recording is read on a blocking thread one chunk at a time and each segment is stored
/// as soon as it is full, so memory stays near one segment whatever the recording's length (a
/// session that printed a gigabyte used to cost gigabytes here). The filter row goes in last:
/// until it exists, search passes the recording by. Returns the number of lines.
pub async fn index_recording(app: &App, id: &str) -> anyhow::Result<u64> {
    use base64::Engine;
    use std::ops::ControlFlow;
    let mut tx = app.db.begin_write().await?;
    for sql in [
        "DELETE FROM recording_index WHERE recording_id = $1",
        "DELETE FROM recording_index_lines WHERE recording_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(tx.conn()).await?;
    }
    tx.commit().await?;
    if let Ok(mut m) = app.recordings.blooms.lock() {
        m.remove(id);
    }

    let (segments_tx, mut segments) = tokio::sync::mpsc::channel::<(i64, String)>(2);
    let (store, rid, crypto) = (
        app.recordings.store.clone(),
        id.to_string(),
        app.crypto.clone(),
    );
    let search_key = app.recordings.search_key.clone();
    let stored_key = Recordings::stored_key(app, id).await?;
    let worker = tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<u8>, u64)> {
        let rec = Recording::parse(store.read(&rid)?)?;
        let wrapped = stored_key.unwrap_or_else(|| rec.header.wrapped_key.clone());
        let key = Recordings::open_key(&crypto, &rid, &wrapped).map_err(|e| anyhow::anyhow!(e))?;
        let mut indexer = recorder::search::Indexer::new(&search_key);
        let mut next_seq = 0i64;
        let mut failed: Option<anyhow::Error> = None;
        let mut store_segment = |lines: Vec<recorder::search::Line>| -> anyhow::Result<()> {
            let packed = zstd::bulk::compress(&serde_json::to_vec(&lines)?, 3)?;
            let sealed = crypto.seal(&lines_context(&rid, next_seq), &packed);
            segments_tx
                .blocking_send((next_seq, sealed))
                .map_err(|_| anyhow::anyhow!("the index writer stopped"))?;
            next_seq += 1;
            Ok(())
        };
        // An incomplete recording may end in a chunk that does not decrypt: index what does.
        rec.for_each_readable_chunk(&key, |events| {
            for e in &events {
                if let Some(full) = indexer.feed(e) {
                    if let Err(e) = store_segment(full) {
                        failed = Some(e);
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let (bloom, last, count) = indexer.finish();
        if !last.is_empty() {
            store_segment(last)?;
        }
        Ok((bloom.0, count))
    });
    while let Some((seq, sealed)) = segments.recv().await {
        let mut tx = app.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO recording_index_lines (recording_id, seq, sealed_lines) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(seq)
        .bind(sealed)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
    }
    let (bloom, count) = worker.await??;
    let mut tx = app.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO recording_index (recording_id, bloom, line_count) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(base64::engine::general_purpose::STANDARD.encode(&bloom))
    .bind(count as i64)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(count)
}

/// One search hit: where in which recording the text appeared (or was typed).
#[derive(serde::Serialize)]
pub struct Hit {
    pub recording_id: String,
    pub t_ms: u64,
    pub line: String,
    pub typed: bool,
}

/// Searches the recordings among `visible` (ids) for `query`: Bloom filters first (no
/// decryption), then the lines of the candidates. At most `per_recording` hits each and
/// `limit` in all, newest recordings first.
pub async fn search(
    app: &App,
    visible: &[String],
    query: &str,
    per_recording: usize,
    limit: usize,
) -> anyhow::Result<Vec<Hit>> {
    use base64::Engine;
    use recorder::search::Match;
    let q = recorder::search::Query::new(query);
    let words = recorder::search::words(query);
    let hashes: Vec<[u8; 32]> = words
        .iter()
        .map(|w| recorder::search::term_hash(&app.recordings.search_key, w))
        .collect();
    let mut hits = Vec::new();
    for id in visible {
        let cached = app
            .recordings
            .blooms
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned());
        let bloom = match cached {
            Some(b) => b,
            None => {
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT bloom FROM recording_index WHERE recording_id = $1")
                        .bind(id)
                        .fetch_optional(&app.db.pool)
                        .await?;
                let Some((b64,)) = row else { continue };
                let b = Arc::new(recorder::search::Bloom(
                    base64::engine::general_purpose::STANDARD.decode(b64)?,
                ));
                if let Ok(mut m) = app.recordings.blooms.lock() {
                    // 16 KiB each: beyond 4,096 filters (64 MiB) start over rather than grow.
                    if m.len() >= MAX_CACHED_FILTERS {
                        m.clear();
                    }
                    m.insert(id.clone(), b.clone());
                }
                b
            }
        };
        if !bloom.may_contain_all(&hashes) {
            continue;
        }
        // The candidate's lines, one segment at a time: phrase matches rank first, so the
        // segments are read until enough of those are found (or all are read).
        let seqs: Vec<(i64,)> = sqlx::query_as(
            "SELECT seq FROM recording_index_lines WHERE recording_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&app.db.pool)
        .await?;
        let (mut phrase, mut all_words) = (Vec::new(), Vec::new());
        for (seq,) in seqs {
            if phrase.len() >= per_recording {
                break;
            }
            let (sealed,): (String,) = sqlx::query_as(
                "SELECT sealed_lines FROM recording_index_lines WHERE recording_id = $1 AND seq = $2",
            )
            .bind(id)
            .bind(seq)
            .fetch_one(&app.db.pool)
            .await?;
            let packed = app
                .crypto
                .open(&lines_context(id, seq), &sealed)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let lines: Vec<recorder::search::Line> = serde_json::from_slice(
                &zstd::bulk::decompress(packed.expose(), MAX_SEGMENT_JSON)?,
            )?;
            for l in lines {
                match q.matches(&l) {
                    Some(Match::Phrase) if phrase.len() < per_recording => phrase.push(l),
                    Some(Match::Words) if all_words.len() < per_recording => all_words.push(l),
                    _ => {}
                }
            }
        }
        for l in phrase.into_iter().chain(all_words).take(per_recording) {
            hits.push(Hit {
                recording_id: id.clone(),
                t_ms: l.t_ms,
                line: l.text,
                typed: l.typed,
            });
        }
        if hits.len() >= limit {
            hits.truncate(limit);
            break;
        }
    }
    Ok(hits)
}
