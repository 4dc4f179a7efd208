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
/// what the gateway accepts.
pub fn acceptable(width: u16, height: u16) -> (u16, u16) {
    let max = crate::desktop::MAX_SIDE.min(8192);
    let width = width.clamp(200, max) & !1;
    (width, height.clamp(200, max))
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

/// Runs the Deactivation-Reactivation Sequence the server started and hands the session
/// the new parameters; returns the new desktop size.
pub async fn reactivate(
    framed: &mut Upgraded,
    factory: &ConnectionActivationFactory,
    stage: &mut ActiveStage,
) -> Result<(u16, u16), String> {
    let mut sequence = factory.create();
    let mut buf = WriteBuf::new();
    loop {
        let written = ironrdp_tokio::single_sequence_step_read(framed, &mut sequence, &mut buf)
            .await
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
                return Ok((w, h));
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
        assert_eq!(
            acceptable(u16::MAX, u16::MAX),
            (
                crate::desktop::MAX_SIDE.min(8192) & !1,
                crate::desktop::MAX_SIDE.min(8192)
            )
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
}
