//! An HTTP Request action's options (`url`, `method`, `content_type`, `payload`, `headers`),
//! turned into a request with every reference substituted, and an upstream answer turned
//! into the action's event shape `{status, headers, body}`.
//!
//! References may appear in the URL's query (values are percent-encoded), in header values
//! and in any string of the payload. Never in the scheme, host or path: a value there could
//! choose where it is sent, or leak through DNS.

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{
    Method,
    header::{self, HeaderMap, HeaderName, HeaderValue},
};
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use super::{
    EgressError,
    client::{Outbound, Upstream},
    template::{self, Reference},
};

/// Characters a substituted query value keeps as they are (RFC 3986 unreserved).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The options of an HTTP Request action.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestOptions {
    pub url: String,
    /// get (default), post, put, patch, delete, head or options; any case.
    #[serde(default)]
    pub method: Option<String>,
    /// json (default), form, xml or text: how `payload` is encoded.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The body; for GET and HEAD, query parameters.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub headers: Option<Map<String, Value>>,
    /// `<<CREDENTIAL.slug>>` of an MTLS credential whose certificate the request presents.
    #[serde(default)]
    pub mutual_tls: Option<String>,
}

impl RequestOptions {
    /// Reads a credential's stored options (checked when it was written).
    pub fn from_stored(options: &Map<String, Value>) -> Result<Self, EgressError> {
        let known: Map<String, Value> = options
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "url" | "method" | "content_type" | "payload" | "headers"
                )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::from_value(Value::Object(known))
            .map_err(|e| EgressError::Internal(format!("stored request options: {e}")))
    }

    /// The URL without its query: what policies are checked against.
    pub fn target(&self) -> Result<Url, EgressError> {
        let (base, _) = split_query(&self.url);
        if template::references(base).iter().any(|r| {
            matches!(
                r,
                Reference::Credential(_) | Reference::Secret | Reference::PreviousStep(_)
            )
        }) {
            return Err(EgressError::invalid(
                "url",
                "references may appear only in the URL's query, never in its scheme, host or path",
            ));
        }
        let url = Url::parse(base)
            .map_err(|e| EgressError::invalid("url", format!("url is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(EgressError::invalid(
                "url",
                "url must be an absolute http or https URL",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::invalid(
                "url",
                "url must not carry user information; use a header",
            ));
        }
        Ok(url)
    }

    /// Every reference the request carries, in the places references may be.
    pub fn references(&self) -> Vec<Reference<'_>> {
        let (_, query) = split_query(&self.url);
        let mut found = template::references(query.unwrap_or(""));
        for value in self.headers.iter().flat_map(|h| h.values()) {
            strings(value, &mut |s| found.extend(template::references(s)));
        }
        if let Some(payload) = &self.payload {
            strings(payload, &mut |s| found.extend(template::references(s)));
        }
        found
    }

    fn method(&self) -> Result<Method, EgressError> {
        let name = self.method.as_deref().unwrap_or("get").to_ascii_uppercase();
        match name.as_str() {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => {
                Method::from_bytes(name.as_bytes())
                    .map_err(|_| EgressError::invalid("method", "bad method"))
            }
            _ => Err(EgressError::invalid(
                "method",
                "method must be one of get, post, put, patch, delete, head, options",
            )),
        }
    }

    /// The request, with `value` answering each reference. Returns it and every substituted
    /// value (in the forms sent), for redaction.
    pub fn build(
        &self,
        value: &mut dyn FnMut(Reference<'_>) -> Result<Option<String>, EgressError>,
    ) -> Result<(Outbound, Vec<String>), EgressError> {
        let method = self.method()?;
        let mut url = self.target()?;
        let mut secrets = Vec::new();
        let mut query = match split_query(&self.url).1 {
            Some(q) => template::replace(q, |r| {
                let v = value(r)?;
                Ok(v.map(|v| {
                    let encoded = utf8_percent_encode(&v, QUERY_VALUE).to_string();
                    secrets.push(encoded.clone());
                    secrets.push(v);
                    encoded
                }))
            })?,
            None => String::new(),
        };

        let mut headers = HeaderMap::new();
        let mut secret_headers = Vec::new();
        for (name, raw) in self.headers.iter().flatten() {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                EgressError::invalid("headers", format!("{name:?} is not a valid header name"))
            })?;
            if is_hop_header(&header) {
                return Err(EgressError::invalid(
                    "headers",
                    format!("header {name:?} is set by Latchkey, not by the request"),
                ));
            }
            let text = match raw {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(EgressError::invalid(
                        "headers",
                        format!("header {name:?} must be a string"),
                    ));
                }
            };
            let mut substituted = false;
            let text = template::replace(&text, |r| {
                let v = value(r)?;
                if let Some(v) = &v {
                    substituted = true;
                    secrets.push(v.clone());
                }
                Ok(v)
            })?;
            let header_value = HeaderValue::from_str(&text).map_err(|_| {
                EgressError::invalid(
                    "headers",
                    format!("the value of header {name:?} cannot be sent in a header"),
                )
            })?;
            if substituted {
                secret_headers.push(header.clone());
            }
            headers.append(header, header_value);
        }

        let mut body_has_secret = false;
        let mut payload = self.payload.clone();
        if let Some(p) = &mut payload {
            substitute_strings(p, &mut |s| {
                let out = template::replace(s, |r| {
                    let v = value(r)?;
                    if let Some(v) = &v {
                        body_has_secret = true;
                        // As a form or query encodes it, too.
                        secrets.push(form_urlencoded::byte_serialize(v.as_bytes()).collect());
                        secrets.push(v.clone());
                    }
                    Ok(v)
                })?;
                *s = out;
                Ok(())
            })?;
        }

        let content_type = self.content_type.as_deref().unwrap_or("json");
        let mut body = None;
        match payload {
            None | Some(Value::Null) => {}
            Some(p) if matches!(method, Method::GET | Method::HEAD) => {
                let pairs = form_pairs(&p)?;
                let mut q = form_urlencoded::Serializer::new(String::new());
                q.extend_pairs(pairs);
                let extra = q.finish();
                if !extra.is_empty() {
                    if !query.is_empty() {
                        query.push('&');
                    }
                    query.push_str(&extra);
                }
            }
            Some(p) => {
                let (mime, bytes) = match content_type {
                    "json" => (
                        "application/json",
                        serde_json::to_vec(&p).map_err(|e| EgressError::Internal(e.to_string()))?,
                    ),
                    "form" => {
                        let mut f = form_urlencoded::Serializer::new(String::new());
                        f.extend_pairs(form_pairs(&p)?);
                        ("application/x-www-form-urlencoded", f.finish().into_bytes())
                    }
                    "xml" | "text" => {
                        let Value::String(text) = p else {
                            return Err(EgressError::invalid(
                                "payload",
                                format!(
                                    "payload must be a string when content_type is {content_type}"
                                ),
                            ));
                        };
                        let mime = if content_type == "xml" {
                            "application/xml"
                        } else {
                            "text/plain; charset=utf-8"
                        };
                        (mime, text.into_bytes())
                    }
                    other => {
                        return Err(EgressError::invalid(
                            "content_type",
                            format!("content_type {other:?} must be one of json, form, xml, text"),
                        ));
                    }
                };
                if !headers.contains_key(header::CONTENT_TYPE) {
                    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
                }
                body = Some(Bytes::from(bytes));
            }
        }
        if !query.is_empty() {
            url.set_query(Some(&query));
        }
        Ok((
            Outbound {
                method,
                url,
                headers,
                body,
                secret_headers,
                body_has_secret,
            },
            secrets,
        ))
    }
}

/// Headers that route or frame the request: a caller could otherwise send a credential to
/// another virtual host (`Host`) or desynchronise the connection.
fn is_hop_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "connection"
            | "content-length"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "keep-alive"
    ) || name.as_str().starts_with("proxy-")
}

/// `(before '?', after '?')`, the fragment dropped.
fn split_query(url: &str) -> (&str, Option<&str>) {
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    }
}

/// Calls `f` on every string in `value` (object values, array items), not keys.
fn strings<'a>(value: &'a Value, f: &mut dyn FnMut(&'a str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, f)),
        Value::Object(map) => map.values().for_each(|v| strings(v, f)),
        _ => {}
    }
}

fn substitute_strings(
    value: &mut Value,
    f: &mut dyn FnMut(&mut String) -> Result<(), EgressError>,
) -> Result<(), EgressError> {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().try_for_each(|v| substitute_strings(v, f)),
        Value::Object(map) => map.values_mut().try_for_each(|v| substitute_strings(v, f)),
        _ => Ok(()),
    }
}

/// A form or query payload: an object whose values are scalars (nested values as JSON).
fn form_pairs(payload: &Value) -> Result<Vec<(String, String)>, EgressError> {
    let Value::Object(map) = payload else {
        return Err(EgressError::invalid(
            "payload",
            "payload must be an object for a form or a query",
        ));
    };
    Ok(map
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect())
}

/// The event shape of an answer: `{status, headers, body}`, the body parsed when it is JSON.
pub fn event(upstream: &Upstream) -> Value {
    let mut headers = Map::new();
    for (name, value) in &upstream.headers {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&text);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(text));
            }
        }
    }
    let is_json = upstream
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    let body = is_json
        .then(|| serde_json::from_slice::<Value>(&upstream.body).ok())
        .flatten()
        .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&upstream.body).into_owned()));
    let mut event = Map::new();
    event.insert("status".into(), Value::from(upstream.status.as_u16()));
    event.insert("headers".into(), Value::Object(headers));
    event.insert("body".into(), body);
    Value::Object(event)
}

/// The value at a dotted path (`body.data.token`, `body.items.0.id`).
pub fn at_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A path's value as text: strings as they are, numbers and booleans printed.
pub fn text_at(value: &Value, path: &str) -> Option<String> {
    match at_path(value, path)? {
        Value::String(s) => Some(s.clone()),
        v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
}

/// The path inside `{status, headers, body}` that `http_request_location_of_token` names: a
/// formula such as `=credential_name.body.token` or `=response.body.data.token` (the first
/// name stands for the response); `<<…>>` and a leading `\` are accepted too.
pub fn location_path(formula: &str) -> Option<&str> {
    let f = formula.trim();
    let f = f.strip_prefix('\\').unwrap_or(f);
    let f = f.strip_prefix('=').unwrap_or(f);
    let f = f
        .strip_prefix("<<")
        .and_then(|f| f.strip_suffix(">>"))
        .unwrap_or(f)
        .trim();
    let f = f.strip_prefix('.').unwrap_or(f);
    let (_, path) = f.split_once('.')?;
    (!path.is_empty()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(v: Value) -> RequestOptions {
        serde_json::from_value(v).expect("valid options")
    }

    #[test]
    fn references_only_in_the_query_headers_and_payload() {
        let o = options(json!({
            "url": "https://api.example.com/x?key=<<CREDENTIAL.a>>",
            "headers": {"Authorization": "Bearer <<CREDENTIAL.b>>"},
            "payload": {"nested": ["<<CREDENTIAL.c>>"]}
        }));
        let slugs: Vec<_> = o.references();
        assert_eq!(
            slugs,
            vec![
                Reference::Credential("a"),
                Reference::Credential("b"),
                Reference::Credential("c")
            ]
        );
        for bad in [
            "https://<<CREDENTIAL.a>>.evil.com/",
            "https://api.example.com/<<CREDENTIAL.a>>",
            "ftp://api.example.com/",
            "https://user:pw@api.example.com/",
            "/relative",
        ] {
            assert!(options(json!({ "url": bad })).target().is_err(), "{bad}");
        }
    }

    #[test]
    fn substitutes_and_encodes() {
        let o = options(json!({
            "url": "https://api.example.com/x?a=1&key=<<CREDENTIAL.a>>",
            "method": "post",
            "content_type": "form",
            "headers": {"X-Key": "<<CREDENTIAL.a>>", "X-Plain": "p"},
            "payload": {"k": "v <<CREDENTIAL.a>>", "n": 2}
        }));
        let (out, secrets) = o
            .build(
                &mut |r| Ok(matches!(r, Reference::Credential("a")).then(|| "s&cr t".to_owned())),
            )
            .expect("builds");
        assert_eq!(out.method, Method::POST);
        assert_eq!(
            out.url.as_str(),
            "https://api.example.com/x?a=1&key=s%26cr%20t"
        );
        assert_eq!(out.headers["x-key"], "s&cr t");
        assert_eq!(out.secret_headers, vec![HeaderName::from_static("x-key")]);
        assert!(out.body_has_secret);
        assert_eq!(out.body.as_deref(), Some(&b"k=v+s%26cr+t&n=2"[..]));
        assert!(secrets.contains(&"s&cr t".to_owned()));
        assert!(secrets.contains(&"s%26cr%20t".to_owned()));
    }

    #[test]
    fn a_get_payload_goes_to_the_query() {
        let o = options(json!({"url": "https://h.example/x?a=1", "payload": {"b": "2"}}));
        let (out, _) = o.build(&mut |_| Ok(None)).expect("builds");
        assert_eq!(out.url.query(), Some("a=1&b=2"));
        assert!(out.body.is_none());
    }

    #[test]
    fn token_locations() {
        assert_eq!(
            location_path("=credential_name.body.token"),
            Some("body.token")
        );
        assert_eq!(
            location_path("\\=response.body.data.token"),
            Some("body.data.token")
        );
        assert_eq!(location_path("<<response.body.value>>"), Some("body.value"));
        assert_eq!(location_path("=response"), None);
        let event = json!({"status": 200, "body": {"items": [{"t": "x"}], "n": 5}});
        assert_eq!(text_at(&event, "body.items.0.t").as_deref(), Some("x"));
        assert_eq!(text_at(&event, "body.n").as_deref(), Some("5"));
        assert_eq!(text_at(&event, "body.items"), None);
    }
}
