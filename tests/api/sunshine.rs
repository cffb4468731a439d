//! The Sunshine Conversations surface: apps, integrations, app/integration/account keys, key
//! authentication (Basic and HS256 JWT) and the verify path.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    both_engines,
    helpers::{Api, Auth, TestApp, assert_absent, logs},
};

/// A key as created: (id, secret).
struct Key {
    id: String,
    secret: String,
}

impl Key {
    /// The Sunshine surface with this key as HTTP Basic.
    fn api(&self, app: &TestApp) -> Api {
        app.sunshine_basic(&self.id, &self.secret)
    }

    fn basic(&self) -> String {
        let raw = format!("{}:{}", self.id, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// An HS256 JWT as Sunshine's docs sign it: `kid` in the header, `scope` in the claims.
    fn jwt(&self, scope: &str) -> String {
        self.jwt_with(Algorithm::HS256, json!({ "scope": scope }))
    }

    fn jwt_with(&self, alg: Algorithm, claims: Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(self.id.clone());
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .unwrap()
    }
}

fn assert_sun_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    assert!(body["errors"][0]["title"].is_string(), "{body}");
}

async fn account_key(app: &TestApp, token: &str) -> Key {
    let (status, created) = app
        .post("/v1/account_keys", token, json!({"displayName": "ops"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    key_of(&created)
}

fn key_of(created: &Value) -> Key {
    Key {
        id: created["key"]["id"].as_str().unwrap().to_owned(),
        secret: created["key"]["secret"].as_str().unwrap().to_owned(),
    }
}

/// An organization with an account key, an app and a custom integration:
/// (management token, account key, app id, integration id).
async fn setup(app: &TestApp) -> (String, Key, String, String) {
    let (_, token) = app.org_with("admin").await;
    let account = account_key(app, &token).await;
    let sunshine = account.api(app);
    let (status, created) = sunshine
        .post(
            "/apps",
            json!({"displayName": "Blue Brand", "metadata": {"tier": "gold"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let app_id = created["app"]["id"].as_str().unwrap().to_owned();
    let (status, integration) = sunshine.post(&format!("/apps/{app_id}/integrations"), json!({
            "type": "custom",
            "displayName": "Back office",
            "webhooks": [{"target": "https://example.com/hook", "triggers": ["conversation:message"]}]
        }))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{integration}");
    let integration_id = integration["integration"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (token, account, app_id, integration_id)
}

fn is_key_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        hex.len() == 24
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

async fn seed_001_integration_key(app: TestApp) {
    let (token, account, app_id, integration_id) = setup(&app).await;
    let sunshine = account.api(&app);
    // Seed 001's curl: -u 'username:password', JSON body {"displayName": "My custom key"}.
    let keys_path = format!("/apps/{app_id}/integrations/{integration_id}/keys");
    let res = sunshine
        .raw(Method::POST, &keys_path)
        .content_type("application/json")
        .body(r#"{ "displayName": "My custom key" }"#)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.headers["cache-control"], "no-store");
    let created: Value = res.body;
    let key = &created["key"];
    assert_eq!(
        key.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["displayName", "id", "secret"],
        "{created}"
    );
    assert_eq!(key["displayName"], "My custom key");
    assert!(is_key_id(key["id"].as_str().unwrap(), "int_"), "{created}");
    let secret = key["secret"].as_str().unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret)
        .unwrap();
    assert_eq!(raw.len(), 32);
    let int_key = key_of(&created);

    // Later reads never show the secret.
    let (status, list) = sunshine.get(&keys_path).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list["keys"],
        json!([{"id": int_key.id, "displayName": "My custom key"}])
    );
    let one = format!("{keys_path}/{}", int_key.id);
    let (status, got) = sunshine.get(&one).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        got,
        json!({"key": {"id": int_key.id, "displayName": "My custom key"}})
    );

    // The key authenticates: Basic and JWT, on the verify path.
    let principal = json!({
        "type": "integration_key", "key_id": int_key.id, "organization_id": app.verify(&token, &account.basic()).await["principal"]["organization_id"],
        "app_id": app_id, "integration_id": integration_id, "scope": "integration",
    });
    for presented in [
        int_key.basic(),
        format!("Bearer {}", int_key.jwt("integration")),
        int_key.jwt("integration"),
    ] {
        let verdict = app.verify(&token, &presented).await;
        assert_eq!(verdict, json!({"valid": true, "principal": principal}));
    }

    // The secret is nowhere but in that one response.
    for (place, text) in [
        ("the database", app.raw_database().await),
        ("the log", logs()),
        ("a list", list.to_string()),
        (
            "audit events",
            app.get("/v1/audit_events?limit=200", &token)
                .await
                .1
                .to_string(),
        ),
    ] {
        assert_absent(&text, &int_key.secret, place);
        assert_absent(&text, &account.secret, place);
    }
    let (_, events) = app
        .get("/v1/audit_events?action=api_key.create", &token)
        .await;
    assert_eq!(
        events["audit_events"].as_array().unwrap().len(),
        2,
        "{events}"
    );

    // Delete answers 200 {} and the key is refused from the next call on.
    let (status, body) = sunshine.delete(&one).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let verdict = app.verify(&token, &int_key.basic()).await;
    assert_eq!(verdict, json!({"valid": false, "code": "unknown_key"}));
    let (status, body) = sunshine.get(&one).await;
    assert_sun_error(status, &body, StatusCode::NOT_FOUND, "key_not_found");
    let (status, body) = sunshine.delete(&one).await;
    assert_sun_error(status, &body, StatusCode::NOT_FOUND, "key_not_found");
}

async fn jwt_refusals(app: TestApp) {
    let (token, account, app_id, _) = setup(&app).await;
    let (_, created) = account
        .api(&app)
        .post(
            &format!("/apps/{app_id}/keys"),
            json!({"displayName": "app key"}),
        )
        .await;
    let key = key_of(&created);
    assert!(is_key_id(&key.id, "app_"));
    let path = format!("/apps/{app_id}");
    let (status, got) = app.sunshine(&key.jwt("app")).get(&path).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["app"]["displayName"], "Blue Brand");

    let now = jsonwebtoken::get_current_timestamp();
    let unsigned = {
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT", "kid": key.id})),
            b64(json!({"scope": "app"}))
        )
    };
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"scope": "app"}),
        &EncodingKey::from_secret(key.secret.as_bytes()),
    )
    .unwrap();
    let unknown = Key {
        id: "app_000000000000000000000000".into(),
        secret: key.secret.clone(),
    };
    let forged = Key {
        id: key.id.clone(),
        secret: "not-the-secret".into(),
    };
    let cases = [
        (
            key.jwt_with(Algorithm::HS512, json!({"scope": "app"})),
            "unsupported_algorithm",
        ),
        (unsigned, "malformed"),
        (no_kid, "malformed"),
        (unknown.jwt("app"), "unknown_key"),
        (key.jwt("account"), "scope_mismatch"),
        (key.jwt_with(Algorithm::HS256, json!({})), "scope_mismatch"),
        (
            key.jwt_with(Algorithm::HS256, json!({"scope": "app", "exp": now - 600})),
            "expired",
        ),
        (forged.jwt("app"), "bad_signature"),
    ];
    for (jwt, code) in cases {
        let verdict = app.verify(&token, &format!("Bearer {jwt}")).await;
        assert_eq!(verdict, json!({"valid": false, "code": code}), "{jwt}");
        let (status, body) = app.sunshine(&jwt).get(&path).await;
        assert_sun_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // A small clock skew is tolerated; an exp in the future is fine.
    for exp in [now - 5, now + 600] {
        let jwt = key.jwt_with(Algorithm::HS256, json!({"scope": "app", "exp": exp}));
        assert_eq!(app.verify(&token, &jwt).await["valid"], true);
    }
    // Basic with a wrong secret, an unknown id or garbage.
    for bad in [
        forged.basic(),
        unknown.basic(),
        "Basic !!!".into(),
        String::new(),
    ] {
        let (status, body) = app.api("/v2", Auth::Header(bad)).get(&path).await;
        assert_sun_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let verdict = app.verify(&token, &forged.basic()).await;
    assert_eq!(verdict, json!({"valid": false, "code": "bad_secret"}));
    // The failures were audited to the key's organization, without the secrets.
    let (_, events) = app.get("/v1/audit_events?action=auth.failed", &token).await;
    let events = events["audit_events"].as_array().unwrap().clone();
    assert!(
        events.iter().any(|e| e["target_id"] == key.id),
        "{events:?}"
    );
    assert_absent(&format!("{events:?}"), &key.secret, "audit events");
}

async fn scopes(app: TestApp) {
    let (token, account, app_id, integration_id) = setup(&app).await;
    let auth = account.api(&app);
    let (_, created) = auth
        .post(&format!("/apps/{app_id}/keys"), json!({"displayName": "a"}))
        .await;
    let app_key = key_of(&created).api(&app);
    let (_, created) = auth
        .post(
            &format!("/apps/{app_id}/integrations/{integration_id}/keys"),
            json!({"displayName": "i"}),
        )
        .await;
    let int_key = key_of(&created).api(&app);
    let (_, other) = auth.post("/apps", json!({"displayName": "Other"})).await;
    let other_id = other["app"]["id"].as_str().unwrap().to_owned();

    let hook = json!({"type": "custom", "webhooks": [{"target": "https://example.com/h", "triggers": ["*"]}]});
    let name = json!({"displayName": "x"});
    let app_path = format!("/apps/{app_id}");
    let int_path = format!("{app_path}/integrations/{integration_id}");
    // (method, path, body, [account, app key, integration key] expected statuses)
    let cases: Vec<(Method, String, Option<Value>, [u16; 3])> = vec![
        (Method::GET, "/apps".into(), None, [200, 403, 403]),
        (
            Method::POST,
            "/apps".into(),
            Some(name.clone()),
            [201, 403, 403],
        ),
        (Method::GET, app_path.clone(), None, [200, 200, 200]),
        (
            Method::PATCH,
            app_path.clone(),
            Some(json!({"displayName": "Renamed"})),
            [200, 200, 403],
        ),
        (
            Method::GET,
            format!("/apps/{other_id}"),
            None,
            [200, 403, 403],
        ),
        (
            Method::GET,
            format!("{app_path}/integrations"),
            None,
            [200, 200, 403],
        ),
        (
            Method::POST,
            format!("{app_path}/integrations"),
            Some(hook),
            [201, 201, 403],
        ),
        (Method::GET, int_path.clone(), None, [200, 200, 200]),
        (
            Method::GET,
            format!("{app_path}/keys"),
            None,
            [200, 403, 403],
        ),
        (
            Method::POST,
            format!("{app_path}/keys"),
            Some(name.clone()),
            [201, 403, 403],
        ),
        (
            Method::GET,
            format!("{int_path}/keys"),
            None,
            [200, 200, 403],
        ),
        (
            Method::POST,
            format!("{int_path}/keys"),
            Some(name.clone()),
            [201, 201, 403],
        ),
        (
            Method::DELETE,
            format!("/apps/{other_id}"),
            None,
            [200, 403, 403],
        ),
    ];
    for (method, path, body, want) in cases {
        // Run the callers from the least privileged, so a delete by the account key runs last.
        for (auth, want) in [(&int_key, want[2]), (&app_key, want[1]), (&auth, want[0])] {
            let (status, got) = auth.send(method.clone(), &path, body.clone()).await;
            assert_eq!(status.as_u16(), want, "{method} {path}: {got}");
            if want == 403 {
                assert_sun_error(status, &got, StatusCode::FORBIDDEN, "forbidden");
            }
        }
    }
    // Management tokens: admins and editors manage, viewers read, team-bound tokens are refused.
    let org = app.verify(&token, &account.basic()).await["principal"]["organization_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let viewer = app.token(&org, "viewer", None).await;
    let (status, _) = app.sunshine(&viewer).get(&app_path).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.sunshine(&viewer).post("/apps", name.clone()).await;
    assert_sun_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = app.sunshine(&token).post("/apps", name.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let team = app.team(&token, "Security").await;
    let bound = app.token(&org, "admin", Some(team)).await;
    let (status, body) = app.sunshine(&bound).get(&app_path).await;
    assert_sun_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    // Account keys are managed by organization admins only.
    let (status, _) = app.get("/v1/account_keys", &viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, list) = app.get("/v1/account_keys", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list["keys"],
        json!([{"id": account.id, "displayName": "ops"}])
    );
    // No credential at all.
    let (status, _) = app.api("/v2", Auth::None).get(&app_path).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn key_limits_sequential_and_concurrent(app: TestApp) {
    let (_, account, app_id, integration_id) = setup(&app).await;
    let auth = account.api(&app);
    let app_keys = format!("/apps/{app_id}/keys");
    for i in 0..10 {
        let (status, body) = auth
            .post(&app_keys, json!({"displayName": format!("k{i}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = auth.post(&app_keys, json!({"displayName": "k10"})).await;
    assert_sun_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (_, list) = auth.get(&app_keys).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 10);

    // Fifteen at once on the integration: exactly ten land.
    let int_keys = format!("/apps/{app_id}/integrations/{integration_id}/keys");
    let tasks: Vec<_> = (0..15)
        .map(|i| {
            let req = auth
                .raw(Method::POST, &int_keys)
                .json(&json!({"displayName": format!("c{i}")}));
            tokio::spawn(async move { req.send().await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        10,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::BAD_REQUEST)
    );
    let (_, list) = auth.get(&int_keys).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 10);

    // Keys only on custom integrations.
    let (_, web) = auth
        .post(
            &format!("/apps/{app_id}/integrations"),
            json!({"type": "web", "displayName": "Site", "brandColor": "65758e"}),
        )
        .await;
    let web_id = web["integration"]["id"].as_str().unwrap();
    let (status, body) = auth
        .post(
            &format!("/apps/{app_id}/integrations/{web_id}/keys"),
            json!({"displayName": "x"}),
        )
        .await;
    assert_sun_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(
        body["errors"][0]["title"],
        "API keys are available only for custom integrations"
    );
}

async fn apps_integrations_and_pagination(app: TestApp) {
    let (_, account, first_app, integration_id) = setup(&app).await;
    let auth = account.api(&app);
    let mut ids = vec![first_app.clone()];
    for i in 0..4 {
        let (_, created) = auth
            .post("/apps", json!({"displayName": format!("App {i}")}))
            .await;
        ids.push(created["app"]["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    let (status, page) = auth.get("/apps?page[size]=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let got = |page: &Value| -> Vec<String> {
        page["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(got(&page), ids[..2]);
    assert_eq!(page["meta"]["hasMore"], true);
    assert_eq!(page["meta"]["afterCursor"], ids[1]);
    let next = page["links"]["next"].as_str().unwrap();
    assert!(
        next.ends_with(&format!("/v2/apps?page[after]={}&page[size]=2", ids[1])),
        "{next}"
    );
    assert!(page["links"].get("prev").is_none());
    let (_, page2) = auth
        .get(&format!("/apps?page[after]={}&page[size]=2", ids[1]))
        .await;
    assert_eq!(got(&page2), ids[2..4]);
    assert_eq!(page2["meta"]["hasMore"], true);
    let (_, last) = auth
        .get(&format!("/apps?page[after]={}&page[size]=2", ids[3]))
        .await;
    assert_eq!(got(&last), ids[4..]);
    assert_eq!(last["meta"]["hasMore"], false);
    assert!(last["links"].get("next").is_none());
    // Backwards, and the SDK's JSON form of the same query.
    let (_, back) = auth
        .get(&format!("/apps?page[before]={}&page[size]=2", ids[4]))
        .await;
    assert_eq!(got(&back), ids[2..4]);
    assert_eq!(back["meta"]["hasMore"], true);
    let sdk = format!(
        "/apps?page=%7B%22size%22%3A%202%2C%20%22after%22%3A%20%22{}%22%7D",
        ids[1]
    );
    let (_, same) = auth.get(&sdk).await;
    assert_eq!(got(&same), ids[2..4]);
    for bad in [
        "page[size]=0",
        "page[size]=101",
        "page[size]=ten",
        "page=notjson",
        &format!("page[after]={}&page[before]={}", ids[0], ids[1]),
    ] {
        let (status, body) = auth.get(&format!("/apps?{bad}")).await;
        assert_sun_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }

    // App reads and updates: settings merge, metadata replaces or clears.
    let path = format!("/apps/{first_app}");
    let (_, got_app) = auth.get(&path).await;
    assert_eq!(got_app["app"]["metadata"], json!({"tier": "gold"}));
    assert_eq!(got_app["app"]["settings"]["maskCreditCardNumbers"], true);
    let (status, patched) = auth
        .patch(
            &path,
            json!({"settings": {"useAnimalNames": true}, "metadata": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["app"]["displayName"], "Blue Brand");
    assert_eq!(patched["app"]["settings"]["useAnimalNames"], true);
    assert_eq!(patched["app"]["settings"]["maskCreditCardNumbers"], true);
    assert_eq!(patched["app"]["metadata"], Value::Null);
    for (body, field) in [
        (json!({"displayName": ""}), "displayName"),
        (json!({"displayName": "x".repeat(101)}), "displayName"),
        (json!({"settings": {"bogus": 1}}), "settings"),
        (json!({"settings": {"useAnimalNames": "yes"}}), "settings"),
        (json!({"metadata": [1]}), "metadata"),
        (json!({"metadata": {"nested": {"a": 1}}}), "metadata"),
    ] {
        let (status, err) = auth.patch(&path, body).await;
        assert_sun_error(status, &err, StatusCode::BAD_REQUEST, "bad_request");
        assert!(
            err["errors"][0]["title"].as_str().unwrap().contains(field),
            "{err}"
        );
    }

    // Integrations: the custom one shows its webhook; a channel's secrets are never shown.
    let ints = format!("{path}/integrations");
    let (status, custom) = auth.get(&format!("{ints}/{integration_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let integration = &custom["integration"];
    assert_eq!(integration["type"], "custom");
    assert_eq!(integration["status"], "active");
    assert_eq!(integration["displayName"], "Back office");
    let hooks = integration["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["target"], "https://example.com/hook");
    assert_eq!(hooks[0]["triggers"], json!(["conversation:message"]));
    assert_eq!(hooks[0]["id"].as_str().unwrap().len(), 24);
    let (status, tg) = auth
        .post(
            &ints,
            json!({"type": "telegram", "token": "123:telegram-bot-token"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tg}");
    assert!(tg["integration"].get("token").is_none(), "{tg}");
    assert_absent(
        &app.raw_database().await,
        "123:telegram-bot-token",
        "the database",
    );
    // Only a type's public settings are shown; everything else is sealed, whatever its
    // name or shape (the iOS certificate, nested objects, unknown fields).
    let (status, ios) = auth
        .post(
            &ints,
            json!({"type": "ios", "certificate": "MIIB-ios-cert-bytes", "password": "p12-pass",
                   "production": true, "extra": {"deep": "nested-secret"}, "apnsTopic": "unknown-field"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ios}");
    assert_eq!(ios["integration"]["production"], true, "{ios}");
    let db = app.raw_database().await;
    for secret in [
        "MIIB-ios-cert-bytes",
        "p12-pass",
        "nested-secret",
        "unknown-field",
    ] {
        assert_absent(&ios.to_string(), secret, "the response");
        assert_absent(&db, secret, "the database");
    }
    let (status, _) = auth
        .delete(&format!(
            "{ints}/{}",
            ios["integration"]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, all) = auth.get(&ints).await;
    assert_eq!(all["integrations"].as_array().unwrap().len(), 2);
    let (_, only) = auth
        .get(&format!("{ints}?filter[types]=telegram,web"))
        .await;
    assert_eq!(only["integrations"].as_array().unwrap().len(), 1);
    assert_eq!(only["integrations"][0]["type"], "telegram");
    for (body, field) in [
        (json!({}), "type"),
        (json!({"type": "fax"}), "type"),
        (json!({"type": "custom"}), "webhooks"),
        (json!({"type": "custom", "webhooks": []}), "webhook"),
        (
            json!({"type": "custom", "webhooks": [{"target": "ftp://x", "triggers": ["*"]}]}),
            "target",
        ),
        (
            json!({"type": "custom", "webhooks": [{"target": "https://x.example", "triggers": []}]}),
            "triggers",
        ),
    ] {
        let (status, err) = auth.post(&ints, body.clone()).await;
        assert_sun_error(status, &err, StatusCode::BAD_REQUEST, "bad_request");
        assert!(
            err["errors"][0]["title"].as_str().unwrap().contains(field),
            "{body} → {err}"
        );
    }
    // Malformed and oversized bodies answer in the Sunshine envelope.
    let res = auth
        .raw(Method::POST, "/apps")
        .content_type("application/json")
        .body("{")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.body["errors"][0]["code"], "bad_request");
    let huge = json!({"displayName": "x", "metadata": {"big": "y".repeat(101 * 1024)}});
    let (status, err) = auth.post("/apps", huge).await;
    assert_sun_error(
        status,
        &err,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );

    // Deleting an app deletes its integrations and revokes their keys at once.
    let (_, created) = auth
        .post(
            &format!("{ints}/{integration_id}/keys"),
            json!({"displayName": "k"}),
        )
        .await;
    let doomed = key_of(&created);
    let (status, body) = auth.delete(&path).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, body) = doomed.api(&app).get(&path).await;
    assert_sun_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = auth.get(&path).await;
    assert_sun_error(status, &body, StatusCode::NOT_FOUND, "app_not_found");
}

async fn other_organizations_see_nothing(app: TestApp) {
    let (_, _, app_id, integration_id) = setup(&app).await;
    let (_, stranger_token) = app.org_with("admin").await;
    let stranger = account_key(&app, &stranger_token).await.api(&app);
    let int_path = format!("/apps/{app_id}/integrations/{integration_id}");
    for (method, path, body) in [
        (Method::GET, format!("/apps/{app_id}"), None),
        (
            Method::PATCH,
            format!("/apps/{app_id}"),
            Some(json!({"displayName": "mine"})),
        ),
        (Method::DELETE, format!("/apps/{app_id}"), None),
        (Method::GET, format!("/apps/{app_id}/integrations"), None),
        (Method::GET, int_path.clone(), None),
        (Method::DELETE, int_path.clone(), None),
        (Method::GET, format!("/apps/{app_id}/keys"), None),
        (
            Method::POST,
            format!("/apps/{app_id}/keys"),
            Some(json!({"displayName": "x"})),
        ),
        (Method::GET, format!("{int_path}/keys"), None),
        (
            Method::POST,
            format!("{int_path}/keys"),
            Some(json!({"displayName": "x"})),
        ),
    ] {
        for auth in [stranger.clone(), app.sunshine(&stranger_token)] {
            let (status, got) = auth.send(method.clone(), &path, body.clone()).await;
            assert_sun_error(status, &got, StatusCode::NOT_FOUND, "app_not_found");
        }
    }
    let (_, apps) = stranger.get("/apps").await;
    assert_eq!(apps["apps"], json!([]));
    // A key of one organization is not valid for another's verify calls.
    let (token, account, ..) = setup(&app).await;
    assert_eq!(app.verify(&token, &account.basic()).await["valid"], true);
    let verdict = app.verify(&stranger_token, &account.basic()).await;
    assert_eq!(
        verdict,
        json!({"valid": false, "code": "wrong_organization"})
    );
}

async fn failed_key_logins_are_rate_limited(app: TestApp) {
    let (_, account, app_id, _) = setup(&app).await;
    let wrong = Key {
        id: account.id.clone(),
        secret: "wrong".into(),
    }
    .api(&app);
    let path = format!("/apps/{app_id}");
    let mut limited = None;
    for _ in 0..40 {
        let res = wrong.raw(Method::GET, &path).send().await;
        if res.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(res);
            break;
        }
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    let res = limited.expect("429 after repeated failures");
    assert!(res.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(res.body["errors"][0]["code"], "too_many_requests");
}

/// Failed `/v1/authenticate` checks are failed authentications: audited in the caller's
/// organization (naming the key only when it is one of the organization's), up to the limit
/// per caller; beyond, the verdicts stay truthful but the events are summarized. Another
/// organization's key is `unknown_key`, whatever the secret.
async fn failed_verifications_are_audited_within_the_limit(app: TestApp) {
    let (token, account, ..) = setup(&app).await;
    let wrong = Key {
        id: account.id.clone(),
        secret: "wrong".into(),
    };
    let failures = |events: &Value| {
        events["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["detail"]["via"] == "authenticate")
            .cloned()
            .collect::<Vec<_>>()
    };
    for _ in 0..40 {
        let verdict = app.verify(&token, &wrong.basic()).await;
        assert_eq!(verdict, json!({"valid": false, "code": "bad_secret"}));
    }
    let (_, events) = app
        .get("/v1/audit_events?action=auth.failed&limit=200", &token)
        .await;
    let audited = failures(&events);
    assert_eq!(audited.len(), 30, "the failure limit bounds the events");
    assert_eq!(audited[0]["target_id"], account.id);
    assert_eq!(audited[0]["detail"]["reason"], "bad_secret");
    assert_absent(&format!("{audited:?}"), "wrong", "audit events");
    // A valid key is unaffected by the limit.
    assert_eq!(app.verify(&token, &account.basic()).await["valid"], true);

    // Another organization learns nothing about this key.
    let (stranger_token, ..) = setup(&app).await;
    let verdict = app.verify(&stranger_token, &wrong.basic()).await;
    assert_eq!(verdict, json!({"valid": false, "code": "unknown_key"}));
    let (_, events) = app
        .get("/v1/audit_events?action=auth.failed", &stranger_token)
        .await;
    let audited = failures(&events);
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["target_id"], Value::Null, "not its key");
    assert_eq!(audited[0]["detail"]["reason"], "unknown_key");
}

async fn key_revocation_reaches_every_node_within_a_second(app: TestApp) {
    let (token, account, app_id, _) = setup(&app).await;
    let sunshine = account.api(&app);
    let (_, created) = sunshine
        .post(&format!("/apps/{app_id}/keys"), json!({"displayName": "k"}))
        .await;
    let key = key_of(&created);
    let (b, _stop_b) = app.another_node().await;
    let (c, _stop_c) = app.another_node().await;
    for node in [&app.base, &b, &c] {
        assert_eq!(
            app.verify_at(node, &token, &key.basic()).await["valid"],
            true,
            "{node}"
        );
        assert_eq!(
            app.verify_at(node, &token, &key.jwt("app")).await["valid"],
            true,
            "{node}"
        );
    }
    let (status, _) = sunshine
        .delete(&format!("/apps/{app_id}/keys/{}", key.id))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.verify(&token, &key.basic()).await["code"],
        "unknown_key",
        "at once here"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1000);
    for node in [&b, &c] {
        loop {
            let basic = app.verify_at(node, &token, &key.basic()).await;
            let jwt = app.verify_at(node, &token, &key.jwt("app")).await;
            if basic["valid"] == false && jwt["valid"] == false {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{node} still accepts a deleted key"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    // The feed row is stamped in epoch milliseconds by the database's clock, and pruning
    // keeps recent rows.
    app.latchkey.prune_feed().await.unwrap();
    let rows = app
        .latchkey
        .store()
        .read()
        .await
        .unwrap()
        .revocations_after(0, 1000)
        .await
        .unwrap();
    let row = rows
        .iter()
        .find(|r| r.id == key.id)
        .expect("a recent revocation survives pruning");
    assert_eq!(row.kind, "api_key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (row.at - now).abs() < 60_000,
        "stamp {} vs now {now}",
        row.at
    );
}

/// `GET /v1/account_keys` a page at a time: oldest first, resumed after the previous page's
/// last key (even once it is deleted); bad limits and cursors are 400s. Another organization's
/// account key is a 404 to read or delete.
async fn account_keys_in_pages(app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(account_key(&app, &token).await.id);
    }
    let (status, all) = app.get("/v1/account_keys", &token).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let listed: Vec<&str> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    let mut created = ids.clone();
    created.sort_unstable();
    assert_eq!(sorted, created, "every key, on one default page");
    assert_eq!(all["next_cursor"], Value::Null);

    let (_, first) = app.get("/v1/account_keys?limit=2", &token).await;
    assert_eq!(first["keys"].as_array().unwrap().len(), 2, "{first}");
    assert!(first["keys"][0].get("secret").is_none(), "never a secret");
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    // The page's last key goes: its cursor still marks the place.
    let last = first["keys"][1]["id"].as_str().unwrap();
    let (status, _) = app
        .delete(&format!("/v1/account_keys/{last}"), &token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut seen: Vec<String> = first["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect();
    let mut after = Some(cursor);
    let mut pages = 1;
    while let Some(cursor) = after {
        let (status, page) = app
            .get(&format!("/v1/account_keys?limit=2&after={cursor}"), &token)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        seen.extend(
            page["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_str().unwrap().to_owned()),
        );
        after = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 3, "pages of 2, 2 and 1");
    assert_eq!(
        seen.len(),
        5,
        "each key once, the deleted one from before its delete"
    );
    assert_eq!(&seen[..], &listed[..], "the same order as the whole list");

    for (bad, want, field) in [
        ("limit=0", StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        ("limit=201", StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        ("limit=x", StatusCode::BAD_REQUEST, "limit"),
        ("after=nope", StatusCode::UNPROCESSABLE_ENTITY, "after"),
        (
            "after=12.app_0123456789abcdef01234567",
            StatusCode::UNPROCESSABLE_ENTITY,
            "after",
        ),
        (
            "after=x.act_0123456789abcdef01234567",
            StatusCode::UNPROCESSABLE_ENTITY,
            "after",
        ),
    ] {
        let (status, body) = app.get(&format!("/v1/account_keys?{bad}"), &token).await;
        assert_eq!(status, want, "{bad}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{bad}: {body}"
        );
    }

    // Another organization's account key: not found, to read and to delete.
    let (_, stranger) = app.org_with("admin").await;
    let (status, _) = app
        .get(&format!("/v1/account_keys/{}", ids[0]), &stranger)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .delete(&format!("/v1/account_keys/{}", ids[0]), &stranger)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(&format!("/v1/account_keys/{}", ids[0]), &token)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "still there for its own organization"
    );
    let (_, none) = app.get("/v1/account_keys", &stranger).await;
    assert_eq!(none, json!({"keys": [], "next_cursor": null}));
}

both_engines!(
    account_keys_in_pages,
    seed_001_integration_key,
    jwt_refusals,
    scopes,
    key_limits_sequential_and_concurrent,
    apps_integrations_and_pagination,
    other_organizations_see_nothing,
    failed_key_logins_are_rate_limited,
    failed_verifications_are_audited_within_the_limit,
    key_revocation_reaches_every_node_within_a_second,
);
