//! The revocation feed: how a delete on one node reaches every other node's caches.
//!
//! A delete that revokes a credential or key also writes `(kind, id, at)` rows in its own
//! transaction, stamped by the database's clock. Every node polls the rows stamped since the
//! newest stamp it has seen (minus an overlap, so a transaction that committed late is still
//! seen; applying a revocation twice is harmless) and turns those ids into tombstones. A node
//! starts by reading every retained row, so no clock of its own is ever compared. The node that deleted updates its own caches at once. It
//! works the same on SQLite and PostgreSQL, and costs one small query per node per interval,
//! whatever the traffic. If a poll fails, the caches are emptied; if polls stop succeeding,
//! cached live entries stop counting after a second (`Caches::feed_is_current`), so a node
//! whose feed stalls asks the store rather than trust what may have been revoked.

use std::time::Duration;

use super::{Latchkey, Result};
use crate::store::Tx;

/// How often a node reads the feed; a revocation elsewhere is seen within about this time.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How far back each poll looks before the newest stamp it has seen.
const OVERLAP_MS: i64 = 5_000;
/// Rows older than this are pruned; no node needs them once it has polled.
const RETENTION_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    GatewayCredential,
    ApiKey,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::GatewayCredential => "gateway_credential",
            Self::ApiKey => "api_key",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::GatewayCredential, Self::ApiKey]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Records in `tx` that `ids` are revoked. After the commit, call [`Latchkey::revoke_cached`].
pub(crate) async fn record(tx: &mut Tx, kind: Kind, ids: &[String]) -> Result<()> {
    if !ids.is_empty() {
        tx.insert_revocations(kind.as_str(), ids).await?;
    }
    Ok(())
}

impl Latchkey {
    /// Tombstones `ids` in this node's caches.
    pub(crate) fn revoke_cached(&self, kind: Kind, ids: impl IntoIterator<Item = String>) {
        match kind {
            Kind::GatewayCredential => self.caches.gateway_credentials.revoke(ids),
            Kind::ApiKey => self.caches.keys.revoke(ids),
        }
    }

    /// Applies the revocations stamped since `since` (epoch ms by the database's clock; 0 at
    /// start) and returns the newest stamp seen: the `since` of the next poll. On error the
    /// caches are emptied.
    pub async fn apply_revocations(&self, since: i64) -> Result<i64> {
        let rows = match self.recent_revocations(since).await {
            Ok(rows) => rows,
            Err(e) => {
                self.caches.gateway_credentials.clear();
                self.caches.keys.clear();
                return Err(e);
            }
        };
        self.caches.feed_read();
        let mut newest = since;
        for row in rows {
            newest = newest.max(row.at);
            if let Some(kind) = Kind::parse(&row.kind) {
                self.revoke_cached(kind, [row.id]);
            }
        }
        Ok(newest)
    }

    async fn recent_revocations(&self, since: i64) -> Result<Vec<crate::store::RevocationRow>> {
        let mut tx = self.store.read().await?;
        Ok(tx.revocations_since(since - OVERLAP_MS).await?)
    }

    /// Deletes feed rows every node has long since read.
    pub async fn prune_revocations(&self) -> Result<()> {
        let mut tx = self.store.write().await?;
        tx.prune_revocations(RETENTION_MS).await?;
        tx.commit().await?;
        Ok(())
    }
}
