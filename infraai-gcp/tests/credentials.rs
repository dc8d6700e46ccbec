//! Credentials: the service-account JWT exchange with a TEST-ONLY key
//! (tests/fixtures, see its README), signatures checked against the public
//! key and a known answer made by OpenSSL, token caching and refresh, and
//! `Debug` output free of secrets.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use infraai_core::{Error, Secret};
use infraai_gcp::*;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn local(name: &str) -> Vec<u8> {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn shared(p: &str) -> Value {
    let p = format!("{}/../tests/fixtures/{p}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .unwrap()
}

fn token_body(token: &str, expires_in: u64) -> Value {
    json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})
}

/// Verifies an RS256 JWT with the public key OpenSSL wrote; returns its
/// header and claims.
fn verify(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let public = local("test-only-sa-pubkey-pkcs1.der");
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the JWT signature verifies with the key's public half");
    let decode = |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    (decode(parts[0]), decode(parts[1]))
}

#[test]
fn rs256_matches_openssl_for_both_key_encodings() {
    let expected = STANDARD
        .decode(
            String::from_utf8(local("test-only-kat-signature.b64"))
                .unwrap()
                .trim(),
        )
        .unwrap();
    for pem in ["test-only-sa-key.pem", "test-only-sa-key-pkcs1.pem"] {
        let key = Secret::new(String::from_utf8(local(pem)).unwrap());
        let signer = Rs256Signer::from_pem(&key).unwrap();
        assert_eq!(
            signer.sign(b"infraai known-answer message").unwrap(),
            expected,
            "{pem}"
        );
        assert_ne!(signer.sign(b"another message").unwrap(), expected);
    }
}

#[test]
fn the_assertion_has_the_claims_google_expects_and_a_valid_signature() {
    let sa = ServiceAccount::from_json(&local("test-only-sa-key.json")).unwrap();
    let jwt = sa.assertion(1_764_086_400).unwrap();
    let (header, claims) = verify(jwt.expose());
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef0123456789abcdef01234567"})
    );
    assert_eq!(
        claims,
        json!({
            "iss": "ops-agent@demo-project.iam.gserviceaccount.com",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": "https://oauth2.googleapis.com/token",
            "iat": 1_764_086_400,
            "exp": 1_764_090_000,
        })
    );
    // A tampered payload does not verify.
    let parts: Vec<&str> = jwt.expose().split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(
        claims
            .to_string()
            .replace("ops-agent@", "attacker@")
            .as_bytes(),
    );
    let public = local("test-only-sa-pubkey-pkcs1.der");
    assert!(ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &public
    )
    .verify(
        format!("{}.{forged}", parts[0]).as_bytes(),
        &URL_SAFE_NO_PAD.decode(parts[2]).unwrap()
    )
    .is_err());
}

#[tokio::test]
async fn service_account_exchanges_a_jwt_and_caches_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
        ))
        .and(body_string_contains("assertion="))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("ya29.first", 3599)))
        .expect(1)
        .mount(&server)
        .await;
    let uri = format!("{}/token", server.uri());
    let sa = ServiceAccount::from_json(&local("test-only-sa-key.json"))
        .unwrap()
        .with_token_uri(&uri);
    let before = chrono::Utc::now().timestamp();
    assert_eq!(sa.token().await.unwrap().expose(), "ya29.first");
    // Cached: no second exchange (expect(1) above).
    assert_eq!(sa.token().await.unwrap().expose(), "ya29.first");

    let body =
        String::from_utf8(server.received_requests().await.unwrap()[0].body.clone()).unwrap();
    let assertion = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("assertion="))
        .unwrap();
    let (_, claims) = verify(assertion);
    assert_eq!(claims["aud"], uri.as_str());
    assert_eq!(
        claims["iss"],
        "ops-agent@demo-project.iam.gserviceaccount.com"
    );
    let iat = claims["iat"].as_i64().unwrap();
    assert!((before..=before + 5).contains(&iat), "iat {iat}");
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 3600);
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("ya29.a", 2)))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("ya29.b", 3599)))
        .expect(1)
        .mount(&server)
        .await;
    // Expires in 2 s, refreshed 1 s before: valid for 1 s.
    let sa = ServiceAccount::from_json(&local("test-only-sa-key.json"))
        .unwrap()
        .with_token_uri(format!("{}/token", server.uri()))
        .with_refresh_margin(Duration::from_secs(1));
    assert_eq!(sa.token().await.unwrap().expose(), "ya29.a");
    assert_eq!(sa.token().await.unwrap().expose(), "ya29.a");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(sa.token().await.unwrap().expose(), "ya29.b");
    assert_eq!(sa.token().await.unwrap().expose(), "ya29.b");
}

#[tokio::test]
async fn metadata_tokens_are_cached_and_refreshed() {
    let server = MockServer::start().await;
    let mut first = shared("gcp-metadata/token.json");
    first["expires_in"] = json!(2);
    let path_ = "/computeMetadata/v1/instance/service-accounts/default/token";
    Mock::given(method("GET"))
        .and(path(path_))
        .and(header("Metadata-Flavor", "Google"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&first))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(path_))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("ya29.second", 3599)))
        .expect(1)
        .mount(&server)
        .await;
    let md = MetadataServer::new(server.uri()).with_refresh_margin(Duration::from_secs(1));
    let fixture_token = first["access_token"].as_str().unwrap();
    assert_eq!(md.token().await.unwrap().expose(), fixture_token);
    assert_eq!(md.token().await.unwrap().expose(), fixture_token);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(md.token().await.unwrap().expose(), "ya29.second");
}

#[tokio::test]
async fn a_refused_assertion_is_unauthenticated_and_names_no_secret() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "Invalid JWT Signature."
        })))
        .expect(1)
        .mount(&server)
        .await;
    let sa = ServiceAccount::from_json(&local("test-only-sa-key.json"))
        .unwrap()
        .with_token_uri(format!("{}/token", server.uri()));
    let err = sa.token().await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("invalid_grant: Invalid JWT Signature."),
        "{text}"
    );
    assert!(!text.contains("eyJ"), "the assertion leaked: {text}");
}

#[test]
fn debug_output_holds_no_secret() {
    let json = local("test-only-sa-key.json");
    let key = ServiceAccountKey::from_json(&json).unwrap();
    let body_line = String::from_utf8(local("test-only-sa-key.pem"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let sa = ServiceAccount::new(key.clone()).unwrap();
    let signer = Rs256Signer::from_pem(&key.private_key).unwrap();
    let st = StaticToken(Secret::new("ya29.static-secret"));
    let md = MetadataServer::default();
    for text in [
        format!("{key:?}"),
        format!("{sa:?}"),
        format!("{signer:?}"),
        format!("{st:?}"),
        format!("{md:?}"),
    ] {
        assert!(!text.contains(&body_line), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains("ya29"), "{text}");
    }
    assert!(format!("{sa:?}").contains("ops-agent@demo-project.iam.gserviceaccount.com"));
}
