//! Why: a graphical (RDP) session's current picture, kept server-side for the same reasons as
//! a terminal's screen: a late observer or a reconnecting browser gets the whole desktop at
//! once, and the recorder takes keyframes from it. The RDP adapter hands over changed
//! rectangles as raw RGBA; this is also where they are encoded for the browser, once per
//! update whatever the number of viewers, so the live view, the recording and the replay all
//! carry the same encoded rectangles.

use std::sync::Arc;

use crate::event::FrameRect;

/// Raw pixels, 4 bytes per pixel (R, G, B, A), rows top to bottom. Only the adapter
/// produces this encoding; it never leaves the gateway.
pub const RAW_RGBA: &str = "raw-rgba";
/// What browsers, recordings and replays get.
pub const PNG: &str = "png";

/// Largest desktop side we accept (pixels).
pub const MAX_SIDE: u16 = 8192;

pub struct DesktopScreen {
    width: u16,
    height: u16,
    rgba: Vec<u8>,
}

impl DesktopScreen {
    pub fn new(width: u16, height: u16) -> Self {
        let (width, height) = (width.clamp(1, MAX_SIDE), height.clamp(1, MAX_SIDE));
        DesktopScreen {
            width,
            height,
            rgba: vec![0; width as usize * height as usize * 4],
        }
    }

    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// A new desktop size: the picture starts black; the server repaints it.
    pub fn resize(&mut self, width: u16, height: u16) {
        *self = DesktopScreen::new(width, height);
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
    /// A rectangle that is malformed or outside the desktop is clipped or dropped.
    pub fn take(&mut self, rects: &[FrameRect]) -> Arc<[FrameRect]> {
        let mut out = Vec::with_capacity(rects.len());
        for r in rects {
            if r.encoding != RAW_RGBA {
                // Already encoded (nothing produces this today): pass it on unpainted.
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
            for (row, y) in (r.y as usize..y_end).enumerate() {
                let src = &r.data[row * w * 4..row * w * 4 + cw * 4];
                let at = y * stride + r.x as usize * 4;
                self.rgba[at..at + cw * 4].copy_from_slice(src);
            }
            let clipped = FrameRect {
                x: r.x,
                y: r.y,
                width: cw as u16,
                height: (y_end - r.y as usize) as u16,
                encoding: PNG,
                data: Arc::from(self.encode(r.x, r.y, cw as u16, (y_end - r.y as usize) as u16)),
            };
            out.push(clipped);
        }
        out.into()
    }

    /// The whole picture as one PNG.
    pub fn snapshot_png(&self) -> Vec<u8> {
        self.encode(0, 0, self.width, self.height)
    }

    /// A region of the picture as a PNG. Screen content usually has few colours (text, flat
    /// widgets): with at most 16 the PNG is indexed at 1, 2 or 4 bits per pixel, which is
    /// several times smaller and faster to compress than RGB; otherwise RGB (the alpha
    /// channel carries nothing here).
    fn encode(&self, x: u16, y: u16, w: u16, h: u16) -> Vec<u8> {
        let stride = self.width as usize * 4;
        let rows = (y as usize..y as usize + h as usize)
            .map(|row| {
                let start = row * stride + x as usize * 4;
                &self.rgba[start..start + w as usize * 4]
            })
            .collect::<Vec<_>>();
        if let Some(png) = encode_indexed(w, h, &rows) {
            return png;
        }
        let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
        for r in &rows {
            for px in r.chunks_exact(4) {
                rgb.extend_from_slice(&px[..3]);
            }
        }
        encode_png(w, h, &rgb)
    }
}

/// Most colours an indexed encoding is tried with.
const MAX_PALETTE: usize = 16;

/// `rows` (RGBA) as an indexed PNG when they hold at most `MAX_PALETTE` colours.
fn encode_indexed(w: u16, h: u16, rows: &[&[u8]]) -> Option<Vec<u8>> {
    let mut palette: Vec<[u8; 3]> = Vec::with_capacity(MAX_PALETTE);
    let mut indices = Vec::with_capacity(w as usize * h as usize);
    let mut last = (0usize, [0u8; 3], false);
    for r in rows {
        for px in r.chunks_exact(4) {
            let c = [px[0], px[1], px[2]];
            // Runs of one colour are the common case: skip the search.
            if last.2 && last.1 == c {
                indices.push(last.0 as u8);
                continue;
            }
            let i = match palette.iter().position(|p| *p == c) {
                Some(i) => i,
                None if palette.len() < MAX_PALETTE => {
                    palette.push(c);
                    palette.len() - 1
                }
                None => return None,
            };
            last = (i, c, true);
            indices.push(i as u8);
        }
    }
    let bits: u8 = match palette.len() {
        0..=2 => 1,
        3..=4 => 2,
        _ => 4,
    };
    let per_byte = 8 / bits as usize;
    let row_bytes = (w as usize).div_ceil(per_byte);
    let mut packed = vec![0u8; row_bytes * h as usize];
    for (row, chunk) in indices.chunks(w as usize).enumerate() {
        let out = &mut packed[row * row_bytes..(row + 1) * row_bytes];
        for (col, &i) in chunk.iter().enumerate() {
            let shift = 8 - bits as usize * (col % per_byte + 1);
            out[col / per_byte] |= i << shift;
        }
    }
    let mut out = Vec::with_capacity(packed.len() / 4 + 128);
    let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(match bits {
        1 => png::BitDepth::One,
        2 => png::BitDepth::Two,
        _ => png::BitDepth::Four,
    });
    enc.set_palette(palette.iter().flatten().copied().collect::<Vec<u8>>());
    // Indexed data is small: a better compression costs little and saves bytes for every
    // viewer and the recording.
    enc.set_compression(png::Compression::High);
    let written = enc
        .write_header()
        .and_then(|mut wr| wr.write_image_data(&packed));
    written.ok()?;
    Some(out)
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
mod tests {
    use super::*;

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

    fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
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
        let out = d.take(&[
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
        d.take(&[
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
        let out = d.take(&[grad]);
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
    fn malformed_rectangles_are_dropped() {
        let mut d = DesktopScreen::new(16, 16);
        let mut short = raw(0, 0, 4, 4, [9, 9, 9, 255]);
        short.data = Arc::from(&short.data[..10]);
        let out = d.take(&[
            short,
            raw(20, 20, 2, 2, [1, 1, 1, 255]),
            raw(0, 0, 0, 5, [1, 1, 1, 1]),
        ]);
        assert!(out.is_empty());
        assert_eq!(d.pixel(0, 0), Some([0, 0, 0, 0]));
    }
}
