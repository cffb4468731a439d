//! Health, readiness, metrics and the OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{both_engines, helpers::TestApp, one_engine};

async fn health_ready_metrics(app: TestApp) {
    let (status, body) = app
        .request(reqwest::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = app
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));

    let (_, token) = app.org_with("admin").await;
    let team = app.team(&token, "Ops").await;
    app.tines(&token).get(&format!("/teams/{team}")).await;
    let res = app.raw(Method::GET, "/metrics").send().await;
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text;
    assert!(text.contains("latchkey_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/api/v1/teams/{id}\""), "{text}");
    assert!(
        !text.contains(&format!("/api/v1/teams/{team}\"")),
        "ids must not become labels"
    );
    assert!(!text.contains(&token));
}

async fn unknown_routes_answer_in_their_surface_envelope(app: TestApp) {
    // Request ids come back; unknown routes answer in JSON.
    let res = app.raw(Method::GET, "/nowhere").send().await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert!(res.headers.contains_key("x-request-id"));
    assert_eq!(res.body["error"]["code"], "not_found");

    // An unknown path or method answers in the envelope of the surface the path belongs to.
    for (method, path, status, code) in [
        ("GET", "/v1/environments/e/nothing", 404, "/code"),
        ("PATCH", "/v1/environments", 405, "/code"),
        ("GET", "/v2/nothing", 404, "/errors/0/code"),
        ("PUT", "/v2/apps", 405, "/errors/0/code"),
        ("GET", "/api/v1/nothing", 404, "/errors/0/message"),
        ("PATCH", "/v1/tokens", 405, "/error/code"),
    ] {
        let res = app.raw(method.parse().unwrap(), path).send().await;
        assert_eq!(res.status.as_u16(), status, "{method} {path}");
        let body = res.body;
        assert!(
            body.pointer(code).is_some_and(|v| v.is_string()),
            "{method} {path}: {body}"
        );
    }
}

async fn docs_are_served(app: TestApp) {
    let (status, doc) = app
        .request(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let res = app.raw(Method::GET, "/docs/").send().await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.text.contains("swagger"));
}

both_engines!(health_ready_metrics);
one_engine!(
    unknown_routes_answer_in_their_surface_envelope,
    docs_are_served
);

/// Every route the router serves is in the OpenAPI document, and the document is stable.
#[test]
fn openapi_covers_every_route_and_matches_the_snapshot() {
    let doc = latchkey::api::openapi();
    let paths: Vec<&String> = doc.paths.paths.keys().collect();
    for expected in [
        "/v1/organizations",
        "/v1/organizations/{id}",
        "/v1/tokens",
        "/v1/tokens/{id}",
        "/v1/audit_events",
        "/v1/authenticate",
        "/v1/account_keys",
        "/v1/account_keys/{id}",
        "/v2/apps",
        "/v2/apps/{appId}",
        "/v2/apps/{appId}/integrations",
        "/v2/apps/{appId}/integrations/{integrationId}",
        "/v2/apps/{appId}/keys",
        "/v2/apps/{appId}/keys/{keyId}",
        "/v2/apps/{appId}/integrations/{integrationId}/keys",
        "/v2/apps/{appId}/integrations/{integrationId}/keys/{keyId}",
        "/v1/environments",
        "/v1/environments/{envID}",
        "/v1/environments/{envID}/gateways",
        "/v1/environments/{envID}/gateways/{gatewayID}",
        "/v1/environments/{envID}/gateways/{gatewayID}/credentials",
        "/v1/environments/{envID}/gateways/{gatewayID}/credentials/{credentialID}",
        "/v1/environments/{envID}/jwks",
        "/{envID}/as/token",
        "/.well-known/jwks.json",
        "/api/v1/teams",
        "/api/v1/teams/{id}",
        "/api/v1/folders",
        "/api/v1/folders/{id}",
        "/api/v1/user_credentials",
        "/api/v1/user_credentials/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.iter().any(|p| *p == expected),
            "{expected} is not documented"
        );
    }
    for item in doc.paths.paths.values() {
        for op in [&item.get, &item.post, &item.put, &item.delete, &item.patch]
            .into_iter()
            .flatten()
        {
            assert!(op.responses.responses.keys().len() >= 1);
        }
    }
    insta::assert_json_snapshot!("openapi", serde_json::to_value(&doc).unwrap());
}

/// The futures of the hot path stay small: cold paths (the store, failure audits) are boxed,
/// so a cached verification does not copy kilobytes of unused state on every request.
#[tokio::test]
async fn hot_path_futures_stay_small() {
    let app = TestApp::sqlite().await;
    let l = &app.latchkey;
    let meta = latchkey::core::RequestMeta::default();
    let principal = l.authenticate(Some(&app.admin), &meta).await.unwrap();
    let ctx = latchkey::core::Ctx {
        principal,
        request_id: None,
        ip: None,
        external_id: None,
    };
    let sizes = [
        (
            "authenticate",
            std::mem::size_of_val(&l.authenticate(None, &meta)),
        ),
        (
            "verify_credential",
            std::mem::size_of_val(&l.verify_credential(&ctx, "x")),
        ),
        (
            "authenticate_key_or_token",
            std::mem::size_of_val(&l.authenticate_key_or_token(None, &meta)),
        ),
    ];
    for (name, size) in sizes {
        assert!(size <= 2048, "the {name} future is {size} bytes");
    }
}
