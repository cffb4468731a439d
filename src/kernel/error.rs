//! Domain errors: what went wrong, in terms every surface can render in its own envelope
//! (`kernel::http::error` maps them to status codes, once). Nothing here knows HTTP.

use crate::store::StoreError;

use super::types::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("missing or invalid token")]
    Unauthenticated,
    /// Too many failed attempts from this client; try again after this many seconds.
    #[error("too many failed authentications")]
    RateLimited { retry_after: u64 },
    #[error("{0}")]
    Forbidden(String),
    /// The named resource does not exist for this caller (another tenant's ids included).
    #[error("{what} not found")]
    NotFound {
        what: &'static str,
        field: Option<&'static str>,
    },
    /// The request is structurally wrong: a required field is missing or has the wrong type.
    #[error("{message}")]
    Malformed { field: String, message: String },
    /// A field is present and well-typed but its value is not acceptable.
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("{message}")]
    Conflict { field: String, message: String },
    /// A count limit (e.g. credentials per gateway) would be exceeded; nothing was created.
    #[error("{message}")]
    LimitExceeded {
        field: &'static str,
        message: String,
    },
    /// An outbound request on the caller's behalf failed beyond Latchkey.
    #[error("{message}")]
    Upstream {
        failure: UpstreamFailure,
        message: String,
    },
    /// Details are logged where this is rendered, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// How an outbound request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Could not connect, or the upstream broke the exchange (or a credential's fetch failed).
    Unreachable,
    Timeout,
    /// The answer is larger than Latchkey reads.
    TooLarge,
    /// The organization has as many upstream requests in flight as it may.
    Busy,
}

impl CoreError {
    pub fn not_found(what: &'static str) -> Self {
        Self::NotFound { what, field: None }
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
    pub fn malformed(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Malformed {
            field: field.into(),
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::crypto::CryptoError> for CoreError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Self::Internal(format!("crypto: {e}"))
    }
}

impl From<DomainError> for CoreError {
    fn from(e: DomainError) -> Self {
        Self::Invalid {
            field: e.field.to_owned(),
            message: e.message,
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
