//! Tines' rules: teams, folders and user credentials in all seven modes, who may see and
//! change them (organization, team and role), test credentials, and the audit of every
//! change.

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{
    Tines,
    mode::build_mode,
    model::*,
    pagination::{PageRequest, Paged},
    store::{CredentialRow, TeamRow},
};
/// Longest `description`, in characters.
const MAX_DESCRIPTION: usize = 10_000;

use crate::{
    egress::host_pattern::parse_allowed_hosts,
    kernel::{
        CoreError, Ctx, Result,
        audit::{self, Event},
        now_ms,
        types::Name,
    },
    store::{StoreError, Tx},
};

/// Everything of a credential but its id and timestamps, validated.
struct Validated {
    name: Name,
    slug: Slug,
    read_access: ReadAccess,
    shared_team_slugs: Vec<String>,
    description: String,
    metadata: Map<String, Value>,
    allowed_hosts: Vec<String>,
    folder_id: Option<i64>,
    live_credential_id: Option<i64>,
    config: ModeConfig,
    secrets: Secrets,
}

/// What an update starts from.
struct Existing<'a> {
    row: &'a CredentialRow,
    config: ModeConfig,
    secrets: Secrets,
}

/// The `filter` values of the credential list.
pub const CREDENTIAL_FILTERS: [&str; 3] = ["RESTRICTED", "UNRESTRICTED", "UNUSED_IN_ACTIONS"];

impl Tines {
    fn seal_secrets(&self, id: i64, secrets: &Secrets) -> Result<Vec<u8>> {
        let plain = Zeroizing::new(
            serde_json::to_vec(secrets).map_err(|e| CoreError::Internal(e.to_string()))?,
        );
        Ok(self
            .kernel
            .keyring()
            .seal(&secrets_aad(&id.to_string()), &plain)?)
    }

    /// The stored secrets of a credential (for updates now, and for using it later).
    pub(crate) fn open_secrets(&self, row: &CredentialRow) -> Result<Secrets> {
        let Some(sealed) = &row.secrets else {
            return Ok(Secrets::default());
        };
        let plain = self
            .kernel
            .keyring()
            .open(&secrets_aad(&row.id.to_string()), sealed)?;
        serde_json::from_slice(&plain)
            .map_err(|_| CoreError::Internal("stored secrets are not valid".into()))
    }

    async fn validate(
        &self,
        tx: &mut Tx,
        org: &str,
        team: &TeamRow,
        input: &CredentialInput,
        existing: Option<&Existing<'_>>,
    ) -> Result<Validated> {
        let mode = CredentialMode::parse(
            input
                .mode
                .as_deref()
                .ok_or_else(|| CoreError::malformed("mode", "mode is required"))?,
        )?;
        let name = Name::parse(
            input
                .name
                .as_deref()
                .ok_or_else(|| CoreError::malformed("name", "name is required"))?,
        )?;
        let slug = Slug::from_name(name.as_str())?;

        let read_access = match &input.read_access {
            Some(r) => ReadAccess::parse(r)?,
            None => ReadAccess::Team,
        };
        let requested_slugs = input.shared_team_slugs.clone().unwrap_or_default();
        let shared_team_slugs = if read_access == ReadAccess::SpecificTeams {
            if requested_slugs.is_empty() {
                return Err(CoreError::invalid(
                    "shared_team_slugs",
                    "shared_team_slugs must name at least one team when read_access is SPECIFIC_TEAMS",
                ));
            }
            let teams = tx.all_teams(org).await?;
            let mut slugs = Vec::with_capacity(requested_slugs.len());
            for requested in &requested_slugs {
                let slug = Slug::parse(requested).map_err(|_| {
                    CoreError::invalid(
                        "shared_team_slugs",
                        format!("{requested:?} is not a team slug"),
                    )
                })?;
                if !teams.iter().any(|t| t.slug == slug.as_str()) {
                    return Err(CoreError::invalid(
                        "shared_team_slugs",
                        format!("no team has the slug {requested:?}"),
                    ));
                }
                if !slugs.iter().any(|s: &String| s == slug.as_str()) {
                    slugs.push(slug.as_str().to_owned());
                }
            }
            slugs
        } else {
            if !requested_slugs.is_empty() {
                return Err(CoreError::invalid(
                    "shared_team_slugs",
                    "shared_team_slugs can only be set when read_access is SPECIFIC_TEAMS",
                ));
            }
            Vec::new()
        };

        let description = input.description.clone().unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(CoreError::invalid(
                "description",
                format!("description must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        let allowed_hosts =
            parse_allowed_hosts(input.allowed_hosts.as_deref().unwrap_or_default())?
                .iter()
                .map(|h| h.as_str().to_owned())
                .collect();

        let folder_id = match input.folder_id {
            None => None,
            Some(id) => {
                // Another team's folder is not found, as a missing one is.
                let folder = tx
                    .folder(org, id)
                    .await?
                    .filter(|f| f.team_id == team.id)
                    .ok_or(CoreError::NotFound {
                        what: "folder",
                        field: Some("folder_id"),
                    })?;
                if folder.content_type != "CREDENTIAL" {
                    return Err(CoreError::invalid(
                        "folder_id",
                        format!("folder {id} is not a CREDENTIAL folder"),
                    ));
                }
                Some(id)
            }
        };

        let live_credential_id = match (input.live_credential_id, existing) {
            (None, Some(e)) => e.row.live_credential_id,
            (None, None) => None,
            (Some(live_id), _) => {
                let field = "live_credential_id";
                if existing.is_some_and(|e| e.row.id == live_id) {
                    return Err(CoreError::invalid(
                        field,
                        "a credential cannot be its own test credential",
                    ));
                }
                if existing.is_some_and(|e| e.row.twin_created_at.is_some()) {
                    return Err(CoreError::invalid(
                        field,
                        "this credential has a test credential, so it cannot be one",
                    ));
                }
                let live = tx
                    .credential(org, live_id)
                    .await?
                    .filter(|c| c.team_id == team.id)
                    .ok_or(CoreError::NotFound {
                        what: "live credential",
                        field: Some("live_credential_id"),
                    })?;
                if live.mode != mode.as_str() {
                    return Err(CoreError::invalid(
                        field,
                        format!(
                            "credential {live_id} has mode {}, not {}",
                            live.mode,
                            mode.as_str()
                        ),
                    ));
                }
                if live.live_credential_id.is_some() {
                    return Err(CoreError::invalid(
                        field,
                        format!("credential {live_id} is itself a test credential"),
                    ));
                }
                let already = tx.credential_twin(org, live_id).await?;
                if already.is_some_and(|twin| existing.is_none_or(|e| e.row.id != twin.id)) {
                    return Err(CoreError::invalid(
                        field,
                        format!("credential {live_id} already has a test credential"),
                    ));
                }
                Some(live_id)
            }
        };

        let previous = existing.map(|e| (&e.config, &e.secrets));
        let (config, secrets) = build_mode(input, mode, previous)?;
        Ok(Validated {
            name,
            slug,
            read_access,
            shared_team_slugs,
            description,
            metadata: input.metadata.clone().unwrap_or_default(),
            allowed_hosts,
            folder_id,
            live_credential_id,
            config,
            secrets,
        })
    }

    /// The team a write goes to, if this caller may write there.
    async fn writable_team(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        team_id: i64,
        field: Option<&'static str>,
    ) -> Result<TeamRow> {
        let org = ctx.principal.org_for_write()?;
        match tx.team(org, team_id).await? {
            Some(team) if ctx.principal.sees_team(team.id) => Ok(team),
            _ => Err(CoreError::NotFound {
                what: "team",
                field,
            }),
        }
    }

    /// A credential this caller can see.
    async fn visible_credential(&self, tx: &mut Tx, ctx: &Ctx, id: i64) -> Result<CredentialRow> {
        let org = ctx.principal.org()?;
        match tx.credential(org, id).await? {
            Some(row) if ctx.principal.sees_team(row.team_id) => Ok(row),
            _ => Err(CoreError::not_found("credential")),
        }
    }

    fn row_from(
        &self,
        org: &str,
        team_id: i64,
        v: &Validated,
        created_at: i64,
        updated_at: i64,
    ) -> Result<CredentialRow> {
        Ok(CredentialRow {
            id: 0,
            organization_id: org.to_owned(),
            team_id,
            folder_id: v.folder_id,
            live_credential_id: v.live_credential_id,
            name: v.name.as_str().to_owned(),
            slug: v.slug.as_str().to_owned(),
            mode: v.config.mode().as_str().to_owned(),
            read_access: v.read_access.as_str().to_owned(),
            shared_team_slugs: to_json(&v.shared_team_slugs)?,
            description: v.description.clone(),
            metadata: to_json(&v.metadata)?,
            allowed_hosts: to_json(&v.allowed_hosts)?,
            config: to_json(&v.config)?,
            secrets: None,
            created_at,
            updated_at,
            last_used_at: None,
            last_error: None,
            last_error_at: None,
            twin_created_at: None,
            twin_updated_at: None,
        })
    }

    pub async fn create_credential(
        &self,
        ctx: &Ctx,
        input: CredentialInput,
    ) -> Result<CredentialView> {
        let team_id = input
            .team_id
            .ok_or_else(|| CoreError::malformed("team_id", "team_id is required"))?;
        self.kernel
            .write(async |tx| {
                let team = self
                    .writable_team(tx, ctx, team_id, Some("team_id"))
                    .await?;
                let org = team.organization_id.as_str();
                let v = self.validate(tx, org, &team, &input, None).await?;
                let now = now_ms();
                let mut row = self.row_from(org, team.id, &v, now, now)?;
                row.id = tx
                    .insert_credential(&row)
                    .await
                    .map_err(|e| slug_conflict(e, &v, team.id))?;
                let sealed = self.seal_secrets(row.id, &v.secrets)?;
                tx.set_credential_secrets(org, row.id, Some(&sealed))
                    .await?;
                audit::append(
                    tx,
                    Event::by(
                        ctx,
                        Some(org),
                        "user_credential.create",
                        "user_credential",
                        row.id,
                    ),
                )
                .await?;
                let stored = tx
                    .credential(org, row.id)
                    .await?
                    .ok_or(CoreError::not_found("credential"))?;
                CredentialView::from_row(&stored)
            })
            .await
    }

    pub async fn credential(&self, ctx: &Ctx, id: i64) -> Result<CredentialView> {
        let mut tx = self.kernel.store().read().await?;
        CredentialView::from_row(&self.visible_credential(&mut tx, ctx, id).await?)
    }

    /// The organization and team a list covers. A `team_id` or `folder_id` the caller cannot
    /// see (another organization's, or another team's for a team-bound token) is 404, as on
    /// every other route, rather than an empty list.
    async fn list_filter<'c>(
        &self,
        tx: &mut Tx,
        ctx: &'c Ctx,
        team_id: Option<i64>,
        folder_id: Option<i64>,
    ) -> Result<(&'c str, Option<i64>)> {
        let org = ctx.principal.org()?;
        let team = ctx.principal.team_filter(team_id)?;
        if let Some(id) = team_id
            && tx.team(org, id).await?.is_none()
        {
            return Err(CoreError::NotFound {
                what: "team",
                field: Some("team_id"),
            });
        }
        if let Some(id) = folder_id {
            let visible = tx
                .folder(org, id)
                .await?
                .is_some_and(|f| ctx.principal.sees_team(f.team_id));
            if !visible {
                return Err(CoreError::NotFound {
                    what: "folder",
                    field: Some("folder_id"),
                });
            }
        }
        Ok((org, team))
    }

    pub async fn list_credentials(
        &self,
        ctx: &Ctx,
        team_id: Option<i64>,
        folder_id: Option<i64>,
        filter: Option<&str>,
        page: PageRequest,
    ) -> Result<Paged<CredentialView>> {
        if let Some(f) = filter
            && !CREDENTIAL_FILTERS.contains(&f)
        {
            return Err(CoreError::malformed(
                "filter",
                format!("filter must be one of: {}", CREDENTIAL_FILTERS.join(", ")),
            ));
        }
        let mut tx = self.kernel.store().read().await?;
        let (org, team) = self.list_filter(&mut tx, ctx, team_id, folder_id).await?;
        let (rows, count) = tx
            .credentials(org, team, folder_id, filter, page.slice())
            .await?;
        let items = rows
            .iter()
            .map(CredentialView::from_row)
            .collect::<Result<_>>()?;
        Ok(Paged { items, page, count })
    }

    /// `PUT`: replaces the credential; `mode` is required and omitted optional fields reset.
    pub async fn replace_credential(
        &self,
        ctx: &Ctx,
        id: i64,
        input: CredentialInput,
    ) -> Result<CredentialView> {
        // Refused before the lookup, so a viewer cannot tell which ids exist.
        ctx.principal.org_for_write()?;
        self.kernel
            .write(async |tx| {
                let row = self.visible_credential(tx, ctx, id).await?;
                let team = self.writable_team(tx, ctx, row.team_id, None).await?;
                if input.team_id.is_some_and(|t| t != row.team_id) {
                    return Err(CoreError::invalid(
                        "team_id",
                        "a credential cannot move to another team",
                    ));
                }
                let org = team.organization_id.as_str();
                let existing = Existing {
                    row: &row,
                    config: json_col(&row.config, "config")?,
                    secrets: self.open_secrets(&row)?,
                };
                let v = self
                    .validate(tx, org, &team, &input, Some(&existing))
                    .await?;
                let mut updated = self.row_from(
                    org,
                    team.id,
                    &v,
                    row.created_at,
                    // Strictly increasing: the version cached tokens are keyed by.
                    now_ms().max(row.updated_at + 1),
                )?;
                updated.id = row.id;
                updated.secrets = Some(self.seal_secrets(row.id, &v.secrets)?);
                // Tokens a provider issued belong to the configuration that obtained them.
                if existing.config != v.config {
                    tx.delete_credential_tokens(org, row.id).await?;
                }
                tx.update_credential(&updated)
                    .await
                    .map_err(|e| slug_conflict(e, &v, team.id))?;
                audit::append(
                    tx,
                    Event::by(
                        ctx,
                        Some(org),
                        "user_credential.update",
                        "user_credential",
                        row.id,
                    ),
                )
                .await?;
                let stored = tx
                    .credential(org, row.id)
                    .await?
                    .ok_or(CoreError::not_found("credential"))?;
                CredentialView::from_row(&stored)
            })
            .await
    }

    /// Deletes a credential (and its test credential, if any).
    pub async fn delete_credential(&self, ctx: &Ctx, id: i64) -> Result<()> {
        // Refused before the lookup, so a viewer cannot tell which ids exist.
        let org = ctx.principal.org_for_write()?;
        self.kernel
            .write(async |tx| {
                let row = self.visible_credential(tx, ctx, id).await?;
                tx.delete_credential(org, row.id).await?;
                audit::append(
                    tx,
                    Event::by(
                        ctx,
                        Some(org),
                        "user_credential.delete",
                        "user_credential",
                        row.id,
                    ),
                )
                .await?;
                Ok(())
            })
            .await
    }

    // --- teams ---------------------------------------------------------------------------

    /// Teams are made and removed by organization admins (not bound to a team).
    pub async fn create_team(&self, ctx: &Ctx, input: NewTeam) -> Result<TeamView> {
        let org = ctx.principal.org_admin()?;
        let name = Name::parse(
            input
                .name
                .as_deref()
                .ok_or_else(|| CoreError::malformed("name", "name is required"))?,
        )?;
        let slug = Slug::from_name(name.as_str())?;
        self.kernel
            .write(async |tx| {
                let now = now_ms();
                let id = match tx.insert_team(org, name.as_str(), slug.as_str(), now).await {
                    Err(StoreError::Conflict(_)) => {
                        return Err(CoreError::Conflict {
                            field: "name".into(),
                            message: format!("a team with slug {:?} already exists", slug.as_str()),
                        });
                    }
                    other => other?,
                };
                audit::append(tx, Event::by(ctx, Some(org), "team.create", "team", id)).await?;
                Ok(TeamView {
                    id,
                    name: name.as_str().to_owned(),
                    slug: slug.as_str().to_owned(),
                })
            })
            .await
    }

    pub async fn list_teams(&self, ctx: &Ctx, page: PageRequest) -> Result<Paged<TeamView>> {
        let org = ctx.principal.org()?;
        let (rows, count) = self
            .kernel
            .store()
            .read()
            .await?
            .teams(org, ctx.principal.team_id, page.slice())
            .await?;
        Ok(Paged {
            items: rows.into_iter().map(Into::into).collect(),
            page,
            count,
        })
    }

    pub async fn team(&self, ctx: &Ctx, id: i64) -> Result<TeamView> {
        let org = ctx.principal.org()?;
        match self.kernel.store().read().await?.team(org, id).await? {
            Some(team) if ctx.principal.sees_team(team.id) => Ok(team.into()),
            _ => Err(CoreError::not_found("team")),
        }
    }

    /// Deletes a team with its folders and credentials (and tokens bound to it).
    /// Deletes a team with its folders, credentials and the tokens bound to it; each token
    /// and credential gets its own audit event.
    pub async fn delete_team(&self, ctx: &Ctx, id: i64) -> Result<()> {
        let org = ctx.principal.org_admin()?;
        self.kernel
            .write(async |tx| {
                if tx.team(org, id).await?.is_none() {
                    return Err(CoreError::NotFound {
                        what: "team",
                        field: None,
                    });
                }
                for token in tx.delete_team_tokens(org, id).await? {
                    let event =
                        Event::by(ctx, Some(org), "token.delete", "management_token", token);
                    audit::append(tx, event).await?;
                }
                for credential in tx.delete_team_credentials(org, id).await? {
                    let event = Event::by(
                        ctx,
                        Some(org),
                        "user_credential.delete",
                        "user_credential",
                        credential,
                    );
                    audit::append(tx, event).await?;
                }
                tx.delete_team(org, id).await?;
                audit::append(tx, Event::by(ctx, Some(org), "team.delete", "team", id)).await?;
                Ok(())
            })
            .await?;
        // The tokens bound to the team went with it: they fail from the next request on.
        self.kernel.forget_team_tokens(id);
        Ok(())
    }

    // --- folders -------------------------------------------------------------------------

    pub async fn create_folder(&self, ctx: &Ctx, input: NewFolder) -> Result<FolderView> {
        let name = Name::parse(
            input
                .name
                .as_deref()
                .ok_or_else(|| CoreError::malformed("name", "name is required"))?,
        )?;
        let content_type = input.content_type.as_deref().unwrap_or("CREDENTIAL");
        if !FOLDER_CONTENT_TYPES.contains(&content_type) {
            return Err(CoreError::invalid(
                "content_type",
                "content_type must be CREDENTIAL, RESOURCE or STORY",
            ));
        }
        let team_id = input
            .team_id
            .ok_or_else(|| CoreError::malformed("team_id", "team_id is required"))?;
        self.kernel
            .write(async |tx| {
                let team = self
                    .writable_team(tx, ctx, team_id, Some("team_id"))
                    .await?;
                let org = team.organization_id.as_str();
                let id = tx
                    .insert_folder(org, team.id, name.as_str(), content_type, now_ms())
                    .await?;
                audit::append(tx, Event::by(ctx, Some(org), "folder.create", "folder", id)).await?;
                Ok(FolderView {
                    id,
                    name: name.as_str().to_owned(),
                    content_type: content_type.to_owned(),
                    team_id: team.id,
                    size: 0,
                })
            })
            .await
    }

    pub async fn list_folders(
        &self,
        ctx: &Ctx,
        team_id: Option<i64>,
        page: PageRequest,
    ) -> Result<Paged<FolderView>> {
        let mut tx = self.kernel.store().read().await?;
        let (org, team) = self.list_filter(&mut tx, ctx, team_id, None).await?;
        let (rows, count) = tx.folders(org, team, page.slice()).await?;
        Ok(Paged {
            items: rows.into_iter().map(Into::into).collect(),
            page,
            count,
        })
    }

    pub async fn folder(&self, ctx: &Ctx, id: i64) -> Result<FolderView> {
        let org = ctx.principal.org()?;
        match self.kernel.store().read().await?.folder(org, id).await? {
            Some(folder) if ctx.principal.sees_team(folder.team_id) => Ok(folder.into()),
            _ => Err(CoreError::not_found("folder")),
        }
    }

    /// Deletes a folder; its credentials stay, outside any folder.
    pub async fn delete_folder(&self, ctx: &Ctx, id: i64) -> Result<()> {
        self.kernel
            .write(async |tx| {
                let org = ctx.principal.org_for_write()?;
                match tx.folder(org, id).await? {
                    Some(folder) if ctx.principal.sees_team(folder.team_id) => {}
                    _ => return Err(CoreError::not_found("folder")),
                }
                tx.delete_folder(org, id).await?;
                audit::append(tx, Event::by(ctx, Some(org), "folder.delete", "folder", id)).await?;
                Ok(())
            })
            .await
    }
}

fn slug_conflict(e: StoreError, v: &Validated, team_id: i64) -> CoreError {
    match e {
        StoreError::Conflict(_) => CoreError::Conflict {
            field: "name".into(),
            message: format!(
                "a credential with slug {:?} already exists in team {team_id}",
                v.slug.as_str()
            ),
        },
        other => other.into(),
    }
}
