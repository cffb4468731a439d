//! Verifying credentials we issued (`POST /v1/authenticate`): the hot path.
//!
//! A platform forwards whatever it received — an `Authorization` header value or a bare
//! token — and gets back who it is or why not. Each credential family plugs in here; the
//! dispatch looks only at the shape of what was presented. Answers must come from memory
//! (each family keeps its own cache); a verdict of "not valid" is an answer, not an error.

use base64::Engine as _;
use secrecy::SecretString;
use serde::Serialize;

use super::{Ctx, Latchkey, Result, types::KeyScope};

/// The credential as presented.
pub enum Presented<'a> {
    /// HTTP Basic `key_id:secret`.
    Basic { id: String, secret: SecretString },
    /// A bearer token or a bare token (a JWT, for every family so far).
    Token(&'a str),
}

impl std::fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { id, .. } => f
                .debug_struct("Basic")
                .field("id", id)
                .finish_non_exhaustive(),
            Self::Token(_) => f.write_str("Token([redacted])"),
        }
    }
}

impl<'a> Presented<'a> {
    /// `Basic <base64(id:secret)>`, `Bearer <token>` or a bare token; None if unusable.
    pub fn parse(authorization: &'a str) -> Option<Self> {
        let value = authorization.trim();
        if let Some((scheme, rest)) = value.split_once(' ') {
            let rest = rest.trim();
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .ok()?;
                let text = String::from_utf8(decoded).ok()?;
                let (id, secret) = text.split_once(':')?;
                return Some(Self::Basic {
                    id: id.to_owned(),
                    secret: SecretString::from(secret.to_owned()),
                });
            }
            if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
                return Some(Self::Token(rest));
            }
            return None;
        }
        (!value.is_empty()).then_some(Self::Token(value))
    }
}

/// Who a valid credential belongs to. Each family fills the ids it has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CredentialPrincipal {
    /// `gateway_credential`, `gateway_access_token`, `app_key`, `integration_key`, `account_key`, …
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub organization_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
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
}

impl Verification {
    pub fn valid(principal: CredentialPrincipal) -> Self {
        Self {
            valid: true,
            principal: Some(principal),
            code: None,
        }
    }

    pub fn invalid(code: &'static str) -> Self {
        Self {
            valid: false,
            principal: None,
            code: Some(code),
        }
    }

    /// A credential of another organization is not valid for the caller's.
    fn for_organization(self, org: &str) -> Self {
        match &self.principal {
            Some(p) if p.organization_id != org => Self::invalid("wrong_organization"),
            _ => self,
        }
    }
}

impl Latchkey {
    /// Checks a credential on behalf of the caller's organization.
    pub async fn verify_credential(&self, ctx: &Ctx, authorization: &str) -> Result<Verification> {
        let org = ctx.principal.org()?;
        let Some(presented) = Presented::parse(authorization) else {
            return Ok(Verification::invalid("malformed"));
        };
        let verdict = match presented {
            Presented::Basic { id, secret } => self.verify_basic_key(&id, &secret).await?,
            Presented::Token(token) => {
                let Ok(header) = jsonwebtoken::decode_header(token) else {
                    return Ok(Verification::invalid("malformed"));
                };
                self.verify_jwt(token, &header).await?
            }
        };
        let verdict = verdict.for_organization(org);
        // A use counts only once the credential is valid for the caller's organization.
        if let Some(p) = &verdict.principal
            && p.kind == "gateway_credential"
            && let Some(id) = &p.credential_id
        {
            self.caches.record_use(id, super::now_ms());
        }
        let result = match (&verdict.principal, verdict.code) {
            (Some(p), _) => p.kind,
            (None, code) => code.unwrap_or("invalid"),
        };
        metrics::counter!("latchkey_verifications_total", "result" => result).increment(1);
        Ok(verdict)
    }

    /// A JWT, routed by its header to the family that can check it.
    async fn verify_jwt(&self, token: &str, header: &jsonwebtoken::Header) -> Result<Verification> {
        match header.kid.as_deref() {
            // A Sunshine API key id: an HS256 JWT signed with that key's secret.
            Some(kid) if KeyScope::of_key_id(kid).is_some() => {
                self.verify_key_jwt(token, header, kid).await
            }
            // Keys of our own signing sets: gateway credentials and their access tokens.
            Some(kid) => self.verify_issued_jwt(token, kid).await,
            None => Ok(Verification::invalid("malformed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn presented_shapes() {
        let basic = base64::engine::general_purpose::STANDARD.encode("app_1:s3cret:with:colons");
        match Presented::parse(&format!("Basic {basic}")) {
            Some(Presented::Basic { id, secret }) => {
                assert_eq!(id, "app_1");
                assert_eq!(secret.expose_secret(), "s3cret:with:colons");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Presented::parse("Bearer a.b.c"),
            Some(Presented::Token("a.b.c"))
        ));
        assert!(matches!(
            Presented::parse("a.b.c"),
            Some(Presented::Token("a.b.c"))
        ));
        assert!(Presented::parse("Basic !!!").is_none());
        assert!(Presented::parse("Digest x").is_none());
        assert!(Presented::parse("  ").is_none());
        let shown = format!("{:?}", Presented::parse(&format!("Basic {basic}")).unwrap());
        assert!(!shown.contains("s3cret"));
    }
}
