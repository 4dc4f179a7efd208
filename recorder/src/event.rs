//! Why: what a recording holds, and its byte encoding inside a chunk. The recorder has its own
//! event type (not the gateway's) so that recordings can be read by tools that know nothing of
//! live sessions; the server maps live events onto these one to one, so one renderer serves
//! live view and replay.

use crate::FormatError;

/// One thing that happened in a session, `t_ms` milliseconds after the recording started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timed {
    pub t_ms: u64,
    pub event: RecordedEvent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedEvent {
    /// Bytes the target sent to the terminal.
    Output(Vec<u8>),
    /// What a participant typed. A redacted input (typed while the target was not echoing,
    /// e.g. at a password prompt) keeps only its length.
    Input {
        by: String,
        data: Vec<u8>,
    },
    /// `submitted`: the keystrokes ended with Enter (the secret was sent). `hidden`: the
    /// keystrokes sealed under the recording's hidden-input key (`crate::hidden`), absent
    /// before format 7 or when input is not recorded.
    RedactedInput {
        by: String,
        len: u32,
        submitted: bool,
        hidden: Option<Vec<u8>>,
    },
    Resize {
        cols: u16,
        rows: u16,
    },
    /// A note in the timeline (join, leave, control handed over, ...).
    Marker(String),
    /// Enough to redraw the whole terminal from nothing: the start point for seeking.
    Keyframe {
        cols: u16,
        rows: u16,
        data: Vec<u8>,
    },
    /// A lifecycle change, as JSON text (connected, ended with reason, failed).
    Lifecycle(String),
    /// A changed rectangle of a graphical session (reserved for RDP).
    Frame {
        x: u16,
        y: u16,
        width: u16,
        height: u16,
        encoding: String,
        data: Vec<u8>,
    },
}

const OUTPUT: u8 = 1;
const INPUT: u8 = 2;
const REDACTED_INPUT: u8 = 3;
const RESIZE: u8 = 4;
const MARKER: u8 = 5;
const KEYFRAME: u8 = 6;
const LIFECYCLE: u8 = 7;
const FRAME: u8 = 8;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&b[..n]);
}

/// Appends `e` to `out`: kind u8, t_ms u64, payload length u32, payload (all big-endian).
/// LEB128: 7 bits a byte, low first; small numbers (time deltas, lengths) take one byte.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends `e` to `out`: kind u8, time since `*prev_t_ms` (varint), payload length (varint),
/// payload; then sets `*prev_t_ms`. Each chunk's events start from `prev_t_ms = 0`.
pub fn encode(e: &Timed, prev_t_ms: &mut u64, out: &mut Vec<u8>) {
    let mut p = Vec::new();
    let kind = match &e.event {
        RecordedEvent::Output(b) => {
            p.extend_from_slice(b);
            OUTPUT
        }
        RecordedEvent::Input { by, data } => {
            put_str(&mut p, by);
            p.extend_from_slice(data);
            INPUT
        }
        RecordedEvent::RedactedInput {
            by,
            len,
            submitted,
            hidden,
        } => {
            put_str(&mut p, by);
            p.extend_from_slice(&len.to_be_bytes());
            p.push(u8::from(*submitted));
            if let Some(h) = hidden {
                p.extend_from_slice(h);
            }
            REDACTED_INPUT
        }
        RecordedEvent::Resize { cols, rows } => {
            p.extend_from_slice(&cols.to_be_bytes());
            p.extend_from_slice(&rows.to_be_bytes());
            RESIZE
        }
        RecordedEvent::Marker(s) => {
            p.extend_from_slice(s.as_bytes());
            MARKER
        }
        RecordedEvent::Keyframe { cols, rows, data } => {
            p.extend_from_slice(&cols.to_be_bytes());
            p.extend_from_slice(&rows.to_be_bytes());
            p.extend_from_slice(data);
            KEYFRAME
        }
        RecordedEvent::Lifecycle(s) => {
            p.extend_from_slice(s.as_bytes());
            LIFECYCLE
        }
        RecordedEvent::Frame {
            x,
            y,
            width,
            height,
            encoding,
            data,
        } => {
            for v in [x, y, width, height] {
                p.extend_from_slice(&v.to_be_bytes());
            }
            put_str(&mut p, encoding);
            p.extend_from_slice(data);
            FRAME
        }
    };
    out.push(kind);
    put_varint(out, e.t_ms.saturating_sub(*prev_t_ms));
    put_varint(out, p.len() as u64);
    *prev_t_ms = e.t_ms.max(*prev_t_ms);
    out.extend_from_slice(&p);
}

struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.b.len() < n {
            return Err(FormatError::Malformed("an event is cut short".into()));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u16(&mut self) -> Result<u16, FormatError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn varint(&mut self) -> Result<u64, FormatError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(FormatError::Malformed("a number is too long".into()))
    }
    fn string(&mut self) -> Result<String, FormatError> {
        let n = self.u16()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

/// Decodes every event of a chunk's plaintext.
pub fn decode_all(mut b: &[u8]) -> Result<Vec<Timed>, FormatError> {
    let mut prev_t_ms = 0u64;
    let mut out = Vec::new();
    while !b.is_empty() {
        let mut c = Cursor { b };
        let kind = c.take(1)?[0];
        let t_ms = prev_t_ms.saturating_add(c.varint()?);
        prev_t_ms = t_ms;
        let len = usize::try_from(c.varint()?)
            .map_err(|_| FormatError::Malformed("an event is too long".into()))?;
        let payload = c.take(len)?;
        b = c.b;
        let mut p = Cursor { b: payload };
        let event = match kind {
            OUTPUT => RecordedEvent::Output(payload.to_vec()),
            INPUT => {
                let by = p.string()?;
                RecordedEvent::Input {
                    by,
                    data: p.b.to_vec(),
                }
            }
            REDACTED_INPUT => {
                let by = p.string()?;
                let len = p.u32()?;
                let submitted = p.take(1)?[0] != 0;
                let hidden = (!p.b.is_empty()).then(|| p.b.to_vec());
                RecordedEvent::RedactedInput {
                    by,
                    len,
                    submitted,
                    hidden,
                }
            }
            RESIZE => RecordedEvent::Resize {
                cols: p.u16()?,
                rows: p.u16()?,
            },
            MARKER => RecordedEvent::Marker(String::from_utf8_lossy(payload).into_owned()),
            KEYFRAME => {
                let (cols, rows) = (p.u16()?, p.u16()?);
                RecordedEvent::Keyframe {
                    cols,
                    rows,
                    data: p.b.to_vec(),
                }
            }
            LIFECYCLE => RecordedEvent::Lifecycle(String::from_utf8_lossy(payload).into_owned()),
            FRAME => {
                let (x, y, width, height) = (p.u16()?, p.u16()?, p.u16()?, p.u16()?);
                let encoding = p.string()?;
                RecordedEvent::Frame {
                    x,
                    y,
                    width,
                    height,
                    encoding,
                    data: p.b.to_vec(),
                }
            }
            other => {
                return Err(FormatError::Malformed(format!(
                    "unknown event kind {other}"
                )))
            }
        };
        out.push(Timed { t_ms, event });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let events = vec![
            RecordedEvent::Output(b"hello\r\n".to_vec()),
            RecordedEvent::Input {
                by: "alice".into(),
                data: b"ls\r".to_vec(),
            },
            RecordedEvent::RedactedInput {
                by: "alice".into(),
                len: 9,
                submitted: true,
                hidden: None,
            },
            RecordedEvent::RedactedInput {
                by: "alice".into(),
                len: 3,
                submitted: false,
                hidden: Some(vec![7; 31]),
            },
            RecordedEvent::Resize {
                cols: 120,
                rows: 40,
            },
            RecordedEvent::Marker("bob joined".into()),
            RecordedEvent::Keyframe {
                cols: 80,
                rows: 24,
                data: b"\x1b[H\x1b[2Jx".to_vec(),
            },
            RecordedEvent::Lifecycle("{\"state\":\"ended\"}".into()),
            RecordedEvent::Frame {
                x: 1,
                y: 2,
                width: 3,
                height: 4,
                encoding: "png".into(),
                data: vec![9, 8, 7],
            },
        ];
        let timed: Vec<Timed> = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| Timed {
                t_ms: i as u64 * 1000,
                event,
            })
            .collect();
        let mut buf = Vec::new();
        let mut prev = 0;
        for e in &timed {
            encode(e, &mut prev, &mut buf);
        }
        assert_eq!(decode_all(&buf).unwrap(), timed);
        assert!(decode_all(&buf[..buf.len() - 1]).is_err());
    }
}
