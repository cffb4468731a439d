#!/usr/bin/env bash
# Schemathesis (pinned in requirements.txt) over /openapi.json, every check, against a fresh
# `latchkey serve` in an empty directory: once with an organization admin token (every
# route), once with the server admin token (the routes only it may use). Bounded by
# --max-examples. Request and failed-authentication limits are off: the run sends thousands of
# requests, many deliberately unauthenticated, from one address. Per-operation settings, each
# with its reason, are in schemathesis.toml.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
make_venv "$root/target/schemathesis-venv" "$root/tests/schemathesis/requirements.txt"
export LATCHKEY_RATE_LIMIT_PER_IP=0 LATCHKEY_RATE_LIMIT_PER_TOKEN=0 LATCHKEY_AUTH_FAILURE_LIMIT=0
start_latchkey schemathesis

org=$(post /v1/organizations "$admin" '{"name":"schemathesis"}' | json '["id"]')
token=$(post /v1/tokens "$admin" "{\"organization_id\":\"$org\",\"name\":\"schemathesis\",\"role\":\"admin\"}" | json '["token"]')

run() {
  local name=$1 bearer=$2
  shift 2
  echo "== schemathesis, $name"
  "$root/target/schemathesis-venv/bin/schemathesis" --config-file "$root/tests/schemathesis/schemathesis.toml" \
    run "$url/openapi.json" \
    --header "Authorization: Bearer $bearer" \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" --seed "${SCHEMATHESIS_SEED:-1}" \
    "$@" || { tail -50 serve.log >&2; exit 1; }
}
run "organization admin" "$token" "$@"
run "server admin" "$admin" --include-path-regex '^/v1/(organizations|tokens)' "$@"
