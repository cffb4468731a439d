//! Connecting an OAUTH `authorization_code` credential: creating (or replacing) one answers a
//! `redirect_url` to the provider's `oauth_url` with a `state` and, when asked, a PKCE
//! challenge; the provider sends the user's browser to `GET /oauth2/callback?code&state` on
//! Latchkey's public URL, which exchanges the code and keeps the tokens, sealed under
//! `(user_credential_tokens, credential id, tokens)`.
//!
//! The state is stateless and sealed: `{credential id}.{AEAD of (organization, the
//! credential's updated_at, redirect_uri, PKCE verifier, expiry)}`, so it cannot be forged,
//! read (the verifier stays secret) or moved to another credential, and it stops working when
//! the credential changes or after ten minutes.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use zeroize::Zeroizing;

use super::{
    Tines,
    api::TinesSurface,
    model::{ModeConfig, json_col},
    store::CredentialRow,
};
use crate::{
    crypto::keyring::Aad,
    egress::{Kind, oauth::OAuthTokens},
    kernel::{
        CoreError, Result,
        audit::{self, Event, Outcome},
        http::extract::Query,
        now_ms,
    },
};

/// How long a `redirect_url` can be used.
const STATE_TTL_MS: i64 = 10 * 60 * 1000;

pub fn routes() -> OpenApiRouter<Tines> {
    OpenApiRouter::new().routes(routes!(callback))
}

#[derive(Serialize, Deserialize)]
struct StatePayload {
    /// Organization.
    o: String,
    /// The credential's `updated_at` when the URL was made.
    u: i64,
    /// redirect_uri.
    r: String,
    /// PKCE verifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<String>,
    /// Expiry, epoch ms.
    e: i64,
}

fn state_aad(id: &str) -> Aad<'_> {
    Aad {
        table: "oauth_state",
        row_id: id,
        column: "state",
    }
}

fn tokens_aad(id: &str) -> Aad<'_> {
    Aad {
        table: "user_credential_tokens",
        row_id: id,
        column: "tokens",
    }
}

/// `GET /oauth2/callback`'s query, as the provider sends it (RFC 6749 §4.1.2).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Where the provider sends the user back after they authorized an OAUTH
/// `authorization_code` credential. Answers a short HTML page.
#[utoipa::path(get, path = "/oauth2/callback", tag = "tines", params(CallbackParams),
    responses((status = 200, description = "connected", content_type = "text/html"),
        (status = 400, description = "not connected", content_type = "text/html")))]
async fn callback(
    State(s): State<Tines>,
    Query(q, ..): Query<TinesSurface, CallbackParams>,
) -> Response {
    match s.connect(q).await {
        Ok(name) => page(
            StatusCode::OK,
            &format!(
                "The credential {} is connected. You can close this window.",
                escape(&name)
            ),
        ),
        Err(message) => page(StatusCode::BAD_REQUEST, &escape(&message)),
    }
}

fn page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Latchkey</title></head>\
         <body><p>{message}</p></body></html>"
    );
    let mut response = (status, Html(body)).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Tines {
    /// The URL that starts connecting `row`, when it is an authorization code credential.
    pub(super) fn connect_url(
        &self,
        row: &CredentialRow,
        headers: &HeaderMap,
    ) -> Result<Option<String>> {
        let config: ModeConfig = json_col(&row.config, "config")?;
        let ModeConfig::Oauth {
            oauth_url: Some(oauth_url),
            oauth_client_id,
            oauth_scope,
            oauth_grant_type,
            oauth_pkce_code_challenge_method,
            ..
        } = config
        else {
            return Ok(None);
        };
        if oauth_grant_type != "authorization_code" {
            return Ok(None);
        }
        let redirect_uri = format!("{}/oauth2/callback", self.public_url.base(headers));
        let pkce = oauth_pkce_code_challenge_method
            .as_deref()
            .map(crate::egress::oauth::pkce)
            .transpose()
            .map_err(CoreError::Internal)?;
        let payload = StatePayload {
            o: row.organization_id.clone(),
            u: row.updated_at,
            r: redirect_uri.clone(),
            v: pkce.as_ref().map(|(verifier, _)| verifier.clone()),
            e: now_ms() + STATE_TTL_MS,
        };
        let plain = Zeroizing::new(
            serde_json::to_vec(&payload).map_err(|e| CoreError::Internal(e.to_string()))?,
        );
        let id = row.id.to_string();
        let sealed = self.kernel.keyring().seal(&state_aad(&id), &plain)?;
        let state = format!(
            "{id}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
        );
        let mut url = url::Url::parse(&oauth_url)
            .map_err(|_| CoreError::Internal("stored oauth_url is not a URL".into()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &oauth_client_id)
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("state", &state);
            if let Some(scope) = oauth_scope.as_deref().filter(|s| !s.is_empty()) {
                q.append_pair("scope", scope);
            }
            if let (Some((_, challenge)), Some(method)) = (&pkce, &oauth_pkce_code_challenge_method)
            {
                q.append_pair("code_challenge", challenge)
                    .append_pair("code_challenge_method", method);
            }
        }
        Ok(Some(url.to_string()))
    }

    /// Sets `redirect_url` on the answer to a create or replace of an authorization code
    /// credential.
    pub async fn add_connect_url(
        &self,
        ctx: &crate::kernel::Ctx,
        view: &mut super::model::CredentialView,
        headers: &HeaderMap,
    ) -> Result<()> {
        if view.mode != "OAUTH" {
            return Ok(());
        }
        let org = ctx.principal.org()?;
        let mut conn = self.kernel.store().conn().await?;
        if let Some(row) = conn.credential(org, view.id).await? {
            view.redirect_url = self.connect_url(&row, headers)?;
        }
        Ok(())
    }

    /// Exchanges the code of a callback and keeps the tokens. The error is for the page.
    async fn connect(&self, q: CallbackParams) -> std::result::Result<String, String> {
        let invalid = || {
            "This link is not valid (or has expired). Start again from the credential.".to_owned()
        };
        let state = q.state.as_deref().ok_or_else(invalid)?;
        let (id, sealed) = state.split_once('.').ok_or_else(invalid)?;
        let credential_id: i64 = id.parse().map_err(|_| invalid())?;
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| invalid())?;
        let plain = self
            .kernel
            .keyring()
            .open(&state_aad(id), &sealed)
            .map_err(|_| invalid())?;
        let payload: StatePayload = serde_json::from_slice(&plain).map_err(|_| invalid())?;
        if payload.e < now_ms() {
            return Err(invalid());
        }
        let org = payload.o.as_str();
        let row = {
            let mut conn = self.kernel.store().conn().await.map_err(|_| invalid())?;
            conn.credential(org, credential_id)
                .await
                .map_err(|_| invalid())?
        }
        .filter(|r| r.updated_at == payload.u)
        .ok_or_else(invalid)?;
        if let Some(error) = &q.error {
            let code: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            let message = format!("the provider refused the authorization ({code})");
            self.keep_error(org, credential_id, &message).await;
            return Err(format!("The credential is not connected: {message}."));
        }
        let code = q
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(invalid)?;
        let credential = self.usable(&row).map_err(|_| invalid())?;
        let Kind::OAuthCode { client } = &credential.kind else {
            return Err(invalid());
        };
        let mut grant = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", payload.r.as_str()),
        ];
        if let Some(verifier) = &payload.v {
            grant.push(("code_verifier", verifier));
        }
        let tokens = match self
            .egress
            .token_request(org, client, (row.id, row.updated_at), &grant)
            .await
        {
            Ok(tokens) => tokens,
            Err(message) => {
                let message = format!("exchanging the authorization code failed: {message}");
                self.keep_error(org, credential_id, &message).await;
                return Err(format!("The credential is not connected: {message}."));
            }
        };
        self.store_tokens_audited(org, &row, &tokens)
            .await
            .map_err(|_| "The credential could not be saved; try again.".to_owned())?;
        Ok(row.name)
    }

    async fn keep_error(&self, org: &str, id: i64, message: &str) {
        let result = self
            .kernel
            .write(async |tx| Ok(tx.set_credential_error(org, id, message, now_ms()).await?))
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not keep a credential's error");
        }
    }

    fn seal_tokens(&self, id: i64, tokens: &OAuthTokens) -> Result<Vec<u8>> {
        let plain = Zeroizing::new(
            serde_json::to_vec(tokens).map_err(|e| CoreError::Internal(e.to_string()))?,
        );
        Ok(self
            .kernel
            .keyring()
            .seal(&tokens_aad(&id.to_string()), &plain)?)
    }

    async fn store_tokens_audited(
        &self,
        org: &str,
        row: &CredentialRow,
        tokens: &OAuthTokens,
    ) -> Result<()> {
        let sealed = self.seal_tokens(row.id, tokens)?;
        self.kernel
            .write(async |tx| {
                // Connecting is a change of the credential: its version moves on, so this
                // state (bound to the old one) cannot connect it again.
                let now = now_ms();
                let next = now.max(row.updated_at + 1);
                if !tx
                    .bump_credential_version(org, row.id, row.updated_at, next)
                    .await?
                {
                    return Err(CoreError::Conflict {
                        field: "state".into(),
                        message: "the credential changed while it was being connected".into(),
                    });
                }
                tx.set_credential_tokens(org, row.id, &sealed, now).await?;
                let event = Event {
                    organization_id: Some(org),
                    actor: "oauth_callback".to_owned(),
                    action: "user_credential.connect",
                    target_type: "user_credential",
                    target_id: Some(row.id.to_string()),
                    outcome: Outcome::Success,
                    request_id: None,
                    ip: None,
                    external_id: None,
                    detail: Some(json!({"mode": "OAUTH"})),
                };
                audit::append(tx, event).await?;
                Ok(())
            })
            .await
    }

    /// The tokens of a connected credential.
    pub(super) async fn stored_tokens(&self, org: &str, id: i64) -> Result<Option<OAuthTokens>> {
        let mut conn = self.kernel.store().conn().await?;
        let Some(sealed) = conn.credential_tokens(org, id).await? else {
            return Ok(None);
        };
        let plain = self
            .kernel
            .keyring()
            .open(&tokens_aad(&id.to_string()), &sealed)?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|_| CoreError::Internal("stored tokens are not valid".into()))
    }

    /// Keeps refreshed tokens, unless the credential changed since `version`.
    pub(super) async fn store_tokens(
        &self,
        org: &str,
        id: i64,
        version: i64,
        tokens: &OAuthTokens,
    ) -> Result<()> {
        let sealed = self.seal_tokens(id, tokens)?;
        self.kernel
            .write(async |tx| {
                if tx
                    .replace_credential_tokens(org, id, version, &sealed, now_ms())
                    .await?
                {
                    Ok(())
                } else {
                    Err(CoreError::Conflict {
                        field: "credential".into(),
                        message: "the credential changed while its token was refreshed".into(),
                    })
                }
            })
            .await
    }
}
