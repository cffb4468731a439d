//! The verification caches: what this node knows of issued credential and key ids, on
//! quick_cache.
//!
//! A [`LiveCache`] answers "is this id live, and what is it?" from memory. It is bounded by
//! weight (bytes, roughly), and its S3-FIFO eviction keeps a flood of one-hit ids (random key
//! ids, say) in a small probation queue, so they cannot push out the hot set. A miss loads
//! from the store once however many callers wait for it (a placeholder guard); an id the
//! store does not know is cached as `None`. (moka was tried first: its per-read bookkeeping
//! cost a third of the verification rate with 100,000 live keys; see bench/README.md.)
//!
//! Revocations are tombstones in a second map, checked first, so a reader that loaded a row
//! just before its delete committed cannot bring it back. Only the kernel writes tombstones:
//! a family revokes through [`super::tx::WriteTx::revoke`], which also puts the revocation
//! in the feed every other node reads (`kernel::feed`). Live entries are trusted only while
//! this node's feed is current, and never for longer than [`MAX_AGE`] (a backstop). A hit
//! costs one shard read lock: a live entry is never left in place for a revoked id.

use std::{
    future::Future,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{CoreError, Result};

/// The longest a live entry is trusted without reading the store again: a backstop, should
/// the feed ever miss a revocation. As long as the feed's retention, so a hot key costs one
/// store read per ten minutes (at 60 s, 100,000 hot keys cost ~1,700 reads/s and a third of
/// the verification rate on SQLite; see bench/README.md).
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);
const MAX_AGE_MS: u64 = 10 * 60 * 1000;
/// How long a tombstone is kept: longer than any live entry a late reader could have put
/// back, so the tombstone always shadows it.
const TOMBSTONE_AGE: Duration = Duration::from_secs(20 * 60);
/// Tombstones kept at most (revocations are authenticated writes; this is generous).
const MAX_TOMBSTONES: usize = 1_000_000;
/// Bytes counted per entry on top of its value and any heap id: the map's slot (an inline
/// id included) and its bookkeeping.
const ENTRY_OVERHEAD: usize = 112;
/// How stale the revocation feed may be before cached live entries stop counting (it is
/// read every 200 ms).
const FEED_MAX_AGE_MS: u64 = 1_000;

/// The approximate heap size of a cached value, in bytes, for the cache's weight bound.
pub trait Weigh {
    fn weight(&self) -> usize;
}

/// Milliseconds since this process first asked (monotonic; 0 is reserved for "never").
pub(crate) fn ticks() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

/// When this node last read the revocation feed.
#[derive(Debug, Default)]
pub(crate) struct FeedClock {
    read_at: AtomicU64,
}

impl FeedClock {
    #[cfg(test)]
    pub(crate) fn mark_read(&self) {
        self.mark_read_at(ticks());
    }

    /// Records a read of the feed that began at `at` ([`ticks`]); never moves backwards.
    pub(crate) fn mark_read_at(&self, at: u64) {
        self.read_at.fetch_max(at, Ordering::Relaxed);
    }

    /// Whether cached live entries may be trusted: only while this node has read the
    /// revocation feed recently. If the feed stalls, verification asks the store, so a
    /// delete elsewhere is never missed for longer than this.
    pub(crate) fn is_current(&self) -> bool {
        self.is_current_at(ticks())
    }

    fn is_current_at(&self, now: u64) -> bool {
        let at = self.read_at.load(Ordering::Relaxed);
        at != 0 && now.saturating_sub(at) < FEED_MAX_AGE_MS
    }

    #[cfg(test)]
    pub(crate) fn mark_stale(&self) {
        self.read_at.store(0, Ordering::Relaxed);
    }
}

/// Bytes of an id kept in the map's own slot: every id Latchkey makes fits (a UUID is 36).
const INLINE_ID: usize = 38;

/// An id as a cache key. Kept in the slot itself up to [`INLINE_ID`] bytes, so a hit reads
/// no other memory for the key (with 1,000,000 keys cached, each such read is a cache and
/// TLB miss); longer ids go to the heap. Hashes and compares as its bytes (`[u8]`), so the
/// maps are searched with `id.as_bytes()`.
#[derive(Clone)]
enum Id {
    Inline(u8, [u8; INLINE_ID]),
    Heap(Box<[u8]>),
}

impl Id {
    fn new(id: &str) -> Self {
        let bytes = id.as_bytes();
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE_ID => {
                let mut inline = [0; INLINE_ID];
                inline[..bytes.len()].copy_from_slice(bytes);
                Self::Inline(len, inline)
            }
            _ => Self::Heap(bytes.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline(len, bytes) => &bytes[..usize::from(*len)],
            Self::Heap(bytes) => bytes,
        }
    }

    /// Heap bytes beyond the slot.
    fn heap_len(&self) -> usize {
        match self {
            Self::Inline(..) => 0,
            Self::Heap(bytes) => bytes.len(),
        }
    }
}

impl std::borrow::Borrow<[u8]> for Id {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Id {}

impl std::hash::Hash for Id {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// A cached answer and when it was read from the store ([`ticks`]).
struct Entry<T> {
    live: Option<Arc<T>>,
    loaded_at: u64,
}

impl<T> Entry<T> {
    fn is_fresh(&self, now: u64) -> bool {
        now.saturating_sub(self.loaded_at) < MAX_AGE_MS
    }
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Self {
            live: self.live.clone(),
            loaded_at: self.loaded_at,
        }
    }
}

#[derive(Clone, Copy)]
struct ByWeight;

impl<T: Weigh> quick_cache::Weighter<Id, Entry<T>> for ByWeight {
    fn weight(&self, id: &Id, entry: &Entry<T>) -> u64 {
        let value = entry.live.as_ref().map_or(0, |v| v.weight());
        u64::try_from(ENTRY_OVERHEAD + id.heap_len() + value).unwrap_or(u64::MAX)
    }
}

/// A cache of live-or-revoked ids of one kind (`gateway_credential`, `api_key`, …).
pub struct LiveCache<T> {
    kind: &'static str,
    live: Arc<quick_cache::sync::Cache<Id, Entry<T>, ByWeight>>,
    /// Revoked ids, and when.
    revoked: Arc<quick_cache::sync::Cache<Id, Instant>>,
    /// Ids that changed, and when ([`ticks`]): an entry loaded before that is stale.
    changed: Arc<quick_cache::sync::Cache<Id, u64>>,
    /// Ids the store did not know, and when they were read ([`ticks`]): kept apart from the
    /// live entries, so a flood of made-up ids takes no room from them.
    unknown: Arc<quick_cache::sync::Cache<Id, u64>>,
    feed: Arc<FeedClock>,
}

impl<T> Clone for LiveCache<T> {
    fn clone(&self) -> Self {
        Self {
            kind: self.kind,
            live: self.live.clone(),
            revoked: self.revoked.clone(),
            changed: self.changed.clone(),
            unknown: self.unknown.clone(),
            feed: self.feed.clone(),
        }
    }
}

impl<T: Weigh + Send + Sync + 'static> LiveCache<T> {
    pub(crate) fn new(kind: &'static str, max_bytes: u64, feed: Arc<FeedClock>) -> Self {
        let estimated = usize::try_from(max_bytes / 256)
            .unwrap_or(usize::MAX)
            .max(16);
        Self {
            kind,
            live: Arc::new(quick_cache::sync::Cache::with_weighter(
                estimated, max_bytes, ByWeight,
            )),
            revoked: Arc::new(quick_cache::sync::Cache::new(MAX_TOMBSTONES)),
            changed: Arc::new(quick_cache::sync::Cache::new(MAX_TOMBSTONES)),
            unknown: Arc::new(quick_cache::sync::Cache::new(MAX_TOMBSTONES)),
            feed,
        }
    }

    /// The kind of id this cache holds, as written in the revocation feed.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    fn is_revoked(&self, id: &str) -> bool {
        self.revoked
            .get(id.as_bytes())
            .is_some_and(|at| at.elapsed() < TOMBSTONE_AGE)
    }

    /// The live entry for `id` (`None`: revoked or unknown), from memory when possible, else
    /// from `load` — called at most once at a time per id, on this node.
    pub async fn get<F, Fut>(&self, id: &str, load: F) -> Result<Option<Arc<T>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        // A live entry is never there for a revoked id (see `miss` and `tombstone`), so a
        // hit needs no look at the tombstones.
        let now = ticks();
        if self.feed.is_current_at(now) {
            if let Some(entry) = self.live.get(id.as_bytes())
                && entry.is_fresh(now)
            {
                return Ok(entry.live);
            }
            if self
                .unknown
                .get(id.as_bytes())
                .is_some_and(|at| now.saturating_sub(at) < MAX_AGE_MS)
            {
                return Ok(None);
            }
        }
        // Boxed, so the store's futures do not weigh on every cached call.
        Box::pin(self.miss(id, load)).await
    }

    async fn miss<F, Fut>(&self, id: &str, load: F) -> Result<Option<Arc<T>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        if self.is_revoked(id) {
            return Ok(None);
        }
        if !self.feed.is_current() {
            // What is cached may have been revoked elsewhere: ask the store, keep nothing.
            metrics::counter!("latchkey_cache_loads_total", "cache" => self.kind, "why" => "feed_stale")
                .increment(1);
            self.live.remove(id.as_bytes());
            let loaded = load().await?.map(Arc::new);
            return Ok(loaded.filter(|_| !self.is_revoked(id)));
        }
        // Absent, or older than MAX_AGE: read the store (once, for every waiting caller).
        self.live
            .remove_if(id.as_bytes(), |entry| !entry.is_fresh(ticks()));
        let entry = self
            .live
            .get_or_insert_async(&Id::new(id), async {
                // Stamped when the read begins: what changed after that may be missing.
                let loaded_at = ticks();
                metrics::counter!("latchkey_cache_loads_total", "cache" => self.kind, "why" => "absent")
                    .increment(1);
                Ok::<_, CoreError>(Entry {
                    live: load().await?.map(Arc::new),
                    loaded_at,
                })
            })
            .await?;
        // A change that landed while the store was read: answer this caller, keep nothing.
        if let Some(at) = self.changed.get(id.as_bytes())
            && at >= entry.loaded_at
        {
            self.live.remove_if(id.as_bytes(), |e| e.loaded_at <= at);
        }
        // A revocation that landed while the store was read wins, and the stale entry goes:
        // either this check sees the tombstone, or the tombstone was written after the entry
        // was, and `tombstone` removed it.
        if self.is_revoked(id) {
            self.live.remove(id.as_bytes());
            return Ok(None);
        }
        // An unknown id moves to its own, separately bounded map (unless it changed since).
        if entry.live.is_none()
            && self
                .live
                .remove_if(id.as_bytes(), |e| e.live.is_none())
                .is_some()
        {
            let changed = || {
                self.changed
                    .get(id.as_bytes())
                    .is_some_and(|at| at >= entry.loaded_at)
            };
            if !changed() {
                self.unknown.insert(Id::new(id), entry.loaded_at);
                // A change marked between the check and the insert: `refresh` may have run
                // before the insert, so look again (as for live entries).
                if changed() {
                    self.unknown.remove(id.as_bytes());
                }
            }
        }
        Ok(entry.live)
    }

    /// Drops every live entry (the feed showed a gap); tombstones stay.
    fn clear_live(&self) {
        self.live.clear();
        self.unknown.clear();
    }

    /// Drops what is cached for `id`, which changed, so it is read again. (A reader that
    /// began loading before this sees the mark after putting its entry in, and removes it.)
    fn refresh(&self, id: &str) {
        self.changed.insert(Id::new(id), ticks());
        self.live.remove(id.as_bytes());
        self.unknown.remove(id.as_bytes());
    }

    /// Marks `id` revoked and drops its live entry. (A reader that loaded the row before
    /// this checks the tombstone after putting its entry in, and removes it.)
    fn tombstone(&self, id: &str) {
        self.revoked.insert(Id::new(id), Instant::now());
        self.live.remove(id.as_bytes());
    }

    #[cfg(test)]
    pub(crate) fn holds(&self, id: &str) -> bool {
        self.live.contains_key(id.as_bytes())
    }
}

/// What the kernel does to a family's cache: tombstone ids, or forget every live entry.
pub(crate) trait Revocable: Send + Sync {
    fn kind(&self) -> &'static str;
    fn tombstone(&self, id: &str);
    fn refresh(&self, id: &str);
    fn clear_live(&self);
}

impl<T: Weigh + Send + Sync + 'static> Revocable for LiveCache<T> {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn tombstone(&self, id: &str) {
        LiveCache::tombstone(self, id);
    }
    fn refresh(&self, id: &str) {
        LiveCache::refresh(self, id);
    }
    fn clear_live(&self) {
        LiveCache::clear_live(self);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    struct Live(u32);
    impl Weigh for Live {
        fn weight(&self) -> usize {
            16
        }
    }

    fn cache(max_bytes: u64) -> (LiveCache<Live>, Arc<FeedClock>) {
        let feed = Arc::new(FeedClock::default());
        feed.mark_read();
        (LiveCache::new("test", max_bytes, feed.clone()), feed)
    }

    async fn value(c: &LiveCache<Live>, id: &str, stored: Option<u32>) -> Option<u32> {
        c.get(id, || async move { Ok(stored.map(Live)) })
            .await
            .unwrap()
            .map(|l| l.0)
    }

    #[tokio::test]
    async fn a_revocation_is_never_undone_by_a_late_reader() {
        let (c, _) = cache(1 << 20);
        assert_eq!(value(&c, "c", Some(1)).await, Some(1));
        assert_eq!(value(&c, "c", None).await, Some(1), "answered from memory");
        c.tombstone("c");
        assert_eq!(value(&c, "c", Some(1)).await, None);
        // A reader that loaded the row before the delete committed comes back late: the
        // revocation lands while it reads the store.
        let late = c
            .get("d", || async {
                c.tombstone("d");
                Ok(Some(Live(1)))
            })
            .await
            .unwrap();
        assert!(late.is_none());
        assert!(!c.holds("d"), "the late reader's entry went");
        assert_eq!(value(&c, "d", Some(1)).await, None);
    }

    #[tokio::test]
    async fn a_change_is_read_again_and_never_undone_by_a_late_reader() {
        let (c, _) = cache(1 << 20);
        assert_eq!(value(&c, "c", Some(1)).await, Some(1));
        c.refresh("c");
        // (Within the millisecond of a change, a read cannot be told from one that began
        // before it, so nothing is kept yet.)
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(
            value(&c, "c", Some(2)).await,
            Some(2),
            "read again, not revoked"
        );
        assert_eq!(value(&c, "c", Some(3)).await, Some(2), "and cached again");
        // A reader that loaded the old row comes back after the change: it gets its answer,
        // but the stale entry is not kept.
        let late = c
            .get("d", || async {
                c.refresh("d");
                Ok(Some(Live(1)))
            })
            .await
            .unwrap();
        assert_eq!(late.map(|l| l.0), Some(1));
        assert!(!c.holds("d"), "the late reader's entry went");
        assert_eq!(value(&c, "d", Some(2)).await, Some(2));
    }

    #[tokio::test]
    async fn an_id_the_store_does_not_know_is_cached_as_unknown() {
        let (c, _) = cache(1 << 20);
        assert_eq!(value(&c, "nope", None).await, None);
        assert_eq!(value(&c, "nope", Some(1)).await, None, "from memory");
        assert!(!c.holds("nope"), "not among the live entries");
        c.refresh("nope");
        assert_eq!(
            value(&c, "nope", Some(1)).await,
            Some(1),
            "a change reads again"
        );
    }

    #[tokio::test]
    async fn unknown_ids_take_no_room_from_live_ones() {
        // Room for a handful of live entries; far more unknown ids than that.
        let (c, _) = cache(2_000);
        assert_eq!(value(&c, "hot", Some(1)).await, Some(1));
        for i in 0..5_000 {
            assert_eq!(value(&c, &format!("made-up-{i}"), None).await, None);
        }
        assert!(c.holds("hot"), "the live entry stayed");
        assert_eq!(
            c.live.len(),
            1,
            "and is the only one: unknown ids weigh nothing there"
        );
    }

    #[tokio::test]
    async fn live_entries_count_only_while_the_feed_is_current() {
        let (c, feed) = cache(1 << 20);
        assert_eq!(value(&c, "c", Some(1)).await, Some(1));
        feed.mark_stale();
        assert_eq!(
            value(&c, "c", Some(2)).await,
            Some(2),
            "stale: the store answers"
        );
        assert_eq!(value(&c, "c", None).await, None, "and nothing is kept");
        c.tombstone("c");
        feed.mark_read();
        assert_eq!(
            value(&c, "c", Some(1)).await,
            None,
            "tombstones hold regardless"
        );
    }

    #[tokio::test]
    async fn a_thousand_concurrent_misses_make_one_store_read() {
        let (c, _) = cache(1 << 20);
        let reads = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..1000 {
            let (c, reads) = (c.clone(), reads.clone());
            tasks.spawn(async move {
                c.get("hot", || async move {
                    reads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(Some(Live(7)))
                })
                .await
                .unwrap()
                .map(|l| l.0)
            });
        }
        while let Some(got) = tasks.join_next().await {
            assert_eq!(got.unwrap(), Some(7));
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_flood_of_random_ids_does_not_evict_a_hot_key() {
        // Room for about 100 entries; the hot key keeps being used while the flood goes on.
        let (c, _) = cache(100 * (ENTRY_OVERHEAD as u64 + 16 + 8));
        for i in 0..20_000 {
            value(&c, &format!("random-{i}"), None).await;
            if i % 20 == 0 {
                assert_eq!(value(&c, "hot", Some(1)).await, Some(1));
            }
        }
        assert!(c.holds("hot"), "the hot key was evicted by one-hit ids");
        let cached = (0..20_000)
            .filter(|i| c.holds(&format!("random-{i}")))
            .count();
        assert!(
            cached <= 120,
            "{cached} one-hit ids kept: the bound does not hold"
        );
    }

    #[tokio::test]
    async fn ids_short_and_long_are_cached_apart() {
        let (c, _) = cache(1 << 20);
        let reads = AtomicUsize::new(0);
        let long = "k".repeat(INLINE_ID + 1);
        let edge = "k".repeat(INLINE_ID);
        for (i, id) in [long.as_str(), edge.as_str(), "k", ""]
            .into_iter()
            .enumerate()
        {
            for _ in 0..2 {
                let got = c
                    .get(id, || async {
                        reads.fetch_add(1, Ordering::SeqCst);
                        Ok(Some(Live(u32::try_from(i).unwrap())))
                    })
                    .await
                    .unwrap()
                    .map(|l| l.0);
                assert_eq!(got, Some(u32::try_from(i).unwrap()), "{id}");
            }
            assert!(c.holds(id));
        }
        assert_eq!(reads.load(Ordering::SeqCst), 4, "each id read once");
        c.tombstone(&long);
        assert!(!c.holds(&long) && c.holds(&edge));
        assert!(matches!(Id::new(&long), Id::Heap(_)));
        assert!(matches!(Id::new(&edge), Id::Inline(..)));
    }

    #[tokio::test]
    async fn clearing_keeps_tombstones() {
        let (c, _) = cache(1 << 20);
        value(&c, "a", Some(1)).await;
        c.tombstone("b");
        c.clear_live();
        assert!(!c.holds("a"));
        assert_eq!(value(&c, "b", Some(1)).await, None);
    }
}
