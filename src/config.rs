//! Why: one place decides every setting, from (lowest to highest precedence) built-in
//! defaults, a TOML file, `PORTCULLIS_*` environment variables and command-line flags, and
//! every error names the setting and where its bad value came from, so a failed start tells
//! the operator exactly what to fix.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where a setting's value came from; used in error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => write!(f, "the built-in default"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Flag(n) => write!(f, "flag --{n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}` in {origin}: {reason}")]
pub struct ConfigError {
    pub setting: String,
    pub origin: Origin,
    pub reason: String,
}

/// The TOML file, as written by an operator. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<String>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub master_key_file: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub strict: Option<bool>,
    pub log: Option<String>,
    pub session_idle_timeout: Option<String>,
    pub web_login_lifetime: Option<String>,
    pub login_max_failures: Option<u32>,
    pub rotation_concurrency: Option<u32>,
    pub rotation_per_target: Option<u32>,
    pub rotation_verify_at: Option<String>,
    pub login_lockout: Option<String>,
    pub syslog: Option<String>,
    pub host_key_policy: Option<String>,
    pub session_reattach_grace: Option<String>,
    pub record_terminal_sessions: Option<bool>,
    pub record_graphical_sessions: Option<bool>,
    pub record_input: Option<bool>,
    pub recording_failure: Option<String>,
    pub recording_retention: Option<String>,
    pub auditors_may_observe: Option<bool>,
    pub notify_owner_of_observers: Option<bool>,
    pub session_idle_limit: Option<String>,
    pub session_max_duration: Option<String>,
    pub max_sessions: Option<u32>,
    pub max_sessions_per_user: Option<u32>,
    pub resource_networks: Option<String>,
}

/// Values given on the command line (already parsed by clap). `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct FlagConfig {
    pub config: Option<PathBuf>,
    pub data_dir: Option<String>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub master_key_file: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub strict: bool,
}

/// Syslog forwarding target (RFC 5424).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogTarget {
    Udp(SocketAddr),
    Tcp(SocketAddr),
}

/// The resolved configuration the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub config_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub database_url: String,
    pub master_key_file: PathBuf,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub strict: bool,
    pub log: String,
    pub session_idle_timeout: Duration,
    /// A web login ends this long after it began, however busy (then log in again).
    pub web_login_lifetime: Duration,
    pub login_max_failures: u32,
    /// Rotation and verification jobs running at once, in all and against one resource.
    pub rotation_concurrency: usize,
    pub rotation_per_target: usize,
    /// The nightly verification of every rotatable account: minutes after midnight UTC,
    /// None when switched off.
    pub rotation_verify_at: Option<u32>,
    pub login_lockout: Duration,
    pub syslog: Option<SyslogTarget>,
    /// First contact with an SSH host key: trust it (and pin it), or wait for approval.
    pub host_key_policy: HostKeyFirstUse,
    /// How long a session survives its browser going away before it is ended.
    pub session_reattach_grace: Duration,
    /// Global recording toggles ("record CLI sessions", "record graphical sessions").
    pub record_terminal_sessions: bool,
    pub record_graphical_sessions: bool,
    /// Keystrokes go into recordings (redacted at password prompts).
    pub record_input: bool,
    /// What a session does when its recording cannot be written.
    pub recording_failure: RecordingFailure,
    /// Recordings older than this are purged (None: kept forever).
    pub recording_retention: Option<Duration>,
    /// Password Auditors may watch live sessions (administrators always may).
    pub auditors_may_observe: bool,
    /// The owner of a session is shown who is watching it.
    pub notify_owner_of_observers: bool,
    /// Default limits of a session (resources may override): no typing for this long, or
    /// this long in all, ends it, with a warning first. None: no limit.
    pub session_idle_limit: Option<Duration>,
    pub session_max_duration: Option<Duration>,
    /// Live sessions the gateway holds at once, and one user may own at once: a new one
    /// past either is refused naming the setting.
    pub max_sessions: usize,
    pub max_sessions_per_user: usize,
    /// Where resources may point (`network_policy`).
    pub resource_networks: crate::network_policy::ResourceNetworks,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingFailure {
    /// End the session with a clear message (default: no unrecorded privileged work).
    Terminate,
    /// Keep the session going, unrecorded, and raise an audit alert.
    Continue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKeyFirstUse {
    Trust,
    Approve,
}

/// Every setting with its environment variable and meaning; printed by `--help` and in the
/// README so the three stay in step.
pub const SETTINGS: &[(&str, &str, &str, &str)] = &[
    (
        "data_dir",
        "PORTCULLIS_DATA_DIR",
        "./portcullis-data",
        "directory for the database, keys, TLS files",
    ),
    (
        "listen",
        "PORTCULLIS_LISTEN",
        "127.0.0.1:7272",
        "address:port of the single HTTPS port",
    ),
    (
        "database_url",
        "PORTCULLIS_DATABASE_URL",
        "sqlite://<data_dir>/portcullis.db",
        "sqlite://PATH or postgres://USER:PASS@HOST:PORT/DB",
    ),
    (
        "master_key_file",
        "PORTCULLIS_MASTER_KEY_FILE",
        "<data_dir>/master.key",
        "master key file; keep it outside data_dir in production",
    ),
    (
        "tls_cert",
        "PORTCULLIS_TLS_CERT",
        "generated self-signed",
        "PEM certificate chain (with tls_key)",
    ),
    (
        "tls_key",
        "PORTCULLIS_TLS_KEY",
        "generated",
        "PEM private key (with tls_cert)",
    ),
    (
        "strict",
        "PORTCULLIS_STRICT",
        "false",
        "refuse to start with the master key inside data_dir",
    ),
    (
        "log",
        "PORTCULLIS_LOG",
        "info",
        "log filter, e.g. info or portcullis=debug",
    ),
    (
        "session_idle_timeout",
        "PORTCULLIS_SESSION_IDLE_TIMEOUT",
        "30m",
        "web login idle timeout (s, m, h)",
    ),
    (
        "web_login_lifetime",
        "PORTCULLIS_WEB_LOGIN_LIFETIME",
        "12h",
        "a web login ends this long after it began, however busy",
    ),
    (
        "login_max_failures",
        "PORTCULLIS_LOGIN_MAX_FAILURES",
        "5",
        "failed logins before a temporary lockout",
    ),
    (
        "login_lockout",
        "PORTCULLIS_LOGIN_LOCKOUT",
        "15m",
        "how long a lockout lasts",
    ),
    (
        "syslog",
        "PORTCULLIS_SYSLOG",
        "off",
        "forward audit events: udp://HOST:PORT or tcp://HOST:PORT",
    ),
    (
        "rotation_concurrency",
        "PORTCULLIS_ROTATION_CONCURRENCY",
        "8",
        "rotation and verification jobs running at once",
    ),
    (
        "rotation_per_target",
        "PORTCULLIS_ROTATION_PER_TARGET",
        "4",
        "rotation and verification jobs running at once against one resource",
    ),
    (
        "rotation_verify_at",
        "PORTCULLIS_ROTATION_VERIFY_AT",
        "02:00",
        "nightly check that every rotatable account's secret logs in (HH:MM UTC, or off)",
    ),
    (
        "host_key_policy",
        "PORTCULLIS_HOST_KEY_POLICY",
        "tofu",
        "first SSH contact: tofu (pin and audit) or approve (an admin approves)",
    ),
    (
        "session_reattach_grace",
        "PORTCULLIS_SESSION_REATTACH_GRACE",
        "60s",
        "how long a session waits for its browser to come back",
    ),
    (
        "record_terminal_sessions",
        "PORTCULLIS_RECORD_TERMINAL_SESSIONS",
        "true",
        "record SSH and Telnet sessions",
    ),
    (
        "record_graphical_sessions",
        "PORTCULLIS_RECORD_GRAPHICAL_SESSIONS",
        "true",
        "record RDP sessions",
    ),
    (
        "record_input",
        "PORTCULLIS_RECORD_INPUT",
        "true",
        "record keystrokes too (redacted at password prompts)",
    ),
    (
        "recording_failure",
        "PORTCULLIS_RECORDING_FAILURE",
        "terminate",
        "when a recording cannot be written: terminate the session, or continue (and alert)",
    ),
    (
        "recording_retention",
        "PORTCULLIS_RECORDING_RETENTION",
        "forever",
        "purge recordings older than this (e.g. 90d), or forever",
    ),
    (
        "auditors_may_observe",
        "PORTCULLIS_AUDITORS_MAY_OBSERVE",
        "false",
        "Password Auditors may watch live sessions (administrators always may)",
    ),
    (
        "notify_owner_of_observers",
        "PORTCULLIS_NOTIFY_OWNER_OF_OBSERVERS",
        "true",
        "show a session's owner who is watching",
    ),
    (
        "session_idle_limit",
        "PORTCULLIS_SESSION_IDLE_LIMIT",
        "off",
        "end a session nobody typed in for this long (e.g. 30m), with a warning first; resources may override",
    ),
    (
        "session_max_duration",
        "PORTCULLIS_SESSION_MAX_DURATION",
        "off",
        "end a session after this long in all (e.g. 8h), with a warning first; resources may override",
    ),
    (
        "max_sessions",
        "PORTCULLIS_MAX_SESSIONS",
        "1000",
        "live sessions the gateway holds at once (1 to 100000)",
    ),
    (
        "max_sessions_per_user",
        "PORTCULLIS_MAX_SESSIONS_PER_USER",
        "25",
        "live sessions one user may own at once (1 to 100000)",
    ),
    (
        "resource_networks",
        "PORTCULLIS_RESOURCE_NETWORKS",
        "default",
        "where resources may point: default (anywhere but loopback, link-local, unspecified and multicast addresses) or a comma-separated list of networks (10.0.0.0/8,2001:db8::/32)",
    ),
];

/// A raw setting value and where it came from, before it is parsed.
struct Raw {
    value: String,
    origin: Origin,
}

impl Config {
    /// Resolves the configuration. `env` is injected so tests need not touch the process
    /// environment.
    pub fn load(flags: &FlagConfig, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let (file, file_path) = load_file(flags, env)?;
        let mut raw: BTreeMap<&'static str, Raw> = BTreeMap::new();

        // Layer 1: the TOML file.
        if let Some(path) = &file_path {
            let o = || Origin::File(path.clone());
            let mut put = |k: &'static str, v: Option<String>| {
                if let Some(value) = v {
                    raw.insert(k, Raw { value, origin: o() });
                }
            };
            put("data_dir", file.data_dir);
            put("listen", file.listen);
            put("database_url", file.database_url);
            put("master_key_file", file.master_key_file);
            put("tls_cert", file.tls_cert);
            put("tls_key", file.tls_key);
            put("strict", file.strict.map(|b| b.to_string()));
            put("log", file.log);
            put("session_idle_timeout", file.session_idle_timeout);
            put("web_login_lifetime", file.web_login_lifetime);
            put(
                "login_max_failures",
                file.login_max_failures.map(|n| n.to_string()),
            );
            put("login_lockout", file.login_lockout);
            put(
                "rotation_concurrency",
                file.rotation_concurrency.map(|n| n.to_string()),
            );
            put(
                "rotation_per_target",
                file.rotation_per_target.map(|n| n.to_string()),
            );
            put("rotation_verify_at", file.rotation_verify_at);
            put("syslog", file.syslog);
            put("host_key_policy", file.host_key_policy);
            put("session_reattach_grace", file.session_reattach_grace);
            put(
                "record_terminal_sessions",
                file.record_terminal_sessions.map(|b| b.to_string()),
            );
            put(
                "record_graphical_sessions",
                file.record_graphical_sessions.map(|b| b.to_string()),
            );
            put("record_input", file.record_input.map(|b| b.to_string()));
            put("recording_failure", file.recording_failure);
            put("recording_retention", file.recording_retention);
            put(
                "auditors_may_observe",
                file.auditors_may_observe.map(|b| b.to_string()),
            );
            put(
                "notify_owner_of_observers",
                file.notify_owner_of_observers.map(|b| b.to_string()),
            );
            put("session_idle_limit", file.session_idle_limit);
            put("session_max_duration", file.session_max_duration);
            put("max_sessions", file.max_sessions.map(|n| n.to_string()));
            put("resource_networks", file.resource_networks);
            put(
                "max_sessions_per_user",
                file.max_sessions_per_user.map(|n| n.to_string()),
            );
        }
        // Layer 2: environment variables.
        for (name, var, _, _) in SETTINGS {
            if let Some(v) = env.get(*var) {
                raw.insert(
                    name,
                    Raw {
                        value: v.clone(),
                        origin: Origin::Env(var),
                    },
                );
            }
        }
        // Layer 3: flags.
        let mut flag = |k: &'static str, f: &'static str, v: &Option<String>| {
            if let Some(value) = v {
                raw.insert(
                    k,
                    Raw {
                        value: value.clone(),
                        origin: Origin::Flag(f),
                    },
                );
            }
        };
        flag("data_dir", "data-dir", &flags.data_dir);
        flag("listen", "listen", &flags.listen);
        flag("database_url", "database-url", &flags.database_url);
        flag("master_key_file", "master-key-file", &flags.master_key_file);
        flag("tls_cert", "tls-cert", &flags.tls_cert);
        flag("tls_key", "tls-key", &flags.tls_key);
        if flags.strict {
            raw.insert(
                "strict",
                Raw {
                    value: "true".into(),
                    origin: Origin::Flag("strict"),
                },
            );
        }

        let get = |k: &str| raw.get(k);
        let err = |k: &str, r: &Raw, reason: String| ConfigError {
            setting: k.to_string(),
            origin: r.origin.clone(),
            reason,
        };

        let data_dir = match get("data_dir") {
            Some(r) if r.value.trim().is_empty() => {
                return Err(err("data_dir", r, "must not be empty".into()))
            }
            Some(r) => PathBuf::from(&r.value),
            None => PathBuf::from("./portcullis-data"),
        };
        let listen = match get("listen") {
            Some(r) => r.value.parse::<SocketAddr>().map_err(|_| {
                err(
                    "listen",
                    r,
                    format!(
                        "`{}` is not an address:port such as 127.0.0.1:7272",
                        r.value
                    ),
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 7272)),
        };
        let database_url = match get("database_url") {
            Some(r) => {
                let v = r.value.trim();
                if !(v.starts_with("sqlite:")
                    || v.starts_with("postgres://")
                    || v.starts_with("postgresql://"))
                {
                    return Err(err(
                        "database_url",
                        r,
                        "must start with sqlite:// or postgres://".into(),
                    ));
                }
                v.to_string()
            }
            None => format!("sqlite://{}", data_dir.join("portcullis.db").display()),
        };
        let master_key_file = match get("master_key_file") {
            Some(r) if r.value.trim().is_empty() => {
                return Err(err("master_key_file", r, "must not be empty".into()))
            }
            Some(r) => PathBuf::from(&r.value),
            None => data_dir.join("master.key"),
        };
        let tls_cert = get("tls_cert").map(|r| PathBuf::from(&r.value));
        let tls_key = get("tls_key").map(|r| PathBuf::from(&r.value));
        match (get("tls_cert"), get("tls_key")) {
            (Some(r), None) => {
                return Err(err(
                    "tls_key",
                    r,
                    "tls_cert is set, so tls_key must be set too".into(),
                ))
            }
            (None, Some(r)) => {
                return Err(err(
                    "tls_cert",
                    r,
                    "tls_key is set, so tls_cert must be set too".into(),
                ))
            }
            _ => {}
        }
        let strict = match get("strict") {
            Some(r) => parse_bool(&r.value)
                .ok_or_else(|| err("strict", r, "must be true or false".into()))?,
            None => false,
        };
        let log = get("log")
            .map(|r| r.value.clone())
            .unwrap_or_else(|| "info".into());
        let duration = |k: &str, default: Duration| -> Result<Duration, ConfigError> {
            match get(k) {
                Some(r) => parse_duration(&r.value).ok_or_else(|| {
                    err(
                        k,
                        r,
                        format!("`{}` is not a duration such as 90s, 30m or 2h", r.value),
                    )
                }),
                None => Ok(default),
            }
        };
        let session_idle_timeout = duration("session_idle_timeout", Duration::from_secs(30 * 60))?;
        let web_login_lifetime = duration("web_login_lifetime", Duration::from_secs(12 * 3600))?;
        let login_lockout = duration("login_lockout", Duration::from_secs(15 * 60))?;
        let login_max_failures = match get("login_max_failures") {
            Some(r) => match r.value.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(err(
                        "login_max_failures",
                        r,
                        "must be a whole number of at least 1".into(),
                    ))
                }
            },
            None => 5,
        };
        let count = |k: &str, default: usize| -> Result<usize, ConfigError> {
            match get(k) {
                Some(r) => match r.value.parse::<usize>() {
                    Ok(n) if (1..=256).contains(&n) => Ok(n),
                    _ => Err(err(k, r, "must be a whole number from 1 to 256".into())),
                },
                None => Ok(default),
            }
        };
        let rotation_concurrency = count("rotation_concurrency", 8)?;
        let rotation_per_target = count("rotation_per_target", 4)?;
        let rotation_verify_at = match get("rotation_verify_at") {
            Some(r) if r.value == "off" => None,
            Some(r) => Some(parse_time_of_day(&r.value).ok_or_else(|| {
                err(
                    "rotation_verify_at",
                    r,
                    "must be a time of day HH:MM (UTC), or off".into(),
                )
            })?),
            None => Some(2 * 60),
        };
        let syslog = match get("syslog") {
            Some(r) if r.value == "off" || r.value.is_empty() => None,
            Some(r) => Some(parse_syslog(&r.value).ok_or_else(|| {
                err(
                    "syslog",
                    r,
                    "must be off, udp://HOST:PORT or tcp://HOST:PORT (HOST an IP address)".into(),
                )
            })?),
            None => None,
        };

        let host_key_policy = match get("host_key_policy") {
            Some(r) => match r.value.as_str() {
                "tofu" => HostKeyFirstUse::Trust,
                "approve" => HostKeyFirstUse::Approve,
                _ => return Err(err("host_key_policy", r, "must be tofu or approve".into())),
            },
            None => HostKeyFirstUse::Trust,
        };
        let session_reattach_grace = duration("session_reattach_grace", Duration::from_secs(60))?;
        let flag_or = |k: &str, default: bool| -> Result<bool, ConfigError> {
            match get(k) {
                Some(r) => {
                    parse_bool(&r.value).ok_or_else(|| err(k, r, "must be true or false".into()))
                }
                None => Ok(default),
            }
        };
        let flag = |k: &str| flag_or(k, true);
        let record_terminal_sessions = flag("record_terminal_sessions")?;
        let record_graphical_sessions = flag("record_graphical_sessions")?;
        let record_input = flag("record_input")?;
        let auditors_may_observe = flag_or("auditors_may_observe", false)?;
        let notify_owner_of_observers = flag("notify_owner_of_observers")?;
        let optional_duration = |k: &str| -> Result<Option<Duration>, ConfigError> {
            match get(k) {
                Some(r) if r.value == "off" => Ok(None),
                Some(_) => duration(k, Duration::ZERO).map(Some),
                None => Ok(None),
            }
        };
        let session_idle_limit = optional_duration("session_idle_limit")?;
        let session_max_duration = optional_duration("session_max_duration")?;
        let sessions = |k: &str, default: usize| -> Result<usize, ConfigError> {
            match get(k) {
                Some(r) => match r.value.parse::<usize>() {
                    Ok(n) if (1..=100_000).contains(&n) => Ok(n),
                    _ => Err(err(k, r, "must be a whole number from 1 to 100000".into())),
                },
                None => Ok(default),
            }
        };
        let max_sessions = sessions("max_sessions", 1000)?;
        let max_sessions_per_user = sessions("max_sessions_per_user", 25)?;
        let resource_networks = match get("resource_networks") {
            Some(r) => crate::network_policy::ResourceNetworks::parse(&r.value).ok_or_else(|| {
                err(
                    "resource_networks",
                    r,
                    "must be default, or networks such as 10.0.0.0/8,192.168.0.0/16 separated by commas".into(),
                )
            })?,
            None => crate::network_policy::ResourceNetworks::Default,
        };
        let recording_failure = match get("recording_failure") {
            Some(r) => match r.value.as_str() {
                "terminate" => RecordingFailure::Terminate,
                "continue" => RecordingFailure::Continue,
                _ => {
                    return Err(err(
                        "recording_failure",
                        r,
                        "must be terminate or continue".into(),
                    ))
                }
            },
            None => RecordingFailure::Terminate,
        };
        let recording_retention = match get("recording_retention") {
            Some(r) if r.value == "forever" => None,
            Some(_) => Some(duration("recording_retention", Duration::ZERO)?),
            None => None,
        };

        Ok(Config {
            config_file: file_path,
            data_dir,
            listen,
            database_url,
            master_key_file,
            tls_cert,
            tls_key,
            strict,
            log,
            session_idle_timeout,
            web_login_lifetime,
            login_max_failures,
            rotation_concurrency,
            rotation_per_target,
            rotation_verify_at,
            login_lockout,
            syslog,
            host_key_policy,
            session_reattach_grace,
            record_terminal_sessions,
            record_graphical_sessions,
            record_input,
            recording_failure,
            recording_retention,
            auditors_may_observe,
            notify_owner_of_observers,
            session_idle_limit,
            session_max_duration,
            max_sessions,
            max_sessions_per_user,
            resource_networks,
        })
    }

    /// True when the master key file sits inside the data directory (refused by `strict`).
    pub fn master_key_inside_data_dir(&self) -> bool {
        let abs = |p: &Path| -> PathBuf {
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                std::env::current_dir().unwrap_or_default().join(p)
            };
            // Resolve what exists so `a/../b` tricks do not hide the key.
            p.canonicalize().unwrap_or(p)
        };
        let key = abs(&self.master_key_file);
        let key_dir = key.parent().map(abs).unwrap_or_default();
        key_dir.starts_with(abs(&self.data_dir))
    }
}

fn load_file(
    flags: &FlagConfig,
    env: &BTreeMap<String, String>,
) -> Result<(FileConfig, Option<PathBuf>), ConfigError> {
    let (path, origin, required) = if let Some(p) = &flags.config {
        (p.clone(), Origin::Flag("config"), true)
    } else if let Some(p) = env.get("PORTCULLIS_CONFIG").filter(|p| !p.is_empty()) {
        (PathBuf::from(p), Origin::Env("PORTCULLIS_CONFIG"), true)
    } else {
        (PathBuf::from("portcullis.toml"), Origin::Default, false)
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok((FileConfig::default(), None))
        }
        Err(e) => {
            return Err(ConfigError {
                setting: "config".into(),
                origin,
                reason: format!("cannot read {}: {e}", path.display()),
            })
        }
    };
    let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError {
        setting: toml_error_key(&e, &text),
        origin: Origin::File(path.clone()),
        reason: e.message().to_string(),
    })?;
    Ok((file, Some(path)))
}

/// Names the key a TOML error points at, falling back to the whole line.
fn toml_error_key(e: &toml::de::Error, text: &str) -> String {
    if let Some(field) = e.message().split('`').nth(1) {
        if e.message().starts_with("unknown field") {
            return field.to_string();
        }
    }
    if let Some(span) = e.span() {
        let line_start = text[..span.start.min(text.len())]
            .rfind('\n')
            .map(|i| i + 1)
            .unwrap_or(0);
        let line = text[line_start..].lines().next().unwrap_or("");
        if let Some((k, _)) = line.split_once('=') {
            return k.trim().to_string();
        }
        return line.trim().to_string();
    }
    "config".into()
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parses `90s`, `30m`, `2h`, `1d` or a bare number of seconds. Zero is refused.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        's' => (&s[..s.len() - 1], 1),
        'm' => (&s[..s.len() - 1], 60),
        'h' => (&s[..s.len() - 1], 3600),
        'd' => (&s[..s.len() - 1], 86400),
        c if c.is_ascii_digit() => (s, 1),
        _ => return None,
    };
    let n: u64 = num.trim().parse().ok()?;
    if n == 0 {
        return None;
    }
    Some(Duration::from_secs(n.checked_mul(mult)?))
}

fn parse_syslog(s: &str) -> Option<SyslogTarget> {
    if let Some(a) = s.strip_prefix("udp://") {
        return a.parse().ok().map(SyslogTarget::Udp);
    }
    if let Some(a) = s.strip_prefix("tcp://") {
        return a.parse().ok().map(SyslogTarget::Tcp);
    }
    None
}

/// The process environment as a map (only `PORTCULLIS_*` variables matter).
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("PORTCULLIS_"))
        .collect()
}

/// `HH:MM` as minutes after midnight.
pub fn parse_time_of_day(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.len() == 5).then_some(h * 60 + m)
}

/// Non-secret view of the configuration (for the settings page and the config-change audit).
pub fn summary(cfg: &Config) -> serde_json::Value {
    serde_json::json!({
        "config_file": cfg.config_file.as_ref().map(|p| p.display().to_string()),
        "data_dir": cfg.data_dir.display().to_string(),
        "listen": cfg.listen.to_string(),
        "database": redact_db_url(&cfg.database_url),
        "master_key_file": cfg.master_key_file.display().to_string(),
        "tls_cert": cfg.tls_cert.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "generated self-signed".into()),
        "strict": cfg.strict,
        "log": cfg.log,
        "session_idle_timeout_secs": cfg.session_idle_timeout.as_secs(),
        "login_max_failures": cfg.login_max_failures,
        "login_lockout_secs": cfg.login_lockout.as_secs(),
        "syslog": cfg.syslog.as_ref().map(|s| format!("{s:?}")),
    })
}

/// `postgres://user:pass@host/db` -> `postgres://user:***@host/db`.
pub fn redact_db_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let flags = FlagConfig {
            config: None,
            ..Default::default()
        };
        // No portcullis.toml in the test's cwd is assumed; point the optional lookup away.
        let c = Config::load(
            &FlagConfig {
                data_dir: Some(dir.path().display().to_string()),
                ..flags
            },
            &env(&[]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 7272);
        assert!(c.database_url.starts_with("sqlite://"));
        assert_eq!(c.master_key_file, dir.path().join("master.key"));
        assert_eq!(c.session_idle_timeout, Duration::from_secs(1800));
    }

    #[test]
    fn precedence_is_file_then_env_then_flag() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:1000\"\nlogin_max_failures = 3\n").unwrap();
        let flags = FlagConfig {
            config: Some(f.clone()),
            ..Default::default()
        };
        let c = Config::load(&flags, &env(&[])).unwrap();
        assert_eq!(c.listen.port(), 1000);
        assert_eq!(c.login_max_failures, 3);
        let c = Config::load(&flags, &env(&[("PORTCULLIS_LISTEN", "127.0.0.1:2000")])).unwrap();
        assert_eq!(c.listen.port(), 2000);
        let flags2 = FlagConfig {
            listen: Some("127.0.0.1:3000".into()),
            ..flags
        };
        let c = Config::load(&flags2, &env(&[("PORTCULLIS_LISTEN", "127.0.0.1:2000")])).unwrap();
        assert_eq!(c.listen.port(), 3000);
    }

    #[test]
    fn errors_name_setting_and_origin() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.toml");
        std::fs::write(&f, "listen = \"not-an-address\"\n").unwrap();
        let flags = FlagConfig {
            config: Some(f.clone()),
            ..Default::default()
        };
        let e = Config::load(&flags, &env(&[])).unwrap_err();
        assert_eq!(e.setting, "listen");
        assert!(e.to_string().contains(&f.display().to_string()), "{e}");

        std::fs::write(&f, "lisen = \"127.0.0.1:1\"\n").unwrap();
        let e = Config::load(&flags, &env(&[])).unwrap_err();
        assert_eq!(e.setting, "lisen", "{e}");

        std::fs::write(&f, "login_max_failures = \"many\"\n").unwrap();
        let e = Config::load(&flags, &env(&[])).unwrap_err();
        assert_eq!(e.setting, "login_max_failures", "{e}");

        let e = Config::load(
            &FlagConfig::default(),
            &env(&[("PORTCULLIS_SESSION_IDLE_TIMEOUT", "soon")]),
        )
        .unwrap_err();
        assert_eq!(e.setting, "session_idle_timeout");
        assert_eq!(e.origin, Origin::Env("PORTCULLIS_SESSION_IDLE_TIMEOUT"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("15"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn strict_detects_key_inside_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let flags = FlagConfig {
            data_dir: Some(dir.path().display().to_string()),
            ..Default::default()
        };
        let c = Config::load(&flags, &env(&[])).unwrap();
        assert!(c.master_key_inside_data_dir());
        let other = tempfile::tempdir().unwrap();
        let flags = FlagConfig {
            master_key_file: Some(other.path().join("k").display().to_string()),
            ..flags
        };
        let c = Config::load(&flags, &env(&[])).unwrap();
        assert!(!c.master_key_inside_data_dir());
    }
}
