//! PingOne gateway credentials: environments, gateways and gateway credentials (RS256 JWTs
//! shown once, at most five per gateway), their verification on the hot path, and the token
//! exchange. `api` is the wire format, `service` the rules, `model` the types, `store` the
//! SQL, `verify` the part of `/v1/authenticate` and the exchange.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::{
    crypto::jwt::JwtAlgorithm,
    kernel::{
        Kernel, LiveCache,
        http::{PublicUrl, extract::HasKernel},
    },
};

pub mod api;
pub mod model;
pub mod service;
pub mod store;
pub mod verify;

pub use api::PingOneSurface;

/// Gateway credentials and access tokens are RS256 JWTs.
const SIGNING_ALGORITHM: JwtAlgorithm = JwtAlgorithm::RS256;
/// Memory for live gateway credentials (about 200 bytes each).
const CACHE_BYTES: u64 = 64 << 20;

/// The PingOne family: its service, and the state of its routes.
#[derive(Clone)]
pub struct PingOne {
    kernel: Kernel,
    credentials: LiveCache<verify::LiveGatewayCredential>,
    usage: Arc<Usage>,
    public_url: PublicUrl,
}

impl PingOne {
    pub fn new(kernel: &Kernel, public_url: PublicUrl) -> Self {
        Self {
            credentials: kernel.live_cache("gateway_credential", CACHE_BYTES),
            kernel: kernel.clone(),
            usage: Arc::default(),
            public_url,
        }
    }
}

impl HasKernel for PingOne {
    fn kernel(&self) -> &Kernel {
        &self.kernel
    }
}

/// Credential uses not yet written (`lastUsedAt`): one batched write instead of one per use.
#[derive(Default)]
struct Usage(Mutex<HashMap<String, i64>>);

impl Usage {
    fn record(&self, id: &str, at: i64) {
        if let Ok(mut pending) = self.0.lock() {
            let slot = pending.entry(id.to_owned()).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    fn pending(&self, id: &str) -> Option<i64> {
        self.0.lock().ok()?.get(id).copied()
    }

    fn take(&self) -> HashMap<String, i64> {
        self.0
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::Usage;

    #[test]
    fn usage_keeps_the_latest_stamp() {
        let usage = Usage::default();
        usage.record("c", 10);
        usage.record("c", 5);
        assert_eq!(usage.pending("c"), Some(10));
        assert_eq!(usage.take().get("c"), Some(&10));
        assert_eq!(usage.pending("c"), None);
    }
}
