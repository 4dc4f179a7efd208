//! Why: envelope encryption. Secrets are sealed with AES-256-GCM under *data keys*; data keys
//! are stored in the database wrapped by the *master key*, which lives in a file (ideally
//! outside the data directory) and is needed only at start-up. Rotating the master key then
//! means re-wrapping a handful of data keys, not re-encrypting every secret.
//!
//! Crash safety of `key rotate`: the new key is first written complete to `<key>.next`; each
//! data key row names the master key that wraps it, so at any moment every row can be opened
//! with one of the two files; only when every row uses the new key is the old file copied to
//! `<key>.retired-<id>` and `<key>.next` renamed over `<key>`. Start-up finishes an
//! interrupted rotation. Nothing is ever overwritten while a row still needs it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::db::{self, Db};
use secret::Secret;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// 32 bytes of key material. No Debug, no Clone, wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct KeyBytes([u8; 32]);

impl KeyBytes {
    fn random() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        KeyBytes(k)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A master key and its id (derived from the key, so a file cannot lie about it).
pub struct MasterKey {
    pub id: String,
    key: KeyBytes,
}

impl MasterKey {
    fn from_bytes(key: KeyBytes) -> Self {
        let digest = Sha256::digest([b"portcullis master key id" as &[u8], &key.0].concat());
        MasterKey {
            id: hex::encode(&digest[..8]),
            key,
        }
    }

    pub fn generate() -> Self {
        Self::from_bytes(KeyBytes::random())
    }

    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let b64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("key="))
            .ok_or_else(|| KeyError::Malformed(path.to_path_buf()))?;
        let mut raw = B64
            .decode(b64.trim())
            .map_err(|_| KeyError::Malformed(path.to_path_buf()))?;
        if raw.len() != 32 {
            raw.zeroize();
            return Err(KeyError::Malformed(path.to_path_buf()));
        }
        let mut k = [0u8; 32];
        k.copy_from_slice(&raw);
        raw.zeroize();
        Ok(Self::from_bytes(KeyBytes(k)))
    }

    /// Writes the key to `path` atomically (temp file, fsync, rename) with mode 0600.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        let io = |e: std::io::Error| KeyError::Unwritable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
        }
        let tmp = with_suffix(path, ".tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io)?;
        let mut body = format!(
            "# Portcullis master key. Without it the vault cannot be opened; keep a copy\n\
             # somewhere safe and apart from the data directory.\nid={}\nkey={}\n",
            self.id,
            B64.encode(self.key.0)
        );
        let res = f.write_all(body.as_bytes()).and_then(|_| f.sync_all());
        body.zeroize();
        res.map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn next_key_path(master: &Path) -> PathBuf {
    with_suffix(master, ".next")
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key file {} is missing, but the database already holds data encrypted under master key {expected}. Restore the key file (or point master_key_file at it); Portcullis never re-initialises existing data", path.display())]
    Missing { path: PathBuf, expected: String },
    #[error("master key file {} holds key {found}, but the database was encrypted under master key {expected}. This is the wrong key file; nothing was changed", path.display())]
    Wrong {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("master key file {} cannot be read: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("master key file {} cannot be written: {reason}", path.display())]
    Unwritable { path: PathBuf, reason: String },
    #[error("master key file {} is not a Portcullis master key (expected a line key=<base64 of 32 bytes>)", .0.display())]
    Malformed(PathBuf),
    #[error("data key {0} does not decrypt with its master key: the database or the key file is corrupt")]
    Corrupt(String),
    #[error("strict mode: the master key file {} is inside the data directory {}; move it elsewhere and set master_key_file", key.display(), data_dir.display())]
    InsideDataDir { key: PathBuf, data_dir: PathBuf },
    #[error("database error while opening the vault keys: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("this value was sealed under data key {0}, which this vault does not have")]
    UnknownKey(String),
    #[error("the stored value is not in the vault's ciphertext format")]
    Format,
    #[error("integrity check failed: the stored value was altered or belongs to another record")]
    Integrity,
}

/// The unwrapped data keys the server works with. The audit key never changes; the secrets
/// keys change only by a data-key rotation (`vault::data_keys`), which adds a key and makes
/// it the one new seals use, so the ring sits behind a lock.
pub struct Crypto {
    ring: std::sync::RwLock<Ring>,
    audit_key: KeyBytes,
}

struct Ring {
    data_keys: HashMap<String, std::sync::Arc<KeyBytes>>,
    active_secrets: String,
}

impl Crypto {
    fn ring(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the map half-changed (one insert).
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Seals `plaintext`, bound to `context` (e.g. `accounts/<id>/secret`): the ciphertext
    /// only opens with the same context, so it cannot be moved to another row or field.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let (kid, key) = {
            let ring = self.ring();
            let Some(key) = ring.data_keys.get(&ring.active_secrets) else {
                // Constructed only with its active key present; unreachable by construction.
                return String::new();
            };
            (ring.active_secrets.clone(), key.clone())
        };
        let (nonce, ct) = aead_seal(&key, &aad(context), plaintext);
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        format!("pc1:{kid}:{}", B64.encode(blob))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<Secret, CryptoError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some("pc1"), Some(kid), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CryptoError::Format);
        };
        let key = self
            .ring()
            .data_keys
            .get(kid)
            .cloned()
            .ok_or_else(|| CryptoError::UnknownKey(kid.to_string()))?;
        let blob = B64.decode(b64).map_err(|_| CryptoError::Format)?;
        if blob.len() < 12 + 16 {
            return Err(CryptoError::Format);
        }
        let (nonce, ct) = blob.split_at(12);
        aead_open(&key, nonce, &aad(context), ct)
            .map(Secret::new)
            .ok_or(CryptoError::Integrity)
    }

    /// The data key new seals use.
    pub fn active_key_id(&self) -> String {
        self.ring().active_secrets.clone()
    }

    /// Adds a data key (already stored, wrapped, and committed by the caller) and makes it
    /// the one new seals use. Older keys stay and keep opening what they sealed.
    pub fn activate(&self, key: NewDataKey) {
        let NewDataKey { id, key } = key;
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        ring.data_keys.insert(id.clone(), std::sync::Arc::new(key));
        ring.active_secrets = id;
    }

    /// The key used to chain the audit log (HMAC-SHA256).
    pub fn audit_key(&self) -> &[u8; 32] {
        self.audit_key.as_bytes()
    }

    /// For unit tests: a vault crypto with fresh random keys and no database.
    #[cfg(test)]
    pub fn ephemeral() -> Crypto {
        let mut data_keys = HashMap::new();
        data_keys.insert("s".to_string(), std::sync::Arc::new(KeyBytes::random()));
        Crypto {
            ring: std::sync::RwLock::new(Ring {
                data_keys,
                active_secrets: "s".into(),
            }),
            audit_key: KeyBytes::random(),
        }
    }
}

/// A data key stored but not yet in use: `Crypto::activate` once its transaction committed
/// (a key the database never got must never seal anything).
pub struct NewDataKey {
    pub id: String,
    key: KeyBytes,
}

/// A new secrets data key, wrapped under `master`, stored as the active one (the previous
/// active key stays, inactive, until a rotation retires it). The caller's transaction makes
/// the switch and the rotation's record one step, then activates the key.
pub async fn add_active_secrets_key(
    tx: &mut crate::db::WriteTx,
    master: &MasterKey,
) -> Result<NewDataKey, sqlx::Error> {
    let id = format!("dk-{}", &db::new_id()[..8]);
    let dk = KeyBytes::random();
    sqlx::query("UPDATE data_keys SET active = 0 WHERE purpose = 'secrets'")
        .execute(tx.conn())
        .await?;
    sqlx::query(
        "INSERT INTO data_keys (id, purpose, wrapped, master_key_id, active, created_at) VALUES ($1, 'secrets', $2, $3, 1, $4)",
    )
    .bind(&id)
    .bind(wrap(master, &id, &dk))
    .bind(&master.id)
    .bind(db::now_ms())
    .execute(tx.conn())
    .await?;
    Ok(NewDataKey { id, key: dk })
}

/// The master key the database's data keys are wrapped under, read again from its file (the
/// server keeps no copy after start-up). Refuses a file holding another key.
pub async fn current_master(db: &Db, key_path: &Path) -> Result<MasterKey, KeyError> {
    let rows = data_key_rows(db).await?;
    let master = MasterKey::read(key_path)?;
    match rows.iter().find(|r| r.master_key_id != master.id) {
        Some(r) => Err(KeyError::Wrong {
            path: key_path.to_path_buf(),
            found: master.id.clone(),
            expected: r.master_key_id.clone(),
        }),
        None => Ok(master),
    }
}

fn aad(context: &str) -> Vec<u8> {
    format!("portcullis/v1|{context}").into_bytes()
}

fn aead_seal(key: &KeyBytes, aad: &[u8], plaintext: &[u8]) -> ([u8; 12], Vec<u8>) {
    let cipher = Aes256Gcm::new(key.as_bytes().into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    // Encryption with a valid key and nonce cannot fail for in-memory buffers.
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    (nonce, ct)
}

fn aead_open(key: &KeyBytes, nonce: &[u8], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    let cipher = Aes256Gcm::new(key.as_bytes().into());
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

fn wrap(master: &MasterKey, dk_id: &str, dk: &KeyBytes) -> String {
    let (nonce, ct) = aead_seal(&master.key, &aad(&format!("data_keys/{dk_id}")), &dk.0);
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&ct);
    B64.encode(blob)
}

fn unwrap_key(master: &MasterKey, dk_id: &str, wrapped: &str) -> Result<KeyBytes, KeyError> {
    let corrupt = || KeyError::Corrupt(dk_id.to_string());
    let blob = B64.decode(wrapped).map_err(|_| corrupt())?;
    if blob.len() < 12 {
        return Err(corrupt());
    }
    let (nonce, ct) = blob.split_at(12);
    let mut raw = aead_open(&master.key, nonce, &aad(&format!("data_keys/{dk_id}")), ct)
        .ok_or_else(corrupt)?;
    if raw.len() != 32 {
        raw.zeroize();
        return Err(corrupt());
    }
    let mut k = [0u8; 32];
    k.copy_from_slice(&raw);
    raw.zeroize();
    Ok(KeyBytes(k))
}

#[derive(sqlx::FromRow)]
struct DataKeyRow {
    id: String,
    purpose: String,
    wrapped: String,
    master_key_id: String,
    active: i64,
}

async fn data_key_rows(db: &Db) -> Result<Vec<DataKeyRow>, sqlx::Error> {
    sqlx::query_as::<_, DataKeyRow>(
        "SELECT id, purpose, wrapped, master_key_id, active FROM data_keys ORDER BY created_at, id",
    )
    .fetch_all(db)
    .await
}

/// How the vault keys were opened; the server prints it at start-up.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenOutcome {
    /// Fresh database: a master key was generated (or an existing file adopted).
    Initialised {
        generated_key: bool,
    },
    Opened,
    /// A rotation interrupted by a crash was completed during start-up.
    RotationCompleted,
}

/// Opens (or on a fresh database, creates) the vault keys. Never overwrites an existing key
/// file and never re-initialises a database that already holds data keys.
pub async fn open(
    db: &Db,
    key_path: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(Crypto, MasterKey, OpenOutcome), KeyError> {
    let rows = data_key_rows(db).await?;
    let next_path = next_key_path(key_path);

    if rows.is_empty() {
        let (master, generated) = if key_path.exists() {
            (MasterKey::read(key_path)?, false)
        } else {
            let m = MasterKey::generate();
            m.write(key_path)?;
            (m, true)
        };
        if next_path.exists() {
            // A `.next` file without any rows using it is a leftover; it protects nothing.
            let _ = std::fs::remove_file(&next_path);
        }
        let now = db::now_ms();
        for purpose in ["secrets", "audit"] {
            let id = format!("dk-{}", &db::new_id()[..8]);
            let dk = KeyBytes::random();
            sqlx::query(
                "INSERT INTO data_keys (id, purpose, wrapped, master_key_id, active, created_at) VALUES ($1, $2, $3, $4, 1, $5)",
            )
            .bind(&id)
            .bind(purpose)
            .bind(wrap(&master, &id, &dk))
            .bind(&master.id)
            .bind(now)
            .execute(db)
            .await?;
        }
        let crypto = load(db, &[&master]).await?;
        return Ok((
            crypto,
            master,
            OpenOutcome::Initialised {
                generated_key: generated,
            },
        ));
    }

    let expected = rows[0].master_key_id.clone();
    if !key_path.exists() {
        // During a rotation that crashed after promotion started, `.next` may be the only
        // file; it is still a valid key for the rows it wrapped.
        if !next_path.exists() {
            return Err(KeyError::Missing {
                path: key_path.to_path_buf(),
                expected,
            });
        }
    }
    let current = if key_path.exists() {
        Some(MasterKey::read(key_path)?)
    } else {
        None
    };
    let next = if next_path.exists() {
        Some(MasterKey::read(&next_path)?)
    } else {
        None
    };
    let mut ring: Vec<&MasterKey> = Vec::new();
    ring.extend(current.iter());
    ring.extend(next.iter());
    for row in &rows {
        if !ring.iter().any(|m| m.id == row.master_key_id) {
            return Err(KeyError::Wrong {
                path: key_path.to_path_buf(),
                found: current.as_ref().map(|m| m.id.clone()).unwrap_or_default(),
                expected: row.master_key_id.clone(),
            });
        }
    }
    let crypto = load(db, &ring).await?;
    if let Some(n) = next.as_ref() {
        progress(&format!(
            "an interrupted master key rotation to key {} was found; completing it",
            n.id
        ));
        rewrap_all(db, &ring, n, progress).await?;
        promote(key_path, current.as_ref(), n)?;
    }
    drop(ring);
    match (current, next) {
        (_, Some(next)) => Ok((crypto, next, OpenOutcome::RotationCompleted)),
        (Some(current), None) => Ok((crypto, current, OpenOutcome::Opened)),
        (None, None) => Err(KeyError::Missing {
            path: key_path.to_path_buf(),
            expected,
        }),
    }
}

async fn load(db: &Db, ring: &[&MasterKey]) -> Result<Crypto, KeyError> {
    let rows = data_key_rows(db).await?;
    let mut data_keys = HashMap::new();
    let mut active_secrets = None;
    let mut audit_key = None;
    for row in rows {
        let master = ring
            .iter()
            .find(|m| m.id == row.master_key_id)
            .ok_or_else(|| KeyError::Corrupt(row.id.clone()))?;
        let dk = unwrap_key(master, &row.id, &row.wrapped)?;
        if row.purpose == "audit" {
            audit_key = Some(dk);
            continue;
        }
        if row.active == 1 && row.purpose == "secrets" {
            active_secrets = Some(row.id.clone());
        }
        data_keys.insert(row.id, std::sync::Arc::new(dk));
    }
    match (active_secrets, audit_key) {
        (Some(active_secrets), Some(audit_key)) => Ok(Crypto {
            ring: std::sync::RwLock::new(Ring {
                data_keys,
                active_secrets,
            }),
            audit_key,
        }),
        _ => Err(KeyError::Corrupt(
            "(active secrets or audit key missing)".into(),
        )),
    }
}

/// Re-wraps every data key not yet under `next`. Each row is its own small transaction and
/// names the key that wraps it, so stopping between rows is always safe.
async fn rewrap_all(
    db: &Db,
    ring: &[&MasterKey],
    next: &MasterKey,
    progress: &mut dyn FnMut(&str),
) -> Result<(), KeyError> {
    let rows = data_key_rows(db).await?;
    let total = rows.len();
    let delay = std::env::var("PORTCULLIS_TEST_ROTATION_STEP_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    for (i, row) in rows.iter().enumerate() {
        if row.master_key_id != next.id {
            let old = ring
                .iter()
                .find(|m| m.id == row.master_key_id)
                .ok_or_else(|| KeyError::Corrupt(row.id.clone()))?;
            let dk = unwrap_key(old, &row.id, &row.wrapped)?;
            sqlx::query("UPDATE data_keys SET wrapped = $1, master_key_id = $2 WHERE id = $3 AND master_key_id = $4")
                .bind(wrap(next, &row.id, &dk))
                .bind(&next.id)
                .bind(&row.id)
                .bind(&row.master_key_id)
                .execute(db)
                .await?;
        }
        progress(&format!(
            "re-wrapped data key {}/{} ({})",
            i + 1,
            total,
            row.id
        ));
        if let Some(ms) = delay {
            // Test hook only: widens the window in which the crash tests kill the process.
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
    Ok(())
}

/// Keeps the old key as `<key>.retired-<id>`, then atomically renames `.next` over `<key>`.
fn promote(key_path: &Path, current: Option<&MasterKey>, next: &MasterKey) -> Result<(), KeyError> {
    if let Some(old) = current {
        if old.id != next.id {
            old.write(&with_suffix(key_path, &format!(".retired-{}", old.id)))?;
        }
    }
    std::fs::rename(next_key_path(key_path), key_path).map_err(|e| KeyError::Unwritable {
        path: key_path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// `portcullis key rotate`: a new master key; every data key re-wrapped under it.
pub async fn rotate(
    db: &Db,
    key_path: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(String, String), KeyError> {
    let (_crypto, current, _) = open(db, key_path, progress).await?;
    let next = MasterKey::generate();
    progress(&format!(
        "step 1/3: new master key {} written to {}",
        next.id,
        next_key_path(key_path).display()
    ));
    next.write(&next_key_path(key_path))?;
    progress("step 2/3: re-wrapping data keys under the new master key");
    rewrap_all(db, &[&current, &next], &next, progress).await?;
    progress(&format!(
        "step 3/3: old key kept as {}; new key promoted to {}",
        with_suffix(key_path, &format!(".retired-{}", current.id)).display(),
        key_path.display()
    ));
    promote(key_path, Some(&current), &next)?;
    Ok((current.id.clone(), next.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_is_bound_to_context() {
        let c = Crypto::ephemeral();
        let sealed = c.seal("accounts/1/secret", b"canary-1");
        assert!(!sealed.contains("canary"));
        assert_eq!(
            c.open("accounts/1/secret", &sealed).unwrap().expose(),
            b"canary-1"
        );
        assert!(matches!(
            c.open("accounts/2/secret", &sealed),
            Err(CryptoError::Integrity)
        ));
        assert!(matches!(
            c.open("accounts/1/passphrase", &sealed),
            Err(CryptoError::Integrity)
        ));
        // Flip one bit of the ciphertext itself.
        let (head, b64) = sealed.rsplit_once(':').unwrap();
        let mut blob = B64.decode(b64).unwrap();
        *blob.last_mut().unwrap() ^= 1;
        let tampered = format!("{head}:{}", B64.encode(blob));
        assert!(matches!(
            c.open("accounts/1/secret", &tampered),
            Err(CryptoError::Integrity)
        ));
        assert!(matches!(c.open("x", "plain"), Err(CryptoError::Format)));
    }

    #[test]
    fn key_file_round_trip_and_id_is_derived() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let m = MasterKey::generate();
        m.write(&p).unwrap();
        let r = MasterKey::read(&p).unwrap();
        assert_eq!(r.id, m.id);
        // Editing the id line cannot change the key's identity.
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace(&m.id, "0000000000000000");
        std::fs::write(&p, text).unwrap();
        assert_eq!(MasterKey::read(&p).unwrap().id, m.id);
        std::fs::write(&p, "key=AAAA\n").unwrap();
        assert!(matches!(MasterKey::read(&p), Err(KeyError::Malformed(_))));
    }
}
