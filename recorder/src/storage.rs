//! Why: where recordings live, behind a small trait so object storage can come later. The
//! local-directory backend appends chunks to `<id>.pcr` and syncs them to disk, and writes the
//! signed manifest next to it as `<id>.manifest.json` when the recording closes.

use std::io::Write;
use std::path::PathBuf;

use crate::manifest::SignedManifest;

pub trait RecordingStore: Send + Sync {
    /// Creates the recording with its header. Fails if it exists.
    fn create(&self, id: &str, header: &[u8]) -> std::io::Result<()>;
    /// Appends sealed chunks and makes them durable before returning.
    fn append(&self, id: &str, bytes: &[u8]) -> std::io::Result<()>;
    fn read(&self, id: &str) -> std::io::Result<Vec<u8>>;
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

    fn read(&self, id: &str) -> std::io::Result<Vec<u8>> {
        valid_id(id)?;
        std::fs::read(self.data_path(id))
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
        for p in [self.data_path(id), self.manifest_path(id)] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn size(&self, id: &str) -> std::io::Result<u64> {
        valid_id(id)?;
        Ok(std::fs::metadata(self.data_path(id))?.len())
    }
}
