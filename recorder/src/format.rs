//! Why: the byte layout of a recording file, in one place (docs/recording-format.md is its
//! prose twin). A file is a header and a sequence of sealed chunks; each chunk names its
//! sequence number, its time span and the hash of the chunk before it, so that a changed,
//! dropped, inserted or swapped chunk breaks the chain at a point we can name.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};

use crate::{FormatError, RecordingKey};

pub const FILE_MAGIC: &[u8; 8] = b"PCREC\x00\r\n";
pub const CHUNK_MAGIC: &[u8; 2] = b"PK";
/// An unsealed *tail* chunk: the events of the chunk still open, rewritten every second (see
/// `docs/recording-format.md`). Same fields as a chunk, plus a revision before the body.
pub const TAIL_MAGIC: &[u8; 2] = b"PT";
/// magic, body length u32, seq u32, t_first u32, t_last u32, flags u8, prev hash (16).
pub const CHUNK_FIXED: usize = 2 + 4 + 4 + 4 + 4 + 1 + PREV_HASH_LEN;
/// The chain stores the first 128 bits of each SHA-256 (second preimages stay out of reach);
/// the manifest keeps the full hash of the last chunk.
pub const PREV_HASH_LEN: usize = 16;
/// A tail's fixed part: a chunk's, then the revision (u32).
pub const TAIL_FIXED: usize = CHUNK_FIXED + 4;
/// A signature record (format version 6) follows each sealed chunk: magic, the chunk's
/// `seq` (u32), and an Ed25519 signature by the server's recording key over
/// `chunk_signed_bytes`. It is not part of the chain: it vouches for each chunk on its own,
/// so the last chunk of a recording whose manifest is gone can still be checked offline.
pub const SIGNATURE_MAGIC: &[u8; 2] = b"PS";
pub const SIGNATURE_RECORD: usize = 2 + 4 + 64;

/// What a chunk's signature covers: the recording (its header's hash), the chunk's place
/// and the chunk's whole bytes (its hash).
pub fn chunk_signed_bytes(header_hash: &[u8; 32], seq: u64, chunk_hash: &[u8; 32]) -> Vec<u8> {
    let mut m = b"portcullis-chunk\0".to_vec();
    m.extend_from_slice(header_hash);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(chunk_hash);
    m
}

/// A signature record for chunk `seq`.
pub fn signature_record(seq: u64, signature: &[u8; 64]) -> Vec<u8> {
    let mut r = Vec::with_capacity(SIGNATURE_RECORD);
    r.extend_from_slice(SIGNATURE_MAGIC);
    r.extend_from_slice(&clamp32(seq).to_be_bytes());
    r.extend_from_slice(signature);
    r
}

/// The signature record at `offset`, if one starts there: (seq, signature). `Ok(None)` when
/// the file ends inside it (a write cut short).
pub fn parse_signature(file: &[u8], offset: usize) -> Result<Option<(u64, [u8; 64])>, FormatError> {
    let b = &file[offset..];
    if !b.starts_with(SIGNATURE_MAGIC) {
        return Err(FormatError::Malformed(format!(
            "no signature record at byte {offset}"
        )));
    }
    if b.len() < SIGNATURE_RECORD {
        return Ok(None);
    }
    let seq = u32::from_be_bytes([b[2], b[3], b[4], b[5]]) as u64;
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&b[6..SIGNATURE_RECORD]);
    Ok(Some((seq, sig)))
}
/// The fixed part's length of the chunk or tail that starts with `magic`.
fn fixed_len(magic: &[u8]) -> Option<usize> {
    match magic {
        m if m == CHUNK_MAGIC => Some(CHUNK_FIXED),
        m if m == TAIL_MAGIC => Some(TAIL_FIXED),
        _ => None,
    }
}

/// The largest chunk body a reader accepts (a writer seals far smaller ones).
pub const MAX_CHUNK_BODY: usize = 64 * 1024 * 1024;
const FLAG_KEYFRAME: u8 = 1;
const FLAG_ANCHOR: u8 = 2;

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
    /// The landing servers the session went through, in order (empty: direct).
    #[serde(default)]
    pub path: Vec<String>,
    /// The recording key, sealed by the vault (opaque to this crate).
    pub wrapped_key: String,
    /// Format version 6: the public half of the key that signs each chunk (base64 Ed25519),
    /// for checking a file offline; compare it with the server's published key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
}

pub fn encode_header(h: &RecordingHeader) -> Vec<u8> {
    let json = serde_json::to_vec(h).unwrap_or_default();
    let mut out = FILE_MAGIC.to_vec();
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// Reads only the header from the start of a recording (the rest is not read).
pub fn read_header(r: &mut dyn std::io::Read) -> Result<RecordingHeader, FormatError> {
    let mut head = vec![0u8; 12];
    r.read_exact(&mut head)?;
    let n = u32::from_be_bytes([head[8], head[9], head[10], head[11]]) as usize;
    if n > 1024 * 1024 {
        return Err(FormatError::Malformed(format!(
            "the header claims {n} bytes"
        )));
    }
    head.resize(12 + n, 0);
    r.read_exact(&mut head[12..])?;
    Ok(decode_header(&head)?.0)
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
    if !crate::READABLE_VERSIONS.contains(&h.format_version) {
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
    /// A new compression stream starts here: decompression can start here.
    pub anchor: bool,
    pub prev_hash: [u8; PREV_HASH_LEN],
    /// Where the chunk starts in the file, and its whole length.
    pub offset: u64,
    pub len: usize,
    /// SHA-256 of the whole chunk (the next chunk's `prev_hash` is its first 16 bytes).
    pub hash: [u8; 32],
    /// `Some(revision)` for an unsealed tail chunk.
    pub tail: Option<u32>,
}

/// Everything a writer needs to seal a chunk. `compressed`: this chunk's part of the
/// recording's compression stream.
pub struct ChunkSpec<'a> {
    pub seq: u64,
    pub t_first_ms: u64,
    pub t_last_ms: u64,
    pub keyframe: bool,
    pub anchor: bool,
    pub prev_hash: [u8; PREV_HASH_LEN],
    pub compressed: &'a [u8],
}

fn clamp32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The nonce of chunk `seq`, revision 0 when sealed, 1, 2, ... for its tails: unique under
/// the recording's own key (a tail is rewritten with more events under the same `seq`, never
/// under the same nonce), so it need not be stored beyond the tail's revision.
fn nonce_of(seq: u32, revision: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&revision.to_be_bytes());
    n[8..].copy_from_slice(&seq.to_be_bytes());
    n
}

/// Encrypts and frames one chunk; returns its bytes and hash.
pub fn seal_chunk(
    key: &RecordingKey,
    spec: ChunkSpec<'_>,
) -> Result<(Vec<u8>, [u8; 32]), FormatError> {
    seal(key, spec, None)
}

/// Encrypts and frames the open chunk's events so far as a tail, revision `revision` (>= 1).
pub fn seal_tail(
    key: &RecordingKey,
    spec: ChunkSpec<'_>,
    revision: u32,
) -> Result<Vec<u8>, FormatError> {
    if revision == 0 {
        return Err(FormatError::Malformed(
            "a tail's revision starts at 1".into(),
        ));
    }
    seal(key, spec, Some(revision)).map(|(b, _)| b)
}

fn seal(
    key: &RecordingKey,
    spec: ChunkSpec<'_>,
    tail: Option<u32>,
) -> Result<(Vec<u8>, [u8; 32]), FormatError> {
    let seq = u32::try_from(spec.seq)
        .map_err(|_| FormatError::Malformed("more than 2^32 chunks".into()))?;
    let ct_len = spec.compressed.len() + 16;
    let (magic, fixed) = match tail {
        Some(_) => (TAIL_MAGIC, TAIL_FIXED),
        None => (CHUNK_MAGIC, CHUNK_FIXED),
    };
    let mut out = Vec::with_capacity(fixed + ct_len);
    out.extend_from_slice(magic);
    out.extend_from_slice(&(ct_len as u32).to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&clamp32(spec.t_first_ms).to_be_bytes());
    out.extend_from_slice(&clamp32(spec.t_last_ms).to_be_bytes());
    out.push(
        if spec.keyframe { FLAG_KEYFRAME } else { 0 } | if spec.anchor { FLAG_ANCHOR } else { 0 },
    );
    out.extend_from_slice(&spec.prev_hash);
    if let Some(r) = tail {
        out.extend_from_slice(&r.to_be_bytes());
    }
    let cipher = Aes256Gcm::new_from_slice(key.expose()).map_err(|_| FormatError::Key)?;
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce_of(seq, tail.unwrap_or(0))),
            Payload {
                msg: spec.compressed,
                aad: &out[..fixed],
            },
        )
        .map_err(|_| FormatError::Key)?;
    out.extend_from_slice(&ct);
    let hash = sha256(&out);
    Ok((out, hash))
}

/// The chain link to `hash`.
pub fn link(hash: &[u8; 32]) -> [u8; PREV_HASH_LEN] {
    let mut l = [0u8; PREV_HASH_LEN];
    l.copy_from_slice(&hash[..PREV_HASH_LEN]);
    l
}

/// Parses the chunk starting at `offset` of `file`. `Ok(None)`: the file ends inside this
/// chunk (a write cut short by a crash): the recording is incomplete from here on.
pub fn parse_chunk(file: &[u8], offset: usize) -> Result<Option<ChunkInfo>, FormatError> {
    let b = &file[offset..];
    if b.len() < CHUNK_FIXED {
        return Ok(None);
    }
    let Some(fixed) = fixed_len(&b[..2]) else {
        return Err(FormatError::Malformed(format!(
            "no chunk starts at byte {offset}"
        )));
    };
    if b.len() < fixed {
        return Ok(None);
    }
    let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let body = u32_at(2) as usize;
    if body > MAX_CHUNK_BODY {
        return Err(FormatError::Malformed(format!(
            "chunk at byte {offset} claims {body} bytes"
        )));
    }
    if b.len() < fixed + body {
        return Ok(None);
    }
    let mut prev_hash = [0u8; PREV_HASH_LEN];
    prev_hash.copy_from_slice(&b[19..19 + PREV_HASH_LEN]);
    Ok(Some(ChunkInfo {
        seq: u32_at(6) as u64,
        t_first_ms: u32_at(10) as u64,
        t_last_ms: u32_at(14) as u64,
        keyframe: b[18] & FLAG_KEYFRAME != 0,
        anchor: b[18] & FLAG_ANCHOR != 0,
        prev_hash,
        offset: offset as u64,
        len: fixed + body,
        hash: sha256(&b[..fixed + body]),
        tail: (fixed == TAIL_FIXED).then(|| u32_at(CHUNK_FIXED)),
    }))
}

/// How many bytes of `file` are its header and whole chunks, from the length fields alone (no
/// hashing): `Some(n) < len` when the file ends inside a chunk (an append cut short, or
/// still being written), `None` when it does not parse.
pub fn whole_chunks_len(file: &[u8]) -> Option<usize> {
    let (_, mut at) = decode_header(file).ok()?;
    while file.len() - at >= 2 {
        let b = &file[at..];
        if b.starts_with(SIGNATURE_MAGIC) {
            if b.len() < SIGNATURE_RECORD {
                break;
            }
            at += SIGNATURE_RECORD;
            continue;
        }
        if b.len() < CHUNK_FIXED {
            break;
        }
        let fixed = fixed_len(&b[..2])?;
        let body = u32::from_be_bytes([b[2], b[3], b[4], b[5]]) as usize;
        if body > MAX_CHUNK_BODY {
            return None;
        }
        if b.len() < fixed + body {
            break;
        }
        at += fixed + body;
    }
    Some(at)
}

/// Decrypts a chunk (`bytes`: the whole chunk): its part of the compression stream.
pub fn open_chunk(key: &RecordingKey, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let tail = bytes.starts_with(TAIL_MAGIC);
    let fixed = if tail { TAIL_FIXED } else { CHUNK_FIXED };
    if bytes.len() < fixed + 16 {
        return Err("too short".into());
    }
    let u32_at =
        |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let seq = u32_at(6);
    let revision = if tail {
        match u32_at(CHUNK_FIXED) {
            0 => return Err("a tail with revision 0 (a sealed chunk's nonce)".into()),
            r => r,
        }
    } else {
        0
    };
    let cipher = Aes256Gcm::new_from_slice(key.expose()).map_err(|_| "bad key".to_string())?;
    cipher
        .decrypt(
            Nonce::from_slice(&nonce_of(seq, revision)),
            Payload {
                msg: &bytes[fixed..],
                aad: &bytes[..fixed],
            },
        )
        .map_err(|_| {
            "does not decrypt (altered, or not sealed with this recording's key)".to_string()
        })
}

/// How much plaintext before a chunk (since its anchor) the chunk is compressed against.
/// 256 KiB since version 5 (64 KiB before): about 1 KiB of version 5's 49 -> 44 KiB per
/// interactive hour (bench/README.md). Readers keep 256 KiB for every version: a version-4 frame refers back
/// at most 64 KiB, which a longer history holds as well.
pub const HISTORY_BYTES: usize = 256 * 1024;
/// How hard to compress a chunk being sealed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    /// By its size: strong for a small chunk, fast for a large one.
    BySize,
    /// The chunk's events came slowly (an interactive session: the chunk was open for ten
    /// minutes, or took half a minute or more to reach 64 KiB): level 19 costs 14-18 ms
    /// per such chunk (bench/README.md), and the session has gone quiet enough that its
    /// history is packed until it is needed again.
    Settled,
}

/// Interactive sessions' chunks are a few KiB: a strong level costs little there (well
/// under a second of CPU per hour of session, bench/README.md; most of it loading the
/// history into the match finder, once per chunk) and saves about 12 % against level 9.
/// Bulk output and desktops (whose pictures are PNGs already) come in larger chunks, where
/// the fast level keeps recording from slowing the session.
const ZSTD_LEVEL_SMALL: i32 = 15;
const ZSTD_LEVEL_SETTLED: i32 = 19;
/// Tails are compressed anew every second while a chunk is open: a fast level.
const ZSTD_LEVEL_TAIL: i32 = 3;
const SMALL_CHUNK: usize = 16 * 1024;
const ZSTD_LEVEL: i32 = 3;
/// 512 KiB: the history plus a chunk's repeats within itself (version 4: 128 KiB).
const ZSTD_WINDOW_LOG: u32 = 19;
/// A chunk's plaintext is at most 1 MiB plus one event, and one event (a desktop keyframe)
/// stays well below this; anything larger is refused when decompressing (a decompression
/// bomb in a forged file would otherwise take the reader's memory).
const MAX_PLAINTEXT: usize = 80 * 1024 * 1024;

/// Compresses the chunks of one stream (an anchor and the chunks up to the next): each chunk
/// is one zstd frame (magicless) compressed against the last `HISTORY_BYTES` of the stream's
/// plaintext before it, as a zstd *prefix*.
///
/// Why not one zstd stream flushed per chunk (as format version 1 did): a streaming context holds
/// its window and tables, several hundred KiB, for the whole life of every session, idle or
/// not. Here a session holds only its history, and a context exists only while a chunk is
/// being compressed. The history is as large as what the session printed, at most 256 KiB
/// while the session is busy; once it has gone quiet (a `Settled` chunk) the history is kept
/// packed (zstd level 1, a few tens of KiB) and unpacked only while a tail or the next chunk
/// is compressed.
#[derive(Default)]
pub struct ChunkCompressor {
    history: History,
}

enum History {
    Plain(Vec<u8>),
    /// A zstd frame of the history (a quiet session).
    Packed(Vec<u8>),
}

impl Default for History {
    fn default() -> History {
        History::Plain(Vec::new())
    }
}

impl ChunkCompressor {
    /// Compresses a chunk to seal: its plaintext becomes history for the next one.
    pub fn compress(&mut self, plain: &[u8], level: Level) -> Result<Vec<u8>, String> {
        let strength = match level {
            Level::Settled => ZSTD_LEVEL_SETTLED,
            Level::BySize if plain.len() <= SMALL_CHUNK => ZSTD_LEVEL_SMALL,
            Level::BySize => ZSTD_LEVEL,
        };
        let mut history = match std::mem::take(&mut self.history) {
            History::Plain(h) => h,
            History::Packed(p) => unpack(&p)?,
        };
        let out = compress_at(&history, plain, strength);
        if out.is_ok() {
            push_history(&mut history, plain);
        }
        self.history = History::Plain(history);
        if level == Level::Settled {
            self.pack_history();
        }
        out
    }

    /// Compresses the open chunk's events for a tail, against the same history; the history
    /// stays as it is (the events are compressed again, with more, when the chunk is sealed).
    pub fn compress_tail(&self, plain: &[u8]) -> Result<Vec<u8>, String> {
        match &self.history {
            History::Plain(h) => compress_at(h, plain, ZSTD_LEVEL_TAIL),
            History::Packed(p) => compress_at(&unpack(p)?, plain, ZSTD_LEVEL_TAIL),
        }
    }

    /// Packs the history (the session has gone quiet); a no-op if it is packed already. A
    /// failure to pack costs memory, not the recording: the history stays as it is.
    pub fn pack_history(&mut self) {
        if let History::Plain(h) = &self.history {
            if !h.is_empty() {
                if let Ok(p) = zstd::bulk::compress(h, 1) {
                    self.history = History::Packed(p);
                }
            }
        }
    }

    /// The bytes the history takes while no chunk is being compressed.
    pub fn held_bytes(&self) -> usize {
        match &self.history {
            History::Plain(h) | History::Packed(h) => h.len(),
        }
    }
}

fn unpack(packed: &[u8]) -> Result<Vec<u8>, String> {
    zstd::bulk::decompress(packed, HISTORY_BYTES)
        .map_err(|e| format!("zstd: the packed history does not unpack: {e}"))
}

fn compress_at(history: &[u8], plain: &[u8], level: i32) -> Result<Vec<u8>, String> {
    use zstd::zstd_safe::{CCtx, CParameter, FrameFormat};
    let fail = |e: usize| format!("zstd: {}", zstd::zstd_safe::get_error_name(e));
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(plain.len()));
    {
        let mut cctx = CCtx::create();
        cctx.set_parameter(CParameter::CompressionLevel(level))
            .map_err(fail)?;
        cctx.set_parameter(CParameter::WindowLog(ZSTD_WINDOW_LOG))
            .map_err(fail)?;
        cctx.set_parameter(CParameter::Format(FrameFormat::Magicless))
            .map_err(fail)?;
        cctx.ref_prefix(history).map_err(fail)?;
        cctx.compress2(&mut out, plain).map_err(fail)?;
    }
    Ok(out)
}

fn push_history(history: &mut Vec<u8>, plain: &[u8]) {
    if plain.len() >= HISTORY_BYTES {
        history.clear();
        history.extend_from_slice(&plain[plain.len() - HISTORY_BYTES..]);
    } else {
        let keep = (HISTORY_BYTES - plain.len()).min(history.len());
        history.drain(..history.len() - keep);
        history.extend_from_slice(plain);
    }
}

/// Decompresses one stream, chunk by chunk, from its anchor: each chunk's part yields exactly
/// the events sealed in it once the chunks before it in the stream have been fed.
#[derive(Default)]
pub struct StreamDecoder {
    history: Vec<u8>,
}

impl StreamDecoder {
    /// Feeds one chunk's part of the stream; returns its plaintext.
    pub fn next(&mut self, compressed: &[u8]) -> Result<Vec<u8>, String> {
        let plain = decompress_frame(&self.history, compressed)?;
        push_history(&mut self.history, &plain);
        Ok(plain)
    }
}

fn decompress_frame(prefix: &[u8], compressed: &[u8]) -> Result<Vec<u8>, String> {
    use zstd::zstd_safe::{DCtx, DParameter, FrameFormat, InBuffer, OutBuffer};
    let fail = |e: usize| {
        format!(
            "does not decompress: {}",
            zstd::zstd_safe::get_error_name(e)
        )
    };
    let mut dctx = DCtx::create();
    dctx.set_parameter(DParameter::Format(FrameFormat::Magicless))
        .map_err(fail)?;
    dctx.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG))
        .map_err(fail)?;
    dctx.ref_prefix(prefix).map_err(fail)?;
    let mut input = InBuffer::around(compressed);
    let mut plain: Vec<u8> = Vec::with_capacity(compressed.len().saturating_mul(4).max(4096));
    loop {
        if plain.len() == plain.capacity() {
            if plain.len() >= MAX_PLAINTEXT {
                return Err("does not decompress: larger than any chunk a writer seals".into());
            }
            plain.reserve(plain.len().max(4096));
        }
        let pos = plain.len();
        let hint = {
            let mut output = OutBuffer::around_pos(&mut plain, pos);
            dctx.decompress_stream(&mut output, &mut input)
                .map_err(fail)?
        };
        if hint == 0 {
            if input.pos() != compressed.len() {
                return Err("does not decompress: data after the chunk's frame".into());
            }
            return Ok(plain);
        }
        if input.pos() == compressed.len() && plain.len() < plain.capacity() {
            return Err("does not decompress: the chunk's frame is cut short".into());
        }
    }
}
