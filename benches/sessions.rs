//! Benchmark for browser SSH sessions (issue 3), side by side with a direct SSH client, on
//! loopback against the private test sshd:
//!   (a) keystroke echo round trip: WebSocket client -> gateway -> sshd, vs a direct russh
//!       client; p50 and p99;
//!   (b) bulk output (~200 MB of base64 through the PTY): gateway vs direct throughput;
//!   (c) N concurrent idle sessions: gateway memory per session and idle CPU;
//!   (h) hop chains (issue 7; `SESSIONS_BENCH_PARTS=h`, needs root for network namespaces):
//!       session set-up time through 0-3 landing servers next to one SSH login, and
//!       keystroke echo through 2 landing servers vs direct.
//! Run with `cargo bench --bench sessions` (release build of the real server binary). It
//! prints figures; it asserts nothing.

#[allow(dead_code)]
#[path = "../tests/support/sshd.rs"]
mod sshd_server;

#[allow(dead_code)]
#[path = "../tests/support/netns.rs"]
mod netns_chain;

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway_bench;

use anyhow::Context as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use russh::keys::PublicKeyOrCertificate;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "Bench-Passw0rd!";
const KEYSTROKES: usize = 400;
/// Keys per echo measurement in part (o), where p99 is compared between runs.
const OBSERVED_KEYSTROKES: usize = 1000;
/// Keys timed through the probe observer in part (o) (each waits for a gathered frame).
const PROBE_KEYS: usize = 200;
// The end marker is computed by the shell so that the echoed command line cannot match it.
const BULK_CMD: &str = "head -c 150000000 /dev/zero | base64 -w 100; echo BULK-$((40+2))-DONE";
const BULK_END: &[u8] = b"BULK-42-DONE\r\n";
const IDLE_SESSIONS: usize = 500;
const BULK_ROUNDS: usize = 5;
const OBSERVERS: usize = 50;

use gateway_bench::{pct, proc_stat, Gateway, Ws};

async fn start_gateway(ssh_port: u16, ssh_user: &str, record: bool) -> anyhow::Result<Gateway> {
    let mut g = Gateway::start(&[
        (
            "PORTCULLIS_RECORD_TERMINAL_SESSIONS",
            if record { "true" } else { "false" },
        ),
        // (c) opens IDLE_SESSIONS sessions as one user.
        ("PORTCULLIS_MAX_SESSIONS_PER_USER", "1000"),
    ])
    .await?;
    g.add_account(json!({ "ssh": ssh_port }), ssh_user, PASSWORD)
        .await?;
    Ok(g)
}

async fn open_ws(g: &Gateway) -> anyhow::Result<Ws> {
    open_ws_at(
        g,
        "/sessions",
        json!({ "account_id": g.account, "cols": 120, "rows": 40 }),
    )
    .await
}

async fn open_ws_at(g: &Gateway, path: &str, body: Value) -> anyhow::Result<Ws> {
    g.open_ws_at(path, body).await
}

/// The session id from the first `session` message.
async fn ws_session_id(ws: &mut Ws) -> anyhow::Result<String> {
    while let Some(m) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await? {
        if let Message::Text(t) = m? {
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["type"] == "session" {
                return Ok(v["id"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    anyhow::bail!("no session message")
}

/// Keystroke echo round trips through `ws`, in microseconds (p50, p99).
async fn echo_rtt(ws: &mut Ws, keys: usize) -> anyhow::Result<(f64, f64)> {
    let mut rtt = Vec::new();
    for i in 0..keys {
        let key = [b'a' + (i % 26) as u8];
        let t = Instant::now();
        ws.send(Message::Binary(key.to_vec().into())).await?;
        ws_until(ws, &key).await?;
        rtt.push(t.elapsed());
        if i % 50 == 49 {
            ws.send(Message::Binary(b"\x15".to_vec().into())).await?;
        }
    }
    Ok((pct(&mut rtt, 50), pct(&mut rtt, 99)))
}

/// Keys timed from the owner's send to the probe observer's sight of the echo (one at a time).
async fn probe_rtt(owner: &mut Ws, probe: &mut Ws, keys: usize) -> anyhow::Result<(f64, f64)> {
    // Both sockets past everything earlier (floods, prompts) before timing starts.
    owner
        .send(Message::Binary(
            // (No bracketed-paste escapes around the prompt: they hold lowercase letters.)
            b"\x15bind 'set enable-bracketed-paste off'; echo SYNC-$((3+4))\r"
                .to_vec()
                .into(),
        ))
        .await?;
    ws_until(owner, b"SYNC-7\r\nREADY> ")
        .await
        .context("the owner's sync")?;
    ws_until(probe, b"SYNC-7\r\nREADY> ")
        .await
        .context("the probe's sync")?;
    let mut rtt = Vec::new();
    for i in 0..keys {
        let key = [b'a' + (i % 26) as u8];
        let t = Instant::now();
        owner.send(Message::Binary(key.to_vec().into())).await?;
        ws_until(owner, &key).await.context("the owner's echo")?;
        ws_until(probe, &key).await.context("the probe's echo")?;
        rtt.push(t.elapsed());
        if i % 50 == 49 {
            owner.send(Message::Binary(b"\x15".to_vec().into())).await?;
        }
    }
    owner.send(Message::Binary(b"\x15".to_vec().into())).await?;
    Ok((pct(&mut rtt, 50), pct(&mut rtt, 99)))
}

/// Watches a byte stream for a marker that may be split across messages. Only the new bytes
/// (plus the marker's length of overlap) are scanned: the client shares the two cores with the
/// pipeline it measures, so a naive rescan costs the measured side CPU (it was the largest
/// user-space item in the client's profile).
struct MarkerSeen<'m> {
    finder: memchr::memmem::Finder<'m>,
    carry: Vec<u8>,
}

impl<'m> MarkerSeen<'m> {
    fn new(marker: &'m [u8]) -> Self {
        MarkerSeen {
            finder: memchr::memmem::Finder::new(marker),
            carry: Vec::with_capacity(2 * marker.len()),
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> bool {
        let overlap = self.finder.needle().len().saturating_sub(1);
        let head = &bytes[..bytes.len().min(overlap)];
        self.carry.extend_from_slice(head);
        if self.finder.find(&self.carry).is_some() || self.finder.find(bytes).is_some() {
            return true;
        }
        if bytes.len() > head.len() {
            self.carry.clear();
            self.carry
                .extend_from_slice(&bytes[bytes.len() - overlap..]);
        } else {
            // All of `bytes` is already in `carry` (it was the head).
            let keep = self.carry.len().saturating_sub(overlap);
            self.carry.drain(..keep);
        }
        false
    }
}

/// Reads binary frames until `marker` has been seen; returns the bytes read.
async fn ws_until(ws: &mut Ws, marker: &[u8]) -> anyhow::Result<usize> {
    let mut seen = MarkerSeen::new(marker);
    let mut n = 0;
    while let Some(m) = tokio::time::timeout(Duration::from_secs(120), ws.next()).await? {
        if let Message::Binary(b) = m? {
            n += b.len();
            if seen.feed(&b) {
                return Ok(n);
            }
        }
    }
    anyhow::bail!(
        "session closed before {:?}",
        String::from_utf8_lossy(marker)
    )
}

struct Direct {
    channel: russh::Channel<russh::client::Msg>,
    _handle: russh::client::Handle<AcceptAll>,
}

struct AcceptAll;
impl russh::client::Handler for AcceptAll {
    type Error = russh::Error;
    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

async fn direct(port: u16, user: &str) -> anyhow::Result<Direct> {
    direct_at("127.0.0.1", port, user).await
}

async fn direct_at(host: &str, port: u16, user: &str) -> anyhow::Result<Direct> {
    let cfg = Arc::new(russh::client::Config {
        inactivity_timeout: None,
        ..Default::default()
    });
    let mut handle = russh::client::connect(cfg, (host, port), AcceptAll).await?;
    let mut reply = handle
        .authenticate_keyboard_interactive_start(user, None)
        .await?;
    for _ in 0..3 {
        if let russh::client::KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } = reply {
            reply = handle
                .authenticate_keyboard_interactive_respond(
                    prompts.iter().map(|_| PASSWORD.to_string()).collect(),
                )
                .await?;
        } else {
            break;
        }
    }
    let channel = handle.channel_open_session().await?;
    channel
        .request_pty(true, "xterm-256color", 120, 40, 0, 0, &[])
        .await?;
    channel.request_shell(true).await?;
    Ok(Direct {
        channel,
        _handle: handle,
    })
}

async fn direct_until(d: &mut Direct, marker: &[u8]) -> anyhow::Result<usize> {
    let mut seen = MarkerSeen::new(marker);
    let mut n = 0;
    while let Some(m) = tokio::time::timeout(Duration::from_secs(120), d.channel.wait()).await? {
        if let russh::ChannelMsg::Data { data } = m {
            n += data.len();
            if seen.feed(&data) {
                return Ok(n);
            }
        }
    }
    anyhow::bail!("direct session closed")
}

async fn run() -> anyhow::Result<()> {
    let sshd = sshd_server::sshd();
    let user = sshd.user(PASSWORD);
    let g = start_gateway(sshd.port, &user, true).await?;
    println!(
        "Browser SSH sessions vs direct SSH, loopback, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // (a) keystroke echo round trip.
    let mut ws = open_ws(&g).await?;
    ws.send(Message::Binary(b"PS1='READY> '\r".to_vec().into()))
        .await?;
    ws_until(&mut ws, b"READY> ").await?;
    let mut d = direct(sshd.port, &user).await?;
    d.channel.data(&b"PS1='READY> '\r"[..]).await?;
    direct_until(&mut d, b"READY> ").await?;
    let (mut gw, mut dr) = (Vec::new(), Vec::new());
    // SESSIONS_BENCH_PARTS=b (or ab, bc, ...) runs only some parts; all three by default.
    let parts = std::env::var("SESSIONS_BENCH_PARTS").unwrap_or_else(|_| "abc".into());
    let keystrokes = if parts.contains('a') { KEYSTROKES } else { 0 };
    for i in 0..keystrokes {
        let key = [b'a' + (i % 26) as u8];
        let t = Instant::now();
        ws.send(Message::Binary(key.to_vec().into())).await?;
        ws_until(&mut ws, &key).await?;
        gw.push(t.elapsed());
        let t = Instant::now();
        d.channel.data(&key[..]).await?;
        direct_until(&mut d, &key).await?;
        dr.push(t.elapsed());
        if i % 50 == 49 {
            ws.send(Message::Binary(b"\x15".to_vec().into())).await?; // ^U clears the line
            d.channel.data(&b"\x15"[..]).await?;
        }
    }
    if keystrokes > 0 {
        let (g50, g99, d50, d99) = (
            pct(&mut gw, 50),
            pct(&mut gw, 99),
            pct(&mut dr, 50),
            pct(&mut dr, 99),
        );
        println!("(a) keystroke echo, {KEYSTROKES} keys      gateway p50 {g50:>7.0} us  p99 {g99:>7.0} us | direct p50 {d50:>7.0} us  p99 {d99:>7.0} us | added at p99: {:.0} us (target <= 1000 us)", g99 - d99);
    }

    // (b) bulk output.
    if parts.contains('b') {
        // Alternating rounds, so that drift in the machine's load hits both sides alike.
        let (mut gw_rates, mut d_rates) = (Vec::new(), Vec::new());
        // The gateway's own CPU time per MB delivered: less at the mercy of the machine's
        // other load than the throughput ratio.
        let (mut gw_ticks, mut gw_bytes) = (0u64, 0usize);
        for _ in 0..BULK_ROUNDS {
            ws.send(Message::Binary(b"\x15clear\r".to_vec().into()))
                .await?;
            ws_until(&mut ws, b"READY> ").await?;
            let t = Instant::now();
            let (_, ticks0) = proc_stat(g.child.id());
            ws.send(Message::Binary(format!("{BULK_CMD}\r").into_bytes().into()))
                .await?;
            let n = ws_until(&mut ws, BULK_END).await?;
            gw_rates.push(n as f64 / t.elapsed().as_secs_f64() / 1e6);
            gw_ticks += proc_stat(g.child.id()).1 - ticks0;
            gw_bytes += n;
            d.channel.data(&b"\x15clear\r"[..]).await?;
            direct_until(&mut d, b"READY> ").await?;
            let t = Instant::now();
            d.channel.data(format!("{BULK_CMD}\r").as_bytes()).await?;
            let n = direct_until(&mut d, BULK_END).await?;
            d_rates.push(n as f64 / t.elapsed().as_secs_f64() / 1e6);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (gw_mbs, d_mbs) = (mean(&gw_rates), mean(&d_rates));
        let show = |v: &[f64]| {
            v.iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("(b) bulk output, ~200 MB x {BULK_ROUNDS} rounds  gateway {gw_mbs:>7.1} MB/s | direct {d_mbs:>7.1} MB/s | ratio {:.2} (target >= 0.80)  [rounds: gateway {}; direct {}] | gateway CPU {:.1} ms per MB", gw_mbs / d_mbs, show(&gw_rates), show(&d_rates), gw_ticks as f64 * 10.0 / (gw_bytes as f64 / 1e6));
    }
    if parts.contains('r') {
        // Recording overhead: the same bulk output through a gateway that records (the
        // default, `g`) and one that does not, in alternating rounds.
        let plain = start_gateway(sshd.port, &user, false).await?;
        let mut ws2 = open_ws(&plain).await?;
        ws2.send(Message::Binary(b"PS1='READY> '\r".to_vec().into()))
            .await?;
        ws_until(&mut ws2, b"READY> ").await?;
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for _ in 0..BULK_ROUNDS {
            for (socket, rates) in [(&mut ws, &mut on), (&mut ws2, &mut off)] {
                socket
                    .send(Message::Binary(b"\x15clear\r".to_vec().into()))
                    .await?;
                ws_until(socket, b"READY> ").await?;
                let t = Instant::now();
                socket
                    .send(Message::Binary(format!("{BULK_CMD}\r").into_bytes().into()))
                    .await?;
                let n = ws_until(socket, BULK_END).await?;
                rates.push(n as f64 / t.elapsed().as_secs_f64() / 1e6);
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        println!("(r) bulk output, recording on vs off  on {:>7.1} MB/s | off {:>7.1} MB/s | ratio {:.2} (target >= 0.90)", mean(&on), mean(&off), mean(&on) / mean(&off));
        drop(ws2);
    }
    if parts.contains('o') {
        // (o) 50 observers and one that never reads (its socket fills up): the owner's echo,
        // and the gateway's memory while output floods the stuck observer.
        ws.send(Message::Binary(b"\x15clear\r".to_vec().into()))
            .await?;
        ws_until(&mut ws, b"READY> ").await?;
        let mut owner = open_ws(&g).await?;
        let id = ws_session_id(&mut owner).await?;
        owner
            .send(Message::Binary(b"PS1='READY> '\r".to_vec().into()))
            .await?;
        ws_until(&mut owner, b"READY> ").await?;
        // p99 of 1,000 keys (the 10th worst), alone before the observers join and again after
        // they leave: the baseline is the mean of the two, so one noisy baseline run cannot
        // make the observers look cheap or dear.
        let (alone50, alone99) = echo_rtt(&mut owner, OBSERVED_KEYSTROKES).await?;
        let (rss0, _) = proc_stat(g.child.id());
        // 49 observers drained by tasks, and one (the probe) read here: how long after the
        // owner's key it sees the echo, before and after a stuck observer joins.
        let mut readers = Vec::new();
        for _ in 0..OBSERVERS - 1 {
            let mut o = open_ws_at(&g, &format!("/sessions/{id}/watch"), json!({})).await?;
            readers.push(tokio::spawn(async move {
                while let Some(Ok(_)) = o.next().await {}
            }));
        }
        let mut probe = open_ws_at(&g, &format!("/sessions/{id}/watch"), json!({})).await?;
        let (probe50, probe99) = probe_rtt(&mut owner, &mut probe, PROBE_KEYS).await?;
        let stuck = open_ws_at(&g, &format!("/sessions/{id}/watch"), json!({})).await?;
        // Four floods: memory must level off instead of growing with the output (the stuck
        // observer's backlog is bounded; it is resynchronised instead of buffered).
        let mut rss = Vec::new();
        for _ in 0..4 {
            let flood =
                b"\x15head -c 30000000 /dev/zero | base64 -w 100; echo FLOOD-$((1+1))-DONE\r";
            owner.send(Message::Binary(flood.to_vec().into())).await?;
            ws_until(&mut owner, b"FLOOD-2-DONE").await?;
            rss.push(proc_stat(g.child.id()).0);
        }
        let (with50, with99) = echo_rtt(&mut owner, OBSERVED_KEYSTROKES).await?;
        let (stuck50, stuck99) = probe_rtt(&mut owner, &mut probe, PROBE_KEYS).await?;
        println!("(o) a watching observer sees the owner's key after: p50 {:.1} ms p99 {:.1} ms without the stuck observer | p50 {:.1} ms p99 {:.1} ms with it, after 160 MB it never read (target: not delayed; observers gather output 8-24 ms by design)", probe50 / 1000.0, probe99 / 1000.0, stuck50 / 1000.0, stuck99 / 1000.0);
        drop(probe);
        drop(stuck);
        for r in readers {
            r.abort();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (after50, after99) = echo_rtt(&mut owner, OBSERVED_KEYSTROKES).await?;
        let base99 = (alone99 + after99) / 2.0;
        println!("(o) {OBSERVERS} observers + 1 stuck     owner echo p50 {with50:>6.0} us p99 {with99:>6.0} us | alone (before, after) p50 {alone50:.0}, {after50:.0} us p99 {alone99:.0}, {after99:.0} us | p99 added {:.0} us (target <= 500 us) | gateway RSS growth after each 40 MB the stuck observer never read: {} MiB", with99 - base99, rss.iter().map(|r| format!("+{:.1}", r.saturating_sub(rss0) as f64 / 1024.0)).collect::<Vec<_>>().join(", "));
        drop(owner);
    }
    // End the bulk session now (not after the 60 s re-attach grace, which would fall inside
    // (c)), and let the gateway finish indexing its recording before (c) measures idle cost.
    ws.send(Message::Binary(b"\x15exit\r".to_vec().into()))
        .await?;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await {}
    drop(ws);
    let settled = wait_quiet(g.child.id(), Duration::from_secs(300)).await;
    if parts.contains('b') {
        println!("    after (b): the gateway was busy {:.1} s after the bulk session ended (verifying and indexing its recording)", settled.as_secs_f64());
    }
    if parts.contains('h') {
        hops(&g, &user).await?;
    }
    if !parts.contains('c') {
        return Ok(());
    }

    // (c) idle sessions.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = g.child.id();
    let (rss0, _) = proc_stat(pid);
    let mut idle = Vec::new();
    for _ in 0..IDLE_SESSIONS {
        let mut ws = open_ws(&g).await?;
        ws_until(&mut ws, b"$ ").await?;
        idle.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss1, ticks0) = proc_stat(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_, ticks1) = proc_stat(pid);
    let per_session_kib = (rss1.saturating_sub(rss0)) as f64 / IDLE_SESSIONS as f64;
    let cpu_pct = (ticks1 - ticks0) as f64 / 100.0 / 10.0 * 100.0;
    println!("(c) {IDLE_SESSIONS} idle sessions             gateway RSS +{:.1} MiB = {per_session_kib:.0} KiB/session (target <= 256 KiB) | idle CPU {cpu_pct:.2}% of one core", (rss1 - rss0) as f64 / 1024.0);
    drop(idle);
    Ok(())
}

/// Waits until the process has used less than 3% of a core for two seconds in a row (or
/// `limit` has passed); returns how long that took.
async fn wait_quiet(pid: u32, limit: Duration) -> Duration {
    let t = Instant::now();
    let mut quiet = 0;
    while quiet < 2 && t.elapsed() < limit {
        let (_, t0) = proc_stat(pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (_, t1) = proc_stat(pid);
        quiet = if t1 - t0 < 3 { quiet + 1 } else { 0 };
    }
    t.elapsed()
}

/// Opens a session with `account` and waits until it is connected and shows a prompt;
/// returns how long that took.
async fn set_up(g: &Gateway, account: &str) -> anyhow::Result<(Duration, Ws)> {
    let t = Instant::now();
    let mut ws = open_ws_at(
        g,
        "/sessions",
        json!({ "account_id": account, "cols": 120, "rows": 40 }),
    )
    .await?;
    ws_until(&mut ws, b"$ ").await?;
    Ok((t.elapsed(), ws))
}

/// (h) Hop chains in network namespaces: node k is reachable only through nodes 1..k-1.
async fn hops(g: &Gateway, user: &str) -> anyhow::Result<()> {
    const ROUNDS: usize = 10;
    let chain = netns_chain::Chain::up(4);
    let post = |path: String, body: Value| {
        g.http
            .post(format!("https://127.0.0.1:{}/api/v1{path}", g.port))
            .header("x-csrf-token", &g.csrf)
            .json(&body)
            .send()
    };
    let put = |path: String, body: Value| {
        g.http
            .put(format!("https://127.0.0.1:{}/api/v1{path}", g.port))
            .header("x-csrf-token", &g.csrf)
            .json(&body)
            .send()
    };
    // Node k is a resource; landing server DC-k runs on node k; node k+1 is reached through
    // DC-k. A session to node k+1 therefore crosses k landing servers.
    let (mut accounts, mut landings) = (Vec::new(), Vec::new());
    for (k, node) in chain.nodes.iter().enumerate() {
        let r: Value = post("/resources".into(), json!({ "name": format!("node{}", k + 1), "host": node.addr, "ports": { "ssh": 22 }, "policy_id": "policy-low" })).await?.json().await?;
        let rid = r["id"].as_str().unwrap_or_default().to_string();
        let a: Value = post(
            format!("/resources/{rid}/accounts"),
            json!({ "username": user, "secret": PASSWORD }),
        )
        .await?
        .json()
        .await?;
        let aid = a["id"].as_str().unwrap_or_default().to_string();
        if let Some(prev) = landings.last() {
            put(
                format!("/resources/{rid}/landing-server"),
                json!({ "landing_server_id": prev }),
            )
            .await?;
        }
        if k < 3 {
            let l: Value = post("/landing-servers".into(), json!({ "name": format!("DC-{}", k + 1), "primary_resource_id": rid, "account_id": aid })).await?.json().await?;
            landings.push(l["id"].as_str().unwrap_or_default().to_string());
        }
        accounts.push(aid);
    }
    // One SSH login (handshake + authentication + shell) from here to node 1: the yardstick.
    let mut login = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let mut d = direct_at(&chain.nodes[0].addr, 22, user).await?;
        direct_until(&mut d, b"$ ").await?;
        login.push(t.elapsed());
    }
    let one_login = pct(&mut login, 50);
    println!("(h) hop chains, network namespaces; one direct SSH login (handshake, auth, shell) p50 {:>7.1} ms", one_login / 1000.0);
    let mut setup_p50 = Vec::new();
    for (hops, account) in accounts.iter().enumerate() {
        let mut times = Vec::new();
        for _ in 0..ROUNDS {
            let (t, ws) = set_up(g, account).await?;
            times.push(t);
            drop(ws);
        }
        let p50 = pct(&mut times, 50);
        let added = setup_p50.first().map(|base: &f64| p50 - base);
        setup_p50.push(p50);
        match added {
            None => println!("    set-up, {hops} landing servers: p50 {:>7.1} ms", p50 / 1000.0),
            Some(a) => println!("    set-up, {hops} landing servers: p50 {:>7.1} ms | added per hop {:>6.1} ms (target <= one SSH login, {:.1} ms)", p50 / 1000.0, a / hops as f64 / 1000.0, one_login / 1000.0),
        }
    }
    // Echo through 2 landing servers (node 3) vs the gateway straight to node 1.
    let (_, mut direct_ws) = set_up(g, &accounts[0]).await?;
    let (_, mut hop_ws) = set_up(g, &accounts[2]).await?;
    let (_, d99) = echo_rtt(&mut direct_ws, KEYSTROKES).await?;
    let (_, h99) = echo_rtt(&mut hop_ws, KEYSTROKES).await?;
    println!("    keystroke echo p99: through 2 landing servers {h99:>7.0} us | no landing server {d99:>7.0} us | added {:.0} us = {:.0} us per hop (target <= 500 us per hop)", h99 - d99, (h99 - d99) / 2.0);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
