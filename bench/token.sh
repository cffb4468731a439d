#!/usr/bin/env bash
# The token-endpoint benchmark: POST /oauth/token (client_credentials, an integration with
# its secret) for RS512, RS256, ES256 and EdDSA, each beside the raw signing rate of the same
# key measured in the same run. See bench/README.md.
#
#   bench/token.sh
#
# The server runs pinned to core 0 (taskset -c 0), wrk to core 1 (-t1). The baseline is
# examples/sign_rate.rs: it opens the server's store with the same master key, loads the very
# server key that signs the endpoint's tokens and signs claims of the same shape in a loop,
# pinned to core 0 while the server idles. Rounds alternate endpoint and baseline; the script
# prints per-algorithm medians and the ratio endpoint / raw signing.
#
# Environment (all optional):
#   BENCH_DURATION=6       seconds per round          BENCH_ROUNDS=3    rounds per algorithm
#   BENCH_CONNECTIONS=16   wrk connections            BENCH_ALGS="RS512 RS256 ES256 EdDSA"
#   BENCH_SKIP_BUILD=1     use target/release/{latchkey,examples/sign_rate} as they are
#   BENCH_KEEP=1           keep the temp dir          BENCH_STRICT=1    exit 3 below target
# Targets (issue 12): RSA ≥ 0.8 × the raw signing rate; ES256 and EdDSA ≥ 30,000 tokens/s.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
DURATION=${BENCH_DURATION:-6}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-16}
ALGS=${BENCH_ALGS:-RS512 RS256 ES256 EdDSA}

say() { printf '\n== %s\n' "$*" >&2; }
. "$BENCH_DIR/lib.sh" # machine_ticks, steal_pct
for tool in wrk taskset python3 curl; do
    command -v "$tool" >/dev/null || { echo "$tool is needed (wrk: apt-get install wrk)" >&2; exit 1; }
done

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building the release binary and the signing baseline"
    (cd "$ROOT" && cargo build --release --locked --bin latchkey --example sign_rate)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-token-bench.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$ROOT" status --porcelain -- src migrations examples Cargo.toml Cargo.lock 2>/dev/null)" ] && REV="$REV+dirty"
BIN=$TMP/latchkey
SIGN=$TMP/sign_rate
cp "$ROOT/target/release/latchkey" "$BIN"
cp "$ROOT/target/release/examples/sign_rate" "$SIGN"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
export LATCHKEY_LISTEN=127.0.0.1:$PORT
export LATCHKEY_DATA_DIR=$TMP/latchkey-data
export LATCHKEY_LOG_LEVEL=warn LATCHKEY_RATE_LIMIT_PER_IP=0 LATCHKEY_RATE_LIMIT_PER_TOKEN=0
LATCHKEY_MASTER_KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
export LATCHKEY_MASTER_KEY
unset LATCHKEY_DATABASE_URL LATCHKEY_MASTER_KEY_FILE LATCHKEY_CONFIG LATCHKEY_TOKEN_RATE_LIMIT 2>/dev/null || true

cd "$TMP"
ADMIN=$("$BIN" token create --admin --name bench | grep -o 'lk_[A-Za-z0-9]*' | tail -1)
say "starting latchkey on $URL, pinned to core 0"
taskset -c 0 "$BIN" serve >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
post() { curl -fsS -X POST "$URL$1" -H "Authorization: Bearer $2" -H 'content-type: application/json' -d "$3"; }
JSONAPI=(-H 'Accept: application/vnd.api+json' -H 'Content-Type: application/vnd.api+json')

median() { python3 -c 'import sys, statistics; print(round(statistics.median(float(x) for x in sys.argv[1:])))' "$@"; }

printf '\n%-6s %14s %14s %7s %9s %9s\n' alg "endpoint/s" "raw sign/s" ratio p50 p99 >"$TMP/table"
for ALG in $ALGS; do
    ORG=$(post /v1/organizations "$ADMIN" "{\"name\":\"bench $ALG $RANDOM\"}" | json '["id"]')
    TOKEN=$(post /v1/tokens "$ADMIN" "{\"organization_id\":\"$ORG\",\"name\":\"bench\",\"role\":\"admin\"}" | json '["token"]')
    curl -fsS -X PUT "$URL/v1/oauth/settings" -H "Authorization: Bearer $TOKEN" \
        -H 'content-type: application/json' -d "{\"token_algorithm\":\"$ALG\"}" >/dev/null
    ROLE=$(curl -fsS -g "$URL/api/roles?filter[q][kind_eq]=admin" "${JSONAPI[@]}" -H "Authorization: Bearer $TOKEN" | json '["data"][0]["id"]')
    CRED=$(curl -fsS -X POST "$URL/api/api_credentials" "${JSONAPI[@]}" -H "Authorization: Bearer $TOKEN" \
        -d "{\"data\":{\"type\":\"api_credentials\",\"attributes\":{\"name\":\"bench\",\"kind\":\"integration\"},\"relationships\":{\"organization\":{\"data\":{\"type\":\"organizations\",\"id\":\"$ORG\"}},\"role\":{\"data\":{\"type\":\"roles\",\"id\":\"$ROLE\"}}}}}")
    BODY=$(echo "$CRED" | python3 -c 'import json,sys; a=json.load(sys.stdin)["data"]["attributes"]; print(json.dumps({"grant_type":"client_credentials","client_id":a["client_id"],"client_secret":a["client_secret"]}))')
    cat >"$TMP/token-$ALG.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$BODY]]
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.0f %.0f\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
LUA
    # Warm up: the server makes its key on first use, then the baseline loads that same key.
    curl -fsS -X POST "$URL/oauth/token" -H 'content-type: application/json' -d "$BODY" >/dev/null
    EP=() RAW=() P50=() P99=()
    for round in $(seq 1 "$ROUNDS"); do
        say "$ALG round $round: /oauth/token for ${DURATION}s (wrk on core 1)"
        M0=$(machine_ticks)
        OUT=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$TMP/token-$ALG.lua" "$URL/oauth/token" | grep RESULT)
        read -r _ REQS ERRS LAT50 LAT99 <<<"$OUT"
        [ "$ERRS" = 0 ] || { echo "$ERRS failed requests" >&2; tail -5 "$TMP/server.log" >&2; exit 1; }
        EP+=("$(python3 -c "print($REQS / $DURATION)")") P50+=("$LAT50") P99+=("$LAT99")
        echo "   endpoint ${EP[-1]}/s, p99 ${LAT99}us, steal $(steal_pct "$M0" "$(machine_ticks)") %" >&2
        say "$ALG round $round: raw signing for ${DURATION}s (core 0, server idle)"
        M0=$(machine_ticks)
        RAW+=("$(taskset -c 0 "$SIGN" "$ALG" "$DURATION")")
        echo "   raw ${RAW[-1]}/s, steal $(steal_pct "$M0" "$(machine_ticks)") %" >&2
    done
    E=$(median "${EP[@]}"); R=$(median "${RAW[@]}")
    printf '%-6s %14s %14s %7s %7sus %7sus\n' "$ALG" "$E" "$R" "$(python3 -c "print(f'{$E / $R:.2f}')")" \
        "$(median "${P50[@]}")" "$(median "${P99[@]}")" >>"$TMP/table"
done
echo "token endpoint vs raw signing of the same key — $REV, $(nproc) cores, ${ROUNDS}x${DURATION}s, wrk -t1 -c$CONNS"
cat "$TMP/table"

if [ "${BENCH_STRICT:-0}" = 1 ]; then
    python3 - "$TMP/table" <<'PY' || exit 3
import sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[2:] if l.strip()]
bad = [r[0] for r in rows if (r[0].startswith("RS") and float(r[3]) < 0.8)
       or (r[0] in ("ES256", "EdDSA") and float(r[1]) < 30000)]
sys.exit(1 if bad else 0)
PY
fi
