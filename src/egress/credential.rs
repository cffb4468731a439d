//! What a stored credential evaluates to, by kind, and the session that uses credentials for
//! one caller: TEXT's value, a JWT minted at each use, an OAuth token from the token endpoint
//! and an HTTP-request token (one or two requests), both cached with one upstream fetch
//! however many callers wait.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::header::{self, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use super::{
    Egress, EgressError,
    aws::{self, AwsAuth, AwsKeys},
    client::Outbound,
    host_pattern::HostPattern,
    oauth::{OAuthClient, OAuthTokens},
    redact::Redactor,
    request::{self, RequestOptions},
    template::Reference,
};
use crate::crypto::jwt::JwtAlgorithm;

/// How deep credentials may reference credentials in their own requests.
const MAX_DEPTH: usize = 4;
/// How long a failed fetch is answered from the cache, so waiters share one failure.
const FAILURE_TTL: Duration = Duration::from_secs(1);
/// An OAuth token's lifetime when the token endpoint does not say (Tines refreshes every 30
/// minutes).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// The longest a token is kept, whatever the token endpoint says.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a session finds the credentials its references name: the family's narrow
/// interface to its store.
pub trait Vault: Send + Sync {
    /// The tokens of an authorization code credential, if it was connected.
    fn tokens<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Option<OAuthTokens>, EgressError>>;

    /// Keeps refreshed tokens.
    fn save_tokens<'a>(
        &'a self,
        credential: &'a Credential,
        tokens: &'a OAuthTokens,
    ) -> BoxFuture<'a, Result<(), EgressError>>;

    /// The credential `slug` names for this caller, with its secrets opened.
    fn credential<'a>(
        &'a self,
        slug: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Credential>, EgressError>>;
}

/// A credential ready to be used.
#[derive(Debug)]
pub struct Credential {
    pub id: i64,
    /// Changes with every update: part of the token cache's key.
    pub version: i64,
    pub slug: String,
    /// The family's name for its kind (`TEXT`, `OAUTH`, …), for records.
    pub mode: &'static str,
    pub allowed_hosts: Vec<HostPattern>,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    Text(SecretString),
    Jwt {
        algorithm: JwtAlgorithm,
        payload: Map<String, Value>,
        time_claims: bool,
        key: SecretString,
    },
    /// OAuth 2.0 client credentials grant.
    OAuth {
        client: OAuthClient,
        scope: Option<String>,
    },
    /// OAuth 2.0 authorization code grant: tokens the provider issued when a user
    /// connected the credential, kept by the family ([`Vault::tokens`]).
    OAuthCode {
        client: OAuthClient,
    },
    /// One (HTTP_REQUEST_AGENT) or two (MULTI_REQUEST) requests; the token is read at
    /// `location` in the last answer.
    Fetch {
        steps: Vec<Step>,
        location: String,
        ttl: Option<Duration>,
    },
    /// AWS keys: an `Authorization` header that is exactly a reference to this credential
    /// signs the request with SigV4; `resolve` gives temporary keys (ROLE, INSTANCE_PROFILE).
    Aws {
        auth: AwsAuth,
        region: Option<String>,
        service: Option<String>,
    },
    /// A client certificate, presented with `mutual_tls`; it has no value of its own.
    Mtls {
        certificate: String,
        key: SecretString,
        root: Option<String>,
    },
    /// Stored, but not usable this way (yet): the message says why.
    Unusable(String),
}

/// One request of a fetch, with its `<<secret>>`.
#[derive(Debug)]
pub struct Step {
    pub options: Map<String, Value>,
    pub secret: Option<SecretString>,
}

/// One credential used in a session, for the family's records.
#[derive(Debug, Clone)]
pub struct Use {
    pub credential: Arc<Credential>,
    /// The host it was sent to (empty for a value resolved for the caller).
    pub host: String,
    /// Why the use failed, if it did (never a value).
    pub failure: Option<String>,
    /// Whether the failure was the credential's own fetch (kept on the credential).
    pub fetch_failed: bool,
}

/// `(partition, credential id, version)`: the partition is the session's (for Tines, the
/// team and whether test credentials are used), since references inside a credential's own
/// requests resolve in the caller's scope and must not serve another scope's callers.
type CacheKey = (Arc<str>, i64, i64);

/// Cached tokens, by [`CacheKey`].
pub(super) struct TokenCache {
    cache: quick_cache::sync::Cache<CacheKey, Cached>,
}

#[derive(Clone)]
enum Cached {
    Token(SecretString, Instant),
    Failed(EgressError, Instant),
}

impl Cached {
    fn fresh(&self, now: Instant) -> bool {
        match self {
            Self::Token(_, until) | Self::Failed(_, until) => now < *until,
        }
    }
}

impl TokenCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            cache: quick_cache::sync::Cache::new(capacity),
        }
    }

    /// The cached token, or the one `fetch` gets (with how long it may be used). Concurrent
    /// callers for one key wait for a single fetch; a failure is shared for a second.
    async fn get_or_fetch(
        &self,
        key: CacheKey,
        fetch: impl Future<Output = Result<(SecretString, Duration), EgressError>>,
    ) -> Result<SecretString, EgressError> {
        let guard = loop {
            match self.cache.get_value_or_guard_async(&key).await {
                Ok(cached) if cached.fresh(Instant::now()) => {
                    return match cached {
                        Cached::Token(token, _) => Ok(token),
                        Cached::Failed(e, _) => Err(e),
                    };
                }
                Ok(_) => {
                    self.cache.remove_if(&key, |c| !c.fresh(Instant::now()));
                }
                Err(guard) => break guard,
            }
        };
        let now = Instant::now();
        let (cached, result) = match fetch.await {
            Ok((token, lifetime)) => (
                Cached::Token(token.clone(), now + lifetime.min(MAX_TOKEN_LIFETIME)),
                Ok(token),
            ),
            Err(e) => (Cached::Failed(e.clone(), now + FAILURE_TTL), Err(e)),
        };
        let _ = guard.insert(cached);
        result
    }
}

/// One caller's use of credentials.
pub struct Session<'v> {
    egress: Egress,
    bucket: String,
    partition: Arc<str>,
    vault: &'v dyn Vault,
    uses: Mutex<Vec<Use>>,
}

impl<'v> Session<'v> {
    pub(super) fn new(
        egress: Egress,
        bucket: String,
        partition: &str,
        vault: &'v dyn Vault,
    ) -> Self {
        Self {
            egress,
            bucket,
            partition: partition.into(),
            vault,
            uses: Mutex::new(Vec::new()),
        }
    }

    /// Every credential used so far, in order.
    pub fn uses(&self) -> Vec<Use> {
        self.uses.lock().map(|u| u.clone()).unwrap_or_default()
    }

    fn record(&self, credential: &Arc<Credential>, host: &str, failure: Option<&EgressError>) {
        if let Ok(mut uses) = self.uses.lock() {
            uses.push(Use {
                credential: credential.clone(),
                host: host.to_owned(),
                failure: failure.map(ToString::to_string),
                fetch_failed: matches!(failure, Some(EgressError::Fetch { .. })),
            });
        }
    }

    /// The value of `credential` for the caller itself (`…/resolve`).
    pub async fn resolve(&self, credential: Arc<Credential>) -> Result<SecretString, EgressError> {
        let result = tokio::time::timeout(
            self.egress.config().timeout,
            self.value(credential.clone(), Vec::new()),
        )
        .await
        .unwrap_or(Err(EgressError::Timeout));
        self.record(&credential, "", result.as_ref().err());
        result
    }

    /// Runs an HTTP Request action: substitutes, sends, and answers the event shape with
    /// every substituted value redacted.
    pub async fn http_request(&self, options: RequestOptions) -> Result<Value, EgressError> {
        let timeout = self.egress.config().timeout;
        tokio::time::timeout(timeout, self.run(&options))
            .await
            .unwrap_or(Err(EgressError::Timeout))
    }

    async fn run(&self, options: &RequestOptions) -> Result<Value, EgressError> {
        let target = options.target()?;
        let host = target.host_str().unwrap_or_default().to_owned();
        let mut credentials = self.referenced(options, &target).await?;
        // The MTLS credential joins the others for the hop checks and the records; it is
        // looked up first, so nothing is fetched for a request that cannot be sent.
        if let Some(reference) = &options.mutual_tls {
            credentials.push(self.identity_credential(reference, &target).await?);
        }
        let result = async {
            let identity = match &options.mutual_tls {
                Some(_) => credentials.last().map(|c| self.identity(c)).transpose()?,
                None => None,
            };
            let signer = signing_credential(options, &credentials);
            let to_resolve: Vec<Arc<Credential>> = credentials
                .iter()
                .filter(|c| !matches!(c.kind, Kind::Mtls { .. }))
                .filter(|c| signer.as_ref().is_none_or(|s| s.id != c.id))
                .cloned()
                .collect();
            let values = self.values(&to_resolve, Vec::new()).await?;
            let signing = match &signer {
                Some(c) => Some(self.signing(c, &target).await?),
                None => None,
            };
            let extras = Extras {
                identity,
                signing,
                ..Extras::default()
            };
            self.send_with(options, &credentials, &values, extras).await
        }
        .await;
        // Every credential of the request is recorded, whatever failed.
        for c in &credentials {
            self.record(c, &host, result.as_ref().err());
        }
        let (upstream, secrets) = result?;
        // Parsing and scrubbing up to the response cap is CPU work: off the async threads.
        tokio::task::spawn_blocking(move || {
            let mut event = request::event(&upstream);
            Redactor::new(secrets).value(&mut event);
            event
        })
        .await
        .map_err(|_| EgressError::Internal("redaction failed".into()))
    }

    /// The keys and scope that sign a request to `target` for an AWS credential.
    async fn signing(
        &self,
        credential: &Arc<Credential>,
        target: &Url,
    ) -> Result<Signing, EgressError> {
        let Kind::Aws {
            region, service, ..
        } = &credential.kind
        else {
            return Err(EgressError::Internal("not an AWS credential".into()));
        };
        let from_host = target.host_str().and_then(aws::scope_from_host);
        let region = region
            .clone()
            .or_else(|| from_host.as_ref().map(|(r, _)| r.clone()));
        let service = service
            .clone()
            .or_else(|| from_host.as_ref().map(|(_, s)| s.clone()));
        let (Some(region), Some(service)) = (region, service) else {
            return Err(EgressError::Unusable {
                message: format!(
                    "credential {:?}: the region and service cannot be read from {}; set aws_region and aws_service",
                    credential.slug,
                    target.host_str().unwrap_or_default()
                ),
            });
        };
        Ok(Signing {
            slug: credential.slug.clone(),
            keys: self.aws_keys(credential).await?,
            region,
            service,
        })
    }

    /// The keys an AWS credential signs with now.
    async fn aws_keys(&self, credential: &Arc<Credential>) -> Result<AwsKeys, EgressError> {
        let Kind::Aws { auth, .. } = &credential.kind else {
            return Err(EgressError::Internal("not an AWS credential".into()));
        };
        let failed = |message: String| EgressError::Fetch {
            slug: credential.slug.clone(),
            message,
        };
        let cached = match auth {
            AwsAuth::Key {
                access_key_id,
                secret_access_key,
            } => {
                return Ok(AwsKeys {
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret_access_key.clone(),
                    session_token: None,
                    expiration: None,
                });
            }
            AwsAuth::Role {
                role_arn,
                external_id,
            } => {
                let key = (self.partition.clone(), credential.id, credential.version);
                let fetch = async {
                    let keys = self
                        .assume_role(credential, role_arn, external_id.as_deref())
                        .await
                        .map_err(failed)?;
                    Ok((keys.to_secret()?, keys.lifetime()))
                };
                self.egress.inner.tokens.get_or_fetch(key, fetch).await?
            }
            AwsAuth::InstanceProfile if !self.egress.config().aws_instance_profile => {
                return Err(EgressError::Unusable {
                    message: format!(
                        "credential {:?}: INSTANCE_PROFILE credentials are off on this server (LATCHKEY_AWS_INSTANCE_PROFILE)",
                        credential.slug
                    ),
                });
            }
            AwsAuth::InstanceProfile => self.instance_keys().await.map_err(|e| match e {
                EgressError::Fetch { message, .. } => failed(message),
                other => other,
            })?,
        };
        AwsKeys::from_secret(&cached)
    }

    /// STS `AssumeRole`, signed with Latchkey's own identity.
    async fn assume_role(
        &self,
        credential: &Credential,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Result<AwsKeys, String> {
        let config = self.egress.config();
        let own = match &config.aws_identity {
            Some(keys) => keys.clone(),
            None => AwsKeys::from_secret(&self.instance_keys().await.map_err(|e| {
                format!("Latchkey has no AWS identity to assume the role with ({e})")
            })?)
            .map_err(|e| e.to_string())?,
        };
        let url = Url::parse(&format!(
            "{}/",
            config.aws_sts_endpoint.trim_end_matches('/')
        ))
        .map_err(|_| "LATCHKEY_AWS_STS_ENDPOINT is not a URL".to_owned())?;
        let (region, _) = url
            .host_str()
            .and_then(aws::scope_from_host)
            .unwrap_or(("us-east-1".to_owned(), "sts".to_owned()));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let body = aws::assume_role_body(
            role_arn,
            external_id,
            &format!("latchkey-{}", credential.id),
        );
        let mut outbound = Outbound {
            method: reqwest::Method::POST,
            url,
            headers,
            body: Some(body.into()),
            secret_headers: Vec::new(),
            body_has_secret: false,
        };
        aws::sign_request(&mut outbound, &own, &region, "sts").map_err(|e| e.to_string())?;
        let answer = self
            .egress
            .send_infra(outbound)
            .await
            .map_err(|e| format!("STS AssumeRole failed: {e}"))?;
        if !answer.status.is_success() {
            return Err(format!(
                "STS AssumeRole answered HTTP {}",
                answer.status.as_u16()
            ));
        }
        aws::parse_assume_role(&answer.body)
    }

    /// The instance profile's keys (IMDSv2), cached until shortly before they expire.
    async fn instance_keys(&self) -> Result<SecretString, EgressError> {
        let key: CacheKey = ("aws:instance-profile".into(), 0, 0);
        let fetch = async {
            let keys = self.imds().await.map_err(|message| EgressError::Fetch {
                slug: "instance profile".into(),
                message,
            })?;
            Ok((keys.to_secret()?, keys.lifetime()))
        };
        self.egress.inner.tokens.get_or_fetch(key, fetch).await
    }

    async fn imds(&self) -> Result<AwsKeys, String> {
        let base = self
            .egress
            .config()
            .aws_imds_endpoint
            .trim_end_matches('/')
            .to_owned();
        let call = |method: reqwest::Method, path: &str, headers: HeaderMap| {
            let url = Url::parse(&format!("{base}{path}"));
            async move {
                let url = url.map_err(|_| "LATCHKEY_AWS_IMDS_ENDPOINT is not a URL".to_owned())?;
                let answer = self
                    .egress
                    .send_infra(Outbound {
                        method,
                        url,
                        headers,
                        body: None,
                        secret_headers: Vec::new(),
                        body_has_secret: false,
                    })
                    .await
                    .map_err(|e| format!("the instance metadata service failed: {e}"))?;
                if !answer.status.is_success() {
                    return Err(format!(
                        "the instance metadata service answered HTTP {}",
                        answer.status.as_u16()
                    ));
                }
                Ok(String::from_utf8_lossy(&answer.body).into_owned())
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-aws-ec2-metadata-token-ttl-seconds",
            HeaderValue::from_static("21600"),
        );
        let token = call(reqwest::Method::PUT, "/latest/api/token", headers).await?;
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-aws-ec2-metadata-token",
            HeaderValue::from_str(token.trim())
                .map_err(|_| "IMDS answered a bad token".to_owned())?,
        );
        let path = "/latest/meta-data/iam/security-credentials/";
        let roles = call(reqwest::Method::GET, path, headers.clone()).await?;
        let role = roles
            .lines()
            .next()
            .map(str::trim)
            .filter(|r| !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| "the instance has no role".to_owned())?;
        let keys = call(reqwest::Method::GET, &format!("{path}{role}"), headers).await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Imds {
            access_key_id: String,
            secret_access_key: String,
            token: Option<String>,
            expiration: Option<String>,
        }
        let k: Imds =
            serde_json::from_str(&keys).map_err(|_| "IMDS answered no keys".to_owned())?;
        Ok(AwsKeys {
            access_key_id: k.access_key_id,
            secret_access_key: SecretString::from(k.secret_access_key),
            session_token: k.token.map(SecretString::from),
            expiration: k.expiration,
        })
    }

    /// The MTLS credential `reference` (`<<CREDENTIAL.slug>>`) names, checked against the target.
    async fn identity_credential(
        &self,
        reference: &str,
        target: &Url,
    ) -> Result<Arc<Credential>, EgressError> {
        let reference = reference.trim();
        let refs = super::template::references(reference);
        let slug = match refs.as_slice() {
            [Reference::Credential(slug)]
                if reference.starts_with("<<") && reference.ends_with(">>") =>
            {
                *slug
            }
            _ => {
                return Err(EgressError::invalid(
                    "mutual_tls",
                    "mutual_tls must be one reference, <<CREDENTIAL.slug>>",
                ));
            }
        };
        let credential = self.vault.credential(slug).await?;
        allows(&credential, target)?;
        Ok(credential)
    }

    /// The client presenting an MTLS credential's certificate.
    fn identity(&self, credential: &Arc<Credential>) -> Result<reqwest::Client, EgressError> {
        let Kind::Mtls {
            certificate,
            key,
            root,
        } = &credential.kind
        else {
            return Err(EgressError::Unusable {
                message: format!(
                    "credential {:?} is not an MTLS credential, so mutual_tls cannot present it",
                    credential.slug
                ),
            });
        };
        self.egress.mtls_client(
            credential.id,
            credential.version,
            certificate,
            key,
            root.as_deref(),
        )
    }

    /// The credentials `options` references, each checked against the target.
    async fn referenced(
        &self,
        options: &RequestOptions,
        target: &Url,
    ) -> Result<Vec<Arc<Credential>>, EgressError> {
        let mut found: Vec<Arc<Credential>> = Vec::new();
        for r in options.references() {
            let Reference::Credential(slug) = r else {
                continue;
            };
            if found.iter().any(|c| c.slug == slug) {
                continue;
            }
            let credential = self.vault.credential(slug).await?;
            allows(&credential, target)?;
            found.push(credential);
        }
        Ok(found)
    }

    /// The values of `credentials`, by slug.
    async fn values(
        &self,
        credentials: &[Arc<Credential>],
        stack: Vec<i64>,
    ) -> Result<HashMap<String, SecretString>, EgressError> {
        let mut values = HashMap::new();
        for c in credentials {
            if matches!(c.kind, Kind::Aws { .. }) {
                return Err(EgressError::Unusable {
                    message: format!(
                        "credential {:?} is an AWS credential: it signs a request when it is the whole Authorization header, and is never substituted",
                        c.slug
                    ),
                });
            }
            let value = self.value(c.clone(), stack.clone()).await?;
            values.insert(c.slug.clone(), value);
        }
        Ok(values)
    }

    /// Builds and sends `options` with the values, `<<secret>>` and the previous step's
    /// answer; every hop must be allowed for every credential.
    async fn send_with(
        &self,
        options: &RequestOptions,
        credentials: &[Arc<Credential>],
        values: &HashMap<String, SecretString>,
        extras: Extras<'_>,
    ) -> Result<(super::client::Upstream, Vec<String>), EgressError> {
        let Extras {
            secret,
            previous,
            identity,
            signing,
        } = extras;
        let signer = signing.as_ref().map(|s| s.slug.as_str());
        let (mut outbound, mut secrets): (Outbound, Vec<String>) =
            options.build(&mut |r| match r {
                // The signing credential's header is replaced by the signature below.
                Reference::Credential(slug) if Some(slug) == signer => Ok(Some(String::new())),
                Reference::Credential(slug) => values
                    .get(slug)
                    .map(|v| Some(v.expose_secret().to_owned()))
                    .ok_or_else(|| EgressError::Internal(format!("{slug} was not resolved"))),
                Reference::Secret => secret
                    .map(|s| Some(s.expose_secret().to_owned()))
                    .ok_or_else(|| {
                        EgressError::invalid(
                            "options",
                            "<<secret>> is used but the credential has no http_request_secret",
                        )
                    }),
                Reference::PreviousStep(path) => match previous {
                    Some(answer) => request::text_at(answer, path).map(Some).ok_or_else(|| {
                        EgressError::invalid(
                            "options",
                            format!("PREVIOUS_STEP.{path} is not in the first response"),
                        )
                    }),
                    None => Ok(None),
                },
            })?;
        if let Some(s) = signing {
            outbound.headers.remove(header::AUTHORIZATION);
            aws::sign_request(&mut outbound, &s.keys, &s.region, &s.service)?;
            if let Some(token) = &s.keys.session_token {
                secrets.push(token.expose_secret().to_owned());
            }
        }
        let check = |url: &Url| credentials.iter().try_for_each(|c| allows(c, url));
        let upstream = self
            .egress
            .send(&self.bucket, outbound, &check, identity)
            .await?;
        Ok((upstream, secrets))
    }

    /// What `credential` evaluates to. `stack` holds the credentials being evaluated around
    /// it, so a credential that references itself, directly or not, is refused.
    fn value(
        &self,
        credential: Arc<Credential>,
        mut stack: Vec<i64>,
    ) -> BoxFuture<'_, Result<SecretString, EgressError>> {
        Box::pin(async move {
            if stack.contains(&credential.id) {
                return Err(EgressError::Unusable {
                    message: format!(
                        "credential {:?} references itself through its own requests",
                        credential.slug
                    ),
                });
            }
            if stack.len() >= MAX_DEPTH {
                return Err(EgressError::Unusable {
                    message: format!(
                        "credential {:?}: credentials reference each other more than {MAX_DEPTH} deep",
                        credential.slug
                    ),
                });
            }
            stack.push(credential.id);
            let key = (self.partition.clone(), credential.id, credential.version);
            let tokens = &self.egress.inner.tokens;
            match &credential.kind {
                Kind::Text(value) => Ok(value.clone()),
                Kind::Jwt {
                    algorithm,
                    payload,
                    time_claims,
                    key,
                } => mint(&credential.slug, *algorithm, payload, *time_claims, key),
                Kind::OAuth { .. } => {
                    tokens
                        .get_or_fetch(key, self.client_credentials(&credential))
                        .await
                }
                Kind::OAuthCode { .. } => self.authorized_token(&credential).await,
                Kind::Fetch { ttl: Some(ttl), .. } => {
                    let ttl = *ttl;
                    let fetch = async { Ok((self.fetch(&credential, stack).await?, ttl)) };
                    tokens.get_or_fetch(key, fetch).await
                }
                Kind::Fetch { ttl: None, .. } => self.fetch(&credential, stack).await,
                Kind::Aws {
                    auth: AwsAuth::Key { .. },
                    ..
                } => Err(EgressError::Unusable {
                    message: format!(
                        "credential {:?} holds long-lived AWS keys: they sign requests (an Authorization header that is exactly its reference) and are never given out",
                        credential.slug
                    ),
                }),
                Kind::Aws { .. } => self.aws_keys(&credential).await?.to_secret(),
                Kind::Mtls { .. } => Err(EgressError::Unusable {
                    message: format!(
                        "credential {:?} is an MTLS credential: it is presented with \"mutual_tls\" and has no value",
                        credential.slug
                    ),
                }),
                Kind::Unusable(message) => Err(EgressError::Unusable {
                    message: format!("credential {:?}: {message}", credential.slug),
                }),
            }
        })
    }

    /// Runs a credential's own requests and reads the token from the last answer.
    async fn fetch(
        &self,
        credential: &Arc<Credential>,
        stack: Vec<i64>,
    ) -> Result<SecretString, EgressError> {
        let Kind::Fetch {
            steps, location, ..
        } = &credential.kind
        else {
            return Err(EgressError::Internal("not a fetch".into()));
        };
        let failed = |message: String| EgressError::Fetch {
            slug: credential.slug.clone(),
            message,
        };
        let mut previous: Option<Value> = None;
        for (i, step) in steps.iter().enumerate() {
            let options = RequestOptions::from_stored(&step.options)?;
            let target = options.target()?;
            let nested = self.referenced(&options, &target).await?;
            let sent = async {
                let values = self.values(&nested, stack.clone()).await?;
                let extras = Extras {
                    secret: step.secret.as_ref(),
                    previous: previous.as_ref(),
                    ..Extras::default()
                };
                self.send_with(&options, &nested, &values, extras).await
            }
            .await;
            // Credentials used inside this one's request are uses too.
            let host = target.host_str().unwrap_or_default();
            for c in &nested {
                self.record(c, host, sent.as_ref().err());
            }
            // Transport failures are the fetch's; a refusal or a misconfiguration stays itself.
            let (upstream, _) = sent.map_err(|e| match e {
                EgressError::Unreachable { .. }
                | EgressError::Timeout
                | EgressError::TooLarge { .. } => failed(format!("request {} failed: {e}", i + 1)),
                other => other,
            })?;
            if !upstream.status.is_success() {
                return Err(failed(format!(
                    "request {} answered HTTP {}",
                    i + 1,
                    upstream.status.as_u16()
                )));
            }
            previous = Some(request::event(&upstream));
        }
        let path = request::location_path(location).ok_or_else(|| {
            failed(format!("http_request_location_of_token {location:?} is not a path such as =response.body.token"))
        })?;
        let token = previous
            .as_ref()
            .and_then(|answer| request::text_at(answer, path))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| failed(format!("the response has no text at {path}")))?;
        // The token goes back to callers; the secrets the requests carried must not.
        let echoes = steps.iter().filter_map(|s| s.secret.as_ref()).any(|s| {
            let s = s.expose_secret();
            s.len() >= super::redact::MIN_LEN && token.contains(s)
        });
        if echoes {
            return Err(failed(
                "the token found contains the credential's own secret".into(),
            ));
        }
        Ok(SecretString::from(token))
    }

    /// A grant at the credential's token endpoint.
    async fn grant(
        &self,
        credential: &Credential,
        client: &OAuthClient,
        grant: &[(&str, &str)],
    ) -> Result<OAuthTokens, String> {
        let key = (credential.id, credential.version);
        self.egress
            .token_request(&self.bucket, client, key, grant)
            .await
    }

    /// Client credentials grant.
    async fn client_credentials(
        &self,
        credential: &Arc<Credential>,
    ) -> Result<(SecretString, Duration), EgressError> {
        let Kind::OAuth { client, scope } = &credential.kind else {
            return Err(EgressError::Internal("not an OAuth credential".into()));
        };
        let mut grant = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope.as_deref().filter(|s| !s.is_empty()) {
            grant.push(("scope", scope));
        }
        let tokens = self
            .grant(credential, client, &grant)
            .await
            .map_err(|message| EgressError::Fetch {
                slug: credential.slug.clone(),
                message,
            })?;
        let lifetime = tokens
            .expires_at
            .map(|at| {
                Duration::from_millis(u64::try_from(at - crate::kernel::now_ms()).unwrap_or(0))
            })
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        // Refresh before expiry: a tenth of the lifetime early, at most a minute.
        let early = (lifetime / 10).min(Duration::from_secs(60));
        Ok((tokens.access_token, lifetime - early))
    }

    /// Authorization code grant: the stored access token, refreshed (once, however many
    /// callers wait) when it is within a minute of expiring; rotated tokens are stored.
    async fn authorized_token(
        &self,
        credential: &Arc<Credential>,
    ) -> Result<SecretString, EgressError> {
        let Kind::OAuthCode { client } = &credential.kind else {
            return Err(EgressError::Internal("not an OAuth credential".into()));
        };
        let failed = |message: String| EgressError::Fetch {
            slug: credential.slug.clone(),
            message,
        };
        let Some(tokens) = self.vault.tokens(credential).await? else {
            return Err(EgressError::Unusable {
                message: format!(
                    "credential {:?} is not connected yet: open the redirect_url its creation answered",
                    credential.slug
                ),
            });
        };
        if tokens.fresh(crate::kernel::now_ms(), 60_000) {
            return Ok(tokens.access_token);
        }
        let key = ("oauth:refresh".into(), credential.id, credential.version);
        let refresh = async {
            let Some(refresh_token) = &tokens.refresh_token else {
                return Err(failed(
                    "the access token expired and there is no refresh token; connect again".into(),
                ));
            };
            let grant = [
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
            ];
            let renewed = match self.grant(credential, client, &grant).await {
                Ok(mut renewed) => {
                    if renewed.refresh_token.is_none() {
                        renewed.refresh_token = tokens.refresh_token.clone();
                    }
                    self.vault.save_tokens(credential, &renewed).await?;
                    renewed
                }
                // Another node may have refreshed (and rotated the refresh token) first.
                Err(message) => match self.vault.tokens(credential).await? {
                    Some(stored) if stored.fresh(crate::kernel::now_ms(), 60_000) => stored,
                    _ => {
                        return Err(failed(format!(
                            "refreshing the access token failed: {message}"
                        )));
                    }
                },
            };
            // Waiters share it briefly; later uses read the stored tokens again.
            Ok((renewed.access_token, Duration::from_secs(30)))
        };
        self.egress.inner.tokens.get_or_fetch(key, refresh).await
    }
}

/// What a request carries besides its options and the credentials' values.
#[derive(Default)]
struct Extras<'a> {
    /// `<<secret>>`, in a credential's own request.
    secret: Option<&'a SecretString>,
    /// The first answer, for `<<PREVIOUS_STEP.…>>` in a MULTI_REQUEST's second request.
    previous: Option<&'a Value>,
    /// An MTLS credential's client.
    identity: Option<reqwest::Client>,
    /// AWS SigV4.
    signing: Option<Signing>,
}

/// What signs a request for AWS: the keys, and the scope.
struct Signing {
    slug: String,
    keys: AwsKeys,
    region: String,
    service: String,
}

/// The AWS credential whose reference is the whole `Authorization` header, if any.
fn signing_credential(
    options: &RequestOptions,
    credentials: &[Arc<Credential>],
) -> Option<Arc<Credential>> {
    let value = options
        .headers
        .as_ref()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?
        .1
        .as_str()?
        .trim();
    let inner = value.strip_prefix("<<")?.strip_suffix(">>")?;
    let refs = super::template::references(value);
    let [Reference::Credential(slug)] = refs.as_slice() else {
        return None;
    };
    if inner.contains("<<") {
        return None;
    }
    credentials
        .iter()
        .find(|c| c.slug == *slug && matches!(c.kind, Kind::Aws { .. }))
        .cloned()
}

/// Whether `credential` may be sent to `url`: it needs `allowed_hosts`, and one must match.
fn allows(credential: &Credential, url: &Url) -> Result<(), EgressError> {
    if credential.allowed_hosts.is_empty() {
        return Err(EgressError::NotAllowed {
            message: format!(
                "credential {:?} has no allowed_hosts, so it is never sent outbound",
                credential.slug
            ),
        });
    }
    if credential.allowed_hosts.iter().any(|p| p.matches(url)) {
        return Ok(());
    }
    Err(EgressError::NotAllowed {
        message: format!(
            "credential {:?} may not be sent to {}://{}{} (allowed_hosts)",
            credential.slug,
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
    })
}

/// A JWT signed with the credential's key; `iat` and `exp` (one hour on) when asked.
fn mint(
    slug: &str,
    algorithm: JwtAlgorithm,
    payload: &Map<String, Value>,
    time_claims: bool,
    key: &SecretString,
) -> Result<SecretString, EgressError> {
    let mut claims = payload.clone();
    if time_claims {
        let now = crate::kernel::now_ms() / 1000;
        claims.insert("iat".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now + 3600));
    }
    crate::crypto::jwt::sign_with(algorithm, key, &claims)
        .map(SecretString::from)
        .map_err(|_| EgressError::Unusable {
            message: format!("credential {slug:?}: its jwt_private_key cannot sign {algorithm}"),
        })
}
