//! The PingOne surface: environments, gateways, gateway credentials, their verification and
//! the token exchange.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    both_engines,
    helpers::{TestApp, assert_absent, logs},
};

fn assert_ping_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["id"].as_str().is_some_and(|id| id.len() == 36),
        "{body}"
    );
    assert!(body["message"].is_string(), "{body}");
}

/// An environment and an LDAP gateway in a new organization: (token, env id, gateway id, org id).
async fn gateway(app: &TestApp) -> (String, String, String, String) {
    let (org, token) = app.org_with("admin").await;
    let pingone = app.pingone(&token);
    let (status, env) = pingone
        .post(
            "/environments",
            json!({"name": "Production", "region": "EU"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{env}");
    let env_id = env["id"].as_str().unwrap().to_owned();
    let (status, gw) = pingone
        .post(
            &format!("/environments/{env_id}/gateways"),
            json!({"name": "LDAP West", "type": "LDAP", "enabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{gw}");
    (token, env_id, gw["id"].as_str().unwrap().to_owned(), org)
}

/// Seed 000's request as curl sends it: POST, JSON content type, no body.
async fn seed_post(app: &TestApp, token: &str, env: &str, gw: &str) -> (StatusCode, Value) {
    let path = format!("/environments/{env}/gateways/{gw}/credentials");
    let res = app
        .pingone(token)
        .raw(Method::POST, &path)
        .content_type("application/json")
        .send()
        .await;
    assert_eq!(
        res.header("cache-control"),
        if res.status == StatusCode::CREATED {
            Some("no-store")
        } else {
            None
        }
    );
    (res.status, res.body)
}

async fn seed_000_credential_is_a_verifiable_jwt(app: TestApp) {
    let (token, env, gw, org) = gateway(&app).await;
    let pingone = app.pingone(&token);
    let (status, created) = seed_post(&app, &token, &env, &gw).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 3, "{created}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().to_string(), id);
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    let jwt = created["credential"].as_str().unwrap();

    // Verify with a standard JWT library against the published JWK Set.
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let kid = header.kid.unwrap();
    let (status, jwks) = app
        .request(
            reqwest::Method::GET,
            &format!("/v1/environments/{env}/jwks"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let jwk = set.find(&kid).expect("the kid is published");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_aud = false;
    let claims =
        jsonwebtoken::decode::<Value>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap()
            .claims;
    assert_eq!(claims["jti"], id);
    assert_eq!(claims["environmentId"], env);
    assert_eq!(claims["gatewayId"], gw);
    assert_eq!(claims["gatewayType"], "LDAP");
    assert_eq!(claims["gatewayName"], "LDAP West");
    assert_eq!(claims["organizationId"], org);
    assert_eq!(claims["targetClusterEnvironment"], "PROD");
    assert_eq!(claims["targetGeography"], "EU");
    assert!(claims["aud"].as_str().unwrap().contains(&gw));
    assert!(claims["iss"].is_string());
    assert!(claims["iat"].as_i64().unwrap() > 1_700_000_000);
    assert!(
        claims.get("exp").is_none(),
        "validity is the record's existence"
    );
    let (_, same) = app
        .request(
            reqwest::Method::GET,
            &format!("/.well-known/jwks.json?organization={org}"),
            None,
            None,
        )
        .await;
    assert_eq!(same, jwks);

    // Reads never show the JWT; the verify path knows it.
    let (status, one) = pingone
        .get(&format!(
            "/environments/{env}/gateways/{gw}/credentials/{id}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        one,
        json!({"id": id, "createdAt": created["createdAt"], "lastUsedAt": null})
    );
    let verdict = app.verify(&token, &format!("Bearer {jwt}")).await;
    assert_eq!(
        verdict,
        json!({"valid": true, "principal": {"type": "gateway_credential", "organization_id": org,
            "environment_id": env, "gateway_id": gw, "credential_id": id}})
    );
    let (_, one) = pingone
        .get(&format!(
            "/environments/{env}/gateways/{gw}/credentials/{id}"
        ))
        .await;
    assert!(
        one["lastUsedAt"].as_str().is_some(),
        "use is recorded: {one}"
    );
    // Another organization presenting it is not a use; the stamp reaches the database by the
    // periodic flush (here: the one at shutdown), not a write per verification.
    let (_, stranger) = app.org_with("admin").await;
    let verdict = app.verify(&stranger, jwt).await;
    assert_eq!(
        verdict,
        json!({"valid": false, "code": "wrong_organization"})
    );
    let mut app = app;
    app.restart().await;
    // The server listens on a new port: a client made before the restart would miss it.
    let pingone = app.pingone(&token);
    let credential_path = format!("/environments/{env}/gateways/{gw}/credentials/{id}");
    let (_, after) = pingone.get(&credential_path).await;
    assert_eq!(
        after["lastUsedAt"], one["lastUsedAt"],
        "persisted across a restart"
    );

    // The JWT is in no database row, log line or audit event.
    assert_absent(&app.raw_database().await, jwt, "the database");
    assert_absent(&logs(), jwt, "the log");
    let (_, events) = app.get("/v1/audit_events", &token).await;
    assert_absent(&events.to_string(), jwt, "audit events");
    assert_eq!(
        events["audit_events"][0]["action"],
        "gateway_credential.create"
    );
}

async fn five_per_gateway_sequential_and_concurrent(app: TestApp) {
    let (token, env, gw, _) = gateway(&app).await;
    let pingone = app.pingone(&token);
    for _ in 0..5 {
        let (status, _) = seed_post(&app, &token, &env, &gw).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, e) = seed_post(&app, &token, &env, &gw).await;
    assert_ping_error(status, &e, StatusCode::BAD_REQUEST, "INVALID_DATA");
    assert_eq!(e["details"][0]["code"], "LIMIT_EXCEEDED");
    assert_eq!(e["details"][0]["target"], "credentials");
    assert!(e["details"][0]["message"].as_str().unwrap().contains('5'));

    let (_, list) = pingone
        .get(&format!("/environments/{env}/gateways/{gw}/credentials"))
        .await;
    assert_eq!(list["count"], 5);
    assert_eq!(list["size"], 5);
    assert!(
        list["_links"]["self"]["href"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/environments/{env}/gateways/{gw}/credentials"))
    );
    for c in list["_embedded"]["credentials"].as_array().unwrap() {
        assert!(c.get("credential").is_none());
    }

    // Ten at once against a fresh gateway: exactly five win.
    let (status, gw2) = pingone
        .post(
            &format!("/environments/{env}/gateways"),
            json!({"name": "RADIUS", "type": "RADIUS", "enabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let gw2 = gw2["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (pingone, path) = (
            pingone.clone(),
            format!("/environments/{env}/gateways/{gw2}/credentials"),
        );
        tasks.push(tokio::spawn(async move {
            pingone.send(Method::POST, &path, None).await.0
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::BAD_REQUEST => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 5);
    let (_, list) = pingone
        .get(&format!("/environments/{env}/gateways/{gw2}/credentials"))
        .await;
    assert_eq!(list["count"], 5);
}

async fn revocation_tampering_and_other_organizations(app: TestApp) {
    let (token, env, gw, _) = gateway(&app).await;
    let pingone = app.pingone(&token);
    let (_, created) = seed_post(&app, &token, &env, &gw).await;
    let jwt = created["credential"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap();
    let verdict = app.verify(&token, &jwt).await;
    assert_eq!(verdict["valid"], true, "{verdict}");

    // One byte changed in the signature.
    let mut bytes = jwt.clone().into_bytes();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_eq!(
        app.verify(&token, &tampered).await,
        json!({"valid": false, "code": "bad_signature"})
    );
    // An unknown kid.
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("nope".into());
    let forged = jsonwebtoken::encode(
        &header,
        &json!({"jti": id}),
        &jsonwebtoken::EncodingKey::from_secret(b"x"),
    )
    .unwrap();
    assert_eq!(
        app.verify(&token, &forged).await,
        json!({"valid": false, "code": "unknown_key"})
    );

    // Another organization's credential is not valid for this one, and its ids are 404 here.
    let (other_token, other_env, other_gw, _) = gateway(&app).await;
    let (_, theirs) = seed_post(&app, &other_token, &other_env, &other_gw).await;
    let their_jwt = theirs["credential"].as_str().unwrap();
    assert_eq!(
        app.verify(&token, their_jwt).await,
        json!({"valid": false, "code": "wrong_organization"})
    );
    assert_eq!(app.verify(&other_token, their_jwt).await["valid"], true);
    for path in [
        format!("/environments/{other_env}"),
        format!("/environments/{other_env}/gateways"),
        format!("/environments/{other_env}/gateways/{other_gw}"),
        format!("/environments/{other_env}/gateways/{other_gw}/credentials"),
        format!(
            "/environments/{other_env}/gateways/{other_gw}/credentials/{}",
            theirs["id"].as_str().unwrap()
        ),
    ] {
        let (status, e) = pingone.get(&path).await;
        assert_ping_error(status, &e, StatusCode::NOT_FOUND, "NOT_FOUND");
        if !path.ends_with("/gateways") && !path.ends_with("/credentials") {
            let (status, _) = pingone.delete(&path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }
    let (status, _) = pingone
        .send(
            Method::POST,
            &format!("/environments/{other_env}/gateways/{other_gw}/credentials"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let gateway_body = json!({"name": "Mine now", "type": "LDAP", "enabled": true});
    let (status, e) = pingone
        .post(
            &format!("/environments/{other_env}/gateways"),
            gateway_body.clone(),
        )
        .await;
    assert_ping_error(status, &e, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, e) = pingone
        .put(
            &format!("/environments/{other_env}/gateways/{other_gw}"),
            gateway_body,
        )
        .await;
    assert_ping_error(status, &e, StatusCode::NOT_FOUND, "NOT_FOUND");
    // Our credential cannot be exchanged at their environment's token endpoint.
    let (status, body) = exchange(&app, &jwt, &other_env).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"error": "invalid_grant"}));

    // Delete: the very next verification says revoked.
    let (status, _) = pingone
        .delete(&format!(
            "/environments/{env}/gateways/{gw}/credentials/{id}"
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.verify(&token, &jwt).await,
        json!({"valid": false, "code": "revoked"})
    );
    let (status, _) = pingone
        .get(&format!(
            "/environments/{env}/gateways/{gw}/credentials/{id}"
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleting a gateway revokes all its credentials.
    let (_, a) = seed_post(&app, &token, &env, &gw).await;
    let (_, b) = seed_post(&app, &token, &env, &gw).await;
    for c in [&a, &b] {
        assert_eq!(
            app.verify(&token, c["credential"].as_str().unwrap()).await["valid"],
            true
        );
    }
    let (status, _) = pingone
        .delete(&format!("/environments/{env}/gateways/{gw}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for c in [&a, &b] {
        assert_eq!(
            app.verify(&token, c["credential"].as_str().unwrap()).await["code"],
            "revoked"
        );
    }
}

/// The token exchange at `/{env}/as/token`, form-encoded as the issue specifies.
async fn exchange(app: &TestApp, subject: &str, env: &str) -> (StatusCode, Value) {
    let res = app
        .raw(Method::POST, &format!("/{env}/as/token"))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject),
            ("subject_token_type", "pingone_gateway_credential"),
        ])
        .send()
        .await;
    assert_eq!(res.headers["cache-control"], "no-store");
    (res.status, res.body)
}

async fn token_exchange(app: TestApp) {
    let (token, env, gw, org) = gateway(&app).await;
    let pingone = app.pingone(&token);
    let (_, created) = seed_post(&app, &token, &env, &gw).await;
    let jwt = created["credential"].as_str().unwrap();
    let (status, body) = exchange(&app, jwt, &env).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    let access = body["access_token"].as_str().unwrap();
    let (_, jwks) = app
        .request(
            reqwest::Method::GET,
            &format!("/v1/environments/{env}/jwks"),
            None,
            None,
        )
        .await;
    let set: JwkSet = serde_json::from_value(jwks).unwrap();
    let header = jsonwebtoken::decode_header(access).unwrap();
    let claims = jsonwebtoken::decode::<Value>(
        access,
        &DecodingKey::from_jwk(set.find(&header.kid.unwrap()).unwrap()).unwrap(),
        &{
            let mut v = Validation::new(Algorithm::RS256);
            v.set_audience(&[&gw]);
            v
        },
    )
    .unwrap()
    .claims;
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    let verdict = app.verify(&token, &format!("Bearer {access}")).await;
    assert_eq!(verdict["principal"]["type"], "gateway_access_token");
    assert_eq!(verdict["principal"]["organization_id"], org);
    assert_eq!(verdict["principal"]["credential_id"], created["id"]);

    // Wrong inputs get OAuth errors.
    let (status, body) = exchange(&app, "garbage", &env).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}))
    );
    let (status, body) = exchange(&app, jwt, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}))
    );
    let token_url = format!("/{env}/as/token");
    let res = app
        .raw(Method::POST, &token_url)
        .form(&[("grant_type", "password")])
        .send()
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.body, json!({"error": "unsupported_grant_type"}));
    let res = app
        .raw(Method::POST, &token_url)
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", jwt),
        ])
        .send()
        .await;
    assert_eq!(res.body, json!({"error": "invalid_request"}));

    // A revoked subject cannot be exchanged; an expired access token is refused.
    pingone
        .delete(&format!(
            "/environments/{env}/gateways/{gw}/credentials/{}",
            created["id"].as_str().unwrap()
        ))
        .await;
    let (status, body) = exchange(&app, jwt, &env).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}))
    );
    let expired = expired_access_token(&app, &org).await;
    assert_eq!(
        app.verify(&token, &expired).await,
        json!({"valid": false, "code": "expired"})
    );
}

/// An access token signed by the organization's own key, but expired a minute ago.
async fn expired_access_token(app: &TestApp, org: &str) -> String {
    let key = app
        .latchkey
        .signing_key(org, latchkey::crypto::jwt::JwtAlgorithm::RS256)
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    key.sign(&json!({"iss": "x", "sub": "c", "aud": "g", "iat": now - 400, "exp": now - 60, "jti": "j",
        "tokenUse": "gateway_access", "environmentId": "e", "gatewayId": "g", "organizationId": org}))
        .unwrap()
}

async fn environments_and_gateways(app: TestApp) {
    let (org, token) = app.org_with("admin").await;
    let pingone = app.pingone(&token);
    let (status, env) = pingone
        .post(
            "/environments",
            json!({"name": "Staging", "description": "pre-prod"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for f in [
        "id",
        "name",
        "description",
        "region",
        "createdAt",
        "updatedAt",
    ] {
        assert!(env.get(f).is_some(), "{f} in {env}");
    }
    assert_eq!(env["region"], "NA");
    let env_id = env["id"].as_str().unwrap();
    let (_, list) = pingone.get("/environments").await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["_embedded"]["environments"][0]["id"], env_id);
    // The same routes answer without /v1, as PingOne's {{apiPath}} ends in /v1.
    let (status, same) = app.get(&format!("/environments/{env_id}"), &token).await;
    assert_eq!((status, &same), (StatusCode::OK, &env));

    let gws = format!("/environments/{env_id}/gateways");
    let (status, e) = pingone
        .post(&gws, json!({"name": "x", "type": "SMTP", "enabled": true}))
        .await;
    assert_ping_error(status, &e, StatusCode::BAD_REQUEST, "INVALID_DATA");
    assert_eq!(e["details"][0]["target"], "type");
    let (status, e) = pingone
        .post(&gws, json!({"type": "LDAP", "enabled": true}))
        .await;
    assert_ping_error(status, &e, StatusCode::BAD_REQUEST, "INVALID_DATA");
    assert_eq!(e["details"][0]["code"], "REQUIRED_VALUE");
    let (status, e) = pingone
        .post(&gws, json!({"name": "x", "type": "LDAP", "enabled": "yes"}))
        .await;
    assert_ping_error(status, &e, StatusCode::BAD_REQUEST, "INVALID_DATA");
    let res = pingone.raw(Method::POST, &gws).body("{oops").send().await;
    assert_ping_error(
        res.status,
        &res.body,
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    );

    let (status, gw) = pingone
        .post(
            &gws,
            json!({"name": "PF", "type": "PING_FEDERATE", "enabled": false, "description": "d"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(gw["environment"]["id"], env_id);
    assert_eq!(gw["enabled"], false);
    let (status, e) = pingone
        .post(&gws, json!({"name": "PF", "type": "LDAP", "enabled": true}))
        .await;
    assert_ping_error(status, &e, StatusCode::BAD_REQUEST, "INVALID_DATA");
    assert_eq!(e["details"][0]["code"], "UNIQUENESS_VIOLATION");

    let gw_path = format!("{gws}/{}", gw["id"].as_str().unwrap());
    let (status, updated) = pingone
        .put(
            &gw_path,
            json!({"name": "PF-2", "type": "PING_FEDERATE", "enabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (
            updated["name"].as_str(),
            updated["enabled"].as_bool(),
            updated["description"].as_str()
        ),
        (Some("PF-2"), Some(true), Some(""))
    );
    let (status, e) = pingone
        .put(
            &gw_path,
            json!({"name": "PF-2", "type": "LDAP", "enabled": true}),
        )
        .await;
    assert_ping_error(status, &e, StatusCode::BAD_REQUEST, "INVALID_DATA");
    let (_, list) = pingone.get(&gws).await;
    assert_eq!(list["_embedded"]["gateways"][0]["name"], "PF-2");

    // Viewers read but cannot change; unknown tokens are ACCESS_FAILED.
    let viewer = app.token(&org, "viewer", None).await;
    let (status, _) = app.pingone(&viewer).get(&gw_path).await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = app
        .request(
            reqwest::Method::POST,
            &format!("{gw_path}/credentials"),
            Some(&viewer),
            None,
        )
        .await;
    assert_ping_error(status, &e, StatusCode::FORBIDDEN, "ACCESS_FAILED");
    let (status, e) = app
        .request(reqwest::Method::GET, "/v1/environments", None, None)
        .await;
    assert_ping_error(status, &e, StatusCode::UNAUTHORIZED, "ACCESS_FAILED");

    // The client's transaction id reaches the audit event.
    let res = pingone
        .raw(Method::POST, &format!("{gw_path}/credentials"))
        .header("X-Ping-External-Transaction-ID", "txn-42")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let (_, events) = app
        .get("/v1/audit_events?action=gateway_credential.create", &token)
        .await;
    assert_eq!(events["audit_events"][0]["external_id"], "txn-42");
    use latchkey::kernel::audit::Verification;
    assert!(matches!(
        app.latchkey.verify_audit().await.unwrap(),
        Verification::Intact { .. }
    ));

    let (status, _) = pingone.delete(&format!("/environments/{env_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = pingone.get(&gw_path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Three nodes on one database: a revocation on one fails verification on every node within
/// a second, though the others had the credential cached.
async fn revocation_reaches_every_node_within_a_second(app: TestApp) {
    let (token, env, gw, _) = gateway(&app).await;
    let pingone = app.pingone(&token);
    let (_, created) = seed_post(&app, &token, &env, &gw).await;
    let jwt = created["credential"].as_str().unwrap().to_owned();
    let (b, _stop_b) = app.another_node().await;
    let (c, _stop_c) = app.another_node().await;
    for node in [&app.base, &b, &c] {
        assert_eq!(
            app.verify_at(node, &token, &jwt).await["valid"],
            true,
            "{node}"
        );
    }
    let id = created["id"].as_str().unwrap();
    let (status, _) = pingone
        .delete(&format!(
            "/environments/{env}/gateways/{gw}/credentials/{id}"
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.verify(&token, &jwt).await["code"],
        "revoked",
        "at once on the node that deleted it"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1100);
    for node in [&b, &c] {
        loop {
            if app.verify_at(node, &token, &jwt).await["code"] == "revoked" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{node} still accepts a revoked credential"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// PingOne resources belong to the organization, not to a team: a team-bound token, of any
/// role, reaches none of them (reads included), while the organization's own token does.
async fn team_bound_tokens_reach_no_pingone_route(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let team = app.team(&admin, "Security").await;
    let env = app
        .post(
            "/v1/environments",
            &admin,
            json!({"name": "Production", "region": "NA"}),
        )
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gw = app
        .post(
            &format!("/v1/environments/{env}/gateways"),
            &admin,
            json!({"name": "LDAP West", "type": "LDAP", "enabled": true}),
        )
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cred = app
        .post(
            &format!("/v1/environments/{env}/gateways/{gw}/credentials"),
            &admin,
            json!({}),
        )
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gateway = json!({"name": "LDAP East", "type": "LDAP", "enabled": true});
    for role in ["admin", "editor", "viewer"] {
        let bound = app.token(&org, role, Some(team)).await;
        let calls: Vec<(reqwest::Method, String, Option<Value>)> = vec![
            (
                Method::POST,
                "/v1/environments".into(),
                Some(json!({"name": "X"})),
            ),
            (Method::GET, "/v1/environments".into(), None),
            (Method::GET, format!("/v1/environments/{env}"), None),
            (Method::DELETE, format!("/v1/environments/{env}"), None),
            (
                Method::POST,
                format!("/v1/environments/{env}/gateways"),
                Some(gateway.clone()),
            ),
            (
                Method::GET,
                format!("/v1/environments/{env}/gateways"),
                None,
            ),
            (
                Method::GET,
                format!("/v1/environments/{env}/gateways/{gw}"),
                None,
            ),
            (
                Method::PUT,
                format!("/v1/environments/{env}/gateways/{gw}"),
                Some(gateway.clone()),
            ),
            (
                Method::DELETE,
                format!("/v1/environments/{env}/gateways/{gw}"),
                None,
            ),
            (
                Method::POST,
                format!("/v1/environments/{env}/gateways/{gw}/credentials"),
                Some(json!({})),
            ),
            (
                Method::GET,
                format!("/v1/environments/{env}/gateways/{gw}/credentials"),
                None,
            ),
            (
                Method::GET,
                format!("/v1/environments/{env}/gateways/{gw}/credentials/{cred}"),
                None,
            ),
            (
                Method::DELETE,
                format!("/v1/environments/{env}/gateways/{gw}/credentials/{cred}"),
                None,
            ),
            (Method::GET, format!("/environments/{env}"), None),
        ];
        for (method, path, body) in calls {
            let (status, error) = app.request(method.clone(), &path, Some(&bound), body).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{role} {method} {path}: {error}"
            );
            assert_eq!(error["code"], "ACCESS_FAILED", "{error}");
        }
    }
    // Nothing was made or removed on the way.
    let (_, envs) = app.get("/v1/environments", &admin).await;
    assert_eq!(envs["count"], 1);
    let (status, _) = app
        .get(
            &format!("/v1/environments/{env}/gateways/{gw}/credentials/{cred}"),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// The JWK Sets are public: reading one never makes a signing key. An organization that has
/// issued nothing publishes an empty set; its first credential makes its key.
async fn reading_a_jwk_set_makes_no_key(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let (_, env) = app
        .post("/v1/environments", &admin, json!({"name": "Production"}))
        .await;
    let env = env["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/v1/environments/{env}/jwks"),
        format!("/.well-known/jwks.json?organization={org}"),
    ] {
        let (status, set) = app.request(Method::GET, &path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(set, json!({"keys": []}), "{path}");
    }
    let (_, gw) = app
        .post(
            &format!("/v1/environments/{env}/gateways"),
            &admin,
            json!({"name": "LDAP", "type": "LDAP", "enabled": true}),
        )
        .await;
    let gw = gw["id"].as_str().unwrap();
    app.post(
        &format!("/v1/environments/{env}/gateways/{gw}/credentials"),
        &admin,
        json!({}),
    )
    .await;
    let (_, set) = app
        .request(
            Method::GET,
            &format!("/v1/environments/{env}/jwks"),
            None,
            None,
        )
        .await;
    assert_eq!(set["keys"].as_array().unwrap().len(), 1, "{set}");
}

both_engines!(
    reading_a_jwk_set_makes_no_key,
    team_bound_tokens_reach_no_pingone_route,
    revocation_reaches_every_node_within_a_second,
    seed_000_credential_is_a_verifiable_jwt,
    five_per_gateway_sequential_and_concurrent,
    revocation_tampering_and_other_organizations,
    token_exchange,
    environments_and_gateways,
);

/// A refused subject token is a failed authentication: audited in the organization whose
/// credential it is (never with the token), and limited per client address (429 with
/// `Retry-After` beyond, in the OAuth error shape).
async fn failed_token_exchanges_are_audited_and_limited(app: TestApp) {
    let (token, env, gw, _) = gateway(&app).await;
    let (_, created) = seed_post(&app, &token, &env, &gw).await;
    let jwt = created["credential"].as_str().unwrap();
    let elsewhere = uuid::Uuid::new_v4().to_string();
    let (status, _) = exchange(&app, jwt, &elsewhere).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, events) = app.get("/v1/audit_events?action=auth.failed", &token).await;
    let event = &events["audit_events"][0];
    assert_eq!(event["target_type"], "gateway_credential");
    assert_eq!(event["target_id"], created["id"]);
    assert_eq!(event["detail"]["reason"], "wrong_environment");
    assert_absent(&events.to_string(), jwt, "audit events");

    let mut limited = None;
    for _ in 0..40 {
        let res = app
            .raw(Method::POST, &format!("/{env}/as/token"))
            .form(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", "a.b.c"),
                ("subject_token_type", "pingone_gateway_credential"),
            ])
            .send()
            .await;
        if res.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(res);
            break;
        }
        assert_eq!(res.body, json!({"error": "invalid_grant"}));
    }
    let res = limited.expect("429 after repeated failures");
    assert!(res.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(res.body["error"], "temporarily_unavailable");
    // The request body is an object: an array of the right values is refused.
    let res = app
        .raw(Method::POST, &format!("/{env}/as/token"))
        .header("content-type", "application/json")
        .body(
            json!([
                "urn:ietf:params:oauth:grant-type:token-exchange",
                jwt,
                "pingone_gateway_credential"
            ])
            .to_string(),
        )
        .send()
        .await;
    assert_eq!(res.body, json!({"error": "invalid_request"}));
    // Only failures are limited: a valid credential is still exchanged.
    let (status, _) = exchange(&app, jwt, &env).await;
    assert_eq!(status, StatusCode::OK, "valid credentials are not refused");
}

/// Access tokens live no longer than the credential they were exchanged for, and a disabled
/// gateway's credentials and tokens verify nothing (here at once, on another node within a
/// second) until it is enabled again.
async fn access_tokens_follow_their_credential_and_gateway(app: TestApp) {
    let (token, env, gw, _) = gateway(&app).await;
    let pingone = app.pingone(&token);
    let (_, created) = seed_post(&app, &token, &env, &gw).await;
    let jwt = created["credential"].as_str().unwrap().to_owned();
    let (_, body) = exchange(&app, &jwt, &env).await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let (b, _stop) = app.another_node().await;
    for node in [&app.base, &b] {
        assert_eq!(app.verify_at(node, &token, &access).await["valid"], true);
    }
    let set_enabled = async |enabled: bool| {
        let (status, body) = pingone
            .put(
                &format!("/environments/{env}/gateways/{gw}"),
                json!({"name": "LDAP West", "type": "LDAP", "enabled": enabled}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    };
    let within_a_second = async |presented: &str, code: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1000);
        loop {
            let verdict = app.verify_at(&b, &token, presented).await;
            if verdict["code"] == code {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the other node answers {verdict}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    set_enabled(false).await;
    for presented in [&jwt, &access] {
        assert_eq!(app.verify(&token, presented).await["code"], "disabled");
        within_a_second(presented, "disabled").await;
    }
    let (status, e) = exchange(&app, &jwt, &env).await;
    assert_eq!(
        (status, e),
        (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}))
    );
    set_enabled(true).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        app.verify(&token, &access).await["valid"],
        true,
        "enabled again"
    );
    // Deleting the credential ends its access tokens too.
    let (status, _) = pingone
        .delete(&format!(
            "/environments/{env}/gateways/{gw}/credentials/{}",
            created["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.verify(&token, &access).await["code"], "revoked");
    within_a_second(&access, "revoked").await;
}

both_engines!(
    access_tokens_follow_their_credential_and_gateway,
    failed_token_exchanges_are_audited_and_limited
);
