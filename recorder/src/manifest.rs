//! Why: a recording's closing statement. The chain proves the chunks belong together; the
//! manifest, signed with the server's Ed25519 recording key, proves where the chain ends and
//! that this server wrote it, so truncation after close and forged recordings are detected
//! even by an auditor who holds only the public key.

use base64::Engine;
use ed25519_dalek::{Signer, Verifier};

use crate::FormatError;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub recording_id: String,
    pub session_id: String,
    pub chunks: u64,
    pub header_hash: String,
    pub final_hash: String,
    pub started_at_ms: i64,
    pub ended_at_ms: i64,
    pub duration_ms: u64,
    pub output_bytes: u64,
    pub end_reason: String,
}

/// The manifest with its signature and the public key that made it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SignedManifest {
    pub manifest: Manifest,
    /// Ed25519 over the manifest's JSON (serde_json, field order as declared), base64.
    pub signature: String,
    /// The signer's public key, base64 (check it against the server's published key).
    pub public_key: String,
}

/// The server's recording signing key. No `Debug`/`Clone`/`Serialize`; zeroed on drop by
/// ed25519-dalek.
pub struct SigningKey(ed25519_dalek::SigningKey);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl SigningKey {
    pub fn generate() -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    pub fn from_bytes(b: &[u8]) -> Result<SigningKey, FormatError> {
        let arr: [u8; 32] = b.try_into().map_err(|_| FormatError::Key)?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&arr)))
    }

    /// The private key bytes, for the vault to seal. Handle with care.
    pub fn expose(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key_b64(&self) -> String {
        B64.encode(self.0.verifying_key().to_bytes())
    }

    /// Signs raw bytes (a chunk's `format::chunk_signed_bytes`).
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    pub fn sign(&self, manifest: Manifest) -> SignedManifest {
        let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
        SignedManifest {
            signature: B64.encode(self.0.sign(&bytes).to_bytes()),
            public_key: self.public_key_b64(),
            manifest,
        }
    }
}

impl SignedManifest {
    /// Checks the signature against the key in the manifest file, and that key against
    /// `trusted` when given. Returns a reason when it does not hold.
    pub fn check(&self, trusted: Option<&str>) -> Result<(), String> {
        if let Some(t) = trusted {
            if t != self.public_key {
                return Err("signed by a key other than this server's recording key".into());
            }
        }
        let pk: [u8; 32] = B64
            .decode(&self.public_key)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or("the public key is malformed")?;
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk)
            .map_err(|_| "the public key is malformed")?;
        let sig: [u8; 64] = B64
            .decode(&self.signature)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or("the signature is malformed")?;
        let bytes = serde_json::to_vec(&self.manifest).map_err(|e| e.to_string())?;
        vk.verify(&bytes, &ed25519_dalek::Signature::from_bytes(&sig))
            .map_err(|_| {
                "the manifest signature does not verify (the manifest was altered)".to_string()
            })
    }
}

/// Checks a chunk's signature (`format::chunk_signed_bytes`) against a base64 Ed25519 public
/// key. Returns a reason when it does not hold.
pub fn check_chunk_signature(
    public_key_b64: &str,
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), String> {
    let pk: [u8; 32] = B64
        .decode(public_key_b64)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or("the signing key is malformed")?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk)
        .map_err(|_| "the signing key is malformed".to_string())?;
    vk.verify(message, &ed25519_dalek::Signature::from_bytes(signature))
        .map_err(|_| "its signature does not verify (the chunk was altered)".to_string())
}
