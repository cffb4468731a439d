#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: repeatable on a noisy machine,
# where req/s drift by more than the effects being measured. See bench/README.md.
#
#   bench/callgrind.sh [BINARY...]     (default: target/release/latchkey)
#
# For each binary: starts it under callgrind on SQLite in a temp dir, seeds CG_APPS apps
# (x 20 keys) with bench/seed.py, verifies every key once (the cache is warm), then counts
# the server's instructions over CG_REQUESTS sequential keep-alive requests of each kind —
# GET /healthz, POST /v1/authenticate with HTTP Basic keys, with HS256 JWTs, and POST
# /oauth/token (client_credentials, an integration with its secret, JSON body, tokens signed
# with CG_TOKEN_ALG) — and prints instructions per request and the ratio to healthz. Background work (the revocation feed
# read every 200 ms) is counted too, over the same wall time for each kind.
#
# Environment: CG_APPS=10  CG_REQUESTS=2000  CG_TOKEN_ALG=EdDSA  CG_KEEP=1 (keep the callgrind files, for callgrind_annotate)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
APPS=${CG_APPS:-10}
REQUESTS=${CG_REQUESTS:-2000}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
[ $# -gt 0 ] || set -- "$ROOT/target/release/latchkey"

measure() {
    local bin=$1 tmp port url pid
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-cg.XXXXXX")
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    url="http://127.0.0.1:$port"
    export LATCHKEY_LISTEN="127.0.0.1:$port" LATCHKEY_DATA_DIR="$tmp/data" LATCHKEY_LOG_LEVEL=warn \
        LATCHKEY_RATE_LIMIT_PER_IP=0 LATCHKEY_RATE_LIMIT_PER_TOKEN=0
    export LATCHKEY_MASTER_KEY
    LATCHKEY_MASTER_KEY=$(openssl rand -base64 32)
    local admin
    admin=$("$bin" token create --admin --name cg | grep -o 'lk_[A-Za-z0-9]*' | tail -1)
    (cd "$tmp" && valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
        "$bin" serve >"$tmp/server.log" 2>&1) &
    pid=$!
    for _ in $(seq 1 600); do curl -fsS "$url/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
    python3 "$BENCH_DIR/seed.py" --url "$url" --admin-token "$admin" --out-dir "$tmp" \
        --apps "$APPS" --workers 2 >/dev/null 2>&1
    python3 - "$url" "$tmp" "$REQUESTS" "${CG_TOKEN_ALG:-EdDSA}" <<'PY'
import http.client, json, subprocess, sys, urllib.parse, re
url, tmp, n, alg = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
u = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port)
token = open(f"{tmp}/org_token").read().strip()
auths = [a.strip() for a in open(f"{tmp}/authorizations") if a.strip()]
basic = [a for a in auths if a.startswith("Basic ")]
jwt = [a for a in auths if a.startswith("Bearer ")]
def authenticate(value):
    body = json.dumps({"authorization": value})
    conn.request("POST", "/v1/authenticate", body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = conn.getresponse(); data = r.read()
    assert r.status == 200 and b'"valid":true' in data, data
def call(method, path, body, content_type="application/json"):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type, "Accept": content_type}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = conn.getresponse(); data = r.read()
    assert r.status in (200, 201), (path, r.status, data)
    return json.loads(data)
# An integration API credential of the organization, its tokens signed with `alg`.
call("PUT", "/v1/oauth/settings", {"token_algorithm": alg})
jsonapi = "application/vnd.api+json"
role = call("GET", "/api/roles?filter[q][kind_eq]=admin", None, jsonapi)["data"][0]["id"]
org_id = open(f"{tmp}/org_id").read().strip()
cred = call("POST", "/api/api_credentials", {"data": {"type": "api_credentials",
    "attributes": {"name": "cg", "kind": "integration"},
    "relationships": {"organization": {"data": {"type": "organizations", "id": org_id}},
                      "role": {"data": {"type": "roles", "id": role}}}}}, jsonapi)["data"]["attributes"]
grant = json.dumps({"grant_type": "client_credentials", "client_id": cred["client_id"], "client_secret": cred["client_secret"]})
def issue(_):
    conn.request("POST", "/oauth/token", grant, {"Content-Type": "application/json"})
    r = conn.getresponse(); data = r.read()
    assert r.status == 200 and b'"access_token"' in data, data
def healthz(_):
    conn.request("GET", "/healthz"); r = conn.getresponse(); r.read(); assert r.status == 200
def instructions():
    out = subprocess.run(["callgrind_control", "-d"], capture_output=True, text=True).stdout
    files = sorted(__import__("glob").glob(f"{tmp}/cg.out*"), key=lambda p: __import__("os").path.getmtime(p))
    text = open(files[-1]).read()
    m = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    return int(m.group(1))
results = {}
for name, f, values in [("healthz", healthz, [None]), ("basic", authenticate, basic), ("jwt", authenticate, jwt), ("token", issue, [None])]:
    for i in range(200):  # warm this path
        f(values[i % len(values)])
    subprocess.run(["callgrind_control", "-z"], capture_output=True)
    for i in range(n):
        f(values[i % len(values)])
    results[name] = instructions() / n
base = results["healthz"]
for name in ("healthz", "basic", "jwt", "token"):
    print(f"  {name:8} {results[name]:>12,.0f} instructions/request   x{results[name] / base:.2f} of healthz")
PY
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ "${CG_KEEP:-0}" = 1 ]; then echo "  kept $tmp"; else rm -rf "$tmp"; fi
}

for bin in "$@"; do
    echo "$bin ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') checked out)"
    measure "$bin"
done
