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
    let mut screen = vt100::Parser::new(
        std::num::NonZeroU16::new(24).unwrap(),
        std::num::NonZeroU16::new(80).unwrap(),
        0,
    );
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
            written.push(e.clone());
            if let Some(b) = w.push(e).unwrap() {
                file.extend(b);
            }
        }
        let out = format!("line {i} at {t} ms\r\n").into_bytes();
        screen.process(&out);
        let e = Timed {
            t_ms: t,
            event: RecordedEvent::Output(out),
        };
        written.push(e.clone());
        if let Some(b) = w.push(e).unwrap() {
            file.extend(b);
        }
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

#[test]
fn seeking_lands_on_the_screen_of_that_moment() {
    let signer = SigningKey::generate();
    let (file, _, written) = record(K, &signer);
    let rec = Recording::parse(file).unwrap();
    for t in [0u64, 4_750, 10_000, 33_300, 59_500] {
        let mut reference = vt100::Parser::new(
            std::num::NonZeroU16::new(24).unwrap(),
            std::num::NonZeroU16::new(80).unwrap(),
            0,
        );
        for e in written.iter().filter(|e| e.t_ms <= t) {
            if !matches!(e.event, RecordedEvent::Keyframe { .. }) {
                apply(&mut reference, &e.event);
            }
        }
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
            },
        },
        Timed {
            t_ms: 3600,
            event: RecordedEvent::RedactedInput {
                by: "a".into(),
                len: 5,
                submitted: true,
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
