//! API tokens with a role and an expiry, created by admins for scripts and
//! integrations. The token is shown once; the store keeps its SHA-256 (in
//! the settings, under `auth.token.<id>`), so a copy of the database does
//! not give anyone access.

use super::{Principal, Role, Unauthenticated, Via};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::routes::{body, parse};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use infraai_core::{read_setting, read_settings, AuditRecord, AuditStep, SettingStore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::info;

/// Every API token starts with this.
pub const PREFIX: &str = "iai_";
const KEY: &str = "auth.token.";
/// Longest lifetime of a token, in days.
pub const MAX_DAYS: u32 = 366;

/// A stored token: everything but the token itself.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredToken {
    /// The token's id (its second part).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Who created it (`web:<subject>`).
    pub created_by: String,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: DateTime<Utc>,
    /// SHA-256 of the whole token, hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(ignore)]
    sha256: String,
}

fn sha256_hex(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The caller holding API token `token`.
pub async fn identify(store: &dyn SettingStore, token: &str) -> Result<Principal, Unauthenticated> {
    let wrong =
        || Unauthenticated::new("wrong API token", "unknown, revoked or malformed API token");
    let id = token
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| id)
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(wrong)?;
    let stored: StoredToken = read_setting(store, &format!("{KEY}{id}"))
        .await
        .ok()
        .flatten()
        .ok_or_else(wrong)?;
    if !super::same(&sha256_hex(token), &stored.sha256) {
        return Err(wrong());
    }
    if stored.expires_at <= Utc::now() {
        return Err(Unauthenticated::new(
            "expired token",
            format!(
                "the API token {:?} expired at {}",
                stored.name, stored.expires_at
            ),
        ));
    }
    Ok(Principal {
        subject: format!("token:{}", stored.id),
        name: Some(stored.name),
        email: None,
        role: stored.role,
        via: Via::ApiToken,
        csrf: None,
    })
}

/// A token to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    /// What it is for, e.g. `ci-deploys`.
    #[schema(max_length = 100)]
    name: String,
    /// `viewer`, `approver`, `operator` or `admin`.
    role: Role,
    /// Days until it expires (1–366).
    expires_in_days: u32,
}

/// Create an API token (admins). The answer holds the token; it is not
/// shown again.
#[utoipa::path(post, path = "/auth/tokens", tag = "auth", request_body = NewToken, responses((status = 201, description = "`{\"token\": \"iai_…\", \"id\", \"name\", \"role\", \"expires_at\"}`")))]
pub(crate) async fn create(
    State(s): State<AppState>,
    Extension(by): Extension<Principal>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let new: NewToken = parse(&body(b)?)?;
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::unprocessable(
            "name must hold 1 to 100 characters",
        ));
    }
    if !(1..=MAX_DAYS).contains(&new.expires_in_days) {
        return Err(ApiError::unprocessable(format!(
            "expires_in_days must be 1 to {MAX_DAYS}"
        )));
    }
    let id = uuid::Uuid::now_v7().simple().to_string();
    let token = format!("{PREFIX}{id}_{}", super::oidc::random_token());
    let now = Utc::now();
    let stored = StoredToken {
        id: id.clone(),
        name: name.to_string(),
        role: new.role,
        created_by: by.actor().label(),
        created_at: now,
        expires_at: now + Duration::days(i64::from(new.expires_in_days)),
        sha256: sha256_hex(&token),
    };
    let value = serde_json::to_value(&stored)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    s.store
        .put_setting(&format!("{KEY}{id}"), &value, 0)
        .await?;
    info!(token_id = %id, role = %stored.role, by = %stored.created_by, "API token created");
    let outcome = format!(
        "API token {id} ({:?}) created: {}, until {}",
        stored.name, stored.role, stored.expires_at
    );
    audit(&s, &by, outcome).await?;
    let mut shown = public(stored);
    shown["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(shown)))
}

/// Records a change of access in the audit trail.
async fn audit(s: &AppState, by: &Principal, outcome: String) -> ApiResult<()> {
    let record = AuditRecord::agent(AuditStep::Access, outcome).by(by.actor().label());
    s.store.append_audit(&record).await?;
    Ok(())
}

fn public(mut t: StoredToken) -> Value {
    t.sha256.clear();
    json!(t)
}

/// The API tokens (admins), without the tokens.
#[utoipa::path(get, path = "/auth/tokens", tag = "auth", responses((status = 200, description = "`{\"tokens\": [...]}`")))]
pub(crate) async fn list(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let tokens: Vec<StoredToken> = read_settings(s.store.as_ref(), KEY).await?;
    Ok(Json(
        json!({"tokens": tokens.into_iter().map(public).collect::<Vec<_>>()}),
    ))
}

/// Revoke an API token (admins).
#[utoipa::path(delete, path = "/auth/tokens/{id}", tag = "auth", params(("id" = String, Path)), responses((status = 204, description = "Revoked"), (status = 404, description = "No such token")))]
pub(crate) async fn revoke(
    State(s): State<AppState>,
    Extension(by): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a token id")))?
        .simple()
        .to_string();
    if s.store.delete_setting(&format!("{KEY}{id}")).await? {
        info!(token_id = %id, by = %by.actor().label(), "API token revoked");
        audit(&s, &by, format!("API token {id} revoked")).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("API token {id} not found")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraai_core::testing::MemoryStore;

    async fn stored(store: &MemoryStore, expires_in: Duration) -> String {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let token = format!("{PREFIX}{id}_secret");
        let t = StoredToken {
            id: id.clone(),
            name: "ci".into(),
            role: Role::Operator,
            created_by: "web:operator".into(),
            created_at: Utc::now(),
            expires_at: Utc::now() + expires_in,
            sha256: sha256_hex(&token),
        };
        let value = serde_json::to_value(&t).unwrap();
        store
            .put_setting(&format!("{KEY}{id}"), &value, 0)
            .await
            .unwrap();
        token
    }

    #[tokio::test]
    async fn a_token_works_until_it_expires() {
        let store = MemoryStore::new();
        let live = stored(&store, Duration::days(1)).await;
        let p = identify(&store, &live).await.unwrap();
        assert_eq!((p.role, p.via), (Role::Operator, Via::ApiToken));
        let expired = stored(&store, Duration::seconds(-1)).await;
        let e = identify(&store, &expired).await.unwrap_err();
        assert_eq!(e.reason, "expired token");
        for bad in ["iai_", "iai_xyz_secret", &live.replace("secret", "secreT")] {
            assert_eq!(
                identify(&store, bad).await.unwrap_err().reason,
                "wrong API token",
                "{bad}"
            );
        }
    }
}
