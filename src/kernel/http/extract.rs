//! Extractors shared by every surface: the authenticated caller and the JSON body, each
//! rejecting in the surface's own error format.

use std::{marker::PhantomData, net::SocketAddr};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request},
    http::{HeaderName, StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::error::{ApiError, Error, Surface};
use crate::kernel::{Ctx, Kernel, RequestMeta};

/// The request's id, client address and external id, for handlers that authenticate the
/// caller themselves.
pub struct Meta(pub RequestMeta);

impl<St: Send + Sync> FromRequestParts<St> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        Ok(Self(request_meta(parts)))
    }
}

/// `X-Request-Id`: set on every request by the server's frame, echoed on its response.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// PingOne's `X-Ping-External-Transaction-Id`, kept with the audit events of the request.
const X_EXTERNAL_ID: HeaderName = HeaderName::from_static("x-ping-external-transaction-id");

pub fn request_meta(parts: &Parts) -> RequestMeta {
    RequestMeta {
        request_id: parts
            .headers
            .get(X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        ip: parts
            .extensions
            .get::<super::ClientIp>()
            .map(|c| c.0)
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ci| ci.0.ip())
            }),
        external_id: parts
            .headers
            .get(X_EXTERNAL_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned),
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The authenticated caller of a management route.
pub struct Auth<S: Surface>(pub Ctx, pub PhantomData<S>);

/// A router state that holds the kernel (every family's does), so the kernel's extractors
/// can reach it without cloning it per request.
pub trait HasKernel: Send + Sync {
    fn kernel(&self) -> &Kernel;
}

impl<S: Surface, St: HasKernel> FromRequestParts<St> for Auth<S> {
    type Rejection = Error<S>;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let meta = request_meta(parts);
        let principal = state.kernel().authenticate(bearer(parts), &meta).await?;
        Ok(Self(Ctx::new(principal, meta), PhantomData))
    }
}

/// A JSON body deserialized into `T`; a wrong type names the field at fault.
pub struct Json<S: Surface, T>(pub T, pub PhantomData<S>);

impl<S: Surface, T: DeserializeOwned, St: Send + Sync> FromRequest<St> for Json<S, T> {
    type Rejection = Error<S>;

    async fn from_request(req: Request, state: &St) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes)
            .map(|v| Self(v, PhantomData))
            .map_err(Error::from)
    }
}

/// `Option<Json<…>>`: an empty body is `None`, anything else must be valid JSON.
impl<S: Surface, T: DeserializeOwned, St: Send + Sync> axum::extract::OptionalFromRequest<St>
    for Json<S, T>
{
    type Rejection = Error<S>;

    async fn from_request(req: Request, state: &St) -> Result<Option<Self>, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse_json(&bytes)
            .map(|v| Some(Self(v, PhantomData)))
            .map_err(Error::from)
    }
}

async fn body_bytes<S: Surface, St: Send + Sync>(
    req: Request,
    state: &St,
) -> Result<Bytes, Error<S>> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large",
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request body could not be read",
            )
        }
        .into()
    })
}

/// A query string deserialized into `T`, rejecting in the surface's format.
pub struct Query<S: Surface, T>(pub T, pub PhantomData<S>);

impl<S: Surface, T: DeserializeOwned, St: Send + Sync> FromRequestParts<St> for Query<S, T> {
    type Rejection = Error<S>;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(|v| Self(v, PhantomData))
            .map_err(|e| {
                let field = e.path().to_string();
                Error::from(
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("query parameter {field} is not valid"),
                    )
                    .with_field(field),
                )
            })
    }
}

/// Parses `bytes` (empty counts as `{}`, since some clients send no body on a POST).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // serde reads a struct from an array too (`["x"]` as `{"name":"x"}`); a body is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body must be a JSON object",
        ));
    }
    // The common case, without tracking the path; only a failure is read again to name it.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut path = e.path().to_string();
        let inner = e.into_inner();
        // serde names a missing field (never a value): report it as that field.
        let text = inner.to_string();
        if let Some(name) = text
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            let field = if path == "." {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            };
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("{field} is required"),
            )
            .with_field(field);
        }
        // "." is the root, "?" an unknown position (a syntax error): neither is a field.
        if path.is_empty() || path == "?" {
            path = ".".to_owned();
        }
        // serde's message can quote the offending value; a secret field's value must not
        // come back, so only its category is named.
        let message = match inner.classify() {
            serde_json::error::Category::Data if path != "." => {
                format!("{path} has the wrong type")
            }
            serde_json::error::Category::Data => "the body must be a JSON object".to_owned(),
            _ => "the body is not valid JSON".to_owned(),
        };
        let error = ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message);
        if path == "." {
            error
        } else {
            error.with_field(path)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct T {
        #[allow(dead_code)]
        a: Option<i64>,
    }

    #[test]
    fn type_errors_name_the_field_but_not_the_value() {
        let e = parse_json::<T>(br#"{"a":"hunter2"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("a"));
        assert!(!e.message.contains("hunter2"));
        assert!(parse_json::<T>(b"").is_ok());
        assert_eq!(
            parse_json::<T>(b"{").unwrap_err().message,
            "the body is not valid JSON"
        );
        for array in [&b"[]"[..], b" [null]", b"[1]"] {
            assert_eq!(
                parse_json::<T>(array).unwrap_err().message,
                "the body must be a JSON object"
            );
        }
    }
}
