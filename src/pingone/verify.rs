//! PingOne's part of `/v1/authenticate` and its token exchange: gateway credentials (our
//! RS256 JWTs whose `jti` names a live credential record; they have no `exp`, so they are
//! valid exactly while the record exists) and the five-minute access tokens they are
//! exchanged for. The kernel has already checked the signature; this module checks the
//! claims against the live record, from the cache.

use serde_json::Value;

use super::{
    PingOne, SIGNING_ALGORITHM,
    model::{
        ACCESS_TOKEN_SECONDS, ACCESS_TOKEN_USE, AccessClaims, AccessToken, CredentialClaims,
        ExchangeError, SUBJECT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, issuer,
    },
};
use crate::{
    crypto::jwt::decode_header,
    kernel::{
        RequestMeta, Result,
        audit::{Event, Outcome},
        issuer::Issued,
        limits::client_key,
        now_ms,
        verify::{BoxFuture, CredentialPrincipal, Presented, Verification, Verifier},
    },
};

/// A live gateway credential, as the hot path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGatewayCredential {
    pub organization_id: String,
    pub environment_id: String,
    pub gateway_id: String,
    /// A disabled gateway's credentials (and their access tokens) verify nothing.
    pub gateway_enabled: bool,
}

impl crate::kernel::Weigh for LiveGatewayCredential {
    fn weight(&self) -> usize {
        self.organization_id.len() + self.environment_id.len() + self.gateway_id.len() + 72
    }
}

/// Gateway credentials and their access tokens both carry `gatewayId`.
fn is_ours(claims: &Value) -> bool {
    claims.get("gatewayId").is_some()
}

impl PingOne {
    async fn live_credential(
        &self,
        id: &str,
    ) -> Result<Option<std::sync::Arc<LiveGatewayCredential>>> {
        self.credentials
            .get(id, || async {
                let row = self
                    .kernel
                    .store()
                    .conn()
                    .await?
                    .live_gateway_credential(id)
                    .await?;
                Ok(row.map(|r| LiveGatewayCredential {
                    organization_id: r.organization_id,
                    environment_id: r.environment_id,
                    gateway_id: r.gateway_id,
                    gateway_enabled: r.gateway_enabled,
                }))
            })
            .await
    }

    /// Checks the claims of a token our issuer signed: a gateway credential or an access
    /// token obtained by exchanging one.
    async fn verify_issued(&self, issued: &Issued) -> Result<Verification> {
        let claims = &issued.claims;
        if claims.get("tokenUse").and_then(Value::as_str) == Some(ACCESS_TOKEN_USE) {
            let Ok(access) = serde_json::from_value::<AccessClaims>(claims.clone()) else {
                return Ok(Verification::invalid("malformed"));
            };
            if access.organization_id != issued.organization_id {
                return Ok(Verification::invalid("bad_signature"));
            }
            // An access token lives no longer than the credential it was exchanged for.
            match self.live_credential(&access.sub).await? {
                Some(live)
                    if live.gateway_enabled
                        && live.gateway_id == access.gateway_id
                        && live.environment_id == access.environment_id => {}
                Some(live) if !live.gateway_enabled => {
                    return Ok(Verification::invalid("disabled").of(&live.organization_id));
                }
                _ => return Ok(Verification::invalid("revoked")),
            }
            return Ok(Verification::valid(
                CredentialPrincipal::new("gateway_access_token", access.organization_id)
                    .with("environment_id", Some(access.environment_id))
                    .with("gateway_id", Some(access.gateway_id))
                    .with("credential_id", Some(access.sub)),
            ));
        }
        let Ok(claims) = serde_json::from_value::<CredentialClaims>(claims.clone()) else {
            return Ok(Verification::invalid("malformed"));
        };
        let Some(live) = self.live_credential(&claims.jti).await? else {
            return Ok(Verification::invalid("revoked"));
        };
        if !live.gateway_enabled {
            return Ok(Verification::invalid("disabled").of(&live.organization_id));
        }
        if live.organization_id != issued.organization_id
            || live.organization_id != claims.organization_id
            || live.gateway_id != claims.gateway_id
            || live.environment_id != claims.environment_id
        {
            return Ok(Verification::invalid("bad_signature"));
        }
        Ok(Verification::valid(
            CredentialPrincipal::new("gateway_credential", live.organization_id.clone())
                .with("environment_id", Some(live.environment_id.clone()))
                .with("gateway_id", Some(live.gateway_id.clone()))
                .with("credential_id", Some(claims.jti)),
        ))
    }

    /// `POST /{envID}/as/token` with the token-exchange grant: a gateway credential for a
    /// five-minute access token.
    ///
    /// A subject token that is not a live gateway credential of this environment is a failed
    /// authentication: limited per client address (`RateLimited` beyond) and audited.
    pub async fn exchange_gateway_credential(
        &self,
        env_id: &str,
        meta: &RequestMeta,
        grant_type: Option<&str>,
        subject_token: Option<&str>,
        subject_token_type: Option<&str>,
    ) -> Result<Result<AccessToken, ExchangeError>> {
        match grant_type {
            Some(TOKEN_EXCHANGE_GRANT) => {}
            Some(_) => return Ok(Err(ExchangeError::UnsupportedGrantType)),
            None => return Ok(Err(ExchangeError::InvalidRequest)),
        }
        let (Some(token), Some(SUBJECT_TOKEN_TYPE)) = (subject_token, subject_token_type) else {
            return Ok(Err(ExchangeError::InvalidRequest));
        };
        let Some(kid) = decode_header(token).and_then(|h| h.kid) else {
            return self.exchange_failed(meta, None, "malformed").await;
        };
        let issued = match self.kernel.verify_issued(token, &kid).await? {
            Ok(issued) => issued,
            Err(e) => return self.exchange_failed(meta, None, e.code()).await,
        };
        let verdict = self.verify_issued(&issued).await?;
        let principal = match verdict.principal {
            Some(p) if p.kind == "gateway_credential" && p.id("environment_id") == Some(env_id) => {
                p
            }
            Some(p) => {
                let reason = if p.kind == "gateway_credential" {
                    "wrong_environment"
                } else {
                    "not_a_gateway_credential"
                };
                return self.exchange_failed(meta, Some(&p), reason).await;
            }
            // Signed by one of this organization's keys, but revoked, disabled or forged.
            None => {
                let reason = verdict.code.unwrap_or("invalid");
                let signed_for =
                    (issued.organization_id != crate::kernel::issuer::SERVER).then(|| {
                        CredentialPrincipal::new("gateway_credential", issued.organization_id)
                            .with("credential_id", issued.claims["jti"].as_str())
                    });
                return self
                    .exchange_failed(meta, signed_for.as_ref(), reason)
                    .await;
            }
        };
        let credential_id = principal.id("credential_id").unwrap_or_default().to_owned();
        let gateway_id = principal.id("gateway_id").unwrap_or_default().to_owned();
        self.usage.record(&credential_id, now_ms());
        let now = now_ms() / 1000;
        let claims = AccessClaims {
            iss: issuer(env_id),
            sub: credential_id,
            aud: gateway_id.clone(),
            iat: now,
            exp: now + ACCESS_TOKEN_SECONDS,
            jti: uuid::Uuid::new_v4().to_string(),
            token_use: ACCESS_TOKEN_USE.into(),
            environment_id: env_id.to_owned(),
            gateway_id,
            organization_id: principal.organization_id.clone(),
        };
        let access_token = self
            .kernel
            .issue(&principal.organization_id, SIGNING_ALGORITHM, &claims)
            .await?;
        Ok(Ok(AccessToken {
            access_token,
            expires_in: ACCESS_TOKEN_SECONDS,
        }))
    }

    /// A refused subject token: counted against the client's address and, when it names one
    /// of our credentials, against that credential (so no one fills its organization's log
    /// from many addresses), and audited in the organization whose key signed it.
    async fn exchange_failed(
        &self,
        meta: &RequestMeta,
        signed_for: Option<&CredentialPrincipal>,
        reason: &'static str,
    ) -> Result<Result<AccessToken, ExchangeError>> {
        let event = Event {
            organization_id: signed_for.map(|p| p.organization_id.as_str()),
            actor: "anonymous".to_owned(),
            action: "auth.failed",
            target_type: "gateway_credential",
            target_id: signed_for
                .and_then(|p| p.id("credential_id"))
                .map(str::to_owned),
            outcome: Outcome::Failure,
            request_id: meta.request_id.as_deref(),
            ip: meta.ip,
            external_id: meta.external_id.as_deref(),
            detail: Some(serde_json::json!({ "reason": reason, "via": "token_exchange" })),
        };
        let mut limits = vec![client_key(meta.ip)];
        limits.extend(
            signed_for
                .and_then(|p| p.id("credential_id"))
                .map(|id| format!("key:{id}")),
        );
        self.kernel.failed_authentication(&limits, event).await?;
        Ok(Err(ExchangeError::InvalidGrant))
    }

    /// The public JWK Set of the organization that owns `env_id` (None if no such
    /// environment). Reading it never makes a key (it is a public route): an organization
    /// that has issued nothing publishes an empty set.
    pub async fn environment_jwks(
        &self,
        env_id: &str,
    ) -> Result<Option<crate::crypto::jwt::JwkSet>> {
        if !crate::kernel::types::ids::uuid(env_id) {
            return Ok(None);
        }
        let env = self
            .kernel
            .store()
            .conn()
            .await?
            .environment_by_id(env_id)
            .await?;
        let Some(env) = env else {
            return Ok(None);
        };
        Ok(Some(self.kernel.jwks(&env.organization_id).await?))
    }

    /// Writes the pending `lastUsedAt` stamps (called periodically and at shutdown).
    /// A failed write puts the stamps back for the next attempt.
    pub async fn flush_usage(&self) -> Result<()> {
        let pending = self.usage.take();
        if pending.is_empty() {
            return Ok(());
        }
        let written = self
            .kernel
            .write(async |tx| {
                for (id, at) in &pending {
                    tx.touch_gateway_credential(id, *at).await?;
                }
                Ok(())
            })
            .await;
        if written.is_err() {
            for (id, at) in &pending {
                self.usage.record(id, *at);
            }
        }
        written
    }
}

impl Verifier for PingOne {
    fn verify<'a>(
        &'a self,
        presented: &'a Presented<'a>,
    ) -> Option<BoxFuture<'a, Result<Verification>>> {
        match presented {
            Presented::Issued(issued) if is_ours(&issued.claims) => {
                Some(Box::pin(self.verify_issued(issued)))
            }
            _ => None,
        }
    }

    /// A use counts only once the credential is valid for the caller's organization.
    fn used(&self, principal: &CredentialPrincipal) {
        if principal.kind == "gateway_credential"
            && let Some(id) = principal.id("credential_id")
        {
            self.usage.record(id, now_ms());
        }
    }
}
