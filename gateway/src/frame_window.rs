//! Why: a browser reads a desktop's frames off its socket as fast as they come, but decodes
//! and draws them at its own speed (a slow laptop, a throttled background tab, a CPU busy
//! elsewhere). Without a bound the frames wait in the browser, and what it shows falls
//! further behind the desktop the longer the flood lasts; TCP never pushes back, because the
//! socket is drained. So the browser says how many frames it has drawn, and each viewer of a
//! desktop keeps only a few undrawn: at most `FRAMES_IN_FLIGHT`, and fewer when the browser
//! is measured to draw slowly, so that a frame sent now waits at most about
//! `WAIT_IN_BROWSER` behind the ones before it. Frames that come meanwhile are not sent:
//! their regions are remembered, and once the browser has drawn enough, it is sent the
//! current picture of those regions, once, instead of every picture they went through. A slow
//! browser thus gets fewer frames, each up to date, and the others viewing the same session
//! are not held up.
//!
//! Sans-I/O: the viewer's socket loop (`src/api/live.rs`) tells what it sends and what the
//! browser says, with the time; `Subscription::catch_up` (`broker.rs`) takes the current
//! picture. What the window measured is listed with the session's participants
//! (`DrawingStats`), so an administrator sees which browser is behind, and how old the
//! pictures it draws are: from the gateway reading the target's update to the browser saying
//! it drew the picture that shows it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ironrdp_pdu::geometry::InclusiveRectangle;

use crate::event::FrameRect;
use crate::rdp::damage::Damage;

/// Frames a browser may have been sent and not yet drawn, at most. One being drawn, and up
/// to three on their way: at 100 ms round trip and a frame every 33 ms, three are on the wire
/// before the first is acknowledged, so a browser that keeps up is never held back.
pub const FRAMES_IN_FLIGHT: u64 = 4;

/// How long a frame sent now may be expected to wait in the browser behind the frames sent
/// before it. A browser that takes `d` to draw a frame may have `WAIT_IN_BROWSER / d` frames
/// undrawn before the next is held back (at least one, at most `FRAMES_IN_FLIGHT`): one that
/// takes a second a frame gets one frame at a time, and shows a picture at most about a
/// second old instead of four.
pub const WAIT_IN_BROWSER: Duration = Duration::from_millis(100);

/// Send times kept for a browser that never says what it drew (its lag is not measured).
const SEND_TIMES_KEPT: usize = 64;
/// Lags kept: the shortest of them is the round trip with nothing waiting.
const LAGS_KEPT: usize = 32;
/// Pictures' ages kept (the last frames drawn), for their median and 95th percentile.
const AGES_KEPT: usize = 256;

/// What a desktop viewer's window measured, as listed with the session's participants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DrawingStats {
    /// Binary frames sent to this browser (its first picture included).
    pub frames_sent: u64,
    /// Frames the browser said it has drawn (0 for a browser that does not say).
    pub frames_drawn: u64,
    /// Frames not sent because the browser was behind; what they changed went in a later
    /// picture.
    pub frames_held_back: u64,
    /// From sending the last frame the browser drew to hearing it was drawn, in ms: the
    /// round trip, the wait behind earlier frames, decoding and drawing.
    pub lag_ms: Option<u64>,
    /// The browser's time to draw one frame, as measured when frames waited for it, in ms.
    pub draw_ms: Option<u64>,
    /// Frames it may have undrawn now; 0 when the browser does not say what it drew (it is
    /// then sent every frame).
    pub window: u64,
    /// From the gateway reading a target's update to the browser saying it drew a picture
    /// showing it, in ms, median and 95th percentile over the last `AGES_KEPT` frames
    /// drawn: the server-update-to-browser-paint latency, measured for this browser (an
    /// upper bound: the browser says so after it drew).
    pub update_to_drawn_p50_ms: Option<u64>,
    pub update_to_drawn_p95_ms: Option<u64>,
}

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
    /// When the undrawn frames were sent, and when the first update each shows was read,
    /// oldest first; the first is frame `first_timed` (frames count from 1).
    sent_at: VecDeque<(Instant, Option<Instant>)>,
    first_timed: u64,
    /// When the browser last said it drew something.
    last_drawn_at: Option<Instant>,
    /// Recent lags (send to acknowledgement), newest last.
    lags: VecDeque<Duration>,
    /// Recent pictures' ages (the update read to acknowledgement), newest last.
    ages: VecDeque<Duration>,
    /// The browser's time per frame, when measured.
    draw_time: Option<Duration>,
    held_back: u64,
    /// Regions changed by frames that were not sent.
    skipped: Damage,
    /// When the first update among the frames not sent was read.
    skipped_since: Option<Instant>,
    /// The desktop changed size while frames were not sent: the whole of it is due.
    whole: bool,
}

impl FrameWindow {
    /// A binary frame went to the browser at `now`; `since`: when the first update it shows
    /// was read (`None`: not known, as for a snapshot).
    pub fn sent(&mut self, now: Instant, since: Option<Instant>) {
        self.sent += 1;
        if self.sent_at.is_empty() {
            self.first_timed = self.sent;
        }
        self.sent_at.push_back((now, since));
        if self.sent_at.len() > SEND_TIMES_KEPT {
            self.sent_at.pop_front();
            self.first_timed += 1;
        }
    }

    /// The browser has drawn `frames` frames since the socket opened, as it said at `now`. A
    /// count beyond what was sent is taken as all of them; an older count than the last is
    /// ignored.
    pub fn drawn(&mut self, frames: u64, now: Instant) {
        self.acknowledges = true;
        let upto = frames.min(self.sent);
        if upto <= self.drawn {
            return;
        }
        let count = upto - self.drawn;
        // When the frames drawn now were sent: the first and the last of them.
        let mut first_sent = None;
        let mut last_sent = None;
        while self.drawn < upto {
            self.drawn += 1;
            if self.drawn >= self.first_timed {
                if let Some((t, since)) = self.sent_at.pop_front() {
                    first_sent.get_or_insert(t);
                    last_sent = Some(t);
                    self.first_timed = self.drawn + 1;
                    if let Some(since) = since {
                        self.ages.push_back(now.saturating_duration_since(since));
                        if self.ages.len() > AGES_KEPT {
                            self.ages.pop_front();
                        }
                    }
                }
            }
        }
        let previous = self.last_drawn_at.replace(now);
        let (Some(first_sent), Some(last_sent)) = (first_sent, last_sent) else {
            return;
        };
        // A frame sent a whole round trip (the shortest lag seen) before the previous draw
        // was heard of waited in the browser behind it: the time between the two is what
        // the browser took to draw it. A frame that did not wait says only that drawing
        // takes no longer than its lag.
        let floor = self.lags.iter().min().copied();
        if let (Some(previous), Some(floor)) = (previous, floor) {
            if first_sent.checked_add(floor).is_some_and(|t| t <= previous) {
                let per_frame = now.saturating_duration_since(previous)
                    / u32::try_from(count).unwrap_or(u32::MAX);
                self.draw_time = Some(match self.draw_time {
                    // Recent frames weigh more: a tab brought to the front draws faster
                    // within a few frames.
                    Some(d) => d.saturating_mul(3).saturating_add(per_frame) / 4,
                    None => per_frame,
                });
            }
        }
        let lag = now.saturating_duration_since(last_sent);
        self.draw_time = self.draw_time.map(|d| d.min(lag));
        self.lags.push_back(lag);
        if self.lags.len() > LAGS_KEPT {
            self.lags.pop_front();
        }
    }

    /// Frames sent and not yet drawn.
    pub fn in_flight(&self) -> u64 {
        self.sent - self.drawn
    }

    /// Frames the browser may have undrawn now: `FRAMES_IN_FLIGHT`, fewer when it is
    /// measured to draw slowly, never none.
    pub fn allowed(&self) -> u64 {
        match self.draw_time {
            Some(d) if !d.is_zero() => {
                let fits = WAIT_IN_BROWSER.as_micros() / d.as_micros().max(1);
                // A frame may go when the ones undrawn would keep it waiting no longer than
                // `WAIT_IN_BROWSER`: `fits` undrawn, plus the one being sent.
                u64::try_from(fits + 1)
                    .unwrap_or(FRAMES_IN_FLIGHT)
                    .clamp(1, FRAMES_IN_FLIGHT)
            }
            _ => FRAMES_IN_FLIGHT,
        }
    }

    /// Whether one more frame may go now.
    pub fn may_send(&self) -> bool {
        !self.acknowledges || self.in_flight() < self.allowed()
    }

    /// Whether frames were held back, so the next thing to send is the catch-up.
    pub fn behind(&self) -> bool {
        self.whole || !self.skipped.is_empty()
    }

    /// A frame was not sent: the regions it changed are due; `since`: when the first update
    /// it shows was read.
    pub fn skip(&mut self, rects: &[FrameRect], since: Option<Instant>) {
        self.held_back += 1;
        self.skipped_since = match (self.skipped_since, since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
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

    /// What was measured, for the session's participant list.
    pub fn stats(&self) -> DrawingStats {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let mut ages: Vec<Duration> = self.ages.iter().copied().collect();
        ages.sort_unstable();
        DrawingStats {
            frames_sent: self.sent,
            frames_drawn: self.drawn,
            frames_held_back: self.held_back,
            lag_ms: self.lags.back().copied().map(ms),
            draw_ms: self.draw_time.map(ms),
            window: if self.acknowledges { self.allowed() } else { 0 },
            update_to_drawn_p50_ms: percentile(&ages, 50).map(ms),
            update_to_drawn_p95_ms: percentile(&ages, 95).map(ms),
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
        self.skipped_since = None;
        self.whole = false;
    }

    /// When the first update among the regions due was read: the catch-up picture shows it.
    pub fn due_since(&self) -> Option<Instant> {
        self.skipped_since
    }

    /// The regions due, within a `width` x `height` desktop, as (x, y, width, height);
    /// nothing is due afterwards.
    pub fn take_due(&mut self, width: u16, height: u16) -> Vec<(u16, u16, u16, u16)> {
        let regions = self.skipped.take();
        self.skipped_since = None;
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

/// The `pct`th percentile (nearest rank) of `sorted`, if it holds any.
fn percentile(sorted: &[Duration], pct: usize) -> Option<Duration> {
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
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

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_browser_that_never_acknowledges_is_sent_every_frame() {
        let t0 = Instant::now();
        let mut w = FrameWindow::default();
        for k in 0..100 {
            assert!(w.may_send());
            w.sent(t0 + ms(k), None);
        }
        assert!(!w.behind());
        let stats = w.stats();
        assert_eq!(
            (stats.frames_sent, stats.window, stats.lag_ms),
            (100, 0, None)
        );
    }

    #[test]
    fn at_most_the_window_is_undrawn_and_drawing_opens_it_again() {
        let t0 = Instant::now();
        let mut w = FrameWindow::default();
        // The first picture went before the browser said anything; it says it drew it.
        w.sent(t0, None);
        w.drawn(1, t0 + ms(5));
        for k in 0..FRAMES_IN_FLIGHT {
            assert!(w.may_send());
            w.sent(t0 + ms(10 + k), None);
        }
        assert!(!w.may_send());
        assert_eq!(w.in_flight(), FRAMES_IN_FLIGHT);
        // A stale count changes nothing; a count beyond what was sent means all of it.
        w.drawn(0, t0 + ms(20));
        assert!(!w.may_send());
        w.drawn(2, t0 + ms(21));
        assert!(w.may_send());
        w.drawn(1_000, t0 + ms(22));
        assert_eq!(w.in_flight(), 0);
        let stats = w.stats();
        assert_eq!((stats.frames_sent, stats.frames_drawn), (5, 5));
        assert_eq!(
            stats.lag_ms,
            Some(9),
            "the last frame drawn was sent at 13 ms"
        );
    }

    #[test]
    fn held_back_frames_leave_their_regions_due_clipped_to_the_desktop() {
        let mut w = FrameWindow::default();
        w.drawn(0, Instant::now());
        assert!(!w.behind());
        w.skip(&[rect(0, 0, 10, 10), rect(5, 5, 10, 10)], None);
        w.skip(&[rect(500, 300, 50, 50), rect(1, 1, 0, 0)], None);
        assert!(w.behind());
        assert_eq!(w.stats().frames_held_back, 2);
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
        w.drawn(0, Instant::now());
        // Not behind: a resize alone is followed by the server's own redraw.
        w.resized();
        assert!(!w.behind());
        w.skip(&[rect(0, 0, 10, 10)], None);
        w.resized();
        assert_eq!(w.take_due(800, 600), vec![(0, 0, 800, 600)]);
        // A resynchronisation sent everything.
        w.skip(&[rect(0, 0, 10, 10)], None);
        w.resynchronised();
        assert!(!w.behind());
    }

    /// A browser `one_way` away from the gateway that draws its frames one after another,
    /// each taking what `draw` says for its time of arrival.
    struct Browser {
        one_way: Duration,
        draw: fn(Duration) -> Duration,
    }

    /// What a run of `simulate` saw, from `measured_from` on.
    #[derive(Debug, Default)]
    struct Seen {
        most_in_flight: u64,
        /// Longest time from a frame's sending to its drawing.
        oldest_drawn: Duration,
        frames_drawn: u64,
        /// From the change each drawn frame shows (the oldest, for a catch-up) to its drawing,
        /// for every frame whose drawing was heard of, whenever it was sent.
        ages: VecDeque<Duration>,
    }

    /// A desktop viewed by `browser`: its first picture is drawn at once, then the desktop
    /// changes every 33 ms for `run`, and the viewer's socket loop does what it does: a frame
    /// goes if the window allows, else its regions are due; a catch-up goes as soon as a draw
    /// is heard of and the window allows. `learns`: whether the window may measure the
    /// browser's speed (without, it is the fixed window of `FRAMES_IN_FLIGHT`). What was seen
    /// from `measured_from` on, and the window at the end.
    fn simulate(
        browser: &Browser,
        run: Duration,
        measured_from: Duration,
        learns: bool,
    ) -> (FrameWindow, Seen) {
        let every = ms(33);
        let mut window = FrameWindow::default();
        let start = Instant::now();
        window.sent(start, None);
        let t0 = start + browser.one_way * 2;
        window.drawn(1, t0);
        let w = &mut window;
        let mut seen = Seen::default();
        // Frames on their way or waiting in the browser: when each was sent, and the change
        // it shows.
        let mut queue: VecDeque<(Instant, Option<Instant>)> = VecDeque::new();
        // When the browser is free, and the acknowledgements on their way (arrival, count).
        let mut free = t0;
        // (The change each shows to its drawing, for `Seen::ages` once it is heard of.)
        let mut acks: VecDeque<(Instant, u64, Option<Duration>)> = VecDeque::new();
        let mut drawn = w.drawn;
        let mut next_change = t0;
        let end = t0 + run;
        let send = |w: &mut FrameWindow,
                    queue: &mut VecDeque<(Instant, Option<Instant>)>,
                    at: Instant,
                    since: Option<Instant>| {
            w.sent(at, since);
            queue.push_back((at, since));
        };
        loop {
            // The browser draws what has arrived, in order, acknowledging each.
            while let Some(&(sent, since)) = queue.front() {
                let begin = (sent + browser.one_way).max(free);
                if begin > next_change.min(acks.front().map_or(end, |a| a.0)) {
                    break;
                }
                queue.pop_front();
                free = begin + (browser.draw)(begin - t0);
                drawn += 1;
                acks.push_back((free + browser.one_way, drawn, since.map(|s| free - s)));
                if sent >= t0 + measured_from {
                    seen.oldest_drawn = seen.oldest_drawn.max(free - sent);
                    seen.frames_drawn += 1;
                }
            }
            let ack_due = acks.front().map(|a| a.0);
            match ack_due {
                Some(at) if at <= next_change => {
                    let (at, count, age) = acks.pop_front().unwrap();
                    w.drawn(count, at);
                    seen.ages.extend(age);
                    if !learns {
                        w.draw_time = None;
                    }
                    if w.behind() && w.may_send() {
                        let since = w.due_since();
                        w.take_due(1280, 800);
                        send(w, &mut queue, at, since);
                    }
                }
                _ => {
                    if next_change >= end {
                        break;
                    }
                    let at = next_change;
                    if w.behind() || !w.may_send() {
                        w.skip(&[rect(0, 0, 100, 100)], Some(at));
                        if w.may_send() {
                            let since = w.due_since();
                            w.take_due(1280, 800);
                            send(w, &mut queue, at, since);
                        }
                    } else {
                        send(w, &mut queue, at, Some(at));
                    }
                    next_change += every;
                }
            }
            if next_change >= t0 + measured_from {
                seen.most_in_flight = seen.most_in_flight.max(w.in_flight());
            }
        }
        (window, seen)
    }

    #[test]
    fn a_browser_that_draws_a_frame_a_second_is_sent_one_frame_at_a_time() {
        let slow = Browser {
            one_way: ms(1),
            draw: |_| ms(1000),
        };
        // The first picture, drawn; then the desktop changes 30 times a second.
        let (w, seen) = simulate(&slow, ms(20_000), ms(5_000), true);
        assert_eq!(seen.most_in_flight, 1, "{seen:?}");
        // What it draws was sent at most one draw and a round trip before: it waited
        // behind nothing.
        assert!(seen.oldest_drawn <= ms(1002 + 2), "{seen:?}");
        assert!(seen.frames_drawn >= 14, "{seen:?}");
        let stats = w.stats();
        assert_eq!(stats.window, 1);
        assert!(
            stats.draw_ms.is_some_and(|d| (900..=1000).contains(&d)),
            "{stats:?}"
        );
        assert!(stats.frames_held_back > 400, "{stats:?}");
        assert_ages_as_drawn(&stats, &seen, ms(2));
        // About a second: the change waited for the draw under way, then took its own.
        let p50 = stats.update_to_drawn_p50_ms.unwrap_or(0);
        assert!((1000..=2100).contains(&p50), "{stats:?}");
        // With the fixed window it had four undrawn: what it drew was up to 4 s old.
        let (w, seen) = simulate(&slow, ms(20_000), ms(5_000), false);
        assert_eq!(seen.most_in_flight, FRAMES_IN_FLIGHT, "{seen:?}");
        assert!(seen.oldest_drawn > ms(3_000), "{seen:?}");
        let stats = w.stats();
        assert_ages_as_drawn(&stats, &seen, ms(2));
        assert!(
            stats.update_to_drawn_p50_ms.unwrap_or(0) > 3_000,
            "{stats:?}"
        );
    }

    #[test]
    fn a_fast_browser_far_away_keeps_the_whole_window() {
        // 100 ms round trip, 5 ms a frame: three frames are on the wire at any time.
        let far = Browser {
            one_way: ms(50),
            draw: |_| ms(5),
        };
        let (w, seen) = simulate(&far, ms(10_000), ms(1_000), true);
        let stats = w.stats();
        assert_eq!(stats.frames_held_back, 0, "{stats:?} {seen:?}");
        assert_eq!(stats.window, FRAMES_IN_FLIGHT, "{stats:?}");
        assert!(seen.oldest_drawn <= ms(60), "{seen:?}");
        // 50 ms on the way and 5 to draw; the acknowledgement's 50 ms back is counted too.
        assert_ages_as_drawn(&stats, &seen, ms(100));
        assert_eq!(stats.update_to_drawn_p95_ms, Some(105), "{stats:?}");
    }

    /// The window's figures for pictures' ages are what the browser saw (`seen.ages`: the
    /// change to its drawing), later by at most `ack_way` (the acknowledgement's trip back).
    #[track_caller]
    fn assert_ages_as_drawn(stats: &DrawingStats, seen: &Seen, ack_way: Duration) {
        let mut recent: Vec<Duration> = seen
            .ages
            .iter()
            .skip(seen.ages.len().saturating_sub(AGES_KEPT))
            .copied()
            .collect();
        recent.sort_unstable();
        for (pct, measured) in [
            (50, stats.update_to_drawn_p50_ms),
            (95, stats.update_to_drawn_p95_ms),
        ] {
            let truth = percentile(&recent, pct).expect("frames were drawn");
            let measured = ms(measured.expect("measured"));
            assert!(
                measured >= truth.saturating_sub(ms(1)) && measured <= truth + ack_way + ms(1),
                "p{pct}: measured {measured:?}, drawn {truth:?} after the change"
            );
        }
    }

    #[test]
    fn a_pictures_age_counts_from_the_first_update_it_shows_to_its_drawing() {
        let t0 = Instant::now();
        let mut w = FrameWindow::default();
        // The first picture (a snapshot: its age is not known) and nine frames, each showing
        // updates read 10 ms before it went, drawn 5 ms after.
        w.sent(t0, None);
        w.drawn(1, t0 + ms(3));
        assert_eq!(w.stats().update_to_drawn_p50_ms, None, "no age known yet");
        for k in 1..10 {
            let at = t0 + ms(100 * k);
            w.sent(at, Some(at - ms(10)));
            w.drawn(1 + k, at + ms(5));
        }
        let stats = w.stats();
        assert_eq!(
            (stats.update_to_drawn_p50_ms, stats.update_to_drawn_p95_ms),
            (Some(15), Some(15))
        );
        // Two frames held back: the catch-up shows the older one's update, and is as old as
        // that; taking the due regions forgets it.
        let at = t0 + ms(2000);
        w.sent(at, Some(at));
        w.skip(&[rect(0, 0, 10, 10)], Some(at + ms(10)));
        w.skip(&[rect(0, 0, 10, 10)], Some(at + ms(5)));
        w.skip(&[rect(0, 0, 10, 10)], None);
        assert_eq!(w.due_since(), Some(at + ms(5)));
        w.drawn(11, at + ms(20));
        let since = w.due_since();
        w.take_due(100, 100);
        assert_eq!(w.due_since(), None);
        w.sent(at + ms(20), since);
        w.drawn(12, at + ms(400));
        let stats = w.stats();
        assert_eq!(stats.update_to_drawn_p95_ms, Some(395), "{stats:?}");
        assert_eq!(stats.update_to_drawn_p50_ms, Some(15), "{stats:?}");
    }

    #[test]
    fn a_tab_that_draws_fast_again_gets_its_window_back() {
        // 500 ms a frame for ten seconds (a background tab), then 5 ms.
        let waking = Browser {
            one_way: ms(1),
            draw: |at| if at < ms(10_000) { ms(500) } else { ms(5) },
        };
        let (w, seen) = simulate(&waking, ms(20_000), ms(12_000), true);
        let stats = w.stats();
        assert_eq!(stats.window, FRAMES_IN_FLIGHT, "{stats:?}");
        assert!(stats.draw_ms.is_some_and(|d| d <= 10), "{stats:?}");
        assert!(seen.oldest_drawn <= ms(10), "{seen:?}");
        assert!(seen.frames_drawn > 200, "every frame goes again: {seen:?}");
    }
}
