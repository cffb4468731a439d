//! Each organization's set of signing keys for the JWTs Latchkey issues.
//!
//! Keys are created on first need (RSA-2048 for RS256), their private halves sealed under
//! `(signing_keys, kid, private_key)`, their public halves published as a JWK Set. The set
//! may hold several keys: the newest `active` one signs, every one verifies, so a rotation
//! can publish a key before it signs.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, jwk::Jwk};
use serde_json::{Value, json};

use super::{CoreError, Latchkey, Result, cache::Verifier, now_ms};
use crate::{
    crypto::{
        keyring::Aad,
        signing::{SigningKey, VerifyingKey},
    },
    store::SigningKeyRow,
};

const RS256: &str = "RS256";

fn private_aad(kid: &str) -> Aad<'_> {
    Aad {
        table: "signing_keys",
        row_id: kid,
        column: "private_key",
    }
}

fn parse_jwk(row: &SigningKeyRow) -> Result<Jwk> {
    serde_json::from_str(&row.public_jwk)
        .map_err(|e| CoreError::Internal(format!("stored JWK {}: {e}", row.kid)))
}

impl Latchkey {
    /// The key that signs RS256 tokens for `org`, created on first use.
    pub async fn signing_key(&self, org: &str) -> Result<Arc<SigningKey>> {
        let slot = (org.to_owned(), RS256);
        if let Some(key) = self.caches.signers.get(&slot) {
            return Ok(key);
        }
        let mut tx = self.store.write().await?;
        let existing = tx
            .signing_keys(org)
            .await?
            .into_iter()
            .find(|k| k.algorithm == RS256 && k.status == "active");
        let key = match existing {
            Some(row) => {
                let pem = self
                    .keyring
                    .open_string(&private_aad(&row.kid), &row.private_key)?;
                SigningKey::from_pem(Algorithm::RS256, &pem)?
            }
            None => {
                let (key, pem) = SigningKey::generate_rs256()?;
                let row = SigningKeyRow {
                    kid: key.kid().to_owned(),
                    organization_id: org.to_owned(),
                    algorithm: RS256.to_owned(),
                    public_jwk: serde_json::to_string(key.jwk())
                        .map_err(|e| CoreError::Internal(e.to_string()))?,
                    private_key: self.keyring.seal_str(
                        &private_aad(key.kid()),
                        secrecy::ExposeSecret::expose_secret(&pem),
                    )?,
                    status: "active".to_owned(),
                    created_at: now_ms(),
                };
                tx.insert_signing_key(&row).await?;
                key
            }
        };
        tx.commit().await?;
        Ok(self.caches.signers.fill(slot, Arc::new(key)))
    }

    /// The key a `kid` names, with its organization; None for a kid we never issued.
    pub(crate) async fn verifier(&self, kid: &str) -> Result<Option<Arc<Verifier>>> {
        if let Some(cached) = self.caches.verifiers.get(&kid.to_owned()) {
            return Ok(cached);
        }
        Box::pin(self.load_verifier(kid)).await
    }

    async fn load_verifier(&self, kid: &str) -> Result<Option<Arc<Verifier>>> {
        let row = self.store.read().await?.signing_key(kid).await?;
        let verifier = match row {
            Some(row) if row.algorithm == RS256 => {
                let key = VerifyingKey::from_jwk(&parse_jwk(&row)?, Algorithm::RS256)?;
                Some(Arc::new(Verifier {
                    organization_id: row.organization_id,
                    key,
                }))
            }
            _ => None,
        };
        Ok(self.caches.verifiers.fill(kid.to_owned(), verifier))
    }

    /// The organization's public keys as a standard JWK Set (creating the first key if none).
    pub async fn jwks(&self, org: &str) -> Result<Value> {
        self.signing_key(org).await?;
        let rows = self.store.read().await?.signing_keys(org).await?;
        let keys = rows.iter().map(parse_jwk).collect::<Result<Vec<_>>>()?;
        Ok(json!({ "keys": keys }))
    }
}
