//! Why: one typed stream of session events for every protocol, so the owner's browser, the
//! observers and the recorder are all plain subscribers of the same thing. Terminal output
//! and graphical frame updates are both first-class variants; nothing downstream needs to
//! know which protocol produced them.

use std::sync::Arc;

/// Which protocol a session speaks to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Ssh,
    Telnet,
    Rdp,
}

/// A rectangle of a graphical session's framebuffer that changed, already encoded for the
/// browser (the RDP issue decides the encodings; the type is ready for it now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameRect {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
    /// e.g. "png", "jpeg", "raw-rgba"
    pub encoding: &'static str,
    pub data: Arc<[u8]>,
}

/// A desktop's pointer shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// The system's default arrow.
    Default,
    Hidden,
    /// A PNG with transparency, and the hot spot (the pixel that points).
    Image {
        png: Arc<[u8]>,
        hotspot_x: u16,
        hotspot_y: u16,
    },
}

/// Where a session is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    Connecting,
    Connected,
    /// The session ended; `reason` is shown to the user as is.
    Ended {
        reason: String,
        exit_status: Option<u32>,
    },
    /// It failed; `kind` is machine-readable, `message` is for people (no secrets, no traces).
    Failed {
        kind: FailureKind,
        message: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Unreachable,
    TimedOut,
    AuthenticationFailed,
    HostKeyMismatch,
    HostKeyUnknown,
    PermissionDenied,
    Terminated,
    Protocol,
}

/// Something that happened in a session, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// Bytes the target sent to the terminal.
    Output(Arc<[u8]>),
    /// Changed regions of a graphical session's screen, and when the gateway read the first
    /// of the target's updates they show (`None` for a picture the gateway made itself, such
    /// as a lossless refinement): a browser's picture is as old as the time from then to its
    /// drawing (`frame_window::DrawingStats`).
    Frame(Arc<[FrameRect]>, Option<std::time::Instant>),
    /// The terminal (cols x rows) or desktop (pixels) size changed.
    Resize {
        cols: u16,
        rows: u16,
    },
    /// What a participant typed. `redacted` is set when the target was not echoing (a
    /// password prompt): the recorder keeps the length, never the bytes.
    Input {
        by: String,
        data: Arc<[u8]>,
        redacted: bool,
    },
    Lifecycle(Lifecycle),
    /// The desktop's pointer shape changed (shown by the browser as its cursor over the
    /// desktop; not part of the picture, not recorded).
    Cursor(Cursor),
    /// Text that crossed a desktop's clipboard, as the resource's policy allowed:
    /// `to_target` from the browser to the desktop, else from the desktop to the browser.
    Clipboard {
        to_target: bool,
        text: Arc<str>,
    },
    /// A note in the session's timeline (join, leave, control handed over, ...).
    Marker(String),
}

/// What a participant sends into a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientInput {
    Data(Vec<u8>),
    Resize {
        cols: u16,
        rows: u16,
    },
    /// End the session (logout, lock, timeout, administrator); `reason` is shown to viewers.
    Terminate {
        reason: String,
    },
    /// A desktop session's key, by its position on a PC keyboard (scancode set 1, `extended`
    /// for the E0-prefixed keys), so the target's own keyboard layout applies.
    Key {
        scancode: u8,
        extended: bool,
        down: bool,
    },
    /// A desktop session's pointer: position in desktop pixels and the buttons held (bit 0
    /// left, bit 1 right, bit 2 middle, as the browser's `MouseEvent.buttons`).
    Pointer {
        x: u16,
        y: u16,
        buttons: u8,
    },
    /// Wheel steps (positive: away from the user).
    Wheel {
        steps: i16,
    },
    /// Release every key and button held (the browser tab lost the focus mid-press).
    ReleaseAll,
    /// Text from the browser's clipboard, offered to the desktop's (policy permitting).
    Clipboard {
        text: String,
    },
    /// Keystrokes the gateway itself types into a terminal (a rotation job answering the
    /// target's prompts): written like `Data`, never a session `Input` event, wiped when
    /// dropped. Never built from anything a browser sent.
    Secret(SecretKeys),
}

/// Secret keystrokes (see `ClientInput::Secret`). The wrapper exists so `ClientInput` can
/// stay `Clone`/`Debug`/`Eq`: its `Debug` shows the length only, never the bytes.
pub struct SecretKeys(pub crate::Secret);

impl Clone for SecretKeys {
    fn clone(&self) -> Self {
        SecretKeys(self.0.duplicate())
    }
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKeys({} bytes, hidden)", self.0.len())
    }
}

impl PartialEq for SecretKeys {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(other.0.expose())
    }
}

impl Eq for SecretKeys {}
