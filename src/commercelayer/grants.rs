//! The grants that follow an authorization: `authorization_code` (with PKCE) and
//! `refresh_token` at the token endpoint, and the revocation of a grant — its refresh tokens
//! and, through the feed, its access tokens on every node. A code presented twice, or a
//! rotated-out refresh token presented again, revokes the whole grant (OAuth 2.1).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{
    CommerceLayer,
    authorize::SECRET_LEN,
    model::{Scope, WEBAPP},
    oauth::{client_event, invalid_grant, invalid_request, oauth_error},
    params::Params,
    store::{AuthorizationKey, AuthorizationRow, RefreshRow},
    verify::{LiveClient, OwnerClaim},
};
use crate::{
    crypto::{pkce_s256, secret::random_base62, secrets_equal},
    kernel::{audit, http::error::ApiError, now_ms},
};

/// How long a refresh token lives.
const REFRESH_MS: i64 = 14 * 24 * 60 * 60 * 1000;

/// A grant a token comes from: its id and who signed in.
pub struct Grant {
    pub id: String,
    pub owner_id: String,
    pub owner_type: String,
}

impl Grant {
    pub fn owner_claim(&self) -> OwnerClaim {
        let kind = if self.owner_type == "user" {
            "User"
        } else {
            "Customer"
        };
        OwnerClaim {
            id: self.owner_id.clone(),
            kind: kind.to_owned(),
        }
    }
}

impl CommerceLayer {
    /// Revokes a grant: its refresh tokens, and its access tokens on every node. Audited,
    /// with the reason (a replay is the sign of a stolen code or token).
    async fn revoke_grant(
        &self,
        row: &AuthorizationRow,
        client: &LiveClient,
        reason: &'static str,
    ) -> Result<(), ApiError> {
        tracing::warn!(grant = %row.id, client = %client.id, reason, "revoking an authorization-code grant");
        // Kept as long as any token it issued could still be presented.
        let until = now_ms() + (client.expires_in * 1000).max(REFRESH_MS);
        let id = row.id.clone();
        self.kernel
            .write(async |tx| {
                tx.revoke_cl_authorization(&id, until).await?;
                tx.revoke(&self.grants, [id.clone()]);
                let event = client_event(
                    &client.organization_id,
                    &client.id,
                    "authorization.revoke",
                    "authorization",
                    &id,
                );
                audit::append(tx, event).await?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// A refresh token for `grant`, stored as an HMAC, and the grant kept while it lives.
    async fn issue_refresh_token(
        &self,
        tx: &mut crate::kernel::tx::WriteTx,
        grant_id: &str,
        scope: &str,
    ) -> crate::kernel::Result<SecretString> {
        let token = SecretString::from(random_base62(SECRET_LEN)?);
        let now = now_ms();
        let row = RefreshRow {
            authorization_id: grant_id.to_owned(),
            scope: scope.to_owned(),
            created_at: now,
            expires_at: now + REFRESH_MS,
            used_at: None,
        };
        tx.insert_cl_refresh_token(&self.kernel.hash_secret(token.expose_secret()), &row)
            .await?;
        Ok(token)
    }

    /// `grant_type=authorization_code`.
    pub(super) async fn authorization_code(&self, params: &Params) -> Result<Response, ApiError> {
        let (client, confidential) = self.authenticate_client(params).await?;
        self.charge_token_quota(&client, confidential, params)?;
        if client.kind != WEBAPP {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "Only webapp clients use the authorization_code grant",
            ));
        }
        let Some(code) = params.get("code") else {
            return Err(invalid_request("code is required"));
        };
        let found = {
            let hash = self.kernel.hash_secret(code);
            let mut conn = self.kernel.store().conn().await?;
            conn.cl_authorization_by(AuthorizationKey::Code, &hash)
                .await?
        };
        let Some(mut row) = found.filter(|r| r.api_credential_id == client.id) else {
            return Err(invalid_grant("The authorization code is invalid"));
        };
        if row.status == "active" {
            // A code presented twice: whoever has it, what it issued is revoked.
            self.revoke_grant(&row, &client, "authorization code presented twice")
                .await?;
            return Err(invalid_grant("The authorization code was already used"));
        }
        if row.status != "code" || row.expires_at <= now_ms() {
            return Err(invalid_grant(
                "The authorization code is invalid or expired",
            ));
        }
        if params.get("redirect_uri") != Some(row.redirect_uri.as_str())
            || client.redirect_uri.as_deref() != Some(row.redirect_uri.as_str())
        {
            return Err(invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        let verified = match (row.code_challenge.as_deref(), params.get("code_verifier")) {
            (None, None) => true,
            (Some(challenge), Some(verifier)) => {
                let derived = if row.code_challenge_method.as_deref() == Some("S256") {
                    pkce_s256(verifier)
                } else {
                    verifier.to_owned()
                };
                secrets_equal(derived.as_bytes(), challenge.as_bytes())
            }
            _ => false,
        };
        if !verified {
            return Err(invalid_grant("The PKCE code_verifier does not match"));
        }
        let grant = Grant {
            id: row.id.clone(),
            owner_id: row.owner_id.clone().unwrap_or_default(),
            owner_type: row.owner_type.clone().unwrap_or_default(),
        };
        let scope = Scope::parse(&row.scope).map_err(|e| invalid_grant(e.0))?;
        // The code's hash stays, so a second presentation is recognised (and revokes).
        row.status = "active".to_owned();
        row.expires_at = now_ms() + (client.expires_in * 1000).max(REFRESH_MS);
        let refresh = self
            .kernel
            .write(async |tx| {
                if !tx.advance_cl_authorization(&row, "code").await? {
                    return Ok(None);
                }
                Ok(Some(
                    self.issue_refresh_token(tx, &row.id, &row.scope).await?,
                ))
            })
            .await?;
        let Some(refresh) = refresh else {
            // Another redemption won the race: the code was presented twice.
            self.revoke_grant(&row, &client, "authorization code presented twice")
                .await?;
            return Err(invalid_grant("The authorization code was already used"));
        };
        let token = self
            .issue_access_token(&client, confidential, &scope, &params.headers, Some(&grant))
            .await?;
        Ok(token.with_grant(&refresh, &grant).into_response())
    }

    /// `grant_type=refresh_token`: rotates the refresh token.
    pub(super) async fn refresh_token(&self, params: &Params) -> Result<Response, ApiError> {
        let (client, confidential) = self.authenticate_client(params).await?;
        self.charge_token_quota(&client, confidential, params)?;
        let Some(presented) = params.get("refresh_token") else {
            return Err(invalid_request("refresh_token is required"));
        };
        let hash = self.kernel.hash_secret(presented);
        let (refresh, row) = {
            let mut conn = self.kernel.store().conn().await?;
            let refresh = conn.cl_refresh_token(&hash).await?;
            let row = match &refresh {
                Some(r) => conn.cl_authorization(&r.authorization_id).await?,
                None => None,
            };
            (refresh, row)
        };
        let (Some(refresh), Some(row)) =
            (refresh, row.filter(|r| r.api_credential_id == client.id))
        else {
            return Err(invalid_grant("The refresh token is invalid"));
        };
        if refresh.used_at.is_some() {
            // A rotated-out token presented again: someone else has the family.
            self.revoke_grant(&row, &client, "refresh token presented twice")
                .await?;
            return Err(invalid_grant("The refresh token was already used"));
        }
        if row.status != "active" || refresh.expires_at <= now_ms() {
            return Err(invalid_grant("The refresh token is invalid or expired"));
        }
        let granted = Scope::parse(&refresh.scope).map_err(|e| invalid_grant(e.0))?;
        let scope = match params.get("scope") {
            None => granted,
            Some(raw) => match Scope::parse(raw) {
                Ok(s) if s.within(&granted) => s,
                _ => {
                    return Err(oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        "A refresh may only narrow the granted scope",
                    ));
                }
            },
        };
        let grant = Grant {
            id: row.id.clone(),
            owner_id: row.owner_id.clone().unwrap_or_default(),
            owner_type: row.owner_type.clone().unwrap_or_default(),
        };
        let next = self
            .kernel
            .write(async |tx| {
                if !tx.use_cl_refresh_token(&hash, now_ms()).await? {
                    return Ok(None);
                }
                Ok(Some(
                    self.issue_refresh_token(tx, &row.id, &refresh.scope)
                        .await?,
                ))
            })
            .await?;
        let Some(next) = next else {
            self.revoke_grant(&row, &client, "refresh token presented twice")
                .await?;
            return Err(invalid_grant("The refresh token was already used"));
        };
        let token = self
            .issue_access_token(&client, confidential, &scope, &params.headers, Some(&grant))
            .await?;
        Ok(token.with_grant(&next, &grant).into_response())
    }

    /// What introspection says of a refresh token that is still usable, and its
    /// organization.
    pub(super) async fn refresh_token_info(
        &self,
        presented: &str,
    ) -> Result<Option<(serde_json::Value, String, String)>, ApiError> {
        let hash = self.kernel.hash_secret(presented);
        let mut conn = self.kernel.store().conn().await?;
        let Some(refresh) = conn.cl_refresh_token(&hash).await? else {
            return Ok(None);
        };
        let Some(row) = conn.cl_authorization(&refresh.authorization_id).await? else {
            return Ok(None);
        };
        if refresh.used_at.is_some() || row.status != "active" || refresh.expires_at <= now_ms() {
            return Ok(None);
        }
        let Some(client) = conn
            .cl_credential(&row.organization_id, &row.api_credential_id)
            .await?
        else {
            return Ok(None);
        };
        let info = json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": refresh.scope,
            "client_id": client.client_id,
            "exp": refresh.expires_at / 1000,
            "iat": refresh.created_at / 1000,
            "sub": row.owner_id,
            "owner_type": row.owner_type,
            "organization_id": row.organization_id,
        });
        Ok(Some((info, row.organization_id, row.api_credential_id)))
    }

    /// Revokes the grant of a refresh token the client presents (RFC 7009 §2.1: its access
    /// tokens go too). Another client's token, or none, changes nothing.
    pub(super) async fn revoke_refresh_token(
        &self,
        client: &LiveClient,
        presented: &str,
    ) -> Result<bool, ApiError> {
        let hash = self.kernel.hash_secret(presented);
        let row = {
            let mut conn = self.kernel.store().conn().await?;
            match conn.cl_refresh_token(&hash).await? {
                Some(r) => conn.cl_authorization(&r.authorization_id).await?,
                None => None,
            }
        };
        match row {
            Some(row) if row.api_credential_id == client.id => {
                self.revoke_grant(&row, client, "refresh token revoked by its client")
                    .await?;
                Ok(true)
            }
            Some(_) => Err(oauth_error(
                StatusCode::FORBIDDEN,
                "unauthorized_client",
                "You are not authorized to revoke this token",
            )),
            None => Ok(false),
        }
    }
}
