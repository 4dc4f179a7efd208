//! Why: a moving photographic region of a desktop (a video, a slideshow, a picture being
//! dragged) travels as JPEG, a tenth of its PNG, but not exact. `Motion` tells a moving
//! region from one drawn once (a picture that appears and stays goes as PNG straight away:
//! sending it twice would cost more than it saves). Whatever is shown lossy is remembered in
//! `LossyRegions` until it has stopped changing for `REFINE_AFTER`; then the desktop sends it
//! again losslessly, so a picture at rest is exact in every browser and in the recording.
//! This file is the bookkeeping only (areas and times); the encoding is in `desktop`.

use std::time::{Duration, Instant};

/// How long a lossy region must stay unchanged before it is sent again losslessly. The same
/// as `MOVING_WITHIN`: what changes at least this often is moving and stays JPEG; what
/// changes less often is sent as PNG anyway, so no picture is sent twice per change.
pub const REFINE_AFTER: Duration = Duration::from_secs(1);

/// A region drawn again within this long, over at least half of what was drawn there
/// before, is a moving picture.
pub const MOVING_WITHIN: Duration = Duration::from_secs(1);

/// Most recent drawings remembered by `Motion` (the oldest are forgotten first).
const MAX_RECENT: usize = 32;

/// Most lossy regions remembered; beyond, the two whose bounding box adds the fewest pixels
/// are merged (refining a few pixels more costs less than tracking many small regions).
const MAX_LOSSY: usize = 16;

/// A rectangle of the desktop, in pixels.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Area {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

impl Area {
    pub fn new(x: usize, y: usize, w: usize, h: usize) -> Area {
        Area { x, y, w, h }
    }

    fn right(&self) -> usize {
        self.x + self.w
    }

    fn bottom(&self) -> usize {
        self.y + self.h
    }

    fn pixels(&self) -> usize {
        self.w * self.h
    }

    pub fn is_empty(&self) -> bool {
        self.w == 0 || self.h == 0
    }

    pub fn intersection(&self, o: &Area) -> Option<Area> {
        let (x, y) = (self.x.max(o.x), self.y.max(o.y));
        let (r, b) = (self.right().min(o.right()), self.bottom().min(o.bottom()));
        (x < r && y < b).then(|| Area::new(x, y, r - x, b - y))
    }

    pub fn union(&self, o: &Area) -> Area {
        let (x, y) = (self.x.min(o.x), self.y.min(o.y));
        let (r, b) = (self.right().max(o.right()), self.bottom().max(o.bottom()));
        Area::new(x, y, r - x, b - y)
    }

    pub fn contains(&self, o: &Area) -> bool {
        self.x <= o.x && self.y <= o.y && o.right() <= self.right() && o.bottom() <= self.bottom()
    }

    /// What of `self` lies outside `o`: up to four rectangles (the bands above and below
    /// `o`, then left and right of it).
    pub fn minus(&self, o: &Area) -> Vec<Area> {
        let Some(i) = self.intersection(o) else {
            return vec![*self];
        };
        let mut out = Vec::with_capacity(4);
        if i.y > self.y {
            out.push(Area::new(self.x, self.y, self.w, i.y - self.y));
        }
        if i.bottom() < self.bottom() {
            out.push(Area::new(
                self.x,
                i.bottom(),
                self.w,
                self.bottom() - i.bottom(),
            ));
        }
        if i.x > self.x {
            out.push(Area::new(self.x, i.y, i.x - self.x, i.h));
        }
        if i.right() < self.right() {
            out.push(Area::new(i.right(), i.y, self.right() - i.right(), i.h));
        }
        out
    }
}

/// Where large regions were drawn lately.
#[derive(Default)]
pub struct Motion {
    recent: Vec<(Area, Instant)>,
}

impl Motion {
    /// `a` is being drawn at `now`: whether it is moving (drawn within `MOVING_WITHIN`
    /// over at least half of it).
    pub fn drawn(&mut self, a: Area, now: Instant) -> bool {
        self.recent
            .retain(|(_, t)| now.saturating_duration_since(*t) < MOVING_WITHIN);
        let half = a.pixels() / 2;
        let moving = self.recent.iter().any(|(r, _)| {
            r.intersection(&a)
                .is_some_and(|i| i.pixels() >= half.max(1))
        });
        if self.recent.len() == MAX_RECENT {
            self.recent.remove(0);
        }
        self.recent.push((a, now));
        moving
    }
}

struct Lossy {
    area: Area,
    /// When its pixels last changed.
    changed: Instant,
}

/// The parts of the picture that browsers hold lossy.
#[derive(Default)]
pub struct LossyRegions {
    regions: Vec<Lossy>,
}

impl LossyRegions {
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// `a` was just sent lossy.
    pub fn drawn_lossy(&mut self, a: Area, now: Instant) {
        if a.is_empty() {
            return;
        }
        // Whatever it overlaps is part of the same changing picture: one region, changed now.
        let mut a = a;
        while let Some(i) = self
            .regions
            .iter()
            .position(|r| r.area.intersection(&a).is_some())
        {
            a = a.union(&self.regions.swap_remove(i).area);
        }
        self.regions.push(Lossy {
            area: a,
            changed: now,
        });
        self.bound();
    }

    /// Merges regions until at most `MAX_LOSSY` are left.
    fn bound(&mut self) {
        while self.regions.len() > MAX_LOSSY {
            let mut best = (usize::MAX, 0, 1);
            for i in 0..self.regions.len() {
                for j in i + 1..self.regions.len() {
                    let (p, q) = (&self.regions[i].area, &self.regions[j].area);
                    let added = p.union(q).pixels().saturating_sub(p.pixels() + q.pixels());
                    if added < best.0 {
                        best = (added, i, j);
                    }
                }
            }
            let (_, i, j) = best;
            let b = self.regions.swap_remove(j);
            let a = self.regions.swap_remove(i);
            // The merged region is as recent as the more recent of the two; merged, it may
            // reach a third.
            self.drawn_lossy(a.area.union(&b.area), a.changed.max(b.changed));
        }
    }

    /// `a` was just sent losslessly: what was lossy inside it is exact now. The rest of a
    /// region it covers in part stays, with its time (those pixels did not change).
    pub fn drawn_lossless(&mut self, a: Area) {
        self.forget(a);
        self.bound();
    }

    /// Drops every lossy pixel inside `a`.
    fn forget(&mut self, a: Area) {
        if !self
            .regions
            .iter()
            .any(|r| r.area.intersection(&a).is_some())
        {
            return;
        }
        let old = std::mem::take(&mut self.regions);
        for r in old {
            for rest in r.area.minus(&a) {
                self.regions.push(Lossy {
                    area: rest,
                    changed: r.changed,
                });
            }
        }
    }

    /// The pixels of `from` were copied to `to` (same size; a scroll): every pixel of `to`
    /// is now what was at its place in `from`, so what was lossy in `from` is lossy at its
    /// new place, and moving; what was lossy wholly inside `to` is gone.
    pub fn copied(&mut self, from: Area, to: Area, now: Instant) {
        let moved: Vec<Area> = self
            .regions
            .iter()
            .filter_map(|r| r.area.intersection(&from))
            .map(|part| {
                Area::new(
                    part.x + to.x - from.x,
                    part.y + to.y - from.y,
                    part.w,
                    part.h,
                )
            })
            .collect();
        self.forget(to);
        for m in moved {
            self.drawn_lossy(m, now);
        }
        self.bound();
    }

    /// When the next region will have settled.
    pub fn due(&self) -> Option<Instant> {
        self.regions.iter().map(|r| r.changed + REFINE_AFTER).min()
    }

    /// The regions unchanged for `REFINE_AFTER` at `now`, forgotten here: the caller sends
    /// them losslessly.
    pub fn settled(&mut self, now: Instant) -> Vec<Area> {
        let mut out = Vec::new();
        self.regions.retain(|r| {
            let done = now.saturating_duration_since(r.changed) >= REFINE_AFTER;
            if done {
                out.push(r.area);
            }
            !done
        });
        out
    }

    pub fn clear(&mut self) {
        self.regions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_drawn_again_soon_over_most_of_it_is_moving() {
        let t0 = Instant::now();
        let q = MOVING_WITHIN / 4;
        let mut m = Motion::default();
        let a = Area::new(100, 100, 400, 300);
        assert!(!m.drawn(a, t0), "drawn once");
        assert!(m.drawn(a, t0 + q), "drawn again soon");
        // Elsewhere, or over less than half of it: not moving.
        assert!(!m.drawn(Area::new(600, 500, 400, 200), t0 + q));
        assert!(!m.drawn(Area::new(400, 100, 400, 300), t0 + q));
        // Over more than half of something drawn lately (the last two together).
        assert!(m.drawn(Area::new(450, 100, 400, 300), t0 + q * 2));
        // Drawn long ago: forgotten.
        let far = Area::new(0, 600, 50, 50);
        assert!(!m.drawn(far, t0));
        assert!(!m.drawn(far, t0 + MOVING_WITHIN + q));
    }

    #[test]
    fn a_region_is_refined_once_it_has_been_still_long_enough() {
        let t0 = Instant::now();
        let mut l = LossyRegions::default();
        l.drawn_lossy(Area::new(0, 0, 100, 100), t0);
        assert_eq!(l.due(), Some(t0 + REFINE_AFTER));
        // Drawn again (overlapping) before it settled: one region, later.
        let t1 = t0 + REFINE_AFTER / 2;
        l.drawn_lossy(Area::new(50, 50, 100, 100), t1);
        assert!(l.settled(t0 + REFINE_AFTER).is_empty());
        assert_eq!(l.due(), Some(t1 + REFINE_AFTER));
        assert_eq!(
            l.settled(t1 + REFINE_AFTER),
            vec![Area::new(0, 0, 150, 150)]
        );
        assert!(l.is_empty() && l.due().is_none());
    }

    #[test]
    fn lossless_drawing_clears_only_what_it_covers() {
        let t0 = Instant::now();
        let mut l = LossyRegions::default();
        l.drawn_lossy(Area::new(0, 0, 64, 64), t0);
        l.drawn_lossy(Area::new(500, 500, 64, 64), t0);
        // Covers the first wholly, the second's top-left corner.
        l.drawn_lossless(Area::new(0, 0, 540, 540));
        let mut left = l.settled(t0 + REFINE_AFTER);
        left.sort_by_key(|a| (a.y, a.x));
        assert_eq!(
            left,
            vec![Area::new(540, 500, 24, 40), Area::new(500, 540, 64, 24)]
        );
    }

    #[test]
    fn what_lies_outside_a_rectangle_is_every_pixel_of_it_once() {
        let a = Area::new(10, 20, 30, 40);
        for o in [
            Area::new(0, 0, 5, 5),
            Area::new(15, 25, 5, 5),
            Area::new(0, 30, 100, 10),
            Area::new(35, 0, 100, 100),
            Area::new(0, 0, 100, 100),
        ] {
            let rest = a.minus(&o);
            for y in 0..80 {
                for x in 0..60 {
                    let p = Area::new(x, y, 1, 1);
                    let want = a.contains(&p) && !o.contains(&p);
                    let n = rest.iter().filter(|r| r.contains(&p)).count();
                    assert_eq!(n, usize::from(want), "{p:?} minus {o:?}");
                }
            }
        }
    }

    #[test]
    fn copied_lossy_pixels_are_lossy_where_they_land() {
        let t0 = Instant::now();
        let mut l = LossyRegions::default();
        l.drawn_lossy(Area::new(0, 100, 200, 50), t0);
        // Everything from y=50 moves up by 50 (a scroll of the area 0,0..200,400).
        let t1 = t0 + Duration::from_millis(10);
        l.copied(Area::new(0, 50, 200, 350), Area::new(0, 0, 200, 350), t1);
        // Its old place was overwritten by rows that were exact; its new place is moving.
        assert_eq!(l.settled(t0 + REFINE_AFTER), vec![]);
        assert_eq!(
            l.settled(t1 + REFINE_AFTER),
            vec![Area::new(0, 50, 200, 50)]
        );
        // A copy from elsewhere moves nothing lossy.
        l.drawn_lossy(Area::new(0, 0, 10, 10), t0);
        l.copied(Area::new(0, 300, 10, 10), Area::new(0, 400, 10, 10), t1);
        assert_eq!(l.settled(t0 + REFINE_AFTER), vec![Area::new(0, 0, 10, 10)]);
    }

    #[test]
    fn many_regions_are_merged_and_every_lossy_pixel_stays_covered() {
        let t0 = Instant::now();
        let mut l = LossyRegions::default();
        let mut drawn = Vec::new();
        let mut seed = 7u64;
        for i in 0..200u32 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let a = Area::new(
                (seed >> 33) as usize % 1200,
                (seed >> 45) as usize % 760,
                8 + (seed >> 20) as usize % 70,
                8 + (seed >> 10) as usize % 40,
            );
            l.drawn_lossy(a, t0 + Duration::from_millis(u64::from(i)));
            drawn.push(a);
            assert!(l.regions.len() <= MAX_LOSSY);
        }
        let settled = l.settled(t0 + Duration::from_secs(10));
        assert!(!settled.is_empty() && settled.len() <= MAX_LOSSY);
        for a in drawn {
            assert!(
                settled.iter().any(|s| s.contains(&a)),
                "{a:?} was lossy and is not refined"
            );
        }
    }
}
