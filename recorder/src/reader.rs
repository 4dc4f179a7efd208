//! Why: everything a reader does with a recording file: walk its chunks without decrypting
//! them (the index), check the chain and the signed manifest (verify), and decrypt the chunks
//! needed to play from any moment (seek). It reads files that are still being written: a
//! chunk cut short at the end is simply not there yet, and the open chunk's *tail* (written
//! every second, see `writer`) counts as the last chunk until the chunk is sealed.

use std::num::NonZeroU16;
use std::ops::ControlFlow;

use crate::event::{decode_all, RecordedEvent, Timed};
use crate::format::{
    chunk_signed_bytes, decode_header, link, open_chunk, parse_chunk, parse_signature, sha256,
    ChunkInfo, RecordingHeader, StreamDecoder, SIGNATURE_MAGIC, SIGNATURE_RECORD,
};
use crate::manifest::SignedManifest;
use crate::{FormatError, RecordingKey};

pub struct Recording {
    pub header: RecordingHeader,
    header_hash: [u8; 32],
    bytes: Vec<u8>,
    /// The chunks that parse, in file order.
    pub chunks: Vec<ChunkInfo>,
    /// Bytes after the last whole chunk (a write cut short), or unparseable bytes.
    pub trailing_bytes: usize,
    /// Why parsing stopped before the end of the file, if it did for a reason other than a
    /// cut-short write.
    pub parse_problem: Option<String>,
    /// A tail of a chunk that was sealed since followed the chunks (ignored when reading).
    pub stale_tail: bool,
    /// Format version 6: each sealed chunk's signature, by `seq`.
    pub signatures: std::collections::HashMap<u64, [u8; 64]>,
}

/// What `verify` found. `ok()` when nothing is wrong; `complete` when a valid signed manifest
/// closes the chain (otherwise the recording is *incomplete*: the server stopped mid-session,
/// and everything up to the last whole chunk is still verified).
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyReport {
    pub recording_id: String,
    pub chunks: usize,
    pub duration_ms: u64,
    pub complete: bool,
    /// The chunks were decrypted and decoded (a key was available).
    pub decrypted: bool,
    /// The last chunk is the open chunk's tail (written every second, never sealed): the
    /// session was cut off (or is still running) and the recording ends with it.
    pub unsealed_tail: bool,
    /// Every sealed chunk carries a signature that verifies (format version 6, signed by
    /// the key in the header, or by `trusted_key` when one was given): each chunk is vouched
    /// for on its own, even without the manifest.
    pub signed: bool,
    /// The first problem, naming the chunk.
    pub problem: Option<String>,
    pub bad_chunk: Option<u64>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

fn nz(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

impl Recording {
    pub fn parse(bytes: Vec<u8>) -> Result<Recording, FormatError> {
        let (header, header_len) = decode_header(&bytes)?;
        let header_hash = sha256(&bytes[..header_len]);
        let mut chunks = Vec::new();
        let mut at = header_len;
        let mut parse_problem = None;
        let mut stale_tail = false;
        let mut signatures = std::collections::HashMap::new();
        while at < bytes.len() {
            if bytes[at..].starts_with(SIGNATURE_MAGIC) {
                match parse_signature(&bytes, at) {
                    Ok(Some((seq, sig))) => {
                        signatures.insert(seq, sig);
                        at += SIGNATURE_RECORD;
                        continue;
                    }
                    // Cut short by a crash: the recording is incomplete from here.
                    Ok(None) => break,
                    Err(e) => {
                        parse_problem = Some(format!("after chunk {}: {e}", chunks.len()));
                        break;
                    }
                }
            }
            match parse_chunk(&bytes, at) {
                Ok(Some(c)) if c.tail.is_some() && at + c.len != bytes.len() => {
                    parse_problem = Some(format!(
                        "after chunk {}: an unsealed tail that is not at the end",
                        chunks.len()
                    ));
                    break;
                }
                // A tail of a chunk that has been sealed since (the store replaces tails
                // after appending): nothing new in it.
                Ok(Some(c)) if c.tail.is_some() && c.seq < chunks.len() as u64 => {
                    at += c.len;
                    stale_tail = true;
                }
                Ok(Some(c)) => {
                    at += c.len;
                    chunks.push(c);
                }
                Ok(None) => break,
                Err(e) => {
                    parse_problem = Some(format!("after chunk {}: {e}", chunks.len()));
                    break;
                }
            }
        }
        Ok(Recording {
            header,
            header_hash,
            trailing_bytes: bytes.len() - at,
            bytes,
            chunks,
            parse_problem,
            stale_tail,
            signatures,
        })
    }

    pub fn duration_ms(&self) -> u64 {
        self.chunks.last().map(|c| c.t_last_ms).unwrap_or(0)
    }

    fn chunk_bytes(&self, c: &ChunkInfo) -> &[u8] {
        &self.bytes[c.offset as usize..c.offset as usize + c.len]
    }

    /// Checks the chain; with `key`, that every chunk decrypts and decodes; with `manifest`,
    /// its signature (against `trusted_key` when given) and that it closes this chain.
    pub fn verify(
        &self,
        key: Option<&RecordingKey>,
        manifest: Option<&SignedManifest>,
        trusted_key: Option<&str>,
    ) -> VerifyReport {
        let mut report = VerifyReport {
            recording_id: self.header.recording_id.clone(),
            chunks: self.chunks.len(),
            duration_ms: self.duration_ms(),
            complete: false,
            decrypted: key.is_some(),
            unsealed_tail: self.chunks.last().is_some_and(|c| c.tail.is_some()),
            signed: false,
            problem: None,
            bad_chunk: None,
        };
        // Format 6 signs every sealed chunk when the header names the signer: each must carry
        // a signature that verifies, against the trusted key when one is given (a file
        // re-signed with another key fails), else the header's.
        let signer = trusted_key.or(self.header.signing_key.as_deref());
        let signed = self.header.signing_key.is_some();
        if let (Some(t), Some(h)) = (trusted_key, self.header.signing_key.as_deref()) {
            if t != h && !self.chunks.is_empty() {
                report.problem = Some(
                    "chunk 0: the chunks are signed by a key other than the one given (the file's header names another)"
                        .into(),
                );
                report.bad_chunk = Some(0);
                return report;
            }
        }
        let fail = |r: &mut VerifyReport, seq: u64, why: String| {
            r.problem = Some(format!("chunk {seq}: {why}"));
            r.bad_chunk = Some(seq);
        };
        let mut prev = self.header_hash;
        let mut decoder: Option<StreamDecoder> = None;
        for (i, c) in self.chunks.iter().enumerate() {
            let i = i as u64;
            if c.seq != i {
                fail(
                    &mut report,
                    i,
                    format!(
                        "out of place: it says it is chunk {} (dropped, inserted or swapped)",
                        c.seq
                    ),
                );
                return report;
            }
            if c.prev_hash != link(&prev) {
                let why = if i == 0 {
                    "does not follow the file header (the header or this chunk was altered)"
                        .to_string()
                } else {
                    format!(
                        "does not follow chunk {} (that chunk, or this one, was altered)",
                        i - 1
                    )
                };
                fail(&mut report, i, why);
                return report;
            }
            if let Some(k) = key {
                if c.anchor || i == 0 {
                    decoder = Some(StreamDecoder::default());
                }
                let decoded = match decoder.as_mut() {
                    Some(d) => open_chunk(k, self.chunk_bytes(c))
                        .and_then(|ct| d.next(&ct))
                        .and_then(|p| decode_all(&p).map(|_| ()).map_err(|e| e.to_string())),
                    None => Err("no compression stream starts before it".to_string()),
                };
                if let Err(why) = decoded {
                    fail(&mut report, i, why);
                    return report;
                }
            }
            if signed && c.tail.is_none() {
                let Some(key) = signer else {
                    fail(&mut report, i, "no key to check its signature with".into());
                    return report;
                };
                let checked = match self.signatures.get(&i) {
                    None => Err("it has no signature (format 6 signs every sealed chunk; its signature record was removed)".to_string()),
                    Some(sig) => crate::manifest::check_chunk_signature(
                        key,
                        &chunk_signed_bytes(&self.header_hash, i, &c.hash),
                        sig,
                    ),
                };
                if let Err(why) = checked {
                    fail(&mut report, i, why);
                    return report;
                }
            }
            prev = c.hash;
        }
        report.signed = signed;
        if let Some(p) = &self.parse_problem {
            report.problem = Some(p.clone());
            report.bad_chunk = Some(self.chunks.len() as u64);
            return report;
        }
        match manifest {
            None => {}
            Some(_) if report.unsealed_tail || self.stale_tail => {
                let at = self.chunks.len() as u64 - u64::from(report.unsealed_tail);
                report.problem = Some(format!(
                    "chunk {at}: an unsealed tail after the chunks of a closed recording"
                ));
                report.bad_chunk = Some(at);
                return report;
            }
            Some(m) => {
                if let Err(why) = m.check(trusted_key) {
                    report.problem = Some(format!("manifest: {why}"));
                    return report;
                }
                let mf = &m.manifest;
                if mf.recording_id != self.header.recording_id
                    || mf.header_hash != hex::encode(self.header_hash)
                {
                    report.problem = Some("manifest: it belongs to another recording".into());
                    return report;
                }
                if mf.chunks != self.chunks.len() as u64 || mf.final_hash != hex::encode(prev) {
                    let n = self.chunks.len() as u64;
                    report.problem = Some(format!(
                        "manifest: it closes the chain after {} chunks, the file has {n} (chunks were removed from or added to the end)",
                        mf.chunks
                    ));
                    report.bad_chunk = Some(mf.chunks.min(n));
                    return report;
                }
                if self.trailing_bytes > 0 {
                    report.problem =
                        Some("bytes after the last chunk of a closed recording".into());
                    return report;
                }
                report.complete = true;
            }
        }
        report
    }

    /// Time -> chunk: the chunks that hold a keyframe, as (time of the chunk's first event,
    /// chunk index). (Versions 2 and 3 started a chunk with each keyframe; since version 4 a
    /// keyframe may sit anywhere in its chunk.)
    pub fn keyframe_index(&self) -> Vec<(u64, usize)> {
        self.chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.keyframe)
            .map(|(i, c)| (c.t_first_ms, i))
            .collect()
    }

    /// The plaintexts of chunks `from..=to`, decompressing from the anchor before `from`.
    fn plaintexts(
        &self,
        key: &RecordingKey,
        from: usize,
        to: usize,
    ) -> Result<Vec<Vec<u8>>, FormatError> {
        let last = self.chunks.len().saturating_sub(1);
        let anchor = (0..=from.min(last))
            .rev()
            .find(|&j| self.chunks[j].anchor)
            .unwrap_or(0);
        let fail = |seq: u64, reason: String| FormatError::Chunk { seq, reason };
        let mut dec = StreamDecoder::default();
        let mut out = Vec::new();
        for j in anchor..=to.min(last) {
            let c = &self.chunks[j];
            if c.anchor && j != anchor {
                dec = StreamDecoder::default();
            }
            let plain = open_chunk(key, self.chunk_bytes(c))
                .and_then(|ct| dec.next(&ct))
                .map_err(|r| fail(c.seq, r))?;
            if j >= from {
                out.push(plain);
            }
        }
        Ok(out)
    }

    /// Every event of chunks `from..=to`.
    fn events_of(
        &self,
        key: &RecordingKey,
        from: usize,
        to: usize,
    ) -> Result<Vec<Timed>, FormatError> {
        let mut all = Vec::new();
        if from < self.chunks.len() {
            for p in self.plaintexts(key, from, to)? {
                all.extend(decode_all(&p)?);
            }
        }
        Ok(all)
    }

    /// Every event of chunk `i`.
    pub fn chunk_events(&self, key: &RecordingKey, i: usize) -> Result<Vec<Timed>, FormatError> {
        if i >= self.chunks.len() {
            return Err(FormatError::Malformed(format!("no chunk {i}")));
        }
        self.events_of(key, i, i)
    }

    /// Every event, in order.
    pub fn events(&self, key: &RecordingKey) -> Result<Vec<Timed>, FormatError> {
        self.events_of(key, 0, self.chunks.len().saturating_sub(1))
    }

    /// Hands `each` the events of one chunk at a time, in order, stopping at the first chunk
    /// that does not decrypt and decode (an incomplete recording is read up to there). Memory
    /// is one chunk, whatever the length of the recording. `each` may also stop the walk.
    /// Returns the chunks handed over.
    pub fn for_each_readable_chunk(
        &self,
        key: &RecordingKey,
        mut each: impl FnMut(Vec<Timed>) -> ControlFlow<()>,
    ) -> usize {
        let mut dec: Option<StreamDecoder> = None;
        for (j, c) in self.chunks.iter().enumerate() {
            if c.anchor || j == 0 {
                dec = Some(StreamDecoder::default());
            }
            let Some(d) = dec.as_mut() else { return j };
            let decoded = open_chunk(key, self.chunk_bytes(c))
                .and_then(|ct| d.next(&ct))
                .and_then(|p| decode_all(&p).map_err(|e| e.to_string()));
            match decoded {
                Ok(ev) => {
                    if each(ev).is_break() {
                        return j + 1;
                    }
                }
                Err(_) => return j,
            }
        }
        self.chunks.len()
    }

    /// The events needed to show the terminal at `t_ms`: from the last keyframe at or before
    /// it, up to `t_ms`. The last keyframe chunk that starts by `t_ms` may hold its keyframe
    /// after `t_ms`, so decoding starts at the keyframe chunk before that one, whose keyframe
    /// is earlier. Decompresses from that chunk's anchor.
    pub fn events_for_seek(
        &self,
        key: &RecordingKey,
        t_ms: u64,
    ) -> Result<Vec<Timed>, FormatError> {
        if self.chunks.is_empty() {
            return Ok(Vec::new());
        }
        let index = self.keyframe_index();
        let start = match index.iter().rposition(|(t, _)| *t <= t_ms) {
            Some(k) => index[k.saturating_sub(1)].1,
            None => 0,
        };
        let end = (start..self.chunks.len())
            .take_while(|&j| self.chunks[j].t_first_ms <= t_ms)
            .last()
            .unwrap_or(start);
        let mut events = self.events_of(key, start, end)?;
        let from = events
            .iter()
            .rposition(|e| e.t_ms <= t_ms && matches!(e.event, RecordedEvent::Keyframe { .. }))
            .unwrap_or(0);
        Ok(events
            .split_off(from)
            .into_iter()
            .filter(|e| e.t_ms <= t_ms)
            .collect())
    }

    /// The terminal screen at `t_ms` (for terminal recordings).
    pub fn screen_at(&self, key: &RecordingKey, t_ms: u64) -> Result<vt100::Parser, FormatError> {
        let mut p = vt100::Parser::new(nz(self.header.rows), nz(self.header.cols), 0);
        for e in self.events_for_seek(key, t_ms)? {
            apply(&mut p, &e.event);
        }
        Ok(p)
    }
}

/// Plays one event into a terminal model.
pub fn apply(p: &mut vt100::Parser, e: &RecordedEvent) {
    match e {
        RecordedEvent::Output(b) => p.process(b),
        RecordedEvent::Resize { cols, rows } => p.screen_mut().set_size(nz(*rows), nz(*cols)),
        RecordedEvent::Keyframe { cols, rows, data } => {
            *p = vt100::Parser::new(nz(*rows), nz(*cols), 0);
            p.process(data);
        }
        _ => {}
    }
}
