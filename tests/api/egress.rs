//! The egress engine through the Tines surface: `POST /api/v1/http_requests` and
//! `POST /api/v1/user_credentials/{id}/resolve`, against real HTTP servers on loopback
//! (wiremock), with the policies an attacker aims at.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{body_string_contains, header, method, path},
};

use crate::{
    both_engines,
    helpers::{TestApp, assert_absent},
    one_engine,
};

/// An organization, a team and an admin token for it: (token, team id).
async fn setup(app: &TestApp) -> (String, i64) {
    let (_, token) = app.org_with("admin").await;
    let team = app.team(&token, "Ops").await;
    (token, team)
}

async fn credential(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, created) = app.tines(token).post("/user_credentials", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn use_http(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.tines(token).post("/http_requests", body).await
}

async fn resolve(app: &TestApp, token: &str, id: i64, body: Value) -> (StatusCode, Value) {
    app.tines(token)
        .post(&format!("/user_credentials/{id}/resolve"), body)
        .await
}

fn message(body: &Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Answers with what it received: the request's headers and body, echoed.
struct Echo;

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let headers: serde_json::Map<String, Value> = request
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
            .collect();
        ResponseTemplate::new(200)
            .insert_header(
                "x-echo-key",
                request
                    .headers
                    .get("x-key")
                    .map_or("", |v| v.to_str().unwrap_or_default()),
            )
            .set_body_json(json!({
                "url": request.url.to_string(),
                "headers": headers,
                "body": String::from_utf8_lossy(&request.body),
            }))
    }
}

async fn text_and_oauth_through_http_requests(app: TestApp) {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("authorization", "Basic Y2xpZW50LWlkOmNsaWVudC1zZWNyZXQ="))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "oauth-access-token-1", "token_type": "Bearer", "expires_in": 3600}),
        ))
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(path("/api/things"))
        .respond_with(Echo)
        .mount(&upstream)
        .await;

    let (token, team) = setup(&app).await;
    let text = credential(
        &app,
        &token,
        json!({"name": "api key", "mode": "TEXT", "team_id": team,
        "value": "text-secret-value", "allowed_hosts": ["127.0.0.1"]}),
    )
    .await;
    assert_eq!(text["restriction_type"], "RESTRICTED");
    assert_eq!(text["last_used_at"], Value::Null);
    let oauth = credential(
        &app,
        &token,
        json!({"name": "crm", "mode": "OAUTH", "team_id": team,
        "oauth_token_url": format!("{}/oauth/token", upstream.uri()),
        "oauth_client_id": "client-id", "oauth_client_secret": "client-secret",
        "oauth_grant_type": "client_credentials", "allowed_hosts": ["127.0.0.1/api/*"]}),
    )
    .await;

    for _ in 0..2 {
        let (status, answer) = use_http(&app, &token, json!({
            "url": format!("{}/api/things?key=<<CREDENTIAL.api_key>>&plain=1", upstream.uri()),
            "method": "post",
            "content_type": "json",
            "headers": {"Authorization": "Bearer <<CREDENTIAL.crm>>", "X-Key": "<<CREDENTIAL.api_key>>"},
            "payload": {"note": "hello", "copy": "<<CREDENTIAL.api_key>>"},
            "team_id": team,
        })).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["status"], 200);
        assert_eq!(
            answer["body"]["body"],
            r#"{"copy":"[redacted]","note":"hello"}"#
        );
        assert_eq!(
            answer["body"]["headers"]["authorization"],
            "Bearer [redacted]"
        );
        assert_eq!(answer["body"]["headers"]["x-key"], "[redacted]");
        assert_eq!(answer["headers"]["x-echo-key"], "[redacted]");
        assert!(
            answer["body"]["url"]
                .as_str()
                .unwrap()
                .ends_with("key=[redacted]&plain=1"),
            "{answer}"
        );
        let text = answer.to_string();
        assert_absent(&text, "text-secret-value", "the answer");
        assert_absent(&text, "oauth-access-token-1", "the answer");
    }
    // What the upstream received: the real values.
    let received = upstream.received_requests().await.unwrap();
    let call = received
        .iter()
        .find(|r| r.url.path() == "/api/things")
        .unwrap();
    assert_eq!(call.headers["authorization"], "Bearer oauth-access-token-1");
    assert_eq!(call.headers["x-key"], "text-secret-value");
    assert_eq!(call.url.query(), Some("key=text-secret-value&plain=1"));

    // Records: last_used_at, and one audit event per credential and use, with no value.
    let (_, shown) = app
        .tines(&token)
        .get(&format!("/user_credentials/{}", oauth["id"]))
        .await;
    assert!(shown["last_used_at"].as_str().is_some(), "{shown}");
    let (_, events) = app
        .get("/v1/audit_events?action=user_credential.use", &token)
        .await;
    let events = events["audit_events"].as_array().cloned().unwrap();
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["outcome"] == "success" && e["detail"]["host"] == "127.0.0.1")
    );
    assert!(events.iter().any(|e| e["detail"]["mode"] == "OAUTH"));
    let all = serde_json::to_string(&events).unwrap();
    assert_absent(&all, "text-secret-value", "audit events");
    assert_absent(&all, "oauth-access-token-1", "audit events");

    // An upstream failure is still a 200 carrying its status.
    let (status, answer) = use_http(
        &app,
        &token,
        json!({
        "url": format!("{}/missing", upstream.uri()), "team_id": team}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], 404);

    // resolve answers the values themselves, not cached by HTTP caches.
    let (status, value) = resolve(&app, &token, text["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["value"], "text-secret-value");
    let (status, value) = resolve(&app, &token, oauth["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["value"], "oauth-access-token-1");
}

/// An OAuth client that the token endpoint refuses over HTTP Basic is retried with the
/// secret in the body, once, and that choice is remembered.
async fn oauth_falls_back_to_the_body_once(app: TestApp) {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("client_secret=s3cret-body"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "body-token", "expires_in": "2"})),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": "invalid_client", "error_description": "echo s3cret-body"}),
        ))
        .mount(&upstream)
        .await;
    let (token, team) = setup(&app).await;
    let oauth = credential(
        &app,
        &token,
        json!({"name": "body auth", "mode": "OAUTH", "team_id": team,
        "oauth_token_url": format!("{}/token", upstream.uri()), "oauth_client_id": "id",
        "oauth_client_secret": "s3cret-body", "allowed_hosts": ["127.0.0.1"]}),
    )
    .await;
    let id = oauth["id"].as_i64().unwrap();
    let (status, value) = resolve(&app, &token, id, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["value"], "body-token");
    // expires_in 2 s: refreshed ahead of time, so the next use fetches again, in the body.
    tokio::time::sleep(Duration::from_millis(1900)).await;
    let (status, _) = resolve(&app, &token, id, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let received = upstream.received_requests().await.unwrap();
    let basic: Vec<_> = received
        .iter()
        .filter(|r| r.headers.contains_key("authorization"))
        .collect();
    assert_eq!(basic.len(), 1, "HTTP Basic is tried once");
    assert_eq!(received.len(), 3);
}

/// 100 concurrent uses make one upstream fetch, for OAuth and for an HTTP request credential
/// with a TTL; without a TTL, every use fetches.
async fn single_flight(app: TestApp) {
    let upstream = MockServer::start().await;
    Mock::given(path("/oauth"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "shared-token", "expires_in": 600}))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&upstream)
        .await;
    Mock::given(path("/agent"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"token": "agent-token"}}))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&upstream)
        .await;
    let (token, team) = setup(&app).await;
    let oauth = credential(
        &app,
        &token,
        json!({"name": "o", "mode": "OAUTH", "team_id": team,
        "oauth_token_url": format!("{}/oauth", upstream.uri()), "oauth_client_id": "id",
        "oauth_client_secret": "secret", "allowed_hosts": ["127.0.0.1"]}),
    )
    .await;
    let agent = credential(
        &app,
        &token,
        json!({"name": "a", "mode": "HTTP_REQUEST_AGENT", "team_id": team,
        "http_request_options": {"url": format!("{}/agent", upstream.uri()), "method": "post",
            "headers": {"X-Secret": "<<secret>>"}},
        "http_request_secret": "agent-fetch-secret",
        "http_request_location_of_token": "=response.body.data.token",
        "http_request_ttl": 60, "allowed_hosts": ["127.0.0.1"]}),
    )
    .await;
    let untimed = credential(
        &app,
        &token,
        json!({"name": "u", "mode": "HTTP_REQUEST_AGENT", "team_id": team,
        "http_request_options": {"url": format!("{}/agent", upstream.uri())},
        "http_request_location_of_token": "=response.body.data.token",
        "allowed_hosts": ["127.0.0.1"]}),
    )
    .await;

    for (cred, want) in [(&oauth, "shared-token"), (&agent, "agent-token")] {
        let id = cred["id"].as_i64().unwrap();
        let uses = (0..100).map(|_| {
            let app = &app;
            let token = &token;
            async move { resolve(app, token, id, json!({})).await }
        });
        for (status, value) in futures::future::join_all(uses).await {
            assert_eq!(status, StatusCode::OK, "{value}");
            assert_eq!(value["value"], want);
        }
    }
    let received = upstream.received_requests().await.unwrap();
    assert_eq!(
        received.iter().filter(|r| r.url.path() == "/oauth").count(),
        1
    );
    assert_eq!(
        received.iter().filter(|r| r.url.path() == "/agent").count(),
        1
    );
    let fetch = received.iter().find(|r| r.url.path() == "/agent").unwrap();
    assert_eq!(fetch.headers["x-secret"], "agent-fetch-secret");

    let id = untimed["id"].as_i64().unwrap();
    for _ in 0..2 {
        let (status, _) = resolve(&app, &token, id, json!({})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let received = upstream.received_requests().await.unwrap();
    assert_eq!(
        received.iter().filter(|r| r.url.path() == "/agent").count(),
        3
    );
}

/// MULTI_REQUEST: the second request reads the first's answer; the token is read from the
/// second. A JWT credential mints a fresh token per use.
async fn multi_request_and_jwt(app: TestApp) {
    let upstream = MockServer::start().await;
    Mock::given(path("/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"session": "sess-42"})))
        .mount(&upstream)
        .await;
    Mock::given(path("/vault"))
        .and(header("x-session", "sess-42"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"secret": {"value": "from-vault"}})),
        )
        .mount(&upstream)
        .await;
    let (token, team) = setup(&app).await;
    let multi = credential(&app, &token, json!({"name": "m", "mode": "MULTI_REQUEST", "team_id": team,
        "credential_requests": [
            {"options": {"url": format!("{}/login", upstream.uri()), "method": "post", "payload": {"password": "<<secret>>"}},
             "http_request_secret": "first-secret"},
            {"options": {"url": format!("{}/vault", upstream.uri()), "headers": {"X-Session": "<<PREVIOUS_STEP.body.session>>"}}}
        ],
        "http_request_location_of_token": "=response.body.secret.value",
        "allowed_hosts": ["127.0.0.1"]})).await;
    let (status, value) = resolve(&app, &token, multi["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["value"], "from-vault");
    let login = upstream.received_requests().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&login[0].body),
        r#"{"password":"first-secret"}"#
    );

    let jwt = credential(
        &app,
        &token,
        json!({"name": "signer", "mode": "JWT", "team_id": team,
        "jwt_algorithm": "HS256", "jwt_private_key": "an-hmac-key-of-decent-length",
        "jwt_payload": {"sub": "svc", "aud": "api"}, "jwt_auto_generate_time_claims": true}),
    )
    .await;
    let (status, value) = resolve(&app, &token, jwt["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["api"]);
    let claims = jsonwebtoken::decode::<Value>(
        value["value"].as_str().unwrap(),
        &jsonwebtoken::DecodingKey::from_secret(b"an-hmac-key-of-decent-length"),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "svc");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
}

/// Every policy refusal, in the Tines envelope, naming the credential and never a value.
async fn policy_refusals(app: TestApp) {
    let upstream = MockServer::start().await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&upstream)
        .await;
    let (token, team) = setup(&app).await;
    credential(
        &app,
        &token,
        json!({"name": "nowhere", "mode": "TEXT", "team_id": team, "value": "v-nowhere"}),
    )
    .await;
    credential(
        &app,
        &token,
        json!({"name": "example", "mode": "TEXT", "team_id": team, "value": "v-example",
        "allowed_hosts": ["*.example.com", "https://127.0.0.1/*"]}),
    )
    .await;
    let port = upstream.address().port();
    let cases = [
        (
            json!({"url": format!("http://127.0.0.1:{port}/ok?k=<<CREDENTIAL.nowhere>>")}),
            StatusCode::FORBIDDEN,
            "no allowed_hosts",
        ),
        (
            json!({"url": format!("http://127.0.0.1:{port}/ok"), "headers": {"k": "<<CREDENTIAL.example>>"}}),
            StatusCode::FORBIDDEN,
            "may not be sent to http://127.0.0.1",
        ),
        (
            json!({"url": "https://evilexample.com/?k=<<CREDENTIAL.example>>"}),
            StatusCode::FORBIDDEN,
            "may not be sent",
        ),
        (
            json!({"url": "https://<<CREDENTIAL.example>>.example.com/"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "only in the URL's query",
        ),
        (
            json!({"url": "https://a.example.com/<<CREDENTIAL.example>>"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "only in the URL's query",
        ),
        (
            json!({"url": format!("http://127.0.0.1:{port}/ok?k=<<CREDENTIAL.missing>>")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "\"missing\" does not exist",
        ),
        (
            json!({"url": "file:///etc/passwd"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "http or https",
        ),
        (
            json!({"url": format!("http://127.0.0.1:{port}/ok"), "method": "trace"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "method",
        ),
        (
            json!({"url": format!("http://127.0.0.1:{port}/ok"), "verify_ssl": false}),
            StatusCode::BAD_REQUEST,
            "verify_ssl",
        ),
        (
            json!({"url": format!("http://127.0.0.1:{port}/ok"), "headers": {"Host": "internal.example"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "set by Latchkey",
        ),
    ];
    for (mut body, want, says) in cases {
        body["team_id"] = json!(team);
        let (status, e) = use_http(&app, &token, body.clone()).await;
        assert_eq!(status, want, "{body} -> {e}");
        assert!(message(&e).contains(says), "{body} -> {e}");
        assert_absent(&e.to_string(), "v-example", "an error");
        assert_absent(&e.to_string(), "v-nowhere", "an error");
    }
    // Nothing was sent for any refusal.
    assert!(upstream.received_requests().await.unwrap().is_empty());
}

/// Without `LATCHKEY_EGRESS_ALLOW_NETWORKS`, loopback, metadata and private addresses (by
/// literal or by a name that resolves to them) are refused before any connection.
async fn network_policy_without_the_allow_list(_: TestApp) {
    let app = TestApp::sqlite_with(&[("LATCHKEY_EGRESS_ALLOW_NETWORKS", "")]).await;
    let upstream = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&upstream)
        .await;
    let (token, team) = setup(&app).await;
    let port = upstream.address().port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://0.0.0.0/".to_owned(),
    ] {
        let (status, e) = use_http(&app, &token, json!({"url": url, "team_id": team})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url} -> {e}");
        assert!(message(&e).contains("network policy"), "{url} -> {e}");
    }
    assert!(upstream.received_requests().await.unwrap().is_empty());
}

/// Redirects: followed within the policy; to an unlisted host refused; credentials dropped
/// when the origin changes.
async fn redirects(app: TestApp) {
    let first = MockServer::start().await;
    let second = MockServer::start().await;
    let second_port = second.address().port();
    Mock::given(path("/same"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/final"))
        .mount(&first)
        .await;
    Mock::given(path("/final"))
        .respond_with(Echo)
        .mount(&first)
        .await;
    Mock::given(path("/away"))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("http://localhost:{second_port}/landing"),
        ))
        .mount(&first)
        .await;
    Mock::given(path("/landing"))
        .respond_with(Echo)
        .mount(&second)
        .await;
    let (token, team) = setup(&app).await;
    credential(
        &app,
        &token,
        json!({"name": "loopback only", "mode": "TEXT", "team_id": team,
        "value": "redirect-secret", "allowed_hosts": ["127.0.0.1"]}),
    )
    .await;
    credential(
        &app,
        &token,
        json!({"name": "both", "mode": "TEXT", "team_id": team,
        "value": "both-secret", "allowed_hosts": ["127.0.0.1", "localhost"]}),
    )
    .await;

    let (status, answer) = use_http(&app, &token, json!({"team_id": team,
        "url": format!("{}/same", first.uri()), "headers": {"X-Key": "<<CREDENTIAL.loopback_only>>"}})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["body"]["headers"]["x-key"], "[redacted]",
        "same origin keeps it"
    );

    let (status, e) = use_http(&app, &token, json!({"team_id": team,
        "url": format!("{}/away", first.uri()), "headers": {"X-Key": "<<CREDENTIAL.loopback_only>>"}})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    assert!(message(&e).contains("localhost"), "{e}");
    assert!(second.received_requests().await.unwrap().is_empty());

    let (status, answer) = use_http(&app, &token, json!({"team_id": team,
        "url": format!("{}/away", first.uri()),
        "headers": {"X-Key": "<<CREDENTIAL.both>>", "Authorization": "Bearer plain", "X-Plain": "kept"}})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let landed = &second.received_requests().await.unwrap()[0];
    assert!(
        !landed.headers.contains_key("x-key"),
        "the credential header is dropped"
    );
    assert!(!landed.headers.contains_key("authorization"));
    assert_eq!(landed.headers["x-plain"], "kept");
}

/// Who may use what: read_access, shadowing, test twins, team-bound tokens, runner, viewer.
async fn access_rules(app: TestApp) {
    let upstream = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(Echo)
        .mount(&upstream)
        .await;
    let (org, admin) = app.org_with("admin").await;
    let ops = app.team(&admin, "Ops").await;
    let dev = app.team(&admin, "Dev").await;
    let sec = app.team(&admin, "Sec").await;
    let hosts = json!(["127.0.0.1"]);
    let own = credential(&app, &admin, json!({"name": "shared", "mode": "TEXT", "team_id": ops, "value": "ops-value", "allowed_hosts": hosts, "read_access": "GLOBAL"})).await;
    credential(&app, &admin, json!({"name": "shared", "mode": "TEXT", "team_id": dev, "value": "dev-value", "allowed_hosts": hosts})).await;
    credential(&app, &admin, json!({"name": "private", "mode": "TEXT", "team_id": ops, "value": "private-value", "allowed_hosts": hosts})).await;
    credential(&app, &admin, json!({"name": "picked", "mode": "TEXT", "team_id": ops, "value": "picked-value", "allowed_hosts": hosts, "read_access": "SPECIFIC_TEAMS", "shared_team_slugs": ["sec"]})).await;
    credential(&app, &admin, json!({"name": "shared", "mode": "TEXT", "team_id": ops, "value": "test-value", "allowed_hosts": hosts, "live_credential_id": own["id"]})).await;

    credential(
        &app,
        &admin,
        json!({"name": "loose", "mode": "TEXT", "team_id": ops, "value": "loose-value"}),
    )
    .await;
    for t in [ops, dev] {
        credential(&app, &admin, json!({"name": "dup", "mode": "TEXT", "team_id": t, "value": format!("dup-{t}"), "allowed_hosts": hosts, "read_access": "GLOBAL"})).await;
    }
    let runner_dev = app.token(&org, "runner", Some(dev)).await;
    let runner_sec = app.token(&org, "runner", Some(sec)).await;
    let viewer = app.token(&org, "viewer", None).await;
    let url = |slug: &str| format!("{}/?v=<<CREDENTIAL.{slug}>>", upstream.uri());
    let sent = |answer: &Value| {
        answer["body"]["url"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let sent_value = || async {
        let r = upstream.received_requests().await.unwrap();
        r.last().unwrap().url.query().unwrap_or_default().to_owned()
    };

    // Dev's own "shared" shadows Ops' global one.
    let (status, answer) = use_http(&app, &runner_dev, json!({"url": url("shared")})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(sent(&answer).ends_with("v=[redacted]"));
    assert_eq!(sent_value().await, "v=dev-value");
    // Sec has none of its own: Ops' global one; the specific share; not Ops' private one.
    let (status, _) = use_http(&app, &runner_sec, json!({"url": url("shared")})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sent_value().await, "v=ops-value");
    let (status, _) = use_http(&app, &runner_sec, json!({"url": url("picked")})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = use_http(&app, &runner_dev, json!({"url": url("picked")})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    // Two teams share a "dup": Sec must not get whichever is older.
    let (status, e) = use_http(&app, &runner_sec, json!({"url": url("dup")})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(message(&e).contains("several teams"), "{e}");
    let (status, _) = use_http(&app, &runner_sec, json!({"url": url("private")})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // test: true uses the twin.
    let (status, _) = use_http(
        &app,
        &admin,
        json!({"url": url("shared"), "team_id": ops, "test": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sent_value().await, "v=test-value");
    let (status, value) = resolve(
        &app,
        &admin,
        own["id"].as_i64().unwrap(),
        json!({"test": true}),
    )
    .await;
    assert_eq!(
        (status, value["value"].clone()),
        (StatusCode::OK, json!("test-value"))
    );

    // A team-bound token cannot act for another team; an organization token must name one.
    let (status, _) = use_http(
        &app,
        &runner_dev,
        json!({"url": url("shared"), "team_id": ops}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, e) = use_http(&app, &admin, json!({"url": url("shared")})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["errors"][0]["field"], "team_id");
    // resolve: Ops' private credential is not Dev's.
    let (status, _) = resolve(&app, &runner_dev, own["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "GLOBAL is usable by Dev");

    // runner uses and does nothing else; viewer may not use.
    let (status, _) = app.tines(&runner_dev).get("/user_credentials").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.tines(&runner_dev).get("/teams").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, e) = use_http(&app, &viewer, json!({"url": url("shared"), "team_id": ops})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    let (status, _) = resolve(&app, &viewer, own["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Another organization's credential ids are not found.
    let (_, stranger) = app.org_with("admin").await;
    let stranger_team = app.team(&stranger, "X").await;
    let (status, _) = resolve(
        &app,
        &stranger,
        own["id"].as_i64().unwrap(),
        json!({"team_id": stranger_team}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // restriction_type filters.
    let (_, restricted) = app
        .tines(&admin)
        .get("/user_credentials?filter=RESTRICTED&per_page=100")
        .await;
    assert_eq!(
        restricted["user_credentials"].as_array().unwrap().len(),
        7,
        "{restricted}"
    );
    assert!(
        restricted["meta"]["current_page"]
            .as_str()
            .unwrap()
            .ends_with("filter=RESTRICTED")
    );
    let (_, unrestricted) = app
        .tines(&admin)
        .get("/user_credentials?filter=UNRESTRICTED")
        .await;
    assert_eq!(
        unrestricted["user_credentials"].as_array().unwrap().len(),
        1
    );
    let (_, unused) = app
        .tines(&admin)
        .get("/user_credentials?filter=UNUSED_IN_ACTIONS")
        .await;
    let unused: Vec<_> = unused["user_credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        unused,
        ["private", "loose", "dup", "dup"],
        "Dev's and Ops' shared, the twin and picked were used"
    );
    let (status, _) = app
        .tines(&admin)
        .get("/user_credentials?filter=SOMETIMES")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A failed fetch is a 502 naming the credential; it is kept on the credential (without
/// secrets) and audited as a failure. Updating a credential drops its cached token.
async fn failures_are_recorded_and_updates_refetch(app: TestApp) {
    let upstream = MockServer::start().await;
    Mock::given(path("/broken"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom fetch-secret-value"))
        .mount(&upstream)
        .await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "t-1", "expires_in": 3600})),
        )
        .mount(&upstream)
        .await;
    let (token, team) = setup(&app).await;
    let broken = credential(&app, &token, json!({"name": "broken", "mode": "HTTP_REQUEST_AGENT", "team_id": team,
        "http_request_options": {"url": format!("{}/broken", upstream.uri()), "payload": {"s": "<<secret>>"}, "method": "post"},
        "http_request_secret": "fetch-secret-value",
        "http_request_location_of_token": "=response.body.token", "allowed_hosts": ["127.0.0.1"]})).await;
    let id = broken["id"].as_i64().unwrap();
    let (status, e) = use_http(
        &app,
        &token,
        json!({"team_id": team,
        "url": format!("{}/x?t=<<CREDENTIAL.broken>>", upstream.uri())}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{e}");
    assert!(
        message(&e).contains("\"broken\"") && message(&e).contains("HTTP 500"),
        "{e}"
    );
    let (_, shown) = app
        .tines(&token)
        .get(&format!("/user_credentials/{id}"))
        .await;
    assert!(
        shown["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{shown}"
    );
    assert!(shown["last_error"]["at"].as_str().is_some());
    assert_absent(&shown.to_string(), "fetch-secret-value", "the credential");
    let (_, events) = app
        .get("/v1/audit_events?action=user_credential.use", &token)
        .await;
    assert!(events.to_string().contains("\"failure\""), "{events}");

    let oauth = credential(
        &app,
        &token,
        json!({"name": "rotating", "mode": "OAUTH", "team_id": team,
        "oauth_token_url": format!("{}/token", upstream.uri()), "oauth_client_id": "id",
        "oauth_client_secret": "first", "allowed_hosts": ["127.0.0.1"]}),
    )
    .await;
    let oid = oauth["id"].as_i64().unwrap();
    for _ in 0..2 {
        assert_eq!(
            resolve(&app, &token, oid, json!({})).await.0,
            StatusCode::OK
        );
    }
    let (status, updated) = app
        .tines(&token)
        .put(
            &format!("/user_credentials/{oid}"),
            json!({"name": "rotating", "mode": "OAUTH",
        "oauth_token_url": format!("{}/token", upstream.uri()), "oauth_client_id": "id",
        "oauth_client_secret": "second", "allowed_hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        resolve(&app, &token, oid, json!({})).await.0,
        StatusCode::OK
    );
    // Pointing the token URL elsewhere needs the secret again: it cannot be carried along.
    let (status, e) = app
        .tines(&token)
        .put(
            &format!("/user_credentials/{oid}"),
            json!({"name": "rotating", "mode": "OAUTH",
        "oauth_token_url": "https://attacker.example/token", "oauth_client_id": "id",
        "allowed_hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["errors"][0]["field"], "oauth_client_secret");
    let fetches = upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/token")
        .count();
    assert_eq!(fetches, 2, "one fetch before the update, one after");
}

/// Limits: a response over the cap is 413, a slow upstream 504.
async fn limits(_: TestApp) {
    let app = TestApp::sqlite_with(&[
        ("LATCHKEY_EGRESS_MAX_RESPONSE_BYTES", "2048"),
        ("LATCHKEY_EGRESS_TIMEOUT", "1"),
    ])
    .await;
    let upstream = MockServer::start().await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(4096)))
        .mount(&upstream)
        .await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&upstream)
        .await;
    let (token, team) = setup(&app).await;
    let (status, e) = use_http(
        &app,
        &token,
        json!({"team_id": team, "url": format!("{}/big", upstream.uri())}),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{e}");
    let (status, e) = use_http(
        &app,
        &token,
        json!({"team_id": team, "url": format!("{}/slow", upstream.uri())}),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{e}");
}

both_engines!(
    text_and_oauth_through_http_requests,
    single_flight,
    access_rules,
    failures_are_recorded_and_updates_refetch,
);

one_engine!(
    oauth_falls_back_to_the_body_once,
    multi_request_and_jwt,
    policy_refusals,
    network_policy_without_the_allow_list,
    redirects,
    limits,
);

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM:
/// (ca, server cert, server key, client cert, client key).
fn certificates() -> (String, String, String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "latchkey test ca");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "latchkey client");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    (
        ca.pem(),
        server.pem(),
        server_key.serialize_pem(),
        client.pem(),
        client_key.serialize_pem(),
    )
}

/// An HTTPS server on 127.0.0.1 that requires a client certificate signed by `ca` and
/// answers `{"client":"verified"}`; returns its port.
async fn mtls_server(ca: &str, cert: &str, key: &str) -> u16 {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{
        RootCertStore, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        server::WebPkiClientVerifier,
    };
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let body = r#"{"client":"verified"}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// MTLS: `mutual_tls` presents the certificate, trusting `mtls_root_certificate`; without
/// it the server refuses the handshake; a key that does not match is refused at write time.
async fn mutual_tls(app: TestApp) {
    let (ca, server_cert, server_key, client_cert, client_key) = certificates();
    let port = mtls_server(&ca, &server_cert, &server_key).await;
    let (token, team) = setup(&app).await;
    credential(
        &app,
        &token,
        json!({"name": "internal tool", "mode": "MTLS", "team_id": team,
        "mtls_client_certificate": client_cert, "mtls_client_private_key": client_key,
        "mtls_root_certificate": ca, "allowed_hosts": ["https://127.0.0.1/*"]}),
    )
    .await;
    credential(
        &app,
        &token,
        json!({"name": "trust only", "mode": "TEXT", "team_id": team,
        "value": "unused", "allowed_hosts": ["127.0.0.1"]}),
    )
    .await;
    let url = format!("https://127.0.0.1:{port}/status");
    let (status, answer) = use_http(
        &app,
        &token,
        json!({"team_id": team, "url": url,
        "mutual_tls": "<<CREDENTIAL.internal_tool>>"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["body"]["client"], "verified");

    // Without the certificate (and without the private CA), no answer: 502.
    let (status, e) = use_http(&app, &token, json!({"team_id": team, "url": url})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{e}");
    // Not an MTLS credential; not allowed over http; no value to resolve.
    let (status, e) = use_http(
        &app,
        &token,
        json!({"team_id": team, "url": url,
        "mutual_tls": "<<CREDENTIAL.trust_only>>"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (status, e) = use_http(
        &app,
        &token,
        json!({"team_id": team,
        "url": format!("http://127.0.0.1:{port}/"), "mutual_tls": "<<CREDENTIAL.internal_tool>>"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    let (status, e) = use_http(
        &app,
        &token,
        json!({"team_id": team, "url": url,
        "mutual_tls": "internal_tool"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    // A private key of another certificate is refused when written.
    let (_, _, other_key, _, _) = certificates();
    let (status, e) = app
        .tines(&token)
        .post(
            "/user_credentials",
            json!({"name": "mismatch",
        "mode": "MTLS", "team_id": team, "mtls_client_certificate": client_cert,
        "mtls_client_private_key": other_key}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["errors"][0]["field"], "mtls_client_private_key");
    assert_absent(&e.to_string(), "PRIVATE KEY", "the error");
}

one_engine!(mutual_tls);

/// AWS: an Authorization header that is exactly an AWS credential's reference signs the
/// request (KEY); ROLE assumes the role through STS with Latchkey's own keys, once per
/// session; INSTANCE_PROFILE reads IMDSv2. (botocore re-checks the signature in
/// `tests/clients/egress_sigv4.py`.)
async fn aws_signing(_: TestApp) {
    let sts = MockServer::start().await;
    let imds = MockServer::start().await;
    let upstream = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(Echo)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(body_string_contains("Action=AssumeRole"))
        .and(body_string_contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Flatchkey"))
        .and(body_string_contains("ExternalId="))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>
<AccessKeyId>ASIAROLEKEY</AccessKeyId><SecretAccessKey>role-secret-key</SecretAccessKey>
<SessionToken>role-session-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>
</Credentials></AssumeRoleResult></AssumeRoleResponse>"#,
        ))
        .expect(1)
        .mount(&sts)
        .await;
    Mock::given(method("PUT"))
        .and(path("/latest/api/token"))
        .and(header("x-aws-ec2-metadata-token-ttl-seconds", "21600"))
        .respond_with(ResponseTemplate::new(200).set_body_string("imds-token"))
        .mount(&imds)
        .await;
    Mock::given(path("/latest/meta-data/iam/security-credentials/"))
        .and(header("x-aws-ec2-metadata-token", "imds-token"))
        .respond_with(ResponseTemplate::new(200).set_body_string("node-role"))
        .mount(&imds)
        .await;
    Mock::given(path("/latest/meta-data/iam/security-credentials/node-role"))
        .and(header("x-aws-ec2-metadata-token", "imds-token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"Code": "Success",
            "AccessKeyId": "ASIANODE", "SecretAccessKey": "node-secret", "Token": "node-token",
            "Expiration": "2099-01-01T00:00:00Z"})),
        )
        .mount(&imds)
        .await;
    let sts_uri = sts.uri();
    let imds_uri = imds.uri();
    let app = TestApp::sqlite_with(&[
        ("LATCHKEY_AWS_STS_ENDPOINT", sts_uri.as_str()),
        ("LATCHKEY_AWS_IMDS_ENDPOINT", imds_uri.as_str()),
        ("LATCHKEY_AWS_INSTANCE_PROFILE", "true"),
        ("AWS_ACCESS_KEY_ID", "AKIALATCHKEYOWN"),
        ("AWS_SECRET_ACCESS_KEY", "latchkey-own-secret"),
    ])
    .await;
    let (token, team) = setup(&app).await;
    let scope = json!({"aws_region": "eu-west-1", "aws_service": "dynamodb", "allowed_hosts": ["127.0.0.1"], "team_id": team, "mode": "AWS"});
    let with = |extra: Value| {
        let mut body = scope.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let key = credential(&app, &token, with(json!({"name": "dynamo", "aws_authentication_type": "KEY",
        "aws_access_key": "AKIDEXAMPLE", "aws_secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}))).await;
    let role = credential(
        &app,
        &token,
        with(json!({"name": "role", "aws_authentication_type": "ROLE",
        "aws_assumed_role_arn": "arn:aws:iam::123456789012:role/latchkey"})),
    )
    .await;
    let node = credential(
        &app,
        &token,
        with(json!({"name": "node", "aws_authentication_type": "INSTANCE_PROFILE"})),
    )
    .await;
    assert_eq!(key["aws_region"], "eu-west-1");

    let call = |slug: &str| {
        json!({"team_id": team, "url": format!("{}/?Action=ListTables", upstream.uri()),
        "method": "post", "content_type": "json", "payload": {"Limit": 1},
        "headers": {"Authorization": format!("<<CREDENTIAL.{slug}>>"), "X-Amz-Target": "DynamoDB_20120810.ListTables"}})
    };
    let (status, answer) = use_http(&app, &token, call("dynamo")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let got = &upstream.received_requests().await.unwrap()[0];
    let authorization = got.headers["authorization"].to_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{authorization}"
    );
    assert!(
        authorization.contains("/eu-west-1/dynamodb/aws4_request"),
        "{authorization}"
    );
    assert!(authorization.contains("x-amz-target"), "{authorization}");
    assert!(got.headers.contains_key("x-amz-date"));
    assert!(got.headers.contains_key("x-amz-content-sha256"));
    assert_absent(&answer.to_string(), "wJalrXUtnFEMI", "the answer");

    for _ in 0..2 {
        let (status, answer) = use_http(&app, &token, call("role")).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            answer["body"]["headers"]["x-amz-security-token"],
            "[redacted]"
        );
    }
    let got = upstream.received_requests().await.unwrap();
    let last = got.last().unwrap();
    assert_eq!(last.headers["x-amz-security-token"], "role-session-token");
    assert!(
        last.headers["authorization"]
            .to_str()
            .unwrap()
            .contains("Credential=ASIAROLEKEY/")
    );
    let assumed = &sts.received_requests().await.unwrap()[0];
    let sts_auth = assumed.headers["authorization"].to_str().unwrap();
    assert!(
        sts_auth.contains("Credential=AKIALATCHKEYOWN/") && sts_auth.contains("/sts/aws4_request"),
        "{sts_auth}"
    );
    let external_id = role["aws_assumed_role_external_id"].as_str().unwrap();
    assert!(String::from_utf8_lossy(&assumed.body).contains(&format!("ExternalId={external_id}")));

    // resolve: temporary keys for ROLE and INSTANCE_PROFILE, never the long-lived KEY.
    let (status, value) = resolve(&app, &token, role["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["value"]["AccessKeyId"], "ASIAROLEKEY");
    assert_eq!(value["value"]["SessionToken"], "role-session-token");
    let (status, value) = resolve(&app, &token, node["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["value"]["AccessKeyId"], "ASIANODE");
    let (status, e) = resolve(&app, &token, key["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_absent(&e.to_string(), "wJalrXUtnFEMI", "the error");
    // Without a scope, a host that is not AWS's cannot be signed for.
    let bare = credential(&app, &token, json!({"name": "bare", "mode": "AWS", "team_id": team,
        "aws_authentication_type": "KEY", "aws_access_key": "AKIDBARE", "aws_secret_key": "bare-secret",
        "allowed_hosts": ["127.0.0.1"]})).await;
    assert_eq!(bare["aws_region"], Value::Null);
    let (status, e) = use_http(&app, &token, call("bare")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(message(&e).contains("aws_region"), "{e}");
    // AWS keys are never substituted into a request, only used to sign it.
    let (status, e) = use_http(
        &app,
        &token,
        json!({"team_id": team, "url": format!("{}/", upstream.uri()),
        "headers": {"X-Leak": "<<CREDENTIAL.role>>"}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    // Without LATCHKEY_AWS_INSTANCE_PROFILE, no organization can use the server's own role.
    let strict = TestApp::sqlite_with(&[("LATCHKEY_AWS_IMDS_ENDPOINT", imds_uri.as_str())]).await;
    let (token, team) = setup(&strict).await;
    let node = credential(
        &strict,
        &token,
        json!({"name": "node", "mode": "AWS", "team_id": team,
        "aws_authentication_type": "INSTANCE_PROFILE", "allowed_hosts": ["127.0.0.1"]}),
    )
    .await;
    let (status, e) = resolve(&strict, &token, node["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(message(&e).contains("LATCHKEY_AWS_INSTANCE_PROFILE"), "{e}");
}

one_engine!(aws_signing);

/// OAUTH authorization_code with PKCE: creating answers a redirect_url; the provider's
/// callback exchanges the code; uses get the access token, refreshed (and rotated) before
/// it expires; a failed refresh is kept on the credential; states cannot be forged or reused
/// after a change.
async fn authorization_code(app: TestApp) {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .and(body_string_contains("code=the-code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "access-1", "refresh_token": "refresh-1", "expires_in": 30}),
        ))
        .expect(1)
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=refresh-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "access-2", "refresh_token": "refresh-2", "expires_in": 3600}),
        ))
        .expect(1)
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .mount(&provider)
        .await;
    let (token, team) = setup(&app).await;
    let created = credential(&app, &token, json!({"name": "crm user", "mode": "OAUTH", "team_id": team,
        "oauth_grant_type": "authorization_code", "oauth_url": format!("{}/authorize", provider.uri()),
        "oauth_token_url": format!("{}/token", provider.uri()), "oauth_client_id": "app-id",
        "oauth_client_secret": "app-secret", "oauth_scope": "read write",
        "oauthPkceCodeChallengeMethod": "S256", "allowed_hosts": ["127.0.0.1"]})).await;
    let id = created["id"].as_i64().unwrap();
    let redirect = url::Url::parse(created["redirect_url"].as_str().unwrap()).unwrap();
    assert!(
        redirect
            .as_str()
            .starts_with(&format!("{}/authorize?", provider.uri()))
    );
    let q: std::collections::HashMap<String, String> =
        redirect.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "app-id");
    assert_eq!(q["scope"], "read write");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], format!("{}/oauth2/callback", app.base));
    let state = q["state"].clone();

    // Not connected yet.
    let (status, e) = resolve(&app, &token, id, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(message(&e).contains("not connected"), "{e}");

    // A forged or truncated state is refused, and nothing is exchanged.
    let callback = |query: String| {
        let url = format!("{}/oauth2/callback?{query}", app.base);
        async move {
            let r = reqwest::get(url).await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    for bad in [
        format!("{id}.AAAA"),
        format!("{}.{}", id + 1, state.split_once('.').unwrap().1),
        String::new(),
    ] {
        let (status, page) = callback(format!("code=the-code&state={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    }
    let (status, page) = callback(format!("code=the-code&state={state}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("crm user") && page.contains("connected"),
        "{page}"
    );
    // The same link cannot connect the credential again (to another account, say).
    let (status, _) = callback(format!("code=the-code&state={state}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let exchange = &provider.received_requests().await.unwrap()[0];
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&exchange.body)
            .into_owned()
            .collect();
    assert_eq!(form["redirect_uri"], q["redirect_uri"]);
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, form["code_verifier"].as_bytes());
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
        q["code_challenge"]
    );
    assert!(
        exchange.headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );

    // expires_in 30 s is within the refresh margin: the first use refreshes, once, and the
    // rotated tokens are kept.
    let (status, value) = resolve(&app, &token, id, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["value"], "access-2");
    let (status, value) = resolve(&app, &token, id, json!({})).await;
    assert_eq!(
        (status, value["value"].clone()),
        (StatusCode::OK, json!("access-2"))
    );
    let stored = app.raw_database().await;
    assert_absent(&stored, "access-2", "the database");
    assert_absent(&stored, "refresh-2", "the database");

    // The same state again works no more once the credential changed; a changed
    // configuration drops the tokens.
    let (status, replaced) = app.tines(&token).put(&format!("/user_credentials/{id}"), json!({"name": "crm user", "mode": "OAUTH",
        "oauth_grant_type": "authorization_code", "oauth_url": format!("{}/authorize", provider.uri()),
        "oauth_token_url": format!("{}/token", provider.uri()), "oauth_client_id": "app-id", "oauth_client_secret": "app-secret",
        "oauth_scope": "read", "allowed_hosts": ["127.0.0.1"]})).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert!(replaced["redirect_url"].as_str().is_some());
    let (status, _) = callback(format!("code=the-code&state={state}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, e) = resolve(&app, &token, id, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    // A provider that refuses: kept on the credential, the page says so without echoing.
    let again = url::Url::parse(replaced["redirect_url"].as_str().unwrap()).unwrap();
    let state2 = again
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let (status, page) = callback(format!("error=access_denied<script>&state={state2}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("access_denied") && !page.contains("<script>"),
        "{page}"
    );
    let (_, shown) = app
        .tines(&token)
        .get(&format!("/user_credentials/{id}"))
        .await;
    assert!(
        shown["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("access_denied"),
        "{shown}"
    );
    // An exchange the provider refuses (invalid_grant) is not connected either.
    let (status, page) = callback(format!("code=stale&state={state2}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("invalid_grant"), "{page}");
}

both_engines!(authorization_code);

/// Credentials may reference credentials in their own requests; a cycle is refused, and a
/// TTL-cached token is fetched again once the TTL has passed.
async fn nested_references_and_ttl(app: TestApp) {
    let upstream = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": "nested-token"})))
        .mount(&upstream)
        .await;
    let (token, team) = setup(&app).await;
    let agent = |name: &str, header: &str, ttl: Option<i64>| {
        json!({"name": name, "mode": "HTTP_REQUEST_AGENT", "team_id": team,
            "http_request_options": {"url": format!("{}/token", upstream.uri()), "headers": {"X-Inner": header}},
            "http_request_location_of_token": "=response.body.token", "http_request_ttl": ttl,
            "allowed_hosts": ["127.0.0.1"]})
    };
    credential(
        &app,
        &token,
        json!({"name": "inner", "mode": "TEXT", "team_id": team,
        "value": "inner-value", "allowed_hosts": ["127.0.0.1"]}),
    )
    .await;
    let outer = credential(
        &app,
        &token,
        agent("outer", "<<CREDENTIAL.inner>>", Some(1)),
    )
    .await;
    let a = credential(&app, &token, agent("loop a", "<<CREDENTIAL.loop_b>>", None)).await;
    credential(&app, &token, agent("loop b", "<<CREDENTIAL.loop_a>>", None)).await;

    let id = outer["id"].as_i64().unwrap();
    assert_eq!(
        resolve(&app, &token, id, json!({})).await.1["value"],
        "nested-token"
    );
    assert_eq!(
        resolve(&app, &token, id, json!({})).await.1["value"],
        "nested-token"
    );
    let fetches = || async {
        upstream
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.headers.get("x-inner").is_some_and(|v| v == "inner-value"))
            .count()
    };
    assert_eq!(fetches().await, 1, "cached for the TTL");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(resolve(&app, &token, id, json!({})).await.0, StatusCode::OK);
    assert_eq!(fetches().await, 2, "fetched again after the TTL");
    // The nested use is audited too.
    let (_, events) = app
        .get("/v1/audit_events?action=user_credential.use", &token)
        .await;
    assert!(
        events["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"]["mode"] == "TEXT"),
        "{events}"
    );

    let (status, e) = resolve(&app, &token, a["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(message(&e).contains("references itself"), "{e}");
}

one_engine!(nested_references_and_ttl);

/// The organization's upstream requests in flight are bounded: with a limit of 1, three
/// concurrent calls to a slow upstream are served one after the other, and all succeed.
async fn upstream_concurrency_is_bounded(_: TestApp) {
    let app = TestApp::sqlite_with(&[("LATCHKEY_EGRESS_MAX_CONCURRENT", "1")]).await;
    let upstream = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(300)))
        .mount(&upstream)
        .await;
    let (token, team) = setup(&app).await;
    let started = std::time::Instant::now();
    let calls = (0..3).map(|_| {
        use_http(
            &app,
            &token,
            json!({"team_id": team, "url": format!("{}/slow", upstream.uri())}),
        )
    });
    for (status, answer) in futures::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

one_engine!(upstream_concurrency_is_bounded);
