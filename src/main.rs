//! The `portcullis` command: `serve` (default), `key rotate`, `audit verify`.
//! Settings come from flags, `PORTCULLIS_*` variables and a TOML file (see `--help`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use portcullis::config::{self, Config, FlagConfig};

#[derive(Parser)]
#[command(name = "portcullis", version, about = "Privileged-access gateway: browser SSH/Telnet/RDP with vaulted credentials", after_help = settings_help())]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args)]
struct GlobalArgs {
    /// TOML configuration file [env: PORTCULLIS_CONFIG] (default: ./portcullis.toml if present)
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory [env: PORTCULLIS_DATA_DIR] (default ./portcullis-data)
    #[arg(long, global = true)]
    data_dir: Option<String>,
    /// HTTPS address:port [env: PORTCULLIS_LISTEN] (default 127.0.0.1:7272)
    #[arg(long, global = true)]
    listen: Option<String>,
    /// sqlite://PATH or postgres://... [env: PORTCULLIS_DATABASE_URL]
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Master key file [env: PORTCULLIS_MASTER_KEY_FILE] (default <data_dir>/master.key)
    #[arg(long, global = true)]
    master_key_file: Option<String>,
    /// PEM certificate chain [env: PORTCULLIS_TLS_CERT]
    #[arg(long, global = true)]
    tls_cert: Option<String>,
    /// PEM private key [env: PORTCULLIS_TLS_KEY]
    #[arg(long, global = true)]
    tls_key: Option<String>,
    /// Refuse to start if the master key is inside the data directory [env: PORTCULLIS_STRICT]
    #[arg(long, global = true)]
    strict: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given)
    Serve,
    /// Master key operations
    Key {
        #[command(subcommand)]
        op: KeyOp,
    },
    /// Audit log operations
    Audit {
        #[command(subcommand)]
        op: AuditOp,
    },
    /// Session recording operations
    Recording {
        #[command(subcommand)]
        op: RecordingOp,
    },
    /// Rotate or verify an account's secret (queued for the running server)
    Rotation {
        #[command(subcommand)]
        op: RotationOp,
    },
}

#[derive(Subcommand)]
enum RotationOp {
    /// Queue a rotation of ACCOUNT (an account id, or user@resource)
    Rotate {
        account: String,
        /// Follow the job until it ends (exit status 1 if it failed)
        #[arg(long)]
        wait: bool,
    },
    /// Queue a verification of ACCOUNT: a login with the stored secret
    Verify {
        account: String,
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
enum RecordingOp {
    /// Check a recording's chain, manifest signature and (with the server's keys) that every
    /// chunk decrypts; names the first bad chunk. TARGET: a recording id (uses this server's
    /// data), a .pcr file (manifest next to it), or an exported .bundle.json (offline). Exit
    /// status: 0 verified and complete, 1 fails verification, 3 incomplete (no manifest)
    Verify {
        target: String,
        /// The server's recording public key (base64) to check the signature against; see
        /// GET /api/v1/recordings/signing-key
        #[arg(long)]
        public_key: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeyOp {
    /// Generate a new master key and re-wrap every data key under it (crash-safe, resumable)
    Rotate,
    /// List, then with --yes delete, what key rotations kept: retired data keys nothing is
    /// sealed under any more, retired master-key files and pre-rotation database snapshots
    Purge {
        /// Delete them (without it, only list)
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum AuditOp {
    /// Verify the audit hash chain; names the first altered, inserted or deleted row
    Verify,
}

fn settings_help() -> String {
    let mut s = String::from("Settings (TOML key / environment variable / default):\n");
    for (k, env, def, what) in config::SETTINGS {
        s.push_str(&format!("  {k:<22} {env:<33} {def}\n      {what}\n"));
    }
    s.push_str("Precedence: flags > environment > TOML file > defaults.");
    s
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let g = cli.global;
    let flags = FlagConfig {
        config: g.config,
        data_dir: g.data_dir,
        listen: g.listen,
        database_url: g.database_url,
        master_key_file: g.master_key_file,
        tls_cert: g.tls_cert,
        tls_key: g.tls_key,
        strict: g.strict,
    };
    let cfg = match Config::load(&flags, &config::process_env()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("portcullis: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portcullis: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => portcullis::server::serve(cfg).await.map(|_| 0),
            Command::Key { op: KeyOp::Rotate } => {
                portcullis::cli::key::rotate(cfg).await.map(|_| 0)
            }
            Command::Key {
                op: KeyOp::Purge { yes },
            } => portcullis::cli::key::purge(cfg, yes).await.map(|_| 0),
            Command::Audit {
                op: AuditOp::Verify,
            } => portcullis::cli::audit::verify(cfg).await.map(status),
            Command::Recording {
                op: RecordingOp::Verify { target, public_key },
            } => portcullis::cli::recording::verify(cfg, &target, public_key.as_deref())
                .await
                .map(|v| v as u8),
            Command::Rotation {
                op: RotationOp::Rotate { account, wait },
            } => portcullis::cli::rotation::run(
                cfg,
                portcullis::rotation::JobKind::Rotate,
                &account,
                wait,
            )
            .await
            .map(status),
            Command::Rotation {
                op: RotationOp::Verify { account, wait },
            } => portcullis::cli::rotation::run(
                cfg,
                portcullis::rotation::JobKind::Verify,
                &account,
                wait,
            )
            .await
            .map(status),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("portcullis: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status 0 for a check that passed, 1 for one that did not.
fn status(passed: bool) -> u8 {
    u8::from(!passed)
}
