//! The parameters of the OAuth endpoints (`/oauth/token`, `/oauth/revoke`,
//! `/oauth/introspect`): a JSON or form body read into one list, and the client's
//! credentials from HTTP Basic or the body.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{HeaderMap, StatusCode, header},
};
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::oauth::{OAuthSurface, invalid_client, invalid_request, oauth_error};
use crate::kernel::{
    RequestMeta,
    http::{
        error::{ApiError, Error},
        extract::request_meta,
    },
    verify::Authorization,
};

type Result<T> = std::result::Result<T, Error<OAuthSurface>>;

/// The parameters of a token or revocation request, from a JSON or a form body.
pub struct Params {
    /// Name and value, in the order sent; values are zeroed when dropped (they hold client
    /// secrets, codes and refresh tokens).
    values: Vec<(String, Zeroizing<String>)>,
    /// HTTP Basic client credentials, when sent.
    pub(super) basic: Option<(String, SecretString)>,
    /// An `Authorization: Bearer` token (introspection by a management token).
    pub(super) bearer: Option<String>,
    pub(super) headers: HeaderMap,
    pub(super) meta: RequestMeta,
}

/// Largest number of parameters in one request.
const MAX_PARAMS: usize = 32;

impl<St: Send + Sync> FromRequest<St> for Params {
    type Rejection = Error<OAuthSurface>;

    async fn from_request(req: Request, state: &St) -> Result<Self> {
        let (mut parts, body) = req.into_parts();
        let meta = request_meta(&parts);
        // The body extractor needs the extensions (the body limit), not the headers.
        let headers = std::mem::take(&mut parts.headers);
        let req = Request::from_parts(parts, body);
        let mut bearer = None;
        let basic = match headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(Authorization::parse)
        {
            None => None,
            Some(Some(Authorization::Token(token))) if token.len() <= 4096 => {
                bearer = Some(token.to_owned());
                None
            }
            Some(Some(Authorization::Basic(credentials))) => {
                // RFC 6749 §2.3.1: both halves are form-encoded before Basic encoding.
                let decode = |s: &str| {
                    let query = Zeroizing::new(format!("x={s}"));
                    form_urlencoded::parse(query.as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                Some((
                    decode(credentials.id()),
                    SecretString::from(decode(credentials.secret())),
                ))
            }
            Some(_) => return Err(invalid_client().into()),
        };
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                oauth_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request",
                    "The request body is too large",
                )
            } else {
                invalid_request("The request body could not be read")
            }
        })?;
        let mut values = Vec::new();
        match content_type.as_str() {
            "application/x-www-form-urlencoded" => {
                for (k, v) in form_urlencoded::parse(&bytes) {
                    push_param(&mut values, k.into_owned(), v.into_owned())?;
                }
            }
            "application/json" | "application/vnd.api+json" => {
                let mut failed = None;
                let mut de = serde_json::Deserializer::from_slice(&bytes);
                let parsed = serde::de::DeserializeSeed::deserialize(
                    JsonParams {
                        values: &mut values,
                        failed: &mut failed,
                    },
                    &mut de,
                )
                .and_then(|()| de.end());
                if let Some(e) = failed {
                    return Err(e.into());
                }
                if parsed.is_err() {
                    return Err(invalid_request("The body must be a JSON object").into());
                }
            }
            _ => {
                return Err(invalid_request(
                    "Send the parameters as application/json or application/x-www-form-urlencoded",
                )
                .into());
            }
        }
        Ok(Self {
            values,
            basic,
            bearer,
            headers,
            meta,
        })
    }
}

/// Adds one parameter: at most [`MAX_PARAMS`], each once (RFC 6749 §3.2).
fn push_param(
    values: &mut Vec<(String, Zeroizing<String>)>,
    name: String,
    value: String,
) -> std::result::Result<(), ApiError> {
    let value = Zeroizing::new(value);
    if values.len() >= MAX_PARAMS {
        return Err(invalid_request("Too many parameters"));
    }
    if values.iter().any(|(n, _)| *n == name) {
        return Err(invalid_request(format!("{} is repeated", short(&name))));
    }
    values.push((name, value));
    Ok(())
}

/// Reads a JSON object of string (or null) parameters straight into the list, without an
/// intermediate `Value`. A rule broken on the way is left in `failed`.
struct JsonParams<'a> {
    values: &'a mut Vec<(String, Zeroizing<String>)>,
    failed: &'a mut Option<ApiError>,
}

impl<'de> serde::de::DeserializeSeed<'de> for JsonParams<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonParams<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object of string parameters")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        use serde::de::Error as _;
        let mut properties = 0;
        while let Some(name) = map.next_key::<String>()? {
            // Nulls count too: the documented bound is on the object's properties.
            properties += 1;
            if properties > MAX_PARAMS {
                *self.failed = Some(invalid_request("Too many parameters"));
                return Err(A::Error::custom("too many parameters"));
            }
            let Ok(value) = map.next_value::<Option<String>>() else {
                *self.failed = Some(invalid_request(format!(
                    "{} must be a string",
                    short(&name)
                )));
                return Err(A::Error::custom("not a string"));
            };
            // A null is a parameter not sent.
            if let Some(value) = value
                && let Err(e) = push_param(self.values, name, value)
            {
                *self.failed = Some(e);
                return Err(A::Error::custom("invalid parameters"));
            }
        }
        Ok(())
    }
}

pub(super) fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

impl Params {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|s| !s.is_empty())
    }

    /// The client id and the secret it presented (if any), from Basic or the body.
    pub(super) fn client(&self) -> std::result::Result<(String, Option<SecretString>), ApiError> {
        match (
            &self.basic,
            self.get("client_id"),
            self.get("client_secret"),
        ) {
            (Some(_), _, Some(_)) => Err(invalid_request(
                "Use one client authentication method: HTTP Basic or the body, not both",
            )),
            (Some((id, _)), Some(body_id), _) if body_id != id => Err(invalid_request(
                "client_id differs from the Basic credentials",
            )),
            (Some((id, secret)), _, None) => Ok((id.clone(), Some(secret.clone()))),
            (None, Some(id), secret) => Ok((
                id.to_owned(),
                secret.map(|s| SecretString::from(s.to_owned())),
            )),
            (None, None, _) => Err(invalid_client()),
        }
    }
}
