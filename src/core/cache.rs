//! In-process caches of the hot path: signing keys, live credential ids, management tokens
//! and pending `lastUsedAt` stamps.
//!
//! Each map is bounded (cleared when it outgrows its limit; it refills from the store).
//! Locks are `std` locks held for a map operation only, never across an `.await`.
//! A deleted credential leaves a tombstone: ids are never reused, so a tombstone stays true,
//! and a concurrent reader that loaded the row just before the delete cannot resurrect it
//! (readers only fill empty slots).

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use crate::crypto::signing::{SigningKey, VerifyingKey};

use super::Principal;

const MAX_ENTRIES: usize = 100_000;
/// How long a management token's principal is trusted without asking the store. A token
/// deleted on this node is dropped at once; another node sees it within this time.
pub const TOKEN_TTL: Duration = Duration::from_secs(1);

/// A map that forgets everything when it grows past its bound.
pub struct Bounded<K, V> {
    map: RwLock<HashMap<K, V>>,
}

impl<K: Eq + Hash, V: Clone> Default for Bounded<K, V> {
    fn default() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Bounded<K, V> {
    pub fn get(&self, key: &K) -> Option<V> {
        self.map.read().ok()?.get(key).cloned()
    }

    /// Inserts unless an entry exists (readers must not overwrite a tombstone).
    pub fn fill(&self, key: K, value: V) -> V {
        let Ok(mut map) = self.map.write() else {
            return value;
        };
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            map.clear();
        }
        map.entry(key).or_insert(value).clone()
    }

    /// Inserts, replacing what is there (writers: deletes, rotations).
    pub fn put(&self, key: K, value: V) {
        if let Ok(mut map) = self.map.write() {
            if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
                map.clear();
            }
            map.insert(key, value);
        }
    }

    pub fn retain(&self, keep: impl FnMut(&K, &mut V) -> bool) {
        if let Ok(mut map) = self.map.write() {
            map.retain(keep);
        }
    }
}

/// A live gateway credential, as the hot path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGatewayCredential {
    pub organization_id: String,
    pub environment_id: String,
    pub gateway_id: String,
}

/// A key that verifies, with the organization it belongs to.
pub struct Verifier {
    pub organization_id: String,
    pub key: VerifyingKey,
}

#[derive(Default)]
pub struct Caches {
    /// (organization, algorithm) → the key that signs now.
    pub signers: Bounded<(String, &'static str), Arc<SigningKey>>,
    /// kid → verifier; `None` caches an unknown kid.
    pub verifiers: Bounded<String, Option<Arc<Verifier>>>,
    /// credential id → live record; `None` is a tombstone (deleted or never existed).
    pub gateway_credentials: Bounded<String, Option<Arc<LiveGatewayCredential>>>,
    /// token hash → principal and when it was loaded.
    pub tokens: Bounded<[u8; 32], (Principal, Instant)>,
    /// credential id → last use (epoch ms) not yet written.
    pub last_used: Mutex<HashMap<String, i64>>,
}

impl Caches {
    pub fn record_use(&self, id: &str, at: i64) {
        if let Ok(mut pending) = self.last_used.lock() {
            let slot = pending.entry(id.to_owned()).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    pub fn pending_use(&self, id: &str) -> Option<i64> {
        self.last_used.lock().ok()?.get(id).copied()
    }

    pub fn take_uses(&self) -> HashMap<String, i64> {
        self.last_used
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }

    /// Marks credentials as revoked on this node, at once.
    pub fn revoke_gateway_credentials(&self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            self.gateway_credentials.put(id, None);
        }
    }

    pub fn forget_token(&self, token_id: &str) {
        self.tokens
            .retain(|_, (principal, _)| principal.token_id != token_id);
    }
}
