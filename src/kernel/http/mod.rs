//! HTTP plumbing every surface shares: errors rendered in each product's envelope
//! ([`error::Surface`]), the extractors for the caller and the body, the external base URL,
//! and the native routes (organizations, tokens, audit, `/v1/authenticate`, JWK Sets).
//! Handlers parse, call a service and render; they hold no SQL and no crypto.

use std::sync::Arc;

use axum::http::{HeaderMap, header};

pub mod error;
pub mod extract;
pub mod native;

/// How this server is reached from outside, for links in responses.
#[derive(Debug, Clone, Default)]
pub struct PublicUrl(pub Option<Arc<str>>);

impl PublicUrl {
    /// The configured base URL, else one built from `Host`.
    pub fn base(&self, headers: &HeaderMap) -> String {
        match &self.0 {
            Some(url) => url.to_string(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                format!("http://{host}")
            }
        }
    }
}

/// The client's address as the request limits resolved it (through trusted proxies).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);
