//! Management tokens, stored only as their keyed hash.

use super::{Result, Tx, on_conn};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: String,
    pub organization_id: Option<String>,
    pub name: String,
    pub role: String,
    pub team_id: Option<i64>,
    pub created_at: i64,
}

impl Tx {
    pub async fn insert_token(&mut self, row: &TokenRow, token_hash: &[u8]) -> Result<()> {
        let sql = "INSERT INTO management_tokens \
                   (id, organization_id, name, role, team_id, token_hash, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&row.id)
                .bind(&row.organization_id)
                .bind(&row.name)
                .bind(&row.role)
                .bind(row.team_id)
                .bind(token_hash)
                .bind(row.created_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// The token whose stored hash equals `token_hash`, with that hash for a constant-time check.
    pub async fn token_by_hash(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<(TokenRow, Vec<u8>)>> {
        #[derive(sqlx::FromRow)]
        struct WithHash {
            #[sqlx(flatten)]
            row: TokenRow,
            token_hash: Vec<u8>,
        }
        let sql = "SELECT id, organization_id, name, role, team_id, created_at, token_hash \
                   FROM management_tokens WHERE token_hash = $1";
        let found: Option<WithHash> = on_conn!(self, |c| sqlx::query_as(sql)
            .bind(token_hash)
            .fetch_optional(c)
            .await?);
        Ok(found.map(|f| (f.row, f.token_hash)))
    }

    /// Tokens of one organization, or the server-admin tokens when `organization_id` is None.
    pub async fn tokens(&mut self, organization_id: Option<&str>) -> Result<Vec<TokenRow>> {
        let sql = "SELECT id, organization_id, name, role, team_id, created_at FROM management_tokens \
                   WHERE (organization_id = $1 OR ($1 IS NULL AND organization_id IS NULL)) \
                   ORDER BY created_at, id";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(organization_id)
            .fetch_all(c)
            .await?))
    }

    pub async fn token(&mut self, id: &str) -> Result<Option<TokenRow>> {
        let sql = "SELECT id, organization_id, name, role, team_id, created_at \
                   FROM management_tokens WHERE id = $1";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    pub async fn delete_token(&mut self, id: &str) -> Result<bool> {
        let sql = "DELETE FROM management_tokens WHERE id = $1";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    /// Deletes the tokens bound to a team; their ids.
    pub async fn delete_team_tokens(&mut self, org: &str, team: i64) -> Result<Vec<String>> {
        let sql = "DELETE FROM management_tokens WHERE organization_id = $1 AND team_id = $2 RETURNING id";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(org)
            .bind(team)
            .fetch_all(c)
            .await?))
    }

    pub async fn count_server_tokens(&mut self) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM management_tokens WHERE organization_id IS NULL";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .fetch_one(c)
            .await?))
    }

    /// Whether `team` is a team of `org` (a token can be bound to it). Teams are managed on
    /// the Tines surface; the kernel only checks the binding.
    pub async fn team_exists(&mut self, org: &str, team: i64) -> Result<bool> {
        let sql = "SELECT COUNT(*) FROM teams WHERE organization_id = $1 AND id = $2";
        let n: i64 = on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(org)
            .bind(team)
            .fetch_one(c)
            .await?);
        Ok(n > 0)
    }
}
