//! AWS Signature Version 4 by hand on `ring` (in the tree through rustls),
//! checked against AWS's test suite vectors. `aws-sigv4` was measured (issue
//! 23): 1.6 needs Rust 1.94 (we promise 1.86) and adds 18 crates (~30 s to
//! build); on 1.86 it is 1.3 with 21 (a second `http`) — for these ~80 lines.

use crate::config::AwsCredentials;
use chrono::{DateTime, Utc};
use ring::{digest, hmac};

/// One request to sign. Header names may be in any case; `host` and
/// `x-amz-date` must be among them (and `x-amz-security-token` when the
/// credentials carry a session token).
#[derive(Clone, Debug)]
pub struct SigningRequest<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The URI path, already URI-encoded (`/` for the Query and JSON APIs).
    pub path: &'a str,
    /// The canonical query string (`k=v&…`, sorted, encoded), or empty.
    pub query: &'a str,
    /// The headers to sign.
    pub headers: &'a [(String, String)],
    /// The request body.
    pub payload: &'a [u8],
    /// Region of the scope.
    pub region: &'a str,
    /// Service of the scope (`ec2`, `monitoring`).
    pub service: &'a str,
}

/// `YYYYMMDD'T'HHMMSS'Z'`, the `x-amz-date` format.
pub fn amz_date(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        .as_ref()
        .to_vec()
}

/// URI-encodes per SigV4: unreserved characters stay, everything else is
/// `%XX` (uppercase).
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `Authorization` header value for `request`, signed at `amz_date`
/// (which must equal the request's `x-amz-date` header).
pub fn authorization(
    creds: &AwsCredentials,
    request: &SigningRequest<'_>,
    amz_date: &str,
) -> String {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| {
            let value = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (k.to_ascii_lowercase(), value)
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        request.method,
        request.path,
        request.query,
        sha256_hex(request.payload)
    );
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let scope = format!("{date}/{}/{}/aws4_request", request.region, request.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let secret = format!("AWS4{}", creds.secret_access_key.expose());
    let k_date = hmac_sha256(secret.as_bytes(), date);
    let k_region = hmac_sha256(&k_date, request.region);
    let k_service = hmac_sha256(&k_region, request.service);
    let k_signing = hmac_sha256(&k_service, "aws4_request");
    let signature = hex(&hmac_sha256(&k_signing, &string_to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraai_core::Secret;

    fn suite() -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const DATE: &str = "20150830T123600Z";

    fn sign(method: &str, query: &str, headers: &[(&str, &str)], payload: &[u8]) -> String {
        authorization(
            &suite(),
            &SigningRequest {
                method,
                path: "/",
                query,
                headers: &h(headers),
                payload,
                region: "us-east-1",
                service: "service",
            },
            DATE,
        )
    }

    /// The AWS SigV4 test suite (docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html).
    #[test]
    fn aws_test_suite_vectors() {
        let base = [("Host", "example.amazonaws.com"), ("X-Amz-Date", DATE)];
        assert_eq!(
            sign("GET", "", &base, b""),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(
            sign("POST", "Param1=value1", &base, b""),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
        );
        // post-x-www-form-urlencoded: the shape of every Query API call.
        assert_eq!(
            sign(
                "POST",
                "",
                &[
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("Host", "example.amazonaws.com"),
                    ("X-Amz-Date", DATE)
                ],
                b"Param1=value1"
            ),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    #[test]
    fn encoding_and_debug_never_show_the_secret() {
        assert_eq!(uri_encode("a b/c~d=é"), "a%20b%2Fc~d%3D%C3%A9");
        assert!(!format!("{:?}", suite()).contains("wJalr"));
    }
}
