#!/usr/bin/env python3
"""Seed a running Latchkey with Sunshine API keys for the benchmark (stdlib only).

Creates one organization and an admin token in it, then APPS apps, each with APP_KEYS app
keys and one custom integration with INT_KEYS integration keys (default 5,000 x (10 + 10) =
100,000 keys), through the public API with a thread pool of keep-alive connections.

Writes:
  OUT_DIR/org_token        the organization's admin token (the caller of /v1/authenticate)
  OUT_DIR/org_id           the organization's id
  OUT_DIR/authorizations   one `Authorization` value per key, in random order: half
                           `Basic base64(id:secret)`, half `Bearer <HS256 JWT>` signed here
                           with the key's secret (header kid = key id, claim scope)

With --verify (the default) every value is then posted once to /v1/authenticate and must
answer 200 {"valid":true}: a check that the seeded values are right, and a pass that loads
every key into the server's cache before the timed runs.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

_local = threading.local()


class Client:
    """One keep-alive HTTP/1.1 connection per thread."""

    def __init__(self, base_url):
        u = urllib.parse.urlsplit(base_url)
        self.host, self.port = u.hostname, u.port or 80

    def conn(self):
        c = getattr(_local, "conn", None)
        if c is None:
            c = http.client.HTTPConnection(self.host, self.port, timeout=60)
            _local.conn = c
        return c

    def request(self, method, path, body, authorization, expect):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        for attempt in range(3):
            c = self.conn()
            try:
                c.request(method, path, body=data, headers=headers)
                resp = c.getresponse()
                raw = resp.read()
            except (http.client.HTTPException, OSError):
                c.close()
                _local.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.2)
                continue
            if resp.status != expect:
                raise RuntimeError(
                    f"{method} {path}: expected {expect}, got {resp.status}: {raw[:300]!r}"
                )
            return json.loads(raw) if raw else None
        raise AssertionError("unreachable")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_hs256(kid, scope, secret):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}, separators=(",", ":")).encode())
    claims = b64url(json.dumps({"scope": scope}, separators=(",", ":")).encode())
    signing_input = f"{header}.{claims}".encode()
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{claims}.{b64url(sig)}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8080")
    p.add_argument("--admin-token", required=True, help="a server-admin token (lk_…)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--apps", type=int, default=5000)
    p.add_argument("--app-keys", type=int, default=10, help="per app (the server allows 10)")
    p.add_argument("--int-keys", type=int, default=10, help="per integration (the server allows 10)")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--no-verify", dest="verify", action="store_false")
    p.add_argument("--seed", type=int, default=None, help="random seed for the order")
    args = p.parse_args()

    client = Client(args.url)
    admin = f"Bearer {args.admin_token}"
    org = client.request("POST", "/v1/organizations", {"name": "Bench"}, admin, 201)
    tok = client.request(
        "POST", "/v1/tokens", {"organization_id": org["id"], "name": "bench", "role": "admin"}, admin, 201
    )
    org_token = tok["token"]
    bearer = f"Bearer {org_token}"

    def seed_app(i):
        keys = []
        app = client.request("POST", "/v2/apps", {"displayName": f"app{i}"}, bearer, 201)["app"]
        app_id = app["id"]
        for k in range(args.app_keys):
            key = client.request("POST", f"/v2/apps/{app_id}/keys", {"displayName": f"k{k}"}, bearer, 201)["key"]
            keys.append((key["id"], key["secret"]))
        if args.int_keys:
            integ = client.request(
                "POST",
                f"/v2/apps/{app_id}/integrations",
                {
                    "type": "custom",
                    "webhooks": [{"target": "https://example.com/h", "triggers": ["conversation:message"]}],
                },
                bearer,
                201,
            )["integration"]
            for k in range(args.int_keys):
                key = client.request(
                    "POST",
                    f"/v2/apps/{app_id}/integrations/{integ['id']}/keys",
                    {"displayName": f"k{k}"},
                    bearer,
                    201,
                )["key"]
                keys.append((key["id"], key["secret"]))
        return keys

    total = args.apps * (args.app_keys + args.int_keys)
    writes = args.apps * (1 + args.app_keys + (1 + args.int_keys if args.int_keys else 0))
    print(
        f"seeding {args.apps} apps x ({args.app_keys} app keys + 1 integration x {args.int_keys} keys)"
        f" = {total} keys ({writes} POSTs, {args.workers} workers)",
        file=sys.stderr,
        flush=True,
    )
    keys = []
    start = time.monotonic()
    step = max(1, args.apps // 20)
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for n, app_keys in enumerate(pool.map(seed_app, range(args.apps)), 1):
            keys.extend(app_keys)
            if n % step == 0 or n == args.apps:
                el = time.monotonic() - start
                print(
                    f"  {n:>6}/{args.apps} apps, {len(keys):>7} keys, {el:6.1f} s, {len(keys) / el:7.0f} keys/s",
                    file=sys.stderr,
                    flush=True,
                )
    seed_s = time.monotonic() - start
    print(f"seeded {len(keys)} keys in {seed_s:.1f} s ({writes / seed_s:.0f} POST/s)", file=sys.stderr, flush=True)

    scope_of = {"app_": "app", "int_": "integration", "act_": "account"}
    rng = random.Random(args.seed)
    rng.shuffle(keys)
    values = []
    for n, (kid, secret) in enumerate(keys):
        if n % 2 == 0:
            values.append("Basic " + base64.b64encode(f"{kid}:{secret}".encode()).decode())
        else:
            values.append("Bearer " + jwt_hs256(kid, scope_of[kid[:4]], secret))

    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "authorizations"), "w") as f:
        f.write("\n".join(values) + "\n")
    with open(os.path.join(args.out_dir, "org_token"), "w") as f:
        f.write(org_token + "\n")
    with open(os.path.join(args.out_dir, "org_id"), "w") as f:
        f.write(org["id"] + "\n")
    print(f"wrote {len(values)} authorization values (half Basic, half JWT)", file=sys.stderr, flush=True)

    if args.verify:
        start = time.monotonic()
        bad = []

        def check(value):
            r = client.request("POST", "/v1/authenticate", {"authorization": value}, bearer, 200)
            if r.get("valid") is not True:
                bad.append(r)

        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(check, values, chunksize=256))
        el = time.monotonic() - start
        print(
            f"verified {len(values)} values once each in {el:.1f} s (also fills the server's key cache)",
            file=sys.stderr,
            flush=True,
        )
        if bad:
            print(f"{len(bad)} values were NOT valid, e.g. {bad[:3]}", file=sys.stderr)
            sys.exit(1)
    print(f"SEED keys={len(keys)} seconds={seed_s:.1f}")


if __name__ == "__main__":
    main()
