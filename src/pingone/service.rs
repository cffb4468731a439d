//! PingOne's rules: environments, gateways and gateway credentials (signed JWTs shown once,
//! at most five per gateway). Every change is audited in its own transaction; deleting a
//! credential, or the gateway or environment above it, revokes through the kernel's write
//! transaction, so every node's cache learns of it.

use super::{
    PingOne, SIGNING_ALGORITHM,
    model::*,
    store::{EnvironmentRow, GatewayCredentialRow, GatewayRow},
};
use crate::{
    kernel::{
        CoreError, Ctx, Result,
        audit::{self, Event},
        iso8601, now_ms,
        types::{Name, ids},
    },
    store::Tx,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// The caller's organization, if it may do this. PingOne resources belong to the
/// organization, not to a team: a team-bound token reaches none of them, reads included.
fn organization(ctx: &Ctx, access: Access) -> Result<&str> {
    if ctx.principal.team_id.is_some() {
        return Err(CoreError::forbidden(
            "a team-bound token cannot use PingOne environments, gateways or credentials",
        ));
    }
    match access {
        Access::Read => ctx.principal.org(),
        Access::Write => ctx.principal.org_for_write(),
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

impl PingOne {
    async fn environment_of(&self, tx: &mut Tx, ctx: &Ctx, id: &str) -> Result<EnvironmentRow> {
        let org = organization(ctx, Access::Read)?;
        if !ids::uuid(id) {
            return Err(CoreError::not_found("environment"));
        }
        tx.environment(org, id)
            .await?
            .ok_or(CoreError::not_found("environment"))
    }

    async fn gateway_of(&self, tx: &mut Tx, ctx: &Ctx, env: &str, id: &str) -> Result<GatewayRow> {
        let env = self.environment_of(tx, ctx, env).await?;
        if !ids::uuid(id) {
            return Err(CoreError::not_found("gateway"));
        }
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
        let org = organization(ctx, Access::Write)?;
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
        self.kernel
            .write(async |tx| {
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
            .kernel
            .store()
            .read()
            .await?
            .environments(organization(ctx, Access::Read)?)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn environment(&self, ctx: &Ctx, id: &str) -> Result<EnvironmentView> {
        Ok(self
            .environment_of(&mut self.kernel.store().read().await?, ctx, id)
            .await?
            .into())
    }

    /// Deletes an environment with its gateways; their credentials are revoked at once.
    pub async fn delete_environment(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let org = organization(ctx, Access::Write)?;
        self.kernel
            .write(async |tx| {
                let env = self.environment_of(tx, ctx, id).await?;
                // Under the locks credential creation takes, so every credential the cascade
                // removes is in the revocation.
                tx.lock_environment_gateways(org, &env.id).await?;
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
                tx.revoke(&self.credentials, revoked);
                audit::append(
                    tx,
                    Event::by(ctx, Some(org), "environment.delete", "environment", &env.id),
                )
                .await?;
                Ok(())
            })
            .await
    }

    // --- gateways --------------------------------------------------------------------------

    pub async fn create_gateway(
        &self,
        ctx: &Ctx,
        env_id: &str,
        input: GatewayInput,
    ) -> Result<GatewayView> {
        let org = organization(ctx, Access::Write)?;
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
        self.kernel
            .write(async |tx| {
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
        let mut tx = self.kernel.store().read().await?;
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
            .gateway_of(&mut self.kernel.store().read().await?, ctx, env_id, id)
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
        let org = organization(ctx, Access::Write)?;
        let name = name_of(&input.name)?;
        let kind = input
            .kind
            .clone()
            .ok_or_else(|| CoreError::malformed("type", "type is required"))?;
        let enabled = input
            .enabled
            .ok_or_else(|| CoreError::malformed("enabled", "enabled is required"))?;
        self.kernel
            .write(async |tx| {
                let mut row = self.gateway_of(tx, ctx, env_id, id).await?;
                if kind != row.kind {
                    return Err(CoreError::invalid(
                        "type",
                        "a gateway's type cannot be changed",
                    ));
                }
                let toggled = row.enabled != enabled;
                row.name = name.as_str().to_owned();
                row.enabled = enabled;
                row.description = input.description.clone().unwrap_or_default();
                row.updated_at = now_ms().max(row.updated_at);
                tx.update_gateway(&row)
                    .await
                    .map_err(|e| conflict_on_name(e, "gateway"))?;
                if toggled {
                    // Its credentials verify (or stop verifying) with it, on every node.
                    let ids = tx.gateway_credentials(org, &row.id).await?;
                    tx.refresh(&self.credentials, ids.into_iter().map(|c| c.id));
                }
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
        let org = organization(ctx, Access::Write)?;
        self.kernel
            .write(async |tx| {
                let gateway = self.gateway_of(tx, ctx, env_id, id).await?;
                tx.lock_gateway(org, &gateway.id).await?;
                let revoked: Vec<String> = tx
                    .gateway_credentials(org, &gateway.id)
                    .await?
                    .into_iter()
                    .map(|c| c.id)
                    .collect();
                tx.delete_gateway(org, &gateway.id).await?;
                tx.revoke(&self.credentials, revoked);
                audit::append(
                    tx,
                    Event::by(ctx, Some(org), "gateway.delete", "gateway", &gateway.id),
                )
                .await?;
                Ok(())
            })
            .await
    }

    // --- credentials -----------------------------------------------------------------------

    /// Issues a credential: at most five per gateway, enforced under the gateway's lock.
    pub async fn create_gateway_credential(
        &self,
        ctx: &Ctx,
        env_id: &str,
        gateway_id: &str,
    ) -> Result<CreatedGatewayCredential> {
        let org = organization(ctx, Access::Write)?;
        let signer = self.kernel.signing_key(org, SIGNING_ALGORITHM).await?;
        let (row, claims) = self
            .kernel
            .write(async |tx| {
                let gateway = self.gateway_of(tx, ctx, env_id, gateway_id).await?;
                let env = self.environment_of(tx, ctx, env_id).await?;
                tx.lock_gateway(org, &gateway.id).await?;
                if tx.gateway_credentials(org, &gateway.id).await?.len()
                    >= MAX_CREDENTIALS_PER_GATEWAY
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
        let last_used = match (row.last_used_at, self.usage.pending(&row.id)) {
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
        let mut tx = self.kernel.store().read().await?;
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
        let mut tx = self.kernel.store().read().await?;
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
        let org = organization(ctx, Access::Write)?;
        self.kernel
            .write(async |tx| {
                let gateway = self.gateway_of(tx, ctx, env_id, gateway_id).await?;
                if !ids::uuid(id) || !tx.delete_gateway_credential(org, &gateway.id, id).await? {
                    return Err(CoreError::not_found("credential"));
                }
                tx.revoke(&self.credentials, [id.to_owned()]);
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
            .await
    }
}
