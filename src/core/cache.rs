//! In-process caches of the hot path: signing keys, live credential and API key ids,
//! management tokens and pending `lastUsedAt` stamps.
//!
//! Each map is bounded (cleared when it outgrows its limit; it refills from the store).
//! Locks are `std` locks held for a map operation only, never across an `.await`.
//! A deleted credential or key leaves a tombstone: ids are never reused, so a tombstone stays
//! true, and a concurrent reader that loaded the row just before the delete cannot resurrect
//! it. Deletes made on other nodes arrive through the revocation feed (`core::revocations`),
//! so live entries need no expiry of their own.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{
        Arc, LazyLock, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::crypto::signing::{SigningKey, VerifyingKey};

use super::{Principal, sunshine::LiveKey};

const MAX_ENTRIES: usize = 100_000;
/// API keys are verified by id at high rates; room for every key of a large deployment.
const MAX_KEYS: usize = 500_000;
/// How long a live token is trusted without asking the store again. A delete on this node
/// takes effect at once; on another node within this time.
pub const TOKEN_TTL: Duration = Duration::from_secs(1);
/// How stale the revocation feed may be before cached live entries stop counting
/// (it is read every 200 ms).
const FEED_MAX_AGE_MS: u64 = 1_000;
/// Failed authentications allowed per client and window before answering 429 (each failure
/// is an audit write, so this also bounds what a flood of bad tokens costs the store).
pub const MAX_FAILURES: u32 = 30;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// A map that forgets everything when it grows past its bound.
pub struct Bounded<K, V> {
    map: RwLock<HashMap<K, V>>,
    limit: usize,
}

impl<K: Eq + Hash, V: Clone> Default for Bounded<K, V> {
    fn default() -> Self {
        Self::with_limit(MAX_ENTRIES)
    }
}

impl<K: Eq + Hash, V: Clone> Bounded<K, V> {
    pub fn with_limit(limit: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            limit,
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.map.read().ok()?.get(key).cloned()
    }

    /// Inserts unless an entry exists (readers must not overwrite a tombstone).
    pub fn fill(&self, key: K, value: V) -> V {
        let Ok(mut map) = self.map.write() else {
            return value;
        };
        if map.len() >= self.limit && !map.contains_key(&key) {
            map.clear();
        }
        map.entry(key).or_insert(value).clone()
    }

    /// Inserts, replacing what is there (writers: deletes, rotations).
    pub fn put(&self, key: K, value: V) {
        if let Ok(mut map) = self.map.write() {
            if map.len() >= self.limit && !map.contains_key(&key) {
                map.clear();
            }
            map.insert(key, value);
        }
    }

    /// Stores what a reader loaded, unless `keep` says the present entry must stay.
    pub fn refill(&self, key: K, value: V, keep: impl Fn(&V) -> bool) -> V {
        let Ok(mut map) = self.map.write() else {
            return value;
        };
        if let Some(present) = map.get(&key).filter(|v| keep(v)) {
            return present.clone();
        }
        if map.len() >= self.limit && !map.contains_key(&key) {
            map.clear();
        }
        map.insert(key, value.clone());
        value
    }

    pub fn retain(&self, keep: impl FnMut(&K, &mut V) -> bool) {
        if let Ok(mut map) = self.map.write() {
            map.retain(keep);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut map) = self.map.write() {
            map.clear();
        }
    }
}

/// What this node knows of an issued credential or key id.
pub enum Slot<T> {
    Live(Arc<T>),
    /// Deleted (or never issued): final, since ids are never reused.
    Revoked,
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Live(live) => Self::Live(live.clone()),
            Self::Revoked => Self::Revoked,
        }
    }
}

/// Live-or-revoked ids: the verification caches of every family that issues credentials.
impl<T> Bounded<String, Slot<T>> {
    /// The cached answer for an id: `Some(None)` revoked, `None` ask the store. A live entry
    /// counts only while `trust_live` (the revocation feed is current); a tombstone always.
    pub fn lookup(&self, id: &str, trust_live: bool) -> Option<Option<Arc<T>>> {
        let map = self.map.read().ok()?;
        match map.get(id)? {
            Slot::Live(live) if trust_live => Some(Some(live.clone())),
            Slot::Live(_) => None,
            Slot::Revoked => Some(None),
        }
    }

    /// Stores what the store said, unless this node revoked the id meanwhile.
    pub fn loaded(&self, id: &str, loaded: Option<T>) -> Option<Arc<T>> {
        let slot = match loaded {
            Some(live) => Slot::Live(Arc::new(live)),
            None => Slot::Revoked,
        };
        match self.refill(id.to_owned(), slot, |present| {
            matches!(present, Slot::Revoked)
        }) {
            Slot::Live(live) => Some(live),
            Slot::Revoked => None,
        }
    }

    /// Marks ids as revoked on this node, at once.
    pub fn revoke(&self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            self.put(id, Slot::Revoked);
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

pub struct Caches {
    /// (organization, algorithm) → the key that signs now.
    pub signers: Bounded<(String, &'static str), Arc<SigningKey>>,
    /// kid → verifier; `None` caches an unknown kid.
    pub verifiers: Bounded<String, Option<Arc<Verifier>>>,
    /// gateway credential id → what we know of it.
    pub gateway_credentials: Bounded<String, Slot<LiveGatewayCredential>>,
    /// API key id → what we know of it (its secret opened once).
    pub keys: Bounded<String, Slot<LiveKey>>,
    /// token hash → principal and when it was loaded.
    pub tokens: Bounded<[u8; 32], (Principal, Instant)>,
    /// client (IP) → failed authentications in the current window.
    pub failures: Bounded<String, (u32, Instant)>,
    /// credential id → last use (epoch ms) not yet written.
    pub last_used: Mutex<HashMap<String, i64>>,
    /// When this node last read the revocation feed ([`ticks`]; 0: never).
    feed_read_at: AtomicU64,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            signers: Bounded::default(),
            verifiers: Bounded::default(),
            gateway_credentials: Bounded::default(),
            keys: Bounded::with_limit(MAX_KEYS),
            tokens: Bounded::default(),
            failures: Bounded::default(),
            last_used: Mutex::default(),
            feed_read_at: AtomicU64::new(0),
        }
    }
}

/// Milliseconds since this process first asked (monotonic; 0 is reserved for "never").
fn ticks() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

impl Caches {
    /// Records a successful read of the revocation feed.
    pub fn feed_read(&self) {
        self.feed_read_at.store(ticks(), Ordering::Relaxed);
    }

    /// Whether cached live credentials and keys may be trusted: only while this node has
    /// read the revocation feed recently. If the feed stalls, verification asks the store,
    /// so a delete elsewhere is never missed for longer than this.
    pub fn feed_is_current(&self) -> bool {
        let at = self.feed_read_at.load(Ordering::Relaxed);
        at != 0 && ticks().saturating_sub(at) < FEED_MAX_AGE_MS
    }

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

    /// Counts a failed authentication by `client`; `Err(seconds)` once it is over the limit,
    /// until its window ends.
    pub fn count_failure(&self, client: &str) -> Result<(), u64> {
        let now = Instant::now();
        let (count, start) = match self.failures.get(&client.to_owned()) {
            Some((count, start)) if now.duration_since(start) < FAILURE_WINDOW => {
                (count + 1, start)
            }
            _ => (1, now),
        };
        self.failures.put(client.to_owned(), (count, start));
        if count > MAX_FAILURES {
            let left = FAILURE_WINDOW.saturating_sub(now.duration_since(start));
            return Err(left.as_secs().max(1));
        }
        Ok(())
    }

    pub fn forget_token(&self, token_id: &str) {
        self.tokens
            .retain(|_, (principal, _)| principal.token_id != token_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> LiveGatewayCredential {
        LiveGatewayCredential {
            organization_id: "o".into(),
            environment_id: "e".into(),
            gateway_id: "g".into(),
        }
    }

    #[test]
    fn a_revocation_is_never_undone_by_a_late_reader() {
        let cache = &Caches::default().gateway_credentials;
        assert!(cache.lookup("c", true).is_none(), "unknown: ask the store");
        assert!(cache.loaded("c", Some(live())).is_some());
        assert!(matches!(cache.lookup("c", true), Some(Some(_))));
        cache.revoke(["c".to_owned()]);
        // A reader that loaded the row before the delete committed comes back late.
        assert!(cache.loaded("c", Some(live())).is_none());
        assert!(matches!(cache.lookup("c", true), Some(None)));
    }

    #[test]
    fn an_id_the_store_does_not_know_is_cached_as_revoked() {
        let cache = &Caches::default().gateway_credentials;
        assert!(cache.loaded("nope", None).is_none());
        assert!(matches!(cache.lookup("nope", true), Some(None)));
    }

    #[test]
    fn live_entries_count_only_while_the_feed_is_current() {
        let caches = Caches::default();
        assert!(!caches.feed_is_current(), "never read");
        caches.gateway_credentials.loaded("c", Some(live()));
        assert!(
            caches
                .gateway_credentials
                .lookup("c", caches.feed_is_current())
                .is_none()
        );
        caches.feed_read();
        assert!(caches.feed_is_current());
        assert!(matches!(
            caches
                .gateway_credentials
                .lookup("c", caches.feed_is_current()),
            Some(Some(_))
        ));
        caches.feed_read_at.store(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(FEED_MAX_AGE_MS + 10));
        assert!(!caches.feed_is_current(), "stale");
        caches.gateway_credentials.revoke(["c".to_owned()]);
        assert!(
            matches!(caches.gateway_credentials.lookup("c", false), Some(None)),
            "tombstones hold regardless"
        );
    }

    #[test]
    fn a_full_map_starts_over() {
        let map: Bounded<u32, u32> = Bounded::with_limit(2);
        map.put(1, 1);
        map.put(2, 2);
        map.put(3, 3);
        assert_eq!(map.get(&1), None);
        assert_eq!(map.get(&3), Some(3));
    }

    #[test]
    fn usage_keeps_the_latest_stamp() {
        let caches = Caches::default();
        caches.record_use("c", 10);
        caches.record_use("c", 5);
        assert_eq!(caches.pending_use("c"), Some(10));
        assert_eq!(caches.take_uses().get("c"), Some(&10));
        assert_eq!(caches.pending_use("c"), None);
    }
}
