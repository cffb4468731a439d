//! Organizations through the Provisioning API: created by server admins with their base roles,
//! updated by their admins, with the Commerce Layer attributes Latchkey keeps.

use super::*;

/// Commerce Layer's organization attributes Latchkey keeps (besides name and slug).
const ORGANIZATION_TEXT: &[&str] = &["support_phone", "support_email", "gtm_id", "gtm_id_test"];
const ORGANIZATION_URLS: &[&str] = &["logo_url", "favicon_url"];
const ORGANIZATION_COLORS: &[&str] = &["primary_color", "contrast_color"];
const REGIONS: &[&str] = &["eu-west-1", "us-east-1"];

/// The shape of an organization's text attributes: pages of hosted apps put them in
/// HTML and scripts, so each keeps to its own characters.
fn check_organization_text(name: &str, value: &str) -> Result<()> {
    let ok = match name {
        "gtm_id" | "gtm_id_test" => value.strip_prefix("GTM-").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        }),
        "support_email" => {
            value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.contains('@')
            }) && value.bytes().all(|b| {
                b.is_ascii_graphic()
                    && !matches!(b, b'<' | b'>' | b'"' | b'\'' | b'(' | b')' | b'\\')
            })
        }
        "support_phone" => value
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b' ' | b'-' | b'(' | b')' | b'.')),
        _ => !value.chars().any(char::is_control),
    };
    if ok {
        Ok(())
    } else {
        let what = match name {
            "gtm_id" | "gtm_id_test" => "must be a Google Tag Manager id such as GTM-ABC123",
            "support_email" => "must be an email address",
            "support_phone" => "must be a phone number (digits, spaces, + - ( ) .)",
            _ => "must not contain control characters",
        };
        Err(invalid(name, what))
    }
}

pub(crate) fn organization_attributes(region_allowed: bool) -> Vec<&'static str> {
    let mut names = vec![
        "name",
        "config",
        "reference",
        "reference_origin",
        "metadata",
    ];
    names.extend(ORGANIZATION_TEXT);
    names.extend(ORGANIZATION_URLS);
    names.extend(ORGANIZATION_COLORS);
    if region_allowed {
        names.push("region");
    }
    names
}

/// Applies the stored attributes `input` sets to `attributes` (a JSON object).
fn merge_organization(
    input: &ResourceInput,
    attributes: &mut Map<String, Value>,
    creating: bool,
) -> Result<()> {
    let mut put = |name: &str, value: Option<Option<Value>>| {
        if let Some(v) = value {
            attributes.insert(name.to_owned(), v.unwrap_or(Value::Null));
        }
    };
    for name in ORGANIZATION_TEXT
        .iter()
        .chain(["reference", "reference_origin"].iter())
    {
        let value = text(input, name, MAX_REFERENCE_CHARS)?;
        if let Some(Some(v)) = &value {
            check_organization_text(name, v)?;
        }
        put(name, value.map(|v| v.map(Value::String)));
    }
    for name in ORGANIZATION_URLS {
        let value = text(input, name, MAX_URI_CHARS)?;
        // Stored as the URL parser normalises it (trimmed, no tabs or newlines).
        let value = match value {
            Some(Some(raw)) => {
                let url = url::Url::parse(raw.trim())
                    .ok()
                    .filter(|u| {
                        matches!(u.scheme(), "http" | "https") && !raw.chars().any(char::is_control)
                    })
                    .ok_or_else(|| invalid(*name, "must be an http or https URL"))?;
                Some(Some(String::from(url)))
            }
            other => other,
        };
        put(name, value.map(|v| v.map(Value::String)));
    }
    for name in ORGANIZATION_COLORS {
        let value = text(input, name, 7)?;
        if let Some(Some(color)) = &value
            && !(color.len() == 7
                && color.starts_with('#')
                && color[1..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(invalid(*name, "must be a HEX color such as #FFCC00"));
        }
        put(name, value.map(|v| v.map(Value::String)));
    }
    let config = input.attribute::<Map<String, Value>>("config", "an object")?;
    if let Some(Some(map)) = &config
        && Value::Object(map.clone()).to_string().len() > MAX_METADATA_BYTES
    {
        return Err(invalid(
            "config",
            format!("is too large (maximum is {MAX_METADATA_BYTES} bytes)"),
        ));
    }
    put("config", config.map(|c| c.map(Value::Object)));
    put(
        "metadata",
        metadata(input)?.map(|m| m.and_then(|t| serde_json::from_str(&t).ok())),
    );
    if creating {
        let region = match input.attribute::<String>("region", "a string")?.flatten() {
            None => "eu-west-1".to_owned(),
            Some(r) if REGIONS.contains(&r.as_str()) => r,
            Some(_) => {
                return Err(invalid(
                    "region",
                    format!("must be one of {}", REGIONS.join(", ")),
                ));
            }
        };
        attributes.insert("region".into(), json!(region));
    }
    Ok(())
}

impl CommerceLayer {
    /// Creates an organization (server admins), with its base roles, in one transaction.
    pub async fn create_organization(
        &self,
        ctx: &Ctx,
        input: &ResourceInput,
    ) -> Result<ClOrganizationRow> {
        if !ctx.principal.is_server_admin() {
            return Err(
                CoreError::forbidden("only a server-admin token can create organizations").into(),
            );
        }
        input.expect("organizations", None)?;
        input.allow_only(&organization_attributes(true), &[])?;
        let name = match input.attribute::<String>("name", "a string")? {
            Some(Some(name)) => name,
            _ => return Err(invalid("name", "can't be blank")),
        };
        let mut attributes = Map::new();
        merge_organization(input, &mut attributes, true)?;
        let attributes = Value::Object(attributes).to_string();
        // (Its base roles come with it: `CommerceLayer::new` hooks every creation.)
        let made = self
            .kernel
            .create_organization_with(ctx, NewOrganization { name }, async |tx, org| {
                tx.put_cl_organization_attributes(&org.id, &attributes, org.created_at)
                    .await?;
                Ok(())
            })
            .await?;
        self.base_roles.insert(made.id.clone(), ());
        self.organization_row(&made.id).await?.ok_or_else(not_found)
    }

    /// Updates an organization's name and attributes (its admins, or a server admin); its
    /// region cannot change.
    pub async fn update_organization(
        &self,
        ctx: &Ctx,
        id: &str,
        input: &ResourceInput,
    ) -> Result<ClOrganizationRow> {
        input.expect("organizations", Some(id))?;
        input.allow_only(&organization_attributes(false), &[])?;
        if !ctx.principal.is_server_admin() {
            if organization(ctx, Access::Read)? != id {
                return Err(not_found());
            }
            organization(ctx, Access::Admin)?;
        }
        check_id(id)?;
        let name = match input.attribute::<String>("name", "a string")? {
            None => None,
            Some(None) => return Err(invalid("name", "can't be blank")),
            Some(Some(n)) => Some(Name::parse(&n)?.as_str().to_owned()),
        };
        if name
            .as_deref()
            .is_some_and(|n| !n.chars().any(char::is_alphanumeric))
        {
            return Err(invalid("name", "must contain at least one letter or digit"));
        }
        self.kernel
            .write(async |tx| {
                // Locked first, so concurrent updates of its attributes do not lose each other.
                if !tx.lock_organization(id).await? {
                    return Err(CoreError::not_found("organization"));
                };
                let stored = tx.cl_organization_attributes(id).await?;
                let mut attributes: Map<String, Value> = stored
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or_default();
                merge_organization(input, &mut attributes, false)
                    .map_err(|e| CoreError::invalid(e.field.unwrap_or_default(), e.message))?;
                let text = Value::Object(attributes).to_string();
                tx.put_cl_organization_attributes(id, &text, now_ms())
                    .await?;
                if let Some(name) = &name {
                    tx.rename_organization(id, name).await?;
                }
                audit::append(
                    tx,
                    Event::by(ctx, Some(id), "organization.update", "organization", id),
                )
                .await?;
                Ok(())
            })
            .await?;
        self.organization_row(id).await?.ok_or_else(not_found)
    }
}
