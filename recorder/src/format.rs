//! Why: the byte layout of a recording file, in one place (docs/recording-format.md is its
//! prose twin). A file is a header and a sequence of sealed chunks; each chunk names its
//! sequence number, its time span and the hash of the chunk before it, so that a changed,
//! dropped, inserted or swapped chunk breaks the chain at a point we can name.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};

use crate::{FormatError, RecordingKey, FORMAT_VERSION};

pub const FILE_MAGIC: &[u8; 8] = b"PCREC\x00\r\n";
pub const CHUNK_MAGIC: &[u8; 4] = b"PCCK";
/// magic, body length u32, seq u64, t_first u64, t_last u64, flags u8, prev hash, nonce.
pub const CHUNK_FIXED: usize = 4 + 4 + 8 + 8 + 8 + 1 + 32 + 12;
/// The largest chunk body a reader accepts (a writer seals far smaller ones).
pub const MAX_CHUNK_BODY: usize = 64 * 1024 * 1024;
const FLAG_KEYFRAME: u8 = 1;

/// Who and what was recorded. Stored in clear at the start of the file (it is the metadata
/// an auditor filters on, not session content) and bound into the chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordingHeader {
    pub format_version: u32,
    pub recording_id: String,
    pub session_id: String,
    /// ssh | telnet | rdp
    pub protocol: String,
    /// Wall-clock start, Unix milliseconds; event times are relative to it.
    pub started_at_ms: i64,
    pub cols: u16,
    pub rows: u16,
    pub user: String,
    pub account: String,
    pub resource: String,
    pub client_addr: String,
    /// Whether keystrokes are in the recording (a setting).
    pub input_recorded: bool,
    /// The recording key, sealed by the vault (opaque to this crate).
    pub wrapped_key: String,
}

pub fn encode_header(h: &RecordingHeader) -> Vec<u8> {
    let json = serde_json::to_vec(h).unwrap_or_default();
    let mut out = FILE_MAGIC.to_vec();
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// Reads the header; returns it and its length in bytes.
pub fn decode_header(b: &[u8]) -> Result<(RecordingHeader, usize), FormatError> {
    if b.len() < 12 || &b[..8] != FILE_MAGIC {
        return Err(FormatError::Magic);
    }
    let n = u32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize;
    if n > 1024 * 1024 || b.len() < 12 + n {
        return Err(FormatError::Malformed("the header is cut short".into()));
    }
    let h: RecordingHeader = serde_json::from_slice(&b[12..12 + n])
        .map_err(|e| FormatError::Malformed(format!("header: {e}")))?;
    if h.format_version != FORMAT_VERSION {
        return Err(FormatError::Version(h.format_version));
    }
    Ok((h, 12 + n))
}

pub fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// A chunk's clear fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    pub seq: u64,
    pub t_first_ms: u64,
    pub t_last_ms: u64,
    /// The chunk's first event is a keyframe: playback can start here.
    pub keyframe: bool,
    pub prev_hash: [u8; 32],
    /// Where the chunk starts in the file, and its whole length.
    pub offset: u64,
    pub len: usize,
    /// SHA-256 of the whole chunk: the next chunk's `prev_hash`.
    pub hash: [u8; 32],
}

/// Everything a writer needs to seal a chunk.
pub struct ChunkSpec<'a> {
    pub seq: u64,
    pub t_first_ms: u64,
    pub t_last_ms: u64,
    pub keyframe: bool,
    pub prev_hash: [u8; 32],
    pub plaintext: &'a [u8],
}

/// Compresses, encrypts and frames one chunk; returns its bytes and hash.
pub fn seal_chunk(
    key: &RecordingKey,
    spec: ChunkSpec<'_>,
) -> Result<(Vec<u8>, [u8; 32]), FormatError> {
    let compressed = zstd::bulk::compress(spec.plaintext, 3)?;
    let mut nonce = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let ct_len = compressed.len() + 16;
    let mut out = Vec::with_capacity(CHUNK_FIXED + ct_len);
    out.extend_from_slice(CHUNK_MAGIC);
    out.extend_from_slice(&(ct_len as u32).to_be_bytes());
    out.extend_from_slice(&spec.seq.to_be_bytes());
    out.extend_from_slice(&spec.t_first_ms.to_be_bytes());
    out.extend_from_slice(&spec.t_last_ms.to_be_bytes());
    out.push(if spec.keyframe { FLAG_KEYFRAME } else { 0 });
    out.extend_from_slice(&spec.prev_hash);
    out.extend_from_slice(&nonce);
    let cipher = Aes256Gcm::new_from_slice(key.expose()).map_err(|_| FormatError::Key)?;
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &compressed,
                aad: &out[..CHUNK_FIXED],
            },
        )
        .map_err(|_| FormatError::Key)?;
    out.extend_from_slice(&ct);
    let hash = sha256(&out);
    Ok((out, hash))
}

/// Parses the chunk starting at `offset` of `file`. `Ok(None)`: the file ends inside this
/// chunk (a write cut short by a crash): the recording is incomplete from here on.
pub fn parse_chunk(file: &[u8], offset: usize) -> Result<Option<ChunkInfo>, FormatError> {
    let b = &file[offset..];
    if b.len() < CHUNK_FIXED {
        return Ok(None);
    }
    if &b[..4] != CHUNK_MAGIC {
        return Err(FormatError::Malformed(format!(
            "no chunk starts at byte {offset}"
        )));
    }
    let u64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        u64::from_be_bytes(a)
    };
    let body = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if body > MAX_CHUNK_BODY {
        return Err(FormatError::Malformed(format!(
            "chunk at byte {offset} claims {body} bytes"
        )));
    }
    if b.len() < CHUNK_FIXED + body {
        return Ok(None);
    }
    let mut prev_hash = [0u8; 32];
    prev_hash.copy_from_slice(&b[33..65]);
    Ok(Some(ChunkInfo {
        seq: u64_at(8),
        t_first_ms: u64_at(16),
        t_last_ms: u64_at(24),
        keyframe: b[32] & FLAG_KEYFRAME != 0,
        prev_hash,
        offset: offset as u64,
        len: CHUNK_FIXED + body,
        hash: sha256(&b[..CHUNK_FIXED + body]),
    }))
}

/// Decrypts and decompresses a chunk (`bytes`: the whole chunk).
pub fn open_chunk(key: &RecordingKey, bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.len() < CHUNK_FIXED + 16 {
        return Err("too short".into());
    }
    let cipher = Aes256Gcm::new_from_slice(key.expose()).map_err(|_| "bad key".to_string())?;
    let nonce = &bytes[CHUNK_FIXED - 12..CHUNK_FIXED];
    let compressed = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: &bytes[CHUNK_FIXED..],
                aad: &bytes[..CHUNK_FIXED],
            },
        )
        .map_err(|_| {
            "does not decrypt (altered, or not sealed with this recording's key)".to_string()
        })?;
    let mut out = Vec::new();
    let mut dec = zstd::stream::read::Decoder::new(&compressed[..]).map_err(|e| e.to_string())?;
    // Bounded: a chunk never holds more than a few MiB of events.
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&mut dec, 256 * 1024 * 1024),
        &mut out,
    )
    .map_err(|e| format!("does not decompress: {e}"))?;
    Ok(out)
}
