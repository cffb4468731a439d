//! The revocation feed: how a delete on one node reaches every other node's caches.
//!
//! A transaction that revokes credentials or keys (see [`super::tx::WriteTx`]) appends
//! `(seq, kind, id)` rows to the `revocations` table just before it commits. The numbers come
//! from a one-row head (`revocation_head`) that the transaction moves with an `UPDATE`: on
//! PostgreSQL that row stays locked until the transaction ends, and on SQLite the write lock
//! is already exclusive, so numbers are handed out in commit order and without gaps. A
//! later-committing writer can therefore never slip a row behind a reader's cursor, which a
//! clock or a plain sequence could not promise (a sequence value is taken at insert, but the
//! row becomes visible at commit).
//!
//! Every node reads the feed every [`POLL_INTERVAL`]: first the head, then the rows after its
//! cursor, and tombstones those ids in the registered caches (or, for an id that changed but
//! stays live, drops its cached entry so it is read again). A node starts at the head (its
//! caches are empty). If the rows it reads do not continue its cursor — they were pruned
//! because the node fell behind the retention window, or the database was replaced — it
//! cannot know what it missed, so it drops every live entry and reloads them from the store.
//! If a read fails, it does the same; if reads stop succeeding, live entries stop counting
//! after a second (`FeedClock`), and entries older than `cache::MAX_AGE` are never trusted.
//! The node that revoked tombstones its own caches right after its commit.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use super::{
    Kernel, Result,
    cache::{FeedClock, LiveCache, Revocable, Weigh},
};

/// How often a node reads the feed; a revocation elsewhere is seen within about this time.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often old rows are pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Rows older than this are pruned; a node that has not read the feed for this long clears
/// its live entries when it comes back.
const RETENTION_MS: i64 = 10 * 60 * 1000;
/// Rows read per query.
const BATCH: i64 = 1000;

/// What a feed row says of an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It is gone: caches tombstone it.
    Revoked,
    /// It changed but stays: caches drop what they hold and read it again.
    Changed,
}

impl Change {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoke",
            Self::Changed => "refresh",
        }
    }

    /// A stored op; anything unknown counts as a revocation (the safe reading).
    fn parse(op: &str) -> Self {
        if op == "refresh" {
            Self::Changed
        } else {
            Self::Revoked
        }
    }
}

/// This node's side of the feed: its cursor and the caches it keeps current.
#[derive(Default)]
pub(crate) struct Feed {
    pub(crate) clock: Arc<FeedClock>,
    caches: RwLock<Vec<Arc<dyn Revocable>>>,
    /// The last `seq` applied; None until the first read.
    cursor: Mutex<Option<i64>>,
}

impl Feed {
    pub(crate) fn register(&self, cache: Arc<dyn Revocable>) {
        if let Ok(mut caches) = self.caches.write() {
            caches.push(cache);
        }
    }

    fn each(&self, f: impl Fn(&dyn Revocable)) {
        if let Ok(caches) = self.caches.read() {
            caches.iter().for_each(|c| f(c.as_ref()));
        }
    }

    /// Applies `(kind, id, change)` to this node's caches.
    pub(crate) fn apply<K: AsRef<str>, I: AsRef<str>>(&self, changes: &[(K, I, Change)]) {
        self.each(|cache| {
            for (kind, id, change) in changes {
                if kind.as_ref() == cache.kind() {
                    match change {
                        Change::Revoked => cache.tombstone(id.as_ref()),
                        Change::Changed => cache.refresh(id.as_ref()),
                    }
                }
            }
        });
    }

    fn clear_live(&self) {
        self.each(|cache| cache.clear_live());
    }

    fn cursor(&self) -> Option<i64> {
        self.cursor.lock().ok().and_then(|c| *c)
    }

    fn set_cursor(&self, seq: i64) {
        if let Ok(mut c) = self.cursor.lock() {
            *c = Some(seq);
        }
    }
}

impl Kernel {
    /// A new cache of `kind` ids, kept current by the feed.
    pub fn live_cache<T: Weigh + Send + Sync + 'static>(
        &self,
        kind: &'static str,
        max_bytes: u64,
    ) -> LiveCache<T> {
        let feed = &self.inner.feed;
        let cache = LiveCache::new(kind, max_bytes, feed.clock.clone());
        feed.register(Arc::new(cache.clone()));
        cache
    }

    /// Reads the feed once and applies what is new. On error every live entry is dropped.
    pub async fn poll_feed(&self) -> Result<()> {
        let feed = &self.inner.feed;
        let read = self.read_feed().await;
        if read.is_err() {
            feed.clear_live();
        }
        read
    }

    async fn read_feed(&self) -> Result<()> {
        let feed = &self.inner.feed;
        // The feed is as fresh as the moment its head is read, not the moment the read ends.
        let started = super::cache::ticks();
        let mut conn = self.store().conn().await?;
        // The head first: every row up to it is committed, so the rows read next include
        // them all unless they were pruned.
        let head = conn.revocation_head().await?;
        let mut cursor = match feed.cursor() {
            Some(cursor) if cursor <= head => cursor,
            // First read (nothing cached yet), or the head went backwards (a new database).
            first_or_reset => {
                if first_or_reset.is_some() {
                    feed.clear_live();
                }
                feed.set_cursor(head);
                feed.clock.mark_read_at(started);
                return Ok(());
            }
        };
        while cursor < head {
            let rows = conn.revocations_after(cursor, BATCH).await?;
            let contiguous = rows.first().map(|r| r.seq) == Some(cursor + 1)
                && rows.windows(2).all(|w| w[1].seq == w[0].seq + 1);
            if !contiguous {
                tracing::warn!(
                    cursor,
                    head,
                    "the revocation feed has a gap (rows pruned while this node was away): \
                     dropping every cached live entry"
                );
                feed.clear_live();
            }
            let Some(last) = rows.last().map(|r| r.seq) else {
                cursor = head;
                break;
            };
            let changes: Vec<(&str, &str, Change)> = rows
                .iter()
                .map(|r| (r.kind.as_str(), r.id.as_str(), Change::parse(&r.op)))
                .collect();
            feed.apply(&changes);
            cursor = last;
        }
        feed.set_cursor(cursor);
        feed.clock.mark_read_at(started);
        Ok(())
    }

    /// Deletes feed rows every node has long since read.
    pub async fn prune_feed(&self) -> Result<()> {
        let mut tx = self.store().write().await?;
        tx.prune_revocations(RETENTION_MS).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Follows the feed and prunes it until `stop` fires (the server's background task). In
    /// two loops: a prune waits for the write lock (up to the store's write timeout), and the
    /// polls must not wait behind it, or this node's live entries would stop counting.
    pub async fn follow_feed(&self, stop: tokio::sync::watch::Receiver<bool>) {
        tokio::join!(
            every(POLL_INTERVAL, stop.clone(), || async {
                if let Err(e) = self.poll_feed().await {
                    tracing::warn!(error = %e, "could not read the revocation feed; live cache entries dropped");
                }
            }),
            every(PRUNE_INTERVAL, stop, || async {
                if let Err(e) = self.prune_feed().await {
                    tracing::warn!(error = %e, "could not prune the revocation feed");
                }
            }),
        );
    }
}

/// Runs `task` every `period` until `stop` fires (dropping a run under way).
async fn every<F: Future<Output = ()>>(
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut task: impl FnMut() -> F,
) {
    let mut ticks = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        tokio::select! {
            () = task() => {}
            _ = stop.changed() => return,
        }
    }
}
