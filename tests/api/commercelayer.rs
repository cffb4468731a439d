//! The Commerce Layer surface: the Provisioning API (JSON:API) for organizations, roles and
//! api credentials, and the OAuth2 token endpoint whose RS512 tokens `/v1/authenticate`
//! verifies.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    both_engines,
    helpers::{Api, TestApp, assert_absent, logs},
    one_engine,
};

const JSON_API: &str = "application/vnd.api+json";

/// Seed 003's request body, for `org`.
fn seed_body(org: &str) -> Value {
    json!({
      "data": {
        "type": "api_credentials",
        "attributes": {
          "name": "My app",
          "kind": "sales_channel"
        },
        "relationships": {
          "organization": {
            "data": {
              "type": "organizations",
              "id": org
            }
          }
        }
      }
    })
}

fn credential_body(org: &str, attributes: Value, role: Option<&str>) -> Value {
    let mut body = json!({
        "data": {
            "type": "api_credentials",
            "attributes": attributes,
            "relationships": { "organization": { "data": { "type": "organizations", "id": org } } }
        }
    });
    if let Some(role) = role {
        body["data"]["relationships"]["role"] = json!({ "data": { "type": "roles", "id": role } });
    }
    body
}

/// Asserts a JSON:API error: status, code, and (when given) the source pointer.
fn assert_error(
    status: StatusCode,
    body: &Value,
    want: StatusCode,
    code: &str,
    pointer: Option<&str>,
) {
    assert_eq!(status, want, "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["code"], code, "{body}");
    assert_eq!(error["status"], want.as_u16().to_string(), "{body}");
    assert!(
        error["title"].is_string() && error["detail"].is_string(),
        "{body}"
    );
    if let Some(pointer) = pointer {
        assert_eq!(error["source"]["pointer"], pointer, "{body}");
    }
}

/// The organization's role of `kind` (`admin`, `read_only`).
async fn role_id(cl: &Api, kind: &str) -> String {
    let (status, roles) = cl.get(&format!("/roles?filter[q][kind_eq]={kind}")).await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    roles["data"][0]["id"].as_str().unwrap().to_owned()
}

/// Creates an api credential; (id, client_id, client_secret).
async fn credential(
    cl: &Api,
    org: &str,
    name: &str,
    kind: &str,
    role: Option<&str>,
) -> (String, String, String) {
    let mut attributes = json!({ "name": name, "kind": kind });
    if kind == "webapp" {
        attributes["redirect_uri"] = json!("https://app.example.com/callback");
    }
    let (status, created) = cl
        .post("/api_credentials", credential_body(org, attributes, role))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let a = &created["data"]["attributes"];
    (
        created["data"]["id"].as_str().unwrap().to_owned(),
        a["client_id"].as_str().unwrap().to_owned(),
        a["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// `POST /oauth/token` with a JSON body.
async fn token(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let res = app
        .raw(Method::POST, "/oauth/token")
        .json(&body)
        .send()
        .await;
    if res.status == StatusCode::OK {
        assert_eq!(res.header("cache-control"), Some("no-store"));
    }
    (res.status, res.body)
}

/// The claims of a JWT, unverified (the tests verify signatures separately).
fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn seed_003_creates_a_sales_channel_as_documented(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    // The seed's curl, with only host, organization id and token changed.
    let res = app
        .raw(Method::POST, "/api/api_credentials")
        .header("Accept", JSON_API)
        .header("Authorization", &format!("Bearer {admin}"))
        .header("Content-Type", JSON_API)
        .body(seed_body(&org).to_string())
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert_eq!(res.header("content-type"), Some(JSON_API));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let data = &res.body["data"];
    let id = data["id"].as_str().unwrap();
    assert_eq!(id.len(), 10);
    assert_eq!(data["type"], "api_credentials");
    assert_eq!(
        data["links"]["self"],
        format!("{}/api/api_credentials/{id}", app.base)
    );
    let a = &data["attributes"];
    assert_eq!(a["name"], "My app");
    assert_eq!(a["kind"], "sales_channel");
    assert_eq!(
        a["confidential"], false,
        "sales channels are public clients"
    );
    assert_eq!(a["redirect_uri"], Value::Null);
    assert_eq!(a["scopes"], "market:all");
    assert_eq!(a["expires_in"], 14400);
    assert_eq!(a["mode"], "test");
    assert_eq!(a["custom"], false);
    assert_eq!(a["metadata"], json!({}));
    assert_eq!(a["reference"], Value::Null);
    let secret = a["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43);
    assert!(a["client_id"].as_str().unwrap().len() >= 43);
    for stamp in ["created_at", "updated_at"] {
        assert!(a[stamp].as_str().unwrap().ends_with('Z'), "{a}");
    }
    for rel in ["organization", "role"] {
        let links = &data["relationships"][rel]["links"];
        assert_eq!(
            links["self"],
            format!("{}/api/api_credentials/{id}/relationships/{rel}", app.base)
        );
        assert_eq!(
            links["related"],
            format!("{}/api/api_credentials/{id}/{rel}", app.base)
        );
    }

    // The secret is shown once: not on reads, not at rest, not in logs or audit events.
    let cl = app.provisioning(&admin);
    let (status, got) = cl.get(&format!("/api_credentials/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert!(
        got["data"]["attributes"].get("client_secret").is_none(),
        "{got}"
    );
    assert_eq!(got["data"]["attributes"]["client_id"], a["client_id"]);
    let (_, list) = cl.get("/api_credentials").await;
    assert_absent(&list.to_string(), &secret, "list");
    let (_, events) = app.get("/v1/audit_events", &admin).await;
    assert!(
        events.to_string().contains("api_credential.create"),
        "{events}"
    );
    assert_absent(&events.to_string(), &secret, "audit events");
    assert_absent(&app.raw_database().await, &secret, "database");
    assert_absent(&logs(), &secret, "logs");

    // The related organization.
    let (status, owner) = cl.get(&format!("/api_credentials/{id}/organization")).await;
    assert_eq!(status, StatusCode::OK, "{owner}");
    assert_eq!(owner["data"]["id"], org.as_str());
    assert_eq!(owner["data"]["type"], "organizations");
    let (status, role) = cl.get(&format!("/api_credentials/{id}/role")).await;
    assert_eq!((status, &role["data"]), (StatusCode::OK, &Value::Null));
}

async fn media_types_are_json_api(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let bearer = format!("Bearer {admin}");
    let body = seed_body(&org).to_string();
    // Accept must allow JSON:API.
    let res = app
        .raw(Method::GET, "/api/api_credentials")
        .header("Authorization", &bearer)
        .accept("application/json")
        .send()
        .await;
    assert_error(
        res.status,
        &res.body,
        StatusCode::NOT_ACCEPTABLE,
        "NOT_ACCEPTABLE",
        None,
    );
    assert_eq!(res.header("content-type"), Some(JSON_API));
    for accept in [
        "*/*",
        "application/*",
        "text/html, application/vnd.api+json",
    ] {
        let res = app
            .raw(Method::GET, "/api/api_credentials")
            .header("Authorization", &bearer)
            .accept(accept)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{accept}: {}", res.text);
    }
    // A body must be labelled JSON:API.
    for content_type in [Some("application/json"), Some("text/plain"), None] {
        let mut req = app
            .raw(Method::POST, "/api/api_credentials")
            .header("Authorization", &bearer)
            .accept(JSON_API)
            .body(body.clone());
        if let Some(ct) = content_type {
            req = req.content_type(ct);
        }
        let res = req.send().await;
        assert_error(
            res.status,
            &res.body,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            None,
        );
    }
    // Bodyless requests with any Content-Type are fine (the SDK sends one on every request).
    let res = app
        .raw(Method::GET, "/api/roles")
        .header("Authorization", &bearer)
        .content_type("application/json")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    // Broken documents.
    let cl = app.provisioning(&admin);
    let res = cl
        .raw(Method::POST, "/api_credentials")
        .body("{")
        .send()
        .await;
    assert_error(
        res.status,
        &res.body,
        StatusCode::BAD_REQUEST,
        "INVALID_DATA_FORMAT",
        None,
    );
    let (status, e) = cl.post("/api_credentials", json!({ "data": [] })).await;
    assert_error(
        status,
        &e,
        StatusCode::BAD_REQUEST,
        "INVALID_DATA_FORMAT",
        Some("/data"),
    );
    let (status, e) = cl
        .post(
            "/api_credentials",
            json!({ "data": { "type": "roles", "attributes": {} } }),
        )
        .await;
    assert_error(
        status,
        &e,
        StatusCode::CONFLICT,
        "INVALID_RESOURCE",
        Some("/data/type"),
    );
    // Out-of-scope resources and unknown paths answer JSON:API 404s.
    for path in [
        "/memberships",
        "/identity_providers",
        "/application_memberships",
        "/nope",
    ] {
        let (status, e) = cl.get(path).await;
        assert_error(status, &e, StatusCode::NOT_FOUND, "RECORD_NOT_FOUND", None);
    }
    // No token, a wrong token.
    let res = app
        .raw(Method::GET, "/api/api_credentials")
        .accept(JSON_API)
        .send()
        .await;
    assert_error(
        res.status,
        &res.body,
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        None,
    );
    let (status, e) = app.provisioning("lk_nope").get("/api_credentials").await;
    assert_error(status, &e, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", None);
}

async fn create_validates_every_attribute(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let cl = app.provisioning(&admin);
    let admin_role = role_id(&cl, "admin").await;
    let bad = |attributes: Value, role: Option<&str>| credential_body(&org, attributes, role);
    let cases: Vec<(Value, StatusCode, &str, Option<&str>)> = vec![
        (
            bad(json!({ "kind": "sales_channel" }), None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/name"),
        ),
        (
            bad(json!({ "name": " ", "kind": "sales_channel" }), None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/name"),
        ),
        (
            bad(json!({ "name": 7, "kind": "sales_channel" }), None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/name"),
        ),
        (
            bad(json!({ "name": "x" }), None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/kind"),
        ),
        (
            bad(json!({ "name": "x", "kind": "robot" }), None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/kind"),
        ),
        (
            bad(json!({ "name": "x", "kind": "orders" }), None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/kind"),
        ),
        (
            bad(json!({ "name": "x", "kind": "webapp" }), None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/redirect_uri"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "webapp", "redirect_uri": "http://app.example.com/cb" }),
                None,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/redirect_uri"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "webapp", "redirect_uri": "https://app.example.com/cb#x" }),
                None,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/redirect_uri"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "webapp", "redirect_uri": "/cb" }),
                None,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/redirect_uri"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "sales_channel", "expires_in": 7199 }),
                None,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/expires_in"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "sales_channel", "expires_in": 31_536_001 }),
                None,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/expires_in"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "sales_channel", "expires_in": "7200" }),
                None,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/expires_in"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "sales_channel", "mode": "prod" }),
                None,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/mode"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "sales_channel", "metadata": [1] }),
                None,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/metadata"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "sales_channel", "metadata": { "k": "v".repeat(5000) } }),
                None,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/metadata"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "sales_channel", "reference": "r".repeat(256) }),
                None,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/attributes/reference"),
        ),
        (
            bad(json!({ "name": "x", "kind": "integration" }), None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/relationships/role"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "sales_channel" }),
                Some(&admin_role),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/relationships/role"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "webapp", "redirect_uri": "https://a.example/cb" }),
                Some(&admin_role),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/relationships/role"),
        ),
        (
            bad(
                json!({ "name": "x", "kind": "integration" }),
                Some("nOtArOlE00"),
            ),
            StatusCode::NOT_FOUND,
            "RECORD_NOT_FOUND",
            Some("/data/relationships/role"),
        ),
        // Read-only and unknown attributes are refused, not ignored.
        (
            bad(
                json!({ "name": "x", "kind": "sales_channel", "client_id": "mine" }),
                None,
            ),
            StatusCode::BAD_REQUEST,
            "PARAM_NOT_ALLOWED",
            None,
        ),
        (
            bad(
                json!({ "name": "x", "kind": "sales_channel", "scopes": "market:all" }),
                None,
            ),
            StatusCode::BAD_REQUEST,
            "PARAM_NOT_ALLOWED",
            None,
        ),
        (
            bad(
                json!({ "name": "x", "kind": "sales_channel", "colour": "red" }),
                None,
            ),
            StatusCode::BAD_REQUEST,
            "PARAM_NOT_ALLOWED",
            None,
        ),
        (
            json!({ "data": { "type": "api_credentials", "attributes": { "name": "x", "kind": "sales_channel" } } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some("/data/relationships/organization"),
        ),
    ];
    for (body, status, code, pointer) in cases {
        let (got, e) = cl.post("/api_credentials", body.clone()).await;
        assert_error(got, &e, status, code, pointer);
    }
    // Another organization is not found.
    let (other, _) = app.org_with("admin").await;
    let (status, e) = cl.post("/api_credentials", seed_body(&other)).await;
    assert_error(
        status,
        &e,
        StatusCode::NOT_FOUND,
        "RECORD_NOT_FOUND",
        Some("/data/relationships/organization"),
    );
    // Nothing of the above was stored.
    let (_, list) = cl.get("/api_credentials").await;
    assert_eq!(list["meta"]["record_count"], 0, "{list}");

    // What is accepted: loopback http for a webapp, a hosted-app fork, bounds, mode, metadata.
    let (status, made) = cl
        .post("/api_credentials", bad(json!({ "name": "Dev", "kind": "webapp", "redirect_uri": "http://127.0.0.1:3000/cb", "expires_in": 31_536_000, "mode": "live", "reference": "ref-1", "reference_origin": "crm", "metadata": { "team": "web" } }), None))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let a = &made["data"]["attributes"];
    assert_eq!(
        (
            a["confidential"].clone(),
            a["expires_in"].clone(),
            a["mode"].clone()
        ),
        (json!(true), json!(31_536_000), json!("live"))
    );
    assert_eq!(a["metadata"], json!({ "team": "web" }));
    let (status, made) = cl
        .post(
            "/api_credentials",
            bad(
                json!({ "name": "Orders", "kind": "orders", "custom": true }),
                None,
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["data"]["attributes"]["expires_in"], 7200);
    let (status, made) = cl
        .post(
            "/api_credentials",
            bad(
                json!({ "name": "ERP", "kind": "integration" }),
                Some(&admin_role),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["data"]["attributes"]["expires_in"], 7200);
}

async fn updates_keep_immutable_fields(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let cl = app.provisioning(&admin);
    let admin_role = role_id(&cl, "admin").await;
    let read_only = role_id(&cl, "read_only").await;
    let (id, _, _) = credential(&cl, &org, "ERP", "integration", Some(&admin_role)).await;
    let patch = |attributes: Value| json!({ "data": { "type": "api_credentials", "id": id, "attributes": attributes } });
    let path = format!("/api_credentials/{id}");

    let (status, updated) = cl
        .patch(&path, json!({ "data": { "type": "api_credentials", "id": id, "attributes": { "name": "ERP 2", "expires_in": 9000, "metadata": { "a": 1 } }, "relationships": { "role": { "data": { "type": "roles", "id": read_only } } } } }))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let a = &updated["data"]["attributes"];
    assert_eq!(
        (
            a["name"].clone(),
            a["expires_in"].clone(),
            a["metadata"].clone()
        ),
        (json!("ERP 2"), json!(9000), json!({ "a": 1 }))
    );
    assert_ne!(a["updated_at"], a["created_at"]);
    let (_, role) = cl.get(&format!("{path}/role")).await;
    assert_eq!(role["data"]["id"], read_only.as_str(), "{role}");
    assert_eq!(role["data"]["attributes"]["kind"], "read_only");
    // The history records the role change like any other.
    let (_, history) = cl
        .get(&format!("{path}/versions?filter[q][event_eq]=update"))
        .await;
    assert_eq!(
        history["data"][0]["attributes"]["changes"]["role_id"],
        json!([admin_role, read_only]),
        "{history}"
    );

    for attribute in ["kind", "mode", "custom", "client_id", "confidential"] {
        let (status, e) = cl.patch(&path, patch(json!({ attribute: "x" }))).await;
        assert_error(
            status,
            &e,
            StatusCode::BAD_REQUEST,
            "PARAM_NOT_ALLOWED",
            None,
        );
    }
    let (status, e) = cl
        .patch(&path, json!({ "data": { "type": "api_credentials", "id": id, "relationships": { "organization": { "data": { "type": "organizations", "id": org } } } } }))
        .await;
    assert_error(
        status,
        &e,
        StatusCode::BAD_REQUEST,
        "PARAM_NOT_ALLOWED",
        None,
    );
    let (status, e) = cl
        .patch(&path, json!({ "data": { "type": "api_credentials", "id": "someoneels", "attributes": { "name": "y" } } }))
        .await;
    assert_error(
        status,
        &e,
        StatusCode::BAD_REQUEST,
        "KEY_NOT_INCLUDED_IN_URL",
        None,
    );
    // An update names the resource it changes (schemathesis found this one accepted).
    let (status, e) = cl
        .patch(
            &path,
            json!({ "data": { "type": "api_credentials", "attributes": { "name": "y" } } }),
        )
        .await;
    assert_error(status, &e, StatusCode::BAD_REQUEST, "PARAM_MISSING", None);
    assert_eq!(e["errors"][0]["source"]["pointer"], "/data/id");
    let (status, e) = cl
        .patch(&path, json!({ "data": { "type": "api_credentials", "id": id, "relationships": { "role": { "data": null } } } }))
        .await;
    assert_error(
        status,
        &e,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
        Some("/data/relationships/role"),
    );
    let (status, e) = cl.patch(&path, patch(json!({ "expires_in": 100 }))).await;
    assert_error(
        status,
        &e,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
        Some("/data/attributes/expires_in"),
    );
    let (status, e) = cl.patch(&path, patch(json!({ "name": null }))).await;
    assert_error(
        status,
        &e,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
        Some("/data/attributes/name"),
    );
    // A sales channel takes no role; a webapp keeps its redirect URI.
    let (sales, _, _) = credential(&cl, &org, "Shop", "sales_channel", None).await;
    let (status, e) = cl
        .patch(&format!("/api_credentials/{sales}"), json!({ "data": { "type": "api_credentials", "id": sales, "relationships": { "role": { "data": { "type": "roles", "id": admin_role } } } } }))
        .await;
    assert_error(
        status,
        &e,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
        Some("/data/relationships/role"),
    );
    let (web, _, _) = credential(&cl, &org, "Web", "webapp", None).await;
    let (status, e) = cl
        .patch(&format!("/api_credentials/{web}"), json!({ "data": { "type": "api_credentials", "id": web, "attributes": { "redirect_uri": null } } }))
        .await;
    assert_error(
        status,
        &e,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
        Some("/data/attributes/redirect_uri"),
    );
    // Nothing changed by the refusals.
    let (_, got) = cl.get(&path).await;
    assert_eq!(got["data"]["attributes"]["name"], "ERP 2");
    assert_eq!(got["data"]["attributes"]["kind"], "integration");
    // Delete: 204, then 404.
    let (status, _) = cl.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, e) = cl.delete(&path).await;
    assert_error(status, &e, StatusCode::NOT_FOUND, "RECORD_NOT_FOUND", None);
    let (status, e) = cl.get(&path).await;
    assert_error(status, &e, StatusCode::NOT_FOUND, "RECORD_NOT_FOUND", None);
}

async fn roles_and_who_may_do_what(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let stored = format!("SELECT COUNT(*) FROM cl_roles WHERE organization_id = '{org}'");
    assert_eq!(
        app.query_i64(&stored).await,
        2,
        "the base roles come with the organization"
    );
    let cl = app.provisioning(&admin);
    let (status, roles) = cl.get("/roles?sort=created_at").await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    let mut kinds: Vec<&str> = roles["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["attributes"]["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["admin", "read_only"], "{roles}");
    let role_body = |name: &str| json!({ "data": { "type": "roles", "attributes": { "name": name }, "relationships": { "organization": { "data": { "type": "organizations", "id": org } } } } });
    let (status, custom) = cl.post("/roles", role_body("Support")).await;
    assert_eq!(status, StatusCode::CREATED, "{custom}");
    assert_eq!(custom["data"]["attributes"]["kind"], "custom");
    let custom_id = custom["data"]["id"].as_str().unwrap().to_owned();
    let (status, renamed) = cl
        .patch(&format!("/roles/{custom_id}"), json!({ "data": { "type": "roles", "id": custom_id, "attributes": { "name": "Support team" } } }))
        .await;
    assert_eq!(
        (status, renamed["data"]["attributes"]["name"].clone()),
        (StatusCode::OK, json!("Support team"))
    );
    let (status, e) = cl.patch(&format!("/roles/{custom_id}"), json!({ "data": { "type": "roles", "id": custom_id, "attributes": { "kind": "admin" } } })).await;
    assert_error(
        status,
        &e,
        StatusCode::BAD_REQUEST,
        "PARAM_NOT_ALLOWED",
        None,
    );
    let (status, e) = cl.delete(&format!("/roles/{custom_id}")).await;
    assert_error(
        status,
        &e,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        None,
    );
    let admin_role = role_id(&cl, "admin").await;

    // Editors manage api credentials but not roles; viewers read; team-bound tokens nothing.
    let editor = app.provisioning(&app.token(&org, "editor", None).await);
    let viewer = app.provisioning(&app.token(&org, "viewer", None).await);
    let team = app.team(&admin, "ops").await;
    let bound = app.provisioning(&app.token(&org, "admin", Some(team)).await);
    let (id, _, _) = credential(&editor, &org, "By editor", "integration", Some(&admin_role)).await;
    let (status, e) = editor.post("/roles", role_body("Nope")).await;
    assert_error(status, &e, StatusCode::FORBIDDEN, "FORBIDDEN", None);
    let (status, e) = viewer.post("/api_credentials", seed_body(&org)).await;
    assert_error(status, &e, StatusCode::FORBIDDEN, "FORBIDDEN", None);
    let (status, e) = viewer.delete(&format!("/api_credentials/{id}")).await;
    assert_error(status, &e, StatusCode::FORBIDDEN, "FORBIDDEN", None);
    let (status, list) = viewer.get("/api_credentials").await;
    assert_eq!(
        (status, list["meta"]["record_count"].clone()),
        (StatusCode::OK, json!(1))
    );
    for path in ["/api_credentials", "/roles", "/organizations"] {
        let (status, e) = bound.get(path).await;
        assert_error(status, &e, StatusCode::FORBIDDEN, "FORBIDDEN", None);
    }
    let (status, e) = bound.post("/api_credentials", seed_body(&org)).await;
    assert_error(status, &e, StatusCode::FORBIDDEN, "FORBIDDEN", None);

    // Another organization's ids are not found; its lists do not show ours.
    let (other_org, other_admin) = app.org_with("admin").await;
    let other = app.provisioning(&other_admin);
    for path in [
        format!("/api_credentials/{id}"),
        format!("/roles/{custom_id}"),
        format!("/organizations/{org}"),
        format!("/api_credentials/{id}/organization"),
    ] {
        let (status, e) = other.get(&path).await;
        assert_error(status, &e, StatusCode::NOT_FOUND, "RECORD_NOT_FOUND", None);
    }
    let (status, e) = other
        .patch(&format!("/api_credentials/{id}"), json!({ "data": { "type": "api_credentials", "id": id, "attributes": { "name": "mine" } } }))
        .await;
    assert_error(status, &e, StatusCode::NOT_FOUND, "RECORD_NOT_FOUND", None);
    let (status, e) = other.delete(&format!("/api_credentials/{id}")).await;
    assert_error(status, &e, StatusCode::NOT_FOUND, "RECORD_NOT_FOUND", None);
    let (status, e) = other
        .post(
            "/api_credentials",
            credential_body(
                &other_org,
                json!({ "name": "x", "kind": "integration" }),
                Some(&admin_role),
            ),
        )
        .await;
    assert_error(
        status,
        &e,
        StatusCode::NOT_FOUND,
        "RECORD_NOT_FOUND",
        Some("/data/relationships/role"),
    );
    let (_, theirs) = other.get("/api_credentials").await;
    assert_eq!(theirs["meta"]["record_count"], 0);

    // Organizations: an organization token sees its own; a server admin sees all.
    let (status, own) = cl.get("/organizations").await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["meta"]["record_count"], 1);
    assert_eq!(own["data"][0]["id"], org.as_str());
    let a = &own["data"][0]["attributes"];
    assert!(a["slug"].as_str().unwrap().starts_with("org-"), "{a}");
    assert!(
        a["domain"]
            .as_str()
            .unwrap()
            .starts_with(a["slug"].as_str().unwrap()),
        "{a}"
    );
    let server = app.provisioning(&app.admin);
    let (status, all) = server.get("/organizations?page[size]=25").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert!(all["meta"]["record_count"].as_i64().unwrap() >= 2);
    let (status, e) = server.get("/api_credentials").await;
    assert_error(status, &e, StatusCode::FORBIDDEN, "FORBIDDEN", None);
    // Related lists.
    let (_, by_role) = cl
        .get(&format!("/roles/{admin_role}/api_credentials"))
        .await;
    assert_eq!(by_role["meta"]["record_count"], 1, "{by_role}");
    let (_, by_org) = cl
        .get(&format!("/organizations/{org}/api_credentials"))
        .await;
    assert_eq!(by_org["meta"]["record_count"], 1, "{by_org}");
    let (_, org_roles) = cl.get(&format!("/organizations/{org}/roles")).await;
    assert_eq!(org_roles["meta"]["record_count"], 3, "{org_roles}");
}

async fn lists_page_filter_sort_and_include(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let cl = app.provisioning(&admin);
    let admin_role = role_id(&cl, "admin").await;
    for i in 0..8 {
        credential(&cl, &org, &format!("My app {i}"), "sales_channel", None).await;
    }
    for i in 0..4 {
        credential(
            &cl,
            &org,
            &format!("Backend {i}"),
            "integration",
            Some(&admin_role),
        )
        .await;
    }
    let (status, page) = cl.get("/api_credentials").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 10);
    assert_eq!(page["meta"], json!({ "record_count": 12, "page_count": 2 }));
    assert!(
        page["links"]["next"]
            .as_str()
            .unwrap()
            .contains("page[number]=2"),
        "{page}"
    );
    assert!(page["links"].get("prev").is_none());
    let (_, second) = cl.get("/api_credentials?page[number]=2").await;
    assert_eq!(second["data"].as_array().unwrap().len(), 2);
    assert!(second["links"].get("next").is_none() && second["links"]["prev"].is_string());
    // The SDK's own query string: percent-encoded, with include, fields, sort, page, filters.
    let sdk = "/api_credentials?include=organization%2Crole&fields%5Bapi_credentials%5D=name%2Ckind&sort=-created_at&page%5Bnumber%5D=1&page%5Bsize%5D=25&filter%5Bq%5D%5Bkind_eq%5D=integration&filter%5Bq%5D%5Bname_start%5D=Backend+";
    let (status, list) = cl.get(sdk).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 4, "{list}");
    assert_eq!(data[0]["attributes"]["name"], "Backend 3", "newest first");
    assert_eq!(
        data[0]["attributes"].as_object().unwrap().len(),
        2,
        "sparse fieldset: {list}"
    );
    assert_eq!(
        data[0]["relationships"]["role"]["data"],
        json!({ "type": "roles", "id": admin_role })
    );
    assert_eq!(
        data[0]["relationships"]["organization"]["data"],
        json!({ "type": "organizations", "id": org })
    );
    let included = list["included"].as_array().unwrap();
    let kinds: Vec<&str> = included
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["organizations", "roles"], "{list}");
    // Filters on the other predicates.
    for (query, count) in [
        ("filter[q][name_cont]=app", 8),
        ("filter[q][name_or_kind_cont]=integ", 4),
        ("filter[q][kind_in]=integration,webapp", 4),
        ("filter[q][kind_not_eq]=integration", 8),
        ("filter[q][confidential_true]=1", 4),
        ("filter[q][role_id_null]=true", 8),
        ("filter[q][expires_in_gt]=7200", 8),
        ("filter[q][created_at_gt]=2000-01-01", 12),
        (&format!("filter[q][role_id_eq]={admin_role}"), 4),
    ] {
        let (status, list) = cl.get(&format!("/api_credentials?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {list}");
        assert_eq!(list["meta"]["record_count"], count, "{query}");
    }
    // What a list cannot do is a 400, never silently ignored.
    for (query, code) in [
        ("page[size]=26", "INVALID_PAGE_VALUE"),
        ("page[number]=0", "INVALID_PAGE_VALUE"),
        ("sort=name", "INVALID_SORT_CRITERIA"),
        ("filter[q][secret_eq]=x", "FILTER_NOT_ALLOWED"),
        ("filter[q][name]=x", "INVALID_FILTERS_SYNTAX"),
        ("filter[q][expires_in_gt]=soon", "INVALID_FILTER_VALUE"),
        ("fields[api_credentials]=colour", "INVALID_FIELD"),
        ("include=memberships", "INVALID_INCLUDE"),
        ("limit=5", "PARAM_NOT_ALLOWED"),
    ] {
        let (status, e) = cl.get(&format!("/api_credentials?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {e}");
        assert_eq!(e["errors"][0]["code"], code, "{query}: {e}");
        assert!(e["errors"][0]["source"]["parameter"].is_string(), "{e}");
    }
    let (status, e) = cl.get("/api_credentials/x?sort=name").await;
    assert_error(
        status,
        &e,
        StatusCode::BAD_REQUEST,
        "PARAM_NOT_ALLOWED",
        None,
    );
}

async fn client_credentials_tokens_verify(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let cl = app.provisioning(&admin);
    let admin_role = role_id(&cl, "admin").await;
    let (id, client_id, secret) =
        credential(&cl, &org, "ERP", "integration", Some(&admin_role)).await;
    let (status, issued) = token(&app, json!({ "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret })).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["token_type"], "bearer");
    assert_eq!(issued["expires_in"], 7200);
    assert_eq!(issued["scope"], "market:all");
    assert!(issued["created_at"].is_i64());
    let access = issued["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS512);
    let c = claims(access);
    assert_eq!(
        c["application"],
        json!({ "id": id, "kind": "integration", "public": false, "client_id": client_id, "confidential": true })
    );
    assert_eq!(c["organization"]["id"], org.as_str());
    assert_eq!(
        (c["scope"].clone(), c["test"].clone()),
        (json!("market:all"), json!(true))
    );
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        7200
    );
    assert_eq!(c["iss"], app.base.as_str());
    assert!(c["rand"].as_f64().unwrap() < 1.0);
    // The signature verifies with the key the server publishes (no query parameter).
    let (status, jwks) = app.get("/.well-known/jwks.json", "").await;
    assert_eq!(status, StatusCode::OK, "{jwks}");
    let kid = header.kid.unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap();
    assert_eq!(
        (jwk["alg"].clone(), jwk["use"].clone()),
        (json!("RS512"), json!("sig"))
    );
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS512);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(access, &key, &validation).unwrap();
    // /v1/authenticate knows it.
    let verdict = app.verify(&admin, access).await;
    assert_eq!(verdict["valid"], true, "{verdict}");
    let p = &verdict["principal"];
    assert_eq!(p["type"], "api_credential_token");
    assert_eq!(
        (
            p["api_credential_id"].clone(),
            p["role_kind"].clone(),
            p["role_id"].clone()
        ),
        (json!(id), json!("admin"), json!(admin_role))
    );
    assert_eq!(
        (p["scope"].clone(), p["test"].clone()),
        (json!("market:all"), json!("true"))
    );
    let (_, other_admin) = app.org_with("admin").await;
    assert_eq!(
        app.verify(&other_admin, access).await["code"],
        "wrong_organization"
    );

    // A form body with HTTP Basic, as generic OAuth clients send it; a narrower scope.
    let res = app
        .raw(Method::POST, "/oauth/token")
        .header(
            "Authorization",
            &format!("Basic {}", base64_of(&format!("{client_id}:{secret}"))),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "market:code:europe stock_location:id:xYz"),
        ])
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(
        res.body["scope"],
        "market:code:europe stock_location:id:xYz"
    );
    // A sales channel by client id alone is a public client; with its secret, a confidential one.
    let (_, shop_id, shop_secret) = credential(&cl, &org, "Shop", "sales_channel", None).await;
    let (status, public) = token(&app, json!({ "grant_type": "client_credentials", "client_id": shop_id, "scope": "market:id:aBc" })).await;
    assert_eq!(status, StatusCode::OK, "{public}");
    let c = claims(public["access_token"].as_str().unwrap());
    assert_eq!(
        (
            c["application"]["public"].clone(),
            c["application"]["confidential"].clone()
        ),
        (json!(true), json!(false))
    );
    assert_eq!(public["expires_in"], 14400);
    let (status, _) = token(&app, json!({ "grant_type": "client_credentials", "client_id": shop_id, "client_secret": shop_secret })).await;
    assert_eq!(status, StatusCode::OK);

    // Refusals, in Commerce Layer's envelope with RFC 6749's fields.
    let refusals = [
        (
            json!({ "grant_type": "client_credentials", "client_id": client_id, "client_secret": "wrong" }),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        // After the right secret was accepted (and is compared from memory): near misses.
        (
            json!({ "grant_type": "client_credentials", "client_id": client_id, "client_secret": &secret[..secret.len() - 1] }),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            json!({ "grant_type": "client_credentials", "client_id": client_id, "client_secret": format!("{secret}x") }),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            json!({ "grant_type": "client_credentials", "client_id": client_id }),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            json!({ "grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x" }),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            json!({ "grant_type": "client_credentials" }),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            json!({ "grant_type": "password", "client_id": shop_id, "username": "u", "password": "p" }),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            json!({ "client_id": shop_id }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "grant_type": "client_credentials", "client_id": shop_id, "scope": "market:1234" }),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            json!({ "grant_type": "client_credentials", "client_id": shop_id, "scope": "stock_location:id:x" }),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            json!({ "grant_type": "client_credentials", "client_id": shop_id, "scope": "provisioning-api" }),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            json!({ "grant_type": "client_credentials", "client_id": shop_id, "scope": 5 }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (body, status, error) in refusals {
        let (got, e) = token(&app, body.clone()).await;
        assert_eq!(got, status, "{body}: {e}");
        assert_eq!(
            (e["error"].clone(), e["errors"][0]["title"].clone()),
            (json!(error), json!(error)),
            "{body}: {e}"
        );
        assert_eq!(e["errors"][0]["status"], status.as_u16(), "{e}");
        assert!(
            e["error_description"].is_string() && e["errors"][0]["code"].is_string(),
            "{e}"
        );
    }
    // The right secret still passes after the misses.
    let (status, _) = token(&app, json!({ "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret })).await;
    assert_eq!(status, StatusCode::OK);

    let res = app
        .raw(Method::POST, "/oauth/token")
        .header(
            "Authorization",
            &format!("Basic {}", base64_of(&format!("{client_id}:nope"))),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(
        res.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic")),
        "RFC 6749 §5.2"
    );
    // Both authentication methods at once; an unknown media type.
    let res = app
        .raw(Method::POST, "/oauth/token")
        .header(
            "Authorization",
            &format!("Basic {}", base64_of(&format!("{client_id}:{secret}"))),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
        ])
        .send()
        .await;
    assert_eq!(
        (res.status, res.body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_request"))
    );
    let res = app
        .raw(Method::POST, "/oauth/token")
        .content_type("text/plain")
        .body("grant_type=client_credentials")
        .send()
        .await;
    assert_eq!(
        (res.status, res.body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_request"))
    );
    // Bodies that break the parameter rules, JSON and form alike: each is named.
    let too_many = (0..33)
        .map(|i| format!("p{i}=x"))
        .collect::<Vec<_>>()
        .join("&");
    let too_many_json = format!(
        "{{{}}}",
        (0..33)
            .map(|i| format!("\"p{i}\":\"x\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let too_many_with_nulls = format!(
        "{{\"grant_type\":\"client_credentials\",{}}}",
        (0..32)
            .map(|i| format!("\"p{i}\":null"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let bodies = [
        (
            "application/json",
            r#"{"grant_type":"client_credentials","scope":5}"#.to_owned(),
            "scope must be a string",
        ),
        (
            "application/json",
            r#"{"grant_type":"client_credentials","grant_type":"refresh_token"}"#.to_owned(),
            "grant_type is repeated",
        ),
        (
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials&client_id=a&client_id=b".to_owned(),
            "client_id is repeated",
        ),
        (
            "application/x-www-form-urlencoded",
            too_many,
            "Too many parameters",
        ),
        ("application/json", too_many_json, "Too many parameters"),
        (
            "application/json",
            too_many_with_nulls,
            "Too many parameters",
        ),
        (
            "application/json",
            r#"["grant_type"]"#.to_owned(),
            "The body must be a JSON object",
        ),
        (
            "application/json",
            r#"{"grant_type":"client_credentials"} x"#.to_owned(),
            "The body must be a JSON object",
        ),
        (
            "application/json",
            r#"{"grant_type":"client_credentials""#.to_owned(),
            "The body must be a JSON object",
        ),
    ];
    for (media_type, body, message) in bodies {
        let res = app
            .raw(Method::POST, "/oauth/token")
            .content_type(media_type)
            .body(body.clone())
            .send()
            .await;
        assert_eq!(
            (
                res.status,
                res.body["error"].clone(),
                res.body["error_description"].clone()
            ),
            (
                StatusCode::BAD_REQUEST,
                json!("invalid_request"),
                json!(message)
            ),
            "{body}"
        );
    }
    // A null is a parameter not sent.
    let res = app
        .raw(Method::POST, "/oauth/token")
        .content_type("application/json")
        .body(
            json!({ "grant_type": "client_credentials", "client_id": shop_id, "scope": null })
                .to_string(),
        )
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    // Also labelled JSON:API, as the Provisioning docs send it.
    let res = app
        .raw(Method::POST, "/oauth/token")
        .content_type(JSON_API)
        .body(json!({ "grant_type": "client_credentials", "client_id": shop_id }).to_string())
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_absent(&logs(), &secret, "logs");
    // RFC 8414 metadata.
    let (status, meta) = app.get("/.well-known/oauth-authorization-server", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(meta["token_endpoint"], format!("{}/oauth/token", app.base));
    assert_eq!(
        meta["jwks_uri"],
        format!("{}/.well-known/jwks.json", app.base)
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn revocation_reaches_every_node(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let cl = app.provisioning(&admin);
    let admin_role = role_id(&cl, "admin").await;
    let read_only = role_id(&cl, "read_only").await;
    let (id, client_id, secret) =
        credential(&cl, &org, "ERP", "integration", Some(&admin_role)).await;
    let (_, shop_id, shop_secret) = credential(&cl, &org, "Shop", "sales_channel", None).await;
    let get_token = async |client: &str, secret: Option<&str>| {
        let mut body = json!({ "grant_type": "client_credentials", "client_id": client });
        if let Some(s) = secret {
            body["client_secret"] = json!(s);
        }
        let (status, t) = token(&app, body).await;
        assert_eq!(status, StatusCode::OK, "{t}");
        t["access_token"].as_str().unwrap().to_owned()
    };
    let (b, _stop_b) = app.another_node().await;
    let first = get_token(&client_id, Some(&secret)).await;
    let second = get_token(&client_id, Some(&secret)).await;
    for node in [&app.base, &b] {
        assert_eq!(app.verify_at(node, &admin, &first).await["valid"], true);
    }
    let within_a_second = async |presented: &str, what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1000);
        loop {
            let verdict = app.verify_at(&b, &admin, presented).await;
            if verdict["valid"] == false {
                assert_eq!(verdict["code"], "revoked", "{verdict}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the other node still accepts {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };

    // Revoke needs the client's id and secret; another client cannot revoke it.
    let revoke = async |body: Value| {
        let res = app
            .raw(Method::POST, "/oauth/revoke")
            .json(&body)
            .send()
            .await;
        (res.status, res.body)
    };
    let (status, e) = revoke(json!({ "token": first })).await;
    assert_eq!(
        (status, e["errors"][0]["title"].clone()),
        (StatusCode::FORBIDDEN, json!("unauthorized_client")),
        "{e}"
    );
    let (status, e) = revoke(json!({ "client_id": client_id, "token": first })).await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_client")),
        "{e}"
    );
    let (status, e) =
        revoke(json!({ "client_id": shop_id, "client_secret": shop_secret, "token": first })).await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::FORBIDDEN, json!("unauthorized_client")),
        "{e}"
    );
    let (status, done) =
        revoke(json!({ "client_id": client_id, "client_secret": secret, "token": first })).await;
    assert_eq!((status, done), (StatusCode::OK, json!({})));
    assert_eq!(
        app.verify(&admin, &first).await["code"],
        "revoked",
        "at once here"
    );
    within_a_second(&first, "a revoked token").await;
    assert_eq!(
        app.verify(&admin, &second).await["valid"],
        true,
        "only that token"
    );
    // Revoking what is not a token of ours is a no-op (RFC 7009).
    let (status, done) =
        revoke(json!({ "client_id": client_id, "client_secret": secret, "token": "not-a-token" }))
            .await;
    assert_eq!((status, done), (StatusCode::OK, json!({})));
    let (_, events) = app.get("/v1/audit_events", &admin).await;
    assert!(
        events.to_string().contains("access_token.revoke"),
        "{events}"
    );

    // A changed role is what the next verification reports, here and on the other node.
    let (status, _) = cl
        .patch(&format!("/api_credentials/{id}"), json!({ "data": { "type": "api_credentials", "id": id, "relationships": { "role": { "data": { "type": "roles", "id": read_only } } } } }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.verify(&admin, &second).await["principal"]["role_kind"],
        "read_only"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1000);
    while app.verify_at(&b, &admin, &second).await["principal"]["role_kind"] != "read_only" {
        assert!(
            std::time::Instant::now() < deadline,
            "the other node still reports the old role"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A deleted credential's tokens stop verifying, and it gets no more.
    let (status, _) = cl.delete(&format!("/api_credentials/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.verify(&admin, &second).await["code"],
        "revoked",
        "at once here"
    );
    within_a_second(&second, "a deleted credential's token").await;
    let (status, e) = token(&app, json!({ "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret })).await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_client"))
    );
}

both_engines!(
    seed_003_creates_a_sales_channel_as_documented,
    create_validates_every_attribute,
    updates_keep_immutable_fields,
    roles_and_who_may_do_what,
    lists_page_filter_sort_and_include,
    client_credentials_tokens_verify,
    revocation_reaches_every_node,
);
one_engine!(media_types_are_json_api);

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `base` + `path` with `query` encoded.
fn url_with(base: &str, path: &str, query: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{base}{path}")).unwrap();
    url.query_pairs_mut().extend_pairs(query);
    url.into()
}

/// The query parameters of a `Location`.
fn location_query(res: &reqwest::Response) -> (String, std::collections::HashMap<String, String>) {
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let url = url::Url::parse(&location).unwrap();
    let pairs = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (location, pairs)
}

const LOGIN_URL: &str = "https://login.example.com/signin";
const REDIRECT: &str = "https://app.example.com/callback";

/// Runs the browser's part of the flow up to the code: (code, state as returned).
async fn authorization_code_for(
    app: &TestApp,
    admin: &str,
    client_id: &str,
    challenge: Option<&str>,
) -> String {
    let browser = browser();
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "market:all"),
        ("state", "st-1"),
    ];
    if let Some(c) = challenge {
        query.extend([("code_challenge", c), ("code_challenge_method", "S256")]);
    }
    let res = browser
        .get(url_with(&app.base, "/oauth/authorize", &query))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let (location, q) = location_query(&res);
    assert!(
        location.starts_with(&format!("{LOGIN_URL}?login_challenge=")),
        "{location}"
    );
    let challenge_id = &q["login_challenge"];
    let (status, request) = app
        .get(&format!("/v1/oauth/login_requests/{challenge_id}"), admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{request}");
    assert_eq!(
        (request["client_id"].clone(), request["status"].clone()),
        (json!(client_id), json!("pending"))
    );
    let (status, accepted) = app
        .put(
            &format!("/v1/oauth/login_requests/{challenge_id}/accept"),
            admin,
            json!({ "subject": "cust_123" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let (status, again) = app
        .put(
            &format!("/v1/oauth/login_requests/{challenge_id}/accept"),
            admin,
            json!({ "subject": "cust_123" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let back = accepted["redirect_to"].as_str().unwrap();
    assert!(
        back.starts_with(&format!("{}/oauth/authorize?login_verifier=", app.base)),
        "{back}"
    );
    let res = browser.get(back).send().await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let (location, q) = location_query(&res);
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(q["state"], "st-1");
    // The verifier works once.
    let res = browser.get(back).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    q["code"].clone()
}

async fn authorization_code_flow_with_pkce_and_refresh(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let cl = app.provisioning(&admin);
    let (status, settings) = app
        .put(
            "/v1/oauth/settings",
            &admin,
            json!({ "login_url": LOGIN_URL }),
        )
        .await;
    assert_eq!(
        (status, settings["token_algorithm"].clone()),
        (StatusCode::OK, json!("RS512")),
        "{settings}"
    );
    let (_, client_id, secret) = credential(&cl, &org, "Web", "webapp", None).await;
    let basic = format!("Basic {}", base64_of(&format!("{client_id}:{secret}")));
    let verifier = "Zk3tq0rPn0d5a1XyV8bQ2mW4sL7cJ9eH6uT1oG3iK5fR8pA0";
    let challenge = latchkey::crypto::pkce_s256(verifier);
    let redeem = async |fields: &[(&str, &str)]| {
        let res = app
            .raw(Method::POST, "/oauth/token")
            .header("Authorization", &basic)
            .form(fields)
            .send()
            .await;
        (res.status, res.body)
    };

    let code = authorization_code_for(&app, &admin, &client_id, Some(&challenge)).await;
    // PKCE and redirect_uri must match; neither failure uses the code up.
    let (status, e) = redeem(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        (
            "code_verifier",
            "wrong-verifier-wrong-verifier-wrong-verifier-00",
        ),
    ])
    .await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant")),
        "{e}"
    );
    let (status, e) = redeem(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", "https://app.example.com/other"),
        ("code_verifier", verifier),
    ])
    .await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant")),
        "{e}"
    );
    let (status, e) = redeem(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
    ])
    .await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant")),
        "no verifier: {e}"
    );
    let (status, tokens) = redeem(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ])
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        (tokens["owner_id"].clone(), tokens["owner_type"].clone()),
        (json!("cust_123"), json!("customer"))
    );
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let c = claims(&access);
    assert_eq!(c["owner"], json!({ "id": "cust_123", "type": "Customer" }));
    assert_eq!(c["application"]["kind"], "webapp");
    let verdict = app.verify(&admin, &access).await;
    assert_eq!(
        (
            verdict["valid"].clone(),
            verdict["principal"]["owner_id"].clone()
        ),
        (json!(true), json!("cust_123")),
        "{verdict}"
    );

    // Refresh rotates; the old refresh token presented again revokes the whole grant.
    let (status, second) =
        redeem(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let refresh2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    let access2 = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.verify(&admin, &access2).await["valid"], true);
    let (status, e) = redeem(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("scope", "market:all"),
    ])
    .await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant")),
        "{e}"
    );
    let (status, e) = redeem(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh2),
    ])
    .await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant")),
        "the family is revoked: {e}"
    );
    for token in [&access, &access2] {
        assert_eq!(app.verify(&admin, token).await["code"], "revoked");
    }

    // A code presented twice revokes what it issued.
    let code = authorization_code_for(&app, &admin, &client_id, None).await;
    let (status, tokens) = redeem(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
    ])
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.verify(&admin, &access).await["valid"], true);
    let (status, e) = redeem(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
    ])
    .await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant")),
        "{e}"
    );
    assert_eq!(app.verify(&admin, &access).await["code"], "revoked");
    let (status, e) = redeem(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
    ])
    .await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant")),
        "{e}"
    );
    let (_, events) = app.get("/v1/audit_events", &admin).await;
    assert!(
        events.to_string().contains("authorization.revoke"),
        "a replay is audited"
    );

    // Revoking a refresh token (RFC 7009) revokes its grant.
    let code = authorization_code_for(&app, &admin, &client_id, None).await;
    let (_, tokens) = redeem(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
    ])
    .await;
    let res = app
        .raw(Method::POST, "/oauth/revoke")
        .json(&json!({ "client_id": client_id, "client_secret": secret, "token": tokens["refresh_token"] }))
        .send()
        .await;
    assert_eq!((res.status, res.body.clone()), (StatusCode::OK, json!({})));
    assert_eq!(
        app.verify(&admin, tokens["access_token"].as_str().unwrap())
            .await["code"],
        "revoked"
    );
    // A secret is required: the webapp is a confidential client.
    let code = authorization_code_for(&app, &admin, &client_id, None).await;
    let res = app
        .raw(Method::POST, "/oauth/token")
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await;
    assert_eq!(
        (res.status, res.body["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_client"))
    );
    assert_absent(&logs(), &secret, "logs");
    assert_absent(
        &app.raw_database().await,
        tokens["refresh_token"].as_str().unwrap(),
        "database",
    );
}

async fn authorize_refuses_what_it_must(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let cl = app.provisioning(&admin);
    let (_, client_id, _) = credential(&cl, &org, "Web", "webapp", None).await;
    let (_, shop_id, _) = credential(&cl, &org, "Shop", "sales_channel", None).await;
    let browser = browser();
    let authorize = async |query: &[(&str, &str)]| {
        browser
            .get(url_with(&app.base, "/oauth/authorize", query))
            .send()
            .await
            .unwrap()
    };
    // No login URL yet: the client hears server_error.
    let res = authorize(&[
        ("response_type", "code"),
        ("client_id", &client_id),
        ("state", "s"),
    ])
    .await;
    let (location, q) = location_query(&res);
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("server_error", "s")
    );
    let (status, e) = app
        .put(
            "/v1/oauth/settings",
            &admin,
            json!({ "login_url": "ftp://x" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (status, e) = app
        .put(
            "/v1/oauth/settings",
            &admin,
            json!({ "login_url": "http://login.example.com/" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "http only on loopback: {e}"
    );
    // A replace names the settings: no body is refused, not read as "all defaults".
    let (status, e) = app
        .request(
            reqwest::Method::PUT,
            "/v1/oauth/settings",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    let editor = app.token(&org, "editor", None).await;
    let (status, _) = app
        .put(
            "/v1/oauth/settings",
            &editor,
            json!({ "login_url": LOGIN_URL }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .put(
            "/v1/oauth/settings",
            &admin,
            json!({ "login_url": LOGIN_URL }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Unknown clients, other kinds and a wrong redirect URI are shown an error, never redirected.
    for query in [
        vec![("response_type", "code"), ("client_id", "nobody")],
        vec![("response_type", "code"), ("client_id", shop_id.as_str())],
        vec![
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", "https://evil.example/cb"),
        ],
    ] {
        let res = authorize(&query).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query:?}");
        assert!(res.headers().get("location").is_none());
    }
    // Other mistakes go back to the client with the error.
    for (query, error) in [
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![("response_type", "code"), ("scope", "market:1234")],
            "invalid_scope",
        ),
        (
            vec![("response_type", "code"), ("code_challenge", "short")],
            "invalid_request",
        ),
        (
            vec![
                ("response_type", "code"),
                ("code_challenge", &"a".repeat(43)),
                ("code_challenge_method", "S512"),
            ],
            "invalid_request",
        ),
    ] {
        let mut query = query.clone();
        query.extend([("client_id", client_id.as_str()), ("state", "s")]);
        let res = authorize(&query).await;
        let (_, q) = location_query(&res);
        assert_eq!(
            (q["error"].as_str(), q["state"].as_str()),
            (error, "s"),
            "{query:?}"
        );
    }
    // Reject; and login requests are the organization's own, for editors and admins.
    let res = authorize(&[
        ("response_type", "code"),
        ("client_id", &client_id),
        ("state", "s"),
    ])
    .await;
    let (_, q) = location_query(&res);
    let challenge = q["login_challenge"].clone();
    let (_, other_admin) = app.org_with("admin").await;
    let (status, _) = app
        .put(
            &format!("/v1/oauth/login_requests/{challenge}/accept"),
            &other_admin,
            json!({ "subject": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let viewer = app.token(&org, "viewer", None).await;
    let (status, _) = app
        .put(
            &format!("/v1/oauth/login_requests/{challenge}/accept"),
            &viewer,
            json!({ "subject": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, e) = app
        .put(
            &format!("/v1/oauth/login_requests/{challenge}/accept"),
            &admin,
            json!({ "subject": "" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (status, rejected) = app
        .put(
            &format!("/v1/oauth/login_requests/{challenge}/reject"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    let to = url::Url::parse(rejected["redirect_to"].as_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("access_denied", "s")
    );
    let (status, _) = app
        .put(
            &format!("/v1/oauth/login_requests/{challenge}/accept"),
            &admin,
            json!({ "subject": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // A sales channel has no authorization_code grant.
    let res = app
        .raw(Method::POST, "/oauth/token")
        .json(&json!({ "grant_type": "authorization_code", "client_id": shop_id, "code": "x", "redirect_uri": REDIRECT }))
        .send()
        .await;
    assert_eq!(
        (res.status, res.body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("unauthorized_client"))
    );
}

async fn an_organization_may_choose_its_token_algorithm(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let cl = app.provisioning(&admin);
    let (_, client_id, _) = credential(&cl, &org, "Shop", "sales_channel", None).await;
    let (status, e) = app
        .put(
            "/v1/oauth/settings",
            &admin,
            json!({ "token_algorithm": "HS256" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    for alg in ["ES256", "EdDSA", "RS256"] {
        let (status, settings) = app
            .put(
                "/v1/oauth/settings",
                &admin,
                json!({ "token_algorithm": alg }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{settings}");
        let (status, t) = token(
            &app,
            json!({ "grant_type": "client_credentials", "client_id": client_id }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{t}");
        let access = t["access_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(access).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg);
        let (_, jwks) = app.get("/.well-known/jwks.json", "").await;
        let kid = header.kid.unwrap();
        assert!(
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == kid.as_str() && k["alg"] == alg),
            "{jwks}"
        );
        assert_eq!(app.verify(&admin, access).await["valid"], true, "{alg}");
    }
}

/// An unauthenticated `/oauth/authorize` stores nothing: the login request travels sealed in
/// its challenge, which cannot be forged, altered or answered twice.
async fn login_challenges_are_sealed_and_answered_once(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let cl = app.provisioning(&admin);
    app.put(
        "/v1/oauth/settings",
        &admin,
        json!({ "login_url": LOGIN_URL }),
    )
    .await;
    let (web, client_id, secret) = credential(&cl, &org, "Web", "webapp", None).await;
    let browser = browser();
    for _ in 0..20 {
        let res = browser
            .get(url_with(
                &app.base,
                "/oauth/authorize",
                &[
                    ("response_type", "code"),
                    ("client_id", &client_id),
                    ("state", "s"),
                ],
            ))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_redirection());
    }
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM cl_authorizations")
            .await,
        0,
        "nothing stored before an answer"
    );
    let res = browser
        .get(url_with(
            &app.base,
            "/oauth/authorize",
            &[
                ("response_type", "code"),
                ("client_id", &client_id),
                ("state", "s"),
            ],
        ))
        .send()
        .await
        .unwrap();
    let (_, q) = location_query(&res);
    let challenge = q["login_challenge"].clone();
    // Altered, truncated or made up: not found.
    let mut altered = challenge.clone().into_bytes();
    let last = altered.len() - 2;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for bogus in [
        altered.as_str(),
        &challenge[..challenge.len() - 4],
        "nope",
        &"A".repeat(9000),
    ] {
        let (status, _) = app
            .put(
                &format!("/v1/oauth/login_requests/{bogus}/accept"),
                &admin,
                json!({ "subject": "x" }),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{}",
            &bogus[..bogus.len().min(20)]
        );
    }
    let (status, request) = app
        .get(&format!("/v1/oauth/login_requests/{challenge}"), &admin)
        .await;
    assert_eq!(
        (status, request["status"].clone()),
        (StatusCode::OK, json!("pending")),
        "{request}"
    );
    // Answered once; rejected stays rejected.
    let (status, _) = app
        .put(
            &format!("/v1/oauth/login_requests/{challenge}/reject"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, request) = app
        .get(&format!("/v1/oauth/login_requests/{challenge}"), &admin)
        .await;
    assert_eq!(request["status"], "rejected");
    let (status, _) = app
        .put(
            &format!("/v1/oauth/login_requests/{challenge}/accept"),
            &admin,
            json!({ "subject": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // A redirect URI changed during the login: the browser is not sent to the old one.
    let res = browser
        .get(url_with(
            &app.base,
            "/oauth/authorize",
            &[
                ("response_type", "code"),
                ("client_id", &client_id),
                ("state", "s"),
            ],
        ))
        .send()
        .await
        .unwrap();
    let (_, q) = location_query(&res);
    let (_, accepted) = app
        .put(
            &format!("/v1/oauth/login_requests/{}/accept", q["login_challenge"]),
            &admin,
            json!({ "subject": "u" }),
        )
        .await;
    let (status, _) = cl
        .patch(&format!("/api_credentials/{web}"), json!({ "data": { "type": "api_credentials", "id": web, "attributes": { "redirect_uri": "https://app.example.com/moved" } } }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let res = browser
        .get(accepted["redirect_to"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
    cl.patch(&format!("/api_credentials/{web}"), json!({ "data": { "type": "api_credentials", "id": web, "attributes": { "redirect_uri": REDIRECT } } }))
        .await;
    // A code whose client's redirect URI changed since is refused.
    let code = authorization_code_for(&app, &admin, &client_id, None).await;
    let (status, _) = cl
        .patch(&format!("/api_credentials/{web}"), json!({ "data": { "type": "api_credentials", "id": web, "attributes": { "redirect_uri": "https://app.example.com/new" } } }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = token(&app, json!({ "grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": code, "redirect_uri": REDIRECT })).await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant")),
        "{e}"
    );
}

both_engines!(
    login_challenges_are_sealed_and_answered_once,
    authorization_code_flow_with_pkce_and_refresh,
    authorize_refuses_what_it_must,
    an_organization_may_choose_its_token_algorithm,
);

async fn provisioning_clients_act_with_their_role(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let (status, e) = app
        .post(
            "/v1/provisioning_clients",
            &admin,
            json!({ "name": "CI", "role": "owner" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let editor = app.token(&org, "editor", None).await;
    let (status, _) = app
        .post(
            "/v1/provisioning_clients",
            &editor,
            json!({ "name": "CI", "role": "viewer" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let make = async |role: &str| {
        let (status, made) = app
            .post(
                "/v1/provisioning_clients",
                &admin,
                json!({ "name": format!("CI {role}"), "role": role }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        made
    };
    let viewer = make("viewer").await;
    let owner = make("admin").await;
    let (_, list) = app.get("/v1/provisioning_clients", &admin).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_absent(
        &list.to_string(),
        viewer["client_secret"].as_str().unwrap(),
        "list",
    );
    let provisioning_token = async |made: &Value| {
        let (status, t) = token(&app, json!({ "grant_type": "client_credentials", "client_id": made["client_id"], "client_secret": made["client_secret"] })).await;
        assert_eq!(status, StatusCode::OK, "{t}");
        assert_eq!(t["scope"], "provisioning-api");
        t["access_token"].as_str().unwrap().to_owned()
    };
    let viewer_token = provisioning_token(&viewer).await;
    let c = claims(&viewer_token);
    assert_eq!(
        (
            c["user"]["id"].clone(),
            c["application"]["kind"].clone(),
            c["test"].clone()
        ),
        (viewer["id"].clone(), json!("user"), json!(false))
    );
    assert!(c.get("organization").is_none(), "{c}");
    let (status, e) = token(&app, json!({ "grant_type": "client_credentials", "client_id": viewer["client_id"], "client_secret": viewer["client_secret"], "scope": "market:all" })).await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_scope"))
    );

    // The token acts on the Provisioning API with the client's role.
    let as_viewer = app.provisioning(&viewer_token);
    let (status, me) = as_viewer.get("/user").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (
            me["data"]["id"].clone(),
            me["data"]["attributes"]["metadata"]["role"].clone()
        ),
        (viewer["id"].clone(), json!("viewer"))
    );
    let (status, _) = as_viewer.get("/api_credentials").await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = as_viewer.post("/api_credentials", seed_body(&org)).await;
    assert_error(status, &e, StatusCode::FORBIDDEN, "FORBIDDEN", None);
    let as_owner = app.provisioning(&provisioning_token(&owner).await);
    let (status, made) = as_owner.post("/api_credentials", seed_body(&org)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (_, list) = as_owner.get("/api_credentials").await;
    assert_eq!(
        list["meta"]["record_count"], 1,
        "provisioning clients are not listed: {list}"
    );
    let (_, events) = app.get("/v1/audit_events", &admin).await;
    assert!(
        events
            .to_string()
            .contains(&format!("key:{}", owner["id"].as_str().unwrap())),
        "{events}"
    );
    let (_, me) = app.provisioning(&admin).get("/user").await;
    assert_eq!(
        me["data"]["attributes"]["metadata"]["kind"],
        "management_token"
    );

    // Other tokens are not provisioning tokens.
    let (_, shop_id, _) = credential(
        &app.provisioning(&admin),
        &org,
        "Shop",
        "sales_channel",
        None,
    )
    .await;
    let (_, t) = token(
        &app,
        json!({ "grant_type": "client_credentials", "client_id": shop_id }),
    )
    .await;
    for bearer in [
        t["access_token"].as_str().unwrap(),
        "a.b.c",
        "eyJhbGciOiJub25lIn0.e30.",
    ] {
        let (status, e) = app.provisioning(bearer).get("/api_credentials").await;
        assert_error(status, &e, StatusCode::UNAUTHORIZED, "INVALID_TOKEN", None);
    }
    // A deleted provisioning client's tokens stop working.
    let (status, _) = app
        .delete(
            &format!(
                "/v1/provisioning_clients/{}",
                viewer["id"].as_str().unwrap()
            ),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, e) = as_viewer.get("/api_credentials").await;
    assert_error(status, &e, StatusCode::UNAUTHORIZED, "INVALID_TOKEN", None);
    let (status, _) = app
        .delete(
            &format!(
                "/v1/provisioning_clients/{}",
                viewer["id"].as_str().unwrap()
            ),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn introspection_answers_for_its_organization(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let cl = app.provisioning(&admin);
    let admin_role = role_id(&cl, "admin").await;
    let (id, client_id, secret) =
        credential(&cl, &org, "ERP", "integration", Some(&admin_role)).await;
    let (_, shop_id, shop_secret) = credential(&cl, &org, "Shop", "sales_channel", None).await;
    let (_, t) = token(&app, json!({ "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret })).await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    let introspect = async |auth: Option<&str>, body: Value| {
        let mut req = app.raw(Method::POST, "/oauth/introspect").json(&body);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let res = req.send().await;
        (res.status, res.body)
    };
    let bearer = format!("Bearer {admin}");
    let (status, info) = introspect(Some(&bearer), json!({ "token": access })).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(
        (
            info["active"].clone(),
            info["client_id"].clone(),
            info["application_id"].clone()
        ),
        (json!(true), json!(client_id), json!(id))
    );
    assert_eq!(info["scope"], "market:all");
    let (status, info) = introspect(
        None,
        json!({ "token": access, "client_id": client_id, "client_secret": secret }),
    )
    .await;
    assert_eq!(
        (status, info["active"].clone()),
        (StatusCode::OK, json!(true))
    );
    // A public client cannot ask; another organization sees nothing; garbage is inactive.
    let (status, e) = introspect(None, json!({ "token": access, "client_id": shop_id })).await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_client"))
    );
    let (status, e) = introspect(Some("Bearer lk_nope"), json!({ "token": access })).await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_client")),
        "{e}"
    );
    let (_, other) = app.org_with("admin").await;
    let (_, info) = introspect(Some(&format!("Bearer {other}")), json!({ "token": access })).await;
    assert_eq!(info, json!({ "active": false }));
    let (_, info) = introspect(Some(&bearer), json!({ "token": "garbage" })).await;
    assert_eq!(info, json!({ "active": false }));
    let (status, e) = introspect(Some(&bearer), json!({})).await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_request"))
    );
    // Revoked: inactive.
    let res = app
        .raw(Method::POST, "/oauth/revoke")
        .json(&json!({ "client_id": client_id, "client_secret": secret, "token": access }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let (_, info) = introspect(Some(&bearer), json!({ "token": access })).await;
    assert_eq!(info, json!({ "active": false }));
    // A refresh token.
    app.put(
        "/v1/oauth/settings",
        &admin,
        json!({ "login_url": LOGIN_URL }),
    )
    .await;
    let (_, web_id, web_secret) = credential(&cl, &org, "Web", "webapp", None).await;
    let code = authorization_code_for(&app, &admin, &web_id, None).await;
    let (_, tokens) = token(&app, json!({ "grant_type": "authorization_code", "client_id": web_id, "client_secret": web_secret, "code": code, "redirect_uri": REDIRECT })).await;
    let (_, info) = introspect(
        Some(&bearer),
        json!({ "token": tokens["refresh_token"], "token_type_hint": "refresh_token" }),
    )
    .await;
    assert_eq!(
        (
            info["active"].clone(),
            info["token_type"].clone(),
            info["sub"].clone()
        ),
        (json!(true), json!("refresh_token"), json!("cust_123")),
        "{info}"
    );
    let (_, info) = introspect(Some(&bearer), json!({ "token": tokens["access_token"] })).await;
    assert_eq!(
        (info["active"].clone(), info["sub"].clone()),
        (json!(true), json!("cust_123")),
        "{info}"
    );
    assert_absent(&logs(), &shop_secret, "logs");
}

async fn the_token_endpoint_limits_each_client(mut app: TestApp) {
    app.config.token_rate_limit = std::num::NonZeroU32::new(3);
    app.restart().await;
    let (org, admin) = app.org_with("admin").await;
    let cl = app.provisioning(&admin);
    let (_, first, _) = credential(&cl, &org, "One", "sales_channel", None).await;
    let (_, second, _) = credential(&cl, &org, "Two", "sales_channel", None).await;
    // Requests that do not authenticate spend nobody's allowance: an anonymous caller cannot
    // lock a client out.
    let admin_role = role_id(&cl, "admin").await;
    let (_, erp, erp_secret) = credential(&cl, &org, "ERP", "integration", Some(&admin_role)).await;
    for _ in 0..5 {
        let (status, _) = token(&app, json!({ "grant_type": "client_credentials", "client_id": erp, "client_secret": "guess" })).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = token(&app, json!({ "grant_type": "nope", "client_id": erp })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    for _ in 0..3 {
        let (status, _) = token(&app, json!({ "grant_type": "client_credentials", "client_id": erp, "client_secret": erp_secret })).await;
        assert_eq!(status, StatusCode::OK);
    }
    for _ in 0..3 {
        let (status, _) = token(
            &app,
            json!({ "grant_type": "client_credentials", "client_id": first }),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let res = app
        .raw(Method::POST, "/oauth/token")
        .json(&json!({ "grant_type": "client_credentials", "client_id": first }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.text);
    assert!(res.header("retry-after").is_some());
    assert_eq!(res.body["errors"][0]["code"], "TOO_MANY_REQUESTS");
    let (status, _) = token(
        &app,
        json!({ "grant_type": "client_credentials", "client_id": second }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another client has its own allowance"
    );
}

both_engines!(
    provisioning_clients_act_with_their_role,
    introspection_answers_for_its_organization,
);
one_engine!(the_token_endpoint_limits_each_client);

async fn permissions_versions_and_organizations(app: TestApp) {
    let (org, admin) = app.org_with("admin").await;
    let cl = app.provisioning(&admin);
    let admin_role = role_id(&cl, "admin").await;
    let (_, custom) = cl
        .post("/roles", json!({ "data": { "type": "roles", "attributes": { "name": "Support" }, "relationships": { "organization": { "data": { "type": "organizations", "id": org } } } } }))
        .await;
    let custom_id = custom["data"]["id"].as_str().unwrap().to_owned();
    let permission = |role: &str, attributes: Value| json!({ "data": { "type": "permissions", "attributes": attributes, "relationships": { "role": { "data": { "type": "roles", "id": role } } } } });
    let rights = json!({ "subject": "orders", "can_create": false, "can_read": true, "can_update": true, "can_destroy": false });
    let (status, made) = cl
        .post("/permissions", permission(&custom_id, rights.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(made["data"]["attributes"]["subject"], "orders");
    for (body, pointer) in [
        (
            permission(&admin_role, rights.clone()),
            "/data/relationships/role",
        ),
        (
            permission(&custom_id, rights.clone()),
            "/data/attributes/subject",
        ),
        (
            permission(
                &custom_id,
                json!({ "subject": "Orders!", "can_create": true, "can_read": true, "can_update": true, "can_destroy": true }),
            ),
            "/data/attributes/subject",
        ),
        (
            permission(
                &custom_id,
                json!({ "subject": "skus", "can_create": true, "can_update": true, "can_destroy": true }),
            ),
            "/data/attributes/can_read",
        ),
        (
            permission(
                &custom_id,
                json!({ "subject": "skus", "can_create": "yes", "can_read": true, "can_update": true, "can_destroy": true }),
            ),
            "/data/attributes/can_create",
        ),
    ] {
        let (status, e) = cl.post("/permissions", body).await;
        assert_error(
            status,
            &e,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some(pointer),
        );
    }
    let editor = app.provisioning(&app.token(&org, "editor", None).await);
    let (status, e) = editor.post("/permissions", permission(&custom_id, json!({ "subject": "skus", "can_create": true, "can_read": true, "can_update": true, "can_destroy": true }))).await;
    assert_error(status, &e, StatusCode::FORBIDDEN, "FORBIDDEN", None);
    let path = format!("/permissions/{id}");
    let (status, updated) = cl.patch(&path, json!({ "data": { "type": "permissions", "id": id, "attributes": { "can_destroy": true } } })).await;
    assert_eq!(
        (status, updated["data"]["attributes"]["can_destroy"].clone()),
        (StatusCode::OK, json!(true)),
        "{updated}"
    );
    let (status, e) = cl.patch(&path, json!({ "data": { "type": "permissions", "id": id, "attributes": { "subject": "skus" } } })).await;
    assert_error(
        status,
        &e,
        StatusCode::BAD_REQUEST,
        "PARAM_NOT_ALLOWED",
        None,
    );
    let (_, listed) = cl
        .get(&format!("/roles/{custom_id}/permissions?include=role"))
        .await;
    assert_eq!(listed["meta"]["record_count"], 1, "{listed}");
    assert_eq!(listed["included"][0]["id"], custom_id.as_str());
    let (_, role) = editor.get(&format!("{path}/role")).await;
    assert_eq!(role["data"]["id"], custom_id.as_str());

    // The history: what changed, never a secret, and who.
    let (cred_id, _, secret) = credential(&cl, &org, "Shop", "sales_channel", None).await;
    cl.patch(&format!("/api_credentials/{cred_id}"), json!({ "data": { "type": "api_credentials", "id": cred_id, "attributes": { "name": "Shop 2" } } })).await;
    let (_, history) = cl
        .get(&format!(
            "/api_credentials/{cred_id}/versions?sort=created_at"
        ))
        .await;
    let events: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["attributes"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["create", "update"], "{history}");
    let update = &history["data"][1]["attributes"];
    assert_eq!(update["changes"], json!({ "name": ["Shop", "Shop 2"] }));
    assert_eq!(update["who"]["management_token"]["role"], "admin");
    assert_eq!(
        (
            update["resource_type"].clone(),
            update["resource_id"].clone()
        ),
        (json!("api_credentials"), json!(cred_id))
    );
    let (status, _) = cl.delete(&format!("/api_credentials/{cred_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, all) = cl
        .get(&format!(
            "/versions?filter[q][resource_id_eq]={cred_id}&filter[q][event_eq]=destroy"
        ))
        .await;
    assert_eq!(all["meta"]["record_count"], 1, "{all}");
    let (_, everything) = cl.get("/versions?page[size]=25").await;
    assert_absent(&everything.to_string(), &secret, "versions");
    let (_, role_history) = cl.get(&format!("/roles/{custom_id}/versions")).await;
    assert_eq!(
        role_history["data"][0]["attributes"]["event"], "create",
        "{role_history}"
    );
    let (_, perm_history) = cl.get(&format!("{path}/versions")).await;
    assert_eq!(perm_history["meta"]["record_count"], 2, "{perm_history}");
    let version_id = perm_history["data"][0]["id"].as_str().unwrap();
    let (status, one) = cl.get(&format!("/versions/{version_id}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    let (_, other_admin) = app.org_with("admin").await;
    let (status, e) = app
        .provisioning(&other_admin)
        .get(&format!("/versions/{version_id}"))
        .await;
    assert_error(status, &e, StatusCode::NOT_FOUND, "RECORD_NOT_FOUND", None);
    let (_, theirs) = app.provisioning(&other_admin).get("/versions").await;
    assert_eq!(theirs["meta"]["record_count"], 0);
    // A resource keeps its newest 100 versions.
    for i in 0..105 {
        let (status, _) = cl
            .patch(&path, json!({ "data": { "type": "permissions", "id": id, "attributes": { "reference": format!("r{i}") } } }))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, trimmed) = cl.get(&format!("{path}/versions?sort=-created_at")).await;
    assert_eq!(trimmed["meta"]["record_count"], 100, "{}", trimmed["meta"]);
    let newest: Vec<&Value> = trimmed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["attributes"]["changes"]["reference"][1])
        .collect();
    assert!(
        newest.contains(&&json!("r104")),
        "the newest are kept: {newest:?}"
    );

    // Organizations: server admins create them (with their roles); their admins update them.
    let server = app.provisioning(&app.admin);
    let (status, made) = server
        .post("/organizations", json!({ "data": { "type": "organizations", "attributes": { "name": "Blue Brand", "support_email": "help@blue.example", "primary_color": "#0033FF", "region": "us-east-1", "config": { "mfe": { "default": { "links": { "cart": "https://cart.blue.example" } } } } } } }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let a = &made["data"]["attributes"];
    assert_eq!(
        (
            a["slug"].clone(),
            a["region"].clone(),
            a["primary_color"].clone()
        ),
        (json!("blue-brand"), json!("us-east-1"), json!("#0033FF"))
    );
    let blue = made["data"]["id"].as_str().unwrap().to_owned();
    let blue_admin = app.token(&blue, "admin", None).await;
    let blue_cl = app.provisioning(&blue_admin);
    let (_, roles) = blue_cl.get("/roles").await;
    assert_eq!(
        roles["meta"]["record_count"], 2,
        "base roles from creation: {roles}"
    );
    let patch = |attributes: Value| json!({ "data": { "type": "organizations", "id": blue, "attributes": attributes } });
    let (status, updated) = blue_cl
        .patch(
            &format!("/organizations/{blue}"),
            patch(json!({ "name": "Blue Brand Inc", "primary_color": "#FF0000" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let a = &updated["data"]["attributes"];
    assert_eq!(
        (
            a["name"].clone(),
            a["slug"].clone(),
            a["primary_color"].clone(),
            a["support_email"].clone()
        ),
        (
            json!("Blue Brand Inc"),
            json!("blue-brand"),
            json!("#FF0000"),
            json!("help@blue.example")
        )
    );
    let (status, e) = blue_cl
        .patch(
            &format!("/organizations/{blue}"),
            patch(json!({ "region": "eu-west-1" })),
        )
        .await;
    assert_error(
        status,
        &e,
        StatusCode::BAD_REQUEST,
        "PARAM_NOT_ALLOWED",
        None,
    );
    let (status, e) = blue_cl
        .patch(
            &format!("/organizations/{blue}"),
            patch(json!({ "contrast_color": "red" })),
        )
        .await;
    assert_error(
        status,
        &e,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
        Some("/data/attributes/contrast_color"),
    );
    let (status, e) = cl
        .patch(
            &format!("/organizations/{blue}"),
            patch(json!({ "name": "Mine" })),
        )
        .await;
    assert_error(status, &e, StatusCode::NOT_FOUND, "RECORD_NOT_FOUND", None);
    let blue_viewer = app.provisioning(&app.token(&blue, "viewer", None).await);
    let (status, e) = blue_viewer
        .patch(
            &format!("/organizations/{blue}"),
            patch(json!({ "name": "Mine" })),
        )
        .await;
    assert_error(status, &e, StatusCode::FORBIDDEN, "FORBIDDEN", None);
    let (status, e) = cl
        .post(
            "/organizations",
            json!({ "data": { "type": "organizations", "attributes": { "name": "Nope" } } }),
        )
        .await;
    assert_error(status, &e, StatusCode::FORBIDDEN, "FORBIDDEN", None);
    let (status, e) = server.post("/organizations", json!({ "data": { "type": "organizations", "attributes": { "name": "X", "region": "mars-1" } } })).await;
    assert_error(
        status,
        &e,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
        Some("/data/attributes/region"),
    );
    // Attributes hosted apps put into pages keep to their own characters; URLs are stored
    // normalised; a viewer is refused before its body is read; a rename keeps a letter.
    for (attributes, pointer) in [
        (
            json!({ "support_email": "<img src=x onerror=alert(1)>" }),
            "/data/attributes/support_email",
        ),
        (
            json!({ "gtm_id": "');alert(1);//" }),
            "/data/attributes/gtm_id",
        ),
        (
            json!({ "support_phone": "call me" }),
            "/data/attributes/support_phone",
        ),
        (
            json!({ "favicon_url": "ht\ttps://x.example/" }),
            "/data/attributes/favicon_url",
        ),
        (json!({ "name": "!!!" }), "/data/attributes/name"),
    ] {
        let (status, e) = blue_cl
            .patch(&format!("/organizations/{blue}"), patch(attributes))
            .await;
        assert_error(
            status,
            &e,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            Some(pointer),
        );
    }
    let (status, ok) = blue_cl
        .patch(&format!("/organizations/{blue}"), patch(json!({ "logo_url": "  https://blue.example/logo.png", "gtm_id": "GTM-AB12", "support_phone": "+1 (555) 010-0000" })))
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(
        ok["data"]["attributes"]["logo_url"],
        "https://blue.example/logo.png"
    );
    let (status, e) = blue_viewer.post("/organizations", json!({ "data": { "type": "organizations", "attributes": { "name": "X", "primary_color": "nope" } } })).await;
    assert_error(status, &e, StatusCode::FORBIDDEN, "FORBIDDEN", None);
    let (_, listed) = server
        .get("/organizations?filter[q][slug_eq]=blue-brand")
        .await;
    assert_eq!(
        listed["data"][0]["attributes"]["support_email"], "help@blue.example",
        "{listed}"
    );
    // `updated_at` filters and sorts on what the response shows.
    let since = ok["data"]["attributes"]["updated_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, recent) = server
        .get(&format!(
            "/organizations?filter[q][updated_at_gteq]={since}&sort=-updated_at"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{recent}");
    assert_eq!(recent["meta"]["record_count"], 1, "{recent}");
    assert_eq!(recent["data"][0]["id"], blue.as_str(), "{recent}");
}

both_engines!(permissions_versions_and_organizations);
