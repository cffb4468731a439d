//! The server: where the kernel and the families meet. It builds each family on the kernel,
//! registers its verifier and its routes, and wraps the whole in the middleware stack
//! (request ids, access log, metrics, body limit, panics); `ops` serves health, metrics and
//! the OpenAPI document.
//!
//! Adding a family is a folder plus one line in each of [`Families::new`] (its service),
//! [`Families::verifiers`] (its part of `/v1/authenticate`, if it issues credentials),
//! [`app`] and [`openapi`] (its routes), and `OWNERS` (its surface: the envelope of errors
//! the router answers on its paths, and the errors its operations document).

use std::{convert::Infallible, sync::Arc, time::Instant};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::HeaderValue,
    middleware::{self, Next},
    response::Response,
};
use futures_util::FutureExt as _;
use tower::{ServiceBuilder, util::BoxCloneSyncService};
use tracing::Instrument as _;
use utoipa::OpenApi;

use crate::{
    commercelayer::{self, CommerceLayer, CommerceLayerSurface, OAuthSurface},
    kernel::{
        Kernel,
        http::{
            PublicUrl,
            error::{ApiError, Surface, render},
            extract::X_REQUEST_ID,
            native::{self, Native, NativeState},
        },
        verify::{Registry, Verifier},
    },
    pingone::{self, PingOne, PingOneSurface},
    sunshine::{self, Sunshine, SunshineSurface},
    tines::{self, Tines, TinesSurface},
};

mod openapi;
pub mod ops;
pub mod throttle;

pub use openapi::openapi;

/// Every family, built on one kernel.
#[derive(Clone)]
pub struct Families {
    pub pingone: PingOne,
    pub sunshine: Sunshine,
    pub tines: Tines,
    pub commercelayer: CommerceLayer,
}

impl Families {
    pub fn new(kernel: &Kernel, public_url: &PublicUrl, egress: &crate::egress::Egress) -> Self {
        Self {
            pingone: PingOne::new(kernel, public_url.clone()),
            sunshine: Sunshine::new(kernel, public_url.clone()),
            tines: Tines::new(kernel, public_url.clone(), egress.clone()),
            commercelayer: CommerceLayer::new(kernel, public_url.clone()),
        }
    }

    /// The families that issue credentials, in the order `/v1/authenticate` asks them.
    pub fn verifiers(&self) -> Vec<Arc<dyn Verifier>> {
        vec![
            Arc::new(self.pingone.clone()),
            Arc::new(self.sunshine.clone()),
            Arc::new(self.commercelayer.clone()),
        ]
    }
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
        (name = "native", description = "Latchkey's own organizations, management tokens, audit log, credential verification and JWK Sets"),
        (name = "pingone", description = "PingOne: environments, gateways and gateway credentials"),
        (name = "sunshine", description = "Sunshine Conversations: apps, integrations and their API keys"),
        (name = "tines", description = "Tines: teams, folders and user credentials"),
        (name = "commercelayer", description = "Commerce Layer: the Provisioning API (organizations, roles, api credentials) and the OAuth2 authorization server"),
        (name = "ops", description = "Health, readiness, metrics and this document"),
    )
)]
pub(crate) struct ApiDoc;

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

/// What the server knows of a surface: the path prefixes it owns, its envelope for errors
/// the router itself answers (unknown paths, limits), and the errors its operations document.
pub(crate) struct Owner {
    prefixes: &'static [&'static str],
    render: fn(ApiError) -> Response,
    document: fn(
        &utoipa::openapi::HttpMethod,
        &mut utoipa::openapi::path::Operation,
        &mut utoipa::openapi::Components,
    ),
}

const fn owner<S: Surface>() -> Owner {
    Owner {
        prefixes: S::PREFIXES,
        render: render::<S>,
        document: openapi::document_errors::<S>,
    }
}

/// Who owns a path: the first whose prefix matches.
const OWNERS: &[Owner] = &[
    owner::<PingOneSurface>(),
    owner::<SunshineSurface>(),
    owner::<TinesSurface>(),
    // After Tines: `/api/v1/…` is Tines', the rest of `/api/…` Commerce Layer's.
    owner::<CommerceLayerSurface>(),
    owner::<OAuthSurface>(),
    owner::<Native>(),
];

/// The surface that owns `path` (Latchkey's own when no prefix matches).
fn owner_of(path: &str) -> &'static Owner {
    const NATIVE: Owner = owner::<Native>();
    OWNERS
        .iter()
        .find(|o| o.prefixes.iter().any(|p| path.starts_with(p)))
        .unwrap_or(&NATIVE)
}

/// The application as served: every surface's routes and the documentation UI inside the
/// middleware stack.
pub type App = BoxCloneSyncService<Request, Response, Infallible>;

/// The whole application. The stack wraps the router once, as one service: `Router::layer`
/// would wrap every route in it and clone the whole stack for each request. Only the metrics
/// layer sits inside, where the matched route is known.
pub fn app(
    kernel: &Kernel,
    families: &Families,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    body_limit: usize,
    throttle: &throttle::ThrottleConfig,
) -> App {
    let registry = Registry::new(families.verifiers());
    let native_state = NativeState {
        kernel: kernel.clone(),
        registry,
    };
    let ops_state = ops::OpsState {
        kernel: kernel.clone(),
        metrics,
    };
    let routes = Router::new()
        .merge(native::router(native_state))
        .merge(pingone::api::router(families.pingone.clone()))
        .merge(sunshine::api::router(families.sunshine.clone()))
        .merge(tines::api::router(families.tines.clone()))
        .merge(commercelayer::router(families.commercelayer.clone()))
        .merge(ops::router(ops_state))
        .merge(ops::docs_router(Arc::new(openapi())))
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .layer(middleware::from_fn(track_metrics));
    let stack = ServiceBuilder::new()
        .layer(middleware::from_fn(observe))
        .layer(middleware::from_fn_with_state(
            Arc::new(throttle::Throttle::new(throttle)),
            throttle::limit,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .service(routes);
    BoxCloneSyncService::new(stack)
}

/// A path or method no route serves: 404 or 405, in the envelope of the surface the path
/// belongs to (by prefix), so a client of one product never sees another's error format.
async fn no_route(
    method: axum::http::Method,
    uri: axum::http::Uri,
    matched: Option<MatchedPath>,
) -> Response {
    use axum::http::StatusCode;
    let error = if matched.is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on this path"),
        )
    } else {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    };
    render_for(uri.path(), error)
}

/// `error` in the envelope of the surface that owns `path`.
pub(crate) fn render_for(path: &str, error: ApiError) -> Response {
    (owner_of(path).render)(error)
}

/// Longest client-chosen `X-Request-Id` kept (it goes into every audit event, which are
/// never pruned).
const MAX_REQUEST_ID: usize = 128;

/// Every request's frame: its `X-Request-Id` (the client's own if it sent exactly one of 1 to
/// 128 visible ASCII characters, else a new UUID), echoed on the response; a span that carries
/// it; a panic answered as a generic 500; and, at the default level, one access-log line
/// (paths hold ids, never secrets). One layer rather than four: each wrapped the body again.
async fn observe(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let usable = |v: &HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= MAX_REQUEST_ID && b.iter().all(u8::is_ascii_graphic)
    };
    let mut sent = req.headers().get_all(X_REQUEST_ID).iter();
    let id = match (sent.next(), sent.next()) {
        (Some(id), None) if usable(id) => id.clone(),
        _ => {
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            let id =
                HeaderValue::from_str(uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text))
                    .unwrap_or(HeaderValue::from_static("-"));
            req.headers_mut().insert(X_REQUEST_ID, id.clone());
            id
        }
    };
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = id.to_str().unwrap_or(""),
    );
    let answered = std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    let mut response = answered.unwrap_or_else(ops::panic_response);
    response.headers_mut().entry(X_REQUEST_ID).or_insert(id);
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = start.elapsed().as_secs_f64() * 1e3,
        "finished processing request"
    );
    response
}

/// One series of the request metrics: method, route template and status.
#[derive(Hash, PartialEq, Eq)]
struct Series {
    method: &'static str,
    route: Box<str>,
    status: u16,
}

/// A series as a request sees it, to look one up without allocating.
#[derive(Hash)]
struct SeriesRef<'a> {
    method: &'static str,
    route: &'a str,
    status: u16,
}

impl quick_cache::Equivalent<Series> for SeriesRef<'_> {
    fn equivalent(&self, s: &Series) -> bool {
        self.method == s.method && self.route == &*s.route && self.status == s.status
    }
}

/// The registered handles of each series: the recorder's own lookup builds and hashes a
/// labelled key (three strings) per request. Bounded: routes, methods and statuses are.
static SERIES: std::sync::LazyLock<
    quick_cache::sync::Cache<Series, (metrics::Counter, metrics::Histogram)>,
> = std::sync::LazyLock::new(|| quick_cache::sync::Cache::new(4096));

/// Counts and times requests, labelled by route template (never by id, token or query).
async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    // A fixed set: a client must not be able to add series with made-up methods.
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    };
    let response = next.run(req).await;
    let series = SeriesRef {
        method,
        route: route.as_ref().map_or("unmatched", MatchedPath::as_str),
        status: response.status().as_u16(),
    };
    let (requests, duration) = match SERIES.get(&series) {
        Some(handles) => handles,
        None => {
            let labels = [
                ("method", method.to_owned()),
                ("route", series.route.to_owned()),
                ("status", series.status.to_string()),
            ];
            let handles = (
                metrics::counter!("latchkey_http_requests_total", &labels),
                metrics::histogram!("latchkey_http_request_duration_seconds", &labels),
            );
            let key = Series {
                method,
                route: series.route.into(),
                status: series.status,
            };
            SERIES.insert(key, handles.clone());
            handles
        }
    };
    requests.increment(1);
    duration.record(start.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::StatusCode, routing::get};
    use tower::ServiceExt as _;

    use super::*;

    /// The frame answers a panicking handler with the generic 500, and still names the request.
    #[tokio::test]
    async fn a_panic_is_a_500_with_a_request_id() {
        async fn boom() -> &'static str {
            panic!("a secret in the payload")
        }
        let app = Router::new()
            .route("/boom", get(boom))
            .layer(middleware::from_fn(observe));
        let sent = |id: Option<&str>| {
            let mut req = Request::builder().uri("/boom");
            if let Some(id) = id {
                req = req.header(X_REQUEST_ID, id);
            }
            app.clone().oneshot(req.body(Body::empty()).unwrap())
        };
        let res = sent(Some("req-1")).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()[X_REQUEST_ID], "req-1");
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("internal server error") && !text.contains("secret"),
            "{text}"
        );
        // No usable id of the client's: one is made.
        let res = sent(Some("has space")).await.unwrap();
        let made = res.headers()[X_REQUEST_ID].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");
    }
}
