//! The authorization-code flow, through a login hand-off (as Ory Hydra does it): Latchkey
//! has no end users, the platform does.
//!
//! 1. `GET /oauth/authorize` checks the client (a `webapp`), its exact `redirect_uri`, the
//!    scope and PKCE, records a login request, and sends the browser to the organization's
//!    login URL with a `login_challenge`.
//! 2. The platform signs its user in and calls `PUT /v1/oauth/login_requests/{challenge}/accept`
//!    (a management token) with the user's id; the answer is where to send the browser next:
//!    back to `/oauth/authorize` with a one-time `login_verifier`.
//! 3. Latchkey redirects to the client's `redirect_uri` with a `code` and the `state`.
//! 4. The client redeems the code at `/oauth/token` (`grants`) (with its secret, and the PKCE verifier)
//!    for an access token and a refresh token. Codes are single-use and live ten minutes; a
//!    code presented twice revokes everything issued from it. Refresh tokens rotate on every
//!    use and live two weeks; one presented again revokes its whole grant (OAuth 2.1).
//!
//! Every secret of the flow (verifier, code, refresh token) is stored as an HMAC.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    CommerceLayer,
    model::{Scope, WEBAPP, check_browser_url},
    oauth::{invalid_request, oauth_error},
    service::{Access, organization},
    store::{AuthorizationKey, AuthorizationRow, SettingsRow},
};
use crate::{
    crypto::{jwt::JwtAlgorithm, secret::random_base62},
    kernel::{
        CoreError,
        audit::{self, Event},
        http::{
            error::{ApiError, Error},
            extract::{Auth, Json, Query},
            native::Native,
        },
        now_ms,
    },
};

/// How long a login request, its verifier and a code stay usable.
const STEP_MS: i64 = 10 * 60 * 1000;
/// Longest `state` (it travels in the login challenge) and login subject.
const MAX_STATE: usize = 512;
const MAX_SUBJECT: usize = 255;
/// Characters of generated challenges and secrets (base62: 43 ≈ 256 bits).
pub(super) const SECRET_LEN: usize = 43;

/// The algorithms an organization may sign its access tokens with.
const TOKEN_ALGORITHMS: &[JwtAlgorithm] = &[
    JwtAlgorithm::RS512,
    JwtAlgorithm::RS256,
    JwtAlgorithm::ES256,
    JwtAlgorithm::EdDSA,
];

type NativeResult<T> = std::result::Result<T, Error<Native>>;

fn random() -> Result<String, ApiError> {
    Ok(random_base62(SECRET_LEN)?)
}

/// `uri` with `pairs` added to its query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.into()
        }
        Err(_) => uri.to_owned(),
    }
}

// --- settings --------------------------------------------------------------------------------

/// An organization's OAuth settings.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Settings {
    /// Where `/oauth/authorize` sends the browser to sign the user in (with
    /// `?login_challenge=…`): an https URL, or http on a loopback host.
    pub login_url: Option<String>,
    /// What signs the organization's access tokens: `RS512` (the default), `RS256`,
    /// `ES256` or `EdDSA`.
    #[serde(default)]
    pub token_algorithm: Option<String>,
}

impl CommerceLayer {
    async fn settings(&self, org: &str) -> Result<SettingsRow, ApiError> {
        let mut conn = self.kernel.store().conn().await?;
        let row = conn.cl_settings(org).await?;
        Ok(row.unwrap_or_else(|| SettingsRow {
            organization_id: org.to_owned(),
            login_url: None,
            token_algorithm: JwtAlgorithm::RS512.as_str().to_owned(),
            updated_at: 0,
        }))
    }

    async fn put_settings(
        &self,
        ctx: &crate::kernel::Ctx,
        input: Settings,
    ) -> Result<SettingsRow, ApiError> {
        let org = organization(ctx, Access::Admin)?;
        let login_url = input.login_url.as_deref().map(str::trim).map(str::to_owned);
        if let Some(url) = &login_url {
            check_browser_url(url)
                .map_err(|why| CoreError::invalid("login_url", format!("login_url {why}")))?;
        }
        let algorithm = match input.token_algorithm.as_deref() {
            None => JwtAlgorithm::RS512,
            Some(name) => JwtAlgorithm::parse(name)
                .filter(|a| TOKEN_ALGORITHMS.contains(a))
                .ok_or_else(|| {
                    CoreError::invalid("token_algorithm", "must be RS512, RS256, ES256 or EdDSA")
                })?,
        };
        let row = SettingsRow {
            organization_id: org.to_owned(),
            login_url,
            token_algorithm: algorithm.as_str().to_owned(),
            updated_at: now_ms(),
        };
        self.kernel
            .write(async |tx| {
                tx.put_cl_settings(&row).await?;
                // Its clients sign with the new algorithm from their next token, on every node.
                let clients = tx.cl_client_ids(org).await?;
                tx.refresh(&self.clients, clients);
                let event = Event::by(ctx, Some(org), "oauth_settings.update", "organization", org);
                audit::append(tx, event).await?;
                Ok(())
            })
            .await?;
        Ok(row)
    }
}

fn settings_view(row: &SettingsRow) -> Settings {
    Settings {
        login_url: row.login_url.clone(),
        token_algorithm: Some(row.token_algorithm.clone()),
    }
}

/// The organization's OAuth settings.
#[utoipa::path(get, path = "/v1/oauth/settings", tag = "commercelayer",
    responses((status = 200, body = Settings)), security(("bearer" = [])))]
async fn get_settings(
    State(s): State<CommerceLayer>,
    Auth(ctx, ..): Auth<Native>,
) -> NativeResult<axum::Json<Settings>> {
    let org = organization(&ctx, Access::Read)?;
    Ok(axum::Json(settings_view(&s.settings(org).await?)))
}

/// Sets the organization's login URL and token algorithm (organization admins).
#[utoipa::path(put, path = "/v1/oauth/settings", tag = "commercelayer", request_body = Settings,
    responses((status = 200, body = Settings), (status = 422)), security(("bearer" = [])))]
async fn put_settings(
    State(s): State<CommerceLayer>,
    Auth(ctx, ..): Auth<Native>,
    input: Option<Json<Native, Settings>>,
) -> NativeResult<axum::Json<Settings>> {
    // A replace names every setting: an empty body is refused, not read as "all defaults".
    let Some(Json(input, ..)) = input else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body must be a JSON object",
        )
        .into());
    };
    Ok(axum::Json(settings_view(
        &s.put_settings(&ctx, input).await?,
    )))
}

// --- step 1: /oauth/authorize ----------------------------------------------------------------

/// (No `Debug`: it may hold a login verifier.)
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// Step 3: the verifier the accepted login request handed back.
    login_verifier: Option<String>,
}

/// A redirect to the client with an error (RFC 6749 §4.1.2.1).
fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> Response {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    Redirect::to(&with_query(redirect_uri, &pairs)).into_response()
}

/// PKCE's `code_challenge` (RFC 7636 §4.2): 43 to 128 unreserved characters.
fn valid_challenge(challenge: &str) -> bool {
    (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl CommerceLayer {
    async fn start_authorization(&self, q: &AuthorizeQuery) -> Result<Response, ApiError> {
        // Until the client and its redirect URI are known good, errors are shown, never
        // redirected (an open redirector otherwise).
        let client = match q.client_id.as_deref() {
            Some(id) => self.live_client(id).await?,
            None => None,
        };
        let Some(client) = client.filter(|c| c.kind == WEBAPP) else {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "client_id does not name a webapp api credential",
            ));
        };
        let Some(registered) = client.redirect_uri.clone() else {
            return Err(invalid_request("the client has no redirect_uri"));
        };
        if q.redirect_uri.as_deref().is_some_and(|r| r != registered) {
            return Err(invalid_request(
                "redirect_uri does not match the one registered for this client",
            ));
        }
        let state = q.state.as_deref();
        if state.is_some_and(|s| s.len() > MAX_STATE) {
            return Err(invalid_request("state is too long"));
        }
        let fail = |error: &str, description: &str| {
            Ok(error_redirect(&registered, error, description, state))
        };
        if q.response_type.as_deref() != Some("code") {
            return fail("unsupported_response_type", "response_type must be code");
        }
        let allowed = Scope::parse(&client.scopes)
            .map_err(|_| CoreError::Internal(format!("stored scopes of {}", client.id)))?;
        let scope = match q.scope.as_deref() {
            None => allowed,
            Some(raw) => match Scope::parse(raw) {
                Ok(scope) if scope.within(&allowed) && !scope.is_provisioning() => scope,
                _ => {
                    return fail(
                        "invalid_scope",
                        "the requested scope is not granted to this client",
                    );
                }
            },
        };
        let method = match (&q.code_challenge, q.code_challenge_method.as_deref()) {
            (None, None) => None,
            (Some(c), m) if valid_challenge(c) && matches!(m, None | Some("S256" | "plain")) => {
                Some(m.unwrap_or("plain").to_owned())
            }
            _ => {
                return fail(
                    "invalid_request",
                    "code_challenge must be 43 to 128 characters, with method S256 or plain",
                );
            }
        };
        let Some(login_url) = self.settings(&client.organization_id).await?.login_url else {
            return fail(
                "server_error",
                "the organization has no login URL configured",
            );
        };
        // Nothing is stored for an unauthenticated request: the login request travels sealed
        // in the challenge, and becomes a row only when the platform answers it.
        let request = LoginChallenge {
            credential: client.id.clone(),
            organization: client.organization_id.clone(),
            state: q.state.clone(),
            scope: scope.to_string(),
            code_challenge: q.code_challenge.clone(),
            method,
            expires_at: now_ms() + STEP_MS,
            nonce: random_base62(16)?,
        };
        let challenge = self.seal_challenge(&request)?;
        Ok(
            Redirect::to(&with_query(&login_url, &[("login_challenge", &challenge)]))
                .into_response(),
        )
    }

    /// Step 3: the browser is back with the verifier; it goes on to the client with a code.
    async fn finish_authorization(&self, verifier: &str) -> Result<Response, ApiError> {
        let hash = self.kernel.hash_secret(verifier);
        let found = {
            let mut conn = self.kernel.store().conn().await?;
            conn.cl_authorization_by(AuthorizationKey::Verifier, &hash)
                .await?
        };
        let Some(mut row) = found.filter(|r| r.status == "accepted" && r.expires_at > now_ms())
        else {
            return Err(invalid_request(
                "login_verifier is unknown, used or expired",
            ));
        };
        // The client as it is now: a code goes nowhere its redirect URI no longer is.
        let client = {
            let mut conn = self.kernel.store().conn().await?;
            conn.cl_credential(&row.organization_id, &row.api_credential_id)
                .await?
        };
        if client.and_then(|c| c.redirect_uri).as_deref() != Some(row.redirect_uri.as_str()) {
            return Err(invalid_request(
                "the client or its redirect_uri changed during the login",
            ));
        }
        let code = random()?;
        row.code_hash = Some(self.kernel.hash_secret(&code).to_vec());
        row.verifier_hash = None;
        row.status = "code".to_owned();
        row.expires_at = now_ms() + STEP_MS;
        let advanced = self
            .kernel
            .write(async |tx| Ok(tx.advance_cl_authorization(&row, "accepted").await?))
            .await?;
        if !advanced {
            return Err(invalid_request(
                "login_verifier is unknown, used or expired",
            ));
        }
        let mut pairs = vec![("code", code.as_str())];
        if let Some(state) = &row.state {
            pairs.push(("state", state));
        }
        Ok(Redirect::to(&with_query(&row.redirect_uri, &pairs)).into_response())
    }
}

/// Starts the authorization-code flow (or, with `login_verifier`, finishes its login step).
#[utoipa::path(get, path = "/oauth/authorize", tag = "commercelayer", params(AuthorizeQuery),
    responses((status = 303, description = "To the organization's login URL, or back to the client"),
              (status = 400)))]
async fn authorize(
    State(s): State<CommerceLayer>,
    Query(q, ..): Query<super::OAuthSurface, AuthorizeQuery>,
) -> Result<Response, Error<super::OAuthSurface>> {
    let response = match q.login_verifier.as_deref() {
        Some(verifier) => s.finish_authorization(verifier).await?,
        None => s.start_authorization(&q).await?,
    };
    Ok(response)
}

// --- step 2: the platform answers the login request ------------------------------------------

/// A login request, as the platform's login page sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginRequest {
    challenge: String,
    client_id: String,
    /// The api credential's name, to show the user.
    client_name: String,
    requested_scope: String,
    redirect_uri: String,
    /// `pending`, `accepted` or `rejected` (then it is done).
    status: String,
    expires_at: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AcceptLogin {
    /// The signed-in user's id on the platform (the token's `owner.id`).
    subject: String,
    /// `customer` (the default) or `user`.
    #[serde(default)]
    owner_type: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RejectLogin {
    /// Shown to the client as `error_description`.
    #[serde(default)]
    error_description: Option<String>,
}

/// Where to send the browser next (no `Debug`: it holds the login verifier).
#[derive(Serialize, utoipa::ToSchema)]
pub struct RedirectTo {
    redirect_to: String,
}

/// A login request as it travels in its challenge, so nothing is stored before the platform
/// answers it: base64url JSON and an HMAC of it under the server pepper, domain-separated
/// (`cl-login-challenge:`). Signed, not encrypted: nothing in it is secret, and no key that
/// protects data at rest is spent on anonymous requests.
#[derive(Serialize, Deserialize)]
struct LoginChallenge {
    /// The api credential (a webapp).
    credential: String,
    organization: String,
    state: Option<String>,
    scope: String,
    code_challenge: Option<String>,
    method: Option<String>,
    expires_at: i64,
    /// Makes every challenge unique (a challenge is answered once).
    nonce: String,
}

/// Longest challenge accepted (a signed request is well under this).
const MAX_CHALLENGE: usize = 8192;
/// What the challenge's MAC covers, besides the payload.
const CHALLENGE_DOMAIN: &str = "cl-login-challenge:";

impl CommerceLayer {
    fn seal_challenge(&self, request: &LoginChallenge) -> Result<String, ApiError> {
        use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
        let json = serde_json::to_vec(request).map_err(|e| CoreError::Internal(e.to_string()))?;
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = self
            .kernel
            .hash_secret(&format!("{CHALLENGE_DOMAIN}{payload}"));
        Ok(format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// The login request a challenge carries, if it is genuine, unexpired and of the
    /// caller's organization (404 otherwise), with how it was answered so far.
    async fn login_request(
        &self,
        ctx: &crate::kernel::Ctx,
        challenge: &str,
        access: Access,
    ) -> Result<(LoginChallenge, Option<AuthorizationRow>), ApiError> {
        use base64::Engine as _;
        let org = organization(ctx, access)?;
        let gone = || ApiError::from(CoreError::not_found("login request"));
        if challenge.len() > MAX_CHALLENGE {
            return Err(gone());
        }
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (payload, tag) = challenge.split_once('.').ok_or_else(gone)?;
        let tag = engine.decode(tag).map_err(|_| gone())?;
        if !self
            .kernel
            .secret_matches(&format!("{CHALLENGE_DOMAIN}{payload}"), &tag)
        {
            return Err(gone());
        }
        let json = engine.decode(payload).map_err(|_| gone())?;
        let request: LoginChallenge = serde_json::from_slice(&json).map_err(|_| gone())?;
        if request.organization != org || request.expires_at <= now_ms() {
            return Err(gone());
        }
        let mut conn = self.kernel.store().conn().await?;
        let answered = conn
            .cl_authorization_by(
                AuthorizationKey::Challenge,
                self.challenge_key(challenge).as_bytes(),
            )
            .await?;
        Ok((request, answered))
    }

    /// How an answered challenge is recorded: its HMAC in hex, the row's unique key, so it
    /// can be answered once.
    fn challenge_key(&self, challenge: &str) -> String {
        self.kernel
            .hash_secret(challenge)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    async fn answer_login(
        &self,
        ctx: &crate::kernel::Ctx,
        challenge: &str,
        accept: Option<AcceptLogin>,
        reject: Option<RejectLogin>,
        base: &str,
    ) -> Result<RedirectTo, ApiError> {
        let answered_already = || {
            ApiError::from(CoreError::Conflict {
                field: "challenge".into(),
                message: "this login request was already answered".into(),
            })
        };
        let (request, answered) = self
            .login_request(ctx, challenge, Access::WriteCredentials)
            .await?;
        if answered.is_some() {
            return Err(answered_already());
        }
        // The client as it is now: deleted, or its redirect URI changed, ends the flow.
        let credential = self.credential(ctx, &request.credential).await?;
        let Some(redirect_uri) = credential.redirect_uri.clone() else {
            return Err(CoreError::not_found("login request").into());
        };
        let now = now_ms();
        let mut row = AuthorizationRow {
            id: random_base62(20)?,
            organization_id: request.organization.clone(),
            api_credential_id: request.credential.clone(),
            challenge: String::new(),
            verifier_hash: None,
            code_hash: None,
            redirect_uri,
            state: request.state.clone(),
            scope: request.scope.clone(),
            code_challenge: request.code_challenge.clone(),
            code_challenge_method: request.method.clone(),
            owner_id: None,
            owner_type: None,
            status: String::new(),
            created_at: now,
            expires_at: now + STEP_MS,
        };
        let redirect_to = if let Some(accept) = accept {
            let subject = accept.subject.trim();
            if subject.is_empty() || subject.chars().count() > MAX_SUBJECT {
                return Err(
                    CoreError::invalid("subject", "subject must be 1 to 255 characters").into(),
                );
            }
            let owner_type = accept.owner_type.unwrap_or_else(|| "customer".to_owned());
            if owner_type != "customer" && owner_type != "user" {
                return Err(CoreError::invalid(
                    "owner_type",
                    "owner_type must be customer or user",
                )
                .into());
            }
            let verifier = SecretString::from(random()?);
            row.verifier_hash = Some(self.kernel.hash_secret(verifier.expose_secret()).to_vec());
            row.owner_id = Some(subject.to_owned());
            row.owner_type = Some(owner_type);
            row.status = "accepted".to_owned();
            with_query(
                &format!("{base}/oauth/authorize"),
                &[("login_verifier", verifier.expose_secret())],
            )
        } else {
            let description = reject
                .and_then(|r| r.error_description)
                .map(|d| d.chars().take(256).collect::<String>())
                .unwrap_or_else(|| "the user did not sign in".to_owned());
            let mut pairs = vec![
                ("error", "access_denied"),
                ("error_description", description.as_str()),
            ];
            if let Some(state) = &row.state {
                pairs.push(("state", state));
            }
            row.status = "rejected".to_owned();
            with_query(&row.redirect_uri, &pairs)
        };
        row.challenge = self.challenge_key(challenge);
        let org = row.organization_id.clone();
        let action = if row.status == "accepted" {
            "login_request.accept"
        } else {
            "login_request.reject"
        };
        self.kernel
            .write(async |tx| {
                match tx.insert_cl_authorization(&row).await {
                    Err(crate::store::StoreError::Conflict(_)) => {
                        return Err(CoreError::Conflict {
                            field: "challenge".into(),
                            message: "this login request was already answered".into(),
                        });
                    }
                    other => other?,
                }
                let event = Event::by(ctx, Some(&org), action, "authorization", &row.id);
                audit::append(tx, event).await?;
                Ok(())
            })
            .await?;
        Ok(RedirectTo { redirect_to })
    }
}

/// A login request: which client asks, for what.
#[utoipa::path(get, path = "/v1/oauth/login_requests/{challenge}", tag = "commercelayer",
    responses((status = 200, body = LoginRequest), (status = 404)), security(("bearer" = [])))]
async fn get_login_request(
    State(s): State<CommerceLayer>,
    Auth(ctx, ..): Auth<Native>,
    Path(challenge): Path<String>,
) -> NativeResult<axum::Json<LoginRequest>> {
    let (request, answered) = s.login_request(&ctx, &challenge, Access::Read).await?;
    let credential = s.credential(&ctx, &request.credential).await?;
    let status = match answered {
        Some(row) if row.status == "rejected" => "rejected",
        Some(_) => "accepted",
        None => "pending",
    };
    Ok(axum::Json(LoginRequest {
        challenge,
        client_id: credential.client_id,
        client_name: credential.name,
        requested_scope: request.scope,
        redirect_uri: credential.redirect_uri.unwrap_or_default(),
        status: status.to_owned(),
        expires_at: crate::kernel::iso8601(request.expires_at),
    }))
}

/// The platform signed its user in: Latchkey answers where to send the browser.
#[utoipa::path(put, path = "/v1/oauth/login_requests/{challenge}/accept", tag = "commercelayer",
    request_body = AcceptLogin,
    responses((status = 200, body = RedirectTo), (status = 404), (status = 409)), security(("bearer" = [])))]
async fn accept_login(
    State(s): State<CommerceLayer>,
    Auth(ctx, ..): Auth<Native>,
    headers: HeaderMap,
    Path(challenge): Path<String>,
    Json(input, ..): Json<Native, AcceptLogin>,
) -> NativeResult<Response> {
    let base = s.public_url.base(&headers);
    let to = s
        .answer_login(&ctx, &challenge, Some(input), None, &base)
        .await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(to)).into_response())
}

/// The user did not sign in: the client is told `access_denied`.
#[utoipa::path(put, path = "/v1/oauth/login_requests/{challenge}/reject", tag = "commercelayer",
    request_body = RejectLogin,
    responses((status = 200, body = RedirectTo), (status = 404), (status = 409)), security(("bearer" = [])))]
async fn reject_login(
    State(s): State<CommerceLayer>,
    Auth(ctx, ..): Auth<Native>,
    headers: HeaderMap,
    Path(challenge): Path<String>,
    Json(input, ..): Json<Native, RejectLogin>,
) -> NativeResult<axum::Json<RedirectTo>> {
    let base = s.public_url.base(&headers);
    Ok(axum::Json(
        s.answer_login(&ctx, &challenge, None, Some(input), &base)
            .await?,
    ))
}

pub fn routes() -> OpenApiRouter<CommerceLayer> {
    OpenApiRouter::new()
        .routes(routes!(authorize))
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(get_login_request))
        .routes(routes!(accept_login))
        .routes(routes!(reject_login))
}
