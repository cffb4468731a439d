//! The Provisioning API's rules: who may do what, and what an organization, a role and an api
//! credential may hold.
//!
//! Callers are management tokens not bound to a team: `admin` does everything, `editor`
//! creates, updates and deletes api credentials, `viewer` reads; a server-admin token reads
//! and creates organizations only. Another organization's ids are "not found".

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::{
    CommerceLayer,
    jsonapi::{Object, ResourceInput, invalid, not_found},
    model::*,
    objects,
    query::ListQuery,
    store::{ApiCredentialRow, ClOrganizationRow, Locked, PermissionRow, RoleRow, VersionRow},
};
use crate::{
    crypto::secret::random_base62,
    kernel::{
        CoreError, Ctx, PrincipalKind,
        audit::{self, Event},
        http::error::ApiError,
        now_ms,
        orgs::NewOrganization,
        types::Name,
    },
};

mod history;
mod organizations;
mod permissions;

use history::record_version;
pub(crate) use organizations::organization_attributes;
pub(crate) use permissions::{PERMISSION_CREATE, PERMISSION_UPDATE};

pub type Result<T> = std::result::Result<T, ApiError>;

/// Largest `metadata` object, serialized.
const MAX_METADATA_BYTES: usize = 4096;
/// Longest `reference`, `reference_origin` and `redirect_uri`.
const MAX_REFERENCE_CHARS: usize = 255;
const MAX_URI_CHARS: usize = 2000;

/// Length of generated ids, client ids and client secrets (base62: 10 ≈ 59 bits of id;
/// 43 ≈ 256 bits of secret).
pub(crate) const ID_LEN: usize = 10;
pub(crate) const CLIENT_ID_LEN: usize = 43;
const SECRET_LEN: usize = 43;

pub(crate) const CREDENTIAL_CREATE: &[&str] = &[
    "name",
    "kind",
    "redirect_uri",
    "expires_in",
    "mode",
    "custom",
    "reference",
    "reference_origin",
    "metadata",
];
pub(crate) const CREDENTIAL_UPDATE: &[&str] = &[
    "name",
    "redirect_uri",
    "expires_in",
    "reference",
    "reference_origin",
    "metadata",
];
pub(crate) const ROLE_ATTRIBUTES: &[&str] = &["name", "reference", "reference_origin", "metadata"];

/// What a call needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Create, update and delete api credentials (editor or admin).
    WriteCredentials,
    /// Roles and organizations (admin).
    Admin,
}

/// The organization a caller works on, if it may do `access` there.
pub fn organization(ctx: &Ctx, access: Access) -> Result<&str> {
    let p = &ctx.principal;
    if p.team_id.is_some() {
        return Err(CoreError::forbidden(
            "a token bound to a team cannot use the Provisioning API; use an organization token",
        )
        .into());
    }
    Ok(match access {
        Access::Read => p.org()?,
        Access::WriteCredentials => p.org_for_write()?,
        Access::Admin => p.org_admin()?,
    })
}

/// The organization a request document names in `relationships.organization`, which must
/// be the caller's.
fn named_organization<'a>(ctx: &'a Ctx, input: &ResourceInput, access: Access) -> Result<&'a str> {
    let org = organization(ctx, access)?;
    match input.relationship("organization", "organizations")? {
        Some(Some(id)) if id == org => Ok(org),
        Some(Some(_)) => Err(not_found().with_field("organization")),
        _ => Err(invalid("organization", "can't be blank")),
    }
}

/// Not found, before any lookup, unless `id` has the shape of the ids this surface makes.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if crate::kernel::types::ids::base62(id, ID_LEN) {
        Ok(())
    } else {
        Err(not_found())
    }
}

// --- attribute checks ------------------------------------------------------------------------

fn required_name(input: &ResourceInput) -> Result<String> {
    match input.attribute::<String>("name", "a string")? {
        Some(Some(name)) => Ok(Name::parse(&name)?.as_str().to_owned()),
        _ => Err(invalid("name", "can't be blank")),
    }
}

/// A nullable string attribute of at most `max` characters: None when absent.
fn text(input: &ResourceInput, name: &str, max: usize) -> Result<Option<Option<String>>> {
    let value = input.attribute::<String>(name, "a string")?;
    if let Some(Some(s)) = &value
        && s.chars().count() > max
    {
        return Err(invalid(
            name,
            format!("is too long (maximum is {max} characters)"),
        ));
    }
    Ok(value)
}

/// `metadata`: an object of at most 4 KiB, or null.
fn metadata(input: &ResourceInput) -> Result<Option<Option<String>>> {
    match input.attribute::<Map<String, Value>>("metadata", "an object")? {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(map)) => {
            let text = Value::Object(map).to_string();
            if text.len() > MAX_METADATA_BYTES {
                return Err(invalid(
                    "metadata",
                    format!("is too large (maximum is {MAX_METADATA_BYTES} bytes)"),
                ));
            }
            Ok(Some(Some(text)))
        }
    }
}

/// A redirect URI: absolute, https — or http on a loopback host, for development — and
/// without a fragment (RFC 6749 §3.1.2).
fn redirect_uri(input: &ResourceInput) -> Result<Option<Option<String>>> {
    let value = text(input, "redirect_uri", MAX_URI_CHARS)?;
    if let Some(Some(raw)) = &value {
        check_browser_url(raw).map_err(|why| invalid("redirect_uri", why))?;
    }
    Ok(value)
}

fn expires_in(input: &ResourceInput) -> Result<Option<i64>> {
    match input.attribute::<i64>("expires_in", "an integer")? {
        Some(Some(n)) if n < MIN_EXPIRES_IN => Err(invalid(
            "expires_in",
            format!("must be greater than or equal to {MIN_EXPIRES_IN}"),
        )),
        Some(Some(n)) if n > MAX_EXPIRES_IN => Err(invalid(
            "expires_in",
            format!("must be less than or equal to {MAX_EXPIRES_IN}"),
        )),
        Some(n) => Ok(n),
        None => Ok(None),
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// An organization's `admin` and `read_only` roles, new.
pub(super) fn base_roles(org: &str) -> crate::kernel::Result<Vec<RoleRow>> {
    let now = now_ms();
    [("admin", "Admin"), ("read_only", "Read only")]
        .into_iter()
        .map(|(kind, name)| {
            Ok(RoleRow {
                id: random_base62(ID_LEN)?,
                organization_id: org.to_owned(),
                name: name.to_owned(),
                kind: kind.to_owned(),
                reference: None,
                reference_origin: None,
                metadata: None,
                created_at: now,
                updated_at: now,
            })
        })
        .collect()
}

/// A new api credential, with its secret (shown once).
pub struct Created {
    pub row: ApiCredentialRow,
    pub client_secret: SecretString,
}

impl CommerceLayer {
    /// Makes the organization's `admin` and `read_only` roles if it has not got them yet:
    /// organizations get them when they are created, but not those created before this
    /// surface existed (checked once per organization and node; the unique index settles
    /// races).
    pub(super) async fn ensure_base_roles(&self, org: &str) -> Result<()> {
        if self.base_roles.get(org).is_some() {
            return Ok(());
        }
        let mut conn = self.kernel.store().conn().await?;
        if conn.cl_base_roles(org).await? < 2 {
            drop(conn);
            let rows = base_roles(org)?;
            self.kernel
                .write(async |tx| {
                    for row in &rows {
                        tx.insert_cl_role(row).await?;
                    }
                    Ok(())
                })
                .await?;
        }
        self.base_roles.insert(org.to_owned(), ());
        Ok(())
    }

    /// A role of `org`, for a relationship (404 naming the relationship otherwise).
    async fn role_of(&self, org: &str, id: &str, field: &'static str) -> Result<RoleRow> {
        check_id(id).map_err(|e| e.with_field(field))?;
        self.ensure_base_roles(org).await?;
        let mut conn = self.kernel.store().conn().await?;
        conn.cl_role(org, id)
            .await?
            .ok_or_else(|| not_found().with_field(field))
    }

    // --- api credentials ---------------------------------------------------------------------

    pub async fn create_credential(&self, ctx: &Ctx, input: &ResourceInput) -> Result<Created> {
        input.expect("api_credentials", None)?;
        input.allow_only(CREDENTIAL_CREATE, &["organization", "role"])?;
        let org = named_organization(ctx, input, Access::WriteCredentials)?;
        let name = required_name(input)?;
        let custom = input
            .attribute::<bool>("custom", "a boolean")?
            .flatten()
            .unwrap_or(false);
        let kind = match input.attribute::<String>("kind", "a string")? {
            Some(Some(kind)) => kind,
            _ => return Err(invalid("kind", "can't be blank")),
        };
        if FORK_KINDS.contains(&kind.as_str()) && !custom {
            return Err(invalid("kind", "a hosted app kind needs custom: true"));
        }
        if !CORE_KINDS.contains(&kind.as_str()) && !FORK_KINDS.contains(&kind.as_str()) {
            return Err(invalid(
                "kind",
                "must be sales_channel, integration, webapp, or a hosted app kind with custom: true",
            ));
        }
        let redirect_uri = redirect_uri(input)?.flatten();
        if kind == WEBAPP && redirect_uri.is_none() {
            return Err(invalid("redirect_uri", "can't be blank for a webapp"));
        }
        let mode = match input.attribute::<String>("mode", "a string")?.flatten() {
            None => "test".to_owned(),
            Some(m) if m == "test" || m == "live" => m,
            Some(_) => return Err(invalid("mode", "must be test or live")),
        };
        let role_id = match input.relationship("role", "roles")?.flatten() {
            Some(_) if kind == SALES_CHANNEL || kind == WEBAPP => {
                return Err(invalid(
                    "role",
                    format!("can't be assigned to a {kind} api credential"),
                ));
            }
            Some(id) => Some(self.role_of(org, &id, "role").await?.id),
            None if kind == INTEGRATION => return Err(invalid("role", "can't be blank")),
            None => None,
        };
        let client_secret = SecretString::from(random_base62(SECRET_LEN)?);
        let now = now_ms();
        let row = ApiCredentialRow {
            id: random_base62(ID_LEN)?,
            organization_id: org.to_owned(),
            role_id,
            name,
            confidential: is_confidential(&kind),
            redirect_uri,
            client_id: random_base62(CLIENT_ID_LEN)?,
            secret_hash: Some(
                self.kernel
                    .hash_secret(client_secret.expose_secret())
                    .to_vec(),
            ),
            scopes: DEFAULT_SCOPES.to_owned(),
            expires_in: expires_in(input)?.unwrap_or_else(|| default_expires_in(&kind)),
            kind,
            mode,
            custom,
            access_role: None,
            reference: text(input, "reference", MAX_REFERENCE_CHARS)?.flatten(),
            reference_origin: text(input, "reference_origin", MAX_REFERENCE_CHARS)?.flatten(),
            metadata: metadata(input)?.flatten(),
            created_at: now,
            updated_at: now,
        };
        self.kernel
            .write(async |tx| {
                tx.insert_cl_credential(&row).await?;
                let object = objects::credential_object(&row, None);
                record_version(tx, ctx, org, "create", None, Some(&object)).await?;
                let event = Event::by(
                    ctx,
                    Some(org),
                    "api_credential.create",
                    "api_credential",
                    &row.id,
                );
                audit::append(tx, event).await?;
                Ok(())
            })
            .await?;
        Ok(Created { row, client_secret })
    }

    pub async fn update_credential(
        &self,
        ctx: &Ctx,
        id: &str,
        input: &ResourceInput,
    ) -> Result<ApiCredentialRow> {
        input.expect("api_credentials", Some(id))?;
        input.allow_only(CREDENTIAL_UPDATE, &["role"])?;
        let org = organization(ctx, Access::WriteCredentials)?;
        check_id(id)?;
        let role = input.relationship("role", "roles")?;
        let role = match role {
            Some(Some(role_id)) => Some(Some(self.role_of(org, &role_id, "role").await?.id)),
            other => other,
        };
        let name = match input.attribute::<String>("name", "a string")? {
            None => None,
            Some(None) => return Err(invalid("name", "can't be blank")),
            Some(Some(n)) => Some(Name::parse(&n)?.as_str().to_owned()),
        };
        let redirect = redirect_uri(input)?;
        let expires = expires_in(input)?;
        let reference = text(input, "reference", MAX_REFERENCE_CHARS)?;
        let reference_origin = text(input, "reference_origin", MAX_REFERENCE_CHARS)?;
        let metadata = metadata(input)?;
        let row = self
            .kernel
            .write(async |tx| {
                tx.lock_cl_row(Locked::ApiCredential, org, id).await?;
                let Some(mut row) = tx.cl_credential(org, id).await? else {
                    return Err(CoreError::not_found("api credential"));
                };
                let before = objects::credential_object(&row, None);
                match &role {
                    Some(Some(_)) if row.kind == SALES_CHANNEL || row.kind == WEBAPP => {
                        return Err(CoreError::invalid(
                            "role",
                            format!("can't be assigned to a {} api credential", row.kind),
                        ));
                    }
                    Some(None) if row.kind == INTEGRATION => {
                        return Err(CoreError::invalid("role", "can't be blank"));
                    }
                    _ => {}
                }
                if row.kind == WEBAPP && matches!(redirect, Some(None)) {
                    return Err(CoreError::invalid(
                        "redirect_uri",
                        "can't be blank for a webapp",
                    ));
                }
                set(&mut row.role_id, role.clone());
                set(&mut row.name, name.clone());
                set(&mut row.redirect_uri, redirect.clone());
                set(&mut row.expires_in, expires);
                set(&mut row.reference, reference.clone());
                set(&mut row.reference_origin, reference_origin.clone());
                set(&mut row.metadata, metadata.clone());
                row.updated_at = now_ms();
                tx.update_cl_credential(&row).await?;
                let after = objects::credential_object(&row, None);
                record_version(tx, ctx, org, "update", Some(&before), Some(&after)).await?;
                // Its tokens verify against what it is now (role, lifetime) on every node.
                tx.refresh(&self.clients, [row.client_id.clone()]);
                let event = Event::by(
                    ctx,
                    Some(org),
                    "api_credential.update",
                    "api_credential",
                    id,
                );
                audit::append(tx, event).await?;
                Ok(row)
            })
            .await?;
        Ok(row)
    }

    pub async fn delete_credential(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let org = organization(ctx, Access::WriteCredentials)?;
        check_id(id)?;
        self.kernel
            .write(async |tx| {
                let Some(row) = tx.cl_credential(org, id).await? else {
                    return Err(CoreError::not_found("api credential"));
                };
                let Some(client_id) = tx.delete_cl_credential(org, id).await? else {
                    return Err(CoreError::not_found("api credential"));
                };
                let before = objects::credential_object(&row, None);
                record_version(tx, ctx, org, "destroy", Some(&before), None).await?;
                tx.revoke(&self.clients, [client_id]);
                let event = Event::by(
                    ctx,
                    Some(org),
                    "api_credential.delete",
                    "api_credential",
                    id,
                );
                audit::append(tx, event).await?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    pub async fn credential(&self, ctx: &Ctx, id: &str) -> Result<ApiCredentialRow> {
        let org = organization(ctx, Access::Read)?;
        check_id(id)?;
        let mut conn = self.kernel.store().conn().await?;
        conn.cl_credential(org, id).await?.ok_or_else(not_found)
    }

    pub async fn credentials(
        &self,
        ctx: &Ctx,
        query: &ListQuery,
    ) -> Result<(Vec<ApiCredentialRow>, i64)> {
        let org = organization(ctx, Access::Read)?;
        let mut conn = self.kernel.store().conn().await?;
        Ok(conn.cl_credentials_page(org, query).await?)
    }

    // --- roles -------------------------------------------------------------------------------

    pub async fn create_role(&self, ctx: &Ctx, input: &ResourceInput) -> Result<RoleRow> {
        input.expect("roles", None)?;
        input.allow_only(ROLE_ATTRIBUTES, &["organization"])?;
        let org = named_organization(ctx, input, Access::Admin)?;
        self.ensure_base_roles(org).await?;
        let now = now_ms();
        let row = RoleRow {
            id: random_base62(ID_LEN)?,
            organization_id: org.to_owned(),
            name: required_name(input)?,
            kind: "custom".to_owned(),
            reference: text(input, "reference", MAX_REFERENCE_CHARS)?.flatten(),
            reference_origin: text(input, "reference_origin", MAX_REFERENCE_CHARS)?.flatten(),
            metadata: metadata(input)?.flatten(),
            created_at: now,
            updated_at: now,
        };
        self.kernel
            .write(async |tx| {
                tx.insert_cl_role(&row).await?;
                let object = objects::role_object(&row);
                record_version(tx, ctx, org, "create", None, Some(&object)).await?;
                audit::append(
                    tx,
                    Event::by(ctx, Some(org), "role.create", "role", &row.id),
                )
                .await?;
                Ok(())
            })
            .await?;
        Ok(row)
    }

    pub async fn update_role(&self, ctx: &Ctx, id: &str, input: &ResourceInput) -> Result<RoleRow> {
        input.expect("roles", Some(id))?;
        input.allow_only(ROLE_ATTRIBUTES, &[])?;
        let org = organization(ctx, Access::Admin)?;
        check_id(id)?;
        self.ensure_base_roles(org).await?;
        let name = match input.attribute::<String>("name", "a string")? {
            None => None,
            Some(None) => return Err(invalid("name", "can't be blank")),
            Some(Some(n)) => Some(Name::parse(&n)?.as_str().to_owned()),
        };
        let reference = text(input, "reference", MAX_REFERENCE_CHARS)?;
        let reference_origin = text(input, "reference_origin", MAX_REFERENCE_CHARS)?;
        let metadata = metadata(input)?;
        let row = self
            .kernel
            .write(async |tx| {
                tx.lock_cl_row(Locked::Role, org, id).await?;
                let Some(mut row) = tx.cl_role(org, id).await? else {
                    return Err(CoreError::not_found("role"));
                };
                let before = objects::role_object(&row);
                set(&mut row.name, name.clone());
                set(&mut row.reference, reference.clone());
                set(&mut row.reference_origin, reference_origin.clone());
                set(&mut row.metadata, metadata.clone());
                row.updated_at = now_ms();
                tx.update_cl_role(&row).await?;
                let after = objects::role_object(&row);
                record_version(tx, ctx, org, "update", Some(&before), Some(&after)).await?;
                audit::append(tx, Event::by(ctx, Some(org), "role.update", "role", id)).await?;
                Ok(row)
            })
            .await?;
        Ok(row)
    }

    pub async fn role(&self, ctx: &Ctx, id: &str) -> Result<RoleRow> {
        let org = organization(ctx, Access::Read)?;
        check_id(id)?;
        self.ensure_base_roles(org).await?;
        let mut conn = self.kernel.store().conn().await?;
        conn.cl_role(org, id).await?.ok_or_else(not_found)
    }

    pub async fn roles(&self, ctx: &Ctx, query: &ListQuery) -> Result<(Vec<RoleRow>, i64)> {
        let org = organization(ctx, Access::Read)?;
        self.ensure_base_roles(org).await?;
        let mut conn = self.kernel.store().conn().await?;
        Ok(conn.cl_roles_page(org, query).await?)
    }

    /// Roles of `org` by id, for `include` (unknown ids are skipped).
    pub async fn roles_by_id(&self, org: &str, ids: &[&str]) -> Result<Vec<RoleRow>> {
        let mut conn = self.kernel.store().conn().await?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids.iter().filter(|id| check_id(id).is_ok()) {
            rows.extend(conn.cl_role(org, id).await?);
        }
        Ok(rows)
    }

    // --- organizations -----------------------------------------------------------------------

    /// Who sees which organizations: a server admin all, an organization token its own.
    fn organization_scope(ctx: &Ctx) -> Result<Option<&str>> {
        if ctx.principal.is_server_admin() {
            Ok(None)
        } else {
            organization(ctx, Access::Read).map(Some)
        }
    }

    pub async fn organizations(
        &self,
        ctx: &Ctx,
        query: &ListQuery,
    ) -> Result<(Vec<ClOrganizationRow>, i64)> {
        let only = Self::organization_scope(ctx)?;
        let mut conn = self.kernel.store().conn().await?;
        Ok(conn.cl_organizations_page(only, query).await?)
    }

    /// An organization by id, for `include` (the caller's own).
    pub(super) async fn organization_row(&self, id: &str) -> Result<Option<ClOrganizationRow>> {
        let mut conn = self.kernel.store().conn().await?;
        Ok(conn.cl_organization(id).await?)
    }

    pub async fn organization(&self, ctx: &Ctx, id: &str) -> Result<ClOrganizationRow> {
        if Self::organization_scope(ctx)?.is_some_and(|own| own != id) {
            return Err(not_found());
        }
        check_id(id)?;
        self.organization_row(id).await?.ok_or_else(not_found)
    }
}
