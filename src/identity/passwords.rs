//! Why: user login passwords are stored only as argon2id hashes (OWASP parameters), and
//! random one-time passwords and tokens come from the OS RNG.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;

pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    // Hashing with a fresh salt and default params does not fail.
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash that matches nothing; verifying against it costs the same as a real check, so an
/// unknown user name takes as long to refuse as a wrong password.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash("portcullis-dummy-password-never-matches"))
}

/// URL-safe random text with `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A readable one-time password: 4 groups of 4 from an unambiguous alphabet.
pub fn one_time_password() -> String {
    const A: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut out = String::new();
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    for (i, x) in b.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(A[*x as usize % A.len()] as char);
    }
    out
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// Rules for user login passwords (vault secrets follow password policies instead).
pub fn check_login_password_strength(pw: &str, username: &str) -> Result<(), String> {
    if pw.chars().count() < 12 {
        return Err("must be at least 12 characters".into());
    }
    if pw.len() > 1024 {
        return Err("must be at most 1024 bytes".into());
    }
    if pw.to_lowercase().contains(&username.to_lowercase()) && !username.is_empty() {
        return Err("must not contain the user name".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_right_password() {
        let h = hash("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterz", &h));
        assert!(!verify("x", "not a hash"));
        assert!(!verify("portcullis-dummy-password", dummy_hash()));
    }

    #[test]
    fn strength_rules() {
        assert!(check_login_password_strength("short", "bob").is_err());
        assert!(check_login_password_strength("bob-is-my-password", "bob").is_err());
        assert!(check_login_password_strength("a perfectly fine one", "bob").is_ok());
        let otp = one_time_password();
        assert_eq!(otp.len(), 19);
        assert!(check_login_password_strength(&otp, "admin").is_ok());
    }
}
