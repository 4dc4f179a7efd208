//! Why: RDP is decoded on the gateway (as Guacamole and Warpgate do), because only then can
//! the gateway log in with a vault credential the browser never sees, record what really
//! happened, let others watch and join, and end the session. This adapter runs IronRDP's
//! client over the session's byte stream (a socket or a landing-server tunnel), keeps the
//! desktop's picture (bitmap updates are decoded into it by `bitmaps`, the rest of the
//! protocol is IronRDP's), and hands changed rectangles to the broker as raw pixels; the
//! broker encodes them once for every viewer and the recorder (`desktop`).
//! Browser input arrives as key positions and pointer events and leaves as RDP fast-path
//! input.

pub mod bitmaps;
pub mod clipboard;
pub mod connect;
pub mod damage;
pub mod keys;
pub mod pacing;
pub mod planar;
pub mod resize;

use std::sync::Arc;
use std::time::Duration;

use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_input::{MouseButton, MousePosition, Operation, Scancode, WheelRotations};
use ironrdp_pdu::geometry::{InclusiveRectangle, Rectangle as _};
use ironrdp_pdu::rdp::headers::ShareDataPdu;
use ironrdp_pdu::rdp::suppress_output::SuppressOutputPdu;
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput};
use ironrdp_tokio::FramedWrite;
use tokio::sync::oneshot;

use crate::adapter::{AdapterFuture, AdapterIo, ProtocolAdapter, TargetStream};
use crate::desktop::RAW_RGBA;
use crate::event::{
    ClientInput, Cursor, FailureKind, FrameRect, Lifecycle, Protocol, SessionEvent,
};
use crate::host_key::{HostKeyObservation, HostKeyPolicy};
use crate::Secret;

/// Which security protocols the gateway offers the server (per resource).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RdpSecurity {
    /// NLA (CredSSP) only: a bad password is refused before any desktop exists.
    NlaRequired,
    /// NLA when the server offers it, else TLS.
    NlaPreferred,
    /// TLS only: the password is sent in the logon info; a wrong one cannot be detected at
    /// protocol level (the server shows its own login screen or error).
    TlsOnly,
}

impl RdpSecurity {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "nla" => Some(RdpSecurity::NlaRequired),
            "nla_preferred" => Some(RdpSecurity::NlaPreferred),
            "tls" => Some(RdpSecurity::TlsOnly),
            _ => None,
        }
    }
}

pub struct RdpTarget {
    /// For messages: "the target win-1 (10.0.0.5:3389)".
    pub label: String,
    /// The name the server is addressed by (TLS and CredSSP).
    pub server_name: String,
    /// `user`, `DOMAIN\user` or `user@domain`.
    pub username: String,
    pub password: Secret,
    pub security: RdpSecurity,
    /// The pin of the server's TLS certificate (same rules as SSH host keys).
    pub certificate: HostKeyPolicy,
    /// Windows keyboard layout id (0x409: US English).
    pub keyboard_layout: u32,
    /// Initial desktop size in pixels.
    pub width: u16,
    pub height: u16,
    /// Whether the desktop follows the browser tab's size (Display Control); otherwise the
    /// size stays fixed and the browser scales the picture.
    pub follow_tab: bool,
    /// What may cross the clipboard.
    pub clipboard: clipboard::ClipboardPolicy,
    /// Every clipboard transfer made, for the audit: (to the target?, characters).
    pub clipboard_log: tokio::sync::mpsc::UnboundedSender<(bool, usize)>,
    /// Every region reaches browsers exactly: no JPEG while a photograph moves (the
    /// resource's image quality setting; see `desktop`).
    pub lossless_only: bool,
    /// How hard a flood of changes is held back (the resource's setting; see `pacing`).
    pub flood_pacing: pacing::FloodPacing,
}

impl RdpTarget {
    /// The user name and domain as RDP wants them, from the three usual spellings.
    pub fn split_user(&self) -> (String, Option<String>) {
        split_user(&self.username)
    }
}

pub fn split_user(u: &str) -> (String, Option<String>) {
    if let Some((domain, user)) = u.split_once('\\') {
        return (user.to_string(), Some(domain.to_string()));
    }
    if let Some((user, domain)) = u.rsplit_once('@') {
        if !user.is_empty() && !domain.is_empty() {
            return (user.to_string(), Some(domain.to_string()));
        }
    }
    (u.to_string(), None)
}

pub struct RdpAdapter {
    target: RdpTarget,
    report: oneshot::Sender<HostKeyObservation>,
}

impl RdpAdapter {
    /// The adapter, and where the server's certificate is reported (for pinning).
    pub fn new(target: RdpTarget) -> (Self, oneshot::Receiver<HostKeyObservation>) {
        let (report, seen) = oneshot::channel();
        (RdpAdapter { target, report }, seen)
    }
}

impl ProtocolAdapter for RdpAdapter {
    fn protocol(&self) -> Protocol {
        Protocol::Rdp
    }
    fn lossless_only(&self) -> bool {
        self.target.lossless_only
    }
    fn run(self: Box<Self>, target: TargetStream, io: AdapterIo) -> AdapterFuture {
        Box::pin(run(*self, target, io))
    }
}

/// How long screen updates are gathered before they are handed on: under a burst (a
/// scrolling terminal) many small updates become one rectangle set per frame.
const FRAME_INTERVAL: Duration = Duration::from_millis(16);
/// The socket of a direct RDP connection.
///
/// Its receive buffer: left to grow (up to 32 MiB here), it held seconds of stale updates
/// that the gateway then decoded in full; at 64 KiB a pause in reading reaches the server
/// within one update. The cost: at most 64 KiB in flight, about 1.3 MB/s on a 50 ms round
/// trip (a target far from its gateway). Through landing servers the SSH channel's window
/// plays this part.
///
/// Its segment size, offered to the server: Ethernet's 1460 bytes. Linux sizes a sender's
/// buffer from its segments, so a server on loopback (64 KiB segments) queued 2.8 MB of
/// updates in its own socket, about 3 s of a flood at the rate the gateway reads it, all of
/// it shown late; with Ethernet-sized segments it queues about 1 MB. On a network with a
/// 1500-byte MTU (most targets) this changes nothing.
pub const PACED_SOCKET: crate::tcp::SocketSizes = crate::tcp::SocketSizes {
    receive_buffer: 64 * 1024,
    segment: 1460,
};

async fn run(a: RdpAdapter, stream: TargetStream, mut io: AdapterIo) {
    let RdpAdapter { mut target, report } = a;
    let _ = io
        .events
        .send(SessionEvent::Lifecycle(Lifecycle::Connecting))
        .await;
    let connected = match tokio::time::timeout(
        Duration::from_secs(30),
        connect::connect(&target, stream, report),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err((kind, message))) => return fail(&io, kind, message).await,
        Err(_) => {
            return fail(
                &io,
                FailureKind::TimedOut,
                format!(
                    "{}: the RDP connection did not complete within 30 s",
                    target.label
                ),
            )
            .await
        }
    };
    // The password is not needed any more: wiped now, not at the session's end.
    drop(std::mem::replace(
        &mut target.password,
        Secret::new(Vec::new()),
    ));
    let connect::Connected {
        mut framed,
        result,
        nla,
        clipboard: clip_events,
    } = connected;
    let policy = target.clipboard;
    // The browser's text last offered to the desktop's clipboard.
    let mut offered: Option<String> = None;
    let (mut w, mut h) = (result.desktop_size.width, result.desktop_size.height);
    if let Err(why) = size_check(&target.label, w, h) {
        return fail(&io, FailureKind::Protocol, why).await;
    }
    let activation = result.activation_factory.clone();
    let mut image = DecodedImage::new(PixelFormat::RgbA32, w, h);
    let mut picture = bitmaps::Picture::new(w, h);
    let mut bitmap_path = bitmaps::BitmapPath::new(result.io_channel_id);
    let mut stage: ActiveStage = ActiveStageBuilder {
        static_channels: result.static_channels,
        user_channel_id: result.user_channel_id,
        io_channel_id: result.io_channel_id,
        message_channel_id: result.message_channel_id,
        share_id: result.share_id,
        compression_type: None,
        enable_server_pointer: result.enable_server_pointer,
        pointer_software_rendering: result.pointer_software_rendering,
    }
    .build();
    let _ = io
        .events
        .send(SessionEvent::Resize { cols: w, rows: h })
        .await;
    let _ = io
        .events
        .send(SessionEvent::Marker(format!(
            "{}: connected over RDP ({}), desktop {w}x{h}",
            target.label,
            if nla { "NLA" } else { "TLS" }
        )))
        .await;
    let _ = io
        .events
        .send(SessionEvent::Lifecycle(Lifecycle::Connected))
        .await;
    let mut input = ironrdp_input::Database::new();
    let mut buttons: u8 = 0;
    let mut damage = damage::Damage::default();
    let mut flush_at: Option<tokio::time::Instant> = None;
    // The frame being gathered waits for the server's redraw after a pause (`allowed`).
    let mut awaits_redraw = false;
    // When the first update of the frame being gathered was read (how old its picture is,
    // counted from there, is measured for each browser: `frame_window`).
    let mut frame_since: Option<std::time::Instant> = None;
    let mut frame_fill = pacing::FrameFill::default();
    // What was read during a suppressed pause.
    let mut drained = pacing::FrameFill::default();
    let mut pacer = pacing::FloodPacer::new(result.suppress_output_support, target.flood_pacing);
    let mut tab = resize::TabSize::new(target.follow_tab, tokio::time::Instant::now());
    let mut recheck_at: Option<tokio::time::Instant> = None;
    let label = target.label.clone();
    // Virtual-channel frames that arrived during a reactivation, processed before new reads.
    let mut later: std::collections::VecDeque<ironrdp_tokio::bytes::BytesMut> = Default::default();
    let reason = loop {
        let flush = async {
            match flush_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let recheck = async {
            match recheck_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let paused_until = pacer.paused_until();
        // A frame that has redrawn a whole desktop's worth is handed on before more is read.
        let frame_full = flush_at.is_some() && frame_fill.is_full(w, h);
        let reads = pacer.reads(&drained, w, h) && !frame_full;
        let paused = async {
            match paused_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = paused => {
                if let Some(t) = pacer.resume(tokio::time::Instant::now()) {
                    if let Err(why) = tell_server(&mut stage, &mut framed, t, (w, h), &label).await {
                        break why;
                    }
                    allowed(&mut drained, &damage, &mut flush_at, &mut awaits_redraw);
                }
            }
            pdu = next_frame(&mut later, &mut framed), if reads => {
                let read_at = std::time::Instant::now();
                // One instant for this read's decisions: a redraw's rest (`hands_on`) ends
                // in time, and must not end halfway through one read.
                let read_now = tokio::time::Instant::now();
                let (action, payload) = match pdu {
                    Ok(p) => p,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break format!("{label} closed the connection."),
                    Err(e) => break format!("The connection to {label} failed: {e}"),
                };
                // Drawing follows the pacing: watched while the server redraws after a
                // pause, not done while its output is suppressed.
                picture.watch(pacer.watching());
                bitmap_path.discard(!pacer.hands_on(read_now));
                let outputs = match bitmaps::process_frame(&mut stage, &mut image, &mut picture, &mut bitmap_path, action, &payload, framed.last_read_at()) {
                    Ok(o) => o,
                    Err(e) => break format!("{label} sent something the gateway could not decode: {e}"),
                };
                let mut ended = None;
                for out in outputs {
                    match out {
                        ActiveStageOutput::ResponseFrame(frame) => {
                            if let Err(e) = framed.write_all(&frame).await {
                                ended = Some(format!("Sending to {label} failed: {e}"));
                                break;
                            }
                        }
                        ActiveStageOutput::GraphicsUpdate(r) => {
                            damage.add(r);
                            // Whatever was drawn is shown with the next frame, also what
                            // was drawn while output was suppressed (the desktop's last row
                            // and column): the frame is as old as the first of them.
                            frame_since.get_or_insert(read_at);
                            if let Some(t) = pacer.update_read(tokio::time::Instant::now()) {
                                if let Err(why) = tell_server(&mut stage, &mut framed, t, (w, h), &label).await {
                                    ended = Some(why);
                                    break;
                                }
                            }
                            // While output is suppressed, what still comes waits for the
                            // frame after the pause (but for a redraw's rest: `hands_on`).
                            // A frame that waits for the redraw (`allowed`) goes with it.
                            if pacer.hands_on(read_now) && (flush_at.is_none() || awaits_redraw) {
                                awaits_redraw = false;
                                let now = tokio::time::Instant::now();
                                pacer.frame_began(now);
                                flush_at = Some(now + FRAME_INTERVAL);
                            }
                        }
                        ActiveStageOutput::PointerDefault => {
                            let _ = io.events.send(SessionEvent::Cursor(Cursor::Default)).await;
                        }
                        ActiveStageOutput::PointerHidden => {
                            let _ = io.events.send(SessionEvent::Cursor(Cursor::Hidden)).await;
                        }
                        ActiveStageOutput::PointerBitmap(p) => {
                            if let Some(c) = cursor_image(&p) {
                                let _ = io.events.send(SessionEvent::Cursor(c)).await;
                            }
                        }
                        ActiveStageOutput::Terminate(why) => {
                            ended = Some(format!("{label} ended the session ({why:?})."));
                            break;
                        }
                        ActiveStageOutput::DeactivateAll => {
                            // Usually a new desktop size (the tab was resized).
                            let done = tokio::time::timeout(Duration::from_secs(15), resize::reactivate(&mut framed, &activation, &mut stage)).await;
                            let (nw, nh) = match done {
                                Ok(Ok(r)) => {
                                    later.extend(r.later);
                                    r.size
                                }
                                Ok(Err(e)) => { ended = Some(format!("{label} reactivated the session and it failed: {e}")); break; }
                                Err(_) => { ended = Some(format!("{label} did not complete the session's reactivation within 15 s.")); break; }
                            };
                            if let Err(why) = size_check(&label, nw, nh) {
                                ended = Some(why);
                                break;
                            }
                            tab.answered((nw, nh));
                            // A reactivated server starts afresh: it may send.
                            if let Some(t) = pacer.resume(tokio::time::Instant::now()) {
                                if let Err(why) = tell_server(&mut stage, &mut framed, t, (nw, nh), &label).await {
                                    ended = Some(why);
                                    break;
                                }
                                allowed(&mut drained, &damage, &mut flush_at, &mut awaits_redraw);
                            }
                            if (nw, nh) != (w, h) {
                                (w, h) = (nw, nh);
                                image = DecodedImage::new(PixelFormat::RgbA32, w, h);
                                picture = bitmaps::Picture::new(w, h);
                                bitmap_path.reset();
                                damage = Default::default();
                                flush_at = None;
                                awaits_redraw = false;
                                frame_since = None;
                                frame_fill = Default::default();
                                let _ = io.events.send(SessionEvent::Resize { cols: w, rows: h }).await;
                                let _ = io.events.send(SessionEvent::Marker(format!("The desktop is now {w}x{h}."))).await;
                            }
                        }
                        _ => {}
                    }
                }
                if let Some(why) = ended {
                    break why;
                }
                let pixels = bitmap_path.pixels_drawn();
                if pacer.hands_on(read_now) {
                    frame_fill.drawn(pixels);
                    pacer.drawn(pixels);
                } else {
                    drained.drawn(pixels);
                }
                if flush_at.is_some() && frame_fill.is_full(w, h) {
                    flush_at = Some(tokio::time::Instant::now());
                }
                let reported: Vec<_> = clip_events.as_ref().map(|rx| rx.try_iter().collect()).unwrap_or_default();
                if let Err(why) = on_clipboard(reported, &target, &offered, &mut stage, &mut framed, &io).await {
                    break why;
                }
            }
            _ = recheck => {
                match tab.step(stage.display_control_ready() == Some(true), tokio::time::Instant::now()) {
                    resize::Step::Idle => {}
                    resize::Step::Ask(nw, nh) => {
                        if let Some(Ok(frame)) = stage.encode_resize(u32::from(nw), u32::from(nh), None, None) {
                            if let Err(e) = framed.write_all(&frame).await {
                                break format!("Sending to {label} failed: {e}");
                            }
                        }
                    }
                    resize::Step::Unsupported => {
                        let _ = io.events.send(SessionEvent::Marker(format!("{label} does not offer display control: the desktop stays {w}x{h} and the picture is scaled to the tab."))).await;
                    }
                }
                recheck_at = tab.recheck_at();
            }
            _ = flush => {
                flush_at = None;
                awaits_redraw = false;
                let short_by = std::mem::take(&mut frame_fill).short_of(w, h);
                let tell = pacer.frame_sent(tokio::time::Instant::now(), picture.changed(), short_by);
                if let Some(t) = tell {
                    if let Err(why) = tell_server(&mut stage, &mut framed, t, (w, h), &label).await {
                        break why;
                    }
                    drained = Default::default();
                }
                if !damage.is_empty() {
                    let rects: Vec<FrameRect> = damage.take().iter().map(|r| cut(&mut picture, r)).collect();
                    if io.events.send(SessionEvent::Frame(rects.into(), frame_since.take())).await.is_err() {
                        break "the gateway closed the session".to_string();
                    }
                }
            }
            ev = io.input.recv() => {
                // Input ends a pause (the server is told first, so that it draws the answer).
                let mut tell = None;
                let ops: Vec<Operation> = match ev {
                    None => break "The session was closed by the gateway.".to_string(),
                    Some(ClientInput::Terminate { reason }) => break reason,
                    Some(ClientInput::Key { scancode, extended, down }) => {
                        // A key (Ctrl+C into a flood) ends a pause at once: its answer is
                        // wanted now, and a server that waits to send reads no input.
                        tell = pacer.resume(tokio::time::Instant::now());
                        let sc = Scancode::from_u8(extended, scancode);
                        vec![if down { Operation::KeyPressed(sc) } else { Operation::KeyReleased(sc) }]
                    }
                    Some(ClientInput::Pointer { x, y, buttons: now }) => {
                        let at = tokio::time::Instant::now();
                        tell = pacer.pointer_moved(at);
                        if now != buttons {
                            tell = tell.or(pacer.resume(at));
                        }
                        let mut ops = vec![Operation::MouseMove(MousePosition { x: x.min(w.saturating_sub(1)), y: y.min(h.saturating_sub(1)) })];
                        for (bit, b) in [(1u8, MouseButton::Left), (2, MouseButton::Right), (4, MouseButton::Middle)] {
                            match (buttons & bit != 0, now & bit != 0) {
                                (false, true) => ops.push(Operation::MouseButtonPressed(b)),
                                (true, false) => ops.push(Operation::MouseButtonReleased(b)),
                                _ => {}
                            }
                        }
                        buttons = now;
                        ops
                    }
                    Some(ClientInput::Wheel { steps }) => {
                        tell = pacer.resume(tokio::time::Instant::now());
                        vec![Operation::WheelRotations(WheelRotations { is_vertical: true, rotation_units: steps.saturating_mul(120) })]
                    }
                    Some(ClientInput::Clipboard { text }) => {
                        if !policy.to_target() || clip_events.is_none() {
                            let _ = io.events.send(SessionEvent::Marker("Clipboard text from the browser was not sent: this resource's clipboard policy is off.".into())).await;
                            continue;
                        }
                        let (text, cut) = clipboard::bounded(&text);
                        let offer = |c: &mut ironrdp_cliprdr::CliprdrClient| {
                            c.initiate_copy(&[ironrdp_cliprdr::pdu::ClipboardFormat::new(
                                ironrdp_cliprdr::pdu::ClipboardFormatId::CF_UNICODETEXT,
                            )])
                        };
                        if let Err(why) = clip_send(&mut stage, &mut framed, offer, &label).await {
                            break why;
                        }
                        if cut {
                            let _ = io.events.send(SessionEvent::Marker(format!("Clipboard text from the browser was cut to {} characters.", clipboard::MAX_TEXT))).await;
                        }
                        let _ = target.clipboard_log.send((true, text.chars().count()));
                        let _ = io.events.send(SessionEvent::Clipboard { to_target: true, text: text.as_str().into() }).await;
                        offered = Some(text);
                        continue;
                    }
                    Some(ClientInput::ReleaseAll) => {
                        buttons = 0;
                        let events = input.release_all();
                        if let Err(why) = send_input(&mut stage, &mut image, &mut framed, &events, &label).await {
                            break why;
                        }
                        continue;
                    }
                    // The browser tab's size, in pixels.
                    Some(ClientInput::Resize { cols, rows }) => {
                        tab.want(cols, rows, (w, h));
                        recheck_at = Some(tokio::time::Instant::now());
                        continue;
                    }
                    // Terminal input means nothing to a desktop.
                    Some(ClientInput::Data(_) | ClientInput::Secret(_)) => Vec::new(),
                };
                if let Some(t) = tell {
                    if let Err(why) = tell_server(&mut stage, &mut framed, t, (w, h), &label).await {
                        break why;
                    }
                    allowed(&mut drained, &damage, &mut flush_at, &mut awaits_redraw);
                }
                let events = input.apply(ops);
                if let Err(why) = send_input(&mut stage, &mut image, &mut framed, &events, &label).await {
                    break why;
                }
            }
        }
    };
    if let Ok(outs) = stage.graceful_shutdown() {
        for out in outs {
            if let ActiveStageOutput::ResponseFrame(frame) = out {
                let _ = framed.write_all(&frame).await;
            }
        }
    }
    // What was drawn last is part of the record.
    if !damage.is_empty() {
        let rects: Vec<FrameRect> = damage.take().iter().map(|r| cut(&mut picture, r)).collect();
        let _ = io
            .events
            .send(SessionEvent::Frame(rects.into(), frame_since.take()))
            .await;
    }
    let _ = io
        .events
        .send(SessionEvent::Lifecycle(Lifecycle::Ended {
            reason,
            exit_status: None,
        }))
        .await;
}

/// Sends what the clipboard channel `f` produces.
async fn clip_send(
    stage: &mut ActiveStage,
    framed: &mut connect::Upgraded,
    f: impl FnOnce(
        &mut ironrdp_cliprdr::CliprdrClient,
    ) -> ironrdp_pdu::PduResult<
        ironrdp_cliprdr::CliprdrSvcMessages<ironrdp_cliprdr::Client>,
    >,
    label: &str,
) -> Result<(), String> {
    let Some(channel) = stage.get_svc_processor_mut::<ironrdp_cliprdr::CliprdrClient>() else {
        return Ok(());
    };
    let messages = f(channel).map_err(|e| format!("The clipboard for {label} failed: {e}"))?;
    let bytes = stage
        .process_svc_processor_messages(messages)
        .map_err(|e| format!("The clipboard for {label} failed: {e}"))?;
    framed
        .write_all(&bytes)
        .await
        .map_err(|e| format!("Sending to {label} failed: {e}"))
}

/// Acts on what the clipboard channel reported: hands over the text the browser offered,
/// and (policy permitting) fetches the desktop's new text for the browser.
async fn on_clipboard(
    reported: Vec<clipboard::ClipEvent>,
    target: &RdpTarget,
    offered: &Option<String>,
    stage: &mut ActiveStage,
    framed: &mut connect::Upgraded,
    io: &AdapterIo,
) -> Result<(), String> {
    let (policy, log, label) = (
        target.clipboard,
        &target.clipboard_log,
        target.label.as_str(),
    );
    use ironrdp_cliprdr::pdu::{ClipboardFormatId, OwnedFormatDataResponse};
    for e in reported {
        match e {
            clipboard::ClipEvent::TextRequested => {
                let response = match offered {
                    Some(t) => OwnedFormatDataResponse::new_unicode_string(t),
                    None => OwnedFormatDataResponse::new_error(),
                };
                clip_send(stage, framed, |c| c.submit_format_data(response), label).await?;
            }
            clipboard::ClipEvent::RemoteHasText if policy.from_target() => {
                clip_send(
                    stage,
                    framed,
                    |c| c.initiate_paste(ClipboardFormatId::CF_UNICODETEXT),
                    label,
                )
                .await?;
            }
            clipboard::ClipEvent::RemoteText(Some(text)) if policy.from_target() => {
                let (text, _) = clipboard::bounded(&text);
                let _ = log.send((false, text.chars().count()));
                let _ = io
                    .events
                    .send(SessionEvent::Clipboard {
                        to_target: false,
                        text: text.as_str().into(),
                    })
                    .await;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Tells the server to stop sending display updates, or to send again (the whole desktop:
/// the area the gateway shows, [MS-RDPBCGR] 2.2.11.3.1).
async fn tell_server(
    stage: &mut ActiveStage,
    framed: &mut connect::Upgraded,
    tell: pacing::Tell,
    (w, h): (u16, u16),
    label: &str,
) -> Result<(), String> {
    let desktop_rect = match tell {
        pacing::Tell::Suppress => None,
        pacing::Tell::Allow => Some(InclusiveRectangle {
            left: 0,
            top: 0,
            right: w.saturating_sub(1),
            bottom: h.saturating_sub(1),
        }),
    };
    let mut buf = ironrdp_core::WriteBuf::new();
    stage
        .encode_static(
            &mut buf,
            ShareDataPdu::SuppressOutput(SuppressOutputPdu { desktop_rect }),
        )
        .map_err(|e| format!("A Suppress Output PDU for {label} could not be encoded: {e}"))?;
    framed
        .write_all(buf.filled())
        .await
        .map_err(|e| format!("Sending to {label} failed: {e}"))
}

/// The server was allowed to send again. Bitmaps read during the pause were not drawn (its
/// redraw covers them); anything else drawn then goes with the redraw's first frame, or
/// alone if the redraw has not begun within `REDRAW_WITHIN` (`awaits_redraw`).
fn allowed(
    drained: &mut pacing::FrameFill,
    damage: &damage::Damage,
    flush_at: &mut Option<tokio::time::Instant>,
    awaits_redraw: &mut bool,
) {
    *drained = Default::default();
    if !damage.is_empty() && flush_at.is_none() {
        *flush_at = Some(tokio::time::Instant::now() + pacing::REDRAW_WITHIN);
        *awaits_redraw = true;
    }
}

/// Encodes input events as fast-path PDUs and sends them; the error is the session's end.
async fn send_input(
    stage: &mut ActiveStage,
    image: &mut DecodedImage,
    framed: &mut connect::Upgraded,
    events: &[ironrdp_pdu::input::fast_path::FastPathInputEvent],
    label: &str,
) -> Result<(), String> {
    if events.is_empty() {
        return Ok(());
    }
    let outs = stage
        .process_fastpath_input(image, events)
        .map_err(|e| format!("Input for {label} could not be encoded: {e}"))?;
    for out in outs {
        if let ActiveStageOutput::ResponseFrame(frame) = out {
            framed
                .write_all(&frame)
                .await
                .map_err(|e| format!("Sending to {label} failed: {e}"))?;
        }
    }
    Ok(())
}

/// The next frame from the server: first those set aside during a reactivation (slow-path
/// X.224 frames), then what the connection brings.
async fn next_frame(
    later: &mut std::collections::VecDeque<ironrdp_tokio::bytes::BytesMut>,
    framed: &mut connect::Upgraded,
) -> std::io::Result<(ironrdp_pdu::Action, ironrdp_tokio::bytes::BytesMut)> {
    match later.pop_front() {
        Some(frame) => Ok((ironrdp_pdu::Action::X224, frame)),
        None => framed.read_pdu().await,
    }
}

/// A desktop size the gateway can hold, or why not.
fn size_check(label: &str, w: u16, h: u16) -> Result<(), String> {
    let ok = 1..=crate::desktop::MAX_SIDE;
    if ok.contains(&w) && ok.contains(&h) && u32::from(w) * u32::from(h) <= crate::desktop::MAX_AREA
    {
        return Ok(());
    }
    Err(format!(
        "{label}: the server chose a desktop of {w}x{h} pixels, which the gateway does not accept (at most {m}x{m}, and no more pixels than 4096x2160).",
        m = crate::desktop::MAX_SIDE
    ))
}

async fn fail(io: &AdapterIo, kind: FailureKind, message: String) {
    let _ = io
        .events
        .send(SessionEvent::Lifecycle(Lifecycle::Failed { kind, message }))
        .await;
}

/// A pointer shape (RGBA, straight alpha) as a PNG cursor; None for a shape too large for a
/// browser cursor (they accept up to 128x128) or malformed.
fn cursor_image(p: &ironrdp_graphics::pointer::DecodedPointer) -> Option<Cursor> {
    let (w, h) = (p.width, p.height);
    if w == 0 || h == 0 || w > 128 || h > 128 || p.bitmap_data.len() != w as usize * h as usize * 4
    {
        return None;
    }
    let mut png = Vec::new();
    let mut enc = png::Encoder::new(&mut png, w as u32, h as u32);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut wr| wr.write_image_data(&p.bitmap_data))
        .ok()?;
    Some(Cursor::Image {
        png: png.into(),
        hotspot_x: p.hotspot_x.min(w - 1),
        hotspot_y: p.hotspot_y.min(h - 1),
    })
}

/// The raw pixels of `r` (inclusive bounds, clipped to the desktop) out of the picture.
fn cut(picture: &mut bitmaps::Picture, r: &InclusiveRectangle) -> FrameRect {
    let (pw, ph) = picture.size();
    let right = r.right.min(pw.saturating_sub(1));
    let bottom = r.bottom.min(ph.saturating_sub(1));
    let clipped = InclusiveRectangle {
        left: r.left.min(right),
        top: r.top.min(bottom),
        right,
        bottom,
    };
    // (Always inside the picture; an empty rectangle would be dropped by the broker.)
    let data = picture
        .region_shared(&clipped)
        .unwrap_or_else(|| Arc::from(Vec::new()));
    FrameRect {
        x: clipped.left,
        y: clipped.top,
        width: clipped.width(),
        height: clipped.height(),
        encoding: RAW_RGBA,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_split_into_user_and_domain() {
        assert_eq!(split_user("alice"), ("alice".into(), None));
        assert_eq!(
            split_user("CORP\\alice"),
            ("alice".into(), Some("CORP".into()))
        );
        assert_eq!(
            split_user("alice@corp.example"),
            ("alice".into(), Some("corp.example".into()))
        );
        assert_eq!(split_user("@odd"), ("@odd".into(), None));
    }
}
