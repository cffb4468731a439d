//! The write transaction every change goes through: [`Kernel::write`].
//!
//! It makes the revocation invariant structural. A family that deletes a credential or key
//! calls [`WriteTx::revoke`] inside the transaction; on success the kernel writes those ids
//! to the revocation feed in the same transaction (so other nodes learn of them exactly when
//! the delete commits), commits, and only then tombstones them in this node's caches. There
//! is no other way to revoke, so neither half can be forgotten.

use std::ops::{Deref, DerefMut};

use super::{Kernel, Result, cache::LiveCache, feed::Change};
use crate::store::Tx;

pub struct WriteTx {
    tx: Tx,
    changes: Vec<(&'static str, String, Change)>,
    /// What the audit chain is keyed with (see `audit::append`).
    pub(crate) audit_key: std::sync::Arc<crate::crypto::AuditKey>,
}

impl WriteTx {
    /// Revokes `ids` of `cache`'s kind when this transaction commits.
    pub fn revoke<T>(&mut self, cache: &LiveCache<T>, ids: impl IntoIterator<Item = String>)
    where
        T: super::cache::Weigh + Send + Sync + 'static,
    {
        let kind = cache.kind();
        let revoked = ids.into_iter().map(|id| (kind, id, Change::Revoked));
        self.changes.extend(revoked);
    }

    /// Tells every node that `ids` of `cache`'s kind changed when this transaction commits:
    /// their cached entries are dropped and read again (for a live credential whose role or
    /// lifetime changed; a deleted one is revoked instead).
    pub fn refresh<T>(&mut self, cache: &LiveCache<T>, ids: impl IntoIterator<Item = String>)
    where
        T: super::cache::Weigh + Send + Sync + 'static,
    {
        let kind = cache.kind();
        let changed = ids.into_iter().map(|id| (kind, id, Change::Changed));
        self.changes.extend(changed);
    }
}

impl Deref for WriteTx {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

impl Kernel {
    /// Runs `f` in a write transaction and commits only if it succeeds; revocations it made
    /// reach the feed in the same commit and this node's caches right after. `f` must not
    /// wait for another write (see `store::writer`: on SQLite both would wait forever).
    pub async fn write<T>(&self, f: impl AsyncFnOnce(&mut WriteTx) -> Result<T>) -> Result<T> {
        let mut tx = WriteTx {
            tx: self.store().write().await?,
            changes: Vec::new(),
            audit_key: self.inner.audit_key.clone(),
        };
        let value = f(&mut tx).await?;
        let WriteTx {
            mut tx, changes, ..
        } = tx;
        let rows: Vec<(&str, &str, &str)> = changes
            .iter()
            .map(|(kind, id, change)| (*kind, id.as_str(), change.as_str()))
            .collect();
        // Last, so the feed's head is locked only for the moment before the commit.
        tx.append_revocations(&rows).await?;
        drop(rows);
        if changes.is_empty() {
            tx.commit().await?;
            return Ok(value);
        }
        // In a task of its own: a caller that stops waiting for the commit (its client went
        // away) must not leave this node's caches serving what the commit revoked.
        let kernel = self.clone();
        tokio::spawn(async move {
            tx.commit().await?;
            kernel.inner.feed.apply(&changes);
            Ok::<_, super::CoreError>(())
        })
        .await
        .map_err(|e| super::CoreError::Internal(format!("the commit did not finish: {e}")))??;
        Ok(value)
    }
}
