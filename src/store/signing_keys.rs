//! The issuer's signing keys: public JWK in the clear, private key sealed by the keyring.
//! At most one `active` key per (owner, algorithm), by a unique index. The owner is an
//! organization id, or `""` for the server's own keys (stored as NULL, so an organization's
//! deletion cascades to its keys and never to the server's).

use super::{Result, Tx, on_conn};

/// A signing key as stored, with its sealed private half.
#[derive(Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub organization_id: String,
    pub algorithm: String,
    pub public_jwk: String,
    pub private_key: Vec<u8>,
    pub status: String,
    pub created_at: i64,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("organization_id", &self.organization_id)
            .field("algorithm", &self.algorithm)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// The public half of a key: what verification and JWK Sets need.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PublicKeyRow {
    pub kid: String,
    pub organization_id: String,
    pub algorithm: String,
    pub public_jwk: String,
}

impl Tx {
    /// Inserts a key; a second active key for the same (organization, algorithm) is a
    /// `Conflict`.
    pub async fn insert_signing_key(&mut self, r: &SigningKeyRow) -> Result<()> {
        let sql = "INSERT INTO signing_keys \
                   (kid, organization_id, algorithm, public_jwk, private_key, status, created_at) \
                   VALUES ($1, NULLIF($2, ''), $3, $4, $5, $6, $7)";
        on_conn!(self, |c| {
            sqlx::query(sql)
                .bind(&r.kid)
                .bind(&r.organization_id)
                .bind(&r.algorithm)
                .bind(&r.public_jwk)
                .bind(&r.private_key)
                .bind(&r.status)
                .bind(r.created_at)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// The key that signs now for (owner, algorithm).
    pub async fn active_signing_key(
        &mut self,
        org: &str,
        algorithm: &str,
    ) -> Result<Option<SigningKeyRow>> {
        let sql = "SELECT kid, COALESCE(organization_id, '') AS organization_id, algorithm, public_jwk, private_key, status, created_at \
                   FROM signing_keys \
                   WHERE COALESCE(organization_id, '') = $1 AND algorithm = $2 AND status = 'active'";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(algorithm)
            .fetch_optional(c)
            .await?))
    }

    /// Retires the active key of (organization, algorithm): it stops signing and stays
    /// published until `published_until` (epoch ms; None: for ever).
    pub async fn retire_signing_key(
        &mut self,
        org: &str,
        algorithm: &str,
        published_until: Option<i64>,
    ) -> Result<bool> {
        let sql = "UPDATE signing_keys SET status = 'retired', published_until = $3 \
                   WHERE COALESCE(organization_id, '') = $1 AND algorithm = $2 AND status = 'active'";
        let done = on_conn!(self, |c| sqlx::query(sql)
            .bind(org)
            .bind(algorithm)
            .bind(published_until)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    /// The keys an organization publishes at `now` (epoch ms): active ones, and retired ones
    /// until their `published_until` (never, if unset), newest first.
    pub async fn published_keys(&mut self, org: &str, now: i64) -> Result<Vec<PublicKeyRow>> {
        let sql = "SELECT kid, COALESCE(organization_id, '') AS organization_id, algorithm, public_jwk FROM signing_keys \
                   WHERE COALESCE(organization_id, '') = $1 \
                   AND (status = 'active' OR published_until IS NULL OR published_until > $2) \
                   ORDER BY created_at DESC, kid";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(org)
            .bind(now)
            .fetch_all(c)
            .await?))
    }

    /// The public half of the key a `kid` names, while it is published at `now` (a retired
    /// key past its `published_until` verifies nothing).
    pub async fn public_key(&mut self, kid: &str, now: i64) -> Result<Option<PublicKeyRow>> {
        let sql = "SELECT kid, COALESCE(organization_id, '') AS organization_id, algorithm, public_jwk FROM signing_keys \
                   WHERE kid = $1 \
                   AND (status = 'active' OR published_until IS NULL OR published_until > $2)";
        Ok(on_conn!(self, |c| sqlx::query_as(sql)
            .bind(kid)
            .bind(now)
            .fetch_optional(c)
            .await?))
    }
}
