//! Benchmark for RDP desktops in the browser (issue 8), on loopback against the private test
//! xrdp (TLS, autologon, Xorg). Workload: an xterm filling a 1280x800 desktop that scrolls
//! `ls -lR /usr/share` without end, in `SESSIONS` concurrent sessions (one user each: xrdp
//! gives every user one desktop). Each session's "browser" is a WebSocket client that reads
//! every rectangle (it does not decode them: painting is the browser's cost, not the
//! gateway's). Printed:
//!   - gateway CPU per active session, resident memory per session, frames per second and
//!     bytes per minute delivered to each browser, recording bytes per hour;
//!   - keystroke to changed picture in the browser (an idle xterm echoing a key: xrdp, the
//!     xterm and the gateway's 16-ms frame gathering included), p50 and p95;
//!   - under the flood, a change on the desktop to the browser (a probe beside the xterm
//!     changes colour every 0.25-0.75 s; an observer paints every frame), p50 and p95, and
//!     what the server holds queued for the gateway; the same for a browser that takes a
//!     second to draw each frame, once saying what it drew (the gateway's frame window
//!     applies) and once not (every frame is sent);
//!   - the same workload viewed through `xfreerdp` (a complete native client that decodes and
//!     draws on an Xvfb display), when it is installed: its CPU and memory, and how long the
//!     probe's changes take to reach its window (one pixel read over X11 every 2 ms);
//!   - the probe once more with one flooding desktop alone on the machine (the others ended),
//!     through `xfreerdp`, and through the gateway with each `flood_pacing` (thrifty, the
//!     default; responsive; immediate) with the gateway's CPU: with four floods the two cores are
//!     saturated, and the server side then sets much of the figure;
//!   - for both, the RDP update volume each viewer received (MB/s, from the kernel's socket
//!     counters) and the CPU spent per MB of it: the per-session CPU follows how fast xrdp
//!     produces updates on a shared 2-core machine, which varies between runs and viewers;
//!     the cost per MB compares the work itself.
//!
//! A second workload shows photographs changing four times a second, viewed with the
//! automatic image quality (JPEG while a picture changes, PNG once it is still), lossless
//! (PNG only), and by `xfreerdp`: CPU, bytes to the browser (JPEG and PNG apart), frames,
//! recording size.
//!
//! Run with `cargo bench --bench desktop` (`DESKTOP_BENCH=photographs` for the second
//! workload alone, `DESKTOP_BENCH=terminal` for the first; `PROBE_SAMPLES=1` also prints
//! each probe sample, in ms, on stderr). It prints figures; it asserts nothing.

#[allow(dead_code)]
#[path = "../tests/support/sshd.rs"]
mod sshd_server;

#[allow(dead_code)]
#[path = "../tests/support/xrdp.rs"]
mod xrdp_server;

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway_bench;

#[allow(dead_code)]
#[path = "../tests/support/desktop_view.rs"]
mod desktop_view;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gateway_bench::{pct, proc_stat, Gateway, Ws};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "Bench-Desk-Pw-51!";
const SESSIONS: usize = 4;
const WARM_UP: Duration = Duration::from_secs(5);
const MEASURE: Duration = Duration::from_secs(20);
const KEYS: usize = 100;
const WIDTH: u16 = 1280;
const HEIGHT: u16 = 800;
/// An xterm filling the desktop (6x13 font: 210x60 cells = 1260x780 pixels), scrolling.
/// Beside it, in a strip of the root window, a probe: every half second on average the root
/// takes the next of 64 colours (`probe_colour`), and the time of each change (ns since the
/// epoch) is appended to `probe_file`. The colour names its change for about 32 s, so a
/// browser many seconds behind is still measured right. The wait between changes is drawn
/// at random from 0.25-0.75 s: a probe every 0.5 s exactly kept nearly the same phase to the
/// gateway's flood pauses (about 0.5 s apart) for a whole run, so one run measured only short
/// delays and the next only long ones.
const SCROLLING: &str = "#!/bin/sh\n(i=0; while :; do xsetroot -solid \"$(printf '#%02x00%02x' $((i % 64 * 4)) $((255 - i % 64 * 4)))\"; date +%s%N >> \"$HOME/probe-times\"; i=$((i + 1)); sleep \"0.$(shuf -i 250-749 -n 1)\"; done) &\nexec xterm -geometry 210x60+0+0 -bg white -fg black -e sh -c 'while :; do ls -lR /usr/share; done'\n";
/// A pixel of the probe's strip.
const PROBE: (usize, usize) = (1276, 400);

/// Which of the probe's 64 colours `rgb` is (the change's number modulo 64).
fn probe_colour(rgb: [u8; 3]) -> Option<usize> {
    let [r, g, b] = rgb;
    (g == 0 && r % 4 == 0 && u16::from(r) + u16::from(b) == 255).then_some(usize::from(r / 4))
}

/// A browser watching the flooding session for the probe: how long it takes to draw each
/// frame, and whether it says what it drew (protocol 1.5 `drawn`; a browser that does not
/// is sent every frame).
#[derive(Clone, Copy)]
struct Observer {
    draw: Duration,
    says_drawn: bool,
}
/// How long the probe is watched, after a browser has watched for `PROBE_WARM_UP`: the
/// gateway learns a slow browser's speed from its first few frames (about 7 s for one that
/// takes a second a frame: the four frames sent before it knew, then two to measure).
const PROBING: Duration = Duration::from_secs(15);
const PROBE_WARM_UP: Duration = Duration::from_secs(8);
/// What the slow browsers take to draw a frame (a flood sends about two a second).
const SLOW_DRAW: Duration = Duration::from_secs(1);
/// How often the probe's pixel is read in `xfreerdp`'s window.
const NATIVE_POLL: Duration = Duration::from_millis(2);
const IDLE: &str = xrdp_server::XSESSION;
/// The photographic workload's pictures (pixels).
const PHOTO_W: usize = 800;
const PHOTO_H: usize = 500;

#[derive(Default)]
struct Counted {
    frames: u64,
    bytes: u64,
    /// Bytes of the rectangles sent as JPEG, and as PNG.
    jpeg_bytes: u64,
    png_bytes: u64,
}

impl Counted {
    /// Adds up one frame's rectangles by encoding (docs/websocket-protocol.md).
    fn rectangles(&mut self, mut msg: &[u8]) {
        while msg.len() >= 12 {
            let len = u32::from_be_bytes([msg[8], msg[9], msg[10], msg[11]]);
            if len == u32::MAX {
                msg = msg.get(16..).unwrap_or_default();
                continue;
            }
            let image = msg.get(12..12 + len as usize).unwrap_or_default();
            if image.starts_with(&[0xff, 0xd8, 0xff]) {
                self.jpeg_bytes += image.len() as u64;
            } else {
                self.png_bytes += image.len() as u64;
            }
            msg = msg.get(12 + len as usize..).unwrap_or_default();
        }
    }
}

/// Reads everything the session sends until `until`, counting desktop frames and bytes.
async fn drain(ws: &mut Ws, until: Instant) -> anyhow::Result<Counted> {
    let mut c = Counted::default();
    loop {
        match tokio::time::timeout_at(until.into(), ws.next()).await {
            Err(_) => return Ok(c),
            Ok(None) => anyhow::bail!("the session closed"),
            Ok(Some(m)) => match m? {
                Message::Binary(b) => {
                    c.frames += 1;
                    c.bytes += b.len() as u64;
                    c.rectangles(&b);
                }
                Message::Text(t) => {
                    c.bytes += t.len() as u64;
                    let v: Value = serde_json::from_str(t.as_str())?;
                    anyhow::ensure!(v["type"] != "error", "session failed: {v}");
                }
                _ => {}
            },
        }
    }
}

async fn open_desktop(g: &Gateway, account: &str) -> anyhow::Result<Ws> {
    g.open_ws_at(
        "/sessions",
        json!({ "account_id": account, "protocol": "rdp", "width": WIDTH, "height": HEIGHT }),
    )
    .await
}

async fn key(ws: &mut Ws, code: &str, key: &str) -> anyhow::Result<()> {
    for down in [true, false] {
        ws.send(Message::Text(
            json!({ "type": "key", "code": code, "key": key, "down": down })
                .to_string()
                .into(),
        ))
        .await?;
    }
    Ok(())
}

/// Keystroke to the next picture change in the browser, `KEYS` times, in microseconds.
async fn echo_latency(ws: &mut Ws) -> anyhow::Result<(f64, f64)> {
    // Let the desktop settle, then put the pointer over the xterm (it takes the keyboard).
    drain(ws, Instant::now() + Duration::from_secs(3)).await?;
    ws.send(Message::Text(
        json!({ "type": "pointer", "x": 200, "y": 100, "buttons": 0 })
            .to_string()
            .into(),
    ))
    .await?;
    drain(ws, Instant::now() + Duration::from_millis(500)).await?;
    let mut times = Vec::with_capacity(KEYS);
    for i in 0..KEYS {
        let (code, k) = if i % 2 == 0 {
            ("KeyA", "a")
        } else {
            ("Backspace", "Backspace")
        };
        let t0 = Instant::now();
        key(ws, code, k).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Binary(_)))) => break,
                Ok(Some(Ok(_))) => continue,
                _ => anyhow::bail!("no picture after a key"),
            }
        }
        times.push(t0.elapsed());
        // Whatever else the key caused (the cursor) is not the next key's answer.
        drain(ws, Instant::now() + Duration::from_millis(60)).await?;
    }
    Ok((pct(&mut times, 50), pct(&mut times, 95)))
}

/// Bytes received so far on the established TCP connections to `port` on loopback (the
/// kernel's `bytes_received` per socket, read with `ss`): what the RDP server has sent to
/// its clients, TLS included. Connections that closed meanwhile no longer count, so it is
/// read at the start and end of a window in which the same connections stay open.
fn received_from(port: u16) -> u64 {
    let out = std::process::Command::new("ss")
        .args([
            "-tinH",
            "state",
            "established",
            &format!("( dport = :{port} )"),
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.split_whitespace()
        .filter_map(|w| w.strip_prefix("bytes_received:"))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// Bytes the RDP server on `port` holds in its sockets for its clients, not yet taken by
/// them (the kernel's send queue per connection, read with `ss`), and the number of
/// connections: what a viewer will still read before it sees anything newer.
fn queued_at(port: u16) -> (u64, u64) {
    let out = std::process::Command::new("ss")
        .args([
            "-tnH",
            "state",
            "established",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .fold((0, 0), |(bytes, n), q| (bytes + q, n + 1))
}

/// The server's mean queue per connection (MB), sampled every second for `window`.
fn mean_queue(port: u16, window: Duration) -> f64 {
    let until = Instant::now() + window;
    let (mut sum, mut samples) = (0f64, 0u32);
    while Instant::now() < until {
        let (bytes, n) = queued_at(port);
        if n > 0 {
            sum += bytes as f64 / n as f64 / 1e6;
            samples += 1;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    if samples > 0 {
        sum / f64::from(samples)
    } else {
        0.0
    }
}

/// The machine's CPU time so far, busy and in all (clock ticks, all cores; `/proc/stat`):
/// how loaded the machine was in a window is the busy share of the difference.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let all: u64 = fields.iter().take(8).sum();
    // idle and iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (all - idle, all)
}

/// The busy share of the machine's cores between two `machine_ticks` readings, in %.
fn busy_between((busy0, all0): (u64, u64), (busy1, all1): (u64, u64)) -> f64 {
    let all = all1.saturating_sub(all0);
    if all == 0 {
        return 0.0;
    }
    busy1.saturating_sub(busy0) as f64 / all as f64 * 100.0
}

/// What one viewer cost for the updates it was sent: CPU (% of one core), and the update
/// volume (MB/s from the RDP server) it decoded for it.
struct Work {
    cpu: f64,
    mb_per_s: f64,
    /// Mean MB queued for it at the server (see `queued_at`).
    queued_mb: f64,
    /// How busy the machine's cores were meanwhile (%): the viewers are measured at
    /// different times, on cores they share with xrdp, Xorg and the xterms.
    machine_busy: f64,
}

impl Work {
    /// Milliseconds of CPU per MB of RDP updates received: the cost of the same work,
    /// whatever rate the server reached in a run (the machine's two cores are shared with
    /// xrdp, Xorg and the xterms, so the rate varies from run to run and between viewers).
    /// How far behind the server's picture the viewer is under the flood: its backlog at
    /// the server, in seconds of the rate at which it reads.
    fn behind_s(&self) -> f64 {
        if self.mb_per_s > 0.0 {
            self.queued_mb / self.mb_per_s
        } else {
            0.0
        }
    }

    fn ms_per_mb(&self) -> f64 {
        if self.mb_per_s > 0.0 {
            self.cpu * 10.0 / self.mb_per_s
        } else {
            0.0
        }
    }
}

/// `xfreerdp` on a private Xvfb display viewing the scrolling desktop of `user` for
/// `MEASURE`: its CPU and update volume, and its resident memory (MiB). Then, with `probe`
/// (the desktop runs `SCROLLING`), how long a change on that desktop takes to reach its
/// window (`native_probe`), once as the machine is, and once after the desktops of the
/// `probe` users have been ended (`end_desktops`), so that it floods alone. Bulk compression is
/// turned off (`-compression`) because the gateway does not negotiate it: both then receive
/// the same kind of stream (TLS around planar and interleaved bitmaps).
fn native_client(
    port: u16,
    user: &str,
    probe: Option<&[String]>,
) -> anyhow::Result<Option<(Work, f64, Option<NativeProbes>)>> {
    if std::process::Command::new("sh")
        .args(["-c", "command -v xfreerdp && command -v Xvfb"])
        .output()?
        .stdout
        .is_empty()
    {
        return Ok(None);
    }
    let display = format!(":{}", 300 + std::process::id() % 200);
    let mut xvfb = std::process::Command::new("Xvfb")
        .args([&display, "-screen", "0", "1400x900x24", "-nolisten", "tcp"])
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(1));
    let mut client = std::process::Command::new("xfreerdp")
        .env("DISPLAY", &display)
        .args([
            &format!("/v:127.0.0.1:{port}"),
            &format!("/u:{user}"),
            &format!("/p:{PASSWORD}"),
            "/cert:ignore",
            &format!("/size:{WIDTH}x{HEIGHT}"),
            "/sec:tls",
            "-compression",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(WARM_UP);
    let (_, t0) = proc_stat(client.id());
    let m0 = machine_ticks();
    let rx0 = received_from(port);
    let start = Instant::now();
    let queued_mb = mean_queue(port, MEASURE);
    let (rss, t1) = proc_stat(client.id());
    let rx1 = received_from(port);
    let secs = start.elapsed().as_secs_f64();
    let cpu = (t1 - t0) as f64 / 100.0 / secs * 100.0;
    let work = Work {
        cpu,
        mb_per_s: rx1.saturating_sub(rx0) as f64 / 1e6 / secs,
        queued_mb,
        machine_busy: busy_between(m0, machine_ticks()),
    };
    let probed = probe
        .map(|others| -> anyhow::Result<NativeProbes> {
            let loaded = native_probe(&display, user)?;
            end_desktops(others);
            Ok(NativeProbes {
                loaded,
                alone: native_probe(&display, user)?,
            })
        })
        .transpose();
    let _ = client.kill();
    let _ = client.wait();
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    Ok(Some((work, rss as f64 / 1024.0, probed?)))
}

async fn run() -> anyhow::Result<()> {
    let sshd = sshd_server::sshd();
    let xrdp = xrdp_server::xrdp();
    let mut g = Gateway::start(&[]).await?;
    // `DESKTOP_BENCH=photographs`: the photographic workload alone.
    if std::env::var("DESKTOP_BENCH").as_deref() == Ok("photographs") {
        return photographs(&mut g, xrdp.port).await;
    }
    let pid = g.child.id();
    // One user (one desktop) per scrolling session, one idle for the latency, one for xfreerdp.
    let mut scrolling = Vec::new();
    let mut probed_user = String::new();
    let mut scrolling_users = Vec::new();

    for _ in 0..SESSIONS {
        let u = sshd.user(PASSWORD);
        if probed_user.is_empty() {
            probed_user = u.clone();
        }
        scrolling_users.push(u.clone());

        sshd.write_home_file(&u, ".xsession", "755", SCROLLING);
        g.add_account(json!({ "rdp": xrdp.port }), &u, PASSWORD)
            .await?;
        scrolling.push(g.account.clone());
    }
    let idle_user = sshd.user(PASSWORD);
    sshd.write_home_file(&idle_user, ".xsession", "755", IDLE);
    g.add_account(json!({ "rdp": xrdp.port }), &idle_user, PASSWORD)
        .await?;
    let idle = g.account.clone();
    let native_user = sshd.user(PASSWORD);
    sshd.write_home_file(&native_user, ".xsession", "755", SCROLLING);

    println!("RDP desktops through the gateway: {SESSIONS} sessions, {WIDTH}x{HEIGHT}, an xterm scrolling `ls -lR /usr/share`, {} s measured after {} s", MEASURE.as_secs(), WARM_UP.as_secs());
    let (rss0, _) = proc_stat(pid);
    let mut sockets = Vec::new();
    for a in &scrolling {
        sockets.push(open_desktop(&g, a).await?);
    }
    let warm = Instant::now() + WARM_UP;
    let warmed: Vec<_> = sockets
        .iter_mut()
        .map(|ws| drain(ws, warm))
        .collect::<Vec<_>>();
    for w in futures_util::future::join_all(warmed).await {
        w?;
    }
    let (_, ticks0) = proc_stat(pid);
    let m0 = machine_ticks();
    let rx0 = received_from(xrdp.port);
    let start = Instant::now();
    let until = start + MEASURE;
    let port = xrdp.port;
    let sampler = std::thread::spawn(move || mean_queue(port, MEASURE));
    let counted = futures_util::future::join_all(sockets.iter_mut().map(|ws| drain(ws, until)))
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let secs = start.elapsed().as_secs_f64();
    let (rss1, ticks1) = proc_stat(pid);
    let rx1 = received_from(xrdp.port);
    let cpu_per_session = (ticks1 - ticks0) as f64 / 100.0 / secs * 100.0 / SESSIONS as f64;
    let gateway_work = Work {
        cpu: cpu_per_session,
        mb_per_s: rx1.saturating_sub(rx0) as f64 / 1e6 / secs / SESSIONS as f64,
        queued_mb: sampler.join().unwrap_or(0.0),
        machine_busy: busy_between(m0, machine_ticks()),
    };
    let mem_per_session = (rss1.saturating_sub(rss0)) as f64 / 1024.0 / SESSIONS as f64;
    // While the others go on being read.
    // Three observers in turn: one that draws at once, and two that take a second to draw a
    // frame (slower than the flood's frames come), one saying what it drew and one not.
    let observers = [
        Observer {
            draw: Duration::ZERO,
            says_drawn: true,
        },
        Observer {
            draw: SLOW_DRAW,
            says_drawn: true,
        },
        Observer {
            draw: SLOW_DRAW,
            says_drawn: false,
        },
    ];
    let mut probed = Vec::new();
    for observer in observers {
        let probing = Instant::now() + PROBE_WARM_UP + PROBING + Duration::from_secs(5);
        let (probe, _) = tokio::join!(
            probe_latency(&g, &scrolling[0], &probed_user, observer),
            futures_util::future::join_all(sockets.iter_mut().map(|ws| drain(ws, probing)))
        );
        probed.push(probe?);
    }
    let fps = counted.iter().map(|c| c.frames as f64).sum::<f64>() / secs / SESSIONS as f64;
    let per_minute =
        counted.iter().map(|c| c.bytes as f64).sum::<f64>() / secs * 60.0 / SESSIONS as f64;
    // End the sessions and weigh their recordings.
    let per_hour = end_sessions_and_weigh(&g).await?;
    drop(sockets);

    let mut ws = open_desktop(&g, &idle).await?;
    let (p50, p95) = echo_latency(&mut ws).await?;
    drop(ws);
    let native = native_client(xrdp.port, &native_user, Some(&scrolling_users))?;
    // One flooding desktop alone on the machine, through the gateway: the other desktops
    // (xfreerdp's too) ended, a browser that draws at once; once with each flood pacing (a
    // new desktop each time), with the gateway's CPU meanwhile.
    end_desktops(&scrolling_users);
    end_desktops(std::slice::from_ref(&native_user));
    let mut alone = Vec::new();
    for pacing in ["thrifty", "responsive", "immediate"] {
        let alone_user = sshd.user(PASSWORD);
        sshd.write_home_file(&alone_user, ".xsession", "755", SCROLLING);
        let rid = g
            .add_account(json!({ "rdp": xrdp.port }), &alone_user, PASSWORD)
            .await?;
        g.call(
            "PUT",
            &format!("/resources/{rid}/rdp"),
            json!({ "flood_pacing": pacing }),
        )
        .await?;
        let alone_account = g.account.clone();
        let mut owner = open_desktop(&g, &alone_account).await?;
        drain(&mut owner, Instant::now() + WARM_UP).await?;
        let probing = Instant::now() + PROBE_WARM_UP + PROBING + Duration::from_secs(5);
        let (_, t0) = proc_stat(pid);
        let started = Instant::now();
        let (probe, _) = tokio::join!(
            probe_latency(&g, &alone_account, &alone_user, observers[0]),
            drain(&mut owner, probing)
        );
        let (_, t1) = proc_stat(pid);
        let cpu = (t1 - t0) as f64 / 100.0 / started.elapsed().as_secs_f64() * 100.0;
        alone.push((pacing, probe?, cpu));
        drop(owner);
        end_sessions_and_weigh(&g).await?;
        end_desktops(std::slice::from_ref(&alone_user));
    }

    println!();
    println!("| measure | gateway | xfreerdp (native client, decodes and draws) | target |");
    println!("| --- | ---: | ---: | --- |");
    let ms = |(p50, p95, n): (f64, f64, usize)| {
        format!("{:.0} / {:.0} ms ({n} changes)", p50 / 1000.0, p95 / 1000.0)
    };
    let (ncpu, nmem, nrate, ncost, nbehind, nchange, nalone, nbusy) = match &native {
        Some((w, m, probed)) => (
            format!("{:.1} %", w.cpu),
            format!("{m:.0} MiB"),
            format!("{:.2} MB/s", w.mb_per_s),
            format!("{:.0} ms", w.ms_per_mb()),
            format!("{:.2} MB, {:.1} s", w.queued_mb, w.behind_s()),
            probed.as_ref().map(|p| ms(p.loaded)).unwrap_or_default(),
            probed.as_ref().map(|p| ms(p.alone)).unwrap_or_default(),
            format!("{:.0} %", w.machine_busy),
        ),
        None => {
            let n = || "(not installed)".to_string();
            (n(), n(), n(), n(), n(), n(), n(), n())
        }
    };
    println!(
        "| CPU per active session (% of one core) | {cpu_per_session:.2} % | {ncpu} | <= 2 % |"
    );
    println!(
        "| RDP updates received from the server (per session) | {:.2} MB/s | {nrate} | |",
        gateway_work.mb_per_s
    );
    println!(
        "| CPU per MB of updates received | {:.0} ms | {ncost} | |",
        gateway_work.ms_per_mb()
    );
    println!(
        "| updates queued at the server for it, and how far behind that puts it | {:.2} MB, {:.1} s | {nbehind} | |",
        gateway_work.queued_mb,
        gateway_work.behind_s()
    );
    println!(
        "| the machine's cores busy while it was measured (xrdp, Xorg and the xterms included) | {:.0} % | {nbusy} | |",
        gateway_work.machine_busy
    );
    let names = [
        "a change on the desktop to the browser, under the flood",
        "... to a browser that takes 1 s to draw a frame and says so (`drawn`)",
        "... to a browser that takes 1 s to draw a frame and does not say (every frame sent)",
    ];
    for (i, (name, p)) in names.iter().zip(&probed).enumerate() {
        // The native client draws every update at once: its figure stands beside the
        // browser that does too.
        let native = if i == 0 { nchange.as_str() } else { "" };
        println!(
            "| {name}: p50 / p95 ({} changes; {:.1} frames drawn a second{}) | {:.0} / {:.0} ms | {native} | |",
            p.changes,
            p.frames_per_s,
            p.update_to_drawn(),
            p.p50 / 1000.0,
            p.p95 / 1000.0
        );
    }
    for (i, (pacing, p, cpu)) in alone.iter().enumerate() {
        let native = if i == 0 { nalone.as_str() } else { "" };
        println!(
            "| ... the same, one flooding desktop alone on the machine, `flood_pacing` {pacing}: p50 / p95 ({} changes; {:.1} frames drawn a second; gateway CPU {cpu:.1} % of a core{}) | {:.0} / {:.0} ms | {native} | |",
            p.changes,
            p.frames_per_s,
            p.update_to_drawn(),
            p.p50 / 1000.0,
            p.p95 / 1000.0
        );
    }
    println!("| resident memory per session | {mem_per_session:.1} MiB | {nmem} | <= 32 MiB |");
    println!("| frames per second delivered (per session) | {fps:.1} | | |");
    println!(
        "| bytes to the browser per minute (per session) | {:.1} MB | | |",
        per_minute / 1e6
    );
    println!(
        "| recording bytes per hour (per session) | {:.1} MB | | <= 100 MB/h |",
        per_hour / 1e6
    );
    println!(
        "| keystroke to changed picture in the browser, p50 / p95 | {:.1} / {:.1} ms | | update-to-paint p95 <= 50 ms |",
        p50 / 1000.0,
        p95 / 1000.0
    );
    println!();
    for (name, p) in names.iter().zip(&probed) {
        println!(
            "- {name}: the gateway's frame window for it at the end (participant `drawing`): {}",
            p.drawing
        );
    }
    // `DESKTOP_BENCH=terminal`: the terminal workload alone.
    if std::env::var("DESKTOP_BENCH").as_deref() == Ok("terminal") {
        return Ok(());
    }
    photographs(&mut g, xrdp.port).await
}

/// In the user's home, removed with the user.
fn probe_file(user: &str) -> String {
    format!("/home/{user}/probe-times")
}

/// How long a change on the scrolling desktop takes to reach a browser, while the xterm
/// floods: an observer of `account`'s live session paints every frame (taking
/// `observer.draw` for each, as a browser does) for `PROBE_WARM_UP` and then `PROBING`, and
/// each time the probe's pixel changes colour in the second part, the time since the probe
/// made that change (`probe_file`) is one sample.
async fn probe_latency(
    g: &Gateway,
    account: &str,
    user: &str,
    observer: Observer,
) -> anyhow::Result<Probed> {
    use std::time::SystemTime;
    let live = g.call("GET", "/sessions", Value::Null).await?;
    let sid = live
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["account_id"] == account)
        .and_then(|s| s["id"].as_str())
        .ok_or_else(|| anyhow::anyhow!("no live session of the probed account: {live}"))?
        .to_string();
    let mut ws = g
        .open_ws_at(&format!("/sessions/{sid}/watch"), json!({}))
        .await?;
    let mut d = desktop_view::Desktop::default();
    let mut seen: Vec<([u8; 3], SystemTime)> = Vec::new();
    let mut last = None;
    let mut frames = 0u64;
    let measured_from = std::time::SystemTime::now() + PROBE_WARM_UP;
    let until = Instant::now() + PROBE_WARM_UP + PROBING;
    // (A browser that never keeps up always has a frame waiting: the time is checked here,
    // not only when nothing comes.)
    while Instant::now() < until {
        match tokio::time::timeout_at(until.into(), ws.next()).await {
            Err(_) => break,
            Ok(None) => anyhow::bail!("the watched session closed"),
            Ok(Some(m)) => match m? {
                Message::Text(t) => d.control(t.as_str()),
                Message::Binary(b) => {
                    d.paint(&b);
                    // What a slower browser takes to draw it; meanwhile frames wait on the
                    // socket, as they do in a browser.
                    if !observer.draw.is_zero() {
                        tokio::time::sleep(observer.draw).await;
                    }
                    if observer.says_drawn {
                        ws.send(Message::Text(
                            json!({ "type": "drawn", "frames": d.frames })
                                .to_string()
                                .into(),
                        ))
                        .await?;
                    }
                    frames += 1;
                    let p = d.pixel(PROBE.0, PROBE.1);
                    if p != last {
                        if let Some(p) = p {
                            seen.push((p, SystemTime::now()));
                        }
                        last = p;
                    }
                }
                _ => {}
            },
        }
    }
    // How the gateway saw this browser (its frame window), as the participant list shows it.
    let live = g.call("GET", "/sessions", Value::Null).await?;
    let drawing = live
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["participants"].as_array().cloned().unwrap_or_default())
        .find(|p| p["role"] == "observer")
        .map(|p| p["drawing"].clone())
        .unwrap_or(Value::Null);
    drop(ws);
    let mut times = change_delays(&seen, user, measured_from)?;
    let n = times.len();
    Ok(Probed {
        p50: pct(&mut times, 50),
        p95: pct(&mut times, 95),
        changes: n,
        frames_per_s: frames as f64 / (PROBE_WARM_UP + PROBING).as_secs_f64(),
        drawing,
    })
}

/// What `probe_latency` measured: a change on the desktop to the browser's picture, p50 and
/// p95 in microseconds; how many changes it saw; frames it drew per second.
struct Probed {
    p50: f64,
    p95: f64,
    changes: usize,
    frames_per_s: f64,
    /// The gateway's `drawing` figures for this browser at the end.
    drawing: Value,
}

impl Probed {
    /// The gateway's own figure for this browser, when it said what it drew: from reading
    /// xrdp's update to the browser saying it drew it (the issue's "server update to browser
    /// paint"; the probe's figure adds xrdp's own delay and any pause).
    fn update_to_drawn(&self) -> String {
        match (
            self.drawing["update_to_drawn_p50_ms"].as_u64(),
            self.drawing["update_to_drawn_p95_ms"].as_u64(),
        ) {
            (Some(p50), Some(p95)) => {
                format!("; server update to browser drawn, as the gateway measured it: {p50} / {p95} ms")
            }
            _ => String::new(),
        }
    }
}

/// For each colour the probe's pixel took in a viewer at or after `measured_from` (the first
/// one seen is the viewer's first picture, not a change), the time since the probe made that
/// change (`probe_file` of `user`: line i gave the root colour i modulo 64).
fn change_delays(
    seen: &[([u8; 3], std::time::SystemTime)],
    user: &str,
    measured_from: std::time::SystemTime,
) -> anyhow::Result<Vec<Duration>> {
    let changes: Vec<(usize, u128)> = std::fs::read_to_string(probe_file(user))?
        .lines()
        .enumerate()
        .filter_map(|(i, l)| Some((i % 64, l.trim().parse().ok()?)))
        .collect();
    let mut times = Vec::new();
    for (rgb, at) in seen.iter().skip(1).filter(|(_, at)| *at >= measured_from) {
        let Some(colour) = probe_colour(*rgb) else {
            continue;
        };
        let at_ns = at
            .duration_since(std::time::SystemTime::UNIX_EPOCH)?
            .as_nanos();
        if let Some((_, made)) = changes
            .iter()
            .rev()
            .find(|(c, t)| *c == colour && *t <= at_ns)
        {
            times.push(Duration::from_nanos((at_ns - made) as u64));
        }
    }
    anyhow::ensure!(
        !times.is_empty(),
        "the probe's pixel never changed colour in the viewer ({} colours seen)",
        seen.len()
    );
    if std::env::var("PROBE_SAMPLES").is_ok() {
        eprintln!(
            "samples: {:?}",
            times.iter().map(|t| t.as_millis()).collect::<Vec<_>>()
        );
    }
    Ok(times)
}

/// What `native_probe` measured for `xfreerdp`: with the other desktops as they were, and
/// alone on the machine.
struct NativeProbes {
    loaded: (f64, f64, usize),
    alone: (f64, f64, usize),
}

/// Ends every process of `users` (their X sessions, xterms included; xrdp keeps a desktop
/// running after its viewer leaves), so that what is measured next shares the machine with
/// none of them.
fn end_desktops(users: &[String]) {
    for u in users {
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-u", u])
            .status();
    }
    std::thread::sleep(Duration::from_secs(2));
}

/// How long a change on the scrolling desktop takes to reach `xfreerdp`'s window on the Xvfb
/// `display`, for `PROBING`: the probe's pixel in its window is read every `NATIVE_POLL`
/// (X11 `GetImage` of one pixel), and each change of colour is one sample, matched as for a
/// browser (`change_delays`). The poll adds up to `NATIVE_POLL` to each sample.
fn native_probe(display: &str, user: &str) -> anyhow::Result<(f64, f64, usize)> {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ConnectionExt, ImageFormat};
    let (conn, screen) = x11rb::connect(Some(display))?;
    let root = conn.setup().roots[screen].root;
    // xfreerdp's window: the top-level window of the desktop's size (no window manager runs,
    // so it has no frame).
    let mut window = None;
    for w in conn.query_tree(root)?.reply()?.children {
        let g = conn.get_geometry(w)?.reply()?;
        if g.width == WIDTH && g.height == HEIGHT {
            window = Some(w);
        }
    }
    let window =
        window.ok_or_else(|| anyhow::anyhow!("no {WIDTH}x{HEIGHT} window on {display}"))?;
    let measured_from = std::time::SystemTime::now();
    let until = Instant::now() + PROBING;
    let mut seen = Vec::new();
    let mut last = None;
    while Instant::now() < until {
        let image = conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                window,
                PROBE.0 as i16,
                PROBE.1 as i16,
                1,
                1,
                u32::MAX,
            )?
            .reply()?;
        // 24-bit depth: 32 bits a pixel, blue, green, red, unused.
        if let [b, g, r, ..] = image.data[..] {
            let p = [r, g, b];
            if last != Some(p) {
                seen.push((p, std::time::SystemTime::now()));
                last = Some(p);
            }
        }
        std::thread::sleep(NATIVE_POLL);
    }
    // The first colour read is the window's picture, not a change: match from the second.
    let mut times = change_delays(&seen, user, measured_from)?;
    let n = times.len();
    Ok((pct(&mut times, 50), pct(&mut times, 95), n))
}

/// Terminates every live session and returns their recordings' bytes per hour of session
/// (all recordings together).
async fn end_sessions_and_weigh(g: &Gateway) -> anyhow::Result<f64> {
    let live = g.call("GET", "/sessions", Value::Null).await?;
    let mut recordings = Vec::new();
    for s in live.as_array().into_iter().flatten() {
        let id = s["id"].as_str().unwrap_or_default();
        if let Some(r) = s["recording_id"].as_str() {
            recordings.push(r.to_string());
        }
        g.post(
            &format!("/sessions/{id}/terminate"),
            json!({ "reason": "benchmark over" }),
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut bytes, mut ms) = (0f64, 0f64);
    for r in &recordings {
        let d = g
            .call("GET", &format!("/recordings/{r}"), Value::Null)
            .await?;
        bytes += d["size_bytes"].as_f64().unwrap_or(0.0);
        ms += d["duration_ms"].as_f64().unwrap_or(0.0);
    }
    Ok(if ms > 0.0 {
        bytes / ms * 3_600_000.0
    } else {
        0.0
    })
}

/// The photographic workload: a slideshow of photograph-like pictures (`PHOTO_W` x
/// `PHOTO_H`, smooth light with grain, a new one about three times a second) beside an idle
/// xterm, viewed
/// once with the automatic image quality (JPEG while the picture changes, PNG once it is
/// still) and once lossless (PNG only), one session each, and by `xfreerdp`.
async fn photographs(g: &mut Gateway, port: u16) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let sshd = sshd_server::sshd();
    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let mut files = Vec::new();
    for seed in 1..=4 {
        let path = dir.path().join(format!("photo-{seed}.xwd"));
        std::fs::write(&path, xrdp_server::photo_xwd(PHOTO_W, PHOTO_H, seed).0)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        files.push(path.display().to_string());
    }
    let slideshow = format!(
        "#!/bin/sh\nxsetroot -solid '#3a6ea5'\nxterm -geometry 80x10+0+{} -bg white -fg black &\nold=\nwhile :; do for f in {}; do xwud -noclick -geometry +100+20 -in $f & new=$!; sleep 0.25; [ -n \"$old\" ] && kill $old; old=$new; done; done\n",
        PHOTO_H + 40,
        files.join(" ")
    );
    println!();
    println!("Photographs: {PHOTO_W}x{PHOTO_H} pictures (smooth light with grain), a new one about three times a second (xwud every 250 ms, plus its start-up), beside an idle xterm, {WIDTH}x{HEIGHT}; one session each, {} s measured after {} s", MEASURE.as_secs(), WARM_UP.as_secs());
    let mut rows: Vec<(String, Vec<String>)> = vec![
        ("CPU per session (% of one core)".into(), vec![]),
        ("bytes to the browser per minute".into(), vec![]),
        ("of which JPEG / PNG".into(), vec![]),
        ("frames per second delivered".into(), vec![]),
        ("recording bytes per hour".into(), vec![]),
    ];
    for quality in ["auto", "lossless"] {
        let u = sshd.user(PASSWORD);
        sshd.write_home_file(&u, ".xsession", "755", &slideshow);
        let rid = g.add_account(json!({ "rdp": port }), &u, PASSWORD).await?;
        g.call(
            "PUT",
            &format!("/resources/{rid}/rdp"),
            json!({ "image_quality": quality }),
        )
        .await?;
        let mut ws = open_desktop(g, &g.account.clone()).await?;
        drain(&mut ws, Instant::now() + WARM_UP).await?;
        let (_, t0) = proc_stat(g.child.id());
        let start = Instant::now();
        let c = drain(&mut ws, start + MEASURE).await?;
        let secs = start.elapsed().as_secs_f64();
        let (_, t1) = proc_stat(g.child.id());
        let per_minute = |b: u64| b as f64 / secs * 60.0 / 1e6;
        rows[0]
            .1
            .push(format!("{:.2} %", (t1 - t0) as f64 / 100.0 / secs * 100.0));
        rows[1].1.push(format!("{:.1} MB", per_minute(c.bytes)));
        rows[2].1.push(format!(
            "{:.1} / {:.1} MB",
            per_minute(c.jpeg_bytes),
            per_minute(c.png_bytes)
        ));
        rows[3].1.push(format!("{:.1}", c.frames as f64 / secs));
        let per_hour = end_sessions_and_weigh(g).await?;
        drop(ws);
        rows[4].1.push(format!("{:.0} MB", per_hour / 1e6));
    }
    let native_user = sshd.user(PASSWORD);
    sshd.write_home_file(&native_user, ".xsession", "755", &slideshow);
    let native = native_client(port, &native_user, None)?;
    rows[0].1.push(match &native {
        Some((w, _, _)) => format!("{:.2} %", w.cpu),
        None => "(not installed)".into(),
    });
    println!();
    println!("| measure | gateway, automatic (JPEG while it changes, then PNG) | gateway, lossless (PNG only) | xfreerdp |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, cells) in rows {
        let mut cells = cells;
        cells.resize(3, String::new());
        println!("| {name} | {} |", cells.join(" | "));
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
