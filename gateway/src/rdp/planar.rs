//! Why: RDP 6.0 planar bitmaps ([MS-RDPEGDI] 2.2.2.5.1) are what xrdp and Windows send at
//! the 32 bpp the gateway asks for. IronRDP's decoder copies every run through a small buffer
//! and then interleaves the planes into RGB, which the picture then converts again; on a
//! scrolling terminal that was a third of the gateway's CPU. Here the RLE planes are decoded
//! in place and interleaved once, straight into the picture's RGBA. Colour-loss (YCoCg)
//! bitmaps are left to IronRDP's decoder.

use ironrdp_pdu::bitmap::rdp6::{BitmapStream, ColorPlaneDefinition};

/// What a planar bitmap decodes to.
pub enum Planes<'a> {
    /// The red, green and blue planes, one after the other, each `width * height` bytes with
    /// the bottom scanline first.
    Rgb(&'a [u8]),
    /// Colour-loss (YCoCg) planes: not decoded here.
    NotRgb,
}

#[derive(Default)]
pub struct PlanarDecoder {
    planes: Vec<u8>,
}

impl PlanarDecoder {
    /// Decodes a planar bitmap of `width` x `height` pixels; an error names what is wrong.
    pub fn decode<'a>(
        &'a mut self,
        data: &'a [u8],
        width: usize,
        height: usize,
    ) -> Result<Planes<'a>, &'static str> {
        let stream = ironrdp_core::decode::<BitmapStream<'_>>(data)
            .map_err(|_| "a planar bitmap's header did not decode")?;
        if stream.header.color_plane_definition != ColorPlaneDefinition::Argb {
            return Ok(Planes::NotRgb);
        }
        let plane = width
            .checked_mul(height)
            .filter(|n| n.checked_mul(4).is_some())
            .ok_or("a planar bitmap's size is too large")?;
        let src = stream.color_panes_data();
        let alpha = if stream.header.use_alpha { plane } else { 0 };
        if !stream.header.enable_rle_compression {
            // Raw planes: alpha (discarded: the picture is opaque), red, green, blue.
            return src
                .get(alpha..alpha + 3 * plane)
                .map(Planes::Rgb)
                .ok_or("a raw planar bitmap is shorter than its size");
        }
        self.planes.resize(3 * plane + SLACK, 0);
        let mut at = 0;
        if stream.header.use_alpha {
            // Decoded into the red plane's place, which the red plane then overwrites.
            at += rle_plane(src, &mut self.planes, plane, width)?;
        }
        for p in 0..3 {
            let rest = src.get(at..).ok_or("a planar bitmap ended early")?;
            at += rle_plane(rest, &mut self.planes[p * plane..], plane, width)?;
        }
        Ok(Planes::Rgb(&self.planes[..3 * plane]))
    }
}

/// Bytes after the planes that a segment may spill into (see `rle_plane`).
const SLACK: usize = 48;

/// Decodes one RLE plane ([MS-RDPEGDI] 3.1.9.2) into `out[..plane]` (scanlines of `width`
/// bytes, in stream order); returns the bytes read. Segments are short (on text, a few bytes
/// each), so they are written as fixed 16- and 48-byte moves where `out` has room after
/// them: what spills over lands where later segments, later scanlines or later planes are
/// decoded, or in the slack.
fn rle_plane(
    src: &[u8],
    out: &mut [u8],
    plane: usize,
    width: usize,
) -> Result<usize, &'static str> {
    const SHORT: &str = "a planar bitmap ended early";
    if width == 0 || plane == 0 {
        return Ok(0);
    }
    if out.len() < plane {
        return Err("a planar bitmap's planes do not fit the decoder's buffer");
    }
    let mut at = 0;
    for start in (0..plane).step_by(width) {
        let (mut x, mut last) = (start, 0u8);
        let end = start + width;
        while x < end {
            let control = *src.get(at).ok_or(SHORT)?;
            at += 1;
            let (run, raw) = match control & 0x0F {
                _ if control == 0 => return Err("a planar bitmap has an empty RLE segment"),
                1 => (16 + usize::from(control >> 4), 0),
                2 => (32 + usize::from(control >> 4), 0),
                n => (usize::from(n), usize::from(control >> 4)),
            };
            if x + raw + run > end {
                return Err("a planar bitmap's RLE segment overruns its scanline");
            }
            if raw > 0 {
                match (out.get_mut(x..x + 16), src.get(at..at + 16)) {
                    (Some(d), Some(s)) => d.copy_from_slice(s),
                    _ => out[x..x + raw].copy_from_slice(src.get(at..at + raw).ok_or(SHORT)?),
                }
                at += raw;
                last = src[at - 1];
                x += raw;
            }
            match out.get_mut(x..x + 48) {
                Some(d) => d.fill(last),
                None => out[x..x + run].fill(last),
            }
            x += run;
        }
        // Every scanline after the first holds differences from the one before, each
        // stored as (magnitude << 1) | sign.
        if start > 0 {
            let (before, current) = out.split_at_mut(start);
            undelta(&mut current[..width], &before[start - width..start]);
        }
    }
    Ok(at)
}

/// `line` (differences, each (magnitude << 1) | sign) plus the line above it. Eight bytes at
/// a time in a u64: byte shifts have no vector instruction, and the plain loop ran one byte
/// at a time.
fn undelta(line: &mut [u8], above: &[u8]) {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const SEVEN: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const TOP: u64 = 0x8080_8080_8080_8080;
    let mut lines = line.chunks_exact_mut(8);
    let mut aboves = above.chunks_exact(8);
    for (l, a) in (&mut lines).zip(&mut aboves) {
        let (mut lw, mut aw) = ([0u8; 8], [0u8; 8]);
        lw.copy_from_slice(l);
        aw.copy_from_slice(a);
        let (v, a) = (u64::from_le_bytes(lw), u64::from_le_bytes(aw));
        // Per byte: the magnitude, inverted where the sign bit is set (0xFF * 1 per byte).
        let d = ((v >> 1) & SEVEN) ^ ((v & LOW) * 0xFF);
        // Per byte a + d, without carries between bytes.
        let sum = ((a & SEVEN) + (d & SEVEN)) ^ ((a ^ d) & TOP);
        l.copy_from_slice(&sum.to_le_bytes());
    }
    for (v, a) in lines.into_remainder().iter_mut().zip(aboves.remainder()) {
        let d = (*v >> 1) ^ 0u8.wrapping_sub(*v & 1);
        *v = a.wrapping_add(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_graphics::rdp6::{BitmapStreamDecoder, BitmapStreamEncoder, RgbChannels};

    /// Pictures with long runs, short runs and noise, so that every segment kind appears.
    fn picture(w: usize, h: usize, seed: u32) -> Vec<u8> {
        (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                let v = (i as u32).wrapping_mul(2654435761).wrapping_add(seed);
                match (x / 7 + y / 3 + seed as usize) % 4 {
                    0 => [255, 255, 255],
                    1 => [(y * 3) as u8, 40, 200],
                    2 => [(v >> 8) as u8, (v >> 16) as u8, (v >> 24) as u8],
                    _ => [(x * 5) as u8, (x * 5 + y) as u8, 7],
                }
            })
            .collect()
    }

    /// IronRDP's decoding: RGB rows, bottom scanline first.
    fn ironrdp(data: &[u8], w: usize, h: usize) -> Vec<u8> {
        let mut out = Vec::new();
        BitmapStreamDecoder::default()
            .decode_bitmap_stream_to_rgb24(data, &mut out, w, h)
            .expect("IronRDP decodes it");
        out
    }

    fn ours(data: &[u8], w: usize, h: usize) -> Vec<u8> {
        let mut d = PlanarDecoder::default();
        let Ok(Planes::Rgb(p)) = d.decode(data, w, h) else {
            panic!("not decoded here");
        };
        let n = w * h;
        (0..n)
            .flat_map(|i| [p[i], p[n + i], p[2 * n + i]])
            .collect()
    }

    #[test]
    fn rle_and_raw_planes_decode_as_ironrdp_decodes_them() {
        for (w, h) in [(1, 1), (3, 2), (17, 5), (64, 64), (100, 9)] {
            for rle in [true, false] {
                let rgb = picture(w, h, (w * h) as u32);
                let mut data = vec![0u8; rgb.len() * 2 + 64];
                let n = BitmapStreamEncoder::new(w, h)
                    .encode_bitmap::<RgbChannels>(&rgb, &mut data, rle)
                    .expect("encoded");
                data.truncate(n);
                assert_eq!(
                    ours(&data, w, h),
                    ironrdp(&data, w, h),
                    "{w}x{h}, rle {rle}"
                );
            }
        }
    }

    /// One plane as raw-only RLE segments of the differences IronRDP's encoder would store.
    fn raw_segments(plane: &[u8], w: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (y, line) in plane.chunks(w).enumerate() {
            let coded: Vec<u8> = line
                .iter()
                .enumerate()
                .map(|(x, &v)| {
                    if y == 0 {
                        return v;
                    }
                    let d = v.wrapping_sub(plane[(y - 1) * w + x]);
                    if d < 128 {
                        d << 1
                    } else {
                        ((255 - d) << 1) | 1
                    }
                })
                .collect();
            for chunk in coded.chunks(15) {
                out.push((chunk.len() as u8) << 4);
                out.extend_from_slice(chunk);
            }
        }
        out
    }

    #[test]
    fn an_alpha_plane_is_skipped_and_differences_both_ways_resolve() {
        let (w, h) = (23, 6);
        let rgb = picture(w, h, 9);
        let plane = |c: usize| -> Vec<u8> { rgb.iter().skip(c).step_by(3).copied().collect() };
        // Header: RLE, alpha present (NA clear), no colour loss.
        let mut data = vec![0x10];
        data.extend(raw_segments(&vec![0xFF; w * h], w));
        for c in 0..3 {
            data.extend(raw_segments(&plane(c), w));
        }
        assert_eq!(ours(&data, w, h), ironrdp(&data, w, h));
        assert_eq!(ours(&data, w, h), rgb);
    }

    #[test]
    fn malformed_planes_are_errors_not_panics() {
        let (w, h) = (40, 8);
        let rgb = picture(w, h, 3);
        let mut data = vec![0u8; rgb.len() * 2 + 64];
        let n = BitmapStreamEncoder::new(w, h)
            .encode_bitmap::<RgbChannels>(&rgb, &mut data, true)
            .expect("encoded");
        let mut d = PlanarDecoder::default();
        for cut in [1, 2, n / 3, n - 1] {
            assert!(d.decode(&data[..cut], w, h).is_err(), "cut at {cut}");
        }
        // A segment longer than its scanline.
        assert!(d.decode(&[0x10, 0xF2], 4, 1).is_err());
        // A zero control byte.
        assert!(d.decode(&[0x10, 0x00], 4, 1).is_err());
        // Colour loss: left to IronRDP.
        assert!(matches!(d.decode(&[0x13, 0x00], 4, 1), Ok(Planes::NotRgb)));
    }
}
