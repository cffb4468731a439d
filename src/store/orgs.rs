//! Organizations (tenants).

use super::{Result, Tx, on_conn};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrganizationRow {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub created_at: i64,
}

impl Tx {
    pub async fn insert_organization(&mut self, row: &OrganizationRow) -> Result<()> {
        let sql = "INSERT INTO organizations (id, name, slug, created_at) VALUES ($1, $2, $3, $4)";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&row.id)
                .bind(&row.name)
                .bind(&row.slug)
                .bind(row.created_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// Locks an organization's row until the transaction ends (for a read-modify-write of
    /// what a family keeps of it); false if there is no such organization.
    pub async fn lock_organization(&mut self, id: &str) -> Result<bool> {
        let sql = "UPDATE organizations SET name = name WHERE id = $1";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    /// Sets an organization's name; false if there is no such organization.
    pub async fn rename_organization(&mut self, id: &str, name: &str) -> Result<bool> {
        let sql = "UPDATE organizations SET name = $2 WHERE id = $1";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(id)
            .bind(name)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    pub async fn organization(&mut self, id: &str) -> Result<Option<OrganizationRow>> {
        let sql = "SELECT id, name, slug, created_at FROM organizations WHERE id = $1";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    /// All organizations, or only `only` when given (an organization token sees itself).
    pub async fn organizations(&mut self, only: Option<&str>) -> Result<Vec<OrganizationRow>> {
        let sql = "SELECT id, name, slug, created_at FROM organizations \
                   WHERE ($1 IS NULL OR id = $1) ORDER BY created_at, id";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(only)
            .fetch_all(c)
            .await?))
    }
}
