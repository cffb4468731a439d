//! Operations: liveness, readiness, Prometheus metrics, the OpenAPI document and its UI.

use std::{any::Any, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_swagger_ui::SwaggerUi;

use crate::kernel::Kernel;

#[derive(Clone)]
pub struct OpsState {
    pub kernel: Kernel,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

pub fn routes() -> OpenApiRouter<OpsState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

pub fn router(state: OpsState) -> Router {
    routes().split_for_parts().0.with_state(state)
}

/// `/docs` (Swagger UI, vendored) and `/openapi.json`.
pub fn docs_router(doc: Arc<utoipa::openapi::OpenApi>) -> Router {
    SwaggerUi::new("/docs")
        .url("/openapi.json", (*doc).clone())
        .into()
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200)))]
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// The store answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200), (status = 503)))]
async fn readyz(State(s): State<OpsState>) -> Response {
    match s.kernel.ready().await {
        Ok(()) => axum::Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain")))]
async fn metrics(State(s): State<OpsState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// A panic becomes a generic 500; its payload may hold request data, so it is not echoed.
pub fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({ "error": { "code": "internal", "message": "internal server error", "details": [] } })))
        .into_response()
}
