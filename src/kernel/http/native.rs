//! Latchkey's own API: organizations, management tokens, the audit log, credential
//! verification (`/v1/authenticate`, through the verifier registry) and organizations' JWK
//! Sets. Errors: `{"error":{"code","message","details":[{"field","message"}]}}`.

use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{ApiError, Error, Surface},
    extract::{Auth, Json, Query},
};
use crate::kernel::{
    CoreError, Kernel,
    audit::{AuditEventView, AuditQuery},
    issuer,
    orgs::{NewOrganization, OrganizationView},
    tokens::{CreatedToken, NewToken, TokenView},
    verify::{Registry, Verification},
};

/// The state of the native routes: the kernel and the families' verifiers.
#[derive(Clone)]
pub struct NativeState {
    pub kernel: Kernel,
    pub registry: Registry,
}

impl super::extract::HasKernel for NativeState {
    fn kernel(&self) -> &Kernel {
        &self.kernel
    }
}

pub struct Native;

impl Surface for Native {
    const PREFIXES: &'static [&'static str] = &["/"];
    type Envelope = NativeError;

    fn render(e: &ApiError) -> NativeError {
        NativeError {
            error: NativeErrorBody {
                code: e.code,
                message: e.message.clone(),
                details: e
                    .field
                    .iter()
                    .map(|field| FieldError {
                        field: field.clone(),
                        message: e.message.clone(),
                    })
                    .collect(),
            },
        }
    }
}

/// Latchkey's error envelope.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NativeError {
    error: NativeErrorBody,
}

#[derive(Serialize, utoipa::ToSchema)]
struct NativeErrorBody {
    /// A stable machine-readable code in snake_case.
    code: &'static str,
    message: String,
    /// The request field at fault, when there is one.
    details: Vec<FieldError>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct FieldError {
    field: String,
    message: String,
}

type Result<T> = std::result::Result<T, Error<Native>>;
type Caller = Auth<Native>;

/// Every native route, with its state.
pub fn router(state: NativeState) -> axum::Router {
    routes().split_for_parts().0.with_state(state)
}

pub fn routes() -> OpenApiRouter<NativeState> {
    OpenApiRouter::new()
        .routes(routes!(create_organization, list_organizations))
        .routes(routes!(get_organization))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(delete_token))
        .routes(routes!(list_audit_events))
        .routes(routes!(authenticate))
        .routes(routes!(well_known_jwks))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Organizations {
    organizations: Vec<OrganizationView>,
}

/// Create an organization (server admin).
#[utoipa::path(post, path = "/v1/organizations", tag = "native", request_body = NewOrganization,
    responses((status = 201, body = OrganizationView)), security(("bearer" = [])))]
async fn create_organization(
    State(s): State<NativeState>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<Native, NewOrganization>,
) -> Result<(StatusCode, axum::Json<OrganizationView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.kernel.create_organization(&ctx, input).await?),
    ))
}

/// List organizations (all for a server admin, its own for an organization token).
#[utoipa::path(get, path = "/v1/organizations", tag = "native",
    responses((status = 200, body = Organizations)), security(("bearer" = [])))]
async fn list_organizations(
    State(s): State<NativeState>,
    Auth(ctx, ..): Caller,
) -> Result<axum::Json<Organizations>> {
    Ok(axum::Json(Organizations {
        organizations: s.kernel.list_organizations(&ctx).await?,
    }))
}

/// Retrieve an organization.
#[utoipa::path(get, path = "/v1/organizations/{id}", tag = "native",
    params(("id" = String, Path)), responses((status = 200, body = OrganizationView)), security(("bearer" = [])))]
async fn get_organization(
    State(s): State<NativeState>,
    Auth(ctx, ..): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<OrganizationView>> {
    Ok(axum::Json(s.kernel.organization(&ctx, &id).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Tokens {
    tokens: Vec<TokenView>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TokenQuery {
    /// For a server admin: whose tokens to list (omit for the server-admin tokens).
    organization_id: Option<String>,
}

/// Create a management token; the token appears in this response only.
#[utoipa::path(post, path = "/v1/tokens", tag = "native", request_body = NewToken,
    responses((status = 201, body = CreatedToken)), security(("bearer" = [])))]
async fn create_token(
    State(s): State<NativeState>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<Native, NewToken>,
) -> Result<impl IntoResponse> {
    let created = s.kernel.create_token(&ctx, input).await?;
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(created),
    ))
}

/// List management tokens (never the tokens themselves).
#[utoipa::path(get, path = "/v1/tokens", tag = "native", params(TokenQuery),
    responses((status = 200, body = Tokens)), security(("bearer" = [])))]
async fn list_tokens(
    State(s): State<NativeState>,
    Auth(ctx, ..): Caller,
    Query(q, ..): Query<Native, TokenQuery>,
) -> Result<axum::Json<Tokens>> {
    Ok(axum::Json(Tokens {
        tokens: s
            .kernel
            .list_tokens(&ctx, q.organization_id.as_deref())
            .await?,
    }))
}

/// Delete (revoke) a management token; it fails from the next request on.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "native",
    params(("id" = String, Path)), responses((status = 204)), security(("bearer" = [])))]
async fn delete_token(
    State(s): State<NativeState>,
    Auth(ctx, ..): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    s.kernel.delete_token(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// Required for a server admin; an organization admin sees its own organization.
    organization_id: Option<String>,
    action: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    /// The `next_cursor` of the previous page.
    after: Option<String>,
    /// 1..=200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct AuditEvents {
    audit_events: Vec<AuditEventView>,
    /// Pass as `after` for the next (older) page; null on the last page.
    next_cursor: Option<String>,
}

/// List audit events, newest first.
#[utoipa::path(get, path = "/v1/audit_events", tag = "native", params(AuditParams),
    responses((status = 200, body = AuditEvents)), security(("bearer" = [])))]
async fn list_audit_events(
    State(s): State<NativeState>,
    Auth(ctx, ..): Caller,
    Query(q, ..): Query<Native, AuditParams>,
) -> Result<axum::Json<AuditEvents>> {
    let query = AuditQuery {
        organization_id: q.organization_id,
        action: q.action,
        target_type: q.target_type,
        target_id: q.target_id,
        after: q.after,
        limit: q.limit,
    };
    let (audit_events, next_cursor) = s.kernel.audit_events(&ctx, query).await?;
    Ok(axum::Json(AuditEvents {
        audit_events,
        next_cursor,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct AuthenticateRequest {
    /// The `Authorization` header value the platform received, or a bare token.
    authorization: String,
}

/// Verify a credential Latchkey issued (the hot path). Not valid is a 200 with a reason.
#[utoipa::path(post, path = "/v1/authenticate", tag = "native", request_body = AuthenticateRequest,
    responses((status = 200, body = Verification)), security(("bearer" = [])))]
async fn authenticate(
    State(s): State<NativeState>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<Native, AuthenticateRequest>,
) -> Result<Response> {
    let verdict = s
        .registry
        .verify(&s.kernel, &ctx, &input.authorization)
        .await?;
    // Written once into a buffer of its size (axum's `Json` starts at 128 bytes and grows).
    let mut body = Vec::with_capacity(256);
    serde_json::to_writer(&mut body, &verdict).map_err(|e| CoreError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// A JWK Set, cacheable by anyone for five minutes.
pub fn jwks_response(keys: &crate::crypto::jwt::JwkSet) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(keys),
    )
        .into_response()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct JwksQuery {
    /// An organization id: that organization's keys. Without it, the server's own keys
    /// (those of Commerce Layer access tokens).
    organization: Option<String>,
}

/// A public JWK Set: the server's keys, or with `organization`, that organization's keys.
/// Every token Latchkey issues verifies against one of them. Reading a set never makes a key.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "native", params(JwksQuery),
    responses((status = 200, description = "JWK Set")))]
async fn well_known_jwks(
    State(s): State<NativeState>,
    Query(q, ..): Query<Native, JwksQuery>,
) -> Result<Response> {
    let Some(org) = q.organization else {
        return Ok(jwks_response(&s.kernel.jwks(issuer::SERVER).await?));
    };
    if !org.is_empty() && s.kernel.organization_exists(&org).await? {
        Ok(jwks_response(&s.kernel.jwks(&org).await?))
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "organization not found").into())
    }
}
