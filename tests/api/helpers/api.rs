//! Typed clients of the API surfaces. `app.tines(&token).post("/teams", body)` sends the JSON
//! body to `/api/v1/teams` with the token and answers `(StatusCode, Value)`, as
//! `TestApp::request` does; each surface's paths are relative to its base (`/v1` native and
//! PingOne, `/v2` Sunshine, `/api/v1` Tines). `raw` builds a request whose headers, media
//! types and body bytes the test chooses, for what the typed calls cannot send: a wrong
//! `Content-Type` or `Accept`, a body that is not JSON, a JSON:API document.

use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;

use super::TestApp;

/// How a client authenticates.
#[derive(Clone)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <token>`: a management token or a JWT.
    Bearer(String),
    /// HTTP Basic with a key id and secret.
    Basic {
        id: String,
        secret: String,
    },
    /// The `Authorization` header exactly as given, even empty or malformed.
    Header(String),
}

/// A client of one surface: a base path and a credential. It keeps the server's address from
/// when it was made: make it again after `TestApp::restart`, which listens on a new port.
/// Cheap to clone, and `'static`, so a clone can go into a spawned task.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// The server's URL and the surface's base path.
    root: String,
    prefix: String,
    auth: Auth,
    /// Sends `Accept` and `Content-Type: application/vnd.api+json` on every request, as
    /// Commerce Layer's SDK does.
    json_api: bool,
}

impl TestApp {
    /// Latchkey's own API (`/v1`: organizations, tokens, audit events, account keys).
    pub fn native(&self, token: &str) -> Api {
        self.api("/v1", Auth::Bearer(token.to_owned()))
    }

    /// The PingOne surface (`/v1`: environments, gateways, credentials).
    pub fn pingone(&self, token: &str) -> Api {
        self.api("/v1", Auth::Bearer(token.to_owned()))
    }

    /// The Sunshine surface (`/v2`) with a bearer: a management token or a key's JWT.
    pub fn sunshine(&self, token: &str) -> Api {
        self.api("/v2", Auth::Bearer(token.to_owned()))
    }

    /// The Sunshine surface (`/v2`) with a key as HTTP Basic.
    pub fn sunshine_basic(&self, key_id: &str, secret: &str) -> Api {
        let (id, secret) = (key_id.to_owned(), secret.to_owned());
        self.api("/v2", Auth::Basic { id, secret })
    }

    /// The Tines surface (`/api/v1`).
    pub fn tines(&self, token: &str) -> Api {
        self.api("/api/v1", Auth::Bearer(token.to_owned()))
    }

    /// Commerce Layer's Provisioning API (`/api`), speaking JSON:API as its SDK does.
    pub fn provisioning(&self, token: &str) -> Api {
        Api {
            json_api: true,
            ..self.api("/api", Auth::Bearer(token.to_owned()))
        }
    }

    /// Any base path with any credential: a surface yet to come, or no credential at all.
    pub fn api(&self, prefix: &str, auth: Auth) -> Api {
        Api {
            http: self.client.clone(),
            root: format!("{}{prefix}", self.base),
            prefix: prefix.to_owned(),
            auth,
            json_api: false,
        }
    }

    /// A request to `path` (from the server's root) without a credential, to build by hand.
    pub fn raw(&self, method: Method, path: &str) -> RawRequest {
        RawRequest(self.client.request(method, format!("{}{path}", self.base)))
    }
}

impl Api {
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::DELETE, path, None).await
    }

    /// Any method, with a JSON body or none (a `POST` without a body, as curl sends one).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.raw(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await;
        (res.status, res.body)
    }

    /// A request to `path` (under the base path) with this client's credential, to finish by
    /// hand.
    pub fn raw(&self, method: Method, path: &str) -> RawRequest {
        // "/v1/…" given to a client whose base is /v1 would go to /v1/v1/… and answer 404,
        // which a test expecting a 404 would take for a pass.
        assert!(
            self.prefix.is_empty() || !path.starts_with(&format!("{}/", self.prefix)),
            "{path}: paths are relative to {}",
            self.prefix
        );
        let mut req = self.http.request(method, format!("{}{path}", self.root));
        if self.json_api {
            req = req
                .header("Accept", "application/vnd.api+json")
                .header("Content-Type", "application/vnd.api+json");
        }
        RawRequest(match &self.auth {
            Auth::None => req,
            Auth::Bearer(token) => req.bearer_auth(token),
            Auth::Basic { id, secret } => req.basic_auth(id, Some(secret)),
            Auth::Header(value) => req.header("Authorization", value),
        })
    }
}

/// A request being built: any header, media type or body bytes.
pub struct RawRequest(reqwest::RequestBuilder);

impl RawRequest {
    #[must_use]
    pub fn header(self, name: &str, value: &str) -> Self {
        Self(self.0.header(name, value))
    }
    /// The `Content-Type`; set it before `json` to send JSON under another media type
    /// (`application/vnd.api+json`).
    #[must_use]
    pub fn content_type(self, media_type: &str) -> Self {
        self.header("Content-Type", media_type)
    }
    #[must_use]
    pub fn accept(self, media_type: &str) -> Self {
        self.header("Accept", media_type)
    }
    /// The body bytes as they are; no `Content-Type` unless set.
    #[must_use]
    pub fn body(self, bytes: impl Into<reqwest::Body>) -> Self {
        Self(self.0.body(bytes))
    }
    /// `value` serialized, with `Content-Type: application/json` unless one is set.
    #[must_use]
    pub fn json(self, value: &Value) -> Self {
        Self(self.0.json(value))
    }
    /// An `application/x-www-form-urlencoded` body.
    #[must_use]
    pub fn form(self, fields: &[(&str, &str)]) -> Self {
        Self(self.0.form(fields))
    }

    pub async fn send(self) -> Response {
        let res = self.0.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        Response {
            status,
            headers,
            body: parse_body(&text),
            text,
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as JSON: `Null` when empty, a JSON string of the text when it is not JSON.
    pub body: Value,
    pub text: String,
}

impl Response {
    /// The header's value, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A response body as `TestApp::request` and `Api` answer it.
pub(super) fn parse_body(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
    }
}
