//! Environments, gateways and gateway credentials.

use crate::store::{Result, Tx, on_conn};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EnvironmentRow {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub description: String,
    pub region: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GatewayRow {
    pub id: String,
    pub organization_id: String,
    pub environment_id: String,
    pub name: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub enabled: bool,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GatewayCredentialRow {
    pub id: String,
    pub organization_id: String,
    pub environment_id: String,
    pub gateway_id: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A gateway credential as verification needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveCredentialRow {
    pub id: String,
    pub organization_id: String,
    pub environment_id: String,
    pub gateway_id: String,
    pub gateway_enabled: bool,
}

impl Tx {
    pub async fn insert_environment(&mut self, r: &EnvironmentRow) -> Result<()> {
        let sql = "INSERT INTO environments (id, organization_id, name, description, region, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.id)
                .bind(&r.organization_id)
                .bind(&r.name)
                .bind(&r.description)
                .bind(&r.region)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn environment(&mut self, org: &str, id: &str) -> Result<Option<EnvironmentRow>> {
        let sql = "SELECT id, organization_id, name, description, region, created_at, updated_at FROM environments WHERE organization_id = $1 AND id = $2";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    /// An environment by id alone, for public routes (JWKS, token exchange).
    pub async fn environment_by_id(&mut self, id: &str) -> Result<Option<EnvironmentRow>> {
        let sql = "SELECT id, organization_id, name, description, region, created_at, updated_at FROM environments WHERE id = $1";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    pub async fn environments(&mut self, org: &str) -> Result<Vec<EnvironmentRow>> {
        let sql = "SELECT id, organization_id, name, description, region, created_at, updated_at FROM environments WHERE organization_id = $1 ORDER BY created_at, id";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .fetch_all(c)
            .await?))
    }

    pub async fn delete_environment(&mut self, org: &str, id: &str) -> Result<bool> {
        let sql = "DELETE FROM environments WHERE organization_id = $1 AND id = $2";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    pub async fn insert_gateway(&mut self, r: &GatewayRow) -> Result<()> {
        let sql = "INSERT INTO gateways (id, organization_id, environment_id, name, type, enabled, description, \
                   created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.id)
                .bind(&r.organization_id)
                .bind(&r.environment_id)
                .bind(&r.name)
                .bind(&r.kind)
                .bind(r.enabled)
                .bind(&r.description)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn update_gateway(&mut self, r: &GatewayRow) -> Result<()> {
        let sql = "UPDATE gateways SET name = $3, enabled = $4, description = $5, updated_at = $6 \
                   WHERE organization_id = $1 AND id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.organization_id)
                .bind(&r.id)
                .bind(&r.name)
                .bind(r.enabled)
                .bind(&r.description)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn gateway(&mut self, org: &str, env: &str, id: &str) -> Result<Option<GatewayRow>> {
        let sql = "SELECT id, organization_id, environment_id, name, type, enabled, description, created_at, updated_at FROM gateways WHERE organization_id = $1 AND environment_id = $2 AND id = $3";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(env)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    pub async fn gateways(&mut self, org: &str, env: &str) -> Result<Vec<GatewayRow>> {
        let sql = "SELECT id, organization_id, environment_id, name, type, enabled, description, created_at, updated_at FROM gateways WHERE organization_id = $1 AND environment_id = $2 ORDER BY created_at, id";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(env)
            .fetch_all(c)
            .await?))
    }

    /// Takes the gateway's row lock (PostgreSQL; SQLite's write transaction is already
    /// exclusive) so counting its credentials and inserting one cannot interleave.
    pub async fn lock_gateway(&mut self, org: &str, id: &str) -> Result<bool> {
        let sql =
            "UPDATE gateways SET updated_at = updated_at WHERE organization_id = $1 AND id = $2";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    /// Locks every gateway of an environment (as credential creation under each does).
    pub async fn lock_environment_gateways(&mut self, org: &str, env: &str) -> Result<()> {
        let sql = "UPDATE gateways SET updated_at = updated_at WHERE organization_id = $1 AND environment_id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql).bind(org).bind(env).execute(c).await?;
        });
        Ok(())
    }

    pub async fn delete_gateway(&mut self, org: &str, id: &str) -> Result<bool> {
        let sql = "DELETE FROM gateways WHERE organization_id = $1 AND id = $2";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    pub async fn insert_gateway_credential(&mut self, r: &GatewayCredentialRow) -> Result<()> {
        let sql = "INSERT INTO gateway_credentials (id, organization_id, environment_id, gateway_id, created_at) \
                   VALUES ($1, $2, $3, $4, $5)";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.id)
                .bind(&r.organization_id)
                .bind(&r.environment_id)
                .bind(&r.gateway_id)
                .bind(r.created_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn gateway_credentials(
        &mut self,
        org: &str,
        gateway: &str,
    ) -> Result<Vec<GatewayCredentialRow>> {
        let sql = "SELECT id, organization_id, environment_id, gateway_id, created_at, last_used_at FROM gateway_credentials WHERE organization_id = $1 AND gateway_id = $2 \
                   ORDER BY created_at, id";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(gateway)
            .fetch_all(c)
            .await?))
    }

    /// A live credential by id alone (the hot path's cache miss).
    /// A credential as verification needs it: with whether its gateway is enabled.
    pub async fn live_gateway_credential(&mut self, id: &str) -> Result<Option<LiveCredentialRow>> {
        let sql = "SELECT c.id, c.organization_id, c.environment_id, c.gateway_id, g.enabled AS gateway_enabled \
                   FROM gateway_credentials c JOIN gateways g ON g.id = c.gateway_id WHERE c.id = $1";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    pub async fn delete_gateway_credential(
        &mut self,
        org: &str,
        gateway: &str,
        id: &str,
    ) -> Result<bool> {
        let sql = "DELETE FROM gateway_credentials WHERE organization_id = $1 AND gateway_id = $2 AND id = $3";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(gateway)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    /// Records a use, never moving `last_used_at` backwards.
    pub async fn touch_gateway_credential(&mut self, id: &str, at: i64) -> Result<()> {
        let sql = "UPDATE gateway_credentials SET last_used_at = $2 \
                   WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";
        on_conn!(self, |c| {
            sqlx::query(sql).bind(id).bind(at).execute(c).await?;
        });
        Ok(())
    }
}
