//! Verifying credentials we issued (`POST /v1/authenticate`): the hot path, and the verifier
//! registry each credential family plugs into.
//!
//! A platform forwards whatever it received — an `Authorization` header value or a bare
//! token — and gets back who it is or why not. The kernel parses the shape once: HTTP Basic,
//! a JWT signed by one of our issuer keys (its signature checked here, once, for every
//! family), a JWT signed with some other key (an API key's secret, say), or an opaque token.
//! Then each registered [`Verifier`] is asked, in order, whether the credential is one of
//! its own; the first that claims it answers. Answers must come from memory (each family
//! keeps a [`super::LiveCache`]); a verdict of "not valid" is an answer, not an error.

use std::{future::Future, pin::Pin, sync::Arc};

use base64::Engine as _;
use serde::Serialize;
use zeroize::Zeroizing;

use super::{Ctx, Kernel, Result, issuer::Issued};
use crate::crypto::jwt::{JwtHeader, decode_header, is_thumbprint_kid};

/// A boxed future, for the registry's dynamic dispatch (one allocation per verification).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The credential as presented, parsed once.
pub enum Presented<'a> {
    /// HTTP Basic `key_id:secret`.
    Basic(BasicCredentials),
    /// A JWT one of our issuer keys signed; signature and `exp` already checked.
    Issued(Issued),
    /// A JWT signed with a key that is not an issuer key (nothing checked yet).
    Jwt { token: &'a str, header: JwtHeader },
    /// Anything else.
    Opaque(&'a str),
}

impl std::fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic(credentials) => credentials.fmt(f),
            Self::Issued(issued) => f
                .debug_struct("Issued")
                .field("organization_id", &issued.organization_id)
                .finish_non_exhaustive(),
            Self::Jwt { header, .. } => f
                .debug_struct("Jwt")
                .field("kid", &header.kid)
                .finish_non_exhaustive(),
            Self::Opaque(_) => f.write_str("Opaque([redacted])"),
        }
    }
}

impl Presented<'_> {
    /// The key id a Basic credential or a key-signed JWT names (not checked).
    fn key_id(&self) -> Option<&str> {
        match self {
            Self::Basic(credentials) => Some(credentials.id()),
            Self::Jwt { header, .. } => header.kid.as_deref(),
            Self::Issued(_) | Self::Opaque(_) => None,
        }
    }
}

/// The first parse of an `Authorization` value: Basic, or a token (bearer or bare).
pub enum Authorization<'a> {
    Basic(BasicCredentials),
    Token(&'a str),
}

/// HTTP Basic credentials, decoded: `id:secret` in one buffer, zeroed when dropped (no other
/// copy of the secret is made).
pub struct BasicCredentials {
    decoded: Zeroizing<String>,
    /// Where the first `:` is.
    colon: usize,
}

impl BasicCredentials {
    /// Decodes base64 `id:secret`; `None` unless it is UTF-8 with a `:`.
    fn decode(encoded: &str) -> Option<Self> {
        let engine = base64::engine::general_purpose::STANDARD;
        // Room for all of it up front: a buffer that grew would leave a copy behind.
        let mut bytes = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(
            encoded.len(),
        )));
        engine.decode_vec(encoded, &mut bytes).ok()?;
        std::str::from_utf8(&bytes).ok()?;
        let decoded = Zeroizing::new(String::from_utf8(std::mem::take(&mut *bytes)).ok()?);
        let colon = decoded.find(':')?;
        Some(Self { decoded, colon })
    }

    pub fn id(&self) -> &str {
        &self.decoded[..self.colon]
    }

    pub fn secret(&self) -> &str {
        &self.decoded[self.colon + 1..]
    }
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Basic")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl<'a> Authorization<'a> {
    /// `Basic <base64(id:secret)>`, `Bearer <token>` or a bare token; None if unusable.
    pub fn parse(authorization: &'a str) -> Option<Self> {
        let value = authorization.trim();
        if let Some((scheme, rest)) = value.split_once(' ') {
            let rest = rest.trim();
            if scheme.eq_ignore_ascii_case("basic") {
                return BasicCredentials::decode(rest).map(Self::Basic);
            }
            if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
                return Some(Self::Token(rest));
            }
            return None;
        }
        (!value.is_empty()).then_some(Self::Token(value))
    }
}

/// Who a valid credential belongs to: its type, organization and scope, and the ids its
/// family names it by (`environment_id`, `key_id`, …), flattened into the object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CredentialPrincipal {
    /// `gateway_credential`, `gateway_access_token`, `app_key`, `integration_key`, `account_key`, …
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub organization_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The family's ids: `environment_id`, `gateway_id`, `credential_id`, `key_id`,
    /// `app_id`, `integration_id`, …
    #[serde(flatten)]
    #[schema(value_type = Object, additional_properties)]
    pub ids: Ids,
}

/// Named ids, serialized as object fields (a few per principal: a list, not a map).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids(Vec<(&'static str, String)>);

impl Serialize for Ids {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (*k, v)))
    }
}

impl CredentialPrincipal {
    pub fn new(kind: &'static str, organization_id: impl Into<String>) -> Self {
        Self {
            kind,
            organization_id: organization_id.into(),
            ..Default::default()
        }
    }

    /// Adds an id (skipped when `value` is None).
    pub fn with(mut self, name: &'static str, value: Option<impl Into<String>>) -> Self {
        if let Some(value) = value {
            self.ids.0.push((name, value.into()));
        }
        self
    }

    pub fn id(&self, name: &str) -> Option<&str> {
        self.ids
            .0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The answer of `/v1/authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<CredentialPrincipal>,
    /// Why not: `malformed`, `bad_signature`, `unknown_key`, `revoked`, `expired`,
    /// `wrong_organization`, `bad_secret`, `scope_mismatch`, `unsupported_algorithm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// For an invalid credential that names one of ours (a wrong secret for a real key, an
    /// expired token): the organization it belongs to. Never sent.
    #[serde(skip)]
    pub owner: Option<String>,
}

impl Verification {
    pub fn valid(principal: CredentialPrincipal) -> Self {
        Self {
            valid: true,
            principal: Some(principal),
            code: None,
            owner: None,
        }
    }

    pub fn invalid(code: &'static str) -> Self {
        Self {
            valid: false,
            principal: None,
            code: Some(code),
            owner: None,
        }
    }

    /// This invalid verdict is about a credential of `organization_id`.
    pub fn of(mut self, organization_id: &str) -> Self {
        self.owner = Some(organization_id.to_owned());
        self
    }
}

/// A family's part of `/v1/authenticate`.
pub trait Verifier: Send + Sync + 'static {
    /// Whether `presented` is one of this family's credentials — a check of its shape only,
    /// no lookup — and if so, the future that verifies it.
    fn verify<'a>(
        &'a self,
        presented: &'a Presented<'a>,
    ) -> Option<BoxFuture<'a, Result<Verification>>>;

    /// Called once a credential this family verified was found valid for the caller's
    /// organization (e.g. to record its last use).
    fn used(&self, _principal: &CredentialPrincipal) {}
}

/// `latchkey_verifications_total` for `result`, registered once per result (the recorder's
/// own lookup builds and hashes a labelled key on every call).
fn verification_counter(result: &'static str) -> metrics::Counter {
    static COUNTERS: std::sync::LazyLock<quick_cache::sync::Cache<&'static str, metrics::Counter>> =
        std::sync::LazyLock::new(|| quick_cache::sync::Cache::new(64));
    COUNTERS.get(result).unwrap_or_else(|| {
        let counter = metrics::counter!("latchkey_verifications_total", "result" => result);
        COUNTERS.insert(result, counter.clone());
        counter
    })
}

/// The families' verifiers, asked in order.
#[derive(Clone)]
pub struct Registry {
    verifiers: Arc<[Arc<dyn Verifier>]>,
}

impl Registry {
    pub fn new(verifiers: Vec<Arc<dyn Verifier>>) -> Self {
        Self {
            verifiers: verifiers.into(),
        }
    }

    /// Checks a credential on behalf of the caller's organization. An invalid one is a failed
    /// authentication: audited in the caller's organization, up to the failure limit per
    /// caller (and per key, when it names one of the organization's keys); beyond, it joins
    /// the summary. The verdict itself is never changed by the limit: the platform needs to
    /// know why.
    pub async fn verify(
        &self,
        kernel: &Kernel,
        ctx: &Ctx,
        authorization: &str,
    ) -> Result<Verification> {
        let org = ctx.principal.org()?;
        let presented = Self::presented(kernel, authorization).await?;
        let (verdict, verifier) = match &presented {
            Ok(presented) => self.dispatch(presented).await?,
            Err(verdict) => (verdict.clone(), None),
        };
        let verdict = match (&verdict.principal, verdict.owner.as_deref()) {
            // A credential of another organization is not valid for the caller's.
            (Some(p), _) if p.organization_id != org => Verification::invalid("wrong_organization"),
            // Nor does the caller learn that another organization's key exists.
            (None, Some(owner)) if owner != org => Verification::invalid("unknown_key"),
            _ => verdict,
        };
        // A use counts only once the credential is valid for the caller's organization.
        if let (Some(principal), Some(verifier)) = (&verdict.principal, verifier) {
            verifier.used(principal);
        }
        let result = match (&verdict.principal, verdict.code) {
            (Some(p), _) => p.kind,
            (None, code) => code.unwrap_or("invalid"),
        };
        verification_counter(result).increment(1);
        if !verdict.valid {
            let key_id = presented.as_ref().ok().and_then(Presented::key_id);
            // Boxed: the audit write's future would otherwise swell every verification's.
            Box::pin(Self::failed(kernel, ctx, org, &verdict, key_id)).await;
        }
        Ok(verdict)
    }

    /// Audits an invalid verdict, within the limits.
    async fn failed(
        kernel: &Kernel,
        ctx: &Ctx,
        org: &str,
        verdict: &Verification,
        key_id: Option<&str>,
    ) {
        // The key's id is recorded (and limited) only when it is one of the organization's
        // keys: anything else is the presenter's text.
        let key_id = key_id.filter(|_| verdict.owner.as_deref() == Some(org));
        let mut limits = vec![format!("verify:{}", ctx.principal.id)];
        limits.extend(key_id.map(|id| format!("key:{id}")));
        let event = super::audit::Event {
            organization_id: Some(org),
            actor: ctx.principal.actor(),
            action: "auth.failed",
            target_type: "credential",
            target_id: key_id.map(str::to_owned),
            outcome: super::audit::Outcome::Failure,
            request_id: ctx.request_id.as_deref(),
            ip: ctx.ip,
            external_id: ctx.external_id.as_deref(),
            detail: Some(serde_json::json!({
                "via": "authenticate",
                "reason": verdict.code.unwrap_or("invalid"),
            })),
        };
        match kernel.failed_authentication(&limits, event).await {
            Ok(()) | Err(super::CoreError::RateLimited { .. }) => {}
            // The verdict stands whatever befalls its record.
            Err(e) => tracing::warn!(error = %e, "a failed verification was not audited"),
        }
    }

    /// Parses `authorization`; a verdict when it is already clear it is not valid.
    async fn presented<'a>(
        kernel: &Kernel,
        authorization: &'a str,
    ) -> Result<Result<Presented<'a>, Verification>> {
        Ok(Ok(match Authorization::parse(authorization) {
            None => return Ok(Err(Verification::invalid("malformed"))),
            Some(Authorization::Basic(credentials)) => Presented::Basic(credentials),
            Some(Authorization::Token(token)) => match decode_header(token) {
                None => Presented::Opaque(token),
                Some(header) => match header.kid.as_deref() {
                    Some(kid) if is_thumbprint_kid(kid) => {
                        match kernel.verify_issued(token, kid).await? {
                            Ok(issued) => Presented::Issued(issued),
                            Err(e) => return Ok(Err(Verification::invalid(e.code()))),
                        }
                    }
                    _ => Presented::Jwt { token, header },
                },
            },
        }))
    }

    /// The verdict of the first verifier that claims `presented`, and which one it was.
    async fn dispatch(
        &self,
        presented: &Presented<'_>,
    ) -> Result<(Verification, Option<&dyn Verifier>)> {
        for verifier in self.verifiers.iter() {
            if let Some(verifying) = verifier.verify(presented) {
                return Ok((verifying.await?, Some(verifier.as_ref())));
            }
        }
        let verdict = Verification::invalid(match presented {
            Presented::Basic(_) => "unknown_key",
            Presented::Jwt { header, .. } if header.kid.is_some() => "unknown_key",
            // Signed by us, but no family knows these claims.
            _ => "malformed",
        });
        Ok((verdict, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_shapes() {
        let basic = base64::engine::general_purpose::STANDARD.encode("app_1:s3cret:with:colons");
        match Authorization::parse(&format!("Basic {basic}")) {
            Some(Authorization::Basic(credentials)) => {
                assert_eq!(credentials.id(), "app_1");
                assert_eq!(credentials.secret(), "s3cret:with:colons");
            }
            _ => panic!("not basic"),
        }
        assert!(matches!(
            Authorization::parse("Bearer a.b.c"),
            Some(Authorization::Token("a.b.c"))
        ));
        assert!(matches!(
            Authorization::parse("a.b.c"),
            Some(Authorization::Token("a.b.c"))
        ));
        assert!(Authorization::parse("Basic !!!").is_none());
        assert!(Authorization::parse("Digest x").is_none());
        assert!(Authorization::parse("  ").is_none());
        let no_colon = base64::engine::general_purpose::STANDARD.encode("app_1");
        assert!(Authorization::parse(&format!("Basic {no_colon}")).is_none());
        let not_utf8 = base64::engine::general_purpose::STANDARD.encode([b'a', b':', 0xff]);
        assert!(Authorization::parse(&format!("Basic {not_utf8}")).is_none());
        let Some(Authorization::Basic(credentials)) =
            Authorization::parse(&format!("Basic {basic}"))
        else {
            panic!("not basic")
        };
        let shown = format!("{:?}", Presented::Basic(credentials));
        assert!(
            shown.contains("app_1") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn principal_ids_are_flattened() {
        let p = CredentialPrincipal::new("app_key", "org")
            .with("key_id", Some("app_1"))
            .with("integration_id", None::<String>);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "app_key", "organization_id": "org", "key_id": "app_1"})
        );
    }
}
