//! Sunshine Conversations: apps, integrations and API keys (account, app and integration
//! scoped), who may do what with them, and their verification on the hot path.
//!
//! A key is `{id, displayName, secret}`: the id names its scope by prefix (`act_`, `app_`,
//! `int_` + 24 hex), the secret is 32 random bytes in URL-safe base64, shown in the response
//! that creates it and never again. The secret is sealed at rest (HS256 verification needs it
//! back) and opened once into the key cache. Callers present a key as HTTP Basic
//! `id:secret` or as an HS256 JWT whose header `kid` is the key id and whose `scope` claim is
//! the key's scope.

use std::sync::{Arc, LazyLock};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    CoreError, Ctx, Latchkey, RequestMeta, Result,
    audit::{self, Event, Outcome},
    authn::{CredentialPrincipal, Presented, Verification},
    in_tx, now_ms,
    revocations::{self, Kind},
    tokens::{KeyGrant, Principal, Role},
    types::{DisplayName, KeyScope},
};
use crate::{
    crypto::{
        keyring::Aad,
        secret::{looks_like_management_token, random_hex, random_urlsafe_b64},
    },
    store::{AppRow, Cursor, IntegrationRow, KeyRow, Tx},
};

/// Keys per app (app keys) and per integration (integration keys).
pub const MAX_KEYS_PER_OWNER: usize = 10;
pub const DEFAULT_PAGE_SIZE: i64 = 25;
pub const MAX_PAGE_SIZE: i64 = 100;
/// Bytes of randomness in a key secret.
const SECRET_BYTES: usize = 32;
/// Largest `metadata` object, serialized.
const MAX_METADATA_BYTES: usize = 4096;
/// Seconds of clock skew tolerated on a JWT's `exp`.
const JWT_LEEWAY_SECONDS: u64 = 30;

/// The integration types Sunshine knows; only `custom` ones have webhooks and API keys.
pub const INTEGRATION_TYPES: &[&str] = &[
    "android",
    "apple",
    "custom",
    "instagram",
    "ios",
    "line",
    "mailgun",
    "messagebird",
    "messenger",
    "telegram",
    "twilio",
    "twitter",
    "unity",
    "viber",
    "web",
    "whatsapp",
];

/// A live key, as the hot path needs it.
pub struct LiveKey {
    pub organization_id: String,
    pub scope: KeyScope,
    pub app_id: Option<String>,
    pub integration_id: Option<String>,
    pub secret: SecretString,
}

impl std::fmt::Debug for LiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKey")
            .field("organization_id", &self.organization_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

// --- views and inputs ----------------------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppInput {
    /// 1–100 characters; required on create.
    pub display_name: Option<String>,
    /// Merged into the app's settings.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// A flat object of at most 4 KiB, or null (which clears it on update).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
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

/// The response that creates a key: the only place its secret ever appears.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    pub id: String,
    pub display_name: String,
    #[serde(serialize_with = "super::tokens::expose")]
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

/// Which page of a list: after or before an id, and how many.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub after: Option<String>,
    pub before: Option<String>,
    pub size: Option<i64>,
}

/// A page and where it sits (Sunshine's `meta`; the surface builds `links` from it).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
    /// A `page[after]` value for the next page, when there is one.
    pub next: Option<String>,
    /// A `page[before]` value for the previous page, when there is one.
    pub prev: Option<String>,
    pub after_cursor: Option<String>,
    pub before_cursor: Option<String>,
}

impl PageRequest {
    fn cursor(&self) -> Result<(Cursor<'_>, i64)> {
        let size = self.size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(CoreError::malformed(
                "page[size]",
                format!("page[size] must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        let cursor = match (&self.after, &self.before) {
            (Some(_), Some(_)) => {
                return Err(CoreError::malformed(
                    "page",
                    "page[after] and page[before] cannot be used together",
                ));
            }
            (Some(after), None) => Cursor::After(after),
            (None, Some(before)) => Cursor::Before(before),
            (None, None) => Cursor::After(""),
        };
        Ok((cursor, size))
    }

    /// Cuts `rows` (read with one extra row beyond the page) into a page.
    fn page<R, T: From<R>>(&self, mut rows: Vec<R>, size: i64, id: fn(&R) -> &str) -> Page<T> {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let has_more = rows.len() > size;
        let backwards = self.before.is_some();
        if has_more {
            // The extra row is the one furthest from the cursor.
            if backwards {
                rows.remove(0);
            } else {
                rows.truncate(size);
            }
        }
        let first = rows.first().map(|r| id(r).to_owned());
        let last = rows.last().map(|r| id(r).to_owned());
        let (next, prev) = if backwards {
            (
                last.clone().or(self.before.clone()),
                first.clone().filter(|_| has_more),
            )
        } else {
            (
                last.clone().filter(|_| has_more),
                first.clone().filter(|_| self.after.is_some()),
            )
        };
        Page {
            items: rows.into_iter().map(T::from).collect(),
            has_more,
            next,
            prev,
            after_cursor: last,
            before_cursor: first,
        }
    }
}

// --- who may do what -------------------------------------------------------------------------

/// What a call touches, for [`authorize`].
#[derive(Debug, Clone, Copy)]
enum Op<'a> {
    /// List or create apps.
    Apps {
        write: bool,
    },
    /// Read, update or delete one app.
    App {
        app: &'a str,
        write: bool,
        delete: bool,
    },
    /// Integrations of an app: all of them (`None`) or one.
    Integrations {
        app: &'a str,
        integration: Option<&'a str>,
        write: bool,
    },
    AppKeys,
    IntegrationKeys {
        app: &'a str,
    },
}

/// The organization the caller works in, if it may do `op`.
///
/// Management tokens: any organization token not bound to a team (viewers read only).
/// Account keys: everything in their organization. App keys: their own app, its
/// integrations and integration keys, but not app keys, other apps or deleting the app.
/// Integration keys: read their own app and integration, nothing else.
fn authorize<'p>(principal: &'p Principal, op: Op<'_>) -> Result<&'p str> {
    let org = principal.org()?;
    let Some(grant) = &principal.key else {
        if principal.team_id.is_some() {
            return Err(CoreError::forbidden(
                "a team-bound token cannot manage Sunshine apps",
            ));
        }
        let write = match op {
            Op::Apps { write } | Op::App { write, .. } | Op::Integrations { write, .. } => write,
            Op::AppKeys | Op::IntegrationKeys { .. } => true,
        };
        return if write {
            principal.org_for_write()
        } else {
            Ok(org)
        };
    };
    let own_app = |app: &str| grant.app_id.as_deref() == Some(app);
    let allowed = match (grant.scope, op) {
        (KeyScope::Account, _) => true,
        (KeyScope::App, Op::App { app, delete, .. }) => own_app(app) && !delete,
        (KeyScope::App, Op::Integrations { app, .. } | Op::IntegrationKeys { app }) => own_app(app),
        (KeyScope::Integration, Op::App { app, write, .. }) => own_app(app) && !write,
        (
            KeyScope::Integration,
            Op::Integrations {
                app,
                integration: Some(integration),
                write: false,
            },
        ) => own_app(app) && grant.integration_id.as_deref() == Some(integration),
        _ => false,
    };
    if allowed {
        Ok(org)
    } else {
        Err(CoreError::forbidden(format!(
            "an {}-scoped key cannot do this",
            grant.scope.as_str()
        )))
    }
}

// --- input checks ----------------------------------------------------------------------------

fn display_name(input: Option<&str>) -> Result<DisplayName> {
    let raw =
        input.ok_or_else(|| CoreError::malformed("displayName", "displayName is required"))?;
    Ok(DisplayName::parse(raw)?)
}

fn default_settings() -> Map<String, Value> {
    let Value::Object(map) = json!({
        "conversationRetentionSeconds": 0,
        "maskCreditCardNumbers": true,
        "useAnimalNames": false,
        "echoPostback": false,
        "ignoreAutoConversationStart": false,
        "multiConvoEnabled": false,
        "appLocalizationEnabled": false,
    }) else {
        return Map::new();
    };
    map
}

/// Merges `patch` into `settings`: known keys only, each of its own type.
fn merge_settings(settings: &mut Map<String, Value>, patch: &Value) -> Result<()> {
    let Some(patch) = patch.as_object() else {
        return Err(CoreError::malformed(
            "settings",
            "settings must be an object",
        ));
    };
    for (key, value) in patch {
        let ok = match key.as_str() {
            "conversationRetentionSeconds" => value.as_u64().is_some(),
            "maskCreditCardNumbers"
            | "useAnimalNames"
            | "echoPostback"
            | "ignoreAutoConversationStart"
            | "multiConvoEnabled"
            | "appLocalizationEnabled" => value.is_boolean(),
            _ => {
                return Err(CoreError::malformed(
                    format!("settings.{key}"),
                    format!("settings.{key} is not a known setting"),
                ));
            }
        };
        if !ok {
            return Err(CoreError::malformed(
                format!("settings.{key}"),
                format!("settings.{key} has the wrong type"),
            ));
        }
        settings.insert(key.clone(), value.clone());
    }
    Ok(())
}

/// `metadata`: a flat object (string, number or boolean values) of at most 4 KiB, or null.
fn metadata(value: &Value) -> Result<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::Object(map) => {
            if map.values().any(|v| v.is_object() || v.is_array()) {
                return Err(CoreError::malformed(
                    "metadata",
                    "metadata values must be strings, numbers or booleans",
                ));
            }
            let text = value.to_string();
            if text.len() > MAX_METADATA_BYTES {
                return Err(CoreError::malformed(
                    "metadata",
                    format!("metadata must be at most {MAX_METADATA_BYTES} bytes"),
                ));
            }
            Ok(Some(text))
        }
        _ => Err(CoreError::malformed(
            "metadata",
            "metadata must be an object",
        )),
    }
}

/// A custom integration's one webhook: `target` (an https or http URL) and `triggers`.
fn webhook(value: &Value) -> Result<Value> {
    let Some(hook) = value.as_object() else {
        return Err(CoreError::malformed(
            "webhooks[0]",
            "a webhook must be an object",
        ));
    };
    let target = hook.get("target").and_then(Value::as_str).ok_or_else(|| {
        CoreError::malformed("webhooks[0].target", "webhooks[0].target is required")
    })?;
    super::types::HttpUrl::parse(target, "webhooks[0].target")?;
    let triggers: Option<Vec<&str>> = hook
        .get("triggers")
        .and_then(Value::as_array)
        .filter(|list| !list.is_empty())
        .and_then(|list| list.iter().map(Value::as_str).collect());
    let Some(triggers) = triggers else {
        return Err(CoreError::malformed(
            "webhooks[0].triggers",
            "webhooks[0].triggers must be a non-empty list of trigger names",
        ));
    };
    let flag = |name: &str| -> Result<bool> {
        match hook.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(CoreError::malformed(
                format!("webhooks[0].{name}"),
                format!("webhooks[0].{name} must be a boolean"),
            )),
        }
    };
    Ok(json!({
        "id": object_id()?,
        "version": "v2",
        "target": target,
        "triggers": triggers,
        "includeFullUser": flag("includeFullUser")?,
        "includeFullSource": flag("includeFullSource")?,
    }))
}

/// Whether a channel setting's name says it holds a secret (tokens, keys, passwords).
fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["secret", "token", "password", "key", "credential"]
        .iter()
        .any(|s| name.contains(s))
}

/// A 24-hex-digit id whose first 8 digits are the creation time in seconds, so ids sort in
/// creation order (like Sunshine's own ids).
fn object_id() -> Result<String> {
    let seconds = u32::try_from(now_ms() / 1000).unwrap_or(u32::MAX);
    Ok(format!("{seconds:08x}{}", random_hex(8)?))
}

fn key_aad(id: &str) -> Aad<'_> {
    Aad {
        table: "sunshine_keys",
        row_id: id,
        column: "secret",
    }
}

fn integration_aad(id: &str) -> Aad<'_> {
    Aad {
        table: "sunshine_integrations",
        row_id: id,
        column: "secrets",
    }
}

static KEY_JWT_VALIDATION: LazyLock<jsonwebtoken::Validation> = LazyLock::new(|| {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_aud = false;
    v.leeway = JWT_LEEWAY_SECONDS;
    v
});

#[derive(Deserialize)]
struct KeyClaims {
    scope: Option<String>,
}

impl Latchkey {
    // --- lookups within the caller's organization --------------------------------------------

    async fn app_row(&self, tx: &mut Tx, org: &str, id: &str) -> Result<AppRow> {
        tx.app(org, id).await?.ok_or(CoreError::not_found("app"))
    }

    async fn integration_row(
        &self,
        tx: &mut Tx,
        org: &str,
        app: &str,
        id: &str,
    ) -> Result<IntegrationRow> {
        self.app_row(tx, org, app).await?;
        tx.integration(org, app, id)
            .await?
            .ok_or(CoreError::not_found("integration"))
    }

    // --- apps ----------------------------------------------------------------------------------

    pub async fn create_app(&self, ctx: &Ctx, input: AppInput) -> Result<AppView> {
        let org = authorize(&ctx.principal, Op::Apps { write: true })?;
        let name = display_name(input.display_name.as_deref())?;
        let mut settings = default_settings();
        if let Some(patch) = &input.settings {
            merge_settings(&mut settings, patch)?;
        }
        let now = now_ms();
        let row = AppRow {
            id: object_id()?,
            organization_id: org.to_owned(),
            display_name: name.as_str().to_owned(),
            settings: Value::Object(settings).to_string(),
            metadata: metadata(input.metadata.as_ref().unwrap_or(&Value::Null))?,
            created_at: now,
            updated_at: now,
        };
        in_tx(&self.store, async |tx| {
            tx.insert_app(&row).await?;
            audit::append(tx, Event::by(ctx, Some(org), "app.create", "app", &row.id)).await?;
            Ok(())
        })
        .await?;
        Ok(row.into())
    }

    pub async fn apps(&self, ctx: &Ctx, page: &PageRequest) -> Result<Page<AppView>> {
        let org = authorize(&ctx.principal, Op::Apps { write: false })?;
        let (cursor, size) = page.cursor()?;
        let rows = self
            .store
            .read()
            .await?
            .apps_page(org, cursor, size + 1)
            .await?;
        Ok(page.page(rows, size, |r: &AppRow| &r.id))
    }

    pub async fn app(&self, ctx: &Ctx, id: &str) -> Result<AppView> {
        let mut tx = self.store.read().await?;
        let org = ctx.principal.org()?;
        let row = self.app_row(&mut tx, org, id).await?;
        authorize(
            &ctx.principal,
            Op::App {
                app: id,
                write: false,
                delete: false,
            },
        )?;
        Ok(row.into())
    }

    /// `PATCH`: only the fields given change; `settings` is merged, `metadata: null` clears.
    pub async fn update_app(&self, ctx: &Ctx, id: &str, input: AppInput) -> Result<AppView> {
        in_tx(&self.store, async |tx| {
            let mut row = self.app_row(tx, ctx.principal.org()?, id).await?;
            let org = authorize(
                &ctx.principal,
                Op::App {
                    app: id,
                    write: true,
                    delete: false,
                },
            )?;
            if let Some(name) = input.display_name.as_deref() {
                row.display_name = DisplayName::parse(name)?.as_str().to_owned();
            }
            if let Some(patch) = &input.settings {
                let mut settings: Map<String, Value> =
                    serde_json::from_str(&row.settings).unwrap_or_else(|_| default_settings());
                merge_settings(&mut settings, patch)?;
                row.settings = Value::Object(settings).to_string();
            }
            if let Some(value) = &input.metadata {
                row.metadata = metadata(value)?;
            }
            row.updated_at = now_ms().max(row.updated_at);
            tx.update_app(&row).await?;
            audit::append(tx, Event::by(ctx, Some(org), "app.update", "app", id)).await?;
            Ok(row.into())
        })
        .await
    }

    /// Deletes an app with its integrations and keys; the keys stop verifying at once.
    pub async fn delete_app(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let revoked = in_tx(&self.store, async |tx| {
            self.app_row(tx, ctx.principal.org()?, id).await?;
            let org = authorize(
                &ctx.principal,
                Op::App {
                    app: id,
                    write: true,
                    delete: true,
                },
            )?;
            let revoked = tx.key_ids_under(org, id, None).await?;
            tx.delete_app(org, id).await?;
            revocations::record(tx, Kind::ApiKey, &revoked).await?;
            audit::append(tx, Event::by(ctx, Some(org), "app.delete", "app", id)).await?;
            Ok(revoked)
        })
        .await?;
        self.revoke_cached(Kind::ApiKey, revoked);
        Ok(())
    }

    // --- integrations --------------------------------------------------------------------------

    /// Creates an integration from the request body as given (`type` required). A `custom`
    /// one takes exactly one webhook; other types keep their channel settings, with any
    /// secret-looking field sealed and never shown.
    pub async fn create_integration(
        &self,
        ctx: &Ctx,
        app: &str,
        mut body: Map<String, Value>,
    ) -> Result<IntegrationView> {
        let kind = match body.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(_) => return Err(CoreError::malformed("type", "type must be a string")),
            None => return Err(CoreError::malformed("type", "type is required")),
        };
        if !INTEGRATION_TYPES.contains(&kind.as_str()) {
            return Err(CoreError::malformed(
                "type",
                format!("type must be one of {}", INTEGRATION_TYPES.join(", ")),
            ));
        }
        let display = match body.remove("displayName") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(DisplayName::parse(&name)?.as_str().to_owned()),
            Some(_) => {
                return Err(CoreError::malformed(
                    "displayName",
                    "displayName must be a string",
                ));
            }
        };
        body.remove("status");
        body.remove("id");
        let mut shown = Map::new();
        let mut sealed = Map::new();
        if kind == "custom" {
            match body.remove("webhooks") {
                Some(Value::Array(hooks)) if hooks.len() == 1 => {
                    shown.insert("webhooks".into(), Value::Array(vec![webhook(&hooks[0])?]));
                }
                Some(Value::Array(_)) => {
                    return Err(CoreError::malformed(
                        "webhooks",
                        "a custom integration takes exactly one webhook",
                    ));
                }
                Some(_) => return Err(CoreError::malformed("webhooks", "webhooks must be a list")),
                None => return Err(CoreError::malformed("webhooks", "webhooks is required")),
            }
        } else {
            for (name, value) in body {
                if is_secret_field(&name) {
                    sealed.insert(name, value);
                } else {
                    shown.insert(name, value);
                }
            }
        }
        in_tx(&self.store, async |tx| {
            self.app_row(tx, ctx.principal.org()?, app).await?;
            let org = authorize(
                &ctx.principal,
                Op::Integrations {
                    app,
                    integration: None,
                    write: true,
                },
            )?;
            let now = now_ms();
            let id = object_id()?;
            let secrets = if sealed.is_empty() {
                None
            } else {
                let plain = Value::Object(sealed.clone()).to_string();
                Some(self.keyring.seal_str(&integration_aad(&id), &plain)?)
            };
            let row = IntegrationRow {
                id,
                organization_id: org.to_owned(),
                app_id: app.to_owned(),
                kind: kind.clone(),
                display_name: display.clone(),
                status: "active".into(),
                config: Value::Object(shown.clone()).to_string(),
                secrets,
                created_at: now,
                updated_at: now,
            };
            tx.insert_integration(&row).await?;
            audit::append(
                tx,
                Event::by(ctx, Some(org), "integration.create", "integration", &row.id),
            )
            .await?;
            Ok(row.into())
        })
        .await
    }

    pub async fn integrations(
        &self,
        ctx: &Ctx,
        app: &str,
        types: &[String],
        page: &PageRequest,
    ) -> Result<Page<IntegrationView>> {
        let (cursor, size) = page.cursor()?;
        let mut tx = self.store.read().await?;
        let org = ctx.principal.org()?;
        self.app_row(&mut tx, org, app).await?;
        authorize(
            &ctx.principal,
            Op::Integrations {
                app,
                integration: None,
                write: false,
            },
        )?;
        let rows = tx
            .integrations_page(org, app, types, cursor, size + 1)
            .await?;
        Ok(page.page(rows, size, |r: &IntegrationRow| &r.id))
    }

    pub async fn integration(&self, ctx: &Ctx, app: &str, id: &str) -> Result<IntegrationView> {
        let mut tx = self.store.read().await?;
        let row = self
            .integration_row(&mut tx, ctx.principal.org()?, app, id)
            .await?;
        authorize(
            &ctx.principal,
            Op::Integrations {
                app,
                integration: Some(id),
                write: false,
            },
        )?;
        Ok(row.into())
    }

    /// Deletes an integration with its keys; the keys stop verifying at once.
    pub async fn delete_integration(&self, ctx: &Ctx, app: &str, id: &str) -> Result<()> {
        let revoked = in_tx(&self.store, async |tx| {
            self.integration_row(tx, ctx.principal.org()?, app, id)
                .await?;
            let org = authorize(
                &ctx.principal,
                Op::Integrations {
                    app,
                    integration: Some(id),
                    write: true,
                },
            )?;
            let revoked = tx.key_ids_under(org, app, Some(id)).await?;
            tx.delete_integration(org, id).await?;
            revocations::record(tx, Kind::ApiKey, &revoked).await?;
            audit::append(
                tx,
                Event::by(ctx, Some(org), "integration.delete", "integration", id),
            )
            .await?;
            Ok(revoked)
        })
        .await?;
        self.revoke_cached(Kind::ApiKey, revoked);
        Ok(())
    }

    // --- keys ------------------------------------------------------------------------------------

    /// Checks the caller may manage keys of `owner`, that the owner exists, and locks it
    /// (so the per-owner limit holds under concurrent creates). Returns the organization.
    async fn key_owner<'c>(&self, tx: &mut Tx, ctx: &'c Ctx, owner: Owner<'_>) -> Result<&'c str> {
        let org = ctx.principal.org()?;
        match owner {
            Owner::Account => {
                ctx.principal.require_admin_of(org)?;
            }
            Owner::App(app) => {
                self.app_row(tx, org, app).await?;
                authorize(&ctx.principal, Op::AppKeys)?;
                tx.lock_app(org, app).await?;
            }
            Owner::Integration(app, integration) => {
                let row = self.integration_row(tx, org, app, integration).await?;
                authorize(&ctx.principal, Op::IntegrationKeys { app })?;
                if row.kind != "custom" {
                    return Err(CoreError::malformed(
                        "integrationId",
                        "API keys are available only for custom integrations",
                    ));
                }
                tx.lock_integration(org, integration).await?;
            }
        }
        Ok(org)
    }

    /// Creates a key: at most ten per app or integration. The secret is in this response only.
    pub async fn create_key(
        &self,
        ctx: &Ctx,
        owner: Owner<'_>,
        input: KeyInput,
    ) -> Result<CreatedKey> {
        let name = display_name(input.display_name.as_deref())?;
        in_tx(&self.store, async |tx| {
            let org = self.key_owner(tx, ctx, owner).await?;
            let (scope, app, integration) = owner.parts();
            let existing = tx.keys_of(org, scope.as_str(), app, integration).await?;
            let limited = match owner {
                Owner::App(_) => Some("an app"),
                Owner::Integration(..) => Some("an integration"),
                Owner::Account => None,
            };
            if let Some(owner_name) = limited
                && existing.len() >= MAX_KEYS_PER_OWNER
            {
                return Err(CoreError::LimitExceeded {
                    field: "keys",
                    message: format!("{owner_name} can have at most {MAX_KEYS_PER_OWNER} API keys"),
                });
            }
            let id = format!("{}{}", scope.id_prefix(), object_id()?);
            let secret = random_urlsafe_b64(SECRET_BYTES)?;
            let row = KeyRow {
                id: id.clone(),
                organization_id: org.to_owned(),
                scope: scope.as_str().to_owned(),
                app_id: app.map(str::to_owned),
                integration_id: integration.map(str::to_owned),
                display_name: name.as_str().to_owned(),
                secret: self
                    .keyring
                    .seal_str(&key_aad(&id), secret.expose_secret())?,
                created_at: now_ms(),
            };
            tx.insert_key(&row).await?;
            audit::append(
                tx,
                Event::by(ctx, Some(org), "api_key.create", "api_key", &id),
            )
            .await?;
            Ok(CreatedKey {
                id,
                display_name: row.display_name,
                secret,
            })
        })
        .await
    }

    pub async fn keys(&self, ctx: &Ctx, owner: Owner<'_>) -> Result<Vec<KeyView>> {
        let mut tx = self.store.read().await?;
        let org = self.key_owner_for_read(&mut tx, ctx, owner).await?;
        let (scope, app, integration) = owner.parts();
        let rows = tx.keys_of(org, scope.as_str(), app, integration).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn key(&self, ctx: &Ctx, owner: Owner<'_>, id: &str) -> Result<KeyView> {
        let mut tx = self.store.read().await?;
        let org = self.key_owner_for_read(&mut tx, ctx, owner).await?;
        let (scope, app, integration) = owner.parts();
        tx.keys_of(org, scope.as_str(), app, integration)
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .map(Into::into)
            .ok_or(CoreError::not_found("key"))
    }

    /// Like [`Self::key_owner`] without the lock (reads run in a read transaction).
    async fn key_owner_for_read<'c>(
        &self,
        tx: &mut Tx,
        ctx: &'c Ctx,
        owner: Owner<'_>,
    ) -> Result<&'c str> {
        let org = ctx.principal.org()?;
        match owner {
            Owner::Account => ctx.principal.require_admin_of(org)?,
            Owner::App(app) => {
                self.app_row(tx, org, app).await?;
                authorize(&ctx.principal, Op::AppKeys)?;
            }
            Owner::Integration(app, integration) => {
                self.integration_row(tx, org, app, integration).await?;
                authorize(&ctx.principal, Op::IntegrationKeys { app })?;
            }
        }
        Ok(org)
    }

    /// Deletes a key: it fails verification from the next call on (on other nodes within a
    /// second).
    pub async fn delete_key(&self, ctx: &Ctx, owner: Owner<'_>, id: &str) -> Result<()> {
        in_tx(&self.store, async |tx| {
            let org = self.key_owner(tx, ctx, owner).await?;
            let (scope, app, integration) = owner.parts();
            let found = tx
                .keys_of(org, scope.as_str(), app, integration)
                .await?
                .iter()
                .any(|k| k.id == id);
            if !found || !tx.delete_key(org, id).await? {
                return Err(CoreError::not_found("key"));
            }
            revocations::record(tx, Kind::ApiKey, &[id.to_owned()]).await?;
            audit::append(
                tx,
                Event::by(ctx, Some(org), "api_key.delete", "api_key", id),
            )
            .await?;
            Ok(())
        })
        .await?;
        self.revoke_cached(Kind::ApiKey, [id.to_owned()]);
        Ok(())
    }

    // --- verification (hot path) -----------------------------------------------------------------

    /// The live key with this id, from the cache or else the store (its secret opened once).
    async fn live_key(&self, id: &str) -> Result<Option<Arc<LiveKey>>> {
        if let Some(known) = self.caches.keys.lookup(id, self.caches.feed_is_current()) {
            return Ok(known);
        }
        // Boxed, so the store's futures do not weigh on every cached call.
        Box::pin(self.load_key(id)).await
    }

    async fn load_key(&self, id: &str) -> Result<Option<Arc<LiveKey>>> {
        let row = self.store.read().await?.key_by_id(id).await?;
        let live = match row {
            Some(row) => Some(LiveKey {
                secret: self.keyring.open_string(&key_aad(&row.id), &row.secret)?,
                scope: KeyScope::parse(&row.scope)
                    .map_err(|_| CoreError::Internal(format!("key {} has a bad scope", row.id)))?,
                organization_id: row.organization_id,
                app_id: row.app_id,
                integration_id: row.integration_id,
            }),
            None => None,
        };
        Ok(self.caches.keys.loaded(id, live))
    }

    fn key_principal(id: &str, key: &LiveKey) -> CredentialPrincipal {
        CredentialPrincipal {
            kind: match key.scope {
                KeyScope::Account => "account_key",
                KeyScope::App => "app_key",
                KeyScope::Integration => "integration_key",
            },
            organization_id: key.organization_id.clone(),
            key_id: Some(id.to_owned()),
            app_id: key.app_id.clone(),
            integration_id: key.integration_id.clone(),
            scope: Some(key.scope.as_str().to_owned()),
            ..Default::default()
        }
    }

    /// HTTP Basic `key_id:secret`.
    pub(crate) async fn verify_basic_key(
        &self,
        id: &str,
        secret: &SecretString,
    ) -> Result<Verification> {
        if KeyScope::of_key_id(id).is_none() {
            return Ok(Verification::invalid("unknown_key"));
        }
        let Some(key) = self.live_key(id).await? else {
            return Ok(Verification::invalid("unknown_key"));
        };
        let presented = secret.expose_secret().as_bytes();
        let stored = key.secret.expose_secret().as_bytes();
        if aws_lc_rs::constant_time::verify_slices_are_equal(presented, stored).is_err() {
            return Ok(Verification::invalid("bad_secret"));
        }
        Ok(Verification::valid(Self::key_principal(id, &key)))
    }

    /// An HS256 JWT signed with a key's secret: header `kid` = key id, claim `scope` = the
    /// key's scope, `exp` honoured when present. Any other algorithm is refused.
    pub(crate) async fn verify_key_jwt(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
        kid: &str,
    ) -> Result<Verification> {
        if header.alg != jsonwebtoken::Algorithm::HS256 {
            return Ok(Verification::invalid("unsupported_algorithm"));
        }
        let Some(key) = self.live_key(kid).await? else {
            return Ok(Verification::invalid("unknown_key"));
        };
        let decoding =
            jsonwebtoken::DecodingKey::from_secret(key.secret.expose_secret().as_bytes());
        let claims = match jsonwebtoken::decode::<KeyClaims>(token, &decoding, &KEY_JWT_VALIDATION)
        {
            Ok(data) => data.claims,
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                return Ok(Verification::invalid(match e.kind() {
                    ErrorKind::ExpiredSignature => "expired",
                    ErrorKind::InvalidSignature => "bad_signature",
                    _ => "malformed",
                }));
            }
        };
        if claims.scope.as_deref() != Some(key.scope.as_str()) {
            return Ok(Verification::invalid("scope_mismatch"));
        }
        Ok(Verification::valid(Self::key_principal(kid, &key)))
    }

    /// Authenticates a caller of the Sunshine surface: a management token, or an API key as
    /// HTTP Basic or an HS256 JWT. A failure is audited and counted (per client and per key
    /// id) and answers `Unauthenticated`, or `RateLimited` once over the limit.
    pub async fn authenticate_key_or_token(
        &self,
        authorization: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Principal> {
        let presented = authorization.and_then(Presented::parse);
        if let Some(Presented::Token(token)) = &presented
            && looks_like_management_token(token)
        {
            return self.authenticate(Some(token), meta).await;
        }
        let (verdict, key_id) = match presented {
            Some(Presented::Basic { id, secret }) => {
                (self.verify_basic_key(&id, &secret).await?, Some(id))
            }
            Some(Presented::Token(token)) => match jsonwebtoken::decode_header(token) {
                Ok(header) => match header.kid.clone() {
                    Some(kid) if KeyScope::of_key_id(&kid).is_some() => {
                        (self.verify_key_jwt(token, &header, &kid).await?, Some(kid))
                    }
                    _ => (Verification::invalid("unknown_key"), None),
                },
                Err(_) => (Verification::invalid("malformed"), None),
            },
            None => (Verification::invalid("malformed"), None),
        };
        if let Some(p) = verdict.principal {
            let scope = p
                .scope
                .as_deref()
                .and_then(|s| KeyScope::parse(s).ok())
                .ok_or(CoreError::Unauthenticated)?;
            return Ok(Principal {
                token_id: p.key_id.unwrap_or_default(),
                organization_id: Some(p.organization_id),
                role: Role::Editor,
                team_id: None,
                key: Some(KeyGrant {
                    scope,
                    app_id: p.app_id,
                    integration_id: p.integration_id,
                }),
            });
        }
        Box::pin(self.key_auth_failed(key_id.as_deref(), meta)).await
    }

    async fn key_auth_failed(&self, key_id: Option<&str>, meta: &RequestMeta) -> Result<Principal> {
        let client = meta.ip.as_deref().unwrap_or("unknown");
        self.caches
            .count_failure(client)
            .map_err(|retry_after| CoreError::RateLimited { retry_after })?;
        // A key id that exists: its own organization hears of the failure, and the key's
        // failures are limited wherever they come from.
        let known = match key_id.filter(|id| KeyScope::of_key_id(id).is_some()) {
            Some(id) => self.live_key(id).await?.map(|k| (id, k)),
            None => None,
        };
        if let Some((id, _)) = &known {
            self.caches
                .count_failure(&format!("key:{id}"))
                .map_err(|retry_after| CoreError::RateLimited { retry_after })?;
        }
        let org = known.as_ref().map(|(_, k)| k.organization_id.clone());
        let event = Event {
            organization_id: org.as_deref(),
            actor: known
                .as_ref()
                .map_or_else(|| "anonymous".to_owned(), |(id, _)| format!("key:{id}")),
            action: "auth.failed",
            target_type: "api_key",
            target_id: known.as_ref().map(|(id, _)| (*id).to_owned()),
            outcome: Outcome::Failure,
            request_id: meta.request_id.as_deref(),
            ip: meta.ip.as_deref(),
            external_id: meta.external_id.as_deref(),
        };
        in_tx(&self.store, async |tx| {
            Ok(audit::append(tx, event.clone()).await?)
        })
        .await?;
        Err(CoreError::Unauthenticated)
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
    fn parts(self) -> (KeyScope, Option<&'a str>, Option<&'a str>) {
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

    fn key(scope: KeyScope, app: Option<&str>, integration: Option<&str>) -> Principal {
        Principal {
            token_id: "k".into(),
            organization_id: Some("org".into()),
            role: Role::Editor,
            team_id: None,
            key: Some(KeyGrant {
                scope,
                app_id: app.map(Into::into),
                integration_id: integration.map(Into::into),
            }),
        }
    }

    fn ok(p: &Principal, op: Op<'_>) -> bool {
        authorize(p, op).is_ok()
    }

    #[test]
    fn scope_matrix() {
        let account = key(KeyScope::Account, None, None);
        let app = key(KeyScope::App, Some("a"), None);
        let int = key(KeyScope::Integration, Some("a"), Some("i"));
        let read_app = Op::App {
            app: "a",
            write: false,
            delete: false,
        };
        let write_app = Op::App {
            app: "a",
            write: true,
            delete: false,
        };
        let delete_app = Op::App {
            app: "a",
            write: true,
            delete: true,
        };
        let other_app = Op::App {
            app: "b",
            write: false,
            delete: false,
        };
        let own_int = Op::Integrations {
            app: "a",
            integration: Some("i"),
            write: false,
        };
        let list_ints = Op::Integrations {
            app: "a",
            integration: None,
            write: false,
        };
        let new_int = Op::Integrations {
            app: "a",
            integration: None,
            write: true,
        };
        let cases = [
            (Op::Apps { write: false }, [true, false, false]),
            (Op::Apps { write: true }, [true, false, false]),
            (read_app, [true, true, true]),
            (write_app, [true, true, false]),
            (delete_app, [true, false, false]),
            (other_app, [true, false, false]),
            (own_int, [true, true, true]),
            (list_ints, [true, true, false]),
            (new_int, [true, true, false]),
            (Op::AppKeys, [true, false, false]),
            (Op::IntegrationKeys { app: "a" }, [true, true, false]),
            (Op::IntegrationKeys { app: "b" }, [true, false, false]),
        ];
        for (op, want) in cases {
            let got = [ok(&account, op), ok(&app, op), ok(&int, op)];
            assert_eq!(got, want, "{op:?}");
        }
    }

    #[test]
    fn pages_cut_the_extra_row_on_the_far_side() {
        #[derive(Debug)]
        struct R(String);
        impl From<R> for String {
            fn from(r: R) -> Self {
                r.0
            }
        }
        let rows = |ids: &[&str]| ids.iter().map(|i| R((*i).to_owned())).collect::<Vec<_>>();
        let forward = PageRequest::default();
        let page: Page<String> = forward.page(rows(&["a", "b", "c"]), 2, |r: &R| &r.0);
        assert_eq!(page.items, ["a", "b"]);
        assert!(page.has_more);
        assert_eq!(page.next.as_deref(), Some("b"));
        assert_eq!(page.prev, None);
        let backward = PageRequest {
            before: Some("z".into()),
            ..Default::default()
        };
        let page: Page<String> = backward.page(rows(&["a", "b", "c"]), 2, |r: &R| &r.0);
        assert_eq!(page.items, ["b", "c"]);
        assert_eq!(page.prev.as_deref(), Some("b"));
        assert_eq!(page.next.as_deref(), Some("c"));
        let last: Page<String> = PageRequest {
            after: Some("a".into()),
            ..Default::default()
        }
        .page(rows(&["b"]), 2, |r: &R| &r.0);
        assert!(!last.has_more);
        assert_eq!(last.next, None);
        assert_eq!(last.prev.as_deref(), Some("b"));
    }
}
