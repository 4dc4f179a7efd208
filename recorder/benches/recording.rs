//! Benchmark for the recording format (issue 4), printed side by side with the peer format:
//!   - bytes per hour of a typical interactive terminal session, ours vs the same session as a
//!     gzipped asciicast v2 file (what asciinema would store);
//!   - seek latency in a one-hour recording (decrypt from the last keyframe, replay to t);
//!   - write cost (events -> sealed chunks) per hour of session;
//!   - search over 1,000 one-hour recordings, as the server searches: a Bloom filter of keyed
//!     word hashes per recording (held in memory), then decrypting and scanning the sealed
//!     lines of the candidates only.
//!
//! The session is synthetic but shaped like real work: commands typed one key at a time with
//! echo, short and long outputs, a full-screen program now and then, idle gaps. It is written
//! exactly as the server writes (keyframes every 10 s of activity or 256 KiB, a flush every
//! second). Run: `cargo bench -p recorder --bench recording`. Prints figures; asserts nothing.

use std::io::Write;
use std::num::NonZeroU16;
use std::time::Instant;

use recorder::event::{RecordedEvent, Timed};
use recorder::format::RecordingHeader;
use recorder::{Recording, RecordingKey, RecordingWriter};

const COLS: u16 = 120;
const ROWS: u16 = 40;
const HOUR_MS: u64 = 3_600_000;

/// A small deterministic generator (xorshift), so every run writes the same session.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const COMMANDS: &[&str] = &[
    "ls -la /var/log",
    "systemctl status nginx",
    "tail -n 30 /var/log/syslog",
    "df -h",
    "ps aux --sort=-%cpu | head",
    "grep -r ERROR /var/log/app/ | tail",
    "cat /etc/nginx/nginx.conf",
    "journalctl -u ssh -n 20",
    "free -m",
    "uptime",
    "ip addr show",
    "sudo systemctl restart app",
    "vi /etc/hosts",
    "netstat -tlnp",
    "du -sh /srv/*",
];

fn words(rng: &mut Rng) -> String {
    const W: &[&str] = &[
        "nginx",
        "worker",
        "process",
        "started",
        "pid",
        "connection",
        "timeout",
        "200",
        "GET",
        "/api/v1/items",
        "ok",
        "kernel:",
        "eth0",
        "link",
        "up",
        "disk",
        "usage",
        "87%",
        "user",
        "session",
        "opened",
        "for",
        "root",
        "by",
        "(uid=0)",
    ];
    (0..6 + rng.below(10))
        .map(|_| W[rng.below(W.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// One hour of events, in order.
fn session() -> Vec<Timed> {
    session_seeded(0x9e3779b97f4a7c15)
}

fn session_seeded(seed: u64) -> Vec<Timed> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let mut t = 500u64;
    let prompt = "\x1b[01;32malice@db1\x1b[00m:\x1b[01;34m~\x1b[00m$ ";
    out.push(Timed {
        t_ms: 0,
        event: RecordedEvent::Output(prompt.as_bytes().to_vec()),
    });
    while t < HOUR_MS {
        let cmd = COMMANDS[rng.below(COMMANDS.len() as u64) as usize];
        for c in cmd.bytes() {
            t += 80 + rng.below(180);
            out.push(Timed {
                t_ms: t,
                event: RecordedEvent::Input {
                    by: "alice".into(),
                    data: vec![c],
                },
            });
            out.push(Timed {
                t_ms: t + 2,
                event: RecordedEvent::Output(vec![c]),
            });
        }
        t += 300;
        out.push(Timed {
            t_ms: t,
            event: RecordedEvent::Input {
                by: "alice".into(),
                data: b"\r".to_vec(),
            },
        });
        if cmd.starts_with("vi ") {
            // A full-screen editor: alternate screen, a full paint, a few edits, quit.
            let mut paint = b"\x1b[?1049h\x1b[H\x1b[2J".to_vec();
            for r in 0..ROWS - 1 {
                paint.extend_from_slice(format!("\x1b[{};1H{}", r + 1, words(&mut rng)).as_bytes());
            }
            out.push(Timed {
                t_ms: t + 40,
                event: RecordedEvent::Output(paint),
            });
            for _ in 0..20 {
                t += 400 + rng.below(1500);
                out.push(Timed {
                    t_ms: t,
                    event: RecordedEvent::Input {
                        by: "alice".into(),
                        data: b"j".to_vec(),
                    },
                });
                out.push(Timed {
                    t_ms: t + 3,
                    event: RecordedEvent::Output(
                        format!("\x1b[{};1H", 1 + rng.below(ROWS as u64 - 1)).into_bytes(),
                    ),
                });
            }
            out.push(Timed {
                t_ms: t + 500,
                event: RecordedEvent::Output(b"\x1b[?1049l".to_vec()),
            });
            t += 500;
        } else {
            let lines = if rng.below(5) == 0 {
                20 + rng.below(60)
            } else {
                1 + rng.below(12)
            };
            let mut text = Vec::new();
            for _ in 0..lines {
                text.extend_from_slice(words(&mut rng).as_bytes());
                text.extend_from_slice(b"\r\n");
            }
            t += 20 + rng.below(200);
            out.push(Timed {
                t_ms: t,
                event: RecordedEvent::Output(text),
            });
        }
        out.push(Timed {
            t_ms: t + 5,
            event: RecordedEvent::Output(prompt.as_bytes().to_vec()),
        });
        // Reading the output, thinking: 3-40 s.
        t += 3_000 + rng.below(37_000);
    }
    out
}

fn nz(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

fn snapshot(p: &vt100::Parser) -> Vec<u8> {
    let s = p.screen();
    let mut d = Vec::new();
    if s.alternate_screen() {
        d.extend_from_slice(b"\x1b[?1049h");
    }
    d.extend_from_slice(b"\x1b[H\x1b[2J");
    d.extend_from_slice(s.state_formatted().as_bytes());
    d
}

fn bench_header(input_recorded: bool) -> RecordingHeader {
    RecordingHeader {
        format_version: recorder::FORMAT_VERSION,
        recording_id: "bench".into(),
        session_id: "bench".into(),
        protocol: "ssh".into(),
        started_at_ms: 0,
        cols: COLS,
        rows: ROWS,
        user: "alice".into(),
        account: "root".into(),
        resource: "db1".into(),
        client_addr: "127.0.0.1".into(),
        input_recorded,
        // As long as a vault-sealed key.
        path: Vec::new(),
        wrapped_key: "x".repeat(120),
        signing_key: None,
    }
}

/// Bytes of tails written (each replaces the one before; none is left once the recording
/// closes): the price of crash safety, in disk writes rather than in the file.
static TAIL_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Writes the session as the server does; returns the file and the time spent.
fn write(events: &[Timed], key: [u8; 32]) -> (Vec<u8>, f64) {
    write_with(events, key, true)
}

/// `keyframes: false` writes only the first keyframe (for the size breakdown).
fn write_with(events: &[Timed], key: [u8; 32], keyframes: bool) -> (Vec<u8>, f64) {
    let header = bench_header(true);
    let started = Instant::now();
    let (mut w, mut file) = RecordingWriter::new(
        &header,
        RecordingKey::from_slice(&key).unwrap_or_else(|_| RecordingKey::generate()),
    );
    let mut screen = vt100::Parser::new(nz(ROWS), nz(COLS), 0);
    let mut last_flush = 0u64;
    // The server's tap: a keyframe first, then whenever one is due when an event arrives.
    let (mut last_kf, mut bytes_since) = (0u64, 0u64);
    let push = |w: &mut RecordingWriter, file: &mut Vec<u8>, e: Timed| {
        if let Ok(Some(b)) = w.push(e) {
            file.extend(b);
        }
    };
    push(
        &mut w,
        &mut file,
        Timed {
            t_ms: 0,
            event: RecordedEvent::Keyframe {
                cols: COLS,
                rows: ROWS,
                data: snapshot(&screen),
            },
        },
    );
    for e in events {
        // The server's tick, every second: sealed chunks are appended; the open chunk's
        // tail replaces the last one (counted, not kept: it is not part of the final file).
        while last_flush + 1000 <= e.t_ms {
            last_flush += 1000;
            if let Ok(tick) = w.tick(last_flush) {
                if let Some(b) = tick.sealed {
                    file.extend(b);
                }
                if let Some(t) = tick.tail {
                    TAIL_BYTES.fetch_add(t.len(), std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        if let RecordedEvent::Output(b) = &e.event {
            screen.process(b);
            bytes_since += b.len() as u64;
        }
        push(&mut w, &mut file, e.clone());
        if keyframes && (e.t_ms - last_kf >= 10_000 || bytes_since >= 256 * 1024) {
            push(
                &mut w,
                &mut file,
                Timed {
                    t_ms: e.t_ms,
                    event: RecordedEvent::Keyframe {
                        cols: COLS,
                        rows: ROWS,
                        data: snapshot(&screen),
                    },
                },
            );
            last_kf = e.t_ms;
            bytes_since = 0;
        }
    }
    if let Ok((Some(b), _)) = w.finish(0, "bench") {
        file.extend(b);
    }
    (file, started.elapsed().as_secs_f64())
}

fn gzip(b: &[u8]) -> usize {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(b);
    enc.finish().map(|v| v.len()).unwrap_or(0)
}

fn main() {
    let events = session();
    let key = [42u8; 32];
    let (file, write_s) = write(&events, key);
    let tail_bytes = TAIL_BYTES.load(std::sync::atomic::Ordering::Relaxed);
    let header = bench_header(false);
    let cast = recorder::export::asciicast(&header, &events);
    let cast_gz = gzip(cast.as_bytes());
    let output_bytes: usize = events
        .iter()
        .map(|e| {
            if let RecordedEvent::Output(b) = &e.event {
                b.len()
            } else {
                0
            }
        })
        .sum();
    let rec = match Recording::parse(file.clone()) {
        Ok(r) => r,
        Err(e) => {
            println!("the benchmark's own recording does not parse: {e}");
            return;
        }
    };
    let keyframes = RecordingKey::from_slice(&key)
        .and_then(|k| rec.events(&k))
        .map(|ev| {
            ev.iter()
                .filter(|e| matches!(e.event, RecordedEvent::Keyframe { .. }))
                .count()
        })
        .unwrap_or(0);
    println!("Recording format benchmark: a synthetic 1-hour interactive session ({} events, {:.0} KiB of output, {} keystrokes)",
        events.len(), output_bytes as f64 / 1024.0,
        events.iter().filter(|e| matches!(e.event, RecordedEvent::Input { .. })).count());
    println!("bytes per hour      portcullis {:>8.0} KiB (with keystrokes, {} chunks, {} keyframes) | asciicast v2 gzipped {:>8.0} KiB (output only) | ratio {:.2} (target <= 1.00)",
        file.len() as f64 / 1024.0, rec.chunks.len(), keyframes, cast_gz as f64 / 1024.0, file.len() as f64 / cast_gz as f64);
    // The same asciicast with the keystrokes as "i" events (`asciinema rec --stdin`): what
    // the peer stores for the same content as ours, which records keystrokes by default.
    let mut lines: Vec<(f64, String)> = cast
        .lines()
        .skip(1)
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some((v[0].as_f64()?, l.to_string()))
        })
        .collect();
    for e in &events {
        if let RecordedEvent::Input { data, .. } = &e.event {
            let t = e.t_ms as f64 / 1000.0;
            lines.push((
                t,
                serde_json::json!([t, "i", String::from_utf8_lossy(data)]).to_string(),
            ));
        }
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    let cast_in = std::iter::once(cast.lines().next().unwrap_or("").to_string())
        .chain(lines.into_iter().map(|(_, l)| l))
        .collect::<Vec<_>>()
        .join("\n");
    let cast_in_gz = gzip(cast_in.as_bytes());
    println!("  same content      asciicast v2 with keystrokes (--stdin) gzipped {:>8.0} KiB | ratio {:.2}",
        cast_in_gz as f64 / 1024.0, file.len() as f64 / cast_in_gz as f64);
    // Other hours of the same kind (other seeds): how far the one figure above generalises.
    let mut ratios: Vec<f64> = (1..=8u64)
        .map(|seed| {
            let ev = session_seeded(seed);
            let gz = gzip(recorder::export::asciicast(&header, &ev).as_bytes());
            write(&ev, key).0.len() as f64 / gz as f64
        })
        .collect();
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!("  8 other hours     ratio min {:.3}, median {:.3}, max {:.3} (same kind of session, other random seeds)",
        ratios[0], ratios[4], ratios[7]);
    println!("  crash safety      {} KiB of tails written over the hour (each replaces the last; none is left in the closed recording)",
        tail_bytes / 1024);
    let framing = rec.chunks.len() * (recorder::format::CHUNK_FIXED + 16);
    let without_keyframes = write_with(&events, key, false).0.len();
    let no_input: Vec<Timed> = events
        .iter()
        .filter(|e| !matches!(e.event, RecordedEvent::Input { .. }))
        .cloned()
        .collect();
    let without_input = write(&no_input, key).0.len();
    println!("  of which          chunk framing {:.0} KiB (header + tag per chunk), keyframes {:.0} KiB, keystrokes {:.0} KiB, the rest (output, compression) {:.0} KiB",
        framing as f64 / 1024.0, (file.len() - without_keyframes) as f64 / 1024.0, (file.len() as f64 - without_input as f64) / 1024.0,
        (without_keyframes as f64 - framing as f64 - (file.len() as f64 - without_input as f64)) / 1024.0);
    println!(
        "write cost          {:.0} ms of CPU per hour of session",
        write_s * 1000.0
    );

    let Ok(k) = RecordingKey::from_slice(&key) else {
        return;
    };
    let mut rng = Rng(7);
    let mut lat = Vec::new();
    for _ in 0..300 {
        let t = rng.below(HOUR_MS);
        let started = Instant::now();
        let parsed = Recording::parse(file.clone())
            .and_then(|r| r.screen_at(&k, t).map(|s| s.screen().contents().len()));
        lat.push(started.elapsed().as_secs_f64() * 1000.0);
        if parsed.is_err() {
            println!("seek failed at {t} ms");
            return;
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    println!("seek (parse file + decrypt from keyframe + replay to t), 300 random points in 1 h: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target <= 200 ms)",
        pct(50), pct(99), lat[lat.len() - 1]);
    search_bench();
}

/// The server's search path without the database: the filters are cached in memory by the
/// server; the sealed lines of each candidate are one row read plus what is timed here.
fn search_bench() {
    use aes_gcm::aead::{Aead, KeyInit};
    use recorder::search::{lines, matching, term_hash, Bloom, Line};
    const N: usize = 1000;
    let index_key = [9u8; 32];
    let cipher = match aes_gcm::Aes256Gcm::new_from_slice(&[5u8; 32]) {
        Ok(c) => c,
        Err(_) => return,
    };
    let nonce = aes_gcm::Nonce::from_slice(&[0u8; 12]);
    let build = Instant::now();
    let mut index: Vec<(Bloom, Vec<u8>)> = Vec::with_capacity(N);
    let mut total_lines = 0usize;
    for i in 0..N {
        let mut events = session_seeded(0x1234_5678 + i as u64 * 7919);
        if i == 737 {
            events.push(Timed {
                t_ms: 1_234_567,
                event: RecordedEvent::Output(
                    b"deploy token rotated by change CHG-4711-XYZ\r\n".to_vec(),
                ),
            });
        }
        let l = lines(&events);
        total_lines += l.len();
        let bloom = Bloom::build(&index_key, &l);
        let packed = zstd::bulk::compress(&serde_json::to_vec(&l).unwrap_or_default(), 3)
            .unwrap_or_default();
        let sealed = cipher.encrypt(nonce, packed.as_slice()).unwrap_or_default();
        index.push((bloom, sealed));
    }
    let build_s = build.elapsed().as_secs_f64();
    let query = |q: &str| -> (usize, usize, f64) {
        let started = Instant::now();
        let hashes: Vec<[u8; 32]> = recorder::search::words(q)
            .iter()
            .map(|w| term_hash(&index_key, w))
            .collect();
        let (mut candidates, mut hits) = (0, 0);
        for (bloom, sealed) in &index {
            if !bloom.may_contain_all(&hashes) {
                continue;
            }
            candidates += 1;
            let Ok(packed) = cipher.decrypt(nonce, sealed.as_slice()) else {
                continue;
            };
            let Ok(json) = zstd::bulk::decompress(&packed, 512 * 1024 * 1024) else {
                continue;
            };
            let Ok(l) = serde_json::from_slice::<Vec<Line>>(&json) else {
                continue;
            };
            hits += matching(&l, q).len().min(20);
        }
        (candidates, hits, started.elapsed().as_secs_f64() * 1000.0)
    };
    println!("search index       {N} one-hour recordings, {} lines in all, built in {:.1} s ({:.0} KiB of sealed lines per recording, 16 KiB filter)",
        total_lines, build_s, index.iter().map(|(_, s)| s.len()).sum::<usize>() as f64 / N as f64 / 1024.0);
    for q in ["CHG-4711-XYZ", "connection timeout", "nginx"] {
        let (c, h, ms) = query(q);
        println!("search {q:<22} {ms:>8.1} ms over {N} recordings ({c} candidates decrypted, {h} hits) (target <= 2000 ms)");
    }
}
