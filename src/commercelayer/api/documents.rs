//! The request documents of the Provisioning API's writes, as OpenAPI schemas: `data` with
//! the resource's `type`, its `id` on updates, the attributes the service accepts (and no
//! others: unknown ones are refused) and its relationships. Built from the same attribute lists
//! the service checks, so the two cannot drift.

use serde_json::{Value, json};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, OpenApi, Required, request_body::RequestBodyBuilder,
};

use super::super::{
    jsonapi::MEDIA_TYPE,
    model::{CORE_KINDS, FORK_KINDS, MAX_EXPIRES_IN, MIN_EXPIRES_IN},
    service::{
        CREDENTIAL_CREATE, CREDENTIAL_UPDATE, PERMISSION_CREATE, PERMISSION_UPDATE,
        ROLE_ATTRIBUTES, organization_attributes,
    },
};

/// A write: its path and method, the resource type, the attributes it accepts (those it
/// requires), and its relationships (`(name, type, required)`).
struct Write {
    path: &'static str,
    method: HttpMethod,
    kind: &'static str,
    attributes: Vec<&'static str>,
    required: &'static [&'static str],
    relationships: &'static [(&'static str, &'static str, bool)],
}

fn writes() -> Vec<Write> {
    vec![
        Write {
            path: "/api/api_credentials",
            method: HttpMethod::Post,
            kind: "api_credentials",
            attributes: CREDENTIAL_CREATE.to_vec(),
            required: &["name", "kind"],
            relationships: &[
                ("organization", "organizations", true),
                ("role", "roles", false),
            ],
        },
        Write {
            path: "/api/api_credentials/{id}",
            method: HttpMethod::Patch,
            kind: "api_credentials",
            attributes: CREDENTIAL_UPDATE.to_vec(),
            required: &[],
            relationships: &[("role", "roles", false)],
        },
        Write {
            path: "/api/roles",
            method: HttpMethod::Post,
            kind: "roles",
            attributes: ROLE_ATTRIBUTES.to_vec(),
            required: &["name"],
            relationships: &[("organization", "organizations", true)],
        },
        Write {
            path: "/api/roles/{id}",
            method: HttpMethod::Patch,
            kind: "roles",
            attributes: ROLE_ATTRIBUTES.to_vec(),
            required: &[],
            relationships: &[],
        },
        Write {
            path: "/api/organizations",
            method: HttpMethod::Post,
            kind: "organizations",
            attributes: organization_attributes(true),
            required: &["name"],
            relationships: &[],
        },
        Write {
            path: "/api/organizations/{id}",
            method: HttpMethod::Patch,
            kind: "organizations",
            attributes: organization_attributes(false),
            required: &[],
            relationships: &[],
        },
        Write {
            path: "/api/permissions",
            method: HttpMethod::Post,
            kind: "permissions",
            attributes: PERMISSION_CREATE.to_vec(),
            required: &[
                "subject",
                "can_create",
                "can_read",
                "can_update",
                "can_destroy",
            ],
            relationships: &[("role", "roles", true)],
        },
        Write {
            path: "/api/permissions/{id}",
            method: HttpMethod::Patch,
            kind: "permissions",
            attributes: PERMISSION_UPDATE.to_vec(),
            required: &[],
            relationships: &[],
        },
    ]
}

/// The schema of one attribute, by its name (Commerce Layer's names carry their types).
fn attribute(name: &str) -> Value {
    match name {
        "name" => serde_json::to_value(crate::kernel::types::name_schema()).unwrap_or_default(),
        "metadata" | "config" => json!({ "type": ["object", "null"] }),
        "custom" => json!({ "type": ["boolean", "null"] }),
        "can_create" | "can_read" | "can_update" | "can_destroy" => json!({ "type": "boolean" }),
        "expires_in" => json!({
            "type": ["integer", "null"], "minimum": MIN_EXPIRES_IN, "maximum": MAX_EXPIRES_IN
        }),
        "kind" => {
            json!({ "type": "string", "enum": CORE_KINDS.iter().chain(FORK_KINDS).collect::<Vec<_>>() })
        }
        "mode" => json!({ "type": ["string", "null"], "enum": ["test", "live", null] }),
        "region" => json!({ "type": ["string", "null"], "enum": ["eu-west-1", "us-east-1", null] }),
        "subject" => json!({ "type": "string", "pattern": "^[a-z0-9_]{1,64}$" }),
        _ => json!({ "type": ["string", "null"] }),
    }
}

fn document(write: &Write) -> Value {
    let attributes: serde_json::Map<String, Value> = write
        .attributes
        .iter()
        .map(|name| ((*name).to_owned(), attribute(name)))
        .collect();
    let relationships: serde_json::Map<String, Value> = write
        .relationships
        .iter()
        .map(|(name, kind, required)| {
            let identifier = json!({
                "type": "object",
                "required": ["type", "id"],
                "properties": {
                    "type": { "type": "string", "enum": [kind] },
                    "id": { "type": "string" },
                },
            });
            // An optional relationship may be set to null (none).
            let data = if *required {
                identifier
            } else {
                json!({ "oneOf": [identifier, { "type": "null" }] })
            };
            (
                (*name).to_owned(),
                json!({ "type": "object", "required": ["data"], "properties": { "data": data } }),
            )
        })
        .collect();
    let required_relationships: Vec<&str> = write
        .relationships
        .iter()
        .filter(|(_, _, required)| *required)
        .map(|(name, _, _)| *name)
        .collect();
    let updating = write.method == HttpMethod::Patch;
    let mut data = json!({
        "type": "object",
        "required": if updating { json!(["type", "id"]) } else { json!(["type", "attributes"]) },
        "properties": {
            "type": { "type": "string", "enum": [write.kind] },
            "attributes": {
                "type": "object",
                "required": write.required,
                "properties": attributes,
                "additionalProperties": false,
            },
            "relationships": {
                "type": "object",
                "required": required_relationships,
                "properties": relationships,
                "additionalProperties": false,
            },
        },
    });
    if updating {
        data["properties"]["id"] = json!({ "type": "string", "description": "The id in the path" });
    }
    if !required_relationships.is_empty()
        && let Some(required) = data["required"].as_array_mut()
    {
        required.push(json!("relationships"));
    }
    json!({ "type": "object", "required": ["data"], "properties": { "data": data } })
}

/// Gives each write of `doc` its request document.
pub fn document_writes(doc: &mut OpenApi) {
    for write in writes() {
        let Some(item) = doc.paths.paths.get_mut(write.path) else {
            continue;
        };
        let operation = match write.method {
            HttpMethod::Post => item.post.as_mut(),
            _ => item.patch.as_mut(),
        };
        let Some(operation) = operation else {
            continue;
        };
        let schema = match serde_json::from_value(document(&write)) {
            Ok(schema) => schema,
            // A programming error the tests catch; the route stays undocumented meanwhile.
            Err(e) => {
                tracing::error!(path = write.path, error = %e, "request document schema");
                continue;
            }
        };
        operation.request_body = Some(
            RequestBodyBuilder::new()
                .content(
                    MEDIA_TYPE,
                    ContentBuilder::new()
                        .schema(Some::<utoipa::openapi::RefOr<utoipa::openapi::Schema>>(
                            schema,
                        ))
                        .build(),
                )
                .required(Some(Required::True))
                .build(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_is_documented_with_its_resource_type() {
        let mut doc = super::super::super::openapi();
        document_writes(&mut doc);
        for write in writes() {
            let item = &doc.paths.paths[write.path];
            let op = match write.method {
                HttpMethod::Post => item.post.as_ref(),
                _ => item.patch.as_ref(),
            }
            .unwrap();
            let body = serde_json::to_value(op.request_body.as_ref().unwrap()).unwrap();
            let data = &body["content"][MEDIA_TYPE]["schema"]["properties"]["data"];
            assert_eq!(
                data["properties"]["type"]["enum"][0], write.kind,
                "{}",
                write.path
            );
        }
    }
}
