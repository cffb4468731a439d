//! Who calls the Provisioning API: a management token, or an access token with scope
//! `provisioning-api` issued to a provisioning client (an api credential of kind `user`,
//! made by an organization admin with `POST /v1/provisioning_clients`), which acts with the
//! role it was given. And `GET /api/user`: who the bearer is.

use axum::{
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    CommerceLayer,
    jsonapi::{CommerceLayerSurface, Result},
    model::{PROVISIONING_SCOPE, USER_KIND, default_expires_in},
    service::{Access, organization},
    store::ApiCredentialRow,
};
use crate::kernel::limits::client_key;
use crate::{
    crypto::{jwt::decode_header, secret::random_base62},
    kernel::{
        CoreError, Ctx, Principal, PrincipalKind, Role,
        audit::{self, Event},
        http::{
            error::{ApiError, Error},
            extract::{Auth, Json, bearer, request_meta},
            native::Native,
        },
        iso8601,
        issuer::SERVER,
        now_ms,
        types::Name,
    },
};

/// The caller of a Provisioning API route.
pub struct Caller(pub Ctx);

fn invalid_token() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "INVALID_TOKEN",
        "The access token you provided is invalid.",
    )
}

impl CommerceLayer {
    /// The principal of a provisioning token, if it is one and still valid.
    async fn provisioning_principal(
        &self,
        token: &str,
    ) -> std::result::Result<Principal, ApiError> {
        let Some(kid) = decode_header(token).and_then(|h| h.kid) else {
            return Err(invalid_token());
        };
        let Ok(issued) = self.kernel.verify_issued(token, &kid).await? else {
            return Err(invalid_token());
        };
        if issued.organization_id != SERVER {
            return Err(invalid_token());
        }
        let Ok((claims, client)) = self.check_token(&issued).await? else {
            return Err(invalid_token());
        };
        let role = match client.access_role.as_deref() {
            Some("admin") => Role::Admin,
            Some("editor") => Role::Editor,
            Some("viewer") => Role::Viewer,
            _ => return Err(invalid_token()),
        };
        if client.kind != USER_KIND || claims.scope != PROVISIONING_SCOPE {
            return Err(invalid_token());
        }
        Ok(Principal {
            id: client.id.clone(),
            kind: PrincipalKind::ApiKey,
            organization_id: Some(client.organization_id.clone()),
            role,
            team_id: None,
        })
    }
}

impl FromRequestParts<CommerceLayer> for Caller {
    type Rejection = Error<CommerceLayerSurface>;

    async fn from_request_parts(parts: &mut Parts, s: &CommerceLayer) -> Result<Self> {
        let meta = request_meta(parts);
        let token = bearer(parts);
        // A JWT is a provisioning token; anything else is for the management-token check
        // (which counts its own failures).
        let principal = match token {
            Some(t) if t.contains('.') => match s.provisioning_principal(t).await {
                Ok(principal) => principal,
                Err(e) => {
                    if meta.ip.is_some() {
                        s.kernel.count_failure(&client_key(meta.ip))?;
                    }
                    return Err(e.into());
                }
            },
            _ => s.kernel.authenticate(token, &meta).await?,
        };
        Ok(Self(Ctx::new(principal, meta)))
    }
}

/// Who the bearer is: a provisioning client, or a management token.
#[utoipa::path(get, path = "/api/user", tag = "commercelayer",
    responses((status = 200, description = "The user object"), (status = 401)), security(("bearer" = [])))]
async fn user(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
) -> Result<Response> {
    let p = &ctx.principal;
    if p.team_id.is_some() {
        return Err(CoreError::forbidden(
            "a token bound to a team cannot use the Provisioning API; use an organization token",
        )
        .into());
    }
    let base = s.public_url.base(&headers);
    let kind = match p.kind {
        PrincipalKind::ApiKey => "provisioning_client",
        PrincipalKind::ManagementToken => "management_token",
    };
    Ok(axum::Json(json!({
        "data": {
            "id": p.id,
            "type": "user",
            "links": { "self": format!("{base}/api/user") },
            "attributes": {
                "email": null,
                "first_name": null,
                "last_name": null,
                "time_zone": "UTC",
                "otp_required_for_login": false,
                "created_at": null,
                "updated_at": null,
                "reference": null,
                "reference_origin": null,
                "metadata": { "kind": kind, "role": p.role.as_str(), "organization_id": p.organization_id },
            },
        }
    }))
    .into_response())
}

// --- provisioning clients (native) -----------------------------------------------------------

const PROVISIONING_ROLES: &[&str] = &["admin", "editor", "viewer"];

fn provisioning_role_schema() -> utoipa::openapi::Object {
    crate::kernel::types::string_enum_schema(PROVISIONING_ROLES, false)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewProvisioningClient {
    #[schema(schema_with = crate::kernel::types::name_schema)]
    name: String,
    /// What its tokens may do on the Provisioning API: `admin`, `editor` or `viewer`.
    #[schema(schema_with = provisioning_role_schema)]
    role: String,
}

/// (No `Debug`: the create response holds the secret.)
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProvisioningClient {
    id: String,
    name: String,
    role: String,
    client_id: String,
    /// Only in the response that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    created_at: String,
}

fn view(row: &ApiCredentialRow, secret: Option<&SecretString>) -> ProvisioningClient {
    ProvisioningClient {
        id: row.id.clone(),
        name: row.name.clone(),
        role: row.access_role.clone().unwrap_or_default(),
        client_id: row.client_id.clone(),
        client_secret: secret.map(|s| s.expose_secret().to_owned()),
        created_at: iso8601(row.created_at),
    }
}

type NativeResult<T> = std::result::Result<T, Error<Native>>;

/// Makes a provisioning client (organization admins): it gets `provisioning-api` tokens from
/// `/oauth/token` (client_credentials) that act on the Provisioning API with `role`.
#[utoipa::path(post, path = "/v1/provisioning_clients", tag = "commercelayer",
    request_body = NewProvisioningClient,
    responses((status = 201, body = ProvisioningClient), (status = 403), (status = 422)),
    security(("bearer" = [])))]
async fn create_client(
    State(s): State<CommerceLayer>,
    Auth(ctx, ..): Auth<Native>,
    Json(input, ..): Json<Native, NewProvisioningClient>,
) -> NativeResult<Response> {
    let org = organization(&ctx, Access::Admin)?;
    let name = Name::parse(&input.name)?;
    if !PROVISIONING_ROLES.contains(&input.role.as_str()) {
        return Err(CoreError::invalid("role", "role must be admin, editor or viewer").into());
    }
    let secret = SecretString::from(random_base62(43)?);
    let now = now_ms();
    let row = ApiCredentialRow {
        id: random_base62(super::service::ID_LEN)?,
        organization_id: org.to_owned(),
        role_id: None,
        name: name.as_str().to_owned(),
        kind: USER_KIND.to_owned(),
        confidential: true,
        redirect_uri: None,
        client_id: random_base62(super::service::CLIENT_ID_LEN)?,
        secret_hash: Some(s.kernel.hash_secret(secret.expose_secret()).to_vec()),
        scopes: PROVISIONING_SCOPE.to_owned(),
        expires_in: default_expires_in(USER_KIND),
        mode: "live".to_owned(),
        custom: false,
        access_role: Some(input.role),
        reference: None,
        reference_origin: None,
        metadata: None,
        created_at: now,
        updated_at: now,
    };
    s.kernel
        .write(async |tx| {
            tx.insert_cl_credential(&row).await?;
            let event = Event::by(
                &ctx,
                Some(org),
                "provisioning_client.create",
                "api_credential",
                &row.id,
            );
            audit::append(tx, event).await?;
            Ok(())
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(view(&row, Some(&secret))),
    )
        .into_response())
}

/// The organization's provisioning clients (organization admins).
#[utoipa::path(get, path = "/v1/provisioning_clients", tag = "commercelayer",
    responses((status = 200, body = Vec<ProvisioningClient>)), security(("bearer" = [])))]
async fn list_clients(
    State(s): State<CommerceLayer>,
    Auth(ctx, ..): Auth<Native>,
) -> NativeResult<axum::Json<Vec<ProvisioningClient>>> {
    let org = organization(&ctx, Access::Admin)?;
    let mut conn = s.kernel.store().conn().await?;
    let rows = conn.cl_provisioning_clients(org).await?;
    Ok(axum::Json(rows.iter().map(|r| view(r, None)).collect()))
}

/// Deletes a provisioning client: its tokens stop working at once here and within a second
/// on every node.
#[utoipa::path(delete, path = "/v1/provisioning_clients/{id}", tag = "commercelayer",
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
async fn delete_client(
    State(s): State<CommerceLayer>,
    Auth(ctx, ..): Auth<Native>,
    Path(id): Path<String>,
) -> NativeResult<StatusCode> {
    let org = organization(&ctx, Access::Admin)?;
    if !crate::kernel::types::ids::base62(&id, super::service::ID_LEN) {
        return Err(CoreError::not_found("provisioning client").into());
    }
    s.kernel
        .write(async |tx| {
            let Some(client_id) = tx.delete_cl_provisioning_client(org, &id).await? else {
                return Err(CoreError::not_found("provisioning client"));
            };
            tx.revoke(&s.clients, [client_id]);
            let event = Event::by(
                &ctx,
                Some(org),
                "provisioning_client.delete",
                "api_credential",
                &id,
            );
            audit::append(tx, event).await?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `/api/user` (JSON:API, behind the media-type rules).
pub fn api_routes() -> OpenApiRouter<CommerceLayer> {
    OpenApiRouter::new().routes(routes!(user))
}

/// The native routes that manage provisioning clients.
pub fn native_routes() -> OpenApiRouter<CommerceLayer> {
    OpenApiRouter::new()
        .routes(routes!(create_client, list_clients))
        .routes(routes!(delete_client))
}
