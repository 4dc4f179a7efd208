//! Why: turns a live event stream into sealed chunks, sans I/O: the caller calls `tick` every
//! second and writes the returned bytes wherever the recording is stored.
//! Chunks (keyframes inside them since format version 4): a chunk is sealed after 10 minutes
//! (2 before version 5), or once it holds 64 KiB at a tick (1 MiB at any event). Keyframes
//! (a full screen, about every 10 s of activity) sit inside chunks, and a chunk that holds
//! one is flagged, so a seek starts from the keyframe chunk before the moment and replays
//! from the last keyframe. Version 3
//! sealed a chunk at every keyframe, each with 52 bytes of framing and a zstd frame of its
//! own; with this and level 19 for settled chunks an interactive hour went from 62 to 49 KiB,
//! and with version 5's longer chunks, longer history and no time-bound anchors to 44 KiB
//! (bench/README.md).
//! Crash safety without a chunk per second (version 3): the open chunk's events so far are
//! written every second as a *tail*, which the store keeps beside the sealed chunks and
//! replaces each time.
//! Compression (version 2): each chunk is its own zstd frame compressed against the last
//! 256 KiB (version 4: 64 KiB) of plaintext before it, so keyframes compress against what
//! came before while a session keeps only that history, not a live compression context (and
//! keeps it packed while quiet). The history restarts at an *anchor* every 8 MiB, which
//! bounds what a seek must decompress; an anchor chunk starts with a keyframe. (Before
//! version 5 also every 30 minutes: that cost a slow session a chunk compressed without
//! history, 1-2 KiB, and bought a seek nothing the byte bound does not.)

use crate::event::{encode, RecordedEvent, Timed};
use crate::format::{
    encode_header, link, seal_chunk, seal_tail, sha256, ChunkCompressor, ChunkSpec, Level,
    RecordingHeader,
};
use crate::manifest::Manifest;
use crate::{FormatError, RecordingKey, FORMAT_VERSION};

/// A keyframe at least this often (time) ...
pub const KEYFRAME_EVERY_MS: u64 = 10_000;
/// ... or after this much output, whichever comes first.
pub const KEYFRAME_EVERY_BYTES: u64 = 256 * 1024;
/// A chunk is sealed once its events reach this size, even before the next tick ...
pub const MAX_CHUNK_PLAINTEXT: usize = 1024 * 1024;
/// ... or at a tick once its first event is this old (an idle or interactive session: the
/// chunk is small, and sealed with the strong compression level). Ten minutes since version 5
/// (two before): each chunk restarts zstd's statistics; an interactive hour now takes 10
/// chunks instead of 28 (with the other version-5 changes, 49 -> 44 KiB). The tail,
/// rewritten each active second, grows instead (bench/README.md) ...
pub const SEAL_AFTER_MS: u64 = 600_000;
/// ... or at a tick once its events reach this size: a tail is rewritten whole every second,
/// so this bounds the disk writes and CPU that crash safety costs a busy session (a desktop's
/// frames, bulk output) to 64 KiB per second; an interactive chunk reaches it slowly, if at
/// all, and is then sealed as `Settled` (`SETTLED_RATE`).
pub const MAX_TAIL_PLAINTEXT: usize = 64 * 1024;
/// A chunk that reaches `MAX_TAIL_PLAINTEXT` at no more than this rate (bytes per second
/// since its first event) came from an interactive session: it is sealed as `Settled`.
pub const SETTLED_RATE: u64 = 2048;
/// The compression stream restarts at the first keyframe after this much plaintext.
pub const ANCHOR_EVERY_BYTES: u64 = 8 * 1024 * 1024;

pub struct RecordingWriter {
    key: RecordingKey,
    recording_id: String,
    session_id: String,
    started_at_ms: i64,
    header_hash: [u8; 32],
    prev_hash: [u8; 32],
    next_seq: u64,
    pending: Vec<u8>,
    pending_span: Option<(u64, u64)>,
    pending_keyframe: bool,
    /// The time of the last event in `pending` (event times are deltas within a chunk).
    pending_prev_t: u64,
    /// The compression stream (None: the next chunk starts a new one, an anchor).
    stream: Option<ChunkCompressor>,
    stream_started: u64,
    stream_bytes: u64,
    anchor_every: (u64, u64),
    seal_after_ms: u64,
    last_keyframe: Option<u64>,
    output_since_keyframe: u64,
    output_bytes: u64,
    last_t: u64,
    /// The revision of the last tail written (tails of all chunks count on: every tail's
    /// nonce is unique).
    tail_revision: u32,
    /// `pending.len()` when the last tail was written (None: no tail of this chunk yet).
    tail_of: Option<usize>,
    /// Signs each sealed chunk (a signature record follows it), so every chunk can be
    /// checked offline even without the manifest.
    signer: Option<crate::manifest::SigningKey>,
}

/// What a tick asks the caller to store.
#[derive(Default)]
pub struct Tick {
    /// Sealed chunks to append.
    pub sealed: Option<Vec<u8>>,
    /// The open chunk as a tail, to store in place of the previous tail. `None` with
    /// `sealed`: no chunk is open; the previous tail is obsolete.
    pub tail: Option<Vec<u8>>,
}

impl RecordingWriter {
    /// Starts a recording; returns the writer and the file header to store first.
    pub fn new(header: &RecordingHeader, key: RecordingKey) -> (RecordingWriter, Vec<u8>) {
        Self::start(header, key, None)
    }

    /// Starts a recording whose every sealed chunk is signed by `signer` (the server's
    /// recording key; its public half goes into the header).
    pub fn new_signed(
        header: &RecordingHeader,
        key: RecordingKey,
        signer: crate::manifest::SigningKey,
    ) -> (RecordingWriter, Vec<u8>) {
        Self::start(header, key, Some(signer))
    }

    fn start(
        header: &RecordingHeader,
        key: RecordingKey,
        signer: Option<crate::manifest::SigningKey>,
    ) -> (RecordingWriter, Vec<u8>) {
        let mut header = header.clone();
        header.format_version = FORMAT_VERSION;
        header.signing_key = signer.as_ref().map(|k| k.public_key_b64());
        let bytes = encode_header(&header);
        let header_hash = sha256(&bytes);
        (
            RecordingWriter {
                key,
                recording_id: header.recording_id,
                session_id: header.session_id,
                started_at_ms: header.started_at_ms,
                header_hash,
                prev_hash: header_hash,
                next_seq: 0,
                pending: Vec::new(),
                pending_span: None,
                pending_keyframe: false,
                pending_prev_t: 0,
                stream: None,
                stream_started: 0,
                stream_bytes: 0,
                anchor_every: (u64::MAX, ANCHOR_EVERY_BYTES),
                seal_after_ms: SEAL_AFTER_MS,
                last_keyframe: None,
                output_since_keyframe: 0,
                output_bytes: 0,
                last_t: 0,
                tail_revision: 0,
                tail_of: None,
                signer,
            },
            bytes,
        )
    }

    /// Restarts the compression stream at the first keyframe after `ms` or `bytes` of
    /// plaintext (defaults: no time bound, `ANCHOR_EVERY_BYTES`).
    pub fn anchor_every(mut self, ms: u64, bytes: u64) -> RecordingWriter {
        self.anchor_every = (ms, bytes);
        self
    }

    /// Seals a chunk at the tick once its first event is `ms` old (default: `SEAL_AFTER_MS`).
    pub fn seal_after(mut self, ms: u64) -> RecordingWriter {
        self.seal_after_ms = ms;
        self
    }

    /// Whether the caller should push a keyframe (a full screen) before its next event at
    /// `t_ms`.
    pub fn needs_keyframe(&self, t_ms: u64) -> bool {
        match self.last_keyframe {
            None => true,
            Some(k) => {
                t_ms.saturating_sub(k) >= KEYFRAME_EVERY_MS
                    || self.output_since_keyframe >= KEYFRAME_EVERY_BYTES
            }
        }
    }

    /// Adds one event. Returns sealed chunk bytes to store when the event closed a chunk
    /// (a full chunk is sealed; a keyframe that starts an anchor starts a new chunk).
    pub fn push(&mut self, e: Timed) -> Result<Option<Vec<u8>>, FormatError> {
        let mut sealed = None;
        let t = e.t_ms.max(self.last_t);
        if matches!(e.event, RecordedEvent::Keyframe { .. }) {
            if self.stream.is_some()
                && (t.saturating_sub(self.stream_started) >= self.anchor_every.0
                    || self.stream_bytes >= self.anchor_every.1)
            {
                sealed = self.flush()?;
                self.stream = None;
            }
            self.pending_keyframe = true;
            self.last_keyframe = Some(t);
            self.output_since_keyframe = 0;
        }
        if let RecordedEvent::Output(b) = &e.event {
            self.output_since_keyframe += b.len() as u64;
            self.output_bytes += b.len() as u64;
        }
        self.last_t = t;
        if self.pending.is_empty() {
            self.pending_prev_t = 0;
        }
        encode(
            &Timed { t_ms: t, ..e },
            &mut self.pending_prev_t,
            &mut self.pending,
        );
        self.pending_span = Some(match self.pending_span {
            None => (t, t),
            Some((first, _)) => (first, t),
        });
        if self.pending.len() >= MAX_CHUNK_PLAINTEXT {
            if let Some(more) = self.flush()? {
                sealed = Some(match sealed {
                    Some(mut s) => {
                        s.extend_from_slice(&more);
                        s
                    }
                    None => more,
                });
            }
        }
        Ok(sealed)
    }

    /// Whether the tick at `now_ms` seals the open chunk, and how hard it compresses it: at
    /// `MAX_TAIL_PLAINTEXT` (`Settled` if the events came at `SETTLED_RATE` or slower), or
    /// once the chunk's first event is `SEAL_AFTER_MS` old.
    fn seal_due(&self, now_ms: u64) -> Option<Level> {
        let (first, _) = self.pending_span?;
        let age_ms = now_ms.saturating_sub(first);
        if self.pending.len() >= MAX_TAIL_PLAINTEXT {
            let slow = self.pending.len() as u64 <= (age_ms / 1000).saturating_mul(SETTLED_RATE);
            return Some(if slow { Level::Settled } else { Level::BySize });
        }
        (age_ms >= self.seal_after_ms).then_some(Level::Settled)
    }

    /// Whether the tick at `now_ms` compresses a chunk at the strong level (10-20 ms of CPU
    /// against a full history): the caller may run it where it stalls no other task.
    pub fn tick_is_heavy(&self, now_ms: u64) -> bool {
        self.seal_due(now_ms) == Some(Level::Settled)
    }

    /// Called every second (crash safety: at most the last second is lost). At `now_ms`
    /// (the session's clock, as event times): seals the open chunk when `seal_due` says so;
    /// otherwise returns it as a tail if events came since the last one.
    pub fn tick(&mut self, now_ms: u64) -> Result<Tick, FormatError> {
        let Some((first, last)) = self.pending_span else {
            // Nothing for a second since the last chunk was sealed: a quiet session holds
            // its history packed and gives back the chunk buffer (a busy one's, up to 1 MiB).
            if let Some(c) = self.stream.as_mut() {
                c.pack_history();
            }
            self.pending = Vec::new();
            return Ok(Tick::default());
        };
        if let Some(level) = self.seal_due(now_ms) {
            return Ok(Tick {
                sealed: self.seal(level)?,
                tail: None,
            });
        }
        if self.tail_of == Some(self.pending.len()) {
            return Ok(Tick::default());
        }
        let anchor = self.stream.is_none();
        let compressed = match &self.stream {
            Some(c) => c.compress_tail(&self.pending),
            None => ChunkCompressor::default().compress_tail(&self.pending),
        }
        .map_err(FormatError::Malformed)?;
        self.tail_revision = self
            .tail_revision
            .checked_add(1)
            .ok_or_else(|| FormatError::Malformed("more than 2^32 tails".into()))?;
        let spec = self.open_chunk((first, last), anchor, &compressed);
        let bytes = seal_tail(&self.key, spec, self.tail_revision)?;
        self.tail_of = Some(self.pending.len());
        Ok(Tick {
            sealed: None,
            tail: Some(bytes),
        })
    }

    /// The fields of the chunk now open (sealed or as a tail), around its compressed events.
    fn open_chunk<'a>(
        &self,
        span: (u64, u64),
        anchor: bool,
        compressed: &'a [u8],
    ) -> ChunkSpec<'a> {
        ChunkSpec {
            seq: self.next_seq,
            t_first_ms: span.0,
            t_last_ms: span.1,
            keyframe: self.pending_keyframe,
            anchor,
            prev_hash: link(&self.prev_hash),
            compressed,
        }
    }

    /// Seals the events pushed since the last chunk, if any.
    pub fn flush(&mut self) -> Result<Option<Vec<u8>>, FormatError> {
        self.seal(Level::BySize)
    }

    fn seal(&mut self, level: Level) -> Result<Option<Vec<u8>>, FormatError> {
        let Some((first, last)) = self.pending_span.take() else {
            return Ok(None);
        };
        self.tail_of = None;
        let anchor = self.stream.is_none();
        if anchor {
            self.stream = Some(ChunkCompressor::default());
            self.stream_started = first;
            self.stream_bytes = 0;
        }
        let compressed = match self.stream.as_mut() {
            Some(c) => c
                .compress(&self.pending, level)
                .map_err(FormatError::Malformed)?,
            None => return Err(FormatError::Malformed("no compression stream".into())),
        };
        self.stream_bytes += self.pending.len() as u64;
        let spec = self.open_chunk((first, last), anchor, &compressed);
        let (mut bytes, hash) = seal_chunk(&self.key, spec)?;
        if let Some(signer) = &self.signer {
            let signed = crate::format::chunk_signed_bytes(&self.header_hash, self.next_seq, &hash);
            bytes.extend(crate::format::signature_record(
                self.next_seq,
                &signer.sign_bytes(&signed),
            ));
        }
        if level == Level::Settled {
            // A quiet session: give back the buffer (the history is packed as well).
            self.pending = Vec::new();
        } else {
            self.pending.clear();
        }
        self.pending_keyframe = false;
        self.prev_hash = hash;
        self.next_seq += 1;
        Ok(Some(bytes))
    }

    /// Ends the recording: the last chunk (if any) and the manifest to sign.
    pub fn finish(
        mut self,
        ended_at_ms: i64,
        end_reason: &str,
    ) -> Result<(Option<Vec<u8>>, Manifest), FormatError> {
        let level = if self.pending.len() <= MAX_TAIL_PLAINTEXT {
            Level::Settled
        } else {
            Level::BySize
        };
        let last = self.seal(level)?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            recording_id: self.recording_id.clone(),
            session_id: self.session_id.clone(),
            chunks: self.next_seq,
            header_hash: hex::encode(self.header_hash),
            final_hash: hex::encode(self.prev_hash),
            started_at_ms: self.started_at_ms,
            ended_at_ms,
            duration_ms: self.last_t,
            output_bytes: self.output_bytes,
            end_reason: end_reason.to_string(),
        };
        Ok((last, manifest))
    }

    pub fn chunks_sealed(&self) -> u64 {
        self.next_seq
    }

    /// The bytes the writer holds between events: the open chunk's events and the
    /// compression history.
    pub fn held_bytes(&self) -> usize {
        self.pending.capacity() + self.stream.as_ref().map_or(0, |c| c.held_bytes())
    }
}
