//! Sunshine's rules: apps, integrations and API keys (account, app and integration scoped).
//!
//! A key is `{id, displayName, secret}`: the id names its scope by prefix (`act_`, `app_`,
//! `int_` + 24 hex), the secret is 32 random bytes in URL-safe base64, shown in the response
//! that creates it and never again. The secret is sealed at rest (HS256 verification needs it
//! back) and opened once into the key cache (`verify`).

use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::{
    Sunshine,
    authz::{Caller, Op, authorize, organization},
    model::*,
    pagination::{AccountKeyCursor, Page, PageRequest},
    store::{AppRow, IntegrationRow, KeyRow},
};
use crate::{
    crypto::{
        keyring::Aad,
        secret::{random_hex, random_urlsafe_b64},
    },
    kernel::{
        CoreError, Result,
        audit::{self, Event},
        now_ms,
        types::ids,
    },
    store::Tx,
};

/// Keys per app (app keys) and per integration (integration keys).
pub const MAX_KEYS_PER_OWNER: usize = 10;
pub const DEFAULT_PAGE_SIZE: i64 = 25;
pub const MAX_PAGE_SIZE: i64 = 100;
/// Bytes of randomness in a key secret.
const SECRET_BYTES: usize = 32;
/// Largest `metadata` object, serialized.
const MAX_METADATA_BYTES: usize = 4096;

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
    crate::kernel::types::HttpUrl::parse(target, "webhooks[0].target")?;
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

/// The channel settings a type shows on reads: ids, names, flags and look. Every other
/// field — tokens, keys, certificates, anything unknown, and any nested object or list — is
/// sealed and never shown, so a secret under an unexpected name cannot leak.
fn public_settings(kind: &str) -> &'static [&'static str] {
    const COMMON: &[&str] = &["canUserCreateMoreConversations", "defaultResponderId"];
    match kind {
        "android" => &["senderId", "projectId", "canUserCreateMoreConversations"],
        "apple" => &["businessId", "mspId"],
        "instagram" => &["appId", "businessName", "businessId", "username", "pageId"],
        "ios" => &[
            "production",
            "autoUpdateBadge",
            "canUserCreateMoreConversations",
        ],
        "line" => &["channelId", "serviceCode"],
        "mailgun" => &[
            "domain",
            "incomingAddress",
            "fromAddress",
            "hideUnsubscribeLink",
        ],
        "messagebird" => &["originator"],
        "messenger" => &["appId", "pageId", "pageName"],
        "telegram" => &["username"],
        "twilio" => &["accountSid", "phoneNumberSid", "phoneNumber"],
        "twitter" => &["tier", "userId", "username"],
        "viber" => &["uri"],
        "web" => &[
            "brandColor",
            "fixedIntroPane",
            "conversationColor",
            "actionColor",
            "displayStyle",
            "buttonIconUrl",
            "buttonWidth",
            "buttonHeight",
            "integrationOrder",
            "businessName",
            "businessIconUrl",
            "backgroundImageUrl",
            "canUserSeeConversationList",
            "canUserCreateMoreConversations",
        ],
        "whatsapp" => &[
            "deploymentId",
            "hsmFallbackLanguage",
            "accountId",
            "phoneNumber",
        ],
        _ => COMMON,
    }
}

/// Whether a channel setting is shown on reads: on its type's list, and a plain value.
fn is_public_setting(kind: &str, name: &str, value: &Value) -> bool {
    public_settings(kind).contains(&name)
        && matches!(
            value,
            Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null
        )
}

/// Length of app and integration ids.
pub(super) const OBJECT_ID_LEN: usize = 24;

/// A 24-hex-digit id whose first 8 digits are the creation time in seconds, so ids sort in
/// creation order (like Sunshine's own ids).
fn object_id() -> Result<String> {
    let seconds = u32::try_from(now_ms() / 1000).unwrap_or(u32::MAX);
    Ok(format!("{seconds:08x}{}", random_hex(8)?))
}

pub(super) fn key_aad(id: &str) -> Aad<'_> {
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

impl Sunshine {
    // --- lookups within the caller's organization --------------------------------------------

    async fn app_row(&self, tx: &mut Tx, org: &str, id: &str) -> Result<AppRow> {
        if !ids::lower_hex(id, OBJECT_ID_LEN) {
            return Err(CoreError::not_found("app"));
        }
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
        if !ids::lower_hex(id, OBJECT_ID_LEN) {
            return Err(CoreError::not_found("integration"));
        }
        tx.integration(org, app, id)
            .await?
            .ok_or(CoreError::not_found("integration"))
    }

    // --- apps ----------------------------------------------------------------------------------

    pub async fn create_app(&self, ctx: &Caller, input: AppInput) -> Result<AppView> {
        let org = authorize(ctx, Op::Apps { write: true })?;
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
        self.kernel
            .write(async |tx| {
                tx.insert_app(&row).await?;
                audit::append(tx, Event::by(ctx, Some(org), "app.create", "app", &row.id)).await?;
                Ok(())
            })
            .await?;
        Ok(row.into())
    }

    pub async fn apps(&self, ctx: &Caller, page: &PageRequest) -> Result<Page<AppView>> {
        let org = authorize(ctx, Op::Apps { write: false })?;
        let (cursor, size) = page.cursor()?;
        let rows = self
            .kernel
            .store()
            .read()
            .await?
            .apps_page(org, cursor, size + 1)
            .await?;
        Ok(page.page(rows, size, |r: &AppRow| &r.id))
    }

    pub async fn app(&self, ctx: &Caller, id: &str) -> Result<AppView> {
        let mut tx = self.kernel.store().read().await?;
        let org = organization(ctx)?;
        let row = self.app_row(&mut tx, org, id).await?;
        authorize(
            ctx,
            Op::App {
                app: id,
                write: false,
                delete: false,
            },
        )?;
        Ok(row.into())
    }

    /// `PATCH`: only the fields given change; `settings` is merged, `metadata: null` clears.
    pub async fn update_app(&self, ctx: &Caller, id: &str, input: AppInput) -> Result<AppView> {
        self.kernel
            .write(async |tx| {
                let mut row = self.app_row(tx, organization(ctx)?, id).await?;
                let org = authorize(
                    ctx,
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
    pub async fn delete_app(&self, ctx: &Caller, id: &str) -> Result<()> {
        self.kernel
            .write(async |tx| {
                self.app_row(tx, organization(ctx)?, id).await?;
                let org = authorize(
                    ctx,
                    Op::App {
                        app: id,
                        write: true,
                        delete: true,
                    },
                )?;
                // Under the locks key creation takes, so every key the cascade removes is in
                // the revocation (none can be created between this read and the delete).
                tx.lock_app(org, id).await?;
                tx.lock_app_integrations(org, id).await?;
                let revoked = tx.key_ids_under(org, id, None).await?;
                tx.delete_app(org, id).await?;
                tx.revoke(&self.keys, revoked);
                audit::append(tx, Event::by(ctx, Some(org), "app.delete", "app", id)).await?;
                Ok(())
            })
            .await
    }

    // --- integrations --------------------------------------------------------------------------

    /// Creates an integration from the request body as given (`type` required). A `custom`
    /// one takes exactly one webhook; other types keep their channel settings, with any
    /// secret-looking field sealed and never shown.
    pub async fn create_integration(
        &self,
        ctx: &Caller,
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
                if is_public_setting(&kind, &name, &value) {
                    shown.insert(name, value);
                } else {
                    sealed.insert(name, value);
                }
            }
        }
        self.kernel
            .write(async |tx| {
                self.app_row(tx, organization(ctx)?, app).await?;
                let org = authorize(
                    ctx,
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
                    Some(
                        self.kernel
                            .keyring()
                            .seal_str(&integration_aad(&id), &plain)?,
                    )
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
        ctx: &Caller,
        app: &str,
        types: &[String],
        page: &PageRequest,
    ) -> Result<Page<IntegrationView>> {
        let (cursor, size) = page.cursor()?;
        let mut tx = self.kernel.store().read().await?;
        let org = organization(ctx)?;
        self.app_row(&mut tx, org, app).await?;
        authorize(
            ctx,
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

    pub async fn integration(&self, ctx: &Caller, app: &str, id: &str) -> Result<IntegrationView> {
        let mut tx = self.kernel.store().read().await?;
        let row = self
            .integration_row(&mut tx, organization(ctx)?, app, id)
            .await?;
        authorize(
            ctx,
            Op::Integrations {
                app,
                integration: Some(id),
                write: false,
            },
        )?;
        Ok(row.into())
    }

    /// Deletes an integration with its keys; the keys stop verifying at once.
    pub async fn delete_integration(&self, ctx: &Caller, app: &str, id: &str) -> Result<()> {
        self.kernel
            .write(async |tx| {
                self.integration_row(tx, organization(ctx)?, app, id)
                    .await?;
                let org = authorize(
                    ctx,
                    Op::Integrations {
                        app,
                        integration: Some(id),
                        write: true,
                    },
                )?;
                tx.lock_integration(org, id).await?;
                let revoked = tx.key_ids_under(org, app, Some(id)).await?;
                tx.delete_integration(org, id).await?;
                tx.revoke(&self.keys, revoked);
                audit::append(
                    tx,
                    Event::by(ctx, Some(org), "integration.delete", "integration", id),
                )
                .await?;
                Ok(())
            })
            .await
    }

    // --- keys ------------------------------------------------------------------------------------

    /// Checks the caller may manage keys of `owner`, that the owner exists, and locks it
    /// (so the per-owner limit holds under concurrent creates). Returns the organization.
    async fn key_owner<'c>(
        &self,
        tx: &mut Tx,
        ctx: &'c Caller,
        owner: Owner<'_>,
    ) -> Result<&'c str> {
        let org = organization(ctx)?;
        match owner {
            Owner::Account => {
                ctx.principal.require_admin_of(org)?;
            }
            Owner::App(app) => {
                self.app_row(tx, org, app).await?;
                authorize(ctx, Op::AppKeys)?;
                tx.lock_app(org, app).await?;
            }
            Owner::Integration(app, integration) => {
                let row = self.integration_row(tx, org, app, integration).await?;
                authorize(ctx, Op::IntegrationKeys { app })?;
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
        ctx: &Caller,
        owner: Owner<'_>,
        input: KeyInput,
    ) -> Result<CreatedKey> {
        let name = display_name(input.display_name.as_deref())?;
        self.kernel
            .write(async |tx| {
                let org = self.key_owner(tx, ctx, owner).await?;
                let (scope, app, integration) = owner.parts();
                // Account keys have no limit: reading them all would make each create
                // cost as much as the keys already there.
                let limited = match owner {
                    Owner::App(_) => Some("an app"),
                    Owner::Integration(..) => Some("an integration"),
                    Owner::Account => None,
                };
                if let Some(owner_name) = limited
                    && tx
                        .keys_of(org, scope.as_str(), app, integration)
                        .await?
                        .len()
                        >= MAX_KEYS_PER_OWNER
                {
                    return Err(CoreError::LimitExceeded {
                        field: "keys",
                        message: format!(
                            "{owner_name} can have at most {MAX_KEYS_PER_OWNER} API keys"
                        ),
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
                        .kernel
                        .keyring()
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

    pub async fn keys(&self, ctx: &Caller, owner: Owner<'_>) -> Result<Vec<KeyView>> {
        let mut tx = self.kernel.store().read().await?;
        let org = self.key_owner_for_read(&mut tx, ctx, owner).await?;
        let (scope, app, integration) = owner.parts();
        let rows = tx.keys_of(org, scope.as_str(), app, integration).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// A page of the organization's account keys, oldest first, and the cursor of the next
    /// page (`None` on the last): `after` is a previous page's cursor, `limit` 1..=200.
    pub async fn account_keys(
        &self,
        ctx: &Caller,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> Result<(Vec<KeyView>, Option<String>)> {
        let mut tx = self.kernel.store().read().await?;
        let org = self
            .key_owner_for_read(&mut tx, ctx, Owner::Account)
            .await?;
        let limit = audit::page_limit(limit)?;
        let after = after.map(AccountKeyCursor::parse).transpose()?;
        let mut rows = tx
            .account_keys_page(org, after.as_ref().map(|c| (c.created_at, c.id)), limit + 1)
            .await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or_default());
        let next = rows
            .last()
            .filter(|_| more)
            .map(|r| format!("{}.{}", r.created_at, r.id));
        Ok((rows.into_iter().map(Into::into).collect(), next))
    }

    pub async fn key(&self, ctx: &Caller, owner: Owner<'_>, id: &str) -> Result<KeyView> {
        if KeyScope::of_key_id(id) != Some(owner.parts().0) {
            organization(ctx)?;
            return Err(CoreError::not_found("key"));
        }
        let mut tx = self.kernel.store().read().await?;
        let org = self.key_owner_for_read(&mut tx, ctx, owner).await?;
        owned_key(&mut tx, org, owner, id)
            .await?
            .map(Into::into)
            .ok_or(CoreError::not_found("key"))
    }

    /// Like [`Self::key_owner`] without the lock (reads run in a read transaction).
    async fn key_owner_for_read<'c>(
        &self,
        tx: &mut Tx,
        ctx: &'c Caller,
        owner: Owner<'_>,
    ) -> Result<&'c str> {
        let org = organization(ctx)?;
        match owner {
            Owner::Account => ctx.principal.require_admin_of(org)?,
            Owner::App(app) => {
                self.app_row(tx, org, app).await?;
                authorize(ctx, Op::AppKeys)?;
            }
            Owner::Integration(app, integration) => {
                self.integration_row(tx, org, app, integration).await?;
                authorize(ctx, Op::IntegrationKeys { app })?;
            }
        }
        Ok(org)
    }

    /// Deletes a key: it fails verification from the next call on (on other nodes within a
    /// second).
    pub async fn delete_key(&self, ctx: &Caller, owner: Owner<'_>, id: &str) -> Result<()> {
        if KeyScope::of_key_id(id) != Some(owner.parts().0) {
            organization(ctx)?;
            return Err(CoreError::not_found("key"));
        }
        self.kernel
            .write(async |tx| {
                let org = self.key_owner(tx, ctx, owner).await?;
                let found = owned_key(tx, org, owner, id).await?.is_some();
                if !found || !tx.delete_key(org, id).await? {
                    return Err(CoreError::not_found("key"));
                }
                tx.revoke(&self.keys, [id.to_owned()]);
                audit::append(
                    tx,
                    Event::by(ctx, Some(org), "api_key.delete", "api_key", id),
                )
                .await?;
                Ok(())
            })
            .await
    }
}

/// The key `id` if `owner` of `org` holds it: one indexed read, however many keys the owner
/// has (an organization may hold any number of account keys).
async fn owned_key(tx: &mut Tx, org: &str, owner: Owner<'_>, id: &str) -> Result<Option<KeyRow>> {
    let (scope, app, integration) = owner.parts();
    Ok(tx.key_by_id(id).await?.filter(|k| {
        k.organization_id == org
            && k.scope == scope.as_str()
            && k.app_id.as_deref() == app
            && k.integration_id.as_deref() == integration
    }))
}
