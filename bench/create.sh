#!/usr/bin/env bash
# Durable-create throughput: Sunshine account keys (POST /v1/account_keys: a write
# transaction with its audit event per request) and apps (POST /v2/apps), each acknowledged
# only once on disk. The server runs pinned to core 0, wrk (-t1) to core 1; rounds alternate
# between the targets and, given two binaries, between the binaries. See bench/README.md.
#
#   bench/create.sh [BINARY [OTHER_BINARY]]
#
# Environment (all optional):
#   CREATE_ROUND=6           seconds per round         CREATE_ROUNDS=3   rounds
#   CREATE_CONNECTIONS=32    wrk connections (concurrent clients)
#   CREATE_DATABASE=sqlite   or `postgres`: a fresh database on the local server
#                            (CREATE_PG=postgres://postgres@127.0.0.1:5432), dropped afterwards
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BINS=()
for b in "${@:-$ROOT/target/release/latchkey}"; do BINS+=("$(realpath "$b")"); done
ROUND=${CREATE_ROUND:-6}; ROUNDS=${CREATE_ROUNDS:-3}; CONNS=${CREATE_CONNECTIONS:-32}
DATABASE=${CREATE_DATABASE:-sqlite}; PG=${CREATE_PG:-postgres://postgres@127.0.0.1:5432}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-create.XXXXXX")
PID=; DBS=()
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    for db in "${DBS[@]}"; do psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
    rm -rf "$T"
}
trap cleanup EXIT
export LATCHKEY_LOG_LEVEL=warn LATCHKEY_RATE_LIMIT_PER_IP=0 LATCHKEY_RATE_LIMIT_PER_TOKEN=0
export LATCHKEY_MASTER_KEY
LATCHKEY_MASTER_KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
U=http://127.0.0.1:18095
j() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# start N: a fresh data dir (or database) for binary N, started and given an organization,
# an admin token ($TOK) and an account key ($B64, for the /v2 routes).
start() {
    local n=$1 bin=${BINS[$1]}
    export LATCHKEY_LISTEN=127.0.0.1:18095 LATCHKEY_DATA_DIR=$T/d$n-$RANDOM
    if [ "$DATABASE" = postgres ]; then
        local db=latchkey_create_$$_$RANDOM
        psql "$PG/postgres" -qc "CREATE DATABASE $db" >/dev/null; DBS+=("$db")
        export LATCHKEY_DATABASE_URL=$PG/$db
    fi
    local admin
    admin=$("$bin" token create --admin --name b | grep -o 'lk_[A-Za-z0-9]*' | tail -1)
    taskset -c 0 "$bin" serve >"$T/s$n.log" 2>&1 & PID=$!
    for _ in $(seq 50); do curl -sf $U/healthz >/dev/null && break; sleep 0.1; done
    local org
    org=$(curl -s -X POST $U/v1/organizations -H "Authorization: Bearer $admin" -H 'content-type: application/json' -d '{"name":"p"}' | j '["id"]')
    TOK=$(curl -s -X POST $U/v1/tokens -H "Authorization: Bearer $admin" -H 'content-type: application/json' -d "{\"organization_id\":\"$org\",\"name\":\"b\",\"role\":\"admin\"}" | j '["token"]')
    local key
    key=$(curl -s -X POST $U/v1/account_keys -H "Authorization: Bearer $TOK" -H 'content-type: application/json' -d '{"displayName":"b"}')
    B64=$(printf '%s:%s' "$(echo "$key" | j '["key"]["id"]')" "$(echo "$key" | j '["key"]["secret"]')" | base64 -w0)
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

# run TARGET: one wrk round; prints created/s (only 201s count).
run() {
    local auth path body
    case $1 in
        keys) auth="Bearer $TOK"; path=/v1/account_keys; body='{"displayName":"bench key"}' ;;
        apps) auth="Basic $B64"; path=/v2/apps; body='{"displayName":"bench app"}' ;;
    esac
    cat >"$T/t.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "$auth"
wrk.body = '$body'
local threads = {}
function setup(thread) table.insert(threads, thread) end
created = 0
function response(status) if status == 201 then created = created + 1 end end
function done(summary, latency)
   local n = 0
   for _, t in ipairs(threads) do n = n + t:get("created") end
   io.write(string.format("CREATED %.0f/s p99_ms=%.1f failed=%d\n", n / (summary.duration / 1e6),
      latency:percentile(99) / 1000, summary.requests - n))
end
LUA
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${ROUND}s" -s "$T/t.lua" "$U$path" | sed -n 's/^CREATED //p'
}

echo "durable creates/s on $DATABASE, $(date -u '+%Y-%m-%d %H:%M UTC'), wrk -t1 -c$CONNS, ${ROUND}s rounds"
for i in $(seq "$ROUNDS"); do
    for n in "${!BINS[@]}"; do
        start "$n"
        for target in keys apps; do
            printf 'round %s  %-40s %-5s %s\n' "$i" "$(basename "${BINS[$n]}")" "$target" "$(run $target)"
        done
        stop
    done
done
