//! The kernel: what every credential family shares. Errors, the caller ([`Principal`],
//! [`Ctx`]), organizations, management tokens, the audit log, the write transaction that
//! carries revocations ([`WriteTx`]), the revocation feed and the verification caches, limits
//! on failed authentications, the JWT issuer, the verifier registry, and the HTTP plumbing
//! every surface uses (`http`: error envelopes, extractors, the native routes).
//!
//! The kernel imports no family; families build on it (`pingone`, `sunshine`, `tines`). It
//! may depend on `crypto` and `store`.

use std::sync::Arc;

use crate::{
    crypto::{
        keyring::{Aad, DataKey, Keyring, MasterKey},
        secret::Pepper,
    },
    store::{Store, StoreError},
};

pub mod audit;
pub mod cache;
pub mod error;
pub mod feed;
pub mod http;
pub mod issuer;
pub mod limits;
pub mod orgs;
pub mod principal;
pub mod tokens;
pub mod tx;
pub mod types;
pub mod verify;

pub use cache::{LiveCache, Weigh};
pub use error::{CoreError, Result, UpstreamFailure};
pub use principal::{Ctx, Principal, PrincipalKind, RequestMeta, Role};
pub use tx::WriteTx;

/// Why start-up could not open the service.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the master key does not match this database: it cannot unwrap the stored data keys. \
             Start with the master key this database was created with (LATCHKEY_MASTER_KEY or the key file)"
    )]
    WrongMasterKey,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

/// The kernel: what every family shares. Cheap to clone.
#[derive(Clone)]
pub struct Kernel {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    keyring: Keyring,
    pepper: Pepper,
    audit_key: Arc<crate::crypto::AuditKey>,
    feed: feed::Feed,
    issuer: issuer::Issuer,
    tokens: tokens::TokenCache,
    failures: limits::FailureLimiter,
    /// What families write when an organization is created (in the same transaction).
    org_hooks: std::sync::RwLock<Vec<orgs::OrganizationHook>>,
}

const PEPPER_KEY: &str = "token_pepper";
const AUDIT_KEY: &str = "audit_chain_key";

impl Kernel {
    /// Migrates the store, then unwraps the data keys with `master` (creating the first data
    /// key and the token pepper on an empty database).
    /// `failure_limit`: failed authentications allowed per client or key per minute (None:
    /// no limit).
    pub async fn open(
        store: Store,
        master: &MasterKey,
        failure_limit: Option<std::num::NonZeroU32>,
    ) -> Result<Self, OpenError> {
        store.migrate().await?;
        let mut tx = store.write().await?;
        let rows = tx.data_keys().await?;
        let mut keys = Vec::with_capacity(rows.len().max(1));
        if rows.is_empty() {
            let key = DataKey::generate()?;
            tx.insert_data_key(1, &master.wrap(1, &key)?, now_ms())
                .await?;
            keys.push((1, key));
        }
        for row in rows {
            let version = u32::try_from(row.version).map_err(|_| OpenError::WrongMasterKey)?;
            let key = master
                .unwrap(version, &row.wrapped)
                .map_err(|_| OpenError::WrongMasterKey)?;
            keys.push((version, key));
        }
        let current = keys.iter().map(|(v, _)| *v).max().unwrap_or(1);
        let keyring = Keyring::new(current, keys)?;
        let aad = Aad {
            table: "meta",
            row_id: PEPPER_KEY,
            column: "value",
        };
        let pepper = match tx.meta_get(PEPPER_KEY).await? {
            Some(sealed) => Pepper::from_bytes(&keyring.open(&aad, &sealed)?)?,
            None => {
                let pepper = Pepper::generate()?;
                tx.meta_put(PEPPER_KEY, &keyring.seal(&aad, pepper.as_bytes())?)
                    .await?;
                pepper
            }
        };
        let aad = Aad {
            table: "meta",
            row_id: AUDIT_KEY,
            column: "value",
        };
        let audit_key = match tx.meta_get(AUDIT_KEY).await? {
            Some(sealed) => crate::crypto::AuditKey::from_bytes(&keyring.open(&aad, &sealed)?)?,
            None => {
                let key = crate::crypto::AuditKey::generate()?;
                tx.meta_put(AUDIT_KEY, &keyring.seal(&aad, key.as_bytes())?)
                    .await?;
                key
            }
        };
        tx.commit().await?;
        crate::crypto::jwt::install_provider();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                keyring,
                pepper,
                audit_key: Arc::new(audit_key),
                feed: feed::Feed::default(),
                org_hooks: std::sync::RwLock::default(),
                issuer: issuer::Issuer::default(),
                tokens: tokens::TokenCache::default(),
                failures: limits::FailureLimiter::new(failure_limit),
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    pub async fn ready(&self) -> Result<()> {
        Ok(self.store().ping().await?)
    }

    /// Counts a failed authentication against `key` (`ip:…`, `key:…`); `RateLimited` once
    /// it is over the limit.
    pub fn count_failure(&self, key: &str) -> Result<()> {
        self.count_failure_against(key, None)
    }

    fn count_failure_against(&self, key: &str, org: Option<&str>) -> Result<()> {
        self.inner
            .failures
            .count(key, org)
            .map_err(|retry_after| CoreError::RateLimited { retry_after })
    }

    /// A failed authentication: counted against each of `limits` (`ip:…`, `key:…`, in
    /// order), then audited as `event`. Over a limit it is not audited one by one (it joins
    /// that key's summary, see [`Self::record_suppressed_failures`]) and the answer is
    /// `RateLimited`.
    pub async fn failed_authentication(
        &self,
        limits: &[String],
        event: audit::Event<'_>,
    ) -> Result<()> {
        for key in limits {
            self.count_failure_against(key, event.organization_id)?;
        }
        self.write(async |tx| Ok(audit::append(tx, event.clone()).await?))
            .await
    }

    /// How a high-entropy secret that is only ever verified (an OAuth client secret, a
    /// management token) is stored: HMAC-SHA256 under the server pepper.
    pub fn hash_secret(&self, secret: &str) -> [u8; 32] {
        self.inner.pepper.hash(secret)
    }

    /// Whether `secret` is the one `stored` was made from (constant time).
    pub fn secret_matches(&self, secret: &str, stored: &[u8]) -> bool {
        self.inner.pepper.verify(secret, stored)
    }

    /// Audits the failed authentications refused over the limit since the last call: one
    /// event per client or key (`auth.rate_limited`, the count as its target), so a flood
    /// is on record without filling the log. Run periodically.
    pub async fn record_suppressed_failures(&self) -> Result<()> {
        let suppressed = self.inner.failures.take_suppressed();
        if suppressed.is_empty() {
            return Ok(());
        }
        self.write(async |tx| {
            for ((key, org), count) in &suppressed {
                let event = audit::Event {
                    organization_id: org.as_deref(),
                    actor: key.clone(),
                    action: "auth.rate_limited",
                    target_type: "failed_authentications",
                    target_id: Some(count.to_string()),
                    outcome: audit::Outcome::Failure,
                    request_id: None,
                    ip: None,
                    external_id: None,
                    detail: None,
                };
                audit::append(tx, event).await?;
            }
            Ok(())
        })
        .await
    }

    /// Periodic upkeep of in-memory state: limiter keys that have fully replenished.
    pub fn upkeep(&self) {
        self.inner.failures.prune();
    }
}

/// Milliseconds since the Unix epoch: the unit of every stored timestamp.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// `2021-03-26T12:34:16.540Z`, the ISO 8601 form every surface shows.
pub fn iso8601(ms: i64) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso8601_has_milliseconds_and_z() {
        assert_eq!(
            super::iso8601(1_616_762_056_540),
            "2021-03-26T12:34:16.540Z"
        );
    }
}
