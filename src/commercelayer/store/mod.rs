//! Commerce Layer's records: the Provisioning API's organizations, roles, permissions,
//! versions and api credentials here; the OAuth server's in `oauth`.

use super::query::{ListQuery, SqlValue};
use crate::store::{Result, Tx, on_conn};

mod oauth;

pub use oauth::*;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleRow {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub kind: String,
    pub reference: Option<String>,
    pub reference_origin: Option<String>,
    /// JSON object.
    pub metadata: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, sqlx::FromRow)]
pub struct ApiCredentialRow {
    pub id: String,
    pub organization_id: String,
    pub role_id: Option<String>,
    pub name: String,
    pub kind: String,
    pub confidential: bool,
    pub redirect_uri: Option<String>,
    pub client_id: String,
    /// HMAC-SHA256 of the client secret under the server pepper.
    pub secret_hash: Option<Vec<u8>>,
    pub scopes: String,
    pub expires_in: i64,
    pub mode: String,
    pub custom: bool,
    /// A provisioning client's role on the Provisioning API (`admin`, `editor`, `viewer`).
    pub access_role: Option<String>,
    pub reference: Option<String>,
    pub reference_origin: Option<String>,
    /// JSON object.
    pub metadata: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for ApiCredentialRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiCredentialRow")
            .field("id", &self.id)
            .field("organization_id", &self.organization_id)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// An api credential as the token endpoint and verification need it: with its
/// organization's slug and its role's kind.
#[derive(Clone, sqlx::FromRow)]
pub struct ClientRow {
    pub id: String,
    pub organization_id: String,
    pub organization_slug: String,
    pub client_id: String,
    pub role_id: Option<String>,
    pub role_kind: Option<String>,
    pub kind: String,
    pub confidential: bool,
    pub redirect_uri: Option<String>,
    pub secret_hash: Option<Vec<u8>>,
    pub scopes: String,
    pub expires_in: i64,
    pub mode: String,
    pub access_role: Option<String>,
    pub token_algorithm: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PermissionRow {
    pub id: String,
    pub organization_id: String,
    pub role_id: String,
    pub subject: String,
    pub can_create: bool,
    pub can_read: bool,
    pub can_update: bool,
    pub can_destroy: bool,
    pub reference: Option<String>,
    pub reference_origin: Option<String>,
    pub metadata: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One entry of the change history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub id: String,
    pub organization_id: String,
    /// `roles`, `permissions`, `api_credentials`.
    pub resource_type: String,
    pub resource_id: String,
    /// `create`, `update`, `destroy`.
    pub event: String,
    /// JSON `{attribute: [old, new]}`.
    pub changes: String,
    /// JSON: who made the change.
    pub who: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const PERMISSION_COLUMNS: &str = "id, organization_id, role_id, subject, can_create, can_read, can_update, can_destroy, reference, reference_origin, metadata, created_at, updated_at";
const VERSION_COLUMNS: &str =
    "id, organization_id, resource_type, resource_id, event, changes, who, created_at, updated_at";

/// An organization with what Commerce Layer keeps of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClOrganizationRow {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub created_at: i64,
    /// JSON object of its Commerce Layer attributes, if any were set.
    pub attributes: Option<String>,
    pub updated_at: Option<i64>,
}

const ORGANIZATIONS_JOINED: &str = "organizations LEFT JOIN cl_organizations ON cl_organizations.organization_id = organizations.id";
const ORGANIZATION_COLUMNS: &str = "id, name, slug, created_at, attributes, updated_at";

const ROLE_COLUMNS: &str = "id, organization_id, name, kind, reference, reference_origin, metadata, created_at, updated_at";
const CREDENTIAL_COLUMNS: &str = "id, organization_id, role_id, name, kind, confidential, redirect_uri, client_id, secret_hash, scopes, expires_in, mode, custom, access_role, reference, reference_origin, metadata, created_at, updated_at";

/// Runs a list query of `table` within a scope (`$1`, bound to `$scope`): the page's rows
/// and the count of every matching row.
macro_rules! list {
    ($tx:expr, $row:ty, $table:expr, $columns:expr, $scope_sql:expr, $scope:expr, $query:expr) => {{
        let (condition, values) = $query.where_sql(2);
        let select = format!(
            "SELECT {} FROM {} WHERE {}{condition}{}{}",
            $columns,
            $table,
            $scope_sql,
            $query.order_sql(),
            $query.limit_sql()
        );
        let count = format!(
            "SELECT COUNT(*) FROM {} WHERE {}{condition}",
            $table, $scope_sql
        );
        on_conn!($tx, |c| {
            let mut q = sqlx::query_as::<_, $row>(sqlx::AssertSqlSafe(select.clone())).bind($scope);
            let mut n =
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count.clone())).bind($scope);
            for v in &values {
                (q, n) = match v {
                    SqlValue::Text(s) => (q.bind(s.clone()), n.bind(s.clone())),
                    SqlValue::Int(i) => (q.bind(*i), n.bind(*i)),
                    SqlValue::Bool(b) => (q.bind(*b), n.bind(*b)),
                };
            }
            let rows = q.fetch_all(&mut *c).await?;
            let total = n.fetch_one(&mut *c).await?;
            (rows, total)
        })
    }};
}

const IN_ORG: &str = "organization_id = $1";
/// The organization's api credentials as the Provisioning API shows them: provisioning
/// clients (kind `user`) are not among them.
const CREDENTIALS_IN_ORG: &str = "organization_id = $1 AND kind <> 'user'";

impl Tx {
    /// Locks a row until the transaction ends, so concurrent read-modify-writes of it (on
    /// PostgreSQL; SQLite's write transactions are exclusive anyway) do not lose updates.
    pub async fn lock_cl_row(&mut self, table: Locked, org: &str, id: &str) -> Result<()> {
        let sql = match table {
            Locked::ApiCredential => {
                "UPDATE cl_api_credentials SET updated_at = updated_at WHERE organization_id = $1 AND id = $2"
            }
            Locked::Role => {
                "UPDATE cl_roles SET updated_at = updated_at WHERE organization_id = $1 AND id = $2"
            }
            Locked::Permission => {
                "UPDATE cl_permissions SET updated_at = updated_at WHERE organization_id = $1 AND id = $2"
            }
        };
        on_conn!(self, |c| {
            sqlx::query(sql).bind(org).bind(id).execute(c).await?;
        });
        Ok(())
    }

    // --- organizations -----------------------------------------------------------------------

    /// Organizations as the Provisioning API lists them (with their attributes): all, or
    /// only `only`.
    pub async fn cl_organizations_page(
        &mut self,
        only: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<ClOrganizationRow>, i64)> {
        Ok(list!(
            self,
            ClOrganizationRow,
            ORGANIZATIONS_JOINED,
            ORGANIZATION_COLUMNS,
            "($1 IS NULL OR id = $1)",
            only,
            query
        ))
    }

    pub async fn cl_organization(&mut self, id: &str) -> Result<Option<ClOrganizationRow>> {
        let sql =
            format!("SELECT {ORGANIZATION_COLUMNS} FROM {ORGANIZATIONS_JOINED} WHERE id = $1");
        Ok(on_conn!(self, |c| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(id)
        .fetch_optional(c)
        .await?))
    }

    // --- permissions -------------------------------------------------------------------------

    pub async fn insert_cl_permission(&mut self, r: &PermissionRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO cl_permissions ({PERMISSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        on_conn!(self, |c| {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(&r.id)
                .bind(&r.organization_id)
                .bind(&r.role_id)
                .bind(&r.subject)
                .bind(r.can_create)
                .bind(r.can_read)
                .bind(r.can_update)
                .bind(r.can_destroy)
                .bind(&r.reference)
                .bind(&r.reference_origin)
                .bind(&r.metadata)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn update_cl_permission(&mut self, r: &PermissionRow) -> Result<()> {
        let sql = "UPDATE cl_permissions SET can_create = $3, can_read = $4, can_update = $5, can_destroy = $6, \
                   reference = $7, reference_origin = $8, metadata = $9, updated_at = $10 \
                   WHERE organization_id = $1 AND id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.organization_id)
                .bind(&r.id)
                .bind(r.can_create)
                .bind(r.can_read)
                .bind(r.can_update)
                .bind(r.can_destroy)
                .bind(&r.reference)
                .bind(&r.reference_origin)
                .bind(&r.metadata)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn cl_permission(&mut self, org: &str, id: &str) -> Result<Option<PermissionRow>> {
        let sql = format!(
            "SELECT {PERMISSION_COLUMNS} FROM cl_permissions WHERE organization_id = $1 AND id = $2"
        );
        Ok(on_conn!(self, |c| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(c)
        .await?))
    }

    pub async fn cl_permissions_page(
        &mut self,
        org: &str,
        query: &ListQuery,
    ) -> Result<(Vec<PermissionRow>, i64)> {
        Ok(list!(
            self,
            PermissionRow,
            "cl_permissions",
            PERMISSION_COLUMNS,
            IN_ORG,
            org,
            query
        ))
    }

    // --- versions ----------------------------------------------------------------------------

    pub async fn insert_cl_version(&mut self, r: &VersionRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO cl_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        on_conn!(self, |c| {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(&r.id)
                .bind(&r.organization_id)
                .bind(&r.resource_type)
                .bind(&r.resource_id)
                .bind(&r.event)
                .bind(&r.changes)
                .bind(&r.who)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// Keeps the newest `keep` versions of a resource and forgets the older ones.
    pub async fn trim_cl_versions(&mut self, resource_id: &str, keep: i64) -> Result<()> {
        let sql = "DELETE FROM cl_versions WHERE resource_id = $1 AND id NOT IN \
                   (SELECT id FROM cl_versions WHERE resource_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(resource_id)
                .bind(keep)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn cl_version(&mut self, org: &str, id: &str) -> Result<Option<VersionRow>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM cl_versions WHERE organization_id = $1 AND id = $2"
        );
        Ok(on_conn!(self, |c| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(c)
        .await?))
    }

    pub async fn cl_versions_page(
        &mut self,
        org: &str,
        query: &ListQuery,
    ) -> Result<(Vec<VersionRow>, i64)> {
        Ok(list!(
            self,
            VersionRow,
            "cl_versions",
            VERSION_COLUMNS,
            IN_ORG,
            org,
            query
        ))
    }

    // --- organization attributes -------------------------------------------------------------

    /// The Commerce Layer attributes of an organization (a JSON object), if any were set.
    pub async fn cl_organization_attributes(&mut self, org: &str) -> Result<Option<String>> {
        let sql = "SELECT attributes FROM cl_organizations WHERE organization_id = $1";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(org)
            .fetch_optional(c)
            .await?))
    }

    pub async fn put_cl_organization_attributes(
        &mut self,
        org: &str,
        attributes: &str,
        now: i64,
    ) -> Result<()> {
        let sql = "INSERT INTO cl_organizations (organization_id, attributes, updated_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (organization_id) DO UPDATE SET attributes = $2, updated_at = $3";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(org)
                .bind(attributes)
                .bind(now)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    // --- roles -------------------------------------------------------------------------------

    /// Inserts a role; a second base role of the same kind is ignored (false).
    pub async fn insert_cl_role(&mut self, r: &RoleRow) -> Result<bool> {
        let sql = format!(
            "INSERT INTO cl_roles ({ROLE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"
        );
        let done = on_conn!(self, |c| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(&r.id)
            .bind(&r.organization_id)
            .bind(&r.name)
            .bind(&r.kind)
            .bind(&r.reference)
            .bind(&r.reference_origin)
            .bind(&r.metadata)
            .bind(r.created_at)
            .bind(r.updated_at)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    pub async fn update_cl_role(&mut self, r: &RoleRow) -> Result<()> {
        let sql = "UPDATE cl_roles SET name = $3, reference = $4, reference_origin = $5, metadata = $6, updated_at = $7 \
                   WHERE organization_id = $1 AND id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.organization_id)
                .bind(&r.id)
                .bind(&r.name)
                .bind(&r.reference)
                .bind(&r.reference_origin)
                .bind(&r.metadata)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn cl_role(&mut self, org: &str, id: &str) -> Result<Option<RoleRow>> {
        let sql =
            format!("SELECT {ROLE_COLUMNS} FROM cl_roles WHERE organization_id = $1 AND id = $2");
        Ok(on_conn!(self, |c| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(c)
        .await?))
    }

    /// How many base roles (`admin`, `read_only`) the organization has.
    pub async fn cl_base_roles(&mut self, org: &str) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM cl_roles WHERE organization_id = $1 AND kind <> 'custom'";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(org)
            .fetch_one(c)
            .await?))
    }

    pub async fn cl_roles_page(
        &mut self,
        org: &str,
        query: &ListQuery,
    ) -> Result<(Vec<RoleRow>, i64)> {
        Ok(list!(
            self,
            RoleRow,
            "cl_roles",
            ROLE_COLUMNS,
            IN_ORG,
            org,
            query
        ))
    }

    // --- api credentials ---------------------------------------------------------------------

    pub async fn insert_cl_credential(&mut self, r: &ApiCredentialRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO cl_api_credentials ({CREDENTIAL_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        );
        on_conn!(self, |c| {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(&r.id)
                .bind(&r.organization_id)
                .bind(&r.role_id)
                .bind(&r.name)
                .bind(&r.kind)
                .bind(r.confidential)
                .bind(&r.redirect_uri)
                .bind(&r.client_id)
                .bind(&r.secret_hash)
                .bind(&r.scopes)
                .bind(r.expires_in)
                .bind(&r.mode)
                .bind(r.custom)
                .bind(&r.access_role)
                .bind(&r.reference)
                .bind(&r.reference_origin)
                .bind(&r.metadata)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// Writes the updatable fields of `r`.
    pub async fn update_cl_credential(&mut self, r: &ApiCredentialRow) -> Result<()> {
        let sql = "UPDATE cl_api_credentials SET role_id = $3, name = $4, redirect_uri = $5, expires_in = $6, \
                   reference = $7, reference_origin = $8, metadata = $9, updated_at = $10 \
                   WHERE organization_id = $1 AND id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.organization_id)
                .bind(&r.id)
                .bind(&r.role_id)
                .bind(&r.name)
                .bind(&r.redirect_uri)
                .bind(r.expires_in)
                .bind(&r.reference)
                .bind(&r.reference_origin)
                .bind(&r.metadata)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// Deletes an api credential; its client id, if it existed (for revocation).
    pub async fn delete_cl_credential(&mut self, org: &str, id: &str) -> Result<Option<String>> {
        let sql = "DELETE FROM cl_api_credentials WHERE organization_id = $1 AND id = $2 AND kind <> 'user' RETURNING client_id";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(org)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    pub async fn cl_credential(&mut self, org: &str, id: &str) -> Result<Option<ApiCredentialRow>> {
        let sql = format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM cl_api_credentials WHERE organization_id = $1 AND id = $2 AND kind <> 'user'"
        );
        Ok(on_conn!(self, |c| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(c)
        .await?))
    }

    pub async fn cl_credentials_page(
        &mut self,
        org: &str,
        query: &ListQuery,
    ) -> Result<(Vec<ApiCredentialRow>, i64)> {
        Ok(list!(
            self,
            ApiCredentialRow,
            "cl_api_credentials",
            CREDENTIAL_COLUMNS,
            CREDENTIALS_IN_ORG,
            org,
            query
        ))
    }

    /// The organization's provisioning clients (kind `user`), oldest first.
    pub async fn cl_provisioning_clients(&mut self, org: &str) -> Result<Vec<ApiCredentialRow>> {
        let sql = format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM cl_api_credentials WHERE organization_id = $1 AND kind = 'user' ORDER BY created_at, id"
        );
        Ok(on_conn!(self, |c| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(org)
        .fetch_all(c)
        .await?))
    }

    /// Deletes a provisioning client; its client id, if it existed.
    pub async fn delete_cl_provisioning_client(
        &mut self,
        org: &str,
        id: &str,
    ) -> Result<Option<String>> {
        let sql = "DELETE FROM cl_api_credentials WHERE organization_id = $1 AND id = $2 AND kind = 'user' RETURNING client_id";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(org)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    /// The client with this client id, for the token endpoint and verification.
    pub async fn cl_client(&mut self, client_id: &str) -> Result<Option<ClientRow>> {
        let sql = "SELECT c.id, c.organization_id, o.slug AS organization_slug, c.client_id, c.role_id, r.kind AS role_kind, \
                   c.kind, c.confidential, c.redirect_uri, c.secret_hash, c.scopes, c.expires_in, c.mode, c.access_role, \
                   COALESCE(s.token_algorithm, 'RS512') AS token_algorithm \
                   FROM cl_api_credentials c \
                   JOIN organizations o ON o.id = c.organization_id \
                   LEFT JOIN cl_roles r ON r.id = c.role_id \
                   LEFT JOIN cl_settings s ON s.organization_id = c.organization_id \
                   WHERE c.client_id = $1";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(client_id)
            .fetch_optional(c)
            .await?))
    }
}

/// A table whose rows are read, changed and written back in one transaction.
#[derive(Debug, Clone, Copy)]
pub enum Locked {
    ApiCredential,
    Role,
    Permission,
}
