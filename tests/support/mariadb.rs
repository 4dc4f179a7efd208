//! Why: MariaDB rotation is tested against a real server. This drives `mariadb.sh` (beside
//! this file): one private `mariadbd` per test process on a 127.0.0.1 port, set up over its
//! Unix socket, stopped (and its data removed) when the process exits.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub struct MariaDb {
    pub port: u16,
    pub dir: PathBuf,
}

fn script(args: &[&str]) -> std::process::Output {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/mariadb.sh");
    Command::new("sh")
        .arg(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("mariadb.sh: {e}"))
}

pub fn mariadb() -> &'static MariaDb {
    static S: OnceLock<MariaDb> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("portcullis-mariadb-{}", std::process::id()));
        let out = script(&[
            "start",
            dir.to_str().unwrap_or_default(),
            &std::process::id().to_string(),
        ]);
        assert!(
            out.status.success(),
            "mariadb.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("mariadb.sh start prints the port");
        MariaDb { port, dir }
    })
}

impl MariaDb {
    /// Runs SQL as root; its output.
    pub fn sql(&self, sql: &str) -> String {
        let out = script(&["sql", self.dir.to_str().unwrap_or_default(), sql]);
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Whether `user` logs in over TCP with `password` (the mariadb client, not the gateway).
    pub fn login_works(&self, user: &str, password: &str) -> bool {
        script(&[
            "login",
            self.dir.to_str().unwrap_or_default(),
            &self.port.to_string(),
            user,
            password,
        ])
        .status
        .success()
    }
}
