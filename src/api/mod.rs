//! The HTTP surfaces: one module per product's wire format, plus `native` (Latchkey's own
//! organizations, tokens and audit) and `ops` (health, metrics, OpenAPI). Handlers parse,
//! authorize through `core`, call `core` and render; they hold no SQL and no crypto.
//!
//! Every surface renders errors in its own envelope through one [`error::Surface`] impl, so
//! the mapping from a domain error to a status code lives in one place.

use std::{sync::Arc, time::Instant};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    middleware::{self, Next},
    response::Response,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::core::Latchkey;

pub mod error;
pub mod extract;
pub mod native;
pub mod ops;
pub mod pingone;
pub mod sunshine;
pub mod tines;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub latchkey: Latchkey,
    pub public_url: Option<Arc<str>>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey",
        description = "Issue and verify credentials; keep and use outbound ones. \
                       Each surface speaks its product's wire format.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "native", description = "Latchkey's own organizations, management tokens and audit log"),
        (name = "pingone", description = "PingOne: environments, gateways and gateway credentials"),
        (name = "sunshine", description = "Sunshine Conversations: apps, integrations and their API keys"),
        (name = "tines", description = "Tines: teams, folders and user credentials"),
        (name = "ops", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lk_… or an HS256 JWT signed with a Sunshine API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// The routes of every surface with their OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(native::routes())
        .nest("/v1", pingone::routes())
        .merge(pingone::public_routes())
        .merge(sunshine::routes())
        .merge(tines::routes())
        .merge(ops::routes())
}

/// The OpenAPI document alone (for `/openapi.json`, the snapshot test and the route check).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// The whole application: routes, the documentation UI and the middleware stack.
pub fn router(state: AppState, body_limit: usize) -> Router {
    let (api, doc) = routes().split_for_parts();
    let doc = Arc::new(doc);
    api.merge(pingone::unversioned())
        .merge(ops::docs_router(doc))
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .layer(middleware::from_fn(track_metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            })
            // One access-log line per request at the default level (paths hold ids, never secrets).
            .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(CatchPanicLayer::custom(ops::panic_response))
        .with_state(state)
}

/// A path or method no route serves: 404 or 405, in the envelope of the surface the path
/// belongs to (by prefix), so a client of one product never sees another's error format.
async fn no_route(
    method: axum::http::Method,
    uri: axum::http::Uri,
    matched: Option<MatchedPath>,
) -> Response {
    use axum::{http::StatusCode, response::IntoResponse};
    let error = if matched.is_some() {
        error::ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on this path"),
        )
    } else {
        error::ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    };
    let path = uri.path();
    let under = |prefix: &str| path.starts_with(prefix);
    if under("/v1/environments") || under("/environments") {
        error::Error::<pingone::PingOne>::from(error).into_response()
    } else if under("/v2/") {
        error::Error::<sunshine::Sunshine>::from(error).into_response()
    } else if under("/api/v1/") {
        error::Error::<tines::Tines>::from(error).into_response()
    } else {
        error::Error::<native::Native>::from(error).into_response()
    }
}

/// The external base URL for links in responses: the configured one, else from `Host`.
pub fn base_url(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    match &state.public_url {
        Some(url) => url.to_string(),
        None => {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    }
}

/// Counts and times requests, labelled by route template (never by id, token or query).
async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("latchkey_http_requests_total", &labels).increment(1);
    metrics::histogram!("latchkey_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}
