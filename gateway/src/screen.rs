//! Why: the server keeps the current screen of every terminal session, so a browser that
//! reconnects, or a viewer that joins late or falls behind, is shown the screen at once
//! instead of a blank terminal or an unbounded replay.

use std::num::NonZeroU16;

use crate::desktop::DesktopScreen;

fn nz(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

/// A terminal screen, fed with everything the target prints.
pub struct TerminalScreen {
    parser: vt100::Parser,
}

/// Enough to redraw the screen in a fresh terminal: resize it to `cols` x `rows`, then write
/// `data` (escape sequences that clear, paint every cell and place the cursor).
/// For a desktop (RDP) session `desktop` is set: `cols` x `rows` are pixels and `data` is a
/// PNG of the whole picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScreenSnapshot {
    pub cols: u16,
    pub rows: u16,
    pub data: Vec<u8>,
    pub desktop: bool,
    /// A desktop's current pointer shape, when the server has set one (a late viewer gets
    /// it with the picture).
    pub cursor: Option<crate::event::Cursor>,
}

/// What a session shows: a terminal, or a desktop's picture. (One per session, so the size
/// difference between the two does not matter.)
#[allow(clippy::large_enum_variant)]
pub enum Screen {
    Terminal(TerminalScreen),
    Desktop(DesktopScreen),
}

impl Screen {
    /// Terminal output; a desktop has none.
    pub fn process(&mut self, bytes: &[u8]) {
        if let Screen::Terminal(t) = self {
            t.process(bytes)
        }
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        match self {
            Screen::Terminal(t) => t.resize(cols, rows),
            Screen::Desktop(d) => d.resize(cols, rows),
        }
    }

    pub fn at_secret_prompt(&self) -> bool {
        match self {
            Screen::Terminal(t) => t.at_secret_prompt(),
            Screen::Desktop(_) => false,
        }
    }

    pub fn snapshot(&self) -> ScreenSnapshot {
        match self {
            Screen::Terminal(t) => t.snapshot(),
            Screen::Desktop(d) => {
                let (cols, rows) = d.size();
                ScreenSnapshot {
                    cols,
                    rows,
                    data: d.snapshot_png(),
                    desktop: true,
                    cursor: d.cursor().cloned(),
                }
            }
        }
    }
}

impl TerminalScreen {
    pub fn new(cols: u16, rows: u16) -> Self {
        TerminalScreen {
            parser: vt100::Parser::new(nz(rows), nz(cols), 0),
        }
    }

    pub fn process(&mut self, bytes: &[u8]) {
        self.parser.process(bytes);
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.parser.screen_mut().set_size(nz(rows), nz(cols));
    }

    pub fn size(&self) -> (u16, u16) {
        let (rows, cols) = self.parser.screen().size();
        (cols.get(), rows.get())
    }

    pub fn snapshot(&self) -> ScreenSnapshot {
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        let mut data = Vec::new();
        if screen.alternate_screen() {
            // A full-screen program (vim, top): paint into the alternate screen, so leaving
            // it restores the shell's screen as it does on a real terminal.
            data.extend_from_slice(b"\x1b[?1049h");
        }
        data.extend_from_slice(b"\x1b[H\x1b[2J");
        // Contents, attributes, cursor, and the input modes the browser must honour
        // (application cursor keys, bracketed paste, mouse reporting).
        data.extend_from_slice(screen.state_formatted().as_bytes());
        ScreenSnapshot {
            cols: cols.get(),
            rows: rows.get(),
            data,
            desktop: false,
            cursor: None,
        }
    }

    /// Whether the cursor sits after a prompt for a secret (password, passphrase, one-time
    /// code): what is typed now is not echoed and must not be recorded.
    pub fn at_secret_prompt(&self) -> bool {
        let screen = self.parser.screen();
        let (row, col) = screen.cursor_position();
        let before = screen.contents_between(row, 0, row, col).to_lowercase();
        let line = before.trim_end();
        if !line.ends_with(':') {
            return false;
        }
        [
            "password",
            "passphrase",
            "pass phrase",
            "passcode",
            "verification code",
            "pin:",
            "secret",
            "token",
        ]
        .iter()
        .any(|w| line.contains(w))
    }

    /// The screen's visible text (for tests and search).
    pub fn text(&self) -> String {
        self.parser.screen().contents()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_redraws_the_same_screen() {
        let mut s = TerminalScreen::new(40, 10);
        s.process(b"$ echo hi\r\nhi\r\n\x1b[31mred\x1b[0m $ ");
        let snap = s.snapshot();
        assert_eq!((snap.cols, snap.rows), (40, 10));
        let mut fresh = TerminalScreen::new(snap.cols, snap.rows);
        fresh.process(b"garbage that must be cleared");
        fresh.process(&snap.data);
        assert_eq!(fresh.text(), s.text());
        assert!(fresh.text().contains("hi\nred $"));
    }

    #[test]
    fn snapshot_keeps_input_modes_and_the_alternate_screen() {
        let mut s = TerminalScreen::new(40, 10);
        s.process(b"shell line\r\n\x1b[?1049h\x1b[?1h\x1b[?2004h\x1b[?1000h\x1b[2Jin vim");
        let mut fresh = TerminalScreen::new(40, 10);
        fresh.process(&s.snapshot().data);
        let (a, b) = (s.parser.screen(), fresh.parser.screen());
        assert!(b.alternate_screen());
        assert!(b.application_cursor() && b.bracketed_paste());
        assert_eq!(b.mouse_protocol_mode(), a.mouse_protocol_mode());
        assert_eq!(fresh.text(), s.text());
        // Leaving the full-screen program returns to the normal screen. (Its old contents
        // are not in the snapshot, which paints only what is visible: the shell redraws.)
        fresh.process(b"\x1b[?1049l");
        assert!(!fresh.parser.screen().alternate_screen());
    }

    #[test]
    fn secret_prompts_are_recognised() {
        let mut s = TerminalScreen::new(60, 5);
        s.process(b"$ sudo -k id\r\n[sudo] password for alice: ");
        assert!(s.at_secret_prompt());
        s.process(b"\r\nuid=0(root)\r\n$ cat password.txt");
        assert!(!s.at_secret_prompt(), "the word alone is not a prompt");
        // It errs on the side of redacting: a line the user typed that looks like a prompt
        // is treated as one.
        s.process(b"\r\n$ echo Password:");
        assert!(s.at_secret_prompt());
        s.process(b"\r\nEnter passphrase for key '/k':");
        assert!(s.at_secret_prompt());
        s.process(b"\r\n$ ");
        assert!(!s.at_secret_prompt());
    }

    #[test]
    fn resize_changes_the_size() {
        let mut s = TerminalScreen::new(80, 24);
        s.resize(120, 40);
        assert_eq!(s.size(), (120, 40));
        assert_eq!((s.snapshot().cols, s.snapshot().rows), (120, 40));
    }
}
