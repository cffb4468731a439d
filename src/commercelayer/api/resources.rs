//! What each resource's lists may do: its fields (filterable, sortable, as Commerce Layer's
//! resource definitions mark them), its includes and attributes, and the query-string
//! checks every route shares.

use axum::http::Uri;

use super::super::{
    jsonapi::{Result, not_allowed},
    query::{self, Field, FieldType::*, ListQuery, Resource},
};
use crate::kernel::http::error::ApiError;

const fn field(
    name: &'static str,
    ty: query::FieldType,
    filterable: bool,
    sortable: bool,
) -> Field {
    Field {
        name,
        column: name,
        ty,
        filterable,
        sortable,
    }
}

/// What every resource has.
macro_rules! common_fields {
    () => {
        [
            field("id", Text, true, true),
            field("created_at", Time, true, true),
            field("updated_at", Time, true, true),
            field("reference", Text, true, true),
            field("reference_origin", Text, true, true),
            field("metadata", Json, true, false),
        ]
    };
}

pub(super) static CREDENTIALS: Resource = Resource {
    kind: "api_credentials",
    fields: &{
        let [a, b, c, d, e, f] = common_fields!();
        [
            a,
            b,
            c,
            d,
            e,
            f,
            field("name", Text, true, false),
            field("kind", Text, true, false),
            field("confidential", Bool, true, false),
            field("redirect_uri", Text, true, false),
            field("client_id", Text, true, false),
            field("scopes", Text, true, false),
            field("expires_in", Int, true, false),
            field("mode", Text, true, true),
            field("custom", Bool, true, false),
            field("organization_id", Text, true, false),
            field("role_id", Text, true, false),
        ]
    },
    includes: &[("organization", "organizations"), ("role", "roles")],
};
const CREDENTIAL_ATTRIBUTES: &[&str] = &[
    "name",
    "kind",
    "confidential",
    "redirect_uri",
    "client_id",
    "client_secret",
    "scopes",
    "expires_in",
    "mode",
    "custom",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
];

pub(super) static ROLES: Resource = Resource {
    kind: "roles",
    fields: &{
        let [a, b, c, d, e, f] = common_fields!();
        [
            a,
            b,
            c,
            d,
            e,
            f,
            field("name", Text, true, false),
            field("kind", Text, true, false),
            field("organization_id", Text, true, false),
        ]
    },
    includes: &[("organization", "organizations")],
};
const ROLE_ATTRIBUTES: &[&str] = &[
    "name",
    "kind",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
];

pub(super) static ORGANIZATIONS: Resource = Resource {
    kind: "organizations",
    fields: &[
        field("id", Text, true, true),
        field("name", Text, true, true),
        field("slug", Text, true, true),
        field("created_at", Time, true, true),
        Field {
            // What the response shows: the last change of its Commerce Layer attributes,
            // else its creation.
            name: "updated_at",
            column: "COALESCE(updated_at, created_at)",
            ty: Time,
            filterable: true,
            sortable: true,
        },
    ],
    includes: &[],
};
const ORGANIZATION_ATTRIBUTES: &[&str] = &[
    "name",
    "slug",
    "domain",
    "support_phone",
    "support_email",
    "logo_url",
    "favicon_url",
    "primary_color",
    "contrast_color",
    "gtm_id",
    "gtm_id_test",
    "region",
    "can_switch_live",
    "subscription_info",
    "config",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
];

pub(super) static PERMISSIONS: Resource = Resource {
    kind: "permissions",
    fields: &{
        let [a, b, c, d, e, f] = common_fields!();
        [
            a,
            b,
            c,
            d,
            e,
            f,
            field("can_create", Bool, true, false),
            field("can_read", Bool, true, false),
            field("can_update", Bool, true, false),
            field("can_destroy", Bool, true, false),
            field("subject", Text, true, false),
            field("organization_id", Text, true, false),
            field("role_id", Text, true, false),
        ]
    },
    includes: &[("organization", "organizations"), ("role", "roles")],
};
const PERMISSION_ATTRIBUTES: &[&str] = &[
    "can_create",
    "can_read",
    "can_update",
    "can_destroy",
    "subject",
    "restrictions",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
];

pub(super) static VERSIONS: Resource = Resource {
    kind: "versions",
    fields: &[
        field("id", Text, true, true),
        field("created_at", Time, true, true),
        field("updated_at", Time, true, true),
        field("resource_type", Text, true, true),
        field("resource_id", Text, true, false),
        field("event", Text, true, true),
    ],
    includes: &[],
};
const VERSION_ATTRIBUTES: &[&str] = &[
    "resource_type",
    "resource_id",
    "event",
    "changes",
    "who",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
];

pub(super) fn attributes_of(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "api_credentials" => Some(CREDENTIAL_ATTRIBUTES),
        "roles" => Some(ROLE_ATTRIBUTES),
        "organizations" => Some(ORGANIZATION_ATTRIBUTES),
        "permissions" => Some(PERMISSION_ATTRIBUTES),
        "versions" => Some(VERSION_ATTRIBUTES),
        _ => None,
    }
}

/// A list's query string, checked against `resource`.
pub(super) fn list_query(uri: &Uri, resource: &'static Resource) -> Result<ListQuery> {
    Ok(
        query::parse(uri.query().unwrap_or_default(), resource, attributes_of)
            .map_err(ApiError::from)?,
    )
}

/// A single resource's query string: `include` and `fields[…]` only.
pub(super) fn single_query(uri: &Uri, resource: &'static Resource) -> Result<ListQuery> {
    let raw = uri.query().unwrap_or_default();
    for (name, _) in form_urlencoded::parse(raw.as_bytes()) {
        if name != "include" && !name.starts_with("fields[") {
            return Err(not_allowed(&name).into());
        }
    }
    list_query(uri, resource)
}
