//! Management tokens (`lk_…`): minting, authentication and the authorization model.
//!
//! A token is shown once, in the response that creates it; only its HMAC-SHA256 under the
//! server pepper is stored, and a presented token is checked in constant time against it.

use std::{
    hash::BuildHasher,
    sync::Arc,
    time::{Duration, Instant},
};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{
    CoreError, Ctx, Kernel, Principal, PrincipalKind, RequestMeta, Result, Role,
    audit::{self, Event},
    iso8601, now_ms,
};
use crate::{
    crypto::{
        secret::{generate_management_token, looks_like_management_token},
        secrets_equal,
    },
    store::TokenRow,
};

/// Recently authenticated tokens. A delete on this node takes effect at once; on another node
/// within [`TOKEN_TTL`].
///
/// A hit costs no HMAC: the entry is found by a keyed SipHash of the presented token and
/// holds the token itself (zeroized when dropped), compared in constant time. A SipHash
/// collision is only a miss.
pub(crate) struct TokenCache {
    cache: quick_cache::sync::Cache<u64, Arc<CachedToken>>,
    index: std::hash::RandomState,
}

struct CachedToken {
    token: SecretString,
    principal: Principal,
    /// When it was read from the store.
    at: Instant,
}

/// How long a live token is trusted without asking the store again.
pub const TOKEN_TTL: Duration = Duration::from_secs(1);

impl Default for TokenCache {
    fn default() -> Self {
        Self {
            cache: quick_cache::sync::Cache::new(100_000),
            index: Default::default(),
        }
    }
}

impl TokenCache {
    /// The principal of `token`, if it was read from the store less than [`TOKEN_TTL`] ago.
    fn get(&self, token: &str) -> Option<Principal> {
        let cached = self.cache.get(&self.index.hash_one(token))?;
        (cached.at.elapsed() < TOKEN_TTL
            && secrets_equal(cached.token.expose_secret().as_bytes(), token.as_bytes()))
        .then(|| cached.principal.clone())
    }

    fn insert(&self, token: &str, principal: Principal) {
        let cached = CachedToken {
            token: SecretString::from(token),
            principal,
            at: Instant::now(),
        };
        self.cache
            .insert(self.index.hash_one(token), Arc::new(cached));
    }

    fn forget(&self, gone: impl Fn(&Principal) -> bool) {
        self.cache.retain(|_, cached| !gone(&cached.principal));
    }
}

fn token_role_schema() -> utoipa::openapi::Object {
    let roles = [Role::Admin, Role::Editor, Role::Viewer, Role::Runner].map(Role::as_str);
    crate::kernel::types::string_enum_schema(&roles, false)
}

/// Input of `POST /v1/tokens`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    /// Required for organization tokens; a server admin names the organization.
    pub organization_id: Option<String>,
    #[schema(schema_with = crate::kernel::types::name_schema)]
    pub name: String,
    /// `server_admin` tokens are made with `latchkey token create --admin` only.
    #[schema(schema_with = token_role_schema)]
    pub role: Role,
    #[serde(default, deserialize_with = "crate::kernel::types::json_integer")]
    pub team_id: Option<i64>,
}

/// A token as listed: never the token itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub organization_id: Option<String>,
    pub name: String,
    pub role: Role,
    pub team_id: Option<i64>,
    pub created_at: String,
}

/// The response that creates a token: the only place the token ever appears.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub view: TokenView,
    #[serde(serialize_with = "crate::crypto::secret::expose::secret")]
    #[schema(value_type = String)]
    pub token: SecretString,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("view", &self.view)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl TokenView {
    fn from_row(r: TokenRow) -> Result<Self> {
        Ok(Self {
            role: Role::parse_stored(&r.role)?,
            id: r.id,
            organization_id: r.organization_id,
            name: r.name,
            team_id: r.team_id,
            created_at: iso8601(r.created_at),
        })
    }
}

impl Kernel {
    /// Resolves a bearer token to its principal. A failure is audited (to the token's
    /// organization when it is known, else to the server chain) and answers `Unauthenticated`.
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Principal> {
        let token = presented.filter(|t| looks_like_management_token(t));
        // The hot path: a recently seen token answers from memory.
        if let Some(principal) = token.and_then(|t| self.inner.tokens.get(t)) {
            return Ok(principal);
        }
        // Boxed, so the store's futures do not weigh on every cached call.
        Box::pin(self.authenticate_from_store(token, meta)).await
    }

    async fn authenticate_from_store(
        &self,
        token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Principal> {
        let found = match token {
            Some(token) => {
                let hash = self.inner.pepper.hash(token);
                match self.store().conn().await?.token_by_hash(&hash).await? {
                    Some((row, stored)) if self.inner.pepper.verify(token, &stored) => {
                        Some((token, row))
                    }
                    _ => None,
                }
            }
            None => None,
        };
        let Some((token, row)) = found else {
            self.count_failure(&super::limits::client_key(meta.ip))?;
            self.write(async |tx| {
                audit::append(tx, Event::failed_auth(meta, None, "anonymous".to_owned())).await?;
                Ok(())
            })
            .await?;
            return Err(CoreError::Unauthenticated);
        };
        let principal = Principal {
            role: Role::parse_stored(&row.role)?,
            id: row.id,
            kind: PrincipalKind::ManagementToken,
            organization_id: row.organization_id,
            team_id: row.team_id,
        };
        self.inner.tokens.insert(token, principal.clone());
        Ok(principal)
    }

    /// Mints a token. Server admins may mint for any organization; organization admins for
    /// their own. Roles other than `server_admin` need an organization.
    pub async fn create_token(&self, ctx: &Ctx, input: NewToken) -> Result<CreatedToken> {
        let name = super::types::Name::parse(&input.name)?;
        if input.role == Role::ServerAdmin {
            return Err(CoreError::invalid(
                "role",
                "server_admin tokens are minted with `latchkey token create --admin`",
            ));
        }
        let org = match (&input.organization_id, &ctx.principal.organization_id) {
            (Some(org), _) => org.clone(),
            (None, Some(own)) => own.clone(),
            (None, None) => {
                return Err(CoreError::malformed(
                    "organization_id",
                    "organization_id is required",
                ));
            }
        };
        ctx.principal.require_admin_of(&org)?;
        self.write(async |tx| {
            if !super::orgs::is_organization_id(&org) || tx.organization(&org).await?.is_none() {
                return Err(CoreError::NotFound {
                    what: "organization",
                    field: Some("organization_id"),
                });
            }
            if let Some(team) = input.team_id
                && !tx.team_exists(&org, team).await?
            {
                return Err(CoreError::NotFound {
                    what: "team",
                    field: Some("team_id"),
                });
            }
            let (row, token) =
                self.mint(Some(org.clone()), name.as_str(), input.role, input.team_id)?;
            tx.insert_token(&row, &self.inner.pepper.hash(token.expose_secret()))
                .await?;
            audit::append(
                tx,
                Event::by(ctx, Some(&org), "token.create", "management_token", &row.id),
            )
            .await?;
            Ok(CreatedToken {
                view: TokenView::from_row(row)?,
                token,
            })
        })
        .await
    }

    fn mint(
        &self,
        org: Option<String>,
        name: &str,
        role: Role,
        team_id: Option<i64>,
    ) -> Result<(TokenRow, SecretString)> {
        let token = generate_management_token()?;
        let row = TokenRow {
            id: uuid::Uuid::now_v7().to_string(),
            organization_id: org,
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            team_id,
            created_at: now_ms(),
        };
        Ok((row, token))
    }

    /// Mints a server-admin token (the CLI and first start-up). With `only_if_none`, does
    /// nothing when one already exists, so a restart never prints a second token.
    pub async fn create_admin_token(
        &self,
        name: &str,
        only_if_none: bool,
    ) -> Result<Option<SecretString>> {
        self.write(async |tx| {
            if only_if_none && tx.count_server_tokens().await? > 0 {
                return Ok(None);
            }
            let (row, token) = self.mint(None, name, Role::ServerAdmin, None)?;
            tx.insert_token(&row, &self.inner.pepper.hash(token.expose_secret()))
                .await?;
            let event = Event {
                organization_id: None,
                actor: "system".to_owned(),
                action: "token.create",
                target_type: "management_token",
                target_id: Some(row.id.clone()),
                outcome: audit::Outcome::Success,
                request_id: None,
                ip: None,
                external_id: None,
                detail: None,
            };
            audit::append(tx, event).await?;
            Ok(Some(token))
        })
        .await
    }

    /// Tokens of the caller's organization (or of `organization_id`, for a server admin).
    pub async fn list_tokens(
        &self,
        ctx: &Ctx,
        organization_id: Option<&str>,
    ) -> Result<Vec<TokenView>> {
        let org = match organization_id {
            Some(org) => Some(org),
            None => ctx.principal.organization_id.as_deref(),
        };
        if let Some(org) = org {
            ctx.principal.require_admin_of(org)?;
            if !super::orgs::is_organization_id(org) {
                return Err(CoreError::not_found("organization"));
            }
        }
        let rows = self.store().conn().await?.tokens(org).await?;
        rows.into_iter().map(TokenView::from_row).collect()
    }

    /// Deletes a token; it fails authentication from the next request on.
    pub async fn delete_token(&self, ctx: &Ctx, id: &str) -> Result<()> {
        if !super::types::ids::uuid(id) {
            return Err(CoreError::not_found("token"));
        }
        self.write(async |tx| {
            let row = tx.token(id).await?.ok_or(CoreError::not_found("token"))?;
            match &row.organization_id {
                Some(org) => ctx
                    .principal
                    .require_admin_of(org)
                    .map_err(|_| CoreError::not_found("token"))?,
                None if ctx.principal.is_server_admin() => {}
                None => return Err(CoreError::not_found("token")),
            }
            tx.delete_token(id).await?;
            audit::append(
                tx,
                Event::by(
                    ctx,
                    row.organization_id.as_deref(),
                    "token.delete",
                    "management_token",
                    id,
                ),
            )
            .await?;
            Ok(())
        })
        .await?;
        self.forget_token(id);
        Ok(())
    }

    /// Drops a token from this node's cache (deleted, or bound to a deleted team).
    pub fn forget_token(&self, token_id: &str) {
        self.inner
            .tokens
            .forget(|principal| principal.id == token_id);
    }

    /// Drops the tokens bound to `team` from this node's cache.
    pub fn forget_team_tokens(&self, team: i64) {
        self.inner
            .tokens
            .forget(|principal| principal.team_id == Some(team));
    }
}
