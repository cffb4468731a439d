//! Permissions of custom roles: what a role may do on one subject.

use super::*;

const PERMISSION_FLAGS: &[&str] = &["can_create", "can_read", "can_update", "can_destroy"];
pub(crate) const PERMISSION_CREATE: &[&str] = &[
    "can_create",
    "can_read",
    "can_update",
    "can_destroy",
    "subject",
    "reference",
    "reference_origin",
    "metadata",
];
pub(crate) const PERMISSION_UPDATE: &[&str] = &[
    "can_create",
    "can_read",
    "can_update",
    "can_destroy",
    "reference",
    "reference_origin",
    "metadata",
];
/// Longest permission subject (a resource type such as `orders`).
const MAX_SUBJECT_CHARS: usize = 64;

fn flag(input: &ResourceInput, name: &str) -> Result<Option<bool>> {
    match input.attribute::<bool>(name, "a boolean")? {
        Some(None) => Err(invalid(name, "can't be blank")),
        other => Ok(other.flatten()),
    }
}

impl CommerceLayer {
    /// Adds a permission to a custom role (organization admins). The base roles' rights are
    /// fixed: `admin` may do everything, `read_only` read.
    pub async fn create_permission(
        &self,
        ctx: &Ctx,
        input: &ResourceInput,
    ) -> Result<PermissionRow> {
        input.expect("permissions", None)?;
        input.allow_only(PERMISSION_CREATE, &["role"])?;
        let org = organization(ctx, Access::Admin)?;
        let role = match input.relationship("role", "roles")?.flatten() {
            Some(id) => self.role_of(org, &id, "role").await?,
            None => return Err(invalid("role", "can't be blank")),
        };
        if role.kind != "custom" {
            return Err(invalid(
                "role",
                "must be a custom role (admin and read_only rights are fixed)",
            ));
        }
        let subject = match input.attribute::<String>("subject", "a string")?.flatten() {
            Some(s)
                if !s.is_empty()
                    && s.len() <= MAX_SUBJECT_CHARS
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
            {
                s
            }
            Some(_) => {
                return Err(invalid(
                    "subject",
                    "must be a resource type in snake_case (e.g. orders)",
                ));
            }
            None => return Err(invalid("subject", "can't be blank")),
        };
        let mut flags = [false; 4];
        for (slot, name) in flags.iter_mut().zip(PERMISSION_FLAGS) {
            *slot = flag(input, name)?.ok_or_else(|| invalid(*name, "can't be blank"))?;
        }
        let now = now_ms();
        let row = PermissionRow {
            id: random_base62(ID_LEN)?,
            organization_id: org.to_owned(),
            role_id: role.id,
            subject,
            can_create: flags[0],
            can_read: flags[1],
            can_update: flags[2],
            can_destroy: flags[3],
            reference: text(input, "reference", MAX_REFERENCE_CHARS)?.flatten(),
            reference_origin: text(input, "reference_origin", MAX_REFERENCE_CHARS)?.flatten(),
            metadata: metadata(input)?.flatten(),
            created_at: now,
            updated_at: now,
        };
        self.kernel
            .write(async |tx| {
                match tx.insert_cl_permission(&row).await {
                    Err(crate::store::StoreError::Conflict(_)) => {
                        return Err(CoreError::invalid(
                            "subject",
                            "has already been taken for this role",
                        ));
                    }
                    other => other?,
                }
                let object = objects::permission_object(&row);
                record_version(tx, ctx, org, "create", None, Some(&object)).await?;
                audit::append(
                    tx,
                    Event::by(ctx, Some(org), "permission.create", "permission", &row.id),
                )
                .await?;
                Ok(())
            })
            .await?;
        Ok(row)
    }

    pub async fn update_permission(
        &self,
        ctx: &Ctx,
        id: &str,
        input: &ResourceInput,
    ) -> Result<PermissionRow> {
        input.expect("permissions", Some(id))?;
        input.allow_only(PERMISSION_UPDATE, &[])?;
        let org = organization(ctx, Access::Admin)?;
        check_id(id)?;
        let flags: Vec<Option<bool>> = PERMISSION_FLAGS
            .iter()
            .map(|name| flag(input, name))
            .collect::<Result<_>>()?;
        let reference = text(input, "reference", MAX_REFERENCE_CHARS)?;
        let reference_origin = text(input, "reference_origin", MAX_REFERENCE_CHARS)?;
        let metadata = metadata(input)?;
        let row = self
            .kernel
            .write(async |tx| {
                tx.lock_cl_row(Locked::Permission, org, id).await?;
                let Some(mut row) = tx.cl_permission(org, id).await? else {
                    return Err(CoreError::not_found("permission"));
                };
                let before = objects::permission_object(&row);
                set(&mut row.can_create, flags[0]);
                set(&mut row.can_read, flags[1]);
                set(&mut row.can_update, flags[2]);
                set(&mut row.can_destroy, flags[3]);
                set(&mut row.reference, reference.clone());
                set(&mut row.reference_origin, reference_origin.clone());
                set(&mut row.metadata, metadata.clone());
                row.updated_at = now_ms();
                tx.update_cl_permission(&row).await?;
                let after = objects::permission_object(&row);
                record_version(tx, ctx, org, "update", Some(&before), Some(&after)).await?;
                audit::append(
                    tx,
                    Event::by(ctx, Some(org), "permission.update", "permission", id),
                )
                .await?;
                Ok(row)
            })
            .await?;
        Ok(row)
    }

    pub async fn permission(&self, ctx: &Ctx, id: &str) -> Result<PermissionRow> {
        let org = organization(ctx, Access::Read)?;
        check_id(id)?;
        let mut conn = self.kernel.store().conn().await?;
        conn.cl_permission(org, id).await?.ok_or_else(not_found)
    }

    pub async fn permissions(
        &self,
        ctx: &Ctx,
        query: &ListQuery,
    ) -> Result<(Vec<PermissionRow>, i64)> {
        let org = organization(ctx, Access::Read)?;
        let mut conn = self.kernel.store().conn().await?;
        Ok(conn.cl_permissions_page(org, query).await?)
    }
}
