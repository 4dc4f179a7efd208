//! Why: a frame sends the regions of the desktop that changed, not their bounding box. A
//! clock ticking in one corner and a cursor blinking in the other would otherwise make every
//! frame a whole-desktop rectangle: copied, fingerprinted, PNG-encoded and recorded in full.
//! Rectangles that touch or lie close are merged (one rectangle costs more than a few
//! unchanged pixels around it), and the number kept is bounded.

use ironrdp_pdu::geometry::{InclusiveRectangle, Rectangle as _};

/// Most rectangles a frame carries; beyond, the two whose merging adds the fewest pixels
/// are merged.
pub const MAX_REGIONS: usize = 8;
/// Two rectangles whose bounding box holds at most this many unchanged pixels (beyond
/// their own) are merged.
const MERGE_SLACK: u64 = 64 * 64;

/// The damaged regions of the frame being gathered.
#[derive(Default)]
pub struct Damage {
    regions: Vec<InclusiveRectangle>,
}

fn area(r: &InclusiveRectangle) -> u64 {
    u64::from(r.width()) * u64::from(r.height())
}

/// Pixels the bounding box of `a` and `b` holds beyond `a` and `b` (zero or less when they
/// overlap).
fn waste(a: &InclusiveRectangle, b: &InclusiveRectangle) -> i64 {
    area(&a.union(b)) as i64 - area(a) as i64 - area(b) as i64
}

fn overlap(a: &InclusiveRectangle, b: &InclusiveRectangle) -> bool {
    a.left <= b.right && b.left <= a.right && a.top <= b.bottom && b.top <= a.bottom
}

impl Damage {
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// `r` changed.
    pub fn add(&mut self, r: InclusiveRectangle) {
        let mut r = r;
        // Merge with whatever it overlaps or lies close to, until nothing more qualifies
        // (a merged rectangle may reach others).
        while let Some(i) = self
            .regions
            .iter()
            .position(|d| overlap(d, &r) || waste(d, &r) <= MERGE_SLACK as i64)
        {
            let d = self.regions.swap_remove(i);
            r = r.union(&d);
        }
        self.regions.push(r);
        while self.regions.len() > MAX_REGIONS {
            let mut best = (i64::MAX, 0, 1);
            for i in 0..self.regions.len() {
                for j in i + 1..self.regions.len() {
                    let w = waste(&self.regions[i], &self.regions[j]);
                    if w < best.0 {
                        best = (w, i, j);
                    }
                }
            }
            let (_, i, j) = best;
            let b = self.regions.swap_remove(j);
            let a = self.regions.swap_remove(i);
            self.add(a.union(&b));
        }
    }

    /// The regions, emptied.
    pub fn take(&mut self) -> Vec<InclusiveRectangle> {
        std::mem::take(&mut self.regions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(left: u16, top: u16, right: u16, bottom: u16) -> InclusiveRectangle {
        InclusiveRectangle {
            left,
            top,
            right,
            bottom,
        }
    }

    #[test]
    fn changes_far_apart_stay_apart_and_close_ones_merge() {
        let mut d = Damage::default();
        // A clock in the top right corner, a cursor in the bottom left one.
        d.add(rect(1200, 0, 1279, 20));
        d.add(rect(10, 780, 17, 795));
        // A keystroke's echo next to the cursor, and one overlapping the clock.
        d.add(rect(18, 780, 25, 795));
        d.add(rect(1190, 10, 1210, 25));
        let mut regions = d.take();
        regions.sort_by_key(|r| r.left);
        assert_eq!(
            regions,
            vec![rect(10, 780, 25, 795), rect(1190, 0, 1279, 25)],
            "two regions, each the bounding box of its neighbours"
        );
        assert!(d.is_empty(), "taking empties the damage");
    }

    #[test]
    fn every_changed_pixel_is_sent_and_the_regions_are_bounded() {
        // A pseudo-random scatter of small changes over a 640x480 desktop.
        let mut d = Damage::default();
        let mut added = Vec::new();
        let mut seed = 7u64;
        for _ in 0..200 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let x = (seed >> 20) as u16 % 620;
            let y = (seed >> 40) as u16 % 470;
            let r = rect(x, y, x + (seed % 20) as u16, y + (seed >> 8) as u16 % 10);
            added.push(r.clone());
            d.add(r);
        }
        let regions = d.take();
        assert!(regions.len() <= MAX_REGIONS, "{} regions", regions.len());
        for r in &added {
            assert!(
                regions.iter().any(|g| g.left <= r.left
                    && g.top <= r.top
                    && r.right <= g.right
                    && r.bottom <= g.bottom),
                "{r:?} is not inside one region"
            );
        }
        // No two regions overlap: no pixel is encoded twice.
        for (i, a) in regions.iter().enumerate() {
            for b in &regions[i + 1..] {
                assert!(!overlap(a, b), "{a:?} and {b:?} overlap");
            }
        }
    }
}
