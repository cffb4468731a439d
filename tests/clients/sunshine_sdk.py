#!/usr/bin/env python3
"""Drive Latchkey with the official, unmodified Sunshine Conversations Python SDK.

The SDK is `sunshine-conversations-client` from PyPI, pinned in requirements.txt next to this file.

Environment:
  LATCHKEY_URL                  base URL of a running Latchkey, e.g. http://127.0.0.1:8080
  LATCHKEY_ACCOUNT_KEY_ID       id of an account key (HTTP Basic username)
  LATCHKEY_ACCOUNT_KEY_SECRET   its secret (HTTP Basic password)

Steps: create an app; create an app key on it, then list, get and delete it; create a custom
integration (one webhook); create an integration key on it, then list, get and delete it; check that
a wrong secret gets 401; delete the integration and the app. Secrets are shown only once: on create,
never on list or get. Exits 0 and prints one OK line on success. On any failure it prints the failing
step and exits 1.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import uuid

import sunshine_conversations_client as sc
from sunshine_conversations_client.exceptions import ApiException

STEP = "start"


def step(name):
    global STEP
    STEP = name


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def env(name):
    value = os.environ.get(name)
    if not value:
        print(f"FAIL: environment variable {name} is not set", file=sys.stderr)
        sys.exit(2)
    return value


def client(url, key_id, secret):
    cfg = sc.Configuration(host=url, username=key_id, password=secret)
    return sc.ApiClient(cfg)


def hs256_jwt(key_id, secret, scope):
    """A JWT as Sunshine's docs sign it: HS256, header kid = key id, claim scope = the key's scope."""
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key_id}).encode())
    claims = b64(json.dumps({"scope": scope}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


def expect_status(status, fn, what):
    """Run fn and require that it raises ApiException with the given HTTP status."""
    try:
        result = fn()
    except ApiException as e:
        check(e.status == status, f"{what}: expected HTTP {status}, got {e.status}: {e.body!r}")
        return
    raise AssertionError(f"{what}: expected HTTP {status}, but the call succeeded and returned {result!r}")


def run(url, key_id, secret):
    api = client(url, key_id, secret)
    apps = sc.AppsApi(api)
    app_keys = sc.AppKeysApi(api)
    integrations = sc.IntegrationsApi(api)
    int_keys = sc.CustomIntegrationApiKeysApi(api)
    tag = uuid.uuid4().hex[:8]
    app_id = None
    integration_id = None

    try:
        # The app
        step("create app")
        app_name = f"sdk-app-{tag}"
        res = apps.create_app(sc.AppCreateBody(display_name=app_name))
        check(res is not None and res.app is not None, f"create_app returned no app (HTTP status must be 201): {res!r}")
        app_id = res.app.id
        check(app_id, f"created app has no id: {res.app!r}")
        check(res.app.display_name == app_name, f"app displayName not echoed: {res.app.display_name!r}")

        step("get app")
        res = apps.get_app(app_id)
        check(res is not None and res.app is not None and res.app.id == app_id, f"get_app: {res!r}")

        # App key
        step("create app key")
        ak_name = f"sdk-app-key-{tag}"
        res = app_keys.create_app_key(app_id, sc.AppKeyCreateBody(display_name=ak_name))
        check(res is not None and res.key is not None, f"create_app_key returned no key (HTTP status must be 201): {res!r}")
        app_key = res.key
        check(isinstance(app_key.id, str) and app_key.id.startswith("app_"), f"app key id must start with 'app_': {app_key.id!r}")
        check(app_key.secret, f"app key secret missing on create: {app_key!r}")
        check(app_key.display_name == ak_name, f"app key displayName not echoed: {app_key.display_name!r}")

        step("list app keys")
        res = app_keys.list_app_keys(app_id)
        check(res is not None and res.keys is not None, f"list_app_keys returned no keys array: {res!r}")
        listed = [k for k in res.keys if k.id == app_key.id]
        check(len(listed) == 1, f"app key {app_key.id} not listed exactly once: {res.keys!r}")
        check(listed[0].display_name == ak_name, f"listed app key displayName: {listed[0].display_name!r}")
        check(all(k.secret is None for k in res.keys), "list_app_keys returned a secret; secrets are shown only on create")

        step("get app key")
        res = app_keys.get_app_key(app_id, app_key.id)
        check(res is not None and res.key is not None, f"get_app_key returned no key: {res!r}")
        check(res.key.id == app_key.id and res.key.display_name == ak_name, f"get_app_key: {res.key!r}")
        check(res.key.secret is None, "get_app_key returned the secret; secrets are shown only on create")

        step("app key signs a JWT the SDK sends as a bearer token")
        jwt_api = sc.ApiClient(sc.Configuration(host=url, access_token=hs256_jwt(app_key.id, app_key.secret, "app")))
        res = sc.AppsApi(jwt_api).get_app(app_id)
        check(res is not None and res.app is not None and res.app.id == app_id, f"get_app with a JWT: {res!r}")
        wrong_scope = sc.ApiClient(sc.Configuration(host=url, access_token=hs256_jwt(app_key.id, app_key.secret, "account")))
        expect_status(401, lambda: sc.AppsApi(wrong_scope).get_app(app_id), "a JWT whose scope is not the key's")

        # Custom integration
        step("create custom integration")
        hook = "https://example.com/hook"
        triggers = ["conversation:message"]
        int_name = f"sdk-integration-{tag}"
        body = sc.Custom(
            display_name=int_name,
            webhooks=[sc.Webhook(target=hook, triggers=triggers)],
        )
        res = integrations.create_integration(app_id, body)
        check(res is not None and res.integration is not None,
              f"create_integration returned no integration (HTTP status must be 201): {res!r}")
        integ = res.integration
        check(isinstance(integ, sc.Custom), f"integration should deserialize as Custom, got {type(integ).__name__}")
        check(integ.type == "custom", f"integration type: {integ.type!r}")
        check(integ.id, f"integration has no id: {integ!r}")
        integration_id = integ.id
        check(integ.display_name == int_name, f"integration displayName not echoed: {integ.display_name!r}")
        check(len(integ.webhooks) == 1 and integ.webhooks[0].target == hook and integ.webhooks[0].triggers == triggers,
              f"integration webhook not echoed: {integ.webhooks!r}")

        step("list integrations")
        res = integrations.list_integrations(app_id)
        check(res is not None and res.integrations is not None, f"list_integrations returned no array: {res!r}")
        check(any(i.id == integration_id for i in res.integrations),
              f"integration {integration_id} not listed: {res.integrations!r}")

        step("get integration")
        res = integrations.get_integration(app_id, integration_id)
        check(res is not None and isinstance(res.integration, sc.Custom) and res.integration.id == integration_id,
              f"get_integration: {res!r}")

        # Integration key
        step("create integration key")
        ik_name = f"sdk-int-key-{tag}"
        res = int_keys.create_custom_integration_key(app_id, integration_id, sc.IntegrationApiKey(display_name=ik_name))
        check(res is not None and res.key is not None,
              f"create_custom_integration_key returned no key (HTTP status must be 201): {res!r}")
        int_key = res.key
        check(isinstance(int_key.id, str) and int_key.id.startswith("int_"), f"integration key id must start with 'int_': {int_key.id!r}")
        check(int_key.secret, f"integration key secret missing on create: {int_key!r}")
        check(int_key.display_name == ik_name, f"integration key displayName not echoed: {int_key.display_name!r}")

        step("list integration keys")
        res = int_keys.list_custom_integration_keys(app_id, integration_id)
        check(res is not None and res.keys is not None, f"list_custom_integration_keys returned no keys array: {res!r}")
        listed = [k for k in res.keys if k.id == int_key.id]
        check(len(listed) == 1, f"integration key {int_key.id} not listed exactly once: {res.keys!r}")
        check(listed[0].display_name == ik_name, f"listed integration key displayName: {listed[0].display_name!r}")
        check(all(k.secret is None for k in res.keys), "list_custom_integration_keys returned a secret")

        step("get integration key")
        res = int_keys.get_custom_integration_key(app_id, integration_id, int_key.id)
        check(res is not None and res.key is not None, f"get_custom_integration_key returned no key: {res!r}")
        check(res.key.id == int_key.id and res.key.display_name == ik_name, f"get_custom_integration_key: {res.key!r}")
        check(res.key.secret is None, "get_custom_integration_key returned the secret")

        # Wrong secret
        step("wrong secret is rejected")
        bad = sc.AppKeysApi(client(url, key_id, secret + "-wrong"))
        expect_status(401, lambda: bad.list_app_keys(app_id), "list_app_keys with a wrong secret")

        # Deletes
        step("delete integration key")
        int_keys.delete_custom_integration_key(app_id, integration_id, int_key.id)
        expect_status(404, lambda: int_keys.get_custom_integration_key(app_id, integration_id, int_key.id),
                      "get of the deleted integration key")
        res = int_keys.list_custom_integration_keys(app_id, integration_id)
        check(not any(k.id == int_key.id for k in (res.keys or [])), "deleted integration key is still listed")

        step("delete app key")
        app_keys.delete_app_key(app_id, app_key.id)
        expect_status(404, lambda: app_keys.get_app_key(app_id, app_key.id), "get of the deleted app key")
        res = app_keys.list_app_keys(app_id)
        check(not any(k.id == app_key.id for k in (res.keys or [])), "deleted app key is still listed")

        step("delete integration")
        integrations.delete_integration(app_id, integration_id)
        expect_status(404, lambda: integrations.get_integration(app_id, integration_id), "get of the deleted integration")
        integration_id = None

        step("delete app")
        apps.delete_app(app_id)
        expect_status(404, lambda: apps.get_app(app_id), "get of the deleted app")
        app_id = None
    finally:
        # Best-effort cleanup after a failure; errors here must not hide the original one.
        for fn in (
            (lambda: integrations.delete_integration(app_id, integration_id)) if app_id and integration_id else None,
            (lambda: apps.delete_app(app_id)) if app_id else None,
        ):
            if fn is not None:
                try:
                    fn()
                except Exception:
                    pass

    return app_key.id, int_key.id


def main():
    url = env("LATCHKEY_URL").rstrip("/")
    key_id = env("LATCHKEY_ACCOUNT_KEY_ID")
    secret = env("LATCHKEY_ACCOUNT_KEY_SECRET")
    try:
        app_key_id, int_key_id = run(url, key_id, secret)
    except AssertionError as e:
        print(f"FAIL [{STEP}]: {e}", file=sys.stderr)
        return 1
    except ApiException as e:
        print(f"FAIL [{STEP}]: unexpected HTTP {e.status} {e.reason}: {e.body!r}", file=sys.stderr)
        return 1
    except Exception as e:  # deserialization errors (pydantic ValidationError, discriminator errors), connection errors
        print(f"FAIL [{STEP}]: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"OK sunshine-conversations-client {sc.__version__}: app key {app_key_id} and integration key "
          f"{int_key_id} created, listed, fetched and deleted; wrong secret got 401")
    return 0


if __name__ == "__main__":
    sys.exit(main())
