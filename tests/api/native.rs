//! Latchkey's own API: organizations, management tokens and the audit log.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    both_engines,
    helpers::{TestApp, assert_absent, logs},
    one_engine,
};

fn assert_native_error(status: StatusCode, body: &Value, want: StatusCode) {
    assert_eq!(status, want, "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["details"].is_array(), "{body}");
}

async fn organizations(app: TestApp) {
    let server = app.native(&app.admin);
    let (status, org) = server
        .post("/organizations", json!({"name": "The Blue Brand"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    let id = org["id"].as_str().unwrap();
    assert_eq!(id.len(), 10);
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(org["slug"], "the-blue-brand");
    assert!(org["created_at"].as_str().unwrap().ends_with('Z'));
    let (status, e) = server
        .post("/organizations", json!({"name": "the blue brand!"}))
        .await;
    assert_native_error(status, &e, StatusCode::CONFLICT);
    let (status, e) = server.post("/organizations", json!({})).await;
    assert_native_error(status, &e, StatusCode::BAD_REQUEST);
    let (status, e) = server.post("/organizations", json!({"name": 5})).await;
    assert_native_error(status, &e, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["details"][0]["field"], "name");

    let (_, list) = server.get("/organizations").await;
    assert!(
        list["organizations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == id)
    );
    let (status, got) = server.get(&format!("/organizations/{id}")).await;
    assert_eq!((status, &got), (StatusCode::OK, &org));

    // An organization token sees itself only and cannot create organizations.
    let (other_id, other_token) = app.org_with("admin").await;
    let (_, mine) = app.native(&other_token).get("/organizations").await;
    assert_eq!(mine["organizations"].as_array().unwrap().len(), 1);
    assert_eq!(mine["organizations"][0]["id"], other_id);
    let (status, e) = app
        .native(&other_token)
        .get(&format!("/organizations/{id}"))
        .await;
    assert_native_error(status, &e, StatusCode::NOT_FOUND);
    let (status, e) = app
        .native(&other_token)
        .post("/organizations", json!({"name": "x"}))
        .await;
    assert_native_error(status, &e, StatusCode::FORBIDDEN);
}

async fn tokens_are_shown_once_and_revocable(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let native = app.native(&admin);
    let (status, created) = native
        .post("/tokens", json!({"name": "ci", "role": "editor"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("lk_") && token.len() == 46, "{token}");
    assert_eq!(created["organization_id"], org.as_str());
    assert_eq!(created["role"], "editor");

    let (status, list) = native.get("/tokens").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["tokens"].as_array().unwrap().len(), 2);
    assert_absent(&list.to_string(), &token, "the token list");
    assert!(
        list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("token").is_none())
    );

    let (status, _) = app.get("/api/v1/teams", &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = native
        .delete(&format!("/tokens/{}", created["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get("/api/v1/teams", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Editors cannot mint; other organizations' tokens are not found; bad input is named.
    let editor = app.token(&org, "editor", None).await;
    let (status, e) = app
        .native(&editor)
        .post("/tokens", json!({"name": "x", "role": "admin"}))
        .await;
    assert_native_error(status, &e, StatusCode::FORBIDDEN);
    let (_, other_admin) = app.org_with("admin").await;
    let (_, theirs) = app.native(&other_admin).get("/tokens").await;
    let their_id = theirs["tokens"][0]["id"].as_str().unwrap();
    let (status, e) = native.delete(&format!("/tokens/{their_id}")).await;
    assert_native_error(status, &e, StatusCode::NOT_FOUND);
    let (status, e) = native
        .post(
            "/tokens",
            json!({"organization_id": "nope000000", "name": "x", "role": "viewer"}),
        )
        .await;
    assert_native_error(status, &e, StatusCode::NOT_FOUND);
    let (status, e) = native
        .post("/tokens", json!({"name": "x", "role": "owner"}))
        .await;
    assert_native_error(status, &e, StatusCode::BAD_REQUEST);
    let (status, e) = native
        .post(
            "/tokens",
            json!({"name": "x", "role": "viewer", "team_id": 424242}),
        )
        .await;
    assert_native_error(status, &e, StatusCode::NOT_FOUND);
    let (status, e) = native
        .post("/tokens", json!({"name": "x", "role": "server_admin"}))
        .await;
    assert_native_error(status, &e, StatusCode::UNPROCESSABLE_ENTITY);

    assert_absent(&app.raw_database().await, &token, "the database");
    assert_absent(&logs(), &token, "the log");
}

async fn audit_log_records_and_verifies(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let native = app.native(&admin);
    let team = app.team(&admin, "Ops").await;
    let (_, cred) = app
        .post(
            "/api/v1/user_credentials",
            &admin,
            json!({"name": "a", "mode": "TEXT", "team_id": team, "value": "audit-secret"}),
        )
        .await;
    app.put(
        &format!("/api/v1/user_credentials/{}", cred["id"]),
        &admin,
        json!({"name": "a", "mode": "TEXT", "value": "audit-secret-2"}),
    )
    .await;
    app.delete(&format!("/api/v1/user_credentials/{}", cred["id"]), &admin)
        .await;
    let (status, _) = app
        .get(
            "/api/v1/teams",
            "lk_wrongwrongwrongwrongwrongwrongwrongwrongwrong",
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, page) = native.get("/audit_events").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let events = page["audit_events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user_credential.delete",
            "user_credential.update",
            "user_credential.create",
            "team.create",
            "token.create",
            "organization.create"
        ]
    );
    let event = &events[0];
    for field in [
        "id",
        "at",
        "organization_id",
        "actor",
        "action",
        "target_type",
        "target_id",
        "outcome",
        "request_id",
        "ip",
        "prev_hash",
        "hash",
    ] {
        assert!(event.get(field).is_some(), "{field} missing from {event}");
    }
    assert_eq!(event["organization_id"], org.as_str());
    assert_eq!(event["target_id"], cred["id"].to_string());
    assert_eq!(event["outcome"], "success");
    assert_eq!(event["ip"], "127.0.0.1");
    assert!(event["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(events[0]["prev_hash"], events[1]["hash"]);
    assert_absent(&page.to_string(), "audit-secret", "audit events");

    // Filters and cursor pagination.
    let (_, filtered) = native
        .get("/audit_events?action=user_credential.update")
        .await;
    assert_eq!(filtered["audit_events"].as_array().unwrap().len(), 1);
    let (_, by_target) = native
        .get(&format!(
            "/audit_events?target_type=user_credential&target_id={}",
            cred["id"]
        ))
        .await;
    assert_eq!(by_target["audit_events"].as_array().unwrap().len(), 3);
    let (_, first) = native.get("/audit_events?limit=4").await;
    assert_eq!(first["audit_events"].as_array().unwrap().len(), 4);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = native
        .get(&format!("/audit_events?limit=4&after={cursor}"))
        .await;
    assert_eq!(second["audit_events"].as_array().unwrap().len(), 2);
    assert_eq!(second["next_cursor"], Value::Null);
    let (status, e) = native.get("/audit_events?limit=0").await;
    assert_native_error(status, &e, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, e) = native.get("/audit_events?limit=x").await;
    assert_native_error(status, &e, StatusCode::BAD_REQUEST);

    // The failed login went to the server chain; editors cannot read the log.
    let editor = app.token(&org, "editor", None).await;
    let (status, _) = app.native(&editor).get("/audit_events").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    use latchkey::kernel::audit::Verification;
    assert!(matches!(
        app.latchkey.verify_audit().await.unwrap(),
        Verification::Intact { .. }
    ));
    // Tamper with one row: verification names it.
    let victim = events[2]["id"].as_str().unwrap();
    app.execute_sql(&format!(
        "UPDATE audit_events SET actor = 'someone-else' WHERE id = '{victim}'"
    ))
    .await;
    match app.latchkey.verify_audit().await.unwrap() {
        Verification::Broken {
            chain, event_id, ..
        } => {
            assert_eq!(chain, org);
            assert_eq!(event_id.as_deref(), Some(victim));
        }
        other => panic!("tampering not detected: {other:?}"),
    }
}

async fn audit_chain_detects_a_deleted_event(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let native = app.native(&admin);
    app.team(&admin, "One").await;
    app.team(&admin, "Two").await;
    let (_, page) = native.get("/audit_events?action=team.create").await;
    let first = page["audit_events"][1]["id"].as_str().unwrap().to_owned();
    app.execute_sql(&format!("DELETE FROM audit_events WHERE id = '{first}'"))
        .await;
    use latchkey::kernel::audit::Verification;
    match app.latchkey.verify_audit().await.unwrap() {
        Verification::Broken { chain, .. } => assert_eq!(chain, org),
        other => panic!("deletion not detected: {other:?}"),
    }
}

/// Whoever can write to the database but lacks the master key cannot rewrite an event and
/// recompute its hash: the chain is keyed (HMAC under a key sealed by the master key), and a
/// forged event in the old unkeyed form after keyed ones is refused too.
async fn audit_chain_is_keyed(app: TestApp) {
    use latchkey::kernel::audit::Verification;
    let (_, admin) = app.org_with("admin").await;
    app.team(&admin, "One").await;
    let (_, page) = app
        .native(&admin)
        .get("/audit_events?action=team.create")
        .await;
    let event = &page["audit_events"][0];
    assert!(
        event["hash"].as_str().unwrap().starts_with("k1:"),
        "{event}"
    );
    let id = event["id"].as_str().unwrap();
    // The attacker edits the actor and recomputes a plain SHA-256 over exactly the encoding
    // events were hashed with before the chain was keyed (which would pass an unkeyed check).
    let seq = app
        .query_i64(&format!("SELECT seq FROM audit_events WHERE id = '{id}'"))
        .await;
    let at = app
        .query_i64(&format!("SELECT at FROM audit_events WHERE id = '{id}'"))
        .await;
    let forged_fields = json!([
        event["id"],
        event["organization_id"],
        seq,
        at,
        event["organization_id"],
        "token:attacker",
        event["action"],
        event["target_type"],
        event["target_id"],
        event["outcome"],
        event["request_id"],
        event["ip"],
        event["prev_hash"],
    ]);
    let forged = {
        use std::fmt::Write as _;
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            forged_fields.to_string().as_bytes(),
        );
        digest.as_ref().iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    };
    // It is the chain's last event, so the attacker also moves the chain's head.
    app.execute_sql(&format!(
        "UPDATE audit_events SET actor = 'token:attacker', hash = '{forged}' WHERE id = '{id}'"
    ))
    .await;
    let org = event["organization_id"].as_str().unwrap();
    app.execute_sql(&format!(
        "UPDATE audit_heads SET head = '{forged}' WHERE chain = '{org}'"
    ))
    .await;
    match app.latchkey.verify_audit().await.unwrap() {
        Verification::Broken { event_id, .. } => assert_eq!(event_id.as_deref(), Some(id)),
        other => panic!("a re-hashed forgery was not detected: {other:?}"),
    }
}

async fn authenticate_needs_a_management_token_and_reports_malformed_input(app: TestApp) {
    let (_, token) = app.org_with("viewer").await;
    let native = app.native(&token);
    let body = json!({"authorization": "Bearer not-a-jwt"});
    let (status, e) = app
        .request(
            reqwest::Method::POST,
            "/v1/authenticate",
            None,
            Some(body.clone()),
        )
        .await;
    assert_native_error(status, &e, StatusCode::UNAUTHORIZED);
    let (status, verdict) = native.post("/authenticate", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verdict, json!({"valid": false, "code": "malformed"}));
    for garbage in ["", "Basic !!!", "Digest abc"] {
        let (_, verdict) = native
            .post("/authenticate", json!({"authorization": garbage}))
            .await;
        assert_eq!(
            verdict,
            json!({"valid": false, "code": "malformed"}),
            "{garbage}"
        );
    }
    let (status, e) = native.post("/authenticate", json!({})).await;
    assert_native_error(status, &e, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["details"][0]["field"], "authorization");
    let (status, e) = app
        .native(&app.admin)
        .post("/authenticate", json!({"authorization": "x"}))
        .await;
    assert_native_error(status, &e, StatusCode::FORBIDDEN);
}

async fn failed_logins_are_rate_limited_per_client(app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let bad = app.native("lk_0000000000000000000000000000000000000000000");
    for _ in 0..30 {
        let (status, _) = bad.get("/tokens").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let res = bad.raw(Method::GET, "/tokens").send().await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(res.body["error"]["code"], "rate_limited");
    // A valid token from the same client is unaffected.
    let (status, _) = app.native(&token).get("/tokens").await;
    assert_eq!(status, StatusCode::OK);
    // Only the failures under the limit were written to the audit log.
    let mut tx = app.latchkey.store().read().await.unwrap();
    let server_chain = tx.audit_chain_page("", 1, 1000).await.unwrap();
    let failures = server_chain
        .iter()
        .filter(|e| e.action == "auth.failed")
        .count();
    assert_eq!(failures, 30);
    drop(tx);
    // Those over the limit are on record too, summarised: one event per client.
    for _ in 0..4 {
        let res = bad.raw(Method::GET, "/tokens").send().await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    }
    app.latchkey.record_suppressed_failures().await.unwrap();
    let mut tx = app.latchkey.store().read().await.unwrap();
    let server_chain = tx.audit_chain_page("", 1, 1000).await.unwrap();
    let summaries: Vec<_> = server_chain
        .iter()
        .filter(|e| e.action == "auth.rate_limited")
        .collect();
    assert_eq!(summaries.len(), 1, "one summary per client");
    assert_eq!(summaries[0].actor, "ip:127.0.0.1");
    assert_eq!(
        summaries[0].target_id.as_deref(),
        Some("5"),
        "the five refused failures"
    );
    drop(tx);
    app.latchkey.record_suppressed_failures().await.unwrap();
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'auth.rate_limited'")
            .await,
        1,
        "nothing new, nothing written"
    );
    assert!(matches!(
        app.latchkey.verify_audit().await.unwrap(),
        latchkey::kernel::audit::Verification::Intact { .. }
    ));
}

// Malformed verdicts are decided before any lookup; the failed login on the way is audited,
// which `failed_logins_are_rate_limited_per_client` checks on both engines.
one_engine!(authenticate_needs_a_management_token_and_reports_malformed_input);

both_engines!(
    failed_logins_are_rate_limited_per_client,
    organizations,
    tokens_are_shown_once_and_revocable,
    audit_log_records_and_verifies,
    audit_chain_detects_a_deleted_event
);

/// A client's `X-Request-Id` is kept only when it is 1 to 128 visible ASCII characters; any
/// other is replaced by a generated one, in the response and in the audit log.
async fn request_ids_are_bounded(app: TestApp) {
    let (_, admin) = app.org_with("admin").await;
    let create_team = async |request_id: &str| {
        let res = app
            .raw(reqwest::Method::POST, "/api/v1/teams")
            .header("Authorization", &format!("Bearer {admin}"))
            .header("X-Request-Id", request_id)
            .json(&json!({ "name": format!("t{}", uuid::Uuid::new_v4().simple()) }))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        res.header("x-request-id").unwrap().to_owned()
    };
    let kept = "a".repeat(128);
    assert_eq!(create_team(&kept).await, kept);
    for bad in ["a".repeat(129), "has space".to_owned(), "x".repeat(70_000)] {
        let answered = create_team(&bad).await;
        assert_ne!(answered, bad);
        assert!(uuid::Uuid::parse_str(&answered).is_ok(), "{answered}");
    }
    let (_, page) = app.get("/v1/audit_events", &admin).await;
    let ids: Vec<&str> = page["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["request_id"].as_str())
        .collect();
    assert!(ids.contains(&kept.as_str()), "{ids:?}");
    assert!(ids.iter().all(|id| id.len() <= 128), "{ids:?}");
}

one_engine!(request_ids_are_bounded);
both_engines!(audit_chain_is_keyed);
