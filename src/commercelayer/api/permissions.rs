//! Permissions of custom roles and the change history (`versions`), with their related
//! routes.

use super::*;

/// These routes, with their state.
pub(super) fn routes() -> OpenApiRouter<CommerceLayer> {
    OpenApiRouter::new()
        .routes(routes!(role_permissions))
        .routes(routes!(role_versions))
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
    row: &crate::commercelayer::store::PermissionRow,
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
