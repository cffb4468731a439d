//! Sunshine Conversations: apps, integrations and API keys (account, app and integration
//! scoped), who may do what with them, and their verification on the hot path. `api` is the
//! wire format (`/v2/apps/…` and `/v1/account_keys`), `service` the rules, `authz` who may do
//! what, `model` the types, `pagination` the cursors, `store` the SQL, `verify` key
//! authentication and the part of `/v1/authenticate`.

use crate::kernel::{
    Kernel, LiveCache,
    http::{PublicUrl, extract::HasKernel},
};

pub mod api;
pub mod authz;
pub mod model;
pub mod pagination;
pub mod service;
pub mod store;
pub mod verify;

pub use api::SunshineSurface;

/// Memory for live keys with their opened secrets (about 300 bytes each).
const CACHE_BYTES: u64 = 256 << 20;

/// The Sunshine family: its service, and the state of its routes.
#[derive(Clone)]
pub struct Sunshine {
    kernel: Kernel,
    keys: LiveCache<verify::LiveKey>,
    public_url: PublicUrl,
}

impl Sunshine {
    pub fn new(kernel: &Kernel, public_url: PublicUrl) -> Self {
        Self {
            keys: kernel.live_cache("api_key", CACHE_BYTES),
            kernel: kernel.clone(),
            public_url,
        }
    }
}

impl HasKernel for Sunshine {
    fn kernel(&self) -> &Kernel {
        &self.kernel
    }
}
