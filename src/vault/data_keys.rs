//! Why: data-key rotation. A master-key rotation only re-wraps the same data keys; if a data
//! key leaked (a memory dump, a backup with its master key), every secret it sealed stays
//! exposed. Rotating the data key adds a new key that every new seal uses at once, then
//! re-encrypts, in the background with progress, every sealed value still under an older
//! key, and finally marks the older keys *retired*. A retired key is kept (so nothing is lost
//! if a value was missed) until an operator deletes it on purpose: `portcullis key purge`.
//!
//! Each value is re-encrypted by a compare-and-swap on its own ciphertext, so a value changed
//! meanwhile (a reveal-and-edit, a rotation) is simply picked up by the next pass, already
//! under the new key. Accounts with a rotation in flight are left alone until it settles:
//! their job compares the account's ciphertext with the one it started from.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::audit::{Actor, Event, Outcome};
use crate::core::Core;
use crate::db::{self, Db};
use crate::error::{ApiError, ApiResult};

/// The recording store, whose files hold the keys of recordings made before `recording_keys`.
type Store = std::sync::Arc<dyn recorder::storage::RecordingStore>;

/// One column that holds vault ciphertext, with the statements that find and replace its
/// values. `select` pages by key: single-key tables bind (pattern, after_id), two-key ones
/// (pattern, after_k1, after_k2); `update` binds (new, k1, [k2,] old).
struct SealedColumn {
    name: &'static str,
    count: &'static str,
    select: &'static str,
    update: &'static str,
    two_keys: bool,
    context: fn(&str, i64) -> String,
}

const PAGE: i64 = 200;

/// Every column the vault seals into. A new sealed column must be added here, or a
/// rotation would retire the key it needs (the purge refuses keys still referenced by
/// these columns only).
const SEALED: &[SealedColumn] = &[
    SealedColumn {
        name: "account secrets",
        count: "SELECT COUNT(*) FROM accounts WHERE secret_enc LIKE $1",
        select: "SELECT id, CAST(0 AS BIGINT), secret_enc FROM accounts WHERE secret_enc LIKE $1 AND id > $2 ORDER BY id LIMIT 200",
        update: "UPDATE accounts SET secret_enc = $1 WHERE id = $2 AND secret_enc = $3 AND NOT EXISTS (SELECT 1 FROM pending_secrets p WHERE p.account_id = accounts.id) AND NOT EXISTS (SELECT 1 FROM rotation_jobs j WHERE j.account_id = accounts.id AND j.state = 'running')",
        two_keys: false,
        context: |id, _| format!("accounts/{id}/secret"),
    },
    SealedColumn {
        name: "key passphrases",
        count: "SELECT COUNT(*) FROM accounts WHERE passphrase_enc LIKE $1",
        select: "SELECT id, CAST(0 AS BIGINT), passphrase_enc FROM accounts WHERE passphrase_enc LIKE $1 AND id > $2 ORDER BY id LIMIT 200",
        update: "UPDATE accounts SET passphrase_enc = $1 WHERE id = $2 AND passphrase_enc = $3 AND NOT EXISTS (SELECT 1 FROM pending_secrets p WHERE p.account_id = accounts.id) AND NOT EXISTS (SELECT 1 FROM rotation_jobs j WHERE j.account_id = accounts.id AND j.state = 'running')",
        two_keys: false,
        context: |id, _| format!("accounts/{id}/passphrase"),
    },
    SealedColumn {
        name: "password history",
        count: "SELECT COUNT(*) FROM password_history WHERE secret_enc LIKE $1",
        select: "SELECT id, CAST(0 AS BIGINT), secret_enc FROM password_history WHERE secret_enc LIKE $1 AND id > $2 ORDER BY id LIMIT 200",
        update: "UPDATE password_history SET secret_enc = $1 WHERE id = $2 AND secret_enc = $3",
        two_keys: false,
        context: |id, _| format!("password_history/{id}/secret"),
    },
    SealedColumn {
        name: "pending secrets",
        count: "SELECT COUNT(*) FROM pending_secrets WHERE secret_enc LIKE $1",
        select: "SELECT account_id, CAST(0 AS BIGINT), secret_enc FROM pending_secrets WHERE secret_enc LIKE $1 AND account_id > $2 ORDER BY account_id LIMIT 200",
        update: "UPDATE pending_secrets SET secret_enc = $1 WHERE account_id = $2 AND secret_enc = $3 AND NOT EXISTS (SELECT 1 FROM rotation_jobs j WHERE j.account_id = pending_secrets.account_id AND j.state = 'running')",
        two_keys: false,
        context: |id, _| format!("pending_secrets/{id}/secret"),
    },
    SealedColumn {
        name: "second-factor seeds",
        count: "SELECT COUNT(*) FROM users WHERE totp_secret_enc LIKE $1",
        select: "SELECT id, CAST(0 AS BIGINT), totp_secret_enc FROM users WHERE totp_secret_enc LIKE $1 AND id > $2 ORDER BY id LIMIT 200",
        update: "UPDATE users SET totp_secret_enc = $1 WHERE id = $2 AND totp_secret_enc = $3",
        two_keys: false,
        context: |id, _| format!("users/{id}/totp"),
    },
    SealedColumn {
        name: "signing keys",
        count: "SELECT COUNT(*) FROM signing_keys WHERE sealed_private LIKE $1",
        select: "SELECT id, CAST(0 AS BIGINT), sealed_private FROM signing_keys WHERE sealed_private LIKE $1 AND id > $2 ORDER BY id LIMIT 200",
        update: "UPDATE signing_keys SET sealed_private = $1 WHERE id = $2 AND sealed_private = $3",
        two_keys: false,
        context: |id, _| format!("signing_keys/{id}"),
    },
    SealedColumn {
        name: "recording keys",
        count: "SELECT COUNT(*) FROM recording_keys WHERE wrapped_key LIKE $1",
        select: "SELECT recording_id, CAST(0 AS BIGINT), wrapped_key FROM recording_keys WHERE wrapped_key LIKE $1 AND recording_id > $2 ORDER BY recording_id LIMIT 200",
        update: "UPDATE recording_keys SET wrapped_key = $1 WHERE recording_id = $2 AND wrapped_key = $3",
        two_keys: false,
        context: |id, _| format!("recordings/{id}/key"),
    },
    SealedColumn {
        name: "hidden-input keys",
        count: "SELECT COUNT(*) FROM recording_keys WHERE hidden_key LIKE $1",
        select: "SELECT recording_id, CAST(0 AS BIGINT), hidden_key FROM recording_keys WHERE hidden_key LIKE $1 AND recording_id > $2 ORDER BY recording_id LIMIT 200",
        update: "UPDATE recording_keys SET hidden_key = $1 WHERE recording_id = $2 AND hidden_key = $3",
        two_keys: false,
        context: |id, _| format!("recordings/{id}/hidden-key"),
    },
    SealedColumn {
        name: "recording search lines",
        count: "SELECT COUNT(*) FROM recording_index_lines WHERE sealed_lines LIKE $1",
        select: "SELECT recording_id, seq, sealed_lines FROM recording_index_lines WHERE sealed_lines LIKE $1 AND (recording_id > $2 OR (recording_id = $2 AND seq > $3)) ORDER BY recording_id, seq LIMIT 200",
        update: "UPDATE recording_index_lines SET sealed_lines = $1 WHERE recording_id = $2 AND seq = $3 AND sealed_lines = $4",
        two_keys: true,
        context: |id, seq| match seq {
            0 => format!("recordings/{id}/lines"),
            n => format!("recordings/{id}/lines/{n}"),
        },
    },
];

/// The LIKE pattern matching values sealed under `key_id` ("pc1:<id>:..."). Key ids are
/// generated ("dk-" and hex), so they hold no LIKE wildcards.
fn sealed_under(key_id: &str) -> String {
    format!("pc1:{key_id}:%")
}

/// How many values each key in `keys` still seals, over every sealed column.
pub async fn references(db: &Db, keys: &[String]) -> Result<i64, sqlx::Error> {
    let mut n = 0;
    for key in keys {
        let pattern = sealed_under(key);
        for col in SEALED {
            let (c,): (i64,) = sqlx::query_as(db::sql(col.count.to_string()))
                .bind(&pattern)
                .fetch_one(db)
                .await?;
            n += c;
        }
    }
    Ok(n)
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct RotationRow {
    pub id: String,
    /// The keys being re-encrypted away from (space-separated).
    pub old_key_id: String,
    pub new_key_id: String,
    /// 'running', 'finished', 'failed'.
    pub state: String,
    pub done: i64,
    pub total: i64,
    pub message: String,
    pub started_by: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

const ROTATION_COLUMNS: &str =
    "id, old_key_id, new_key_id, state, done, total, message, started_by, started_at, finished_at";

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct DataKeyView {
    pub id: String,
    /// 'secrets' or 'audit'.
    pub purpose: String,
    pub master_key_id: String,
    pub active: i64,
    pub created_at: i64,
    /// 0 while the key may still be needed; set when a rotation moved every value off it.
    pub retired_at: i64,
}

pub async fn keys(core: &Core) -> ApiResult<Vec<DataKeyView>> {
    Ok(sqlx::query_as(
        "SELECT id, purpose, master_key_id, active, created_at, retired_at FROM data_keys ORDER BY created_at, id",
    )
    .fetch_all(&core.db.pool)
    .await?)
}

pub async fn rotations(core: &Core) -> ApiResult<Vec<RotationRow>> {
    Ok(sqlx::query_as(db::sql(format!(
        "SELECT {ROTATION_COLUMNS} FROM data_key_rotations ORDER BY started_at DESC LIMIT 20"
    )))
    .fetch_all(&core.db.pool)
    .await?)
}

async fn rotation(core: &Core, id: &str) -> ApiResult<RotationRow> {
    sqlx::query_as(db::sql(format!(
        "SELECT {ROTATION_COLUMNS} FROM data_key_rotations WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&core.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("data-key rotation"))
}

/// Starts a data-key rotation: a new secrets key, used by every seal from now on, and the
/// background re-encryption of everything under the older, not yet retired keys. The caller
/// checked the right to ask (a super administrator) and audits the request.
pub async fn start(core: &Core, store: Store, started_by: &str) -> ApiResult<RotationRow> {
    let master = crate::keys::current_master(&core.db.pool, &core.config.master_key_file)
        .await
        .map_err(|e| ApiError::Conflict {
            field: None,
            message: format!("A data-key rotation wraps the new key under the master key, read again from its file: {e}"),
        })?;
    let mut tx = core.db.begin_write().await?;
    // One rotation at a time: the secrets keys' rows are locked first (SQLite's write
    // transaction is exclusive anyway), so a second request waits here and then sees the
    // first one's rotation as running.
    sqlx::query("UPDATE data_keys SET active = active WHERE purpose = 'secrets'")
        .execute(tx.conn())
        .await?;
    let running: Option<(String,)> =
        sqlx::query_as("SELECT id FROM data_key_rotations WHERE state = 'running'")
            .fetch_optional(tx.conn())
            .await?;
    if let Some((id,)) = running {
        return Err(ApiError::Conflict {
            field: None,
            message: format!("Data-key rotation {id} is still running; wait for it to finish."),
        });
    }
    let old: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM data_keys WHERE purpose = 'secrets' AND retired_at = 0 ORDER BY created_at",
    )
    .fetch_all(tx.conn())
    .await?;
    let old: Vec<String> = old.into_iter().map(|(k,)| k).collect();
    let new_key = crate::keys::add_active_secrets_key(&mut tx, &master).await?;
    let id = db::new_id();
    sqlx::query("INSERT INTO data_key_rotations (id, old_key_id, new_key_id, state, done, total, message, started_by, started_at) VALUES ($1, $2, $3, 'running', 0, 0, 'counting the sealed values', $4, $5)")
        .bind(&id)
        .bind(old.join(" "))
        .bind(&new_key.id)
        .bind(started_by)
        .bind(db::now_ms())
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    drop(master);
    core.crypto.activate(new_key);
    spawn(core, store, &id);
    rotation(core, &id).await
}

/// Resumes the rotations a stop interrupted (at start-up).
pub async fn resume(core: &Core, store: Store) -> anyhow::Result<()> {
    let running: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM data_key_rotations WHERE state = 'running'")
            .fetch_all(&core.db.pool)
            .await?;
    for (id,) in running {
        spawn(core, store.clone(), &id);
    }
    Ok(())
}

fn spawn(core: &Core, store: Store, id: &str) {
    let (core, id) = (core.clone(), id.to_string());
    tokio::spawn(async move {
        let outcome = reencrypt(&core, store, &id).await;
        let (state, message, outcome_kind) = match &outcome {
            Ok(m) => ("finished", m.clone(), Outcome::Ok),
            Err(e) => ("failed", e.clone(), Outcome::Failed),
        };
        let _ = sqlx::query("UPDATE data_key_rotations SET state = $2, message = $3, finished_at = $4 WHERE id = $1")
            .bind(&id)
            .bind(state)
            .bind(&message)
            .bind(db::now_ms())
            .execute(&core.db.pool)
            .await;
        let _ = core
            .audit
            .append(Event {
                actor: &Actor::system(),
                action: "key.data.reencrypt",
                outcome: outcome_kind,
                object_kind: "key",
                object_id: &id,
                object_name: "",
                detail: json!({ "state": state, "message": message }),
            })
            .await;
        if let Err(e) = outcome {
            tracing::error!(rotation = %id, "data-key rotation failed: {e}");
        }
    });
}

async fn progress(core: &Core, id: &str, done: i64, total: i64, message: &str) {
    let _ = sqlx::query(
        "UPDATE data_key_rotations SET done = $2, total = $3, message = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(done)
    .bind(total)
    .bind(message)
    .execute(&core.db.pool)
    .await;
}

/// Passes over every sealed column until nothing is left under the old keys, then retires
/// them. Values held by a rotation in flight wait for the next pass.
async fn reencrypt(core: &Core, store: Store, id: &str) -> Result<String, String> {
    let db_err = |e: sqlx::Error| format!("the database failed during re-encryption: {e}");
    let row = rotation(core, id).await.map_err(|e| format!("{e:?}"))?;
    let old: Vec<String> = row
        .old_key_id
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let adopted = adopt_recording_keys(core, store).await.map_err(db_err)?;
    let total = references(&core.db.pool, &old).await.map_err(db_err)?;
    let mut done = 0i64;
    progress(core, id, done, total, "re-encrypting").await;
    let retry = Duration::from_millis(
        std::env::var("PORTCULLIS_TEST_DATA_KEY_RETRY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5_000),
    );
    loop {
        let mut waiting = 0i64;
        for key in &old {
            let pattern = sealed_under(key);
            for col in SEALED {
                let (n, w) = reencrypt_column(core, col, &pattern).await?;
                done += n;
                waiting += w;
                progress(core, id, done, total, col.name).await;
            }
        }
        if references(&core.db.pool, &old).await.map_err(db_err)? == 0 {
            break;
        }
        let waiting = format!("waiting for {waiting} values held by a rotation in flight");
        progress(core, id, done, total, &waiting).await;
        tokio::time::sleep(retry).await;
    }
    let now = db::now_ms();
    for key in &old {
        sqlx::query("UPDATE data_keys SET retired_at = $2 WHERE id = $1 AND active = 0")
            .bind(key)
            .bind(now)
            .execute(&core.db.pool)
            .await
            .map_err(db_err)?;
    }
    // Values changed meanwhile left the old key by themselves: the count ends where it got.
    progress(core, id, done, done, "finished").await;
    Ok(format!(
        "{done} sealed values re-encrypted under {}; retired: {}{}",
        row.new_key_id,
        old.join(", "),
        match adopted.unreadable {
            0 => String::new(),
            n => format!(
                "; {n} recording files could not be read, so their keys stay under the retired key"
            ),
        }
    ))
}

/// Re-encrypts the values of one column under `pattern`: (re-encrypted, left for later).
async fn reencrypt_column(
    core: &Core,
    col: &SealedColumn,
    pattern: &str,
) -> Result<(i64, i64), String> {
    let db_err = |e: sqlx::Error| format!("the database failed re-encrypting {}: {e}", col.name);
    let (mut after, mut after_seq) = (String::new(), -1i64);
    let (mut done, mut waiting) = (0, 0);
    loop {
        let q = sqlx::query_as::<_, (String, i64, String)>(db::sql(col.select.to_string()))
            .bind(pattern)
            .bind(&after);
        let page = if col.two_keys { q.bind(after_seq) } else { q }
            .fetch_all(&core.db.pool)
            .await
            .map_err(db_err)?;
        let last = page.len() < PAGE as usize;
        for (k1, k2, value) in page {
            let context = (col.context)(&k1, k2);
            let plain = core.crypto.open(&context, &value).map_err(|e| {
                format!(
                    "{} {k1}: {e}; the old key stays until this is resolved",
                    col.name
                )
            })?;
            let sealed = core.crypto.seal(&context, plain.expose());
            let q = sqlx::query(db::sql(col.update.to_string()))
                .bind(&sealed)
                .bind(&k1);
            let q = if col.two_keys { q.bind(k2) } else { q };
            let n = q
                .bind(&value)
                .execute(&core.db.pool)
                .await
                .map_err(db_err)?
                .rows_affected();
            if n == 1 {
                done += 1;
            } else {
                waiting += 1;
            }
            (after, after_seq) = (k1, k2);
        }
        if last {
            return Ok((done, waiting));
        }
    }
}

struct Adopted {
    unreadable: i64,
}

/// Copies into `recording_keys` the sealed key of every recording made before that table,
/// read from its file's header, so a rotation can re-encrypt it.
async fn adopt_recording_keys(core: &Core, store: Store) -> Result<Adopted, sqlx::Error> {
    let missing: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM recordings WHERE id NOT IN (SELECT recording_id FROM recording_keys)",
    )
    .fetch_all(&core.db.pool)
    .await?;
    let mut unreadable = 0;
    for (rid,) in missing {
        let store = store.clone();
        let id = rid.clone();
        let header = tokio::task::spawn_blocking(move || {
            let mut r = store.reader(&id)?;
            recorder::format::read_header(&mut r).map_err(std::io::Error::other)
        })
        .await
        .ok()
        .and_then(Result::ok);
        let Some(header) = header else {
            unreadable += 1;
            continue;
        };
        sqlx::query("INSERT INTO recording_keys (recording_id, wrapped_key) VALUES ($1, $2) ON CONFLICT (recording_id) DO NOTHING")
            .bind(&rid)
            .bind(&header.wrapped_key)
            .execute(&core.db.pool)
            .await?;
    }
    Ok(Adopted { unreadable })
}

/// What `portcullis key purge` may delete, and what it must keep.
pub struct PurgePlan {
    /// Retired data keys no sealed value refers to.
    pub data_keys: Vec<String>,
    /// Retired data keys that still seal something (never deleted).
    pub still_used: Vec<(String, i64)>,
}

pub async fn purge_plan(db: &Db) -> Result<PurgePlan, sqlx::Error> {
    let retired: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM data_keys WHERE retired_at > 0 AND active = 0 AND purpose = 'secrets' ORDER BY created_at")
            .fetch_all(db)
            .await?;
    let mut plan = PurgePlan {
        data_keys: Vec::new(),
        still_used: Vec::new(),
    };
    for (id,) in retired {
        match references(db, std::slice::from_ref(&id)).await? {
            0 => plan.data_keys.push(id),
            n => plan.still_used.push((id, n)),
        }
    }
    Ok(plan)
}

/// Deletes a retired data key, re-checking in the statement's own transaction that it is
/// still retired and inactive.
pub async fn delete_retired(db: &crate::db::Database, id: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "DELETE FROM data_keys WHERE id = $1 AND retired_at > 0 AND active = 0 AND purpose = 'secrets'",
    )
    .bind(id)
    .execute(tx.conn())
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}
