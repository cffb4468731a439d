//! The token cache: fetched tokens (and AWS sessions) by `(partition, credential id,
//! version)`, one upstream fetch however many callers wait, a failure shared for a second.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use secrecy::SecretString;

use super::EgressError;

/// How long a failed fetch is answered from the cache, so waiters share one failure.
const FAILURE_TTL: Duration = Duration::from_secs(1);
/// The longest a token is kept, whatever the token endpoint says.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// `(partition, credential id, version)`: the partition is the session's (for Tines, the
/// team and whether test credentials are used), since references inside a credential's own
/// requests resolve in the caller's scope and must not serve another scope's callers.
pub type CacheKey = (Arc<str>, i64, i64);

/// Cached tokens, by [`CacheKey`].
pub struct TokenCache {
    cache: quick_cache::sync::Cache<CacheKey, Cached>,
}

#[derive(Clone)]
enum Cached {
    Token(SecretString, Instant),
    Failed(EgressError, Instant),
}

impl Cached {
    fn fresh(&self, now: Instant) -> bool {
        match self {
            Self::Token(_, until) | Self::Failed(_, until) => now < *until,
        }
    }
}

impl TokenCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            cache: quick_cache::sync::Cache::new(capacity),
        }
    }

    /// The cached token, or the one `fetch` gets (with how long it may be used). Concurrent
    /// callers for one key wait for a single fetch; a failure is shared for a second.
    pub(super) async fn get_or_fetch(
        &self,
        key: CacheKey,
        fetch: impl Future<Output = Result<(SecretString, Duration), EgressError>>,
    ) -> Result<SecretString, EgressError> {
        let guard = loop {
            match self.cache.get_value_or_guard_async(&key).await {
                Ok(cached) if cached.fresh(Instant::now()) => {
                    return match cached {
                        Cached::Token(token, _) => Ok(token),
                        Cached::Failed(e, _) => Err(e),
                    };
                }
                Ok(_) => {
                    self.cache.remove_if(&key, |c| !c.fresh(Instant::now()));
                }
                Err(guard) => break guard,
            }
        };
        let now = Instant::now();
        let (cached, result) = match fetch.await {
            Ok((token, lifetime)) => (
                Cached::Token(token.clone(), now + lifetime.min(MAX_TOKEN_LIFETIME)),
                Ok(token),
            ),
            Err(e) => (Cached::Failed(e.clone(), now + FAILURE_TTL), Err(e)),
        };
        let _ = guard.insert(cached);
        result
    }
}
