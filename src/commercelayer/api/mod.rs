//! The Provisioning API's routes (`/api/…`) and how each resource looks on the wire: its
//! attributes, relationships, and what lists may filter and sort on (from Commerce Layer's
//! resource definitions).

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    CommerceLayer,
    jsonapi::{Body, Object, Renderer, Result, created},
    objects::{
        credential_object, organization_object, permission_object, role_object, version_object,
    },
    provisioning::Caller,
    query::ListQuery,
    store::{ApiCredentialRow, RoleRow},
};

mod documents;
mod permissions;
mod resources;

pub(super) use documents::document_writes;
use resources::*;

impl CommerceLayer {
    fn renderer<'a>(&self, headers: &HeaderMap, q: &'a ListQuery) -> Renderer<'a> {
        Renderer {
            base: self.public_url.base(headers),
            fields: Some(&q.fields),
            include: &q.include,
        }
    }

    /// The host organizations' `domain` is made from.
    fn host(&self, headers: &HeaderMap) -> String {
        let base = self.public_url.base(headers);
        url::Url::parse(&base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".to_owned())
    }

    /// The resources `include` asks for, related to `objects`.
    async fn included(
        &self,
        org: &str,
        headers: &HeaderMap,
        q: &ListQuery,
        objects: &[Object],
    ) -> super::service::Result<Vec<Object>> {
        let mut out = Vec::new();
        for name in &q.include {
            let mut ids: Vec<&str> = objects
                .iter()
                .flat_map(|o| o.to_one.iter())
                .filter(|r| r.name == *name)
                .filter_map(|r| r.related.as_ref().map(|(_, id)| id.as_str()))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            match *name {
                "organization" if ids.contains(&org) => {
                    let row = self.organization_row(org).await?;
                    let host = self.host(headers);
                    out.extend(row.iter().map(|r| organization_object(r, &host)));
                }
                "role" => {
                    let rows = self.roles_by_id(org, &ids).await?;
                    out.extend(rows.iter().map(role_object));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Every Provisioning API route, with its state.
pub fn routes() -> OpenApiRouter<CommerceLayer> {
    OpenApiRouter::new()
        .routes(routes!(create_credential, list_credentials))
        .routes(routes!(
            get_credential,
            update_credential,
            delete_credential
        ))
        .routes(routes!(credential_organization))
        .routes(routes!(credential_role))
        .routes(routes!(create_role, list_roles))
        .routes(routes!(get_role, update_role))
        .routes(routes!(role_organization))
        .routes(routes!(role_credentials))
        .routes(routes!(create_organization, list_organizations))
        .routes(routes!(get_organization, update_organization))
        .routes(routes!(organization_credentials))
        .routes(routes!(organization_roles))
        .merge(permissions::routes())
}

// --- api credentials -------------------------------------------------------------------------

/// Create an api credential (seed 003). The client secret is in this response only.
#[utoipa::path(post, path = "/api/api_credentials", tag = "commercelayer",
    responses((status = 201, description = "The api credential, with its client_secret")),
    security(("bearer" = [])))]
async fn create_credential(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Body(input): Body,
) -> Result<Response> {
    let q = single_query(&uri, &CREDENTIALS)?;
    let made = s.create_credential(&ctx, &input).await?;
    let object = credential_object(&made.row, Some(&made.client_secret));
    let included = s
        .included(
            &made.row.organization_id,
            &headers,
            &q,
            std::slice::from_ref(&object),
        )
        .await?;
    Ok(created(s.renderer(&headers, &q).single(&object, &included)))
}

/// List api credentials (filters, sort, pagination, sparse fieldsets, include).
#[utoipa::path(get, path = "/api/api_credentials", tag = "commercelayer",
    responses((status = 200, description = "A page of api credentials")), security(("bearer" = [])))]
async fn list_credentials(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response> {
    let q = list_query(&uri, &CREDENTIALS)?;
    let (rows, count) = s.credentials(&ctx, &q).await?;
    credentials_page(&s, &ctx, &headers, &q, "/api/api_credentials", &rows, count).await
}

async fn credentials_page(
    s: &CommerceLayer,
    ctx: &crate::kernel::Ctx,
    headers: &HeaderMap,
    q: &ListQuery,
    path: &str,
    rows: &[ApiCredentialRow],
    count: i64,
) -> Result<Response> {
    let objects: Vec<Object> = rows.iter().map(|r| credential_object(r, None)).collect();
    let org = ctx.principal.org()?;
    let included = s.included(org, headers, q, &objects).await?;
    Ok(axum::Json(
        s.renderer(headers, q)
            .page(path, q, &objects, &included, count),
    )
    .into_response())
}

/// Retrieve an api credential.
#[utoipa::path(get, path = "/api/api_credentials/{id}", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn get_credential(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let q = single_query(&uri, &CREDENTIALS)?;
    let row = s.credential(&ctx, &id).await?;
    let object = credential_object(&row, None);
    let included = s
        .included(
            &row.organization_id,
            &headers,
            &q,
            std::slice::from_ref(&object),
        )
        .await?;
    Ok(axum::Json(s.renderer(&headers, &q).single(&object, &included)).into_response())
}

/// Update an api credential (`kind`, `mode`, `custom` and `organization` cannot change).
#[utoipa::path(patch, path = "/api/api_credentials/{id}", tag = "commercelayer",
    responses((status = 200), (status = 400), (status = 404), (status = 422)), security(("bearer" = [])))]
async fn update_credential(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Body(input): Body,
) -> Result<Response> {
    let q = single_query(&uri, &CREDENTIALS)?;
    let row = s.update_credential(&ctx, &id, &input).await?;
    let object = credential_object(&row, None);
    let included = s
        .included(
            &row.organization_id,
            &headers,
            &q,
            std::slice::from_ref(&object),
        )
        .await?;
    Ok(axum::Json(s.renderer(&headers, &q).single(&object, &included)).into_response())
}

/// Delete an api credential: its tokens stop verifying at once on this node and within a
/// second on every other.
#[utoipa::path(delete, path = "/api/api_credentials/{id}", tag = "commercelayer",
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
async fn delete_credential(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    s.delete_credential(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organization of an api credential.
#[utoipa::path(get, path = "/api/api_credentials/{id}/organization", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn credential_organization(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let q = single_query(&uri, &ORGANIZATIONS)?;
    let row = s.credential(&ctx, &id).await?;
    let org = s.organization(&ctx, &row.organization_id).await?;
    let object = organization_object(&org, &s.host(&headers));
    Ok(axum::Json(s.renderer(&headers, &q).single(&object, &[])).into_response())
}

/// The role of an api credential (`data: null` when it has none).
#[utoipa::path(get, path = "/api/api_credentials/{id}/role", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn credential_role(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let q = single_query(&uri, &ROLES)?;
    let row = s.credential(&ctx, &id).await?;
    let Some(role_id) = row.role_id else {
        return Ok(axum::Json(json!({ "data": null })).into_response());
    };
    let role = s.role(&ctx, &role_id).await?;
    let object = role_object(&role);
    let included = s
        .included(
            &role.organization_id,
            &headers,
            &q,
            std::slice::from_ref(&object),
        )
        .await?;
    Ok(axum::Json(s.renderer(&headers, &q).single(&object, &included)).into_response())
}

// --- roles -----------------------------------------------------------------------------------

/// Create a custom role (organization admins).
#[utoipa::path(post, path = "/api/roles", tag = "commercelayer",
    responses((status = 201)), security(("bearer" = [])))]
async fn create_role(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Body(input): Body,
) -> Result<Response> {
    let q = single_query(&uri, &ROLES)?;
    let row = s.create_role(&ctx, &input).await?;
    let object = role_object(&row);
    let included = s
        .included(
            &row.organization_id,
            &headers,
            &q,
            std::slice::from_ref(&object),
        )
        .await?;
    Ok(created(s.renderer(&headers, &q).single(&object, &included)))
}

/// List roles: every organization has `admin` and `read_only`, and its custom ones.
#[utoipa::path(get, path = "/api/roles", tag = "commercelayer",
    responses((status = 200)), security(("bearer" = [])))]
async fn list_roles(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response> {
    let q = list_query(&uri, &ROLES)?;
    let (rows, count) = s.roles(&ctx, &q).await?;
    roles_page(&s, &ctx, &headers, &q, "/api/roles", &rows, count).await
}

async fn roles_page(
    s: &CommerceLayer,
    ctx: &crate::kernel::Ctx,
    headers: &HeaderMap,
    q: &ListQuery,
    path: &str,
    rows: &[RoleRow],
    count: i64,
) -> Result<Response> {
    let objects: Vec<Object> = rows.iter().map(role_object).collect();
    let org = ctx.principal.org()?;
    let included = s.included(org, headers, q, &objects).await?;
    Ok(axum::Json(
        s.renderer(headers, q)
            .page(path, q, &objects, &included, count),
    )
    .into_response())
}

/// Retrieve a role.
#[utoipa::path(get, path = "/api/roles/{id}", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn get_role(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let q = single_query(&uri, &ROLES)?;
    let row = s.role(&ctx, &id).await?;
    let object = role_object(&row);
    let included = s
        .included(
            &row.organization_id,
            &headers,
            &q,
            std::slice::from_ref(&object),
        )
        .await?;
    Ok(axum::Json(s.renderer(&headers, &q).single(&object, &included)).into_response())
}

/// Update a role's name, reference or metadata (organization admins).
#[utoipa::path(patch, path = "/api/roles/{id}", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn update_role(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Body(input): Body,
) -> Result<Response> {
    let q = single_query(&uri, &ROLES)?;
    let row = s.update_role(&ctx, &id, &input).await?;
    let object = role_object(&row);
    let included = s
        .included(
            &row.organization_id,
            &headers,
            &q,
            std::slice::from_ref(&object),
        )
        .await?;
    Ok(axum::Json(s.renderer(&headers, &q).single(&object, &included)).into_response())
}

/// The organization of a role.
#[utoipa::path(get, path = "/api/roles/{id}/organization", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn role_organization(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let q = single_query(&uri, &ORGANIZATIONS)?;
    let role = s.role(&ctx, &id).await?;
    let org = s.organization(&ctx, &role.organization_id).await?;
    let object = organization_object(&org, &s.host(&headers));
    Ok(axum::Json(s.renderer(&headers, &q).single(&object, &[])).into_response())
}

/// The api credentials that have a role.
#[utoipa::path(get, path = "/api/roles/{id}/api_credentials", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn role_credentials(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let role = s.role(&ctx, &id).await?;
    let q = list_query(&uri, &CREDENTIALS)?.and_equal("role_id", &role.id);
    let (rows, count) = s.credentials(&ctx, &q).await?;
    let path = format!("/api/roles/{id}/api_credentials");
    credentials_page(&s, &ctx, &headers, &q, &path, &rows, count).await
}

// --- organizations ---------------------------------------------------------------------------

/// List organizations: a server admin sees all, an organization token its own.
#[utoipa::path(get, path = "/api/organizations", tag = "commercelayer",
    responses((status = 200)), security(("bearer" = [])))]
async fn list_organizations(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response> {
    let q = list_query(&uri, &ORGANIZATIONS)?;
    let (rows, count) = s.organizations(&ctx, &q).await?;
    let host = s.host(&headers);
    let objects: Vec<Object> = rows.iter().map(|r| organization_object(r, &host)).collect();
    Ok(axum::Json(
        s.renderer(&headers, &q)
            .page("/api/organizations", &q, &objects, &[], count),
    )
    .into_response())
}

/// Retrieve an organization.
#[utoipa::path(get, path = "/api/organizations/{id}", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn get_organization(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let q = single_query(&uri, &ORGANIZATIONS)?;
    let row = s.organization(&ctx, &id).await?;
    let object = organization_object(&row, &s.host(&headers));
    Ok(axum::Json(s.renderer(&headers, &q).single(&object, &[])).into_response())
}

/// An organization's api credentials.
#[utoipa::path(get, path = "/api/organizations/{id}/api_credentials", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn organization_credentials(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    s.organization(&ctx, &id).await?;
    let q = list_query(&uri, &CREDENTIALS)?;
    let (rows, count) = s.credentials(&ctx, &q).await?;
    let path = format!("/api/organizations/{id}/api_credentials");
    credentials_page(&s, &ctx, &headers, &q, &path, &rows, count).await
}

/// An organization's roles.
#[utoipa::path(get, path = "/api/organizations/{id}/roles", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn organization_roles(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    s.organization(&ctx, &id).await?;
    let q = list_query(&uri, &ROLES)?;
    let (rows, count) = s.roles(&ctx, &q).await?;
    let path = format!("/api/organizations/{id}/roles");
    roles_page(&s, &ctx, &headers, &q, &path, &rows, count).await
}

// --- organization writes ---------------------------------------------------------------------

/// Create an organization (server admins), with its `admin` and `read_only` roles.
#[utoipa::path(post, path = "/api/organizations", tag = "commercelayer",
    responses((status = 201), (status = 403), (status = 422)), security(("bearer" = [])))]
async fn create_organization(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Body(input): Body,
) -> Result<Response> {
    let q = single_query(&uri, &ORGANIZATIONS)?;
    let row = s.create_organization(&ctx, &input).await?;
    let object = organization_object(&row, &s.host(&headers));
    Ok(created(s.renderer(&headers, &q).single(&object, &[])))
}

/// Update an organization (its admins, or a server admin); `region` cannot change.
#[utoipa::path(patch, path = "/api/organizations/{id}", tag = "commercelayer",
    responses((status = 200), (status = 404), (status = 422)), security(("bearer" = [])))]
async fn update_organization(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Body(input): Body,
) -> Result<Response> {
    let q = single_query(&uri, &ORGANIZATIONS)?;
    let row = s.update_organization(&ctx, &id, &input).await?;
    let object = organization_object(&row, &s.host(&headers));
    Ok(axum::Json(s.renderer(&headers, &q).single(&object, &[])).into_response())
}
