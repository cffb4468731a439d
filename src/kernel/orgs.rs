//! Organizations: the tenants. Only a server admin creates them; an organization token
//! sees its own and no other (another organization answers "not found").

use serde::{Deserialize, Serialize};

use super::{
    CoreError, Ctx, Kernel, Result,
    audit::{self, Event},
    iso8601, now_ms,
    types::Name,
};
use crate::{crypto::secret::random_base62, store::OrganizationRow};

/// A family's part of creating an organization (say, its default roles): run inside the
/// transaction that creates it, whichever route creates it.
pub type OrganizationHook = std::sync::Arc<
    dyn for<'a> Fn(
            &'a mut super::tx::WriteTx,
            &'a OrganizationRow,
        ) -> super::verify::BoxFuture<'a, Result<()>>
        + Send
        + Sync,
>;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewOrganization {
    #[schema(schema_with = crate::kernel::types::name_schema)]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrganizationView {
    /// 10 base62 characters.
    pub id: String,
    pub name: String,
    pub slug: String,
    pub created_at: String,
}

impl From<OrganizationRow> for OrganizationView {
    fn from(r: OrganizationRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            slug: r.slug,
            created_at: iso8601(r.created_at),
        }
    }
}

/// `The Blue Brand!` → `the-blue-brand`.
fn org_slug(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            slug.push(ch.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

impl Kernel {
    /// Registers what a family writes when an organization is created.
    pub fn on_organization_created(&self, hook: OrganizationHook) {
        if let Ok(mut hooks) = self.inner.org_hooks.write() {
            hooks.push(hook);
        }
    }

    pub async fn create_organization(
        &self,
        ctx: &Ctx,
        input: NewOrganization,
    ) -> Result<OrganizationView> {
        self.create_organization_with(ctx, input, async |_, _| Ok(()))
            .await
    }

    /// Creates an organization and, in the same transaction, what `also` writes of it (a
    /// family's own records, such as Commerce Layer's base roles).
    pub async fn create_organization_with(
        &self,
        ctx: &Ctx,
        input: NewOrganization,
        also: impl AsyncFnOnce(&mut super::tx::WriteTx, &OrganizationRow) -> Result<()>,
    ) -> Result<OrganizationView> {
        if !ctx.principal.is_server_admin() {
            return Err(CoreError::forbidden(
                "only a server-admin token can create organizations",
            ));
        }
        let name = Name::parse(&input.name)?;
        let slug = org_slug(name.as_str());
        if slug.is_empty() {
            return Err(CoreError::invalid(
                "name",
                "name must contain at least one letter or digit",
            ));
        }
        let row = OrganizationRow {
            id: random_base62(ORGANIZATION_ID_LEN)?,
            name: name.as_str().to_owned(),
            slug,
            created_at: now_ms(),
        };
        self.write(async |tx| {
            match tx.insert_organization(&row).await {
                Err(crate::store::StoreError::Conflict(_)) => {
                    return Err(CoreError::Conflict {
                        field: "name".into(),
                        message: format!("an organization with slug {:?} already exists", row.slug),
                    });
                }
                other => other?,
            }
            audit::append(
                tx,
                Event::by(
                    ctx,
                    Some(&row.id),
                    "organization.create",
                    "organization",
                    &row.id,
                ),
            )
            .await?;
            let hooks = self
                .inner
                .org_hooks
                .read()
                .map(|h| h.clone())
                .unwrap_or_default();
            for hook in hooks {
                hook(tx, &row).await?;
            }
            also(tx, &row).await
        })
        .await?;
        Ok(row.into())
    }

    pub async fn list_organizations(&self, ctx: &Ctx) -> Result<Vec<OrganizationView>> {
        let only = if ctx.principal.is_server_admin() {
            None
        } else {
            Some(ctx.principal.org()?)
        };
        let rows = self.store().read().await?.organizations(only).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Whether an organization exists (for public routes such as JWK Sets).
    pub async fn organization_exists(&self, id: &str) -> Result<bool> {
        if !is_organization_id(id) {
            return Ok(false);
        }
        Ok(self.store().read().await?.organization(id).await?.is_some())
    }

    pub async fn organization(&self, ctx: &Ctx, id: &str) -> Result<OrganizationView> {
        if !ctx.principal.is_server_admin() && ctx.principal.org()? != id || !is_organization_id(id)
        {
            return Err(CoreError::not_found("organization"));
        }
        let row = self.store().read().await?.organization(id).await?;
        row.map(Into::into)
            .ok_or(CoreError::not_found("organization"))
    }
}

/// Organization ids: 10 base62 characters.
const ORGANIZATION_ID_LEN: usize = 10;

/// Whether `id` has the shape of an organization id (checked before any lookup).
pub fn is_organization_id(id: &str) -> bool {
    super::types::ids::base62(id, ORGANIZATION_ID_LEN)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_kebab_case() {
        assert_eq!(super::org_slug("The Blue Brand!"), "the-blue-brand");
        assert_eq!(super::org_slug("  ACME  corp "), "acme-corp");
        assert_eq!(super::org_slug("!!!"), "");
    }
}
