//! Why: tests and benchmarks see an RDP session the way the browser does. This paints the
//! session's binary frames (PNG and JPEG rectangles, copies within the picture;
//! docs/websocket-protocol.md) into a copy of the desktop whose pixels they then check.

use serde_json::Value;

/// What the "browser" has seen: control messages, its copy of the desktop, and every byte.
#[derive(Default)]
pub struct Desktop {
    pub controls: Vec<Value>,
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
    pub raw: Vec<u8>,
    pub rects: usize,
    pub copies: usize,
    /// Rectangles that came as JPEG (photographic, lossy until refined).
    pub jpegs: usize,
    /// Binary messages painted (what a browser counts in its `drawn` messages).
    pub frames: u64,
}

impl Desktop {
    /// Takes a control message; the desktop's size comes in one, at first and whenever the
    /// server sets another.
    pub fn control(&mut self, text: &str) {
        self.raw.extend_from_slice(text.as_bytes());
        let v: Value = serde_json::from_str(text).expect("json");
        let size = match v["type"].as_str() {
            Some("snapshot") if v["desktop"] == true => Some((&v["width"], &v["height"])),
            Some("resize") => Some((&v["cols"], &v["rows"])),
            _ => None,
        };
        if let Some((w, h)) = size {
            self.width = w.as_u64().unwrap_or(0) as usize;
            self.height = h.as_u64().unwrap_or(0) as usize;
            self.rgb = vec![0; self.width * self.height * 3];
        }
        self.controls.push(v);
    }

    pub fn pixel(&self, x: usize, y: usize) -> Option<[u8; 3]> {
        let i = (y * self.width + x) * 3;
        self.rgb.get(i..i + 3).map(|p| [p[0], p[1], p[2]])
    }

    /// Copies a region of the picture (a scroll) from (sx, sy) to (x, y).
    pub fn copy(&mut self, (x, y, w, h): (usize, usize, usize, usize), (sx, sy): (usize, usize)) {
        let src: Vec<u8> = (0..h)
            .flat_map(|row| {
                let at = ((sy + row) * self.width + sx) * 3;
                self.rgb[at..at + w * 3].to_vec()
            })
            .collect();
        for row in 0..h {
            let at = ((y + row) * self.width + x) * 3;
            self.rgb[at..at + w * 3].copy_from_slice(&src[row * w * 3..(row + 1) * w * 3]);
        }
        self.copies += 1;
    }

    /// Paints one binary message (rectangles: x, y, w, h as u16 BE, image length as u32 BE,
    /// a PNG or a JPEG; a length of all ones is a copy within the picture from the x, y (u16
    /// BE) that follow).
    pub fn paint(&mut self, mut msg: &[u8]) {
        self.frames += 1;
        while msg.len() >= 12 {
            let n = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]) as usize;
            let (x, y, w, h) = (n(0), n(2), n(4), n(6));
            let len = u32::from_be_bytes([msg[8], msg[9], msg[10], msg[11]]);
            if len == u32::MAX {
                self.copy((x, y, w, h), (n(12), n(14)));
                msg = &msg[16..];
                continue;
            }
            let len = len as usize;
            let image = &msg[12..12 + len];
            let (iw, ih, buf) = if image.starts_with(&[0xff, 0xd8, 0xff]) {
                let mut decoder = jpeg_decoder::Decoder::new(image);
                let buf = decoder.decode().expect("JPEG data");
                let info = decoder.info().expect("a JPEG rectangle");
                assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
                self.jpegs += 1;
                (info.width as usize, info.height as usize, buf)
            } else {
                let mut decoder = png::Decoder::new(std::io::Cursor::new(image));
                // Indexed PNGs (few colours) come out as RGB.
                decoder.set_transformations(png::Transformations::EXPAND);
                let mut reader = decoder.read_info().expect("a PNG rectangle");
                let mut buf = vec![0; reader.output_buffer_size().expect("size")];
                let info = reader.next_frame(&mut buf).expect("PNG data");
                (info.width as usize, info.height as usize, buf)
            };
            assert_eq!((iw, ih), (w, h));
            for row in 0..h {
                for col in 0..w {
                    let (dx, dy) = (x + col, y + row);
                    if dx < self.width && dy < self.height {
                        let s = (row * w + col) * 3;
                        let d = (dy * self.width + dx) * 3;
                        self.rgb[d..d + 3].copy_from_slice(&buf[s..s + 3]);
                    }
                }
            }
            self.rects += 1;
            msg = &msg[12 + len..];
        }
    }
}
