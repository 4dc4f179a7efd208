//! Why: what was typed at a secret prompt is not dropped but kept apart. A shell can dress
//! itself as a password prompt (`PS1='token: '; stty -echo`) so that every command typed at it
//! is hidden from the replay; the replay shows only lengths, while the bytes themselves are
//! sealed here under a key of their own (one per recording, not the recording key), which the
//! server wraps in its vault and opens only for an audited, reasoned request. The sealed bytes
//! travel inside the `RedactedInput` event, so the chunk signatures cover them.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::FormatError;

/// The 256-bit AES-GCM key sealing one recording's hidden input. Zeroed on drop; no `Debug`,
/// `Display`, `Clone` or `Serialize`.
pub struct HiddenInputKey(zeroize::Zeroizing<[u8; 32]>);

impl HiddenInputKey {
    pub fn generate() -> HiddenInputKey {
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k[..]);
        HiddenInputKey(k)
    }

    pub fn from_slice(b: &[u8]) -> Result<HiddenInputKey, FormatError> {
        if b.len() != 32 {
            return Err(FormatError::Key);
        }
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        k.copy_from_slice(b);
        Ok(HiddenInputKey(k))
    }

    /// The raw key, for the vault to wrap.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Binds a sealed input to its recording, time and typist: it cannot be moved to another
/// recording or passed off as someone else's.
fn aad(recording_id: &str, t_ms: u64, by: &str) -> Vec<u8> {
    format!("portcullis hidden input|{recording_id}|{t_ms}|{by}").into_bytes()
}

/// Seals `data` (nonce, then ciphertext and tag).
pub fn seal(key: &HiddenInputKey, recording_id: &str, t_ms: u64, by: &str, data: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let Ok(cipher) = Aes256Gcm::new_from_slice(&key.0[..]) else {
        return Vec::new();
    };
    let aad = aad(recording_id, t_ms, by);
    // Encryption of an in-memory buffer with a valid key cannot fail.
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: data,
                aad: &aad,
            },
        )
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

/// Opens what `seal` made; fails if anything (bytes, recording, time, typist) differs.
pub fn open(
    key: &HiddenInputKey,
    recording_id: &str,
    t_ms: u64,
    by: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, FormatError> {
    if sealed.len() < 12 + 16 {
        return Err(FormatError::Malformed(
            "a sealed hidden input is too short".into(),
        ));
    }
    let cipher = Aes256Gcm::new_from_slice(&key.0[..]).map_err(|_| FormatError::Key)?;
    let (nonce, ct) = sealed.split_at(12);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: &aad(recording_id, t_ms, by),
            },
        )
        .map_err(|_| FormatError::Malformed("a hidden input does not open with this key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_input_opens_only_where_it_was_typed() {
        let key = HiddenInputKey::generate();
        let s = seal(&key, "rec-1", 120, "alice", b"rm -rf /tmp/x\r");
        assert!(!s.windows(5).any(|w| w == b"rm -r"));
        assert_eq!(
            open(&key, "rec-1", 120, "alice", &s).unwrap(),
            b"rm -rf /tmp/x\r"
        );
        for (rec, t, by) in [
            ("rec-2", 120, "alice"),
            ("rec-1", 121, "alice"),
            ("rec-1", 120, "bob"),
        ] {
            assert!(open(&key, rec, t, by, &s).is_err(), "{rec} {t} {by}");
        }
        assert!(open(&HiddenInputKey::generate(), "rec-1", 120, "alice", &s).is_err());
        let mut flipped = s.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open(&key, "rec-1", 120, "alice", &flipped).is_err());
    }
}
