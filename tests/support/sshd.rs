//! Why: the SSH adapter is tested against real OpenSSH. This drives `sshd.sh` (beside this
//! file, shared with the browser tests): one private `sshd` per test process on a 127.0.0.1
//! port, throw-away local users, and a watchdog that cleans up when the process exits.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

pub struct Sshd {
    pub port: u16,
    pub dir: PathBuf,
    /// `SHA256:...` of the server's host key.
    pub fingerprint: String,
}

fn script(args: &[&str]) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/sshd.sh");
    let out = Command::new("sh")
        .arg(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("sshd.sh: {e}"));
    assert!(
        out.status.success(),
        "sshd.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `sshd.sh start|private` prints "PORT SHA256:fingerprint".
fn port_and_fingerprint(out: &str) -> (u16, String) {
    let mut parts = out.split_whitespace();
    let port = parts
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("sshd.sh printed {out:?}"));
    (port, parts.next().unwrap_or_default().to_string())
}

pub fn sshd() -> &'static Sshd {
    static S: OnceLock<Sshd> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("portcullis-sshd-{}", std::process::id()));
        let out = script(&[
            "start",
            dir.to_str().unwrap_or_default(),
            &std::process::id().to_string(),
        ]);
        let (port, fingerprint) = port_and_fingerprint(&out);
        Sshd {
            port,
            dir,
            fingerprint,
        }
    })
}

impl Sshd {
    fn dir_str(&self) -> &str {
        self.dir.to_str().unwrap_or_default()
    }

    /// A new local user with this password and a bash login shell; deleted at exit.
    pub fn user(&self, password: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "pct{}u{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        script(&["user", self.dir_str(), &name, password]);
        name
    }

    /// Authorizes a new ed25519 key (with `passphrase` if not empty) for `user`; returns the
    /// private key in OpenSSH format.
    pub fn key_for(&self, user: &str, passphrase: &str) -> String {
        let path = script(&["key", self.dir_str(), user, passphrase]);
        std::fs::read_to_string(path).expect("private key")
    }

    /// The port of a Telnet server (inetutils-telnetd) for the same users, started once.
    pub fn telnet_port(&self) -> u16 {
        static T: OnceLock<u16> = OnceLock::new();
        *T.get_or_init(|| {
            let out = script(&["telnet", self.dir_str(), &std::process::id().to_string()]);
            out.parse()
                .unwrap_or_else(|_| panic!("sshd.sh telnet printed {out:?}"))
        })
    }

    /// Writes `text` to `~user/name` with `mode` (e.g. "600", "755"), owned by the user.
    pub fn write_home_file(&self, user: &str, name: &str, mode: &str, text: &str) {
        use std::io::Write;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/sshd.sh");
        let mut child = Command::new("sh")
            .arg(path)
            .args(["file", self.dir_str(), user, name, mode])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sshd.sh file");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(text.as_bytes()).expect("file text");
        }
        assert!(child.wait().expect("sshd.sh file").success());
    }

    /// Makes `path` the user's login shell.
    pub fn set_shell(&self, user: &str, path: &str) {
        script(&["shell", self.dir_str(), user, path]);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

/// A private OpenSSH + Telnet server with its own copy of /etc (see `sshd.sh private`): the
/// tests that set root's password, grant sudo or change passwords use it, so the machine's
/// accounts are never touched.
pub struct PrivateSshd {
    pub port: u16,
    pub telnet_port: u16,
    pub dir: PathBuf,
    pub fingerprint: String,
}

pub fn private_sshd() -> &'static PrivateSshd {
    static S: OnceLock<PrivateSshd> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("portcullis-psshd-{}", std::process::id()));
        let out = script(&[
            "private",
            dir.to_str().unwrap_or_default(),
            &std::process::id().to_string(),
        ]);
        let (port, fingerprint) = port_and_fingerprint(&out);
        let telnet_port = std::fs::read_to_string(dir.join("telnet_port"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .expect("the private server's Telnet port");
        PrivateSshd {
            port,
            telnet_port,
            dir,
            fingerprint,
        }
    })
}

impl PrivateSshd {
    fn dir_str(&self) -> &str {
        self.dir.to_str().unwrap_or_default()
    }

    /// A new user of the private server with this password; its name.
    pub fn user(&self, password: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ppct{}u{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::SeqCst)
        );
        script(&["puser", self.dir_str(), &name, password]);
        name
    }

    /// `name` may run anything through sudo, with its own password.
    pub fn sudoer(&self, name: &str) {
        script(&["psudo", self.dir_str(), name]);
    }

    /// A new key authorized in `~user/.ssh/authorized_keys`; the private key (OpenSSH).
    pub fn key_for(&self, user: &str) -> String {
        let path = script(&["pkey", self.dir_str(), user]);
        std::fs::read_to_string(path).expect("private key")
    }

    /// Changes `user`'s password on the server, as someone bypassing the vault would.
    pub fn set_password(&self, user: &str, password: &str) {
        script(&["pset", self.dir_str(), user, password]);
    }

    /// `~user/.ssh/authorized_keys`.
    pub fn authorized_keys(&self, user: &str) -> String {
        script(&["pcat", self.dir_str(), user, ".ssh/authorized_keys"])
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

struct AnyHostKey;

impl russh::client::Handler for AnyHostKey {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

async fn ssh_handle(host: &str, port: u16) -> russh::client::Handle<AnyHostKey> {
    let config = std::sync::Arc::new(russh::client::Config::default());
    russh::client::connect(config, (host, port), AnyHostKey)
        .await
        .expect("an SSH connection")
}

/// Whether `user` logs in to `host:port` over SSH with `password` (password or
/// keyboard-interactive authentication): the tests' own check, independent of the gateway.
pub async fn password_login_works(host: &str, port: u16, user: &str, password: &str) -> bool {
    let mut h = ssh_handle(host, port).await;
    if h.authenticate_password(user, password)
        .await
        .is_ok_and(|r| r.success())
    {
        return true;
    }
    let mut h = ssh_handle(host, port).await;
    let mut reply = match h.authenticate_keyboard_interactive_start(user, None).await {
        Ok(r) => r,
        Err(_) => return false,
    };
    for _ in 0..3 {
        match reply {
            russh::client::KeyboardInteractiveAuthResponse::Success => return true,
            russh::client::KeyboardInteractiveAuthResponse::Failure { .. } => return false,
            russh::client::KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                let answers = prompts.iter().map(|_| password.to_string()).collect();
                reply = match h.authenticate_keyboard_interactive_respond(answers).await {
                    Ok(r) => r,
                    Err(_) => return false,
                };
            }
        }
    }
    false
}

/// Whether `user` logs in to `host:port` with the private key `pem` (OpenSSH format).
pub async fn key_login_works(host: &str, port: u16, user: &str, pem: &str) -> bool {
    let Ok(key) = russh::keys::decode_secret_key(pem, None) else {
        return false;
    };
    let mut h = ssh_handle(host, port).await;
    let hash = h.best_supported_rsa_hash().await.ok().flatten().flatten();
    h.authenticate_publickey(
        user,
        russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(key), hash),
    )
    .await
    .is_ok_and(|r| r.success())
}
