//! The issuer: every JWT Latchkey signs, for every family, and its verification.
//!
//! Each organization has at most one active signing key per algorithm (a unique index), made
//! on first need. The key is generated off the async runtime (`spawn_blocking`: RSA takes
//! tens of milliseconds) and before the write transaction begins, so no SQLite write lock is
//! held while it is made; if another node inserted one meanwhile, the unique index refuses
//! ours and theirs is used. Private halves are sealed under `(signing_keys, kid,
//! private_key)`; public halves are published as a JWK Set, where retired keys stay until
//! their last token can have expired. A `kid` is the key's RFC 7638 thumbprint, so a kid
//! that does not have that shape is refused before any lookup or cache insert.

use std::{sync::Arc, time::Instant};

use serde::Serialize;
use serde_json::Value;

use super::{CoreError, Kernel, Result, now_ms};
use crate::{
    crypto::{
        jwt::{
            JwkSet, JwtAlgorithm, PublicJwk as Jwk, SigningKey, VerifyError, VerifyingKey,
            is_thumbprint_kid,
        },
        keyring::Aad,
    },
    store::{PublicKeyRow, SigningKeyRow, StoreError, Tx},
};

/// The owner of the server's own keys, which belong to no organization: they sign tokens
/// whose verifiers fetch one JWK Set for the whole server (Commerce Layer's access tokens,
/// published at `/.well-known/jwks.json`). Every other key belongs to one organization.
pub const SERVER: &str = "";

/// Signing keys kept in memory (two per organization and algorithm in use is plenty).
const MAX_SIGNERS: usize = 10_000;
/// Verifying keys (and unknown kids) kept in memory.
const MAX_VERIFIERS: usize = 100_000;

fn private_aad(kid: &str) -> Aad<'_> {
    Aad {
        table: "signing_keys",
        row_id: kid,
        column: "private_key",
    }
}

fn parse_jwk(kid: &str, json: &str) -> Result<Jwk> {
    serde_json::from_str(json).map_err(|e| CoreError::Internal(format!("stored JWK {kid}: {e}")))
}

fn stored_algorithm(row_kid: &str, name: &str) -> Result<JwtAlgorithm> {
    JwtAlgorithm::parse(name)
        .ok_or_else(|| CoreError::Internal(format!("signing key {row_kid}: algorithm {name:?}")))
}

/// A key that verifies, with the organization it belongs to.
pub struct IssuedKey {
    pub organization_id: String,
    key: VerifyingKey,
}

/// A token one of our keys signed, its signature and `exp` checked.
#[derive(Debug, Clone)]
pub struct Issued {
    pub organization_id: String,
    pub claims: Value,
}

/// Why an issued token did not verify: the `/v1/authenticate` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuedError {
    UnknownKey,
    BadSignature,
    Expired,
    Malformed,
}

impl IssuedError {
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::Malformed => "malformed",
        }
    }
}

/// Cached keys are read again after this long, so a rotation or a retirement made on
/// another node reaches this one.
const KEY_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

pub(crate) struct Issuer {
    /// (organization, algorithm) → the key that signs, and when it was loaded.
    signers: quick_cache::sync::Cache<(String, JwtAlgorithm), (Arc<SigningKey>, Instant)>,
    /// kid → its key (`None`: a kid of our shape that no published key has), and when.
    verifiers: quick_cache::sync::Cache<String, (Option<Arc<IssuedKey>>, Instant)>,
}

impl Default for Issuer {
    fn default() -> Self {
        Self {
            signers: quick_cache::sync::Cache::new(MAX_SIGNERS),
            verifiers: quick_cache::sync::Cache::new(MAX_VERIFIERS),
        }
    }
}

impl Kernel {
    /// The key that signs `algorithm` tokens for `org`, created on first use.
    pub async fn signing_key(&self, org: &str, algorithm: JwtAlgorithm) -> Result<Arc<SigningKey>> {
        let slot = (org.to_owned(), algorithm);
        let signers = &self.inner.issuer.signers;
        if let Some((key, at)) = signers.get(&slot)
            && at.elapsed() < KEY_MAX_AGE
        {
            return Ok(key);
        }
        // Boxed: the store and key-generation futures would otherwise be part of (and be
        // copied with) every token request's future, ~17 KB of it.
        Box::pin(self.load_signing_key(slot)).await
    }

    /// The miss of [`Self::signing_key`]: read (or make) the key once, for every caller
    /// waiting on it.
    async fn load_signing_key(&self, slot: (String, JwtAlgorithm)) -> Result<Arc<SigningKey>> {
        let signers = &self.inner.issuer.signers;
        signers.remove_if(&slot, |(_, at)| at.elapsed() >= KEY_MAX_AGE);
        let load = async {
            Ok::<_, CoreError>((
                self.load_or_create_signer(&slot.0, slot.1).await?,
                Instant::now(),
            ))
        };
        Ok(signers.get_or_insert_async(&slot, load).await?.0)
    }

    async fn load_or_create_signer(
        &self,
        org: &str,
        algorithm: JwtAlgorithm,
    ) -> Result<Arc<SigningKey>> {
        let mut conn = self.store().conn().await?;
        if let Some(key) = self.active_signer(&mut conn, org, algorithm).await? {
            return Ok(key);
        }
        drop(conn);
        let (key, row) = self.new_signing_key(org, algorithm).await?;
        let mut tx = self.store().write().await?;
        match tx.insert_signing_key(&row).await {
            Ok(()) => {
                tx.commit().await?;
                Ok(Arc::new(key))
            }
            // Another node made one first: use theirs. Read in a write transaction: on SQLite
            // it sees a key that a write before it in the same transaction made, and its
            // (empty) commit returns once that transaction is on disk.
            Err(StoreError::Conflict(_)) => {
                drop(tx);
                let mut tx = self.store().write().await?;
                let key = self.active_signer(&mut tx, org, algorithm).await?;
                tx.commit().await?;
                key.ok_or_else(|| CoreError::Internal("signing key vanished".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn active_signer(
        &self,
        tx: &mut Tx,
        org: &str,
        algorithm: JwtAlgorithm,
    ) -> Result<Option<Arc<SigningKey>>> {
        let row = tx.active_signing_key(org, algorithm.as_str()).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let pem = self
            .keyring()
            .open_string(&private_aad(&row.kid), &row.private_key)?;
        Ok(Some(Arc::new(SigningKey::from_pem(algorithm, &pem)?)))
    }

    /// Signs `claims` with the organization's active `algorithm` key.
    pub async fn issue(
        &self,
        org: &str,
        algorithm: JwtAlgorithm,
        claims: &impl Serialize,
    ) -> Result<String> {
        Ok(self.signing_key(org, algorithm).await?.sign(claims)?)
    }

    /// Verifies a token signed by one of our keys: the key its `kid` names (in our format),
    /// with that key's algorithm, and `exp` when present. The caller checks the claims.
    pub async fn verify_issued(
        &self,
        token: &str,
        kid: &str,
    ) -> Result<Result<Issued, IssuedError>> {
        if !is_thumbprint_kid(kid) {
            return Ok(Err(IssuedError::UnknownKey));
        }
        let verifier = match self.inner.issuer.verifiers.get(kid) {
            Some((known, at)) if at.elapsed() < KEY_MAX_AGE => known,
            _ => Box::pin(self.load_verifier(kid)).await?,
        };
        let Some(verifier) = verifier else {
            return Ok(Err(IssuedError::UnknownKey));
        };
        Ok(match verifier.key.verify::<Value>(token) {
            Ok(claims) => Ok(Issued {
                organization_id: verifier.organization_id.clone(),
                claims,
            }),
            Err(VerifyError::BadSignature) => Err(IssuedError::BadSignature),
            Err(VerifyError::Expired) => Err(IssuedError::Expired),
            Err(VerifyError::Malformed) => Err(IssuedError::Malformed),
        })
    }

    async fn load_verifier(&self, kid: &str) -> Result<Option<Arc<IssuedKey>>> {
        let load = async {
            let row = self.store().conn().await?.public_key(kid, now_ms()).await?;
            let verifier = match row {
                Some(row) => {
                    let algorithm = stored_algorithm(&row.kid, &row.algorithm)?;
                    let key =
                        VerifyingKey::from_jwk(&parse_jwk(&row.kid, &row.public_jwk)?, algorithm)?;
                    Some(Arc::new(IssuedKey {
                        organization_id: row.organization_id,
                        key,
                    }))
                }
                None => None,
            };
            Ok::<_, CoreError>((verifier, Instant::now()))
        };
        let verifiers = &self.inner.issuer.verifiers;
        verifiers.remove_if(kid, |(_, at)| at.elapsed() >= KEY_MAX_AGE);
        Ok(verifiers.get_or_insert_async(kid, load).await?.0)
    }

    /// Replaces the organization's `algorithm` key with a new one. The old key stops signing
    /// at once but stays published for `longest_token` (the longest lifetime of a token it
    /// signed; None for tokens without `exp`, which keeps it published for ever), so tokens
    /// already issued keep verifying. Other nodes pick up the new key when their cached
    /// signer is reloaded.
    pub async fn rotate_signing_key(
        &self,
        org: &str,
        algorithm: JwtAlgorithm,
        longest_token: Option<std::time::Duration>,
    ) -> Result<Arc<SigningKey>> {
        let (key, row) = self.new_signing_key(org, algorithm).await?;
        let until = longest_token
            .map(|d| now_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
        self.write(async |tx| {
            tx.retire_signing_key(org, algorithm.as_str(), until)
                .await?;
            tx.insert_signing_key(&row).await?;
            Ok(())
        })
        .await?;
        let key = Arc::new(key);
        self.inner
            .issuer
            .signers
            .insert((org.to_owned(), algorithm), (key.clone(), Instant::now()));
        Ok(key)
    }

    /// A fresh key for `org` and its row, private half sealed; generated off the runtime.
    async fn new_signing_key(
        &self,
        org: &str,
        algorithm: JwtAlgorithm,
    ) -> Result<(SigningKey, SigningKeyRow)> {
        let (key, pem) = tokio::task::spawn_blocking(move || SigningKey::generate(algorithm))
            .await
            .map_err(|e| CoreError::Internal(format!("key generation: {e}")))??;
        let row = SigningKeyRow {
            kid: key.kid().to_owned(),
            organization_id: org.to_owned(),
            algorithm: algorithm.as_str().to_owned(),
            public_jwk: serde_json::to_string(key.jwk())
                .map_err(|e| CoreError::Internal(e.to_string()))?,
            private_key: self.keyring().seal_str(
                &private_aad(key.kid()),
                secrecy::ExposeSecret::expose_secret(&pem),
            )?,
            status: "active".to_owned(),
            created_at: now_ms(),
        };
        Ok((key, row))
    }

    /// The organization's published keys as a JWK Set.
    pub async fn jwks(&self, org: &str) -> Result<JwkSet> {
        let rows = self
            .store()
            .conn()
            .await?
            .published_keys(org, now_ms())
            .await?;
        let keys = rows
            .iter()
            .map(|r: &PublicKeyRow| parse_jwk(&r.kid, &r.public_jwk))
            .collect::<Result<Vec<_>>>()?;
        Ok(JwkSet { keys })
    }
}
