//! The audit log: append-only events, hash-chained per organization.

use super::{Result, Tx, on_conn};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    pub id: String,
    pub chain: String,
    pub seq: i64,
    pub at: i64,
    pub organization_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    /// The client's own transaction id (`X-Ping-External-Transaction-ID`), when it sent one.
    pub external_id: Option<String>,
    /// What else the event records, as a JSON object (e.g. a credential use's mode and host).
    #[sqlx(default)]
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters for listing; `after` is the id of the last event of the previous page.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub organization_id: Option<String>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub after: Option<String>,
    pub limit: i64,
}

impl Tx {
    /// Reserves the next sequence number of `chain` and returns it with the current head hash.
    /// The upsert takes the chain's row lock (PostgreSQL) inside the write transaction
    /// (SQLite's is already exclusive), so concurrent appends cannot fork the chain.
    pub async fn audit_advance(&mut self, chain: &str) -> Result<(i64, String)> {
        let sql = "INSERT INTO audit_heads (chain, seq, head) VALUES ($1, 1, '') \
                   ON CONFLICT (chain) DO UPDATE SET seq = audit_heads.seq + 1 \
                   RETURNING seq, head";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(chain)
            .fetch_one(c)
            .await?))
    }

    pub async fn audit_append(&mut self, row: &AuditRow) -> Result<()> {
        let insert = "INSERT INTO audit_events (id, chain, seq, at, organization_id, actor, action, \
                      target_type, target_id, outcome, request_id, ip, prev_hash, hash, external_id, detail) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
        let head = "UPDATE audit_heads SET head = $1 WHERE chain = $2";
        on_conn!(self, |c| {
            sqlx::query(insert)
                .bind(&row.id)
                .bind(&row.chain)
                .bind(row.seq)
                .bind(row.at)
                .bind(&row.organization_id)
                .bind(&row.actor)
                .bind(&row.action)
                .bind(&row.target_type)
                .bind(&row.target_id)
                .bind(&row.outcome)
                .bind(&row.request_id)
                .bind(&row.ip)
                .bind(&row.prev_hash)
                .bind(&row.hash)
                .bind(&row.external_id)
                .bind(&row.detail)
                .execute(&mut *c)
                .await?;
            sqlx::query(head)
                .bind(&row.hash)
                .bind(&row.chain)
                .execute(&mut *c)
                .await?;
        });
        Ok(())
    }

    /// Events newest first (ids are UUIDv7, so id order is time order).
    pub async fn audit_events(&mut self, f: &AuditFilter) -> Result<Vec<AuditRow>> {
        let sql = "SELECT id, chain, seq, at, organization_id, actor, action, target_type, target_id, outcome, request_id, ip, external_id, detail, prev_hash, hash FROM audit_events WHERE organization_id = $1 \
                   AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR target_type = $3) \
                   AND ($4 IS NULL OR target_id = $4) AND ($5 IS NULL OR id < $5) \
                   ORDER BY id DESC LIMIT $6";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(&f.organization_id)
            .bind(&f.action)
            .bind(&f.target_type)
            .bind(&f.target_id)
            .bind(&f.after)
            .bind(f.limit)
            .fetch_all(c)
            .await?))
    }

    pub async fn audit_chains(&mut self) -> Result<Vec<(String, i64, String)>> {
        let sql = "SELECT chain, seq, head FROM audit_heads ORDER BY chain";
        Ok(on_conn!(self, |c| sqlx::query_as(sql).fetch_all(c).await?))
    }

    /// One page of a chain in sequence order, for verification.
    pub async fn audit_chain_page(
        &mut self,
        chain: &str,
        from_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>> {
        let sql = "SELECT id, chain, seq, at, organization_id, actor, action, target_type, target_id, outcome, request_id, ip, external_id, detail, prev_hash, hash FROM audit_events WHERE chain = $1 AND seq >= $2 ORDER BY seq LIMIT $3";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(chain)
            .bind(from_seq)
            .bind(limit)
            .fetch_all(c)
            .await?))
    }
}
