//! Recordings of real SSH sessions through the real binary: the recording replays to the
//! screen the user saw, keeps typed commands (and only the length of a secret typed at a
//! prompt that does not echo), is encrypted at rest, verifies with the CLI, names a tampered
//! chunk, survives `kill -9` of the server as an *incomplete* recording, and is only visible
//! to its user, administrators and auditors.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Client, ADMIN_PASSWORD};
use crate::live::{
    engineer_with_connect, engineer_with_connect_env, exit_shell, open_session, read_until,
    screen_has_line, terminal_has, type_line, Received,
};

const SECRET_TYPED: &str = "typed-Secret-4471";

/// Waits until the recordings list shows `n` recordings in `status`.
pub(crate) async fn recordings_in(who: &Client, status: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let list = who.get("/recordings").await.ok();
        let rows: Vec<Value> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == status)
            .cloned()
            .collect();
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no {n} recording(s) in status {status}: {:?}",
        who.get("/recordings").await.ok()
    );
}

/// The terminal a player would show after every "o" event of an asciicast.
fn play_cast(cast: &str, cols: u16, rows: u16) -> gateway::screen::TerminalScreen {
    let mut screen = gateway::screen::TerminalScreen::new(cols, rows);
    for line in cast.lines().skip(1) {
        let ev: Value = serde_json::from_str(line).unwrap();
        match ev[1].as_str() {
            Some("o") => screen.process(ev[2].as_str().unwrap().as_bytes()),
            Some("r") => {
                let (c, r) = ev[2].as_str().unwrap().split_once('x').unwrap();
                screen.resize(c.parse().unwrap(), r.parse().unwrap());
            }
            _ => {}
        }
    }
    screen
}

/// Search hits for `q` (the index is built just after the recording closes: waits for it).
pub(crate) async fn hits_for(who: &Client, q: &str) -> Vec<Value> {
    for _ in 0..600 {
        let hits = who.get(&format!("/recordings/search?q={q}")).await.ok();
        let hits = hits.as_array().cloned().unwrap_or_default();
        if !hits.is_empty() {
            return hits;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no search hit for {q}");
}

#[tokio::test]
async fn a_long_session_is_indexed_in_segments_and_found_from_start_to_end() {
    // About 3.4 MB of distinct lines: the index holds them in several sealed segments of
    // about 1 MiB (memory while indexing is one segment, not the session's output).
    let w = engineer_with_connect().await;
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    type_line(
        &mut ws,
        &mut got,
        "echo first-$((1+1))-marker",
        "first-2-marker",
    )
    .await;
    // Waits on the stream's tail only: re-reading 3.4 MB at every frame (as `type_line` does to
    // render the screen) is too slow for a loaded CI machine.
    ws.send(Message::Binary(
        b"seq -f 'filler-line-%08g' 1 160000; echo last-$((2+2))-marker\r"
            .to_vec()
            .into(),
    ))
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut tail: Vec<u8> = Vec::new();
    while !tail.windows(13).any(|w| w == b"last-4-marker") {
        let keep = tail.len().saturating_sub(12);
        tail.drain(..keep);
        match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut ws)).await {
            Ok(Some(Ok(Message::Binary(b)))) => tail.extend_from_slice(&b),
            Ok(Some(Ok(_))) => {}
            other => panic!("the output did not reach last-4-marker: {other:?}"),
        }
    }
    exit_shell(&mut ws, &mut got).await;
    let rows = recordings_in(&w.admin, "complete", 1).await;
    let id = rows[0]["id"].as_str().unwrap().to_string();

    for (q, line) in [
        ("first-2-marker", "first-2-marker"),
        ("filler-line-00080000", "filler-line-00080000"),
        ("last-4-marker", "last-4-marker"),
    ] {
        let hits = hits_for(&w.admin, q).await;
        assert!(
            hits.iter().any(|h| h["line"] == line
                && h["recording_id"] == id.as_str()
                && h["typed"] == false),
            "{q}: {hits:?}"
        );
    }
    // In time order: the first marker before the filler, the filler before the last marker.
    let t = |hits: Vec<Value>, line: &str| {
        hits.iter()
            .find(|h| h["line"] == line)
            .and_then(|h| h["t_ms"].as_i64())
            .unwrap_or_else(|| panic!("{line}: {hits:?}"))
    };
    let first = t(hits_for(&w.admin, "first-2-marker").await, "first-2-marker");
    let middle = t(
        hits_for(&w.admin, "filler-line-00080000").await,
        "filler-line-00080000",
    );
    let last = t(hits_for(&w.admin, "last-4-marker").await, "last-4-marker");
    assert!(first <= middle && middle <= last, "{first} {middle} {last}");

    // The signed bundle is written as it is read, in base64 pieces: joined, they are the
    // stored file byte for byte (this recording is more than one piece long).
    let bundle = w
        .admin
        .raw("GET", &format!("/recordings/{id}/bundle"), None, false)
        .await;
    assert_eq!(bundle.status, 200);
    let stored = std::fs::read(
        w._site
            .data_dir()
            .join("recordings")
            .join(format!("{id}.pcr")),
    )
    .unwrap();
    assert!(
        stored.len() > 48 * 1024,
        "{} bytes: one piece only",
        stored.len()
    );
    let carried = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(bundle.body["recording"].as_str().unwrap_or_default())
            .expect("one valid base64 string")
    };
    assert!(
        carried == stored,
        "the bundle's recording is not the stored file"
    );
    assert!(
        bundle.body["manifest"]["signature"].is_string(),
        "{}",
        bundle.body["manifest"]
    );

    // Stored as several segments, none of them readable without the vault.
    let url = format!(
        "sqlite://{}",
        w._site.data_dir().join("portcullis.db").display()
    );
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    let segments: Vec<(i64, String)> = sqlx::query_as(
        "SELECT seq, sealed_lines FROM recording_index_lines WHERE recording_id = $1 ORDER BY seq",
    )
    .bind(&id)
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(segments.len() >= 3, "{} segments", segments.len());
    assert_eq!(
        segments.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (0..segments.len() as i64).collect::<Vec<_>>()
    );
    assert!(segments
        .iter()
        .all(|(_, sealed)| sealed.starts_with("pc1:") && !sealed.contains("filler")));
    let (count,): (i64,) =
        sqlx::query_as("SELECT line_count FROM recording_index WHERE recording_id = $1")
            .bind(&id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(count > 160_000, "{count} lines");
}

#[tokio::test]
async fn a_session_is_recorded_replays_to_the_same_screen_and_verifies() {
    let w = engineer_with_connect().await;
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    assert!(
        got.controls
            .iter()
            .any(|c| c["type"] == "session" && c["recorded"] == true),
        "{:?}",
        got.controls
    );
    let opened = std::time::Instant::now();
    type_line(&mut ws, &mut got, "echo rec-$((6*7))", "rec-42").await;
    let seen_at_ms = opened.elapsed().as_millis() as i64;
    // A prompt that does not echo: what is typed there is kept as a length only.
    ws.send(Message::Binary(
        b"read -s -p 'Password: ' pw; echo; echo got-${#pw}\r"
            .to_vec()
            .into(),
    ))
    .await
    .unwrap();
    // (The prompt on a line of its own: the echoed command line holds the same words.)
    read_until(&mut ws, &mut got, "the password prompt", |g| {
        screen_has_line(g, "Password:")
    })
    .await;
    for c in SECRET_TYPED.bytes() {
        ws.send(Message::Binary(vec![c].into())).await.unwrap();
    }
    ws.send(Message::Binary(b"\r".to_vec().into()))
        .await
        .unwrap();
    read_until(&mut ws, &mut got, "got-17", |g| {
        screen_has_line(g, "got-17")
    })
    .await;
    type_line(
        &mut ws,
        &mut got,
        "printf 'line-%s\\n' $(seq 1 60) | tail -n 3",
        "line-60",
    )
    .await;
    exit_shell(&mut ws, &mut got).await;

    let rows = recordings_in(&w.admin, "complete", 1).await;
    let id = rows[0]["id"].as_str().unwrap().to_string();
    assert_eq!(rows[0]["user"], "engineer");
    let detail = w.admin.get(&format!("/recordings/{id}")).await.ok();
    assert_eq!(detail["verification"]["problem"], Value::Null, "{detail}");
    assert_eq!(detail["verification"]["complete"], true, "{detail}");
    let commands: Vec<&str> = detail["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert!(commands.contains(&"echo rec-$((6*7))"), "{commands:?}");
    assert!(
        commands.contains(&"[secret, 17 characters]"),
        "{commands:?}"
    );
    assert!(!detail.to_string().contains(SECRET_TYPED));

    // Replayed, it ends on the screen the user saw.
    let cast = w
        .admin
        .raw("GET", &format!("/recordings/{id}/cast"), None, false)
        .await;
    assert_eq!(cast.status, 200);
    let cast_text = cast.body.as_str().unwrap_or_default().to_string();
    let mut live = gateway::screen::TerminalScreen::new(80, 24);
    live.process(&got.terminal);
    let replayed = play_cast(&cast_text, 80, 24);
    assert_eq!(replayed.text(), live.text());
    assert!(replayed.text().contains("line-60"));
    assert!(!cast_text.contains(SECRET_TYPED));
    // The real asciinema (PyPI 2.4.0, installed by scripts/setup-deps.sh) plays the export.
    let asciinema =
        std::env::var("ASCIINEMA").unwrap_or_else(|_| "target/tools-venv/bin/asciinema".into());
    let cast_file = w._site.data_dir().join("export.cast");
    std::fs::write(&cast_file, &cast_text).unwrap();
    let played = std::process::Command::new(&asciinema)
        .args(["play", "-s", "100", "-i", "0.05"])
        .arg(&cast_file)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {asciinema} (scripts/setup-deps.sh test installs it): {e}")
        });
    let shown = String::from_utf8_lossy(&played.stdout);
    assert!(
        played.status.success(),
        "asciinema play failed: {}",
        String::from_utf8_lossy(&played.stderr)
    );
    assert!(
        shown.contains("rec-42") && shown.contains("line-60"),
        "{shown}"
    );

    // At rest: encrypted (neither output nor typed text in the file), and it verifies.
    let file = w
        ._site
        .data_dir()
        .join("recordings")
        .join(format!("{id}.pcr"));
    let bytes = std::fs::read(&file).unwrap();
    for needle in ["rec-42", "line-60", SECRET_TYPED, "echo"] {
        assert!(
            !bytes
                .windows(needle.len())
                .any(|win| win == needle.as_bytes()),
            "{needle} in clear at rest"
        );
    }
    let out = w._site.cli(&["recording", "verify", &id]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && text.contains("OK: complete"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Playback and export are audited.
    let audit = w.admin.get("/audit?action=recording.export").await.ok();
    assert_eq!(audit[0]["object_id"], id.as_str());
    let player = w.eng.get(&format!("/recordings/{id}/events")).await.ok();
    assert!(
        player["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e[1] == "k"),
        "keyframes for seeking"
    );
    assert!(
        player["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e[1] == "s" && e[2] == 1),
        "secret keystrokes as lengths"
    );
    assert!(!player.to_string().contains(SECRET_TYPED));
    let audit = w.admin.get("/audit?action=recording.play").await.ok();
    assert_eq!(
        (audit[0]["object_id"].as_str(), audit[0]["actor"].as_str()),
        (Some(id.as_str()), Some("engineer"))
    );

    // Search finds the echoed text at the moment it appeared; never the secret.
    let hits = w.admin.get("/recordings/search?q=rec-42").await.ok();
    let hit = hits
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["line"] == "rec-42" && h["recording_id"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{hits}"));
    let t = hit["t_ms"].as_i64().unwrap();
    assert!(
        (t - seen_at_ms).abs() < 2000,
        "hit at {t} ms, seen at about {seen_at_ms} ms"
    );
    let typed = w.admin.get("/recordings/search?q=echo%20rec").await.ok();
    assert!(
        typed.as_array().unwrap().iter().any(|h| h["typed"] == true),
        "{typed}"
    );
    assert_eq!(
        w.admin
            .get(&format!("/recordings/search?q={SECRET_TYPED}"))
            .await
            .ok(),
        serde_json::json!([])
    );
    let no_words = w.admin.get("/recordings/search?q=%20x%20").await;
    assert_eq!((no_words.status, no_words.error_field()), (400, Some("q")));
    // The search is audited with a stand-in for the words, never the words themselves
    // (searching for a secret one remembers must not put it in the log).
    let audit = w.admin.get("/audit?action=recording.search").await.ok();
    let stand_in = audit[0]["detail"]["query"].as_str().unwrap_or_default();
    assert!(stand_in.starts_with('#') && stand_in.len() == 13, "{audit}");
    assert!(!audit.to_string().contains(SECRET_TYPED), "{audit}");
    // Viewing the typed commands is audited like a playback.
    let detail = w.admin.get("/audit?action=recording.detail").await.ok();
    assert!(detail.to_string().contains(&id), "{detail}");

    // Only its user, administrators and auditors see it.
    assert_eq!(w.eng.get(&format!("/recordings/{id}")).await.status, 200);
    let (other, _) = w.server.user(&w.admin, "other", "password_user").await;
    assert_eq!(other.get(&format!("/recordings/{id}")).await.status, 404);
    assert_eq!(
        other
            .get("/recordings")
            .await
            .ok()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        other.get("/recordings/search?q=rec-42").await.ok(),
        serde_json::json!([])
    );
    let (auditor, _) = w
        .server
        .user(&w.admin, "auditor1", "password_auditor")
        .await;
    assert_eq!(auditor.get(&format!("/recordings/{id}")).await.status, 200);

    // The signed bundle verifies offline against the server's published key, and fails
    // against another key or once altered.
    let bundle = w
        .admin
        .raw("GET", &format!("/recordings/{id}/bundle"), None, false)
        .await;
    assert_eq!(bundle.status, 200);
    let public_key = w.admin.get("/recordings/signing-key").await.ok()["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let bundle_file = w._site.data_dir().join("bundle.json");
    std::fs::write(&bundle_file, bundle.body.to_string()).unwrap();
    let verify_offline = |file: &std::path::Path, key: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args([
                "recording",
                "verify",
                file.to_str().unwrap(),
                "--public-key",
                key,
            ])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (ok, text) = verify_offline(&bundle_file, &public_key);
    assert!(ok && text.contains("OK: complete"), "{text}");
    let (ok, text) = verify_offline(&bundle_file, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert!(!ok && text.contains("other than"), "{text}");
    let mut altered = bundle.body.clone();
    altered["manifest"]["manifest"]["end_reason"] = serde_json::json!("nothing happened");
    std::fs::write(&bundle_file, altered.to_string()).unwrap();
    let (ok, text) = verify_offline(&bundle_file, &public_key);
    assert!(!ok && text.contains("signature"), "{text}");

    // A flipped byte in the middle of the file: verify fails and names the chunk.
    let mut tampered = bytes.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x20;
    std::fs::write(&file, &tampered).unwrap();
    let out = w._site.cli(&["recording", "verify", &id]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("FAILS VERIFICATION: chunk"), "{text}");
    let detail = w.admin.get(&format!("/recordings/{id}")).await.ok();
    assert!(
        detail["verification"]["problem"]
            .as_str()
            .unwrap_or_default()
            .contains("chunk"),
        "{detail}"
    );
}

#[tokio::test]
async fn kill_9_mid_session_leaves_an_incomplete_recording_that_verifies() {
    let mut w = engineer_with_connect().await;
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    type_line(
        &mut ws,
        &mut got,
        "echo before-the-crash-$((2*3))",
        "before-the-crash-6",
    )
    .await;
    // Chunks are flushed at least every second.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Live-tailable: the recording is readable while the session runs.
    let live = recordings_in(&w.admin, "recording", 1).await;
    let tail = w
        .admin
        .get(&format!(
            "/recordings/{}/events",
            live[0]["id"].as_str().unwrap()
        ))
        .await
        .ok();
    let shown: Vec<u8> = tail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e[1] == "o")
        .flat_map(|e| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(e[2].as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert!(String::from_utf8_lossy(&shown).contains("before-the-crash-6"));
    w.server.kill();
    drop(ws);

    let server = w._site.start();
    let admin = server.client();
    admin.login_ok("admin", ADMIN_PASSWORD).await;
    let rows = recordings_in(&admin, "incomplete", 1).await;
    let id = rows[0]["id"].as_str().unwrap().to_string();
    let detail = admin.get(&format!("/recordings/{id}")).await.ok();
    assert_eq!(detail["verification"]["problem"], Value::Null, "{detail}");
    assert_eq!(detail["verification"]["complete"], false, "{detail}");
    let commands = detail["commands"].to_string();
    assert!(
        commands.contains("echo before-the-crash-$((2*3))"),
        "{commands}"
    );
    let out = w._site.cli(&["recording", "verify", &id]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // The session was shorter than a chunk: all of it came from the tail stored each second.
    // Incomplete has its own exit status: a script cannot take it for verified.
    assert!(
        out.status.code() == Some(3) && text.contains("INCOMPLETE") && text.contains("tail"),
        "{text}"
    );
    // The session's end is audited by the restarted server.
    let ends = admin.get("/audit?action=session.end").await.ok();
    assert!(
        ends.to_string()
            .contains("the gateway stopped during the session"),
        "{ends}"
    );
}

#[tokio::test]
async fn recordings_past_their_retention_are_purged_and_the_purge_is_audited() {
    let w = engineer_with_connect_env(&[("PORTCULLIS_RECORDING_RETENTION", "2s")]).await;
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    exit_shell(&mut ws, &mut got).await;
    let id = recordings_in(&w.admin, "complete", 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = w
        ._site
        .data_dir()
        .join("recordings")
        .join(format!("{id}.pcr"));
    assert!(file.exists());
    let mut gone = false;
    for _ in 0..100 {
        if w.admin
            .get("/recordings")
            .await
            .ok()
            .as_array()
            .unwrap()
            .is_empty()
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the recording outlived its retention");
    assert!(!file.exists() && !file.with_extension("manifest.json").exists());
    let purges = w.admin.get("/audit?action=recording.purge").await.ok();
    assert!(purges.to_string().contains(&id), "{purges}");
}

#[tokio::test]
async fn when_the_recording_cannot_be_written_the_session_ends_with_a_clear_message() {
    let w = engineer_with_connect().await;
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    let id = recordings_in(&w.admin, "recording", 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The store breaks: the recording file is replaced by a directory.
    let file = w
        ._site
        .data_dir()
        .join("recordings")
        .join(format!("{id}.pcr"));
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    ws.send(Message::Binary(b"echo still-typing\r".to_vec().into()))
        .await
        .unwrap();
    read_until(&mut ws, &mut got, "the session to end", |g| {
        g.controls
            .iter()
            .any(|c| c["type"] == "exit" || c["type"] == "error")
    })
    .await;
    let end = got
        .controls
        .iter()
        .find(|c| c["type"] == "exit" || c["type"] == "error")
        .unwrap()
        .to_string();
    assert!(end.contains("could not be recorded"), "{end}");
    assert_eq!(
        recordings_in(&w.admin, "failed", 1).await[0]["id"],
        id.as_str()
    );
    let alerts = w.admin.get("/audit?action=recording.failed").await.ok();
    assert_eq!(alerts[0]["detail"]["alert"], true, "{alerts}");
}

#[tokio::test]
async fn a_resource_can_be_exempted_from_or_forced_into_recording() {
    let w = engineer_with_connect_env(&[("PORTCULLIS_RECORD_TERMINAL_SESSIONS", "false")]).await;
    let account = w.admin.get(&format!("/accounts/{}", w.account)).await.ok();
    let rid = account["resource_id"].as_str().unwrap().to_string();
    let mode = w.eng.get(&format!("/resources/{rid}/recording")).await.ok();
    assert_eq!(
        (mode["mode"].as_str(), mode["recorded"].as_bool()),
        (Some("default"), Some(false))
    );
    let hello = |got: &Received| {
        got.controls
            .iter()
            .find(|c| c["type"] == "session")
            .cloned()
            .unwrap_or_default()
    };

    // Global toggle off: not recorded.
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    assert_eq!(hello(&got)["recorded"], false);
    drop(ws);

    // Forced on for this resource by an administrator (audited); engineers may not change it.
    let refused = w
        .eng
        .call(
            "PUT",
            &format!("/resources/{rid}/recording"),
            serde_json::json!({ "mode": "never" }),
        )
        .await;
    assert_eq!(refused.status, 403);
    w.admin
        .call(
            "PUT",
            &format!("/resources/{rid}/recording"),
            serde_json::json!({ "mode": "always" }),
        )
        .await
        .ok();
    let bad = w
        .admin
        .call(
            "PUT",
            &format!("/resources/{rid}/recording"),
            serde_json::json!({ "mode": "sometimes" }),
        )
        .await;
    assert_eq!((bad.status, bad.error_field()), (400, Some("mode")));
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    assert_eq!(hello(&got)["recorded"], true);
    assert_eq!(recordings_in(&w.admin, "recording", 1).await.len(), 1);
    let audit = w.admin.get("/audit?action=recording.policy").await.ok();
    assert_eq!(audit[0]["detail"]["mode"], "always", "{audit}");
}

#[tokio::test]
async fn an_unrecorded_session_cut_off_by_a_crash_still_gets_its_end_audited() {
    let mut w =
        engineer_with_connect_env(&[("PORTCULLIS_RECORD_TERMINAL_SESSIONS", "false")]).await;
    let (mut ws, mut got) = open_session(&w.server, &w.tls, &w.eng, &w.cookie, &w.account).await;
    read_until(&mut ws, &mut got, "the prompt", |g| terminal_has(g, "$ ")).await;
    let session_id = got
        .controls
        .iter()
        .find(|c| c["type"] == "session")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.server.kill();
    drop(ws);
    let server = w._site.start();
    let admin = server.client();
    admin.login_ok("admin", ADMIN_PASSWORD).await;
    let ends = admin.get("/audit?action=session.end").await.ok();
    let end = ends
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["object_id"] == session_id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{ends}"));
    assert_eq!(
        end["detail"]["end"]["reason"],
        "the gateway stopped during the session"
    );
    assert_eq!(end["detail"]["recording_id"], Value::Null);
    assert_eq!(end["actor"], "engineer");
    // Audited once: a second restart adds nothing.
    drop(server);
    let server = w._site.start();
    let admin = server.client();
    admin.login_ok("admin", ADMIN_PASSWORD).await;
    let ends = admin.get("/audit?action=session.end").await.ok();
    assert_eq!(
        ends.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["object_id"] == session_id.as_str())
            .count(),
        1
    );
}
