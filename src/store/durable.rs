//! Durable writes on SQLite without one fsync per commit: group commit.
//!
//! Every acknowledged write must be on disk (a lost revocation would let a deleted credential
//! verify again after a power loss). `synchronous=FULL` gets there by syncing the WAL inside
//! every `COMMIT`, so concurrent writers queue for the disk one by one. Here the connections
//! run with `synchronous=NORMAL` (a commit appends its frames to the WAL without syncing;
//! checkpoints still sync the WAL before and the database after) and a write transaction is
//! acknowledged only after [`Durable::synced`] returns: one `fdatasync` of the WAL that
//! started after its commit had been written. Commits that arrive while a sync runs share the
//! next one. That keeps what `FULL` promises of an acknowledged write, a sync of the WAL
//! between its commit and its answer, at the price of one sync per batch instead of one per
//! commit. (Unlike `FULL`, another connection may read a commit before its sync returns; a
//! write that depends on what it read is covered by its own, later sync.)
//!
//! A failed sync is final, as PostgreSQL treats it: Linux reports a writeback error once and
//! may drop the pages, so a later sync that succeeds proves nothing about the frames before
//! it. Every commit after a failure is refused an answer and the store reports unhealthy until
//! the process restarts and SQLite recovers the WAL.

use std::{
    io,
    path::PathBuf,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use tokio::sync::Mutex;

pub struct Durable {
    /// The WAL file: `<database>-wal`.
    wal: PathBuf,
    /// Commits written so far; each takes the next number once its `COMMIT` has returned.
    committed: AtomicU64,
    /// The highest commit number known to be on disk. Held while a sync runs, so commits
    /// that arrive meanwhile wait for it and then share the next.
    synced: Mutex<u64>,
    /// Syncs done (for tests and the batch size they show).
    syncs: AtomicU64,
    /// A sync failed: nothing committed since can be acknowledged.
    failed: AtomicBool,
}

impl Durable {
    pub fn new(wal: PathBuf) -> Self {
        Self {
            wal,
            committed: AtomicU64::new(0),
            synced: Mutex::new(0),
            syncs: AtomicU64::new(0),
            failed: AtomicBool::new(false),
        }
    }

    /// Whether every sync so far succeeded.
    pub fn healthy(&self) -> bool {
        !self.failed.load(Ordering::SeqCst)
    }

    /// Returns once a commit that has just returned is on disk.
    pub async fn synced(&self) -> io::Result<()> {
        let ticket = self.committed.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().await;
        if !self.healthy() {
            return Err(io::Error::other(
                "an earlier sync of the WAL failed: restart to recover",
            ));
        }
        if *synced >= ticket {
            return Ok(());
        }
        // Every commit numbered up to here has been written to the WAL: one sync covers all.
        let upto = self.committed.load(Ordering::SeqCst);
        let wal = self.wal.clone();
        let done = tokio::task::spawn_blocking(move || sync_file(&wal))
            .await
            .map_err(io::Error::other)
            .and_then(|r| r);
        match done {
            Ok(found) => {
                if found {
                    self.syncs.fetch_add(1, Ordering::Relaxed);
                }
                *synced = upto;
                Ok(())
            }
            Err(e) => {
                self.failed.store(true, Ordering::SeqCst);
                tracing::error!(error = %e, wal = %self.wal.display(), "a sync of the WAL failed: no later write is acknowledged until a restart");
                Err(e)
            }
        }
    }

    #[cfg(test)]
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

/// `fdatasync` of the file at `path`, opened anew each time: SQLite deletes the WAL when its
/// last connection closes (after checkpointing it into the database, which it syncs) and
/// makes a new one on the next write, so a kept descriptor could point at a deleted file. No
/// WAL at all means there is nothing left in one to sync (`false`).
fn sync_file(path: &std::path::Path) -> io::Result<bool> {
    match std::fs::File::open(path) {
        Ok(file) => file.sync_data().map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Many concurrent commits share a few syncs, and each returns only after a sync that
    /// began after it took its number.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_commits_share_syncs() {
        let dir = std::env::temp_dir().join(format!("latchkey-durable-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let wal = dir.join("db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let durable = Arc::new(Durable::new(wal));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let durable = durable.clone();
                tokio::spawn(async move { durable.synced().await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let syncs = durable.syncs();
        assert!(syncs >= 1, "no sync ran");
        assert!(syncs < 200, "every commit synced alone: {syncs}");
        assert_eq!(*durable.synced.lock().await, 200, "a commit left unsynced");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A commit after the last sync gets a sync of its own, even when nothing else waits.
    #[tokio::test]
    async fn a_lone_commit_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let durable = Durable::new(wal);
        durable.synced().await.unwrap();
        durable.synced().await.unwrap();
        assert_eq!(durable.syncs(), 2);
    }

    /// After a failed sync no commit is acknowledged, even when a later sync would succeed.
    #[tokio::test]
    async fn a_failed_sync_is_final() {
        let dir = tempfile::tempdir().unwrap();
        // The WAL's directory is a plain file: opening the WAL fails (not "not found").
        let parent = dir.path().join("data");
        std::fs::write(&parent, b"not a directory").unwrap();
        let wal = parent.join("db-wal");
        let durable = Durable::new(wal.clone());
        assert!(durable.synced().await.is_err());
        assert!(!durable.healthy());
        std::fs::remove_file(&parent).unwrap();
        std::fs::create_dir(&parent).unwrap();
        std::fs::write(&wal, b"frames").unwrap();
        assert!(
            durable.synced().await.is_err(),
            "acknowledged after a failed sync"
        );
        assert_eq!(durable.syncs(), 0);
    }
}
