//! PingOne gateway credentials: environments, gateways, credentials (signed JWTs shown once,
//! at most five per gateway), their verification on the hot path, and the token exchange.
//!
//! A credential is an RS256 JWT whose `jti` is the credential id; it has no `exp`, so it is
//! valid exactly while its record exists. The JWT is never stored. Verification answers from
//! the caches in `core::cache`; a delete updates them in the same request.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    CoreError, Ctx, Latchkey, Result,
    audit::{self, Event},
    authn::{CredentialPrincipal, Verification},
    cache::LiveGatewayCredential,
    in_tx, iso8601, now_ms,
    revocations::{self, Kind},
    types::Name,
};
use crate::{
    crypto::signing::VerifyError,
    store::{EnvironmentRow, GatewayCredentialRow, GatewayRow, Tx},
};

pub const MAX_CREDENTIALS_PER_GATEWAY: usize = 5;
pub const GATEWAY_TYPES: &[&str] = &[
    "LDAP",
    "PING_FEDERATE",
    "PING_INTELLIGENCE",
    "API_GATEWAY_INTEGRATION",
    "RADIUS",
];
pub const REGIONS: &[&str] = &["NA", "EU", "AP", "CA", "AU"];
/// Lifetime of an access token obtained by exchanging a gateway credential.
pub const ACCESS_TOKEN_SECONDS: i64 = 300;
pub const SUBJECT_TOKEN_TYPE: &str = "pingone_gateway_credential";
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

// --- views and inputs ----------------------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct EnvironmentInput {
    pub name: Option<String>,
    pub description: Option<String>,
    /// NA (default), EU, AP, CA or AU.
    pub region: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub region: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<EnvironmentRow> for EnvironmentView {
    fn from(r: EnvironmentRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            description: r.description,
            region: r.region,
            created_at: iso8601(r.created_at),
            updated_at: iso8601(r.updated_at),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct GatewayInput {
    pub name: Option<String>,
    /// LDAP, PING_FEDERATE, PING_INTELLIGENCE, API_GATEWAY_INTEGRATION or RADIUS.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reference {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub enabled: bool,
    pub description: String,
    pub environment: Reference,
    pub created_at: String,
    pub updated_at: String,
}

impl From<GatewayRow> for GatewayView {
    fn from(r: GatewayRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            kind: r.kind,
            enabled: r.enabled,
            description: r.description,
            environment: Reference {
                id: r.environment_id,
            },
            created_at: iso8601(r.created_at),
            updated_at: iso8601(r.updated_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayCredentialView {
    pub id: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// The response that creates a credential: the only place the JWT ever appears.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedGatewayCredential {
    pub id: String,
    pub created_at: String,
    /// An RS256 JWT; keep it, it is not shown again.
    pub credential: String,
}

impl std::fmt::Debug for CreatedGatewayCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedGatewayCredential")
            .field("id", &self.id)
            .field("credential", &"[redacted]")
            .finish()
    }
}

/// The claims of a gateway credential (seed 000).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialClaims {
    aud: String,
    iss: String,
    iat: i64,
    jti: String,
    environment_id: String,
    gateway_id: String,
    gateway_type: String,
    gateway_name: String,
    organization_id: String,
    target_cluster_environment: String,
    target_geography: String,
}

/// The claims of an access token from the token exchange.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessClaims {
    iss: String,
    sub: String,
    aud: String,
    iat: i64,
    exp: i64,
    jti: String,
    token_use: String,
    environment_id: String,
    gateway_id: String,
    organization_id: String,
}

const ACCESS_TOKEN_USE: &str = "gateway_access";

fn issuer(environment_id: &str) -> String {
    format!("urn:latchkey:environment:{environment_id}")
}

/// A token exchange's success.
pub struct AccessToken {
    pub access_token: String,
    pub expires_in: i64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// Why a token exchange was refused (OAuth error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeError {
    InvalidRequest,
    UnsupportedGrantType,
    InvalidGrant,
}

impl ExchangeError {
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidGrant => "invalid_grant",
        }
    }
}

fn name_of(input: &Option<String>) -> Result<Name> {
    Ok(Name::parse(input.as_deref().ok_or_else(|| {
        CoreError::malformed("name", "name is required")
    })?)?)
}

fn conflict_on_name(e: crate::store::StoreError, what: &str) -> CoreError {
    match e {
        crate::store::StoreError::Conflict(_) => CoreError::Conflict {
            field: "name".into(),
            message: format!("a {what} with this name already exists in the environment"),
        },
        other => other.into(),
    }
}

impl Latchkey {
    async fn environment_of(&self, tx: &mut Tx, ctx: &Ctx, id: &str) -> Result<EnvironmentRow> {
        let org = ctx.principal.org()?;
        tx.environment(org, id)
            .await?
            .ok_or(CoreError::not_found("environment"))
    }

    async fn gateway_of(&self, tx: &mut Tx, ctx: &Ctx, env: &str, id: &str) -> Result<GatewayRow> {
        let env = self.environment_of(tx, ctx, env).await?;
        tx.gateway(&env.organization_id, &env.id, id)
            .await?
            .ok_or(CoreError::not_found("gateway"))
    }

    // --- environments ----------------------------------------------------------------------

    pub async fn create_environment(
        &self,
        ctx: &Ctx,
        input: EnvironmentInput,
    ) -> Result<EnvironmentView> {
        let org = ctx.principal.org_for_write()?;
        let name = name_of(&input.name)?;
        let region = input.region.clone().unwrap_or_else(|| "NA".into());
        if !REGIONS.contains(&region.as_str()) {
            return Err(CoreError::invalid(
                "region",
                format!("region must be one of {}", REGIONS.join(", ")),
            ));
        }
        let now = now_ms();
        let row = EnvironmentRow {
            id: uuid::Uuid::new_v4().to_string(),
            organization_id: org.to_owned(),
            name: name.as_str().to_owned(),
            description: input.description.unwrap_or_default(),
            region,
            created_at: now,
            updated_at: now,
        };
        in_tx(&self.store, async |tx| {
            tx.insert_environment(&row).await?;
            audit::append(
                tx,
                Event::by(ctx, Some(org), "environment.create", "environment", &row.id),
            )
            .await?;
            Ok(())
        })
        .await?;
        Ok(row.into())
    }

    pub async fn environments(&self, ctx: &Ctx) -> Result<Vec<EnvironmentView>> {
        let rows = self
            .store
            .read()
            .await?
            .environments(ctx.principal.org()?)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn environment(&self, ctx: &Ctx, id: &str) -> Result<EnvironmentView> {
        Ok(self
            .environment_of(&mut self.store.read().await?, ctx, id)
            .await?
            .into())
    }

    /// Deletes an environment with its gateways; their credentials are revoked at once.
    pub async fn delete_environment(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let org = ctx.principal.org_for_write()?;
        let revoked = in_tx(&self.store, async |tx| {
            let env = self.environment_of(tx, ctx, id).await?;
            let mut revoked = Vec::new();
            for gateway in tx.gateways(org, &env.id).await? {
                revoked.extend(
                    tx.gateway_credentials(org, &gateway.id)
                        .await?
                        .into_iter()
                        .map(|c| c.id),
                );
            }
            tx.delete_environment(org, &env.id).await?;
            revocations::record(tx, Kind::GatewayCredential, &revoked).await?;
            audit::append(
                tx,
                Event::by(ctx, Some(org), "environment.delete", "environment", &env.id),
            )
            .await?;
            Ok(revoked)
        })
        .await?;
        self.revoke_cached(Kind::GatewayCredential, revoked);
        Ok(())
    }

    // --- gateways --------------------------------------------------------------------------

    pub async fn create_gateway(
        &self,
        ctx: &Ctx,
        env_id: &str,
        input: GatewayInput,
    ) -> Result<GatewayView> {
        let org = ctx.principal.org_for_write()?;
        let name = name_of(&input.name)?;
        let kind = input
            .kind
            .clone()
            .ok_or_else(|| CoreError::malformed("type", "type is required"))?;
        if !GATEWAY_TYPES.contains(&kind.as_str()) {
            return Err(CoreError::invalid(
                "type",
                format!("type must be one of {}", GATEWAY_TYPES.join(", ")),
            ));
        }
        let enabled = input
            .enabled
            .ok_or_else(|| CoreError::malformed("enabled", "enabled is required"))?;
        in_tx(&self.store, async |tx| {
            let env = self.environment_of(tx, ctx, env_id).await?;
            let now = now_ms();
            let row = GatewayRow {
                id: uuid::Uuid::new_v4().to_string(),
                organization_id: org.to_owned(),
                environment_id: env.id,
                name: name.as_str().to_owned(),
                kind,
                enabled,
                description: input.description.clone().unwrap_or_default(),
                created_at: now,
                updated_at: now,
            };
            tx.insert_gateway(&row)
                .await
                .map_err(|e| conflict_on_name(e, "gateway"))?;
            audit::append(
                tx,
                Event::by(ctx, Some(org), "gateway.create", "gateway", &row.id),
            )
            .await?;
            Ok(row.into())
        })
        .await
    }

    pub async fn gateways(&self, ctx: &Ctx, env_id: &str) -> Result<Vec<GatewayView>> {
        let mut tx = self.store.read().await?;
        let env = self.environment_of(&mut tx, ctx, env_id).await?;
        Ok(tx
            .gateways(&env.organization_id, &env.id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub async fn gateway(&self, ctx: &Ctx, env_id: &str, id: &str) -> Result<GatewayView> {
        Ok(self
            .gateway_of(&mut self.store.read().await?, ctx, env_id, id)
            .await?
            .into())
    }

    /// `PUT`: name, type and enabled are required; the type cannot change.
    pub async fn replace_gateway(
        &self,
        ctx: &Ctx,
        env_id: &str,
        id: &str,
        input: GatewayInput,
    ) -> Result<GatewayView> {
        let org = ctx.principal.org_for_write()?;
        let name = name_of(&input.name)?;
        let kind = input
            .kind
            .clone()
            .ok_or_else(|| CoreError::malformed("type", "type is required"))?;
        let enabled = input
            .enabled
            .ok_or_else(|| CoreError::malformed("enabled", "enabled is required"))?;
        in_tx(&self.store, async |tx| {
            let mut row = self.gateway_of(tx, ctx, env_id, id).await?;
            if kind != row.kind {
                return Err(CoreError::invalid(
                    "type",
                    "a gateway's type cannot be changed",
                ));
            }
            row.name = name.as_str().to_owned();
            row.enabled = enabled;
            row.description = input.description.clone().unwrap_or_default();
            row.updated_at = now_ms().max(row.updated_at);
            tx.update_gateway(&row)
                .await
                .map_err(|e| conflict_on_name(e, "gateway"))?;
            audit::append(
                tx,
                Event::by(ctx, Some(org), "gateway.update", "gateway", &row.id),
            )
            .await?;
            Ok(row.into())
        })
        .await
    }

    /// Deletes a gateway; all its credentials are revoked at once.
    pub async fn delete_gateway(&self, ctx: &Ctx, env_id: &str, id: &str) -> Result<()> {
        let org = ctx.principal.org_for_write()?;
        let revoked = in_tx(&self.store, async |tx| {
            let gateway = self.gateway_of(tx, ctx, env_id, id).await?;
            let revoked: Vec<String> = tx
                .gateway_credentials(org, &gateway.id)
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect();
            tx.delete_gateway(org, &gateway.id).await?;
            revocations::record(tx, Kind::GatewayCredential, &revoked).await?;
            audit::append(
                tx,
                Event::by(ctx, Some(org), "gateway.delete", "gateway", &gateway.id),
            )
            .await?;
            Ok(revoked)
        })
        .await?;
        self.revoke_cached(Kind::GatewayCredential, revoked);
        Ok(())
    }

    // --- credentials -----------------------------------------------------------------------

    /// Issues a credential: at most five per gateway, enforced under the gateway's lock.
    pub async fn create_gateway_credential(
        &self,
        ctx: &Ctx,
        env_id: &str,
        gateway_id: &str,
    ) -> Result<CreatedGatewayCredential> {
        let org = ctx.principal.org_for_write()?;
        let signer = self.signing_key(org).await?;
        let (row, claims) = in_tx(&self.store, async |tx| {
            let gateway = self.gateway_of(tx, ctx, env_id, gateway_id).await?;
            let env = self.environment_of(tx, ctx, env_id).await?;
            tx.lock_gateway(org, &gateway.id).await?;
            if tx.gateway_credentials(org, &gateway.id).await?.len() >= MAX_CREDENTIALS_PER_GATEWAY
            {
                return Err(CoreError::LimitExceeded {
                    field: "credentials",
                    message: format!(
                        "a gateway can have at most {MAX_CREDENTIALS_PER_GATEWAY} credentials"
                    ),
                });
            }
            let now = now_ms();
            let row = GatewayCredentialRow {
                id: uuid::Uuid::new_v4().to_string(),
                organization_id: org.to_owned(),
                environment_id: env.id.clone(),
                gateway_id: gateway.id.clone(),
                created_at: now,
                last_used_at: None,
            };
            tx.insert_gateway_credential(&row).await?;
            audit::append(
                tx,
                Event::by(
                    ctx,
                    Some(org),
                    "gateway_credential.create",
                    "gateway_credential",
                    &row.id,
                ),
            )
            .await?;
            let claims = CredentialClaims {
                aud: format!("urn:latchkey:{}:{}", gateway.kind, gateway.id),
                iss: issuer(&env.id),
                iat: now / 1000,
                jti: row.id.clone(),
                environment_id: env.id,
                gateway_id: gateway.id,
                gateway_type: gateway.kind,
                gateway_name: gateway.name,
                organization_id: org.to_owned(),
                target_cluster_environment: "PROD".into(),
                target_geography: env.region,
            };
            Ok((row, claims))
        })
        .await?;
        let credential = signer.sign(&claims)?;
        Ok(CreatedGatewayCredential {
            id: row.id,
            created_at: iso8601(row.created_at),
            credential,
        })
    }

    fn credential_view(&self, row: GatewayCredentialRow) -> GatewayCredentialView {
        let last_used = match (row.last_used_at, self.caches.pending_use(&row.id)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        GatewayCredentialView {
            id: row.id,
            created_at: iso8601(row.created_at),
            last_used_at: last_used.map(iso8601),
        }
    }

    pub async fn gateway_credentials(
        &self,
        ctx: &Ctx,
        env_id: &str,
        gateway_id: &str,
    ) -> Result<Vec<GatewayCredentialView>> {
        let mut tx = self.store.read().await?;
        let gateway = self.gateway_of(&mut tx, ctx, env_id, gateway_id).await?;
        let rows = tx
            .gateway_credentials(&gateway.organization_id, &gateway.id)
            .await?;
        Ok(rows.into_iter().map(|r| self.credential_view(r)).collect())
    }

    pub async fn gateway_credential(
        &self,
        ctx: &Ctx,
        env_id: &str,
        gateway_id: &str,
        id: &str,
    ) -> Result<GatewayCredentialView> {
        let mut tx = self.store.read().await?;
        let gateway = self.gateway_of(&mut tx, ctx, env_id, gateway_id).await?;
        let row = tx
            .gateway_credentials(&gateway.organization_id, &gateway.id)
            .await?
            .into_iter()
            .find(|c| c.id == id);
        row.map(|r| self.credential_view(r))
            .ok_or(CoreError::not_found("credential"))
    }

    /// Revokes a credential: the next verification on this node already fails.
    pub async fn delete_gateway_credential(
        &self,
        ctx: &Ctx,
        env_id: &str,
        gateway_id: &str,
        id: &str,
    ) -> Result<()> {
        let org = ctx.principal.org_for_write()?;
        in_tx(&self.store, async |tx| {
            let gateway = self.gateway_of(tx, ctx, env_id, gateway_id).await?;
            if !tx.delete_gateway_credential(org, &gateway.id, id).await? {
                return Err(CoreError::not_found("credential"));
            }
            revocations::record(tx, Kind::GatewayCredential, &[id.to_owned()]).await?;
            audit::append(
                tx,
                Event::by(
                    ctx,
                    Some(org),
                    "gateway_credential.delete",
                    "gateway_credential",
                    id,
                ),
            )
            .await?;
            Ok(())
        })
        .await?;
        self.revoke_cached(Kind::GatewayCredential, [id.to_owned()]);
        Ok(())
    }

    /// Writes the pending `lastUsedAt` stamps (called periodically and at shutdown).
    /// A failed write puts the stamps back for the next attempt.
    pub async fn flush_usage(&self) -> Result<()> {
        let pending = self.caches.take_uses();
        if pending.is_empty() {
            return Ok(());
        }
        let written = async {
            let mut tx = self.store.write().await?;
            for (id, at) in &pending {
                tx.touch_gateway_credential(id, *at).await?;
            }
            tx.commit().await
        }
        .await;
        if let Err(e) = written {
            for (id, at) in &pending {
                self.caches.record_use(id, *at);
            }
            return Err(e.into());
        }
        Ok(())
    }

    // --- verification (hot path) -----------------------------------------------------------

    async fn live_gateway_credential(
        &self,
        id: &str,
    ) -> Result<Option<Arc<LiveGatewayCredential>>> {
        if let Some(known) = self
            .caches
            .gateway_credentials
            .lookup(id, self.caches.feed_is_current())
        {
            return Ok(known);
        }
        Box::pin(self.load_gateway_credential(id)).await
    }

    async fn load_gateway_credential(
        &self,
        id: &str,
    ) -> Result<Option<Arc<LiveGatewayCredential>>> {
        let row = self
            .store
            .read()
            .await?
            .gateway_credential_by_id(id)
            .await?;
        let live = row.map(|r| LiveGatewayCredential {
            organization_id: r.organization_id,
            environment_id: r.environment_id,
            gateway_id: r.gateway_id,
        });
        Ok(self.caches.gateway_credentials.loaded(id, live))
    }

    /// Verifies a JWT signed by one of our signing keys: a gateway credential or an access
    /// token obtained by exchanging one.
    pub(crate) async fn verify_issued_jwt(&self, token: &str, kid: &str) -> Result<Verification> {
        let Some(verifier) = self.verifier(kid).await? else {
            return Ok(Verification::invalid("unknown_key"));
        };
        let claims: Value = match verifier.key.verify(token) {
            Ok(claims) => claims,
            Err(VerifyError::BadSignature) => return Ok(Verification::invalid("bad_signature")),
            Err(VerifyError::Expired) => return Ok(Verification::invalid("expired")),
            Err(VerifyError::Malformed) => return Ok(Verification::invalid("malformed")),
        };
        if claims.get("tokenUse").and_then(Value::as_str) == Some(ACCESS_TOKEN_USE) {
            let Ok(access) = serde_json::from_value::<AccessClaims>(claims) else {
                return Ok(Verification::invalid("malformed"));
            };
            if access.organization_id != verifier.organization_id {
                return Ok(Verification::invalid("bad_signature"));
            }
            return Ok(Verification::valid(CredentialPrincipal {
                kind: "gateway_access_token",
                organization_id: access.organization_id,
                environment_id: Some(access.environment_id),
                gateway_id: Some(access.gateway_id),
                credential_id: Some(access.sub),
                ..Default::default()
            }));
        }
        let Ok(claims) = serde_json::from_value::<CredentialClaims>(claims) else {
            return Ok(Verification::invalid("malformed"));
        };
        let Some(live) = self.live_gateway_credential(&claims.jti).await? else {
            return Ok(Verification::invalid("revoked"));
        };
        if live.organization_id != verifier.organization_id
            || live.organization_id != claims.organization_id
            || live.gateway_id != claims.gateway_id
            || live.environment_id != claims.environment_id
        {
            return Ok(Verification::invalid("bad_signature"));
        }
        Ok(Verification::valid(CredentialPrincipal {
            kind: "gateway_credential",
            organization_id: live.organization_id.clone(),
            environment_id: Some(live.environment_id.clone()),
            gateway_id: Some(live.gateway_id.clone()),
            credential_id: Some(claims.jti),
            ..Default::default()
        }))
    }

    /// `POST /{envID}/as/token` with the token-exchange grant: a gateway credential for a
    /// five-minute access token.
    pub async fn exchange_gateway_credential(
        &self,
        env_id: &str,
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
        let kid = match jsonwebtoken::decode_header(token) {
            Ok(header) => header.kid,
            Err(_) => return Ok(Err(ExchangeError::InvalidGrant)),
        };
        let Some(kid) = kid else {
            return Ok(Err(ExchangeError::InvalidGrant));
        };
        let verdict = self.verify_issued_jwt(token, &kid).await?;
        let principal = match verdict.principal {
            Some(p)
                if p.kind == "gateway_credential"
                    && p.environment_id.as_deref() == Some(env_id) =>
            {
                p
            }
            _ => return Ok(Err(ExchangeError::InvalidGrant)),
        };
        if let Some(id) = &principal.credential_id {
            self.caches.record_use(id, now_ms());
        }
        let signer = self.signing_key(&principal.organization_id).await?;
        let now = now_ms() / 1000;
        let claims = AccessClaims {
            iss: issuer(env_id),
            sub: principal.credential_id.unwrap_or_default(),
            aud: principal.gateway_id.clone().unwrap_or_default(),
            iat: now,
            exp: now + ACCESS_TOKEN_SECONDS,
            jti: uuid::Uuid::new_v4().to_string(),
            token_use: ACCESS_TOKEN_USE.into(),
            environment_id: env_id.to_owned(),
            gateway_id: principal.gateway_id.unwrap_or_default(),
            organization_id: principal.organization_id,
        };
        Ok(Ok(AccessToken {
            access_token: signer.sign(&claims)?,
            expires_in: ACCESS_TOKEN_SECONDS,
        }))
    }

    /// The public JWK Set of the organization that owns `env_id` (None if no such environment).
    pub async fn environment_jwks(&self, env_id: &str) -> Result<Option<Value>> {
        let env = self.store.read().await?.environment_by_id(env_id).await?;
        match env {
            Some(env) => Ok(Some(self.jwks(&env.organization_id).await?)),
            None => Ok(None),
        }
    }
}
