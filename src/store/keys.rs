//! Wrapped data keys (see `crypto::keyring`).

use super::{Result, Tx, on_conn};

#[derive(Debug, sqlx::FromRow)]
pub struct DataKeyRow {
    pub version: i64,
    pub wrapped: Vec<u8>,
}

impl Tx {
    pub async fn data_keys(&mut self) -> Result<Vec<DataKeyRow>> {
        let sql = "SELECT version, wrapped FROM data_keys ORDER BY version";
        Ok(on_conn!(self, |c| sqlx::query_as(sql).fetch_all(c).await?))
    }

    pub async fn insert_data_key(&mut self, version: i64, wrapped: &[u8], now: i64) -> Result<()> {
        let sql = "INSERT INTO data_keys (version, wrapped, created_at) VALUES ($1, $2, $3)";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(version)
                .bind(wrapped)
                .bind(now)
                .execute(c)
                .await?;
        });
        Ok(())
    }
}
