//! The Tines surface (`/api/v1/…`): teams, folders and user credentials.
//! Lists: `{"<resource>":[…],"meta":{current_page, previous_page, next_page,
//! next_page_number, per_page, pages, count}}`. Errors: `{"errors":[{"message","field"?}]}`
//! (Tines publishes no error shape; this is ours).

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    error::{ApiError, Error, Surface},
    extract::{Auth, Json, Query},
};
use crate::core::tines::{
    CredentialInput, CredentialView, FolderView, NewFolder, NewTeam, PageRequest, Paged, TeamView,
};

pub struct Tines;

impl Surface for Tines {
    fn render(e: &ApiError) -> Value {
        let mut error = json!({ "message": e.message });
        if let Some(field) = &e.field {
            error["field"] = json!(field);
        }
        json!({ "errors": [error] })
    }
}

type Result<T> = std::result::Result<T, Error<Tines>>;
type Caller = Auth<Tines>;

pub fn routes() -> OpenApiRouter<AppState> {
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

#[derive(Deserialize, utoipa::IntoParams)]
struct ListParams {
    team_id: Option<String>,
    folder_id: Option<String>,
    /// Page number, from 1.
    page: Option<String>,
    /// 1..=500, default 20.
    per_page: Option<String>,
}

impl ListParams {
    fn page(&self) -> Result<PageRequest> {
        Ok(PageRequest::parse(
            self.page.as_deref(),
            self.per_page.as_deref(),
        )?)
    }
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
    s: &AppState,
    headers: &HeaderMap,
    path: &str,
    filters: &[(&str, Option<i64>)],
    p: &Paged<T>,
) -> Meta {
    let base = super::base_url(s, headers);
    let link = |page: i64| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in filters {
            if let Some(v) = value {
                query.append_pair(name, &v.to_string());
            }
        }
        query.append_pair("per_page", &p.page.per_page.to_string());
        query.append_pair("page", &page.to_string());
        format!("{base}{path}?{}", query.finish())
    };
    let pages = p.pages();
    let current = p.page.page;
    let next = (current < pages).then_some(current + 1);
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
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<Tines, NewTeam>,
) -> Result<(StatusCode, axum::Json<TeamView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.latchkey.create_team(&ctx, input).await?),
    ))
}

/// List teams.
#[utoipa::path(get, path = "/api/v1/teams", tag = "tines", params(ListParams),
    responses((status = 200, body = Teams)), security(("bearer" = [])))]
async fn list_teams(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    headers: HeaderMap,
    Query(q, ..): Query<Tines, ListParams>,
) -> Result<axum::Json<Teams>> {
    let paged = s.latchkey.list_teams(&ctx, q.page()?).await?;
    let meta = meta(&s, &headers, "/api/v1/teams", &[], &paged);
    Ok(axum::Json(Teams {
        teams: paged.items,
        meta,
    }))
}

/// Retrieve a team.
#[utoipa::path(get, path = "/api/v1/teams/{id}", tag = "tines", params(("id" = i64, Path)),
    responses((status = 200, body = TeamView)), security(("bearer" = [])))]
async fn get_team(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
) -> Result<axum::Json<TeamView>> {
    Ok(axum::Json(s.latchkey.team(&ctx, id(&raw, "team")?).await?))
}

/// Delete a team with its folders and credentials.
#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "tines", params(("id" = i64, Path)),
    responses((status = 204)), security(("bearer" = [])))]
async fn delete_team(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode> {
    s.latchkey.delete_team(&ctx, id(&raw, "team")?).await?;
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
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<Tines, NewFolder>,
) -> Result<(StatusCode, axum::Json<FolderView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.latchkey.create_folder(&ctx, input).await?),
    ))
}

/// List folders.
#[utoipa::path(get, path = "/api/v1/folders", tag = "tines", params(ListParams),
    responses((status = 200, body = Folders)), security(("bearer" = [])))]
async fn list_folders(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    headers: HeaderMap,
    Query(q, ..): Query<Tines, ListParams>,
) -> Result<axum::Json<Folders>> {
    let team_id = optional_id(&q.team_id, "team_id")?;
    let paged = s.latchkey.list_folders(&ctx, team_id, q.page()?).await?;
    let meta = meta(
        &s,
        &headers,
        "/api/v1/folders",
        &[("team_id", team_id)],
        &paged,
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
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
) -> Result<axum::Json<FolderView>> {
    Ok(axum::Json(
        s.latchkey.folder(&ctx, id(&raw, "folder")?).await?,
    ))
}

/// Delete a folder; its credentials stay in the team, outside any folder.
#[utoipa::path(delete, path = "/api/v1/folders/{id}", tag = "tines", params(("id" = i64, Path)),
    responses((status = 204)), security(("bearer" = [])))]
async fn delete_folder(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode> {
    s.latchkey.delete_folder(&ctx, id(&raw, "folder")?).await?;
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
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<Tines, CredentialInput>,
) -> Result<(StatusCode, axum::Json<CredentialView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.latchkey.create_credential(&ctx, input).await?),
    ))
}

/// List user credentials.
#[utoipa::path(get, path = "/api/v1/user_credentials", tag = "tines", params(ListParams),
    responses((status = 200, body = Credentials)), security(("bearer" = [])))]
async fn list_credentials(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    headers: HeaderMap,
    Query(q, ..): Query<Tines, ListParams>,
) -> Result<axum::Json<Credentials>> {
    let team_id = optional_id(&q.team_id, "team_id")?;
    let folder_id = optional_id(&q.folder_id, "folder_id")?;
    let paged = s
        .latchkey
        .list_credentials(&ctx, team_id, folder_id, q.page()?)
        .await?;
    let filters = [("team_id", team_id), ("folder_id", folder_id)];
    let meta = meta(&s, &headers, "/api/v1/user_credentials", &filters, &paged);
    Ok(axum::Json(Credentials {
        user_credentials: paged.items,
        meta,
    }))
}

/// Retrieve a user credential.
#[utoipa::path(get, path = "/api/v1/user_credentials/{id}", tag = "tines", params(("id" = i64, Path)),
    responses((status = 200, body = CredentialView)), security(("bearer" = [])))]
async fn get_credential(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
) -> Result<axum::Json<CredentialView>> {
    Ok(axum::Json(
        s.latchkey.credential(&ctx, id(&raw, "credential")?).await?,
    ))
}

/// Replace a user credential: `mode` is required, omitted optional fields are reset, and
/// omitted secret inputs keep their stored value while the mode is unchanged.
#[utoipa::path(put, path = "/api/v1/user_credentials/{id}", tag = "tines", params(("id" = i64, Path)),
    request_body = CredentialInput, responses((status = 200, body = CredentialView)), security(("bearer" = [])))]
async fn replace_credential(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
    Json(input, ..): Json<Tines, CredentialInput>,
) -> Result<axum::Json<CredentialView>> {
    Ok(axum::Json(
        s.latchkey
            .replace_credential(&ctx, id(&raw, "credential")?, input)
            .await?,
    ))
}

/// Delete a user credential (and its test credential).
#[utoipa::path(delete, path = "/api/v1/user_credentials/{id}", tag = "tines", params(("id" = i64, Path)),
    responses((status = 204)), security(("bearer" = [])))]
async fn delete_credential(
    State(s): State<AppState>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode> {
    s.latchkey
        .delete_credential(&ctx, id(&raw, "credential")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
