//! Why: where recordings live, behind a small trait so object storage can come later. The
//! local-directory backend appends chunks to `<id>.pcr` and syncs them to disk, keeps the open
//! chunk's latest tail in `<id>.tail` (replaced whole, every second), and writes the signed
//! manifest next to them as `<id>.manifest.json` when the recording closes.

use std::io::Write;
use std::path::PathBuf;

use crate::manifest::SignedManifest;

pub trait RecordingStore: Send + Sync {
    /// Creates the recording with its header. Fails if it exists.
    fn create(&self, id: &str, header: &[u8]) -> std::io::Result<()>;
    /// Appends sealed chunks and makes them durable before returning.
    fn append(&self, id: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// Replaces the open chunk's tail, atomically (a reader or a crash sees the old tail or
    /// the new one, never a mix), and makes it durable before returning.
    fn write_tail(&self, id: &str, tail: &[u8]) -> std::io::Result<()>;
    /// Removes the tail (its chunk has been sealed and appended).
    fn clear_tail(&self, id: &str) -> std::io::Result<()>;
    /// The recording as one byte string: the sealed chunks, then the tail if one is stored
    /// and the recording is not closed.
    fn read(&self, id: &str) -> std::io::Result<Vec<u8>>;
    /// The same bytes as `read`, as a reader (a closed recording streams from its file
    /// instead of being held whole in memory).
    fn reader(&self, id: &str) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(std::io::Cursor::new(self.read(id)?)))
    }
    fn write_manifest(&self, id: &str, m: &SignedManifest) -> std::io::Result<()>;
    fn read_manifest(&self, id: &str) -> std::io::Result<Option<SignedManifest>>;
    fn delete(&self, id: &str) -> std::io::Result<()>;
    /// Bytes stored for the recording.
    fn size(&self, id: &str) -> std::io::Result<u64>;
}

pub struct LocalDirStore {
    dir: PathBuf,
}

fn valid_id(id: &str) -> std::io::Result<()> {
    if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "invalid recording id",
        ))
    }
}

impl LocalDirStore {
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<LocalDirStore> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(LocalDirStore { dir })
    }

    pub fn data_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.pcr"))
    }

    pub fn manifest_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.manifest.json"))
    }

    pub fn tail_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.tail"))
    }

    /// Where the next tail is written before it replaces `tail_path`.
    fn tail_tmp_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.tail.tmp"))
    }
}

fn remove_if_there(p: PathBuf) -> std::io::Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl RecordingStore for LocalDirStore {
    fn create(&self, id: &str, header: &[u8]) -> std::io::Result<()> {
        valid_id(id)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.data_path(id))?;
        f.write_all(header)?;
        f.sync_all()
    }

    fn append(&self, id: &str, bytes: &[u8]) -> std::io::Result<()> {
        valid_id(id)?;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_path(id))?;
        f.write_all(bytes)?;
        f.sync_data()
    }

    fn write_tail(&self, id: &str, tail: &[u8]) -> std::io::Result<()> {
        valid_id(id)?;
        // The sealed chunks must still be appendable: a tail beside a recording file that is
        // gone or broken would hide the failure until the chunk is sealed, up to 10 minutes
        // later.
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_path(id))?;
        let tmp = self.tail_tmp_path(id);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(tail)?;
        f.sync_data()?;
        std::fs::rename(tmp, self.tail_path(id))
    }

    fn clear_tail(&self, id: &str) -> std::io::Result<()> {
        valid_id(id)?;
        remove_if_there(self.tail_path(id))
    }

    fn reader(&self, id: &str) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        valid_id(id)?;
        if self.manifest_path(id).exists() {
            return Ok(Box::new(std::fs::File::open(self.data_path(id))?));
        }
        Ok(Box::new(std::io::Cursor::new(self.read(id)?)))
    }

    fn read(&self, id: &str) -> std::io::Result<Vec<u8>> {
        valid_id(id)?;
        if self.manifest_path(id).exists() {
            return std::fs::read(self.data_path(id));
        }
        // The tail first: if the writer seals its chunk meanwhile, the chunks read next
        // include it and the older tail is recognised as stale, never the other way round.
        let tail = match std::fs::read(self.tail_path(id)) {
            Ok(tail) => tail,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut bytes = std::fs::read(self.data_path(id))?;
        if tail.is_empty() {
            return Ok(bytes);
        }
        // A chunk cut short at the end (an append in progress, or cut by a crash) is dropped:
        // the tail holds that chunk's events up to its last second. Bytes that do not parse
        // are left as they are, for verify to name the problem.
        if let Some(n) = crate::format::whole_chunks_len(&bytes) {
            bytes.truncate(n);
            bytes.extend_from_slice(&tail);
        }
        Ok(bytes)
    }

    fn write_manifest(&self, id: &str, m: &SignedManifest) -> std::io::Result<()> {
        valid_id(id)?;
        let tmp = self.dir.join(format!("{id}.manifest.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(m).unwrap_or_default())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(tmp, self.manifest_path(id))
    }

    fn read_manifest(&self, id: &str) -> std::io::Result<Option<SignedManifest>> {
        valid_id(id)?;
        match std::fs::read(self.manifest_path(id)) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, id: &str) -> std::io::Result<()> {
        valid_id(id)?;
        for p in [
            self.data_path(id),
            self.tail_path(id),
            self.tail_tmp_path(id),
            self.manifest_path(id),
        ] {
            remove_if_there(p)?;
        }
        Ok(())
    }

    fn size(&self, id: &str) -> std::io::Result<u64> {
        valid_id(id)?;
        let tail = std::fs::metadata(self.tail_path(id)).map_or(0, |m| m.len());
        Ok(std::fs::metadata(self.data_path(id))?.len() + tail)
    }
}
