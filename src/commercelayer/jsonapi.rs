//! JSON:API as Commerce Layer speaks it, in one place for every `/api/…` route: media types
//! (406 / 415), the error envelope, request documents, and resource objects with their
//! links, relationships, sparse fieldsets and compound documents.

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::query::{ListQuery, QueryError};
use crate::kernel::http::{
    error::{ApiError, Error, Surface},
    extract::parse_json,
};

pub const MEDIA_TYPE: &str = "application/vnd.api+json";

/// The Provisioning API's error envelope: `{"errors":[{title, detail, code, status, source,
/// meta}]}`, `status` a string.
pub struct CommerceLayerSurface;

pub type Result<T> = std::result::Result<T, Error<CommerceLayerSurface>>;

/// jsonapi-resources' text codes for query-string errors: their `field` is a parameter.
const QUERY_CODES: &[&str] = &[
    "INVALID_PAGE_VALUE",
    "INVALID_SORT_CRITERIA",
    "INVALID_FIELD",
    "INVALID_INCLUDE",
    "FILTER_NOT_ALLOWED",
    "INVALID_FILTERS_SYNTAX",
    "INVALID_FILTER_VALUE",
    "PARAM_NOT_ALLOWED",
];

/// Relationship names: a field named so points into `/data/relationships`.
const RELATIONSHIPS: &[&str] = &["organization", "role", "permissions", "api_credentials"];

/// Where in the request document `field` is: `name` → `/data/attributes/name`, `role` →
/// `/data/relationships/role`, `data.type` → `/data/type`.
fn pointer(field: &str) -> String {
    if field.starts_with("data") {
        return format!("/{}", field.replace('.', "/"));
    }
    if RELATIONSHIPS.contains(&field) {
        return format!("/data/relationships/{field}");
    }
    format!("/data/attributes/{field}")
}

impl Surface for CommerceLayerSurface {
    const PREFIXES: &'static [&'static str] = &["/api/"];
    type Envelope = JsonApiErrors;
    const MEDIA_TYPE: &'static str = MEDIA_TYPE;
    const MEDIA_TYPE_ERRORS: &'static [StatusCode] = &[
        StatusCode::NOT_ACCEPTABLE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    ];

    fn render(e: &ApiError) -> JsonApiErrors {
        let status = e.status.as_u16();
        let (code, title) = if e.code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            (e.code, e.message.as_str())
        } else {
            match status {
                400 => ("BAD_REQUEST", "Bad request"),
                401 => ("UNAUTHORIZED", "Access denied"),
                403 => ("FORBIDDEN", "Operation not allowed"),
                404 => ("RECORD_NOT_FOUND", "Record not found"),
                405 => ("METHOD_NOT_ALLOWED", "Method not allowed"),
                406 => ("NOT_ACCEPTABLE", "Not acceptable"),
                409 => ("RECORD_NOT_UNIQUE", "Record not unique"),
                413 => ("PAYLOAD_TOO_LARGE", "Payload too large"),
                415 => ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
                422 => ("VALIDATION_ERROR", e.message.as_str()),
                429 => ("TOO_MANY_REQUESTS", "Too many requests"),
                _ => ("INTERNAL_SERVER_ERROR", "Internal server error"),
            }
        };
        let detail = match (&e.field, status) {
            (Some(field), 422) => format!("{field} - {}", e.message),
            (_, 404) if e.code == "not_found" => {
                "The requested resource was not found. Please double-check the resource id."
                    .to_owned()
            }
            _ => e.message.clone(),
        };
        let source = e.field.as_ref().map(|field| {
            if QUERY_CODES.contains(&code) {
                ErrorSource::Parameter(field.clone())
            } else {
                ErrorSource::Pointer(pointer(field))
            }
        });
        JsonApiErrors {
            errors: vec![JsonApiError {
                title: title.to_owned(),
                detail,
                code: code.to_owned(),
                status: status.to_string(),
                source,
            }],
        }
    }
}

/// The Provisioning API's error envelope.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JsonApiErrors {
    errors: Vec<JsonApiError>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct JsonApiError {
    title: String,
    detail: String,
    /// e.g. `VALIDATION_ERROR`, `RECORD_NOT_FOUND`, `INVALID_PAGE_VALUE`.
    code: String,
    /// The HTTP status, as a string.
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<ErrorSource>,
}

/// Where the error is: a JSON pointer into the request document, or a query parameter.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum ErrorSource {
    Pointer(String),
    Parameter(String),
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let mut error = ApiError::new(StatusCode::BAD_REQUEST, e.code, e.title);
        error.message = e.detail;
        error.with_field(e.parameter)
    }
}

/// A 422 on one attribute or relationship, as Commerce Layer words them.
pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).with_field(field)
}

/// A 400 for a member the request may not send here (read-only, create-only, unknown).
pub fn not_allowed(field: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "PARAM_NOT_ALLOWED",
        format!("{field} is not allowed."),
    )
    .with_field(field.to_owned())
}

pub fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "record not found")
}

// --- media types -----------------------------------------------------------------------------

/// Whether an `Accept` value allows JSON:API (no header allows anything).
fn accepts(accept: Option<&HeaderValue>) -> bool {
    let Some(value) = accept.and_then(|v| v.to_str().ok()) else {
        return accept.is_none();
    };
    value.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let essence = parts.next().unwrap_or_default().to_ascii_lowercase();
        let refused = parts.any(|p| p.replace(' ', "") == "q=0" || p == "q=0.0");
        !refused && matches!(essence.as_str(), MEDIA_TYPE | "*/*" | "application/*")
    })
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

fn is_json_api(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Middleware for every `/api/…` route: 406 unless `Accept` allows JSON:API, 415 when a
/// request with a body does not label it JSON:API (a bodyless GET or DELETE may carry any
/// `Content-Type`: the official SDK sends one on every request), and JSON:API's media type
/// on every answer.
pub async fn media_types(request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !accepts(headers.get(header::ACCEPT)) {
        let e = ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NOT_ACCEPTABLE",
            format!("The Accept header must allow {MEDIA_TYPE}"),
        );
        return with_media_type(Error::<CommerceLayerSurface>::from(e).into_response());
    }
    if has_body(headers) && !is_json_api(headers.get(header::CONTENT_TYPE)) {
        let e = ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("The Content-Type of a request body must be {MEDIA_TYPE}"),
        );
        return with_media_type(Error::<CommerceLayerSurface>::from(e).into_response());
    }
    with_media_type(next.run(request).await)
}

fn with_media_type(mut response: Response) -> Response {
    if response.headers().get(header::CONTENT_TYPE).is_some() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    }
    response
}

// --- request documents -----------------------------------------------------------------------

/// `{"type", "id"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// A relationship member: `{"data": {…}}` or `{"data": null}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Relationship {
    pub data: Option<Identifier>,
}

/// The resource object of a create or update request.
#[derive(Debug, Deserialize)]
pub struct ResourceInput {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub relationships: Map<String, Value>,
}

#[derive(Deserialize)]
struct Document {
    data: ResourceInput,
}

/// A JSON:API request document's `data`.
pub struct Body(pub ResourceInput);

impl<St: Send + Sync> FromRequest<St> for Body {
    type Rejection = Error<CommerceLayerSurface>;

    async fn from_request(req: Request, state: &St) -> Result<Self> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    "The request body is too large",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    "The request body could not be read",
                )
            }
        })?;
        let document: Document = parse_json(&bytes).map_err(|mut e| {
            e.code = "INVALID_DATA_FORMAT";
            e
        })?;
        Ok(Self(document.data))
    }
}

impl ResourceInput {
    /// Checks `type` (and, on update, that `id` is the one in the URL).
    pub fn expect(&self, kind: &str, url_id: Option<&str>) -> std::result::Result<(), ApiError> {
        if self.kind != kind {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "INVALID_RESOURCE",
                format!(
                    "{} is not a valid resource here; expected {kind}",
                    short(&self.kind)
                ),
            )
            .with_field("data.type"));
        }
        // JSON:API: an update names the resource it changes.
        if url_id.is_some() && self.id.is_none() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "PARAM_MISSING",
                "The required parameter, data.id, is missing",
            )
            .with_field("data.id"));
        }
        if let Some(url_id) = url_id
            && self.id.as_deref().is_some_and(|id| id != url_id)
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "KEY_NOT_INCLUDED_IN_URL",
                "The id in the body is not the id in the URL",
            )
            .with_field("data.id"));
        }
        Ok(())
    }

    /// Refuses any attribute or relationship not in `attributes` / `relationships`.
    pub fn allow_only(
        &self,
        attributes: &[&str],
        relationships: &[&str],
    ) -> std::result::Result<(), ApiError> {
        if let Some(name) = self
            .attributes
            .keys()
            .find(|k| !attributes.contains(&k.as_str()))
        {
            return Err(not_allowed(short(name)));
        }
        if let Some(name) = self
            .relationships
            .keys()
            .find(|k| !relationships.contains(&k.as_str()))
        {
            return Err(not_allowed(short(name)));
        }
        Ok(())
    }

    /// A relationship: absent (None), `{"data": null}` (Some(None)) or an identifier of
    /// `kind`.
    pub fn relationship(
        &self,
        name: &str,
        kind: &str,
    ) -> std::result::Result<Option<Option<String>>, ApiError> {
        let Some(value) = self.relationships.get(name) else {
            return Ok(None);
        };
        let relationship: Relationship = serde_json::from_value(value.clone()).map_err(|_| {
            invalid(
                name,
                "must be {\"data\": {\"type\", \"id\"}} or {\"data\": null}",
            )
        })?;
        match relationship.data {
            None => Ok(Some(None)),
            Some(id) if id.kind == kind => Ok(Some(Some(id.id))),
            Some(_) => Err(invalid(name, format!("must be a resource of type {kind}"))),
        }
    }

    /// An attribute that is absent, null, or of the type `T`.
    pub fn attribute<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        what: &str,
    ) -> std::result::Result<Option<Option<T>>, ApiError> {
        match self.attributes.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => serde_json::from_value(v.clone())
                .map(|v| Some(Some(v)))
                .map_err(|_| invalid(name, format!("must be {what}"))),
        }
    }
}

/// User input quoted in a message, cut short.
fn short(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

// --- responses -------------------------------------------------------------------------------

/// A to-one relationship of a resource: its name, and the related resource when there is one.
pub struct ToOne {
    pub name: &'static str,
    pub related: Option<(&'static str, String)>,
}

/// A resource as the surface renders it.
pub struct Object {
    pub kind: &'static str,
    pub id: String,
    pub attributes: Map<String, Value>,
    pub to_one: Vec<ToOne>,
    /// To-many relationships (links only).
    pub to_many: &'static [&'static str],
}

/// How objects are written: the base URL for links, sparse fieldsets, and which
/// relationships carry `data` (those included).
pub struct Renderer<'a> {
    pub base: String,
    pub fields: Option<&'a BTreeMap<String, Vec<&'static str>>>,
    pub include: &'a [&'static str],
}

impl Renderer<'_> {
    pub fn object(&self, o: &Object) -> Value {
        let self_link = format!("{}/api/{}/{}", self.base, o.kind, o.id);
        let wanted = self.fields.and_then(|f| f.get(o.kind));
        let attributes: Map<String, Value> = o
            .attributes
            .iter()
            .filter(|(k, _)| wanted.is_none_or(|w| w.iter().any(|f| f == *k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let links = |name: &str| {
            json!({
                "self": format!("{self_link}/relationships/{name}"),
                "related": format!("{self_link}/{name}"),
            })
        };
        let mut relationships = Map::new();
        for rel in &o.to_one {
            let mut value = json!({ "links": links(rel.name) });
            if self.include.contains(&rel.name) {
                value["data"] = match &rel.related {
                    Some((kind, id)) => json!({ "type": kind, "id": id }),
                    None => Value::Null,
                };
            }
            relationships.insert(rel.name.to_owned(), value);
        }
        for name in o.to_many {
            relationships.insert((*name).to_owned(), json!({ "links": links(name) }));
        }
        json!({
            "id": o.id,
            "type": o.kind,
            "links": { "self": self_link },
            "attributes": attributes,
            "relationships": relationships,
        })
    }

    /// `{"data": {…}, "included"?: […]}`.
    pub fn single(&self, o: &Object, included: &[Object]) -> Value {
        let mut document = json!({ "data": self.object(o) });
        if !included.is_empty() {
            document["included"] = included.iter().map(|i| self.object(i)).collect();
        }
        document
    }

    /// A page of a collection at `path` (e.g. `/api/api_credentials`), with `meta` and
    /// `links`.
    pub fn page(
        &self,
        path: &str,
        query: &ListQuery,
        items: &[Object],
        included: &[Object],
        record_count: i64,
    ) -> Value {
        let size = i64::from(query.page.size);
        let page_count = (record_count + size - 1) / size;
        let number = i64::from(query.page.number);
        let link = |n: i64| format!("{}{path}?page[number]={n}&page[size]={size}", self.base);
        let mut links = json!({ "first": link(1), "last": link(page_count.max(1)) });
        if number > 1 {
            links["prev"] = json!(link((number - 1).min(page_count.max(1))));
        }
        if number < page_count {
            links["next"] = json!(link(number + 1));
        }
        let mut document = json!({
            "data": items.iter().map(|o| self.object(o)).collect::<Vec<_>>(),
            "meta": { "record_count": record_count, "page_count": page_count },
            "links": links,
        });
        if !included.is_empty() {
            document["included"] = included.iter().map(|i| self.object(i)).collect();
        }
        document
    }
}

/// `201 Created` with a document (never cached: it may hold a secret).
pub fn created(document: Value) -> Response {
    (
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(document),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_and_content_type() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(accepts(None));
        assert!(accepts(Some(&v("application/vnd.api+json"))));
        assert!(accepts(Some(&v("text/html, */*;q=0.8"))));
        assert!(!accepts(Some(&v("application/json"))));
        assert!(!accepts(Some(&v("application/vnd.api+json;q=0"))));
        assert!(is_json_api(Some(&v(
            "application/vnd.api+json; charset=utf-8"
        ))));
        assert!(!is_json_api(Some(&v("application/json"))));
        assert!(!is_json_api(None));
    }

    #[test]
    fn pointers() {
        assert_eq!(pointer("name"), "/data/attributes/name");
        assert_eq!(pointer("role"), "/data/relationships/role");
        assert_eq!(pointer("data.attributes.kind"), "/data/attributes/kind");
    }
}
