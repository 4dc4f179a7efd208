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

pub fn sshd() -> &'static Sshd {
    static S: OnceLock<Sshd> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("portcullis-sshd-{}", std::process::id()));
        let out = script(&[
            "start",
            dir.to_str().unwrap_or_default(),
            &std::process::id().to_string(),
        ]);
        let mut parts = out.split_whitespace();
        let port = parts
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("sshd.sh start printed {out:?}"));
        let fingerprint = parts.next().unwrap_or_default().to_string();
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
