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

/// Every documented route is served (the router is built from the documented routes, so no
/// route can be served without being documented; this proves the other direction): a
/// request to it never reaches the fallback that answers unknown paths and methods.
async fn every_documented_route_is_served(app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let doc = latchkey::server::openapi();
    let mut checked = 0;
    for (path, item) in &doc.paths.paths {
        let concrete = path
            .split('/')
            .map(|part| {
                if part.starts_with('{') {
                    "00000000-0000-0000-0000-000000000000"
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let methods = [
            (reqwest::Method::GET, item.get.is_some()),
            (reqwest::Method::POST, item.post.is_some()),
            (reqwest::Method::PUT, item.put.is_some()),
            (reqwest::Method::PATCH, item.patch.is_some()),
            (reqwest::Method::DELETE, item.delete.is_some()),
        ];
        for (method, _) in methods.into_iter().filter(|(_, documented)| *documented) {
            let (status, body) = app
                .request(method.clone(), &concrete, Some(&token), None)
                .await;
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {body}"
            );
            assert!(
                !body.to_string().contains("no such route"),
                "{method} {path} is documented but not served: {body}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} routes checked");
}

/// Clients cannot add metric series: a made-up method is counted as `OTHER`, and durations
/// are histograms with fixed buckets (no per-series summary that grows with every sample).
async fn clients_cannot_grow_the_metrics(app: TestApp) {
    for method in ["FOO1", "FOO2", "BREW"] {
        let res = app
            .client
            .request(method.parse().unwrap(), format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("FOO1") && !text.contains("BREW"), "{text}");
    assert!(text.contains("method=\"OTHER\""), "{text}");
    assert!(
        text.contains("latchkey_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains("quantile="), "no summaries: {text}");
}

both_engines!(health_ready_metrics);
one_engine!(
    unknown_routes_answer_in_their_surface_envelope,
    docs_are_served,
    every_documented_route_is_served,
    clients_cannot_grow_the_metrics,
);

/// Every route the router serves is in the OpenAPI document, and the document is stable.
#[test]
fn openapi_covers_every_route_and_matches_the_snapshot() {
    let doc = latchkey::server::openapi();
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
        "/api/api_credentials",
        "/api/api_credentials/{id}",
        "/api/api_credentials/{id}/organization",
        "/api/api_credentials/{id}/role",
        "/api/roles",
        "/api/roles/{id}",
        "/api/organizations",
        "/api/organizations/{id}",
        "/oauth/token",
        "/oauth/revoke",
        "/.well-known/oauth-authorization-server",
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
    let meta = latchkey::kernel::RequestMeta::default();
    let principal = l.authenticate(Some(&app.admin), &meta).await.unwrap();
    let ctx = latchkey::kernel::Ctx {
        principal,
        request_id: None,
        ip: None,
        external_id: None,
    };
    let families = latchkey::server::Families::new(
        l,
        &Default::default(),
        &latchkey::egress::Egress::new(Default::default()).unwrap(),
    );
    let registry = latchkey::kernel::verify::Registry::new(families.verifiers());
    let sizes = [
        (
            "authenticate",
            std::mem::size_of_val(&l.authenticate(None, &meta)),
        ),
        (
            "verify_credential",
            std::mem::size_of_val(&registry.verify(l, &ctx, "x")),
        ),
        (
            "sunshine authenticate",
            std::mem::size_of_val(&families.sunshine.authenticate(None, meta.clone())),
        ),
    ];
    for (name, size) in sizes {
        assert!(size <= 2048, "the {name} future is {size} bytes");
    }
}
