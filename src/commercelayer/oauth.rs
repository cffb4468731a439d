//! The OAuth2 authorization server (`/oauth/…`): the token endpoint, revocation (RFC 7009)
//! and server metadata (RFC 8414).
//!
//! Requests are JSON (as Commerce Layer's own clients send them, also labelled
//! `application/vnd.api+json`) or form-encoded (RFC 6749); a client authenticates with its
//! id and secret in the body or with HTTP Basic, never both. Errors are Commerce Layer's
//! (`{"errors":[{code, title, detail, status}]}`, the OAuth error name as `title`) and carry
//! RFC 6749's `error` and `error_description` too, so any OAuth client understands them.

use std::collections::HashMap;

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    CommerceLayer,
    grants::Grant,
    model::{PROVISIONING_SCOPE, Scope, USER_KIND},
    params::{Params, short},
    verify::{AccessClaims, ApplicationClaim, LiveClient, OrganizationClaim, UserClaim},
};
use crate::kernel::limits::client_key;
use crate::{
    crypto::{jwt::decode_header, secret::random_bytes},
    kernel::{
        CoreError,
        audit::{self, Event},
        http::error::{ApiError, Error, Surface},
        issuer::SERVER,
        now_ms,
    },
};

/// The Auth API's error envelope.
pub struct OAuthSurface;

impl Surface for OAuthSurface {
    const PREFIXES: &'static [&'static str] = &["/oauth/"];
    type Envelope = OAuthError;

    fn render(e: &ApiError) -> OAuthError {
        let status = e.status.as_u16();
        let error = if e.code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            && OAUTH_ERRORS.contains(&e.code)
        {
            e.code
        } else if status >= 500 {
            "server_error"
        } else if status == 401 {
            "invalid_client"
        } else {
            "invalid_request"
        };
        let code = match status {
            401 => "UNAUTHORIZED",
            403 => "FORBIDDEN",
            404 => "NOT_FOUND",
            405 => "METHOD_NOT_ALLOWED",
            413 => "PAYLOAD_TOO_LARGE",
            429 => "TOO_MANY_REQUESTS",
            s if s >= 500 => "INTERNAL_SERVER_ERROR",
            _ => "BAD_REQUEST",
        };
        OAuthError {
            errors: vec![OAuthErrorItem {
                code,
                title: error,
                detail: e.message.clone(),
                status,
            }],
            error,
            error_description: e.message.clone(),
        }
    }
}

/// The Auth API's error envelope: Commerce Layer's `errors`, and RFC 6749's `error` and
/// `error_description`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OAuthError {
    errors: Vec<OAuthErrorItem>,
    /// RFC 6749's error code, e.g. `invalid_client`, `invalid_grant`.
    error: &'static str,
    error_description: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct OAuthErrorItem {
    code: &'static str,
    /// The RFC 6749 error code.
    title: &'static str,
    detail: String,
    /// The HTTP status, as a number.
    status: u16,
}

const OAUTH_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "unsupported_token_type",
];

type Result<T> = std::result::Result<T, Error<OAuthSurface>>;

pub(super) fn oauth_error(
    status: StatusCode,
    error: &'static str,
    detail: impl Into<String>,
) -> ApiError {
    ApiError::new(status, error, detail)
}

pub(super) fn invalid_request(detail: impl Into<String>) -> ApiError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", detail)
}

pub(super) fn invalid_grant(detail: impl Into<String>) -> ApiError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", detail)
}

pub(super) fn invalid_client() -> ApiError {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
    )
}

// --- the documented shape of the parameters (the endpoints read any body as `Params`) -------

/// The parameters of `POST /oauth/token`. Clients authenticate with `client_id` and
/// `client_secret` here or with HTTP Basic; unknown parameters (strings) are ignored.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(max_properties = 32)]
#[allow(dead_code)] // documentation only
struct OAuthTokenRequest {
    grant_type: GrantType,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    /// authorization_code: the code, the redirect URI it was issued for, the PKCE verifier.
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    /// refresh_token: the refresh token.
    refresh_token: Option<String>,
    #[serde(flatten)]
    other: HashMap<String, Option<String>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documentation only
enum GrantType {
    ClientCredentials,
    AuthorizationCode,
    RefreshToken,
}

/// The parameters of `POST /oauth/introspect` and `POST /oauth/revoke`: the token, and the
/// client's credentials here or with HTTP Basic (a management token may introspect too).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(max_properties = 32)]
#[allow(dead_code)] // documentation only
struct OAuthTokenParam {
    #[schema(min_length = 1)]
    token: String,
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    #[serde(flatten)]
    other: HashMap<String, Option<String>>,
}

/// An audit event made by an OAuth client (named `api_credential:{id}`).
pub(super) fn client_event<'a>(
    org: &'a str,
    client: &str,
    action: &'static str,
    target_type: &'static str,
    target_id: &str,
) -> Event<'a> {
    Event {
        organization_id: Some(org),
        actor: format!("api_credential:{client}"),
        action,
        target_type,
        target_id: Some(target_id.to_owned()),
        outcome: audit::Outcome::Success,
        request_id: None,
        ip: None,
        external_id: None,
        detail: None,
    }
}

/// The token endpoint's answer. A grant with an owner (`authorization_code`,
/// `refresh_token`) adds the rotated refresh token and the owner.
#[derive(utoipa::ToSchema)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
    /// Epoch seconds.
    created_at: i64,
    /// The next refresh token (authorization_code and refresh_token grants).
    #[schema(nullable = false)]
    refresh_token: Option<String>,
    /// The user or customer the token acts for.
    #[schema(nullable = false)]
    owner_id: Option<String>,
    #[schema(nullable = false)]
    owner_type: Option<String>,
}

impl TokenResponse {
    /// The answer of a grant with an owner, and its next refresh token.
    pub(super) fn with_grant(self, refresh: &SecretString, grant: &Grant) -> Self {
        Self {
            refresh_token: Some(refresh.expose_secret().to_owned()),
            owner_id: Some(grant.owner_id.clone()),
            owner_type: Some(grant.owner_type.clone()),
            ..self
        }
    }
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        use std::fmt::Write as _;
        // The access token is a compact JWT, base64url parts and dots: nothing in it needs
        // escaping, and at ~600 bytes it is most of the answer, so it is copied, not scanned.
        debug_assert!(
            self.access_token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        );
        let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut body = String::with_capacity(self.access_token.len() + 256);
        let _ = write!(
            body,
            r#"{{"access_token":"{}","token_type":"{}","expires_in":{},"scope":{},"created_at":{}"#,
            self.access_token,
            self.token_type,
            self.expires_in,
            quoted(&self.scope),
            self.created_at
        );
        for (name, value) in [
            ("refresh_token", &self.refresh_token),
            ("owner_id", &self.owner_id),
            ("owner_type", &self.owner_type),
        ] {
            if let Some(value) = value {
                let _ = write!(body, r#","{name}":{}"#, quoted(value));
            }
        }
        body.push('}');
        no_store(([(header::CONTENT_TYPE, "application/json")], body))
    }
}

/// `Cache-Control: no-store`, as RFC 6749 §5.1 asks of every answer that holds a token.
fn no_store(value: impl IntoResponse) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        value,
    )
        .into_response()
}

impl CommerceLayer {
    /// The client named by `client_id`, authenticated: a confidential presentation must
    /// match the stored secret; without a secret only a public client (a sales channel)
    /// passes. Failures count against the client id and the caller's address.
    pub(super) async fn authenticate_client(
        &self,
        params: &Params,
    ) -> std::result::Result<(std::sync::Arc<LiveClient>, bool), ApiError> {
        let (client_id, secret) = params.client()?;
        let client = self.live_client(&client_id).await?;
        let ok = match (&client, &secret) {
            (Some(c), Some(s)) => c.secret_matches(&self.kernel, s.expose_secret()),
            (Some(c), None) => !c.confidential,
            (None, _) => false,
        };
        match client {
            Some(c) if ok => Ok((c, secret.is_some())),
            _ => {
                self.kernel
                    .count_failure(&format!("cl_client:{}", short(&client_id)))?;
                if params.meta.ip.is_some() {
                    self.kernel.count_failure(&client_key(params.meta.ip))?;
                }
                Err(invalid_client())
            }
        }
    }

    /// Counts a token request of an authenticated client against `token_rate_limit`: per
    /// client when it proved its secret, per client and address when it did not (a public
    /// client's id is public, so an anonymous caller must not spend everyone's allowance).
    pub(super) fn charge_token_quota(
        &self,
        client: &LiveClient,
        with_secret: bool,
        params: &Params,
    ) -> std::result::Result<(), ApiError> {
        let Some(limit) = &self.token_limit else {
            return Ok(());
        };
        let key = if with_secret {
            client.id.clone()
        } else {
            format!("{}@{}", client.id, client_key(params.meta.ip))
        };
        limit.check_key(&key).map_err(|not_until| {
            use governor::clock::Clock as _;
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            let mut e = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_request",
                "Too many token requests for this client; retry later",
            );
            e.retry_after = Some(wait.as_secs().max(1));
            e
        })
    }

    /// `grant_type=client_credentials`: a token for the client itself.
    async fn client_credentials(&self, params: &Params) -> std::result::Result<Response, ApiError> {
        let (client, confidential) = self.authenticate_client(params).await?;
        self.charge_token_quota(&client, confidential, params)?;
        // A client asks for at most what it was given: its markets, or (a provisioning
        // client) `provisioning-api`.
        let allowed = Scope::parse(&client.scopes)
            .map_err(|_| CoreError::Internal(format!("stored scopes of {}", client.id)))?;
        let scope = match params.get("scope") {
            None => allowed,
            Some(raw) => {
                let scope = Scope::parse(raw)
                    .map_err(|e| oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", e.0))?;
                if !scope.within(&allowed) {
                    return Err(oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        "The requested scope is not granted to this client",
                    ));
                }
                scope
            }
        };
        let token = self
            .issue_access_token(&client, confidential, &scope, &params.headers, None)
            .await?;
        Ok(token.into_response())
    }

    /// Signs an access token for `client` with its organization's algorithm; `grant` when
    /// it comes from an authorization code (its owner, and the grant that can revoke it).
    pub(super) async fn issue_access_token(
        &self,
        client: &LiveClient,
        confidential: bool,
        scope: &Scope,
        headers: &HeaderMap,
        grant: Option<&Grant>,
    ) -> std::result::Result<TokenResponse, ApiError> {
        let now = now_ms() / 1000;
        // One draw of randomness: 16 bytes name the token (`jti`), 8 make `rand`.
        let random = random_bytes::<24>()?;
        let (id, rand) = random.split_at(16);
        let rand = u64::from_le_bytes(rand.try_into().unwrap_or_default()) >> 11;
        let claims = AccessClaims {
            // Provisioning tokens name their client as `user` and no organization.
            organization: (client.kind != USER_KIND).then(|| OrganizationClaim {
                id: client.organization_id.clone(),
                slug: client.organization_slug.clone(),
                enterprise: false,
                region: "eu-west-1".to_owned(),
            }),
            user: (client.kind == USER_KIND).then(|| UserClaim {
                id: client.id.clone(),
            }),
            application: ApplicationClaim {
                id: client.id.clone(),
                kind: client.kind.clone(),
                public: !client.confidential,
                client_id: client.client_id.clone(),
                confidential,
            },
            scope: scope.to_string(),
            test: client.test && client.kind != USER_KIND,
            iat: now,
            exp: now + client.expires_in,
            iss: self.public_url.base(headers),
            // 53 random bits as a float in [0, 1), as Commerce Layer's `rand`.
            #[allow(clippy::cast_precision_loss)]
            rand: rand as f64 / (1u64 << 53) as f64,
            jti: URL_SAFE_NO_PAD.encode(id),
            owner: grant.map(Grant::owner_claim),
            sid: grant.map(|g| g.id.clone()),
        };
        let access_token = self.kernel.issue(SERVER, client.algorithm, &claims).await?;
        Ok(TokenResponse {
            access_token,
            token_type: "bearer",
            expires_in: client.expires_in,
            scope: claims.scope,
            created_at: now,
            refresh_token: None,
            owner_id: None,
            owner_type: None,
        })
    }
}

/// The token endpoint: `client_credentials`, `authorization_code` (with PKCE) and
/// `refresh_token` (rotated on every use).
#[utoipa::path(post, path = "/oauth/token", tag = "commercelayer",
    request_body(content(
        (OAuthTokenRequest = "application/json"),
        (OAuthTokenRequest = "application/x-www-form-urlencoded"))),
    responses((status = 200, body = TokenResponse), (status = 400), (status = 401)))]
async fn token(State(s): State<CommerceLayer>, params: Params) -> Result<Response> {
    let Some(grant) = params.get("grant_type") else {
        return Err(invalid_request("grant_type is required").into());
    };
    // The grants that write are boxed: their store futures would otherwise be part of (and
    // be copied with) every client_credentials request's future, which writes nothing.
    match grant {
        "client_credentials" => Ok(s.client_credentials(&params).await?),
        "authorization_code" => Ok(Box::pin(s.authorization_code(&params)).await?),
        "refresh_token" => Ok(Box::pin(s.refresh_token(&params)).await?),
        _ => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("{} is not a supported grant type", short(grant)),
        )
        .into()),
    }
}

impl CommerceLayer {
    /// RFC 7009: the client that a token was issued to revokes it. A token that is not
    /// valid any more (expired, unknown, malformed) needs nothing and answers `{}` too.
    async fn revoke(&self, params: &Params) -> std::result::Result<Response, ApiError> {
        if params.get("client_id").is_none() && params.basic.is_none() {
            return Err(oauth_error(
                StatusCode::FORBIDDEN,
                "unauthorized_client",
                "You are not authorized to revoke this token",
            ));
        }
        let (client, with_secret) = self.authenticate_client(params).await?;
        let Some(token) = params.get("token") else {
            return Err(invalid_request("token is required"));
        };
        // Tokens with no owner (client_credentials) are revoked with the client's secret.
        if !with_secret {
            return Err(invalid_client());
        }
        let Some(kid) = decode_header(token).and_then(|h| h.kid) else {
            // Not a JWT: a refresh token, which revokes its grant.
            self.revoke_refresh_token(&client, token).await?;
            return Ok(no_store(axum::Json(json!({}))));
        };
        let Ok(issued) = self.kernel.verify_issued(token, &kid).await? else {
            return Ok(no_store(axum::Json(json!({}))));
        };
        if issued.organization_id != SERVER {
            return Ok(no_store(axum::Json(json!({}))));
        }
        let Ok(claims) = serde_json::from_value::<AccessClaims>(issued.claims) else {
            return Ok(no_store(axum::Json(json!({}))));
        };
        if claims.application.id != client.id {
            return Err(oauth_error(
                StatusCode::FORBIDDEN,
                "unauthorized_client",
                "You are not authorized to revoke this token",
            ));
        }
        let org = client.organization_id.clone();
        self.kernel
            .write(async |tx| {
                tx.insert_cl_revoked_token(&claims.jti, &org, claims.exp.saturating_mul(1000))
                    .await?;
                tx.revoke(&self.tokens, [claims.jti.clone()]);
                let event = Event {
                    request_id: params.meta.request_id.as_deref(),
                    ip: params.meta.ip,
                    ..client_event(
                        &org,
                        &client.id,
                        "access_token.revoke",
                        "access_token",
                        &claims.jti,
                    )
                };
                audit::append(tx, event).await?;
                Ok(())
            })
            .await?;
        Ok(no_store(axum::Json(json!({}))))
    }
}

impl CommerceLayer {
    /// RFC 7662: whether a token is active, and what it is. A management token of the
    /// organization, or a confidential client of it, may ask; a token of another
    /// organization is simply not active to them.
    async fn introspect(&self, params: &Params) -> std::result::Result<Response, ApiError> {
        // A management token sees its organization's tokens; a client, its own.
        let (org, only_client) = match &params.bearer {
            Some(token) => {
                let principal = self.kernel.authenticate(Some(token), &params.meta).await?;
                let ctx = crate::kernel::Ctx::new(principal, params.meta.clone());
                let org = super::service::organization(&ctx, super::service::Access::Read)?;
                (org.to_owned(), None)
            }
            None => {
                let (client, with_secret) = self.authenticate_client(params).await?;
                if !with_secret || !client.confidential {
                    return Err(invalid_client());
                }
                (client.organization_id.clone(), Some(client.id.clone()))
            }
        };
        let visible = |token_org: &str, token_client: &str| {
            token_org == org && only_client.as_deref().is_none_or(|c| c == token_client)
        };
        let Some(token) = params.get("token") else {
            return Err(invalid_request("token is required"));
        };
        let inactive = || no_store(axum::Json(json!({ "active": false })));
        let Some(kid) = decode_header(token).and_then(|h| h.kid) else {
            return Ok(match self.refresh_token_info(token).await? {
                Some((info, token_org, token_client)) if visible(&token_org, &token_client) => {
                    no_store(axum::Json(info))
                }
                _ => inactive(),
            });
        };
        let Ok(issued) = self.kernel.verify_issued(token, &kid).await? else {
            return Ok(inactive());
        };
        if issued.organization_id != SERVER {
            return Ok(inactive());
        }
        let Ok((claims, client)) = self.check_token(&issued).await? else {
            return Ok(inactive());
        };
        if !visible(&client.organization_id, &client.id) {
            return Ok(inactive());
        }
        let mut info = json!({
            "active": true,
            "token_type": "Bearer",
            "scope": claims.scope,
            "client_id": client.client_id,
            "exp": claims.exp,
            "iat": claims.iat,
            "iss": claims.iss,
            "jti": claims.jti,
            "organization_id": client.organization_id,
            "application_id": client.id,
            "application_kind": client.kind,
            "test": claims.test,
        });
        if let Some(owner) = &claims.owner {
            info["sub"] = json!(owner.id);
            info["owner_type"] = json!(owner.kind);
        }
        Ok(no_store(axum::Json(info)))
    }
}

/// Introspects a token (RFC 7662): an access token or a refresh token. Ask with a
/// management token (`Authorization: Bearer lk_…`) or as a confidential client.
#[utoipa::path(post, path = "/oauth/introspect", tag = "commercelayer",
    request_body(content(
        (OAuthTokenParam = "application/json"),
        (OAuthTokenParam = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "{active, …}"), (status = 401)))]
async fn introspect(State(s): State<CommerceLayer>, params: Params) -> Result<Response> {
    Ok(s.introspect(&params).await?)
}

/// Revokes an access token (RFC 7009; Commerce Layer's body `{client_id, client_secret?,
/// token}`).
#[utoipa::path(post, path = "/oauth/revoke", tag = "commercelayer",
    request_body(content(
        (OAuthTokenParam = "application/json"),
        (OAuthTokenParam = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "{}"), (status = 401), (status = 403)))]
async fn revoke(State(s): State<CommerceLayer>, params: Params) -> Result<Response> {
    Ok(s.revoke(&params).await?)
}

/// The authorization server's metadata (RFC 8414).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "commercelayer",
    responses((status = 200, description = "Authorization server metadata")))]
async fn metadata(State(s): State<CommerceLayer>, headers: HeaderMap) -> Response {
    let issuer = s.public_url.base(&headers);
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["market:all", PROVISIONING_SCOPE],
    }))
    .into_response()
}

/// RFC 6749 §5.2: a 401 names the authentication scheme the client should use.
pub(super) async fn www_authenticate(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Basic realm=\"latchkey\""),
        );
    }
    response
}

pub fn routes() -> OpenApiRouter<CommerceLayer> {
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(revoke))
        .routes(routes!(introspect))
        .routes(routes!(metadata))
}
