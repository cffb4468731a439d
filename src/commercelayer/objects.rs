//! How each resource looks on the wire: its attributes and relationships, as JSON:API
//! resource objects (rendered by `api`) and as the attribute maps the change history
//! (`versions`) compares.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::{
    jsonapi::{Object, ToOne},
    store::{ApiCredentialRow, ClOrganizationRow, PermissionRow, RoleRow, VersionRow},
};
use crate::kernel::iso8601;

fn common(
    m: &mut Map<String, Value>,
    created_at: i64,
    updated_at: i64,
    reference: &Option<String>,
    reference_origin: &Option<String>,
    metadata: &Option<String>,
) {
    m.insert("created_at".into(), json!(iso8601(created_at)));
    m.insert("updated_at".into(), json!(iso8601(updated_at)));
    m.insert("reference".into(), json!(reference));
    m.insert("reference_origin".into(), json!(reference_origin));
    let metadata = metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Value>(m).ok())
        .unwrap_or_else(|| json!({}));
    m.insert("metadata".into(), metadata);
}

/// An api credential; `client_secret` only in the response that creates it.
pub fn credential_object(r: &ApiCredentialRow, secret: Option<&SecretString>) -> Object {
    let mut a = Map::new();
    a.insert("name".into(), json!(r.name));
    a.insert("kind".into(), json!(r.kind));
    a.insert("confidential".into(), json!(r.confidential));
    a.insert("redirect_uri".into(), json!(r.redirect_uri));
    a.insert("client_id".into(), json!(r.client_id));
    if let Some(secret) = secret {
        a.insert("client_secret".into(), json!(secret.expose_secret()));
    }
    a.insert("scopes".into(), json!(r.scopes));
    a.insert("expires_in".into(), json!(r.expires_in));
    a.insert("mode".into(), json!(r.mode));
    a.insert("custom".into(), json!(r.custom));
    common(
        &mut a,
        r.created_at,
        r.updated_at,
        &r.reference,
        &r.reference_origin,
        &r.metadata,
    );
    Object {
        kind: "api_credentials",
        id: r.id.clone(),
        attributes: a,
        to_one: vec![
            ToOne {
                name: "organization",
                related: Some(("organizations", r.organization_id.clone())),
            },
            ToOne {
                name: "role",
                related: r.role_id.clone().map(|id| ("roles", id)),
            },
        ],
        to_many: &[],
    }
}

pub fn role_object(r: &RoleRow) -> Object {
    let mut a = Map::new();
    a.insert("name".into(), json!(r.name));
    a.insert("kind".into(), json!(r.kind));
    common(
        &mut a,
        r.created_at,
        r.updated_at,
        &r.reference,
        &r.reference_origin,
        &r.metadata,
    );
    Object {
        kind: "roles",
        id: r.id.clone(),
        attributes: a,
        to_one: vec![ToOne {
            name: "organization",
            related: Some(("organizations", r.organization_id.clone())),
        }],
        to_many: &["permissions", "api_credentials"],
    }
}

/// An organization: its name and slug, and the Commerce Layer attributes it was given
/// (the others as Commerce Layer's defaults). `domain` is made from `host`.
pub fn organization_object(r: &ClOrganizationRow, host: &str) -> Object {
    let stored: Map<String, Value> = r
        .attributes
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let mut a = Map::new();
    a.insert("name".into(), json!(r.name));
    a.insert("slug".into(), json!(r.slug));
    a.insert("domain".into(), json!(format!("{}.{host}", r.slug)));
    for name in [
        "support_phone",
        "support_email",
        "logo_url",
        "favicon_url",
        "primary_color",
        "contrast_color",
        "gtm_id",
        "gtm_id_test",
        "config",
        "reference",
        "reference_origin",
    ] {
        a.insert(
            name.into(),
            stored.get(name).cloned().unwrap_or(Value::Null),
        );
    }
    a.insert(
        "region".into(),
        stored
            .get("region")
            .cloned()
            .unwrap_or_else(|| json!("eu-west-1")),
    );
    a.insert("can_switch_live".into(), json!(true));
    a.insert("subscription_info".into(), Value::Null);
    a.insert(
        "metadata".into(),
        stored
            .get("metadata")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({})),
    );
    a.insert("created_at".into(), json!(iso8601(r.created_at)));
    a.insert(
        "updated_at".into(),
        json!(iso8601(r.updated_at.unwrap_or(r.created_at))),
    );
    Object {
        kind: "organizations",
        id: r.id.clone(),
        attributes: a,
        to_one: vec![],
        to_many: &["roles", "permissions", "api_credentials"],
    }
}

/// A permission of a custom role.
pub fn permission_object(r: &PermissionRow) -> Object {
    let mut a = Map::new();
    a.insert("can_create".into(), json!(r.can_create));
    a.insert("can_read".into(), json!(r.can_read));
    a.insert("can_update".into(), json!(r.can_update));
    a.insert("can_destroy".into(), json!(r.can_destroy));
    a.insert("subject".into(), json!(r.subject));
    a.insert("restrictions".into(), Value::Null);
    common(
        &mut a,
        r.created_at,
        r.updated_at,
        &r.reference,
        &r.reference_origin,
        &r.metadata,
    );
    Object {
        kind: "permissions",
        id: r.id.clone(),
        attributes: a,
        to_one: vec![
            ToOne {
                name: "organization",
                related: Some(("organizations", r.organization_id.clone())),
            },
            ToOne {
                name: "role",
                related: Some(("roles", r.role_id.clone())),
            },
        ],
        to_many: &["versions"],
    }
}

/// An entry of the change history.
pub fn version_object(r: &VersionRow) -> Object {
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or_else(|_| json!({}));
    let mut a = Map::new();
    a.insert("resource_type".into(), json!(r.resource_type));
    a.insert("resource_id".into(), json!(r.resource_id));
    a.insert("event".into(), json!(r.event));
    a.insert("changes".into(), parse(&r.changes));
    a.insert("who".into(), parse(&r.who));
    common(&mut a, r.created_at, r.updated_at, &None, &None, &None);
    Object {
        kind: "versions",
        id: r.id.clone(),
        attributes: a,
        to_one: vec![],
        to_many: &[],
    }
}

/// What the change history compares of an object: its attributes and the ids of its to-one
/// relationships (`role_id`, …), so a role change is recorded like a name change.
pub fn comparable(o: &Object) -> Map<String, Value> {
    let mut map = o.attributes.clone();
    for rel in &o.to_one {
        let id = rel.related.as_ref().map(|(_, id)| id.clone());
        map.insert(format!("{}_id", rel.name), json!(id));
    }
    map
}

/// What changed between two attribute maps, as `{attribute: [old, new]}`: timestamps and
/// secrets are never part of it.
pub fn changes(
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    const SKIP: &[&str] = &["created_at", "updated_at", "client_secret"];
    let empty = Map::new();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !SKIP.contains(&k.as_str()))
        .filter_map(|k| {
            let (before, after) = (
                old.get(k).unwrap_or(&Value::Null),
                new.get(k).unwrap_or(&Value::Null),
            );
            (before != after).then(|| (k.clone(), json!([before, after])))
        })
        .collect()
}
