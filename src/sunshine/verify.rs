//! Sunshine's part of `/v1/authenticate`, and how `/v2` callers authenticate: an API key as
//! HTTP Basic `id:secret` or as an HS256 JWT whose header `kid` is the key id and whose
//! `scope` claim is the key's scope (or a management token). Keys answer from the cache;
//! their secrets are opened once, compared in constant time.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{
    Sunshine,
    authz::{Caller, KeyGrant},
    model::KeyScope,
    service::key_aad,
};
use crate::kernel::limits::client_key;
use crate::{
    crypto::{
        jwt::{Hs256Verifier, JwtAlgorithm, JwtHeader, VerifyError, decode_header},
        secret::looks_like_management_token,
        secrets_equal,
    },
    kernel::{
        CoreError, Ctx, Principal, PrincipalKind, RequestMeta, Result, Role,
        audit::{Event, Outcome},
        verify::{
            Authorization, BoxFuture, CredentialPrincipal, Presented, Verification, Verifier,
        },
    },
};

/// HS256 with 30 seconds of clock skew tolerated on a JWT's `exp`.
static KEY_JWT: Hs256Verifier = Hs256Verifier::new(30);

/// A live key, as the hot path needs it: its scope, and its organization id, app id,
/// integration id and secret one after the other in `packed`, zeroed when dropped.
pub struct LiveKey {
    pub scope: KeyScope,
    /// The lengths of the organization, app and integration ids at the head of `packed`
    /// (0: the key has no app or integration).
    lens: [u16; 3],
    packed: Packed,
}

/// Bytes of ids and secret kept inside the `LiveKey` (the cache's `Arc` holds it): 101 for
/// every key Latchkey makes. One allocation instead of two is one cache and TLB miss fewer
/// per verification when 1,000,000 keys are cached, for the same memory.
const INLINE_KEY: usize = 112;

enum Packed {
    Inline {
        len: u8,
        bytes: Zeroizing<[u8; INLINE_KEY]>,
    },
    Heap(Zeroizing<Box<[u8]>>),
}

impl Packed {
    fn new(parts: [&[u8]; 4]) -> Self {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut at = 0;
        match u8::try_from(len) {
            Ok(short) if len <= INLINE_KEY => {
                let mut bytes = Zeroizing::new([0; INLINE_KEY]);
                for part in parts {
                    bytes[at..at + part.len()].copy_from_slice(part);
                    at += part.len();
                }
                Self::Inline { len: short, bytes }
            }
            _ => Self::Heap(Zeroizing::new(parts.concat().into_boxed_slice())),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(bytes) => bytes,
        }
    }

    fn heap_len(&self) -> usize {
        match self {
            Self::Inline { .. } => 0,
            Self::Heap(bytes) => bytes.len(),
        }
    }
}

impl LiveKey {
    fn new(
        scope: KeyScope,
        organization_id: &str,
        app_id: Option<&str>,
        integration_id: Option<&str>,
        secret: &SecretString,
    ) -> Result<Self> {
        let ids = [
            organization_id,
            app_id.unwrap_or(""),
            integration_id.unwrap_or(""),
        ];
        let mut lens = [0; 3];
        for (len, id) in lens.iter_mut().zip(ids) {
            *len = u16::try_from(id.len())
                .map_err(|_| CoreError::Internal("a key's owner id is too long".into()))?;
        }
        let [org, app, integration] = ids.map(str::as_bytes);
        Ok(Self {
            scope,
            lens,
            packed: Packed::new([org, app, integration, secret.expose_secret().as_bytes()]),
        })
    }

    /// The `i`th id at the head of `packed`.
    fn id(&self, i: usize) -> &str {
        let start: usize = self.lens[..i].iter().map(|&l| usize::from(l)).sum();
        let bytes = &self.packed.bytes()[start..start + usize::from(self.lens[i])];
        // Copied from a `str` whole: always UTF-8.
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    pub fn organization_id(&self) -> &str {
        self.id(0)
    }

    pub fn app_id(&self) -> Option<&str> {
        Some(self.id(1)).filter(|id| !id.is_empty())
    }

    pub fn integration_id(&self) -> Option<&str> {
        Some(self.id(2)).filter(|id| !id.is_empty())
    }

    fn secret(&self) -> &[u8] {
        let ids: usize = self.lens.iter().map(|&l| usize::from(l)).sum();
        &self.packed.bytes()[ids..]
    }
}

impl std::fmt::Debug for LiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKey")
            .field("organization_id", &self.organization_id())
            .field("scope", &self.scope)
            .field("app_id", &self.app_id())
            .field("integration_id", &self.integration_id())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct KeyClaims {
    scope: Option<String>,
}

impl crate::kernel::Weigh for LiveKey {
    fn weight(&self) -> usize {
        // The `Arc`'s counts and the key (and its heap bytes, if any).
        16 + size_of::<Self>() + self.packed.heap_len()
    }
}

impl Sunshine {
    /// The live key with this id, from the cache or else the store (its secret opened once).
    async fn live_key(&self, id: &str) -> Result<Option<Arc<LiveKey>>> {
        self.keys.get(id, || self.load_key(id)).await
    }

    async fn load_key(&self, id: &str) -> Result<Option<LiveKey>> {
        let row = self.kernel.store().conn().await?.key_by_id(id).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let secret = self
            .kernel
            .keyring()
            .open_string(&key_aad(&row.id), &row.secret)?;
        let scope = KeyScope::parse(&row.scope)
            .map_err(|_| CoreError::Internal(format!("key {} has a bad scope", row.id)))?;
        LiveKey::new(
            scope,
            &row.organization_id,
            row.app_id.as_deref(),
            row.integration_id.as_deref(),
            &secret,
        )
        .map(Some)
    }

    fn key_principal(id: &str, key: &LiveKey) -> CredentialPrincipal {
        let kind = match key.scope {
            KeyScope::Account => "account_key",
            KeyScope::App => "app_key",
            KeyScope::Integration => "integration_key",
        };
        CredentialPrincipal {
            scope: Some(key.scope.as_str().to_owned()),
            ..CredentialPrincipal::new(kind, key.organization_id().to_owned())
        }
        .with("key_id", Some(id))
        .with("app_id", key.app_id())
        .with("integration_id", key.integration_id())
    }

    /// HTTP Basic `key_id:secret`.
    async fn verify_basic_key(&self, id: &str, secret: &str) -> Result<Verification> {
        if KeyScope::of_key_id(id).is_none() {
            return Ok(Verification::invalid("unknown_key"));
        }
        let Some(key) = self.live_key(id).await? else {
            return Ok(Verification::invalid("unknown_key"));
        };
        if !secrets_equal(secret.as_bytes(), key.secret()) {
            return Ok(Verification::invalid("bad_secret").of(key.organization_id()));
        }
        Ok(Verification::valid(Self::key_principal(id, &key)))
    }

    /// An HS256 JWT signed with a key's secret: header `kid` = key id, claim `scope` = the
    /// key's scope, `exp` honoured when present. Any other algorithm is refused.
    async fn verify_key_jwt(
        &self,
        token: &str,
        header: &JwtHeader,
        kid: &str,
    ) -> Result<Verification> {
        if header.algorithm != Some(JwtAlgorithm::HS256) {
            return Ok(Verification::invalid("unsupported_algorithm"));
        }
        let Some(key) = self.live_key(kid).await? else {
            return Ok(Verification::invalid("unknown_key"));
        };
        let org = key.organization_id();
        let claims = match KEY_JWT.verify::<KeyClaims>(token, header, key.secret()) {
            Ok(claims) => claims,
            Err(VerifyError::Expired) => return Ok(Verification::invalid("expired").of(org)),
            Err(VerifyError::BadSignature) => {
                return Ok(Verification::invalid("bad_signature").of(org));
            }
            Err(VerifyError::Malformed) => return Ok(Verification::invalid("malformed").of(org)),
        };
        if claims.scope.as_deref() != Some(key.scope.as_str()) {
            return Ok(Verification::invalid("scope_mismatch").of(org));
        }
        Ok(Verification::valid(Self::key_principal(kid, &key)))
    }

    /// A credential of this family, by its shape; the verdict and the key id it named.
    async fn verify_presented(
        &self,
        presented: &Presented<'_>,
    ) -> Result<(Verification, Option<String>)> {
        Ok(match presented {
            Presented::Basic(credentials) => {
                let id = credentials.id();
                let verdict = self.verify_basic_key(id, credentials.secret()).await?;
                (verdict, Some(id.to_owned()))
            }
            Presented::Jwt { token, header } => match header.kid.as_deref() {
                Some(kid) if KeyScope::of_key_id(kid).is_some() => (
                    self.verify_key_jwt(token, header, kid).await?,
                    Some(kid.to_owned()),
                ),
                _ => (Verification::invalid("unknown_key"), None),
            },
            _ => (Verification::invalid("malformed"), None),
        })
    }

    /// Authenticates a caller of the Sunshine surface: a management token, or an API key as
    /// HTTP Basic or an HS256 JWT. A failure is audited and counted (per client and per key
    /// id) and answers `Unauthenticated`, or `RateLimited` once over the limit.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        meta: RequestMeta,
    ) -> Result<Caller> {
        let presented = match authorization.and_then(Authorization::parse) {
            Some(Authorization::Token(token)) if looks_like_management_token(token) => {
                let principal = self.kernel.authenticate(Some(token), &meta).await?;
                return Ok(Ctx::new(principal, meta).into());
            }
            Some(Authorization::Basic(credentials)) => Presented::Basic(credentials),
            Some(Authorization::Token(token)) => match decode_header(token) {
                Some(header) => Presented::Jwt { token, header },
                None => Presented::Opaque(token),
            },
            None => Presented::Opaque(""),
        };
        let (verdict, key_id) = self.verify_presented(&presented).await?;
        let Some(p) = verdict.principal else {
            return Box::pin(self.key_auth_failed(key_id.as_deref(), &meta)).await;
        };
        let scope = p
            .scope
            .as_deref()
            .and_then(|s| KeyScope::parse(s).ok())
            .ok_or(CoreError::Unauthenticated)?;
        let principal = Principal {
            id: p.id("key_id").unwrap_or_default().to_owned(),
            kind: PrincipalKind::ApiKey,
            organization_id: Some(p.organization_id.clone()),
            role: Role::Editor,
            team_id: None,
        };
        Ok(Caller {
            ctx: Ctx::new(principal, meta),
            grant: Some(KeyGrant {
                scope,
                app_id: p.id("app_id").map(str::to_owned),
                integration_id: p.id("integration_id").map(str::to_owned),
            }),
        })
    }

    async fn key_auth_failed(&self, key_id: Option<&str>, meta: &RequestMeta) -> Result<Caller> {
        // Counted before the key is looked up, so a flood costs no store reads.
        self.kernel.count_failure(&client_key(meta.ip))?;
        // A key id that exists: its own organization hears of the failure, and the key's
        // failures are limited wherever they come from.
        let known = match key_id.filter(|id| KeyScope::of_key_id(id).is_some()) {
            Some(id) => self.live_key(id).await?.map(|k| (id, k)),
            None => None,
        };
        let limits: Vec<String> = known.iter().map(|(id, _)| format!("key:{id}")).collect();
        let org = known.as_ref().map(|(_, k)| k.organization_id().to_owned());
        let event = Event {
            organization_id: org.as_deref(),
            actor: known
                .as_ref()
                .map_or_else(|| "anonymous".to_owned(), |(id, _)| format!("key:{id}")),
            action: "auth.failed",
            target_type: "api_key",
            target_id: known.as_ref().map(|(id, _)| (*id).to_owned()),
            outcome: Outcome::Failure,
            request_id: meta.request_id.as_deref(),
            ip: meta.ip,
            external_id: meta.external_id.as_deref(),
            detail: None,
        };
        self.kernel.failed_authentication(&limits, event).await?;
        Err(CoreError::Unauthenticated)
    }
}

impl Verifier for Sunshine {
    fn verify<'a>(
        &'a self,
        presented: &'a Presented<'a>,
    ) -> Option<BoxFuture<'a, Result<Verification>>> {
        let ours = match presented {
            Presented::Basic(credentials) => KeyScope::of_key_id(credentials.id()).is_some(),
            Presented::Jwt { header, .. } => header
                .kid
                .as_deref()
                .is_some_and(|kid| KeyScope::of_key_id(kid).is_some()),
            _ => false,
        };
        ours.then(|| -> BoxFuture<'a, Result<Verification>> {
            Box::pin(async move { Ok(self.verify_presented(presented).await?.0) })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Weigh;

    #[test]
    fn a_live_key_keeps_its_ids_and_secret_apart() {
        let secret = SecretString::from("s3cr3t-value");
        let key = LiveKey::new(
            KeyScope::Integration,
            "org1",
            Some("app22"),
            Some("int333"),
            &secret,
        )
        .unwrap();
        assert_eq!(key.organization_id(), "org1");
        assert_eq!(key.app_id(), Some("app22"));
        assert_eq!(key.integration_id(), Some("int333"));
        assert_eq!(key.secret(), b"s3cr3t-value");
        let debug = format!("{key:?}");
        assert!(
            debug.contains("app22") && !debug.contains("s3cr3t"),
            "{debug}"
        );
        assert_eq!(key.weight(), 16 + size_of::<LiveKey>());
        assert!(size_of::<LiveKey>() <= 128, "{}", size_of::<LiveKey>());

        let account = LiveKey::new(KeyScope::Account, "org1", None, None, &secret).unwrap();
        assert_eq!(account.organization_id(), "org1");
        assert_eq!((account.app_id(), account.integration_id()), (None, None));
        assert_eq!(account.secret(), b"s3cr3t-value");

        // Longer than fits inline: kept on the heap, read the same.
        let long = SecretString::from("x".repeat(INLINE_KEY));
        let key = LiveKey::new(KeyScope::App, "org1", Some("app22"), None, &long).unwrap();
        assert!(matches!(key.packed, Packed::Heap(_)));
        assert_eq!(
            (key.organization_id(), key.app_id(), key.integration_id()),
            ("org1", Some("app22"), None)
        );
        assert_eq!(key.secret(), "x".repeat(INLINE_KEY).as_bytes());
        assert_eq!(key.weight(), 16 + size_of::<LiveKey>() + 9 + INLINE_KEY);
        // What Latchkey makes (a 10-character organization id, 24-character app and
        // integration ids, a 43-character secret) fits inline.
        let made = SecretString::from("s".repeat(43));
        let key = LiveKey::new(
            KeyScope::Integration,
            &"o".repeat(10),
            Some("a".repeat(24).as_str()),
            Some("i".repeat(24).as_str()),
            &made,
        )
        .unwrap();
        assert!(matches!(key.packed, Packed::Inline { .. }));
    }
}
