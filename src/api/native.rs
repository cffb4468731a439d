//! Latchkey's own API: organizations, management tokens and the audit log.
//! Errors: `{"error":{"code","message","details":[{"field","message"}]}}`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    error::{ApiError, Error, Surface},
    extract::{Auth, Json, Query},
};
use crate::core::{
    audit::{AuditEventView, AuditQuery},
    authn::Verification,
    orgs::{NewOrganization, OrganizationView},
    sunshine::{CreatedKey, KeyInput, KeyView, Owner},
    tokens::{CreatedToken, NewToken, TokenView},
};

pub struct Native;

impl Surface for Native {
    fn render(e: &ApiError) -> serde_json::Value {
        let details = match &e.field {
            Some(field) => json!([{ "field": field, "message": e.message }]),
            None => json!([]),
        };
        json!({ "error": { "code": e.code, "message": e.message, "details": details } })
    }
}

type Result<T> = std::result::Result<T, Error<Native>>;
type Caller = Auth<Native>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_organization, list_organizations))
        .routes(routes!(get_organization))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(delete_token))
        .routes(routes!(list_audit_events))
        .routes(routes!(authenticate))
        .routes(routes!(create_account_key, list_account_keys))
        .routes(routes!(get_account_key, delete_account_key))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Organizations {
    organizations: Vec<OrganizationView>,
}

/// Create an organization (server admin).
#[utoipa::path(post, path = "/v1/organizations", tag = "native", request_body = NewOrganization,
    responses((status = 201, body = OrganizationView)), security(("bearer" = [])))]
async fn create_organization(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<Native, NewOrganization>,
) -> Result<(StatusCode, axum::Json<OrganizationView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.latchkey.create_organization(&ctx, input).await?),
    ))
}

/// List organizations (all for a server admin, its own for an organization token).
#[utoipa::path(get, path = "/v1/organizations", tag = "native",
    responses((status = 200, body = Organizations)), security(("bearer" = [])))]
async fn list_organizations(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
) -> Result<axum::Json<Organizations>> {
    Ok(axum::Json(Organizations {
        organizations: s.latchkey.list_organizations(&ctx).await?,
    }))
}

/// Retrieve an organization.
#[utoipa::path(get, path = "/v1/organizations/{id}", tag = "native",
    params(("id" = String, Path)), responses((status = 200, body = OrganizationView)), security(("bearer" = [])))]
async fn get_organization(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<OrganizationView>> {
    Ok(axum::Json(s.latchkey.organization(&ctx, &id).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Tokens {
    tokens: Vec<TokenView>,
}

#[derive(Deserialize, utoipa::IntoParams)]
struct TokenQuery {
    /// For a server admin: whose tokens to list (omit for the server-admin tokens).
    organization_id: Option<String>,
}

/// Create a management token; the token appears in this response only.
#[utoipa::path(post, path = "/v1/tokens", tag = "native", request_body = NewToken,
    responses((status = 201, body = CreatedToken)), security(("bearer" = [])))]
async fn create_token(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<Native, NewToken>,
) -> Result<impl IntoResponse> {
    let created = s.latchkey.create_token(&ctx, input).await?;
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
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Query(q, ..): Query<Native, TokenQuery>,
) -> Result<axum::Json<Tokens>> {
    Ok(axum::Json(Tokens {
        tokens: s
            .latchkey
            .list_tokens(&ctx, q.organization_id.as_deref())
            .await?,
    }))
}

/// Delete (revoke) a management token; it fails from the next request on.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "native",
    params(("id" = String, Path)), responses((status = 204)), security(("bearer" = [])))]
async fn delete_token(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    s.latchkey.delete_token(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
struct AuditParams {
    /// Required for a server admin; an organization admin sees its own organization.
    organization_id: Option<String>,
    action: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    /// The `next_cursor` of the previous page.
    after: Option<String>,
    /// 1..=200, default 50.
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
    State(s): State<AppState>,
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
    let (audit_events, next_cursor) = s.latchkey.audit_events(&ctx, query).await?;
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
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<Native, AuthenticateRequest>,
) -> Result<axum::Json<Verification>> {
    Ok(axum::Json(
        s.latchkey
            .verify_credential(&ctx, &input.authorization)
            .await?,
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
struct AccountKeys {
    keys: Vec<KeyView>,
}

/// Create a Sunshine account key (`act_…`, organization admins); the secret is in this
/// response only. It authenticates every `/v2` call of the organization.
#[utoipa::path(post, path = "/v1/account_keys", tag = "native", request_body = KeyInput,
    responses((status = 201, body = CreatedKey)), security(("bearer" = [])))]
async fn create_account_key(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<Native, KeyInput>,
) -> Result<impl IntoResponse> {
    let key = s.latchkey.create_key(&ctx, Owner::Account, input).await?;
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({ "key": key })),
    ))
}

/// List the organization's account keys (never their secrets).
#[utoipa::path(get, path = "/v1/account_keys", tag = "native",
    responses((status = 200, body = AccountKeys)), security(("bearer" = [])))]
async fn list_account_keys(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
) -> Result<axum::Json<AccountKeys>> {
    Ok(axum::Json(AccountKeys {
        keys: s.latchkey.keys(&ctx, Owner::Account).await?,
    }))
}

/// Read one account key (never its secret).
#[utoipa::path(get, path = "/v1/account_keys/{id}", tag = "native",
    params(("id" = String, Path)), responses((status = 200, body = KeyView)), security(("bearer" = [])))]
async fn get_account_key(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>> {
    let key = s.latchkey.key(&ctx, Owner::Account, &id).await?;
    Ok(axum::Json(json!({ "key": key })))
}

/// Delete an account key; it stops authenticating at once.
#[utoipa::path(delete, path = "/v1/account_keys/{id}", tag = "native",
    params(("id" = String, Path)), responses((status = 204)), security(("bearer" = [])))]
async fn delete_account_key(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    s.latchkey.delete_key(&ctx, Owner::Account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
