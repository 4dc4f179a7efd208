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
