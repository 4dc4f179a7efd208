//! The recording format end to end, on bytes: write, verify, tamper, truncate, seek, export.

use recorder::event::{RecordedEvent, Timed};
use recorder::format::RecordingHeader;
use recorder::reader::apply;
use recorder::{Recording, RecordingKey, RecordingWriter, SigningKey};

fn header() -> RecordingHeader {
    RecordingHeader {
        format_version: recorder::FORMAT_VERSION,
        recording_id: "rec-1".into(),
        session_id: "ses-1".into(),
        protocol: "ssh".into(),
        started_at_ms: 1_700_000_000_000,
        cols: 80,
        rows: 24,
        user: "alice".into(),
        account: "root".into(),
        resource: "db1".into(),
        client_addr: "127.0.0.1".into(),
        input_recorded: true,
        path: Vec::new(),
        wrapped_key: "sealed".into(),
        signing_key: None,
    }
}

/// Pushes `e` as the server does: kept in `written` (what the recording must give back), and
/// any chunk it seals appended to `file`.
fn push_written(w: &mut RecordingWriter, file: &mut Vec<u8>, written: &mut Vec<Timed>, e: Timed) {
    written.push(e.clone());
    if let Some(b) = w.push(e).unwrap() {
        file.extend(b);
    }
}

/// A 60-second session: a line of output every 500 ms, a flush every second (as the server
/// does), keyframes when the writer asks for them. Returns the file, the manifest and the
/// events as written.
fn record(
    key_bytes: [u8; 32],
    signer: &SigningKey,
) -> (Vec<u8>, recorder::SignedManifest, Vec<Timed>) {
    record_with_anchors(key_bytes, signer, u64::MAX)
}

/// The same, with the compression stream restarting every `anchor_ms`.
fn record_with_anchors(
    key_bytes: [u8; 32],
    signer: &SigningKey,
    anchor_ms: u64,
) -> (Vec<u8>, recorder::SignedManifest, Vec<Timed>) {
    let key = RecordingKey::from_slice(&key_bytes).unwrap();
    let (w, mut file) = RecordingWriter::new(&header(), key);
    let mut w = w.anchor_every(anchor_ms, u64::MAX);
    let mut screen = blank_screen();
    let mut written = Vec::new();
    for i in 0..120u64 {
        let t = i * 500;
        if w.needs_keyframe(t) {
            let data = [
                b"\x1b[H\x1b[2J".as_slice(),
                screen.screen().contents_formatted().as_bytes(),
            ]
            .concat();
            let e = Timed {
                t_ms: t,
                event: RecordedEvent::Keyframe {
                    cols: 80,
                    rows: 24,
                    data,
                },
            };
            push_written(&mut w, &mut file, &mut written, e);
        }
        let out = format!("line {i} at {t} ms\r\n").into_bytes();
        screen.process(&out);
        let e = Timed {
            t_ms: t,
            event: RecordedEvent::Output(out),
        };
        push_written(&mut w, &mut file, &mut written, e);
        if i % 2 == 1 {
            if let Some(b) = w.flush().unwrap() {
                file.extend(b);
            }
        }
    }
    let (last, manifest) = w.finish(header().started_at_ms + 60_000, "exited").unwrap();
    if let Some(b) = last {
        file.extend(b);
    }
    (file, signer.sign(manifest), written)
}

const K: [u8; 32] = [7u8; 32];

fn key() -> RecordingKey {
    RecordingKey::from_slice(&K).unwrap()
}

#[test]
fn a_closed_recording_verifies_and_replays_exactly() {
    let signer = SigningKey::generate();
    let (file, manifest, written) = record(K, &signer);
    let rec = Recording::parse(file).unwrap();
    let report = rec.verify(
        Some(&key()),
        Some(&manifest),
        Some(&signer.public_key_b64()),
    );
    assert!(report.ok() && report.complete, "{report:?}");
    assert_eq!(rec.events(&key()).unwrap(), written);
    // Keyframes at least every 10 s: seeking never decrypts more than ~10 s of events.
    let index = rec.keyframe_index();
    assert!(index.len() >= 6, "{index:?}");
    assert!(
        index.windows(2).all(|w| w[1].0 - w[0].0 <= 10_000),
        "{index:?}"
    );
    // The wrong key decrypts nothing.
    let wrong = RecordingKey::from_slice(&[8u8; 32]).unwrap();
    let bad = rec.verify(Some(&wrong), Some(&manifest), None);
    assert_eq!(bad.bad_chunk, Some(0), "{bad:?}");
}

/// An 80x24 terminal, as the header says.
fn blank_screen() -> vt100::Parser {
    vt100::Parser::new(
        std::num::NonZeroU16::new(24).unwrap(),
        std::num::NonZeroU16::new(80).unwrap(),
        0,
    )
}

/// The 80x24 screen at `t_ms` from every event but the keyframes: what a seek must show.
fn replayed_without_keyframes(written: &[Timed], t_ms: u64) -> vt100::Parser {
    let mut reference = blank_screen();
    for e in written.iter().filter(|e| e.t_ms <= t_ms) {
        if !matches!(e.event, RecordedEvent::Keyframe { .. }) {
            apply(&mut reference, &e.event);
        }
    }
    reference
}

#[test]
fn seeking_lands_on_the_screen_of_that_moment() {
    let signer = SigningKey::generate();
    let (file, _, written) = record(K, &signer);
    let rec = Recording::parse(file).unwrap();
    for t in [0u64, 4_750, 10_000, 33_300, 59_500] {
        let reference = replayed_without_keyframes(&written, t);
        let seen = rec.screen_at(&key(), t).unwrap();
        assert_eq!(
            seen.screen().contents(),
            reference.screen().contents(),
            "at {t} ms"
        );
        assert!(seen
            .screen()
            .contents()
            .contains(&format!("at {} ms", t - t % 500)));
    }
}

/// Splits a file into its header and chunk byte ranges.
fn pieces(file: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let rec = Recording::parse(file.to_vec()).unwrap();
    let first = rec.chunks[0].offset as usize;
    let chunks = rec
        .chunks
        .iter()
        .map(|c| file[c.offset as usize..c.offset as usize + c.len].to_vec())
        .collect();
    (file[..first].to_vec(), chunks)
}

#[test]
fn flipped_dropped_and_swapped_chunks_are_each_named() {
    let signer = SigningKey::generate();
    let (file, manifest, _) = record(K, &signer);
    let (head, chunks) = pieces(&file);
    assert!(chunks.len() > 10);
    let join = |cs: &[Vec<u8>]| [head.clone(), cs.concat()].concat();
    let check = |bytes: Vec<u8>| {
        Recording::parse(bytes)
            .unwrap()
            .verify(Some(&key()), Some(&manifest), None)
    };

    let mut flipped = chunks.clone();
    let last = flipped[4].len() - 3;
    flipped[4][last] ^= 0x01;
    let r = check(join(&flipped));
    assert_eq!(r.bad_chunk, Some(4), "{r:?}");
    // Without the key the chain still catches it, at the next chunk, naming both.
    let r = Recording::parse(join(&flipped))
        .unwrap()
        .verify(None, Some(&manifest), None);
    assert_eq!(r.bad_chunk, Some(5), "{r:?}");
    assert!(r.problem.unwrap().contains("chunk 4"));

    let mut dropped = chunks.clone();
    dropped.remove(6);
    let r = check(join(&dropped));
    assert_eq!(r.bad_chunk, Some(6), "{r:?}");

    let mut swapped = chunks.clone();
    swapped.swap(2, 3);
    let r = check(join(&swapped));
    assert_eq!(r.bad_chunk, Some(2), "{r:?}");

    // The last chunk removed: the chain is fine, the signed manifest says it is short.
    let r = check(join(&chunks[..chunks.len() - 1]));
    assert!(
        !r.ok() && r.problem.as_deref().unwrap_or("").contains("manifest"),
        "{r:?}"
    );

    // An altered manifest, or one signed by another key.
    let mut forged = manifest.clone();
    forged.manifest.duration_ms += 1;
    let r = Recording::parse(file.clone())
        .unwrap()
        .verify(Some(&key()), Some(&forged), None);
    assert!(r.problem.unwrap().contains("signature"));
    let other = SigningKey::generate();
    let r = Recording::parse(file.clone()).unwrap().verify(
        None,
        Some(&manifest),
        Some(&other.public_key_b64()),
    );
    assert!(r.problem.unwrap().contains("other than"));
}

#[test]
fn a_recording_cut_short_verifies_up_to_its_last_whole_chunk() {
    let signer = SigningKey::generate();
    let (file, _, _) = record(K, &signer);
    let (_, chunks) = pieces(&file);
    let cut = file.len() - chunks.last().unwrap().len() / 2;
    let rec = Recording::parse(file[..cut].to_vec()).unwrap();
    let r = rec.verify(Some(&key()), None, None);
    assert!(r.ok() && !r.complete, "{r:?}");
    assert_eq!(r.chunks, chunks.len() - 1);
    assert!(rec.trailing_bytes > 0);
    assert!(rec.events(&key()).unwrap().len() > 100);
}

#[test]
fn asciicast_export_is_valid_and_keeps_split_characters_whole() {
    let mut h = header();
    h.cols = 100;
    let events = vec![
        Timed {
            t_ms: 0,
            event: RecordedEvent::Keyframe {
                cols: 100,
                rows: 24,
                data: b"\x1b[H\x1b[2J$ ".to_vec(),
            },
        },
        Timed {
            t_ms: 1500,
            event: RecordedEvent::Output("caf\u{e9}".as_bytes()[..4].to_vec()),
        },
        Timed {
            t_ms: 1600,
            event: RecordedEvent::Output("caf\u{e9}".as_bytes()[4..].to_vec()),
        },
        Timed {
            t_ms: 1700,
            event: RecordedEvent::Input {
                by: "alice".into(),
                data: b"secret".to_vec(),
            },
        },
        Timed {
            t_ms: 2000,
            event: RecordedEvent::Resize { cols: 90, rows: 30 },
        },
    ];
    let cast = recorder::export::asciicast(&h, &events);
    let lines: Vec<serde_json::Value> = cast
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["version"], 2);
    assert_eq!(lines[0]["width"], 100);
    assert_eq!(
        lines[1],
        serde_json::json!([0.0, "o", "\u{1b}[H\u{1b}[2J$ "])
    );
    assert_eq!(lines[2], serde_json::json!([1.5, "o", "caf"]));
    assert_eq!(lines[3], serde_json::json!([1.6, "o", "\u{e9}"]));
    assert_eq!(lines[4], serde_json::json!([2.0, "r", "90x30"]));
    assert!(!cast.contains("secret"), "keystrokes are not exported");
}

#[test]
fn typed_commands_are_listed_with_edits_applied_and_secrets_hidden() {
    let input = |t: u64, d: &[u8]| Timed {
        t_ms: t,
        event: RecordedEvent::Input {
            by: "a".into(),
            data: d.to_vec(),
        },
    };
    let events = vec![
        input(1000, b"l"),
        input(1100, b"sx"),
        input(1200, b"\x7f -l\r"),
        input(3000, b"sudo id\x1b[D\r"),
        Timed {
            t_ms: 3500,
            event: RecordedEvent::RedactedInput {
                by: "a".into(),
                len: 3,
                submitted: false,
                hidden: None,
            },
        },
        Timed {
            t_ms: 3600,
            event: RecordedEvent::RedactedInput {
                by: "a".into(),
                len: 5,
                submitted: true,
                hidden: None,
            },
        },
        input(5000, b"   \r"),
        input(6000, b"echo caf\xc3\xa9\r"),
    ];
    let cmds = recorder::export::typed_commands(&events);
    assert_eq!(
        cmds,
        vec![
            (1000, "ls -l".to_string()),
            (3000, "sudo id".to_string()),
            (3500, "[secret, 7 characters]".to_string()),
            (6000, "echo café".to_string()),
        ]
    );
}

#[test]
fn streams_restart_at_anchors_and_every_part_still_seeks_and_verifies() {
    let signer = SigningKey::generate();
    let (file, manifest, written) = record_with_anchors(K, &signer, 15_000);
    let rec = Recording::parse(file.clone()).unwrap();
    let anchors: Vec<usize> = rec
        .chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.anchor)
        .map(|(i, _)| i)
        .collect();
    assert!(anchors.len() >= 3, "{anchors:?}");
    assert!(
        anchors.iter().all(|&i| rec.chunks[i].keyframe),
        "anchors are keyframes"
    );
    assert!(rec.verify(Some(&key()), Some(&manifest), None).ok());
    assert_eq!(rec.events(&key()).unwrap(), written);
    for t in [0u64, 14_999, 15_500, 31_000, 47_250, 59_900] {
        let seen = rec.screen_at(&key(), t).unwrap();
        assert!(
            seen.screen()
                .contents()
                .contains(&format!("at {} ms", t - t % 500)),
            "at {t}"
        );
    }
    // A flipped byte in a later anchor chunk is named there.
    let (head, mut chunks) = pieces(&file);
    let a = anchors[2];
    let n = chunks[a].len() - 2;
    chunks[a][n] ^= 0x40;
    let r = Recording::parse([head, chunks.concat()].concat())
        .unwrap()
        .verify(Some(&key()), Some(&manifest), None);
    assert_eq!(r.bad_chunk, Some(a as u64), "{r:?}");
}

/// A 5-minute typing session ticked every second as the server does: sealed chunks go to
/// `file`, each tail replaces the last. Returns the writer's outputs after every tick.
/// After one tick: the sealed chunks so far, the latest tail, the events pushed so far.
type AfterTick = (Vec<u8>, Option<Vec<u8>>, Vec<Timed>);

fn ticked_session(key_bytes: [u8; 32]) -> Vec<AfterTick> {
    let key = RecordingKey::from_slice(&key_bytes).unwrap();
    let (w, mut file) = RecordingWriter::new(&header(), key);
    // Chunks every two minutes, so that five minutes hold sealed chunks, tails and the
    // moments between (the default, ten minutes: `an_interactive_session_seals_...`).
    let mut w = w.seal_after(120_000);
    let mut tail: Option<Vec<u8>> = None;
    let mut written = Vec::new();
    let mut after_each_tick = Vec::new();
    let mut screen = blank_screen();
    // A key every 300 ms, with a pause from 40 s to 55 s (no events: nothing to store).
    for tenth in 0..3000u64 {
        let t = tenth * 100;
        let typing = !(400..550).contains(&tenth);
        if typing && tenth % 3 == 0 {
            if w.needs_keyframe(t) {
                let e = Timed {
                    t_ms: t,
                    event: RecordedEvent::Keyframe {
                        cols: 80,
                        rows: 24,
                        data: screen.screen().contents_formatted().into_bytes(),
                    },
                };
                push_written(&mut w, &mut file, &mut written, e);
            }
            let out = format!("{}", (b'a' + (tenth % 26) as u8) as char).into_bytes();
            screen.process(&out);
            let e = Timed {
                t_ms: t,
                event: RecordedEvent::Output(out),
            };
            push_written(&mut w, &mut file, &mut written, e);
        }
        if tenth % 10 == 9 {
            let tick = w.tick(t).unwrap();
            let sealed = tick.sealed.is_some();
            if let Some(b) = tick.sealed {
                file.extend(b);
            }
            match tick.tail {
                Some(t) => tail = Some(t),
                None if sealed => tail = None,
                None => {}
            }
            after_each_tick.push((file.clone(), tail.clone(), written.clone()));
        }
    }
    after_each_tick
}

#[test]
fn a_crash_at_any_second_leaves_every_event_up_to_that_second_in_chunks_and_tail() {
    let ticks = ticked_session(K);
    let mut tails_seen = 0;
    for (second, (sealed, tail, written)) in ticks.iter().enumerate() {
        let mut bytes = sealed.clone();
        if let Some(t) = tail {
            bytes.extend_from_slice(t);
            tails_seen += 1;
        }
        let rec = Recording::parse(bytes).unwrap();
        let report = rec.verify(Some(&key()), None, None);
        assert!(report.ok(), "second {second}: {:?}", report.problem);
        assert!(!report.complete);
        assert_eq!(report.unsealed_tail, tail.is_some(), "second {second}");
        assert_eq!(&rec.events(&key()).unwrap(), written, "second {second}");
    }
    assert!(
        tails_seen > 250,
        "tails carried most seconds ({tails_seen})"
    );
    // A chunk per two minutes, not per second nor per keyframe (every 10 s).
    let (sealed, _, written) = ticks.last().unwrap();
    let chunks = Recording::parse(sealed.clone()).unwrap().chunks.len();
    let keyframes = written
        .iter()
        .filter(|e| matches!(e.event, RecordedEvent::Keyframe { .. }))
        .count();
    assert_eq!(chunks, 2, "sealed chunks in 300 s");
    assert!(keyframes >= 28, "{keyframes} keyframes");
}

#[test]
fn seeking_lands_on_the_screen_of_that_moment_with_keyframes_inside_chunks() {
    let ticks = ticked_session(K);
    let (sealed, tail, written) = ticks.last().unwrap();
    let rec =
        Recording::parse([sealed.clone(), tail.clone().unwrap_or_default()].concat()).unwrap();
    // Keyframes sit inside chunks: some chunk holds one after its first event.
    let chunk_starts: Vec<u64> = rec.chunks.iter().map(|c| c.t_first_ms).collect();
    let mid_chunk = written.iter().any(|e| {
        matches!(e.event, RecordedEvent::Keyframe { .. }) && !chunk_starts.contains(&e.t_ms)
    });
    assert!(mid_chunk);
    for t in (0..300_000u64)
        .step_by(4_700)
        .chain([120_000, 239_999, 299_900])
    {
        let reference = replayed_without_keyframes(written, t);
        let seek = rec.events_for_seek(&key(), t).unwrap();
        assert!(
            matches!(
                seek.first().map(|e| &e.event),
                Some(RecordedEvent::Keyframe { .. })
            ),
            "a seek to {t} ms starts at a keyframe"
        );
        let first = seek.first().map(|e| e.t_ms).unwrap_or(0);
        assert!(t - first <= 10_000 + 15_000, "at {t} ms: from {first} ms");
        let seen = rec.screen_at(&key(), t).unwrap();
        assert_eq!(
            seen.screen().contents_formatted(),
            reference.screen().contents_formatted(),
            "at {t} ms"
        );
    }
}

#[test]
fn a_stale_tail_is_ignored_and_a_tail_is_never_sealed_under_a_chunk_nonce() {
    let ticks = ticked_session(K);
    // A tail written before its chunk was sealed, read with the sealed chunk: nothing twice.
    let i = ticks
        .windows(2)
        .position(|w| w[0].1.is_some() && w[1].0.len() > w[0].0.len())
        .expect("a chunk sealed after a tail");
    let (old_tail, (sealed, _, _)) = (ticks[i].1.clone().unwrap(), &ticks[i + 1]);
    let rec = Recording::parse([sealed.clone(), old_tail].concat()).unwrap();
    assert_eq!(
        rec.chunks.len(),
        Recording::parse(sealed.clone()).unwrap().chunks.len()
    );
    assert!(rec.verify(Some(&key()), None, None).ok());
    // Successive tails of one chunk are sealed under different revisions (nonces), and a
    // tail's body does not decrypt as the sealed chunk would (revision 0).
    let mut tails: Vec<Vec<u8>> = ticks.iter().filter_map(|t| t.1.clone()).collect();
    tails.dedup();
    let revision = |t: &[u8]| u32::from_be_bytes([t[35], t[36], t[37], t[38]]);
    for w in tails.windows(2) {
        assert!(revision(&w[1]) > revision(&w[0]));
    }
    let mut forged = tails[0].clone();
    forged[35..39].copy_from_slice(&0u32.to_be_bytes());
    assert!(recorder::format::open_chunk(&key(), &forged).is_err());
}

#[test]
fn a_closed_recording_with_a_tail_after_it_fails_verification() {
    let signer = SigningKey::generate();
    let (file, manifest, _) = record(K, &signer);
    let tail = ticked_session(K).into_iter().find_map(|t| t.1).unwrap();
    let rec = Recording::parse([file, tail].concat()).unwrap();
    let report = rec.verify(Some(&key()), Some(&manifest), None);
    assert!(!report.ok());
}

#[test]
fn the_store_reads_an_append_cut_short_as_the_chunks_before_it_and_the_tail() {
    use recorder::storage::{LocalDirStore, RecordingStore};
    let ticks = ticked_session(K);
    let (_, header_len) = recorder::format::decode_header(&ticks[0].0).unwrap();
    // Chunks sealed so far, then the next chunk's tail, then that chunk sealed.
    let i = ticks
        .windows(2)
        .position(|w| w[0].1.is_some() && w[1].0.len() > w[0].0.len() && w[0].0.len() > header_len)
        .unwrap();
    let (before, tail, events) = &ticks[i];
    let after = &ticks[i + 1].0;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDirStore::new(dir.path()).unwrap();
    store.create("r1", &before[..header_len]).unwrap();
    store.append("r1", &before[header_len..]).unwrap();
    store.write_tail("r1", tail.as_ref().unwrap()).unwrap();
    // The sealing append is cut short after 20 bytes (a crash while writing it).
    store
        .append("r1", &after[before.len()..before.len() + 20])
        .unwrap();
    let rec = Recording::parse(store.read("r1").unwrap()).unwrap();
    assert!(rec.verify(Some(&key()), None, None).ok());
    assert_eq!(&rec.events(&key()).unwrap(), events);
    // Cleared tail, whole file: the sealed chunks alone; size counts what is stored.
    store.clear_tail("r1").unwrap();
    assert!(store.size("r1").unwrap() as usize == before.len() + 20);
    store.delete("r1").unwrap();
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn a_busy_chunk_is_sealed_at_the_tick_instead_of_growing_its_tail() {
    let (mut w, mut file) = RecordingWriter::new(&header(), key());
    // An idle prompt: a small tail.
    w.push(Timed {
        t_ms: 0,
        event: RecordedEvent::Output(b"$ ".to_vec()),
    })
    .unwrap();
    let tick = w.tick(1000).unwrap();
    assert!(tick.sealed.is_none() && tick.tail.is_some());
    // Nothing new: no tail to rewrite.
    let tick = w.tick(2000).unwrap();
    assert!(tick.sealed.is_none() && tick.tail.is_none());
    // 100 KiB of output within a second: sealed at the tick, no tail of that size.
    for i in 0..100u64 {
        w.push(Timed {
            t_ms: 2000 + i,
            event: RecordedEvent::Output(vec![b'x'; 1024]),
        })
        .unwrap();
    }
    let tick = w.tick(3000).unwrap();
    assert!(tick.tail.is_none());
    file.extend(tick.sealed.expect("sealed at the tick"));
    // A busy session keeps its compression history as it is (not packed: it is needed again
    // within a second) ...
    assert!(w.held_bytes() >= 100 * 1024, "{}", w.held_bytes());
    // ... until a second passes without events.
    let tick = w.tick(4000).unwrap();
    assert!(tick.sealed.is_none() && tick.tail.is_none());
    assert!(w.held_bytes() < 4 * 1024, "{}", w.held_bytes());
    let rec = Recording::parse(file).unwrap();
    assert_eq!(rec.chunks.len(), 1);
    assert!(rec.verify(Some(&key()), None, None).ok());
}

/// A line of log-like text, different every time but from a small vocabulary (it compresses
/// as terminal output does).
fn log_line(i: u64) -> Vec<u8> {
    const WORDS: [&str; 10] = [
        "GET",
        "/api/v1/orders",
        "200",
        "503",
        "upstream",
        "timeout",
        "db1",
        "ms",
        "ok",
        "retry",
    ];
    let mut line = format!("{i:>6} ");
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _ in 0..8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        line.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
        line.push(' ');
    }
    line.push_str("\r\n");
    line.into_bytes()
}

#[test]
fn an_interactive_session_seals_every_ten_minutes_and_packs_its_history_while_quiet() {
    let (mut w, mut file) = RecordingWriter::new(&header(), key());
    let mut written = Vec::new();
    let mut packed_after = Vec::new();
    let tick = |w: &mut RecordingWriter, file: &mut Vec<u8>, t: u64| -> bool {
        let tick = w.tick(t).unwrap();
        let sealed = tick.sealed.is_some();
        if let Some(b) = tick.sealed {
            file.extend(b);
        }
        sealed
    };
    // 25 minutes of a line (about 60 bytes) a second: 35 KiB per ten minutes, below the
    // 64 KiB at which a tick seals. Then a burst that is still slow: 1 KiB a second.
    let mut printed = 0usize;
    for s in 0..1500u64 {
        let line = log_line(s);
        printed += line.len();
        let e = Timed {
            t_ms: s * 1000,
            event: RecordedEvent::Output(line),
        };
        push_written(&mut w, &mut file, &mut written, e);
        if tick(&mut w, &mut file, s * 1000 + 999) {
            packed_after.push((s, printed, w.held_bytes()));
        }
    }
    let sealed_at: Vec<u64> = packed_after.iter().map(|p| p.0).collect();
    assert_eq!(
        sealed_at,
        vec![600, 1201],
        "sealed ten minutes after each chunk's first event"
    );
    for (s, plain, held) in &packed_after {
        // Quiet: the history (all it printed, up to 256 KiB) is held packed.
        assert!(
            *held * 3 < *plain,
            "at {s} s: {held} bytes held for {plain} of history"
        );
    }
    for s in 1500..1600u64 {
        let e = Timed {
            t_ms: s * 1000,
            event: RecordedEvent::Output(vec![b'a' + (s % 26) as u8; 1024]),
        };
        push_written(&mut w, &mut file, &mut written, e);
        if tick(&mut w, &mut file, s * 1000 + 999) {
            packed_after.push((s, 0, w.held_bytes()));
        }
    }
    // 64 KiB reached at 1 KiB a second: sealed by size, still as a quiet session's chunk.
    let slow = packed_after.last().unwrap();
    assert!((1500..1600).contains(&slow.0), "{packed_after:?}");
    assert!(slow.2 < 64 * 1024, "{packed_after:?}");
    let (last, _) = w
        .finish(header().started_at_ms + 1_600_000, "exited")
        .unwrap();
    file.extend(last.unwrap_or_default());
    let rec = Recording::parse(file).unwrap();
    assert!(rec.verify(Some(&key()), None, None).ok());
    assert_eq!(rec.events(&key()).unwrap(), written);
    assert_eq!(rec.chunks.len(), 4);
    assert!(rec.chunks.iter().skip(1).all(|c| !c.anchor));
}

/// The events of `fixtures/v4-session.pcr`: 200 s of output that repeats itself across
/// chunks (so later chunks compress against the history before them), keystrokes and a
/// keyframe every 10 s. The file was written from these events by the format-version-4
/// writer of commit 19bc75a (key: 32 bytes of 4, a tick every second, no manifest); the test
/// reads it with today's reader and expects these events back.
fn fixture_events() -> Vec<Timed> {
    const WORDS: [&str; 12] = [
        "nginx",
        "upstream",
        "timeout",
        "GET",
        "/api/v1/health",
        "200",
        "503",
        "db1",
        "replica",
        "lag",
        "ms",
        "ok",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut events = Vec::new();
    for i in 0..800u64 {
        let t = i * 250;
        if i % 40 == 0 {
            events.push(Timed {
                t_ms: t,
                event: RecordedEvent::Keyframe {
                    cols: 80,
                    rows: 24,
                    data: format!("\x1b[H\x1b[2Jkeyframe {i}\r\n").into_bytes(),
                },
            });
        }
        if i % 8 == 0 {
            events.push(Timed {
                t_ms: t,
                event: RecordedEvent::Input {
                    by: "alice".into(),
                    data: b"ls\r".to_vec(),
                },
            });
        }
        let mut line = format!("{t:>8} ");
        for _ in 0..40 {
            line.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
            line.push(' ');
        }
        line.push_str("\r\n");
        events.push(Timed {
            t_ms: t,
            event: RecordedEvent::Output(line.into_bytes()),
        });
    }
    events
}

#[test]
fn a_version_4_recording_still_reads_and_verifies() {
    // Written by the version-4 writer (64 KiB history, window 2^17, 2-minute chunks).
    let file = include_bytes!("fixtures/v4-session.pcr").to_vec();
    let key = RecordingKey::from_slice(&[4u8; 32]).unwrap();
    let rec = Recording::parse(file).unwrap();
    assert_eq!(rec.header.format_version, 4);
    assert!(rec.chunks.len() >= 3, "{} chunks", rec.chunks.len());
    let report = rec.verify(Some(&key), None, None);
    assert!(report.ok(), "{:?}", report.problem);
    assert_eq!(rec.events(&key).unwrap(), fixture_events());
    // Seeking decompresses from the anchor with today's (longer) history.
    let seen = rec.screen_at(&key, 150_000).unwrap();
    assert!(seen.screen().contents().contains("  150000 "));
    assert!(!seen.screen().contents().contains("  150250 "));
}

/// A recording whose every chunk is signed (format 6), its manifest removed: an auditor
/// with the file alone flips one byte near its end. The last chunk's own signature catches
/// it; a removed signature record, or a file checked against another key, fails too.
#[test]
fn every_signed_chunk_is_checked_offline_without_the_manifest() {
    let signer = SigningKey::generate();
    let public = signer.public_key_b64();
    let (w, mut file) = RecordingWriter::new_signed(&header(), key(), signer);
    let mut w = w;
    for i in 0..40u64 {
        let e = Timed {
            t_ms: i * 500,
            event: RecordedEvent::Output(format!("line {i}\r\n").into_bytes()),
        };
        if let Some(b) = w.push(e).unwrap() {
            file.extend(b);
        }
        if i % 4 == 3 {
            if let Some(b) = w.flush().unwrap() {
                file.extend(b);
            }
        }
    }
    let (last, _manifest) = w.finish(header().started_at_ms + 20_000, "exited").unwrap();
    file.extend(last.unwrap_or_default());
    let rec = Recording::parse(file.clone()).unwrap();
    assert_eq!(rec.header.signing_key.as_deref(), Some(public.as_str()));
    let n = rec.chunks.len();
    assert!(n >= 5, "{n} chunks");
    // Unaltered, no manifest: incomplete, but every chunk vouched for.
    let r = rec.verify(None, None, None);
    assert!(r.ok() && r.signed && !r.complete, "{r:?}");

    // One byte flipped inside the last chunk, which nothing else links to.
    let last_chunk = &rec.chunks[n - 1];
    let mut flipped = file.clone();
    flipped[last_chunk.offset as usize + last_chunk.len - 5] ^= 0x01;
    let r = Recording::parse(flipped).unwrap().verify(None, None, None);
    assert_eq!(r.bad_chunk, Some(n as u64 - 1), "{r:?}");
    assert!(r.problem.unwrap().contains("signature"));

    // The last chunk's signature record removed.
    let cut = file.len() - recorder::format::SIGNATURE_RECORD;
    let r = Recording::parse(file[..cut].to_vec())
        .unwrap()
        .verify(None, None, None);
    assert_eq!(r.bad_chunk, Some(n as u64 - 1), "{r:?}");
    assert!(r.problem.unwrap().contains("no signature"));

    // Checked against another server's key.
    let other = SigningKey::generate().public_key_b64();
    let r = Recording::parse(file)
        .unwrap()
        .verify(None, None, Some(&other));
    assert_eq!(r.bad_chunk, Some(0), "{r:?}");
}
