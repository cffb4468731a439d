//! The PingOne surface: environments, gateways and gateway credentials under
//! `/v1/environments/…` (also served without `/v1`, since PingOne's `{{apiPath}}` ends in
//! `/v1`), the token exchange at `/{envID}/as/token`, and JWK Sets.
//! Lists are HAL (`_links.self`, `_embedded.{name}`, `count`, `size`); errors are
//! `{id, code, message, details:[{code, target, message}]}` with PingOne's codes.

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    PingOne,
    model::{
        CreatedGatewayCredential, EnvironmentInput, EnvironmentView, GatewayCredentialView,
        GatewayInput, GatewayView,
    },
};
use crate::kernel::CoreError;
use crate::kernel::http::{
    error::{ApiError, Error, Surface},
    extract::{Auth, Json, Meta},
    native::jwks_response,
};

/// PingOne's error envelope.
pub struct PingOneSurface;

impl Surface for PingOneSurface {
    const PREFIXES: &'static [&'static str] = &["/v1/environments", "/environments"];
    type Envelope = PingOneError;

    fn render(e: &ApiError) -> PingOneError {
        let code = match (e.status.as_u16(), e.code) {
            (_, "limit_exceeded" | "invalid" | "conflict") => "INVALID_DATA",
            (400, _) if e.field.is_some() => "INVALID_DATA",
            (400 | 405 | 413, _) => "INVALID_REQUEST",
            (401 | 403, _) => "ACCESS_FAILED",
            (404, _) => "NOT_FOUND",
            (429, _) => "REQUEST_LIMITED",
            _ => "UNEXPECTED_ERROR",
        };
        let details = e.field.as_ref().map(|target| {
            let code = match e.code {
                "limit_exceeded" => "LIMIT_EXCEEDED",
                "conflict" => "UNIQUENESS_VIOLATION",
                _ if e.message.ends_with("is required") => "REQUIRED_VALUE",
                _ => "INVALID_VALUE",
            };
            vec![PingOneErrorDetail {
                code,
                target: target.clone(),
                message: e.message.clone(),
            }]
        });
        PingOneError {
            id: uuid::Uuid::new_v4().to_string(),
            code,
            message: e.message.clone(),
            details,
        }
    }

    /// PingOne answers invalid data and uniqueness violations with 400 (never 422 or 409).
    fn status(e: &ApiError) -> StatusCode {
        match e.status {
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT => StatusCode::BAD_REQUEST,
            other => other,
        }
    }
}

/// PingOne's error envelope.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PingOneError {
    id: String,
    /// e.g. `INVALID_DATA`, `ACCESS_FAILED`, `NOT_FOUND`, `REQUEST_LIMITED`.
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Vec<PingOneErrorDetail>>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct PingOneErrorDetail {
    /// e.g. `INVALID_VALUE`, `REQUIRED_VALUE`, `UNIQUENESS_VIOLATION`.
    code: &'static str,
    target: String,
    message: String,
}

type Result<T> = std::result::Result<T, Error<PingOneSurface>>;
type Caller = Auth<PingOneSurface>;

/// The documented PingOne routes: the management routes under `/v1` (PingOne's
/// `{{apiPath}}`) and the token endpoint.
pub fn routes() -> OpenApiRouter<PingOne> {
    OpenApiRouter::new()
        .nest("/v1", management())
        .routes(routes!(token))
}

/// Every PingOne route, with its state; the management routes also answer without `/v1`
/// (undocumented aliases).
pub fn router(state: PingOne) -> Router {
    routes()
        .split_for_parts()
        .0
        .merge(management().split_for_parts().0)
        .with_state(state)
}

/// The management routes, with paths relative to PingOne's `{{apiPath}}`.
fn management() -> OpenApiRouter<PingOne> {
    OpenApiRouter::new()
        .routes(routes!(create_environment, list_environments))
        .routes(routes!(get_environment, delete_environment))
        .routes(routes!(create_gateway, list_gateways))
        .routes(routes!(get_gateway, replace_gateway, delete_gateway))
        .routes(routes!(create_credential, list_credentials))
        .routes(routes!(get_credential, delete_credential))
        .routes(routes!(environment_jwks))
}

fn hal(
    s: &PingOne,
    headers: &HeaderMap,
    path: &str,
    name: &str,
    items: Vec<Value>,
) -> axum::Json<Value> {
    let count = items.len();
    axum::Json(json!({
        "_links": { "self": { "href": format!("{}{path}", s.public_url.base(headers)) } },
        "_embedded": { name: items },
        "count": count,
        "size": count,
    }))
}

fn to_values<T: serde::Serialize>(items: Vec<T>) -> Vec<Value> {
    items
        .into_iter()
        .filter_map(|i| serde_json::to_value(i).ok())
        .collect()
}

// --- environments ------------------------------------------------------------------------

/// Create an environment.
#[utoipa::path(post, path = "/environments", tag = "pingone", request_body = EnvironmentInput,
    responses((status = 201, body = EnvironmentView)), security(("bearer" = [])))]
async fn create_environment(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<PingOneSurface, EnvironmentInput>,
) -> Result<(StatusCode, axum::Json<EnvironmentView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.create_environment(&ctx, input).await?),
    ))
}

/// List environments (HAL).
#[utoipa::path(get, path = "/environments", tag = "pingone", responses((status = 200)), security(("bearer" = [])))]
async fn list_environments(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    headers: HeaderMap,
) -> Result<axum::Json<Value>> {
    let items = to_values(s.environments(&ctx).await?);
    Ok(hal(&s, &headers, "/v1/environments", "environments", items))
}

/// Read one environment.
#[utoipa::path(get, path = "/environments/{envID}", tag = "pingone", params(("envID" = String, Path)),
    responses((status = 200, body = EnvironmentView)), security(("bearer" = [])))]
async fn get_environment(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    Path(env): Path<String>,
) -> Result<axum::Json<EnvironmentView>> {
    Ok(axum::Json(s.environment(&ctx, &env).await?))
}

/// Delete an environment with its gateways (their credentials are revoked).
#[utoipa::path(delete, path = "/environments/{envID}", tag = "pingone", params(("envID" = String, Path)),
    responses((status = 204)), security(("bearer" = [])))]
async fn delete_environment(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    Path(env): Path<String>,
) -> Result<StatusCode> {
    s.delete_environment(&ctx, &env).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- gateways ----------------------------------------------------------------------------

/// Create a gateway.
#[utoipa::path(post, path = "/environments/{envID}/gateways", tag = "pingone", params(("envID" = String, Path)),
    request_body = GatewayInput, responses((status = 201, body = GatewayView)), security(("bearer" = [])))]
async fn create_gateway(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    Path(env): Path<String>,
    Json(input, ..): Json<PingOneSurface, GatewayInput>,
) -> Result<(StatusCode, axum::Json<GatewayView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.create_gateway(&ctx, &env, input).await?),
    ))
}

/// List the environment's gateways (HAL).
#[utoipa::path(get, path = "/environments/{envID}/gateways", tag = "pingone", params(("envID" = String, Path)),
    responses((status = 200)), security(("bearer" = [])))]
async fn list_gateways(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    headers: HeaderMap,
    Path(env): Path<String>,
) -> Result<axum::Json<Value>> {
    let items = to_values(s.gateways(&ctx, &env).await?);
    Ok(hal(
        &s,
        &headers,
        &format!("/v1/environments/{env}/gateways"),
        "gateways",
        items,
    ))
}

/// Read one gateway.
#[utoipa::path(get, path = "/environments/{envID}/gateways/{gatewayID}", tag = "pingone",
    params(("envID" = String, Path), ("gatewayID" = String, Path)),
    responses((status = 200, body = GatewayView)), security(("bearer" = [])))]
async fn get_gateway(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    Path((env, gateway)): Path<(String, String)>,
) -> Result<axum::Json<GatewayView>> {
    Ok(axum::Json(s.gateway(&ctx, &env, &gateway).await?))
}

/// Update a gateway (name, type and enabled required; the type cannot change).
#[utoipa::path(put, path = "/environments/{envID}/gateways/{gatewayID}", tag = "pingone",
    params(("envID" = String, Path), ("gatewayID" = String, Path)), request_body = GatewayInput,
    responses((status = 200, body = GatewayView)), security(("bearer" = [])))]
async fn replace_gateway(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    Path((env, gateway)): Path<(String, String)>,
    Json(input, ..): Json<PingOneSurface, GatewayInput>,
) -> Result<axum::Json<GatewayView>> {
    Ok(axum::Json(
        s.replace_gateway(&ctx, &env, &gateway, input).await?,
    ))
}

/// Delete a gateway; all its credentials are revoked at once.
#[utoipa::path(delete, path = "/environments/{envID}/gateways/{gatewayID}", tag = "pingone",
    params(("envID" = String, Path), ("gatewayID" = String, Path)),
    responses((status = 204)), security(("bearer" = [])))]
async fn delete_gateway(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    Path((env, gateway)): Path<(String, String)>,
) -> Result<StatusCode> {
    s.delete_gateway(&ctx, &env, &gateway).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- credentials -------------------------------------------------------------------------

/// Create a gateway credential (no body). The JWT is in this response only; at most five per gateway.
#[utoipa::path(post, path = "/environments/{envID}/gateways/{gatewayID}/credentials", tag = "pingone",
    params(("envID" = String, Path), ("gatewayID" = String, Path)),
    responses((status = 201, body = CreatedGatewayCredential)), security(("bearer" = [])))]
async fn create_credential(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    Path((env, gateway)): Path<(String, String)>,
) -> Result<impl IntoResponse> {
    let created = s.create_gateway_credential(&ctx, &env, &gateway).await?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(created),
    ))
}

/// List a gateway's credentials (HAL; never the JWTs).
#[utoipa::path(get, path = "/environments/{envID}/gateways/{gatewayID}/credentials", tag = "pingone",
    params(("envID" = String, Path), ("gatewayID" = String, Path)),
    responses((status = 200)), security(("bearer" = [])))]
async fn list_credentials(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    headers: HeaderMap,
    Path((env, gateway)): Path<(String, String)>,
) -> Result<axum::Json<Value>> {
    let items = to_values(s.gateway_credentials(&ctx, &env, &gateway).await?);
    let path = format!("/v1/environments/{env}/gateways/{gateway}/credentials");
    Ok(hal(&s, &headers, &path, "credentials", items))
}

/// Read one gateway credential.
#[utoipa::path(get, path = "/environments/{envID}/gateways/{gatewayID}/credentials/{credentialID}", tag = "pingone",
    params(("envID" = String, Path), ("gatewayID" = String, Path), ("credentialID" = String, Path)),
    responses((status = 200, body = GatewayCredentialView)), security(("bearer" = [])))]
async fn get_credential(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    Path((env, gateway, id)): Path<(String, String, String)>,
) -> Result<axum::Json<GatewayCredentialView>> {
    Ok(axum::Json(
        s.gateway_credential(&ctx, &env, &gateway, &id).await?,
    ))
}

/// Delete (revoke) a gateway credential: it fails verification from the next call on.
#[utoipa::path(delete, path = "/environments/{envID}/gateways/{gatewayID}/credentials/{credentialID}", tag = "pingone",
    params(("envID" = String, Path), ("gatewayID" = String, Path), ("credentialID" = String, Path)),
    responses((status = 204)), security(("bearer" = [])))]
async fn delete_credential(
    State(s): State<PingOne>,
    Auth(ctx, ..): Caller,
    Path((env, gateway, id)): Path<(String, String, String)>,
) -> Result<StatusCode> {
    s.delete_gateway_credential(&ctx, &env, &gateway, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- public: JWKS and the token exchange -------------------------------------------------

/// The signing keys of the environment's organization (a public JWK Set).
#[utoipa::path(get, path = "/environments/{envID}/jwks", tag = "pingone", params(("envID" = String, Path)),
    responses((status = 200, description = "JWK Set")))]
async fn environment_jwks(State(s): State<PingOne>, Path(env): Path<String>) -> Result<Response> {
    match s.environment_jwks(&env).await? {
        Some(keys) => Ok(jwks_response(&keys)),
        None => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "environment not found").into())
        }
    }
}

/// A token exchange request (RFC 8693): a gateway credential for an access token.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = GatewayTokenRequest)]
struct TokenRequest {
    #[schema(schema_with = token_exchange_grant, required = true)]
    grant_type: Option<String>,
    /// The gateway credential.
    #[schema(required = true, nullable = false)]
    subject_token: Option<String>,
    #[schema(schema_with = gateway_credential_token_type, required = true)]
    subject_token_type: Option<String>,
}

fn token_exchange_grant() -> utoipa::openapi::Object {
    crate::kernel::types::string_enum_schema(&[super::model::TOKEN_EXCHANGE_GRANT], false)
}

fn gateway_credential_token_type() -> utoipa::openapi::Object {
    crate::kernel::types::string_enum_schema(&[super::model::SUBJECT_TOKEN_TYPE], false)
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .finish_non_exhaustive()
    }
}

fn oauth_error(code: &'static str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({ "error": code })),
    )
        .into_response()
}

/// Exchange a gateway credential for a five-minute access token (RFC 8693 token exchange,
/// form-encoded; JSON is accepted too).
#[utoipa::path(post, path = "/{envID}/as/token", tag = "pingone", params(("envID" = String, Path)),
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "application/json"))),
    responses((status = 200, description = "{access_token, token_type, expires_in}"),
        (status = 400, description = "{error}: invalid_request, unsupported_grant_type, invalid_grant"),
        (status = 429, description = "{error: temporarily_unavailable}, with Retry-After: too many refused subject tokens from this address")))]
async fn token(
    State(s): State<PingOne>,
    Path(env): Path<String>,
    meta: Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let request: Option<TokenRequest> = if is_json {
        crate::kernel::http::extract::parse_json(&body).ok()
    } else {
        serde_urlencoded::from_bytes(&body).ok()
    };
    let Some(request) = request else {
        return oauth_error("invalid_request");
    };
    let exchanged = s
        .exchange_gateway_credential(
            &env,
            &meta.0,
            request.grant_type.as_deref(),
            request.subject_token.as_deref(),
            request.subject_token_type.as_deref(),
        )
        .await;
    match exchanged {
        Ok(Ok(token)) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            axum::Json(json!({
                "access_token": token.access_token,
                "token_type": "Bearer",
                "expires_in": token.expires_in,
            })),
        )
            .into_response(),
        Ok(Err(e)) => oauth_error(e.code()),
        Err(CoreError::RateLimited { retry_after }) => {
            let mut response = oauth_error("temporarily_unavailable");
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after.into());
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "token exchange failed");
            let mut response = oauth_error("server_error");
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}
