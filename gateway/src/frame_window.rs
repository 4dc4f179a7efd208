//! Why: a browser reads a desktop's frames off its socket as fast as they come, but decodes
//! and draws them at its own speed (a slow laptop, a throttled background tab, a CPU busy
//! elsewhere). Without a bound the frames wait in the browser, and what it shows falls
//! further behind the desktop the longer the flood lasts; TCP never pushes back, because the
//! socket is drained. So the browser says how many frames it has drawn, and each viewer of a
//! desktop keeps at most `FRAMES_IN_FLIGHT` undrawn. Frames that come meanwhile are not sent:
//! their regions are remembered, and once the browser has drawn enough, it is sent the
//! current picture of those regions, once, instead of every picture they went through. A slow
//! browser thus gets fewer frames, each up to date, and the others viewing the same session
//! are not held up.
//!
//! Sans-I/O: the viewer's socket loop (`src/api/live.rs`) counts what it sends and what the
//! browser says; `Subscription::catch_up` (`broker.rs`) takes the current picture.

use ironrdp_pdu::geometry::InclusiveRectangle;

use crate::event::FrameRect;
use crate::rdp::damage::Damage;

/// Frames a browser may have been sent and not yet drawn. One being drawn, and up to three
/// on their way: at 100 ms round trip and a frame every 33 ms, three are on the wire before
/// the first is acknowledged, so a browser that keeps up is never held back.
pub const FRAMES_IN_FLIGHT: u64 = 4;

/// One viewer's frames in flight, and what it was not sent.
#[derive(Default)]
pub struct FrameWindow {
    /// The browser acknowledges frames (it said so by acknowledging one). A browser that
    /// never does is sent every frame, as before this existed: the broadcast's bounded
    /// backlog still bounds the gateway's memory for it.
    acknowledges: bool,
    /// Binary frames sent on this socket, the first picture included.
    sent: u64,
    /// Frames the browser has drawn, as it last said.
    drawn: u64,
    /// Regions changed by frames that were not sent.
    skipped: Damage,
    /// The desktop changed size while frames were not sent: the whole of it is due.
    whole: bool,
}

impl FrameWindow {
    /// A binary frame went to the browser.
    pub fn sent(&mut self) {
        self.sent += 1;
    }

    /// The browser has drawn `frames` frames since the socket opened. A count beyond what was
    /// sent is taken as all of them; an older count than the last is ignored.
    pub fn drawn(&mut self, frames: u64) {
        self.acknowledges = true;
        self.drawn = self.drawn.max(frames.min(self.sent));
    }

    /// Frames sent and not yet drawn.
    pub fn in_flight(&self) -> u64 {
        self.sent - self.drawn
    }

    /// Whether one more frame may go now.
    pub fn may_send(&self) -> bool {
        !self.acknowledges || self.in_flight() < FRAMES_IN_FLIGHT
    }

    /// Whether frames were held back, so the next thing to send is the catch-up.
    pub fn behind(&self) -> bool {
        self.whole || !self.skipped.is_empty()
    }

    /// A frame was not sent: the regions it changed are due.
    pub fn skip(&mut self, rects: &[FrameRect]) {
        for r in rects {
            if r.width == 0 || r.height == 0 {
                continue;
            }
            self.skipped.add(InclusiveRectangle {
                left: r.x,
                top: r.y,
                right: r.x.saturating_add(r.width - 1),
                bottom: r.y.saturating_add(r.height - 1),
            });
        }
    }

    /// The desktop changed size. The browser clears its picture when told, so once frames
    /// are held back the whole desktop is due.
    pub fn resized(&mut self) {
        if self.behind() {
            self.whole = true;
        }
    }

    /// The browser was sent the whole picture (a resynchronisation): nothing is due.
    pub fn resynchronised(&mut self) {
        self.skipped.take();
        self.whole = false;
    }

    /// The regions due, within a `width` x `height` desktop, as (x, y, width, height);
    /// nothing is due afterwards.
    pub fn take_due(&mut self, width: u16, height: u16) -> Vec<(u16, u16, u16, u16)> {
        let regions = self.skipped.take();
        if std::mem::take(&mut self.whole) {
            return if width > 0 && height > 0 {
                vec![(0, 0, width, height)]
            } else {
                Vec::new()
            };
        }
        regions
            .into_iter()
            .filter(|r| r.left < width && r.top < height)
            .map(|r| {
                let right = r.right.min(width - 1);
                let bottom = r.bottom.min(height - 1);
                (r.left, r.top, right - r.left + 1, bottom - r.top + 1)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u16, y: u16, width: u16, height: u16) -> FrameRect {
        FrameRect {
            x,
            y,
            width,
            height,
            encoding: crate::desktop::PNG,
            data: Vec::new().into(),
        }
    }

    #[test]
    fn a_browser_that_never_acknowledges_is_sent_every_frame() {
        let mut w = FrameWindow::default();
        for _ in 0..100 {
            assert!(w.may_send());
            w.sent();
        }
        assert!(!w.behind());
    }

    #[test]
    fn at_most_the_window_is_undrawn_and_drawing_opens_it_again() {
        let mut w = FrameWindow::default();
        // The first picture went before the browser said anything; it says it drew it.
        w.sent();
        w.drawn(1);
        for _ in 0..FRAMES_IN_FLIGHT {
            assert!(w.may_send());
            w.sent();
        }
        assert!(!w.may_send());
        assert_eq!(w.in_flight(), FRAMES_IN_FLIGHT);
        // A stale count changes nothing; a count beyond what was sent means all of it.
        w.drawn(0);
        assert!(!w.may_send());
        w.drawn(2);
        assert!(w.may_send());
        w.drawn(1_000);
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn held_back_frames_leave_their_regions_due_clipped_to_the_desktop() {
        let mut w = FrameWindow::default();
        w.drawn(0);
        assert!(!w.behind());
        w.skip(&[rect(0, 0, 10, 10), rect(5, 5, 10, 10)]);
        w.skip(&[rect(500, 300, 50, 50), rect(1, 1, 0, 0)]);
        assert!(w.behind());
        let mut due = w.take_due(520, 320);
        due.sort();
        // Overlapping regions are merged; what lies beyond the desktop is cut.
        assert_eq!(due, vec![(0, 0, 15, 15), (500, 300, 20, 20)]);
        assert!(!w.behind());
        assert!(w.take_due(520, 320).is_empty());
    }

    #[test]
    fn a_resize_while_behind_makes_the_whole_desktop_due() {
        let mut w = FrameWindow::default();
        w.drawn(0);
        // Not behind: a resize alone is followed by the server's own redraw.
        w.resized();
        assert!(!w.behind());
        w.skip(&[rect(0, 0, 10, 10)]);
        w.resized();
        assert_eq!(w.take_due(800, 600), vec![(0, 0, 800, 600)]);
        // A resynchronisation sent everything.
        w.skip(&[rect(0, 0, 10, 10)]);
        w.resynchronised();
        assert!(!w.behind());
    }
}
