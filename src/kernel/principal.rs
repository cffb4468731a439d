//! Who is calling: the authenticated [`Principal`] (a management token, or an API key a
//! family authenticated), its role and team, and the authorization rules every family
//! shares. [`Ctx`] carries the principal and the request's metadata into audited operations.

use serde::{Deserialize, Serialize};

use super::{CoreError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Creates organizations and their first tokens; sees no organization's resources.
    ServerAdmin,
    Admin,
    Editor,
    Viewer,
    /// Uses the organization's stored credentials (egress) and nothing else: it can neither
    /// read nor change any resource.
    Runner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerAdmin => "server_admin",
            Self::Admin => "admin",
            Self::Editor => "editor",
            Self::Viewer => "viewer",
            Self::Runner => "runner",
        }
    }

    pub(crate) fn parse_stored(s: &str) -> Result<Self> {
        Ok(match s {
            "server_admin" => Self::ServerAdmin,
            "admin" => Self::Admin,
            "editor" => Self::Editor,
            "viewer" => Self::Viewer,
            "runner" => Self::Runner,
            other => {
                return Err(CoreError::Internal(format!(
                    "unknown stored role {other:?}"
                )));
            }
        })
    }
}

/// What authenticated the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    ManagementToken,
    /// An API key a family issued (e.g. a Sunshine key); the family holds what it may reach.
    ApiKey,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The management token's id, or the API key's id.
    pub id: String,
    pub kind: PrincipalKind,
    pub organization_id: Option<String>,
    pub role: Role,
    pub team_id: Option<i64>,
}

impl Principal {
    /// How audit events name this caller.
    pub fn actor(&self) -> String {
        match self.kind {
            PrincipalKind::ApiKey => format!("key:{}", self.id),
            PrincipalKind::ManagementToken => format!("token:{}", self.id),
        }
    }

    pub fn is_server_admin(&self) -> bool {
        self.role == Role::ServerAdmin
    }

    /// The organization whose resources this caller works on.
    pub fn org(&self) -> Result<&str> {
        if self.role == Role::Runner {
            return Err(CoreError::forbidden(
                "this token has the runner role: it may use credentials and nothing else",
            ));
        }
        self.member_org()
    }

    fn member_org(&self) -> Result<&str> {
        self.organization_id.as_deref().ok_or_else(|| {
            CoreError::forbidden("a server-admin token manages organizations and tokens only; use an organization token")
        })
    }

    /// The organization whose credentials this caller may use (admin, editor or runner).
    pub fn org_for_use(&self) -> Result<&str> {
        let org = self.member_org()?;
        if self.role == Role::Viewer {
            return Err(CoreError::forbidden(
                "this token has the viewer role and cannot use credentials",
            ));
        }
        Ok(org)
    }

    /// The organization, for a call that changes something (editor or admin).
    pub fn org_for_write(&self) -> Result<&str> {
        let org = self.org()?;
        if self.role == Role::Viewer {
            return Err(CoreError::forbidden(
                "this token has the viewer role and cannot make changes",
            ));
        }
        Ok(org)
    }

    /// Whether this caller may see resources of `team_id` (team-bound tokens see one team).
    pub fn sees_team(&self, team_id: i64) -> bool {
        self.team_id.is_none_or(|t| t == team_id)
    }

    /// Which team a list covers: the one asked for, limited to the token's own team.
    pub fn team_filter(&self, asked: Option<i64>) -> Result<Option<i64>> {
        match (self.team_id, asked) {
            (Some(bound), Some(asked)) if bound != asked => Err(CoreError::NotFound {
                what: "team",
                field: Some("team_id"),
            }),
            (bound, asked) => Ok(bound.or(asked)),
        }
    }

    /// The organization for organization-wide administration (teams, tokens, audit).
    pub fn org_admin(&self) -> Result<&str> {
        let org = self.org()?;
        if self.role != Role::Admin || self.team_id.is_some() {
            return Err(CoreError::forbidden(
                "this needs an organization admin token that is not bound to a team",
            ));
        }
        Ok(org)
    }

    /// The organization whose audit log this caller may read.
    pub(crate) fn audit_scope(&self, requested: Option<&str>) -> Result<String> {
        match (self.is_server_admin(), requested) {
            (true, Some(org)) if !super::orgs::is_organization_id(org) => {
                Err(CoreError::not_found("organization"))
            }
            (true, Some(org)) => Ok(org.to_owned()),
            (true, None) => Err(CoreError::malformed(
                "organization_id",
                "a server-admin token must name the organization_id whose events to list",
            )),
            (false, Some(org)) if Some(org) != self.organization_id.as_deref() => {
                Err(CoreError::not_found("organization"))
            }
            (false, _) => Ok(self.org_admin()?.to_owned()),
        }
    }

    /// For operations that only organization admins (not editors) and server admins may do.
    pub fn require_admin_of(&self, org: &str) -> Result<()> {
        if self.is_server_admin() {
            return Ok(());
        }
        if self.organization_id.as_deref() != Some(org) {
            return Err(CoreError::not_found("organization"));
        }
        self.org_admin().map(|_| ())
    }
}

/// Who is calling and from where: every audited operation takes one.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub principal: Principal,
    pub request_id: Option<String>,
    pub ip: Option<std::net::IpAddr>,
    /// The client's own transaction id, recorded with audit events.
    pub external_id: Option<String>,
}

impl Ctx {
    pub fn new(principal: Principal, meta: RequestMeta) -> Self {
        Self {
            principal,
            request_id: meta.request_id,
            ip: meta.ip,
            external_id: meta.external_id,
        }
    }
}

/// Request metadata known before authentication (for failed-login events).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub ip: Option<std::net::IpAddr>,
    pub external_id: Option<String>,
}
