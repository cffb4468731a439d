//! Who may do what on the Sunshine surface: management tokens (organization tokens not bound
//! to a team; viewers read only) and API keys of three scopes. One function, [`authorize`],
//! holds every rule; the scope matrix test lists them all.

use std::ops::Deref;

use super::model::KeyScope;
use crate::kernel::{CoreError, Ctx, Result};

/// What a Sunshine API key may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    pub scope: KeyScope,
    pub app_id: Option<String>,
    pub integration_id: Option<String>,
}

/// The caller of a Sunshine route: a management token, or an API key with its grant.
#[derive(Debug, Clone)]
pub struct Caller {
    pub ctx: Ctx,
    pub grant: Option<KeyGrant>,
}

impl Deref for Caller {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}

impl From<Ctx> for Caller {
    /// A management token's caller.
    fn from(ctx: Ctx) -> Self {
        Self { ctx, grant: None }
    }
}

// --- who may do what -------------------------------------------------------------------------

/// What a call touches, for [`authorize`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Op<'a> {
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
/// The caller's organization, before any lookup: a team-bound management token is refused
/// here (Sunshine resources belong to the organization), so whether an id exists never
/// decides its answer.
pub(super) fn organization(caller: &Caller) -> Result<&str> {
    if caller.grant.is_none() && caller.ctx.principal.team_id.is_some() {
        return Err(CoreError::forbidden(
            "a team-bound token cannot manage Sunshine apps",
        ));
    }
    caller.ctx.principal.org()
}

pub(super) fn authorize<'p>(caller: &'p Caller, op: Op<'_>) -> Result<&'p str> {
    let principal = &caller.ctx.principal;
    let org = principal.org()?;
    let Some(grant) = &caller.grant else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Principal, PrincipalKind, RequestMeta, Role};

    fn key(scope: KeyScope, app: Option<&str>, integration: Option<&str>) -> Caller {
        let principal = Principal {
            id: "k".into(),
            kind: PrincipalKind::ApiKey,
            organization_id: Some("org".into()),
            role: Role::Editor,
            team_id: None,
        };
        Caller {
            ctx: Ctx::new(principal, RequestMeta::default()),
            grant: Some(KeyGrant {
                scope,
                app_id: app.map(Into::into),
                integration_id: integration.map(Into::into),
            }),
        }
    }

    fn ok(p: &Caller, op: Op<'_>) -> bool {
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
}
