//! Teams, folders and user credentials in all seven Tines modes.
//!
//! A credential is stored as three parts: common fields, the non-secret mode configuration
//! ([`ModeConfig`], JSON) and the secret inputs ([`Secrets`], sealed with the keyring under
//! associated data `(user_credentials, id, secrets)`). Secrets are write-only: no view type
//! has a field for them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use super::{
    CoreError, Ctx, Latchkey, Result,
    audit::{self, Event},
    host_pattern::parse_allowed_hosts,
    in_tx, iso8601, now_ms,
    types::{
        CredentialMode, HttpUrl, JwtAlgorithm, Name, ReadAccess, Slug, TtlSeconds,
        check_jwt_signing_key,
    },
};
use crate::{
    crypto::{keyring::Aad, secret::random_hex},
    store::{CredentialRow, FolderRow, Page, StoreError, TeamRow, Tx},
};

/// Tines's default and largest page sizes.
pub const DEFAULT_PER_PAGE: i64 = 20;
pub const MAX_PER_PAGE: i64 = 500;
const MAX_DESCRIPTION: usize = 10_000;

/// A validated `page` / `per_page` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: i64,
    pub per_page: i64,
}

impl PageRequest {
    /// `page` ≥ 1 (default 1); `per_page` in 1..=500 (default 20; larger values are capped).
    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Result<Self> {
        let int = |field: &str, v: Option<&str>, default: i64| -> Result<i64> {
            match v {
                None | Some("") => Ok(default),
                Some(s) => match s.parse::<i64>() {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err(CoreError::malformed(
                        field,
                        format!("{field} must be a positive integer"),
                    )),
                },
            }
        };
        Ok(Self {
            page: int("page", page, 1)?,
            per_page: int("per_page", per_page, DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE),
        })
    }

    fn slice(self) -> Page {
        Page {
            offset: (self.page - 1).saturating_mul(self.per_page),
            limit: self.per_page,
        }
    }
}

/// One page of a list and what the surface needs to describe it.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub page: PageRequest,
    pub count: i64,
}

impl<T> Paged<T> {
    pub fn pages(&self) -> i64 {
        (self.count + self.page.per_page - 1) / self.page.per_page
    }
}

// ---------------------------------------------------------------------------------------------
// Teams

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NewTeam {
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

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NewFolder {
    pub name: Option<String>,
    /// `CREDENTIAL`, `RESOURCE` or `STORY`; only `CREDENTIAL` folders hold credentials.
    pub content_type: Option<String>,
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
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct CredentialRequestInput {
    /// HTTP Request options (`url`, `method`, `content_type`, `payload`, `headers`).
    pub options: Option<Map<String, Value>>,
    /// Write-only; referenced as `<<secret>>` inside `options`.
    pub http_request_secret: Option<String>,
}

/// The body of `POST` and `PUT /api/v1/user_credentials`. Every field is optional here so
/// that a missing one gets a message naming it; which are required depends on `mode`.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct CredentialInput {
    pub name: Option<String>,
    /// TEXT, JWT, OAUTH, AWS, MTLS, HTTP_REQUEST_AGENT or MULTI_REQUEST.
    pub mode: Option<String>,
    pub team_id: Option<i64>,
    pub folder_id: Option<i64>,
    /// TEAM (default), GLOBAL or SPECIFIC_TEAMS.
    pub read_access: Option<String>,
    pub shared_team_slugs: Option<Vec<String>>,
    pub description: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub allowed_hosts: Option<Vec<String>>,
    pub live_credential_id: Option<i64>,
    /// TEXT: the value (write-only).
    pub value: Option<String>,
    pub jwt_algorithm: Option<String>,
    pub jwt_payload: Option<Map<String, Value>>,
    pub jwt_auto_generate_time_claims: Option<bool>,
    /// Write-only.
    pub jwt_private_key: Option<String>,
    pub oauth_url: Option<String>,
    pub oauth_token_url: Option<String>,
    pub oauth_client_id: Option<String>,
    /// Write-only.
    pub oauth_client_secret: Option<String>,
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
    pub aws_secret_key: Option<String>,
    pub aws_assumed_role_arn: Option<String>,
    pub mtls_client_certificate: Option<String>,
    /// Write-only.
    pub mtls_client_private_key: Option<String>,
    pub mtls_root_certificate: Option<String>,
    pub http_request_options: Option<Map<String, Value>>,
    pub http_request_location_of_token: Option<String>,
    /// Write-only; referenced as `<<secret>>` inside `http_request_options`.
    pub http_request_secret: Option<String>,
    /// Seconds, 1..=120; omitted on PUT means none.
    pub http_request_ttl: Option<i64>,
    pub content_type: Option<String>,
    /// MULTI_REQUEST: exactly two requests.
    pub credential_requests: Option<Vec<CredentialRequestInput>>,
}

impl std::fmt::Debug for CredentialInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialInput")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("team_id", &self.team_id)
            .finish_non_exhaustive()
    }
}

impl Drop for CredentialInput {
    fn drop(&mut self) {
        self.value.zeroize();
        self.jwt_private_key.zeroize();
        self.oauth_client_secret.zeroize();
        self.aws_secret_key.zeroize();
        self.mtls_client_private_key.zeroize();
        self.http_request_secret.zeroize();
        for r in self.credential_requests.iter_mut().flatten() {
            r.http_request_secret.zeroize();
        }
    }
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
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Secrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secret_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls_client_private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_request_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_secrets: Vec<Option<String>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets([redacted])")
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        self.value.zeroize();
        self.jwt_private_key.zeroize();
        self.oauth_client_secret.zeroize();
        self.aws_secret_key.zeroize();
        self.mtls_client_private_key.zeroize();
        self.http_request_secret.zeroize();
        self.request_secrets.zeroize();
    }
}

fn secrets_aad(id: &str) -> Aad<'_> {
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
    pub metadata: Map<String, Value>,
    pub test_credential_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_credential: Option<TestCredentialView>,
    /// Set on a test credential: the live credential it stands in for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_credential_id: Option<i64>,
    /// The non-secret fields of the credential's mode (e.g. `jwt_algorithm`, `http_request_options`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub mode_fields: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestCredentialView {
    pub created_at: String,
    pub updated_at: String,
}

fn json_col<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| CoreError::Internal(format!("stored {what} is not valid: {e}")))
}

fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| CoreError::Internal(format!("cannot encode: {e}")))
}

impl CredentialView {
    fn from_row(r: &CredentialRow) -> Result<Self> {
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
            allowed_hosts: json_col(&r.allowed_hosts, "allowed_hosts")?,
            metadata: json_col(&r.metadata, "metadata")?,
            test_credential_enabled: test_credential.is_some(),
            test_credential,
            live_credential_id: r.live_credential_id,
            mode_fields,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Validation

fn required<'a, T>(value: &'a Option<T>, field: &str, mode: CredentialMode) -> Result<&'a T> {
    value.as_ref().ok_or_else(|| {
        CoreError::malformed(
            field,
            format!("{field} is required for mode {}", mode.as_str()),
        )
    })
}

fn required_text(value: &Option<String>, field: &str, mode: CredentialMode) -> Result<String> {
    let text = required(value, field, mode)?;
    if text.trim().is_empty() {
        return Err(CoreError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    Ok(text.clone())
}

/// A secret input: the new value, or (same mode, field omitted) the one already stored.
fn secret_or_kept(
    new: &Option<String>,
    kept: Option<&String>,
    field: &str,
    mode: CredentialMode,
) -> Result<String> {
    match new.as_ref().or(kept) {
        Some(s) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(CoreError::invalid(
            field,
            format!("{field} must not be empty"),
        )),
        None => Err(CoreError::malformed(
            field,
            format!("{field} is required for mode {}", mode.as_str()),
        )),
    }
}

/// Optional secret: a new value replaces, an empty string clears, omission keeps.
fn optional_secret(new: &Option<String>, kept: Option<&String>) -> Option<String> {
    match new {
        Some(s) if s.is_empty() => None,
        Some(s) => Some(s.clone()),
        None => kept.cloned(),
    }
}

const HTTP_METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

/// Checks the parts of HTTP Request options that Latchkey will act on.
fn check_request_options(options: &Map<String, Value>, prefix: &str) -> Result<()> {
    let url_field = format!("{prefix}.url");
    match options.get("url") {
        Some(Value::String(url)) => {
            HttpUrl::parse(url, "url").map_err(|e| {
                CoreError::invalid(&url_field, format!("{url_field} {}", e.message))
            })?;
        }
        Some(_) => {
            return Err(CoreError::malformed(
                &url_field,
                format!("{url_field} must be a string"),
            ));
        }
        None => {
            return Err(CoreError::malformed(
                &url_field,
                format!("{url_field} is required"),
            ));
        }
    }
    if let Some(method) = options.get("method") {
        let ok = method
            .as_str()
            .is_some_and(|m| HTTP_METHODS.contains(&m.to_ascii_lowercase().as_str()));
        if !ok {
            let field = format!("{prefix}.method");
            return Err(CoreError::invalid(
                &field,
                format!("{field} must be one of {}", HTTP_METHODS.join(", ")),
            ));
        }
    }
    if let Some(headers) = options.get("headers")
        && !headers.is_object()
    {
        let field = format!("{prefix}.headers");
        return Err(CoreError::malformed(
            &field,
            format!("{field} must be an object"),
        ));
    }
    Ok(())
}

fn check_ttl(ttl: Option<i64>) -> Result<Option<i64>> {
    ttl.map(|t| TtlSeconds::parse(t).map(|t| i64::from(t.get())))
        .transpose()
        .map_err(Into::into)
}

fn check_location(input: &CredentialInput, mode: CredentialMode) -> Result<String> {
    required_text(
        &input.http_request_location_of_token,
        "http_request_location_of_token",
        mode,
    )
}

/// The labels of the PEM blocks in `text`, if every block is well-formed base64.
fn pem_labels(text: &str) -> Option<Vec<String>> {
    use base64::Engine as _;
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after.find("-----")?;
        let label = &after[..label_end];
        let body_and_rest = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_and_rest.find(&end_marker)?;
        let body: String = body_and_rest[..body_end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .ok()?;
        labels.push(label.to_owned());
        rest = &body_and_rest[body_end + end_marker.len()..];
    }
    Some(labels)
}

fn check_pem(text: &str, field: &str, want: impl Fn(&str) -> bool, what: &str) -> Result<()> {
    match pem_labels(text) {
        Some(labels) if !labels.is_empty() && labels.iter().all(|l| want(l)) => Ok(()),
        _ => Err(CoreError::invalid(
            field,
            format!("{field} must be {what} in PEM format"),
        )),
    }
}

fn is_aws_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|r| !r.is_empty())
}

/// Builds the mode configuration and secrets from `input`, keeping stored secrets the
/// caller did not resend when the mode is unchanged.
fn build_mode(
    input: &CredentialInput,
    mode: CredentialMode,
    previous: Option<(&ModeConfig, &Secrets)>,
) -> Result<(ModeConfig, Secrets)> {
    let kept = previous.filter(|(c, _)| c.mode() == mode).map(|(_, s)| s);
    let mut secrets = Secrets::default();
    let config = match mode {
        CredentialMode::Text => {
            secrets.value = Some(secret_or_kept(
                &input.value,
                kept.and_then(|k| k.value.as_ref()),
                "value",
                mode,
            )?);
            ModeConfig::Text {}
        }
        CredentialMode::Jwt => {
            let alg = JwtAlgorithm::parse(required(&input.jwt_algorithm, "jwt_algorithm", mode)?)?;
            let key = secret_or_kept(
                &input.jwt_private_key,
                kept.and_then(|k| k.jwt_private_key.as_ref()),
                "jwt_private_key",
                mode,
            )?;
            check_jwt_signing_key(alg, &key)?;
            secrets.jwt_private_key = Some(key);
            ModeConfig::Jwt {
                jwt_algorithm: alg,
                jwt_payload: input.jwt_payload.clone().unwrap_or_default(),
                jwt_auto_generate_time_claims: input.jwt_auto_generate_time_claims.unwrap_or(false),
            }
        }
        CredentialMode::Oauth => {
            let grant = input
                .oauth_grant_type
                .clone()
                .unwrap_or_else(|| "client_credentials".into());
            if !matches!(grant.as_str(), "client_credentials" | "authorization_code") {
                return Err(CoreError::invalid(
                    "oauth_grant_type",
                    "oauth_grant_type must be client_credentials or authorization_code",
                ));
            }
            let token_url = HttpUrl::parse(
                required(&input.oauth_token_url, "oauth_token_url", mode)?,
                "oauth_token_url",
            )?;
            let oauth_url = match (&input.oauth_url, grant.as_str()) {
                (Some(url), _) => Some(HttpUrl::parse(url, "oauth_url")?.as_str().to_owned()),
                (None, "authorization_code") => {
                    return Err(CoreError::malformed(
                        "oauth_url",
                        "oauth_url is required for the authorization_code grant",
                    ));
                }
                (None, _) => None,
            };
            let pkce = input.oauth_pkce_code_challenge_method.clone();
            if let Some(method) = &pkce {
                if !matches!(method.as_str(), "S256" | "plain") {
                    return Err(CoreError::invalid(
                        "oauthPkceCodeChallengeMethod",
                        "oauthPkceCodeChallengeMethod must be S256 or plain",
                    ));
                }
                if grant != "authorization_code" {
                    return Err(CoreError::invalid(
                        "oauthPkceCodeChallengeMethod",
                        "oauthPkceCodeChallengeMethod applies to the authorization_code grant only",
                    ));
                }
            }
            secrets.oauth_client_secret = Some(secret_or_kept(
                &input.oauth_client_secret,
                kept.and_then(|k| k.oauth_client_secret.as_ref()),
                "oauth_client_secret",
                mode,
            )?);
            ModeConfig::Oauth {
                oauth_url,
                oauth_token_url: token_url.as_str().to_owned(),
                oauth_client_id: required_text(&input.oauth_client_id, "oauth_client_id", mode)?,
                oauth_scope: input.oauth_scope.clone(),
                oauth_grant_type: grant,
                oauth_pkce_code_challenge_method: pkce,
            }
        }
        CredentialMode::Aws => {
            let kind = required(
                &input.aws_authentication_type,
                "aws_authentication_type",
                mode,
            )?
            .clone();
            let (access_key, role_arn, external_id) = match kind.as_str() {
                "KEY" => {
                    let access = required_text(&input.aws_access_key, "aws_access_key", mode)?;
                    secrets.aws_secret_key = Some(secret_or_kept(
                        &input.aws_secret_key,
                        kept.and_then(|k| k.aws_secret_key.as_ref()),
                        "aws_secret_key",
                        mode,
                    )?);
                    (Some(access), None, None)
                }
                "ROLE" => {
                    let arn =
                        required_text(&input.aws_assumed_role_arn, "aws_assumed_role_arn", mode)?;
                    if !is_aws_role_arn(&arn) {
                        return Err(CoreError::invalid(
                            "aws_assumed_role_arn",
                            "aws_assumed_role_arn must look like arn:aws:iam::123456789012:role/name",
                        ));
                    }
                    // The external id is part of the customer's trust policy: keep it stable.
                    let external_id = match previous.map(|(c, _)| c) {
                        Some(ModeConfig::Aws {
                            aws_assumed_role_external_id: Some(id),
                            ..
                        }) => id.clone(),
                        _ => random_hex(16)?,
                    };
                    (None, Some(arn), Some(external_id))
                }
                "INSTANCE_PROFILE" => (None, None, None),
                _ => {
                    return Err(CoreError::invalid(
                        "aws_authentication_type",
                        "aws_authentication_type must be KEY, ROLE or INSTANCE_PROFILE",
                    ));
                }
            };
            ModeConfig::Aws {
                aws_authentication_type: kind,
                aws_access_key: access_key,
                aws_assumed_role_arn: role_arn,
                aws_assumed_role_external_id: external_id,
            }
        }
        CredentialMode::Mtls => {
            let cert = required_text(
                &input.mtls_client_certificate,
                "mtls_client_certificate",
                mode,
            )?;
            check_pem(
                &cert,
                "mtls_client_certificate",
                |l| l == "CERTIFICATE",
                "a certificate",
            )?;
            let key = secret_or_kept(
                &input.mtls_client_private_key,
                kept.and_then(|k| k.mtls_client_private_key.as_ref()),
                "mtls_client_private_key",
                mode,
            )?;
            check_pem(
                &key,
                "mtls_client_private_key",
                |l| l.ends_with("PRIVATE KEY"),
                "a private key",
            )?;
            secrets.mtls_client_private_key = Some(key);
            let root = input
                .mtls_root_certificate
                .clone()
                .filter(|r| !r.trim().is_empty());
            if let Some(root) = &root {
                check_pem(
                    root,
                    "mtls_root_certificate",
                    |l| l == "CERTIFICATE",
                    "a certificate",
                )?;
            }
            ModeConfig::Mtls {
                mtls_client_certificate: cert,
                mtls_root_certificate: root,
            }
        }
        CredentialMode::HttpRequestAgent => {
            let options = required(&input.http_request_options, "http_request_options", mode)?;
            check_request_options(options, "http_request_options")?;
            secrets.http_request_secret = optional_secret(
                &input.http_request_secret,
                kept.and_then(|k| k.http_request_secret.as_ref()),
            );
            ModeConfig::HttpRequestAgent {
                http_request_options: options.clone(),
                http_request_location_of_token: check_location(input, mode)?,
                http_request_ttl: check_ttl(input.http_request_ttl)?,
                content_type: input.content_type.clone(),
            }
        }
        CredentialMode::MultiRequest => {
            let requests = required(&input.credential_requests, "credential_requests", mode)?;
            if requests.len() != 2 {
                return Err(CoreError::invalid(
                    "credential_requests",
                    format!(
                        "credential_requests must hold exactly two requests, not {}",
                        requests.len()
                    ),
                ));
            }
            let mut stored = Vec::with_capacity(2);
            for (i, request) in requests.iter().enumerate() {
                let prefix = format!("credential_requests[{i}].options");
                let options = request.options.as_ref().ok_or_else(|| {
                    CoreError::malformed(&prefix, format!("{prefix} is required"))
                })?;
                check_request_options(options, &prefix)?;
                let kept_secret = kept
                    .and_then(|k| k.request_secrets.get(i))
                    .and_then(Option::as_ref);
                secrets
                    .request_secrets
                    .push(optional_secret(&request.http_request_secret, kept_secret));
                stored.push(StoredRequest {
                    options: options.clone(),
                });
            }
            ModeConfig::MultiRequest {
                credential_requests: stored,
                http_request_location_of_token: check_location(input, mode)?,
                http_request_ttl: check_ttl(input.http_request_ttl)?,
            }
        }
    };
    Ok((config, secrets))
}

/// Everything of a credential but its id and timestamps, validated.
struct Validated {
    name: Name,
    slug: Slug,
    read_access: ReadAccess,
    shared_team_slugs: Vec<String>,
    description: String,
    metadata: Map<String, Value>,
    allowed_hosts: Vec<String>,
    folder_id: Option<i64>,
    live_credential_id: Option<i64>,
    config: ModeConfig,
    secrets: Secrets,
}

/// What an update starts from.
struct Existing<'a> {
    row: &'a CredentialRow,
    config: ModeConfig,
    secrets: Secrets,
}

impl Latchkey {
    fn seal_secrets(&self, id: i64, secrets: &Secrets) -> Result<Vec<u8>> {
        let plain = Zeroizing::new(
            serde_json::to_vec(secrets).map_err(|e| CoreError::Internal(e.to_string()))?,
        );
        Ok(self.keyring.seal(&secrets_aad(&id.to_string()), &plain)?)
    }

    /// The stored secrets of a credential (for updates now, and for using it later).
    pub(crate) fn open_secrets(&self, row: &CredentialRow) -> Result<Secrets> {
        let Some(sealed) = &row.secrets else {
            return Ok(Secrets::default());
        };
        let plain = self
            .keyring
            .open(&secrets_aad(&row.id.to_string()), sealed)?;
        serde_json::from_slice(&plain)
            .map_err(|_| CoreError::Internal("stored secrets are not valid".into()))
    }

    async fn validate(
        &self,
        tx: &mut Tx,
        org: &str,
        team: &TeamRow,
        input: &CredentialInput,
        existing: Option<&Existing<'_>>,
    ) -> Result<Validated> {
        let mode = CredentialMode::parse(
            input
                .mode
                .as_deref()
                .ok_or_else(|| CoreError::malformed("mode", "mode is required"))?,
        )?;
        let name = Name::parse(
            input
                .name
                .as_deref()
                .ok_or_else(|| CoreError::malformed("name", "name is required"))?,
        )?;
        let slug = Slug::from_name(name.as_str())?;

        let read_access = match &input.read_access {
            Some(r) => ReadAccess::parse(r)?,
            None => ReadAccess::Team,
        };
        let requested_slugs = input.shared_team_slugs.clone().unwrap_or_default();
        let shared_team_slugs = if read_access == ReadAccess::SpecificTeams {
            if requested_slugs.is_empty() {
                return Err(CoreError::invalid(
                    "shared_team_slugs",
                    "shared_team_slugs must name at least one team when read_access is SPECIFIC_TEAMS",
                ));
            }
            let teams = tx.all_teams(org).await?;
            let mut slugs = Vec::with_capacity(requested_slugs.len());
            for requested in &requested_slugs {
                let slug = Slug::parse(requested).map_err(|_| {
                    CoreError::invalid(
                        "shared_team_slugs",
                        format!("{requested:?} is not a team slug"),
                    )
                })?;
                if !teams.iter().any(|t| t.slug == slug.as_str()) {
                    return Err(CoreError::invalid(
                        "shared_team_slugs",
                        format!("no team has the slug {requested:?}"),
                    ));
                }
                if !slugs.iter().any(|s: &String| s == slug.as_str()) {
                    slugs.push(slug.as_str().to_owned());
                }
            }
            slugs
        } else {
            if !requested_slugs.is_empty() {
                return Err(CoreError::invalid(
                    "shared_team_slugs",
                    "shared_team_slugs can only be set when read_access is SPECIFIC_TEAMS",
                ));
            }
            Vec::new()
        };

        let description = input.description.clone().unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(CoreError::invalid(
                "description",
                format!("description must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        let allowed_hosts =
            parse_allowed_hosts(input.allowed_hosts.as_deref().unwrap_or_default())?
                .iter()
                .map(|h| h.as_str().to_owned())
                .collect();

        let folder_id = match input.folder_id {
            None => None,
            Some(id) => {
                let folder = tx.folder(org, id).await?.ok_or(CoreError::NotFound {
                    what: "folder",
                    field: Some("folder_id"),
                })?;
                if folder.team_id != team.id {
                    return Err(CoreError::invalid(
                        "folder_id",
                        format!("folder {id} belongs to another team"),
                    ));
                }
                if folder.content_type != "CREDENTIAL" {
                    return Err(CoreError::invalid(
                        "folder_id",
                        format!("folder {id} is not a CREDENTIAL folder"),
                    ));
                }
                Some(id)
            }
        };

        let live_credential_id = match (input.live_credential_id, existing) {
            (None, Some(e)) => e.row.live_credential_id,
            (None, None) => None,
            (Some(live_id), _) => {
                let field = "live_credential_id";
                if existing.is_some_and(|e| e.row.id == live_id) {
                    return Err(CoreError::invalid(
                        field,
                        "a credential cannot be its own test credential",
                    ));
                }
                if existing.is_some_and(|e| e.row.twin_created_at.is_some()) {
                    return Err(CoreError::invalid(
                        field,
                        "this credential has a test credential, so it cannot be one",
                    ));
                }
                let live = tx
                    .credential(org, live_id)
                    .await?
                    .ok_or(CoreError::NotFound {
                        what: "live credential",
                        field: Some("live_credential_id"),
                    })?;
                if live.team_id != team.id {
                    return Err(CoreError::invalid(
                        field,
                        format!("credential {live_id} belongs to another team"),
                    ));
                }
                if live.mode != mode.as_str() {
                    return Err(CoreError::invalid(
                        field,
                        format!(
                            "credential {live_id} has mode {}, not {}",
                            live.mode,
                            mode.as_str()
                        ),
                    ));
                }
                if live.live_credential_id.is_some() {
                    return Err(CoreError::invalid(
                        field,
                        format!("credential {live_id} is itself a test credential"),
                    ));
                }
                let already = tx.credential_twin(org, live_id).await?;
                if already.is_some_and(|twin| existing.is_none_or(|e| e.row.id != twin.id)) {
                    return Err(CoreError::invalid(
                        field,
                        format!("credential {live_id} already has a test credential"),
                    ));
                }
                Some(live_id)
            }
        };

        let previous = existing.map(|e| (&e.config, &e.secrets));
        let (config, secrets) = build_mode(input, mode, previous)?;
        Ok(Validated {
            name,
            slug,
            read_access,
            shared_team_slugs,
            description,
            metadata: input.metadata.clone().unwrap_or_default(),
            allowed_hosts,
            folder_id,
            live_credential_id,
            config,
            secrets,
        })
    }

    /// The team a write goes to, if this caller may write there.
    async fn writable_team(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        team_id: i64,
        field: Option<&'static str>,
    ) -> Result<TeamRow> {
        let org = ctx.principal.org_for_write()?;
        match tx.team(org, team_id).await? {
            Some(team) if ctx.principal.sees_team(team.id) => Ok(team),
            _ => Err(CoreError::NotFound {
                what: "team",
                field,
            }),
        }
    }

    /// A credential this caller can see.
    async fn visible_credential(&self, tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<CredentialRow> {
        let org = ctx.principal.org()?;
        match tx.credential(org, id).await? {
            Some(row) if ctx.principal.sees_team(row.team_id) => Ok(row),
            _ => Err(CoreError::not_found("credential")),
        }
    }

    fn row_from(
        &self,
        org: &str,
        team_id: i64,
        v: &Validated,
        created_at: i64,
        updated_at: i64,
    ) -> Result<CredentialRow> {
        Ok(CredentialRow {
            id: 0,
            organization_id: org.to_owned(),
            team_id,
            folder_id: v.folder_id,
            live_credential_id: v.live_credential_id,
            name: v.name.as_str().to_owned(),
            slug: v.slug.as_str().to_owned(),
            mode: v.config.mode().as_str().to_owned(),
            read_access: v.read_access.as_str().to_owned(),
            shared_team_slugs: to_json(&v.shared_team_slugs)?,
            description: v.description.clone(),
            metadata: to_json(&v.metadata)?,
            allowed_hosts: to_json(&v.allowed_hosts)?,
            config: to_json(&v.config)?,
            secrets: None,
            created_at,
            updated_at,
            twin_created_at: None,
            twin_updated_at: None,
        })
    }

    pub async fn create_credential(
        &self,
        ctx: &Ctx,
        input: CredentialInput,
    ) -> Result<CredentialView> {
        let team_id = input
            .team_id
            .ok_or_else(|| CoreError::malformed("team_id", "team_id is required"))?;
        in_tx(&self.store, async |tx| {
            let team = self
                .writable_team(tx, ctx, team_id, Some("team_id"))
                .await?;
            let org = team.organization_id.as_str();
            let v = self.validate(tx, org, &team, &input, None).await?;
            let now = now_ms();
            let mut row = self.row_from(org, team.id, &v, now, now)?;
            row.id = tx
                .insert_credential(&row)
                .await
                .map_err(|e| slug_conflict(e, &v, team.id))?;
            let sealed = self.seal_secrets(row.id, &v.secrets)?;
            tx.set_credential_secrets(org, row.id, Some(&sealed))
                .await?;
            audit::append(
                tx,
                Event::by(
                    ctx,
                    Some(org),
                    "user_credential.create",
                    "user_credential",
                    row.id,
                ),
            )
            .await?;
            let stored = tx
                .credential(org, row.id)
                .await?
                .ok_or(CoreError::not_found("credential"))?;
            CredentialView::from_row(&stored)
        })
        .await
    }

    pub async fn credential(&self, ctx: &Ctx, id: i64) -> Result<CredentialView> {
        let mut tx = self.store.read().await?;
        CredentialView::from_row(&self.visible_credential(&mut tx, ctx, id).await?)
    }

    /// The organization and team a list covers. A `team_id` or `folder_id` the caller cannot
    /// see (another organization's, or another team's for a team-bound token) is 404, as on
    /// every other route, rather than an empty list.
    async fn list_filter<'c>(
        &self,
        tx: &mut Tx,
        ctx: &'c Ctx,
        team_id: Option<i64>,
        folder_id: Option<i64>,
    ) -> Result<(&'c str, Option<i64>)> {
        let org = ctx.principal.org()?;
        let team = ctx.principal.team_filter(team_id)?;
        if let Some(id) = team_id
            && tx.team(org, id).await?.is_none()
        {
            return Err(CoreError::NotFound {
                what: "team",
                field: Some("team_id"),
            });
        }
        if let Some(id) = folder_id {
            let visible = tx
                .folder(org, id)
                .await?
                .is_some_and(|f| ctx.principal.sees_team(f.team_id));
            if !visible {
                return Err(CoreError::NotFound {
                    what: "folder",
                    field: Some("folder_id"),
                });
            }
        }
        Ok((org, team))
    }

    pub async fn list_credentials(
        &self,
        ctx: &Ctx,
        team_id: Option<i64>,
        folder_id: Option<i64>,
        page: PageRequest,
    ) -> Result<Paged<CredentialView>> {
        let mut tx = self.store.read().await?;
        let (org, team) = self.list_filter(&mut tx, ctx, team_id, folder_id).await?;
        let (rows, count) = tx.credentials(org, team, folder_id, page.slice()).await?;
        let items = rows
            .iter()
            .map(CredentialView::from_row)
            .collect::<Result<_>>()?;
        Ok(Paged { items, page, count })
    }

    /// `PUT`: replaces the credential; `mode` is required and omitted optional fields reset.
    pub async fn replace_credential(
        &self,
        ctx: &Ctx,
        id: i64,
        input: CredentialInput,
    ) -> Result<CredentialView> {
        in_tx(&self.store, async |tx| {
            let row = self.visible_credential(tx, ctx, id).await?;
            let team = self.writable_team(tx, ctx, row.team_id, None).await?;
            if input.team_id.is_some_and(|t| t != row.team_id) {
                return Err(CoreError::invalid(
                    "team_id",
                    "a credential cannot move to another team",
                ));
            }
            let org = team.organization_id.as_str();
            let existing = Existing {
                row: &row,
                config: json_col(&row.config, "config")?,
                secrets: self.open_secrets(&row)?,
            };
            let v = self
                .validate(tx, org, &team, &input, Some(&existing))
                .await?;
            let mut updated = self.row_from(
                org,
                team.id,
                &v,
                row.created_at,
                now_ms().max(row.updated_at),
            )?;
            updated.id = row.id;
            updated.secrets = Some(self.seal_secrets(row.id, &v.secrets)?);
            tx.update_credential(&updated)
                .await
                .map_err(|e| slug_conflict(e, &v, team.id))?;
            audit::append(
                tx,
                Event::by(
                    ctx,
                    Some(org),
                    "user_credential.update",
                    "user_credential",
                    row.id,
                ),
            )
            .await?;
            let stored = tx
                .credential(org, row.id)
                .await?
                .ok_or(CoreError::not_found("credential"))?;
            CredentialView::from_row(&stored)
        })
        .await
    }

    /// Deletes a credential (and its test credential, if any).
    pub async fn delete_credential(&self, ctx: &Ctx, id: i64) -> Result<()> {
        in_tx(&self.store, async |tx| {
            let row = self.visible_credential(tx, ctx, id).await?;
            let org = ctx.principal.org_for_write()?;
            tx.delete_credential(org, row.id).await?;
            audit::append(
                tx,
                Event::by(
                    ctx,
                    Some(org),
                    "user_credential.delete",
                    "user_credential",
                    row.id,
                ),
            )
            .await?;
            Ok(())
        })
        .await
    }

    // --- teams ---------------------------------------------------------------------------

    pub async fn create_team(&self, ctx: &Ctx, input: NewTeam) -> Result<TeamView> {
        let org = ctx.principal.org_for_write()?;
        if ctx.principal.team_id.is_some() {
            return Err(CoreError::forbidden(
                "a team-bound token cannot create teams",
            ));
        }
        let name = Name::parse(
            input
                .name
                .as_deref()
                .ok_or_else(|| CoreError::malformed("name", "name is required"))?,
        )?;
        let slug = Slug::from_name(name.as_str())?;
        in_tx(&self.store, async |tx| {
            let now = now_ms();
            let id = match tx.insert_team(org, name.as_str(), slug.as_str(), now).await {
                Err(StoreError::Conflict(_)) => {
                    return Err(CoreError::Conflict {
                        field: "name".into(),
                        message: format!("a team with slug {:?} already exists", slug.as_str()),
                    });
                }
                other => other?,
            };
            audit::append(tx, Event::by(ctx, Some(org), "team.create", "team", id)).await?;
            Ok(TeamView {
                id,
                name: name.as_str().to_owned(),
                slug: slug.as_str().to_owned(),
            })
        })
        .await
    }

    pub async fn list_teams(&self, ctx: &Ctx, page: PageRequest) -> Result<Paged<TeamView>> {
        let org = ctx.principal.org()?;
        let (rows, count) = self
            .store
            .read()
            .await?
            .teams(org, ctx.principal.team_id, page.slice())
            .await?;
        Ok(Paged {
            items: rows.into_iter().map(Into::into).collect(),
            page,
            count,
        })
    }

    pub async fn team(&self, ctx: &Ctx, id: i64) -> Result<TeamView> {
        let org = ctx.principal.org()?;
        match self.store.read().await?.team(org, id).await? {
            Some(team) if ctx.principal.sees_team(team.id) => Ok(team.into()),
            _ => Err(CoreError::not_found("team")),
        }
    }

    /// Deletes a team with its folders and credentials (and tokens bound to it).
    pub async fn delete_team(&self, ctx: &Ctx, id: i64) -> Result<()> {
        in_tx(&self.store, async |tx| {
            let team = self.writable_team(tx, ctx, id, None).await?;
            if ctx.principal.team_id.is_some() {
                return Err(CoreError::forbidden(
                    "a team-bound token cannot delete teams",
                ));
            }
            tx.delete_team(&team.organization_id, id).await?;
            audit::append(
                tx,
                Event::by(ctx, Some(&team.organization_id), "team.delete", "team", id),
            )
            .await?;
            Ok(())
        })
        .await?;
        // The tokens bound to the team went with it: they fail from the next request on.
        self.caches
            .tokens
            .retain(|_, (principal, _)| principal.team_id != Some(id));
        Ok(())
    }

    // --- folders -------------------------------------------------------------------------

    pub async fn create_folder(&self, ctx: &Ctx, input: NewFolder) -> Result<FolderView> {
        let name = Name::parse(
            input
                .name
                .as_deref()
                .ok_or_else(|| CoreError::malformed("name", "name is required"))?,
        )?;
        let content_type = input.content_type.as_deref().unwrap_or("CREDENTIAL");
        if !FOLDER_CONTENT_TYPES.contains(&content_type) {
            return Err(CoreError::invalid(
                "content_type",
                "content_type must be CREDENTIAL, RESOURCE or STORY",
            ));
        }
        let team_id = input
            .team_id
            .ok_or_else(|| CoreError::malformed("team_id", "team_id is required"))?;
        in_tx(&self.store, async |tx| {
            let team = self
                .writable_team(tx, ctx, team_id, Some("team_id"))
                .await?;
            let org = team.organization_id.as_str();
            let id = tx
                .insert_folder(org, team.id, name.as_str(), content_type, now_ms())
                .await?;
            audit::append(tx, Event::by(ctx, Some(org), "folder.create", "folder", id)).await?;
            Ok(FolderView {
                id,
                name: name.as_str().to_owned(),
                content_type: content_type.to_owned(),
                team_id: team.id,
                size: 0,
            })
        })
        .await
    }

    pub async fn list_folders(
        &self,
        ctx: &Ctx,
        team_id: Option<i64>,
        page: PageRequest,
    ) -> Result<Paged<FolderView>> {
        let mut tx = self.store.read().await?;
        let (org, team) = self.list_filter(&mut tx, ctx, team_id, None).await?;
        let (rows, count) = tx.folders(org, team, page.slice()).await?;
        Ok(Paged {
            items: rows.into_iter().map(Into::into).collect(),
            page,
            count,
        })
    }

    pub async fn folder(&self, ctx: &Ctx, id: i64) -> Result<FolderView> {
        let org = ctx.principal.org()?;
        match self.store.read().await?.folder(org, id).await? {
            Some(folder) if ctx.principal.sees_team(folder.team_id) => Ok(folder.into()),
            _ => Err(CoreError::not_found("folder")),
        }
    }

    /// Deletes a folder; its credentials stay, outside any folder.
    pub async fn delete_folder(&self, ctx: &Ctx, id: i64) -> Result<()> {
        in_tx(&self.store, async |tx| {
            let org = ctx.principal.org_for_write()?;
            match tx.folder(org, id).await? {
                Some(folder) if ctx.principal.sees_team(folder.team_id) => {}
                _ => return Err(CoreError::not_found("folder")),
            }
            tx.delete_folder(org, id).await?;
            audit::append(tx, Event::by(ctx, Some(org), "folder.delete", "folder", id)).await?;
            Ok(())
        })
        .await
    }
}

fn slug_conflict(e: StoreError, v: &Validated, team_id: i64) -> CoreError {
    match e {
        StoreError::Conflict(_) => CoreError::Conflict {
            field: "name".into(),
            message: format!(
                "a credential with slug {:?} already exists in team {team_id}",
                v.slug.as_str()
            ),
        },
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_requests_default_cap_and_refuse_nonsense() {
        assert_eq!(
            PageRequest::parse(None, None).unwrap(),
            PageRequest {
                page: 1,
                per_page: 20
            }
        );
        assert_eq!(
            PageRequest::parse(Some("3"), Some("1000")).unwrap(),
            PageRequest {
                page: 3,
                per_page: 500
            }
        );
        assert!(PageRequest::parse(Some("0"), None).is_err());
        assert!(PageRequest::parse(None, Some("-1")).is_err());
        assert!(PageRequest::parse(Some("x"), None).is_err());
    }

    #[test]
    fn pem_labels_need_matching_markers_and_base64() {
        assert_eq!(
            pem_labels("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Some(vec!["CERTIFICATE".into()])
        );
        assert_eq!(
            pem_labels("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"),
            None
        );
        assert_eq!(pem_labels("-----BEGIN CERTIFICATE-----\nAAAA\n"), None);
        assert_eq!(pem_labels("no pem"), Some(vec![]));
    }

    #[test]
    fn role_arns() {
        assert!(is_aws_role_arn("arn:aws:iam::123456789012:role/latchkey"));
        assert!(is_aws_role_arn(
            "arn:aws-us-gov:iam::123456789012:role/path/x"
        ));
        assert!(!is_aws_role_arn("arn:aws:iam::12345:role/x"));
        assert!(!is_aws_role_arn("arn:aws:s3:::bucket"));
    }

    #[test]
    fn secrets_debug_is_redacted() {
        let mut s = Secrets::default();
        s.value = Some("hunter2".into());
        assert_eq!(format!("{s:?}"), "Secrets([redacted])");
        let mut input = CredentialInput::default();
        input.value = Some("hunter2".into());
        assert!(!format!("{input:?}").contains("hunter2"));
    }
}
