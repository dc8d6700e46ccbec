//! Slack's request signing: `v0=` + hex HMAC-SHA256 of
//! `v0:<X-Slack-Request-Timestamp>:<raw body>` with the app's signing
//! secret, compared in constant time (`ring::hmac::verify`).

use infraai_core::signed::decode_hex;
use ring::hmac;

/// Header carrying `v0=<hex signature>`.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// Header carrying the Unix timestamp that is signed with the body.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// The app's signing secret as an HMAC key.
#[derive(Clone)]
pub struct SigningKey(hmac::Key);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

fn base_string(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + body.len() + 4);
    message.extend_from_slice(b"v0:");
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b':');
    message.extend_from_slice(body);
    message
}

impl SigningKey {
    /// The key of a signing secret.
    pub fn new(secret: &str) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
    }

    /// `v0=<hex>`: what Slack sends in [`SIGNATURE_HEADER`] for this request.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let tag = hmac::sign(&self.0, &base_string(timestamp, body));
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("v0={hex}")
    }

    /// Whether `signature` (`v0=<hex>`) signs `timestamp` and the raw body.
    /// Malformed input is `false`.
    pub fn verify(&self, timestamp: &str, body: &[u8], signature: &str) -> bool {
        let Some(tag) = signature.trim().strip_prefix("v0=").and_then(decode_hex) else {
            return false;
        };
        hmac::verify(&self.0, &base_string(timestamp, body), &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slacks_documented_example_verifies() {
        // The example of Slack's "Verifying requests from Slack" guide.
        let key = SigningKey::new("8f742231b10e8888abcd99yyyzzz85a5");
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert!(key.verify("1531420618", body, sig));
        assert_eq!(key.sign("1531420618", body), sig);
        assert!(!key.verify("1531420619", body, sig));
        assert!(!key.verify("1531420618", b"tampered", sig));
        assert!(!key.verify("1531420618", body, "v1=00"));
        assert!(!key.verify("1531420618", body, "v0=zz"));
    }
}
