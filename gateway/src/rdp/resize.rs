//! Why: the desktop follows the browser tab's size. The gateway asks the server for a new
//! size over the Display Control channel (MS-RDPEDISP); a server that agrees answers with the
//! Deactivation-Reactivation Sequence (MS-RDPBCGR 1.3.1.3), which carries the new desktop
//! size, after which the session goes on. A server without the channel keeps the first size
//! and the browser scales the picture. Wishes are coalesced: at most one request is in flight,
//! and only the last size wanted is asked for.

use std::time::Duration;

use ironrdp_connector::connection_activation::{
    ConnectionActivationFactory, ConnectionActivationState,
};
use ironrdp_core::WriteBuf;
use ironrdp_session::ActiveStage;
use ironrdp_tokio::FramedWrite;
use tokio::time::Instant;

use super::connect::Upgraded;

/// How long after connecting the server has to open the Display Control channel before a
/// wish to resize is answered with "the picture is scaled".
const CHANNEL_WAIT: Duration = Duration::from_secs(10);

/// How long a request may stay unanswered before another is sent.
const IN_FLIGHT: Duration = Duration::from_secs(5);

/// How often a pending wish is looked at again (channel not ready yet, request in flight).
const RECHECK: Duration = Duration::from_millis(250);

/// The size an RDP desktop may have (MS-RDPEDISP 2.2.2.2.1: 200..=8192, even width), within
/// what the gateway holds (`desktop::MAX_AREA`: a larger tab gets a smaller desktop of the
/// same shape, scaled up by the browser).
pub fn acceptable(width: u16, height: u16) -> (u16, u16) {
    let max = crate::desktop::MAX_SIDE.min(8192);
    let (width, height) =
        crate::desktop::within_area(width.clamp(200, max), height.clamp(200, max));
    (width.max(200) & !1, height.max(200))
}

/// What happened when a wish was looked at.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do now.
    Idle,
    /// Ask the server for this size.
    Ask(u16, u16),
    /// The server has no Display Control channel: say once that the picture is scaled.
    Unsupported,
}

/// The browser tab's size wishes and what has been asked of the server.
pub struct TabSize {
    follow: bool,
    connected_at: Instant,
    /// The size last wanted and not asked for yet.
    wanted: Option<(u16, u16)>,
    /// When the last request was sent (cleared when the server answers).
    asked_at: Option<Instant>,
    told_unsupported: bool,
}

impl TabSize {
    pub fn new(follow: bool, connected_at: Instant) -> Self {
        TabSize {
            follow,
            connected_at,
            wanted: None,
            asked_at: None,
            told_unsupported: false,
        }
    }

    /// The tab now measures `width` x `height`; the desktop is `current`.
    pub fn want(&mut self, width: u16, height: u16, current: (u16, u16)) {
        if !self.follow {
            return;
        }
        let size = acceptable(width, height);
        self.wanted = (size != current || self.asked_at.is_some()).then_some(size);
    }

    /// The server answered (a reactivation happened): the next wish may be asked.
    pub fn answered(&mut self, now: (u16, u16)) {
        self.asked_at = None;
        if self.wanted == Some(now) {
            self.wanted = None;
        }
    }

    /// When the pending wish should be looked at again, if there is one.
    pub fn recheck_at(&self) -> Option<Instant> {
        self.wanted.map(|_| Instant::now() + RECHECK)
    }

    /// What to do about the pending wish, given whether the channel is ready.
    pub fn step(&mut self, channel_ready: bool, now: Instant) -> Step {
        let Some((w, h)) = self.wanted else {
            return Step::Idle;
        };
        if self
            .asked_at
            .is_some_and(|t| now.duration_since(t) < IN_FLIGHT)
        {
            return Step::Idle;
        }
        if channel_ready {
            self.wanted = None;
            self.asked_at = Some(now);
            return Step::Ask(w, h);
        }
        if now.duration_since(self.connected_at) < CHANNEL_WAIT {
            return Step::Idle;
        }
        self.wanted = None;
        if std::mem::replace(&mut self.told_unsupported, true) {
            Step::Idle
        } else {
            Step::Unsupported
        }
    }
}

/// What to do with a PDU that arrives while the session is being reactivated.
#[derive(Debug, PartialEq, Eq)]
enum WhileReactivating {
    /// Part of the sequence: step it.
    Step,
    /// A screen or pointer update sent before the new desktop is set up (xrdp does this now
    /// and then): dropped, since the whole new desktop is asked for afterwards anyway. IronRDP
    /// would otherwise end the session ("unexpected server message").
    Drop,
    /// Virtual-channel traffic (clipboard, display control): kept and handed to the session
    /// once it is active again, so that no channel loses a message.
    Later,
}

/// `finalizing`: the sequence is past the capabilities exchange (it waits for the server's
/// Synchronize, Control and Font Map PDUs); otherwise it waits for Demand Active.
fn while_reactivating(finalizing: bool, io_channel_id: u16, pdu: &[u8]) -> WhileReactivating {
    use ironrdp_pdu::rdp::headers::{ShareControlPdu, ShareDataPdu};
    // Anything that does not decode is the sequence's to report.
    let Ok(ctx) = ironrdp_pdu::mcs::decode_send_data_indication(pdu) else {
        return WhileReactivating::Step;
    };
    if ctx.channel_id != io_channel_id {
        return WhileReactivating::Later;
    }
    let Ok(share) = ironrdp_pdu::rdp::headers::decode_share_control(ctx) else {
        return WhileReactivating::Step;
    };
    let ShareControlPdu::Data(data) = share.pdu else {
        return WhileReactivating::Step;
    };
    match data.share_data_pdu {
        ShareDataPdu::ServerSetErrorInfo(_) => WhileReactivating::Step,
        ShareDataPdu::Synchronize(_)
        | ShareDataPdu::Control(_)
        | ShareDataPdu::MonitorLayout(_)
        | ShareDataPdu::FontMap(_)
            if finalizing =>
        {
            WhileReactivating::Step
        }
        _ => WhileReactivating::Drop,
    }
}

/// The session after a reactivation: the new desktop size, and virtual-channel frames that
/// arrived during it (X.224 frames, for the session to process next).
pub struct Reactivated {
    pub size: (u16, u16),
    pub later: Vec<ironrdp_tokio::bytes::BytesMut>,
}

/// Runs the Deactivation-Reactivation Sequence the server started and hands the session
/// the new parameters.
pub async fn reactivate(
    framed: &mut Upgraded,
    factory: &ConnectionActivationFactory,
    stage: &mut ActiveStage,
) -> Result<Reactivated, String> {
    use ironrdp_connector::Sequence as _;
    let mut sequence = factory.create();
    let mut buf = WriteBuf::new();
    let mut later = Vec::new();
    loop {
        buf.clear();
        let written = match sequence.next_pdu_hint() {
            Some(hint) => {
                let pdu = framed.read_by_hint(hint).await.map_err(|e| e.to_string())?;
                let finalizing = match sequence.connection_activation_state() {
                    ConnectionActivationState::CapabilitiesExchange => Some(false),
                    ConnectionActivationState::ConnectionFinalization { .. } => Some(true),
                    _ => None,
                };
                let what = finalizing.map_or(WhileReactivating::Step, |f| {
                    while_reactivating(f, factory.io_channel_id(), &pdu)
                });
                match what {
                    WhileReactivating::Step => {}
                    WhileReactivating::Drop => continue,
                    WhileReactivating::Later => {
                        later.push(ironrdp_tokio::bytes::BytesMut::from(&pdu[..]));
                        continue;
                    }
                }
                sequence.step(&pdu, framed.last_read_at(), &mut buf)
            }
            None => sequence.step_no_input(&mut buf),
        }
        .map_err(|e| e.to_string())?;
        if let Some(n) = written.size() {
            let frame = buf.filled().get(..n).unwrap_or_default().to_vec();
            framed.write_all(&frame).await.map_err(|e| e.to_string())?;
        }
        match sequence.connection_activation_state() {
            ConnectionActivationState::Finalized {
                desktop_size,
                share_id,
                static_channel_chunk_size,
                enable_server_pointer,
                pointer_software_rendering,
                refresh_rect_support,
                suppress_output_support,
                ..
            } => {
                if !stage.reactivate(
                    factory.io_channel_id(),
                    factory.user_channel_id(),
                    share_id,
                    enable_server_pointer,
                    pointer_software_rendering,
                    static_channel_chunk_size,
                ) {
                    return Err("the server chose an invalid channel chunk size".into());
                }
                // The whole new desktop, drawn afresh (servers usually do; this asks).
                let (w, h) = (desktop_size.width, desktop_size.height);
                if w > 0 && h > 0 {
                    let frames = stage
                        .request_full_redraw(w, h, refresh_rect_support, suppress_output_support)
                        .map_err(|e| e.to_string())?;
                    for f in frames {
                        framed.write_all(&f).await.map_err(|e| e.to_string())?;
                    }
                }
                return Ok(Reactivated {
                    size: (w, h),
                    later,
                });
            }
            ConnectionActivationState::Redirected { .. } => return Err(
                "the server redirected the session elsewhere, which this gateway does not support"
                    .into(),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_made_acceptable_to_rdp() {
        assert_eq!(acceptable(1281, 719), (1280, 719));
        assert_eq!(acceptable(100, 50), (200, 200));
        // The largest desktop is 4K's area, whatever the tab asks for.
        let (w, h) = acceptable(u16::MAX, u16::MAX);
        assert!(
            u32::from(w) * u32::from(h) <= crate::desktop::MAX_AREA,
            "{w}x{h}"
        );
        assert!(w.abs_diff(h) <= 2, "the shape is kept: {w}x{h}");
        assert_eq!(acceptable(3840, 2160), (3840, 2160));
        let (w, h) = acceptable(7680, 4320);
        assert!(
            u32::from(w) * u32::from(h) <= crate::desktop::MAX_AREA && w > 3800,
            "{w}x{h}"
        );
    }

    #[test]
    fn wishes_wait_for_the_channel_then_one_request_is_in_flight() {
        let t0 = Instant::now();
        let mut tab = TabSize::new(true, t0);
        // The same size as now: nothing to ask.
        tab.want(1024, 768, (1024, 768));
        assert_eq!(tab.step(true, t0), Step::Idle);
        assert!(tab.recheck_at().is_none());
        // Channel not ready yet: the wish waits.
        tab.want(1280, 720, (1024, 768));
        assert_eq!(tab.step(false, t0), Step::Idle);
        assert!(tab.recheck_at().is_some());
        // Ready: asked once.
        assert_eq!(tab.step(true, t0), Step::Ask(1280, 720));
        assert_eq!(tab.step(true, t0), Step::Idle);
        // More wishes while in flight: only the last is asked, after the answer.
        tab.want(1000, 700, (1024, 768));
        tab.want(1100, 800, (1024, 768));
        assert_eq!(tab.step(true, t0), Step::Idle);
        tab.answered((1280, 720));
        assert_eq!(tab.step(true, t0), Step::Ask(1100, 800));
        // No answer within the in-flight time: a new wish is asked anyway.
        tab.want(1200, 800, (1280, 720));
        assert_eq!(tab.step(true, t0 + Duration::from_secs(1)), Step::Idle);
        assert_eq!(
            tab.step(true, t0 + IN_FLIGHT + Duration::from_secs(1)),
            Step::Ask(1200, 800)
        );
    }

    #[test]
    fn a_server_without_the_channel_is_reported_once() {
        let t0 = Instant::now();
        let mut tab = TabSize::new(true, t0);
        tab.want(1280, 720, (1024, 768));
        assert_eq!(tab.step(false, t0 + Duration::from_secs(1)), Step::Idle);
        let late = t0 + CHANNEL_WAIT + Duration::from_secs(1);
        assert_eq!(tab.step(false, late), Step::Unsupported);
        tab.want(1300, 720, (1024, 768));
        assert_eq!(tab.step(false, late), Step::Idle);
        assert!(tab.recheck_at().is_none());
    }

    #[test]
    fn a_fixed_size_desktop_ignores_the_tab() {
        let t0 = Instant::now();
        let mut tab = TabSize::new(false, t0);
        tab.want(1280, 720, (1024, 768));
        assert_eq!(tab.step(true, t0), Step::Idle);
    }

    /// A server-to-client slow-path frame: a Share Data PDU of type `pdu_type2` (MS-RDPBCGR
    /// 2.2.8.1.1.1.2) on `channel`. IronRDP encodes only some types, so a Font Map is encoded
    /// and its type byte changed (Update and Pointer bodies are kept as raw bytes on decoding).
    fn share_data(channel: u16, pdu_type2: u8) -> Vec<u8> {
        use ironrdp_pdu::rdp::finalization_messages::FontPdu;
        use ironrdp_pdu::rdp::headers::{
            CompressionFlags, ShareControlHeader, ShareControlPdu, ShareDataHeader, ShareDataPdu,
            StreamPriority,
        };
        let header = ShareControlHeader {
            share_control_pdu: ShareControlPdu::Data(ShareDataHeader {
                share_data_pdu: ShareDataPdu::FontMap(FontPdu::default()),
                stream_priority: StreamPriority::Medium,
                compression_flags: CompressionFlags::empty(),
                compression_type: ironrdp_pdu::rdp::client_info::CompressionType::K8,
            }),
            pdu_source: 1002,
            share_id: 0x10ea,
        };
        let mut user_data = ironrdp_core::encode_vec(&header).unwrap_or_default();
        // Share Control header (6), share id (4), pad (1), stream (1), length (2): then the type.
        assert_eq!(user_data.get(14), Some(&0x28), "a Font Map, as encoded");
        user_data[14] = pdu_type2;
        let indication = ironrdp_pdu::x224::X224(ironrdp_pdu::mcs::SendDataIndication {
            initiator_id: 1002,
            channel_id: channel,
            user_data: user_data.into(),
        });
        ironrdp_core::encode_vec(&indication).unwrap_or_default()
    }

    #[test]
    fn updates_during_a_reactivation_are_dropped_channel_traffic_is_kept_for_later() {
        const IO: u16 = 1003;
        let (update, pointer, font_map) = (0x02, 0x1b, 0x28);
        let (update, pointer, font_map, on_a_channel) = (
            share_data(IO, update),
            share_data(IO, pointer),
            share_data(IO, font_map),
            share_data(1005, update),
        );
        assert_eq!(
            while_reactivating(true, IO, &update),
            WhileReactivating::Drop
        );
        assert_eq!(
            while_reactivating(false, IO, &update),
            WhileReactivating::Drop
        );
        assert_eq!(
            while_reactivating(true, IO, &pointer),
            WhileReactivating::Drop
        );
        assert_eq!(
            while_reactivating(true, IO, &font_map),
            WhileReactivating::Step
        );
        // Before Demand Active a Font Map is out of place: the sequence says so.
        assert_eq!(
            while_reactivating(false, IO, &font_map),
            WhileReactivating::Drop
        );
        assert_eq!(
            while_reactivating(true, IO, &on_a_channel),
            WhileReactivating::Later
        );
        // What does not decode is left to the sequence to report.
        assert_eq!(
            while_reactivating(true, IO, b"\x03\x00\x00\x05x"),
            WhileReactivating::Step
        );
    }
}
