#!/usr/bin/env bash
# The egress benchmark: what the proxy adds to a call. See bench/README.md.
#
#   bench/egress.sh
#
# Builds the release binary and examples/upstream (a bare axum server: the upstream, and the
# floor), pins the server to core 0 and the upstream and wrk to core 1, and alternates short
# rounds of:
#   direct  GET the upstream itself with an X-Key header (the floor);
#   text    POST /api/v1/http_requests with X-Key: <<CREDENTIAL.bench_key>> (TEXT);
#   oauth   the same with Authorization: Bearer <<CREDENTIAL.bench_oauth>> (OAUTH, the
#           token cached after the first use: the cached-token path).
# Every proxied use is audited and stamps last_used_at: one durable SQLite write per use.
# Prints the median req/s, p50 and p99 of each, the added p50 latency, and the server's CPU
# time per proxied request (from /proc).
#
# Environment: BENCH_DURATION=30 (seconds per scenario, split into rounds), BENCH_ROUNDS=3,
# BENCH_CONNECTIONS=16, BENCH_SKIP_BUILD=1, BENCH_KEEP=1.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
DURATION=${BENCH_DURATION:-30}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-16}
say() { printf '\n== %s\n' "$*" >&2; }
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building the release binary and examples/upstream"
    (cd "$ROOT" && cargo build --release --locked --bin latchkey --example upstream)
fi
BIN="$ROOT/target/release/latchkey"
UPSTREAM_BIN="$ROOT/target/release/examples/upstream"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port)
LK_PORT=$(free_port)
UP="http://127.0.0.1:$UP_PORT"
LK="http://127.0.0.1:$LK_PORT"

taskset -c 1 "$UPSTREAM_BIN" "127.0.0.1:$UP_PORT" &
PIDS+=($!)
cd "$WORK"
export LATCHKEY_DATA_DIR="$WORK/data" LATCHKEY_LISTEN="127.0.0.1:$LK_PORT" LATCHKEY_LOG_LEVEL=warn \
    LATCHKEY_EGRESS_ALLOW_NETWORKS=127.0.0.0/8 LATCHKEY_EGRESS_MAX_CONCURRENT=1024 \
    LATCHKEY_RATE_LIMIT_PER_IP=0 LATCHKEY_RATE_LIMIT_PER_TOKEN=0
ADMIN=$("$BIN" token create --admin --name bench 2>/dev/null)
taskset -c 0 "$BIN" serve >"$WORK/serve.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 100); do curl -fsS "$LK/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

post() { curl -fsS -X POST "$LK$1" -H "Authorization: Bearer $2" -H 'content-type: application/json' -d "$3"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
ORG=$(post /v1/organizations "$ADMIN" '{"name":"bench"}' | field id)
TOKEN=$(post /v1/tokens "$ADMIN" "{\"organization_id\":\"$ORG\",\"name\":\"b\",\"role\":\"admin\"}" | field token)
TEAM=$(post /api/v1/teams "$TOKEN" '{"name":"Bench"}' | field id)
post /api/v1/user_credentials "$TOKEN" "{\"name\":\"bench key\",\"mode\":\"TEXT\",\"team_id\":$TEAM,\"value\":\"bench-secret-value\",\"allowed_hosts\":[\"127.0.0.1\"]}" >/dev/null
post /api/v1/user_credentials "$TOKEN" "{\"name\":\"bench oauth\",\"mode\":\"OAUTH\",\"team_id\":$TEAM,\"oauth_token_url\":\"$UP/token\",\"oauth_client_id\":\"c\",\"oauth_client_secret\":\"s\",\"allowed_hosts\":[\"127.0.0.1\"]}" >/dev/null
RUNNER=$(post /v1/tokens "$ADMIN" "{\"organization_id\":\"$ORG\",\"name\":\"r\",\"role\":\"runner\",\"team_id\":$TEAM}" | field token)
echo "{\"url\":\"$UP/thing?q=1\",\"headers\":{\"X-Key\":\"<<CREDENTIAL.bench_key>>\"}}" >"$WORK/text.json"
echo "{\"url\":\"$UP/thing?q=1\",\"headers\":{\"Authorization\":\"Bearer <<CREDENTIAL.bench_oauth>>\"}}" >"$WORK/oauth.json"
post /api/v1/http_requests "$RUNNER" "$(cat "$WORK/oauth.json")" | grep -q '"ok"' || { echo "the proxy does not answer" >&2; cat "$WORK/serve.log" >&2; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
CLK=$(getconf CLK_TCK)
ROUND=$(( DURATION / ROUNDS ))
run() { # scenario url args...
    local name=$1 url=$2; shift 2
    local before after line
    before=$(ticks)
    line=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${ROUND}s" --latency -s "$BENCH_DIR/egress.lua" "$url" -- "$@" | grep '^BENCH')
    after=$(ticks)
    echo "$name $line cpu_ticks=$((after - before))" >>"$WORK/results"
    echo "$name $line" >&2
}
say "alternating $ROUNDS rounds of ${ROUND}s: direct, text, oauth ($CONNS connections)"
for _ in $(seq "$ROUNDS"); do
    run direct "$UP/thing?q=1" direct
    run text "$LK/api/v1/http_requests" proxy "$RUNNER" "$WORK/text.json"
    run oauth "$LK/api/v1/http_requests" proxy "$RUNNER" "$WORK/oauth.json"
done

python3 - "$WORK/results" "$CLK" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, _, *kv = line.split()
    rows.setdefault(name, []).append(dict(p.split("=") for p in kv))
clk = int(sys.argv[2])
med = lambda name, key: statistics.median(float(r[key]) for r in rows[name])
bad = sum(int(r["bad"]) + int(r["socket_errors"]) for rs in rows.values() for r in rs)
d = med("direct", "rps")
print(f"{'scenario':8} {'req/s':>8} {'p50 µs':>8} {'p99 µs':>8} {'vs direct':>9} {'CPU µs/req':>10}")
for name in ("direct", "text", "oauth"):
    cpu = statistics.median(int(r["cpu_ticks"]) / clk * 1e6 / int(r["requests"]) for r in rows[name])
    cpu = "" if name == "direct" else f"{cpu:10.0f}"
    print(f"{name:8} {med(name, 'rps'):8.0f} {med(name, 'p50_us'):8.0f} {med(name, 'p99_us'):8.0f} "
          f"{med(name, 'rps') / d:9.2f} {cpu}")
print(f"added p50 latency: text {med('text', 'p50_us') - med('direct', 'p50_us'):.0f} µs, "
      f"oauth {med('oauth', 'p50_us') - med('direct', 'p50_us'):.0f} µs")
if bad:
    print(f"BROKEN: {bad} bad responses or socket errors"); sys.exit(1)
PY
