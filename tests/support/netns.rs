//! Why: hop-chain tests need targets reachable only through landing servers. This drives
//! `netns.sh` (beside this file): a line of network namespaces with a real sshd on every
//! node and telnetd on the last, torn down when the `Chain` is dropped (and by a watchdog if
//! the test process dies).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Node {
    /// The node's address on the link towards the gateway (sshd on port 22; the last node
    /// also has telnetd on port 23).
    pub addr: String,
    pub fingerprint: String,
}

pub struct Chain {
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

fn script(args: &[&str]) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/netns.sh");
    let out = Command::new("sh")
        .arg(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("netns.sh: {e}"));
    assert!(
        out.status.success(),
        "netns.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Chain {
    /// `n` nodes in a line: node 1 is reachable from here, node k only from node k-1.
    pub fn up(n: usize) -> Chain {
        static SLOT: AtomicU32 = AtomicU32::new(0);
        let slot = SLOT.fetch_add(1, Ordering::SeqCst) % 32;
        let dir =
            std::env::temp_dir().join(format!("portcullis-netns-{}-{slot}", std::process::id()));
        let out = script(&[
            "up",
            dir.to_str().unwrap_or_default(),
            &std::process::id().to_string(),
            &slot.to_string(),
            &n.to_string(),
        ]);
        let nodes = out
            .lines()
            .map(|l| {
                let mut p = l.split_whitespace();
                Node {
                    addr: p.next().unwrap_or_default().to_string(),
                    fingerprint: p.next().unwrap_or_default().to_string(),
                }
            })
            .collect::<Vec<_>>();
        assert_eq!(nodes.len(), n, "netns.sh up printed {out:?}");
        Chain { nodes, dir }
    }

    fn dir_str(&self) -> &str {
        self.dir.to_str().unwrap_or_default()
    }

    /// Node `k` (1-based) stops allowing TCP forwarding.
    pub fn no_forwarding(&self, k: usize) {
        script(&["noforward", self.dir_str(), &k.to_string()]);
    }

    /// Panics unless node `k` (1-based) can be reached from here only through the chain.
    pub fn assert_isolated(&self, k: usize) {
        script(&["isolated", self.dir_str(), &k.to_string()]);
    }

    /// The network namespace of node `k` (1-based).
    pub fn namespace(&self, k: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("ns{k}")))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Node `k` (1-based) gets a new host key; returns its fingerprint.
    pub fn rekey(&self, k: usize) -> String {
        script(&["rekey", self.dir_str(), &k.to_string()])
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        script(&["down", self.dir_str()]);
    }
}
