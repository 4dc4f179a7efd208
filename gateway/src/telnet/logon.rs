//! Why: Telnet has no authentication of its own, so logging in means reading prompts and
//! typing answers. A logon script is a short list of *expect pattern -> send value* steps;
//! values may name vault secrets (`{password}`, `{enable_secret}`) that the adapter fills in
//! at the last moment and writes straight to the target: they never become session input,
//! so they never reach the recording, a viewer or a log. Failure patterns (`Login
//! incorrect`) end the attempt at once with the step that failed, instead of waiting for
//! the timeout. The runner here is sans-I/O: it is fed the target's output and says what to
//! send; the adapter owns the clock and the socket.
//!
//! The rotation engine runs the same kind of script over a logged-in terminal to change a
//! password (`passwd`, `sudo`/`su` + `chpasswd`, a network device's config mode): those
//! scripts may also name the rotated account and its current, new and privileged secrets
//! (`compile_rotation`), which a logon script may not (`compile`).

use std::time::Duration;

use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Secret;

pub const MAX_STEPS: usize = 20;
pub const MAX_TIMEOUT_S: u32 = 120;
pub const DEFAULT_TIMEOUT_S: u32 = 10;
/// Output kept for matching: enough for a banner and a prompt, bounded against floods.
const WINDOW: usize = 8 * 1024;

/// A logon script as administrators write it (and the API stores it, as JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogonScript {
    pub steps: Vec<LogonStep>,
    /// Patterns that mean the logon failed (checked before each step's own pattern).
    #[serde(default)]
    pub failure: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogonStep {
    /// Shown in errors and in the recording's timeline ("password", "enable").
    pub label: String,
    /// A regular expression matched against the output since the previous step (escape
    /// sequences removed); case-insensitive.
    pub expect: String,
    /// What to type once it matches, followed by Enter; absent: just wait for the pattern.
    /// Placeholders: `{username}`, `{password}`, `{enable_secret}`; `{{` and `}}` for braces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_s: u32,
    /// Skipped when the next step's pattern shows up first (a prompt some targets show and
    /// others do not, such as `sudo`'s password prompt when credentials are cached).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_S
}

/// A piece of a value to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Username,
    Password,
    EnableSecret,
    /// Rotation scripts only: the rotated account's user name.
    Account,
    /// Rotation scripts only: the rotated account's current secret.
    CurrentPassword,
    /// Rotation scripts only: the secret it is being changed to.
    NewPassword,
    /// Rotation scripts only: the privileged account's secret (`sudo`, `su`).
    PrivilegedPassword,
}

impl Piece {
    pub fn is_secret(&self) -> bool {
        matches!(
            self,
            Piece::Password
                | Piece::EnableSecret
                | Piece::CurrentPassword
                | Piece::NewPassword
                | Piece::PrivilegedPassword
        )
    }

    fn rotation_only(&self) -> bool {
        matches!(
            self,
            Piece::Account
                | Piece::CurrentPassword
                | Piece::NewPassword
                | Piece::PrivilegedPassword
        )
    }
}

/// Why a script was refused, naming the field for the web form.
#[derive(Debug, PartialEq, Eq)]
pub struct ScriptError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn compile(field: &str, pattern: &str) -> Result<Regex, ScriptError> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ScriptError {
            field: field.into(),
            message: format!("not a valid pattern: {}", last_line(&e.to_string())),
        })
}

/// The regex error's last non-empty line (the explanation; the lines above draw a caret).
fn last_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

/// Splits a send value into text and placeholders.
pub fn parse_value(field: &str, v: &str) -> Result<Vec<Piece>, ScriptError> {
    let err = |m: &str| ScriptError {
        field: field.into(),
        message: m.into(),
    };
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) if name.len() < 32 => name.push(c),
                        _ => return Err(err("an unclosed '{': write {{ for a literal brace")),
                    }
                }
                let piece = match name.as_str() {
                    "username" => Piece::Username,
                    "password" => Piece::Password,
                    "enable_secret" => Piece::EnableSecret,
                    "account" => Piece::Account,
                    "current_password" => Piece::CurrentPassword,
                    "new_password" => Piece::NewPassword,
                    "privileged_password" => Piece::PrivilegedPassword,
                    other => {
                        return Err(err(&format!(
                            "unknown placeholder {{{other}}}: use {{username}}, {{password}} or {{enable_secret}} (and in rotation scripts {{account}}, {{current_password}}, {{new_password}}, {{privileged_password}})"
                        )))
                    }
                };
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(piece);
            }
            '}' => return Err(err("a lone '}': write }} for a literal brace")),
            '\r' | '\n' => return Err(err("a value is one line; Enter is sent after it")),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

#[derive(Clone)]
struct CompiledStep {
    label: String,
    expect: Regex,
    send: Option<Vec<Piece>>,
    timeout: Duration,
    optional: bool,
}

/// A checked script, ready to run.
#[derive(Clone)]
pub struct CompiledScript {
    steps: Vec<CompiledStep>,
    failure: Vec<Regex>,
}

/// Whether a send value types a secret inside other text (`curl https://x/{password}`), not
/// as the whole answer to a prompt (`{password}`) or as `chpasswd`'s `{account}:{secret}`
/// line. Such a value puts the secret on a command line, where the target's shell, history
/// and process list (or whoever controls them) see it: only a super administrator may save
/// one (a network device's `username {account} secret {new_password}` is the legitimate
/// case), and it is an audit alert.
pub fn embeds_secret(pieces: &[Piece]) -> bool {
    if !pieces.iter().any(Piece::is_secret) {
        return false;
    }
    let whole_answer = matches!(pieces, [p] if p.is_secret());
    let chpasswd_line =
        matches!(pieces, [Piece::Account, Piece::Text(colon), p] if colon == ":" && p.is_secret());
    !(whole_answer || chpasswd_line)
}

impl LogonScript {
    /// Whether any step types a secret inside other text (see `embeds_secret`). A script that
    /// does not parse embeds nothing (it is refused by `compile` anyway).
    pub fn embeds_secret(&self) -> bool {
        self.steps.iter().any(|s| {
            s.send
                .as_deref()
                .and_then(|v| parse_value("send", v).ok())
                .is_some_and(|p| embeds_secret(&p))
        })
    }
}

impl LogonScript {
    /// Checks a logon script: everything an administrator can get wrong, with the field at
    /// fault. The rotation placeholders are refused here (a logon has no new password).
    pub fn compile(&self) -> Result<CompiledScript, ScriptError> {
        let c = self.compile_rotation()?;
        for (i, s) in c.steps.iter().enumerate() {
            if s.send.iter().flatten().any(Piece::rotation_only) {
                return Err(ScriptError {
                    field: format!("steps[{i}].send"),
                    message: "{account}, {current_password}, {new_password} and {privileged_password} belong in rotation scripts, not logon scripts".into(),
                });
            }
        }
        Ok(c)
    }

    /// Checks a rotation script (every placeholder allowed).
    pub fn compile_rotation(&self) -> Result<CompiledScript, ScriptError> {
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(ScriptError {
                field: "steps".into(),
                message: format!("a script has 1 to {MAX_STEPS} steps"),
            });
        }
        let mut steps = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            let f = |name: &str| format!("steps[{i}].{name}");
            let label = s.label.trim();
            if label.is_empty() || label.len() > 60 {
                return Err(ScriptError {
                    field: f("label"),
                    message: "a step needs a label of 1 to 60 characters".into(),
                });
            }
            if s.expect.trim().is_empty() {
                return Err(ScriptError {
                    field: f("expect"),
                    message: "a step needs a pattern to wait for".into(),
                });
            }
            if !(1..=MAX_TIMEOUT_S).contains(&s.timeout_s) {
                return Err(ScriptError {
                    field: f("timeout_s"),
                    message: format!("a step waits 1 to {MAX_TIMEOUT_S} seconds"),
                });
            }
            steps.push(CompiledStep {
                label: label.to_string(),
                expect: compile(&f("expect"), &s.expect)?,
                send: s
                    .send
                    .as_deref()
                    .map(|v| parse_value(&f("send"), v))
                    .transpose()?,
                timeout: Duration::from_secs(s.timeout_s as u64),
                optional: s.optional,
            });
            if s.optional && i + 1 == self.steps.len() {
                return Err(ScriptError {
                    field: f("optional"),
                    message: "the last step cannot be optional (it says the script is done)".into(),
                });
            }
        }
        let failure = self
            .failure
            .iter()
            .enumerate()
            .map(|(i, p)| compile(&format!("failure[{i}]"), p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CompiledScript { steps, failure })
    }

    /// Whether any step sends the enable secret (so the resource needs an enable account).
    pub fn uses_enable_secret(&self) -> bool {
        self.steps.iter().any(|s| {
            s.send
                .as_deref()
                .is_some_and(|v| v.contains("{enable_secret}"))
        })
    }
}

pub fn step(label: &str, expect: &str, send: Option<&str>) -> LogonStep {
    LogonStep {
        label: label.into(),
        expect: expect.into(),
        send: send.map(Into::into),
        timeout_s: DEFAULT_TIMEOUT_S,
        optional: false,
    }
}

/// The built-in scripts, by name.
pub const BUILTIN_NAMES: &[&str] = &["unix", "cisco"];

pub fn builtin(name: &str) -> Option<LogonScript> {
    match name {
        // /bin/login as telnetd runs it: "host login:", "Password:", then a shell prompt.
        "unix" => Some(LogonScript {
            steps: vec![
                step("login prompt", r"login:\s*$", Some("{username}")),
                step("password prompt", r"password:\s*$", Some("{password}")),
                step("shell prompt", r"[$#%>] ?$", None),
            ],
            failure: vec![
                "login incorrect".into(),
                "authentication fail".into(),
                "permission denied".into(),
                "access denied".into(),
            ],
        }),
        // Cisco IOS style: user mode ">", then `enable` and the enable secret to reach "#".
        "cisco" => Some(LogonScript {
            steps: vec![
                step(
                    "username prompt",
                    r"(username|login):\s*$",
                    Some("{username}"),
                ),
                step("password prompt", r"password:\s*$", Some("{password}")),
                step("user-mode prompt", r">\s*$", Some("enable")),
                step(
                    "enable password prompt",
                    r"password:\s*$",
                    Some("{enable_secret}"),
                ),
                step("privileged prompt", r"#\s*$", None),
            ],
            failure: vec![
                "% ?authentication failed".into(),
                "% ?access denied".into(),
                "% ?bad (secrets|passwords)".into(),
                "login invalid".into(),
                "login incorrect".into(),
            ],
        }),
        _ => None,
    }
}

/// The built-in script a resource type uses unless an administrator chose another.
pub fn default_for_type(resource_type: &str) -> &'static str {
    match resource_type {
        "network_device" => "cisco",
        _ => "unix",
    }
}

/// How long the target must stay quiet after a prompt before a secret is typed. Many
/// programs print the prompt first and turn echo off just after; typing at once could have
/// the secret echoed back (and shown, and recorded). Used by every adapter that types.
pub const SETTLE: Duration = Duration::from_millis(150);

/// The account a script logs in as, for filling in placeholders.
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a crate::Secret,
    pub enable_secret: Option<&'a crate::Secret>,
    /// What a rotation script may name besides (None in a logon).
    pub rotation: Option<RotationCredentials<'a>>,
}

/// The rotated account, for a rotation script's placeholders.
pub struct RotationCredentials<'a> {
    pub account: &'a str,
    pub current: &'a crate::Secret,
    pub new: &'a crate::Secret,
    pub privileged: Option<&'a crate::Secret>,
}

/// The bytes a step types (without Enter), in a buffer wiped when dropped, and how the
/// timeline describes them (never the value of a secret).
pub fn fill_value(
    pieces: &[Piece],
    c: &Credentials<'_>,
) -> Result<(zeroize::Zeroizing<Vec<u8>>, String), String> {
    let mut value = zeroize::Zeroizing::new(Vec::new());
    let mut said = Vec::new();
    for p in pieces {
        match p {
            Piece::Text(s) => {
                value.extend_from_slice(s.as_bytes());
                said.push(format!("\u{201c}{s}\u{201d}"));
            }
            Piece::Username => {
                value.extend_from_slice(c.username.as_bytes());
                said.push("the user name".into());
            }
            Piece::Password => {
                value.extend_from_slice(c.password.expose());
                said.push("the password (not recorded)".into());
            }
            Piece::EnableSecret => match c.enable_secret {
                Some(s) => {
                    value.extend_from_slice(s.expose());
                    said.push("the enable secret (not recorded)".into());
                }
                None => return Err("the script sends {enable_secret}, but the resource has no enable account: an administrator sets one in the resource's Telnet settings".into()),
            },
            Piece::Account | Piece::CurrentPassword | Piece::NewPassword | Piece::PrivilegedPassword => {
                let Some(r) = &c.rotation else {
                    return Err("a rotation placeholder in a logon script".into());
                };
                match p {
                    Piece::Account => {
                        value.extend_from_slice(r.account.as_bytes());
                        said.push("the account's name".into());
                    }
                    Piece::CurrentPassword => {
                        value.extend_from_slice(r.current.expose());
                        said.push("the current password".into());
                    }
                    Piece::NewPassword => {
                        value.extend_from_slice(r.new.expose());
                        said.push("the new password".into());
                    }
                    _ => match r.privileged {
                        Some(s) => {
                            value.extend_from_slice(s.expose());
                            said.push("the privileged account's password".into());
                        }
                        None => return Err("the script sends {privileged_password}, but the resource's rotation settings name no privileged account".into()),
                    },
                }
            }
        }
    }
    if said.is_empty() {
        said.push("Enter".into());
    }
    Ok((value, said.join(" + ")))
}

/// Replaces every copy of `secret` in `data` with asterisks (output that echoed what a
/// script typed).
pub fn mask_secret(data: &mut [u8], secret: &[u8]) {
    if secret.is_empty() || data.len() < secret.len() {
        return;
    }
    let mut i = 0;
    while i + secret.len() <= data.len() {
        if &data[i..i + secret.len()] == secret {
            data[i..i + secret.len()].fill(b'*');
            i += secret.len();
        } else {
            i += 1;
        }
    }
}

/// Masks vault secrets in a stream of output that arrives in reads of any size: a secret
/// split across two reads is masked too. What could be the start of a secret at the end of a
/// read is held back until the next read shows whether it is one (or until `finish`).
pub struct StreamMask {
    secrets: Vec<Zeroizing<Vec<u8>>>,
    held: Zeroizing<Vec<u8>>,
}

impl StreamMask {
    pub fn new(secrets: &[&Secret]) -> Self {
        StreamMask {
            secrets: secrets
                .iter()
                .filter(|s| !s.expose().is_empty())
                .map(|s| Zeroizing::new(s.expose().to_vec()))
                .collect(),
            held: Zeroizing::new(Vec::new()),
        }
    }

    /// The bytes of `read` (after what was held back) that may be shown, every whole secret
    /// in them masked.
    pub fn feed(&mut self, read: &[u8]) -> Vec<u8> {
        let mut data = std::mem::take(&mut *self.held);
        data.extend_from_slice(read);
        for s in &self.secrets {
            mask_secret(&mut data, s);
        }
        // The longest end of `data` that begins some secret (shorter than it).
        let keep = self
            .secrets
            .iter()
            .map(|s| {
                (1..s.len().min(data.len() + 1))
                    .rev()
                    .find(|&n| data.ends_with(&s[..n]))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        let cut = data.len() - keep;
        self.held.extend_from_slice(&data[cut..]);
        data.truncate(cut);
        data
    }

    /// What is still held back, masked: no more output will tell whether it began a secret.
    pub fn finish(&mut self) -> Vec<u8> {
        let n = self.held.len();
        self.held.clear();
        vec![b'*'; n]
    }
}

/// What the runner wants done after it saw more output.
#[derive(Debug, PartialEq, Eq)]
pub enum LogonAction<'a> {
    /// Keep waiting (until `deadline_in` from the step's start).
    Wait,
    /// Step `index` matched: type these pieces and Enter (the adapter fills in secrets), or
    /// nothing when the step only waits.
    Matched {
        index: usize,
        label: &'a str,
        send: Option<&'a [Piece]>,
    },
    /// The last step matched: logged in.
    Done,
    /// A failure pattern matched during step `index`.
    Failed {
        index: usize,
        label: &'a str,
        said: String,
    },
}

/// One run of a script over one connection.
pub struct LogonRun {
    script: CompiledScript,
    step: usize,
    seen: Vec<u8>,
}

impl LogonRun {
    pub fn new(script: CompiledScript) -> Self {
        LogonRun {
            script,
            step: 0,
            seen: Vec::new(),
        }
    }

    pub fn step_index(&self) -> usize {
        self.step
    }

    pub fn step_label(&self) -> &str {
        self.script
            .steps
            .get(self.step)
            .map(|s| s.label.as_str())
            .unwrap_or("")
    }

    pub fn step_count(&self) -> usize {
        self.script.steps.len()
    }

    pub fn step_timeout(&self) -> Duration {
        self.script
            .steps
            .get(self.step)
            .map(|s| s.timeout)
            .unwrap_or(Duration::from_secs(DEFAULT_TIMEOUT_S as u64))
    }

    pub fn step_pattern(&self) -> &str {
        self.script
            .steps
            .get(self.step)
            .map(|s| s.expect.as_str())
            .unwrap_or("")
    }

    /// The tail of what the target said during this step, for an error message.
    pub fn last_output(&self) -> String {
        let text = visible_text(&self.seen);
        let t = text.trim();
        let start = t.char_indices().rev().nth(79).map(|(i, _)| i).unwrap_or(0);
        t[start..].to_string()
    }

    /// Adds output from the target and says what to do. Call again with an empty slice
    /// after acting on `Matched`: a second prompt may already be in the output.
    pub fn feed(&mut self, output: &[u8]) -> LogonAction<'_> {
        self.append(output);
        let Some(current) = self.script.steps.get(self.step) else {
            return LogonAction::Done;
        };
        let (text, raw_index) = strip_escapes(&self.seen);
        for f in &self.script.failure {
            if let Some(m) = f.find(&text) {
                let said = line_around(&text, m.start(), m.end());
                return LogonAction::Failed {
                    index: self.step,
                    label: &self.script.steps[self.step].label,
                    said,
                };
            }
        }
        let mut matched = current.expect.find(&text);
        if matched.is_none() && current.optional {
            // An optional prompt that did not come: the next step's prompt stands for it.
            if let Some(next) = self.script.steps.get(self.step + 1) {
                if next.expect.find(&text).is_some() {
                    self.step += 1;
                    return self.feed(&[]);
                }
            }
        }
        let Some(m) = matched.take() else {
            return LogonAction::Wait;
        };
        // Keep what came after the match for the next step.
        let keep_from = match m.end() {
            0 => 0,
            end => raw_index[end - 1] + 1,
        };
        self.seen.drain(..keep_from);
        let index = self.step;
        self.step += 1;
        let step = &self.script.steps[index];
        if self.step == self.script.steps.len() && step.send.is_none() {
            return LogonAction::Done;
        }
        LogonAction::Matched {
            index,
            label: &step.label,
            send: step.send.as_deref(),
        }
    }

    /// Adds output without matching (it arrived while a step's value was being readied);
    /// the next `feed` sees it.
    pub fn append(&mut self, output: &[u8]) {
        self.seen.extend_from_slice(output);
        if self.seen.len() > WINDOW {
            let cut = self.seen.len() - WINDOW;
            self.seen.drain(..cut);
        }
    }

    /// Whether every step has matched.
    pub fn finished(&self) -> bool {
        self.step >= self.script.steps.len()
    }
}

/// The output as a person sees it: escape sequences (colours, cursor moves, bracketed paste
/// switches) removed, NULs dropped, invalid UTF-8 replaced.
pub fn visible_text(raw: &[u8]) -> String {
    String::from_utf8_lossy(&strip_escapes(raw).0).into_owned()
}

/// The visible bytes, and for each the index of the raw byte it came from.
fn strip_escapes(raw: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::with_capacity(raw.len());
    let mut index = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            0x1b => {
                i += 1;
                match raw.get(i) {
                    Some(b'[') => {
                        i += 1;
                        while i < raw.len() && !(0x40..=0x7e).contains(&raw[i]) {
                            i += 1;
                        }
                        i += 1;
                    }
                    Some(b']') => {
                        while i < raw.len() && raw[i] != 0x07 {
                            if raw[i] == 0x1b && raw.get(i + 1) == Some(&b'\\') {
                                i += 1;
                                break;
                            }
                            i += 1;
                        }
                        i += 1;
                    }
                    Some(_) => i += 1,
                    None => {}
                }
            }
            0 => i += 1,
            b => {
                out.push(b);
                index.push(i);
                i += 1;
            }
        }
    }
    (out, index)
}

fn line_around(text: &[u8], start: usize, end: usize) -> String {
    let is_eol = |b: &u8| *b == b'\n' || *b == b'\r';
    let from = text[..start]
        .iter()
        .rposition(is_eol)
        .map(|i| i + 1)
        .unwrap_or(0);
    let to = text[end..]
        .iter()
        .position(is_eol)
        .map(|i| end + i)
        .unwrap_or(text.len());
    String::from_utf8_lossy(&text[from..to])
        .trim()
        .chars()
        .take(120)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str) -> LogonRun {
        let script = builtin(name).expect("builtin");
        LogonRun::new(script.compile().expect("compiles"))
    }

    #[test]
    fn builtins_compile() {
        for n in BUILTIN_NAMES {
            builtin(n).expect("exists").compile().expect("compiles");
        }
        assert!(builtin("cisco").is_some_and(|s| s.uses_enable_secret()));
        assert!(!builtin("unix").is_some_and(|s| s.uses_enable_secret()));
    }

    #[test]
    fn unix_script_walks_a_debian_login() {
        let mut r = run("unix");
        assert_eq!(r.feed(b"\r\nDebian GNU/Linux 12\r\n"), LogonAction::Wait);
        match r.feed(b"host login: ") {
            LogonAction::Matched {
                index: 0,
                send: Some(p),
                ..
            } => {
                assert_eq!(p, [Piece::Username])
            }
            other => panic!("{other:?}"),
        }
        match r.feed(b"alice\r\nPassword: ") {
            LogonAction::Matched {
                index: 1,
                send: Some(p),
                ..
            } => {
                assert_eq!(p, [Piece::Password])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            r.feed(b"\r\nLast login: Sun Nov 22 on pts/1\r\n"),
            LogonAction::Wait
        );
        assert_eq!(
            r.feed(b"\x1b[?2004h\x1b[01;32malice@host\x1b[00m:~$ "),
            LogonAction::Done
        );
        assert!(r.finished());
    }

    #[test]
    fn failure_pattern_names_the_step() {
        let mut r = run("unix");
        r.feed(b"host login: ");
        r.feed(b"Password: ");
        match r.feed(b"\r\n\r\nLogin incorrect\r\nhost login: ") {
            LogonAction::Failed { index, label, said } => {
                assert_eq!(index, 2);
                assert_eq!(label, "shell prompt");
                assert_eq!(said, "Login incorrect");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_prompts_in_one_read_are_both_seen() {
        let mut r = run("cisco");
        r.feed(b"Username: ");
        r.feed(b"Password: ");
        assert!(matches!(
            r.feed(b"\r\nrouter1>"),
            LogonAction::Matched { index: 2, .. }
        ));
        // The enable prompt and nothing else: the earlier "Password:" was consumed.
        assert_eq!(r.feed(b"enable\r\n"), LogonAction::Wait);
        assert!(matches!(
            r.feed(b"Password: "),
            LogonAction::Matched {
                index: 3,
                send: Some([Piece::EnableSecret]),
                ..
            }
        ));
        assert_eq!(r.feed(b"\r\nrouter1#"), LogonAction::Done);
    }

    #[test]
    fn a_matched_prompt_is_not_matched_again() {
        let mut r = run("unix");
        assert!(matches!(r.feed(b"login: "), LogonAction::Matched { .. }));
        // The echo of the user name must not satisfy the password step.
        assert_eq!(r.feed(b"bob\r\n"), LogonAction::Wait);
    }

    #[test]
    fn values_parse_placeholders_and_escapes() {
        assert_eq!(
            parse_value("v", "x{username}y{{z}}").expect("ok"),
            vec![
                Piece::Text("x".into()),
                Piece::Username,
                Piece::Text("y{z}".into())
            ]
        );
        assert!(parse_value("v", "{pasword}")
            .expect_err("typo")
            .message
            .contains("unknown placeholder {pasword}"));
        assert!(parse_value("v", "{password").is_err());
        assert!(parse_value("v", "a}b").is_err());
        assert!(parse_value("v", "a\rb").is_err());
    }

    #[test]
    fn bad_scripts_name_the_field() {
        let mut s = builtin("unix").expect("builtin");
        s.steps[1].expect = "pass(word".into();
        assert_eq!(
            s.compile().err().map(|e| e.field),
            Some("steps[1].expect".into())
        );
        let mut s = builtin("unix").expect("builtin");
        s.steps[0].timeout_s = 0;
        assert_eq!(
            s.compile().err().map(|e| e.field),
            Some("steps[0].timeout_s".into())
        );
        let mut s = builtin("unix").expect("builtin");
        s.failure.push("(".into());
        assert_eq!(
            s.compile().err().map(|e| e.field),
            Some("failure[4]".into())
        );
        let s = LogonScript {
            steps: vec![],
            failure: vec![],
        };
        assert_eq!(s.compile().err().map(|e| e.field), Some("steps".into()));
    }

    #[test]
    fn the_window_stays_bounded_under_a_flood() {
        let mut r = run("unix");
        for _ in 0..1000 {
            assert_eq!(r.feed(&[b'x'; 1000]), LogonAction::Wait);
        }
        assert!(r.seen.len() <= WINDOW);
        assert!(r.last_output().chars().count() <= 80);
    }

    #[test]
    fn every_copy_of_a_secret_is_masked() {
        let mut d = b"Password: s3cret\r\nagain s3cret!s3cre".to_vec();
        mask_secret(&mut d, b"s3cret");
        assert_eq!(d, b"Password: ******\r\nagain ******!s3cre");
        let mut short = b"abc".to_vec();
        mask_secret(&mut short, b"abcdef");
        assert_eq!(short, b"abc");
    }

    fn script(steps: Vec<LogonStep>) -> LogonScript {
        LogonScript {
            steps,
            failure: vec!["authentication failure".into()],
        }
    }

    #[test]
    fn an_optional_step_is_skipped_when_the_next_prompt_comes_first() {
        let mut optional = step("sudo password", r"sudo password: $", Some("{password}"));
        optional.optional = true;
        let s = script(vec![
            step("prompt", r"\$ $", Some("sudo true")),
            optional,
            step("done", r"ok$", None),
        ]);
        // The optional prompt shows: it is answered.
        let mut r = LogonRun::new(s.compile().expect("compiles"));
        assert!(matches!(
            r.feed(b"$ "),
            LogonAction::Matched { index: 0, .. }
        ));
        assert!(matches!(
            r.feed(b"sudo password: "),
            LogonAction::Matched { index: 1, .. }
        ));
        assert_eq!(r.feed(b"\r\nok"), LogonAction::Done);
        // It does not (credentials cached): the run goes straight to the next step.
        let mut r = LogonRun::new(s.compile().expect("compiles"));
        assert!(matches!(
            r.feed(b"$ "),
            LogonAction::Matched { index: 0, .. }
        ));
        assert_eq!(r.feed(b"\r\nok"), LogonAction::Done);
        // Without the flag the same output waits for the prompt that never comes.
        let mut strict = s.clone();
        strict.steps[1].optional = false;
        let mut r = LogonRun::new(strict.compile().expect("compiles"));
        assert!(matches!(
            r.feed(b"$ "),
            LogonAction::Matched { index: 0, .. }
        ));
        assert_eq!(r.feed(b"\r\nok"), LogonAction::Wait);
        // A last step cannot be optional.
        let mut bad = s.clone();
        bad.steps[2].optional = true;
        assert_eq!(
            bad.compile_rotation().err().map(|e| e.field),
            Some("steps[2].optional".to_string())
        );
    }

    #[test]
    fn rotation_placeholders_are_for_rotation_scripts_only() {
        let s = script(vec![
            step("prompt", r"\$ $", Some("passwd")),
            step("new", r"new password: $", Some("{new_password}")),
            step("done", r"updated", None),
        ]);
        assert_eq!(
            s.compile().err().map(|e| e.field),
            Some("steps[1].send".to_string())
        );
        let c = s.compile_rotation().expect("a rotation script");
        let mut r = LogonRun::new(c);
        r.feed(b"$ ");
        let LogonAction::Matched { send: Some(p), .. } = r.feed(b"New password: ") else {
            panic!("the new-password prompt should match");
        };
        let (pw, cur, new) = (
            crate::Secret::from_str_copy("login-pw"),
            crate::Secret::from_str_copy("old-pw"),
            crate::Secret::from_str_copy("NEW-pw"),
        );
        let mut creds = Credentials {
            username: "root",
            password: &pw,
            enable_secret: None,
            rotation: Some(RotationCredentials {
                account: "alice",
                current: &cur,
                new: &new,
                privileged: None,
            }),
        };
        let (value, said) = fill_value(p, &creds).expect("filled");
        assert_eq!(&value[..], b"NEW-pw");
        assert_eq!(said, "the new password");
        assert!(!said.contains("NEW-pw"));
        // {privileged_password} without a privileged account, and any rotation placeholder
        // outside a rotation, are errors rather than empty strings.
        let priv_piece = parse_value("v", "{privileged_password}").expect("parses");
        assert!(fill_value(&priv_piece, &creds).is_err());
        creds.rotation = None;
        assert!(fill_value(p, &creds).is_err());
    }

    #[test]
    fn a_secret_inside_other_text_is_told_apart_from_a_whole_answer() {
        let embeds = |v: &str| embeds_secret(&parse_value("send", v).expect("parses"));
        for whole in [
            "{password}",
            "{new_password}",
            "{account}:{new_password}",
            "{username}",
            "enable",
            "username {account} privilege 15",
        ] {
            assert!(!embeds(whole), "{whole}");
        }
        for inside in [
            "curl https://x.example/{password}",
            "{password};",
            "echo {account}:{new_password} > /tmp/x",
            "username {account} secret {new_password}",
            "{username}:{password}",
            "{password}{password}",
        ] {
            assert!(embeds(inside), "{inside}");
        }
    }

    #[test]
    fn a_secret_split_across_reads_is_masked_and_nothing_else_is_held() {
        let secret = Secret::new(b"Hunter2-Pw!".to_vec());
        let mut m = StreamMask::new(&[&secret]);
        let mut shown = Vec::new();
        for read in [&b"login ok\r\necho: Hun"[..], b"ter2", b"-Pw! done\r\n$ "] {
            shown.extend(m.feed(read));
        }
        shown.extend(m.finish());
        assert_eq!(shown, b"login ok\r\necho: *********** done\r\n$ ");
        // Output that cannot begin the secret goes out at once.
        let mut m = StreamMask::new(&[&secret]);
        assert_eq!(m.feed(b"Password: "), b"Password: ");
        // A held start that never completes is masked when the stream ends.
        assert_eq!(m.feed(b"say Hunt"), b"say ");
        assert_eq!(m.finish(), b"****");
    }
}
