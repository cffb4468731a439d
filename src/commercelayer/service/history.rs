//! The change history (`versions`): written in the same transaction as each change of a
//! role, permission or api credential, and read back.

use super::*;

/// Versions kept per resource (the newest).
const MAX_VERSIONS_PER_RESOURCE: i64 = 100;

/// Who made a change, as `versions` show it.
fn who(ctx: &Ctx) -> Value {
    let p = &ctx.principal;
    match p.kind {
        PrincipalKind::ApiKey => {
            json!({ "application": { "id": p.id, "kind": USER_KIND, "public": false } })
        }
        PrincipalKind::ManagementToken => {
            json!({ "management_token": { "id": p.id, "role": p.role.as_str() } })
        }
    }
}

/// Records a change of `object` (from `before` to `after`) in the organization's history.
pub(super) async fn record_version(
    tx: &mut crate::store::Tx,
    ctx: &Ctx,
    org: &str,
    event: &str,
    before: Option<&Object>,
    after: Option<&Object>,
) -> crate::kernel::Result<()> {
    let Some(object) = after.or(before) else {
        return Ok(());
    };
    let (before, after) = (
        before.map(objects::comparable),
        after.map(objects::comparable),
    );
    let changes = objects::changes(before.as_ref(), after.as_ref());
    if event == "update" && changes.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let row = VersionRow {
        id: random_base62(ID_LEN)?,
        organization_id: org.to_owned(),
        resource_type: object.kind.to_owned(),
        resource_id: object.id.clone(),
        event: event.to_owned(),
        changes: Value::Object(changes).to_string(),
        who: who(ctx).to_string(),
        created_at: now,
        updated_at: now,
    };
    tx.insert_cl_version(&row).await?;
    // Bounded: a resource changed over and over keeps its recent history only.
    Ok(tx
        .trim_cl_versions(&row.resource_id, MAX_VERSIONS_PER_RESOURCE)
        .await?)
}

impl CommerceLayer {
    pub async fn versions(&self, ctx: &Ctx, query: &ListQuery) -> Result<(Vec<VersionRow>, i64)> {
        let org = organization(ctx, Access::Read)?;
        let mut conn = self.kernel.store().conn().await?;
        Ok(conn.cl_versions_page(org, query).await?)
    }

    pub async fn version(&self, ctx: &Ctx, id: &str) -> Result<VersionRow> {
        let org = organization(ctx, Access::Read)?;
        check_id(id)?;
        let mut conn = self.kernel.store().conn().await?;
        conn.cl_version(org, id).await?.ok_or_else(not_found)
    }
}
