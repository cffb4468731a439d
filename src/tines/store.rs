//! Teams, folders and user credentials (the Tines surface's resources).

use crate::store::{Result, Tx, on_conn};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamRow {
    pub id: i64,
    pub organization_id: String,
    pub name: String,
    pub slug: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FolderRow {
    pub id: i64,
    pub organization_id: String,
    pub team_id: i64,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user credential as stored: JSON text columns and the sealed secrets blob.
#[derive(Clone, sqlx::FromRow)]
pub struct CredentialRow {
    pub id: i64,
    pub organization_id: String,
    pub team_id: i64,
    pub folder_id: Option<i64>,
    pub live_credential_id: Option<i64>,
    pub name: String,
    pub slug: String,
    pub mode: String,
    pub read_access: String,
    pub shared_team_slugs: String,
    pub description: String,
    pub metadata: String,
    pub allowed_hosts: String,
    pub config: String,
    pub secrets: Option<Vec<u8>>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
    /// The last failed fetch or refresh, and when it happened.
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Timestamps of this credential's test twin, when it has one (filled by reads only).
    #[sqlx(default)]
    pub twin_created_at: Option<i64>,
    #[sqlx(default)]
    pub twin_updated_at: Option<i64>,
}

impl std::fmt::Debug for CredentialRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialRow")
            .field("id", &self.id)
            .field("team_id", &self.team_id)
            .field("slug", &self.slug)
            .field("mode", &self.mode)
            .field("secrets", &self.secrets.as_ref().map(|_| "[sealed]"))
            .finish_non_exhaustive()
    }
}

/// Which slice of a list to read.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

/// The folder columns plus `size`, the number of credentials in it.
macro_rules! folder_select {
    () => {
        "SELECT f.id, f.organization_id, f.team_id, f.name, f.content_type, \
         (SELECT COUNT(*) FROM user_credentials u WHERE u.folder_id = f.id) AS size, \
         f.created_at, f.updated_at FROM folders f "
    };
}

/// Credential columns plus the test twin's timestamps.
macro_rules! credential_select {
    () => {
        "SELECT u.id, u.organization_id, u.team_id, u.folder_id, u.live_credential_id, u.name, u.slug, u.mode, u.read_access, u.shared_team_slugs, u.description, u.metadata, u.allowed_hosts, u.config, u.secrets, u.created_at, u.updated_at, u.last_used_at, u.last_error, u.last_error_at, \
         t.created_at AS twin_created_at, t.updated_at AS twin_updated_at \
         FROM user_credentials u LEFT JOIN user_credentials t ON t.live_credential_id = u.id "
    };
}

impl Tx {
    pub async fn insert_team(
        &mut self,
        org: &str,
        name: &str,
        slug: &str,
        now: i64,
    ) -> Result<i64> {
        let sql = "INSERT INTO teams (organization_id, name, slug, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $4) RETURNING id";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(org)
            .bind(name)
            .bind(slug)
            .bind(now)
            .fetch_one(c)
            .await?))
    }

    pub async fn team(&mut self, org: &str, id: i64) -> Result<Option<TeamRow>> {
        let sql = "SELECT id, organization_id, name, slug, created_at, updated_at FROM teams WHERE organization_id = $1 AND id = $2";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    pub async fn all_teams(&mut self, org: &str) -> Result<Vec<TeamRow>> {
        let sql = "SELECT id, organization_id, name, slug, created_at, updated_at FROM teams WHERE organization_id = $1 ORDER BY id";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .fetch_all(c)
            .await?))
    }

    /// A page of teams and the total; `only` restricts to one team (team-bound tokens).
    pub async fn teams(
        &mut self,
        org: &str,
        only: Option<i64>,
        page: Page,
    ) -> Result<(Vec<TeamRow>, i64)> {
        let list = "SELECT id, organization_id, name, slug, created_at, updated_at FROM teams WHERE organization_id = $1 AND ($2 IS NULL OR id = $2) \
                    ORDER BY id LIMIT $3 OFFSET $4";
        let count =
            "SELECT COUNT(*) FROM teams WHERE organization_id = $1 AND ($2 IS NULL OR id = $2)";
        on_conn!(self, |c| {
            let rows = sqlx::query_as(list)
                .bind(org)
                .bind(only)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(&mut *c)
                .await?;
            let total = sqlx::query_scalar(count)
                .bind(org)
                .bind(only)
                .fetch_one(&mut *c)
                .await?;
            Ok((rows, total))
        })
    }

    /// Deletes a team's user credentials (test credentials first); their ids.
    pub async fn delete_team_credentials(&mut self, org: &str, team: i64) -> Result<Vec<i64>> {
        let twins = "DELETE FROM user_credentials WHERE organization_id = $1 AND team_id = $2 \
                     AND live_credential_id IS NOT NULL RETURNING id";
        let live =
            "DELETE FROM user_credentials WHERE organization_id = $1 AND team_id = $2 RETURNING id";
        let mut ids: Vec<i64> = Vec::new();
        for sql in [twins, live] {
            let deleted: Vec<i64> = on_conn!(self, |c| sqlx::query_scalar(sql)
                .bind(org)
                .bind(team)
                .fetch_all(c)
                .await?);
            ids.extend(deleted);
        }
        Ok(ids)
    }

    pub async fn delete_team(&mut self, org: &str, id: i64) -> Result<bool> {
        let sql = "DELETE FROM teams WHERE organization_id = $1 AND id = $2";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    pub async fn insert_folder(
        &mut self,
        org: &str,
        team_id: i64,
        name: &str,
        content_type: &str,
        now: i64,
    ) -> Result<i64> {
        let sql = "INSERT INTO folders (organization_id, team_id, name, content_type, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $5) RETURNING id";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(org)
            .bind(team_id)
            .bind(name)
            .bind(content_type)
            .bind(now)
            .fetch_one(c)
            .await?))
    }

    pub async fn folder(&mut self, org: &str, id: i64) -> Result<Option<FolderRow>> {
        let sql = concat!(
            folder_select!(),
            "WHERE f.organization_id = $1 AND f.id = $2"
        );
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    pub async fn folders(
        &mut self,
        org: &str,
        team: Option<i64>,
        page: Page,
    ) -> Result<(Vec<FolderRow>, i64)> {
        let list = concat!(
            folder_select!(),
            "WHERE f.organization_id = $1 AND ($2 IS NULL OR f.team_id = $2) ORDER BY f.id LIMIT $3 OFFSET $4"
        );
        let count = "SELECT COUNT(*) FROM folders WHERE organization_id = $1 AND ($2 IS NULL OR team_id = $2)";
        on_conn!(self, |c| {
            let rows = sqlx::query_as(list)
                .bind(org)
                .bind(team)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(&mut *c)
                .await?;
            let total = sqlx::query_scalar(count)
                .bind(org)
                .bind(team)
                .fetch_one(&mut *c)
                .await?;
            Ok((rows, total))
        })
    }

    pub async fn delete_folder(&mut self, org: &str, id: i64) -> Result<bool> {
        let sql = "DELETE FROM folders WHERE organization_id = $1 AND id = $2";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    /// Inserts everything but the sealed secrets (their associated data needs the new id).
    pub async fn insert_credential(&mut self, r: &CredentialRow) -> Result<i64> {
        let sql = "INSERT INTO user_credentials (organization_id, team_id, folder_id, live_credential_id, \
                   name, slug, mode, read_access, shared_team_slugs, description, metadata, allowed_hosts, \
                   config, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(&r.organization_id)
            .bind(r.team_id)
            .bind(r.folder_id)
            .bind(r.live_credential_id)
            .bind(&r.name)
            .bind(&r.slug)
            .bind(&r.mode)
            .bind(&r.read_access)
            .bind(&r.shared_team_slugs)
            .bind(&r.description)
            .bind(&r.metadata)
            .bind(&r.allowed_hosts)
            .bind(&r.config)
            .bind(r.created_at)
            .bind(r.updated_at)
            .fetch_one(c)
            .await?))
    }

    /// Rewrites every mutable column of an existing credential, secrets included.
    pub async fn update_credential(&mut self, r: &CredentialRow) -> Result<()> {
        let sql = "UPDATE user_credentials SET folder_id = $3, live_credential_id = $4, name = $5, \
                   slug = $6, mode = $7, read_access = $8, shared_team_slugs = $9, description = $10, \
                   metadata = $11, allowed_hosts = $12, config = $13, secrets = $14, updated_at = $15 \
                   WHERE organization_id = $1 AND id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.organization_id)
                .bind(r.id)
                .bind(r.folder_id)
                .bind(r.live_credential_id)
                .bind(&r.name)
                .bind(&r.slug)
                .bind(&r.mode)
                .bind(&r.read_access)
                .bind(&r.shared_team_slugs)
                .bind(&r.description)
                .bind(&r.metadata)
                .bind(&r.allowed_hosts)
                .bind(&r.config)
                .bind(&r.secrets)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn credential(&mut self, org: &str, id: i64) -> Result<Option<CredentialRow>> {
        let sql = concat!(
            credential_select!(),
            "WHERE u.organization_id = $1 AND u.id = $2"
        );
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    /// The live credentials of an organization with this slug, oldest first (one per team).
    pub async fn live_credentials_by_slug(
        &mut self,
        org: &str,
        slug: &str,
    ) -> Result<Vec<CredentialRow>> {
        let sql = concat!(
            credential_select!(),
            "WHERE u.organization_id = $1 AND u.slug = $2 AND u.live_credential_id IS NULL ORDER BY u.id"
        );
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(slug)
            .fetch_all(c)
            .await?))
    }

    /// Stamps a use, and keeps `error` when the credential's own fetch failed.
    pub async fn mark_credential_used(
        &mut self,
        org: &str,
        id: i64,
        at: i64,
        error: Option<&str>,
    ) -> Result<()> {
        let sql = "UPDATE user_credentials SET last_used_at = $3, \
                   last_error = COALESCE(CAST($4 AS TEXT), last_error), \
                   last_error_at = CASE WHEN CAST($4 AS TEXT) IS NULL THEN last_error_at ELSE $3 END \
                   WHERE organization_id = $1 AND id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(org)
                .bind(id)
                .bind(at)
                .bind(error)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// The sealed tokens of an authorization code credential.
    pub async fn credential_tokens(&mut self, org: &str, id: i64) -> Result<Option<Vec<u8>>> {
        let sql = "SELECT tokens FROM user_credential_tokens WHERE organization_id = $1 AND credential_id = $2";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(org)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    pub async fn set_credential_tokens(
        &mut self,
        org: &str,
        id: i64,
        sealed: &[u8],
        at: i64,
    ) -> Result<()> {
        let sql = "INSERT INTO user_credential_tokens (credential_id, organization_id, tokens, updated_at) \
                   VALUES ($2, $1, $3, $4) ON CONFLICT (credential_id) \
                   DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(org)
                .bind(id)
                .bind(sealed)
                .bind(at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// Replaces the tokens of a credential that is still at `version` (its `updated_at`):
    /// tokens refreshed for a configuration since replaced are not kept. False if not.
    pub async fn replace_credential_tokens(
        &mut self,
        org: &str,
        id: i64,
        version: i64,
        sealed: &[u8],
        at: i64,
    ) -> Result<bool> {
        let sql = "UPDATE user_credential_tokens SET tokens = $3, updated_at = $4 \
                   WHERE organization_id = $1 AND credential_id = $2 AND EXISTS \
                   (SELECT 1 FROM user_credentials u WHERE u.id = $2 AND u.updated_at = $5)";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(id)
            .bind(sealed)
            .bind(at)
            .bind(version)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Moves a credential from `version` to a new one (compare and swap on `updated_at`).
    pub async fn bump_credential_version(
        &mut self,
        org: &str,
        id: i64,
        version: i64,
        to: i64,
    ) -> Result<bool> {
        let sql = "UPDATE user_credentials SET updated_at = $4 \
                   WHERE organization_id = $1 AND id = $2 AND updated_at = $3";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(id)
            .bind(version)
            .bind(to)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    pub async fn delete_credential_tokens(&mut self, org: &str, id: i64) -> Result<()> {
        let sql =
            "DELETE FROM user_credential_tokens WHERE organization_id = $1 AND credential_id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql).bind(org).bind(id).execute(c).await?;
        });
        Ok(())
    }

    /// Keeps a failure on the credential (its log) without marking it used.
    pub async fn set_credential_error(
        &mut self,
        org: &str,
        id: i64,
        error: &str,
        at: i64,
    ) -> Result<()> {
        let sql = "UPDATE user_credentials SET last_error = $3, last_error_at = $4 \
                   WHERE organization_id = $1 AND id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(org)
                .bind(id)
                .bind(error)
                .bind(at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// The test twin of a live credential, if it has one.
    pub async fn credential_twin(
        &mut self,
        org: &str,
        live_id: i64,
    ) -> Result<Option<CredentialRow>> {
        let sql = concat!(
            credential_select!(),
            "WHERE u.organization_id = $1 AND u.live_credential_id = $2"
        );
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(live_id)
            .fetch_optional(c)
            .await?))
    }

    /// A page of credentials in id order, and how many match. Only the conditions given are
    /// in the SQL, so each shape walks its index — `(organization_id, id)`,
    /// `(organization_id, team_id, id)` or `(folder_id, id)` — and the page's offset skips
    /// index entries, not whole rows (from the list's end for its back half); the page is then
    /// read by id. (`filter` is one of [`super::service::CREDENTIAL_FILTERS`], checked by the
    /// caller.)
    pub async fn credentials(
        &mut self,
        org: &str,
        team: Option<i64>,
        folder: Option<i64>,
        filter: Option<&str>,
        page: Page,
    ) -> Result<(Vec<CredentialRow>, i64)> {
        // With a folder, the organization is compared as an expression (`|| ''`), so no
        // index is chosen for it: SQLite, without statistics, would otherwise walk the whole
        // organization's index instead of the folder's.
        let mut matching = String::from(if folder.is_some() {
            "organization_id || '' = $1"
        } else {
            "organization_id = $1"
        });
        let mut binds = Vec::new();
        for (column, value) in [("team_id", team), ("folder_id", folder)] {
            if let Some(value) = value {
                binds.push(value);
                matching.push_str(&format!(" AND {column} = ${}", binds.len() + 1));
            }
        }
        matching.push_str(match filter {
            Some("RESTRICTED") => " AND allowed_hosts <> '[]'",
            Some("UNRESTRICTED") => " AND allowed_hosts = '[]'",
            Some("UNUSED_IN_ACTIONS") => " AND last_used_at IS NULL",
            _ => "",
        });
        let n = binds.len() + 1;
        let list = |order: &str| {
            format!(
                concat!(
                    credential_select!(),
                    "WHERE u.id IN (SELECT id FROM user_credentials WHERE {matching} \
                     ORDER BY id {order} LIMIT ${limit} OFFSET ${offset}) ORDER BY u.id"
                ),
                matching = matching,
                order = order,
                limit = n + 1,
                offset = n + 2,
            )
        };
        let count = format!("SELECT COUNT(*) FROM user_credentials WHERE {matching}");
        on_conn!(self, |c| {
            let mut total = sqlx::query_scalar(sqlx::AssertSqlSafe(count)).bind(org);
            for &value in &binds {
                total = total.bind(value);
            }
            let total: i64 = total.fetch_one(&mut *c).await?;
            // The back half of the list is read from its end, so an offset never skips more
            // than half of it: the last page costs what the first does.
            let (order, limit, offset) = if page.offset > total / 2 {
                let left = total - page.offset;
                if left <= 0 {
                    return Ok((Vec::new(), total));
                }
                ("DESC", page.limit.min(left), (left - page.limit).max(0))
            } else {
                ("ASC", page.limit, page.offset)
            };
            let mut rows = sqlx::query_as(sqlx::AssertSqlSafe(list(order))).bind(org);
            for &value in &binds {
                rows = rows.bind(value);
            }
            let rows = rows.bind(limit).bind(offset).fetch_all(&mut *c).await?;
            Ok((rows, total))
        })
    }

    pub async fn delete_credential(&mut self, org: &str, id: i64) -> Result<bool> {
        let sql = "DELETE FROM user_credentials WHERE organization_id = $1 AND id = $2";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    pub async fn set_credential_secrets(
        &mut self,
        org: &str,
        id: i64,
        sealed: Option<&[u8]>,
    ) -> Result<()> {
        let sql = "UPDATE user_credentials SET secrets = $3 WHERE organization_id = $1 AND id = $2";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(org)
                .bind(id)
                .bind(sealed)
                .execute(c)
                .await?;
        });
        Ok(())
    }
}
