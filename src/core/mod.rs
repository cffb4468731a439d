//! The domain: credential families, organizations, teams, tokens and audit.
//!
//! [`Latchkey`] is the one service object every surface calls. Validation, limits and
//! authorization rules live here, free of HTTP types; errors are [`CoreError`], which each
//! surface maps to its own envelope. May depend on `crypto` and `store`.

use std::sync::Arc;

use crate::{
    crypto::{
        keyring::{Aad, DataKey, Keyring, MasterKey},
        secret::Pepper,
    },
    store::{Store, StoreError, Tx},
};

pub mod audit;
pub mod authn;
pub mod cache;
pub mod host_pattern;
pub mod orgs;
pub mod pingone;
pub mod revocations;
pub mod signing;
pub mod sunshine;
pub mod tines;
pub mod tokens;
pub mod types;

pub use tokens::{Principal, Role};

/// What went wrong, in domain terms; surfaces choose status codes and envelopes.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("missing or invalid token")]
    Unauthenticated,
    /// Too many failed attempts from this client; try again after this many seconds.
    #[error("too many failed authentications")]
    RateLimited { retry_after: u64 },
    #[error("{0}")]
    Forbidden(String),
    /// The named resource does not exist for this caller (another tenant's ids included).
    #[error("{what} not found")]
    NotFound {
        what: &'static str,
        field: Option<&'static str>,
    },
    /// The request is structurally wrong: a required field is missing or has the wrong type.
    #[error("{message}")]
    Malformed { field: String, message: String },
    /// A field is present and well-typed but its value is not acceptable.
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("{message}")]
    Conflict { field: String, message: String },
    /// A count limit (e.g. credentials per gateway) would be exceeded; nothing was created.
    #[error("{message}")]
    LimitExceeded {
        field: &'static str,
        message: String,
    },
    /// Details are logged where this is rendered, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    pub fn not_found(what: &'static str) -> Self {
        Self::NotFound { what, field: None }
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
    pub fn malformed(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Malformed {
            field: field.into(),
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::crypto::CryptoError> for CoreError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Self::Internal(format!("crypto: {e}"))
    }
}

impl From<types::DomainError> for CoreError {
    fn from(e: types::DomainError) -> Self {
        Self::Invalid {
            field: e.field.to_owned(),
            message: e.message,
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Who is calling and from where: every audited operation takes one.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub principal: Principal,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    /// The client's own transaction id, recorded with audit events.
    pub external_id: Option<String>,
}

/// Request metadata known before authentication (for failed-login events).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub external_id: Option<String>,
}

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

#[derive(Clone)]
pub struct Latchkey {
    store: Store,
    keyring: Arc<Keyring>,
    pepper: Arc<Pepper>,
    caches: Arc<cache::Caches>,
}

const PEPPER_KEY: &str = "token_pepper";

impl Latchkey {
    /// Migrates the store, then unwraps the data keys with `master` (creating the first data
    /// key and the token pepper on an empty database).
    pub async fn open(store: Store, master: &MasterKey) -> Result<Self, OpenError> {
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
        tx.commit().await?;
        Ok(Self {
            store,
            keyring: Arc::new(keyring),
            pepper: Arc::new(pepper),
            caches: Arc::default(),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ping().await?)
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

/// Runs `f` in a write transaction and commits only if it succeeds.
pub(crate) async fn in_tx<T>(
    store: &Store,
    f: impl AsyncFnOnce(&mut Tx) -> Result<T>,
) -> Result<T> {
    let mut tx = store.write().await?;
    let value = f(&mut tx).await?;
    tx.commit().await?;
    Ok(value)
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
