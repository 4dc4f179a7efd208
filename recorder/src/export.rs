//! Why: auditors take recordings elsewhere. A terminal recording exports as an asciicast v2
//! file (plays in asciinema and asciinema-player); keystrokes are not exported (an asciicast
//! shows the screen, and redacted input has no bytes to show anyway).

use crate::event::{RecordedEvent, Timed};
use crate::format::RecordingHeader;

/// Output bytes become JSON strings; a UTF-8 character split between two events is held back
/// and joined to the next one instead of being mangled.
struct Utf8Joiner {
    held: Vec<u8>,
}

impl Utf8Joiner {
    fn take(&mut self, b: &[u8]) -> String {
        self.held.extend_from_slice(b);
        let valid_up_to = match std::str::from_utf8(&self.held) {
            Ok(_) => self.held.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => {
                // Not UTF-8 at all: show it as the replacement character, as a terminal does.
                let s = String::from_utf8_lossy(&self.held).into_owned();
                self.held.clear();
                return s;
            }
        };
        let rest = self.held.split_off(valid_up_to);
        let s = String::from_utf8_lossy(&self.held).into_owned();
        self.held = rest;
        s
    }
}

/// The asciicast v2 text (one JSON header line, then one JSON array per event).
pub fn asciicast(header: &RecordingHeader, events: &[Timed]) -> String {
    let mut out = serde_json::json!({
        "version": 2,
        "width": header.cols,
        "height": header.rows,
        "timestamp": header.started_at_ms / 1000,
        "title": format!("{}@{} by {}", header.account, header.resource, header.user),
        "env": { "TERM": "xterm-256color" },
    })
    .to_string();
    out.push('\n');
    let mut joiner = Utf8Joiner { held: Vec::new() };
    let mut keyframe_seen = false;
    for e in events {
        let t = e.t_ms as f64 / 1000.0;
        let line = match &e.event {
            RecordedEvent::Output(b) => {
                let s = joiner.take(b);
                if s.is_empty() {
                    continue;
                }
                serde_json::json!([t, "o", s])
            }
            RecordedEvent::Resize { cols, rows } => {
                serde_json::json!([t, "r", format!("{cols}x{rows}")])
            }
            // The first keyframe is the starting screen; later ones repeat what the output
            // already drew and are left out.
            RecordedEvent::Keyframe { data, .. } if !keyframe_seen => {
                keyframe_seen = true;
                serde_json::json!([t, "o", String::from_utf8_lossy(data)])
            }
            _ => continue,
        };
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// The command lines typed in a terminal recording, with the time each was started: the
/// player's side list. Backspace edits the line; escape sequences (arrow keys) are dropped;
/// a line typed at a secret prompt shows as `[secret, N characters]`.
pub fn typed_commands(events: &[Timed]) -> Vec<(u64, String)> {
    let mut typed = TypedCommands::default();
    let mut out = Vec::new();
    for e in events {
        typed.feed(e, &mut out);
    }
    out
}

/// [`typed_commands`] one event at a time, so a recording of any length can be read chunk by
/// chunk: it holds only the line being typed.
#[derive(Default)]
pub struct TypedCommands {
    line: String,
    started: Option<u64>,
    secret_len: u32,
}

impl TypedCommands {
    /// Appends to `out` the command lines that `e` completes.
    pub fn feed(&mut self, e: &Timed, out: &mut Vec<(u64, String)>) {
        match &e.event {
            RecordedEvent::Input { data, .. } => {
                let mut i = 0;
                while i < data.len() {
                    let c = data[i];
                    match c {
                        b'\r' | b'\n' => {
                            if self.secret_len > 0 {
                                out.push((
                                    self.started.unwrap_or(e.t_ms),
                                    format!("[secret, {} characters]", self.secret_len),
                                ));
                            } else if !self.line.trim().is_empty() {
                                out.push((
                                    self.started.unwrap_or(e.t_ms),
                                    self.line.trim().to_string(),
                                ));
                            }
                            self.line.clear();
                            self.started = None;
                            self.secret_len = 0;
                        }
                        0x7f | 0x08 => {
                            self.line.pop();
                        }
                        0x15 => self.line.clear(),
                        0x1b => {
                            // Skip an escape sequence: ESC [ ... final byte, or ESC O x.
                            i += 1;
                            if i < data.len() && (data[i] == b'[' || data[i] == b'O') {
                                i += 1;
                                while i < data.len() && !(0x40..=0x7e).contains(&data[i]) {
                                    i += 1;
                                }
                            }
                        }
                        c if c >= 0x20 => {
                            self.started.get_or_insert(e.t_ms);
                            // UTF-8 continuation bytes are kept as they come.
                            let end = (i + 1..data.len())
                                .find(|&j| data[j] & 0xC0 != 0x80)
                                .unwrap_or(data.len());
                            self.line.push_str(&String::from_utf8_lossy(&data[i..end]));
                            i = end;
                            continue;
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            RecordedEvent::RedactedInput { len, submitted, .. } => {
                let t = *self.started.get_or_insert(e.t_ms);
                // The Enter that submits the secret is redacted with it.
                self.secret_len += if *submitted {
                    len.saturating_sub(1)
                } else {
                    *len
                };
                self.line.clear();
                if *submitted {
                    out.push((t, format!("[secret, {} characters]", self.secret_len)));
                    self.started = None;
                    self.secret_len = 0;
                }
            }
            _ => {}
        }
    }
}
