//! Request limits in front of every route (per client address, per credential), the
//! surface's envelope for their 429, and client addresses through trusted proxies only.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{helpers::TestApp, one_engine};

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
