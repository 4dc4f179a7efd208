//! Why: `portcullis audit verify`, for scripts and auditors: the audit chain checked from the
//! command line, with an exit status.

use crate::config::Config;
use crate::server::{open_app, Opened};

/// `portcullis audit verify`: exit status 0 when the chain is intact.
pub async fn verify(cfg: Config) -> anyhow::Result<bool> {
    let Opened { app, .. } = open_app(cfg, &mut |_| {}).await?;
    let report = app.audit.verify().await?;
    match &report.problem {
        None => println!("audit log intact: {} rows verified", report.rows_checked),
        Some(p) => println!(
            "AUDIT LOG TAMPERED: {} (first bad row: {}, {} rows verified before it)",
            p.message, p.seq, report.rows_checked
        ),
    }
    Ok(report.ok)
}
