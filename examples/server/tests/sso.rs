//! Single sign-on and roles against the test issuer (`common/idp.rs`) over
//! real HTTP: the provider's access tokens (and every way one can be
//! wrong), key rotation, API tokens, every route's role from the one
//! table, and the dashboard's sign-in flow with its session cookie and
//! CSRF token.

mod common;
#[path = "common/idp.rs"]
mod idp;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use idp::*;
use infraai_server::auth::{Role, ROUTE_ROLES};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, Method};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const ALICE: &User = &USERS[0];
const BOB: &User = &USERS[1];
const OLGA: &User = &USERS[2];

async fn sso_server(name: &str, idp: &Idp) -> Server {
    let env = [
        ("INFRAAI_OIDC_ISSUER", idp.issuer.as_str()),
        ("INFRAAI_OIDC_CLIENT_ID", CLIENT_ID),
        ("INFRAAI_OIDC_CLIENT_SECRET", CLIENT_SECRET),
        ("INFRAAI_OIDC_ROLE_MAP", "sre=approver,platform=operator"),
    ];
    Server::start(name, &["--cloud", "simulated"], &env).await
}

/// `method path` with `Authorization: Bearer token` (none when empty) and,
/// for anything but GET, an empty JSON object: the status and the body.
async fn call(s: &Server, token: &str, method: &str, path: &str) -> (u16, Value) {
    let method: Method = method.parse().unwrap();
    let mut r = s.http.request(method.clone(), s.url(path));
    if !token.is_empty() {
        r = r.bearer_auth(token);
    }
    if method != Method::GET {
        r = r.json(&json!({}));
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_are_checked_and_a_rotated_key_is_picked_up() {
    let (rsa, ec) = (SigningKey::rsa(1, "k1"), SigningKey::ec("e1"));
    let idp = Idp::start(vec![rsa.clone(), ec.clone()]).await;
    let s = sso_server("sso-tokens", &idp).await;
    for (key, user, role) in [
        (&rsa, ALICE, "approver"),
        (&ec, ALICE, "approver"),
        (&rsa, BOB, "viewer"),
        (&ec, OLGA, "operator"),
    ] {
        let (status, me) = call(
            &s,
            &idp.access_token(key, user, CLIENT_ID, 300),
            "GET",
            "/auth/me",
        )
        .await;
        assert_eq!(status, 200, "{:?} {}: {me}", key.alg, user.sub);
        assert_eq!(
            (
                me["subject"].as_str(),
                me["role"].as_str(),
                me["via"].as_str()
            ),
            (Some(user.sub), Some(role), Some("bearer"))
        );
        assert_eq!(me["email"], user.email);
    }

    let claims = idp.claims(ALICE, CLIENT_ID, 300);
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        c
    };
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let valid = rsa.sign(&claims);
    let parts: Vec<&str> = valid.split('.').collect();
    let stranger = SigningKey::rsa(2, "k2");
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("k1".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(rsa.jwk["n"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    let refused = [
        ("expired", idp.access_token(&rsa, ALICE, CLIENT_ID, -120)),
        (
            "for another audience",
            idp.access_token(&rsa, ALICE, "another-app", 300),
        ),
        (
            "from another issuer",
            rsa.sign(&with("iss", json!("http://127.0.0.1:9/"))),
        ),
        ("not valid yet", rsa.sign(&with("nbf", json!(now + 600)))),
        (
            "without an expiry",
            rsa.sign(&{
                let mut c = claims.clone();
                c.as_object_mut().unwrap().remove("exp");
                c
            }),
        ),
        ("signed by an unpublished key", stranger.sign(&claims)),
        (
            "signed by another key under a published key id",
            SigningKey::rsa(2, "k1").sign(&claims),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                parts[1]
            ),
        ),
        ("HS256 keyed with the public key", hs256),
        (
            "tampered with",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&with("groups", json!(["platform"]))),
                parts[2]
            ),
        ),
        ("garbage", "a.b.c".into()),
    ];
    for (what, token) in &refused {
        let (status, body) = call(&s, token, "GET", "/auth/me").await;
        assert_eq!(status, 401, "a token {what} was not refused: {body}");
        let (status, _) = call(&s, token, "POST", "/ops/autonomy/stop").await;
        assert_eq!(status, 401, "a token {what} stopped autonomy");
    }
    let (_, k) = call(&s, OPERATOR, "GET", "/ops/autonomy").await;
    assert_eq!(k["kill_switch"]["engaged"], false);

    // Rotation: the provider publishes a new key and drops the old one.
    idp.rotate(vec![stranger.clone()]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, me) = call(
        &s,
        &idp.access_token(&stranger, ALICE, CLIENT_ID, 300),
        "GET",
        "/auth/me",
    )
    .await;
    assert_eq!(
        (status, me["role"].as_str()),
        (200, Some("approver")),
        "{me}"
    );
    let (status, _) = call(&s, &valid, "GET", "/auth/me").await;
    assert_eq!(status, 401, "a token signed by the retired key still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_the_role_in_the_one_table() {
    let idp = Idp::start(vec![SigningKey::rsa(1, "k1")]).await;
    let s = sso_server("sso-routes", &idp).await;
    // The table and the API document name the same protected routes.
    let (_, doc) = call(&s, "", "GET", "/openapi.json").await;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["security"].to_string().contains("\"operator\"") {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let table: BTreeSet<_> = ROUTE_ROLES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, table,
        "protected routes in the API document vs the role table"
    );

    let mut tokens = Vec::new();
    for role in Role::ALL {
        let (status, t) = call_json(
            &s,
            OPERATOR,
            "POST",
            "/auth/tokens",
            json!({"name": format!("{role} test"), "role": role, "expires_in_days": 1}),
        )
        .await;
        assert_eq!(status, 201, "{t}");
        tokens.push((role, t["token"].as_str().unwrap().to_string()));
    }
    let id = "0193a1b2-0000-7000-8000-000000000000";
    for (method, route, needed) in ROUTE_ROLES {
        let path = route
            .replace(
                "/auth/tokens/{id}",
                "/auth/tokens/0193a1b200007000800000000000dead",
            )
            .replace("{id}", id)
            .replace("{action}", "scale_up")
            .replace("{resource_type}", "local_instance");
        for (role, token) in &tokens {
            let (status, body) = call(&s, token, method, &path).await;
            if role < needed {
                assert_eq!(
                    status, 403,
                    "{role} on {method} {route} (needs {needed}): {body}"
                );
                assert!(
                    body["detail"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("needs the role {needed}")),
                    "{body}"
                );
            } else {
                assert!(
                    ![401, 403].contains(&status),
                    "{role} refused on {method} {route} (needs {needed}): {status} {body}"
                );
            }
        }
        let (status, _) = call(&s, "", method, &path).await;
        assert_eq!(status, 401, "{method} {route} without credentials");
    }
    // A viewer's refusal is in the audit trail.
    let (_, audit) = call(&s, OPERATOR, "GET", "/ops/audit?limit=200").await;
    assert!(
        audit.to_string().contains("role too low: web:token:"),
        "{audit}"
    );
}

async fn call_json(s: &Server, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let r = s
        .http
        .request(method.parse().unwrap(), s.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_have_a_role_are_stored_hashed_and_can_be_revoked() {
    let idp = Idp::start(vec![SigningKey::rsa(1, "k1")]).await;
    let s = sso_server("sso-api-tokens", &idp).await;
    let new = |role: &str, days: u32| json!({"name": "ci deploys", "role": role, "expires_in_days": days});
    for bad in [
        new("root", 30),
        new("viewer", 0),
        new("viewer", 400),
        json!({"name": "", "role": "viewer", "expires_in_days": 1}),
    ] {
        let (status, body) = call_json(&s, OPERATOR, "POST", "/auth/tokens", bad.clone()).await;
        assert!([400, 422].contains(&status), "{bad} → {status} {body}");
    }
    let (status, created) =
        call_json(&s, OPERATOR, "POST", "/auth/tokens", new("approver", 30)).await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("iai_"));
    assert_eq!(created["created_by"], "web:operator");
    // An approver cannot make tokens, a viewer's JWT neither.
    let (status, _) = call_json(&s, &token, "POST", "/auth/tokens", new("admin", 1)).await;
    assert_eq!(status, 403);
    let (status, me) = call(&s, &token, "GET", "/auth/me").await;
    assert_eq!(
        (status, me["role"].as_str(), me["via"].as_str()),
        (200, Some("approver"), Some("api_token"))
    );
    let (_, list) = call(&s, OPERATOR, "GET", "/auth/tokens").await;
    assert_eq!(list["tokens"].as_array().unwrap().len(), 1, "{list}");
    assert!(
        !list.to_string().contains(&token) && !list.to_string().contains("sha256"),
        "{list}"
    );
    // The database holds a hash, never the token.
    let secret = token.rsplit('_').next().unwrap();
    for file in ["infraai.db", "infraai.db-wal"] {
        let bytes = std::fs::read(s.data.join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{file} holds the token"
        );
    }
    // A wrong secret under a real id, then revocation.
    let forged = format!("{}_{}", token.rsplit_once('_').unwrap().0, "A".repeat(43));
    assert_eq!(call(&s, &forged, "GET", "/auth/me").await.0, 401);
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        call(&s, OPERATOR, "DELETE", &format!("/auth/tokens/{id}"))
            .await
            .0,
        204
    );
    assert_eq!(call(&s, &token, "GET", "/auth/me").await.0, 401);
    assert_eq!(
        call(&s, OPERATOR, "DELETE", &format!("/auth/tokens/{id}"))
            .await
            .0,
        404
    );
    let (_, audit) = call(&s, OPERATOR, "GET", "/ops/audit?step=access").await;
    let outcomes: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 2, "{audit}");
    assert!(
        outcomes.iter().any(|o| o.contains("created: approver")),
        "{audit}"
    );
    assert!(outcomes.iter().any(|o| o.contains("revoked")), "{audit}");
}

/// The `name=value` of cookie `name` among `Set-Cookie` headers, and the
/// whole header.
fn set_cookie(headers: &HeaderMap, name: &str) -> (String, String) {
    let line = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {headers:?}"));
    (line.split(';').next().unwrap().to_string(), line)
}

/// Signs `user` in through the issuer without a browser: the session
/// cookie (`infraai_session=…`).
async fn sign_in(s: &Server, http: &Client, user: &User) -> String {
    let r = http.get(s.url("/auth/login")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let (login, line) = set_cookie(r.headers(), "infraai_login");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Lax") && !line.contains("Secure"),
        "{line}"
    );
    let at_idp = r.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(
        at_idp.contains("code_challenge_method=S256") && at_idp.contains("nonce="),
        "{at_idp}"
    );
    let query = at_idp.split_once('?').unwrap().1;
    let r = http
        .get(format!(
            "{}/authorize/as?user={}&{query}",
            at_idp.split("/authorize").next().unwrap(),
            user.sub
        ))
        .send()
        .await
        .unwrap();
    let back = r.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(back.starts_with(&s.url("/auth/callback?")), "{back}");
    let r = http.get(&back).header(COOKIE, &login).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303, "{:?}", r.text().await);
    assert_eq!(r.headers()[LOCATION], "/");
    let (session, line) = set_cookie(r.headers(), "infraai_session");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Lax"),
        "{line}"
    );
    assert!(set_cookie(r.headers(), "infraai_login")
        .1
        .contains("Max-Age=0"));
    // The same code again (its sign-in cookie kept): the issuer refuses it.
    let again = http.get(&back).header(COOKIE, &login).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 401);
    session
}

/// `GET /auth/me` with a session cookie.
async fn whoami(s: &Server, http: &Client, session: &str) -> Value {
    let r = http
        .get(s.url("/auth/me"))
        .header(COOKIE, session)
        .send()
        .await;
    r.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_session_whose_changes_need_the_csrf_token() {
    let idp = Idp::start(vec![SigningKey::rsa(1, "k1")]).await;
    let s = sso_server("sso-session", &idp).await;
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let id = {
        s.deploy().await;
        s.incident_in(&cpu_alert("sso-1"), "pending").await
    };
    let session = sign_in(&s, &http, ALICE).await;
    let me = whoami(&s, &http, &session).await;
    assert_eq!(
        (me["role"].as_str(), me["via"].as_str(), me["name"].as_str()),
        (Some("approver"), Some("session"), Some(ALICE.name)),
        "{me}"
    );
    let csrf = me["csrf"].as_str().unwrap();
    let approve = format!("/ops/alerts/{id}/approve");
    for token in [None, Some("wrong")] {
        let mut r = http.post(s.url(&approve)).header(COOKIE, &session);
        if let Some(t) = token {
            r = r.header("x-csrf-token", t);
        }
        assert_eq!(
            r.send().await.unwrap().status().as_u16(),
            403,
            "CSRF token {token:?}"
        );
    }
    let r = http
        .post(s.url(&approve))
        .header(COOKIE, &session)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let detail = s
        .wait_incident(&id, |v| {
            v["approvals"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let actor = &detail["approvals"][0]["actor"];
    assert_eq!(
        (actor["channel"].as_str(), actor["id"].as_str()),
        (Some("web"), Some(ALICE.sub)),
        "{detail}"
    );
    assert_eq!(actor["name"], "Alice Approver <alice@example.com>");
    let (_, audit) = call(&s, OPERATOR, "GET", &format!("/ops/alerts/{id}")).await;
    assert!(
        audit.to_string().contains(&format!("web:{}", ALICE.sub)),
        "{audit}"
    );

    // A viewer signs in and may not approve, even with the CSRF token.
    let viewer = sign_in(&s, &http, BOB).await;
    let me = whoami(&s, &http, &viewer).await;
    let r = http
        .post(s.url("/ops/autonomy/stop"))
        .header(COOKIE, &viewer)
        .header("x-csrf-token", me["csrf"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // A forged or altered session, a wrong state, and signing out.
    let forged = format!("{session}x");
    assert_eq!(
        http.get(s.url("/auth/me"))
            .header(COOKIE, &forged)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let r = http.get(s.url("/auth/login")).send().await.unwrap();
    let (login, _) = set_cookie(r.headers(), "infraai_login");
    let r = http
        .get(s.url("/auth/callback?code=x&state=not-this-one"))
        .header(COOKIE, &login)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .post(s.url("/auth/logout"))
        .header(COOKIE, &session)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert!(set_cookie(r.headers(), "infraai_session")
        .1
        .contains("Max-Age=0"));
}
