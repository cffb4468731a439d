#!/usr/bin/env python3
"""Drive Latchkey's OAuth 2 authorization server with a generic, unmodified OAuth 2 client.

The client is Authlib's `OAuth2Session` (authlib.integrations.requests_client) from PyPI, pinned
with `requests` in requirements.txt next to this file. Authlib does every OAuth part: client
authentication (client_secret_basic, client_secret_post), the authorization URL with PKCE S256,
parsing the redirect (code and state), the token requests, refresh and RFC 7009 revocation; its
endpoints come from the server's RFC 8414 metadata. Plain `requests` does the rest: setting up an
organization and its api credentials, the browser's part of the login hand-off (redirects shown,
never followed: login.example.test and app.example.test do not exist), the platform's accept call,
and /v1/authenticate.

Environment:
  LATCHKEY_URL           base URL of a running Latchkey, e.g. http://127.0.0.1:8080
  LATCHKEY_ADMIN_TOKEN   a server-admin management token (`latchkey token create --admin`); the
                         script makes its own organization, admin token and api credentials
  LATCHKEY_PUBLIC_URL    optional: the LATCHKEY_PUBLIC_URL the server runs with, when it has one
                         (its metadata, redirects and token `iss` use that origin). Requests to it
                         are sent to LATCHKEY_URL by a requests transport adapter, as a reverse
                         proxy or /etc/hosts would; Authlib is not touched.

Steps: the RFC 8414 metadata; client_credentials with client_secret_basic and client_secret_post
(tokens verify); the authorization code flow with PKCE S256 through the login hand-off; refresh
(rotates); the old refresh token again (invalid_grant, the grant is revoked: the new refresh token
is refused and the grant's access tokens no longer verify); revocation of a client_credentials
access token (RFC 7009). Prints one line per step and exits 0 on success. On any failure it prints
the failing step, what went wrong and the last HTTP exchanges, and exits 1.
"""

import importlib.metadata
import json
import os
import sys
import uuid
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import HTTPAdapter

from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

LOGIN_URL = "https://login.example.test/signin"
REDIRECT_URI = "https://app.example.test/callback"
SUBJECT = "cust_1"
TIMEOUT = 30

STEP = "start"
# The last HTTP exchanges of every session, to show on failure.
WIRE = []
# Parameters whose values are secrets: shown by length only.
SECRET_PARAMS = {"client_secret", "code", "code_verifier", "refresh_token", "token", "access_token"}


def step(name):
    global STEP
    STEP = name


def ok(message):
    print(f"ok  {STEP}: {message}", flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def env(name, required=True):
    value = os.environ.get(name, "").strip()
    if not value and required:
        print(f"FAIL: environment variable {name} is not set", file=sys.stderr)
        sys.exit(2)
    return value.rstrip("/") or None


# --- HTTP plumbing ----------------------------------------------------------------------------

class Reroute(HTTPAdapter):
    """Sends requests for the server's public origin to the address it listens on."""

    def __init__(self, public, local):
        super().__init__()
        self.public = public
        self.local = local

    def send(self, request, **kwargs):
        if request.url.startswith(self.public):
            request.url = self.local + request.url[len(self.public):]
        return super().send(request, **kwargs)


def redact_form(body):
    if not body:
        return ""
    try:
        pairs = parse_qs(body, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return body[:300]
    shown = []
    for k, values in pairs.items():
        for v in values:
            shown.append(f"{k}=<{len(v)} chars>" if k in SECRET_PARAMS else f"{k}={v}")
    return "&".join(shown)


def record(response, *args, **kwargs):
    """A response hook: keeps what was sent and what came back."""
    req = response.request
    auth = req.headers.get("Authorization", "")
    scheme = auth.split(" ", 1)[0] if auth else None
    ctype = req.headers.get("Content-Type", "")
    body = req.body or ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    body = redact_form(body) if "x-www-form-urlencoded" in ctype else body[:300]
    WIRE.append({
        "request": f"{req.method} {urlsplit(req.url).path}",
        "url": req.url,
        "authorization": scheme,
        "content_type": ctype or None,
        "body": body,
        "status": response.status_code,
        "location": response.headers.get("Location"),
        "response": response.text[:500],
    })
    del WIRE[:-6]
    return response


def instrument(session, public, local):
    session.hooks["response"].append(record)
    if public and public != local:
        session.mount(public + "/", Reroute(public, local))
    return session


def last_exchange():
    check(WIRE, "no HTTP exchange was recorded")
    return WIRE[-1]


class Platform:
    """The management API, as the platform calls it (plain requests)."""

    def __init__(self, url, public):
        self.url = url
        self.http = instrument(requests.Session(), public, url)

    def call(self, method, path, token, body=None, json_api=False, want=(200, 201)):
        headers = {"Authorization": f"Bearer {token}"}
        kwargs = {}
        if json_api:
            headers["Accept"] = headers["Content-Type"] = "application/vnd.api+json"
            if body is not None:
                kwargs["data"] = json.dumps(body)
        elif body is not None:
            kwargs["json"] = body
        res = self.http.request(method, self.url + path, headers=headers, timeout=TIMEOUT, **kwargs)
        check(res.status_code in want, f"{method} {path}: HTTP {res.status_code}: {res.text[:500]}")
        return res.json() if res.content else None

    def verdict(self, token, access_token):
        return self.call("POST", "/v1/authenticate", token, {"authorization": access_token}, want=(200,))


def expect_valid(platform, admin, access_token, what):
    v = platform.verdict(admin, access_token)
    check(v.get("valid") is True, f"{what}: /v1/authenticate says {v!r}, expected valid")
    return v


def expect_revoked(platform, admin, access_token, what):
    v = platform.verdict(admin, access_token)
    check(v.get("valid") is False and v.get("code") == "revoked",
          f"{what}: /v1/authenticate says {v!r}, expected valid:false code revoked")


def expect_oauth_error(error, fn, what):
    """fn (an Authlib call) must raise Authlib's OAuthError with `error`."""
    try:
        result = fn()
    except OAuthError as e:
        check(e.error == error, f"{what}: Authlib raised {e.error!r} ({e.description!r}), expected {error!r}")
        return e
    raise AssertionError(f"{what}: expected Authlib to raise {error!r}, but it returned {result!r}")


def path_of(url):
    return urlsplit(url).path


def query_of(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


# --- the checks -------------------------------------------------------------------------------

def setup(platform, server_admin):
    """An organization, its admin token, its login URL, an integration and a webapp."""
    step("setup")
    tag = uuid.uuid4().hex[:8]
    org = platform.call("POST", "/v1/organizations", server_admin, {"name": f"Authlib check {tag}"})["id"]
    admin = platform.call("POST", "/v1/tokens", server_admin,
                          {"organization_id": org, "name": "authlib", "role": "admin"})["token"]
    platform.call("PUT", "/v1/oauth/settings", admin, {"login_url": LOGIN_URL}, want=(200,))
    roles = platform.call("GET", "/api/roles?filter[q][kind_eq]=admin", admin, json_api=True, want=(200,))
    check(roles.get("data"), f"no admin role: {roles!r}")
    role = roles["data"][0]["id"]

    def credential(attributes, role=None):
        relationships = {"organization": {"data": {"type": "organizations", "id": org}}}
        if role:
            relationships["role"] = {"data": {"type": "roles", "id": role}}
        body = {"data": {"type": "api_credentials", "attributes": attributes, "relationships": relationships}}
        a = platform.call("POST", "/api/api_credentials", admin, body, json_api=True, want=(201,))["data"]["attributes"]
        check(a.get("client_id") and a.get("client_secret"), f"api credential without client_id/secret: {a!r}")
        return a["client_id"], a["client_secret"]

    integration = credential({"name": f"ERP {tag}", "kind": "integration"}, role)
    webapp = credential({"name": f"Web {tag}", "kind": "webapp", "redirect_uri": REDIRECT_URI})
    ok(f"organization {org}, an integration and a webapp (redirect_uri {REDIRECT_URI}), login_url {LOGIN_URL}")
    return admin, integration, webapp


def metadata(issuer, public, url):
    step("RFC 8414 metadata")
    http = instrument(requests.Session(), public, url)
    res = http.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    check(res.status_code == 200, f"HTTP {res.status_code}: {res.text[:300]}")
    meta = res.json()
    # RFC 8414 §3.3: the issuer must be the one the metadata was fetched for.
    check(meta.get("issuer") == issuer, f"issuer {meta.get('issuer')!r}, expected {issuer!r}")
    for name in ("authorization_endpoint", "token_endpoint", "revocation_endpoint", "jwks_uri"):
        check(isinstance(meta.get(name), str) and meta[name].startswith(issuer + "/"),
              f"{name} {meta.get(name)!r} is not under the issuer {issuer!r}")
    check("S256" in meta.get("code_challenge_methods_supported", []), f"no S256 PKCE: {meta!r}")
    for m in ("client_secret_basic", "client_secret_post"):
        check(m in meta.get("token_endpoint_auth_methods_supported", []), f"token endpoint lacks {m}: {meta!r}")
    for g in ("client_credentials", "authorization_code", "refresh_token"):
        check(g in meta.get("grant_types_supported", []), f"grant type {g} not listed: {meta!r}")
    ok(f"issuer {issuer}; token {meta['token_endpoint']}, authorize {meta['authorization_endpoint']}, "
       f"revoke {meta['revocation_endpoint']}")
    return meta


def endpoints(meta):
    """What OAuth2Session takes as server metadata."""
    return {k: meta[k] for k in ("authorization_endpoint", "token_endpoint", "revocation_endpoint")}


def client_credentials(platform, admin, meta, integration, public, url):
    client_id, secret = integration
    tokens = {}
    for method in ("client_secret_basic", "client_secret_post"):
        step(f"client_credentials ({method})")
        oauth = instrument(OAuth2Session(client_id, secret, token_endpoint_auth_method=method,
                                         default_timeout=TIMEOUT, **endpoints(meta)), public, url)
        token = oauth.fetch_token(grant_type="client_credentials")
        sent = last_exchange()
        check(sent["request"] == f"POST {path_of(meta['token_endpoint'])}", f"Authlib sent {sent['request']}")
        check(sent["content_type"].startswith("application/x-www-form-urlencoded"),
              f"Authlib sent {sent['content_type']!r}, expected a form body")
        if method == "client_secret_basic":
            check(sent["authorization"] == "Basic" and "client_secret=" not in sent["body"],
                  f"expected HTTP Basic and no secret in the body: {sent!r}")
        else:
            check(sent["authorization"] is None and "client_secret=" in sent["body"] and "client_id=" in sent["body"],
                  f"expected client_id and client_secret in the body and no Authorization: {sent!r}")
        check(token.get("token_type", "").lower() == "bearer", f"token_type {token.get('token_type')!r}")
        check(token.get("access_token", "").count(".") == 2, f"access_token is not a JWT: {token!r}")
        check(isinstance(token.get("expires_at"), int), f"Authlib computed no expires_at: {token!r}")
        check(token.get("scope") == "market:all", f"scope {token.get('scope')!r}")
        check("refresh_token" not in token, "client_credentials returned a refresh_token")
        v = expect_valid(platform, admin, token["access_token"], f"the {method} token")
        p = v.get("principal") or {}
        check(p.get("type") == "api_credential_token" and p.get("role_kind") == "admin",
              f"principal {p!r}")
        tokens[method] = token["access_token"]
        ok(f"Authlib sent {sent['authorization'] or 'no Authorization'} + form ({sent['body']}); "
           f"bearer token, expires_in {token.get('expires_in')}, verifies as api_credential_token")
    return tokens


def authorization_code(platform, admin, meta, webapp, public, url):
    client_id, secret = webapp
    step("authorization URL (PKCE S256)")
    oauth = instrument(OAuth2Session(client_id, secret, scope="market:all", redirect_uri=REDIRECT_URI,
                                     code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic",
                                     default_timeout=TIMEOUT, **endpoints(meta)), public, url)
    verifier = generate_token(48)
    authorize_url, state = oauth.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    q = query_of(authorize_url)
    check(q.get("code_challenge_method") == "S256" and q.get("code_challenge"), f"no PKCE in {authorize_url}")
    check(q.get("response_type") == "code" and q.get("client_id") == client_id and q.get("state") == state,
          f"authorization URL {authorize_url}")
    ok(f"Authlib built {meta['authorization_endpoint']}?{'&'.join(sorted(q))}")

    step("authorize → login hand-off")
    browser = instrument(requests.Session(), public, url)
    res = browser.get(authorize_url, allow_redirects=False, timeout=TIMEOUT)
    location = res.headers.get("Location", "")
    to_login = res.status_code
    check(to_login in (302, 303) and location.startswith(LOGIN_URL + "?"),
          f"GET authorize: HTTP {res.status_code}, Location {location!r}, body {res.text[:300]!r}")
    challenge = query_of(location).get("login_challenge")
    check(challenge, f"no login_challenge in {location}")
    request = platform.call("GET", f"/v1/oauth/login_requests/{challenge}", admin, want=(200,))
    check(request.get("client_id") == client_id and request.get("status") == "pending"
          and request.get("redirect_uri") == REDIRECT_URI, f"login request {request!r}")
    accepted = platform.call("PUT", f"/v1/oauth/login_requests/{challenge}/accept", admin,
                             {"subject": SUBJECT}, want=(200,))
    back = accepted.get("redirect_to", "")
    check(back.startswith(meta["authorization_endpoint"] + "?"), f"redirect_to {back!r}")
    res = browser.get(back, allow_redirects=False, timeout=TIMEOUT)
    callback = res.headers.get("Location", "")
    check(res.status_code in (302, 303) and callback.startswith(REDIRECT_URI + "?"),
          f"GET the login_verifier URL: HTTP {res.status_code}, Location {callback!r}, body {res.text[:300]!r}")
    ok(f"HTTP {to_login} to the login URL, accepted for {SUBJECT}, HTTP {res.status_code} back to "
       f"{REDIRECT_URI} with {', '.join(sorted(query_of(callback)))}")

    step("authorization_code (fetch_token)")
    token = oauth.fetch_token(authorization_response=callback, state=state, code_verifier=verifier)
    sent = last_exchange()
    check(sent["authorization"] == "Basic", f"expected HTTP Basic: {sent!r}")
    for param in ("grant_type=authorization_code", "code=", "code_verifier=", "redirect_uri="):
        check(param in sent["body"], f"Authlib's request lacks {param}: {sent!r}")
    check(token.get("refresh_token"), f"no refresh_token: {token!r}")
    check(token.get("owner_id") == SUBJECT and token.get("owner_type") == "customer",
          f"owner {token.get('owner_id')!r}/{token.get('owner_type')!r}, expected {SUBJECT}/customer")
    v = expect_valid(platform, admin, token["access_token"], "the authorization code's access token")
    check((v.get("principal") or {}).get("owner_id") == SUBJECT, f"principal {v.get('principal')!r}")
    ok(f"Authlib sent Basic + form ({sent['body']}); access + refresh token, owner {SUBJECT}, verifies")
    return oauth, dict(token)


def refresh(platform, admin, oauth, first):
    step("refresh_token (rotation)")
    second = dict(oauth.refresh_token(refresh_token=first["refresh_token"]))
    sent = last_exchange()
    check(sent["authorization"] == "Basic" and "grant_type=refresh_token" in sent["body"], f"{sent!r}")
    check(second.get("access_token") and second["access_token"] != first["access_token"],
          "refresh returned the same access token")
    check(second.get("refresh_token") and second["refresh_token"] != first["refresh_token"],
          "refresh did not rotate the refresh token")
    expect_valid(platform, admin, second["access_token"], "the refreshed access token")
    ok("new access token and a new refresh token; the new access token verifies")
    return second


def reuse(platform, admin, oauth, first, second):
    step("old refresh token again")
    e = expect_oauth_error("invalid_grant", lambda: oauth.refresh_token(refresh_token=first["refresh_token"]),
                           "refresh with the rotated-out refresh token")
    status = last_exchange()["status"]
    check(status == 400, f"HTTP {status} for invalid_grant; RFC 6749 §5.2 says 400")
    ok(f"Authlib raised invalid_grant ({e.description})")

    step("the grant is revoked")
    expect_oauth_error("invalid_grant", lambda: oauth.refresh_token(refresh_token=second["refresh_token"]),
                       "refresh with the newest refresh token after reuse")
    expect_revoked(platform, admin, first["access_token"], "the first access token of the grant")
    expect_revoked(platform, admin, second["access_token"], "the refreshed access token of the grant")
    ok("the newest refresh token gets invalid_grant too; both access tokens verify as revoked")


def revoke(platform, admin, meta, integration, tokens, public, url):
    step("revoke_token (RFC 7009)")
    client_id, secret = integration
    oauth = instrument(OAuth2Session(client_id, secret, default_timeout=TIMEOUT, **endpoints(meta)), public, url)
    res = oauth.revoke_token(meta["revocation_endpoint"], token=tokens["client_secret_basic"],
                             token_type_hint="access_token")
    sent = last_exchange()
    check(res.status_code == 200, f"HTTP {res.status_code}: {res.text[:300]}")
    check(sent["authorization"] == "Basic" and "token_type_hint=access_token" in sent["body"], f"{sent!r}")
    expect_revoked(platform, admin, tokens["client_secret_basic"], "the revoked access token")
    expect_valid(platform, admin, tokens["client_secret_post"], "the other client_credentials token")
    ok(f"HTTP 200 ({sent['authorization']} + {sent['body']}); that token verifies as revoked, "
       "the client's other token still verifies")


def main():
    url = env("LATCHKEY_URL")
    server_admin = env("LATCHKEY_ADMIN_TOKEN")
    public = env("LATCHKEY_PUBLIC_URL", required=False)
    issuer = public or url
    try:
        platform = Platform(url, public)
        admin, integration, webapp = setup(platform, server_admin)
        meta = metadata(issuer, public, url)
        tokens = client_credentials(platform, admin, meta, integration, public, url)
        oauth, first = authorization_code(platform, admin, meta, webapp, public, url)
        second = refresh(platform, admin, oauth, first)
        reuse(platform, admin, oauth, first, second)
        revoke(platform, admin, meta, integration, tokens, public, url)
    except Exception as e:  # noqa: BLE001 - every failure is reported the same way
        if isinstance(e, AssertionError):
            what = str(e)
        elif isinstance(e, OAuthError):
            what = f"Authlib raised {type(e).__name__} error={e.error!r} description={e.description!r}"
        else:
            what = f"{type(e).__name__}: {e}"
        print(f"FAIL [{STEP}]: {what}", file=sys.stderr)
        if WIRE:
            print("last HTTP exchanges (oldest first):", file=sys.stderr)
            for x in WIRE[-3:]:
                print("  " + json.dumps(x), file=sys.stderr)
        return 1
    print(f"OK authlib {importlib.metadata.version('authlib')} (requests {requests.__version__}): "
          "client_credentials (basic, post), authorization_code + PKCE S256, refresh rotation, "
          "reuse revokes the grant, RFC 7009 revocation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
