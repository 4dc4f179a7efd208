//! Why: a credential must never reach a log line, an error message, an API response or a
//! browser. The compiler is the cheapest reviewer we have, so the type that holds one does
//! not implement `Debug`, `Display`, `Serialize` or `Clone`; it is wiped from memory when
//! dropped. Code that really needs the bytes calls `expose()`, which is easy to grep for.

use zeroize::Zeroize;

/// Secret bytes (a password, a private key, a key passphrase, a TOTP seed, a key).
///
/// Deliberately not `Debug`, `Display`, `Serialize`, `Clone`: see the module comment.
pub struct Secret {
    bytes: Vec<u8>,
}

impl Secret {
    /// Takes ownership of `bytes`; they are zeroized when the `Secret` is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret { bytes }
    }

    /// Copies a string into a new secret. The caller should drop or zeroize its own copy.
    pub fn from_str_copy(s: &str) -> Self {
        Secret {
            bytes: s.as_bytes().to_vec(),
        }
    }

    /// The secret bytes. Every call site is a place where the secret leaves this wrapper:
    /// keep them few and never pass the result to a formatter.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The secret as UTF-8 text, if it is text.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }

    /// An explicit copy; named so that copies are visible in review.
    pub fn duplicate(&self) -> Secret {
        Secret {
            bytes: self.bytes.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Constant-time comparison, for verifying a presented secret.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        if self.bytes.len() != other.len() {
            return false;
        }
        let mut diff = 0u8;
        for (a, b) in self.bytes.iter().zip(other) {
            diff |= a ^ b;
        }
        diff == 0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl From<String> for Secret {
    fn from(mut s: String) -> Self {
        let secret = Secret::from_str_copy(&s);
        s.zeroize();
        secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_what_it_was_given() {
        let s = Secret::from(String::from("hunter2"));
        assert_eq!(s.expose_str(), Some("hunter2"));
        assert!(s.ct_eq(b"hunter2"));
        assert!(!s.ct_eq(b"hunter3"));
        assert!(!s.ct_eq(b"hunter"));
        assert_eq!(s.duplicate().expose(), b"hunter2");
    }

    // Fails to compile if anyone adds a formatter or serializer to Secret.
    static_assertions::assert_not_impl_any!(
        Secret: std::fmt::Debug,
        std::fmt::Display,
        Clone,
        serde::Serialize
    );
}
