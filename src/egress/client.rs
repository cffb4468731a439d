//! One request out: the HTTP client (no proxy, no automatic redirects, the guarded resolver),
//! redirects followed hop by hop under the policy, and the limits (connect timeout,
//! response size, requests in flight per organization).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use reqwest::{
    Method, StatusCode,
    header::{self, HeaderMap, HeaderName},
};
use url::{Host, Url};

use super::{
    Egress, EgressConfig, EgressError,
    network::{GuardedResolver, NetworkPolicy, Refused},
};

/// Redirects followed before the last 3xx is answered as it is.
pub const MAX_REDIRECTS: usize = 5;

/// A request ready to go.
#[derive(Debug)]
pub struct Outbound {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Headers that carry a credential: dropped when a redirect leaves the origin.
    pub secret_headers: Vec<HeaderName>,
    /// Whether the body carries a credential: a redirect that would resend it to another
    /// origin is not followed.
    pub body_has_secret: bool,
}

/// What the upstream answered (after redirects).
#[derive(Debug)]
pub struct Upstream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Every outbound client starts here: no proxy, no automatic redirects, the guarded resolver.
pub(super) fn builder(
    config: &EgressConfig,
    policy: &Arc<NetworkPolicy>,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(GuardedResolver::new(policy.clone()))
        .connect_timeout(config.connect_timeout)
}

pub(super) fn build(
    config: &EgressConfig,
    policy: &Arc<NetworkPolicy>,
) -> Result<reqwest::Client, EgressError> {
    builder(config, policy)
        .build()
        .map_err(|e| EgressError::Internal(format!("cannot build the HTTP client: {e}")))
}

fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or_default().to_owned()
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

impl Egress {
    /// Checks a URL's scheme and, for an IP literal (which no resolver sees), its address.
    fn check_target(&self, url: &Url) -> Result<(), EgressError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::invalid(
                "url",
                format!(
                    "{}: only http and https URLs can be requested",
                    url.scheme()
                ),
            ));
        }
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => ip.into(),
            Some(Host::Ipv6(ip)) => ip.into(),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err(EgressError::invalid("url", "the URL has no host")),
        };
        if self.inner.policy.permits(ip) {
            Ok(())
        } else {
            Err(EgressError::NetworkRefused { host: host_of(url) })
        }
    }

    /// Waits for one of the organization's upstream slots.
    async fn permit(&self, bucket: &str) -> Result<tokio::sync::OwnedSemaphorePermit, EgressError> {
        let limit = self.inner.config.max_concurrent;
        let semaphore = self
            .inner
            .buckets
            .get_or_insert_with(bucket, || {
                Ok::<_, ()>(Arc::new(tokio::sync::Semaphore::new(limit)))
            })
            .map_err(|()| EgressError::Internal("semaphore".into()))?;
        tokio::time::timeout(self.inner.config.queue_timeout, semaphore.acquire_owned())
            .await
            .map_err(|_| EgressError::Busy)?
            .map_err(|_| EgressError::Busy)
    }

    /// Sends `request`, following up to [`MAX_REDIRECTS`] redirects. `allowed` is asked
    /// about every hop (the credentials' `allowed_hosts`); the network policy is applied to
    /// every address. A redirect to another origin drops the credential headers, and is
    /// not followed when it would resend a body that carries a credential. `identity` is an
    /// MTLS credential's client, used until the origin changes.
    pub async fn send(
        &self,
        bucket: &str,
        mut request: Outbound,
        allowed: &(dyn Fn(&Url) -> Result<(), EgressError> + Sync),
        mut identity: Option<reqwest::Client>,
    ) -> Result<Upstream, EgressError> {
        let _permit = self.permit(bucket).await?;
        let mut hops = 0;
        loop {
            allowed(&request.url)?;
            self.check_target(&request.url)?;
            let host = host_of(&request.url);
            let mut builder = identity
                .as_ref()
                .unwrap_or(&self.inner.client)
                .request(request.method.clone(), request.url.clone())
                .headers(request.headers.clone());
            if let Some(body) = &request.body {
                builder = builder.body(body.clone());
            }
            let response = builder.send().await.map_err(|e| classify(&e, &host))?;
            let status = response.status();
            let next = status
                .is_redirection()
                .then(|| response.headers().get(header::LOCATION))
                .flatten()
                .and_then(|l| l.to_str().ok())
                .and_then(|l| request.url.join(l).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https"));
            let Some(next) = next.filter(|_| hops < MAX_REDIRECTS) else {
                return self.read(response, &host).await;
            };
            // 303, and 301/302 after a POST, become a GET without a body (as browsers do).
            let keeps_body = matches!(
                status,
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
            );
            let cross_origin = !same_origin(&request.url, &next);
            let resends_body =
                keeps_body || !(status == StatusCode::SEE_OTHER || request.method == Method::POST);
            if cross_origin && resends_body && request.body_has_secret && request.body.is_some() {
                return self.read(response, &host).await;
            }
            if !keeps_body && (status == StatusCode::SEE_OTHER || request.method == Method::POST) {
                if request.method != Method::HEAD {
                    request.method = Method::GET;
                }
                request.body = None;
                request.body_has_secret = false;
                request.headers.remove(header::CONTENT_TYPE);
                request.headers.remove(header::CONTENT_LENGTH);
            }
            if cross_origin {
                identity = None;
                for name in request.secret_headers.drain(..) {
                    request.headers.remove(name);
                }
                for name in [
                    header::AUTHORIZATION,
                    header::COOKIE,
                    header::PROXY_AUTHORIZATION,
                ] {
                    request.headers.remove(name);
                }
            }
            request.url = next;
            hops += 1;
        }
    }

    /// Sends a request to one of the operator's endpoints (STS, IMDS): no network policy, no
    /// redirects.
    pub(super) async fn send_infra(&self, request: Outbound) -> Result<Upstream, EgressError> {
        let host = host_of(&request.url);
        let mut builder = self
            .inner
            .infra
            .request(request.method, request.url)
            .headers(request.headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let response = builder.send().await.map_err(|e| classify(&e, &host))?;
        self.read(response, &host).await
    }

    /// Reads the body, refusing more than the configured size.
    async fn read(
        &self,
        mut response: reqwest::Response,
        host: &str,
    ) -> Result<Upstream, EgressError> {
        let limit = self.inner.config.max_response_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(EgressError::TooLarge { limit });
        }
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e, host))? {
            if body.len() + chunk.len() > limit {
                return Err(EgressError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Upstream {
            status,
            headers,
            body: body.freeze(),
        })
    }
}

/// What a transport error means for the caller, without its text (which may hold the URL,
/// and so a substituted query value).
fn classify(e: &reqwest::Error, host: &str) -> EgressError {
    if e.is_timeout() {
        return EgressError::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<Refused>().is_some() {
            return EgressError::NetworkRefused {
                host: host.to_owned(),
            };
        }
        source = s.source();
    }
    tracing::info!(host, kind = ?error_kind(e), "upstream request failed");
    EgressError::Unreachable {
        host: host.to_owned(),
    }
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else if e.is_request() {
        "request"
    } else {
        "other"
    }
}
