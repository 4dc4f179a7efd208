//! Why: a graphical (RDP) session's current picture, kept server-side for the same reasons as
//! a terminal's screen: a late observer or a reconnecting browser gets the whole desktop at
//! once, and the recorder takes keyframes from it. The RDP adapter hands over changed
//! rectangles as raw RGBA; this is also where they are encoded for the browser, once per
//! update whatever the number of viewers, so the live view, the recording and the replay all
//! carry the same encoded rectangles.
//!
//! Scrolling is the common heavy case (a terminal printing, a page scrolled): the server sends
//! the whole scrolled area again as bitmaps. Here it is recognised (the new rows are the old
//! ones moved up or down) and sent as "copy this region" plus only the rows that are new, so
//! neither the gateway nor the browser compresses and decodes what they already have.
//!
//! Each region is encoded as what suits it: an indexed PNG when it has few colours (text,
//! flat widgets), a JPEG when it is photographic, large and moving (drawn again within a
//! second), an RGB PNG otherwise. What went out as JPEG is sent again as PNG once it has been
//! still for a second (`lossy`), so only moving pictures are ever shown inexactly.

use std::sync::Arc;
use std::time::Instant;

use crate::event::FrameRect;
use crate::lossy::{Area, LossyRegions, Motion};

/// Raw pixels, 4 bytes per pixel (R, G, B, A), rows top to bottom. Only the adapter
/// produces this encoding; it never leaves the gateway.
pub const RAW_RGBA: &str = "raw-rgba";
/// What browsers, recordings and replays get.
pub const PNG: &str = "png";
/// What browsers, recordings and replays get for a photographic region while it moves; the
/// same region follows as PNG once it is still (`lossy::REFINE_AFTER`).
pub const JPEG: &str = "jpeg";
/// A region copied within the picture (a scroll): `data` is the source's x and y (u16,
/// big-endian); the rectangle is the destination.
pub const COPY: &str = "copy";

/// Smallest damaged rectangle looked at for scrolling (each side, pixels).
const SCROLL_MIN: usize = 64;
/// A large rectangle whose unchanged rows are at least 1/`UNCHANGED_WORTH` of it is sent
/// without them.
const UNCHANGED_WORTH: usize = 4;
/// Rows between two changed runs that are sent with them rather than as another rectangle.
const MERGE_GAP: usize = 4;

/// Smallest region (pixels) sent as JPEG: below, a JPEG's headers and tables (about 600
/// bytes) outweigh what it saves, and small changes are mostly text (a key's echo).
const LOSSY_MIN_PIXELS: usize = 64 * 64;
/// JPEG quality (1-100). At 80 a photograph shows no artefacts at a glance and is about a
/// tenth of its PNG (bench/README.md, "photographic regions"); chroma is halved both ways.
const JPEG_QUALITY: u8 = 80;

/// Largest desktop side we accept (pixels).
pub const MAX_SIDE: u16 = 8192;

/// Largest desktop area we hold (pixels): 4096x2160 (4K), 35 MiB of RGBA per framebuffer.
/// A browser asking for 8192x8192 would otherwise make each session hold 256 MiB.
pub const MAX_AREA: u32 = 4096 * 2160;

/// `width` x `height` scaled down, keeping its shape, until it fits `MAX_AREA` (and
/// `MAX_SIDE`); sizes that fit are returned as they are.
pub fn within_area(width: u16, height: u16) -> (u16, u16) {
    let (w, h) = (width.clamp(1, MAX_SIDE), height.clamp(1, MAX_SIDE));
    let area = u32::from(w) * u32::from(h);
    if area <= MAX_AREA {
        return (w, h);
    }
    let scale = (f64::from(MAX_AREA) / f64::from(area)).sqrt();
    let fit = |v: u16| ((f64::from(v) * scale).floor() as u16).max(1);
    (fit(w), fit(h))
}

pub struct DesktopScreen {
    width: u16,
    height: u16,
    rgba: Vec<u8>,
    cursor: Option<crate::event::Cursor>,
    /// Fingerprints of the rows of the last rectangle looked at for scrolling, as the
    /// picture holds them now: the next one over the same columns (under a flood, the whole
    /// desktop every frame) does not hash the picture's rows again.
    known_rows: Option<KnownRows>,
    /// What browsers hold as JPEG, until it is sent again losslessly.
    lossy: LossyRegions,
    /// Where large regions were drawn lately (a moving picture may go as JPEG).
    motion: Motion,
    /// Never send JPEG (the resource's setting): every region is exact from the start.
    lossless_only: bool,
}

/// Row fingerprints of the columns `x..x + w`, rows from `y` down.
struct KnownRows {
    x: usize,
    y: usize,
    w: usize,
    hashes: Vec<u64>,
}

impl DesktopScreen {
    pub fn new(width: u16, height: u16) -> Self {
        let (width, height) = within_area(width, height);
        DesktopScreen {
            width,
            height,
            rgba: vec![0; width as usize * height as usize * 4],
            cursor: None,
            known_rows: None,
            lossy: LossyRegions::default(),
            motion: Motion::default(),
            lossless_only: false,
        }
    }

    /// Whether photographic regions may travel as JPEG (then refined) or only as PNG.
    pub fn set_lossless_only(&mut self, lossless_only: bool) {
        self.lossless_only = lossless_only;
        if lossless_only {
            self.lossy.clear();
        }
    }

    /// The pointer shape the server set last.
    pub fn cursor(&self) -> Option<&crate::event::Cursor> {
        self.cursor.as_ref()
    }

    pub fn set_cursor(&mut self, cursor: crate::event::Cursor) {
        self.cursor = Some(cursor);
    }

    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// A new desktop size: the picture starts black; the server repaints it. The pointer
    /// shape and the lossless setting stay.
    pub fn resize(&mut self, width: u16, height: u16) {
        let cursor = self.cursor.take();
        let lossless_only = self.lossless_only;
        *self = DesktopScreen::new(width, height);
        self.cursor = cursor;
        self.lossless_only = lossless_only;
    }

    /// The pixel at (x, y) as R, G, B, A (tests and checks).
    pub fn pixel(&self, x: u16, y: u16) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 4;
        let p = self.rgba.get(i..i + 4)?;
        Some([p[0], p[1], p[2], p[3]])
    }

    /// Paints raw rectangles into the picture and returns them encoded for the browser.
    /// A rectangle that is malformed or outside the desktop is clipped or dropped. `now`
    /// dates what is sent lossy.
    pub fn take(&mut self, rects: &[FrameRect], now: Instant) -> Arc<[FrameRect]> {
        let mut out = Vec::with_capacity(rects.len());
        for r in rects {
            if r.encoding != RAW_RGBA {
                // Already encoded (a lossless refinement, made from the picture itself):
                // passed on unpainted.
                out.push(r.clone());
                continue;
            }
            let (w, h) = (r.width as usize, r.height as usize);
            if w == 0 || h == 0 || r.data.len() < w * h * 4 {
                continue;
            }
            let x_end = (r.x as usize + w).min(self.width as usize);
            let y_end = (r.y as usize + h).min(self.height as usize);
            if r.x as usize >= x_end || r.y as usize >= y_end {
                continue;
            }
            let cw = x_end - r.x as usize;
            let stride = self.width as usize * 4;
            if let Some(rects) = self.scrolled(r, cw, y_end - r.y as usize, now) {
                out.extend(rects);
                continue;
            }
            for (row, y) in (r.y as usize..y_end).enumerate() {
                let src = &r.data[row * w * 4..row * w * 4 + cw * 4];
                let at = y * stride + r.x as usize * 4;
                self.rgba[at..at + cw * 4].copy_from_slice(src);
            }
            out.push(self.encoded(r.x, r.y, cw as u16, (y_end - r.y as usize) as u16, now));
        }
        out.into()
    }

    /// A region of the picture encoded for the browser, and noted as lossy or exact. Only a
    /// large region that is moving may go lossy.
    fn encoded(&mut self, x: u16, y: u16, w: u16, h: u16, now: Instant) -> FrameRect {
        let area = Area::new(x as usize, y as usize, w as usize, h as usize);
        let lossy = !self.lossless_only
            && area.w * area.h >= LOSSY_MIN_PIXELS
            && self.motion.drawn(area, now);
        let (encoding, data) = self.encode(x, y, w, h, lossy);
        if encoding == JPEG {
            self.lossy.drawn_lossy(area, now);
        } else if !self.lossy.is_empty() {
            self.lossy.drawn_lossless(area);
        }
        FrameRect {
            x,
            y,
            width: w,
            height: h,
            encoding,
            data: Arc::from(data),
        }
    }

    /// When something sent lossy will have been still long enough to be sent again exactly.
    pub fn refine_due(&self) -> Option<Instant> {
        self.lossy.due()
    }

    /// The lossy regions that have been still since `lossy::REFINE_AFTER` before `now`,
    /// encoded losslessly (empty when there are none).
    pub fn refine(&mut self, now: Instant) -> Vec<FrameRect> {
        let whole = Area::new(0, 0, self.width as usize, self.height as usize);
        let mut out = Vec::new();
        for a in self.lossy.settled(now) {
            let Some(a) = a.intersection(&whole) else {
                continue;
            };
            let (x, y, w, h) = (a.x as u16, a.y as u16, a.w as u16, a.h as u16);
            let (encoding, data) = self.encode(x, y, w, h, false);
            out.push(FrameRect {
                x,
                y,
                width: w,
                height: h,
                encoding,
                data: Arc::from(data),
            });
        }
        out
    }

    /// When the raw rectangle `r` (clipped to `cw` x `ch`) is mostly the picture's own rows
    /// moved up or down, paints it and returns a copy plus PNGs of the rows that are new;
    /// otherwise leaves the picture alone and returns None.
    fn scrolled(
        &mut self,
        r: &FrameRect,
        cw: usize,
        ch: usize,
        now: Instant,
    ) -> Option<Vec<FrameRect>> {
        if cw < SCROLL_MIN || ch < SCROLL_MIN {
            // The caller paints it: rows known before may change.
            self.known_rows = None;
            return None;
        }
        let (x0, y0, w) = (r.x as usize, r.y as usize, r.width as usize);
        let stride = self.width as usize * 4;
        let old_row = |i: usize| -> std::ops::Range<usize> {
            let at = (y0 + i) * stride + x0 * 4;
            at..at + cw * 4
        };
        let new_row = |i: usize| i * w * 4..i * w * 4 + cw * 4;
        let old: Vec<u64> = match self.known_rows.take() {
            Some(k) if k.x == x0 && k.w == cw && k.y <= y0 && y0 + ch <= k.y + k.hashes.len() => {
                k.hashes[y0 - k.y..y0 - k.y + ch].to_vec()
            }
            _ => (0..ch).map(|i| row_hash(&self.rgba[old_row(i)])).collect(),
        };
        let new: Vec<u64> = (0..ch).map(|i| row_hash(&r.data[new_row(i)])).collect();
        // Whether this is a scroll or not, the picture's rows here end up as the new ones:
        // painted by the caller when it is not, below when it is.
        self.known_rows = Some(KnownRows {
            x: x0,
            y: y0,
            w: cw,
            hashes: new.clone(),
        });
        let Some(dy) = find_scroll(&old, &new) else {
            return self.unchanged_rows_left_out(r, cw, ch, &old, &new, now);
        };
        // Row i of the new picture comes from old row i + dy, where that exists.
        let source = |i: usize| -> Option<usize> {
            let s = i as isize + dy;
            (0..ch as isize).contains(&s).then_some(s as usize)
        };
        let clean: Vec<bool> = (0..ch)
            .map(|i| {
                source(i).is_some_and(|s| {
                    old[s] == new[i] && self.rgba[old_row(s)] == r.data[new_row(i)]
                })
            })
            .collect();
        // Move the rows (top down when moving up, bottom up when moving down, so every source
        // row is read before it is overwritten), then paint the rows that are new.
        let order: Vec<usize> = if dy > 0 {
            (0..ch).collect()
        } else {
            (0..ch).rev().collect()
        };
        for i in order {
            if let Some(s) = source(i) {
                let from = old_row(s);
                let to = old_row(i).start;
                self.rgba.copy_within(from, to);
            }
        }
        for i in (0..ch).filter(|&i| !clean[i]) {
            let to = old_row(i);
            self.rgba[to].copy_from_slice(&r.data[new_row(i)]);
        }
        let moved = ch - dy.unsigned_abs();
        let (src_y, dst_y) = if dy > 0 {
            (y0 + dy as usize, y0)
        } else {
            (y0, y0 + dy.unsigned_abs())
        };
        let mut out = vec![FrameRect {
            x: r.x,
            y: dst_y as u16,
            width: cw as u16,
            height: moved as u16,
            encoding: COPY,
            data: Arc::from([r.x.to_be_bytes(), (src_y as u16).to_be_bytes()].concat()),
        }];
        if !self.lossy.is_empty() {
            self.lossy.copied(
                Area::new(x0, src_y, cw, moved),
                Area::new(x0, dst_y, cw, moved),
                now,
            );
        }
        for (start, len) in dirty_runs(&clean) {
            let y = (y0 + start) as u16;
            out.push(self.encoded(r.x, y, cw as u16, len as u16, now));
        }
        Some(out)
    }

    /// When many rows of the raw rectangle `r` (clipped to `cw` x `ch`; `old` and `new` its
    /// row fingerprints in the picture and in `r`) are what the picture holds already,
    /// paints the others and returns them encoded, or nothing when no row changed; otherwise
    /// leaves the picture alone and returns None. A server redraws the whole desktop after
    /// output was suppressed (`rdp/pacing.rs`), mostly as it was: sent whole, it cost an
    /// encoding of every pixel, and, where a photograph was on the desktop, looked like a
    /// moving picture and went as JPEG, blurring the whole still desktop for a second.
    fn unchanged_rows_left_out(
        &mut self,
        r: &FrameRect,
        cw: usize,
        ch: usize,
        old: &[u64],
        new: &[u64],
        now: Instant,
    ) -> Option<Vec<FrameRect>> {
        let (x0, y0, w) = (r.x as usize, r.y as usize, r.width as usize);
        let stride = self.width as usize * 4;
        let old_row = |i: usize| (y0 + i) * stride + x0 * 4..(y0 + i) * stride + x0 * 4 + cw * 4;
        let new_row = |i: usize| i * w * 4..i * w * 4 + cw * 4;
        let clean: Vec<bool> = (0..ch)
            .map(|i| old[i] == new[i] && self.rgba[old_row(i)] == r.data[new_row(i)])
            .collect();
        // Worth it only when it leaves out a good part of the rectangle.
        if clean.iter().filter(|&&c| c).count() * UNCHANGED_WORTH < ch {
            return None;
        }
        for i in (0..ch).filter(|&i| !clean[i]) {
            let to = old_row(i);
            self.rgba[to].copy_from_slice(&r.data[new_row(i)]);
        }
        Some(
            dirty_runs(&clean)
                .into_iter()
                .map(|(start, len)| {
                    self.encoded(r.x, (y0 + start) as u16, cw as u16, len as u16, now)
                })
                .collect(),
        )
    }

    /// Regions of the picture as they are now, exact (a slow browser's catch-up,
    /// `frame_window`). Regions are (x, y, width, height) within the desktop.
    pub fn regions_png(&self, regions: &[(u16, u16, u16, u16)]) -> Vec<FrameRect> {
        regions
            .iter()
            .filter(|&&(x, y, w, h)| {
                w > 0
                    && h > 0
                    && u32::from(x) + u32::from(w) <= u32::from(self.width)
                    && u32::from(y) + u32::from(h) <= u32::from(self.height)
            })
            .map(|&(x, y, w, h)| {
                let (encoding, data) = self.encode(x, y, w, h, false);
                FrameRect {
                    x,
                    y,
                    width: w,
                    height: h,
                    encoding,
                    data: Arc::from(data),
                }
            })
            .collect()
    }

    /// The whole picture as one PNG, exact (a keyframe, a late viewer's first picture).
    pub fn snapshot_png(&self) -> Vec<u8> {
        self.encode(0, 0, self.width, self.height, false).1
    }

    /// A region of the picture, encoded, and the encoding's name. Screen content usually has
    /// few colours (text, flat widgets): with at most 16 the PNG is indexed at 1, 2 or 4 bits
    /// per pixel, which is several times smaller and faster to compress than RGB. With more,
    /// it is taken for photographic and, when `lossy` is allowed (a large moving region), sent
    /// as JPEG; anything else as an RGB PNG (the alpha channel carries nothing here).
    fn encode(&self, x: u16, y: u16, w: u16, h: u16, lossy: bool) -> (&'static str, Vec<u8>) {
        let stride = self.width as usize * 4;
        let rows = (y as usize..y as usize + h as usize)
            .map(|row| {
                let start = row * stride + x as usize * 4;
                &self.rgba[start..start + w as usize * 4]
            })
            .collect::<Vec<_>>();
        if let Some(png) = encode_indexed(w, h, &rows) {
            return (PNG, png);
        }
        if lossy {
            if let Some(jpeg) = encode_jpeg(w, h, &rows) {
                return (JPEG, jpeg);
            }
        }
        let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
        for r in &rows {
            for px in r.chunks_exact(4) {
                rgb.extend_from_slice(&px[..3]);
            }
        }
        (PNG, encode_png(w, h, &rgb))
    }
}

/// `rows` (RGBA) as a baseline JPEG at `JPEG_QUALITY`; None if the encoder refuses them.
fn encode_jpeg(w: u16, h: u16, rows: &[&[u8]]) -> Option<Vec<u8>> {
    let mut rgba = Vec::with_capacity(w as usize * h as usize * 4);
    for r in rows {
        rgba.extend_from_slice(r);
    }
    let mut out = Vec::with_capacity(rgba.len() / 16);
    let mut enc = jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    enc.encode(&rgba, w, h, jpeg_encoder::ColorType::Rgba)
        .ok()?;
    Some(out)
}

/// A quick fingerprint of a row of pixels (equal rows are confirmed byte for byte). Four
/// independent lanes, so that the multiplications overlap: three times faster than one
/// chain, which matters at two full-screen passes per frame.
fn row_hash(px: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut lanes: [u64; 4] = [
        0x243F_6A88_85A3_08D3,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
        0x082E_FA98_EC4E_6C89,
    ];
    let mut blocks = px.chunks_exact(32);
    for block in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            *lane = (*lane ^ v).wrapping_mul(K).rotate_left(29);
        }
    }
    let mut h =
        lanes[0] ^ lanes[1].rotate_left(16) ^ lanes[2].rotate_left(32) ^ lanes[3].rotate_left(48);
    for &b in blocks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K);
    }
    (h ^ (h >> 31)).wrapping_mul(K)
}

/// Rows whose fingerprint appears more often than this among the old rows (the blank pixel
/// rows between lines of text) do not vote for a move: they fit many moves and tell none.
const VOTE_MAX_REPEATS: usize = 4;
/// How many of the best-voted moves have their matching rows counted exactly.
const SCROLL_CANDIDATES: usize = 4;

/// The vertical move that best explains the `new` rows from the `old` ones: `dy` > 0 when
/// the content moved up (new row i is old row i + dy), < 0 when it moved down. None when no
/// move explains clearly more rows than staying in place (and a quarter of them at least).
///
/// Every new row votes for the moves that would bring an equal old row to it (found by
/// binary search among the sorted old rows), and only the best-voted moves are counted
/// exactly: a few hundred operations for a full-height terminal. Trying every move instead
/// cost about a million comparisons a frame whenever nothing had scrolled, which under a
/// flood of full redraws is every frame.
fn find_scroll(old: &[u64], new: &[u64]) -> Option<isize> {
    let h = old.len().min(new.len());
    if h < 9 {
        return None;
    }
    let (old, new) = (&old[..h], &new[..h]);
    let matches = |dy: isize| -> usize {
        (0..h)
            .filter(|&i| {
                let s = i as isize + dy;
                s >= 0 && (s as usize) < h && old[s as usize] == new[i]
            })
            .count()
    };
    let mut sorted: Vec<(u64, usize)> = old.iter().copied().zip(0..).collect();
    sorted.sort_unstable();
    // votes[dy + h - 1] for dy in -(h - 1)..=(h - 1).
    let mut votes = vec![0u32; 2 * h - 1];
    for (i, &v) in new.iter().enumerate() {
        let lo = sorted.partition_point(|&(x, _)| x < v);
        let hi = sorted.partition_point(|&(x, _)| x <= v);
        if hi - lo > VOTE_MAX_REPEATS {
            continue;
        }
        for &(_, s) in &sorted[lo..hi] {
            if s != i {
                votes[s + h - 1 - i] += 1;
            }
        }
    }
    let mut voted: Vec<(u32, isize)> = votes
        .iter()
        .zip(-(h as isize - 1)..)
        .filter(|&(&v, _)| v > 0)
        .map(|(&v, dy)| (v, dy))
        .collect();
    // Most votes first; among equals the smaller move, upwards first.
    let rank = |&(v, dy): &(u32, isize)| (std::cmp::Reverse(v), dy.unsigned_abs(), dy < 0);
    voted.sort_unstable_by_key(rank);
    let (m, dy) = voted
        .iter()
        .take(SCROLL_CANDIDATES)
        .map(|&(_, dy)| (matches(dy), dy))
        .max_by_key(|&(m, dy)| (m, std::cmp::Reverse(dy.unsigned_abs()), dy > 0))?;
    let in_place = matches(0);
    (m >= (h / 4).max(8) && m > in_place + 8).then_some(dy)
}

/// Runs of rows that are not clean, as (first row, count), with short clean gaps between two
/// runs sent along (one rectangle costs more than a few rows).
fn dirty_runs(clean: &[bool]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, &c) in clean.iter().enumerate() {
        if c {
            continue;
        }
        match runs.last_mut() {
            Some((start, len)) if i - (*start + *len) <= MERGE_GAP => *len = i + 1 - *start,
            _ => runs.push((i, 1)),
        }
    }
    runs
}

/// Most colours an indexed encoding is tried with.
const MAX_PALETTE: usize = 16;
/// zlib level for indexed PNGs. Measured on full 1280x800 frames of a scrolling xterm
/// (bench/README.md): level 9 with PNG's adaptive filters took 7.4 ms a frame for 5.9 KB;
/// level 6 without filters takes 1.0 ms for 5.9 KB (level 3: 0.4 ms, but 7.2 KB).
const INDEXED_ZLIB_LEVEL: u8 = 6;

/// A pixel's colour as one number (alpha ignored: the picture is opaque).
fn colour(px: &[u8]) -> u32 {
    u32::from_le_bytes([px[0], px[1], px[2], 0])
}

/// `rows` (RGBA) as an indexed PNG when they hold at most `MAX_PALETTE` colours.
fn encode_indexed(w: u16, h: u16, rows: &[&[u8]]) -> Option<Vec<u8>> {
    let (w, h) = (w as usize, h as usize);
    let (palette, depth, packed) = match two_colours(w, h, rows) {
        Some((palette, packed)) => (palette, png::BitDepth::One, packed),
        None => {
            let palette = palette_of(rows)?;
            let (depth, packed) = match palette.len() {
                0..=2 => (png::BitDepth::One, pack::<1>(w, h, rows, &palette)),
                3..=4 => (png::BitDepth::Two, pack::<2>(w, h, rows, &palette)),
                _ => (png::BitDepth::Four, pack::<4>(w, h, rows, &palette)),
            };
            (palette, depth, packed)
        }
    };
    let mut out = Vec::with_capacity(packed.len() / 8 + 128);
    let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(depth);
    enc.set_palette(
        palette
            .iter()
            .flat_map(|c| {
                let [r, g, b, _] = c.to_le_bytes();
                [r, g, b]
            })
            .collect::<Vec<u8>>(),
    );
    // PNG's row filters predict bytes from their neighbours; packed palette indices are not
    // such bytes (the PNG specification advises no filter for them), and trying all five
    // per row cost more than the compression itself.
    enc.set_filter(png::Filter::NoFilter);
    enc.set_deflate_compression(png::DeflateCompression::Level(INDEXED_ZLIB_LEVEL));
    let written = enc
        .write_header()
        .and_then(|mut wr| wr.write_image_data(&packed));
    written.ok()?;
    Some(out)
}

/// Pixels of at most two colours (text on a terminal) as their palette and 1-bit indices,
/// in one pass over the pixels; None as soon as a third colour appears. A frame is larger
/// than the processor's caches, so each pass over it costs a read from memory: one pass
/// instead of a palette pass and a packing pass (`palette_of`, `pack`).
fn two_colours(w: usize, h: usize, rows: &[&[u8]]) -> Option<(Vec<u32>, Vec<u8>)> {
    let row_bytes = w.div_ceil(8);
    let mut packed = vec![0u8; row_bytes * h];
    let mut palette: Vec<u32> = Vec::with_capacity(2);
    fn index(palette: &mut Vec<u32>, c: u32) -> Option<u8> {
        match palette.iter().position(|&p| p == c) {
            Some(i) => Some(i as u8),
            None if palette.len() < 2 => {
                palette.push(c);
                Some(palette.len() as u8 - 1)
            }
            None => None,
        }
    }
    for (r, out) in rows.iter().zip(packed.chunks_exact_mut(row_bytes)) {
        let mut groups = r.chunks_exact(32);
        for (byte, g) in out.iter_mut().zip(&mut groups) {
            // Eight pixels without a branch each, once both colours are known.
            if let [a, b] | [a @ b] = palette[..] {
                let (bits, known) = g.chunks_exact(4).fold((0u8, true), |(bits, ok), px| {
                    let c = colour(px);
                    ((bits << 1) | u8::from(c != a), ok & ((c == a) | (c == b)))
                });
                if known {
                    *byte = bits;
                    continue;
                }
            }
            let mut bits = 0u8;
            for px in g.chunks_exact(4) {
                bits = (bits << 1) | index(&mut palette, colour(px))?;
            }
            *byte = bits;
        }
        let rest = groups.remainder();
        if !rest.is_empty() {
            let mut bits = 0u8;
            for px in rest.chunks_exact(4) {
                bits = (bits << 1) | index(&mut palette, colour(px))?;
            }
            out[row_bytes - 1] = bits << (8 - rest.len() / 4);
        }
    }
    Some((palette, packed))
}

/// The colours of `rows` in order of appearance; None when there are more than
/// `MAX_PALETTE`. Screen text has two colours: eight pixels at a time are checked against
/// the first two found, with no branch per pixel (four times faster on a terminal's frame
/// than looking at every pixel), and only groups holding another colour are looked at
/// pixel by pixel.
fn palette_of(rows: &[&[u8]]) -> Option<Vec<u32>> {
    let mut palette: Vec<u32> = Vec::with_capacity(MAX_PALETTE);
    // Most pixels repeat the one before, so most need one comparison.
    fn each(palette: &mut Vec<u32>, pixels: &[u8], last: &mut u32) -> Option<()> {
        for px in pixels.chunks_exact(4) {
            let c = colour(px);
            if c == *last {
                continue;
            }
            *last = c;
            if !palette.contains(&c) {
                if palette.len() == MAX_PALETTE {
                    return None;
                }
                palette.push(c);
            }
        }
        Some(())
    }
    let (mut a, mut b) = (None, None);
    for r in rows {
        let mut last = u32::MAX;
        let mut groups = r.chunks_exact(32);
        for g in &mut groups {
            if let (Some(a), Some(b)) = (a, b) {
                let known = g.chunks_exact(4).fold(true, |ok, px| {
                    let c = colour(px);
                    ok & ((c == a) | (c == b))
                });
                if known {
                    continue;
                }
            }
            each(&mut palette, g, &mut last)?;
            if b.is_none() {
                (a, b) = (palette.first().copied(), palette.get(1).copied());
            }
        }
        each(&mut palette, groups.remainder(), &mut last)?;
        if b.is_none() {
            (a, b) = (palette.first().copied(), palette.get(1).copied());
        }
    }
    Some(palette)
}

/// The rows' pixels as palette indices of `BITS` bits, most significant first, each row
/// starting on a byte (PNG's layout). Every colour is in `palette`.
fn pack<const BITS: usize>(w: usize, h: usize, rows: &[&[u8]], palette: &[u32]) -> Vec<u8> {
    let per_byte = 8 / BITS;
    let row_bytes = w.div_ceil(per_byte);
    let mut packed = vec![0u8; row_bytes * h];
    let first = palette.first().copied().unwrap_or(0);
    for (r, out) in rows.iter().zip(packed.chunks_exact_mut(row_bytes)) {
        let (mut last, mut last_index) = (u32::MAX, 0u8);
        let mut index = |px: &[u8]| -> u8 {
            let c = colour(px);
            if BITS == 1 {
                // Two colours at most: no search, no branch.
                return u8::from(c != first);
            }
            if c != last {
                last = c;
                last_index = palette.iter().position(|&p| p == c).unwrap_or(0) as u8;
            }
            last_index
        };
        let mut groups = r.chunks_exact(4 * per_byte);
        for (byte, group) in out.iter_mut().zip(&mut groups) {
            *byte = group
                .chunks_exact(4)
                .fold(0u8, |b, px| (b << BITS) | index(px));
        }
        let rest = groups.remainder();
        if !rest.is_empty() {
            let n = rest.len() / 4;
            let b = rest
                .chunks_exact(4)
                .fold(0u8, |b, px| (b << BITS) | index(px));
            out[row_bytes - 1] = b << (BITS * (per_byte - n));
        }
    }
    packed
}

/// Encodes RGB pixels as a PNG, tuned for speed (screen content compresses well anyway).
pub fn encode_png(w: u16, h: u16, rgb: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgb.len() / 8 + 64);
    let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let written = enc
        .write_header()
        .and_then(|mut wr| wr.write_image_data(rgb));
    if written.is_err() {
        // Only possible with a size mismatch, which `encode` rules out.
        return Vec::new();
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    impl DesktopScreen {
        fn take_now(&mut self, rects: &[FrameRect]) -> Arc<[FrameRect]> {
            self.take(rects, Instant::now())
        }

        /// The size of the region's exact PNG.
        fn refine_dry_run(&self, (x, y, w, h): (usize, usize, usize, usize)) -> usize {
            self.encode(x as u16, y as u16, w as u16, h as u16, false)
                .1
                .len()
        }
    }

    fn raw(x: u16, y: u16, w: u16, h: u16, rgba: [u8; 4]) -> FrameRect {
        let data: Vec<u8> = std::iter::repeat_n(rgba, w as usize * h as usize)
            .flatten()
            .collect();
        FrameRect {
            x,
            y,
            width: w,
            height: h,
            encoding: RAW_RGBA,
            data: data.into(),
        }
    }

    /// A raw rectangle of the given RGBA pixels.
    fn raw_pixels(x: usize, y: usize, w: usize, h: usize, data: Vec<u8>) -> FrameRect {
        FrameRect {
            x: x as u16,
            y: y as u16,
            width: w as u16,
            height: h as u16,
            encoding: RAW_RGBA,
            data: data.into(),
        }
    }

    /// A PNG's width, height and RGB pixels (indexed ones expanded).
    pub(crate) fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
        dec.set_transformations(png::Transformations::EXPAND);
        let mut reader = dec.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("png frame");
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn rectangles_are_painted_clipped_and_encoded_as_png() {
        let mut d = DesktopScreen::new(64, 32);
        let out = d.take_now(&[
            raw(10, 5, 4, 3, [200, 10, 20, 255]),
            raw(62, 30, 8, 8, [1, 2, 3, 255]),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(d.pixel(10, 5), Some([200, 10, 20, 255]));
        assert_eq!(d.pixel(13, 7), Some([200, 10, 20, 255]));
        assert_eq!(d.pixel(14, 7), Some([0, 0, 0, 0]));
        // The second one is clipped to the desktop's edge.
        assert_eq!((out[1].width, out[1].height), (2, 2));
        assert_eq!(d.pixel(63, 31), Some([1, 2, 3, 255]));
        let (w, h, rgb) = decode(&out[0].data);
        assert_eq!((w, h), (4, 3));
        assert_eq!(&rgb[..3], &[200, 10, 20]);
        assert_eq!(out[0].encoding, PNG);
        // The snapshot is the whole picture.
        let (w, h, rgb) = decode(&d.snapshot_png());
        assert_eq!((w, h), (64, 32));
        let at = (5 * 64 + 10) * 3;
        assert_eq!(&rgb[at..at + 3], &[200, 10, 20]);
    }

    #[test]
    fn few_colours_are_indexed_many_are_rgb_and_both_round_trip() {
        let mut d = DesktopScreen::new(40, 20);
        // Text-like: two colours.
        d.take_now(&[
            raw(0, 0, 40, 20, [255, 255, 255, 255]),
            raw(3, 3, 5, 2, [0, 0, 0, 255]),
        ]);
        let png_bytes = d.snapshot_png();
        let info = png::Decoder::new(std::io::Cursor::new(&png_bytes))
            .read_info()
            .expect("png")
            .info()
            .clone();
        assert_eq!(info.color_type, png::ColorType::Indexed);
        assert_eq!(info.bit_depth, png::BitDepth::One);
        let (_, _, rgb) = decode(&png_bytes);
        assert_eq!(&rgb[..3], &[255, 255, 255]);
        let at = (3 * 40 + 3) * 3;
        assert_eq!(&rgb[at..at + 3], &[0, 0, 0]);
        // A gradient: more than 16 colours, RGB.
        let data: Vec<u8> = (0..40 * 20)
            .flat_map(|i| [(i % 256) as u8, (i / 3 % 256) as u8, 7, 255])
            .collect();
        let grad = FrameRect {
            x: 0,
            y: 0,
            width: 40,
            height: 20,
            encoding: RAW_RGBA,
            data: data.clone().into(),
        };
        let out = d.take_now(&[grad]);
        let info = png::Decoder::new(std::io::Cursor::new(&out[0].data))
            .read_info()
            .expect("png")
            .info()
            .clone();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let (_, _, rgb) = decode(&out[0].data);
        for i in [0usize, 77, 799] {
            assert_eq!(&rgb[i * 3..i * 3 + 3], &data[i * 4..i * 4 + 3]);
        }
    }

    #[test]
    fn every_palette_size_and_row_width_round_trips_at_its_bit_depth() {
        for colours in [1usize, 2, 3, 4, 5, 9, 16] {
            for w in 1u16..=9 {
                let h = 3u16;
                let palette: Vec<[u8; 4]> = (0..colours)
                    .map(|i| [(i * 37) as u8, (i * 11) as u8, 200 - i as u8, 255])
                    .collect();
                // Every colour appears (first row), then a scrambled pattern.
                let data: Vec<u8> = (0..w as usize * h as usize)
                    .flat_map(|i| palette[(i * 7 + i / 3) % colours])
                    .collect();
                let mut d = DesktopScreen::new(16, 8);
                let out = d.take_now(&[FrameRect {
                    x: 2,
                    y: 1,
                    width: w,
                    height: h,
                    encoding: RAW_RGBA,
                    data: data.clone().into(),
                }]);
                let info = png::Decoder::new(std::io::Cursor::new(&out[0].data))
                    .read_info()
                    .expect("png")
                    .info()
                    .clone();
                let used = (0..w as usize * h as usize)
                    .map(|i| (i * 7 + i / 3) % colours)
                    .collect::<std::collections::HashSet<_>>()
                    .len();
                let want_depth = match used {
                    0..=2 => png::BitDepth::One,
                    3..=4 => png::BitDepth::Two,
                    _ => png::BitDepth::Four,
                };
                assert_eq!(info.color_type, png::ColorType::Indexed);
                assert_eq!(info.bit_depth, want_depth, "{used} colours, width {w}");
                let (pw, ph, rgb) = decode(&out[0].data);
                assert_eq!((pw, ph), (w as u32, h as u32));
                for i in 0..w as usize * h as usize {
                    assert_eq!(
                        &rgb[i * 3..i * 3 + 3],
                        &data[i * 4..i * 4 + 3],
                        "{colours} colours, width {w}, pixel {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn malformed_rectangles_are_dropped() {
        let mut d = DesktopScreen::new(16, 16);
        let mut short = raw(0, 0, 4, 4, [9, 9, 9, 255]);
        short.data = Arc::from(&short.data[..10]);
        let out = d.take_now(&[
            short,
            raw(20, 20, 2, 2, [1, 1, 1, 255]),
            raw(0, 0, 0, 5, [1, 1, 1, 1]),
        ]);
        assert!(out.is_empty());
        assert_eq!(d.pixel(0, 0), Some([0, 0, 0, 0]));
    }

    /// A "browser": applies rectangles (PNG or copy) to its own RGB picture, in order.
    fn apply(pic: &mut [u8], width: usize, rects: &[FrameRect]) {
        for r in rects {
            let (x, y, w, h) = (
                r.x as usize,
                r.y as usize,
                r.width as usize,
                r.height as usize,
            );
            if r.encoding == COPY {
                let sx = u16::from_be_bytes([r.data[0], r.data[1]]) as usize;
                let sy = u16::from_be_bytes([r.data[2], r.data[3]]) as usize;
                let src: Vec<u8> = (0..h)
                    .flat_map(|row| {
                        let at = ((sy + row) * width + sx) * 3;
                        pic[at..at + w * 3].to_vec()
                    })
                    .collect();
                for row in 0..h {
                    let at = ((y + row) * width + x) * 3;
                    pic[at..at + w * 3].copy_from_slice(&src[row * w * 3..(row + 1) * w * 3]);
                }
                continue;
            }
            let (pw, ph, rgb) = match r.encoding {
                JPEG => decode_jpeg(&r.data),
                _ => decode(&r.data),
            };
            assert_eq!((pw as usize, ph as usize), (w, h));
            for row in 0..h {
                let at = ((y + row) * width + x) * 3;
                pic[at..at + w * 3].copy_from_slice(&rgb[row * w * 3..(row + 1) * w * 3]);
            }
        }
    }

    fn decode_jpeg(jpeg: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut dec = jpeg_decoder::Decoder::new(jpeg);
        let rgb = dec.decode().expect("jpeg");
        let info = dec.info().expect("jpeg info");
        assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
        (u32::from(info.width), u32::from(info.height), rgb)
    }

    /// Photograph-like pixels: smooth light with grain, thousands of colours. `seed` shifts
    /// the light and the grain (frames of a moving picture).
    fn photo(w: usize, h: usize, seed: u64) -> Vec<u8> {
        let mut g = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..w * h)
            .flat_map(|i| {
                let (x, y) = ((i % w) as u64, (i / w) as u64);
                g ^= g << 13;
                g ^= g >> 7;
                g ^= g << 17;
                let grain = (g % 24) as u8;
                let r = ((x * 255 / w as u64 + seed * 9) % 200) as u8 + grain;
                let gr = ((y * 255 / h as u64 + seed * 5) % 200) as u8 + grain;
                let b = (((x + y) * 128 / (w + h) as u64 + seed) % 200) as u8 + grain / 2;
                [r, gr, b, 255]
            })
            .collect()
    }

    fn rgb_of(rgba: &[u8]) -> Vec<u8> {
        rgba.chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect()
    }

    /// The browser's picture (RGB, `width` wide) within `x, y, w, h`.
    fn region(pic: &[u8], width: usize, (x, y, w, h): (usize, usize, usize, usize)) -> Vec<u8> {
        (y..y + h)
            .flat_map(|row| pic[(row * width + x) * 3..(row * width + x + w) * 3].to_vec())
            .collect()
    }

    fn mean_error(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let sum: u64 = a
            .iter()
            .zip(b)
            .map(|(p, q)| u64::from(p.abs_diff(*q)))
            .sum();
        sum as f64 / a.len() as f64
    }

    #[test]
    fn a_redraw_of_what_the_picture_holds_sends_only_the_rows_that_changed() {
        // A desktop with a photograph on it and a text window beside it, as a server redraws
        // it whole after output was suppressed.
        let (width, height) = (320usize, 240usize);
        let mut desktop = vec![0u8; width * height * 4];
        let put = |desktop: &mut Vec<u8>, (x, y, w, h): (usize, usize, usize, usize), px: &[u8]| {
            for row in 0..h {
                let at = ((y + row) * width + x) * 4;
                desktop[at..at + w * 4].copy_from_slice(&px[row * w * 4..(row + 1) * w * 4]);
            }
        };
        put(&mut desktop, (100, 60, 200, 150), &photo(200, 150, 3));
        put(&mut desktop, (0, 0, 96, 240), &lines(0, 96, 240));
        let mut d = DesktopScreen::new(width as u16, height as u16);
        let mut browser = vec![0u8; width * height * 3];
        let t = Instant::now();
        let whole = |px: &Vec<u8>| raw_pixels(0, 0, width, height, px.clone());
        apply(&mut browser, width, &d.take(&[whole(&desktop)], t));
        // Redrawn as it is, twice within the second: nothing is sent, and the photograph is
        // not taken for a moving picture.
        for n in 1..=2u32 {
            let out = d.take(
                &[whole(&desktop)],
                t + Duration::from_millis(100 * u64::from(n)),
            );
            assert!(out.is_empty(), "redraw {n} sent {} rectangles", out.len());
        }
        assert_eq!(d.refine_due(), None, "nothing went lossy");
        // Redrawn with one text line changed: only its rows travel, exactly.
        put(&mut desktop, (0, 200, 96, 10), &lines(90, 96, 10));
        let out = d.take(&[whole(&desktop)], t + Duration::from_millis(300));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].y, out[0].height), (200, 10));
        assert_eq!(out[0].encoding, PNG);
        apply(&mut browser, width, &out);
        assert!(
            browser == rgb_of(&desktop),
            "the browser's picture is the desktop"
        );
        // A redraw that changed most of it goes whole, as before.
        let mut busy = desktop.clone();
        put(&mut busy, (0, 0, 96, 240), &lines(500, 96, 240));
        let out = d.take(&[whole(&busy)], t + Duration::from_millis(400));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].y, out[0].height), (0, 240));
    }

    #[test]
    fn a_moving_photograph_goes_as_jpeg_and_again_exactly_once_it_is_still() {
        let (width, height) = (320usize, 240usize);
        let mut d = DesktopScreen::new(width as u16, height as u16);
        let mut browser = vec![0u8; width * height * 3];
        let (x, y, w, h) = (40usize, 30usize, 200usize, 150usize);
        let slide = |seed: u64| raw_pixels(x, y, w, h, photo(w, h, seed));
        // A photograph that appears goes exactly (it may stay: one PNG costs less than a
        // JPEG and a PNG).
        let t = Instant::now();
        let first = d.take(&[slide(7)], t);
        assert_eq!(first[0].encoding, PNG);
        assert_eq!(d.refine_due(), None);
        apply(&mut browser, width, &first);
        // Another in its place soon after: moving, so JPEG.
        let pixels = photo(w, h, 1);
        let t0 = t + crate::lossy::MOVING_WITHIN / 3;
        let out = d.take(&[slide(1)], t0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].encoding, JPEG);
        // Far smaller than the exact picture, close to it, and not exact.
        let exact_png = d.refine_dry_run((x, y, w, h));
        assert!(
            out[0].data.len() * 3 < exact_png,
            "JPEG {} bytes, PNG {exact_png}",
            out[0].data.len()
        );
        apply(&mut browser, width, &out);
        let shown = region(&browser, width, (x, y, w, h));
        let err = mean_error(&shown, &rgb_of(&pixels));
        assert!(err > 0.0 && err < 8.0, "mean error {err}");
        // Not before it has been still for REFINE_AFTER; then once, exactly.
        assert_eq!(d.refine_due(), Some(t0 + crate::lossy::REFINE_AFTER));
        assert!(d.refine(t0 + crate::lossy::REFINE_AFTER / 2).is_empty());
        let refined = d.refine(t0 + crate::lossy::REFINE_AFTER);
        assert_eq!(refined.len(), 1);
        assert_eq!(refined[0].encoding, PNG);
        apply(&mut browser, width, &refined);
        assert_eq!(region(&browser, width, (x, y, w, h)), rgb_of(&pixels));
        assert_eq!(d.refine_due(), None);
        assert!(d.refine(t0 + crate::lossy::REFINE_AFTER * 10).is_empty());
        // The keyframe is exact whatever the browsers were sent.
        let (_, _, snap) = decode(&d.snapshot_png());
        assert_eq!(region(&snap, width, (x, y, w, h)), rgb_of(&pixels));

        // A small region of many colours, moving, and anything when lossless only: PNG,
        // nothing to refine.
        let small = |seed: u64| raw_pixels(0, 0, 30, 30, photo(30, 30, seed));
        for seed in 2..5 {
            assert_eq!(d.take_now(&[small(seed)])[0].encoding, PNG);
        }
        d.set_lossless_only(true);
        d.resize(width as u16, height as u16);
        for seed in 2..5 {
            assert_eq!(d.take_now(&[slide(seed)])[0].encoding, PNG);
        }
        assert_eq!(d.refine_due(), None);
    }

    #[test]
    fn a_moving_photograph_is_refined_only_where_it_came_to_rest() {
        let (width, height) = (400usize, 300usize);
        let mut d = DesktopScreen::new(width as u16, height as u16);
        let mut browser = vec![0u8; width * height * 3];
        let whole = |data: Vec<u8>| raw_pixels(0, 0, width, height, data);
        // A page of text with a photograph in it, scrolled up by 30 pixels every 100 ms. The
        // first page goes exactly; the photograph's last rows come in with a scroll, moving,
        // as JPEG.
        let page = |shift: usize| -> Vec<u8> {
            let mut p = lines(0, width, height + 400);
            let pic = photo(160, 120, 3);
            for row in 0..120 {
                let at = ((200 + row) * width + 100) * 4;
                p[at..at + 160 * 4].copy_from_slice(&pic[row * 160 * 4..(row + 1) * 160 * 4]);
            }
            p[shift * width * 4..(shift + height) * width * 4].to_vec()
        };
        let t0 = Instant::now();
        let mut t = t0;
        let mut sent_jpeg = false;
        for step in 0..6 {
            t = t0 + std::time::Duration::from_millis(100 * step as u64);
            // Nothing settles while it moves.
            assert!(d.refine(t).is_empty(), "refined while moving");
            let out = d.take(&[whole(page(step * 30))], t);
            sent_jpeg |= out.iter().any(|r| r.encoding == JPEG);
            if step > 0 {
                assert_eq!(out[0].encoding, COPY, "step {step} was not a scroll");
            }
            apply(&mut browser, width, &out);
        }
        assert!(sent_jpeg);
        let gateway = rgb_of(&d.rgba);
        assert_ne!(browser, gateway, "nothing was lossy");
        // At rest: what is refined covers the photograph where it now is (rows 50..170).
        let refined = d.refine(t + crate::lossy::REFINE_AFTER);
        assert!(!refined.is_empty());
        assert!(refined.iter().all(|r| r.encoding == PNG));
        apply(&mut browser, width, &refined);
        assert_eq!(browser, gateway);
        // What was sent lossy: the photograph's last rows, which came in with the page's rows
        // 300..330 and are now at 150..180. Nothing else was, wherever it moved.
        for r in refined.iter() {
            assert!(
                r.y >= 150 && r.y as usize + r.height as usize <= 180,
                "refined {r:?}"
            );
        }
    }

    /// A terminal-like picture: row `i` of text line `l` has a pattern that depends on `l`.
    fn lines(first_line: usize, w: usize, h: usize) -> Vec<u8> {
        (0..h)
            .flat_map(|y| {
                let line = first_line + y / 10;
                (0..w).flat_map(move |x| {
                    let mut v = ((x / 3) as u64) << 40 | (line as u64) << 8 | (y % 10) as u64;
                    v ^= v >> 33;
                    v = v.wrapping_mul(0xff51_afd7_ed55_8ccd);
                    v ^= v >> 29;
                    let ink = v.is_multiple_of(5);
                    if ink {
                        [0, 0, 0, 255]
                    } else {
                        [255, 255, 255, 255]
                    }
                })
            })
            .collect()
    }

    #[test]
    fn a_scroll_is_sent_as_a_copy_and_the_new_rows() {
        let (w, h) = (200usize, 120usize);
        let mut d = DesktopScreen::new(w as u16, h as u16);
        let mut browser = vec![0u8; w * h * 3];
        let first = FrameRect {
            x: 0,
            y: 0,
            width: w as u16,
            height: h as u16,
            encoding: RAW_RGBA,
            data: lines(0, w, h).into(),
        };
        apply(&mut browser, w, &d.take_now(&[first]));
        // Three text lines scroll off the top (30 rows); the area below row 10 is redrawn.
        let scrolled = lines(3, w, h);
        let redraw = FrameRect {
            x: 0,
            y: 10,
            width: w as u16,
            height: (h - 10) as u16,
            encoding: RAW_RGBA,
            data: scrolled[10 * w * 4..].to_vec().into(),
        };
        let out = d.take_now(&[redraw]);
        assert_eq!(
            out[0].encoding,
            COPY,
            "{:?}",
            out.iter().map(|r| r.encoding).collect::<Vec<_>>()
        );
        assert_eq!(
            (out[0].x, out[0].y, out[0].width, out[0].height),
            (0, 10, w as u16, (h - 40) as u16)
        );
        assert_eq!(&out[0].data[..], &[0, 0, 0, 40]);
        // Only the new rows at the bottom travel as pictures.
        let sent_rows: usize = out[1..].iter().map(|r| r.height as usize).sum();
        assert!(sent_rows <= 30 + MERGE_GAP, "{sent_rows} rows sent");
        apply(&mut browser, w, &out);
        // The browser's picture and the gateway's are the scrolled picture (below row 10,
        // which was not redrawn).
        for y in 10..h {
            for x in 0..w {
                let want = &scrolled[(y * w + x) * 4..(y * w + x) * 4 + 3];
                assert_eq!(
                    &browser[(y * w + x) * 3..(y * w + x) * 3 + 3],
                    want,
                    "browser at ({x}, {y})"
                );
                assert_eq!(
                    &d.pixel(x as u16, y as u16).unwrap()[..3],
                    want,
                    "gateway at ({x}, {y})"
                );
            }
        }
        // Scrolling back down (content moves down) is recognised too.
        let back = FrameRect {
            x: 0,
            y: 0,
            width: w as u16,
            height: h as u16,
            encoding: RAW_RGBA,
            data: lines(1, w, h).into(),
        };
        let out = d.take_now(&[back]);
        assert_eq!(out[0].encoding, COPY);
        assert_eq!(&out[0].data[..], &[0, 0, 0, 0]);
        assert_eq!(out[0].y, 20);
        apply(&mut browser, w, &out);
        let want = lines(1, w, h);
        for i in 0..w * h {
            assert_eq!(&browser[i * 3..i * 3 + 3], &want[i * 4..i * 4 + 3]);
        }
    }

    /// Every move tried in turn: what `find_scroll` computed before it voted.
    fn every_move(old: &[u64], new: &[u64]) -> Option<isize> {
        let h = old.len() as isize;
        let matches = |dy: isize| -> usize {
            (0..h)
                .filter(|&i| {
                    (0..h).contains(&(i + dy)) && old[(i + dy) as usize] == new[i as usize]
                })
                .count()
        };
        let in_place = matches(0);
        let mut best = (0usize, 0isize);
        for step in 1..h - 8 {
            for dy in [step, -step] {
                let m = matches(dy);
                if m > best.0 {
                    best = (m, dy);
                }
            }
        }
        let (m, dy) = best;
        (dy != 0 && m >= (old.len() / 4).max(8) && m > in_place + 8).then_some(dy)
    }

    /// Row fingerprints of a terminal: 13 pixel rows a text line, the first two blank (the
    /// same fingerprint everywhere), the others depending on the line's text.
    fn terminal_rows(first_line: u64, rows: usize, changed: &[usize]) -> Vec<u64> {
        (0..rows)
            .map(|y| {
                let line = first_line + (y / 13) as u64;
                let r = (y % 13) as u64;
                if r < 2 {
                    7
                } else if changed.contains(&y) {
                    0xdead_0000 + y as u64
                } else {
                    (line << 8 | r).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                }
            })
            .collect()
    }

    #[test]
    fn voting_finds_the_move_that_trying_every_move_finds() {
        let rows = 800;
        let old = terminal_rows(100, rows, &[]);
        let cases = vec![
            ("three lines up", terminal_rows(103, rows, &[])),
            ("one line down", terminal_rows(99, rows, &[])),
            ("forty lines up", terminal_rows(140, rows, &[])),
            (
                "up, with a few rows redrawn",
                terminal_rows(101, rows, &[5, 300, 301, 799]),
            ),
            ("nothing moved", old.clone()),
            ("all new text", terminal_rows(10_000, rows, &[])),
            ("blank", vec![7; rows]),
        ];
        // Moves of a few pixels (not whole lines), both ways, from a picture of its own.
        let tall = terminal_rows(90, rows + 64, &[]);
        let shifted = |dy: isize| -> Vec<u64> {
            (0..rows)
                .map(|i| tall[(i as isize + 32 + dy) as usize])
                .collect()
        };
        let base = shifted(0);
        let mut found = 0;
        for (what, new) in &cases {
            let want = every_move(&old, new);
            assert_eq!(find_scroll(&old, new), want, "{what}");
            found += usize::from(want.is_some());
        }
        for dy in [1isize, -1, 5, -7, 20] {
            let want = every_move(&base, &shifted(dy));
            assert_eq!(want, Some(dy), "the reference finds the pixel move {dy}");
            assert_eq!(find_scroll(&base, &shifted(dy)), want, "pixel move {dy}");
        }
        assert_eq!(find_scroll(&old, &cases[0].1), Some(39));
        assert_eq!(find_scroll(&old, &cases[1].1), Some(-13));
        assert!(found >= 4, "the cases include moves the reference finds");
    }

    #[test]
    fn a_flood_of_whole_desktop_scrolls_is_sent_as_copies_frame_after_frame() {
        // The same rectangle every frame: the picture's rows are not hashed again, and what
        // was painted in between (a small rectangle) is not taken for what was there before.
        let (w, h) = (160usize, 130usize);
        let mut d = DesktopScreen::new(w as u16, h as u16);
        let mut browser = vec![0u8; w * h * 3];
        let whole = |data: Vec<u8>| raw_pixels(0, 0, w, h, data);
        apply(&mut browser, w, &d.take_now(&[whole(lines(0, w, h))]));
        let mut want = Vec::new();
        for (frame, first_line) in [2usize, 3, 5, 6].into_iter().enumerate() {
            let mut next = lines(first_line, w, h);
            if frame == 2 {
                // A small change painted before this frame, somewhere in the rows that move.
                let patch: Vec<u8> = [9u8, 9, 9, 255].repeat(w * 5);
                apply(
                    &mut browser,
                    w,
                    &d.take_now(&[FrameRect {
                        x: 0,
                        y: 60,
                        width: w as u16,
                        height: 5,
                        encoding: RAW_RGBA,
                        data: patch.into(),
                    }]),
                );
                assert_eq!(d.pixel(3, 62), Some([9, 9, 9, 255]));
                next = lines(first_line, w, h);
            }
            let out = d.take_now(&[whole(next.clone())]);
            assert_eq!(out[0].encoding, COPY, "frame {frame}");
            apply(&mut browser, w, &out);
            want = next;
        }
        for i in 0..w * h {
            assert_eq!(
                &browser[i * 3..i * 3 + 3],
                &want[i * 4..i * 4 + 3],
                "pixel {i}"
            );
        }
    }

    #[test]
    fn a_picture_that_did_not_move_is_not_a_scroll() {
        let (w, h) = (100usize, 100usize);
        let mut d = DesktopScreen::new(w as u16, h as u16);
        d.take_now(&[FrameRect {
            x: 0,
            y: 0,
            width: w as u16,
            height: h as u16,
            encoding: RAW_RGBA,
            data: lines(0, w, h).into(),
        }]);
        // The same lines with a changed colour: nothing moved.
        let recoloured: Vec<u8> = lines(0, w, h)
            .chunks(4)
            .flat_map(|p| {
                if p[0] == 0 {
                    [200, 0, 0, 255]
                } else {
                    [p[0], p[1], p[2], p[3]]
                }
            })
            .collect();
        let out = d.take_now(&[FrameRect {
            x: 0,
            y: 0,
            width: w as u16,
            height: h as u16,
            encoding: RAW_RGBA,
            data: recoloured.into(),
        }]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].encoding, PNG);
        assert_eq!(d.pixel(0, 0).map(|p| p[0]), Some(200));
    }
}
