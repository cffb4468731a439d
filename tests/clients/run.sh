#!/usr/bin/env bash
# Runs the official Sunshine Conversations Python SDK, unmodified, against a fresh Latchkey:
# builds the binary, starts `latchkey serve` in an empty directory on a free port, makes an
# organization, a token and an account key with curl, then runs sunshine_sdk.py in a
# virtualenv (created once under target/, with the pinned requirements).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --locked --quiet --manifest-path "$root/Cargo.toml" --bin latchkey
bin="$root/target/debug/latchkey"

venv="$root/target/clients-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/tests/clients/requirements.txt"

work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export LATCHKEY_LISTEN="127.0.0.1:$port" LATCHKEY_LOG_LEVEL=warn
admin=$("$bin" token create --admin --name clients 2>/dev/null)
"$bin" serve >serve.log 2>&1 &
pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 100); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

json() { "$venv/bin/python" -c "import json, sys; print(json.load(sys.stdin)$1)"; }
post() { curl -fsS -X POST "$url$1" -H "Authorization: Bearer $2" -H 'content-type: application/json' -d "$3"; }
org=$(post /v1/organizations "$admin" '{"name":"SDK check"}' | json '["id"]')
token=$(post /v1/tokens "$admin" "{\"organization_id\":\"$org\",\"name\":\"sdk\",\"role\":\"admin\"}" | json '["token"]')
key=$(post /v1/account_keys "$token" '{"displayName":"sdk"}')

LATCHKEY_URL="$url" \
LATCHKEY_ACCOUNT_KEY_ID=$(echo "$key" | json '["key"]["id"]') \
LATCHKEY_ACCOUNT_KEY_SECRET=$(echo "$key" | json '["key"]["secret"]') \
  "$venv/bin/python" "$root/tests/clients/sunshine_sdk.py" || { cat serve.log >&2; exit 1; }
