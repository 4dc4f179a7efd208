//! Why: `portcullis recording verify ID|FILE|BUNDLE`: an auditor checks a recording by id
//! (with the server's keys: every chunk decrypts), or a copied file or bundle offline (chain
//! and signatures), and a script reads the verdict from the exit status.

use recorder::Recording;

use crate::recordings::Recordings;
use crate::server::{open_app, Opened};

/// `portcullis recording verify TARGET`: prints the report; `Ok(false)` when it fails.
/// What `portcullis recording verify` concludes, as its exit status: scripts must not mistake
/// an incomplete recording for a verified one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Complete, and everything verifies (exit 0).
    Verified = 0,
    /// Altered, or a closed recording whose manifest is gone (exit 1).
    Fails = 1,
    /// No manifest: verified up to its last whole chunk, but its end cannot be vouched for
    /// (exit 3).
    Incomplete = 3,
}

pub async fn verify(
    cfg: crate::config::Config,
    target: &str,
    public_key: Option<&str>,
) -> anyhow::Result<Verdict> {
    use base64::Engine;
    let path = std::path::Path::new(target);
    let (rec, manifest, key, trusted, mode) = if path.is_file() {
        let bytes = std::fs::read(path)?;
        if bytes.first() == Some(&b'{') {
            let b: serde_json::Value = serde_json::from_slice(&bytes)?;
            if b["format"] != "portcullis-recording-bundle/1" {
                anyhow::bail!("{target} is not a Portcullis recording bundle");
            }
            let data = base64::engine::general_purpose::STANDARD
                .decode(b["recording"].as_str().unwrap_or_default())?;
            let manifest: Option<recorder::SignedManifest> =
                serde_json::from_value(b["manifest"].clone()).ok();
            let trusted = public_key
                .map(str::to_string)
                .or_else(|| b["public_key"].as_str().map(str::to_string));
            (
                Recording::parse(data)?,
                manifest,
                None,
                trusted,
                "bundle (offline: chain and signature; content not decrypted)",
            )
        } else {
            let manifest_path = path.with_extension("manifest.json");
            let manifest = match std::fs::read(&manifest_path) {
                Ok(m) => Some(serde_json::from_slice(&m)?),
                Err(_) => None,
            };
            (
                Recording::parse(bytes)?,
                manifest,
                None,
                public_key.map(str::to_string),
                "file (offline: chain and signature; content not decrypted)",
            )
        }
    } else {
        let Opened { app, .. } = open_app(cfg, &mut |_| {}).await?;
        let bytes = app
            .recordings
            .store
            .read(target)
            .map_err(|e| anyhow::anyhow!("recording {target}: {e}"))?;
        let rec = Recording::parse(bytes)?;
        let manifest = app.recordings.store.read_manifest(target)?;
        if manifest.is_none() {
            // The store knows whether it closed this recording: a closed one without its
            // manifest had it removed.
            let status: Option<(String,)> =
                sqlx::query_as("SELECT status FROM recordings WHERE id = $1")
                    .bind(target)
                    .fetch_optional(&app.db.pool)
                    .await?;
            if let Some((status,)) = status.filter(|(s,)| s == "complete") {
                println!("recording {target}");
                println!("  RECORDING FAILS VERIFICATION: the server closed it ({status}) and signed its manifest, which is missing from the store (removed)");
                return Ok(Verdict::Fails);
            }
        }
        let key = Recordings::key_of(&app, &rec.header)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let trusted = public_key
            .map(str::to_string)
            .unwrap_or_else(|| app.recordings.public_key.clone());
        (
            rec,
            manifest,
            Some(key),
            Some(trusted),
            "server (chain, signature, every chunk decrypted)",
        )
    };
    let report = rec.verify(key.as_ref(), manifest.as_ref(), trusted.as_deref());
    println!(
        "recording {} ({}@{} by {}), checked as {mode}",
        rec.header.recording_id, rec.header.account, rec.header.resource, rec.header.user
    );
    println!(
        "  chunks: {}, duration: {:.1} s",
        report.chunks,
        report.duration_ms as f64 / 1000.0
    );
    match &report.problem {
        Some(p) => {
            println!("  RECORDING FAILS VERIFICATION: {p}");
            Ok(Verdict::Fails)
        }
        None if report.complete => {
            println!(
                "  OK: complete; the chain and the signed manifest verify{}",
                if key.is_some() {
                    "; every chunk decrypts"
                } else {
                    ""
                }
            );
            if trusted.is_some() && public_key.is_none() && key.is_none() {
                println!("  note: signature checked against the key in the bundle; compare it with the server's published key (--public-key)");
            }
            Ok(Verdict::Verified)
        }
        None => {
            println!("  INCOMPLETE: no signed manifest (the server stopped mid-session, or the manifest was removed); everything up to the last whole chunk verifies, the end cannot be vouched for (exit status 3)");
            if report.signed {
                println!("  every chunk carries its own signature, and each verifies{}: none was altered (chunks removed from the end would not show)", if trusted.is_some() && public_key.is_some() { " against the key given" } else { " against the key in the file's header (compare it with the server's published key: --public-key)" });
            }
            if report.unsealed_tail {
                println!("  note: the last chunk is the open chunk's tail (stored every second, never sealed); the recording ends with its last second");
            }
            Ok(Verdict::Incomplete)
        }
    }
}
