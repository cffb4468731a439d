//! The Tines surface: teams, folders and user credentials in every mode.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    both_engines,
    helpers::{TestApp, assert_absent, logs},
    one_engine,
};

const RSA_PEM: &str = include_str!("../fixtures/rsa.pem");
const EC_P256_PEM: &str = include_str!("../fixtures/ec_p256.pem");
const EC_P384_PEM: &str = include_str!("../fixtures/ec_p384.pem");
const ED25519_PEM: &str = include_str!("../fixtures/ed25519.pem");
const MTLS_CERT: &str = include_str!("../fixtures/mtls_cert.pem");
const MTLS_KEY: &str = include_str!("../fixtures/mtls_key.pem");

const SEED_FIELDS: &[&str] = &[
    "id",
    "name",
    "mode",
    "team_id",
    "folder_id",
    "read_access",
    "shared_team_slugs",
    "slug",
    "created_at",
    "updated_at",
    "description",
    "allowed_hosts",
    "metadata",
    "test_credential_enabled",
];

fn assert_seed_shape(v: &Value) {
    for field in SEED_FIELDS {
        assert!(v.get(field).is_some(), "missing {field} in {v}");
    }
    for ts in ["created_at", "updated_at"] {
        let s = v[ts].as_str().unwrap();
        assert!(s.ends_with('Z') && s.len() == 24, "{ts} = {s}");
    }
}

/// The error envelope and its field.
fn assert_error(status: StatusCode, body: &Value, want: StatusCode, field: Option<&str>) {
    assert_eq!(status, want, "{body}");
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("not a Tines error: {body}"));
    assert_eq!(errors.len(), 1, "{body}");
    assert!(
        errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    if let Some(field) = field {
        assert_eq!(errors[0]["field"], field, "{body}");
    }
}

/// Seed 002, verbatim but for the team id.
fn seed_http_request(team_id: i64) -> Value {
    json!({
        "name": "http credential",
        "mode": "HTTP_REQUEST_AGENT",
        "team_id": team_id,
        "http_request_options": {
            "url": "http://www.example.com",
            "content_type": "json",
            "method": "post",
            "payload": {"key": "value", "secret": "I can reference the \\<<secret>> as needed in the payload."},
            "headers": {}
        },
        "http_request_location_of_token": "\\=credential_name.body.token",
        "http_request_secret": "secret_value"
    })
}

/// Seed 004 with a real RSA key in place of `<private-key>`.
fn seed_jwt(team_id: i64) -> Value {
    json!({
        "name": "jwt credential",
        "mode": "JWT",
        "team_id": team_id,
        "jwt_algorithm": "RS256",
        "jwt_payload": {"iss": "", "sub": "", "scope": "", "aud": ""},
        "jwt_auto_generate_time_claims": true,
        "jwt_private_key": RSA_PEM
    })
}

async fn seed_002_http_request_agent(app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let tines = app.tines(&token);
    let team = app.team(&token, "Security").await;
    let (status, cred) = tines
        .post("/user_credentials", seed_http_request(team))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{cred}");
    assert_seed_shape(&cred);
    assert_eq!(cred["name"], "http credential");
    assert_eq!(cred["slug"], "http_credential");
    assert_eq!(cred["mode"], "HTTP_REQUEST_AGENT");
    assert_eq!(cred["team_id"], team);
    assert_eq!(cred["folder_id"], Value::Null);
    assert_eq!(cred["read_access"], "TEAM");
    assert_eq!(cred["shared_team_slugs"], json!([]));
    assert_eq!(cred["description"], "");
    assert_eq!(cred["allowed_hosts"], json!([]));
    assert_eq!(cred["metadata"], json!({}));
    assert_eq!(cred["test_credential_enabled"], false);
    assert_eq!(
        cred["http_request_options"]["url"],
        "http://www.example.com"
    );
    assert_eq!(
        cred["http_request_location_of_token"],
        "\\=credential_name.body.token"
    );
    assert_eq!(cred["http_request_ttl"], Value::Null);
    assert!(cred.get("http_request_secret").is_none());

    let (status, got) = tines
        .get(&format!("/user_credentials/{}", cred["id"]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, cred);
    assert_absent(&got.to_string(), "secret_value", "the response");
}

async fn seed_004_jwt(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let team = app.team(&admin, "Platform").await;
    let token = app.token(&org, "editor", None).await;
    let tines = app.tines(&token);
    let (status, cred) = tines.post("/user_credentials", seed_jwt(team)).await;
    assert_eq!(status, StatusCode::CREATED, "{cred}");
    assert_seed_shape(&cred);
    assert_eq!(cred["mode"], "JWT");
    assert_eq!(cred["slug"], "jwt_credential");
    assert_eq!(cred["jwt_algorithm"], "RS256");
    assert_eq!(cred["jwt_auto_generate_time_claims"], true);
    assert_eq!(
        cred["jwt_payload"],
        json!({"iss": "", "sub": "", "scope": "", "aud": ""})
    );
    assert!(cred.get("jwt_private_key").is_none());
    assert!(!cred.to_string().contains("PRIVATE KEY"));
}

/// One valid body per mode, with the secret inputs that must never come back.
fn every_mode(team: i64) -> Vec<(Value, Vec<&'static str>)> {
    vec![
        (
            json!({"name": "text one", "mode": "TEXT", "team_id": team, "value": "text-secret-1"}),
            vec!["text-secret-1"],
        ),
        (
            json!({"name": "jwt es256", "mode": "JWT", "team_id": team, "jwt_algorithm": "ES256",
                "jwt_private_key": EC_P256_PEM}),
            vec![],
        ),
        (
            json!({"name": "jwt hs", "mode": "JWT", "team_id": team, "jwt_algorithm": "HS256",
                "jwt_private_key": "hs-secret-2"}),
            vec!["hs-secret-2"],
        ),
        (
            json!({"name": "jwt eddsa", "mode": "JWT", "team_id": team, "jwt_algorithm": "EdDSA",
                "jwt_private_key": ED25519_PEM}),
            vec![],
        ),
        (
            json!({"name": "oauth", "mode": "OAUTH", "team_id": team, "oauth_url": "https://example.com/auth",
                "oauth_token_url": "https://example.com/token", "oauth_client_id": "cid",
                "oauth_client_secret": "oauth-secret-3", "oauth_scope": "sync",
                "oauth_grant_type": "authorization_code", "oauthPkceCodeChallengeMethod": "S256"}),
            vec!["oauth-secret-3"],
        ),
        (
            json!({"name": "aws key", "mode": "AWS", "team_id": team, "aws_authentication_type": "KEY",
                "aws_access_key": "AKIAEXAMPLE", "aws_secret_key": "aws-secret-4"}),
            vec!["aws-secret-4"],
        ),
        (
            json!({"name": "aws role", "mode": "AWS", "team_id": team, "aws_authentication_type": "ROLE",
                "aws_assumed_role_arn": "arn:aws:iam::123456789012:role/latchkey"}),
            vec![],
        ),
        (
            json!({"name": "mtls", "mode": "MTLS", "team_id": team, "mtls_client_certificate": MTLS_CERT,
                "mtls_client_private_key": MTLS_KEY, "mtls_root_certificate": MTLS_CERT}),
            vec![],
        ),
        (
            json!({"name": "multi", "mode": "MULTI_REQUEST", "team_id": team, "http_request_location_of_token": "=b.body.token",
                "http_request_ttl": 60, "credential_requests": [
                    {"options": {"url": "https://example.com/login", "method": "post"}, "http_request_secret": "multi-secret-5"},
                    {"options": {"url": "https://example.com/token"}}]}),
            vec!["multi-secret-5"],
        ),
    ]
}

async fn create_get_list_update_delete_every_mode(app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let tines = app.tines(&token);
    let team = app.team(&token, "Ops").await;
    let mut secrets = vec!["secret_value"];
    let mut ids = vec![];
    let (status, _) = tines
        .post("/user_credentials", seed_http_request(team))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for (body, mode_secrets) in every_mode(team) {
        let (status, cred) = tines.post("/user_credentials", body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body} -> {cred}");
        assert_seed_shape(&cred);
        assert_eq!(cred["mode"], body["mode"]);
        for s in &mode_secrets {
            assert_absent(&cred.to_string(), s, "a create response");
        }
        secrets.extend(mode_secrets);
        ids.push((cred["id"].as_i64().unwrap(), body));
    }
    // AWS ROLE gets an external id; MTLS keeps its certificates, not its key.
    let (_, role) = tines.get(&format!("/user_credentials/{}", ids[6].0)).await;
    assert_eq!(
        role["aws_assumed_role_external_id"].as_str().unwrap().len(),
        32
    );
    let (_, mtls) = tines.get(&format!("/user_credentials/{}", ids[7].0)).await;
    assert_eq!(mtls["mtls_client_certificate"], MTLS_CERT);
    assert!(mtls.get("mtls_client_private_key").is_none());

    let (status, list) = tines.get("/user_credentials").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["user_credentials"].as_array().unwrap().len(), 10);
    assert_eq!(list["meta"]["count"], 10);
    for s in &secrets {
        assert_absent(&list.to_string(), s, "the list");
    }

    // PUT every mode: mode is required, secrets may be omitted and are kept.
    for (id, mut body) in ids.clone() {
        let object = body.as_object_mut().unwrap();
        for secret_field in [
            "value",
            "jwt_private_key",
            "oauth_client_secret",
            "aws_secret_key",
            "mtls_client_private_key",
        ] {
            object.remove(secret_field);
        }
        object.insert("description".into(), json!("updated"));
        let (status, updated) = tines
            .put(&format!("/user_credentials/{id}"), body.clone())
            .await;
        assert_eq!(status, StatusCode::OK, "{body} -> {updated}");
        assert_eq!(updated["description"], "updated");
        assert!(updated["updated_at"].as_str() >= updated["created_at"].as_str());
    }
    // ROLE keeps its external id across updates.
    let (_, role_again) = tines.get(&format!("/user_credentials/{}", ids[6].0)).await;
    assert_eq!(
        role_again["aws_assumed_role_external_id"],
        role["aws_assumed_role_external_id"]
    );

    for (id, _) in &ids {
        let (status, body) = tines.delete(&format!("/user_credentials/{id}")).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, body) = tines.get(&format!("/user_credentials/{id}")).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, None);
    }
    let (_, list) = tines.get("/user_credentials").await;
    assert_eq!(list["meta"]["count"], 1);

    // Nowhere at rest, nowhere in the log.
    let raw = app.raw_database().await;
    let logs = logs();
    for s in secrets {
        assert_absent(&raw, s, "the database");
        assert_absent(&logs, s, "the log");
    }
    assert!(!raw.contains("BEGIN PRIVATE KEY") && !logs.contains("BEGIN PRIVATE KEY"));
}

async fn put_resets_omitted_optional_fields(app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let tines = app.tines(&token);
    let team = app.team(&token, "Ops").await;
    let mut body = seed_http_request(team);
    body["http_request_ttl"] = json!(60);
    body["description"] = json!("first");
    body["allowed_hosts"] = json!(["*.example.com"]);
    let (_, cred) = tines.post("/user_credentials", body).await;
    assert_eq!(cred["http_request_ttl"], 60);
    let path = format!("/user_credentials/{}", cred["id"]);

    let (status, body) = tines.put(&path, json!({"name": "http credential"})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("mode"));

    let mut replacement = seed_http_request(team);
    replacement
        .as_object_mut()
        .unwrap()
        .remove("http_request_secret");
    let (status, updated) = tines.put(&path, replacement).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["http_request_ttl"], Value::Null);
    assert_eq!(updated["description"], "");
    assert_eq!(updated["allowed_hosts"], json!([]));
    assert_eq!(updated["id"], cred["id"]);
    assert_eq!(updated["created_at"], cred["created_at"]);

    // Changing mode needs the new mode's secrets.
    let (status, body) = tines
        .put(&path, json!({"name": "http credential", "mode": "TEXT"}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("value"));
    let (status, text) = tines
        .put(
            &path,
            json!({"name": "renamed", "mode": "TEXT", "value": "v"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(text["slug"], "renamed");
    assert!(text.get("http_request_options").is_none());
}

async fn validation_errors(app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let tines = app.tines(&token);
    let team = app.team(&token, "Ops").await;
    let other_team = app.team(&token, "Other").await;
    let (_, other_folder) = tines
        .post(
            "/folders",
            json!({"name": "f", "team_id": other_team, "content_type": "CREDENTIAL"}),
        )
        .await;
    let (_, story_folder) = tines
        .post(
            "/folders",
            json!({"name": "s", "team_id": team, "content_type": "STORY"}),
        )
        .await;
    let jwt = |alg: &str, key: &str| json!({"name": "j", "mode": "JWT", "team_id": team, "jwt_algorithm": alg, "jwt_private_key": key});
    let http = |options: Value, extra: Value| {
        let mut body = json!({"name": "h", "mode": "HTTP_REQUEST_AGENT", "team_id": team,
            "http_request_options": options, "http_request_location_of_token": "=x"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let multi = |n: usize| {
        json!({"name": "m", "mode": "MULTI_REQUEST", "team_id": team, "http_request_location_of_token": "=x",
        "credential_requests": vec![json!({"options": {"url": "https://a.example.com"}}); n]})
    };
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"name": "x", "mode": "PASSWORD", "team_id": team}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "mode",
        ),
        (
            json!({"name": "x", "team_id": team, "value": "v"}),
            StatusCode::BAD_REQUEST,
            "mode",
        ),
        (
            json!({"mode": "TEXT", "team_id": team, "value": "v"}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            json!({"name": "x", "mode": "TEXT", "value": "v"}),
            StatusCode::BAD_REQUEST,
            "team_id",
        ),
        (
            json!({"name": "x", "mode": "TEXT", "team_id": team}),
            StatusCode::BAD_REQUEST,
            "value",
        ),
        (
            json!({"name": "x", "mode": "TEXT", "team_id": "two", "value": "v"}),
            StatusCode::BAD_REQUEST,
            "team_id",
        ),
        (
            json!({"name": "!!!", "mode": "TEXT", "team_id": team, "value": "v"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            json!({"name": "x", "mode": "JWT", "team_id": team, "jwt_private_key": RSA_PEM}),
            StatusCode::BAD_REQUEST,
            "jwt_algorithm",
        ),
        (
            jwt("RS999", RSA_PEM),
            StatusCode::UNPROCESSABLE_ENTITY,
            "jwt_algorithm",
        ),
        (
            jwt("none", RSA_PEM),
            StatusCode::UNPROCESSABLE_ENTITY,
            "jwt_algorithm",
        ),
        (
            jwt("RS256", "not a key"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "jwt_private_key",
        ),
        (
            jwt("RS256", EC_P256_PEM),
            StatusCode::UNPROCESSABLE_ENTITY,
            "jwt_private_key",
        ),
        (
            jwt("ES256", RSA_PEM),
            StatusCode::UNPROCESSABLE_ENTITY,
            "jwt_private_key",
        ),
        (
            jwt("ES256", EC_P384_PEM),
            StatusCode::UNPROCESSABLE_ENTITY,
            "jwt_private_key",
        ),
        (
            jwt("EdDSA", RSA_PEM),
            StatusCode::UNPROCESSABLE_ENTITY,
            "jwt_private_key",
        ),
        (
            json!({"name": "x", "mode": "JWT", "team_id": team, "jwt_algorithm": "RS256"}),
            StatusCode::BAD_REQUEST,
            "jwt_private_key",
        ),
        (
            http(json!({"url": "ftp://example.com"}), json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "http_request_options.url",
        ),
        (
            http(json!({"url": "not a url"}), json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "http_request_options.url",
        ),
        (
            http(json!({"method": "get"}), json!({})),
            StatusCode::BAD_REQUEST,
            "http_request_options.url",
        ),
        (
            http(
                json!({"url": "https://x.example.com", "method": "fetch"}),
                json!({}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "http_request_options.method",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"http_request_ttl": 121}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "http_request_ttl",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"http_request_ttl": 0}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "http_request_ttl",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"http_request_ttl": "60"}),
            ),
            StatusCode::BAD_REQUEST,
            "http_request_ttl",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"http_request_location_of_token": null}),
            ),
            StatusCode::BAD_REQUEST,
            "http_request_location_of_token",
        ),
        (
            json!({"name": "h", "mode": "HTTP_REQUEST_AGENT", "team_id": team, "http_request_location_of_token": "=x"}),
            StatusCode::BAD_REQUEST,
            "http_request_options",
        ),
        (
            multi(1),
            StatusCode::UNPROCESSABLE_ENTITY,
            "credential_requests",
        ),
        (
            multi(3),
            StatusCode::UNPROCESSABLE_ENTITY,
            "credential_requests",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"read_access": "SPECIFIC_TEAMS"}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "shared_team_slugs",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"read_access": "SPECIFIC_TEAMS", "shared_team_slugs": ["nope"]}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "shared_team_slugs",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"read_access": "TEAM", "shared_team_slugs": ["other"]}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "shared_team_slugs",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"read_access": "EVERYONE"}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "read_access",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"folder_id": other_folder["id"]}),
            ),
            // Another team's folder is not found, exactly as a missing one.
            StatusCode::NOT_FOUND,
            "folder_id",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"folder_id": story_folder["id"]}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "folder_id",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"folder_id": 999_999}),
            ),
            StatusCode::NOT_FOUND,
            "folder_id",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"allowed_hosts": ["*example.com"]}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "allowed_hosts",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"allowed_hosts": ["a b.com"]}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "allowed_hosts",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"allowed_hosts": "example.com"}),
            ),
            StatusCode::BAD_REQUEST,
            "allowed_hosts",
        ),
        (
            http(
                json!({"url": "https://x.example.com"}),
                json!({"live_credential_id": 999_999}),
            ),
            StatusCode::NOT_FOUND,
            "live_credential_id",
        ),
        (
            json!({"name": "x", "mode": "TEXT", "team_id": 999_999, "value": "v"}),
            StatusCode::NOT_FOUND,
            "team_id",
        ),
        (
            json!({"name": "x", "mode": "AWS", "team_id": team, "aws_authentication_type": "PASSWORD"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "aws_authentication_type",
        ),
        (
            json!({"name": "x", "mode": "AWS", "team_id": team, "aws_authentication_type": "KEY", "aws_access_key": "A"}),
            StatusCode::BAD_REQUEST,
            "aws_secret_key",
        ),
        (
            json!({"name": "x", "mode": "AWS", "team_id": team, "aws_authentication_type": "ROLE", "aws_assumed_role_arn": "role"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "aws_assumed_role_arn",
        ),
        (
            json!({"name": "x", "mode": "MTLS", "team_id": team, "mtls_client_certificate": "cert", "mtls_client_private_key": MTLS_KEY}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "mtls_client_certificate",
        ),
        (
            json!({"name": "x", "mode": "OAUTH", "team_id": team, "oauth_token_url": "https://e.com/t", "oauth_client_id": "c",
                "oauth_client_secret": "s", "oauth_grant_type": "password"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "oauth_grant_type",
        ),
        (
            json!({"name": "x", "mode": "OAUTH", "team_id": team, "oauth_token_url": "https://e.com/t", "oauth_client_id": "c",
                "oauth_client_secret": "s", "oauth_grant_type": "authorization_code"}),
            StatusCode::BAD_REQUEST,
            "oauth_url",
        ),
    ];
    for (body, want, field) in cases {
        let (status, error) = tines.post("/user_credentials", body.clone()).await;
        assert_eq!(status, want, "{body} -> {error}");
        assert_error(status, &error, want, Some(field));
        // A secret input never comes back in an error.
        for secret in ["not a key", "BEGIN PRIVATE KEY"] {
            assert!(!error.to_string().contains(secret), "{error}");
        }
    }
    // Nothing was created by any of them.
    let (_, list) = tines.get("/user_credentials").await;
    assert_eq!(list["meta"]["count"], 0);

    // Malformed JSON and a body over 100 KiB, in the surface's format.
    let res = tines
        .raw(Method::POST, "/user_credentials")
        .content_type("application/json")
        .body("{\"name\":")
        .send()
        .await;
    assert_error(res.status, &res.body, StatusCode::BAD_REQUEST, None);
    let big =
        json!({"name": "big", "mode": "TEXT", "team_id": team, "value": "x".repeat(101 * 1024)});
    let (status, error) = tines.post("/user_credentials", big).await;
    assert_error(status, &error, StatusCode::PAYLOAD_TOO_LARGE, None);
    let (_, list) = tines.get("/user_credentials").await;
    assert_eq!(list["meta"]["count"], 0);
}

async fn duplicate_slugs_conflict_per_team(app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let tines = app.tines(&token);
    let team = app.team(&token, "Ops").await;
    let other = app.team(&token, "Dev").await;
    let body = |name: &str, team: i64| json!({"name": name, "mode": "TEXT", "team_id": team, "value": "v"});
    let (status, _) = tines
        .post("/user_credentials", body("My API-Key", team))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, error) = tines
        .post("/user_credentials", body("my api key", team))
        .await;
    assert_error(status, &error, StatusCode::CONFLICT, Some("name"));
    let (status, _) = tines
        .post("/user_credentials", body("my api key", other))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Renaming onto an existing slug conflicts too.
    let (_, second) = tines.post("/user_credentials", body("second", team)).await;
    let (status, error) = tines
        .put(
            &format!("/user_credentials/{}", second["id"]),
            body("My_API_Key", team),
        )
        .await;
    assert_error(status, &error, StatusCode::CONFLICT, Some("name"));
    let (status, error) = tines.post("/teams", json!({"name": "ops"})).await;
    assert_error(status, &error, StatusCode::CONFLICT, Some("name"));
}

async fn test_twins(app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let tines = app.tines(&token);
    let team = app.team(&token, "Ops").await;
    let other = app.team(&token, "Dev").await;
    let (_, live) = tines
        .post(
            "/user_credentials",
            json!({"name": "api", "mode": "TEXT", "team_id": team, "value": "live"}),
        )
        .await;
    let live_id = live["id"].as_i64().unwrap();
    let twin_body = json!({"name": "api", "mode": "TEXT", "team_id": team, "value": "test", "live_credential_id": live_id});
    let (status, twin) = tines.post("/user_credentials", twin_body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{twin}");
    assert_eq!(twin["live_credential_id"], live_id);
    let (_, live) = tines.get(&format!("/user_credentials/{live_id}")).await;
    assert_eq!(live["test_credential_enabled"], true);
    assert_eq!(live["test_credential"]["created_at"], twin["created_at"]);
    assert_eq!(live["test_credential"]["updated_at"], twin["updated_at"]);

    let (status, e) = tines.post("/user_credentials", twin_body).await;
    assert_error(
        status,
        &e,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("live_credential_id"),
    );
    let (status, e) = tines.post("/user_credentials", json!({"name": "j", "mode": "JWT", "team_id": team, "jwt_algorithm": "HS256", "jwt_private_key": "k", "live_credential_id": live_id})).await;
    assert_error(
        status,
        &e,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("live_credential_id"),
    );
    // Another team's credential is not found, exactly as a missing one.
    let (status, e) = tines.post("/user_credentials", json!({"name": "x", "mode": "TEXT", "team_id": other, "value": "v", "live_credential_id": live_id})).await;
    assert_error(
        status,
        &e,
        StatusCode::NOT_FOUND,
        Some("live_credential_id"),
    );
    let (status, e) = tines.post("/user_credentials", json!({"name": "y", "mode": "TEXT", "team_id": team, "value": "v", "live_credential_id": twin["id"]})).await;
    assert_error(
        status,
        &e,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("live_credential_id"),
    );

    // Deleting the live credential takes its twin with it.
    tines.delete(&format!("/user_credentials/{live_id}")).await;
    let (status, _) = tines
        .get(&format!("/user_credentials/{}", twin["id"]))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn pagination_edges(app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let tines = app.tines(&token);
    let team = app.team(&token, "Ops").await;
    for i in 0..5 {
        let (status, _) = tines
            .post(
                "/user_credentials",
                json!({"name": format!("c{i}"), "mode": "TEXT", "team_id": team, "value": "v"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, first) = tines.get("/user_credentials?per_page=2").await;
    let meta = &first["meta"];
    assert_eq!(first["user_credentials"].as_array().unwrap().len(), 2);
    assert_eq!(meta["per_page"], 2);
    assert_eq!(meta["pages"], 3);
    assert_eq!(meta["count"], 5);
    assert_eq!(meta["previous_page"], Value::Null);
    assert_eq!(meta["next_page_number"], 2);
    assert!(
        meta["current_page"]
            .as_str()
            .unwrap()
            .starts_with(&app.base)
    );
    assert!(
        meta["next_page"]
            .as_str()
            .unwrap()
            .ends_with("/api/v1/user_credentials?per_page=2&page=2")
    );

    let (_, last) = tines.get("/user_credentials?per_page=2&page=3").await;
    assert_eq!(last["user_credentials"].as_array().unwrap().len(), 1);
    assert_eq!(last["meta"]["next_page"], Value::Null);
    assert_eq!(last["meta"]["next_page_number"], Value::Null);
    assert!(
        last["meta"]["previous_page"]
            .as_str()
            .unwrap()
            .ends_with("page=2")
    );

    let (_, beyond) = tines.get("/user_credentials?per_page=2&page=9").await;
    assert_eq!(beyond["user_credentials"], json!([]));
    assert_eq!(beyond["meta"]["count"], 5);
    // The last page number there can be: no overflow (schemathesis found it).
    let (status, farthest) = tines
        .get(&format!("/user_credentials?per_page=1&page={}", i64::MAX))
        .await;
    assert_eq!(status, StatusCode::OK, "{farthest}");
    assert_eq!(farthest["meta"]["next_page"], Value::Null);

    let (_, capped) = tines.get("/user_credentials?per_page=100000").await;
    assert_eq!(capped["meta"]["per_page"], 500);
    let (_, by_team) = tines
        .get(&format!("/user_credentials?team_id={team}&per_page=1"))
        .await;
    assert!(
        by_team["meta"]["next_page"]
            .as_str()
            .unwrap()
            .contains(&format!("team_id={team}"))
    );

    for bad in [
        "page=0",
        "per_page=0",
        "page=abc",
        "per_page=-5",
        "team_id=x",
    ] {
        let (status, e) = tines.get(&format!("/user_credentials?{bad}")).await;
        assert_error(status, &e, StatusCode::BAD_REQUEST, None);
    }
    let (_, empty) = tines.get("/folders").await;
    assert_eq!(empty["folders"], json!([]));
    assert_eq!(empty["meta"]["pages"], 0);
}

async fn tenant_and_team_isolation(app: TestApp) {
    let (org_a, admin_a) = app.org_with("admin").await;
    let (_, admin_b) = app.org_with("admin").await;
    let (tines_a, tines_b) = (app.tines(&admin_a), app.tines(&admin_b));
    let team_a = app.team(&admin_a, "Ops").await;
    let team_a2 = app.team(&admin_a, "Dev").await;
    let (_, folder_a) = tines_a
        .post(
            "/folders",
            json!({"name": "f", "team_id": team_a, "content_type": "CREDENTIAL"}),
        )
        .await;
    let (_, cred_a) = tines_a.post("/user_credentials", json!({"name": "a", "mode": "TEXT", "team_id": team_a, "value": "v", "folder_id": folder_a["id"]})).await;
    assert_eq!(folder_a["size"], 0);
    let (_, folder_again) = tines_a.get(&format!("/folders/{}", folder_a["id"])).await;
    assert_eq!(folder_again["size"], 1);

    // Organization B sees none of A's ids.
    for path in [
        format!("/teams/{team_a}"),
        format!("/folders/{}", folder_a["id"]),
        format!("/user_credentials/{}", cred_a["id"]),
    ] {
        let (status, e) = tines_b.get(&path).await;
        assert_error(status, &e, StatusCode::NOT_FOUND, None);
        let (status, e) = tines_b.delete(&path).await;
        assert_error(status, &e, StatusCode::NOT_FOUND, None);
    }
    let (status, e) = tines_b
        .put(
            &format!("/user_credentials/{}", cred_a["id"]),
            json!({"name": "a", "mode": "TEXT", "value": "x"}),
        )
        .await;
    assert_error(status, &e, StatusCode::NOT_FOUND, None);
    let (status, e) = tines_b
        .post(
            "/user_credentials",
            json!({"name": "b", "mode": "TEXT", "team_id": team_a, "value": "v"}),
        )
        .await;
    assert_error(status, &e, StatusCode::NOT_FOUND, Some("team_id"));
    let (_, list_b) = tines_b.get("/user_credentials").await;
    assert_eq!(list_b["meta"]["count"], 0);
    let (_, teams_b) = tines_b.get("/teams").await;
    assert_eq!(teams_b["teams"], json!([]));
    // Filtering a list by A's team or folder is 404 too, not an empty list.
    for (path, field) in [
        (format!("/user_credentials?team_id={team_a}"), "team_id"),
        (
            format!("/user_credentials?folder_id={}", folder_a["id"]),
            "folder_id",
        ),
        (format!("/folders?team_id={team_a}"), "team_id"),
    ] {
        let (status, e) = tines_b.get(&path).await;
        assert_error(status, &e, StatusCode::NOT_FOUND, Some(field));
    }

    // A token bound to team_a2 sees and manages only that team.
    let bound = app.tines(&app.token(&org_a, "editor", Some(team_a2)).await);
    let (status, _) = bound
        .get(&format!("/user_credentials/{}", cred_a["id"]))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, teams) = bound.get("/teams").await;
    assert_eq!(teams["teams"].as_array().unwrap().len(), 1);
    assert_eq!(teams["teams"][0]["id"], team_a2);
    let (status, _) = bound
        .post(
            "/user_credentials",
            json!({"name": "b", "mode": "TEXT", "team_id": team_a, "value": "v"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, mine) = bound
        .post(
            "/user_credentials",
            json!({"name": "b", "mode": "TEXT", "team_id": team_a2, "value": "v"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    let (_, list) = bound.get("/user_credentials").await;
    assert_eq!(list["meta"]["count"], 1);
    let (status, e) = bound
        .get(&format!("/user_credentials?folder_id={}", folder_a["id"]))
        .await;
    assert_error(status, &e, StatusCode::NOT_FOUND, Some("folder_id"));
    let (status, _) = bound.post("/teams", json!({"name": "new"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Ids of the other team, in a body, answer exactly as ids that do not exist.
    for (field, other_team, missing) in [
        ("folder_id", folder_a["id"].clone(), json!(999_999)),
        ("live_credential_id", cred_a["id"].clone(), json!(999_998)),
    ] {
        let body = |id: &Value| json!({"name": "c", "mode": "TEXT", "team_id": team_a2, "value": "v", field: id});
        let (status_other, e_other) = bound.post("/user_credentials", body(&other_team)).await;
        let (status_missing, e_missing) = bound.post("/user_credentials", body(&missing)).await;
        assert_error(status_other, &e_other, StatusCode::NOT_FOUND, Some(field));
        assert_eq!(
            (status_other, &e_other),
            (status_missing, &e_missing),
            "{field}"
        );
    }
    // resolve with another team named: the same answer whether the credential exists or not.
    let runner = app.tines(&app.token(&org_a, "runner", Some(team_a2)).await);
    let (status_real, real) = runner
        .post(
            &format!("/user_credentials/{}/resolve", cred_a["id"]),
            json!({"team_id": team_a}),
        )
        .await;
    let (status_none, none) = runner
        .post(
            "/user_credentials/999999/resolve",
            json!({"team_id": team_a}),
        )
        .await;
    assert_eq!((status_real, &real), (status_none, &none));
    assert_eq!(status_real, StatusCode::NOT_FOUND);

    // A server-admin token holds no organization.
    let (status, e) = app.tines(&app.admin).get("/user_credentials").await;
    assert_error(status, &e, StatusCode::FORBIDDEN, None);
}

async fn viewers_read_but_cannot_change(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let viewer = app.tines(&app.token(&org, "viewer", None).await);
    let team = app.team(&admin, "Ops").await;
    let (_, cred) = app
        .tines(&admin)
        .post(
            "/user_credentials",
            json!({"name": "a", "mode": "TEXT", "team_id": team, "value": "v"}),
        )
        .await;
    let path = format!("/user_credentials/{}", cred["id"]);
    let (status, _) = viewer.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = viewer
        .post(
            "/user_credentials",
            json!({"name": "b", "mode": "TEXT", "team_id": team, "value": "v"}),
        )
        .await;
    assert_error(status, &e, StatusCode::FORBIDDEN, None);
    let (status, _) = viewer
        .put(&path, json!({"name": "a", "mode": "TEXT", "value": "w"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Refused before any lookup: a viewer cannot probe which ids exist.
    for missing in ["/user_credentials/999999"] {
        let (status, _) = viewer
            .put(missing, json!({"name": "a", "mode": "TEXT", "value": "w"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = viewer.delete(missing).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = viewer.delete(&path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = viewer.post("/teams", json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = viewer.delete(&format!("/teams/{team}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = viewer.get(&path).await;
    assert_eq!(status, StatusCode::OK, "nothing changed");
}

async fn teams_and_folders(app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let tines = app.tines(&token);
    let (status, team) = tines.post("/teams", json!({"name": "Security Ops"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(team["name"], "Security Ops");
    assert_eq!(team["slug"], "security_ops");
    let team_id = team["id"].as_i64().unwrap();
    let (status, got) = tines.get(&format!("/teams/{team_id}")).await;
    assert_eq!((status, &got), (StatusCode::OK, &team));

    let (status, folder) = tines
        .post(
            "/folders",
            json!({"name": "Folder name", "content_type": "CREDENTIAL", "team_id": team_id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        folder,
        json!({"id": folder["id"], "name": "Folder name", "content_type": "CREDENTIAL", "team_id": team_id, "size": 0})
    );
    let (status, e) = tines
        .post(
            "/folders",
            json!({"name": "x", "content_type": "BOXES", "team_id": team_id}),
        )
        .await;
    assert_error(
        status,
        &e,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("content_type"),
    );
    let (status, e) = tines.post("/folders", json!({"name": "x"})).await;
    assert_error(status, &e, StatusCode::BAD_REQUEST, Some("team_id"));

    let (_, cred) = tines.post("/user_credentials", json!({"name": "a", "mode": "TEXT", "team_id": team_id, "value": "v", "folder_id": folder["id"]})).await;
    assert_eq!(cred["folder_id"], folder["id"]);
    let (_, in_folder) = tines
        .get(&format!("/user_credentials?folder_id={}", folder["id"]))
        .await;
    assert_eq!(in_folder["meta"]["count"], 1);
    // Every condition at once (each bound in its place), then one that excludes it.
    let both = format!(
        "team_id={team_id}&folder_id={}&filter=UNRESTRICTED",
        folder["id"]
    );
    let (_, narrowed) = tines.get(&format!("/user_credentials?{both}")).await;
    assert_eq!(narrowed["meta"]["count"], 1, "{narrowed}");
    assert_eq!(narrowed["user_credentials"][0]["id"], cred["id"]);
    let (_, page2) = tines
        .get(&format!("/user_credentials?{both}&per_page=1&page=2"))
        .await;
    assert_eq!(page2["user_credentials"], json!([]), "{page2}");
    assert_eq!(page2["meta"]["count"], 1);
    let (_, none) = tines
        .get(&format!(
            "/user_credentials?team_id={team_id}&folder_id={}&filter=RESTRICTED",
            folder["id"]
        ))
        .await;
    assert_eq!(none["meta"]["count"], 0, "{none}");
    let (_, folders) = tines.get(&format!("/folders?team_id={team_id}")).await;
    assert_eq!(folders["folders"][0]["size"], 1);

    // Deleting the folder keeps its credential, outside any folder.
    let (status, _) = tines.delete(&format!("/folders/{}", folder["id"])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, cred) = tines
        .get(&format!("/user_credentials/{}", cred["id"]))
        .await;
    assert_eq!(cred["folder_id"], Value::Null);

    // Deleting the team deletes what is in it, and its bound tokens fail at once.
    let org = app.get("/v1/tokens", &token).await.1["tokens"][0]["organization_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bound = app.tines(&app.token(&org, "viewer", Some(team_id)).await);
    let (status, _) = bound.get("/user_credentials").await;
    assert_eq!(status, StatusCode::OK, "cached now");
    // Only organization admins create and delete teams.
    let editor = app.tines(&app.token(&org, "editor", None).await);
    let (status, _) = editor.post("/teams", json!({ "name": "By editor" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = editor.delete(&format!("/teams/{team_id}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let bound_admin = app.tines(&app.token(&org, "admin", Some(team_id)).await);
    let (status, _) = bound_admin.delete(&format!("/teams/{team_id}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = tines.delete(&format!("/teams/{team_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Each token and credential that went with it has its own audit event.
    let (_, page) = app.get("/v1/audit_events", &token).await;
    let actions: Vec<(String, String)> = page["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let tokens_gone = actions.iter().filter(|(a, _)| a == "token.delete").count();
    assert_eq!(
        tokens_gone, 2,
        "the bound viewer and admin tokens: {actions:?}"
    );
    assert!(
        actions.contains(&("user_credential.delete".to_owned(), cred["id"].to_string())),
        "{actions:?}"
    );
    let (status, _) = bound.get("/user_credentials").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = tines
        .get(&format!("/user_credentials/{}", cred["id"]))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = tines.get("/teams/not-a-number").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn shared_team_slugs(app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let tines = app.tines(&token);
    let team = app.team(&token, "Ops").await;
    app.team(&token, "Red Team").await;
    let (status, cred) = tines
        .post(
            "/user_credentials",
            json!({"name": "s", "mode": "TEXT", "team_id": team, "value": "v",
        "read_access": "SPECIFIC_TEAMS", "shared_team_slugs": ["red_team", "red_team"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{cred}");
    assert_eq!(cred["read_access"], "SPECIFIC_TEAMS");
    assert_eq!(cred["shared_team_slugs"], json!(["red_team"]));
    let (status, global) = tines.post("/user_credentials", json!({"name": "g", "mode": "TEXT", "team_id": team, "value": "v",
        "read_access": "GLOBAL", "allowed_hosts": ["*.Example.com", "api.example.com/v1/*"], "metadata": {"owner": "ops"}})).await;
    assert_eq!(status, StatusCode::CREATED, "{global}");
    assert_eq!(
        global["allowed_hosts"],
        json!(["*.example.com", "api.example.com/v1/*"])
    );
    assert_eq!(global["metadata"], json!({"owner": "ops"}));
}

async fn unauthenticated_requests(app: TestApp) {
    for token in [None, Some("lk_nope"), Some("not-even-close")] {
        let (status, e) = app
            .request(
                reqwest::Method::GET,
                "/api/v1/user_credentials",
                token,
                None,
            )
            .await;
        assert_error(status, &e, StatusCode::UNAUTHORIZED, None);
    }
}

both_engines!(
    seed_002_http_request_agent,
    seed_004_jwt,
    create_get_list_update_delete_every_mode,
    put_resets_omitted_optional_fields,
    validation_errors,
    duplicate_slugs_conflict_per_team,
    test_twins,
    pagination_edges,
    tenant_and_team_isolation,
    viewers_read_but_cannot_change,
    teams_and_folders,
    shared_team_slugs,
);
// The 401 envelope; the failed logins are audited on the way, which native's
// `failed_logins_are_rate_limited_per_client` checks on both engines.
one_engine!(unauthenticated_requests);
