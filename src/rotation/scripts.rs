//! Why: the built-in ways of changing a password at a Unix shell, written as scripts of the
//! logon-script kind so that an administrator can read them, copy one as the start of a
//! custom script (a network device's config mode), and so one runner serves them all.
//!
//! Conventions that make them safe to run unattended:
//! - every value that tells the script it is done is printed by the target in a form the
//!   typed command line cannot contain (`printf "PORTCULLIS-%s\n" READY` prints
//!   `PORTCULLIS-READY`; `echo "PORTCULLIS_RC=$?"` prints `PORTCULLIS_RC=0`), so an echoed
//!   command never matches its own answer;
//! - the new password never appears on a command line (it would be in the process list and
//!   the shell history): it is typed at a prompt or into `chpasswd`'s standard input, with
//!   the terminal's echo off.

use gateway::telnet::logon::{step, LogonScript, LogonStep};

/// The rotation methods a resource can be set to.
pub const METHODS: &[&str] = &["postgres", "mysql", "passwd", "sudo", "script"];

/// Why the `su` method (which earlier versions offered) is refused, for the settings API and
/// for a resource still set to it: it logged in as the rotated account and typed root's
/// password at that account's shell, whose rc files the account (and anyone with a session
/// as it) controls. No way of typing there is safe, so it is not done at all.
pub const SU_REFUSED: &str = "the su method is refused: it typed root's password at a shell the rotated account controls, where a function in its ~/.bashrc could capture it. Use sudo: a privileged account that logs in itself (root, where root may log in over SSH) runs chpasswd";

/// Methods that log in to a terminal (SSH, or Telnet when the resource has no SSH port).
pub fn is_terminal(method: &str) -> bool {
    matches!(method, "passwd" | "sudo" | "script")
}

/// Methods that need the resource's privileged account.
pub fn needs_privileged(method: &str) -> bool {
    method == "sudo"
}

fn optional(mut s: LogonStep) -> LogonStep {
    s.optional = true;
    s
}

const PROMPT: &str = r"[$#%>] ?$";

/// The exit status check every built-in ends with.
fn exit_status(prompt_send: &str) -> Vec<LogonStep> {
    vec![
        step("shell prompt", PROMPT, Some(prompt_send)),
        step("exit status 0", r"PORTCULLIS_RC=0", None),
    ]
}

fn failures(more: &[&str]) -> Vec<String> {
    let mut f: Vec<String> = vec![r"PORTCULLIS_RC=[1-9]".into()];
    f.extend(more.iter().map(|s| s.to_string()));
    f
}

/// The script a method runs (None for methods without one).
pub fn builtin(method: &str) -> Option<LogonScript> {
    let rc = r#"echo "PORTCULLIS_RC=$?""#;
    match method {
        // The account changes its own password with passwd(1), logged in with it.
        "passwd" => Some(LogonScript {
            steps: [
                vec![
                    step("shell prompt", PROMPT, Some("LC_ALL=C passwd")),
                    // root is not asked for its current password.
                    optional(step(
                        "current password",
                        r"(current|old)[^\n]*password:\s*$",
                        Some("{current_password}"),
                    )),
                    step(
                        "new password",
                        r"new[^\n]*password:\s*$",
                        Some("{new_password}"),
                    ),
                    step(
                        "new password again",
                        r"(retype|again|re-enter|repeat|confirm)[^\n]*password:\s*$",
                        Some("{new_password}"),
                    ),
                ],
                exit_status(rc),
            ]
            .concat(),
            failure: failures(&[
                "authentication token manipulation error",
                "authentication failure",
                "bad password",
                "password unchanged",
                "you must choose a longer password",
                "passwords do not match",
                "have exhausted maximum number of retries",
            ]),
        }),
        // The privileged account (logged in) runs chpasswd through sudo.
        "sudo" => Some(LogonScript {
            steps: vec![
                step(
                    "shell prompt",
                    PROMPT,
                    Some(
                        r#"stty -echo; sudo -k; LC_ALL=C sudo -p 'PORTCULLIS-%p-SUDO: ' sh -c 'PATH=/usr/sbin:/sbin:$PATH; printf "PORTCULLIS-%s\n" READY; head -n 1 | chpasswd'; echo "PORTCULLIS_RC=$?"; stty echo"#,
                    ),
                ),
                // Not asked when sudo needs no password for this account.
                optional(step(
                    "sudo password",
                    r"PORTCULLIS-[^%\s]+-SUDO: $",
                    Some("{privileged_password}"),
                )),
                step(
                    "chpasswd ready",
                    r"PORTCULLIS-READY",
                    Some("{account}:{new_password}"),
                ),
                step("exit status 0", r"PORTCULLIS_RC=0", None),
            ],
            failure: failures(&[
                "sorry, try again",
                "is not in the sudoers file",
                "is not allowed to (run|execute)",
                "incorrect password attempt",
                "a password is required",
                "password not changed",
            ]),
        }),
        _ => None,
    }
}

/// Installs a new public key for the logged-in account (`~/.ssh/authorized_keys`, created
/// if need be, private to the account).
pub fn install_key(public_key: &str) -> LogonScript {
    let add = format!(
        r#"umask 077; mkdir -p ~/.ssh && printf '%s\n' '{}' >> ~/.ssh/authorized_keys; echo "PORTCULLIS_RC=$?""#,
        escape_braces(public_key)
    );
    LogonScript {
        steps: vec![
            step("shell prompt", PROMPT, Some(&add)),
            step("exit status 0", r"PORTCULLIS_RC=0", None),
        ],
        failure: failures(&[]),
    }
}

/// Removes every line holding `key_base64` (the old key's body) from the logged-in
/// account's `~/.ssh/authorized_keys`, keeping the file itself (owner, mode, inode).
pub fn remove_key(key_base64: &str) -> LogonScript {
    let remove = format!(
        r#"f=~/.ssh/authorized_keys; grep -vF '{}' "$f" > "$f.portcullis"; cat "$f.portcullis" > "$f" && rm -f "$f.portcullis"; echo "PORTCULLIS_RC=$?""#,
        escape_braces(key_base64)
    );
    LogonScript {
        steps: vec![
            step("shell prompt", PROMPT, Some(&remove)),
            step("exit status 0", r"PORTCULLIS_RC=0", None),
        ],
        failure: failures(&[]),
    }
}

fn escape_braces(s: &str) -> String {
    s.replace('{', "{{").replace('}', "}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway::telnet::logon::{LogonAction, LogonRun};

    #[test]
    fn builtins_compile_as_rotation_scripts() {
        for m in METHODS.iter().filter(|m| is_terminal(m) && **m != "script") {
            builtin(m)
                .unwrap_or_else(|| panic!("{m} has a script"))
                .compile_rotation()
                .unwrap_or_else(|e| panic!("{m}: {e}"));
        }
        install_key("ssh-ed25519 AAAAC3Nz test")
            .compile_rotation()
            .expect("install");
        remove_key("AAAAC3Nz").compile_rotation().expect("remove");
    }

    #[test]
    fn an_echoed_command_line_never_answers_itself() {
        // The typed command comes back as the terminal's echo: none of the markers it
        // waits for may match it.
        let s = builtin("sudo")
            .expect("sudo")
            .compile_rotation()
            .expect("compiles");
        let mut r = LogonRun::new(s);
        assert!(matches!(
            r.feed(b"alice@host:~$ "),
            LogonAction::Matched { index: 0, .. }
        ));
        let echo = b"stty -echo; sudo -k; LC_ALL=C sudo -p 'PORTCULLIS-%p-SUDO: ' sh -c 'PATH=/usr/sbin:/sbin:$PATH; printf \"PORTCULLIS-%s\\n\" READY; head -n 1 | chpasswd'; echo \"PORTCULLIS_RC=$?\"; stty echo\r\n";
        assert_eq!(r.feed(echo), LogonAction::Wait);
        assert!(matches!(
            r.feed(b"PORTCULLIS-admin-SUDO: "),
            LogonAction::Matched { index: 1, .. }
        ));
        assert!(matches!(
            r.feed(b"\r\nPORTCULLIS-READY\r\n"),
            LogonAction::Matched { index: 2, .. }
        ));
        assert_eq!(r.feed(b"PORTCULLIS_RC=0\r\n"), LogonAction::Done);
    }

    #[test]
    fn a_nonzero_exit_status_fails_the_script() {
        let s = builtin("passwd")
            .expect("passwd")
            .compile_rotation()
            .expect("compiles");
        let mut r = LogonRun::new(s);
        r.feed(b"$ ");
        r.feed(b"Current password: ");
        r.feed(b"New password: ");
        r.feed(b"Retype new password: ");
        r.feed(b"\r\npasswd: password updated successfully\r\n$ ");
        assert!(matches!(
            r.feed(b"PORTCULLIS_RC=1\r\n"),
            LogonAction::Failed { .. }
        ));
    }
}
