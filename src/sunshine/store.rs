//! Sunshine apps, integrations and API keys.

use super::model::KeyScope;
use crate::store::{Result, Tx, on_conn};

/// The keys of one owner, oldest first. Each names every column of the owner index
/// (`sunshine_keys_owner`: organization, scope, app, integration, then created_at and id), so
/// the index finds the owner's keys and yields them in order (see the test below).
const KEYS_OF_ACCOUNT: &str = "SELECT id, organization_id, scope, app_id, integration_id, display_name, secret, created_at FROM sunshine_keys \
    WHERE organization_id = $1 AND scope = $2 AND app_id IS NULL AND integration_id IS NULL ORDER BY created_at, id";
const KEYS_OF_APP: &str = "SELECT id, organization_id, scope, app_id, integration_id, display_name, secret, created_at FROM sunshine_keys \
    WHERE organization_id = $1 AND scope = $2 AND app_id = $3 AND integration_id IS NULL ORDER BY created_at, id";
const KEYS_OF_INTEGRATION: &str = "SELECT id, organization_id, scope, app_id, integration_id, display_name, secret, created_at FROM sunshine_keys \
    WHERE organization_id = $1 AND scope = $2 AND app_id = $3 AND integration_id = $4 ORDER BY created_at, id";
/// A page of account keys after `(created_at, id)`: the owner index again.
const ACCOUNT_KEYS_PAGE: &str = "SELECT id, organization_id, scope, app_id, integration_id, display_name, secret, created_at FROM sunshine_keys \
    WHERE organization_id = $1 AND scope = $2 AND app_id IS NULL AND integration_id IS NULL \
    AND (created_at, id) > ($3, $4) ORDER BY created_at, id LIMIT $5";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppRow {
    pub id: String,
    pub organization_id: String,
    pub display_name: String,
    /// JSON object.
    pub settings: String,
    /// JSON object, or NULL when none was given.
    pub metadata: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, sqlx::FromRow)]
pub struct IntegrationRow {
    pub id: String,
    pub organization_id: String,
    pub app_id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub display_name: Option<String>,
    pub status: String,
    /// JSON object of the fields shown on reads.
    pub config: String,
    /// Sealed JSON object of write-only channel settings.
    pub secrets: Option<Vec<u8>>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for IntegrationRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationRow")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub id: String,
    pub organization_id: String,
    pub scope: String,
    pub app_id: Option<String>,
    pub integration_id: Option<String>,
    pub display_name: String,
    /// Sealed.
    pub secret: Vec<u8>,
    pub created_at: i64,
}

impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRow")
            .field("id", &self.id)
            .field("scope", &self.scope)
            .field("app_id", &self.app_id)
            .field("integration_id", &self.integration_id)
            .finish_non_exhaustive()
    }
}

/// Which slice of an id-ordered list to read: after one id, before one, or from the start.
/// Reads return up to `limit` rows in ascending id order.
#[derive(Debug, Clone, Copy)]
pub enum Cursor<'a> {
    After(&'a str),
    Before(&'a str),
}

/// `id > $n ORDER BY id` or `id < $n ORDER BY id DESC`: the cursor's condition and order.
fn cursor_sql(cursor: Cursor<'_>, placeholder: usize) -> (String, &str, &'static str) {
    match cursor {
        Cursor::After(id) => (format!("id > ${placeholder}"), id, "ASC"),
        Cursor::Before(id) => (format!("id < ${placeholder}"), id, "DESC"),
    }
}

impl Tx {
    pub async fn insert_app(&mut self, r: &AppRow) -> Result<()> {
        let sql = "INSERT INTO sunshine_apps (id, organization_id, display_name, settings, metadata, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.id)
                .bind(&r.organization_id)
                .bind(&r.display_name)
                .bind(&r.settings)
                .bind(&r.metadata)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn update_app(&mut self, r: &AppRow) -> Result<()> {
        let sql = "UPDATE sunshine_apps SET display_name = $3, settings = $4, metadata = $5, updated_at = $6 \
                   WHERE organization_id = $1 AND id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.organization_id)
                .bind(&r.id)
                .bind(&r.display_name)
                .bind(&r.settings)
                .bind(&r.metadata)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn app(&mut self, org: &str, id: &str) -> Result<Option<AppRow>> {
        let sql = "SELECT id, organization_id, display_name, settings, metadata, created_at, updated_at FROM sunshine_apps WHERE organization_id = $1 AND id = $2";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    /// Up to `limit` apps of the organization on the cursor's side, in ascending id order.
    pub async fn apps_page(
        &mut self,
        org: &str,
        cursor: Cursor<'_>,
        limit: i64,
    ) -> Result<Vec<AppRow>> {
        let (condition, id, order) = cursor_sql(cursor, 2);
        let sql = format!(
            "SELECT id, organization_id, display_name, settings, metadata, created_at, updated_at FROM sunshine_apps WHERE organization_id = $1 AND {condition} ORDER BY id {order} LIMIT $3"
        );
        let mut rows: Vec<AppRow> = on_conn!(self, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(id)
            .bind(limit)
            .fetch_all(c)
            .await?);
        if matches!(cursor, Cursor::Before(_)) {
            rows.reverse();
        }
        Ok(rows)
    }

    /// Takes the app's row lock so counting its keys and inserting one cannot interleave
    /// (SQLite's write transaction is exclusive already).
    pub async fn lock_app(&mut self, org: &str, id: &str) -> Result<()> {
        let sql = "UPDATE sunshine_apps SET updated_at = updated_at WHERE organization_id = $1 AND id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql).bind(org).bind(id).execute(c).await?;
        });
        Ok(())
    }

    /// Locks an app's integrations (as key creation under each does): taken before a delete
    /// collects the ids it revokes, so no key can be created under it meanwhile.
    pub async fn lock_app_integrations(&mut self, org: &str, app: &str) -> Result<()> {
        let sql = "UPDATE sunshine_integrations SET updated_at = updated_at WHERE organization_id = $1 AND app_id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql).bind(org).bind(app).execute(c).await?;
        });
        Ok(())
    }

    pub async fn delete_app(&mut self, org: &str, id: &str) -> Result<bool> {
        let sql = "DELETE FROM sunshine_apps WHERE organization_id = $1 AND id = $2";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    pub async fn insert_integration(&mut self, r: &IntegrationRow) -> Result<()> {
        let sql = "INSERT INTO sunshine_integrations (id, organization_id, app_id, type, display_name, status, config, secrets, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.id)
                .bind(&r.organization_id)
                .bind(&r.app_id)
                .bind(&r.kind)
                .bind(&r.display_name)
                .bind(&r.status)
                .bind(&r.config)
                .bind(&r.secrets)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn integration(
        &mut self,
        org: &str,
        app: &str,
        id: &str,
    ) -> Result<Option<IntegrationRow>> {
        let sql = "SELECT id, organization_id, app_id, type, display_name, status, config, secrets, created_at, updated_at FROM sunshine_integrations WHERE organization_id = $1 AND app_id = $2 AND id = $3";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(app)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    /// Up to `limit` integrations of the app on the cursor's side, optionally of the given
    /// types only, in ascending id order.
    pub async fn integrations_page(
        &mut self,
        org: &str,
        app: &str,
        types: &[String],
        cursor: Cursor<'_>,
        limit: i64,
    ) -> Result<Vec<IntegrationRow>> {
        let (condition, id, order) = cursor_sql(cursor, 3);
        let type_filter = if types.is_empty() {
            String::new()
        } else {
            let placeholders: Vec<String> =
                (0..types.len()).map(|i| format!("${}", i + 5)).collect();
            format!(" AND type IN ({})", placeholders.join(", "))
        };
        let sql = format!(
            "SELECT id, organization_id, app_id, type, display_name, status, config, secrets, created_at, updated_at FROM sunshine_integrations WHERE organization_id = $1 AND app_id = $2 AND {condition}{type_filter} \
             ORDER BY id {order} LIMIT $4"
        );
        let mut rows: Vec<IntegrationRow> = on_conn!(self, |c| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(org)
                .bind(app)
                .bind(id)
                .bind(limit);
            for t in types {
                query = query.bind(t);
            }
            query.fetch_all(c).await?
        });
        if matches!(cursor, Cursor::Before(_)) {
            rows.reverse();
        }
        Ok(rows)
    }

    pub async fn lock_integration(&mut self, org: &str, id: &str) -> Result<()> {
        let sql = "UPDATE sunshine_integrations SET updated_at = updated_at WHERE organization_id = $1 AND id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql).bind(org).bind(id).execute(c).await?;
        });
        Ok(())
    }

    pub async fn delete_integration(&mut self, org: &str, id: &str) -> Result<bool> {
        let sql = "DELETE FROM sunshine_integrations WHERE organization_id = $1 AND id = $2";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    pub async fn insert_key(&mut self, r: &KeyRow) -> Result<()> {
        let sql = "INSERT INTO sunshine_keys (id, organization_id, scope, app_id, integration_id, display_name, secret, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.id)
                .bind(&r.organization_id)
                .bind(&r.scope)
                .bind(&r.app_id)
                .bind(&r.integration_id)
                .bind(&r.display_name)
                .bind(&r.secret)
                .bind(r.created_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// The keys of one owner: account keys (no app), an app's keys (no integration), or an
    /// integration's keys; oldest first. Every shape names the whole owner index
    /// (`sunshine_keys_owner`), which then yields the rows in order: no other index, no sort.
    pub async fn keys_of(
        &mut self,
        org: &str,
        scope: &str,
        app: Option<&str>,
        integration: Option<&str>,
    ) -> Result<Vec<KeyRow>> {
        let sql = match (app, integration) {
            (None, _) => KEYS_OF_ACCOUNT,
            (Some(_), None) => KEYS_OF_APP,
            (Some(_), Some(_)) => KEYS_OF_INTEGRATION,
        };
        Ok(on_conn!(self, |c| {
            let mut query = sqlx::query_as(sql).bind(org).bind(scope);
            if let Some(app) = app {
                query = query.bind(app);
            }
            if let Some(integration) = integration {
                query = query.bind(integration);
            }
            query.fetch_all(c).await?
        }))
    }

    /// The ids of every key under an app (its app keys and its integrations' keys), or under
    /// one integration: what a delete of that owner revokes.
    pub async fn key_ids_under(
        &mut self,
        org: &str,
        app: &str,
        integration: Option<&str>,
    ) -> Result<Vec<String>> {
        let sql = "SELECT id FROM sunshine_keys WHERE organization_id = $1 \
                   AND scope IN ('app', 'integration') AND app_id = $2 \
                   AND ($3 = '' OR integration_id = $3)";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(org)
            .bind(app)
            .bind(integration.unwrap_or_default())
            .fetch_all(c)
            .await?))
    }

    /// Up to `limit` of the organization's account keys after `(created_at, id)`, oldest
    /// first (the owner index: no scan of the keys before the cursor).
    pub async fn account_keys_page(
        &mut self,
        org: &str,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<KeyRow>> {
        let (at, id) = after.unwrap_or((i64::MIN, ""));
        Ok(on_conn!(self, |c| sqlx::query_as(ACCOUNT_KEYS_PAGE)
            .bind(org)
            .bind(KeyScope::Account.as_str())
            .bind(at)
            .bind(id)
            .bind(limit)
            .fetch_all(c)
            .await?))
    }

    /// A key by id alone (the hot path's cache miss).
    pub async fn key_by_id(&mut self, id: &str) -> Result<Option<KeyRow>> {
        let sql = "SELECT id, organization_id, scope, app_id, integration_id, display_name, secret, created_at FROM sunshine_keys WHERE id = $1";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    pub async fn delete_key(&mut self, org: &str, id: &str) -> Result<bool> {
        let sql = "DELETE FROM sunshine_keys WHERE organization_id = $1 AND id = $2";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// SQLite keeps no statistics, so an index that also fits a query can win it: 0007's list
    /// index once took the lookup of an app's keys, and each key create read every key of
    /// that scope in the organization. Every owner query must seek the whole owner index and
    /// need no sort.
    #[tokio::test]
    async fn owner_queries_seek_the_owner_index_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        store.migrate().await.unwrap();
        let Tx::SqliteConn(mut conn) = store.conn().await.unwrap() else {
            unreachable!("an SQLite store lends SQLite connections")
        };
        for (sql, params) in [
            (KEYS_OF_ACCOUNT, 2),
            (KEYS_OF_APP, 3),
            (KEYS_OF_INTEGRATION, 4),
            (ACCOUNT_KEYS_PAGE, 5),
        ] {
            // Ours: one of the constants above.
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut query =
                sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(explain));
            for _ in 0..params {
                query = query.bind("x");
            }
            let plan: Vec<String> = query
                .fetch_all(&mut *conn)
                .await
                .unwrap()
                .into_iter()
                .map(|row| row.3)
                .collect();
            let plan = plan.join("\n");
            assert!(
                plan.contains(
                    "USING INDEX sunshine_keys_owner (organization_id=? AND scope=? AND app_id=? AND integration_id=?"
                ),
                "{sql}\n{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{sql}\n{plan}");
        }
    }
}
