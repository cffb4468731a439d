//! Using credentials: `POST /api/v1/http_requests` (run one HTTP Request action with its
//! `<<CREDENTIAL.slug>>` references resolved server-side) and
//! `POST /api/v1/user_credentials/{id}/resolve` (the usable value, for non-HTTP callers).
//!
//! The Tines family decides who may use what; the egress engine does the using. A token's
//! team (or `team_id`, for an organization-wide token) chooses the team: it may use its own
//! credentials and those shared with it (`read_access` GLOBAL, or SPECIFIC_TEAMS naming it),
//! its own shadowing a shared one of the same slug. `test: true` uses a credential's test
//! twin when it has one. Admins, editors and runners may use; viewers may not. Every use is
//! audited (`user_credential.use`, with mode, host and outcome) and stamps `last_used_at`; a
//! failed fetch is kept on the credential as `last_error`.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{HeaderValue, header},
    response::IntoResponse,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Tines,
    api::TinesSurface,
    model::{ModeConfig, ReadAccess, json_col},
    store::{CredentialRow, TeamRow},
};
use crate::{
    egress::{
        Credential, EgressError, Kind, Step, Vault,
        aws::AwsAuth,
        credential::BoxFuture,
        host_pattern::HostPattern,
        oauth::{OAuthClient, OAuthTokens},
        request::RequestOptions,
    },
    kernel::{
        CoreError, Ctx, Result,
        http::{
            error::Error,
            extract::{Auth, Json},
        },
    },
};

pub fn routes() -> OpenApiRouter<Tines> {
    OpenApiRouter::new()
        .routes(routes!(http_request))
        .routes(routes!(resolve))
}

/// The body of `POST /api/v1/http_requests`: an HTTP Request action's options.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestInput {
    /// May carry `<<CREDENTIAL.slug>>` in its query.
    pub url: String,
    /// get (default), post, put, patch, delete, head or options.
    #[serde(default)]
    pub method: Option<String>,
    /// json (default), form, xml or text.
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub headers: Option<Map<String, Value>>,
    /// `<<CREDENTIAL.slug>>` of an MTLS credential.
    #[serde(default)]
    pub mutual_tls: Option<String>,
    /// The team whose credentials are used (organization-wide tokens; a team-bound token
    /// uses its own team).
    #[schema(required = true, nullable = false)]
    #[serde(default, deserialize_with = "crate::kernel::types::json_integer")]
    pub team_id: Option<i64>,
    /// Use test credentials where they exist.
    #[serde(default)]
    pub test: Option<bool>,
}

/// The upstream's answer: its status, headers and body (parsed when JSON), with every
/// secret Latchkey substituted replaced by `[redacted]`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HttpRequestAnswer {
    pub status: u16,
    #[schema(value_type = Object)]
    pub headers: Map<String, Value>,
    #[schema(value_type = Object)]
    pub body: Value,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveInput {
    /// Use the test credential when there is one.
    #[serde(default)]
    pub test: Option<bool>,
    /// The team using the credential (organization-wide tokens; default: its own team).
    #[serde(default, deserialize_with = "crate::kernel::types::json_integer")]
    pub team_id: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ResolvedValue {
    /// A string; for AWS ROLE and INSTANCE_PROFILE credentials, temporary keys
    /// `{AccessKeyId, SecretAccessKey, SessionToken, Expiration}`.
    #[schema(value_type = Object)]
    pub value: Value,
}

type Caller = Auth<TinesSurface>;

/// Run an HTTP request the way Tines' HTTP Request action does, with `<<CREDENTIAL.slug>>`
/// resolved server-side. An upstream failure is still a 200 carrying its status.
#[utoipa::path(post, path = "/api/v1/http_requests", tag = "tines", request_body = HttpRequestInput,
    responses((status = 200, body = HttpRequestAnswer), (status = 403), (status = 422),
        (status = 502), (status = 504)),
    security(("bearer" = [])))]
async fn http_request(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    Json(input, ..): Json<TinesSurface, HttpRequestInput>,
) -> std::result::Result<axum::Json<Value>, Error<TinesSurface>> {
    Ok(axum::Json(s.http_request(&ctx, input).await?))
}

/// The usable value of a credential: TEXT's value, a fresh JWT, the current OAuth access
/// token, the token an HTTP request credential fetches.
#[utoipa::path(post, path = "/api/v1/user_credentials/{id}/resolve", tag = "tines",
    params(("id" = i64, Path)), request_body = ResolveInput,
    responses((status = 200, body = ResolvedValue), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn resolve(
    State(s): State<Tines>,
    Auth(ctx, ..): Caller,
    Path(raw): Path<String>,
    body: Option<Json<TinesSurface, ResolveInput>>,
) -> std::result::Result<impl IntoResponse, Error<TinesSurface>> {
    let id = raw
        .parse::<i64>()
        .map_err(|_| CoreError::not_found("credential"))?;
    let input = body.map(|Json(i, ..)| i).unwrap_or_default();
    let (mode, value) = s.resolve(&ctx, id, input).await?;
    let value = match mode {
        "AWS" => serde_json::from_str(value.expose_secret())
            .map_err(|_| CoreError::Internal("AWS keys are not JSON".into()))?,
        _ => Value::String(value.expose_secret().to_owned()),
    };
    let mut response = axum::Json(ResolvedValue { value }).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Looks references up among the credentials one team may use.
struct TeamVault<'a> {
    tines: &'a Tines,
    org: &'a str,
    team: &'a TeamRow,
    test: bool,
}

impl TeamVault<'_> {
    /// References resolve per team and per live/test: the token cache's partition.
    fn partition(&self) -> String {
        format!("{}/{}/{}", self.org, self.team.id, self.test)
    }
}

impl Vault for TeamVault<'_> {
    fn tokens<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, std::result::Result<Option<OAuthTokens>, EgressError>> {
        Box::pin(async move {
            self.tines
                .stored_tokens(self.org, credential.id)
                .await
                .map_err(|e| EgressError::Internal(e.to_string()))
        })
    }

    fn save_tokens<'a>(
        &'a self,
        credential: &'a Credential,
        tokens: &'a OAuthTokens,
    ) -> BoxFuture<'a, std::result::Result<(), EgressError>> {
        Box::pin(async move {
            self.tines
                .store_tokens(self.org, credential.id, credential.version, tokens)
                .await
                .map_err(|e| EgressError::Internal(e.to_string()))
        })
    }

    fn credential<'a>(
        &'a self,
        slug: &'a str,
    ) -> BoxFuture<'a, std::result::Result<Arc<Credential>, EgressError>> {
        Box::pin(async move {
            let row = self
                .tines
                .usable_by_slug(self.org, self.team, slug, self.test)
                .await
                .map_err(|e| match e {
                    CoreError::Invalid { message, .. } => EgressError::Unusable { message },
                    other => EgressError::Internal(other.to_string()),
                })?
                .ok_or_else(|| EgressError::UnknownCredential {
                    slug: slug.to_owned(),
                })?;
            self.tines
                .usable(&row)
                .map(Arc::new)
                .map_err(|e| EgressError::Internal(e.to_string()))
        })
    }
}

/// Whether `team` may use `row`.
fn shared_with(row: &CredentialRow, team: &TeamRow) -> bool {
    if row.team_id == team.id {
        return true;
    }
    match ReadAccess::parse(&row.read_access) {
        Ok(ReadAccess::Global) => true,
        Ok(ReadAccess::SpecificTeams) => {
            json_col::<Vec<String>>(&row.shared_team_slugs, "shared_team_slugs")
                .is_ok_and(|slugs| slugs.contains(&team.slug))
        }
        _ => false,
    }
}

impl Tines {
    /// The team a use acts for, and its organization.
    async fn using_team<'c>(
        &self,
        ctx: &'c Ctx,
        team_id: Option<i64>,
    ) -> Result<(&'c str, TeamRow)> {
        let org = ctx.principal.org_for_use()?;
        let id = match (ctx.principal.team_id, team_id) {
            (Some(bound), Some(asked)) if bound != asked => None,
            (Some(bound), _) => Some(bound),
            (None, asked) => asked,
        };
        let Some(id) = id else {
            if team_id.is_some() {
                return Err(CoreError::NotFound {
                    what: "team",
                    field: Some("team_id"),
                });
            }
            return Err(CoreError::malformed(
                "team_id",
                "team_id is required with an organization-wide token: it names the team whose credentials are used",
            ));
        };
        let mut conn = self.kernel.store().conn().await?;
        let team = conn.team(org, id).await?.ok_or(CoreError::NotFound {
            what: "team",
            field: Some("team_id"),
        })?;
        Ok((org, team))
    }

    /// The credential `slug` names for `team`: its own first, else one shared with it (the
    /// oldest, when several teams share one); its test twin when `test` and it has one.
    async fn usable_by_slug(
        &self,
        org: &str,
        team: &TeamRow,
        slug: &str,
        test: bool,
    ) -> Result<Option<CredentialRow>> {
        let mut conn = self.kernel.store().conn().await?;
        let rows = conn.live_credentials_by_slug(org, slug).await?;
        let own = rows.iter().find(|r| r.team_id == team.id);
        let shared: Vec<&CredentialRow> = rows.iter().filter(|r| shared_with(r, team)).collect();
        let live = match (own, shared.as_slice()) {
            (Some(own), _) => own,
            (None, [one]) => *one,
            (None, []) => return Ok(None),
            // Several teams share one: choosing would let any of them capture the uses.
            (None, _) => {
                return Err(CoreError::invalid(
                    "credential",
                    format!(
                        "credential {slug:?} is shared with this team by several teams; the team needs its own"
                    ),
                ));
            }
        };
        if test && let Some(twin) = conn.credential_twin(org, live.id).await? {
            return Ok(Some(twin));
        }
        Ok(Some(live.clone()))
    }

    /// A stored credential, opened for use.
    pub(super) fn usable(&self, row: &CredentialRow) -> Result<Credential> {
        let config: ModeConfig = json_col(&row.config, "config")?;
        let mut secrets = self.open_secrets(row)?;
        let hosts: Vec<String> = json_col(&row.allowed_hosts, "allowed_hosts")?;
        let allowed_hosts = hosts
            .iter()
            .map(|h| HostPattern::parse(h))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let missing =
            |what: &str| CoreError::Internal(format!("credential {} has no {what}", row.id));
        let kind = match config {
            ModeConfig::Text {} => {
                Kind::Text(secrets.value.take().ok_or_else(|| missing("value"))?)
            }
            ModeConfig::Jwt {
                jwt_algorithm,
                jwt_payload,
                jwt_auto_generate_time_claims,
            } => Kind::Jwt {
                algorithm: jwt_algorithm,
                payload: jwt_payload,
                time_claims: jwt_auto_generate_time_claims,
                key: secrets
                    .jwt_private_key
                    .take()
                    .ok_or_else(|| missing("jwt_private_key"))?,
            },
            ModeConfig::Oauth {
                oauth_token_url,
                oauth_client_id,
                oauth_scope,
                oauth_grant_type,
                ..
            } => {
                let client = OAuthClient {
                    token_url: oauth_token_url,
                    client_id: oauth_client_id,
                    client_secret: secrets.oauth_client_secret.take(),
                };
                if oauth_grant_type == "authorization_code" {
                    Kind::OAuthCode { client }
                } else {
                    Kind::OAuth {
                        client,
                        scope: oauth_scope,
                    }
                }
            }
            ModeConfig::HttpRequestAgent {
                http_request_options,
                http_request_location_of_token,
                http_request_ttl,
                ..
            } => Kind::Fetch {
                steps: vec![Step {
                    options: http_request_options,
                    secret: secrets.http_request_secret.take(),
                }],
                location: http_request_location_of_token,
                ttl: ttl(http_request_ttl),
            },
            ModeConfig::MultiRequest {
                credential_requests,
                http_request_location_of_token,
                http_request_ttl,
            } => {
                let mut request_secrets = std::mem::take(&mut secrets.request_secrets).into_iter();
                Kind::Fetch {
                    steps: credential_requests
                        .into_iter()
                        .map(|r| Step {
                            options: r.options,
                            secret: request_secrets.next().flatten(),
                        })
                        .collect(),
                    location: http_request_location_of_token,
                    ttl: ttl(http_request_ttl),
                }
            }
            ModeConfig::Aws {
                aws_authentication_type,
                aws_access_key,
                aws_assumed_role_arn,
                aws_assumed_role_external_id,
                aws_region,
                aws_service,
            } => Kind::Aws {
                auth: match aws_authentication_type.as_str() {
                    "KEY" => AwsAuth::Key {
                        access_key_id: aws_access_key.ok_or_else(|| missing("aws_access_key"))?,
                        secret_access_key: secrets
                            .aws_secret_key
                            .take()
                            .ok_or_else(|| missing("aws_secret_key"))?,
                    },
                    "ROLE" => AwsAuth::Role {
                        role_arn: aws_assumed_role_arn
                            .ok_or_else(|| missing("aws_assumed_role_arn"))?,
                        external_id: aws_assumed_role_external_id,
                    },
                    _ => AwsAuth::InstanceProfile,
                },
                region: aws_region,
                service: aws_service,
            },
            ModeConfig::Mtls {
                mtls_client_certificate,
                mtls_root_certificate,
            } => Kind::Mtls {
                certificate: mtls_client_certificate,
                key: secrets
                    .mtls_client_private_key
                    .take()
                    .ok_or_else(|| missing("mtls_client_private_key"))?,
                root: mtls_root_certificate,
            },
        };
        let mode = super::model::CredentialMode::parse(&row.mode)?;
        Ok(Credential {
            id: row.id,
            version: row.updated_at,
            slug: row.slug.clone(),
            mode: mode.as_str(),
            allowed_hosts,
            kind,
        })
    }

    pub async fn http_request(&self, ctx: &Ctx, input: HttpRequestInput) -> Result<Value> {
        let (org, team) = self.using_team(ctx, input.team_id).await?;
        let options = RequestOptions {
            url: input.url,
            method: input.method,
            content_type: input.content_type,
            payload: input.payload,
            headers: input.headers,
            mutual_tls: input.mutual_tls,
        };
        let vault = TeamVault {
            tines: self,
            org,
            team: &team,
            test: input.test.unwrap_or(false),
        };
        let session = self.egress.session(org, &vault.partition(), &vault);
        let result = session.http_request(options).await;
        self.records
            .record(&self.kernel, ctx, org, "http_request", session.uses())
            .await?;
        Ok(result?)
    }

    /// The value, and the credential's mode.
    pub async fn resolve(
        &self,
        ctx: &Ctx,
        id: i64,
        input: ResolveInput,
    ) -> Result<(&'static str, SecretString)> {
        ctx.principal.org_for_use()?;
        // The team is settled before the credential is looked up (when the caller names it or
        // is bound to one), so the answer never depends on whether another team's id exists.
        let named = input.team_id.or(ctx.principal.team_id);
        let using = match named {
            Some(team) => Some(self.using_team(ctx, Some(team)).await?),
            None => None,
        };
        let org = ctx.principal.organization_id.as_deref().unwrap_or_default();
        let row = {
            let mut conn = self.kernel.store().conn().await?;
            conn.credential(org, id)
                .await?
                .ok_or(CoreError::not_found("credential"))?
        };
        let (org, team) = match using {
            Some(using) => using,
            None => self.using_team(ctx, Some(row.team_id)).await?,
        };
        if row.live_credential_id.is_some() || !shared_with(&row, &team) {
            return Err(CoreError::not_found("credential"));
        }
        let row = match input.test {
            Some(true) => {
                let mut conn = self.kernel.store().conn().await?;
                conn.credential_twin(org, row.id).await?.unwrap_or(row)
            }
            _ => row,
        };
        let credential = Arc::new(self.usable(&row)?);
        let vault = TeamVault {
            tines: self,
            org,
            team: &team,
            test: input.test.unwrap_or(false),
        };
        let session = self.egress.session(org, &vault.partition(), &vault);
        let mode = credential.mode;
        let result = session.resolve(credential).await;
        self.records
            .record(&self.kernel, ctx, org, "resolve", session.uses())
            .await?;
        Ok((mode, result?))
    }
}

fn ttl(seconds: Option<i64>) -> Option<std::time::Duration> {
    seconds
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .map(std::time::Duration::from_secs)
}
