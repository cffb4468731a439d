#!/usr/bin/env bash
# Schemathesis (pinned in requirements.txt) over /openapi.json, every check, against a fresh
# `latchkey serve` in an empty directory: once with an organization admin token (every
# route), once with the server admin token (the routes only it may use). Bounded by
# --max-examples. Request and failed-authentication limits are off: the run sends thousands of
# requests, many deliberately unauthenticated, from one address. Per-operation settings, each
# with its reason, are in schemathesis.toml.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --locked --quiet --manifest-path "$root/Cargo.toml" --bin latchkey
bin="$root/target/debug/latchkey"

venv="$root/target/schemathesis-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/tests/schemathesis/requirements.txt"

work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export LATCHKEY_LISTEN="127.0.0.1:$port" LATCHKEY_LOG_LEVEL=warn \
  LATCHKEY_RATE_LIMIT_PER_IP=0 LATCHKEY_RATE_LIMIT_PER_TOKEN=0 LATCHKEY_AUTH_FAILURE_LIMIT=0
admin=$("$bin" token create --admin --name schemathesis 2>/dev/null)
"$bin" serve >serve.log 2>&1 &
pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 100); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

json() { "$venv/bin/python" -c "import json, sys; print(json.load(sys.stdin)$1)"; }
post() { curl -fsS -X POST "$url$1" -H "Authorization: Bearer $2" -H 'content-type: application/json' -d "$3"; }
org=$(post /v1/organizations "$admin" '{"name":"schemathesis"}' | json '["id"]')
token=$(post /v1/tokens "$admin" "{\"organization_id\":\"$org\",\"name\":\"schemathesis\",\"role\":\"admin\"}" | json '["token"]')

run() {
  local name=$1 bearer=$2
  shift 2
  echo "== schemathesis, $name"
  "$venv/bin/schemathesis" --config-file "$root/tests/schemathesis/schemathesis.toml" \
    run "$url/openapi.json" \
    --header "Authorization: Bearer $bearer" \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" --seed "${SCHEMATHESIS_SEED:-1}" \
    "$@" || { tail -50 serve.log >&2; exit 1; }
}
run "organization admin" "$token" "$@"
run "server admin" "$admin" --include-path-regex '^/v1/(organizations|tokens)' "$@"
