#!/usr/bin/env bash
# Durable-create throughput on SQLite: POST /v2/apps with an account key (one write
# transaction with its audit event per request), server pinned to core 0, wrk (-t1 -c16) to
# core 1, three rounds. See bench/README.md.
#
#   bench/create.sh [BINARY] [SECONDS]      (default target/release/latchkey, 6 s)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(realpath "${1:-$ROOT/target/release/latchkey}"); DUR=${2:-6}
T=$(mktemp -d); cd $T
export LATCHKEY_LISTEN=127.0.0.1:18095 LATCHKEY_DATA_DIR=$T/d LATCHKEY_LOG_LEVEL=warn LATCHKEY_RATE_LIMIT_PER_IP=0 LATCHKEY_RATE_LIMIT_PER_TOKEN=0
export LATCHKEY_MASTER_KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
ADMIN=$($BIN token create --admin --name b | grep -o 'lk_[A-Za-z0-9]*' | tail -1)
taskset -c 0 $BIN serve > s.log 2>&1 & PID=$!
sleep 1
U=http://127.0.0.1:18095
j() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
ORG=$(curl -s -X POST $U/v1/organizations -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -d '{"name":"p"}' | j '["id"]')
TOK=$(curl -s -X POST $U/v1/tokens -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -d "{\"organization_id\":\"$ORG\",\"name\":\"b\",\"role\":\"admin\"}" | j '["token"]')
KEY=$(curl -s -X POST $U/v1/account_keys -H "Authorization: Bearer $TOK" -H 'content-type: application/json' -d '{"displayName":"b"}')
ID=$(echo "$KEY" | j '["key"]["id"]'); SEC=$(echo "$KEY" | j '["key"]["secret"]')
B64=$(printf '%s:%s' "$ID" "$SEC" | base64 -w0)
cat > t.lua <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic $B64"
wrk.body = '{"displayName":"bench app"}'
LUA
for i in 1 2 3; do taskset -c 1 wrk -t1 -c16 -d${DUR}s -s t.lua $U/v2/apps | grep -E "Requests/sec|Non-2xx"; done
kill "$PID"; wait "$PID" 2>/dev/null || true; rm -rf "$T"
