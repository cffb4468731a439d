//! The OAuth server's records: revoked access tokens, organizations' OAuth settings,
//! authorization-code grants and their refresh tokens.

use crate::store::{Result, Tx, on_conn};

/// An organization's OAuth settings.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettingsRow {
    pub organization_id: String,
    pub login_url: Option<String>,
    pub token_algorithm: String,
    pub updated_at: i64,
}

/// One authorization-code grant (see the migration).
#[derive(Clone, sqlx::FromRow)]
pub struct AuthorizationRow {
    pub id: String,
    pub organization_id: String,
    pub api_credential_id: String,
    pub challenge: String,
    pub verifier_hash: Option<Vec<u8>>,
    pub code_hash: Option<Vec<u8>>,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub scope: String,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub owner_id: Option<String>,
    pub owner_type: Option<String>,
    /// `accepted` (the browser is on its way back), `rejected`, `code` (a code is out),
    /// `active` (the code was used; refresh tokens live), `revoked`.
    pub status: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl std::fmt::Debug for AuthorizationRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationRow")
            .field("id", &self.id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A refresh token as stored (its hash is the key).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRow {
    pub authorization_id: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

const AUTHORIZATION_COLUMNS: &str = "id, organization_id, api_credential_id, challenge, verifier_hash, code_hash, redirect_uri, state, scope, code_challenge, code_challenge_method, owner_id, owner_type, status, created_at, expires_at";

impl Tx {
    // --- revoked access tokens ---------------------------------------------------------------

    pub async fn insert_cl_revoked_token(
        &mut self,
        jti: &str,
        org: &str,
        expires_at: i64,
    ) -> Result<()> {
        let sql = "INSERT INTO cl_revoked_tokens (jti, organization_id, expires_at) VALUES ($1, $2, $3) \
                   ON CONFLICT DO NOTHING";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(jti)
                .bind(org)
                .bind(expires_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn cl_token_revoked(&mut self, jti: &str) -> Result<bool> {
        let sql = "SELECT COUNT(*) FROM cl_revoked_tokens WHERE jti = $1";
        let n: i64 = on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(jti)
            .fetch_one(c)
            .await?);
        Ok(n > 0)
    }

    /// Forgets revocations of tokens that have expired anyway.
    pub async fn prune_cl_revoked_tokens(&mut self, now: i64) -> Result<u64> {
        let sql = "DELETE FROM cl_revoked_tokens WHERE expires_at < $1";
        Ok(on_conn!(self, |c| sqlx::query(sql)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()))
    }

    // --- OAuth settings ----------------------------------------------------------------------

    pub async fn cl_settings(&mut self, org: &str) -> Result<Option<SettingsRow>> {
        let sql = "SELECT organization_id, login_url, token_algorithm, updated_at FROM cl_settings WHERE organization_id = $1";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .fetch_optional(c)
            .await?))
    }

    pub async fn put_cl_settings(&mut self, r: &SettingsRow) -> Result<()> {
        let sql = "INSERT INTO cl_settings (organization_id, login_url, token_algorithm, updated_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (organization_id) DO UPDATE SET login_url = $2, token_algorithm = $3, updated_at = $4";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.organization_id)
                .bind(&r.login_url)
                .bind(&r.token_algorithm)
                .bind(r.updated_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// Every client id of the organization (to refresh them all when its settings change).
    pub async fn cl_client_ids(&mut self, org: &str) -> Result<Vec<String>> {
        let sql = "SELECT client_id FROM cl_api_credentials WHERE organization_id = $1";
        Ok(on_conn!(self, |c| sqlx::query_scalar(sql)
            .bind(org)
            .fetch_all(c)
            .await?))
    }

    // --- authorizations ----------------------------------------------------------------------

    pub async fn insert_cl_authorization(&mut self, r: &AuthorizationRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO cl_authorizations ({AUTHORIZATION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        );
        on_conn!(self, |c| {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(&r.id)
                .bind(&r.organization_id)
                .bind(&r.api_credential_id)
                .bind(&r.challenge)
                .bind(&r.verifier_hash)
                .bind(&r.code_hash)
                .bind(&r.redirect_uri)
                .bind(&r.state)
                .bind(&r.scope)
                .bind(&r.code_challenge)
                .bind(&r.code_challenge_method)
                .bind(&r.owner_id)
                .bind(&r.owner_type)
                .bind(&r.status)
                .bind(r.created_at)
                .bind(r.expires_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// Writes what a step of the flow changes (hashes, owner, status, expiry), if the
    /// authorization is still in status `from`: false when a concurrent step got there
    /// first.
    pub async fn advance_cl_authorization(
        &mut self,
        r: &AuthorizationRow,
        from: &str,
    ) -> Result<bool> {
        let sql = "UPDATE cl_authorizations SET verifier_hash = $2, code_hash = $3, owner_id = $4, owner_type = $5, \
                   status = $6, expires_at = $7 WHERE id = $1 AND status = $8";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(&r.id)
            .bind(&r.verifier_hash)
            .bind(&r.code_hash)
            .bind(&r.owner_id)
            .bind(&r.owner_type)
            .bind(&r.status)
            .bind(r.expires_at)
            .bind(from)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    /// Revokes a grant: its refresh tokens stop working (its access tokens are revoked
    /// through the feed by the caller). Kept until `until`, when its last token has expired.
    pub async fn revoke_cl_authorization(&mut self, id: &str, until: i64) -> Result<()> {
        let sql = "UPDATE cl_authorizations SET status = 'revoked', \
                   expires_at = CASE WHEN expires_at > $2 THEN expires_at ELSE $2 END WHERE id = $1";
        on_conn!(self, |c| {
            sqlx::query(sql).bind(id).bind(until).execute(c).await?;
        });
        Ok(())
    }

    /// The authorization a login challenge, a verifier hash or a code hash names.
    pub async fn cl_authorization_by(
        &mut self,
        column: AuthorizationKey,
        value: &[u8],
    ) -> Result<Option<AuthorizationRow>> {
        let column = match column {
            AuthorizationKey::Challenge => "challenge",
            AuthorizationKey::Verifier => "verifier_hash",
            AuthorizationKey::Code => "code_hash",
        };
        let sql =
            format!("SELECT {AUTHORIZATION_COLUMNS} FROM cl_authorizations WHERE {column} = $1");
        Ok(on_conn!(self, |c| {
            let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            // A challenge key is text (an HMAC in hex); the other hashes are bytes.
            let q = if column == "challenge" {
                q.bind(String::from_utf8_lossy(value).into_owned())
            } else {
                q.bind(value.to_vec())
            };
            q.fetch_optional(c).await?
        }))
    }

    pub async fn cl_authorization(&mut self, id: &str) -> Result<Option<AuthorizationRow>> {
        let sql = format!("SELECT {AUTHORIZATION_COLUMNS} FROM cl_authorizations WHERE id = $1");
        Ok(on_conn!(self, |c| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(id)
        .fetch_optional(c)
        .await?))
    }

    /// Forgets authorizations past their expiry that never became grants, and grants whose
    /// refresh tokens have all expired.
    pub async fn prune_cl_authorizations(&mut self, now: i64) -> Result<u64> {
        let sql = "DELETE FROM cl_authorizations WHERE expires_at < $1";
        Ok(on_conn!(self, |c| sqlx::query(sql)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()))
    }

    // --- refresh tokens ----------------------------------------------------------------------

    pub async fn insert_cl_refresh_token(&mut self, hash: &[u8], r: &RefreshRow) -> Result<()> {
        let sql = "INSERT INTO cl_refresh_tokens (token_hash, authorization_id, scope, created_at, expires_at, used_at) \
                   VALUES ($1, $2, $3, $4, $5, $6)";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(hash)
                .bind(&r.authorization_id)
                .bind(&r.scope)
                .bind(r.created_at)
                .bind(r.expires_at)
                .bind(r.used_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    pub async fn cl_refresh_token(&mut self, hash: &[u8]) -> Result<Option<RefreshRow>> {
        let sql = "SELECT authorization_id, scope, created_at, expires_at, used_at FROM cl_refresh_tokens WHERE token_hash = $1";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(hash)
            .fetch_optional(c)
            .await?))
    }

    /// Marks a refresh token used; false if it already was (a replay raced this use).
    pub async fn use_cl_refresh_token(&mut self, hash: &[u8], now: i64) -> Result<bool> {
        let sql =
            "UPDATE cl_refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(hash)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }
}

/// Which secret names an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationKey {
    Challenge,
    Verifier,
    Code,
}
