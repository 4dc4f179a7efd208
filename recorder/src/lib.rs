//! The recording format: writer, reader, index, verification, export.
//!
//! Why a crate of its own: the format must be readable without a running gateway (auditors,
//! `portcullis recording verify`, export tools) and must never learn about targets or HTTP.
//! The writer and reader work on bytes; `storage` is the only module that touches files.
//! The format is specified in `docs/recording-format.md`.

pub mod event;
pub mod export;
pub mod format;
pub mod hidden;
pub mod manifest;
pub mod reader;
pub mod search;
pub mod storage;
pub mod writer;

pub use event::{RecordedEvent, Timed};
pub use format::RecordingHeader;
pub use manifest::{Manifest, SignedManifest, SigningKey};
pub use reader::{Recording, VerifyReport};
pub use writer::RecordingWriter;

/// Version of the recording format this crate writes. Bumped with every breaking change to
/// `docs/recording-format.md`.
pub const FORMAT_VERSION: u32 = 7;
/// Versions this crate reads: version 2 files are version 3 files without tails; version 3
/// files are version 4 files whose keyframes each start a chunk; version 4 files are version
/// 5 files compressed against a shorter history (64 KiB, window 2^17); version 6 files are
/// version 7 files whose redacted inputs carry no sealed hidden input.
pub const READABLE_VERSIONS: std::ops::RangeInclusive<u32> = 2..=7;

/// The 256-bit AES-GCM key of one recording. Zeroed on drop; no `Debug`, `Display`, `Clone`
/// or `Serialize`, so it cannot end up in a log or a response by accident.
pub struct RecordingKey(zeroize::Zeroizing<[u8; 32]>);

impl RecordingKey {
    pub fn generate() -> RecordingKey {
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k[..]);
        RecordingKey(k)
    }

    /// Takes a key from bytes (e.g. just unwrapped by the vault). Fails on a wrong length.
    pub fn from_slice(b: &[u8]) -> Result<RecordingKey, FormatError> {
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        if b.len() != 32 {
            return Err(FormatError::Key);
        }
        k.copy_from_slice(b);
        Ok(RecordingKey(k))
    }

    /// The raw key, for the vault to wrap. Handle with care.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not a Portcullis recording (bad magic)")]
    Magic,
    #[error("recording format version {0} is not supported (this build reads versions 2 to 7)")]
    Version(u32),
    #[error("malformed recording: {0}")]
    Malformed(String),
    #[error("the recording key is not a 256-bit key")]
    Key,
    #[error("chunk {seq}: {reason}")]
    Chunk { seq: u64, reason: String },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
