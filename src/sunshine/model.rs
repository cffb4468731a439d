//! Sunshine's wire types: display names, key scopes, app/integration/key views and inputs,
//! and whose keys a call is about ([`Owner`]).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::store::{AppRow, IntegrationRow, KeyRow};
use crate::kernel::types::{
    DomainError, check_visible_text, string_serde, visible_text_schema, wire_enum,
};

/// A Sunshine display name (apps and keys): 1..=100 characters, not blank, no control or
/// format characters. Kept as given (Sunshine echoes it back unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(s: &str) -> Result<DisplayName, DomainError> {
        check_visible_text("displayName", s, Self::MAX_CHARS)?;
        Ok(DisplayName(s.to_owned()))
    }

    /// Its OpenAPI schema.
    pub fn schema() -> utoipa::openapi::Object {
        visible_text_schema(Self::MAX_CHARS, false)
    }

    /// Its OpenAPI schema in an update, where null leaves it as it is.
    pub fn update_schema() -> utoipa::openapi::Object {
        visible_text_schema(Self::MAX_CHARS, true)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_serde!(DisplayName, DisplayName::parse);

wire_enum!(
    /// What a Sunshine API key may reach: the whole organization, one app, or one integration.
    KeyScope, field = "scope", {
        Account = "account",
        App = "app",
        Integration = "integration",
    }
);

impl KeyScope {
    /// The prefix of this scope's key ids (`act_`, `app_`, `int_`), followed by 24 hex digits.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Self::Account => "act_",
            Self::App => "app_",
            Self::Integration => "int_",
        }
    }

    /// The scope a key id claims, if it has the shape of one (a cheap check before any lookup).
    pub fn of_key_id(id: &str) -> Option<KeyScope> {
        let scope = Self::ALL
            .iter()
            .copied()
            .find(|s| id.starts_with(s.id_prefix()))?;
        let hex = &id[4..];
        (hex.len() == 24 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then_some(scope)
    }
}

// --- views and inputs ----------------------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppInput {
    /// 1–100 characters; required on create.
    #[schema(schema_with = DisplayName::update_schema)]
    pub display_name: Option<String>,
    /// Merged into the app's settings.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// A flat object of at most 4 KiB, or null (which clears it on update).
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = metadata_schema)]
    pub metadata: Option<Value>,
}

/// The body of `POST /v2/apps`: an app's fields, `displayName` required.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewApp {
    #[schema(schema_with = DisplayName::schema, required = true)]
    pub display_name: Option<String>,
    /// Merged into the default settings.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// A flat object of at most 4 KiB.
    #[schema(schema_with = metadata_schema)]
    pub metadata: Option<Value>,
}

impl From<NewApp> for AppInput {
    fn from(app: NewApp) -> Self {
        Self {
            display_name: app.display_name,
            settings: app.settings,
            metadata: app.metadata,
        }
    }
}

/// A flat object (string, number, boolean or null values), or null.
fn metadata_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type, schema::SchemaType};
    let value = ObjectBuilder::new().schema_type(SchemaType::from_iter([
        Type::String,
        Type::Number,
        Type::Boolean,
        Type::Null,
    ]));
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .additional_properties(Some(value))
        .build()
}

/// `Some` for any value that is present, `null` included (so an update can clear a field).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    pub id: String,
    pub display_name: String,
    #[schema(value_type = Object)]
    pub settings: Value,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

impl From<AppRow> for AppView {
    fn from(r: AppRow) -> Self {
        Self {
            id: r.id,
            display_name: r.display_name,
            settings: serde_json::from_str(&r.settings).unwrap_or_else(|_| json!({})),
            metadata: r.metadata.and_then(|m| serde_json::from_str(&m).ok()),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyInput {
    /// 1–100 characters.
    #[schema(schema_with = DisplayName::schema, required = true)]
    pub display_name: Option<String>,
}

/// A key as read: never its secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    pub id: String,
    pub display_name: String,
}

impl From<KeyRow> for KeyView {
    fn from(r: KeyRow) -> Self {
        Self {
            id: r.id,
            display_name: r.display_name,
        }
    }
}

/// `{"key": …}`: how every key route answers one key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyEnvelope<T: utoipa::ToSchema> {
    pub key: T,
}

/// The response that creates a key: the only place its secret ever appears.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    pub id: String,
    pub display_name: String,
    #[serde(serialize_with = "crate::crypto::secret::expose::secret")]
    #[schema(value_type = String)]
    pub secret: SecretString,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// An integration: `id`, `type`, `status`, `displayName` and the type's public fields
/// (a custom integration's `webhooks`). Channel secrets of other types are never shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub display_name: Option<String>,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

impl From<IntegrationRow> for IntegrationView {
    fn from(r: IntegrationRow) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            status: r.status,
            display_name: r.display_name,
            fields: serde_json::from_str(&r.config).unwrap_or_default(),
        }
    }
}

/// Whose keys: the organization's account keys, an app's, or a custom integration's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    Account,
    App(&'a str),
    Integration(&'a str, &'a str),
}

impl<'a> Owner<'a> {
    /// (scope, app id, integration id) as stored.
    pub(super) fn parts(self) -> (KeyScope, Option<&'a str>, Option<&'a str>) {
        match self {
            Self::Account => (KeyScope::Account, None, None),
            Self::App(app) => (KeyScope::App, Some(app), None),
            Self::Integration(app, integration) => {
                (KeyScope::Integration, Some(app), Some(integration))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        assert_eq!(
            DisplayName::parse("My custom key").unwrap().as_str(),
            "My custom key"
        );
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        for bad in ["", "   ", "a\nb"] {
            assert_eq!(DisplayName::parse(bad).unwrap_err().field, "displayName");
        }
        assert!(DisplayName::parse(&"x".repeat(101)).is_err());
    }

    #[test]
    fn key_ids_name_their_scope() {
        let hex = "5e4b0f225aca01092928f917";
        assert_eq!(
            KeyScope::of_key_id(&format!("int_{hex}")),
            Some(KeyScope::Integration)
        );
        assert_eq!(
            KeyScope::of_key_id(&format!("app_{hex}")),
            Some(KeyScope::App)
        );
        assert_eq!(
            KeyScope::of_key_id(&format!("act_{hex}")),
            Some(KeyScope::Account)
        );
        for bad in [
            "int_",
            "xyz_5e4b0f225aca01092928f917",
            "app_5E4B0F225ACA01092928F917",
            "app_5e4b0f225aca01092928f91",
        ] {
            assert_eq!(KeyScope::of_key_id(bad), None, "{bad}");
        }
        assert_eq!(KeyScope::of_key_id("app_5e4b0f225aca01092928f9é"), None);
    }
}
