//! Why: a private PostgreSQL 15 cluster for tests and benchmarks, started from the Debian
//! binaries in a temp dir on a 127.0.0.1 port (peers.md). One cluster per test process; every
//! caller gets its own fresh database. A watchdog shell stops the server and removes its
//! files when the test process exits, even if it crashes, so nothing is left behind.
//! Shared by tests/integration and benches/ via `#[path]`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
}

const BIN: &str = "/usr/lib/postgresql/15/bin";

fn is_root() -> bool {
    // SAFETY-free check: /proc/self/status Uid line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// initdb and postgres refuse to run as root: drop to the `postgres` user with setpriv
/// (which execs, so the PID we get is the server's own).
fn as_pg(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            program,
        ]);
        c
    } else {
        Command::new(program)
    }
}

/// A CA of the tests' own and a server certificate it signed for 127.0.0.1 and localhost,
/// in the data directory (`ca.crt` is what a client trusts; see `Cluster::ca_pem`). TLS is
/// offered, not required: clients that do not ask for it connect as before.
fn tls_files(data: &Path) -> Result<(), String> {
    let script = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj /CN=portcullis-test-ca -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost
basicConstraints=CA:FALSE
' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3 -extfile server.ext -out server.crt 2>/dev/null
chmod 600 server.key ca.key"#;
    let out = as_pg("sh")
        .args(["-c", script])
        .current_dir(data)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "the test cluster's certificates: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(55432)
}

pub fn cluster() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(|| {
        start().unwrap_or_else(|e| panic!("cannot start the test PostgreSQL cluster: {e}"))
    })
}

fn start() -> Result<Cluster, String> {
    if !Path::new(BIN).join("postgres").exists() {
        return Err(format!(
            "PostgreSQL 15 server binaries not found in {BIN} (install postgresql-15)"
        ));
    }
    let dir = std::env::temp_dir().join(format!(
        "portcullis-pg-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("chown of the cluster dir failed".into());
        }
    }
    let data = dir.join("data");
    let out = as_pg(&format!("{BIN}/initdb"))
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "-D",
        ])
        .arg(&data)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    tls_files(&data)?;
    let port = free_port();
    let log = dir.join("postgres.log");
    // The watchdog: runs the server, polls for the test process, then stops and cleans up.
    let server = format!(
        "{} {BIN}/postgres -D '{}' -p {port} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key",
        if is_root() { "setpriv --reuid=postgres --regid=postgres --init-groups" } else { "" },
        data.display(),
        dir.display()
    );
    let script = format!(
        "{server} >'{}' 2>&1 & P=$!; while kill -0 {} 2>/dev/null && kill -0 $P 2>/dev/null; do sleep 1; done; kill $P 2>/dev/null; wait $P 2>/dev/null; rm -rf '{}'",
        log.display(),
        std::process::id(),
        dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(format!("{BIN}/pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ready {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "postgres did not become ready: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Cluster { port, dir })
}

impl Cluster {
    /// The CA the cluster's TLS certificate chains to (PEM).
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.join("data").join("ca.crt")).unwrap_or_default()
    }

    /// Runs SQL as the superuser and returns psql's output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-c",
                sql,
            ])
            .output()
            .unwrap_or_else(|e| panic!("psql: {e}"));
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new, empty database; returns its URL.
    pub fn fresh_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The name of a group role whose members must log in with their password (SCRAM) over
    /// TCP; everyone else keeps the cluster's `trust`. Rotation tests need the server to
    /// check passwords, the other tests do not.
    pub fn password_group(&self) -> &'static str {
        static DONE: OnceLock<()> = OnceLock::new();
        DONE.get_or_init(|| {
            self.psql("postgres", "CREATE ROLE pw_login NOLOGIN");
            let hba = self.data_dir().join("pg_hba.conf");
            let text = std::fs::read_to_string(&hba).unwrap_or_else(|e| panic!("pg_hba.conf: {e}"));
            std::fs::write(
                &hba,
                format!("host all +pw_login 127.0.0.1/32 scram-sha-256\n{text}"),
            )
            .unwrap_or_else(|e| panic!("pg_hba.conf: {e}"));
            self.psql("postgres", "SELECT pg_reload_conf()");
            // The reload is asynchronous: wait until a wrong password is refused.
            self.psql(
                "postgres",
                "CREATE ROLE pw_probe LOGIN PASSWORD 'probe-pw' IN ROLE pw_login",
            );
            for _ in 0..100 {
                if !self.login_works("pw_probe", "not-the-password") {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("pg_hba.conf reload did not take effect");
        });
        "pw_login"
    }

    /// Whether `user` can log in over TCP with `password`.
    pub fn login_works(&self, user: &str, password: &str) -> bool {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                "postgres",
                "-w",
                "-qAt",
                "-c",
                "SELECT 1",
            ])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// The cluster's data directory (for scanning files for canaries).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
}
