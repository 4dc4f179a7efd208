//! Why: the gateway types command lines at shells it does not control (an interactive landing
//! server's `exec ssh ...`, a rotation's `chpasswd`), with values a user with Modify can set
//! (account user names, hosts). A value pasted into such a line is code: `x$(id>/tmp/p)` as a
//! user name would run as the landing server's login account. So every value is quoted for a
//! POSIX shell, and user names that reach a terminal are checked first: quoting keeps the
//! shell from running them, the check keeps the programs that read them (`ssh`, `chpasswd`)
//! from taking them as options or as a second field.

/// Characters a user name typed at a shell may hold: what Unix, Windows and network-device
/// accounts use, and nothing a shell, `ssh` or `chpasswd` gives a meaning.
fn username_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+')
}

/// Checks a user name the gateway is about to type at a shell or feed to `chpasswd`: not
/// empty, no leading `-` (an option to `ssh` or `su`), no `:` (`chpasswd` reads `name:password`),
/// no white space, control characters or shell metacharacters. The error says why, for the
/// session's or rotation's failure message.
pub fn check_username(username: &str) -> Result<(), String> {
    if username.is_empty() {
        return Err("the account's user name is empty".into());
    }
    if username.starts_with('-') {
        return Err(format!(
            "the account's user name \u{201c}{}\u{201d} starts with '-', which the programs typed at a shell would read as an option",
            printable(username)
        ));
    }
    if let Some(c) = username.chars().find(|c| !username_char(*c)) {
        return Err(format!(
            "the account's user name \u{201c}{}\u{201d} holds {}, which is not allowed in a user name the gateway types at a shell (letters, digits and . _ - @ + are)",
            printable(username),
            describe(c)
        ));
    }
    Ok(())
}

/// Quotes `value` as one word for a POSIX shell (and for csh, fish and zsh, which read
/// single quotes the same way). Words made only of characters no shell treats specially are
/// left as they are, so the usual command line stays readable in the connection log.
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The value with control characters shown as escapes, for error messages.
fn printable(value: &str) -> String {
    value.chars().flat_map(char::escape_debug).collect()
}

fn describe(c: char) -> String {
    if c.is_whitespace() {
        "white space".into()
    } else if c.is_control() {
        format!("a control character ({})", c.escape_debug())
    } else {
        format!("\u{201c}{c}\u{201d}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sh -c "printf %s <quoted>"` prints: the shell's own reading of the quoted word.
    fn shell_reads(quoted: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {quoted}"))
            .output()
            .expect("sh runs");
        String::from_utf8(out.stdout).expect("utf-8")
    }

    #[test]
    fn quoted_values_reach_the_program_as_one_literal_word() {
        for hostile in [
            "x$(id>/tmp/p)",
            "x`id`",
            "a'b",
            "'; rm -rf ~; '",
            "a b",
            "a\nb",
            "$HOME",
            "-oProxyCommand=id",
            "",
            "a\\b",
            "*",
        ] {
            assert_eq!(shell_reads(&quote(hostile)), hostile, "{hostile:?}");
        }
        assert_eq!(quote("ops@db-1.example.com"), "ops@db-1.example.com");
        assert_eq!(quote("10.0.0.5"), "10.0.0.5");
    }

    #[test]
    fn user_names_a_shell_or_chpasswd_would_misread_are_refused() {
        for ok in ["ops", "svc.backup", "j_doe-2", "user@EXAMPLE.COM", "zoë"] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-oProxyCommand=id",
            "x$(id)",
            "x`id`",
            "root:x",
            "a b",
            "a\nb",
            "a;b",
            "a|b",
            "a'b",
            "a\"b",
            "a\\b",
            "a>b",
            "a&b",
            "a*",
        ] {
            let err = check_username(bad).expect_err(bad);
            assert!(err.contains("user name"), "{err}");
            assert!(!err.contains('\n'), "{err:?}");
        }
    }
}
