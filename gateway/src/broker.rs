//! Why: the broker owns every live session. Each session runs its adapter on a task; a pump
//! task applies the adapter's events to the server-side screen and fans them out to any
//! number of subscribers (the owner's browser, observers, the recorder) through a bounded
//! broadcast channel. A subscriber that falls behind is not waited for and does not grow
//! memory: it is told to resynchronise and gets a fresh screen snapshot instead of the events
//! it missed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc};

use crate::adapter::{AdapterIo, ProtocolAdapter, TargetStream};
use crate::desktop::DesktopScreen;
use crate::event::{ClientInput, Lifecycle, Protocol, SessionEvent};
use crate::screen::{Screen, ScreenSnapshot, TerminalScreen};

/// What the API and the live-sessions page show about a session.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionInfo {
    pub id: String,
    pub owner_id: String,
    pub owner_name: String,
    pub account_id: String,
    pub account_name: String,
    pub resource_id: String,
    pub resource_name: String,
    pub protocol: Protocol,
    /// The hops from the gateway to the target (empty: direct).
    pub path: Vec<String>,
    pub client_addr: String,
    pub started_at_ms: i64,
    /// connecting | connected | ended | failed
    pub state: String,
    pub bytes_from_target: u64,
    pub bytes_to_target: u64,
    /// The recording of this session, when it is recorded.
    pub recording_id: Option<String>,
    /// Who is in the session now (the owner's browsers, observers, peers).
    pub participants: Vec<Participant>,
    /// Who has the keyboard.
    pub control: Control,
}

/// Keyboard control: one holder at a time, or everyone who may type when `shared`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Control {
    pub holder: String,
    pub shared: bool,
}

/// Someone in a live session.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Participant {
    pub name: String,
    /// owner | observer | peer
    pub role: String,
    pub since_ms: i64,
    /// How this participant's browser keeps up with a desktop's frames (desktops only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drawing: Option<crate::frame_window::DrawingStats>,
}

/// Keeps a participant listed until dropped; joining and leaving (other than the owner's
/// own browsers) are published as markers, so viewers and the recording see them.
pub struct Presence {
    session: Arc<LiveSession>,
    id: u64,
    announce: Option<String>,
}

impl Presence {
    /// Lists how this participant's browser keeps up with the desktop's frames.
    pub fn report_drawing(&self, stats: crate::frame_window::DrawingStats) {
        if let Ok(mut p) = self.session.participants.lock() {
            if let Some((_, x)) = p.iter_mut().find(|(id, _)| *id == self.id) {
                x.drawing = Some(stats);
            }
        }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        if let Ok(mut p) = self.session.participants.lock() {
            p.retain(|(id, _)| *id != self.id);
        }
        if let Some(name) = &self.announce {
            self.session
                .apply(SessionEvent::Marker(format!("{name} left")));
        }
    }
}

/// How many events a subscriber may fall behind before it is resynchronised.
pub const DEFAULT_BACKLOG: usize = 256;
/// The same for desktop sessions (each event is a picture, up to the whole desktop).
pub const DESKTOP_BACKLOG: usize = 16;

pub struct LiveSession {
    info: Mutex<SessionInfo>,
    /// The last lifecycle event, for whoever arrives after it was published.
    lifecycle: Mutex<Option<Lifecycle>>,
    /// The screen and the broadcast sender live under one lock, so that a snapshot and a new
    /// subscription taken together are exactly consistent (no event lost or seen twice).
    state: Mutex<Shared>,
    input: mpsc::Sender<ClientInput>,
    bytes_from_target: AtomicU64,
    bytes_to_target: AtomicU64,
    /// Browsers of the owner currently attached (a reload detaches, then re-attaches).
    attached: std::sync::atomic::AtomicUsize,
    participants: Mutex<Vec<(u64, Participant)>>,
    next_participant: AtomicU64,
    /// When a participant last typed (idle limits).
    last_input: Mutex<std::time::Instant>,
    control: Mutex<Control>,
}

/// Counts an attached browser while alive.
pub struct Attachment(Arc<LiveSession>);

impl Drop for Attachment {
    fn drop(&mut self) {
        self.0.attached.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Shared {
    screen: Screen,
    events: Option<broadcast::Sender<SessionEvent>>,
    tap: Option<TapSender>,
    /// A line was already submitted (Enter) at the secret prompt on screen, and the target
    /// has printed nothing since: what follows is not the prompt's answer, so it is not
    /// redacted (one line per prompt; a type-ahead command after a password stays visible).
    secret_answered: bool,
}

/// What the recorder receives: every event in order, and keyframes (full screens) taken by
/// the pump at the right moments. A tap is never lagged or resynchronised: it is the one
/// subscriber that must see everything.
#[derive(Debug)]
pub enum TapItem {
    Event(SessionEvent),
    Keyframe(ScreenSnapshot),
    /// The recorder fell more than `MAX_TAP_QUEUE` bytes behind (storage too slow): the tap
    /// was closed and the recording cannot be complete.
    Overflowed,
}

/// How far the recorder may fall behind before its tap is closed.
pub const MAX_TAP_QUEUE: usize = 64 * 1024 * 1024;

/// The recorder's end of a tap.
pub struct Tap {
    rx: mpsc::UnboundedReceiver<(TapItem, usize, std::time::Instant)>,
    queued: Arc<AtomicU64>,
}

impl Tap {
    /// The next item and when it happened; `None` once the session is over and everything
    /// was received.
    pub async fn recv_timed(&mut self) -> Option<(TapItem, std::time::Instant)> {
        let (item, size, at) = self.rx.recv().await?;
        self.queued.fetch_sub(size as u64, Ordering::Relaxed);
        Some((item, at))
    }

    pub async fn recv(&mut self) -> Option<TapItem> {
        self.recv_timed().await.map(|(item, _)| item)
    }
}

struct TapSender {
    tx: mpsc::UnboundedSender<(TapItem, usize, std::time::Instant)>,
    queued: Arc<AtomicU64>,
    keyframe_every: std::time::Duration,
    keyframe_bytes: u64,
    last_keyframe: std::time::Instant,
    bytes_since_keyframe: u64,
}

impl TapSender {
    fn send(&self, item: TapItem, size: usize) -> bool {
        self.queued.fetch_add(size as u64, Ordering::Relaxed);
        self.tx
            .send((item, size, std::time::Instant::now()))
            .is_ok()
    }
}

fn event_size(ev: &SessionEvent) -> usize {
    match ev {
        SessionEvent::Output(b) => b.len(),
        SessionEvent::Input { data, .. } => data.len(),
        SessionEvent::Frame(rects, _) => rects.iter().map(|r| r.data.len()).sum(),
        _ => 64,
    }
}

/// What a subscriber receives.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Event(SessionEvent),
    /// The subscriber fell behind (or just joined): redraw from this snapshot, then continue
    /// with the events that follow.
    Resync(ScreenSnapshot),
    /// The session is over and every event has been delivered.
    Closed,
}

pub struct Subscription {
    session: Arc<LiveSession>,
    rx: Option<broadcast::Receiver<SessionEvent>>,
}

impl Subscription {
    pub async fn next(&mut self) -> Delivery {
        let Some(rx) = self.rx.as_mut() else {
            return Delivery::Closed;
        };
        match rx.recv().await {
            Ok(ev) => Delivery::Event(ev),
            Err(broadcast::error::RecvError::Closed) => Delivery::Closed,
            Err(broadcast::error::RecvError::Lagged(_)) => self.resync(),
        }
    }

    /// The next delivery if one is ready now, without waiting (for batching frames).
    pub fn try_next(&mut self) -> Option<Delivery> {
        let rx = self.rx.as_mut()?;
        match rx.try_recv() {
            Ok(ev) => Some(Delivery::Event(ev)),
            Err(broadcast::error::TryRecvError::Empty) => None,
            Err(broadcast::error::TryRecvError::Closed) => Some(Delivery::Closed),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(self.resync()),
        }
    }

    /// A desktop viewer that held frames back (its browser was still drawing) catches up.
    /// Under the lock the session publishes with, so that nothing is published meanwhile,
    /// every event still waiting for this subscriber is taken: frames among them are held
    /// back too (their regions join `window`'s), the rest come back in order, followed by
    /// one frame with the current picture of every region due. A subscriber that fell behind
    /// the backlog meanwhile gets a `Resync` instead.
    pub fn catch_up(&mut self, window: &mut crate::frame_window::FrameWindow) -> Vec<Delivery> {
        let mut out = Vec::new();
        let Some(rx) = self.rx.as_mut() else {
            out.push(Delivery::Closed);
            return out;
        };
        let shared = self.session.lock();
        loop {
            match rx.try_recv() {
                Ok(SessionEvent::Frame(rects, since)) => window.skip(&rects, since),
                Ok(ev) => {
                    if let SessionEvent::Resize { .. } = ev {
                        window.resized();
                    }
                    out.push(Delivery::Event(ev));
                }
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Closed) => {
                    out.push(Delivery::Closed);
                    break;
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    drop(shared);
                    window.resynchronised();
                    out.clear();
                    out.push(self.resync());
                    return out;
                }
            }
        }
        if let Screen::Desktop(d) = &shared.screen {
            let (width, height) = d.size();
            // As old as the oldest update among the frames it stands for.
            let since = window.due_since();
            let rects = d.regions_png(&window.take_due(width, height));
            if !rects.is_empty() {
                // Before a `Closed`, if the session ended meanwhile.
                let at = out
                    .iter()
                    .position(|d| matches!(d, Delivery::Closed))
                    .unwrap_or(out.len());
                out.insert(
                    at,
                    Delivery::Event(SessionEvent::Frame(rects.into(), since)),
                );
            }
        }
        out
    }

    fn resync(&mut self) -> Delivery {
        let (snapshot, rx) = self.session.snapshot_and_subscribe();
        self.rx = rx;
        Delivery::Resync(snapshot)
    }
}

impl LiveSession {
    pub fn info(&self) -> SessionInfo {
        let mut info = self
            .info
            .lock()
            .map(|i| i.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        info.bytes_from_target = self.bytes_from_target.load(Ordering::Relaxed);
        info.bytes_to_target = self.bytes_to_target.load(Ordering::Relaxed);
        info.participants = self.participants();
        info.control = self.control();
        info
    }

    pub fn control(&self) -> Control {
        self.control.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Whether `name`'s keys reach the target now.
    pub fn may_type(&self, name: &str) -> bool {
        self.control
            .lock()
            .map(|c| c.shared || c.holder == name)
            .unwrap_or(false)
    }

    /// Gives the keyboard to `holder` and/or turns shared typing on or off, announcing it
    /// (a marker: seen by everyone, kept in the recording).
    pub fn set_control(&self, holder: Option<&str>, shared: Option<bool>, by: &str) {
        let note = match self.control.lock() {
            Ok(mut c) => {
                let mut notes = Vec::new();
                if let Some(h) = holder {
                    c.holder = h.to_string();
                    notes.push(format!("{h} has the keyboard (given by {by})"));
                }
                if let Some(s) = shared {
                    c.shared = s;
                    notes.push(format!(
                        "shared typing {} by {by}",
                        if s { "allowed" } else { "stopped" }
                    ));
                }
                notes.join("; ")
            }
            Err(_) => return,
        };
        if !note.is_empty() {
            self.apply(SessionEvent::Marker(note));
        }
    }

    /// Lists `name` in the session as `role` until the returned guard is dropped. Anyone but
    /// the owner is announced (a marker: "admin joined as observer").
    pub fn join(self: &Arc<Self>, name: &str, role: &str, now_ms: i64) -> Presence {
        let id = self.next_participant.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut p) = self.participants.lock() {
            p.push((
                id,
                Participant {
                    name: name.to_string(),
                    role: role.to_string(),
                    since_ms: now_ms,
                    drawing: None,
                },
            ));
        }
        let announce = (role != "owner").then(|| name.to_string());
        if announce.is_some() {
            self.apply(SessionEvent::Marker(format!("{name} joined as {role}")));
        }
        Presence {
            session: self.clone(),
            id,
            announce,
        }
    }

    /// How long since anyone typed (or since the session started).
    pub fn idle_for(&self) -> std::time::Duration {
        self.last_input
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    /// Publishes a note in the session's timeline (seen by viewers, kept in the recording).
    pub fn apply_marker(&self, text: &str) {
        self.apply(SessionEvent::Marker(text.to_string()));
    }

    pub fn participants(&self) -> Vec<Participant> {
        self.participants
            .lock()
            .map(|p| p.iter().map(|(_, x)| x.clone()).collect())
            .unwrap_or_default()
    }

    /// Marks an owner's browser as attached until the returned guard is dropped.
    pub fn attach(self: &Arc<Self>) -> Attachment {
        self.attached.fetch_add(1, Ordering::SeqCst);
        Attachment(self.clone())
    }

    pub fn attached(&self) -> usize {
        self.attached.load(Ordering::SeqCst)
    }

    /// The most recent lifecycle event (connecting, connected, ended, failed).
    pub fn lifecycle(&self) -> Option<Lifecycle> {
        self.lifecycle.lock().ok().and_then(|l| l.clone())
    }

    pub fn id(&self) -> String {
        self.info().id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When a desktop's picture has lossy regions due to be sent again exactly.
    fn refine_due(&self) -> Option<std::time::Instant> {
        match &self.lock().screen {
            Screen::Desktop(d) => d.refine_due(),
            Screen::Terminal(_) => None,
        }
    }

    /// Sends a desktop's settled lossy regions again losslessly, to every viewer and the
    /// recording, like any other frame.
    fn refine(&self) {
        let rects = match &mut self.lock().screen {
            Screen::Desktop(d) => d.refine(std::time::Instant::now()),
            Screen::Terminal(_) => return,
        };
        if !rects.is_empty() {
            self.apply(SessionEvent::Frame(rects.into(), None));
        }
    }

    fn snapshot_and_subscribe(
        &self,
    ) -> (ScreenSnapshot, Option<broadcast::Receiver<SessionEvent>>) {
        let shared = self.lock();
        (
            shared.screen.snapshot(),
            shared.events.as_ref().map(|s| s.subscribe()),
        )
    }

    /// Subscribes; the first delivery is always a `Resync` with the current screen.
    pub fn subscribe(self: &Arc<Self>) -> (ScreenSnapshot, Subscription) {
        let (snapshot, rx) = self.snapshot_and_subscribe();
        (
            snapshot,
            Subscription {
                session: self.clone(),
                rx,
            },
        )
    }

    /// Sends input to the target. Waits when the adapter is busy (bounded queue); fails
    /// once the session is over.
    pub async fn send_input(&self, input: ClientInput) -> Result<(), SessionGone> {
        if let ClientInput::Data(d) = &input {
            self.bytes_to_target
                .fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        self.input.send(input).await.map_err(|_| SessionGone)
    }

    /// Opens the recorder's tap: a keyframe of the current screen, then every event, with a
    /// new keyframe whenever `keyframe_every` or `keyframe_bytes` of output have passed.
    pub fn tap(&self, keyframe_every: std::time::Duration, keyframe_bytes: u64) -> Tap {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicU64::new(0));
        let mut shared = self.lock();
        let sender = TapSender {
            tx,
            queued: queued.clone(),
            keyframe_every,
            keyframe_bytes,
            last_keyframe: std::time::Instant::now(),
            bytes_since_keyframe: 0,
        };
        let snap = shared.screen.snapshot();
        let size = snap.data.len();
        sender.send(TapItem::Keyframe(snap), size);
        shared.tap = Some(sender);
        Tap { rx, queued }
    }

    /// Keystrokes from a participant: published as an `Input` event (marked redacted when
    /// the screen shows a password prompt, so the recorder keeps only the length), then sent
    /// to the target.
    pub async fn type_input(&self, by: &str, data: Vec<u8>) -> Result<(), SessionGone> {
        if let Ok(mut t) = self.last_input.lock() {
            *t = std::time::Instant::now();
        }
        self.apply(SessionEvent::Input {
            by: by.to_string(),
            data: data.as_slice().into(),
            redacted: false,
        });
        self.send_input(ClientInput::Data(data)).await
    }

    /// A desktop participant's key or pointer event, sent to the target. A key that makes
    /// text (`typed`, as the browser's layout produced it) is also published as an `Input`
    /// event, so recordings show and search what was typed; pointer movements are not.
    pub async fn desktop_input(
        &self,
        by: &str,
        input: ClientInput,
        typed: Option<String>,
    ) -> Result<(), SessionGone> {
        if let Ok(mut t) = self.last_input.lock() {
            *t = std::time::Instant::now();
        }
        if let Some(text) = typed.filter(|t| !t.is_empty()) {
            self.apply(SessionEvent::Input {
                by: by.to_string(),
                data: text.as_bytes().into(),
                redacted: false,
            });
        }
        self.bytes_to_target.fetch_add(1, Ordering::Relaxed);
        self.input.send(input).await.map_err(|_| SessionGone)
    }

    fn apply(&self, mut ev: SessionEvent) {
        match &ev {
            SessionEvent::Output(b) => {
                self.bytes_from_target
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            SessionEvent::Lifecycle(l) => {
                let state = match l {
                    Lifecycle::Connecting => "connecting",
                    Lifecycle::Connected => "connected",
                    Lifecycle::Ended { .. } => "ended",
                    Lifecycle::Failed { .. } => "failed",
                };
                if let Ok(mut info) = self.info.lock() {
                    info.state = state.to_string();
                }
                if let Ok(mut last) = self.lifecycle.lock() {
                    *last = Some(l.clone());
                }
            }
            _ => {}
        }
        let mut shared = self.lock();
        match &mut ev {
            SessionEvent::Output(b) => {
                shared.screen.process(b);
                shared.secret_answered = false;
            }
            SessionEvent::Resize { cols, rows } => shared.screen.resize(*cols, *rows),
            SessionEvent::Input { redacted, data, .. } => {
                *redacted = shared.screen.at_secret_prompt() && !shared.secret_answered;
                if *redacted && data.iter().any(|&c| c == b'\r' || c == b'\n') {
                    shared.secret_answered = true;
                }
            }
            // Raw rectangles paint the desktop and go on encoded, once for every viewer.
            SessionEvent::Cursor(c) => {
                if let Screen::Desktop(d) = &mut shared.screen {
                    d.set_cursor(c.clone());
                }
            }
            SessionEvent::Frame(rects, _) => {
                if let Screen::Desktop(d) = &mut shared.screen {
                    *rects = d.take(rects, std::time::Instant::now());
                    let n: usize = rects.iter().map(|r| r.data.len()).sum();
                    self.bytes_from_target
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            _ => {}
        }
        if matches!(&ev, SessionEvent::Frame(rects, _) if rects.is_empty()) {
            // A redraw of what the picture already held: nothing to show or record.
            return;
        }
        let shared = &mut *shared;
        if let Some(tap) = &mut shared.tap {
            let size = event_size(&ev);
            if let SessionEvent::Output(_) | SessionEvent::Frame(..) = &ev {
                tap.bytes_since_keyframe += size as u64;
            }
            let mut open = tap.queued.load(Ordering::Relaxed) as usize <= MAX_TAP_QUEUE
                && tap.send(TapItem::Event(ev.clone()), size);
            if open
                && (tap.bytes_since_keyframe >= tap.keyframe_bytes
                    || tap.last_keyframe.elapsed() >= tap.keyframe_every)
            {
                let snap = shared.screen.snapshot();
                let n = snap.data.len();
                open = tap.send(TapItem::Keyframe(snap), n);
                tap.last_keyframe = std::time::Instant::now();
                tap.bytes_since_keyframe = 0;
            }
            if !open {
                tap.send(TapItem::Overflowed, 0);
                shared.tap = None;
            }
        }
        if let Some(tx) = &shared.events {
            // No receivers is fine: events still shape the screen for later subscribers.
            let _ = tx.send(ev);
        }
    }

    fn close(&self) {
        let mut shared = self.lock();
        shared.events = None;
        shared.tap = None;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the session has ended")]
pub struct SessionGone;

/// Every live session of this gateway.
pub struct Broker {
    sessions: Mutex<HashMap<String, Arc<LiveSession>>>,
    backlog: usize,
}

impl Default for Broker {
    fn default() -> Self {
        Broker::new(DEFAULT_BACKLOG)
    }
}

impl Broker {
    pub fn new(backlog: usize) -> Broker {
        Broker {
            sessions: Mutex::new(HashMap::new()),
            backlog: backlog.max(1),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveSession>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session: runs `adapter` over `target` and publishes its events. The session
    /// is listed until its adapter returns and every event has been published.
    pub fn start(
        self: &Arc<Self>,
        info: SessionInfo,
        adapter: Box<dyn ProtocolAdapter>,
        target: TargetStream,
        cols: u16,
        rows: u16,
    ) -> Arc<LiveSession> {
        self.start_tapped(info, adapter, target, cols, rows, None).0
    }

    /// Like `start`, with the recorder's tap opened before the adapter runs, so the
    /// recording has every event from the first. `tap`: keyframe interval and output bytes.
    pub fn start_tapped(
        self: &Arc<Self>,
        info: SessionInfo,
        adapter: Box<dyn ProtocolAdapter>,
        target: TargetStream,
        cols: u16,
        rows: u16,
        tap: Option<(std::time::Duration, u64)>,
    ) -> (Arc<LiveSession>, Option<Tap>) {
        let (event_tx, mut event_rx) = mpsc::channel::<SessionEvent>(256);
        let (input_tx, input_rx) = mpsc::channel::<ClientInput>(256);
        // A desktop's events are whole pictures: a browser that falls a few frames behind is
        // better resynchronised with the current desktop than sent every frame it missed,
        // and the backlog's memory stays small.
        let backlog = match adapter.protocol() {
            crate::event::Protocol::Rdp => self.backlog.min(DESKTOP_BACKLOG),
            _ => self.backlog,
        };
        let (broadcast_tx, _) = broadcast::channel(backlog);
        let id = info.id.clone();
        let owner_name = info.owner_name.clone();
        let session = Arc::new(LiveSession {
            info: Mutex::new(info),
            lifecycle: Mutex::new(None),
            state: Mutex::new(Shared {
                // A desktop's size is in pixels.
                screen: match adapter.protocol() {
                    crate::event::Protocol::Rdp => {
                        let mut d = DesktopScreen::new(cols, rows);
                        d.set_lossless_only(adapter.lossless_only());
                        Screen::Desktop(d)
                    }
                    _ => Screen::Terminal(TerminalScreen::new(cols, rows)),
                },
                events: Some(broadcast_tx),
                tap: None,
                secret_answered: false,
            }),
            input: input_tx,
            bytes_from_target: AtomicU64::new(0),
            bytes_to_target: AtomicU64::new(0),
            attached: std::sync::atomic::AtomicUsize::new(0),
            participants: Mutex::new(Vec::new()),
            next_participant: AtomicU64::new(0),
            last_input: Mutex::new(std::time::Instant::now()),
            control: Mutex::new(Control {
                holder: owner_name,
                shared: false,
            }),
        });
        let tap = tap.map(|(every, bytes)| session.tap(every, bytes));
        self.map().insert(id.clone(), session.clone());
        let run = adapter.run(
            target,
            AdapterIo {
                events: event_tx,
                input: input_rx,
                cols,
                rows,
            },
        );
        tokio::spawn(run);
        let (broker, s) = (self.clone(), session.clone());
        tokio::spawn(async move {
            // Ends when the adapter has returned and dropped its event sender. Events are
            // taken in batches and consecutive output chunks are merged: under bulk output
            // this turns many small chunks into one screen update, one broadcast and one
            // WebSocket frame per subscriber, while the adapter keeps reading the target.
            let mut batch = Vec::with_capacity(64);
            loop {
                // A desktop's lossy regions are sent again exactly once they have been still
                // for a moment: the wait for events ends then too.
                let got = match s.refine_due() {
                    Some(at) => tokio::select! {
                        n = event_rx.recv_many(&mut batch, 64) => n,
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {
                            s.refine();
                            continue;
                        }
                    },
                    None => event_rx.recv_many(&mut batch, 64).await,
                };
                if got == 0 {
                    break;
                }
                // Under a flood of output the target's packets (about 4 KiB from a PTY) would
                // otherwise each make one screen update, one broadcast, one recorder wake-up
                // and one WebSocket frame: the gateway then spends its time switching tasks.
                // A batch that already carries a packet's worth of output waits a moment for
                // the rest of the flood. Keystroke echoes and prompts are far smaller and go
                // out at once; a screenful waits at most `FLOOD_GATHER`.
                if output_len(&batch) >= FLOOD_FROM {
                    tokio::time::sleep(FLOOD_GATHER).await;
                    while batch.len() < FLOOD_BATCH {
                        match event_rx.try_recv() {
                            Ok(ev) => batch.push(ev),
                            Err(_) => break,
                        }
                    }
                }
                for ev in coalesce_output(std::mem::take(&mut batch)) {
                    // An ended session leaves the live list before anyone is told it ended:
                    // the adapter may still be closing hop connections, and a listing taken
                    // after the exit notice must not show it.
                    if matches!(ev, SessionEvent::Lifecycle(Lifecycle::Ended { .. })) {
                        broker.map().remove(&id);
                    }
                    s.apply(ev);
                }
            }
            s.close();
            broker.map().remove(&id);
        });
        (session, tap)
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveSession>> {
        self.map().get(id).cloned()
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        let mut v: Vec<SessionInfo> = self.map().values().map(|s| s.info()).collect();
        v.sort_by_key(|i| i.started_at_ms);
        v
    }
}

/// A batch with this much output is taken for a flood (see the pump in `start_tapped`).
const FLOOD_FROM: usize = 2048;
/// How long a flood is gathered: at 30 MB/s, about one merged chunk (`MAX_MERGED_OUTPUT`).
const FLOOD_GATHER: std::time::Duration = std::time::Duration::from_millis(2);
/// Most events taken after a flood's gather (the event queue holds 256).
const FLOOD_BATCH: usize = 256;

fn output_len(events: &[SessionEvent]) -> usize {
    events
        .iter()
        .map(|e| match e {
            SessionEvent::Output(b) => b.len(),
            _ => 0,
        })
        .sum()
}

/// Largest merged output chunk: big enough to amortise per-event costs, small enough to keep
/// a WebSocket frame and a screen update short.
const MAX_MERGED_OUTPUT: usize = 64 * 1024;

/// Merges runs of consecutive `Output` events (up to `MAX_MERGED_OUTPUT` bytes); every other
/// event keeps its place in the order.
fn coalesce_output(events: Vec<SessionEvent>) -> Vec<SessionEvent> {
    fn flush(out: &mut Vec<SessionEvent>, run: &mut Vec<Arc<[u8]>>) {
        match run.len() {
            0 => {}
            1 => out.extend(run.drain(..).map(SessionEvent::Output)),
            _ => {
                let mut merged = Vec::with_capacity(run.iter().map(|b| b.len()).sum());
                for b in run.drain(..) {
                    merged.extend_from_slice(&b);
                }
                out.push(SessionEvent::Output(merged.into()));
            }
        }
    }
    let mut out = Vec::with_capacity(events.len());
    let mut run: Vec<Arc<[u8]>> = Vec::new();
    let mut run_len = 0usize;
    for ev in events {
        match ev {
            SessionEvent::Output(b) => {
                if run_len + b.len() > MAX_MERGED_OUTPUT {
                    flush(&mut out, &mut run);
                    run_len = 0;
                }
                run_len += b.len();
                run.push(b);
            }
            other => {
                flush(&mut out, &mut run);
                run_len = 0;
                out.push(other);
            }
        }
    }
    flush(&mut out, &mut run);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::adapter::AdapterFuture;

    /// A minimal adapter for exercising the broker: bytes from the target become Output,
    /// Data input is written to the target, and the session ends when the target closes.
    struct RawAdapter;

    impl ProtocolAdapter for RawAdapter {
        fn protocol(&self) -> Protocol {
            Protocol::Telnet
        }
        fn run(self: Box<Self>, mut target: TargetStream, mut io: AdapterIo) -> AdapterFuture {
            Box::pin(async move {
                let _ = io
                    .events
                    .send(SessionEvent::Lifecycle(Lifecycle::Connected))
                    .await;
                let mut buf = vec![0u8; 4096];
                loop {
                    tokio::select! {
                        n = target.read(&mut buf) => match n {
                            Ok(0) | Err(_) => break,
                            Ok(n) => { if io.events.send(SessionEvent::Output(buf[..n].into())).await.is_err() { return; } }
                        },
                        Some(input) = io.input.recv() => match input {
                            ClientInput::Data(d) => { let _ = target.write_all(&d).await; }
                            ClientInput::Secret(k) => { let _ = target.write_all(k.0.expose()).await; }
                            ClientInput::Resize { cols, rows } => { let _ = io.events.send(SessionEvent::Resize { cols, rows }).await; }
                            ClientInput::Terminate { .. } => break,
                            ClientInput::Key { .. } | ClientInput::Pointer { .. } | ClientInput::Wheel { .. } | ClientInput::ReleaseAll | ClientInput::Clipboard { .. } => {}
                        },
                    }
                }
                let _ = io
                    .events
                    .send(SessionEvent::Lifecycle(Lifecycle::Ended {
                        reason: "target closed".into(),
                        exit_status: None,
                    }))
                    .await;
            })
        }
    }

    fn info(id: &str) -> SessionInfo {
        SessionInfo {
            id: id.into(),
            owner_id: "u".into(),
            owner_name: "alice".into(),
            account_id: "a".into(),
            account_name: "root".into(),
            resource_id: "r".into(),
            resource_name: "srv".into(),
            protocol: Protocol::Telnet,
            path: vec![],
            client_addr: "127.0.0.1".into(),
            started_at_ms: 0,
            state: "connecting".into(),
            bytes_from_target: 0,
            bytes_to_target: 0,
            recording_id: None,
            participants: Vec::new(),
            control: Default::default(),
        }
    }

    async fn next_output(sub: &mut Subscription) -> Vec<u8> {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await
                .expect("delivery")
            {
                Delivery::Event(SessionEvent::Output(b)) => return b.to_vec(),
                Delivery::Closed => panic!("closed"),
                _ => continue,
            }
        }
    }

    #[tokio::test]
    async fn fans_out_input_and_output_and_late_joiners_get_the_screen() {
        let broker = Arc::new(Broker::default());
        let (gateway_side, mut target_side) = tokio::io::duplex(64 * 1024);
        let s = broker.start(
            info("s1"),
            Box::new(RawAdapter),
            Box::new(gateway_side),
            80,
            24,
        );
        let (_, mut owner) = s.subscribe();
        s.send_input(ClientInput::Data(b"ls\r".to_vec()))
            .await
            .unwrap();
        let mut got = [0u8; 3];
        target_side.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ls\r");
        target_side.write_all(b"file1  file2\r\n$ ").await.unwrap();
        assert_eq!(next_output(&mut owner).await, b"file1  file2\r\n$ ");
        // A viewer joining now sees the screen at once, not a blank terminal.
        let (snap, _viewer) = s.subscribe();
        let mut fresh = TerminalScreen::new(snap.cols, snap.rows);
        fresh.process(&snap.data);
        assert!(fresh.text().contains("file1  file2"));
        assert_eq!(broker.list().len(), 1);
        assert_eq!(broker.list()[0].state, "connected");
        assert_eq!(broker.list()[0].bytes_to_target, 3);
        // The target closes: subscribers get the end, then Closed; the session is gone.
        drop(target_side);
        loop {
            match tokio::time::timeout(Duration::from_secs(5), owner.next())
                .await
                .unwrap()
            {
                Delivery::Closed => break,
                Delivery::Event(SessionEvent::Lifecycle(Lifecycle::Ended { reason, .. })) => {
                    assert_eq!(reason, "target closed")
                }
                _ => {}
            }
        }
        for _ in 0..100 {
            if broker.list().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(broker.list().is_empty());
        assert!(s
            .send_input(ClientInput::Data(b"x".to_vec()))
            .await
            .is_err());
    }

    /// Announces the end, then keeps its event sender for a while, as an adapter closing
    /// hop connections does.
    struct LingeringAdapter;

    impl ProtocolAdapter for LingeringAdapter {
        fn protocol(&self) -> Protocol {
            Protocol::Telnet
        }
        fn run(self: Box<Self>, _target: TargetStream, io: AdapterIo) -> AdapterFuture {
            Box::pin(async move {
                let _ = io
                    .events
                    .send(SessionEvent::Lifecycle(Lifecycle::Ended {
                        reason: "terminated".into(),
                        exit_status: None,
                    }))
                    .await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(io);
            })
        }
    }

    #[tokio::test]
    async fn a_session_is_off_the_live_list_before_its_end_is_announced() {
        let broker = Arc::new(Broker::default());
        let (gateway_side, _target_side) = tokio::io::duplex(1024);
        let s = broker.start(
            info("s-linger"),
            Box::new(LingeringAdapter),
            Box::new(gateway_side),
            80,
            24,
        );
        let (_, mut owner) = s.subscribe();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), owner.next())
                .await
                .expect("the end is announced")
            {
                Delivery::Event(SessionEvent::Lifecycle(Lifecycle::Ended { .. })) => break,
                Delivery::Closed => panic!("closed before the end was announced"),
                _ => {}
            }
        }
        assert!(broker.list().is_empty(), "{:?}", broker.list().len());
        assert!(broker.get("s-linger").is_none());
    }

    /// Reads the tap until an output event ends with `suffix` (a prompt reached the screen).
    async fn tap_output_ending(tap: &mut Tap, suffix: &[u8]) {
        loop {
            if let TapItem::Event(SessionEvent::Output(b)) =
                tokio::time::timeout(Duration::from_secs(5), tap.recv())
                    .await
                    .unwrap()
                    .unwrap()
            {
                if b.ends_with(suffix) {
                    return;
                }
            }
        }
    }

    #[tokio::test]
    async fn the_recorder_tap_gets_every_event_keyframes_and_redacted_secrets() {
        let broker = Arc::new(Broker::new(4));
        let (gateway_side, mut target_side) = tokio::io::duplex(1024 * 1024);
        let s = broker.start(
            info("s3"),
            Box::new(RawAdapter),
            Box::new(gateway_side),
            80,
            24,
        );
        let mut tap = s.tap(Duration::from_secs(3600), 1000);
        // 300 chunks of output: far more than the broadcast backlog of 4, none lost.
        let mut expected = Vec::new();
        for i in 0..300 {
            let line = format!("line {i}\r\n");
            expected.extend_from_slice(line.as_bytes());
            target_side.write_all(line.as_bytes()).await.unwrap();
            tokio::task::yield_now().await;
        }
        target_side
            .write_all(b"[sudo] password for alice: ")
            .await
            .unwrap();
        let mut seen_prompt = false;
        let (mut output, mut keyframes) = (Vec::new(), 0);
        while !seen_prompt {
            match tokio::time::timeout(Duration::from_secs(5), tap.recv())
                .await
                .unwrap()
                .unwrap()
            {
                TapItem::Event(SessionEvent::Output(b)) => {
                    output.extend_from_slice(&b);
                    seen_prompt = output.ends_with(b"alice: ");
                }
                TapItem::Keyframe(_) => keyframes += 1,
                _ => {}
            }
        }
        assert_eq!(&output[..expected.len()], &expected[..]);
        // One at the start, then one per ~1000 bytes of output.
        assert!(keyframes >= 1 + expected.len() / 1000 - 1, "{keyframes}");
        // Typed at the prompt: published as redacted; after the prompt line: in clear. A
        // line typed ahead after the answer, before the target said anything, is not the
        // prompt's answer: one line per prompt is hidden, no more.
        s.type_input("alice", b"hunter2\r".to_vec()).await.unwrap();
        s.type_input("alice", b"whoami\r".to_vec()).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            if let TapItem::Event(SessionEvent::Input { redacted, data, .. }) =
                tokio::time::timeout(Duration::from_secs(5), tap.recv())
                    .await
                    .unwrap()
                    .unwrap()
            {
                seen.push((redacted, data.to_vec()));
            }
        }
        assert_eq!(
            seen,
            vec![(true, b"hunter2\r".to_vec()), (false, b"whoami\r".to_vec())]
        );
        let mut buf = [0u8; 15];
        target_side.read_exact(&mut buf).await.unwrap();
        // A new prompt of the same kind: its answer is hidden again.
        target_side.write_all(b"\r\nPassword: ").await.unwrap();
        tap_output_ending(&mut tap, b"Password: ").await;
        s.type_input("alice", b"hunter2\r".to_vec()).await.unwrap();
        target_side.write_all(b"\r\n$ ").await.unwrap();
        let mut buf = [0u8; 8];
        target_side.read_exact(&mut buf).await.unwrap();
        loop {
            if let TapItem::Event(SessionEvent::Input { redacted, .. }) =
                tokio::time::timeout(Duration::from_secs(5), tap.recv())
                    .await
                    .unwrap()
                    .unwrap()
            {
                assert!(redacted);
                break;
            }
        }
        // Wait for the new prompt to reach the screen before typing the next command.
        tap_output_ending(&mut tap, b"$ ").await;
        s.type_input("alice", b"ls\r".to_vec()).await.unwrap();
        loop {
            if let TapItem::Event(SessionEvent::Input { redacted, data, by }) =
                tokio::time::timeout(Duration::from_secs(5), tap.recv())
                    .await
                    .unwrap()
                    .unwrap()
            {
                assert!(!redacted);
                assert_eq!((&data[..], by.as_str()), (&b"ls\r"[..], "alice"));
                break;
            }
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_resynchronised_and_never_stalls_the_others() {
        let broker = Arc::new(Broker::new(8));
        let (gateway_side, mut target_side) = tokio::io::duplex(1024 * 1024);
        let s = broker.start(
            info("s2"),
            Box::new(RawAdapter),
            Box::new(gateway_side),
            80,
            24,
        );
        let (_, mut slow) = s.subscribe(); // never reads until the end
        let (_, mut fast) = s.subscribe();
        // 200 separate chunks, far more than the backlog of 8.
        let mut received = 0usize;
        for i in 0..200 {
            target_side
                .write_all(format!("line {i}\r\n").as_bytes())
                .await
                .unwrap();
            received += next_output(&mut fast).await.len();
        }
        assert!(received > 0, "the fast subscriber kept up");
        // The slow one is told to resync, with the current screen, not handed 200 events.
        match tokio::time::timeout(Duration::from_secs(5), slow.next())
            .await
            .unwrap()
        {
            Delivery::Resync(snap) => {
                let mut fresh = TerminalScreen::new(snap.cols, snap.rows);
                fresh.process(&snap.data);
                assert!(fresh.text().contains("line 199"), "{}", fresh.text());
            }
            other => panic!("expected a resync, got {other:?}"),
        }
        // After the resync it continues with live events.
        target_side.write_all(b"after\r\n").await.unwrap();
        assert_eq!(next_output(&mut slow).await, b"after\r\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_output_is_gathered_and_an_echo_is_not() {
        use std::io::Write;
        let broker = Arc::new(Broker::default());
        let (gateway_side, target_side) = tokio::net::UnixStream::pair().unwrap();
        let mut target_side = target_side.into_std().unwrap();
        target_side.set_nonblocking(false).unwrap();
        let s = broker.start(
            info("flood"),
            Box::new(RawAdapter),
            Box::new(gateway_side),
            80,
            24,
        );
        let (_, mut sub) = s.subscribe();
        // A key's echo after a quiet moment arrives on its own.
        target_side.write_all(b"k").unwrap();
        assert_eq!(next_output(&mut sub).await, b"k");
        // 100 packets of 4 KiB, 300 us apart, as a PTY under `cat` yields them (written from
        // a thread of its own, so the pacing is real): without the gather each is one
        // delivery; with it they come a few milliseconds' worth at a time.
        let writer = std::thread::spawn(move || {
            for i in 0..100u8 {
                target_side.write_all(&[b'a' + i % 26; 4096]).unwrap();
                std::thread::sleep(Duration::from_micros(300));
            }
            target_side
        });
        let (mut got, mut deliveries) = (Vec::new(), 0);
        while got.len() < 100 * 4096 {
            got.extend(next_output(&mut sub).await);
            deliveries += 1;
        }
        let mut target_side = writer.join().unwrap();
        let want: Vec<u8> = (0..100u8).flat_map(|i| [b'a' + i % 26; 4096]).collect();
        assert_eq!(got, want, "nothing lost or reordered");
        assert!(deliveries <= 50, "{deliveries} deliveries for 100 packets");
        // Once the flood is over, the next echo is again delivered alone.
        tokio::time::sleep(Duration::from_millis(20)).await;
        target_side.write_all(b"z").unwrap();
        assert_eq!(next_output(&mut sub).await, b"z");
    }

    #[test]
    fn consecutive_output_is_merged_and_order_is_kept() {
        let out = |b: &[u8]| SessionEvent::Output(b.into());
        let merged = coalesce_output(vec![
            out(b"ab"),
            out(b"cd"),
            SessionEvent::Resize { cols: 1, rows: 2 },
            out(b"ef"),
            SessionEvent::Marker("m".into()),
        ]);
        assert_eq!(
            merged,
            vec![
                out(b"abcd"),
                SessionEvent::Resize { cols: 1, rows: 2 },
                out(b"ef"),
                SessionEvent::Marker("m".into()),
            ]
        );
        // A run larger than the cap is split, never reordered or truncated.
        let merged = coalesce_output(vec![out(&[b'x'; 40 * 1024]), out(&[b'y'; 40 * 1024])]);
        assert_eq!(merged.len(), 2);
        let total: Vec<u8> = merged
            .iter()
            .flat_map(|e| match e {
                SessionEvent::Output(b) => b.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(total.len(), 80 * 1024);
        assert!(total[..40 * 1024].iter().all(|&c| c == b'x'));
        assert!(total[40 * 1024..].iter().all(|&c| c == b'y'));
    }

    #[tokio::test]
    async fn resize_reaches_the_screen() {
        let broker = Arc::new(Broker::default());
        let (gateway_side, _target_side) = tokio::io::duplex(1024);
        let s = broker.start(
            info("s3"),
            Box::new(RawAdapter),
            Box::new(gateway_side),
            80,
            24,
        );
        let (_, mut sub) = s.subscribe();
        s.send_input(ClientInput::Resize {
            cols: 132,
            rows: 50,
        })
        .await
        .unwrap();
        loop {
            if let Delivery::Event(SessionEvent::Resize { cols, rows }) =
                tokio::time::timeout(Duration::from_secs(5), sub.next())
                    .await
                    .unwrap()
            {
                assert_eq!((cols, rows), (132, 50));
                break;
            }
        }
        assert_eq!((s.subscribe().0.cols, s.subscribe().0.rows), (132, 50));
    }

    /// A desktop whose pointer paints: each pointer event becomes an 8x8 square at the
    /// pointer, of a colour made from its position and buttons.
    struct PaintingAdapter;

    impl ProtocolAdapter for PaintingAdapter {
        fn protocol(&self) -> Protocol {
            Protocol::Rdp
        }
        fn lossless_only(&self) -> bool {
            true
        }
        fn run(self: Box<Self>, _target: TargetStream, mut io: AdapterIo) -> AdapterFuture {
            Box::pin(async move {
                let _ = io
                    .events
                    .send(SessionEvent::Lifecycle(Lifecycle::Connected))
                    .await;
                while let Some(input) = io.input.recv().await {
                    let ClientInput::Pointer { x, y, buttons } = input else {
                        break;
                    };
                    let px = [
                        buttons.wrapping_mul(80),
                        (x % 256) as u8,
                        (y % 256) as u8,
                        255,
                    ];
                    let square = crate::event::FrameRect {
                        x,
                        y,
                        width: 8,
                        height: 8,
                        encoding: crate::desktop::RAW_RGBA,
                        data: px.repeat(64).into(),
                    };
                    if io
                        .events
                        .send(SessionEvent::Frame(
                            vec![square].into(),
                            Some(std::time::Instant::now()),
                        ))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            })
        }
    }

    /// A browser's picture: RGB, painted from PNG rectangles.
    struct Canvas {
        width: usize,
        rgb: Vec<u8>,
    }

    fn decode_png(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
        let (w, h, rgb) = crate::desktop::tests::decode(bytes);
        (w as usize, h as usize, rgb)
    }

    impl Canvas {
        fn of(snapshot: &ScreenSnapshot) -> Canvas {
            let (width, _, rgb) = decode_png(&snapshot.data);
            Canvas { width, rgb }
        }

        fn paint(&mut self, rects: &[crate::event::FrameRect]) {
            for r in rects {
                assert_eq!(r.encoding, crate::desktop::PNG, "lossless only");
                let (w, h, rgb) = decode_png(&r.data);
                for row in 0..h {
                    let at = ((r.y as usize + row) * self.width + r.x as usize) * 3;
                    self.rgb[at..at + w * 3].copy_from_slice(&rgb[row * w * 3..(row + 1) * w * 3]);
                }
            }
        }
    }

    /// Waits until the session's picture has square `i` of `paint_square`.
    async fn painted(s: &LiveSession, (x, y): (u16, u16)) {
        for _ in 0..500 {
            let c = Canvas::of(&s.snapshot_and_subscribe().0);
            let at = (y as usize * c.width + x as usize) * 3;
            if c.rgb[at + 1] == (x % 256) as u8 && c.rgb[at + 2] == (y % 256) as u8 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("square at {x},{y} never painted");
    }

    fn square(i: u16) -> (u16, u16) {
        (10 + i * 43, 7 + i * 29)
    }

    #[tokio::test]
    async fn a_viewer_that_held_frames_back_catches_up_with_the_current_picture_only() {
        use crate::frame_window::{FrameWindow, FRAMES_IN_FLIGHT};
        let broker = Arc::new(Broker::default());
        let (gateway_side, _target_side) = tokio::io::duplex(1024);
        let mut i = info("d1");
        i.protocol = Protocol::Rdp;
        let s = broker.start(
            i,
            Box::new(PaintingAdapter),
            Box::new(gateway_side),
            640,
            480,
        );
        let (snapshot, mut sub) = s.subscribe();
        let mut browser = Canvas::of(&snapshot);
        let mut window = FrameWindow::default();
        window.sent(std::time::Instant::now(), None);
        window.drawn(1, std::time::Instant::now());
        // Ten squares, each a frame. The browser draws nothing meanwhile: it is sent the
        // window's worth, and the rest are held back.
        for n in 0..10 {
            let (x, y) = square(n);
            s.send_input(ClientInput::Pointer { x, y, buttons: 1 })
                .await
                .unwrap();
        }
        painted(&s, square(9)).await;
        let mut sent = Vec::new();
        while let Some(d) = sub.try_next() {
            if let Delivery::Event(SessionEvent::Frame(rects, since)) = d {
                if window.behind() || !window.may_send() {
                    window.skip(&rects, since);
                } else {
                    sent.push(rects);
                    window.sent(std::time::Instant::now(), since);
                }
            }
        }
        assert_eq!(sent.len() as u64, FRAMES_IN_FLIGHT);
        assert!(window.behind() && !window.may_send());
        // Two more, published but not yet taken by this viewer; one paints over a square
        // the viewer was sent, in another colour.
        let (x, y) = square(0);
        s.send_input(ClientInput::Pointer { x, y, buttons: 2 })
            .await
            .unwrap();
        s.send_input(ClientInput::Pointer {
            x: 600,
            y: 400,
            buttons: 1,
        })
        .await
        .unwrap();
        painted(&s, (600, 400)).await;
        // The browser draws what it was sent and says so: it gets one frame, the picture as
        // it is now of every region it missed, and nothing else.
        for rects in &sent {
            browser.paint(rects);
        }
        window.drawn(1 + FRAMES_IN_FLIGHT, std::time::Instant::now());
        let out = sub.catch_up(&mut window);
        assert_eq!(out.len(), 1, "one catch-up frame");
        let Delivery::Event(SessionEvent::Frame(rects, _)) = &out[0] else {
            panic!("not a frame: {:?}", out[0]);
        };
        browser.paint(rects);
        assert!(!window.behind());
        let now = Canvas::of(&s.snapshot_and_subscribe().0);
        assert!(
            browser.rgb == now.rgb,
            "the browser's picture is the session's"
        );
        // Only what changed travelled, not the whole desktop.
        let area: usize = rects
            .iter()
            .map(|r| r.width as usize * r.height as usize)
            .sum();
        assert!(area < 640 * 480 / 4, "{area} pixels sent");
        // Nothing is left for the viewer afterwards.
        assert!(sub.try_next().is_none());
    }
}
