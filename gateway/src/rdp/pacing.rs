//! Why: a desktop that changes without pause (a scrolling terminal, a video) sends updates as
//! fast as the gateway reads them, and the gateway would decode every intermediate picture.
//! Under such a flood the session holds the server back for a moment after each frame it
//! hands on, so that what changed meanwhile arrives as one picture and is decoded once.
//!
//! Two ways to hold a server back:
//! - **Suppress Output** ([MS-RDPBCGR] 2.2.11.3), when the server offers it: the server is
//!   told to stop sending, and the gateway goes on reading what was already on its way
//!   (counted, not drawn). When the pause ends the server is allowed to send again and
//!   redraws the whole desktop as it is then; it is told to stop again as that redraw
//!   begins. The redraw is handed on like any frame, and the next pause begins then; what
//!   is still on its way of it is drawn and handed on as it comes (`REDRAW_LASTS`). Nothing
//!   waits in the server's socket, so the picture the browser gets is at most one pause
//!   old.
//! - **Stopping reading**, for servers without it and while the pointer is in use (xorgxrdp
//!   drops pointer shapes while output is suppressed): the server waits on its socket and
//!   merges what changed meanwhile into one update. What it had already queued is shown
//!   late: under a flood xrdp's socket held 1.2 MB, 1.2 s of pictures (bench/README.md).
//!
//! A keystroke echoed on a quiet desktop is no flood and is never held up, and input ends a
//! pause. Measured on a scrolling xterm (bench/README.md): with Suppress Output a
//! change on the desktop reaches the browser in about 0.2 s at the median under a flood
//! (0.4-0.6 s at p95), against 0.4 s (1.1 s at p95) when the gateway only stopped reading.
//! The pause is the price of the CPU target: with one flood alone on a machine, the native
//! `xfreerdp` (which decodes every update, at about 9 % of a core) shows a change in 40 ms.
//! So whether a flood is held back, and for how long, is the resource's choice
//! (`FloodPacing`): never held back, the gateway shows a change about as soon as `xfreerdp`
//! does, at about twice its CPU.

use std::time::Duration;

use tokio::time::Instant;

/// A frame whose first update came within this long of the frame before (or of reading
/// resuming) belongs to a flood.
pub const FLOOD_WITHIN: Duration = Duration::from_millis(50);
/// How long reading stops after each frame of a flood (at most about 3 frames a second
/// while it lasts).
pub const FLOOD_PAUSE: Duration = Duration::from_millis(300);
/// How long a flood's output stays suppressed after each of its frames. Longer than
/// `FLOOD_PAUSE`: each frame is then a fresh picture of the whole desktop rather than the
/// next of the server's queued updates, and costs more to decode and encode (measured in
/// bench/README.md: 2.9 % of a core per flooding session at 300 ms).
pub const SUPPRESSED_PAUSE: Duration = Duration::from_millis(500);
/// How long a flood is held back after each frame, whether output is suppressed or reading
/// stops, on a resource whose administrator chose `FloodPacing::Responsive`.
pub const RESPONSIVE_PAUSE: Duration = Duration::from_millis(50);

/// How hard a flood is held back: the resource's `flood_pacing` setting. Under a flood of
/// whole-desktop changes each frame costs the gateway about 10 ms to decode and encode
/// (bench/README.md, issue 8), so the pause sets both the CPU a flooding session costs and
/// how old its picture may be. Measured with one flooding desktop alone on two cores
/// (change on the desktop to the browser, p50 / p95; four runs): thrifty 1.7-1.8 % of a
/// core, 207-415 / 477-560 ms; responsive 8.8-9.1 %, 76-80 / 109-123 ms; immediate
/// 15.8-16.5 %, 47-52 / 67-72 ms; `xfreerdp` about 9 %, 41-47 / 57-60 ms. What the server
/// does send reaches the browser within 23-27 / 32-38 ms with each of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FloodPacing {
    /// `SUPPRESSED_PAUSE` (`FLOOD_PAUSE` while reading stops): about 2 frames a second,
    /// about 2 % of a core per flooding session, a change shown within about half a second.
    #[default]
    Thrifty,
    /// `RESPONSIVE_PAUSE`: a change shown sooner where the gateway's host has CPU to spare,
    /// at several times the CPU.
    Responsive,
    /// Never held back: every update is read and decoded as it comes, as a native client
    /// does, and frames are paced only by the browser's drawing. Where the gateway reads
    /// slower than the server sends (a busy host), the server queues what it has not read
    /// and the picture falls behind by that much, as it does for a native client.
    Immediate,
}

impl FloodPacing {
    /// From the setting's stored value (`thrifty`, `responsive` or `immediate`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "thrifty" => Some(FloodPacing::Thrifty),
            "responsive" => Some(FloodPacing::Responsive),
            "immediate" => Some(FloodPacing::Immediate),
            _ => None,
        }
    }

    /// How long a flood is held back after each frame; `None`: it is not.
    fn pause(self, hold: Hold) -> Option<Duration> {
        match (self, hold) {
            (FloodPacing::Immediate, _) => None,
            (FloodPacing::Responsive, _) => Some(RESPONSIVE_PAUSE),
            (FloodPacing::Thrifty, Hold::Suppressed) => Some(SUPPRESSED_PAUSE),
            (FloodPacing::Thrifty, Hold::NotReading) => Some(FLOOD_PAUSE),
        }
    }
}

/// How long after it was allowed to send again the server's redraw may take to begin (xrdp
/// took up to about 100 ms with four floods on two cores); a first update later than that
/// is not part of it.
pub const REDRAW_WITHIN: Duration = Duration::from_millis(250);
/// How long after its first update the server's redraw after a pause may still be coming
/// in. The redraw is handed on like any frame, 16 ms after its first update (or once it is
/// a desktop's worth), and the pause begins then; what is read after that, up to this long
/// after the redraw began and up to a desktop's worth in all, is the rest of the same
/// redraw: it is drawn and handed on, not drained. xrdp's redraw, alone, ends 15 ms after
/// it began (p95); with four floods on two cores its updates came up to 77 ms apart
/// (bench/README.md, issue 8). Gathering the whole redraw instead, for up to this long,
/// held a redraw short of a desktop's worth back the whole time: 5-48 % of redraws, and the
/// p95 of server update to browser drawn at 100-130 ms.
pub const REDRAW_LASTS: Duration = Duration::from_millis(100);

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
        self.short_of(width, height) == 0
    }

    /// How many pixels the frame is short of a `width` x `height` desktop's worth.
    pub fn short_of(&self, width: u16, height: u16) -> u64 {
        (u64::from(width) * u64::from(height)).saturating_sub(self.pixels)
    }
}

/// How a pause holds a flood back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// The server was told to stop sending; reading goes on.
    Suppressed,
    /// Reading stopped.
    NotReading,
}

/// What the session must tell the server (a Suppress Output PDU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tell {
    /// Stop sending display updates.
    Suppress,
    /// Send again, starting with the whole desktop as it is now.
    Allow,
}

/// The pointer counts as in use for this long after it moved.
pub const POINTER_IN_USE: Duration = Duration::from_secs(1);

/// At most this many desktops' worth of updates are read during one suppressed pause (a
/// server that went on sending after it was told to stop costs no more than this).
pub const MAX_DRAINED_DESKTOPS: u64 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Frames are handed on as they come.
    Reading,
    /// A flood is held back until then.
    Paused(Instant, Hold),
    /// After a suppressed pause the server was allowed to send again, and redraws the
    /// desktop. A redraw that changes nothing means the desktop was still: it is no flood
    /// (otherwise the redraw after every pause would start the next pause, forever).
    Redrawing {
        /// The server is told to stop again as soon as the redraw begins: the redraw is one
        /// capture of the desktop, and the server would otherwise go on sending until the
        /// redraw is handed on. Measured with xrdp: two to three desktops' worth more in
        /// each pause, all decoded (bench/README.md).
        suppress_early: bool,
        /// It was told.
        suppressed: bool,
    },
}

/// The rest of a redraw handed on before it was a desktop's worth (`REDRAW_LASTS`).
#[derive(Clone, Copy, Debug)]
struct RedrawRest {
    /// Until when it may come.
    until: Instant,
    /// How many pixels it may still draw.
    pixels: u64,
}

/// When the session reads from the server, hands frames on, and tells the server to stop or
/// go on. Sans-I/O: the session reports what happened and sends what it is told to.
pub struct FloodPacer {
    /// The server offers Suppress Output.
    can_suppress: bool,
    /// How long the pauses are.
    pacing: FloodPacing,
    state: State,
    /// When the last frame was handed on, or the server was allowed to send again, or
    /// reading resumed.
    since: Option<Instant>,
    /// When the first update of the frame being gathered came.
    frame_began: Option<Instant>,
    /// Until when the pointer counts as in use.
    pointer_until: Option<Instant>,
    /// The rest of the last redraw, still drawn and handed on at the start of its pause.
    redraw_rest: Option<RedrawRest>,
}

impl FloodPacer {
    /// `can_suppress`: the server offered Suppress Output (its General Capability Set);
    /// `pacing`: the resource's setting.
    pub fn new(can_suppress: bool, pacing: FloodPacing) -> Self {
        FloodPacer {
            can_suppress,
            pacing,
            state: State::Reading,
            since: None,
            frame_began: None,
            pointer_until: None,
            redraw_rest: None,
        }
    }

    fn pointer_in_use(&self, now: Instant) -> bool {
        self.pointer_until.is_some_and(|t| now < t)
    }

    /// Graphics updates were read (before `frame_began` is told of them).
    pub fn update_read(&mut self, now: Instant) -> Option<Tell> {
        match self.state {
            State::Redrawing {
                suppress_early: true,
                suppressed: false,
            } if !self.pointer_in_use(now) => {
                self.state = State::Redrawing {
                    suppress_early: true,
                    suppressed: true,
                };
                Some(Tell::Suppress)
            }
            _ => None,
        }
    }

    /// An update came that starts a new frame.
    pub fn frame_began(&mut self, now: Instant) {
        let late = self
            .since
            .is_some_and(|since| now.saturating_duration_since(since) >= REDRAW_WITHIN);
        if late
            && matches!(
                self.state,
                State::Redrawing {
                    suppressed: false,
                    ..
                }
            )
        {
            // Whatever the server redrew is over (or it redrew nothing).
            self.state = State::Reading;
        }
        self.frame_began = Some(now);
    }

    /// Whether frames must tell whether they changed the picture (`frame_sent`): the server
    /// is redrawing after a pause.
    pub fn watching(&self) -> bool {
        matches!(self.state, State::Redrawing { .. })
    }

    /// A frame was handed on; `changed`: whether it changed the picture, and `short_by`: how
    /// many pixels it is short of a desktop's worth (both asked only while `watching`).
    /// Under a flood a pause begins; the answer is what to tell the server.
    pub fn frame_sent(&mut self, now: Instant, changed: bool, short_by: u64) -> Option<Tell> {
        let began = self.frame_began.take();
        let since = self.since.replace(now);
        let quick = match (since, began) {
            (Some(since), Some(began)) => began.saturating_duration_since(since) < FLOOD_WITHIN,
            _ => false,
        };
        match self.state {
            State::Paused(..) => None,
            State::Redrawing {
                suppressed: true, ..
            } => {
                if changed {
                    // The desktop changed while it was held back: the flood goes on, and
                    // the server has been told to stop already.
                    match self.pacing.pause(Hold::Suppressed) {
                        Some(pause) => {
                            self.state = State::Paused(now + pause, Hold::Suppressed);
                            // What is still on its way of a redraw handed on short of a
                            // desktop's worth is its rest: drawn, not drained.
                            self.redraw_rest = (short_by > 0).then(|| RedrawRest {
                                until: began.unwrap_or(now) + REDRAW_LASTS,
                                pixels: short_by,
                            });
                            None
                        }
                        None => {
                            self.state = State::Reading;
                            Some(Tell::Allow)
                        }
                    }
                } else {
                    // It was still: let the server send again, and watch that redraw too.
                    self.state = State::Redrawing {
                        suppress_early: false,
                        suppressed: false,
                    };
                    Some(Tell::Allow)
                }
            }
            State::Redrawing {
                suppressed: false, ..
            } if !changed => None,
            State::Reading | State::Redrawing { .. } => {
                if quick {
                    self.pause(now)
                } else {
                    self.state = State::Reading;
                    None
                }
            }
        }
    }

    /// A flood frame was handed on: the pause begins.
    fn pause(&mut self, now: Instant) -> Option<Tell> {
        self.redraw_rest = None;
        let hold = if self.can_suppress && !self.pointer_in_use(now) {
            Hold::Suppressed
        } else {
            Hold::NotReading
        };
        let Some(pause) = self.pacing.pause(hold) else {
            // Not held back: the next frame is gathered as the updates come.
            self.state = State::Reading;
            return None;
        };
        self.state = State::Paused(now + pause, hold);
        (hold == Hold::Suppressed).then_some(Tell::Suppress)
    }

    /// When the pause ends, if one is under way.
    pub fn paused_until(&self) -> Option<Instant> {
        match self.state {
            State::Paused(until, _) => Some(until),
            _ => None,
        }
    }

    /// Whether the session reads from the server now; `drained`: what was read during this
    /// pause, bounded by `MAX_DRAINED_DESKTOPS` of a `width` x `height` desktop.
    pub fn reads(&self, drained: &FrameFill, width: u16, height: u16) -> bool {
        match self.state {
            State::Paused(_, Hold::NotReading) => false,
            State::Paused(_, Hold::Suppressed) => {
                drained.pixels < MAX_DRAINED_DESKTOPS * u64::from(width) * u64::from(height)
            }
            _ => true,
        }
    }

    /// Whether frames are handed on now. Not while output is suppressed: what is read then
    /// was already on its way, and goes with the first frame after the pause. Except the
    /// rest of a redraw handed on short of a desktop's worth (`REDRAW_LASTS`).
    pub fn hands_on(&self, now: Instant) -> bool {
        match self.state {
            State::Paused(_, Hold::Suppressed) => self
                .redraw_rest
                .is_some_and(|r| now < r.until && r.pixels > 0),
            _ => true,
        }
    }

    /// `pixels` were drawn while frames were handed on (`hands_on`): they count against the
    /// rest of the redraw, if that is what is being drawn.
    pub fn drawn(&mut self, pixels: u64) {
        if let Some(r) = self.redraw_rest.as_mut() {
            r.pixels = r.pixels.saturating_sub(pixels);
        }
    }

    /// The pause is over, or input came (a user who types wants to see it, and a server that
    /// waits to send reads no input). The next frame counts from now: otherwise the pause
    /// itself would make a flood look like a quiet desktop.
    pub fn resume(&mut self, now: Instant) -> Option<Tell> {
        self.redraw_rest = None;
        match self.state {
            State::Paused(_, Hold::NotReading) => {
                self.state = State::Reading;
                self.since = Some(now);
                None
            }
            State::Paused(_, Hold::Suppressed) => {
                self.state = State::Redrawing {
                    suppress_early: true,
                    suppressed: false,
                };
                self.since = Some(now);
                Some(Tell::Allow)
            }
            State::Redrawing {
                suppressed: true, ..
            } => {
                self.state = State::Redrawing {
                    suppress_early: false,
                    suppressed: false,
                };
                Some(Tell::Allow)
            }
            _ => None,
        }
    }

    /// The pointer moved. While it is in use, pauses stop reading instead (xorgxrdp drops
    /// pointer shapes while output is suppressed), and output suppressed now is allowed.
    pub fn pointer_moved(&mut self, now: Instant) -> Option<Tell> {
        self.pointer_until = Some(now + POINTER_IN_USE);
        match self.state {
            State::Paused(_, Hold::Suppressed)
            | State::Redrawing {
                suppressed: true, ..
            } => self.resume(now),
            _ => None,
        }
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

    /// A desktop's worth of 1280x768, and what was drained so far.
    fn drained(desktops: u64) -> FrameFill {
        let mut d = FrameFill::default();
        d.drawn(desktops * 1280 * 768);
        d
    }

    /// Two frames back to back (the second begins 1 ms after the first is handed on), from
    /// `t`: what the second's handing on tells.
    fn two_quick_frames(p: &mut FloodPacer, t: Instant) -> Option<Tell> {
        p.frame_began(t);
        assert_eq!(p.frame_sent(ms(t, 16), true, 0), None, "the first frame");
        p.frame_began(ms(t, 17));
        p.frame_sent(ms(t, 33), true, 0)
    }

    #[test]
    fn a_quiet_desktop_is_never_paused() {
        for can_suppress in [false, true] {
            let t0 = Instant::now();
            let mut p = FloodPacer::new(can_suppress, FloodPacing::Thrifty);
            // Keystroke echoes a second apart: a frame each, no pause.
            for k in 0..5u64 {
                p.frame_began(ms(t0, k * 1000));
                assert_eq!(p.update_read(ms(t0, k * 1000)), None);
                assert_eq!(p.frame_sent(ms(t0, k * 1000 + 16), true, 0), None);
                assert_eq!(p.paused_until(), None, "echo {k}");
                assert!(p.hands_on(ms(t0, k * 1000 + 16)) && p.reads(&drained(0), 1280, 768));
            }
        }
    }

    #[test]
    fn without_suppress_output_a_flood_stops_reading_after_every_frame() {
        let t0 = Instant::now();
        let mut p = FloodPacer::new(false, FloodPacing::Thrifty);
        assert_eq!(two_quick_frames(&mut p, t0), None, "nothing to tell");
        assert_eq!(p.paused_until(), Some(ms(t0, 33) + FLOOD_PAUSE));
        assert!(!p.reads(&drained(0), 1280, 768), "reading stopped");
        assert!(p.hands_on(ms(t0, 40)));
        // Reading resumes; updates are still waiting: the flood goes on and pauses again,
        // although 300 ms passed since the last frame.
        assert_eq!(p.resume(ms(t0, 333)), None);
        assert!(p.reads(&drained(0), 1280, 768));
        p.frame_began(ms(t0, 334));
        assert_eq!(p.frame_sent(ms(t0, 350), true, 0), None);
        assert_eq!(p.paused_until(), Some(ms(t0, 350) + FLOOD_PAUSE));
        // The flood ends: after the pause, the next update comes late and is not held.
        p.resume(ms(t0, 650));
        p.frame_began(ms(t0, 2000));
        p.frame_sent(ms(t0, 2016), true, 0);
        assert_eq!(p.paused_until(), None);
    }

    #[test]
    fn a_responsive_resource_holds_a_flood_back_for_50_ms_either_way() {
        assert_eq!(
            FloodPacing::parse("responsive"),
            Some(FloodPacing::Responsive)
        );
        assert_eq!(FloodPacing::parse("thrifty"), Some(FloodPacing::Thrifty));
        assert_eq!(FloodPacing::parse("fast"), None);
        for (can_suppress, tell) in [(true, Some(Tell::Suppress)), (false, None)] {
            let t0 = Instant::now();
            let mut p = FloodPacer::new(can_suppress, FloodPacing::Responsive);
            assert_eq!(two_quick_frames(&mut p, t0), tell);
            assert_eq!(p.paused_until(), Some(ms(t0, 33) + RESPONSIVE_PAUSE));
            // After the pause the flood goes on (its next frame comes at once), and is held
            // back again for as long.
            assert_eq!(p.resume(ms(t0, 83)), tell.map(|_| Tell::Allow));
            p.frame_began(ms(t0, 84));
            p.update_read(ms(t0, 84));
            p.frame_sent(ms(t0, 100), true, 0);
            assert_eq!(p.paused_until(), Some(ms(t0, 100) + RESPONSIVE_PAUSE));
        }
        // A quiet desktop is not paused whatever the setting.
        let t0 = Instant::now();
        let mut p = FloodPacer::new(true, FloodPacing::Responsive);
        p.frame_began(t0);
        p.frame_sent(ms(t0, 16), true, 0);
        p.frame_began(ms(t0, 1000));
        assert_eq!(p.frame_sent(ms(t0, 1016), true, 0), None);
        assert_eq!(p.paused_until(), None);
    }

    #[test]
    fn an_immediate_resource_never_holds_a_flood_back() {
        assert_eq!(
            FloodPacing::parse("immediate"),
            Some(FloodPacing::Immediate)
        );
        for can_suppress in [true, false] {
            let t0 = Instant::now();
            let mut p = FloodPacer::new(can_suppress, FloodPacing::Immediate);
            // Frame after frame back to back, for a second: never paused, never told to stop,
            // every update read and handed on.
            for k in 0..60u64 {
                p.frame_began(ms(t0, k * 17));
                assert_eq!(p.update_read(ms(t0, k * 17)), None);
                assert_eq!(
                    p.frame_sent(ms(t0, k * 17 + 16), true, 0),
                    None,
                    "frame {k}"
                );
                assert_eq!(p.paused_until(), None, "frame {k}");
                assert!(!p.watching());
                assert!(p.hands_on(ms(t0, k * 17 + 16)) && p.reads(&drained(0), 1280, 768));
            }
            // Input changes nothing: there is no pause to end.
            assert_eq!(p.resume(ms(t0, 1100)), None);
            assert_eq!(p.pointer_moved(ms(t0, 1100)), None);
        }
    }

    #[test]
    fn a_flood_is_suppressed_drained_and_its_redraw_told_to_stop_as_it_begins() {
        let t0 = Instant::now();
        let mut p = FloodPacer::new(true, FloodPacing::Thrifty);
        assert_eq!(two_quick_frames(&mut p, t0), Some(Tell::Suppress));
        let until = ms(t0, 33) + SUPPRESSED_PAUSE;
        assert_eq!(p.paused_until(), Some(until));
        // What was on its way is read, not handed on, and only up to a bound.
        assert!(!p.hands_on(ms(t0, 40)));
        assert!(p.reads(&drained(MAX_DRAINED_DESKTOPS - 1), 1280, 768));
        assert!(!p.reads(&drained(MAX_DRAINED_DESKTOPS), 1280, 768));
        assert_eq!(p.update_read(ms(t0, 40)), None, "nothing more to tell");
        // The pause ends: the server may send again, and its redraw is watched.
        assert_eq!(p.resume(until), Some(Tell::Allow));
        assert!(p.hands_on(until) && p.watching() && p.paused_until().is_none());
        // The redraw begins: the server is told to stop again at once, once.
        assert_eq!(p.update_read(until + ms_d(40)), Some(Tell::Suppress));
        assert_eq!(p.update_read(until + ms_d(41)), None);
        p.frame_began(until + ms_d(40));
        assert!(
            p.hands_on(until + ms_d(40)),
            "the redraw itself is handed on"
        );
        // It changed the picture and is a whole desktop's worth: the flood goes on, paused
        // (already told), and nothing more is handed on.
        assert_eq!(p.frame_sent(until + ms_d(56), true, 0), None);
        assert_eq!(p.paused_until(), Some(until + ms_d(56) + SUPPRESSED_PAUSE));
        assert!(!p.hands_on(until + ms_d(57)) && !p.watching());
    }

    #[test]
    fn the_rest_of_a_redraw_handed_on_short_is_drawn_as_its_pause_begins() {
        let desktop = 1280 * 768;
        for pacing in [FloodPacing::Thrifty, FloodPacing::Responsive] {
            let t0 = Instant::now();
            let mut p = FloodPacer::new(true, pacing);
            let until = allowed_after_a_flood(&mut p, t0);
            let began = until + ms_d(40);
            assert_eq!(p.update_read(began), Some(Tell::Suppress));
            p.frame_began(began);
            // Handed on 16 ms after it began, half a desktop's worth: the pause begins.
            assert_eq!(p.frame_sent(began + ms_d(16), true, desktop / 2), None);
            let pause = p.paused_until();
            assert!(pause.is_some_and(|at| at > began + ms_d(16)), "{pacing:?}");
            assert!(!p.watching());
            // What comes next is the rest: drawn and handed on, read without the drained
            // bound, and handing it on does not move the pause.
            assert!(p.hands_on(began + ms_d(30)), "{pacing:?}");
            assert!(p.reads(&drained(0), 1280, 768));
            p.drawn(desktop / 4);
            p.frame_began(began + ms_d(30));
            assert_eq!(p.frame_sent(began + ms_d(46), false, 0), None);
            assert_eq!(p.paused_until(), pause);
            assert!(p.hands_on(began + REDRAW_LASTS - ms_d(1)), "{pacing:?}");
            // Not once it is over in time...
            assert!(!p.hands_on(began + REDRAW_LASTS), "{pacing:?}");
            // ...or once it has drawn the half that was missing.
            p.drawn(desktop / 4);
            assert!(!p.hands_on(began + ms_d(50)), "{pacing:?}");
            // The next redraw, a whole desktop's worth, has no rest.
            let again = pause.unwrap_or(began);
            assert_eq!(p.resume(again), Some(Tell::Allow));
            assert_eq!(p.update_read(again + ms_d(10)), Some(Tell::Suppress));
            p.frame_began(again + ms_d(10));
            assert_eq!(p.frame_sent(again + ms_d(26), true, 0), None);
            assert!(!p.hands_on(again + ms_d(27)), "{pacing:?}");
        }
    }

    #[test]
    fn a_rest_ends_with_its_pause() {
        let t0 = Instant::now();
        let mut p = FloodPacer::new(true, FloodPacing::Thrifty);
        let until = allowed_after_a_flood(&mut p, t0);
        assert_eq!(p.update_read(until + ms_d(5)), Some(Tell::Suppress));
        p.frame_began(until + ms_d(5));
        assert_eq!(p.frame_sent(until + ms_d(21), true, 1000), None);
        assert!(p.hands_on(until + ms_d(22)));
        // A key ends the pause at once: the server redraws afresh, and what is handed on
        // then is that redraw, not the old one's rest.
        assert_eq!(p.resume(until + ms_d(30)), Some(Tell::Allow));
        assert!(p.watching());
        assert_eq!(p.update_read(until + ms_d(40)), Some(Tell::Suppress));
        p.frame_began(until + ms_d(40));
        assert_eq!(p.frame_sent(until + ms_d(56), true, 0), None);
        assert!(!p.hands_on(until + ms_d(60)));
        // A pause that follows no redraw has no rest either.
        let mut q = FloodPacer::new(true, FloodPacing::Thrifty);
        q.drawn(1000);
        assert_eq!(two_quick_frames(&mut q, t0), Some(Tell::Suppress));
        assert!(!q.hands_on(ms(t0, 34)));
    }

    /// A flood from `t0`, suppressed; its pause ends and the server is allowed again: when.
    fn allowed_after_a_flood(p: &mut FloodPacer, t0: Instant) -> Instant {
        assert_eq!(two_quick_frames(p, t0), Some(Tell::Suppress));
        let until = ms(t0, 33) + SUPPRESSED_PAUSE;
        assert_eq!(p.resume(until), Some(Tell::Allow));
        until
    }

    fn ms_d(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_redraw_that_changes_nothing_ends_the_flood_without_a_loop() {
        let t0 = Instant::now();
        let mut p = FloodPacer::new(true, FloodPacing::Thrifty);
        let until = allowed_after_a_flood(&mut p, t0);
        assert_eq!(p.update_read(until + ms_d(30)), Some(Tell::Suppress));
        p.frame_began(until + ms_d(30));
        // The desktop was still: the server is allowed again and not paused.
        assert_eq!(p.frame_sent(until + ms_d(60), false, 0), Some(Tell::Allow));
        assert_eq!(p.paused_until(), None);
        assert!(p.watching(), "that second redraw is watched too");
        // Its redraw begins at once and changes nothing: no stop, no pause.
        assert_eq!(p.update_read(until + ms_d(70)), None);
        p.frame_began(until + ms_d(70));
        assert_eq!(p.frame_sent(until + ms_d(100), false, 0), None);
        assert_eq!(p.paused_until(), None);
        // A keystroke's echo a second later is an ordinary frame.
        let later = until + ms_d(1100);
        assert_eq!(p.update_read(later), None);
        p.frame_began(later);
        assert!(!p.watching());
        assert_eq!(p.frame_sent(later + ms_d(16), true, 0), None);
        assert_eq!(p.paused_until(), None);
        // And a new flood is paced again.
        assert_eq!(
            two_quick_frames(&mut p, later + ms_d(2000)),
            Some(Tell::Suppress)
        );
    }

    #[test]
    fn a_redraw_that_never_comes_leaves_the_next_update_unheld() {
        let t0 = Instant::now();
        let mut p = FloodPacer::new(true, FloodPacing::Thrifty);
        let until = allowed_after_a_flood(&mut p, t0);
        // Nothing for longer than a redraw takes to begin; then an echo.
        let echo = until + REDRAW_WITHIN + ms_d(1);
        p.frame_began(echo);
        assert!(!p.watching());
        assert_eq!(p.update_read(echo), None, "no early stop");
        assert_eq!(p.frame_sent(echo + ms_d(16), true, 0), None);
        assert_eq!(p.paused_until(), None);
    }

    #[test]
    fn input_ends_a_suppressed_pause_and_a_pointer_in_use_stops_reading_instead() {
        let t0 = Instant::now();
        let mut p = FloodPacer::new(true, FloodPacing::Thrifty);
        two_quick_frames(&mut p, t0);
        // A key: the server is allowed at once.
        assert_eq!(p.resume(ms(t0, 100)), Some(Tell::Allow));
        assert_eq!(p.update_read(ms(t0, 120)), Some(Tell::Suppress));
        // Another key while the redraw is told to stop: allowed again.
        assert_eq!(p.resume(ms(t0, 125)), Some(Tell::Allow));
        assert_eq!(p.update_read(ms(t0, 126)), None, "no second early stop");
        p.frame_began(ms(t0, 120));
        assert_eq!(p.frame_sent(ms(t0, 140), true, 0), Some(Tell::Suppress));
        // The pointer moves: suppressed output is allowed (xorgxrdp would drop its shapes),
        // and while it is in use a flood stops reading instead.
        assert_eq!(p.pointer_moved(ms(t0, 150)), Some(Tell::Allow));
        assert_eq!(
            p.update_read(ms(t0, 160)),
            None,
            "no early stop while it is in use"
        );
        p.frame_began(ms(t0, 160));
        assert_eq!(p.frame_sent(ms(t0, 176), true, 0), None);
        assert_eq!(p.paused_until(), Some(ms(t0, 176) + FLOOD_PAUSE));
        assert!(!p.reads(&drained(0), 1280, 768) && p.hands_on(ms(t0, 180)));
        assert_eq!(
            p.pointer_moved(ms(t0, 200)),
            None,
            "moving does not end that pause"
        );
        assert_eq!(p.resume(ms(t0, 476)), None);
        // Once the pointer rests, floods are suppressed again.
        let rest = ms(t0, 200) + POINTER_IN_USE;
        assert_eq!(two_quick_frames(&mut p, rest), Some(Tell::Suppress));
    }
}
