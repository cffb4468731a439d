//! The Tines surface (`/api/v1/…`): teams, folders and user credentials.
//! Lists: `{"<resource>":[…],"meta":{current_page, previous_page, next_page,
//! next_page_number, per_page, pages, count}}`. Errors: `{"errors":[{"message","field"?}]}`
//! (Tines publishes no error shape; this is ours).

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
};
use serde::{Deserialize, Serialize};

use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Tines,
    model::{CredentialInput, CredentialView, FolderView, NewFolder, NewTeam, TeamView},
    pagination::{PageRequest, Paged},
};
use crate::kernel::http::{
    error::{ApiError, Error, Surface},
    extract::{Auth, Json, Query},
};

/// Tines' error envelope (ours: Tines does not publish one).
pub struct TinesSurface;

impl Surface for TinesSurface {
    const PREFIXES: &'static [&'static str] = &["/api/v1/"];
    type Envelope = TinesError;

    fn render(e: &ApiError) -> TinesError {
        TinesError {
            errors: vec![TinesErrorItem {
                message: e.message.clone(),
                field: e.field.clone(),
            }],
        }
    }
}

/// The Tines surface's error envelope.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TinesError {
    errors: Vec<TinesErrorItem>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TinesErrorItem {
    message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

type Result<T> = std::result::Result<T, Error<TinesSurface>>;
type Caller = Auth<TinesSurface>;

/// Every Tines route, with its state.
pub fn router(state: Tines) -> axum::Router {
    routes().split_for_parts().0.with_state(state)
}

pub fn routes() -> OpenApiRouter<Tines> {
    OpenApiRouter::new()
        .routes(routes!(create_team, list_teams))
        .routes(routes!(get_team, delete_team))
        .routes(routes!(create_folder, list_folders))
        .routes(routes!(get_folder, delete_folder))
        .routes(routes!(create_credential, list_credentials))
        .routes(routes!(
            get_credential,
            replace_credential,
            delete_credential
        ))
        .merge(super::usage::routes())
        .merge(super::connect::routes())
}

/// Ids are integers; anything else cannot name a resource.
fn id(raw: &str, what: &str) -> Result<i64> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
        .into()
    })
}

fn optional_id(raw: &Option<String>, field: &str) -> Result<Option<i64>> {
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("{field} must be an integer"),
            )
            .with_field(field)
            .into()
        }),
    }
}

/// The query of the team list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TeamListParams {
    /// Page number, from 1.
    #[param(value_type = Option<i64>, minimum = 1)]
    page: Option<String>,
    /// Default 20; above 500 reads as 500.
    #[param(value_type = Option<i64>, minimum = 1)]
    per_page: Option<String>,
}

/// The query of the folder list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FolderListParams {
    #[param(value_type = Option<i64>)]
    team_id: Option<String>,
    /// Page number, from 1.
    #[param(value_type = Option<i64>, minimum = 1)]
    page: Option<String>,
    /// Default 20; above 500 reads as 500.
    #[param(value_type = Option<i64>, minimum = 1)]
    per_page: Option<String>,
}

/// The query of the user credential list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CredentialListParams {
    #[param(value_type = Option<i64>)]
    team_id: Option<String>,
    #[param(value_type = Option<i64>)]
    folder_id: Option<String>,
    /// RESTRICTED, UNRESTRICTED or UNUSED_IN_ACTIONS (never used).
    #[param(schema_with = credential_filter_schema)]
    filter: Option<String>,
    /// Page number, from 1.
    #[param(value_type = Option<i64>, minimum = 1)]
    page: Option<String>,
    /// Default 20; above 500 reads as 500.
    #[param(value_type = Option<i64>, minimum = 1)]
    per_page: Option<String>,
}

fn credential_filter_schema() -> utoipa::openapi::Object {
    crate::kernel::types::string_enum_schema(&super::service::CREDENTIAL_FILTERS, false)
}

fn page(page: &Option<String>, per_page: &Option<String>) -> Result<PageRequest> {
    Ok(PageRequest::parse(page.as_deref(), per_page.as_deref())?)
}

#[derive(Serialize, utoipa::ToSchema)]
struct Meta {
    current_page: String,
    previous_page: Option<String>,
    next_page: Option<String>,
    next_page_number: Option<i64>,
    per_page: i64,
    pages: i64,
    count: i64,
}

/// Tines's page links are absolute URLs that keep the list's filters.
fn meta<T>(
    s: &Tines,
    headers: &HeaderMap,
    path: &str,
    filters: &[(&str, Option<i64>)],
    p: &Paged<T>,
    filter: Option<&str>,
) -> Meta {
    let base = s.public_url.base(headers);
    let link = |page: i64| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in filters {
            if let Some(v) = value {
                query.append_pair(name, &v.to_string());
            }
        }
        query.append_pair("per_page", &p.page.per_page.to_string());
        query.append_pair("page", &page.to_string());
        if let Some(f) = filter {
            query.append_pair("filter", f);
        }
        format!("{base}{path}?{}", query.finish())
    };
    let pages = p.pages();
    let current = p.page.page;
    let next = (current < pages).then(|| current + 1);
    Meta {
        current_page: link(current),
        previous_page: (current > 1).then(|| link((current - 1).min(pages.max(1)))),
        next_page: next.map(link),
        next_page_number: next,
        per_page: p.page.per_page,
        pages,
        count: p.count,
    }
}

// --- teams -------------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
struct Teams {
    teams: Vec<TeamView>,
    meta: Meta,
}

/// Create a team.
#[utoipa::path(post, path = "/api/v1/teams", tag = "tines", request_body = NewTeam,
    responses((status = 201, body = TeamView)), security(("bearer" = [])))]
async fn create_team(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<TinesSurface, NewTeam>,
) -> Result<(StatusCode, axum::Json<TeamView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.create_team(&ctx, input).await?),
    ))
}

/// List teams.
#[utoipa::path(get, path = "/api/v1/teams", tag = "tines", params(TeamListParams),
    responses((status = 200, body = Teams)), security(("bearer" = [])))]
async fn list_teams(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    headers: HeaderMap,
    Query(q, ..): Query<TinesSurface, TeamListParams>,
) -> Result<axum::Json<Teams>> {
    let paged = s.list_teams(&ctx, page(&q.page, &q.per_page)?).await?;
    let meta = meta(&s, &headers, "/api/v1/teams", &[], &paged, None);
    Ok(axum::Json(Teams {
        teams: paged.items,
        meta,
    }))
}

/// Retrieve a team.
#[utoipa::path(get, path = "/api/v1/teams/{id}", tag = "tines", params(("id" = i64, Path)),
    responses((status = 200, body = TeamView)), security(("bearer" = [])))]
async fn get_team(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
) -> Result<axum::Json<TeamView>> {
    Ok(axum::Json(s.team(&ctx, id(&raw, "team")?).await?))
}

/// Delete a team with its folders and credentials.
#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "tines", params(("id" = i64, Path)),
    responses((status = 204)), security(("bearer" = [])))]
async fn delete_team(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode> {
    s.delete_team(&ctx, id(&raw, "team")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- folders -----------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
struct Folders {
    folders: Vec<FolderView>,
    meta: Meta,
}

/// Create a folder.
#[utoipa::path(post, path = "/api/v1/folders", tag = "tines", request_body = NewFolder,
    responses((status = 201, body = FolderView)), security(("bearer" = [])))]
async fn create_folder(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<TinesSurface, NewFolder>,
) -> Result<(StatusCode, axum::Json<FolderView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.create_folder(&ctx, input).await?),
    ))
}

/// List folders.
#[utoipa::path(get, path = "/api/v1/folders", tag = "tines", params(FolderListParams),
    responses((status = 200, body = Folders)), security(("bearer" = [])))]
async fn list_folders(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    headers: HeaderMap,
    Query(q, ..): Query<TinesSurface, FolderListParams>,
) -> Result<axum::Json<Folders>> {
    let team_id = optional_id(&q.team_id, "team_id")?;
    let paged = s
        .list_folders(&ctx, team_id, page(&q.page, &q.per_page)?)
        .await?;
    let meta = meta(
        &s,
        &headers,
        "/api/v1/folders",
        &[("team_id", team_id)],
        &paged,
        None,
    );
    Ok(axum::Json(Folders {
        folders: paged.items,
        meta,
    }))
}

/// Retrieve a folder.
#[utoipa::path(get, path = "/api/v1/folders/{id}", tag = "tines", params(("id" = i64, Path)),
    responses((status = 200, body = FolderView)), security(("bearer" = [])))]
async fn get_folder(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
) -> Result<axum::Json<FolderView>> {
    Ok(axum::Json(s.folder(&ctx, id(&raw, "folder")?).await?))
}

/// Delete a folder; its credentials stay in the team, outside any folder.
#[utoipa::path(delete, path = "/api/v1/folders/{id}", tag = "tines", params(("id" = i64, Path)),
    responses((status = 204)), security(("bearer" = [])))]
async fn delete_folder(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode> {
    s.delete_folder(&ctx, id(&raw, "folder")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- user credentials --------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
struct Credentials {
    user_credentials: Vec<CredentialView>,
    meta: Meta,
}

/// Create a user credential (any of the seven modes). Secret inputs are sealed and never returned.
#[utoipa::path(post, path = "/api/v1/user_credentials", tag = "tines", request_body = CredentialInput,
    responses((status = 201, body = CredentialView)), security(("bearer" = [])))]
async fn create_credential(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    headers: HeaderMap,
    Json(input, ..): Json<TinesSurface, CredentialInput>,
) -> Result<(StatusCode, axum::Json<CredentialView>)> {
    let mut view = s.create_credential(&ctx, input).await?;
    s.add_connect_url(&ctx, &mut view, &headers).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// List user credentials.
#[utoipa::path(get, path = "/api/v1/user_credentials", tag = "tines", params(CredentialListParams),
    responses((status = 200, body = Credentials)), security(("bearer" = [])))]
async fn list_credentials(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    headers: HeaderMap,
    Query(q, ..): Query<TinesSurface, CredentialListParams>,
) -> Result<axum::Json<Credentials>> {
    let team_id = optional_id(&q.team_id, "team_id")?;
    let folder_id = optional_id(&q.folder_id, "folder_id")?;
    let paged = s
        .list_credentials(
            &ctx,
            team_id,
            folder_id,
            q.filter.as_deref(),
            page(&q.page, &q.per_page)?,
        )
        .await?;
    let filters = [("team_id", team_id), ("folder_id", folder_id)];
    let meta = meta(
        &s,
        &headers,
        "/api/v1/user_credentials",
        &filters,
        &paged,
        q.filter.as_deref(),
    );
    Ok(axum::Json(Credentials {
        user_credentials: paged.items,
        meta,
    }))
}

/// Retrieve a user credential.
#[utoipa::path(get, path = "/api/v1/user_credentials/{id}", tag = "tines", params(("id" = i64, Path)),
    responses((status = 200, body = CredentialView)), security(("bearer" = [])))]
async fn get_credential(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
) -> Result<axum::Json<CredentialView>> {
    Ok(axum::Json(
        s.credential(&ctx, id(&raw, "credential")?).await?,
    ))
}

/// Replace a user credential: `mode` is required, omitted optional fields are reset, and
/// omitted secret inputs keep their stored value while the mode is unchanged.
#[utoipa::path(put, path = "/api/v1/user_credentials/{id}", tag = "tines", params(("id" = i64, Path)),
    request_body = CredentialInput, responses((status = 200, body = CredentialView)), security(("bearer" = [])))]
async fn replace_credential(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
    headers: HeaderMap,
    Json(input, ..): Json<TinesSurface, CredentialInput>,
) -> Result<axum::Json<CredentialView>> {
    let mut view = s
        .replace_credential(&ctx, id(&raw, "credential")?, input)
        .await?;
    s.add_connect_url(&ctx, &mut view, &headers).await?;
    Ok(axum::Json(view))
}

/// Delete a user credential (and its test credential).
#[utoipa::path(delete, path = "/api/v1/user_credentials/{id}", tag = "tines", params(("id" = i64, Path)),
    responses((status = 204)), security(("bearer" = [])))]
async fn delete_credential(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode> {
    s.delete_credential(&ctx, id(&raw, "credential")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
