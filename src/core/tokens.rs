//! Management tokens (`lk_…`): minting, authentication and the authorization model.
//!
//! A token is shown once, in the response that creates it; only its HMAC-SHA256 under the
//! server pepper is stored, and a presented token is checked in constant time against it.

use std::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{
    CoreError, Ctx, Latchkey, RequestMeta, Result,
    audit::{self, Event},
    cache::TOKEN_TTL,
    in_tx, iso8601, now_ms,
    types::KeyScope,
};
use crate::{
    crypto::secret::{generate_management_token, looks_like_management_token},
    store::TokenRow,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Creates organizations and their first tokens; sees no organization's resources.
    ServerAdmin,
    Admin,
    Editor,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerAdmin => "server_admin",
            Self::Admin => "admin",
            Self::Editor => "editor",
            Self::Viewer => "viewer",
        }
    }

    fn parse_stored(s: &str) -> Result<Self> {
        Ok(match s {
            "server_admin" => Self::ServerAdmin,
            "admin" => Self::Admin,
            "editor" => Self::Editor,
            "viewer" => Self::Viewer,
            other => {
                return Err(CoreError::Internal(format!(
                    "unknown stored role {other:?}"
                )));
            }
        })
    }
}

/// The authenticated caller: a management token, or (on the Sunshine surface only) an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The management token's id, or the API key's id.
    pub token_id: String,
    pub organization_id: Option<String>,
    pub role: Role,
    pub team_id: Option<i64>,
    /// Set when the caller is an API key: what the key may reach.
    pub key: Option<KeyGrant>,
}

/// What a Sunshine API key may reach (see `core::sunshine` for the rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    pub scope: KeyScope,
    pub app_id: Option<String>,
    pub integration_id: Option<String>,
}

impl Principal {
    pub fn actor(&self) -> String {
        match self.key {
            Some(_) => format!("key:{}", self.token_id),
            None => format!("token:{}", self.token_id),
        }
    }

    pub fn is_server_admin(&self) -> bool {
        self.role == Role::ServerAdmin
    }

    /// The organization whose resources this caller works on.
    pub fn org(&self) -> Result<&str> {
        self.organization_id.as_deref().ok_or_else(|| {
            CoreError::forbidden("a server-admin token manages organizations and tokens only; use an organization token")
        })
    }

    /// The organization, for a call that changes something (editor or admin).
    pub fn org_for_write(&self) -> Result<&str> {
        let org = self.org()?;
        if self.role == Role::Viewer {
            return Err(CoreError::forbidden(
                "this token has the viewer role and cannot make changes",
            ));
        }
        Ok(org)
    }

    /// Whether this caller may see resources of `team_id` (team-bound tokens see one team).
    pub fn sees_team(&self, team_id: i64) -> bool {
        self.team_id.is_none_or(|t| t == team_id)
    }

    /// Which team a list covers: the one asked for, limited to the token's own team.
    pub fn team_filter(&self, asked: Option<i64>) -> Result<Option<i64>> {
        match (self.team_id, asked) {
            (Some(bound), Some(asked)) if bound != asked => Err(CoreError::NotFound {
                what: "team",
                field: Some("team_id"),
            }),
            (bound, asked) => Ok(bound.or(asked)),
        }
    }

    /// The organization for organization-wide administration (teams, tokens, audit).
    fn org_admin(&self) -> Result<&str> {
        let org = self.org()?;
        if self.role != Role::Admin || self.team_id.is_some() {
            return Err(CoreError::forbidden(
                "this needs an organization admin token that is not bound to a team",
            ));
        }
        Ok(org)
    }

    /// The organization whose audit log this caller may read.
    pub(crate) fn audit_scope(&self, requested: Option<&str>) -> Result<String> {
        match (self.is_server_admin(), requested) {
            (true, Some(org)) => Ok(org.to_owned()),
            (true, None) => Err(CoreError::malformed(
                "organization_id",
                "a server-admin token must name the organization_id whose events to list",
            )),
            (false, Some(org)) if Some(org) != self.organization_id.as_deref() => {
                Err(CoreError::not_found("organization"))
            }
            (false, _) => Ok(self.org_admin()?.to_owned()),
        }
    }

    /// For operations that only organization admins (not editors) and server admins may do.
    pub(crate) fn require_admin_of(&self, org: &str) -> Result<()> {
        if self.is_server_admin() {
            return Ok(());
        }
        if self.organization_id.as_deref() != Some(org) {
            return Err(CoreError::not_found("organization"));
        }
        self.org_admin().map(|_| ())
    }
}

/// Input of `POST /v1/tokens`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    /// Required for organization tokens; a server admin names the organization.
    pub organization_id: Option<String>,
    pub name: String,
    pub role: Role,
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
    #[serde(serialize_with = "expose")]
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

pub(crate) fn expose<S: serde::Serializer>(
    secret: &SecretString,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
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

impl Latchkey {
    /// Resolves a bearer token to its principal. A failure is audited (to the token's
    /// organization when it is known, else to the server chain) and answers `Unauthenticated`.
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Principal> {
        let token = presented
            .filter(|t| looks_like_management_token(t))
            .map(|t| (t, self.pepper.hash(t)));
        // The hot path: a recently seen token answers from memory.
        if let Some((_, hash)) = &token
            && let Some((principal, at)) = self.caches.tokens.get(hash)
            && at.elapsed() < TOKEN_TTL
        {
            return Ok(principal);
        }
        // Boxed, so the store's futures do not weigh on every cached call.
        Box::pin(self.authenticate_from_store(token, meta)).await
    }

    async fn authenticate_from_store(
        &self,
        token: Option<(&str, [u8; 32])>,
        meta: &RequestMeta,
    ) -> Result<Principal> {
        let found = match token {
            Some((token, hash)) => match self.store.read().await?.token_by_hash(&hash).await? {
                Some((row, stored)) if self.pepper.verify(token, &stored) => Some((hash, row)),
                _ => None,
            },
            None => None,
        };
        let Some((hash, row)) = found else {
            let client = meta.ip.as_deref().unwrap_or("unknown");
            if let Err(retry_after) = self.caches.count_failure(client) {
                return Err(CoreError::RateLimited { retry_after });
            }
            let mut tx = self.store.write().await?;
            audit::append(
                &mut tx,
                Event::failed_auth(meta, None, "anonymous".to_owned()),
            )
            .await?;
            tx.commit().await?;
            return Err(CoreError::Unauthenticated);
        };
        let principal = Principal {
            role: Role::parse_stored(&row.role)?,
            token_id: row.id,
            organization_id: row.organization_id,
            team_id: row.team_id,
            key: None,
        };
        self.caches
            .tokens
            .put(hash, (principal.clone(), Instant::now()));
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
        in_tx(&self.store, async |tx| {
            if tx.organization(&org).await?.is_none() {
                return Err(CoreError::NotFound {
                    what: "organization",
                    field: Some("organization_id"),
                });
            }
            if let Some(team) = input.team_id
                && tx.team(&org, team).await?.is_none()
            {
                return Err(CoreError::NotFound {
                    what: "team",
                    field: Some("team_id"),
                });
            }
            let (row, token) =
                self.mint(Some(org.clone()), name.as_str(), input.role, input.team_id)?;
            tx.insert_token(&row, &self.pepper.hash(token.expose_secret()))
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
        in_tx(&self.store, async |tx| {
            if only_if_none && tx.count_server_tokens().await? > 0 {
                return Ok(None);
            }
            let (row, token) = self.mint(None, name, Role::ServerAdmin, None)?;
            tx.insert_token(&row, &self.pepper.hash(token.expose_secret()))
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
        }
        let rows = self.store.read().await?.tokens(org).await?;
        rows.into_iter().map(TokenView::from_row).collect()
    }

    /// Deletes a token; it fails authentication from the next request on.
    pub async fn delete_token(&self, ctx: &Ctx, id: &str) -> Result<()> {
        in_tx(&self.store, async |tx| {
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
        self.caches.forget_token(id);
        Ok(())
    }
}
