//! The egress engine: uses stored credentials on a caller's behalf, so their secrets never
//! leave Latchkey. It substitutes `<<CREDENTIAL.slug>>` references, mints JWTs, fetches and
//! caches tokens (single-flight), sends the request under the egress policy and redacts any
//! secret the upstream echoes.
//!
//! It knows HTTP clients, signing and caching, and no tenants: a family hands it a [`Vault`]
//! (which credential a slug names for this caller, with its secrets opened) and reads back
//! which credentials were used ([`Session::uses`]) to audit them. Modules:
//! - `network`: which addresses a connection may reach (the guarded resolver);
//! - `host_pattern`: a credential's `allowed_hosts` entries;
//! - `client`: one request out, hop by hop through redirects, within the limits;
//! - `credential`: what a credential evaluates to, by kind, and the session that uses it
//!   (its AWS and OAuth parts live in `aws` and `oauth`); `tokens`: the token cache;
//! - `aws`: SigV4 signing, STS AssumeRole and the instance profile;
//! - `mtls`: clients that present an MTLS credential's certificate;
//! - `oauth`: the OAuth 2.0 client (client credentials, code exchange, refresh);
//! - `request`: an HTTP Request action's options, substituted into a request;
//! - `template`: the `<<…>>` references; `redact`: scrubbing echoed secrets.
//!
//! Cached tokens are keyed by `(credential id, version)`. The family bumps the version on
//! every update, and every use reads the credential afresh, so an updated or deleted
//! credential's tokens are never read again on any node; they age out of the bounded cache.

use std::{sync::Arc, time::Duration};

use ipnet::IpNet;

pub mod aws;
pub mod client;
pub mod credential;
pub mod host_pattern;
pub mod mtls;
pub mod network;
pub mod oauth;
pub mod redact;
pub mod request;
pub mod template;
pub mod tokens;

pub use credential::{Credential, Kind, Session, Step, Use, Vault};
pub use network::NetworkPolicy;

/// Limits and network policy of outbound requests.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// Networks opened on top of the public internet (`LATCHKEY_EGRESS_ALLOW_NETWORKS`).
    pub allow_networks: Vec<IpNet>,
    pub connect_timeout: Duration,
    /// The whole use: token fetches, every redirect hop and reading the body.
    pub timeout: Duration,
    /// Largest upstream response body read, in bytes.
    pub max_response_bytes: usize,
    /// Upstream requests in flight per organization; more wait, up to `queue_timeout`.
    pub max_concurrent: usize,
    pub queue_timeout: Duration,
    /// STS, for AWS ROLE credentials (`LATCHKEY_AWS_STS_ENDPOINT`).
    pub aws_sts_endpoint: String,
    /// The instance metadata service, IMDSv2 (`LATCHKEY_AWS_IMDS_ENDPOINT`).
    pub aws_imds_endpoint: String,
    /// Latchkey's own AWS keys (`AWS_ACCESS_KEY_ID`, …), which assume ROLE credentials'
    /// roles; without them, the instance profile's.
    pub aws_identity: Option<aws::AwsKeys>,
    /// Whether INSTANCE_PROFILE credentials may use the instance's own role
    /// (`LATCHKEY_AWS_INSTANCE_PROFILE`): off by default, since any organization could then
    /// act as this server on AWS.
    pub aws_instance_profile: bool,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            allow_networks: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            max_response_bytes: 10 << 20,
            max_concurrent: 32,
            queue_timeout: Duration::from_secs(5),
            aws_sts_endpoint: aws::DEFAULT_STS_ENDPOINT.to_owned(),
            aws_imds_endpoint: aws::DEFAULT_IMDS_ENDPOINT.to_owned(),
            aws_identity: None,
            aws_instance_profile: false,
        }
    }
}

/// Why a use failed. Messages name credentials by slug and hosts by name; never a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EgressError {
    /// The request itself is wrong (a bad URL, a reference where none may be).
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// The slug names no credential this caller's team may use.
    #[error("credential {slug:?} does not exist or is not shared with this team")]
    UnknownCredential { slug: String },
    /// A credential may not go to this URL (no `allowed_hosts`, or none matches).
    #[error("{message}")]
    NotAllowed { message: String },
    /// The network policy refuses the address.
    #[error("{host} is not reachable: the egress network policy refuses its address")]
    NetworkRefused { host: String },
    /// A credential's own fetch (token endpoint, HTTP request) failed; recorded on it.
    #[error("credential {slug:?}: {message}")]
    Fetch { slug: String, message: String },
    /// This mode cannot be used this way.
    #[error("{message}")]
    Unusable { message: String },
    #[error("{host} could not be reached")]
    Unreachable { host: String },
    #[error("the upstream request timed out")]
    Timeout,
    #[error("the upstream response is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("too many upstream requests in flight for this organization")]
    Busy,
    #[error("internal error: {0}")]
    Internal(String),
}

impl EgressError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The engine: one HTTP client, the token cache and the per-organization limits.
#[derive(Clone)]
pub struct Egress {
    inner: Arc<Inner>,
}

struct Inner {
    config: EgressConfig,
    policy: Arc<NetworkPolicy>,
    client: reqwest::Client,
    /// For the operator's own endpoints (STS, IMDS) only: no network policy.
    infra: reqwest::Client,
    tokens: tokens::TokenCache,
    /// OAuth clients whose token endpoint refused HTTP Basic and took the secret in the body.
    body_auth: quick_cache::sync::Cache<(i64, i64), ()>,
    /// One client per MTLS credential version (`(id, version)`).
    identities: quick_cache::sync::Cache<(i64, i64), reqwest::Client>,
    /// One semaphore per organization bounds its upstream requests in flight.
    buckets: quick_cache::sync::Cache<String, Arc<tokio::sync::Semaphore>>,
}

impl Egress {
    pub fn new(config: EgressConfig) -> Result<Self, EgressError> {
        let policy = Arc::new(NetworkPolicy::new(config.allow_networks.clone()));
        let client = client::build(&config, &policy)?;
        let infra = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .build()
            .map_err(|e| EgressError::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                tokens: tokens::TokenCache::new(10_000),
                body_auth: quick_cache::sync::Cache::new(10_000),
                identities: quick_cache::sync::Cache::new(1_000),
                buckets: quick_cache::sync::Cache::new(10_000),
                config,
                policy,
                client,
                infra,
            }),
        })
    }

    pub fn config(&self) -> &EgressConfig {
        &self.inner.config
    }

    /// A session for one use by one caller: `bucket` names whose concurrency limit it counts
    /// against (the organization), `partition` the scope its references resolve in (cached
    /// tokens are not shared across partitions), `vault` where they are looked up.
    pub fn session<'v>(&self, bucket: &str, partition: &str, vault: &'v dyn Vault) -> Session<'v> {
        Session::new(self.clone(), bucket.to_owned(), partition, vault)
    }
}

/// How each failure reads in a surface's envelope: the caller's mistakes are 4xx, the
/// upstream's 502/504/413, a full queue 429.
impl From<EgressError> for crate::kernel::CoreError {
    fn from(e: EgressError) -> Self {
        use crate::kernel::{CoreError, UpstreamFailure as U};
        let upstream = |failure, e: &EgressError| CoreError::Upstream {
            failure,
            message: e.to_string(),
        };
        match &e {
            EgressError::Invalid { field, message } => {
                CoreError::invalid(field.clone(), message.clone())
            }
            EgressError::UnknownCredential { .. } | EgressError::Unusable { .. } => {
                CoreError::invalid("credential", e.to_string())
            }
            EgressError::NotAllowed { .. } | EgressError::NetworkRefused { .. } => {
                CoreError::forbidden(e.to_string())
            }
            EgressError::Fetch { .. } | EgressError::Unreachable { .. } => {
                upstream(U::Unreachable, &e)
            }
            EgressError::Timeout => upstream(U::Timeout, &e),
            EgressError::TooLarge { .. } => upstream(U::TooLarge, &e),
            EgressError::Busy => upstream(U::Busy, &e),
            EgressError::Internal(detail) => CoreError::Internal(detail.clone()),
        }
    }
}
