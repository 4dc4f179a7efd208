//! Why: text copied in the browser should paste on the desktop, and text copied on the
//! desktop should reach the browser, but only as far as the resource's policy allows (off,
//! browser to target only, both), and every transfer must be visible in the recording and
//! the audit. IronRDP's clipboard channel (CLIPRDR) reports what the server does through
//! synchronous callbacks; this bridge turns them into `ClipEvent`s that the adapter's loop
//! acts on after each PDU, where the session's state and the policy live.

use ironrdp_cliprdr::backend::CliprdrBackend;
use ironrdp_cliprdr::pdu::{
    ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest,
    FileContentsResponse, FormatDataRequest, FormatDataResponse, LockDataId,
};

/// What the organisation allows through a desktop's clipboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClipboardPolicy {
    Off,
    /// Browser to target only (paste in, never copy out).
    ToTarget,
    Both,
}

impl ClipboardPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(ClipboardPolicy::Off),
            "to_target" => Some(ClipboardPolicy::ToTarget),
            "both" => Some(ClipboardPolicy::Both),
            _ => None,
        }
    }
    pub fn to_target(self) -> bool {
        self != ClipboardPolicy::Off
    }
    pub fn from_target(self) -> bool {
        self == ClipboardPolicy::Both
    }
}

/// Largest clipboard text carried either way (characters beyond are cut, and the cut is said).
pub const MAX_TEXT: usize = 1024 * 1024;

/// What the clipboard channel reported.
#[derive(Debug, PartialEq, Eq)]
pub enum ClipEvent {
    /// The desktop's clipboard now holds text (someone copied on the desktop).
    RemoteHasText,
    /// The desktop asks for the text we offered (someone pastes on the desktop).
    TextRequested,
    /// The text we asked for (None: the desktop no longer had it).
    RemoteText(Option<String>),
}

#[derive(Debug)]
pub struct Bridge {
    events: std::sync::mpsc::Sender<ClipEvent>,
}

ironrdp_core::impl_as_any!(Bridge);

impl Bridge {
    pub fn new() -> (Bridge, std::sync::mpsc::Receiver<ClipEvent>) {
        let (events, rx) = std::sync::mpsc::channel();
        (Bridge { events }, rx)
    }

    fn tell(&self, e: ClipEvent) {
        let _ = self.events.send(e);
    }
}

impl CliprdrBackend for Bridge {
    fn temporary_directory(&self) -> &str {
        // No file transfer: files are never offered or accepted.
        ""
    }
    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        ClipboardGeneralCapabilityFlags::empty()
    }
    fn on_ready(&mut self) {}
    fn on_request_format_list(&mut self) {}
    fn on_process_negotiated_capabilities(&mut self, _: ClipboardGeneralCapabilityFlags) {}
    fn on_remote_copy(&mut self, available_formats: &[ClipboardFormat]) {
        if available_formats
            .iter()
            .any(|f| f.id == ClipboardFormatId::CF_UNICODETEXT)
        {
            self.tell(ClipEvent::RemoteHasText);
        }
    }
    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        if request.format == ClipboardFormatId::CF_UNICODETEXT {
            self.tell(ClipEvent::TextRequested);
        }
    }
    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        let text = if response.is_error() {
            None
        } else {
            response.to_unicode_string().ok()
        };
        self.tell(ClipEvent::RemoteText(text));
    }
    fn on_file_contents_request(&mut self, _: FileContentsRequest) {}
    fn on_file_contents_response(&mut self, _: FileContentsResponse<'_>) {}
    fn on_lock(&mut self, _: LockDataId) {}
    fn on_unlock(&mut self, _: LockDataId) {}
}

/// `text` cut to `MAX_TEXT` characters, and whether it was cut.
pub fn bounded(text: &str) -> (String, bool) {
    match text.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => (text[..i].to_string(), true),
        None => (text.to_string(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_say_which_way() {
        let both = ClipboardPolicy::parse("both").unwrap();
        assert!(both.to_target() && both.from_target());
        let inbound = ClipboardPolicy::parse("to_target").unwrap();
        assert!(inbound.to_target() && !inbound.from_target());
        let off = ClipboardPolicy::parse("off").unwrap();
        assert!(!off.to_target() && !off.from_target());
        assert_eq!(ClipboardPolicy::parse("sideways"), None);
    }

    #[test]
    fn the_bridge_reports_text_only() {
        let (mut b, rx) = Bridge::new();
        b.on_remote_copy(&[ClipboardFormat::new(ClipboardFormatId::new(49000))]);
        b.on_remote_copy(&[ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT)]);
        b.on_format_data_request(FormatDataRequest {
            format: ClipboardFormatId::CF_UNICODETEXT,
        });
        assert_eq!(rx.try_recv(), Ok(ClipEvent::RemoteHasText));
        assert_eq!(rx.try_recv(), Ok(ClipEvent::TextRequested));
        assert!(rx.try_recv().is_err());
        let (cut, was) = bounded(&"x".repeat(MAX_TEXT + 5));
        assert!(was && cut.len() == MAX_TEXT);
    }
}
