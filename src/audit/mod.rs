//! Why: auditors must be able to trust "who did what, when". Every security-relevant event is
//! appended to a chain where each row carries HMAC-SHA256(audit key, previous hash || row).
//! The audit key is a vault data key, so someone with write access to the database but not
//! the master key cannot forge a consistent chain; `portcullis audit verify` names the first
//! altered, inserted or deleted row. Appends happen inside the caller's write transaction, so
//! a change and its audit record commit together or not at all.

pub mod syslog;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use sqlx::Row;

use crate::db::{self, Database, WriteTx};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Denied,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// Who acted and from where.
#[derive(Clone, Debug, Default)]
pub struct Actor {
    pub id: String,
    pub name: String,
    pub addr: String,
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            id: "system".into(),
            name: "system".into(),
            addr: "local".into(),
        }
    }
    pub fn cli() -> Actor {
        Actor {
            id: "cli".into(),
            name: "cli".into(),
            addr: "local".into(),
        }
    }
}

/// One event to record. `detail` must never contain a secret.
pub struct Event<'a> {
    pub actor: &'a Actor,
    pub action: &'a str,
    pub outcome: Outcome,
    pub object_kind: &'a str,
    pub object_id: &'a str,
    pub object_name: &'a str,
    pub detail: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor_id: String,
    pub actor_name: String,
    pub client_addr: String,
    pub action: String,
    pub outcome: String,
    pub object_kind: String,
    pub object_id: String,
    pub object_name: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Clone)]
pub struct Audit {
    db: Database,
    key: std::sync::Arc<[u8; 32]>,
    syslog: Option<syslog::Forwarder>,
}

fn chain_hash(key: &[u8; 32], row: &AuditRow) -> String {
    // serde_json of a fixed-order array is a canonical encoding of the row.
    let canonical = serde_json::json!([
        row.seq,
        row.at,
        row.actor_id,
        row.actor_name,
        row.client_addr,
        row.action,
        row.outcome,
        row.object_kind,
        row.object_id,
        row.object_name,
        row.detail,
        row.prev_hash
    ])
    .to_string();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| {
        // HMAC accepts keys of any length; this branch cannot be taken.
        <Hmac<Sha256> as Mac>::new_from_slice(&[0u8; 32]).unwrap_or_else(|_| unreachable!())
    });
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Audit {
    /// A stand-in for text that must not be kept in clear (a name typed at the login page
    /// that is no user's, which is often a mistyped password; a recording search): the same
    /// text always gives the same stand-in, so auditors can still see repeats, and without
    /// the audit key (a vault data key) it cannot be guessed back from a dictionary.
    pub fn pseudonym(&self, text: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"pseudonym\0");
        mac.update(text.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("#{}", hex::encode(&tag[..6]))
    }

    pub fn new(db: Database, key: [u8; 32], syslog: Option<syslog::Forwarder>) -> Audit {
        Audit {
            db,
            key: std::sync::Arc::new(key),
            syslog,
        }
    }

    /// Creates the chain head row if it does not exist yet.
    pub async fn init(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin_write().await?;
        let exists = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_optional(tx.conn())
            .await?
            .is_some();
        if !exists {
            sqlx::query("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, $1)")
                .bind(GENESIS)
                .execute(tx.conn())
                .await?;
        }
        tx.commit().await
    }

    /// Appends in its own transaction.
    pub async fn append(&self, ev: Event<'_>) -> Result<i64, sqlx::Error> {
        let mut tx = self.db.begin_write().await?;
        let seq = self.append_in(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Appends inside the caller's transaction. The head row is updated first, which takes
    /// the write lock before anything is read (both stores serialise appenders on it).
    pub async fn append_in(&self, tx: &mut WriteTx, ev: Event<'_>) -> Result<i64, sqlx::Error> {
        let head =
            sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
                .fetch_one(tx.conn())
                .await?;
        let seq: i64 = head.try_get(0)?;
        let prev_hash: String = head.try_get(1)?;
        let mut row = AuditRow {
            seq,
            at: db::now_ms(),
            actor_id: ev.actor.id.clone(),
            actor_name: ev.actor.name.clone(),
            client_addr: ev.actor.addr.clone(),
            action: ev.action.to_string(),
            outcome: ev.outcome.as_str().to_string(),
            object_kind: ev.object_kind.to_string(),
            object_id: ev.object_id.to_string(),
            object_name: ev.object_name.to_string(),
            detail: ev.detail.to_string(),
            prev_hash,
            hash: String::new(),
        };
        row.hash = chain_hash(&self.key, &row);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor_id, actor_name, client_addr, action, outcome, object_kind, object_id, object_name, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(row.seq)
        .bind(row.at)
        .bind(&row.actor_id)
        .bind(&row.actor_name)
        .bind(&row.client_addr)
        .bind(&row.action)
        .bind(&row.outcome)
        .bind(&row.object_kind)
        .bind(&row.object_id)
        .bind(&row.object_name)
        .bind(&row.detail)
        .bind(&row.prev_hash)
        .bind(&row.hash)
        .execute(tx.conn())
        .await?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&row.hash)
            .execute(tx.conn())
            .await?;
        if let Some(fwd) = self.syslog.clone() {
            tx.after_commit(move || fwd.send(&row));
        }
        Ok(seq)
    }

    pub async fn query(&self, f: &Filter) -> Result<Vec<AuditRow>, sqlx::Error> {
        let mut sql = String::from(
            "SELECT seq, at, actor_id, actor_name, client_addr, action, outcome, object_kind, object_id, object_name, detail, prev_hash, hash FROM audit_log WHERE 1=1",
        );
        let mut args: Vec<Arg> = Vec::new();
        let mut push = |sql: &mut String, cond: &str, a: Arg| {
            args.push(a);
            sql.push_str(&cond.replace('?', &format!("${}", args.len())));
        };
        if let Some(v) = &f.actor {
            push(
                &mut sql,
                " AND LOWER(actor_name) LIKE ?",
                Arg::S(format!("%{}%", v.to_lowercase())),
            );
        }
        if let Some(v) = &f.action {
            push(&mut sql, " AND action LIKE ?", Arg::S(format!("{v}%")));
        }
        if let Some(v) = &f.outcome {
            push(&mut sql, " AND outcome = ?", Arg::S(v.clone()));
        }
        if let Some(v) = &f.object {
            push(
                &mut sql,
                " AND LOWER(object_name) LIKE ?",
                Arg::S(format!("%{}%", v.to_lowercase())),
            );
        }
        if let Some(v) = f.from {
            push(&mut sql, " AND at >= ?", Arg::I(v));
        }
        if let Some(v) = f.to {
            push(&mut sql, " AND at <= ?", Arg::I(v));
        }
        if let Some(v) = f.before_seq {
            push(&mut sql, " AND seq < ?", Arg::I(v));
        }
        sql.push_str(&format!(
            " ORDER BY seq DESC LIMIT {}",
            f.limit.clamp(1, 1000)
        ));
        let mut q = sqlx::query_as::<_, AuditRow>(crate::db::sql(sql));
        for a in args {
            q = match a {
                Arg::S(s) => q.bind(s),
                Arg::I(i) => q.bind(i),
            };
        }
        q.fetch_all(&self.db.pool).await
    }

    /// Walks the whole chain and reports the first problem.
    /// Checks the whole chain, streaming the rows (memory does not grow with the log). The
    /// head is read first and rows up to it are checked, so rows appended meanwhile are
    /// neither missed nor mistaken for insertions.
    pub async fn verify(&self) -> Result<VerifyReport, sqlx::Error> {
        use futures_util::TryStreamExt;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.db.pool)
            .await?
            .map(|h| (h.get::<i64, _>(0), h.get::<String, _>(1)));
        let upto = head.as_ref().map_or(i64::MAX, |(seq, _)| *seq);
        let mut rows = sqlx::query_as::<_, AuditRow>(
            "SELECT seq, at, actor_id, actor_name, client_addr, action, outcome, object_kind, object_id, object_name, detail, prev_hash, hash FROM audit_log WHERE seq <= $1 ORDER BY seq",
        )
        .bind(upto)
        .fetch(&self.db.pool);
        let mut check = ChainCheck::new(&self.key);
        while let Some(row) = rows.try_next().await? {
            if let Err(p) = check.row(&row) {
                return Ok(check.fail(p));
            }
        }
        Ok(check.finish(head))
    }
}

enum Arg {
    S(String),
    I(i64),
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub object: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub before_seq: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The row where the chain first fails (for deletions: the first missing sequence number).
    pub seq: i64,
    /// altered | inserted | deleted | truncated
    pub kind: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub rows_checked: usize,
    pub ok: bool,
    pub problem: Option<Problem>,
}

/// Walks the chain one row at a time, so a log of any length is checked in constant memory.
struct ChainCheck<'a> {
    key: &'a [u8; 32],
    prev: String,
    expected: i64,
    checked: usize,
}

impl<'a> ChainCheck<'a> {
    fn new(key: &'a [u8; 32]) -> Self {
        ChainCheck {
            key,
            prev: GENESIS.to_string(),
            expected: 1,
            checked: 0,
        }
    }

    /// The next row in sequence order: the first problem it shows, if any.
    fn row(&mut self, row: &AuditRow) -> Result<(), Problem> {
        let expected = self.expected;
        if row.seq > expected {
            return Err(Problem {
                seq: expected,
                kind: "deleted",
                message: format!(
                    "row {} is missing: rows {}..{} were deleted",
                    expected,
                    expected,
                    row.seq - 1
                ),
            });
        }
        if row.seq < expected {
            return Err(Problem {
                seq: row.seq,
                kind: "inserted",
                message: format!("row {} is out of order: it was inserted", row.seq),
            });
        }
        let computed = chain_hash(self.key, row);
        if computed != row.hash {
            let kind = if row.prev_hash != self.prev {
                "inserted"
            } else {
                "altered"
            };
            let message = if kind == "inserted" {
                format!("row {} does not follow row {}: it was inserted or the row before it was replaced", row.seq, row.seq - 1)
            } else {
                format!(
                    "row {} was altered after it was written (action {}, by {})",
                    row.seq, row.action, row.actor_name
                )
            };
            return Err(Problem {
                seq: row.seq,
                kind,
                message,
            });
        }
        if row.prev_hash != self.prev {
            return Err(Problem {
                seq: row.seq,
                kind: "altered",
                message: format!(
                    "row {} does not chain to row {}: row {} was altered",
                    row.seq,
                    row.seq - 1,
                    row.seq - 1
                ),
            });
        }
        self.prev = row.hash.clone();
        self.expected += 1;
        self.checked += 1;
        Ok(())
    }

    fn fail(&self, p: Problem) -> VerifyReport {
        VerifyReport {
            rows_checked: self.checked,
            ok: false,
            problem: Some(p),
        }
    }

    /// After the last row: the head record must name it.
    fn finish(self, head: Option<(i64, String)>) -> VerifyReport {
        let last = self.expected - 1;
        match head {
            Some((hseq, hhash)) if hseq != last || (last > 0 && hhash != self.prev) => {
                if hseq > last {
                    self.fail(Problem {
                        seq: last + 1,
                        kind: "truncated",
                        message: format!("the log ends at row {last} but {hseq} rows were written: rows {}..{hseq} were deleted", last + 1),
                    })
                } else {
                    self.fail(Problem {
                        seq: hseq + 1,
                        kind: "inserted",
                        message: format!("rows after {hseq} were added outside Portcullis"),
                    })
                }
            }
            None if self.checked > 0 => self.fail(Problem {
                seq: 0,
                kind: "altered",
                message: "the audit head record is missing".into(),
            }),
            _ => VerifyReport {
                rows_checked: self.checked,
                ok: true,
                problem: None,
            },
        }
    }
}

#[cfg(test)]
fn verify_rows(key: &[u8; 32], rows: &[AuditRow], head: Option<(i64, String)>) -> VerifyReport {
    let mut check = ChainCheck::new(key);
    for row in rows {
        if let Err(p) = check.row(row) {
            return check.fail(p);
        }
    }
    check.finish(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(key: &[u8; 32], n: i64) -> Vec<AuditRow> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let mut r = AuditRow {
                    seq,
                    at: 1000 + seq,
                    actor_id: "u".into(),
                    actor_name: "alice".into(),
                    client_addr: "127.0.0.1".into(),
                    action: "login".into(),
                    outcome: "ok".into(),
                    object_kind: "user".into(),
                    object_id: "u".into(),
                    object_name: "alice".into(),
                    detail: "{}".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                r.hash = chain_hash(key, &r);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn detects_each_kind_of_tampering() {
        let key = [7u8; 32];
        let rows = chain(&key, 5);
        let head = Some((5, rows[4].hash.clone()));
        assert!(verify_rows(&key, &rows, head.clone()).ok);

        let mut altered = rows.clone();
        altered[2].actor_name = "mallory".into();
        let r = verify_rows(&key, &altered, head.clone());
        assert_eq!(r.problem.unwrap().seq, 3);

        let mut deleted = rows.clone();
        deleted.remove(1);
        let p = verify_rows(&key, &deleted, head.clone()).problem.unwrap();
        assert_eq!((p.seq, p.kind), (2, "deleted"));

        let truncated = rows[..3].to_vec();
        let p = verify_rows(&key, &truncated, head.clone()).problem.unwrap();
        assert_eq!((p.seq, p.kind), (4, "truncated"));

        // A forged row without the key cannot be made to fit.
        let mut forged = rows.clone();
        forged.push(chain(&[0u8; 32], 6).pop().unwrap());
        let p = verify_rows(&key, &forged, Some((6, forged[5].hash.clone())))
            .problem
            .unwrap();
        assert_eq!(p.seq, 6);
    }
}
