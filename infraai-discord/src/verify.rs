//! Ed25519 verification of interaction requests.

use ed25519_dalek::{Signature, VerifyingKey};
use infraai_core::signed::decode_hex as hex;

/// Header carrying the hex signature.
pub const SIGNATURE_HEADER: &str = "x-signature-ed25519";
/// Header carrying the timestamp that is signed with the body.
pub const TIMESTAMP_HEADER: &str = "x-signature-timestamp";

/// An application public key.
#[derive(Clone, Debug)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses the hex public key from the Developer Portal.
    pub fn from_hex(key: &str) -> Result<Self, String> {
        let bytes: [u8; 32] = hex(key.trim())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| "the Discord public key must be 64 hex characters".to_string())?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|e| format!("invalid Discord public key: {e}"))
    }

    /// Whether `signature_hex` is a valid signature of `timestamp` + `body`
    /// (the raw bytes, exactly as received). Malformed input is `false`.
    pub fn verify(&self, timestamp: &str, body: &[u8], signature_hex: &str) -> bool {
        let Some(sig) = hex(signature_hex.trim()).and_then(|b| Signature::from_slice(&b).ok())
        else {
            return false;
        };
        let mut message = Vec::with_capacity(timestamp.len() + body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.extend_from_slice(body);
        self.0.verify_strict(&message, &sig).is_ok()
    }
}
