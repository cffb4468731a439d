//! The OpenAPI document: every surface's routes, then — in one place — the errors each
//! operation can answer, in the envelope of the surface that owns its path. A handler
//! documents what is particular to it (its success, an upstream's 502); the errors every route
//! of a kind can give (a bad body, a missing token, a limit) are added here from the shape of
//! the operation, so a new route cannot forget them.

use axum::http::StatusCode;
use utoipa::{
    OpenApi, PartialSchema, ToSchema,
    openapi::{
        Components, ContentBuilder, HttpMethod, ObjectBuilder, Ref, RefOr, Type,
        header::HeaderBuilder,
        path::{Operation, ParameterBuilder, ParameterIn},
        response::{Response, ResponseBuilder},
    },
};

use crate::{
    commercelayer,
    kernel::http::{
        error::{ApiError, Surface},
        native,
    },
    pingone, sunshine, tines,
};

use super::ops;

/// The document of every surface (for `/openapi.json`, the snapshot test and the route check).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = super::ApiDoc::openapi();
    doc.merge(native::routes().split_for_parts().1);
    doc.merge(pingone::api::routes().split_for_parts().1);
    doc.merge(sunshine::api::routes().split_for_parts().1);
    doc.merge(tines::api::routes().split_for_parts().1);
    doc.merge(commercelayer::openapi());
    doc.merge(ops::routes().split_for_parts().1);
    let components = doc.components.get_or_insert_with(Default::default);
    for (path, item) in &mut doc.paths.paths {
        let owner = super::owner_of(path);
        for (method, operation) in [
            (HttpMethod::Get, &mut item.get),
            (HttpMethod::Post, &mut item.post),
            (HttpMethod::Put, &mut item.put),
            (HttpMethod::Patch, &mut item.patch),
            (HttpMethod::Delete, &mut item.delete),
        ] {
            if let Some(operation) = operation {
                declare_path_parameters(path, operation);
                (owner.document)(&method, operation, components);
            }
        }
    }
    doc
}

/// Every `{name}` of the path template is a required string parameter, also where the
/// handler's annotation does not name it.
fn declare_path_parameters(path: &str, operation: &mut Operation) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    for name in path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
    {
        let declared = parameters
            .iter()
            .any(|p| p.name == name && p.parameter_in == ParameterIn::Path);
        if !declared {
            parameters.push(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(utoipa::openapi::Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            );
        }
    }
}

/// Adds the errors `operation` can answer that it does not document itself, in `S`'s
/// envelope and with the status `S` answers them with (PingOne and Sunshine use 400 for some
/// that others answer with 409 or 422).
pub(super) fn document_errors<S: Surface>(
    method: &HttpMethod,
    operation: &mut Operation,
    components: &mut Components,
) {
    let name = S::Envelope::name();
    if !components.schemas.contains_key(name.as_ref()) {
        let mut nested = Vec::new();
        S::Envelope::schemas(&mut nested);
        components.schemas.extend(nested);
        components
            .schemas
            .insert(name.to_string(), S::Envelope::schema());
    }
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = operation.request_body.is_some();
    let writes = matches!(
        method,
        HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch
    );

    let mut statuses = vec![StatusCode::TOO_MANY_REQUESTS];
    if secured {
        statuses.extend([StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN]);
    }
    // Any input can be malformed or invalid, and a path, a query or a body can name a
    // resource that is not there (a team, a folder, an organization).
    if has_parameters || has_body {
        statuses.extend([
            StatusCode::BAD_REQUEST,
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::NOT_FOUND,
        ]);
    }
    if has_body {
        statuses.push(StatusCode::PAYLOAD_TOO_LARGE);
    }
    if has_body && writes {
        statuses.push(StatusCode::CONFLICT);
    }
    statuses.extend(
        S::MEDIA_TYPE_ERRORS
            .iter()
            .filter(|s| has_body || **s != StatusCode::UNSUPPORTED_MEDIA_TYPE),
    );

    for status in statuses {
        let answered = S::status(&ApiError::new(status, "", ""));
        let key = answered.as_str().to_owned();
        if operation.responses.responses.contains_key(&key) {
            continue;
        }
        operation
            .responses
            .responses
            .insert(key, RefOr::T(error_response::<S>(answered, &name)));
    }
}

fn error_response<S: Surface>(status: StatusCode, envelope: &str) -> Response {
    let mut response = ResponseBuilder::new()
        .description(status.canonical_reason().unwrap_or("error"))
        .content(
            S::MEDIA_TYPE,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(envelope)))
                .build(),
        );
    if status == StatusCode::TOO_MANY_REQUESTS {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before trying again"))
                .build(),
        );
    }
    response.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_parameter_is_declared_and_every_operation_documents_429() {
        let doc = openapi();
        for (path, item) in &doc.paths.paths {
            for operation in [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                .into_iter()
                .flatten()
            {
                assert!(operation.responses.responses.contains_key("429"), "{path}");
                let declared = operation
                    .parameters
                    .iter()
                    .flatten()
                    .filter(|p| p.parameter_in == ParameterIn::Path)
                    .count();
                assert_eq!(declared, path.matches('{').count(), "{path}");
            }
        }
    }
}
