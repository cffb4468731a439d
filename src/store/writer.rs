//! SQLite's one write connection, shared by the writes that queue for it: group commit of
//! whole transactions.
//!
//! SQLite lets one connection write at a time. Run one by one, every write transaction
//! paid a `COMMIT` of its own, which writes each page it changed to the WAL, though
//! concurrent writes change mostly the same pages (the last leaf of each table and index).
//! Here the writes that queue for the connection share one transaction instead: each runs
//! in a savepoint of it, in arrival order, and the transaction ends once the writes that
//! were waiting when it began have had their turn: one `COMMIT`, and one sync of the WAL
//! ([`Durable`]), for all of them. A write is answered only once that commit is on disk,
//! so what its caller is told is unchanged: its changes are durable, or it gets an error.
//!
//! - A write that fails, or is dropped, is rolled back to its savepoint: only its own changes
//!   go. (The rollback runs when the connection is next used: `Drop` cannot wait.)
//! - The writes of one transaction see each other's changes in order, as they would after one
//!   another's commits; other connections see all of them at once, or none.
//! - If the commit fails, every write in it gets the error, and none is answered as done. (A
//!   write that failed on what an earlier write of its transaction did, a unique name say, has
//!   its answer already: it is not told that the earlier write was lost after all.)
//! - The steps between writes (`BEGIN IMMEDIATE; SAVEPOINT w`, `RELEASE w; SAVEPOINT w` after
//!   a kept write, `ROLLBACK TO w` after one that was not) run in a task of their own, so a
//!   write dropped meanwhile cannot leave the connection out of step with what the slot
//!   records. (Nesting a savepoint per kept write instead would make each step one statement,
//!   but SQLite checks every open savepoint on each page a write changes: ~30 % fewer
//!   creates/s.)
//! - A write must not wait for another write (a lock or a channel that another write's
//!   caller holds until its commit): that write's commit waits for this transaction, so both
//!   would wait forever.

use std::{
    ops::{Deref, DerefMut},
    sync::Arc,
};

use sqlx::{Sqlite, SqliteConnection, SqlitePool, pool::PoolConnection};
use tokio::{
    sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard, watch},
    task::JoinHandle,
};

use super::{Durable, Result, WRITE_WAIT};

/// How a shared transaction ended, once it has: `Err` carries the reason.
type Outcome = Option<std::result::Result<(), Arc<str>>>;

pub struct Writer {
    pool: SqlitePool,
    /// `None` once closed.
    slot: Arc<Mutex<Option<Slot>>>,
    durable: Arc<Durable>,
}

struct Slot {
    /// The pool's one connection, kept until the store closes.
    conn: PoolConnection<Sqlite>,
    open: Option<Open>,
    /// Numbers the transactions, so a committer ends only its own.
    opened: u64,
    savepoint: Savepoint,
}

/// The open transaction's last savepoint, between writes.
#[derive(Clone, Copy)]
enum Savepoint {
    /// Kept by its write (or none yet): the next write starts one of its own.
    Kept,
    /// Its write did not commit: the next write rolls back to it, which leaves it empty for
    /// that write's own changes.
    Undo,
}

type Held = OwnedMappedMutexGuard<Option<Slot>, Slot>;

/// The transaction open on the connection.
struct Open {
    id: u64,
    /// Writes that committed into it.
    writes: usize,
    /// Where its writes learn how it ended.
    done: watch::Sender<Outcome>,
    /// The task that will end it.
    committer: JoinHandle<()>,
}

/// A write in progress: it holds the write connection until it commits or is dropped.
pub struct Write {
    slot: Held,
    done: watch::Receiver<Outcome>,
}

impl Writer {
    /// Takes `pool`'s connection (the pool has one) for good.
    pub async fn new(pool: SqlitePool, durable: Arc<Durable>) -> Result<Self> {
        let slot = Slot {
            conn: pool.acquire().await?,
            open: None,
            opened: 0,
            savepoint: Savepoint::Kept,
        };
        Ok(Self {
            pool,
            slot: Arc::new(Mutex::new(Some(slot))),
            durable,
        })
    }

    /// Waits for the write connection (in arrival order, at most [`WRITE_WAIT`]) and starts a
    /// write in the open transaction, or in a new one.
    pub async fn begin(&self) -> Result<Write> {
        let slot = tokio::time::timeout(WRITE_WAIT, self.slot.clone().lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        let slot = held(slot)?;
        // In a task of its own: a caller dropped while a step runs cannot cut it short (sqlx
        // stops a string of statements once nobody waits for its results), which would leave
        // the connection out of step with the slot.
        tokio::spawn(prepare(slot, self.slot.clone(), self.durable.clone()))
            .await
            .map_err(|e| sqlx::Error::Io(std::io::Error::other(e.to_string())))?
    }

    /// The write connection alone, with no transaction open on it (for migrations). Like
    /// [`Self::close`], not to be cancelled: it may end the open transaction.
    pub async fn exclusive(&self) -> Result<impl DerefMut<Target = SqliteConnection>> {
        Ok(Exclusive(self.alone().await?))
    }

    /// Ends the open transaction, if any, and gives the connection back to the pool, which
    /// it closes: later writes fail.
    pub async fn close(&self) {
        let mut slot = self.slot.clone().lock_owned().await;
        if let Some(held) = slot.as_mut() {
            self.end_open(held).await;
        }
        *slot = None;
        drop(slot);
        self.pool.close().await;
    }

    /// The slot, with no transaction open.
    async fn alone(&self) -> Result<Held> {
        let mut slot = held(self.slot.clone().lock_owned().await)?;
        self.end_open(&mut slot).await;
        Ok(slot)
    }

    async fn end_open(&self, slot: &mut Slot) {
        if let Some((open, ended)) = end(slot).await {
            tell(open, ended, &self.durable).await;
        }
    }
}

/// Readies the held slot for a write: its savepoint, in the open transaction or a new one.
async fn prepare(
    mut slot: Held,
    shared: Arc<Mutex<Option<Slot>>>,
    durable: Arc<Durable>,
) -> Result<Write> {
    // A transaction whose committer ended without it (its runtime stopped) never ends.
    if slot
        .open
        .as_ref()
        .is_some_and(|o| o.committer.is_finished())
    {
        abort(&mut slot, "the write's transaction was abandoned").await;
    }
    let was_open = slot.open.is_some();
    let done = match start(&mut slot, &shared, &durable).await {
        Ok(done) => done,
        // Another process holds the write lock past the busy timeout: no second wait.
        Err(e) if !was_open && busy(&e) => {
            abort(&mut slot, "the write's transaction failed").await;
            return Err(e.into());
        }
        // The transaction broke (on an error SQLite rolls back everything for), or the
        // connection is in one the slot does not know of: its writes are told, and this one
        // starts over in a new one.
        Err(_) => {
            abort(&mut slot, "the write's transaction failed").await;
            match start(&mut slot, &shared, &durable).await {
                Ok(done) => done,
                Err(e) => {
                    abort(&mut slot, "the write's transaction failed").await;
                    return Err(e.into());
                }
            }
        }
    };
    Ok(Write { slot, done })
}

/// Starts a write's savepoint (`w`), in a new transaction when none is open: after the last
/// write's savepoint, released if it was kept, or rolled back to and reused if not.
async fn start(
    slot: &mut Slot,
    shared: &Arc<Mutex<Option<Slot>>>,
    durable: &Arc<Durable>,
) -> sqlx::Result<watch::Receiver<Outcome>> {
    let (sql, done) = match &slot.open {
        Some(open) => match slot.savepoint {
            Savepoint::Kept => ("RELEASE w; SAVEPOINT w", open.done.subscribe()),
            Savepoint::Undo => ("ROLLBACK TO w", open.done.subscribe()),
        },
        None => {
            slot.opened += 1;
            let id = slot.opened;
            // Queued for the slot now, behind the writes already waiting: they join this
            // transaction, and it ends once they have had their turn.
            let committer = tokio::spawn(commit(shared.clone(), durable.clone(), id));
            let (done, outcome) = watch::channel(None);
            slot.open = Some(Open {
                id,
                writes: 0,
                done,
                committer,
            });
            ("BEGIN IMMEDIATE; SAVEPOINT w", outcome)
        }
    };
    sqlx::raw_sql(sql).execute(&mut *slot.conn).await?;
    slot.savepoint = Savepoint::Undo;
    Ok(done)
}

/// `SQLITE_BUSY`, whatever its extended code.
fn busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}

/// The slot, unless the store is closed.
fn held(slot: OwnedMutexGuard<Option<Slot>>) -> Result<Held> {
    OwnedMutexGuard::try_map(slot, Option::as_mut).map_err(|_| sqlx::Error::PoolClosed.into())
}

struct Exclusive(Held);

impl Deref for Exclusive {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.0.conn
    }
}

impl DerefMut for Exclusive {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.0.conn
    }
}

impl Write {
    /// Keeps this write's changes and returns once the transaction they are in is on disk.
    pub async fn commit(mut self) -> Result<()> {
        self.slot.savepoint = Savepoint::Kept;
        if let Some(open) = self.slot.open.as_mut() {
            open.writes += 1;
        }
        let Self { slot, mut done } = self;
        drop(slot);
        let outcome = match done.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Ok(())),
            Err(_) => Err("the write's transaction was abandoned".into()),
        };
        outcome.map_err(|why| sqlx::Error::Io(std::io::Error::other(why.to_string())).into())
    }
}

impl Deref for Write {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.slot.conn
    }
}

impl DerefMut for Write {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.slot.conn
    }
}

/// The committer of transaction `id`: waits its turn for the connection, ends the transaction
/// if it is still open, frees the connection, and tells its writes once it is on disk.
async fn commit(slot: Arc<Mutex<Option<Slot>>>, durable: Arc<Durable>, id: u64) {
    let Ok(mut slot) = held(slot.lock_owned().await) else {
        return;
    };
    if slot.open.as_ref().is_none_or(|o| o.id != id) {
        return;
    }
    let Some((open, ended)) = end(&mut slot).await else {
        return;
    };
    drop(slot);
    tell(open, ended, &durable).await;
}

/// Ends the open transaction, committing what its writes kept.
async fn end(slot: &mut Slot) -> Option<(Open, sqlx::Result<()>)> {
    let open = slot.open.take()?;
    let sql = match (open.writes, slot.savepoint) {
        (0, _) => "ROLLBACK",
        (_, Savepoint::Kept) => "COMMIT",
        (_, Savepoint::Undo) => "ROLLBACK TO w; COMMIT",
    };
    let ended = sqlx::raw_sql(sql).execute(&mut *slot.conn).await.map(drop);
    if ended.is_err() {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *slot.conn).await;
    }
    Some((open, ended))
}

/// Tells the writes of a transaction that ended how it did, once its commit is on disk.
async fn tell(open: Open, ended: sqlx::Result<()>, durable: &Durable) {
    let outcome = match ended {
        Ok(()) if open.writes > 0 => durable.synced().await.map_err(|e| e.to_string().into()),
        Ok(()) => Ok(()),
        Err(e) => Err(e.to_string().into()),
    };
    open.done.send_replace(Some(outcome));
}

/// Rolls back the open transaction and fails its writes with `why`.
async fn abort(slot: &mut Slot, why: &str) {
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *slot.conn).await;
    if let Some(open) = slot.open.take() {
        open.done.send_replace(Some(Err(why.into())));
    }
}
