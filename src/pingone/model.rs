//! PingOne's wire types: environment, gateway and credential views and inputs, the claims
//! of a gateway credential and of an exchanged access token, and the token exchange's
//! answers.

use serde::{Deserialize, Serialize};

use super::store::{EnvironmentRow, GatewayRow};
use crate::kernel::iso8601;

pub const MAX_CREDENTIALS_PER_GATEWAY: usize = 5;
pub const GATEWAY_TYPES: &[&str] = &[
    "LDAP",
    "PING_FEDERATE",
    "PING_INTELLIGENCE",
    "API_GATEWAY_INTEGRATION",
    "RADIUS",
];
pub const REGIONS: &[&str] = &["NA", "EU", "AP", "CA", "AU"];

fn region_schema() -> utoipa::openapi::Object {
    crate::kernel::types::string_enum_schema(REGIONS, true)
}

fn gateway_type_schema() -> utoipa::openapi::Object {
    crate::kernel::types::string_enum_schema(GATEWAY_TYPES, false)
}
/// Lifetime of an access token obtained by exchanging a gateway credential.
pub const ACCESS_TOKEN_SECONDS: i64 = 300;
pub const SUBJECT_TOKEN_TYPE: &str = "pingone_gateway_credential";
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

// --- views and inputs ----------------------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct EnvironmentInput {
    #[schema(schema_with = crate::kernel::types::name_schema, required = true)]
    pub name: Option<String>,
    pub description: Option<String>,
    /// NA (default), EU, AP, CA or AU.
    #[schema(schema_with = region_schema)]
    pub region: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub region: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<EnvironmentRow> for EnvironmentView {
    fn from(r: EnvironmentRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            description: r.description,
            region: r.region,
            created_at: iso8601(r.created_at),
            updated_at: iso8601(r.updated_at),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct GatewayInput {
    #[schema(schema_with = crate::kernel::types::name_schema, required = true)]
    pub name: Option<String>,
    /// LDAP, PING_FEDERATE, PING_INTELLIGENCE, API_GATEWAY_INTEGRATION or RADIUS.
    #[serde(rename = "type")]
    #[schema(schema_with = gateway_type_schema, required = true)]
    pub kind: Option<String>,
    #[schema(required = true, nullable = false)]
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reference {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub enabled: bool,
    pub description: String,
    pub environment: Reference,
    pub created_at: String,
    pub updated_at: String,
}

impl From<GatewayRow> for GatewayView {
    fn from(r: GatewayRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            kind: r.kind,
            enabled: r.enabled,
            description: r.description,
            environment: Reference {
                id: r.environment_id,
            },
            created_at: iso8601(r.created_at),
            updated_at: iso8601(r.updated_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayCredentialView {
    pub id: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// The response that creates a credential: the only place the JWT ever appears.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedGatewayCredential {
    pub id: String,
    pub created_at: String,
    /// An RS256 JWT; keep it, it is not shown again.
    pub credential: String,
}

impl std::fmt::Debug for CreatedGatewayCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedGatewayCredential")
            .field("id", &self.id)
            .field("credential", &"[redacted]")
            .finish()
    }
}

/// The claims of a gateway credential (seed 000).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CredentialClaims {
    pub(super) aud: String,
    pub(super) iss: String,
    pub(super) iat: i64,
    pub(super) jti: String,
    pub(super) environment_id: String,
    pub(super) gateway_id: String,
    pub(super) gateway_type: String,
    pub(super) gateway_name: String,
    pub(super) organization_id: String,
    pub(super) target_cluster_environment: String,
    pub(super) target_geography: String,
}

/// The claims of an access token from the token exchange.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AccessClaims {
    pub(super) iss: String,
    pub(super) sub: String,
    pub(super) aud: String,
    pub(super) iat: i64,
    pub(super) exp: i64,
    pub(super) jti: String,
    pub(super) token_use: String,
    pub(super) environment_id: String,
    pub(super) gateway_id: String,
    pub(super) organization_id: String,
}

pub(super) const ACCESS_TOKEN_USE: &str = "gateway_access";

pub(super) fn issuer(environment_id: &str) -> String {
    format!("urn:latchkey:environment:{environment_id}")
}

/// A token exchange's success.
pub struct AccessToken {
    pub access_token: String,
    pub expires_in: i64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// Why a token exchange was refused (OAuth error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeError {
    InvalidRequest,
    UnsupportedGrantType,
    InvalidGrant,
}

impl ExchangeError {
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidGrant => "invalid_grant",
        }
    }
}
