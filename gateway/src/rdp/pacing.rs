//! Why: a desktop that changes without pause (a scrolling terminal, a video) sends updates as
//! fast as the gateway reads them, and the gateway would decode every intermediate picture.
//! Under such a flood the session stops reading for a moment after each frame it hands on:
//! the server then waits on its socket, and xorgxrdp (as a Windows host's own pacing) merges
//! what changed meanwhile into one update, so the gateway decodes the picture as it is. A
//! keystroke echoed on a quiet desktop is no flood and is never held up. Measured on a
//! scrolling xterm (bench/README.md, issue 8): a third less CPU per session at the same
//! frames per second, and a third of the update volume from the server.

use std::time::Duration;

use tokio::time::Instant;

/// A frame whose first update came within this long of the frame before (or of reading
/// resuming) belongs to a flood.
pub const FLOOD_WITHIN: Duration = Duration::from_millis(50);
/// How long reading stops after each frame of a flood (at most about 3 frames a second
/// while the flood lasts).
pub const FLOOD_PAUSE: Duration = Duration::from_millis(300);

/// How much the frame being gathered has redrawn. A frame is handed on at once when its
/// updates have redrawn a whole desktop's worth of pixels, before more is read: under a
/// flood more would mostly be drawn over before anyone saw it, and every byte read is
/// decoded. Without this, the faster the gateway decoded, the more it read in each frame's
/// 16 ms: two desktops' worth a frame on a scrolling xterm (bench/README.md, issue 8).
#[derive(Default)]
pub struct FrameFill {
    pixels: u64,
}

impl FrameFill {
    /// `pixels` more were drawn (overlaps count twice: what was decoded).
    pub fn drawn(&mut self, pixels: u64) {
        self.pixels = self.pixels.saturating_add(pixels);
    }

    /// Whether the frame has redrawn a `width` x `height` desktop's worth.
    pub fn is_full(&self, width: u16, height: u16) -> bool {
        self.pixels >= u64::from(width) * u64::from(height)
    }
}

/// When the session may read from the server again.
#[derive(Default)]
pub struct FloodPacer {
    /// When the last frame was handed on, or reading resumed after a pause.
    since: Option<Instant>,
    /// When the first update of the frame being gathered came.
    frame_began: Option<Instant>,
    /// Reading stops until then (None: read).
    read_after: Option<Instant>,
}

impl FloodPacer {
    /// An update came that starts a new frame.
    pub fn frame_began(&mut self, now: Instant) {
        self.frame_began = Some(now);
    }

    /// A frame was handed on: under a flood, reading stops for `FLOOD_PAUSE`.
    pub fn frame_sent(&mut self, now: Instant) {
        if let (Some(since), Some(began)) = (self.since, self.frame_began.take()) {
            if began.saturating_duration_since(since) < FLOOD_WITHIN {
                self.read_after = Some(now + FLOOD_PAUSE);
            }
        }
        self.since = Some(now);
    }

    /// When reading resumes, if it is stopped.
    pub fn paused_until(&self) -> Option<Instant> {
        self.read_after
    }

    /// The pause is over (or a key ended it: a server that waits to send reads no input):
    /// the next frame's first update counts from now (otherwise the pause itself would make
    /// the flood look like a quiet desktop).
    pub fn resume(&mut self, now: Instant) {
        self.read_after = None;
        self.since = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    #[test]
    fn a_frame_is_full_once_it_has_redrawn_a_desktops_worth() {
        let mut f = FrameFill::default();
        // A keystroke's echo: a character cell.
        f.drawn(8 * 16);
        assert!(!f.is_full(1280, 768));
        // 64x64 tiles of a full redraw: full with the last one, not before.
        for _ in 0..(1280 / 64) * (768 / 64) - 1 {
            f.drawn(64 * 64);
        }
        assert!(!f.is_full(1280, 768));
        f.drawn(64 * 64);
        assert!(f.is_full(1280, 768));
        assert!(!f.is_full(1920, 1080), "the desktop's own size counts");
    }

    #[test]
    fn a_quiet_desktop_is_never_paused() {
        let t0 = Instant::now();
        let mut p = FloodPacer::default();
        // Keystroke echoes a second apart: a frame each, no pause.
        for k in 0..5u64 {
            p.frame_began(ms(t0, k * 1000));
            p.frame_sent(ms(t0, k * 1000 + 16));
            assert_eq!(p.paused_until(), None, "echo {k}");
        }
    }

    #[test]
    fn a_flood_pauses_after_every_frame_including_the_one_after_a_pause() {
        let t0 = Instant::now();
        let mut p = FloodPacer::default();
        p.frame_began(t0);
        p.frame_sent(ms(t0, 16));
        assert_eq!(
            p.paused_until(),
            None,
            "the first frame has nothing before it"
        );
        // The next update comes at once: a flood.
        p.frame_began(ms(t0, 17));
        p.frame_sent(ms(t0, 33));
        assert_eq!(p.paused_until(), Some(ms(t0, 33) + FLOOD_PAUSE));
        // Reading resumes; updates are still waiting: the flood goes on and pauses again,
        // although 300 ms passed since the last frame.
        let resumed = ms(t0, 333);
        p.resume(resumed);
        assert_eq!(p.paused_until(), None);
        p.frame_began(ms(t0, 334));
        p.frame_sent(ms(t0, 350));
        assert_eq!(p.paused_until(), Some(ms(t0, 350) + FLOOD_PAUSE));
        // The flood ends: after the pause, the next update comes late and is not held.
        p.resume(ms(t0, 650));
        p.frame_began(ms(t0, 2000));
        p.frame_sent(ms(t0, 2016));
        assert_eq!(p.paused_until(), None);
    }
}
