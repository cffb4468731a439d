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
    jsonapi::{Body, Object, Renderer, Result, created, not_allowed},
    objects::{
        credential_object, organization_object, permission_object, role_object, version_object,
    },
    provisioning::Caller,
    query::{self, Field, FieldType::*, ListQuery, Resource},
    store::{ApiCredentialRow, RoleRow},
};
use crate::kernel::http::error::ApiError;

const fn field(
    name: &'static str,
    ty: query::FieldType,
    filterable: bool,
    sortable: bool,
) -> Field {
    Field {
        name,
        column: name,
        ty,
        filterable,
        sortable,
    }
}

/// What every resource has.
macro_rules! common_fields {
    () => {
        [
            field("id", Text, true, true),
            field("created_at", Time, true, true),
            field("updated_at", Time, true, true),
            field("reference", Text, true, true),
            field("reference_origin", Text, true, true),
            field("metadata", Json, true, false),
        ]
    };
}

static CREDENTIALS: Resource = Resource {
    kind: "api_credentials",
    fields: &{
        let [a, b, c, d, e, f] = common_fields!();
        [
            a,
            b,
            c,
            d,
            e,
            f,
            field("name", Text, true, false),
            field("kind", Text, true, false),
            field("confidential", Bool, true, false),
            field("redirect_uri", Text, true, false),
            field("client_id", Text, true, false),
            field("scopes", Text, true, false),
            field("expires_in", Int, true, false),
            field("mode", Text, true, true),
            field("custom", Bool, true, false),
            field("organization_id", Text, true, false),
            field("role_id", Text, true, false),
        ]
    },
    includes: &[("organization", "organizations"), ("role", "roles")],
};
const CREDENTIAL_ATTRIBUTES: &[&str] = &[
    "name",
    "kind",
    "confidential",
    "redirect_uri",
    "client_id",
    "client_secret",
    "scopes",
    "expires_in",
    "mode",
    "custom",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
];

static ROLES: Resource = Resource {
    kind: "roles",
    fields: &{
        let [a, b, c, d, e, f] = common_fields!();
        [
            a,
            b,
            c,
            d,
            e,
            f,
            field("name", Text, true, false),
            field("kind", Text, true, false),
            field("organization_id", Text, true, false),
        ]
    },
    includes: &[("organization", "organizations")],
};
const ROLE_ATTRIBUTES: &[&str] = &[
    "name",
    "kind",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
];

static ORGANIZATIONS: Resource = Resource {
    kind: "organizations",
    fields: &[
        field("id", Text, true, true),
        field("name", Text, true, true),
        field("slug", Text, true, true),
        field("created_at", Time, true, true),
        Field {
            // What the response shows: the last change of its Commerce Layer attributes,
            // else its creation.
            name: "updated_at",
            column: "COALESCE(updated_at, created_at)",
            ty: Time,
            filterable: true,
            sortable: true,
        },
    ],
    includes: &[],
};
const ORGANIZATION_ATTRIBUTES: &[&str] = &[
    "name",
    "slug",
    "domain",
    "support_phone",
    "support_email",
    "logo_url",
    "favicon_url",
    "primary_color",
    "contrast_color",
    "gtm_id",
    "gtm_id_test",
    "region",
    "can_switch_live",
    "subscription_info",
    "config",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
];

static PERMISSIONS: Resource = Resource {
    kind: "permissions",
    fields: &{
        let [a, b, c, d, e, f] = common_fields!();
        [
            a,
            b,
            c,
            d,
            e,
            f,
            field("can_create", Bool, true, false),
            field("can_read", Bool, true, false),
            field("can_update", Bool, true, false),
            field("can_destroy", Bool, true, false),
            field("subject", Text, true, false),
            field("organization_id", Text, true, false),
            field("role_id", Text, true, false),
        ]
    },
    includes: &[("organization", "organizations"), ("role", "roles")],
};
const PERMISSION_ATTRIBUTES: &[&str] = &[
    "can_create",
    "can_read",
    "can_update",
    "can_destroy",
    "subject",
    "restrictions",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
];

static VERSIONS: Resource = Resource {
    kind: "versions",
    fields: &[
        field("id", Text, true, true),
        field("created_at", Time, true, true),
        field("updated_at", Time, true, true),
        field("resource_type", Text, true, true),
        field("resource_id", Text, true, false),
        field("event", Text, true, true),
    ],
    includes: &[],
};
const VERSION_ATTRIBUTES: &[&str] = &[
    "resource_type",
    "resource_id",
    "event",
    "changes",
    "who",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
];

fn attributes_of(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "api_credentials" => Some(CREDENTIAL_ATTRIBUTES),
        "roles" => Some(ROLE_ATTRIBUTES),
        "organizations" => Some(ORGANIZATION_ATTRIBUTES),
        "permissions" => Some(PERMISSION_ATTRIBUTES),
        "versions" => Some(VERSION_ATTRIBUTES),
        _ => None,
    }
}

/// A list's query string, checked against `resource`.
fn list_query(uri: &Uri, resource: &'static Resource) -> Result<ListQuery> {
    Ok(
        query::parse(uri.query().unwrap_or_default(), resource, attributes_of)
            .map_err(ApiError::from)?,
    )
}

/// A single resource's query string: `include` and `fields[…]` only.
fn single_query(uri: &Uri, resource: &'static Resource) -> Result<ListQuery> {
    let raw = uri.query().unwrap_or_default();
    for (name, _) in form_urlencoded::parse(raw.as_bytes()) {
        if name != "include" && !name.starts_with("fields[") {
            return Err(not_allowed(&name).into());
        }
    }
    list_query(uri, resource)
}

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
        .routes(routes!(role_permissions))
        .routes(routes!(role_versions))
        .routes(routes!(create_organization, list_organizations))
        .routes(routes!(get_organization, update_organization))
        .routes(routes!(organization_credentials))
        .routes(routes!(organization_roles))
        .routes(routes!(organization_permissions))
        .routes(routes!(create_permission, list_permissions))
        .routes(routes!(get_permission, update_permission))
        .routes(routes!(permission_organization))
        .routes(routes!(permission_role))
        .routes(routes!(permission_versions))
        .routes(routes!(credential_versions))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
}

// --- api credentials -------------------------------------------------------------------------

/// Create an api credential (seed 003). The client secret is in this response only.
#[utoipa::path(post, path = "/api/api_credentials", tag = "commercelayer",
    request_body(content = Object, content_type = "application/vnd.api+json"),
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
    request_body(content = Object, content_type = "application/vnd.api+json"),
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
    request_body(content = Object, content_type = "application/vnd.api+json"),
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
    request_body(content = Object, content_type = "application/vnd.api+json"),
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

// --- permissions -----------------------------------------------------------------------------

async fn permissions_page(
    s: &CommerceLayer,
    ctx: &crate::kernel::Ctx,
    headers: &HeaderMap,
    q: &ListQuery,
    path: &str,
) -> Result<Response> {
    let (rows, count) = s.permissions(ctx, q).await?;
    let objects: Vec<Object> = rows.iter().map(permission_object).collect();
    let included = s
        .included(ctx.principal.org()?, headers, q, &objects)
        .await?;
    Ok(axum::Json(
        s.renderer(headers, q)
            .page(path, q, &objects, &included, count),
    )
    .into_response())
}

async fn single_permission(
    s: &CommerceLayer,
    headers: &HeaderMap,
    q: &ListQuery,
    row: &super::store::PermissionRow,
    status: StatusCode,
) -> Result<Response> {
    let object = permission_object(row);
    let included = s
        .included(
            &row.organization_id,
            headers,
            q,
            std::slice::from_ref(&object),
        )
        .await?;
    let document = s.renderer(headers, q).single(&object, &included);
    Ok(if status == StatusCode::CREATED {
        created(document)
    } else {
        axum::Json(document).into_response()
    })
}

/// Add a permission to a custom role (organization admins).
#[utoipa::path(post, path = "/api/permissions", tag = "commercelayer",
    request_body(content = Object, content_type = "application/vnd.api+json"),
    responses((status = 201), (status = 422)), security(("bearer" = [])))]
async fn create_permission(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Body(input): Body,
) -> Result<Response> {
    let q = single_query(&uri, &PERMISSIONS)?;
    let row = s.create_permission(&ctx, &input).await?;
    single_permission(&s, &headers, &q, &row, StatusCode::CREATED).await
}

/// List permissions.
#[utoipa::path(get, path = "/api/permissions", tag = "commercelayer",
    responses((status = 200)), security(("bearer" = [])))]
async fn list_permissions(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response> {
    let q = list_query(&uri, &PERMISSIONS)?;
    permissions_page(&s, &ctx, &headers, &q, "/api/permissions").await
}

/// Retrieve a permission.
#[utoipa::path(get, path = "/api/permissions/{id}", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn get_permission(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let q = single_query(&uri, &PERMISSIONS)?;
    let row = s.permission(&ctx, &id).await?;
    single_permission(&s, &headers, &q, &row, StatusCode::OK).await
}

/// Update a permission's rights (organization admins; `subject` and `role` cannot change).
#[utoipa::path(patch, path = "/api/permissions/{id}", tag = "commercelayer",
    request_body(content = Object, content_type = "application/vnd.api+json"),
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn update_permission(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Body(input): Body,
) -> Result<Response> {
    let q = single_query(&uri, &PERMISSIONS)?;
    let row = s.update_permission(&ctx, &id, &input).await?;
    single_permission(&s, &headers, &q, &row, StatusCode::OK).await
}

/// The organization of a permission.
#[utoipa::path(get, path = "/api/permissions/{id}/organization", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn permission_organization(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let q = single_query(&uri, &ORGANIZATIONS)?;
    let row = s.permission(&ctx, &id).await?;
    let org = s.organization(&ctx, &row.organization_id).await?;
    let object = organization_object(&org, &s.host(&headers));
    Ok(axum::Json(s.renderer(&headers, &q).single(&object, &[])).into_response())
}

/// The role of a permission.
#[utoipa::path(get, path = "/api/permissions/{id}/role", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn permission_role(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let q = single_query(&uri, &ROLES)?;
    let row = s.permission(&ctx, &id).await?;
    let role = s.role(&ctx, &row.role_id).await?;
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

/// A role's permissions.
#[utoipa::path(get, path = "/api/roles/{id}/permissions", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn role_permissions(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let role = s.role(&ctx, &id).await?;
    let q = list_query(&uri, &PERMISSIONS)?.and_equal("role_id", &role.id);
    permissions_page(
        &s,
        &ctx,
        &headers,
        &q,
        &format!("/api/roles/{id}/permissions"),
    )
    .await
}

/// An organization's permissions.
#[utoipa::path(get, path = "/api/organizations/{id}/permissions", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn organization_permissions(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    s.organization(&ctx, &id).await?;
    let q = list_query(&uri, &PERMISSIONS)?;
    permissions_page(
        &s,
        &ctx,
        &headers,
        &q,
        &format!("/api/organizations/{id}/permissions"),
    )
    .await
}

// --- versions --------------------------------------------------------------------------------

async fn versions_page(
    s: &CommerceLayer,
    ctx: &crate::kernel::Ctx,
    headers: &HeaderMap,
    q: &ListQuery,
    path: &str,
) -> Result<Response> {
    let (rows, count) = s.versions(ctx, q).await?;
    let objects: Vec<Object> = rows.iter().map(version_object).collect();
    Ok(axum::Json(s.renderer(headers, q).page(path, q, &objects, &[], count)).into_response())
}

/// The change history of roles, permissions and api credentials.
#[utoipa::path(get, path = "/api/versions", tag = "commercelayer",
    responses((status = 200)), security(("bearer" = [])))]
async fn list_versions(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response> {
    let q = list_query(&uri, &VERSIONS)?;
    versions_page(&s, &ctx, &headers, &q, "/api/versions").await
}

/// Retrieve a version.
#[utoipa::path(get, path = "/api/versions/{id}", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn get_version(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let q = single_query(&uri, &VERSIONS)?;
    let row = s.version(&ctx, &id).await?;
    Ok(axum::Json(s.renderer(&headers, &q).single(&version_object(&row), &[])).into_response())
}

/// A role's change history.
#[utoipa::path(get, path = "/api/roles/{id}/versions", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn role_versions(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let role = s.role(&ctx, &id).await?;
    let q = list_query(&uri, &VERSIONS)?.and_equal("resource_id", &role.id);
    versions_page(&s, &ctx, &headers, &q, &format!("/api/roles/{id}/versions")).await
}

/// A permission's change history.
#[utoipa::path(get, path = "/api/permissions/{id}/versions", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn permission_versions(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let row = s.permission(&ctx, &id).await?;
    let q = list_query(&uri, &VERSIONS)?.and_equal("resource_id", &row.id);
    versions_page(
        &s,
        &ctx,
        &headers,
        &q,
        &format!("/api/permissions/{id}/versions"),
    )
    .await
}

/// An api credential's change history (also after it was deleted: filter `/api/versions`).
#[utoipa::path(get, path = "/api/api_credentials/{id}/versions", tag = "commercelayer",
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
async fn credential_versions(
    State(s): State<CommerceLayer>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response> {
    let row = s.credential(&ctx, &id).await?;
    let q = list_query(&uri, &VERSIONS)?.and_equal("resource_id", &row.id);
    versions_page(
        &s,
        &ctx,
        &headers,
        &q,
        &format!("/api/api_credentials/{id}/versions"),
    )
    .await
}

// --- organization writes ---------------------------------------------------------------------

/// Create an organization (server admins), with its `admin` and `read_only` roles.
#[utoipa::path(post, path = "/api/organizations", tag = "commercelayer",
    request_body(content = Object, content_type = "application/vnd.api+json"),
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
    request_body(content = Object, content_type = "application/vnd.api+json"),
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
