//! The revocation feed's tables: `revocations` (one row per revoked id, numbered by `seq`)
//! and `revocation_head` (one row: the last `seq` handed out). See `kernel::feed` for how
//! the numbering makes the feed commit-ordered.

use super::{Result, Tx, on_conn};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RevocationRow {
    pub seq: i64,
    pub kind: String,
    pub id: String,
    /// `revoke` (the id is gone) or `refresh` (it changed: read it again).
    pub op: String,
    /// When it was written, in epoch ms by the database's clock (for pruning).
    pub at: i64,
}

/// `$sql` with `NOW_MS` replaced by the engine's clock in epoch milliseconds: rows are
/// stamped by the database, so the nodes' clocks need not agree.
macro_rules! with_db_clock {
    ($tx:expr, $before:literal, $after:literal) => {
        if $tx.is_sqlite() {
            concat!(
                $before,
                "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
                $after
            )
        } else {
            concat!(
                $before,
                "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
                $after
            )
        }
    };
}

impl Tx {
    /// Appends `(kind, id, op)` rows numbered after the head. Moving the head takes its row lock
    /// until this transaction ends (SQLite's write lock is already exclusive), so numbers
    /// are handed out in commit order and without gaps. Call it last, just before commit.
    pub async fn append_revocations(&mut self, rows: &[(&str, &str, &str)]) -> Result<()> {
        let Ok(count) = i64::try_from(rows.len()) else {
            return Ok(());
        };
        if count == 0 {
            return Ok(());
        }
        let advance = "UPDATE revocation_head SET seq = seq + $1 RETURNING seq";
        let last: i64 = on_conn!(self, |c| sqlx::query_scalar(advance)
            .bind(count)
            .fetch_one(c)
            .await?);
        let insert = with_db_clock!(
            self,
            "INSERT INTO revocations (seq, kind, id, op, at) VALUES ($1, $2, $3, $4, ",
            ")"
        );
        for (seq, (kind, id, op)) in (last - count + 1..).zip(rows) {
            on_conn!(self, |c| {
                sqlx::query(insert)
                    .bind(seq)
                    .bind(*kind)
                    .bind(*id)
                    .bind(*op)
                    .execute(c)
                    .await?;
            });
        }
        Ok(())
    }

    /// The last number handed out.
    pub async fn revocation_head(&mut self) -> Result<i64> {
        let sql = "SELECT seq FROM revocation_head";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .fetch_one(c)
            .await?))
    }

    /// Up to `limit` rows numbered after `after`, in order.
    pub async fn revocations_after(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<RevocationRow>> {
        let sql =
            "SELECT seq, kind, id, op, at FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(after)
            .bind(limit)
            .fetch_all(c)
            .await?))
    }

    /// Deletes rows older than `age_ms` by the database's clock (the head stays).
    pub async fn prune_revocations(&mut self, age_ms: i64) -> Result<()> {
        let sql = with_db_clock!(self, "DELETE FROM revocations WHERE at < ", " - $1");
        on_conn!(self, |c| {
            sqlx::query(sql).bind(age_ms).execute(c).await?;
        });
        Ok(())
    }
}
