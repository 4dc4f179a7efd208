//! Why: IronRDP draws a bitmap into its image one byte at a time, with an index computation
//! and a bounds check per byte; on a busy desktop that was a quarter of the gateway's CPU
//! (bench/README.md). Bitmap updates, nearly everything a desktop sends with RemoteFX off,
//! are therefore taken out of each frame here (fast-path ones, and slow-path frames holding
//! just one, as xrdp sends them) and drawn row by row into the adapter's own picture.
//! Everything else (pointers, palettes, surface commands, bitmaps in a format not handled
//! here, compressed data) still goes to IronRDP. Before IronRDP may draw, its image is
//! brought up to date with what was drawn here, and what it then draws is copied into the
//! picture. So the picture is always what the server drew, in the server's order.

use ironrdp_core::{decode_cursor, encode_vec, ReadCursor};
use ironrdp_graphics::rdp6::BitmapStreamDecoder;
use ironrdp_pdu::bitmap::{BitmapData, Compression};
use ironrdp_pdu::fast_path::{
    FastPathHeader, FastPathUpdate, FastPathUpdatePdu, Fragmentation, UpdateCode,
};
use ironrdp_pdu::geometry::{ExclusiveRectangle, InclusiveRectangle, Rectangle as _};
use ironrdp_pdu::rdp::headers::{IoChannelPdu, ShareDataPdu};
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageOutput};

/// The desktop as the gateway shows it: RGBA, opaque, rows top to bottom.
pub struct Picture {
    width: u16,
    height: u16,
    rgba: Vec<u8>,
    /// The buffer of the last frame handed on. Once the broker has taken that frame (and
    /// dropped it), the next frame of the same size is written into it: no allocation and
    /// no zeroing of 4 MB a frame when a flood redraws the whole desktop.
    spare: Option<std::sync::Arc<[u8]>>,
    /// Whether drawing notes if it changed a pixel (`watch`), and whether it did.
    watching: bool,
    changed: bool,
    /// What a watched rectangle held before it was drawn.
    before: Vec<u8>,
}

impl Picture {
    pub fn new(width: u16, height: u16) -> Self {
        Picture {
            width,
            height,
            rgba: vec![0; usize::from(width) * usize::from(height) * 4],
            spare: None,
            watching: false,
            changed: false,
            before: Vec::new(),
        }
    }

    /// From now on (`on`) drawing notes whether it changed any pixel, until `changed` is
    /// asked. The flood pacing asks it of the server's redraw after a pause: a redraw that
    /// changes nothing means the desktop was still. Once one pixel changed, drawing no
    /// longer compares.
    pub fn watch(&mut self, on: bool) {
        if on == self.watching {
            return;
        }
        self.watching = on;
        self.changed = false;
        if !on {
            self.before = Vec::new();
        }
    }

    /// Whether anything drawn since `watch` (or the last call) changed a pixel.
    pub fn changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Before `r` is drawn: keeps what it holds, if drawing is watched.
    fn note_before(&mut self, r: &InclusiveRectangle) {
        if !self.watching || self.changed {
            return;
        }
        let Some(len) = self.region_len(r) else {
            return;
        };
        let mut before = std::mem::take(&mut self.before);
        before.resize(len, 0);
        self.copy_region(r, &mut before);
        self.before = before;
    }

    /// After `r` was drawn: whether it changed (against `note_before`).
    fn note_after(&mut self, r: &InclusiveRectangle) {
        if !self.watching || self.changed || self.region_len(r) != Some(self.before.len()) {
            return;
        }
        let (w, stride) = (usize::from(r.width()) * 4, usize::from(self.width) * 4);
        self.changed = self
            .before
            .chunks_exact(w)
            .zip(usize::from(r.top)..)
            .any(|(old, y)| {
                let at = y * stride + usize::from(r.left) * 4;
                old != &self.rgba[at..at + w]
            });
    }

    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// Whether `r` reaches the picture's last column or row.
    fn at_far_edge(&self, r: &InclusiveRectangle) -> bool {
        r.right.saturating_add(1) >= self.width || r.bottom.saturating_add(1) >= self.height
    }

    fn fits(&self, r: &InclusiveRectangle) -> bool {
        r.left <= r.right && r.top <= r.bottom && r.right < self.width && r.bottom < self.height
    }

    /// The bytes of row `y` from column `x`, `w` pixels wide (inside the picture).
    fn row_mut(&mut self, x: u16, y: u16, w: usize) -> &mut [u8] {
        let at = (usize::from(y) * usize::from(self.width) + usize::from(x)) * 4;
        &mut self.rgba[at..at + w * 4]
    }

    /// The pixels of `r` as tightly packed RGBA rows; None when `r` is not inside.
    pub fn region(&self, r: &InclusiveRectangle) -> Option<Vec<u8>> {
        let mut out = vec![0; self.region_len(r)?];
        self.copy_region(r, &mut out);
        Some(out)
    }

    /// The same, shared: written into the last frame's buffer when nothing else holds it
    /// any more and it has the size, otherwise into a new one (allocated once, not copied out
    /// of a `Vec`: a changed frame is often the whole desktop, 4 MB at 1280x800).
    pub fn region_shared(&mut self, r: &InclusiveRectangle) -> Option<std::sync::Arc<[u8]>> {
        let len = self.region_len(r)?;
        let mut out = self
            .spare
            .take()
            .filter(|s| s.len() == len)
            .unwrap_or_else(|| std::iter::repeat_n(0, len).collect());
        if std::sync::Arc::get_mut(&mut out).is_none() {
            out = std::iter::repeat_n(0, len).collect();
        }
        self.copy_region(r, std::sync::Arc::get_mut(&mut out)?);
        self.spare = Some(out.clone());
        Some(out)
    }

    fn region_len(&self, r: &InclusiveRectangle) -> Option<usize> {
        self.fits(r)
            .then(|| usize::from(r.width()) * usize::from(r.height()) * 4)
    }

    fn copy_region(&self, r: &InclusiveRectangle, out: &mut [u8]) {
        let (w, stride) = (usize::from(r.width()) * 4, usize::from(self.width) * 4);
        for (row, y) in out.chunks_exact_mut(w).zip(usize::from(r.top)..) {
            let at = y * stride + usize::from(r.left) * 4;
            row.copy_from_slice(&self.rgba[at..at + w]);
        }
    }

    /// Copies `r` from IronRDP's image, where IronRDP just drew.
    pub fn copy_from(&mut self, image: &DecodedImage, r: &InclusiveRectangle) {
        if !self.fits(r) || image.width() != self.width || image.height() != self.height {
            return;
        }
        self.note_before(r);
        let (w, stride, data) = (usize::from(r.width()), image.stride(), image.data());
        for y in r.top..=r.bottom {
            let at = usize::from(y) * stride + usize::from(r.left) * 4;
            let Some(src) = data.get(at..at + w * 4) else {
                return;
            };
            let dst = self.row_mut(r.left, y, w);
            dst.copy_from_slice(src);
            // IronRDP leaves alpha at 0 in places; the picture is opaque.
            for px in dst.chunks_exact_mut(4) {
                px[3] = 255;
            }
        }
        self.note_after(r);
    }
}

/// One step of a frame, in the order the server sent them.
pub enum Step<'a> {
    /// A complete bitmap update (its data) to draw here.
    Draw(std::borrow::Cow<'a, [u8]>),
    /// A fast-path frame of the updates left for IronRDP.
    ForIronRdp(Vec<u8>),
}

/// Bitmap updates larger than this (all fragments together) are not assembled.
const MAX_FRAGMENTED_UPDATE: usize = 64 << 20;

pub struct BitmapPath {
    /// The MCS channel slow-path updates come on.
    io_channel_id: u16,
    planar: super::planar::PlanarDecoder,
    decoder: BitmapStreamDecoder,
    scratch: Vec<u8>,
    /// The raw update PDUs of a fragmented bitmap update that is not complete yet.
    fragments: Vec<Vec<u8>>,
    fragment_bytes: usize,
    /// The fragments of an update too large to assemble are dropped until its last one.
    dropping: bool,
    /// What was drawn here since IronRDP's image last caught up.
    stale: Option<InclusiveRectangle>,
    /// Pixels drawn (here or by IronRDP) since `pixels_drawn` was last asked: how much of
    /// the desktop the frame being gathered has redrawn.
    pixels: u64,
    /// Bitmap updates are counted but not drawn (`discard`).
    discarding: bool,
}

impl BitmapPath {
    pub fn new(io_channel_id: u16) -> Self {
        BitmapPath {
            io_channel_id,
            planar: Default::default(),
            decoder: BitmapStreamDecoder::default(),
            scratch: Vec::new(),
            fragments: Vec::new(),
            fragment_bytes: 0,
            dropping: false,
            stale: None,
            pixels: 0,
            discarding: false,
        }
    }

    /// Whether bitmap updates are left undrawn from now on (they are still counted in
    /// `pixels_drawn`). While the server's output is suppressed, what still arrives was on
    /// its way before, and the server redraws the whole desktop when it is allowed to send
    /// again: drawing it would be wasted (measured: about a desktop's worth a pause).
    /// Rectangles on the desktop's last row or column are drawn all the same: xorgxrdp
    /// takes the redraw's inclusive bounds as exclusive, and would not redraw those.
    pub fn discard(&mut self, on: bool) {
        self.discarding = on;
    }

    /// Pixels drawn since the last call (counted per rectangle, so overlapping rectangles
    /// count twice: what was decoded, not what changed).
    pub fn pixels_drawn(&mut self) -> u64 {
        std::mem::take(&mut self.pixels)
    }

    /// A slow-path frame that is one bitmap update drawn here: that update's data. (xrdp
    /// sends its bitmaps this way.) Anything else, including several PDUs in one frame or
    /// compressed data, is left to IronRDP.
    pub fn slow_path_bitmap(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let ctx = ironrdp_pdu::mcs::decode_send_data_indication(frame).ok()?;
        if ctx.channel_id != self.io_channel_id || !one_share_pdu(ctx.user_data) {
            return None;
        }
        let IoChannelPdu::Data(share) = ironrdp_pdu::rdp::headers::decode_io_channel(ctx).ok()?
        else {
            return None;
        };
        match share.pdu {
            ShareDataPdu::Update(update)
                if share.compression_flags.is_empty() && drawable(&update) =>
            {
                Some(update)
            }
            _ => None,
        }
    }

    /// Whether IronRDP may draw while processing this slow-path frame: only updates on the
    /// I/O channel draw (virtual channels carry the clipboard and display control; the
    /// graphics pipeline is not offered, and pointers are not drawn into the picture).
    fn slow_path_may_draw(&self, frame: &[u8]) -> bool {
        let Ok(ctx) = ironrdp_pdu::mcs::decode_send_data_indication(frame) else {
            return true;
        };
        if ctx.channel_id != self.io_channel_id {
            return false;
        }
        !(one_share_pdu(ctx.user_data)
            && matches!(
                ironrdp_pdu::rdp::headers::decode_io_channel(ctx),
                Ok(IoChannelPdu::Data(share)) if matches!(share.pdu, ShareDataPdu::Pointer(_))
            ))
    }

    /// A new desktop (size): nothing pending, nothing stale.
    pub fn reset(&mut self) {
        self.fragments.clear();
        self.fragment_bytes = 0;
        self.dropping = false;
        self.stale = None;
    }

    /// Splits a fast-path frame into the bitmap updates drawn here and what is left for
    /// IronRDP, in order.
    pub fn take<'a>(&mut self, frame: &'a [u8]) -> Vec<Step<'a>> {
        let mut src = ReadCursor::new(frame);
        let Ok(header) = decode_cursor::<FastPathHeader>(&mut src) else {
            // IronRDP reports what is wrong with it.
            return vec![Step::ForIronRdp(frame.to_vec())];
        };
        let mut out = Steps {
            steps: Vec::new(),
            others: Vec::new(),
            header,
        };
        while !src.is_empty() {
            let start = frame.len() - src.len();
            let Ok(update) = decode_cursor::<FastPathUpdatePdu<'_>>(&mut src) else {
                // Malformed: IronRDP has its rules for what it skips and what ends the session.
                out.hand_over(&frame[start..]);
                break;
            };
            let raw = &frame[start..frame.len() - src.len()];
            let plain = update.compression_flags.is_none_or(|f| f.is_empty());
            if update.update_code != UpdateCode::Bitmap || !plain {
                out.hand_over(raw);
                continue;
            }
            match update.fragmentation {
                Fragmentation::Single if drawable(update.data) => {
                    out.draw(std::borrow::Cow::Borrowed(update.data))
                }
                Fragmentation::Single => out.hand_over(raw),
                Fragmentation::First => {
                    // A first fragment while another update is pending: the pending one
                    // goes to IronRDP, which drops it as it would have.
                    for f in std::mem::take(&mut self.fragments) {
                        out.hand_over(&f);
                    }
                    self.fragment_bytes = raw.len();
                    self.dropping = false;
                    self.fragments.push(raw.to_vec());
                }
                Fragmentation::Next | Fragmentation::Last if self.dropping => {
                    if update.fragmentation == Fragmentation::Last {
                        tracing::warn!(
                            "a bitmap update over {MAX_FRAGMENTED_UPDATE} bytes was dropped"
                        );
                        self.dropping = false;
                    }
                }
                Fragmentation::Next | Fragmentation::Last if self.fragments.is_empty() => {
                    // No first fragment: IronRDP decides what to make of it.
                    out.hand_over(raw);
                }
                Fragmentation::Next => {
                    self.fragment_bytes += raw.len();
                    if self.fragment_bytes > MAX_FRAGMENTED_UPDATE {
                        self.fragments.clear();
                        self.dropping = true;
                    } else {
                        self.fragments.push(raw.to_vec());
                    }
                }
                Fragmentation::Last => {
                    self.fragments.push(raw.to_vec());
                    let parts = std::mem::take(&mut self.fragments);
                    match assemble(&parts).filter(|data| drawable(data)) {
                        Some(data) => out.draw(std::borrow::Cow::Owned(data)),
                        None => parts.iter().for_each(|p| out.hand_over(p)),
                    }
                }
            }
        }
        out.finish()
    }

    /// Before IronRDP processes `frame` (fast-path when `fast_path`): when it may draw, its
    /// image gets what was drawn here since it last caught up, so that the regions it reports
    /// (unions of what it drew) hold the server's picture everywhere.
    pub fn catch_up(
        &mut self,
        stage: &mut ActiveStage,
        image: &mut DecodedImage,
        picture: &Picture,
        frame: &[u8],
        fast_path: bool,
    ) {
        if self.stale.is_none() {
            return;
        }
        let may_draw = if fast_path {
            may_draw(frame)
        } else {
            self.slow_path_may_draw(frame)
        };
        if !may_draw {
            return;
        }
        let Some(r) = self.stale.take() else { return };
        let Some(rgba) = picture.region(&r) else {
            return;
        };
        let region = ExclusiveRectangle {
            left: r.left,
            top: r.top,
            right: r.right + 1,
            bottom: r.bottom + 1,
        };
        if let Err(e) = stage.composite_rgba32(image, [(region, rgba)]) {
            tracing::warn!("bringing IronRDP's image up to date failed: {e}");
        }
    }

    /// Draws a complete bitmap update (its data, `drawable`); the union of what was drawn.
    /// Public for the fuzz target (`fuzz/fuzz_targets/rdp_bitmap.rs`): the server chooses
    /// every byte of it.
    pub fn draw_update(
        &mut self,
        data: &[u8],
        picture: &mut Picture,
    ) -> Option<InclusiveRectangle> {
        self.draw(data, picture)
    }

    /// Draws a complete bitmap update (its data, `drawable`); the union of what was drawn.
    fn draw(&mut self, data: &[u8], picture: &mut Picture) -> Option<InclusiveRectangle> {
        let Ok(FastPathUpdate::Bitmap(update)) =
            FastPathUpdate::decode_with_code(data, UpdateCode::Bitmap)
        else {
            return None;
        };
        let mut drawn: Option<InclusiveRectangle> = None;
        for b in &update.rectangles {
            if self.discarding && !picture.at_far_edge(&b.rectangle) {
                self.pixels += u64::from(b.rectangle.width()) * u64::from(b.rectangle.height());
                continue;
            }
            picture.note_before(&b.rectangle);
            if let Some(r) = self.draw_one(b, picture) {
                picture.note_after(&r);
                self.pixels += u64::from(r.width()) * u64::from(r.height());
                drawn = Some(drawn.map_or(r.clone(), |d| d.union(&r)));
            }
        }
        if let Some(d) = &drawn {
            self.stale = Some(self.stale.as_ref().map_or(d.clone(), |s| s.union(d)));
        }
        drawn
    }

    fn draw_one(
        &mut self,
        b: &BitmapData<'_>,
        picture: &mut Picture,
    ) -> Option<InclusiveRectangle> {
        let dest = &b.rectangle;
        if !picture.fits(dest) || b.width < dest.width() || dest.height() != b.height {
            tracing::warn!("a bitmap rectangle outside the desktop was ignored");
            return None;
        }
        let (sw, h, dw) = (
            usize::from(b.width),
            usize::from(b.height),
            usize::from(dest.width()),
        );
        let compressed = b
            .compression_flags
            .contains(Compression::BITMAP_COMPRESSION);
        // Every format here is stored bottom-up.
        if compressed {
            // RDP 6.0 planar: colour planes, bottom scanline first.
            match self.planar.decode(b.bitmap_data, sw, h) {
                Ok(super::planar::Planes::Rgb(planes)) => {
                    let n = sw * h;
                    let (r, g, bl) = (&planes[..n], &planes[n..2 * n], &planes[2 * n..3 * n]);
                    for i in 0..h {
                        let dst = picture.row_mut(dest.left, dest.bottom - i as u16, dw);
                        let at = i * sw..i * sw + dw;
                        let pixels = r[at.clone()].iter().zip(&g[at.clone()]).zip(&bl[at]);
                        for (d, ((&r, &g), &b)) in dst.chunks_exact_mut(4).zip(pixels) {
                            d.copy_from_slice(&[r, g, b, 255]);
                        }
                    }
                    return Some(dest.clone());
                }
                Ok(super::planar::Planes::NotRgb) => {}
                Err(e) => {
                    tracing::warn!("{e}; the bitmap was ignored");
                    return None;
                }
            }
        }
        let (rows, stride, bgr, bytes): (&[u8], usize, bool, usize) = if compressed {
            // Colour-loss planar, decoded by IronRDP into RGB rows (appended to what the
            // buffer holds).
            self.scratch.clear();
            if let Err(e) =
                self.decoder
                    .decode_bitmap_stream_to_rgb24(b.bitmap_data, &mut self.scratch, sw, h)
            {
                tracing::warn!("a planar bitmap did not decode: {e}");
                return None;
            }
            (&self.scratch, sw * 3, false, 3)
        } else {
            // Uncompressed BGR(X), rows padded to four bytes ([MS-RDPBCGR] 2.2.9.1.1.3.1.2.2).
            let bytes = usize::from(b.bits_per_pixel / 8);
            (b.bitmap_data, (sw * bytes + 3) & !3, true, bytes)
        };
        if rows.len() < stride * h {
            tracing::warn!("a bitmap with too few bytes for its size was ignored");
            return None;
        }
        for (i, src) in rows.chunks_exact(stride).take(h).enumerate() {
            let y = dest.bottom - i as u16;
            let dst = picture.row_mut(dest.left, y, dw);
            let src = src.chunks_exact(bytes).take(dw);
            if bgr {
                for (d, s) in dst.chunks_exact_mut(4).zip(src) {
                    d.copy_from_slice(&[s[2], s[1], s[0], 255]);
                }
            } else {
                for (d, s) in dst.chunks_exact_mut(4).zip(src) {
                    d.copy_from_slice(&[s[0], s[1], s[2], 255]);
                }
            }
        }
        Some(dest.clone())
    }
}

/// Runs one frame from the server. Bitmap updates are drawn into `picture` by
/// `bitmap_path`; the rest goes to IronRDP, whose drawing is copied into `picture`. Regions
/// drawn either way come back as graphics updates, in the server's order.
pub fn process_frame(
    stage: &mut ActiveStage,
    image: &mut DecodedImage,
    picture: &mut Picture,
    bitmap_path: &mut BitmapPath,
    action: ironrdp_pdu::Action,
    frame: &[u8],
    received_at: Option<ironrdp_core::MonotonicInstant>,
) -> ironrdp_session::SessionResult<Vec<ActiveStageOutput>> {
    let fast_path = action == ironrdp_pdu::Action::FastPath;
    let mut by_ironrdp = |stage: &mut ActiveStage,
                          picture: &mut Picture,
                          bitmap_path: &mut BitmapPath,
                          frame: &[u8]|
     -> ironrdp_session::SessionResult<Vec<ActiveStageOutput>> {
        bitmap_path.catch_up(stage, image, picture, frame, fast_path);
        let outputs = stage.process(image, action, frame, received_at)?;
        for out in &outputs {
            if let ActiveStageOutput::GraphicsUpdate(r) = out {
                bitmap_path.pixels += u64::from(r.width()) * u64::from(r.height());
                picture.copy_from(image, r);
            }
        }
        Ok(outputs)
    };
    if !fast_path {
        let Some(update) = bitmap_path.slow_path_bitmap(frame) else {
            return by_ironrdp(stage, picture, bitmap_path, frame);
        };
        let drawn = bitmap_path.draw(&update, picture);
        return Ok(drawn
            .map(ActiveStageOutput::GraphicsUpdate)
            .into_iter()
            .collect());
    }
    let steps = bitmap_path.take(frame);
    let mut outputs = Vec::new();
    for step in steps {
        match step {
            Step::Draw(data) => {
                if let Some(r) = bitmap_path.draw(&data, picture) {
                    outputs.push(ActiveStageOutput::GraphicsUpdate(r));
                }
            }
            Step::ForIronRdp(f) => outputs.extend(by_ironrdp(stage, picture, bitmap_path, &f)?),
        }
    }
    Ok(outputs)
}

/// The rectangle formats drawn here: planar 32 bpp, uncompressed 24 and 32 bpp (what a
/// server sends at the 32 bpp the gateway asks for).
fn handled_here(b: &BitmapData<'_>) -> bool {
    let compressed = b
        .compression_flags
        .contains(Compression::BITMAP_COMPRESSION);
    matches!(
        (compressed, b.bits_per_pixel),
        (true, 32) | (false, 24 | 32)
    )
}

/// Whether an I/O channel's data is exactly one Share Control PDU (its total length is all
/// of it; a Basic Security Header, with zero high flags, is something else).
fn one_share_pdu(data: &[u8]) -> bool {
    data.len() >= 4
        && usize::from(u16::from_le_bytes([data[0], data[1]])) == data.len()
        && data[2..4] != [0, 0]
}

/// Whether a complete bitmap update (its data) decodes and is drawn here.
fn drawable(data: &[u8]) -> bool {
    matches!(
        FastPathUpdate::decode_with_code(data, UpdateCode::Bitmap),
        Ok(FastPathUpdate::Bitmap(u)) if u.rectangles.iter().all(handled_here)
    )
}

/// Whether IronRDP may draw while processing this fast-path frame.
fn may_draw(frame: &[u8]) -> bool {
    let mut src = ReadCursor::new(frame);
    if decode_cursor::<FastPathHeader>(&mut src).is_err() {
        return true;
    }
    while !src.is_empty() {
        match decode_cursor::<FastPathUpdatePdu<'_>>(&mut src) {
            Ok(u)
                if !matches!(
                    u.update_code,
                    UpdateCode::Bitmap | UpdateCode::SurfaceCommands
                ) => {}
            _ => return true,
        }
    }
    false
}

/// The data of a fragmented update, from its raw fragment PDUs.
fn assemble(parts: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    for p in parts {
        let u = decode_cursor::<FastPathUpdatePdu<'_>>(&mut ReadCursor::new(p)).ok()?;
        data.extend_from_slice(u.data);
    }
    Some(data)
}

/// The steps of one frame as they are found.
struct Steps<'a> {
    steps: Vec<Step<'a>>,
    /// Raw update PDUs for IronRDP not framed yet.
    others: Vec<u8>,
    header: FastPathHeader,
}

impl<'a> Steps<'a> {
    /// A raw update PDU for IronRDP, after those before it.
    fn hand_over(&mut self, raw: &[u8]) {
        // A fast-path frame's length is at most 0x7FFF; each update came in one.
        if self.others.len() + raw.len() > MAX_FRAME_UPDATES {
            self.flush();
        }
        self.others.extend_from_slice(raw);
    }

    /// A bitmap update drawn here, after what IronRDP gets before it.
    fn draw(&mut self, data: std::borrow::Cow<'a, [u8]>) {
        self.flush();
        self.steps.push(Step::Draw(data));
    }

    fn flush(&mut self) {
        if !self.others.is_empty() {
            let frame = reframe(&self.header, &self.others);
            self.steps.push(Step::ForIronRdp(frame));
            self.others.clear();
        }
    }

    fn finish(mut self) -> Vec<Step<'a>> {
        self.flush();
        self.steps
    }
}

/// Most bytes of updates in one fast-path frame (its length field is 15 bits, the header up
/// to 3 bytes).
const MAX_FRAME_UPDATES: usize = 0x7FFF - 3;

/// A fast-path frame holding `updates` (raw update PDUs), with the original's flags.
fn reframe(header: &FastPathHeader, updates: &[u8]) -> Vec<u8> {
    let header = FastPathHeader::new(header.flags, updates.len());
    let mut frame = encode_vec(&header).unwrap_or_default();
    frame.extend_from_slice(updates);
    frame
}

#[cfg(test)]
mod tests {
    //! The picture drawn here must be what IronRDP alone would draw from the same frames:
    //! each test feeds frames both to `process_frame` and to a second IronRDP session, and
    //! compares the pictures pixel by pixel.
    use super::*;
    use ironrdp_core::encode_vec;
    use ironrdp_graphics::image_processing::PixelFormat;
    use ironrdp_graphics::rdp6::{BitmapStreamEncoder, RgbChannels};
    use ironrdp_pdu::bitmap::BitmapUpdateData;
    use ironrdp_pdu::fast_path::EncryptionFlags;
    use ironrdp_session::ActiveStageBuilder;

    const W: u16 = 64;
    const H: u16 = 48;

    #[test]
    fn a_frame_buffer_is_written_again_only_once_nobody_holds_it() {
        let mut p = Picture::new(8, 4);
        let all = InclusiveRectangle {
            left: 0,
            top: 0,
            right: 7,
            bottom: 3,
        };
        let paint = |p: &mut Picture, v: u8| {
            for y in 0..4 {
                p.row_mut(0, y, 8).fill(v);
            }
        };
        paint(&mut p, 1);
        let first = p.region_shared(&all).expect("inside");
        paint(&mut p, 2);
        // The broker still holds the first frame: the second gets a buffer of its own.
        let second = p.region_shared(&all).expect("inside");
        assert!(
            first.iter().all(|&b| b == 1),
            "a held frame was overwritten"
        );
        assert!(second.iter().all(|&b| b == 2));
        assert_ne!(first.as_ptr(), second.as_ptr());
        let reused = second.as_ptr();
        drop((first, second));
        paint(&mut p, 3);
        let third = p.region_shared(&all).expect("inside");
        assert_eq!(
            third.as_ptr(),
            reused,
            "the released buffer is written again"
        );
        assert!(third.iter().all(|&b| b == 3));
        // Another size: a buffer of that size.
        let part = InclusiveRectangle {
            left: 1,
            top: 1,
            right: 2,
            bottom: 2,
        };
        drop(third);
        let small = p.region_shared(&part).expect("inside");
        assert_eq!(small.len(), 2 * 2 * 4);
        assert!(small.iter().all(|&b| b == 3));
    }

    fn stage() -> ActiveStage {
        ActiveStageBuilder {
            static_channels: ironrdp_svc::StaticChannelSet::new(),
            user_channel_id: 1002,
            io_channel_id: 1003,
            message_channel_id: None,
            share_id: 0x10000,
            compression_type: None,
            enable_server_pointer: true,
            pointer_software_rendering: false,
        }
        .build()
    }

    /// Pixel colours that differ everywhere (so a wrong row, column or channel shows).
    fn colour(seed: usize, i: usize) -> [u8; 3] {
        let v = (seed * 7919 + i * 2654435761) as u32;
        [(v >> 3) as u8, (v >> 11) as u8, (v >> 19) as u8]
    }

    struct Rect {
        dest: InclusiveRectangle,
        /// Source width (at least the destination's).
        width: u16,
        bpp: u16,
        compressed: bool,
        data: Vec<u8>,
    }

    /// A rectangle of `bpp` bits (planar when compressed) with `pad` extra source columns.
    fn rect(
        (x, y, w, h): (u16, u16, u16, u16),
        pad: u16,
        bpp: u16,
        compressed: bool,
        seed: usize,
    ) -> Rect {
        let sw = usize::from(w + pad);
        let rgb: Vec<[u8; 3]> = (0..sw * usize::from(h)).map(|i| colour(seed, i)).collect();
        let data = if compressed {
            let flat: Vec<u8> = rgb.iter().flatten().copied().collect();
            let mut out = vec![0u8; flat.len() * 2 + 64];
            let n = BitmapStreamEncoder::new(sw, usize::from(h))
                .encode_bitmap::<RgbChannels>(&flat, &mut out, true)
                .expect("planar encoding");
            out.truncate(n);
            out
        } else {
            let bytes = usize::from(bpp / 8);
            let stride = (sw * bytes + 3) & !3;
            let mut out = vec![0u8; stride * usize::from(h)];
            for (row, line) in out.chunks_exact_mut(stride).enumerate() {
                for col in 0..sw {
                    let [r, g, b] = rgb[row * sw + col];
                    match bpp {
                        16 => {
                            let v = (u16::from(r) >> 3) << 11
                                | (u16::from(g) >> 2) << 5
                                | u16::from(b) >> 3;
                            line[col * 2..col * 2 + 2].copy_from_slice(&v.to_le_bytes());
                        }
                        _ => line[col * bytes..col * bytes + 3].copy_from_slice(&[b, g, r]),
                    }
                }
            }
            out
        };
        Rect {
            dest: InclusiveRectangle {
                left: x,
                top: y,
                right: x + w - 1,
                bottom: y + h - 1,
            },
            width: w + pad,
            bpp,
            compressed,
            data,
        }
    }

    fn bitmap_update(rects: &[Rect]) -> Vec<u8> {
        let update = BitmapUpdateData {
            rectangles: rects
                .iter()
                .map(|r| BitmapData {
                    rectangle: r.dest.clone(),
                    width: r.width,
                    height: r.dest.height(),
                    bits_per_pixel: r.bpp,
                    compression_flags: if r.compressed {
                        Compression::BITMAP_COMPRESSION | Compression::NO_BITMAP_COMPRESSION_HDR
                    } else {
                        Compression::empty()
                    },
                    compressed_data_header: None,
                    bitmap_data: &r.data,
                })
                .collect(),
        };
        encode_vec(&update).expect("bitmap update")
    }

    fn update_pdu(code: UpdateCode, fragmentation: Fragmentation, data: &[u8]) -> Vec<u8> {
        encode_vec(&FastPathUpdatePdu {
            fragmentation,
            update_code: code,
            compression_flags: None,
            compression_type: None,
            data,
        })
        .expect("update pdu")
    }

    fn frame(updates: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = updates.concat();
        let mut f =
            encode_vec(&FastPathHeader::new(EncryptionFlags::empty(), body.len())).expect("header");
        f.extend_from_slice(&body);
        f
    }

    /// Runs `frames` both ways, checks the pictures are the same and returns the regions
    /// reported.
    fn both_ways(frames: &[Vec<u8>]) -> Vec<InclusiveRectangle> {
        let (mut ours, mut image) = (stage(), DecodedImage::new(PixelFormat::RgbA32, W, H));
        let (mut path, mut picture) = (BitmapPath::new(1003), Picture::new(W, H));
        let (mut theirs, mut reference) = (stage(), DecodedImage::new(PixelFormat::RgbA32, W, H));
        let mut regions = Vec::new();
        for f in frames {
            // A TPKT header (version 3) starts a slow-path frame.
            let action = if f[0] == 3 {
                ironrdp_pdu::Action::X224
            } else {
                ironrdp_pdu::Action::FastPath
            };
            for out in process_frame(
                &mut ours,
                &mut image,
                &mut picture,
                &mut path,
                action,
                f,
                None,
            )
            .expect("processed")
            {
                if let ActiveStageOutput::GraphicsUpdate(r) = out {
                    regions.push(r);
                }
            }
            theirs
                .process(&mut reference, action, f, None)
                .expect("processed by IronRDP");
        }
        let all = InclusiveRectangle {
            left: 0,
            top: 0,
            right: W - 1,
            bottom: H - 1,
        };
        let got = picture.region(&all).expect("whole picture");
        let want = reference.data();
        for i in 0..usize::from(W) * usize::from(H) {
            assert_eq!(
                &got[i * 4..i * 4 + 3],
                &want[i * 4..i * 4 + 3],
                "pixel ({}, {})",
                i % usize::from(W),
                i / usize::from(W)
            );
        }
        regions
    }

    /// The gateway's drawing alone: a session, its image, path and picture.
    struct Drawing {
        stage: ActiveStage,
        image: DecodedImage,
        path: BitmapPath,
        picture: Picture,
    }

    impl Drawing {
        fn new() -> Self {
            Drawing {
                stage: stage(),
                image: DecodedImage::new(PixelFormat::RgbA32, W, H),
                path: BitmapPath::new(1003),
                picture: Picture::new(W, H),
            }
        }

        /// Draws fast-path `frames`; the regions reported.
        fn draw(&mut self, frames: &[Vec<u8>]) -> Vec<InclusiveRectangle> {
            let mut regions = Vec::new();
            for f in frames {
                for out in process_frame(
                    &mut self.stage,
                    &mut self.image,
                    &mut self.picture,
                    &mut self.path,
                    ironrdp_pdu::Action::FastPath,
                    f,
                    None,
                )
                .expect("processed")
                {
                    if let ActiveStageOutput::GraphicsUpdate(r) = out {
                        regions.push(r);
                    }
                }
            }
            regions
        }
    }

    fn bitmap_frame(rects: &[Rect]) -> Vec<u8> {
        frame(&[update_pdu(
            UpdateCode::Bitmap,
            Fragmentation::Single,
            &bitmap_update(rects),
        )])
    }

    #[test]
    fn a_watched_picture_tells_whether_a_redraw_changed_it() {
        let mut d = Drawing::new();
        let first = bitmap_frame(&[rect((0, 0, W, H), 0, 32, true, 1)]);
        d.draw(std::slice::from_ref(&first));
        // Unwatched, nothing is noted.
        assert!(!d.picture.changed());
        d.picture.watch(true);
        // The same picture drawn again (a server's redraw of a still desktop).
        d.draw(std::slice::from_ref(&first));
        assert!(!d.picture.changed(), "an identical redraw changed nothing");
        // One tile of it different: planar, uncompressed, or drawn by IronRDP (16 bits).
        for (compressed, bpp, seed) in [(true, 32, 2), (false, 24, 3), (false, 16, 4)] {
            let other = bitmap_frame(&[rect((8, 8, 16, 16), 0, bpp, compressed, seed)]);
            d.draw(&[other]);
            assert!(d.picture.changed(), "a changed tile ({bpp} bits)");
            assert!(!d.picture.changed(), "asked once, the note is cleared");
        }
        // The last drawn the same again: no change.
        let again = bitmap_frame(&[rect((8, 8, 16, 16), 0, 16, false, 4)]);
        d.draw(&[again]);
        assert!(!d.picture.changed());
        d.picture.watch(false);
        d.draw(&[first]);
        assert!(!d.picture.changed(), "no longer watched");
    }

    #[test]
    fn discarded_bitmaps_are_counted_but_not_drawn() {
        let mut d = Drawing::new();
        let all = InclusiveRectangle {
            left: 0,
            top: 0,
            right: W - 1,
            bottom: H - 1,
        };
        d.draw(&[bitmap_frame(&[rect((0, 0, W, H), 0, 32, true, 1)])]);
        let _ = d.path.pixels_drawn();
        let before = d.picture.region(&all).expect("inside");
        d.path.discard(true);
        let later = bitmap_frame(&[
            rect((0, 0, 16, 8), 0, 32, true, 5),
            rect((16, 8, 8, 8), 0, 24, false, 6),
        ]);
        let regions = d.draw(std::slice::from_ref(&later));
        assert!(regions.is_empty(), "nothing reported as drawn: {regions:?}");
        assert_eq!(d.path.pixels_drawn(), 16 * 8 + 8 * 8, "but counted");
        assert!(
            d.picture.region(&all).expect("inside") == before,
            "the picture is untouched"
        );
        // Except on the last row or column, which a server's redraw may leave out.
        let corner = bitmap_frame(&[rect((W - 8, H - 4, 8, 4), 0, 24, false, 7)]);
        assert_eq!(d.draw(&[corner]).len(), 1, "the far corner is drawn");
        let before = d.picture.region(&all).expect("inside");
        d.path.discard(false);
        let regions = d.draw(&[later]);
        assert_eq!(regions.len(), 1);
        assert!(
            d.picture.region(&all).expect("inside") != before,
            "drawn once not discarding"
        );
    }

    #[test]
    fn planar_and_uncompressed_bitmaps_draw_as_ironrdp_draws_them() {
        let planar = rect((3, 2, 20, 10), 4, 32, true, 1);
        let bgrx = rect((30, 5, 9, 7), 0, 32, false, 2);
        let bgr = rect((10, 20, 5, 6), 2, 24, false, 3); // rows padded to four bytes
        let regions = both_ways(&[
            frame(&[update_pdu(
                UpdateCode::Bitmap,
                Fragmentation::Single,
                &bitmap_update(&[planar]),
            )]),
            frame(&[update_pdu(
                UpdateCode::Bitmap,
                Fragmentation::Single,
                &bitmap_update(&[bgrx, bgr]),
            )]),
        ]);
        assert_eq!(regions.len(), 2);
        assert_eq!(
            (
                regions[0].left,
                regions[0].top,
                regions[0].right,
                regions[0].bottom
            ),
            (3, 2, 22, 11)
        );
        // Two rectangles in one update: their union.
        assert_eq!(
            (
                regions[1].left,
                regions[1].top,
                regions[1].right,
                regions[1].bottom
            ),
            (10, 5, 38, 25)
        );
    }

    #[test]
    fn a_fragmented_update_is_drawn_when_its_last_fragment_arrives() {
        let data = bitmap_update(&[
            rect((0, 0, 40, 30), 0, 32, true, 4),
            rect((44, 10, 8, 8), 0, 32, false, 5),
        ]);
        let (a, rest) = data.split_at(data.len() / 3);
        let (b, c) = rest.split_at(rest.len() / 2);
        let regions = both_ways(&[
            frame(&[update_pdu(UpdateCode::Bitmap, Fragmentation::First, a)]),
            frame(&[update_pdu(UpdateCode::Bitmap, Fragmentation::Next, b)]),
            frame(&[update_pdu(UpdateCode::Bitmap, Fragmentation::Last, c)]),
        ]);
        assert_eq!(regions.len(), 1);
        assert_eq!((regions[0].right, regions[0].bottom), (51, 29));
    }

    #[test]
    fn what_ironrdp_draws_between_bitmaps_drawn_here_keeps_the_server_order() {
        // Drawn here, then a 16 bpp update (left to IronRDP) whose two rectangles' union
        // covers part of it without drawing there, then a planar bitmap over the 16 bpp one.
        let first = rect((5, 5, 30, 30), 0, 32, true, 6);
        let sixteen = bitmap_update(&[
            rect((0, 0, 8, 8), 0, 16, false, 7),
            rect((28, 28, 8, 8), 0, 16, false, 8),
        ]);
        let over = rect((30, 30, 10, 10), 0, 32, false, 9);
        let mixed = frame(&[
            update_pdu(UpdateCode::DefaultPointer, Fragmentation::Single, &[]),
            update_pdu(UpdateCode::Bitmap, Fragmentation::Single, &sixteen),
            update_pdu(
                UpdateCode::Bitmap,
                Fragmentation::Single,
                &bitmap_update(&[over]),
            ),
        ]);
        // The pointer and the 16 bpp update go to IronRDP in one frame, then one is drawn here.
        let steps = BitmapPath::new(1003).take(&mixed);
        assert!(matches!(
            steps.as_slice(),
            [Step::ForIronRdp(_), Step::Draw(_)]
        ));
        let regions = both_ways(&[
            frame(&[update_pdu(
                UpdateCode::Bitmap,
                Fragmentation::Single,
                &bitmap_update(&[first]),
            )]),
            mixed,
        ]);
        assert_eq!(regions.len(), 3);
        assert_eq!(
            (
                regions[1].left,
                regions[1].top,
                regions[1].right,
                regions[1].bottom
            ),
            (0, 0, 35, 35)
        );
    }

    /// A slow-path frame (TPKT, X.224, MCS, share headers) of one bitmap update. (IronRDP
    /// does not encode update PDUs; the share headers are written as [MS-RDPBCGR] 2.2.8.1.1.1
    /// lays them out.)
    fn slow_path(update: Vec<u8>) -> Vec<u8> {
        let mut share = Vec::new();
        share.extend_from_slice(&((18 + update.len()) as u16).to_le_bytes()); // totalLength
        share.extend_from_slice(&0x17u16.to_le_bytes()); // data PDU, protocol version 1
        share.extend_from_slice(&1002u16.to_le_bytes()); // pduSource
        share.extend_from_slice(&0x10000u32.to_le_bytes()); // shareId
        share.extend_from_slice(&[0, 2]); // pad, medium priority
        share.extend_from_slice(&((4 + update.len()) as u16).to_le_bytes());
        share.extend_from_slice(&[2, 0, 0, 0]); // update PDU, not compressed
        share.extend_from_slice(&update);
        let indication = ironrdp_pdu::mcs::SendDataIndication {
            initiator_id: 1002,
            channel_id: 1003,
            user_data: std::borrow::Cow::Owned(share),
        };
        encode_vec(&ironrdp_pdu::x224::X224(indication)).expect("x224 frame")
    }

    #[test]
    fn slow_path_bitmaps_as_xrdp_sends_them_are_drawn_here_too() {
        let planar = slow_path(bitmap_update(&[rect((4, 4, 20, 16), 3, 32, true, 10)]));
        let sixteen = slow_path(bitmap_update(&[
            rect((0, 0, 6, 6), 0, 16, false, 11),
            rect((30, 30, 6, 6), 0, 16, false, 12),
        ]));
        let path = BitmapPath::new(1003);
        assert!(path.slow_path_bitmap(&planar).is_some());
        assert!(
            path.slow_path_bitmap(&sixteen).is_none(),
            "16 bpp is left to IronRDP"
        );
        // Another channel's data is not an update, and IronRDP draws nothing from it.
        assert!(BitmapPath::new(1004).slow_path_bitmap(&planar).is_none());
        assert!(!BitmapPath::new(1004).slow_path_may_draw(&planar));
        assert!(path.slow_path_may_draw(&sixteen));
        let after = frame(&[update_pdu(
            UpdateCode::Bitmap,
            Fragmentation::Single,
            &bitmap_update(&[rect((2, 28, 10, 10), 0, 32, true, 13)]),
        )]);
        let regions = both_ways(&[planar, sixteen, after]);
        assert_eq!(regions.len(), 3);
    }
}
