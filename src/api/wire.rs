//! Why: the session WebSocket's text messages as types (docs/websocket-protocol.md). What the
//! browser sends is parsed once into a `ClientMsg` and checked there (sizes, key codes,
//! buttons); what the server sends is a `ServerMsg`, so a field cannot be misspelt in one
//! place and right in another. The binary desktop frame has its own encoder beside them.

use gateway::broker::{Control, Participant};
use gateway::event::{ClientInput, FailureKind, Lifecycle, Protocol};
use serde::{Deserialize, Serialize};

/// A text message from the browser. Unknown types and malformed fields are not a
/// `ClientMsg` (the socket ignores them, as the protocol says).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// A terminal tab's size (`cols`, `rows`) or a desktop tab's (`width`, `height`, pixels).
    Resize {
        cols: Option<u64>,
        rows: Option<u64>,
        width: Option<u64>,
        height: Option<u64>,
    },
    /// A desktop viewer has drawn this many binary frames since the socket opened.
    Drawn {
        frames: u64,
    },
    Key {
        code: String,
        down: bool,
        #[serde(default)]
        key: Option<String>,
    },
    Pointer {
        x: u64,
        y: u64,
        buttons: u64,
    },
    Wheel {
        steps: i64,
    },
    Release,
    Clipboard {
        text: String,
    },
}

impl ClientMsg {
    pub fn parse(text: &str) -> Option<ClientMsg> {
        serde_json::from_str(text).ok()
    }

    /// A terminal size the session accepts (2 to 1000 each way).
    pub fn terminal_size(&self) -> Option<(u16, u16)> {
        let ClientMsg::Resize {
            cols: Some(c),
            rows: Some(r),
            ..
        } = self
        else {
            return None;
        };
        let ok = |n: u64| u16::try_from(n).ok().filter(|n| (2..=1000).contains(n));
        Some((ok(*c)?, ok(*r)?))
    }

    /// A desktop size in pixels (1 to `gateway::desktop::MAX_SIDE` each way).
    pub fn desktop_size(&self) -> Option<(u16, u16)> {
        let ClientMsg::Resize {
            width: Some(w),
            height: Some(h),
            ..
        } = self
        else {
            return None;
        };
        let ok = |n: u64| {
            u16::try_from(n)
                .ok()
                .filter(|n| (1..=gateway::desktop::MAX_SIDE).contains(n))
        };
        Some((ok(*w)?, ok(*h)?))
    }

    /// Desktop input, and the text a key press made (for the recording), if any. Keys
    /// whose code the target's keyboard does not have are dropped.
    pub fn desktop_input(&self) -> Option<(ClientInput, Option<String>)> {
        match self {
            ClientMsg::Key { code, down, key } => {
                let (extended, scancode) = gateway::rdp::keys::scancode(code)?;
                // What the key made, as the browser's layout says: one character, or Enter.
                let typed = match key.as_deref() {
                    Some(k) if *down && k.chars().count() == 1 => Some(k.to_string()),
                    Some("Enter") if *down => Some("\n".to_string()),
                    _ => None,
                };
                Some((
                    ClientInput::Key {
                        scancode,
                        extended,
                        down: *down,
                    },
                    typed,
                ))
            }
            ClientMsg::Pointer { x, y, buttons } => Some((
                ClientInput::Pointer {
                    x: u16::try_from(*x).ok()?,
                    y: u16::try_from(*y).ok()?,
                    buttons: u8::try_from(*buttons).ok()? & 7,
                },
                None,
            )),
            ClientMsg::Release => Some((ClientInput::ReleaseAll, None)),
            ClientMsg::Clipboard { text } => {
                Some((ClientInput::Clipboard { text: text.clone() }, None))
            }
            ClientMsg::Wheel { steps } => Some((
                ClientInput::Wheel {
                    steps: (*steps).clamp(-10, 10) as i16,
                },
                None,
            )),
            ClientMsg::Resize { .. } | ClientMsg::Drawn { .. } => None,
        }
    }
}

/// Who a browser is in a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Observer,
    Peer,
}

/// A text message to the browser.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg<'a> {
    /// Sent first.
    Session {
        id: &'a str,
        account: &'a str,
        resource: &'a str,
        protocol: Protocol,
        path: &'a [String],
        started_at_ms: i64,
        recorded: bool,
        owner: &'a str,
        you: &'a str,
        control: &'a Control,
        role: Role,
    },
    /// Progress of the login to the target: `connecting`, `connected`.
    Status {
        state: &'static str,
    },
    /// Reset to this size; the next binary frame redraws everything. A terminal gives
    /// `cols`/`rows`, a desktop `desktop: true` and `width`/`height`.
    Snapshot {
        #[serde(skip_serializing_if = "Option::is_none")]
        cols: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rows: Option<u16>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        desktop: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        width: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        height: Option<u16>,
    },
    Resize {
        cols: u16,
        rows: u16,
    },
    Error {
        kind: FailureKind,
        message: &'a str,
    },
    Exit {
        reason: &'a str,
        exit_status: Option<u32>,
    },
    Notice {
        message: String,
    },
    Participants {
        participants: &'a [Participant],
        control: &'a Control,
    },
    Marker {
        text: &'a str,
    },
    Clipboard {
        text: &'a str,
    },
    /// A desktop pointer shape: `shape` (`default`, `hidden`), or a `png` with its hot spot.
    Cursor {
        #[serde(skip_serializing_if = "Option::is_none")]
        shape: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        png: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        x: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        y: Option<u16>,
    },
}

impl ServerMsg<'_> {
    pub fn text(&self) -> String {
        // Serialising these types cannot fail (no maps with non-string keys).
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn lifecycle(l: &Lifecycle) -> ServerMsg<'_> {
        match l {
            Lifecycle::Connecting => ServerMsg::Status {
                state: "connecting",
            },
            Lifecycle::Connected => ServerMsg::Status { state: "connected" },
            Lifecycle::Ended {
                reason,
                exit_status,
            } => ServerMsg::Exit {
                reason,
                exit_status: *exit_status,
            },
            Lifecycle::Failed { kind, message } => ServerMsg::Error {
                kind: *kind,
                message,
            },
        }
    }

    pub fn terminal_snapshot(cols: u16, rows: u16) -> ServerMsg<'static> {
        ServerMsg::Snapshot {
            cols: Some(cols),
            rows: Some(rows),
            desktop: false,
            width: None,
            height: None,
        }
    }

    pub fn desktop_snapshot(width: u16, height: u16) -> ServerMsg<'static> {
        ServerMsg::Snapshot {
            cols: None,
            rows: None,
            desktop: true,
            width: Some(width),
            height: Some(height),
        }
    }

    pub fn cursor(c: &gateway::event::Cursor) -> ServerMsg<'static> {
        use base64::Engine;
        let (shape, png, x, y) = match c {
            gateway::event::Cursor::Default => (Some("default"), None, None, None),
            gateway::event::Cursor::Hidden => (Some("hidden"), None, None, None),
            gateway::event::Cursor::Image {
                png,
                hotspot_x,
                hotspot_y,
            } => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(png)),
                Some(*hotspot_x),
                Some(*hotspot_y),
            ),
        };
        ServerMsg::Cursor { shape, png, x, y }
    }
}

/// The length field of a copied rectangle in a desktop frame.
pub const COPY_MARK: u32 = u32::MAX;

/// A desktop update as one binary frame: for each rectangle, x, y, width, height (u16,
/// big-endian), the length of its image (u32, big-endian), then the image; a copied
/// rectangle has `COPY_MARK` as its length and the source's x and y (u16) instead.
pub fn frame_message(rects: &[gateway::event::FrameRect]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rects.iter().map(|r| 12 + r.data.len()).sum());
    for r in rects {
        for v in [r.x, r.y, r.width, r.height] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        let len = if r.encoding == gateway::desktop::COPY {
            COPY_MARK
        } else {
            r.data.len() as u32
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&r.data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn as_json(m: &ServerMsg<'_>) -> Value {
        serde_json::from_str(&m.text()).unwrap()
    }

    #[test]
    fn browser_messages_parse_as_the_protocol_says() {
        let m = |t: &str| ClientMsg::parse(t);
        assert_eq!(
            m(r#"{"type":"resize","cols":120,"rows":40}"#).and_then(|m| m.terminal_size()),
            Some((120, 40))
        );
        assert_eq!(
            m(r#"{"type":"resize","cols":1,"rows":40}"#).and_then(|m| m.terminal_size()),
            None
        );
        assert_eq!(
            m(r#"{"type":"resize","width":1280,"height":800}"#).and_then(|m| m.desktop_size()),
            Some((1280, 800))
        );
        assert_eq!(
            m(r#"{"type":"resize","width":99999,"height":800}"#).and_then(|m| m.desktop_size()),
            None
        );
        assert_eq!(
            m(r#"{"type":"drawn","frames":7}"#),
            Some(ClientMsg::Drawn { frames: 7 })
        );
        let (input, typed) = m(r#"{"type":"key","code":"KeyA","down":true,"key":"a"}"#)
            .and_then(|m| m.desktop_input())
            .unwrap();
        assert!(matches!(input, ClientInput::Key { down: true, .. }));
        assert_eq!(typed.as_deref(), Some("a"));
        assert!(m(r#"{"type":"key","code":"NoSuchKey","down":true}"#)
            .and_then(|m| m.desktop_input())
            .is_none());
        assert!(matches!(
            m(r#"{"type":"pointer","x":10,"y":20,"buttons":255}"#)
                .and_then(|m| m.desktop_input())
                .map(|(i, _)| i),
            Some(ClientInput::Pointer {
                x: 10,
                y: 20,
                buttons: 7
            })
        ));
        assert!(m(r#"{"type":"pointer","x":70000,"y":20,"buttons":1}"#)
            .and_then(|m| m.desktop_input())
            .is_none());
        assert!(matches!(
            m(r#"{"type":"wheel","steps":-99}"#)
                .and_then(|m| m.desktop_input())
                .map(|(i, _)| i),
            Some(ClientInput::Wheel { steps: -10 })
        ));
        assert!(m(r#"{"type":"release"}"#).is_some());
        assert!(m(r#"{"type":"bogus"}"#).is_none());
        assert!(m("not json").is_none());
    }

    #[test]
    fn server_messages_keep_the_documented_shapes() {
        let control = Control {
            holder: "alice".into(),
            shared: false,
        };
        let path = vec!["jump1".to_string()];
        let hello = ServerMsg::Session {
            id: "s1",
            account: "svc",
            resource: "box",
            protocol: Protocol::Ssh,
            path: &path,
            started_at_ms: 5,
            recorded: true,
            owner: "alice",
            you: "bob",
            control: &control,
            role: Role::Observer,
        };
        assert_eq!(
            as_json(&hello),
            json!({ "type": "session", "id": "s1", "account": "svc", "resource": "box", "protocol": "ssh", "path": ["jump1"], "started_at_ms": 5, "recorded": true, "owner": "alice", "you": "bob", "control": { "holder": "alice", "shared": false }, "role": "observer" })
        );
        assert_eq!(
            as_json(&ServerMsg::terminal_snapshot(80, 24)),
            json!({ "type": "snapshot", "cols": 80, "rows": 24 })
        );
        assert_eq!(
            as_json(&ServerMsg::desktop_snapshot(1280, 800)),
            json!({ "type": "snapshot", "desktop": true, "width": 1280, "height": 800 })
        );
        let ended = Lifecycle::Ended {
            reason: "bye".into(),
            exit_status: None,
        };
        assert_eq!(
            as_json(&ServerMsg::lifecycle(&ended)),
            json!({ "type": "exit", "reason": "bye", "exit_status": null })
        );
        let failed = Lifecycle::Failed {
            kind: FailureKind::HostKeyMismatch,
            message: "changed".into(),
        };
        assert_eq!(
            as_json(&ServerMsg::lifecycle(&failed)),
            json!({ "type": "error", "kind": "host_key_mismatch", "message": "changed" })
        );
        assert_eq!(
            as_json(&ServerMsg::lifecycle(&Lifecycle::Connected)),
            json!({ "type": "status", "state": "connected" })
        );
        assert_eq!(
            as_json(&ServerMsg::cursor(&gateway::event::Cursor::Hidden)),
            json!({ "type": "cursor", "shape": "hidden" })
        );
        assert_eq!(
            as_json(&ServerMsg::cursor(&gateway::event::Cursor::Image {
                png: vec![1, 2].into(),
                hotspot_x: 3,
                hotspot_y: 4
            })),
            json!({ "type": "cursor", "png": "AQI=", "x": 3, "y": 4 })
        );
        assert_eq!(
            as_json(&ServerMsg::Resize {
                cols: 100,
                rows: 30
            }),
            json!({ "type": "resize", "cols": 100, "rows": 30 })
        );
        assert_eq!(
            as_json(&ServerMsg::Marker { text: "admin left" }),
            json!({ "type": "marker", "text": "admin left" })
        );
    }
}
