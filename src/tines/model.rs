//! Tines' types: slugs, TTLs, read access, credential modes and JWT algorithms as the Tines
//! surface names them; team, folder and credential inputs and views; and how a credential is
//! stored: common fields, the non-secret mode configuration ([`ModeConfig`], JSON) and the
//! secret inputs ([`Secrets`], sealed under `(user_credentials, id, secrets)`). Secrets are
//! write-only: no view type has a field for them.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::store::{CredentialRow, FolderRow, TeamRow};
use crate::{
    crypto::{jwt::JwtAlgorithm, keyring::Aad},
    kernel::{
        CoreError, Result, iso8601,
        types::{DomainError, string_serde, wire_enum},
    },
};

const MAX_SLUG_LEN: usize = 255;

/// A credential's slug: the snake_case form of its name, unique per team.
///
/// Always matches `[a-z0-9]+(_[a-z0-9]+)*` and is at most 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

impl Slug {
    /// Derives the slug from a credential name the way Tines does: ASCII
    /// letters and digits are kept (lowercased), every run of anything else
    /// becomes one `_`, and leading/trailing `_` are dropped.
    ///
    /// Non-ASCII letters are treated as separators rather than
    /// transliterated, so the result never depends on locale tables.
    /// Output longer than 255 bytes is cut to 255 (names are capped at 255
    /// characters anyway, so this only matters for callers that skip
    /// [`Name::parse`]).
    pub fn from_name(name: &str) -> Result<Slug, DomainError> {
        let mut out = String::with_capacity(name.len());
        let mut pending_sep = false;
        for c in name.chars() {
            if c.is_ascii_alphanumeric() {
                if pending_sep && !out.is_empty() {
                    out.push('_');
                }
                pending_sep = false;
                out.push(c.to_ascii_lowercase());
            } else {
                pending_sep = true;
            }
        }
        if out.len() > MAX_SLUG_LEN {
            out.truncate(MAX_SLUG_LEN);
            // Truncation may leave a dangling separator.
            while out.ends_with('_') {
                out.pop();
            }
        }
        if out.is_empty() {
            return Err(DomainError::new(
                "name",
                "name must contain at least one letter or digit",
            ));
        }
        Ok(Slug(out))
    }

    /// Accepts only an already well-formed slug (as sent in
    /// `shared_team_slugs`); does not normalise.
    pub fn parse(s: &str) -> Result<Slug, DomainError> {
        let well_formed = !s.is_empty()
            && s.len() <= MAX_SLUG_LEN
            && s.split('_').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if well_formed {
            Ok(Slug(s.to_owned()))
        } else {
            Err(DomainError::new(
                "slug",
                format!(
                    "slug {s:?} is invalid: use lowercase letters, digits and single underscores \
                     (at most {MAX_SLUG_LEN} characters)"
                ),
            ))
        }
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_serde!(Slug, Slug::parse);

/// How long an HTTP-request-agent credential's fetched value is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TtlSeconds(u32);

impl TtlSeconds {
    /// Smallest accepted TTL.
    pub const MIN: i64 = 1;
    /// Largest accepted TTL.
    pub const MAX: i64 = 120;

    /// Accepts 1..=120 seconds.
    pub fn parse(seconds: i64) -> Result<TtlSeconds, DomainError> {
        match u32::try_from(seconds) {
            Ok(s) if (Self::MIN..=Self::MAX).contains(&seconds) => Ok(TtlSeconds(s)),
            _ => Err(DomainError::new(
                "http_request_ttl",
                format!(
                    "http_request_ttl must be between {} and {} seconds",
                    Self::MIN,
                    Self::MAX
                ),
            )),
        }
    }

    /// The TTL in seconds.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The TTL as a duration.
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.0))
    }
}

wire_enum!(
    /// Which teams may read a credential.
    ReadAccess, field = "read_access", {
        Team = "TEAM",
        Global = "GLOBAL",
        SpecificTeams = "SPECIFIC_TEAMS",
    }
);

wire_enum!(
    /// The kind of credential.
    CredentialMode, field = "mode", {
        Text = "TEXT",
        Jwt = "JWT",
        Oauth = "OAUTH",
        Aws = "AWS",
        Mtls = "MTLS",
        HttpRequestAgent = "HTTP_REQUEST_AGENT",
        MultiRequest = "MULTI_REQUEST",
    }
);

/// `jwt_algorithm`: one of the JOSE names.
pub fn parse_jwt_algorithm(s: &str) -> Result<JwtAlgorithm, DomainError> {
    JwtAlgorithm::parse(s).ok_or_else(|| {
        let all: Vec<&str> = JwtAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
        DomainError::new(
            "jwt_algorithm",
            format!("jwt_algorithm must be one of: {}", all.join(", ")),
        )
    })
}

/// `jwt_private_key` must sign with `alg` (see `crypto::jwt::check_signing_key`).
pub fn check_jwt_signing_key(alg: JwtAlgorithm, key: &str) -> Result<(), DomainError> {
    crate::crypto::jwt::check_signing_key(alg, key, "jwt_private_key")
        .map_err(|message| DomainError::new("jwt_private_key", message))
}

// ---------------------------------------------------------------------------------------------
// Teams

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NewTeam {
    #[schema(schema_with = crate::kernel::types::name_schema, required = true)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TeamView {
    pub id: i64,
    pub name: String,
    /// The name in snake_case; what `shared_team_slugs` refers to.
    pub slug: String,
}

impl From<TeamRow> for TeamView {
    fn from(r: TeamRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            slug: r.slug,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Folders

pub const FOLDER_CONTENT_TYPES: &[&str] = &["CREDENTIAL", "RESOURCE", "STORY"];

fn folder_content_type_schema() -> utoipa::openapi::Object {
    crate::kernel::types::string_enum_schema(FOLDER_CONTENT_TYPES, true)
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NewFolder {
    #[schema(schema_with = crate::kernel::types::name_schema, required = true)]
    pub name: Option<String>,
    /// `CREDENTIAL`, `RESOURCE` or `STORY`; only `CREDENTIAL` folders hold credentials.
    #[schema(schema_with = folder_content_type_schema)]
    pub content_type: Option<String>,
    #[schema(required = true, nullable = false)]
    #[serde(default, deserialize_with = "crate::kernel::types::json_integer")]
    pub team_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FolderView {
    pub id: i64,
    pub name: String,
    pub content_type: String,
    pub team_id: i64,
    /// The number of items in the folder.
    pub size: i64,
}

impl From<FolderRow> for FolderView {
    fn from(r: FolderRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            content_type: r.content_type,
            team_id: r.team_id,
            size: r.size,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// User credentials: input

/// One request of a MULTI_REQUEST credential.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct CredentialRequestInput {
    /// HTTP Request options (`url`, `method`, `content_type`, `payload`, `headers`).
    pub options: Option<Map<String, Value>>,
    /// Write-only; referenced as `<<secret>>` inside `options`.
    #[schema(value_type = Option<String>)]
    pub http_request_secret: Option<SecretString>,
}

/// The body of `POST` and `PUT /api/v1/user_credentials`. Every field is optional here so
/// that a missing one gets a message naming it; which are required depends on `mode`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct CredentialInput {
    #[schema(schema_with = crate::kernel::types::name_schema, required = true)]
    pub name: Option<String>,
    /// TEXT, JWT, OAUTH, AWS, MTLS, HTTP_REQUEST_AGENT or MULTI_REQUEST.
    pub mode: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::types::json_integer")]
    pub team_id: Option<i64>,
    #[serde(default, deserialize_with = "crate::kernel::types::json_integer")]
    pub folder_id: Option<i64>,
    /// TEAM (default), GLOBAL or SPECIFIC_TEAMS.
    pub read_access: Option<String>,
    pub shared_team_slugs: Option<Vec<String>>,
    pub description: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub allowed_hosts: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::kernel::types::json_integer")]
    pub live_credential_id: Option<i64>,
    /// TEXT: the value (write-only).
    #[schema(value_type = Option<String>)]
    pub value: Option<SecretString>,
    pub jwt_algorithm: Option<String>,
    pub jwt_payload: Option<Map<String, Value>>,
    pub jwt_auto_generate_time_claims: Option<bool>,
    /// Write-only.
    #[schema(value_type = Option<String>)]
    pub jwt_private_key: Option<SecretString>,
    pub oauth_url: Option<String>,
    pub oauth_token_url: Option<String>,
    pub oauth_client_id: Option<String>,
    /// Write-only.
    #[schema(value_type = Option<String>)]
    pub oauth_client_secret: Option<SecretString>,
    pub oauth_scope: Option<String>,
    /// client_credentials (default) or authorization_code.
    pub oauth_grant_type: Option<String>,
    /// S256 or plain (authorization_code only).
    #[serde(rename = "oauthPkceCodeChallengeMethod")]
    pub oauth_pkce_code_challenge_method: Option<String>,
    /// KEY, ROLE or INSTANCE_PROFILE.
    pub aws_authentication_type: Option<String>,
    pub aws_access_key: Option<String>,
    /// Write-only.
    #[schema(value_type = Option<String>)]
    pub aws_secret_key: Option<SecretString>,
    pub aws_assumed_role_arn: Option<String>,
    /// Signing scope; by default read from the AWS host name (e.g. `eu-west-1`).
    pub aws_region: Option<String>,
    /// Signing scope; by default read from the AWS host name (e.g. `dynamodb`).
    pub aws_service: Option<String>,
    pub mtls_client_certificate: Option<String>,
    /// Write-only.
    #[schema(value_type = Option<String>)]
    pub mtls_client_private_key: Option<SecretString>,
    pub mtls_root_certificate: Option<String>,
    pub http_request_options: Option<Map<String, Value>>,
    pub http_request_location_of_token: Option<String>,
    /// Write-only; referenced as `<<secret>>` inside `http_request_options`.
    #[schema(value_type = Option<String>)]
    pub http_request_secret: Option<SecretString>,
    /// Seconds, 1..=120; omitted on PUT means none.
    #[serde(default, deserialize_with = "crate::kernel::types::json_integer")]
    pub http_request_ttl: Option<i64>,
    pub content_type: Option<String>,
    /// MULTI_REQUEST: exactly two requests.
    pub credential_requests: Option<Vec<CredentialRequestInput>>,
}

// ---------------------------------------------------------------------------------------------
// User credentials: what is stored

/// The non-secret, mode-specific fields, named as on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ModeConfig {
    Text {},
    Jwt {
        jwt_algorithm: JwtAlgorithm,
        jwt_payload: Map<String, Value>,
        jwt_auto_generate_time_claims: bool,
    },
    Oauth {
        oauth_url: Option<String>,
        oauth_token_url: String,
        oauth_client_id: String,
        oauth_scope: Option<String>,
        oauth_grant_type: String,
        #[serde(rename = "oauthPkceCodeChallengeMethod")]
        oauth_pkce_code_challenge_method: Option<String>,
    },
    Aws {
        aws_authentication_type: String,
        aws_access_key: Option<String>,
        aws_assumed_role_arn: Option<String>,
        /// Generated for ROLE: what the customer puts in their role's trust policy.
        aws_assumed_role_external_id: Option<String>,
        #[serde(default)]
        aws_region: Option<String>,
        #[serde(default)]
        aws_service: Option<String>,
    },
    Mtls {
        mtls_client_certificate: String,
        mtls_root_certificate: Option<String>,
    },
    HttpRequestAgent {
        http_request_options: Map<String, Value>,
        http_request_location_of_token: String,
        http_request_ttl: Option<i64>,
        content_type: Option<String>,
    },
    MultiRequest {
        credential_requests: Vec<StoredRequest>,
        http_request_location_of_token: String,
        http_request_ttl: Option<i64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRequest {
    pub options: Map<String, Value>,
}

impl ModeConfig {
    pub fn mode(&self) -> CredentialMode {
        match self {
            Self::Text {} => CredentialMode::Text,
            Self::Jwt { .. } => CredentialMode::Jwt,
            Self::Oauth { .. } => CredentialMode::Oauth,
            Self::Aws { .. } => CredentialMode::Aws,
            Self::Mtls { .. } => CredentialMode::Mtls,
            Self::HttpRequestAgent { .. } => CredentialMode::HttpRequestAgent,
            Self::MultiRequest { .. } => CredentialMode::MultiRequest,
        }
    }
}

/// The write-only inputs, sealed together. Never serialized anywhere but into the sealer.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Secrets {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::crypto::secret::expose::option"
    )]
    pub value: Option<SecretString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::crypto::secret::expose::option"
    )]
    pub jwt_private_key: Option<SecretString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::crypto::secret::expose::option"
    )]
    pub oauth_client_secret: Option<SecretString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::crypto::secret::expose::option"
    )]
    pub aws_secret_key: Option<SecretString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::crypto::secret::expose::option"
    )]
    pub mtls_client_private_key: Option<SecretString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::crypto::secret::expose::option"
    )]
    pub http_request_secret: Option<SecretString>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "expose_options"
    )]
    pub request_secrets: Vec<Option<SecretString>>,
}

/// Serializes the secrets into the sealer's plaintext (the only place they are serialized).
fn expose_options<S: serde::Serializer>(
    secrets: &[Option<SecretString>],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    let exposed: Vec<Option<&str>> = secrets
        .iter()
        .map(|o| o.as_ref().map(ExposeSecret::expose_secret))
        .collect();
    exposed.serialize(s)
}

pub(super) fn secrets_aad(id: &str) -> Aad<'_> {
    Aad {
        table: "user_credentials",
        row_id: id,
        column: "secrets",
    }
}

// ---------------------------------------------------------------------------------------------
// User credentials: what is shown

/// A user credential as every route returns it: the seed's fields plus the non-secret
/// fields of its mode. Secret inputs have no place here.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CredentialView {
    pub id: i64,
    pub name: String,
    pub mode: String,
    pub team_id: i64,
    pub folder_id: Option<i64>,
    pub read_access: String,
    pub shared_team_slugs: Vec<String>,
    pub slug: String,
    pub created_at: String,
    pub updated_at: String,
    pub description: String,
    pub allowed_hosts: Vec<String>,
    /// RESTRICTED (it has `allowed_hosts`, so it can be used outbound) or UNRESTRICTED.
    pub restriction_type: &'static str,
    pub metadata: Map<String, Value>,
    /// When it was last used (resolved or sent), if ever.
    pub last_used_at: Option<String>,
    /// The last failed fetch or refresh of its token, without secrets (the credential log).
    pub last_error: Option<CredentialErrorView>,
    pub test_credential_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_credential: Option<TestCredentialView>,
    /// Set on a test credential: the live credential it stands in for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_credential_id: Option<i64>,
    /// OAUTH authorization_code, in the answers to POST and PUT: where to send a user to
    /// connect the credential (the provider then redirects to `/oauth2/callback`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// The non-secret fields of the credential's mode (e.g. `jwt_algorithm`, `http_request_options`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub mode_fields: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CredentialErrorView {
    pub message: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestCredentialView {
    pub created_at: String,
    pub updated_at: String,
}

pub(super) fn json_col<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| CoreError::Internal(format!("stored {what} is not valid: {e}")))
}

pub(super) fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| CoreError::Internal(format!("cannot encode: {e}")))
}

impl CredentialView {
    pub(super) fn from_row(r: &CredentialRow) -> Result<Self> {
        let config: ModeConfig = json_col(&r.config, "config")?;
        let mut mode_fields = match serde_json::to_value(&config) {
            Ok(Value::Object(map)) => map,
            _ => return Err(CoreError::Internal("mode config is not an object".into())),
        };
        mode_fields.remove("mode");
        let test_credential = match (r.twin_created_at, r.twin_updated_at) {
            (Some(c), Some(u)) => Some(TestCredentialView {
                created_at: iso8601(c),
                updated_at: iso8601(u),
            }),
            _ => None,
        };
        let allowed_hosts: Vec<String> = json_col(&r.allowed_hosts, "allowed_hosts")?;
        let restriction_type = if allowed_hosts.is_empty() {
            "UNRESTRICTED"
        } else {
            "RESTRICTED"
        };
        Ok(Self {
            id: r.id,
            name: r.name.clone(),
            mode: r.mode.clone(),
            team_id: r.team_id,
            folder_id: r.folder_id,
            read_access: r.read_access.clone(),
            shared_team_slugs: json_col(&r.shared_team_slugs, "shared_team_slugs")?,
            slug: r.slug.clone(),
            created_at: iso8601(r.created_at),
            updated_at: iso8601(r.updated_at),
            description: r.description.clone(),
            allowed_hosts,
            restriction_type,
            metadata: json_col(&r.metadata, "metadata")?,
            last_used_at: r.last_used_at.map(iso8601),
            last_error: match (&r.last_error, r.last_error_at) {
                (Some(message), Some(at)) => Some(CredentialErrorView {
                    message: message.clone(),
                    at: iso8601(at),
                }),
                _ => None,
            },
            test_credential_enabled: test_credential.is_some(),
            test_credential,
            live_credential_id: r.live_credential_id,
            redirect_url: None,
            mode_fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::crypto::jwt::test_keys::*;

    const FIXTURE_RSA_PKCS8: &str = include_str!("../../tests/fixtures/rsa.pem");
    const FIXTURE_RSA_PKCS1: &str = include_str!("../../tests/fixtures/rsa_pkcs1.pem");
    const FIXTURE_RSA_1024: &str = include_str!("../../tests/fixtures/rsa_1024.pem");
    const FIXTURE_EC_P256: &str = include_str!("../../tests/fixtures/ec_p256.pem");
    const FIXTURE_EC_P256_SEC1: &str = include_str!("../../tests/fixtures/ec_p256_sec1.pem");
    const FIXTURE_EC_P384: &str = include_str!("../../tests/fixtures/ec_p384.pem");
    const FIXTURE_ED25519: &str = include_str!("../../tests/fixtures/ed25519.pem");

    const RSA_ALGS: [JwtAlgorithm; 6] = [
        JwtAlgorithm::RS256,
        JwtAlgorithm::RS384,
        JwtAlgorithm::RS512,
        JwtAlgorithm::PS256,
        JwtAlgorithm::PS384,
        JwtAlgorithm::PS512,
    ];

    #[test]
    fn a_name_implies_its_slug() {
        let name = crate::kernel::types::Name::parse("HTTP credential").unwrap();
        assert_eq!(
            Slug::from_name(name.as_str()).unwrap().as_str(),
            "http_credential"
        );
    }

    #[test]
    fn slug_examples() {
        for (name, slug) in [
            ("http credential", "http_credential"),
            ("My  API-Key!", "my_api_key"),
            ("tines_api_credential", "tines_api_credential"),
            ("  --Hello__World--  ", "hello_world"),
            ("ABC123", "abc123"),
            ("café au lait", "caf_au_lait"),
            ("日本 key", "key"),
            ("a.b/c", "a_b_c"),
        ] {
            assert_eq!(Slug::from_name(name).unwrap().as_str(), slug, "{name}");
        }
    }

    #[test]
    fn slug_from_name_rejects_no_alnum() {
        for name in ["", "   ", "!!!", "日本語", "___"] {
            let err = Slug::from_name(name).unwrap_err();
            assert_eq!(err.field, "name");
            assert_eq!(
                err.message,
                "name must contain at least one letter or digit"
            );
        }
    }

    #[test]
    fn slug_from_name_caps_length() {
        let long = "ab ".repeat(200);
        let slug = Slug::from_name(&long).unwrap();
        assert!(slug.as_str().len() <= 255);
        assert!(Slug::parse(slug.as_str()).is_ok());
    }

    #[test]
    fn slug_parse() {
        for ok in ["a", "abc_123", "a_b_c", "0"] {
            assert_eq!(Slug::parse(ok).unwrap().as_str(), ok);
        }
        let too_long = "a".repeat(256);
        for bad in ["", "_a", "a_", "a__b", "A", "a-b", "a b", "é", &too_long] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Slug::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn slug_serde() {
        let slug = Slug::parse("my_slug").unwrap();
        assert_eq!(serde_json::to_string(&slug).unwrap(), "\"my_slug\"");
        let back: Slug = serde_json::from_str("\"my_slug\"").unwrap();
        assert_eq!(back, slug);
        assert!(serde_json::from_str::<Slug>("\"Not A Slug\"").is_err());
        assert_eq!(slug.to_string(), "my_slug");
    }

    #[test]
    fn jwt_algorithm_parse_rejects() {
        for bad in ["hs256", "none", "", "ES512", "EDDSA", " HS256"] {
            let err = parse_jwt_algorithm(bad).unwrap_err();
            assert_eq!(err.field, "jwt_algorithm");
            assert!(err.message.contains("HS256, HS384"), "{}", err.message);
            assert!(err.message.contains("EdDSA"));
        }
    }

    fn assert_key_ok(alg: JwtAlgorithm, key: &str) {
        if let Err(e) = check_jwt_signing_key(alg, key) {
            panic!("{} rejected a good key: {}", alg.as_str(), e.message);
        }
    }

    fn assert_key_rejected(alg: JwtAlgorithm, key: &str) -> DomainError {
        let err = check_jwt_signing_key(alg, key).unwrap_err();
        assert_eq!(err.field, "jwt_private_key");
        assert!(
            key.trim().len() < 8 || !err.message.contains(key.trim()),
            "message leaks key"
        );
        for line in key.lines().filter(|l| l.len() > 20) {
            assert!(!err.message.contains(line), "message leaks key material");
        }
        err
    }

    #[test]
    fn hmac_accepts_any_non_empty_secret() {
        for alg in [
            JwtAlgorithm::HS256,
            JwtAlgorithm::HS384,
            JwtAlgorithm::HS512,
        ] {
            assert_key_ok(alg, "s");
            assert_key_ok(alg, "a much longer shared secret");
            assert_key_ok(alg, rsa_pem());
            let err = assert_key_rejected(alg, "");
            assert!(err.message.contains("must not be empty"));
        }
    }

    #[test]
    fn rsa_accepts_generated_and_fixture_keys() {
        for alg in RSA_ALGS {
            assert_key_ok(alg, rsa_pem());
            assert_key_ok(alg, FIXTURE_RSA_PKCS8);
            assert_key_ok(alg, FIXTURE_RSA_PKCS1);
        }
    }

    #[test]
    fn rsa_rejects_other_families_and_garbage() {
        for alg in RSA_ALGS {
            for key in [
                ec_p256_pem(),
                ec_p384_pem(),
                ed25519_pem(),
                FIXTURE_EC_P256_SEC1,
                "garbage",
                "-----BEGIN PRIVATE KEY-----\nnotbase64!!\n-----END PRIVATE KEY-----\n",
            ] {
                let err = assert_key_rejected(alg, key);
                assert_eq!(
                    err.message,
                    format!(
                        "jwt_private_key is not a valid RSA private key in PEM format for {}",
                        alg.as_str()
                    )
                );
            }
            assert!(
                assert_key_rejected(alg, "")
                    .message
                    .contains("must not be empty")
            );
        }
    }

    #[test]
    fn rsa_rejects_small_keys() {
        let err = assert_key_rejected(JwtAlgorithm::RS256, FIXTURE_RSA_1024);
        assert!(err.message.contains("2048"), "{}", err.message);
    }

    #[test]
    fn rsa_rejects_public_key() {
        let public = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyeh\nkd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ\n0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdg\ncKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbc\nmwIDAQAB\n-----END PUBLIC KEY-----\n";
        assert_key_rejected(JwtAlgorithm::RS256, public);
    }

    #[test]
    fn ecdsa_accepts_matching_curve_only() {
        assert_key_ok(JwtAlgorithm::ES256, ec_p256_pem());
        assert_key_ok(JwtAlgorithm::ES256, FIXTURE_EC_P256);
        assert_key_ok(JwtAlgorithm::ES384, ec_p384_pem());
        assert_key_ok(JwtAlgorithm::ES384, FIXTURE_EC_P384);

        for key in [
            ec_p384_pem(),
            FIXTURE_EC_P384,
            rsa_pem(),
            ed25519_pem(),
            "x",
        ] {
            let err = assert_key_rejected(JwtAlgorithm::ES256, key);
            assert_eq!(
                err.message,
                "jwt_private_key is not a valid P-256 EC private key (PKCS#8) in PEM format for ES256"
            );
        }
        for key in [ec_p256_pem(), FIXTURE_EC_P256, rsa_pem(), ed25519_pem()] {
            assert_key_rejected(JwtAlgorithm::ES384, key);
        }
    }

    #[test]
    fn ecdsa_sec1_gets_conversion_hint() {
        let err = assert_key_rejected(JwtAlgorithm::ES256, FIXTURE_EC_P256_SEC1);
        assert!(err.message.contains("PKCS#8"));
        assert!(err.message.contains("openssl pkcs8"));
    }

    #[test]
    fn eddsa_accepts_ed25519_only() {
        assert_key_ok(JwtAlgorithm::EdDSA, ed25519_pem());
        assert_key_ok(JwtAlgorithm::EdDSA, FIXTURE_ED25519);
        for key in [rsa_pem(), ec_p256_pem(), "", "nope"] {
            assert_key_rejected(JwtAlgorithm::EdDSA, key);
        }
        let err = assert_key_rejected(JwtAlgorithm::RS256, ed25519_pem());
        assert!(err.message.contains("RS256"));
    }

    #[test]
    fn ttl_parse() {
        assert_eq!(TtlSeconds::parse(1).unwrap().get(), 1);
        assert_eq!(TtlSeconds::parse(120).unwrap().get(), 120);
        assert_eq!(
            TtlSeconds::parse(30).unwrap().as_duration(),
            std::time::Duration::from_secs(30)
        );
        for bad in [0, -1, 121, i64::MAX, i64::MIN] {
            let err = TtlSeconds::parse(bad).unwrap_err();
            assert_eq!(err.field, "http_request_ttl");
            assert!(err.message.contains("between 1 and 120"));
        }
    }

    #[test]
    fn read_access_and_mode() {
        for r in ReadAccess::ALL {
            assert_eq!(ReadAccess::parse(r.as_str()).unwrap(), *r);
        }
        assert_eq!(
            ReadAccess::parse("SPECIFIC_TEAMS").unwrap(),
            ReadAccess::SpecificTeams
        );
        assert!(ReadAccess::parse("team").is_err());
        for m in CredentialMode::ALL {
            assert_eq!(CredentialMode::parse(m.as_str()).unwrap(), *m);
            let json = serde_json::to_string(m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
        }
        let err = CredentialMode::parse("jwt").unwrap_err();
        assert_eq!(err.field, "mode");
        assert!(
            err.message
                .contains("TEXT, JWT, OAUTH, AWS, MTLS, HTTP_REQUEST_AGENT, MULTI_REQUEST")
        );
        assert_eq!(CredentialMode::ALL.len(), 7);
    }

    proptest! {
        #[test]
        fn slug_from_name_is_valid_and_idempotent(name in "\\PC*") {
            if let Ok(slug) = Slug::from_name(&name) {
                prop_assert!(Slug::parse(slug.as_str()).is_ok());
                prop_assert_eq!(Slug::from_name(slug.as_str()).unwrap(), slug.clone());
            }
        }

        #[test]
        fn slug_from_name_ascii_heavy(name in "[ A-Za-z0-9_!./-]{0,300}") {
            match Slug::from_name(&name) {
                Ok(slug) => {
                    prop_assert!(Slug::parse(slug.as_str()).is_ok());
                    prop_assert_eq!(Slug::from_name(slug.as_str()).unwrap(), slug);
                }
                Err(e) => prop_assert!(!name.chars().any(|c| c.is_ascii_alphanumeric()), "{}", e),
            }
        }
    }

    #[test]
    fn secrets_debug_is_redacted() {
        let s = Secrets {
            value: Some(SecretString::from("hunter2")),
            request_secrets: vec![Some(SecretString::from("hunter3"))],
            ..Default::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
        let input = CredentialInput {
            value: Some(SecretString::from("hunter2")),
            ..Default::default()
        };
        assert!(!format!("{input:?}").contains("hunter2"));
        // The sealer's plaintext (and only it) holds them.
        let sealed = serde_json::to_string(&s).unwrap();
        assert!(sealed.contains("hunter2") && sealed.contains("hunter3"));
    }
}
