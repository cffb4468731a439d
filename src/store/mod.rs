//! SQL storage on SQLite (embedded default) and PostgreSQL, behind one [`Store`].
//!
//! Every query is written once, with `$n` placeholders that both engines accept, and runs
//! inside a [`Tx`] (or a plain pooled connection, for single reads on the hot path); the
//! [`on_conn!`] macro compiles the same body against each engine's
//! connection type. Engine differences stay here: the migration folders, how a write
//! transaction begins (`BEGIN IMMEDIATE` on SQLite, so a read-then-write never fails with
//! `SQLITE_BUSY`), and how errors are classified. Rows are plain data; the domain lives in
//! the kernel and the families. This module depends on nothing else in the crate.
//!
//! Each family keeps its own SQL in its folder (`pingone/store.rs`, …) as more `impl Tx`
//! blocks; this module holds the pools, the transaction type and the kernel's tables.

use std::{path::Path, str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    PgPool, Postgres, Sqlite, SqlitePool, Transaction,
    pool::PoolConnection,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub mod audit;
mod durable;
pub mod feed;
pub mod keys;
pub mod orgs;
pub mod signing_keys;
pub mod tokens;
mod writer;

pub use audit::*;
use durable::Durable;
pub use feed::*;
pub use orgs::*;
pub use signing_keys::*;
pub use tokens::*;
use writer::{Write, Writer};

/// Runs `$body` with `$c` bound to the transaction's connection, whichever engine it is.
macro_rules! on_conn {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::SqliteWrite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::SqliteConn(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::PostgresConn(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_conn;

#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgPool),
}

/// SQLite: one connection that writes, read-only connections for the rest, and the group
/// commit every write goes through (see [`writer`] and [`durable`]).
#[derive(Clone)]
pub struct SqliteStore {
    /// One connection, taken by one write at a time in arrival order (SQLite's busy handler
    /// would instead poll with sleeps of 1–100 ms); the writes waiting for it share one
    /// transaction. Its page cache stays valid from one write to the next, as no other
    /// connection writes.
    writer: Arc<Writer>,
    /// Opened read-only: a change made through them fails, so no write can bypass the
    /// group commit's sync.
    readers: SqlitePool,
    durable: Arc<Durable>,
}

/// Where queries run: a transaction, or (from [`Store::conn`]) a pooled connection in
/// autocommit mode for a single read.
pub enum Tx {
    /// SQLite, reading.
    Sqlite(Transaction<'static, Sqlite>),
    /// SQLite, writing: its commit returns only once it is on disk.
    SqliteWrite(Write),
    Postgres(Transaction<'static, Postgres>),
    SqliteConn(PoolConnection<Sqlite>),
    PostgresConn(PoolConnection<Postgres>),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated; carries the constraint or index name when known.
    #[error("unique constraint violated")]
    Conflict(Option<String>),
    #[error("foreign key constraint violated")]
    ForeignKey,
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error() {
            if db.is_unique_violation() {
                return Self::Conflict(db.constraint().map(str::to_owned));
            }
            if db.is_foreign_key_violation() {
                return Self::ForeignKey;
            }
        }
        Self::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How long a write waits for the write lock before it is refused.
const WRITE_WAIT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens (creating if needed) an SQLite file in WAL mode with foreign keys on. Every
    /// write transaction's commit is on disk before it is acknowledged, so an acknowledged
    /// write (a revocation above all) survives a power loss, not only a crash of the process:
    /// the connections run with `synchronous=NORMAL` and [`Durable`] syncs the WAL after each
    /// batch of concurrent commits (group commit), which keeps `FULL`'s promise with one sync
    /// per batch instead of one per commit.
    pub async fn sqlite(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true)
            .busy_timeout(WRITE_WAIT);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(WRITE_WAIT)
            .connect_with(
                options
                    .clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal),
            )
            .await?;
        // Opened on first use, after the writer has made the file and its WAL.
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_lazy_with(options.read_only(true));
        // SQLite keeps the WAL beside the database file with every symbolic link resolved.
        let file = std::fs::canonicalize(path).map_err(sqlx::Error::Io)?;
        let mut wal = file.into_os_string();
        wal.push("-wal");
        let durable = Arc::new(Durable::new(wal.into()));
        Ok(Self::Sqlite(SqliteStore {
            writer: Arc::new(Writer::new(writer, durable.clone()).await?),
            readers,
            durable,
        }))
    }

    pub async fn postgres(url: &str) -> Result<Self> {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(WRITE_WAIT)
            .connect_with(options)
            .await?;
        Ok(Self::Postgres(pool))
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Self::Sqlite(..) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        match self {
            Self::Sqlite(s) => {
                let mut conn = s.writer.exclusive().await?;
                sqlx::migrate!("migrations/sqlite").run(&mut *conn).await?;
                drop(conn);
                s.durable.synced().await.map_err(sqlx::Error::Io)?;
            }
            Self::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// A transaction that will write: on SQLite it waits for the write connection and runs in
    /// the transaction open on it (see [`writer`]), which took the write lock up front
    /// (another process may hold it).
    pub async fn write(&self) -> Result<Tx> {
        Ok(match self {
            Self::Sqlite(s) => Tx::SqliteWrite(s.writer.begin().await?),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// A transaction that only reads (a consistent snapshot for list + count).
    pub async fn read(&self) -> Result<Tx> {
        Ok(match self {
            Self::Sqlite(s) => Tx::Sqlite(s.readers.begin().await?),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// A read-only transaction that sees one consistent snapshot for all its statements
    /// (PostgreSQL: REPEATABLE READ; SQLite's read transactions in WAL mode already do).
    pub async fn snapshot(&self) -> Result<Tx> {
        Ok(match self {
            Self::Sqlite(s) => Tx::Sqlite(s.readers.begin().await?),
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
                Tx::Postgres(tx)
            }
        })
    }

    /// A pooled connection without a transaction: one statement, no `BEGIN`/`COMMIT` round
    /// trips (the hot path's cache misses).
    pub async fn conn(&self) -> Result<Tx> {
        Ok(match self {
            Self::Sqlite(s) => Tx::SqliteConn(s.readers.acquire().await?),
            Self::Postgres(pool) => Tx::PostgresConn(pool.acquire().await?),
        })
    }

    pub async fn ping(&self) -> Result<()> {
        match self {
            Self::Sqlite(s) => {
                if !s.durable.healthy() {
                    let failed = std::io::Error::other("a sync of the WAL failed");
                    return Err(StoreError::Database(sqlx::Error::Io(failed)));
                }
                sqlx::query("SELECT 1")
                    .execute(&s.readers)
                    .await?
                    .rows_affected()
            }
            Self::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await?.rows_affected(),
        };
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => {
                s.readers.close().await;
                s.writer.close().await;
            }
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    /// Commits; on SQLite a write transaction returns once its commit is on disk.
    pub async fn commit(self) -> Result<()> {
        match self {
            Self::Sqlite(t) => t.commit().await?,
            Self::SqliteWrite(w) => w.commit().await?,
            Self::Postgres(t) => t.commit().await?,
            Self::SqliteConn(_) | Self::PostgresConn(_) => {}
        }
        Ok(())
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(
            self,
            Self::Sqlite(_) | Self::SqliteWrite(_) | Self::SqliteConn(_)
        )
    }

    pub async fn meta_get(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        let sql = "SELECT value FROM meta WHERE key = $1";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(key)
            .fetch_optional(c)
            .await?))
    }

    pub async fn meta_put(&mut self, key: &str, value: &[u8]) -> Result<()> {
        let sql = "INSERT INTO meta (key, value) VALUES ($1, $2) \
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value";
        on_conn!(self, |c| {
            sqlx::query(sql).bind(key).bind(value).execute(c).await?;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn migrated_sqlite(path: &Path) -> Store {
        let store = Store::sqlite(path).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// Commits one write (`probe` = `written`) and returns the syncs it took.
    async fn syncs_of_one_write(store: &Store) -> u64 {
        let Store::Sqlite(sqlite) = store else {
            unreachable!()
        };
        let before = sqlite.durable.syncs();
        let mut tx = store.write().await.unwrap();
        tx.meta_put("probe", b"written").await.unwrap();
        tx.commit().await.unwrap();
        sqlite.durable.syncs() - before
    }

    fn syncs(store: &Store) -> u64 {
        let Store::Sqlite(sqlite) = store else {
            unreachable!()
        };
        sqlite.durable.syncs()
    }

    async fn meta(store: &Store, key: &str) -> Option<Vec<u8>> {
        store.conn().await.unwrap().meta_get(key).await.unwrap()
    }

    /// Writes that queue for the write connection share one transaction and one sync; each
    /// sees the changes of those before it, and one that is dropped undoes only its own.
    #[tokio::test]
    async fn queued_writes_share_a_transaction_and_lose_only_their_own_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated_sqlite(&dir.path().join("db.sqlite")).await;
        let before = syncs(&store);

        // While `first` holds the connection, three writes queue for it, in this order.
        let mut first = store.write().await.unwrap();
        let queued = |name: &'static str, keep: bool| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.write().await.unwrap();
                let seen = (
                    tx.meta_get("b").await.unwrap(),
                    tx.meta_get("c").await.unwrap(),
                );
                tx.meta_put(name, name.as_bytes()).await.unwrap();
                if keep {
                    tx.commit().await.unwrap();
                }
                seen
            })
        };
        let b = queued("b", true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let c = queued("c", false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let d = queued("d", true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The last write of the transaction is dropped too: the commit undoes it first.
        let e = queued("e", false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        first.meta_put("a", b"a").await.unwrap();
        first.commit().await.unwrap();

        assert_eq!(b.await.unwrap(), (None, None));
        assert_eq!(
            c.await.unwrap(),
            (Some(b"b".to_vec()), None),
            "a write did not see the one before it in its transaction"
        );
        assert_eq!(
            d.await.unwrap(),
            (Some(b"b".to_vec()), None),
            "a dropped write's change was kept"
        );
        assert_eq!(e.await.unwrap(), (Some(b"b".to_vec()), None));
        for (key, kept) in [
            ("a", true),
            ("b", true),
            ("c", false),
            ("d", true),
            ("e", false),
        ] {
            assert_eq!(meta(&store, key).await.is_some(), kept, "{key}");
        }
        // `first` committed alone (its committer queued before the others), then b, c, d and e
        // shared one transaction: two syncs, not three.
        assert_eq!(syncs(&store) - before, 2);
        store.close().await;
    }

    /// A write that fails leaves the connection ready for the next, whose changes commit.
    #[tokio::test]
    async fn a_failed_write_is_undone_and_the_next_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated_sqlite(&dir.path().join("db.sqlite")).await;
        let mut tx = store.write().await.unwrap();
        tx.meta_put("lost", b"x").await.unwrap();
        let failed = on_conn!(&mut tx, |c| sqlx::query(
            "INSERT INTO no_such_table VALUES (1)"
        )
        .execute(c)
        .await
        .is_err());
        assert!(failed);
        drop(tx);
        let mut tx = store.write().await.unwrap();
        assert_eq!(tx.meta_get("lost").await.unwrap(), None);
        tx.meta_put("kept", b"y").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(meta(&store, "lost").await, None);
        assert_eq!(meta(&store, "kept").await.as_deref(), Some(&b"y"[..]));
        store.close().await;
        assert!(store.write().await.is_err(), "wrote to a closed store");
        // Closed with nothing left open: the file reopens with the change in it.
        let store = migrated_sqlite(&dir.path().join("db.sqlite")).await;
        assert_eq!(meta(&store, "kept").await.as_deref(), Some(&b"y"[..]));
        store.close().await;
    }

    /// A transaction that broke under its writes (here a write ends it behind the slot's
    /// back): the writes kept in it are told so, and the next write goes on in a new one.
    #[tokio::test]
    async fn a_broken_transaction_fails_its_kept_writes_and_the_next_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated_sqlite(&dir.path().join("db.sqlite")).await;
        let first = store.write().await.unwrap();
        let spawn = |name: &'static str, breaks: bool| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.write().await.unwrap();
                tx.meta_put(name, name.as_bytes()).await.unwrap();
                if breaks {
                    on_conn!(&mut tx, |c| {
                        sqlx::raw_sql("ROLLBACK").execute(c).await.unwrap();
                    });
                    return Ok(());
                }
                tx.commit().await
            })
        };
        // Queued behind `first`, in this order: they share the next transaction.
        let kept = spawn("kept", false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let breaker = spawn("breaker", true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let next = spawn("next", false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        first.commit().await.unwrap();

        assert!(
            kept.await.unwrap().is_err(),
            "a lost write was acknowledged"
        );
        breaker.await.unwrap().unwrap();
        next.await.unwrap().unwrap();
        assert_eq!(meta(&store, "kept").await, None);
        assert_eq!(meta(&store, "breaker").await, None);
        assert_eq!(meta(&store, "next").await.as_deref(), Some(&b"next"[..]));
        store.close().await;
    }

    /// A transaction open on the write connection that the slot does not know of (its step
    /// cut short by a runtime that stopped, say) is rolled back by the next write, which goes
    /// on instead of failing.
    #[tokio::test]
    async fn a_transaction_nobody_recorded_does_not_fail_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated_sqlite(&dir.path().join("db.sqlite")).await;
        let Store::Sqlite(sqlite) = &store else {
            unreachable!()
        };
        let mut conn = sqlite.writer.exclusive().await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE; INSERT INTO meta (key, value) VALUES ('stray', x'00')")
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        let mut tx = store.write().await.unwrap();
        tx.meta_put("next", b"n").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(meta(&store, "next").await.as_deref(), Some(&b"n"[..]));
        assert_eq!(meta(&store, "stray").await, None);
        store.close().await;
    }

    /// SQLite puts the WAL beside the file a symbolic link points to: that is the file synced.
    #[tokio::test]
    async fn sqlite_syncs_the_wal_of_a_linked_database() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::fs::create_dir(dir.path().join("link")).unwrap();
        let real = dir.path().join("real/db.sqlite");
        std::fs::write(&real, b"").unwrap();
        let link = dir.path().join("link/db.sqlite");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let store = migrated_sqlite(&link).await;
        assert_eq!(syncs_of_one_write(&store).await, 1, "the WAL was not found");
        store.close().await;
    }

    /// On SQLite only the write transaction may change anything, and its commit is synced:
    /// a change through a reading connection fails instead of skipping the sync.
    #[tokio::test]
    async fn sqlite_writes_only_through_the_synced_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated_sqlite(&dir.path().join("db.sqlite")).await;
        assert_eq!(
            syncs_of_one_write(&store).await,
            1,
            "the commit was not synced"
        );

        let mut conn = store.conn().await.unwrap();
        assert_eq!(
            conn.meta_get("probe").await.unwrap().as_deref(),
            Some(&b"written"[..])
        );
        assert!(conn.meta_put("probe", b"unsynced").await.is_err());
        let mut read = store.read().await.unwrap();
        assert!(read.meta_put("probe", b"unsynced").await.is_err());
        drop(read);
        assert_eq!(
            conn.meta_get("probe").await.unwrap().as_deref(),
            Some(&b"written"[..])
        );
        drop(conn);
        store.close().await;
    }
}
