//! Why: the SSH adapter is tested against real OpenSSH. One private `sshd` per test process
//! on a 127.0.0.1 port, with its own host key and config; test users are real local users
//! (sshd authenticates through PAM) with random names. A watchdog shell stops sshd and
//! deletes the users and files when the test process exits, even if it crashes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Sshd {
    pub port: u16,
    pub dir: PathBuf,
    /// `SHA256:...` of the server's host key.
    pub fingerprint: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(52222)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn fingerprint_of(pub_file: &std::path::Path) -> String {
    let out = run(Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(pub_file));
    out.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

pub fn sshd() -> &'static Sshd {
    static S: OnceLock<Sshd> = OnceLock::new();
    S.get_or_init(|| start().unwrap_or_else(|e| panic!("cannot start the test sshd: {e}")))
}

fn start() -> Result<Sshd, String> {
    if !std::path::Path::new("/usr/sbin/sshd").exists() {
        return Err("/usr/sbin/sshd not found (apt package openssh-server)".into());
    }
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("portcullis-sshd-{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("keys")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all("/run/sshd").map_err(|e| e.to_string())?;
    let host_key = dir.join("host_ed25519");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&host_key));
    let conf = dir.join("sshd_config");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {d}/sshd.pid\nPasswordAuthentication yes\nKbdInteractiveAuthentication yes\nUsePAM yes\nPubkeyAuthentication yes\nAuthorizedKeysFile {d}/keys/%u\nStrictModes no\nPermitRootLogin no\nAllowTcpForwarding yes\nX11Forwarding no\nPrintMotd no\nLogLevel VERBOSE\n",
            hk = host_key.display(),
            d = dir.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    run(Command::new("/usr/sbin/sshd")
        .arg("-t")
        .arg("-f")
        .arg(&conf));
    std::fs::write(dir.join("users"), "").map_err(|e| e.to_string())?;
    let script = format!(
        "/usr/sbin/sshd -D -e -f '{conf}' >'{d}/sshd.log' 2>&1 & P=$!; while kill -0 {pid} 2>/dev/null && kill -0 $P 2>/dev/null; do sleep 1; done; kill $P 2>/dev/null; wait $P 2>/dev/null; for u in $(cat '{d}/users'); do pkill -KILL -u \"$u\" 2>/dev/null; userdel -r \"$u\" 2>/dev/null; done; rm -rf '{d}'",
        conf = conf.display(),
        d = dir.display(),
        pid = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "sshd did not listen: {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let fingerprint = fingerprint_of(&dir.join("host_ed25519.pub"));
    Ok(Sshd {
        port,
        dir,
        fingerprint,
    })
}

impl Sshd {
    /// A new local user with this password and a bash login shell; deleted at exit.
    pub fn user(&self, password: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "pct{}u{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let mut users = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("users"))
            .expect("users file");
        writeln!(users, "{name}").expect("record user");
        run(Command::new("useradd").args(["-m", "-s", "/bin/bash", &name]));
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        chpasswd
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{name}:{password}\n").as_bytes())
            .expect("write");
        assert!(chpasswd.wait().expect("chpasswd").success());
        name
    }

    /// Generates a key pair (ed25519, with `passphrase` if not empty), authorizes it for
    /// `user` and returns the private key in OpenSSH format.
    pub fn key_for(&self, user: &str, passphrase: &str) -> String {
        let path = self.dir.join(format!("id_{user}"));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", user, "-f"])
            .arg(&path));
        let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
        std::fs::write(self.dir.join("keys").join(user), public).expect("authorized keys");
        std::fs::read_to_string(&path).expect("private key")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}
