//! Commerce Layer: the Provisioning API (`/api/…`, JSON:API) for organizations, roles and
//! api credentials (OAuth2 clients), and the OAuth2 authorization server (`/oauth/…`) that
//! issues their access tokens — RS512 JWTs signed with the server's keys, published at
//! `/.well-known/jwks.json` — and their part of `/v1/authenticate`.
//!
//! `jsonapi` is the wire format every `/api` route shares, `query` the list parameters
//! (pagination, sorting, Ransack filters, sparse fieldsets, includes), `api` the routes (with
//! each resource's list rules), `objects` how resources look, `service` the rules, `model`
//! kinds and scopes, `oauth` the token endpoint, `authorize` the authorization-code flow's
//! login hand-off, `grants` the code and refresh grants, `provisioning` who calls `/api`,
//! `verify` the live clients and token verification, `store` the SQL.

use std::sync::Arc;

use crate::kernel::{
    Kernel, LiveCache,
    http::{PublicUrl, extract::HasKernel},
};

pub mod api;
pub mod authorize;
pub mod grants;
pub mod jsonapi;
pub mod model;
pub mod oauth;
pub mod objects;
mod params;
pub mod provisioning;
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
    /// Requests per client id at `/oauth/token`, when limited.
    token_limit: Option<Arc<governor::DefaultKeyedRateLimiter<String>>>,
    public_url: PublicUrl,
}

impl CommerceLayer {
    pub fn new(kernel: &Kernel, public_url: PublicUrl) -> Self {
        // Every organization has its `admin` and `read_only` roles from its creation.
        kernel.on_organization_created(Arc::new(|tx, org| {
            Box::pin(async move {
                for role in service::base_roles(&org.id)? {
                    tx.insert_cl_role(&role).await?;
                }
                Ok(())
            })
        }));
        Self {
            clients: kernel.live_cache("cl_client", CLIENT_CACHE_BYTES),
            tokens: kernel.live_cache("cl_access_token", TOKEN_CACHE_BYTES),
            grants: kernel.live_cache("cl_grant", TOKEN_CACHE_BYTES),
            base_roles: Arc::new(quick_cache::sync::Cache::new(BASE_ROLES_KNOWN)),
            token_limit: None,
            kernel: kernel.clone(),
            public_url,
        }
    }

    /// Limits each client to `per_minute` requests at `/oauth/token` (None: no limit).
    pub fn with_token_rate_limit(mut self, per_minute: Option<std::num::NonZeroU32>) -> Self {
        self.token_limit = per_minute
            .map(|n| Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(n))));
        self
    }

    /// Periodic upkeep: forgets expired revocations and authorizations, and rate-limit keys
    /// whose allowance is full again.
    pub async fn upkeep(&self) -> crate::kernel::Result<()> {
        if let Some(limit) = &self.token_limit {
            limit.retain_recent();
            limit.shrink_to_fit();
        }
        let now = crate::kernel::now_ms();
        let mut tx = self.kernel.store().write().await?;
        tx.prune_cl_revoked_tokens(now).await?;
        tx.prune_cl_authorizations(now).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Every Commerce Layer route, with its state: the Provisioning API behind its media-type
/// rules, and the authorization server.
pub fn router(state: CommerceLayer) -> axum::Router {
    let provisioning = api::routes()
        .merge(provisioning::api_routes())
        .split_for_parts()
        .0
        .layer(axum::middleware::from_fn(jsonapi::media_types));
    let oauth = oauth::routes()
        .split_for_parts()
        .0
        .layer(axum::middleware::from_fn(oauth::www_authenticate));
    provisioning
        .merge(oauth)
        .merge(authorize::routes().split_for_parts().0)
        .merge(provisioning::native_routes().split_for_parts().0)
        .with_state(state)
}

/// The OpenAPI document of every Commerce Layer route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api::routes().split_for_parts().1;
    doc.merge(oauth::routes().split_for_parts().1);
    doc.merge(authorize::routes().split_for_parts().1);
    doc.merge(provisioning::api_routes().split_for_parts().1);
    doc.merge(provisioning::native_routes().split_for_parts().1);
    api::document_writes(&mut doc);
    doc
}

impl HasKernel for CommerceLayer {
    fn kernel(&self) -> &Kernel {
        &self.kernel
    }
}
