//! Why: the server keeps the current screen of every terminal session, so a browser that
//! reconnects, or a viewer that joins late or falls behind, is shown the screen at once
//! instead of a blank terminal or an unbounded replay.

use std::cell::{Ref, RefCell};
use std::num::NonZeroU16;

use crate::desktop::DesktopScreen;

fn nz(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

/// A terminal screen, fed with everything the target prints.
pub struct TerminalScreen {
    parser: RefCell<vt100::Parser>,
    /// Plain text not parsed yet (see `flood_tail`): parsed when anything reads the screen,
    /// when output other than plain text arrives, or once `HOLD_AT_MOST` bytes are held.
    held: RefCell<Vec<u8>>,
    #[cfg(test)]
    elided: std::cell::Cell<usize>,
    /// Where a byte scan for scroll-region changes stands at the end of the last batch.
    scan: MarginScan,
    /// The program may have set a scroll region (`CSI ... r`): flood elision is then off for
    /// the rest of the session.
    margins_maybe_set: bool,
}

/// The states of the parser inside `vt100` (the `vte` state machine), as far as needed to
/// know whether it sits in its ground state between batches and to spot a scroll-region
/// change (DECSTBM, `CSI Pt ; Pb r`). Where unsure it stays out of `Ground` longer than the
/// parser would, which only costs an elision.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MarginScan {
    Ground,
    Escape,
    EscapeIntermediate,
    Csi,
    Osc,
    /// DCS, SOS, PM, APC: only ESC, CAN or SUB end them.
    OtherString,
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

/// Plain text held back before it is parsed (per session, only while output floods).
const HOLD_AT_MOST: usize = 128 * 1024;

impl TerminalScreen {
    pub fn new(cols: u16, rows: u16) -> Self {
        TerminalScreen {
            parser: RefCell::new(vt100::Parser::new(nz(rows), nz(cols), 0)),
            held: RefCell::new(Vec::new()),
            #[cfg(test)]
            elided: std::cell::Cell::new(0),
            scan: MarginScan::Ground,
            margins_maybe_set: false,
        }
    }

    pub fn process(&mut self, bytes: &[u8]) {
        let plain = bytes
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) || b == b'\r' || b == b'\n');
        // Plain text that finds the parser in its ground state leaves it there: it can be
        // held back and parsed later, all at once, with the flood elided.
        if plain && !self.margins_maybe_set && self.scan == MarginScan::Ground {
            let held = self.held.get_mut();
            held.extend_from_slice(bytes);
            if held.len() >= HOLD_AT_MOST {
                self.parse_held();
            }
            return;
        }
        self.parse_held();
        if !plain || self.scan != MarginScan::Ground {
            self.scan_for_margins(bytes);
        }
        self.parser.get_mut().process(bytes);
    }

    fn parse_held(&self) {
        let mut held = self.held.borrow_mut();
        if held.is_empty() {
            return;
        }
        let from = self.flood_tail(&held);
        #[cfg(test)]
        if from.is_some() {
            self.elided.set(self.elided.get() + 1);
        }
        self.parser.borrow_mut().process(&held[from.unwrap_or(0)..]);
        // An idle session keeps no buffer.
        *held = Vec::new();
    }

    /// The parser with everything received so far applied.
    fn parsed(&self) -> Ref<'_, vt100::Parser> {
        self.parse_held();
        self.parser.borrow()
    }

    /// Bulk output (`cat` of a log, a build) is mostly text that scrolls off before anyone
    /// could see it, and parsing it into cells was most of the gateway's CPU under such
    /// load. For a run of plain text (printable ASCII, CR, LF) that found the parser in
    /// its ground state with no scroll region ever set, only the run's end can be on the
    /// screen afterwards: returns where that tail starts, to be parsed instead of the whole.
    ///
    /// Why the screen comes out the same (`elision_never_changes_the_screen` tests it):
    /// - plain text in the ground state changes only cells and the cursor, never modes,
    ///   attributes or the parser's state;
    /// - the tail starts with a CR followed by at least 2 x rows + 1 LFs: after the CR and
    ///   at most rows - 1 LFs both the real and the elided run have the cursor in column 0
    ///   of the bottom row, from where they are in lockstep, and the next `rows` LFs (each
    ///   a scroll, the region being the whole screen) push every row that could differ off
    ///   the screen (there is no scrollback).
    fn flood_tail(&self, bytes: &[u8]) -> Option<usize> {
        const WORTH_IT: usize = 4096;
        if bytes.len() < 2 * WORTH_IT {
            return None;
        }
        let rows = usize::from(self.parser.borrow().screen().size().0.get());
        let mut lfs = 0;
        for (i, &b) in bytes.iter().enumerate().rev() {
            if b == b'\n' {
                lfs += 1;
            } else if b == b'\r' && lfs > 2 * rows {
                return (i >= WORTH_IT).then_some(i);
            }
        }
        None
    }

    fn scan_for_margins(&mut self, bytes: &[u8]) {
        use MarginScan::*;
        for &b in bytes {
            self.scan = match (self.scan, b) {
                (_, 0x1b) => Escape,
                (_, 0x18 | 0x1a) => Ground,
                (Ground, _) => Ground,
                (Escape, 0x20..=0x2f) => EscapeIntermediate,
                (Escape, b'[') => Csi,
                (Escape, b']') => Osc,
                (Escape, b'P' | b'X' | b'^' | b'_') => OtherString,
                (Escape, 0x30..=0x7e) | (EscapeIntermediate, 0x30..=0x7e) => Ground,
                (Csi, 0x40..=0x7e) => {
                    if b == b'r' {
                        self.margins_maybe_set = true;
                    }
                    Ground
                }
                (Osc, 0x07) => Ground,
                (state, _) => state,
            };
        }
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.parse_held();
        self.parser
            .get_mut()
            .screen_mut()
            .set_size(nz(rows), nz(cols));
    }

    pub fn size(&self) -> (u16, u16) {
        let (rows, cols) = self.parser.borrow().screen().size();
        (cols.get(), rows.get())
    }

    pub fn snapshot(&self) -> ScreenSnapshot {
        let parser = self.parsed();
        let screen = parser.screen();
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
        let parser = self.parsed();
        let screen = parser.screen();
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
        self.parsed().screen().contents()
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
        {
            let (a, b) = (s.parsed(), fresh.parsed());
            let (a, b) = (a.screen(), b.screen());
            assert!(b.alternate_screen());
            assert!(b.application_cursor() && b.bracketed_paste());
            assert_eq!(b.mouse_protocol_mode(), a.mouse_protocol_mode());
        }
        assert_eq!(fresh.text(), s.text());
        // Leaving the full-screen program returns to the normal screen. (Its old contents
        // are not in the snapshot, which paints only what is visible: the shell redraws.)
        fresh.process(b"\x1b[?1049l");
        assert!(!fresh.parsed().screen().alternate_screen());
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

    /// A small deterministic generator (xorshift), so a failure can be replayed.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    /// A batch as a program might print it: mostly plain lines (some wider than the
    /// screen, some ending in a bare CR), now and then escape sequences, a scroll region,
    /// the alternate screen, a title, UTF-8, or a sequence cut at the batch's end.
    fn batch(g: &mut Gen, margins: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let target = if g.below(3) == 0 {
            g.below(300)
        } else {
            8192 + g.below(60_000)
        };
        let escapes: [&[u8]; 12] = [
            b"\x1b[1;31m",
            b"\x1b[0m",
            b"\x1b[5;10H",
            b"\x1b[2J",
            b"\x1b[?1049h",
            b"\x1b[?1049l",
            b"\x1b[3;20r",
            b"\x1b[r",
            b"\x1b]0;a title\x07",
            b"\x1b(0qqq\x1b(B",
            "\u{e9}t\u{e9} \u{6f22}".as_bytes(),
            b"\t\x08",
        ];
        let escape_odds = if g.below(2) == 0 {
            0
        } else {
            1 + g.below(40) as u64
        };
        while out.len() < target {
            if escape_odds > 0 && g.below(escape_odds) == 0 {
                let e = escapes[g.below(escapes.len() as u64)];
                if margins || !e.ends_with(b"r") {
                    out.extend_from_slice(e);
                }
            }
            let len = g.below(130);
            out.extend((0..len).map(|i| b'A' + ((i + g.below(3)) % 58) as u8));
            out.extend_from_slice(if g.below(20) == 0 { b"\r" } else { b"\r\n" });
        }
        match g.below(8) {
            0 => out.extend_from_slice(b"\x1b[12;"),
            1 => out.extend_from_slice(b"\x1b]2;unfinished"),
            2 => out.push(0x1b),
            _ => {}
        }
        out
    }

    #[test]
    fn elision_never_changes_the_screen() {
        let mut elided_batches = 0;
        for seed in 1..=60u64 {
            let mut g = Gen(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let (cols, rows) = (40 + g.below(100) as u16, 5 + g.below(40) as u16);
            let mut ours = TerminalScreen::new(cols, rows);
            let mut full = vt100::Parser::new(nz(rows), nz(cols), 0);
            for i in 0..25 {
                let b = batch(&mut g, seed % 4 == 0);
                ours.process(&b);
                full.process(&b);
                assert_eq!(
                    ours.parsed().screen().state_formatted(),
                    full.screen().state_formatted(),
                    "seed {seed}, batch {i}: the screens differ"
                );
            }
            elided_batches += ours.elided.get();
        }
        assert!(
            elided_batches > 100,
            "only {elided_batches} batches were elided"
        );
    }

    /// Feeds `flood` and says whether its middle was elided.
    fn elides(s: &mut TerminalScreen, flood: &[u8]) -> bool {
        let before = s.elided.get();
        s.process(flood);
        drop(s.parsed());
        s.elided.get() > before
    }

    #[test]
    fn a_scroll_region_turns_elision_off_even_split_across_batches() {
        // Digits only: still elided (no byte of the flood could end an open sequence, so
        // this relies on knowing the parser is in its ground state).
        let flood: Vec<u8> = b"0123456789\r\n".repeat(2000);
        let mut s = TerminalScreen::new(80, 24);
        assert!(elides(&mut s, &flood));
        s.process(b"\x1b[2;");
        s.process(b"\n10");
        assert!(!s.margins_maybe_set, "not finished yet");
        s.process(b"r");
        assert!(s.margins_maybe_set);
        assert!(!elides(&mut s, &flood));
        // A batch that ends inside a sequence or a title: the flood is not elided.
        for open in [
            &b"\x1b[3"[..],
            b"\x1b",
            b"\x1b(",
            b"\x1b]0;title",
            b"\x1bPq",
        ] {
            let mut s = TerminalScreen::new(80, 24);
            s.process(open);
            assert!(!elides(&mut s, &flood), "{open:?}");
        }
        let mut s = TerminalScreen::new(80, 24);
        s.process(b"\x1b]0;title\x07\x1b[1m\x1b(B");
        assert!(elides(&mut s, &flood));
        // Small pieces are held and elided together.
        let mut s = TerminalScreen::new(80, 24);
        for piece in flood.chunks(1000) {
            s.process(piece);
        }
        assert_eq!(s.elided.get(), 0, "nothing parsed yet");
        assert!(s.text().ends_with("0123456789"));
        assert_eq!(s.elided.get(), 1);
    }

    #[test]
    fn resize_changes_the_size() {
        let mut s = TerminalScreen::new(80, 24);
        s.resize(120, 40);
        assert_eq!(s.size(), (120, 40));
        assert_eq!((s.snapshot().cols, s.snapshot().rows), (120, 40));
    }
}
