//! The Sunshine Conversations surface (`/v2/apps/…`): apps, integrations, app keys and
//! integration keys. Callers authenticate with an API key (HTTP Basic `key_id:secret` or an
//! HS256 JWT with `kid` = key id) or a management token. Lists use Sunshine's cursors
//! (`page[after]`, `page[before]`, `page[size]`, also the SDK's JSON form `page={…}`) with
//! `meta.hasMore` and `links`; errors are `{"errors":[{"code","title"}]}`.

use axum::{
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Sunshine,
    authz::Caller,
    model::{
        AppInput, AppView, CreatedKey, IntegrationView, KeyEnvelope, KeyInput, KeyView, NewApp,
        Owner,
    },
    pagination::{Page, PageRequest},
};
use crate::kernel::http::{
    error::{ApiError, Error, Surface},
    extract::{Auth, Json, Query, request_meta},
    native::Native,
};

/// Sunshine's error envelope.
pub struct SunshineSurface;

impl Surface for SunshineSurface {
    const PREFIXES: &'static [&'static str] = &["/v2/"];
    type Envelope = SunshineError;

    fn render(e: &ApiError) -> SunshineError {
        let code = match e.status.as_u16() {
            400 | 422 => "bad_request".to_owned(),
            401 => "unauthorized".to_owned(),
            403 => "forbidden".to_owned(),
            // `app not found` → `app_not_found`, as Sunshine names them.
            404 if e.code == "not_found" => e.message.replace(' ', "_"),
            404 => "not_found".to_owned(),
            405 => "method_not_allowed".to_owned(),
            409 => "conflict".to_owned(),
            413 => "payload_too_large".to_owned(),
            429 => "too_many_requests".to_owned(),
            _ => "internal_error".to_owned(),
        };
        SunshineError {
            errors: vec![SunshineErrorItem {
                code,
                title: e.message.clone(),
            }],
        }
    }

    /// Sunshine answers every invalid request with 400.
    fn status(e: &ApiError) -> StatusCode {
        match e.status {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        }
    }
}

/// Sunshine's error envelope.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SunshineError {
    errors: Vec<SunshineErrorItem>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SunshineErrorItem {
    /// e.g. `bad_request`, `unauthorized`, `app_not_found`.
    code: String,
    title: String,
}

type Result<T> = std::result::Result<T, Error<SunshineSurface>>;

/// The caller of a `/v2` route: an API key or a management token.
pub struct KeyAuth(pub Caller);

impl FromRequestParts<Sunshine> for KeyAuth {
    type Rejection = Error<SunshineSurface>;

    async fn from_request_parts(parts: &mut Parts, state: &Sunshine) -> Result<Self> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Ok(Self(
            state
                .authenticate(authorization, request_meta(parts))
                .await?,
        ))
    }
}

/// Every Sunshine route, with its state.
pub fn router(state: Sunshine) -> axum::Router {
    routes().split_for_parts().0.with_state(state)
}

/// `/v2/apps/…`, and the account keys under `/v1/account_keys` (native envelope).
pub fn routes() -> OpenApiRouter<Sunshine> {
    OpenApiRouter::new()
        .routes(routes!(create_account_key, list_account_keys))
        .routes(routes!(get_account_key, delete_account_key))
        .routes(routes!(create_app, list_apps))
        .routes(routes!(get_app, update_app, delete_app))
        .routes(routes!(create_integration, list_integrations))
        .routes(routes!(get_integration, delete_integration))
        .routes(routes!(create_app_key, list_app_keys))
        .routes(routes!(get_app_key, delete_app_key))
        .routes(routes!(create_integration_key, list_integration_keys))
        .routes(routes!(get_integration_key, delete_integration_key))
}

// --- lists -----------------------------------------------------------------------------------

/// A list's query: `page[after]`, `page[before]`, `page[size]` and `filter[types]`, or the
/// JSON objects `page={…}` and `filter={…}` that the official SDKs send. (Public for the
/// fuzz target.)
pub fn list_params(
    parts_query: Option<&str>,
) -> std::result::Result<(PageRequest, Vec<String>), ApiError> {
    let bad = |field: &str, message: String| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message).with_field(field)
    };
    let mut page = PageRequest::default();
    let mut types = String::new();
    let size = |raw: &Value| -> std::result::Result<i64, ApiError> {
        match raw {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| bad("page[size]", "page[size] must be an integer".into()))
    };
    for (name, value) in form_urlencoded::parse(parts_query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "page[after]" => page.after = Some(value.into_owned()),
            "page[before]" => page.before = Some(value.into_owned()),
            "page[size]" => page.size = Some(size(&Value::String(value.into_owned()))?),
            "filter[types]" => types = value.into_owned(),
            "page" | "filter" => {
                let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&value) else {
                    return Err(bad(&name, format!("{name} must be a JSON object")));
                };
                for (key, v) in object {
                    let text = || v.as_str().map(str::to_owned);
                    match (name.as_ref(), key.as_str()) {
                        ("page", "after") => page.after = text(),
                        ("page", "before") => page.before = text(),
                        ("page", "size") => page.size = Some(size(&v)?),
                        ("filter", "types") => types = text().unwrap_or_default(),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let types = types
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    Ok((page, types))
}

/// `{ <name>: [...], meta: {hasMore, afterCursor, beforeCursor}, links: {next?, prev?} }`.
fn page_body<T: Serialize>(
    s: &Sunshine,
    headers: &HeaderMap,
    path: &str,
    name: &str,
    page: Page<T>,
    size: i64,
) -> axum::Json<Value> {
    let base = s.public_url.base(headers);
    let link = |param: &str, id: &str| format!("{base}{path}?page[{param}]={id}&page[size]={size}");
    let mut links = Map::new();
    if let Some(id) = &page.next {
        links.insert("next".into(), json!(link("after", id)));
    }
    if let Some(id) = &page.prev {
        links.insert("prev".into(), json!(link("before", id)));
    }
    let mut meta = json!({ "hasMore": page.has_more });
    if let Some(c) = &page.after_cursor {
        meta["afterCursor"] = json!(c);
    }
    if let Some(c) = &page.before_cursor {
        meta["beforeCursor"] = json!(c);
    }
    axum::Json(json!({ name: page.items, "meta": meta, "links": links }))
}

fn created<T: Serialize>(name: &str, value: T) -> impl IntoResponse {
    (
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({ name: value })),
    )
}

fn deleted() -> axum::Json<Value> {
    axum::Json(json!({}))
}

// --- apps ------------------------------------------------------------------------------------

/// Create an app (account scope).
#[utoipa::path(post, path = "/v2/apps", tag = "sunshine", request_body = NewApp,
    responses((status = 201, description = "{app}")), security(("basic" = []), ("bearer" = [])))]
async fn create_app(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Json(input, ..): Json<SunshineSurface, NewApp>,
) -> Result<impl IntoResponse> {
    Ok(created("app", s.create_app(&ctx, input.into()).await?))
}

/// List apps (account scope), cursor-paginated.
#[utoipa::path(get, path = "/v2/apps", tag = "sunshine",
    params(("page[after]" = Option<String>, Query), ("page[before]" = Option<String>, Query),
        ("page[size]" = Option<i64>, Query, description = "1–100, default 25")),
    responses((status = 200, description = "{apps, meta, links}")), security(("basic" = []), ("bearer" = [])))]
async fn list_apps(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<axum::Json<Value>> {
    let (page, _) = list_params(uri.query())?;
    let size = page.size.unwrap_or(super::pagination::DEFAULT_PAGE_SIZE);
    let apps = s.apps(&ctx, &page).await?;
    Ok(page_body(&s, &headers, "/v2/apps", "apps", apps, size))
}

/// Get an app.
#[utoipa::path(get, path = "/v2/apps/{appId}", tag = "sunshine", params(("appId" = String, Path)),
    responses((status = 200, description = "{app}")), security(("basic" = []), ("bearer" = [])))]
async fn get_app(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path(app): Path<String>,
) -> Result<axum::Json<Value>> {
    let app = s.app(&ctx, &app).await?;
    Ok(axum::Json(json!({ "app": app })))
}

/// Update an app: `displayName`, `settings` (merged) and `metadata` (null clears).
#[utoipa::path(patch, path = "/v2/apps/{appId}", tag = "sunshine", params(("appId" = String, Path)),
    request_body = AppInput, responses((status = 200, description = "{app}")), security(("basic" = []), ("bearer" = [])))]
async fn update_app(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path(app): Path<String>,
    Json(input, ..): Json<SunshineSurface, AppInput>,
) -> Result<axum::Json<Value>> {
    let app: AppView = s.update_app(&ctx, &app, input).await?;
    Ok(axum::Json(json!({ "app": app })))
}

/// Delete an app with its integrations and keys (account scope).
#[utoipa::path(delete, path = "/v2/apps/{appId}", tag = "sunshine", params(("appId" = String, Path)),
    responses((status = 200, description = "{}")), security(("basic" = []), ("bearer" = [])))]
async fn delete_app(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path(app): Path<String>,
) -> Result<axum::Json<Value>> {
    s.delete_app(&ctx, &app).await?;
    Ok(deleted())
}

// --- integrations ----------------------------------------------------------------------------

/// Create an integration: `type` (`custom` takes exactly one webhook `{target, triggers}`;
/// other channel types are stored, their secrets sealed and never shown).
#[utoipa::path(post, path = "/v2/apps/{appId}/integrations", tag = "sunshine", params(("appId" = String, Path)),
    request_body(content = Object, description = "{type, displayName?, webhooks?, …}"),
    responses((status = 201, description = "{integration}")), security(("basic" = []), ("bearer" = [])))]
async fn create_integration(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path(app): Path<String>,
    Json(body, ..): Json<SunshineSurface, Map<String, Value>>,
) -> Result<impl IntoResponse> {
    let integration = s.create_integration(&ctx, &app, body).await?;
    Ok(created("integration", integration))
}

/// List an app's integrations, cursor-paginated; `filter[types]=custom,web` narrows by type.
#[utoipa::path(get, path = "/v2/apps/{appId}/integrations", tag = "sunshine",
    params(("appId" = String, Path), ("page[after]" = Option<String>, Query), ("page[before]" = Option<String>, Query),
        ("page[size]" = Option<i64>, Query), ("filter[types]" = Option<String>, Query)),
    responses((status = 200, description = "{integrations, meta, links}")), security(("basic" = []), ("bearer" = [])))]
async fn list_integrations(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    headers: HeaderMap,
    Path(app): Path<String>,
    uri: axum::http::Uri,
) -> Result<axum::Json<Value>> {
    let (page, types) = list_params(uri.query())?;
    let size = page.size.unwrap_or(super::pagination::DEFAULT_PAGE_SIZE);
    let items = s.integrations(&ctx, &app, &types, &page).await?;
    let path = format!("/v2/apps/{app}/integrations");
    Ok(page_body(&s, &headers, &path, "integrations", items, size))
}

/// Get an integration.
#[utoipa::path(get, path = "/v2/apps/{appId}/integrations/{integrationId}", tag = "sunshine",
    params(("appId" = String, Path), ("integrationId" = String, Path)),
    responses((status = 200, description = "{integration}")), security(("basic" = []), ("bearer" = [])))]
async fn get_integration(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path((app, id)): Path<(String, String)>,
) -> Result<axum::Json<Value>> {
    let integration: IntegrationView = s.integration(&ctx, &app, &id).await?;
    Ok(axum::Json(json!({ "integration": integration })))
}

/// Delete an integration with its keys.
#[utoipa::path(delete, path = "/v2/apps/{appId}/integrations/{integrationId}", tag = "sunshine",
    params(("appId" = String, Path), ("integrationId" = String, Path)),
    responses((status = 200, description = "{}")), security(("basic" = []), ("bearer" = [])))]
async fn delete_integration(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path((app, id)): Path<(String, String)>,
) -> Result<axum::Json<Value>> {
    s.delete_integration(&ctx, &app, &id).await?;
    Ok(deleted())
}

// --- keys ------------------------------------------------------------------------------------

async fn create_key(
    s: &Sunshine,
    ctx: &Caller,
    owner: Owner<'_>,
    input: KeyInput,
) -> Result<impl IntoResponse + use<>> {
    let key: CreatedKey = s.create_key(ctx, owner, input).await?;
    Ok(created("key", key))
}

async fn list_keys(s: &Sunshine, ctx: &Caller, owner: Owner<'_>) -> Result<axum::Json<Value>> {
    let keys: Vec<KeyView> = s.keys(ctx, owner).await?;
    Ok(axum::Json(json!({ "keys": keys })))
}

async fn get_key(
    s: &Sunshine,
    ctx: &Caller,
    owner: Owner<'_>,
    id: &str,
) -> Result<axum::Json<KeyEnvelope<KeyView>>> {
    let key = s.key(ctx, owner, id).await?;
    Ok(axum::Json(KeyEnvelope { key }))
}

/// Create an app key (account scope); the secret is in this response only. At most ten per app.
#[utoipa::path(post, path = "/v2/apps/{appId}/keys", tag = "sunshine", params(("appId" = String, Path)),
    request_body = KeyInput, responses((status = 201, body = KeyEnvelope<CreatedKey>)), security(("basic" = []), ("bearer" = [])))]
async fn create_app_key(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path(app): Path<String>,
    Json(input, ..): Json<SunshineSurface, KeyInput>,
) -> Result<impl IntoResponse> {
    create_key(&s, &ctx, Owner::App(&app), input).await
}

/// List an app's keys (never their secrets).
#[utoipa::path(get, path = "/v2/apps/{appId}/keys", tag = "sunshine", params(("appId" = String, Path)),
    responses((status = 200, description = "{keys}")), security(("basic" = []), ("bearer" = [])))]
async fn list_app_keys(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path(app): Path<String>,
) -> Result<axum::Json<Value>> {
    list_keys(&s, &ctx, Owner::App(&app)).await
}

/// Get an app key (never its secret).
#[utoipa::path(get, path = "/v2/apps/{appId}/keys/{keyId}", tag = "sunshine",
    params(("appId" = String, Path), ("keyId" = String, Path)),
    responses((status = 200, body = KeyEnvelope<KeyView>)), security(("basic" = []), ("bearer" = [])))]
async fn get_app_key(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path((app, id)): Path<(String, String)>,
) -> Result<axum::Json<KeyEnvelope<KeyView>>> {
    get_key(&s, &ctx, Owner::App(&app), &id).await
}

/// Delete an app key; it stops authenticating at once.
#[utoipa::path(delete, path = "/v2/apps/{appId}/keys/{keyId}", tag = "sunshine",
    params(("appId" = String, Path), ("keyId" = String, Path)),
    responses((status = 200, description = "{}")), security(("basic" = []), ("bearer" = [])))]
async fn delete_app_key(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path((app, id)): Path<(String, String)>,
) -> Result<axum::Json<Value>> {
    s.delete_key(&ctx, Owner::App(&app), &id).await?;
    Ok(deleted())
}

/// Create an integration key (custom integrations only); the secret is in this response only.
#[utoipa::path(post, path = "/v2/apps/{appId}/integrations/{integrationId}/keys", tag = "sunshine",
    params(("appId" = String, Path), ("integrationId" = String, Path)),
    request_body = KeyInput, responses((status = 201, body = KeyEnvelope<CreatedKey>)), security(("basic" = []), ("bearer" = [])))]
async fn create_integration_key(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path((app, integration)): Path<(String, String)>,
    Json(input, ..): Json<SunshineSurface, KeyInput>,
) -> Result<impl IntoResponse> {
    create_key(&s, &ctx, Owner::Integration(&app, &integration), input).await
}

/// List an integration's keys (never their secrets).
#[utoipa::path(get, path = "/v2/apps/{appId}/integrations/{integrationId}/keys", tag = "sunshine",
    params(("appId" = String, Path), ("integrationId" = String, Path)),
    responses((status = 200, description = "{keys}")), security(("basic" = []), ("bearer" = [])))]
async fn list_integration_keys(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path((app, integration)): Path<(String, String)>,
) -> Result<axum::Json<Value>> {
    list_keys(&s, &ctx, Owner::Integration(&app, &integration)).await
}

/// Get an integration key (never its secret).
#[utoipa::path(get, path = "/v2/apps/{appId}/integrations/{integrationId}/keys/{keyId}", tag = "sunshine",
    params(("appId" = String, Path), ("integrationId" = String, Path), ("keyId" = String, Path)),
    responses((status = 200, body = KeyEnvelope<KeyView>)), security(("basic" = []), ("bearer" = [])))]
async fn get_integration_key(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path((app, integration, id)): Path<(String, String, String)>,
) -> Result<axum::Json<KeyEnvelope<KeyView>>> {
    get_key(&s, &ctx, Owner::Integration(&app, &integration), &id).await
}

/// Delete an integration key; it stops authenticating at once.
#[utoipa::path(delete, path = "/v2/apps/{appId}/integrations/{integrationId}/keys/{keyId}", tag = "sunshine",
    params(("appId" = String, Path), ("integrationId" = String, Path), ("keyId" = String, Path)),
    responses((status = 200, description = "{}")), security(("basic" = []), ("bearer" = [])))]
async fn delete_integration_key(
    State(s): State<Sunshine>,
    KeyAuth(ctx): KeyAuth,
    Path((app, integration, id)): Path<(String, String, String)>,
) -> Result<axum::Json<Value>> {
    s.delete_key(&ctx, Owner::Integration(&app, &integration), &id)
        .await?;
    Ok(deleted())
}

// --- account keys (native envelope) -------------------------------------------------------

type NativeResult<T> = std::result::Result<T, Error<Native>>;

#[derive(Serialize, utoipa::ToSchema)]
struct AccountKeys {
    keys: Vec<KeyView>,
    /// Pass as `after` for the next page; null on the last page.
    next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AccountKeysQuery {
    /// The `next_cursor` of the previous page.
    after: Option<String>,
    /// 1..=200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// Create a Sunshine account key (`act_…`, organization admins); the secret is in this
/// response only. It authenticates every `/v2` call of the organization.
#[utoipa::path(post, path = "/v1/account_keys", tag = "native", request_body = KeyInput,
    responses((status = 201, body = KeyEnvelope<CreatedKey>)), security(("bearer" = [])))]
async fn create_account_key(
    State(s): State<Sunshine>,
    Auth(ctx, ..): Auth<Native>,
    Json(input, ..): Json<Native, KeyInput>,
) -> NativeResult<impl IntoResponse> {
    let key = s.create_key(&ctx.into(), Owner::Account, input).await?;
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(KeyEnvelope { key }),
    ))
}

/// List the organization's account keys, oldest first, a page at a time (never their secrets).
#[utoipa::path(get, path = "/v1/account_keys", tag = "native", params(AccountKeysQuery),
    responses((status = 200, body = AccountKeys)), security(("bearer" = [])))]
async fn list_account_keys(
    State(s): State<Sunshine>,
    Auth(ctx, ..): Auth<Native>,
    Query(q, ..): Query<Native, AccountKeysQuery>,
) -> NativeResult<axum::Json<AccountKeys>> {
    let (keys, next_cursor) = s
        .account_keys(&ctx.into(), q.after.as_deref(), q.limit)
        .await?;
    Ok(axum::Json(AccountKeys { keys, next_cursor }))
}

/// Read one account key (never its secret).
#[utoipa::path(get, path = "/v1/account_keys/{id}", tag = "native",
    params(("id" = String, Path)), responses((status = 200, body = KeyEnvelope<KeyView>)), security(("bearer" = [])))]
async fn get_account_key(
    State(s): State<Sunshine>,
    Auth(ctx, ..): Auth<Native>,
    Path(id): Path<String>,
) -> NativeResult<axum::Json<KeyEnvelope<KeyView>>> {
    let key = s.key(&ctx.into(), Owner::Account, &id).await?;
    Ok(axum::Json(KeyEnvelope { key }))
}

/// Delete an account key; it stops authenticating at once.
#[utoipa::path(delete, path = "/v1/account_keys/{id}", tag = "native",
    params(("id" = String, Path)), responses((status = 204)), security(("bearer" = [])))]
async fn delete_account_key(
    State(s): State<Sunshine>,
    Auth(ctx, ..): Auth<Native>,
    Path(id): Path<String>,
) -> NativeResult<StatusCode> {
    s.delete_key(&ctx.into(), Owner::Account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
