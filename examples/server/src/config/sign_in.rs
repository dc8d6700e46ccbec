//! Sign-in with an OpenID Connect provider, and the roles it maps to.

use clap::Args;
use std::time::Duration;

/// Single sign-on (on with an issuer and a client id): the dashboard signs
/// in with the provider's authorization code flow (PKCE), and the API takes
/// the provider's JWT access tokens. Roles come from a claim.
#[derive(Args)]
#[command(next_help_heading = "Sign-in (OpenID Connect)")]
pub struct SignInSettings {
    /// The provider's issuer URL (its discovery document is at
    /// ISSUER/.well-known/openid-configuration), e.g.
    /// `https://keycloak.example.com/realms/ops`.
    #[arg(long, env = "INFRAAI_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The client id registered for this server at the provider; its redirect
    /// URI is PUBLIC_URL/auth/callback.
    #[arg(long, env = "INFRAAI_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// The client secret (none for a public client: PKCE alone).
    #[arg(long, env = "INFRAAI_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// The audience API access tokens must name [default: the client id].
    #[arg(long, env = "INFRAAI_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The claim holding the user's groups or roles; a dotted path reaches
    /// into objects (Keycloak: `realm_access.roles`).
    #[arg(long, env = "INFRAAI_OIDC_ROLES_CLAIM", default_value = "groups")]
    pub oidc_roles_claim: String,
    /// Claim values mapped to roles, `value=role` (comma separated), e.g.
    /// `sre=approver,platform=operator,infra-admins=admin`. A user with
    /// several gets the highest.
    #[arg(long, env = "INFRAAI_OIDC_ROLE_MAP", value_delimiter = ',')]
    pub oidc_role_map: Vec<String>,
    /// The role of a signed-in user whom the map gives none: `viewer`,
    /// `approver`, `operator`, `admin`, or `none` (refuse the sign-in).
    #[arg(long, env = "INFRAAI_OIDC_DEFAULT_ROLE", default_value = "viewer")]
    pub oidc_default_role: String,
    /// Scopes asked for at sign-in (space separated).
    #[arg(
        long,
        env = "INFRAAI_OIDC_SCOPES",
        default_value = "openid email profile"
    )]
    pub oidc_scopes: String,
    /// Key that signs session cookies; replicas behind one address need the
    /// same [default: generated once, DATA_DIR/session-key].
    #[arg(long, env = "INFRAAI_SESSION_SECRET", hide_env_values = true)]
    pub session_secret: Option<String>,
    /// How long a dashboard session lasts, in seconds (at least 300).
    #[arg(long, env = "INFRAAI_SESSION_SECS", default_value = "28800", value_parser = super::sections::secs::<300>)]
    pub session_secs: Duration,
}
