//! Commerce Layer: the Provisioning API (`/api/…`, JSON:API) for organizations, roles and
//! api credentials (OAuth2 clients), and the OAuth2 authorization server (`/oauth/…`) that
//! issues their access tokens — RS512 JWTs signed with the server's keys, published at
//! `/.well-known/jwks.json` — and their part of `/v1/authenticate`.
//!
//! `jsonapi` is the wire format every `/api` route shares, `query` the list parameters
//! (pagination, sorting, Ransack filters, sparse fieldsets, includes), `api` the routes,
//! `service` the rules, `model` kinds and scopes, `oauth` the token endpoint, `verify` the
//! live clients and token verification, `store` the SQL.

use std::sync::Arc;

use crate::kernel::{
    Kernel, LiveCache,
    http::{PublicUrl, extract::HasKernel},
};

pub mod api;
pub mod authorize;
pub mod jsonapi;
pub mod model;
pub mod oauth;
pub mod query;
pub mod service;
pub mod store;
pub mod verify;

pub use jsonapi::CommerceLayerSurface;
pub use oauth::OAuthSurface;

/// Memory for live clients (a few hundred bytes each) and for checked token ids.
const CLIENT_CACHE_BYTES: u64 = 64 << 20;
const TOKEN_CACHE_BYTES: u64 = 64 << 20;
/// Organizations known to have their base roles, per node.
const BASE_ROLES_KNOWN: usize = 100_000;

/// The Commerce Layer family: its service, and the state of its routes.
#[derive(Clone)]
pub struct CommerceLayer {
    kernel: Kernel,
    /// Api credentials by client id, as the token endpoint and verification need them.
    clients: LiveCache<verify::LiveClient>,
    /// Access-token ids (`jti`) checked against the revocation list: live = not revoked.
    tokens: LiveCache<verify::Live>,
    /// Authorization-code grants: live = not revoked.
    grants: LiveCache<verify::Live>,
    base_roles: Arc<quick_cache::sync::Cache<String, ()>>,
    public_url: PublicUrl,
}

impl CommerceLayer {
    pub fn new(kernel: &Kernel, public_url: PublicUrl) -> Self {
        Self {
            clients: kernel.live_cache("cl_client", CLIENT_CACHE_BYTES),
            tokens: kernel.live_cache("cl_access_token", TOKEN_CACHE_BYTES),
            grants: kernel.live_cache("cl_grant", TOKEN_CACHE_BYTES),
            base_roles: Arc::new(quick_cache::sync::Cache::new(BASE_ROLES_KNOWN)),
            kernel: kernel.clone(),
            public_url,
        }
    }
}

/// Every Commerce Layer route, with its state: the Provisioning API behind its media-type
/// rules, and the authorization server.
pub fn router(state: CommerceLayer) -> axum::Router {
    let provisioning = api::routes()
        .split_for_parts()
        .0
        .layer(axum::middleware::from_fn(jsonapi::media_types));
    provisioning
        .merge(oauth::routes().split_for_parts().0)
        .merge(authorize::routes().split_for_parts().0)
        .with_state(state)
}

/// The OpenAPI document of every Commerce Layer route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api::routes().split_for_parts().1;
    doc.merge(oauth::routes().split_for_parts().1);
    doc.merge(authorize::routes().split_for_parts().1);
    doc
}

impl HasKernel for CommerceLayer {
    fn kernel(&self) -> &Kernel {
        &self.kernel
    }
}
