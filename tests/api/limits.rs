//! Request limits in front of every route (per client address, per credential), the
//! surface's envelope for their 429, and client addresses through trusted proxies only.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{both_engines, helpers::TestApp, one_engine};

async fn get(app: &TestApp, path: &str, token: &str, forwarded: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token);
    if let Some(ip) = forwarded {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

/// Past the per-address burst, every route answers 429 with Retry-After, in its surface's
/// envelope; forwarded addresses are ignored from an untrusted peer.
async fn per_address_limit(_: TestApp) {
    let app = TestApp::sqlite_with(&[("LATCHKEY_RATE_LIMIT_PER_IP", "5")]).await;
    let (_, token) = app.org_with("admin").await; // two requests
    let mut statuses = Vec::new();
    for i in 0..12 {
        // A client's own X-Forwarded-For changes nothing: the peer is not a trusted proxy.
        let r = get(
            &app,
            "/api/v1/teams",
            &token,
            Some(&format!("203.0.113.{i}")),
        )
        .await;
        statuses.push(r.status());
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let r = get(&app, "/api/v1/teams", &token, None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let body: Value = r.json().await.unwrap();
    assert!(
        body["errors"][0]["message"].as_str().is_some(),
        "Tines envelope: {body}"
    );
    let r = get(&app, "/v1/organizations", &token, None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "rate_limited",
        "native envelope: {body}"
    );
}

/// Behind a trusted proxy, each forwarded client has its own allowance, and the audit log
/// records the forwarded address.
async fn trusted_proxies(_: TestApp) {
    let app = TestApp::sqlite_with(&[
        ("LATCHKEY_RATE_LIMIT_PER_IP", "5"),
        ("LATCHKEY_TRUSTED_PROXIES", "127.0.0.0/8,::1/128"),
    ])
    .await;
    let (_, token) = app.org_with("admin").await;
    let mut limited = false;
    for _ in 0..12 {
        let r = get(
            &app,
            "/api/v1/teams",
            &token,
            Some("198.51.100.1, 203.0.113.7"),
        )
        .await;
        limited |= r.status() == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited, "203.0.113.7 used up its allowance");
    let r = get(&app, "/api/v1/teams", &token, Some("203.0.113.8")).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "another client behind the proxy is not limited"
    );
    let created = app
        .client
        .post(format!("{}/api/v1/teams", app.base))
        .bearer_auth(&token)
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"name": "Behind the proxy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let events: Value = get(
        &app,
        "/v1/audit_events?action=team.create",
        &token,
        Some("203.0.113.10"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(events["audit_events"][0]["ip"], "203.0.113.9", "{events}");
}

/// The per-credential limit follows the Authorization value, whatever the address.
async fn per_token_limit(_: TestApp) {
    let app = TestApp::sqlite_with(&[
        ("LATCHKEY_RATE_LIMIT_PER_IP", "0"),
        ("LATCHKEY_RATE_LIMIT_PER_TOKEN", "3"),
    ])
    .await;
    let (org, token) = app.org_with("admin").await;
    let other = app.token(&org, "viewer", None).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(get(&app, "/api/v1/teams", &token, None).await.status());
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(
        get(&app, "/api/v1/teams", &other, None).await.status(),
        StatusCode::OK
    );
}

one_engine!(per_address_limit, trusted_proxies, per_token_limit);

/// Ids of a shape no surface makes (a made-up word, 20 KB of letters) answer 404 (or 400 for a
/// cursor) in the surface's envelope; they are refused before any lookup. A team-bound token
/// gets the same 403 from Sunshine whether the app exists or not.
async fn made_up_ids_are_not_found(app: TestApp) {
    let (org, token) = app.org_with("admin").await;
    let long = "a".repeat(20_000);
    let uuid = uuid::Uuid::new_v4().to_string();
    for made_up in ["x", long.as_str()] {
        for (path, want) in [
            (format!("/v1/environments/{made_up}"), StatusCode::NOT_FOUND),
            (
                format!("/v1/environments/{uuid}/gateways/{made_up}"),
                StatusCode::NOT_FOUND,
            ),
            (
                format!("/v1/environments/{made_up}/jwks"),
                StatusCode::NOT_FOUND,
            ),
            (format!("/v2/apps/{made_up}"), StatusCode::NOT_FOUND),
            (
                format!("/v2/apps?page[after]={made_up}"),
                StatusCode::BAD_REQUEST,
            ),
            (
                format!("/api/api_credentials/{made_up}"),
                StatusCode::NOT_FOUND,
            ),
            (format!("/api/roles/{made_up}"), StatusCode::NOT_FOUND),
            (format!("/api/permissions/{made_up}"), StatusCode::NOT_FOUND),
            (format!("/api/versions/{made_up}"), StatusCode::NOT_FOUND),
            (
                format!("/api/organizations/{made_up}"),
                StatusCode::NOT_FOUND,
            ),
            (
                format!("/v1/organizations/{made_up}"),
                StatusCode::NOT_FOUND,
            ),
            (
                format!("/.well-known/jwks.json?organization={made_up}"),
                StatusCode::NOT_FOUND,
            ),
        ] {
            let (status, body) = app.get(&path, &token).await;
            assert_eq!(status, want, "{}: {body}", &path[..path.len().min(80)]);
            assert!(body.is_object(), "an envelope: {body}");
        }
        for path in [
            format!("/v1/tokens/{made_up}"),
            format!("/v1/provisioning_clients/{made_up}"),
            format!("/v1/environments/{uuid}/gateways/{uuid}/credentials/{made_up}"),
        ] {
            let (status, _) = app
                .request(reqwest::Method::DELETE, &path, Some(&token), None)
                .await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{}",
                &path[..path.len().min(80)]
            );
        }
    }

    let (status, created) = app
        .post("/v2/apps", &token, json!({"displayName": "real"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let real = created["app"]["id"].as_str().unwrap().to_owned();
    let team = app.team(&token, "Ops").await;
    let bound = app.token(&org, "editor", Some(team)).await;
    let (status_real, body_real) = app.get(&format!("/v2/apps/{real}"), &bound).await;
    let (status_none, body_none) = app.get("/v2/apps/0123456789abcdef01234567", &bound).await;
    assert_eq!(status_real, StatusCode::FORBIDDEN);
    assert_eq!((status_real, body_real), (status_none, body_none));
}

both_engines!(made_up_ids_are_not_found);
