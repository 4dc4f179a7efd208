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

    /// A region of the picture as a PNG (RGB: the alpha channel carries nothing here).
    fn encode(&self, x: u16, y: u16, w: u16, h: u16) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
        let stride = self.width as usize * 4;
        for row in y as usize..y as usize + h as usize {
            let start = row * stride + x as usize * 4;
            for px in self.rgba[start..start + w as usize * 4].chunks_exact(4) {
                rgb.extend_from_slice(&px[..3]);
            }
        }
        encode_png(w, h, &rgb)
    }
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
        let dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
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
