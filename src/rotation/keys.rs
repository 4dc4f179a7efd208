//! Why: an SSH-key account is rotated by generating a new key pair here (the private key
//! never exists anywhere but the vault and this process), installing its public half on the
//! target, and removing the old public half once the new one logs in. These helpers turn
//! vault secrets into the public lines that go into `authorized_keys`.

use rand::RngCore;
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;
use secret::Secret;

/// A new ed25519 private key in OpenSSH format, without a passphrase.
pub fn generate(comment: &str) -> Result<Secret, String> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut seed[..]);
    let pair = Ed25519Keypair::from_seed(&seed);
    let key = PrivateKey::new(KeypairData::Ed25519(pair), comment)
        .map_err(|e| format!("a new key could not be made: {e}"))?;
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| format!("a new key could not be encoded: {e}"))?;
    Ok(Secret::from_str_copy(&pem))
}

fn decode(pem: &Secret, passphrase: Option<&Secret>) -> Result<PrivateKey, String> {
    let text = pem
        .expose_str()
        .ok_or("the vault's private key is not text")?;
    russh::keys::decode_secret_key(text, passphrase.and_then(|p| p.expose_str())).map_err(|_| {
        "the vault's private key cannot be read (wrong passphrase, or not an OpenSSH/PEM key)"
            .to_string()
    })
}

/// The `authorized_keys` line of a private key: `ssh-ed25519 AAAA... comment`.
pub fn public_line(pem: &Secret, passphrase: Option<&Secret>) -> Result<String, String> {
    decode(pem, passphrase)?
        .public_key()
        .to_openssh()
        .map_err(|e| format!("the public key could not be encoded: {e}"))
}

/// The key's base64 body alone (what identifies it in `authorized_keys`, whatever the
/// comment or options around it).
pub fn public_body(pem: &Secret, passphrase: Option<&Secret>) -> Result<String, String> {
    let line = public_line(pem, passphrase)?;
    line.split_whitespace()
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| "the public key has no body".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_reads_back_and_is_new_each_time() {
        let a = generate("test").expect("a key");
        let b = generate("test").expect("a key");
        let la = public_line(&a, None).expect("public");
        assert!(la.starts_with("ssh-ed25519 AAAA"), "{la}");
        assert!(la.ends_with(" test"));
        assert_ne!(
            public_body(&a, None).expect("body"),
            public_body(&b, None).expect("body")
        );
        assert!(a
            .expose_str()
            .is_some_and(|t| t.contains("BEGIN OPENSSH PRIVATE KEY")));
    }
}
