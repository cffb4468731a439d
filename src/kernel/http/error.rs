//! From a domain error to a response: the status code is chosen once, here, and each
//! surface's [`Surface::render`] draws its own envelope. A 5xx logs its detail and sends a
//! generic message.

use std::marker::PhantomData;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::kernel::CoreError;

/// An error ready to be rendered by any surface.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable machine-readable code in snake_case.
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid management token is required (Authorization: Bearer lk_…)",
        )
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Unauthenticated => Self::unauthenticated(),
            CoreError::RateLimited { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many failed authentications; retry later",
                )
            },
            CoreError::Forbidden(message) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            CoreError::NotFound { what, field } => {
                let e = Self::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("{what} not found"),
                );
                match field {
                    Some(f) => e.with_field(f),
                    None => e,
                }
            }
            CoreError::Malformed { field, message } => {
                Self::new(StatusCode::BAD_REQUEST, "bad_request", message).with_field(field)
            }
            CoreError::Invalid { field, message } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).with_field(field)
            }
            CoreError::Conflict { field, message } => {
                Self::new(StatusCode::CONFLICT, "conflict", message).with_field(field)
            }
            CoreError::LimitExceeded { field, message } => {
                Self::new(StatusCode::BAD_REQUEST, "limit_exceeded", message).with_field(field)
            }
            CoreError::Upstream { failure, message } => {
                use crate::kernel::UpstreamFailure as U;
                let (status, code) = match failure {
                    U::Unreachable => (StatusCode::BAD_GATEWAY, "bad_gateway"),
                    U::Timeout => (StatusCode::GATEWAY_TIMEOUT, "gateway_timeout"),
                    U::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "upstream_too_large"),
                    U::Busy => (StatusCode::TOO_MANY_REQUESTS, "busy"),
                };
                Self {
                    retry_after: (failure == U::Busy).then_some(1),
                    ..Self::new(status, code, message)
                }
            }
            CoreError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal server error",
                )
            }
        }
    }
}

/// Store, crypto and validation errors reach a handler through [`CoreError`]'s rules.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        CoreError::from(e).into()
    }
}

impl From<crate::crypto::CryptoError> for ApiError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        CoreError::from(e).into()
    }
}

impl From<crate::kernel::types::DomainError> for ApiError {
    fn from(e: crate::kernel::types::DomainError) -> Self {
        CoreError::from(e).into()
    }
}

/// A product's error envelope.
pub trait Surface: Send + Sync + 'static {
    /// The path prefixes this surface owns: an unknown path under one of them gets a 404 (or
    /// 405) in this surface's envelope.
    const PREFIXES: &'static [&'static str];

    /// The error body: rendered here and documented in OpenAPI for every status the surface
    /// answers with (`server::document_errors`).
    type Envelope: serde::Serialize + utoipa::ToSchema;

    /// The media type of the envelope (as documented; a surface's middleware may set it).
    const MEDIA_TYPE: &'static str = "application/json";

    /// Statuses the surface's media-type rules answer with (406, 415), if it has any.
    const MEDIA_TYPE_ERRORS: &'static [StatusCode] = &[];

    fn render(error: &ApiError) -> Self::Envelope;

    /// The status this surface answers with (some products use 400 where others use 422).
    fn status(error: &ApiError) -> StatusCode {
        error.status
    }
}

/// An error of surface `S`: handlers return `Result<_, Error<S>>` and `?` converts.
pub struct Error<S: Surface>(pub ApiError, PhantomData<S>);

impl<S: Surface> From<ApiError> for Error<S> {
    fn from(e: ApiError) -> Self {
        Self(e, PhantomData)
    }
}

impl<S: Surface> From<CoreError> for Error<S> {
    fn from(e: CoreError) -> Self {
        Self(e.into(), PhantomData)
    }
}

impl<S: Surface> From<crate::store::StoreError> for Error<S> {
    fn from(e: crate::store::StoreError) -> Self {
        Self(e.into(), PhantomData)
    }
}

impl<S: Surface> From<crate::crypto::CryptoError> for Error<S> {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Self(e.into(), PhantomData)
    }
}

impl<S: Surface> From<crate::kernel::types::DomainError> for Error<S> {
    fn from(e: crate::kernel::types::DomainError) -> Self {
        Self(e.into(), PhantomData)
    }
}

impl<S: Surface> std::fmt::Debug for Error<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<S: Surface> IntoResponse for Error<S> {
    fn into_response(self) -> Response {
        let mut response = (S::status(&self.0), axum::Json(S::render(&self.0))).into_response();
        if let Some(seconds) = self.0.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// Renders `error` in `S`'s envelope (the router's fallback picks `S` by path prefix).
pub fn render<S: Surface>(error: ApiError) -> Response {
    Error::<S>::from(error).into_response()
}
