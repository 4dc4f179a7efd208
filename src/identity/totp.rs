//! Why: second factor for web logins (RFC 6238 TOTP, SHA-1, 6 digits, 30 s — what every
//! authenticator app speaks). Written here rather than taken from a crate because the seed must
//! live in our `Secret` type (no Debug, zeroized), and the algorithm is a dozen lines.

use hmac::{Hmac, Mac};
use rand::RngCore;
use secret::Secret;

pub const STEP: u64 = 30;
pub const DIGITS: u32 = 6;

pub fn generate_seed() -> Secret {
    let mut seed = vec![0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    Secret::new(seed)
}

/// The code for time-step `counter` (RFC 4226 HOTP with dynamic truncation).
pub fn code_at(seed: &Secret, counter: u64) -> u32 {
    let Ok(mut mac) = <Hmac<sha1::Sha1> as Mac>::new_from_slice(seed.expose()) else {
        return u32::MAX; // HMAC accepts any key length; never a valid 6-digit code anyway.
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = ((h[off] as u32 & 0x7f) << 24)
        | ((h[off + 1] as u32) << 16)
        | ((h[off + 2] as u32) << 8)
        | h[off + 3] as u32;
    bin % 10u32.pow(DIGITS)
}

/// Checks `code` at `unix_secs`, allowing one step of clock skew either way. Returns the
/// matching counter so the caller can refuse a replay of the same code.
pub fn check(seed: &Secret, code: &str, unix_secs: u64) -> Option<u64> {
    let code = code.trim().replace(' ', "");
    if code.len() != DIGITS as usize || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let want: u32 = code.parse().ok()?;
    let now = unix_secs / STEP;
    [now.saturating_sub(1), now, now + 1]
        .into_iter()
        .find(|&c| code_at(seed, c) == want)
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 4648 base32 without padding, as otpauth URIs want.
pub fn base32(bytes: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(A[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(A[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn uri_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The otpauth URI an authenticator app scans. It contains the seed: it is shown to its own
/// user once, at enrolment, and never logged.
pub fn otpauth_uri(seed: &Secret, issuer: &str, account: &str) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={}&period={}",
        uri_escape(issuer),
        uri_escape(account),
        base32(seed.expose()),
        uri_escape(issuer),
        DIGITS,
        STEP
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", 8 digits there; the low 6
        // digits of each published value are the 6-digit code.
        let seed = Secret::new(b"12345678901234567890".to_vec());
        for (t, want8) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(code_at(&seed, t / STEP), want8 % 1_000_000, "t={t}");
        }
        let code = format!("{:06}", code_at(&seed, 1234567890 / STEP));
        assert_eq!(check(&seed, &code, 1234567890), Some(1234567890 / STEP));
        assert_eq!(
            check(&seed, &code, 1234567890 + 31),
            Some(1234567890 / STEP)
        );
        assert_eq!(check(&seed, &code, 1234567890 + 95), None);
        assert_eq!(check(&seed, "12345", 0), None);
    }

    #[test]
    fn base32_known_values() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }
}
