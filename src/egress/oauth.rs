//! An OAuth 2.0 client of a provider's token endpoint: the client credentials grant, the
//! authorization code exchange (with PKCE) and refresh. Client authentication is HTTP Basic
//! first; on `invalid_client`, once more with the secret in the body, and that choice is
//! remembered for the credential version.

use std::{sync::Arc, time::Duration};

use base64::Engine;
use reqwest::header::{self, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::{Credential, Egress, EgressError, Kind, Session, client::Outbound};

/// A provider's token endpoint and this client's credentials.
#[derive(Debug)]
pub struct OAuthClient {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
}

/// Tokens a token endpoint issued. Serialized only to be sealed.
#[derive(Clone, Serialize, Deserialize)]
pub struct OAuthTokens {
    #[serde(serialize_with = "crate::crypto::secret::expose::secret")]
    pub access_token: SecretString,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::crypto::secret::expose::option"
    )]
    pub refresh_token: Option<SecretString>,
    /// Epoch milliseconds, when the provider said (`expires_in`).
    #[serde(default)]
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl OAuthTokens {
    /// Whether the access token is still good `margin_ms` from now.
    pub fn fresh(&self, now_ms: i64, margin_ms: i64) -> bool {
        self.expires_at.is_none_or(|at| at - margin_ms > now_ms)
    }
}

impl Egress {
    /// Posts a grant (`grant_type` and its parameters) to the client's token endpoint.
    /// `key` names the credential version whose client authentication choice is remembered.
    /// Errors are messages for the credential's log: they name statuses and OAuth error
    /// codes, never a value.
    pub async fn token_request(
        &self,
        bucket: &str,
        client: &OAuthClient,
        key: (i64, i64),
        grant: &[(&str, &str)],
    ) -> Result<OAuthTokens, String> {
        let url =
            Url::parse(&client.token_url).map_err(|_| "oauth_token_url is not a URL".to_owned())?;
        let body_auth = &self.inner.body_auth;
        let mut in_body = body_auth.get(&key).is_some();
        let secret = client
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret())
            .unwrap_or("");
        loop {
            let mut pairs = grant.to_vec();
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
            if in_body {
                pairs.push(("client_id", &client.client_id));
                pairs.push(("client_secret", secret));
            } else {
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(&client.client_id),
                    enc(secret)
                ));
                let value = HeaderValue::from_str(&format!("Basic {basic}"))
                    .map_err(|_| "the client id cannot be sent".to_owned())?;
                headers.insert(header::AUTHORIZATION, value);
            }
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            let outbound = Outbound {
                method: reqwest::Method::POST,
                url: url.clone(),
                headers,
                body: Some(body.into()),
                secret_headers: vec![header::AUTHORIZATION],
                body_has_secret: true,
            };
            let upstream = self
                .send(bucket, outbound, &|_| Ok(()), None)
                .await
                .map_err(|e| format!("the token endpoint failed: {e}"))?;
            let answer: Value = serde_json::from_slice(&upstream.body).unwrap_or(Value::Null);
            if upstream.status.is_success() {
                let text = |name: &str| {
                    answer
                        .get(name)
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                        .map(|t| SecretString::from(t.to_owned()))
                };
                let access_token = text("access_token")
                    .ok_or_else(|| "the token endpoint's answer has no access_token".to_owned())?;
                let expires_in = answer
                    .get("expires_in")
                    .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
                    .map(|s| s.clamp(0, 365 * 24 * 3600));
                if in_body {
                    body_auth.insert(key, ());
                }
                return Ok(OAuthTokens {
                    access_token,
                    refresh_token: text("refresh_token"),
                    expires_at: expires_in.map(|s| crate::kernel::now_ms() + s * 1000),
                });
            }
            let code = answer.get("error").and_then(Value::as_str).filter(|c| {
                c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
            if code == Some("invalid_client") && !in_body {
                in_body = true;
                continue;
            }
            return Err(format!(
                "the token endpoint answered HTTP {}{}",
                upstream.status.as_u16(),
                code.map(|c| format!(" ({c})")).unwrap_or_default()
            ));
        }
    }
}

/// An OAuth token endpoint is cached for the client credentials grant's lifetime, when
/// it does not say.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The OAuth grants of a session's credentials.
impl Session<'_> {
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
    pub(super) async fn client_credentials(
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
    pub(super) async fn authorized_token(
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

/// PKCE: a verifier, and its challenge for `method` (`S256` or `plain`).
pub fn pkce(method: &str) -> Result<(String, String), String> {
    let verifier = crate::crypto::secret::random_hex(32).map_err(|e| e.to_string())?;
    let challenge = match method {
        "plain" => verifier.clone(),
        _ => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
        ),
    };
    Ok((verifier, challenge))
}
