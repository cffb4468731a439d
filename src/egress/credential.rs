//! What a stored credential evaluates to, by kind, and the session that uses credentials for
//! one caller: TEXT's value, a JWT minted at each use, an OAuth token from the token endpoint
//! and an HTTP-request token (one or two requests), both cached with one upstream fetch
//! however many callers wait (`tokens`). The session's AWS signing is in `aws`, its OAuth
//! grants in `oauth`.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use reqwest::header;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use url::Url;

use super::{
    Egress, EgressError,
    aws::{self, AwsAuth, Signing, signing_credential},
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

/// One caller's use of credentials.
pub struct Session<'v> {
    pub(super) egress: Egress,
    pub(super) bucket: String,
    pub(super) partition: Arc<str>,
    pub(super) vault: &'v dyn Vault,
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
