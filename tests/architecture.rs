//! The dependency rules of ARCHITECTURE.md ("Layers and invariants"), checked from the code:
//! the crates' declared dependencies (`cargo metadata`) and the `crate::` paths of every
//! source file. A new top-level module must be given a layer here, and an import that breaks
//! a rule fails this test with the file that holds it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The root crate's top-level modules by layer: a module may use its own layer and the ones
/// below, never one above.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "error",
            "db",
            "config",
            "network_policy",
            "tls",
            "keys",
            "audit",
            "throttle",
            "core",
        ],
    ),
    (
        "domain",
        &[
            "identity",
            "vault",
            "audited",
            "hop_path",
            "host_key_pins",
            "telnet_logon",
            "rdp_settings",
        ],
    ),
    (
        "services",
        &[
            "recordings",
            "rotation",
            "sessions",
            "session_paths",
            "session_limits",
            "revocation",
            "app",
            "web_assets",
        ],
    ),
    ("interface", &["api", "server", "cli", "lib", "main"]),
];

/// Services still take the whole `App` (which holds them): the one import circle left, named
/// in ARCHITECTURE.md. Edges into `app` from these are not counted as circles.
const STILL_TAKE_APP: &[&str] = &[
    "recordings",
    "rotation",
    "sessions",
    "session_paths",
    "session_limits",
    "revocation",
    "api",
    "server",
    "cli",
];

/// Within the interface layer: who may use whom.
const INTERFACE_RULES: &[(&str, &[&str])] = &[
    ("api", &[]),
    ("server", &["api"]),
    ("cli", &["server"]),
    ("main", &["server", "cli", "api"]),
    ("lib", &["api", "server", "cli"]),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The files of module `name` under `src`: `name.rs` and everything in `name/`.
fn module_files(src: &Path, name: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = src.join(format!("{name}.rs"));
    if single.exists() {
        files.push(single);
    }
    if src.join(name).is_dir() {
        rust_files(&src.join(name), &mut files);
    }
    files
}

/// The source without `//` comments (doc comments name modules in prose).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file refers to as `crate::<name>`.
fn crate_refs(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let after = &rest[i + prefix.len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `crate::x` preceded by an identifier character is `somecrate::x`, not ours.
        let before_ok = rest[..i]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if before_ok && !name.is_empty() {
            out.insert(name);
        }
        rest = after;
    }
    out
}

/// For every top-level module of `src/`, the modules it uses, with one file per edge.
fn module_graph() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a path");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let code = code_of(&std::fs::read_to_string(&f).expect("readable source"));
        let entry = graph.entry(module.clone()).or_default();
        for used in crate_refs(&code, "crate::") {
            if used != module {
                entry.entry(used).or_insert_with(|| f.clone());
            }
        }
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// Every import in the root crate respects the layers, and within the interface layer the
/// API never reaches the server or the CLI.
#[test]
fn root_crate_modules_only_use_their_layer_or_below() {
    let graph = module_graph();
    let mut broken = Vec::new();
    for (module, uses) in &graph {
        let Some(from) = layer_of(module) else {
            broken.push(format!(
                "src/{module} has no layer: add it to LAYERS in tests/architecture.rs and to ARCHITECTURE.md"
            ));
            continue;
        };
        for (used, file) in uses {
            let Some(to) = layer_of(used) else {
                continue;
            };
            let allowed = if from == to && LAYERS[from].0 == "interface" {
                INTERFACE_RULES
                    .iter()
                    .find(|(m, _)| m == module)
                    .is_some_and(|(_, ok)| ok.contains(&used.as_str()))
            } else {
                to <= from
            };
            if !allowed {
                broken.push(format!(
                    "{module} ({}) uses {used} ({}) in {}",
                    LAYERS[from].0,
                    LAYERS[to].0,
                    file.display()
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "layer rules broken:\n{}",
        broken.join("\n")
    );
}

/// No two top-level modules use each other, directly or through others (a module and its
/// children are one module), apart from the services' use of `App`.
#[test]
fn root_crate_has_no_import_circle() {
    let graph = module_graph();
    let edges: BTreeMap<&str, Vec<&str>> = graph
        .iter()
        .map(|(m, uses)| {
            let to = uses
                .keys()
                .map(String::as_str)
                .filter(|u| !(*u == "app" && STILL_TAKE_APP.contains(&m.as_str())))
                .filter(|u| graph.contains_key(*u))
                .collect();
            (m.as_str(), to)
        })
        .collect();
    // A depth-first search that reports the first circle it finds, as a path.
    fn visit<'a>(
        n: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(i) = path.iter().position(|p| *p == n) {
            let mut circle = path[i..].to_vec();
            circle.push(n);
            return Some(circle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n);
        for next in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n);
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(circle) = visit(n, &edges, &mut Vec::new(), &mut done) {
            panic!("import circle: {}", circle.join(" -> "));
        }
    }
}

/// The protocol adapters never use one another: what they share (host-key judgement, TCP
/// connection, events) lives beside them.
#[test]
fn gateway_adapters_never_use_each_other() {
    let src = root().join("gateway/src");
    let adapters = ["ssh", "telnet", "rdp"];
    let mut broken = Vec::new();
    for adapter in adapters {
        let files = module_files(&src, adapter);
        assert!(!files.is_empty(), "no source for the {adapter} adapter");
        for f in files {
            let code = code_of(&std::fs::read_to_string(&f).expect("readable source"));
            for used in crate_refs(&code, "crate::") {
                if used != adapter && adapters.contains(&used.as_str()) {
                    broken.push(format!("{} uses the {used} adapter", f.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// Declared dependencies of each workspace crate, from `cargo metadata`.
fn declared_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let mut deps = BTreeMap::new();
    for p in v["packages"].as_array().into_iter().flatten() {
        let names = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str().map(str::to_string))
            .collect();
        deps.insert(p["name"].as_str().unwrap_or_default().to_string(), names);
    }
    deps
}

/// The recorder knows no target, no live session, no network and no database; the gateway
/// knows no HTTP and no database.
#[test]
fn the_recorder_and_the_gateway_keep_to_their_concerns() {
    let deps = declared_dependencies();
    let forbidden: &[(&str, &[&str])] = &[
        (
            "recorder",
            &[
                "gateway",
                "russh",
                "tokio",
                "axum",
                "hyper",
                "sqlx",
                "reqwest",
                "portcullis",
            ],
        ),
        (
            "gateway",
            &["axum", "hyper", "sqlx", "recorder", "portcullis"],
        ),
    ];
    let mut broken = Vec::new();
    for (krate, banned) in forbidden {
        let Some(declared) = deps.get(*krate) else {
            broken.push(format!("no crate named {krate} in the workspace"));
            continue;
        };
        for d in declared {
            if banned.contains(&d.as_str()) || (*krate == "recorder" && d.starts_with("ironrdp")) {
                broken.push(format!("{krate} depends on {d}"));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// `Secret` lives in a leaf crate, so what holds a password needs no protocol library: the
/// secret crate depends on zeroize alone, and the root crate's foundation (keys, core, db,
/// audit, ...) uses nothing of the gateway.
#[test]
fn secrets_need_no_protocol_library() {
    let deps = declared_dependencies();
    let secret: Vec<&String> = deps
        .get("portcullis-secret")
        .map(|d| d.iter().collect())
        .unwrap_or_default();
    assert_eq!(
        secret,
        vec!["zeroize"],
        "portcullis-secret depends on {secret:?}"
    );
    let src = root().join("src");
    let (_, foundation) = LAYERS[0];
    let mut broken = Vec::new();
    for module in foundation {
        for f in module_files(&src, module) {
            let code = code_of(&std::fs::read_to_string(&f).expect("readable source"));
            if !crate_refs(&code, "gateway::").is_empty() {
                broken.push(format!("{} uses the gateway crate", f.display()));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_checks_see_a_forbidden_import() {
    // The scanner itself: a path in code counts, one in a comment or another crate does not.
    let code = code_of("use crate::sessions::X; // crate::api\nlet y = mycrate::vault::z;");
    assert_eq!(
        crate_refs(&code, "crate::"),
        BTreeSet::from(["sessions".to_string()])
    );
}
