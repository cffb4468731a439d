#!/usr/bin/env bash
# The /v1/authenticate benchmark against its floor: one command, see bench/README.md.
#
#   bench/run.sh
#
# Builds the release binary and the bare baseline server (bench/bare.rs), starts Latchkey on
# SQLite in a temp dir pinned to core 0, seeds 100,000 Sunshine API keys (bench/seed.py), then
# drives, with wrk pinned to core 1 and the same requests for every target, in alternating
# rounds: the bare axum server answering POST /v1/authenticate with the same response body
# (also on core 0), Latchkey's /healthz, and Latchkey's /v1/authenticate with Basic keys only
# and with HS256 JWTs only. It prints req/s, p50/p90/p99 and CPU per request of each, the
# ratios Basic/bare and JWT/bare (medians of the rounds' ratios), and whether the targets
# were met.
#
# Environment (all optional):
#   BENCH_ROUND=8          seconds per target per round
#   BENCH_ROUNDS=4         rounds (each: bare, healthz, basic, jwt)
#   BENCH_CONNECTIONS=32   wrk connections        BENCH_THREADS=1   wrk threads
#   BENCH_WARMUP=5         seconds of an untimed wrk pass on /v1/authenticate first (0: none)
#   BENCH_APPS=5000        apps to seed (x 10 app keys + 1 integration x 10 keys)
#   BENCH_SEED_WORKERS=8   seeder threads
#   BENCH_LOG_LEVEL=warn   the server's LATCHKEY_LOG_LEVEL (info logs a line per request)
#   BENCH_HOT=N            the timed passes use only the first N Basic and N JWT values
#   BENCH_PERF=1           record `perf` of the server during the first JWT round
#   BENCH_SKIP_BUILD=1     use target/release/latchkey and target/release/examples/bare as they are
#   BENCH_BIN=path         measure this latchkey binary instead (an older build, say; implies no build)
#   BENCH_KEEP=1           keep the temp dir (server log, seeded values, wrk output)
#   BENCH_STRICT=1         exit 3 when a target is missed
# Exit: 0 done (targets met or not), 1 a broken run (non-200, "valid":false, socket errors
# or a failed seed), 3 targets missed with BENCH_STRICT=1.
# wrk is installed with `apt-get install -y wrk` when missing (Debian; needs root).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
ROUND=${BENCH_ROUND:-8}
ROUNDS=${BENCH_ROUNDS:-4}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-1}
WARMUP=${BENCH_WARMUP:-5}
APPS=${BENCH_APPS:-5000}
SEED_WORKERS=${BENCH_SEED_WORKERS:-8}
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
TARGET_RATIO=0.8
TARGET_P99_US=1000
SERVER_CORE=0
LOAD_CORE=1

say() { printf '\n== %s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    say "wrk is missing: apt-get install -y wrk"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y wrk >/dev/null; }
    else
        echo "install wrk (Debian/Ubuntu: apt-get install wrk) and run again" >&2
        exit 1
    fi
fi
for tool in python3 taskset curl; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
[ "$(nproc --all)" -ge 2 ] || { echo "two cores are needed: the server on one, wrk on the other" >&2; exit 1; }

# --- build -----------------------------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ] && [ -z "${BENCH_BIN:-}" ]; then
    say "building the release binary and the bare baseline"
    (cd "$ROOT" && cargo build --release --locked --bin latchkey --example bare)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-bench.XXXXXX")
SERVER_PID=
BARE_PID=
cleanup() {
    for pid in $SERVER_PID $BARE_PID; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# What is measured: the commit, "+dirty" if src/ or the manifests had uncommitted changes.
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$ROOT" status --porcelain -- src migrations Cargo.toml Cargo.lock 2>/dev/null)" ] && REV="$REV+dirty"
SOURCE_BIN=${BENCH_BIN:-$ROOT/target/release/latchkey}
[ -z "${BENCH_BIN:-}" ] || REV="$BENCH_BIN"
BUILT=$(date -u -r "$SOURCE_BIN" '+%Y-%m-%d %H:%M UTC')
# Copies, so a concurrent rebuild cannot swap a binary under the run.
BIN=$TMP/latchkey
BARE=$TMP/bare
cp "$SOURCE_BIN" "$BIN"
cp "$ROOT/target/release/examples/bare" "$BARE"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { # URL PID LOG
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || { cat "$3" >&2; exit 1; }
        sleep 0.1
    done
    echo "no answer from $1" >&2; exit 1
}

# --- server ----------------------------------------------------------------------------------
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
export LATCHKEY_LISTEN=127.0.0.1:$PORT
export LATCHKEY_DATA_DIR=$TMP/latchkey-data
export LATCHKEY_LOG_LEVEL=$LOG_LEVEL
# The request limits are off: one load generator is one client at full speed.
export LATCHKEY_RATE_LIMIT_PER_IP=0 LATCHKEY_RATE_LIMIT_PER_TOKEN=0
LATCHKEY_MASTER_KEY=$(openssl rand -base64 32 2>/dev/null ||
    python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
export LATCHKEY_MASTER_KEY
unset LATCHKEY_DATABASE_URL LATCHKEY_MASTER_KEY_FILE LATCHKEY_CONFIG 2>/dev/null || true

cd "$TMP"
ADMIN=$("$BIN" token create --admin --name bench | grep -o 'lk_[A-Za-z0-9]*' | tail -1)
[ -n "$ADMIN" ] || { echo "token create printed no token" >&2; exit 1; }

say "starting latchkey on $URL, pinned to core $SERVER_CORE (SQLite in $LATCHKEY_DATA_DIR, log level $LOG_LEVEL)"
taskset -c "$SERVER_CORE" "$BIN" serve >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
wait_up "$URL/healthz" "$SERVER_PID" "$TMP/server.log"

# --- seed ------------------------------------------------------------------------------------
say "seeding"
python3 "$BENCH_DIR/seed.py" --url "$URL" --admin-token "$ADMIN" --out-dir "$TMP" \
    --apps "$APPS" --workers "$SEED_WORKERS" | tee "$TMP/seed.txt"
SEED_S=$(sed -n 's/^SEED keys=[0-9]* seconds=\([0-9.]*\)/\1/p' "$TMP/seed.txt")
KEYS=$(sed -n 's/^SEED keys=\([0-9]*\).*/\1/p' "$TMP/seed.txt")
ORG_TOKEN=$(cat "$TMP/org_token")
# BENCH_HOT=N: the timed passes use only N keys of each kind (the rest stay cached and cold).
grep -m "${BENCH_HOT:-1000000000}" '^Basic ' "$TMP/authorizations" >"$TMP/auth-basic"
grep -m "${BENCH_HOT:-1000000000}" '^Bearer ' "$TMP/authorizations" >"$TMP/auth-jwt"

# --- the floor: a bare server answering the same request with Latchkey's own answer ------------
python3 - "$URL" "$ORG_TOKEN" "$(head -1 "$TMP/auth-basic")" "$TMP/answer.json" <<'PY'
import json, sys, urllib.request
url, token, value, out = sys.argv[1:]
req = urllib.request.Request(f"{url}/v1/authenticate", json.dumps({"authorization": value}).encode(),
                             {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
open(out, "wb").write(urllib.request.urlopen(req).read())
PY
BARE_PORT=$(free_port)
BARE_URL=http://127.0.0.1:$BARE_PORT
taskset -c "$SERVER_CORE" "$BARE" "127.0.0.1:$BARE_PORT" "$TMP/answer.json" >"$TMP/bare.log" 2>&1 &
BARE_PID=$!
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null -X POST -d '{}' "$BARE_URL/v1/authenticate" 2>/dev/null && break
    sleep 0.1
done
say "bare baseline on $BARE_URL, pinned to core $SERVER_CORE, answering $(wc -c <"$TMP/answer.json") bytes: $(cat "$TMP/answer.json")"

# --- load ------------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh" # machine_ticks, busy_pct, pid_ticks
children_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; } # wrk, once reaped

# Waits (up to BENCH_QUIET_WAIT s) until other processes leave the cores alone.
wait_quiet() {
    local waited=0 busy limit=${BENCH_MAX_BUSY:-10} max=${BENCH_QUIET_WAIT:-300}
    while :; do
        busy=$(busy_pct)
        [ "$busy" -le "$limit" ] && return 0
        if [ "$waited" -ge "$max" ]; then
            echo "!! the machine is still ${busy}% busy with other work: the next numbers are low" >&2
            return 0
        fi
        [ "$waited" = 0 ] && echo "   machine ${busy}% busy before the run (another process); waiting up to ${max}s" >&2
        waited=$((waited + 5)); sleep 4
    done
}

# run_wrk NAME PID URL DURATION [script args...]: prints wrk's output, leaves $TMP/wrk-NAME.txt
# with the BENCH line and a CPU line: the target (PID), wrk, everything else, in % of one core.
run_wrk() {
    local name=$1 pid=$2 url=$3 dur=$4
    shift 4
    wait_quiet
    # Latchkey's verdicts are checked with its own counters (see bench/verdicts.py).
    local v0=
    [ "$url" = "$URL/v1/authenticate" ] && v0=$(python3 "$BENCH_DIR/verdicts.py" "$URL")
    local s0 c0 m0 m1 t0 t1
    s0=$(pid_ticks "$pid"); c0=$(children_ticks); m0=$(machine_ticks); t0=$(date +%s.%N)
    taskset -c "$LOAD_CORE" wrk -t "$THREADS" -c "$CONNS" -d "${dur}s" --latency \
        -s "$BENCH_DIR/authenticate.lua" "$url" -- "$@" >"$TMP/wrk-$name.txt" 2>&1 || true
    t1=$(date +%s.%N); m1=$(machine_ticks)
    awk -v s0="$s0" -v s1="$(pid_ticks "$pid")" -v c0="$c0" -v c1="$(children_ticks)" \
        -v m0="$m0" -v m1="$m1" -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" -v n="$(nproc)" 'BEGIN {
            split(m0, a, " "); split(m1, b, " ");
            machine = n * 100 * (1 - (b[2] - a[2]) / (b[1] - a[1]));
            server = (s1 - s0) / hz / (t1 - t0) * 100; wrk = (c1 - c0) / hz / (t1 - t0) * 100;
            other = machine - server - wrk; if (other < 0) other = 0;
            steal = (b[1] > a[1]) ? 100 * (b[3] - a[3]) / (b[1] - a[1]) : 0;
            printf "CPU server=%.0f wrk=%.0f other=%.0f steal=%.0f\n", server, wrk, other, steal
        }' >>"$TMP/wrk-$name.txt"
    if [ -n "$v0" ]; then
        read -r va oa <<<"$v0"; read -r vb ob <<<"$(python3 "$BENCH_DIR/verdicts.py" "$URL")"
        echo "VERDICTS valid=$((vb - va)) other=$((ob - oa))" >>"$TMP/wrk-$name.txt"
    fi
    sed 's/^/    /' "$TMP/wrk-$name.txt" >&2
}
field() { sed -n "s/^BENCH.* $2=\([0-9.]*\).*/\1/p" "$TMP/wrk-$1.txt"; }
cpu() { sed -n "s/^CPU .*$2=\([0-9]*\).*/\1/p" "$TMP/wrk-$1.txt"; }

BROKEN=0
check() {
    local name=$1
    if ! grep -q '^BENCH ' "$TMP/wrk-$name.txt"; then
        echo "!! $name: wrk produced no result" >&2; BROKEN=1; return
    fi
    local bad inv sock
    bad=$(field "$name" bad_status); inv=$(field "$name" invalid); sock=$(field "$name" socket_errors)
    if [ "$bad" != 0 ] || [ "$inv" != 0 ] || [ "$sock" != 0 ] || [ "$(field "$name" requests)" = 0 ]; then
        echo "!! $name: BROKEN RUN: $bad non-200, $inv not valid, $sock socket errors" >&2
        BROKEN=1
    fi
    # Every request wrk completed must have been a valid verification, and nothing else.
    local verdicts valid other
    verdicts=$(grep '^VERDICTS ' "$TMP/wrk-$name.txt") || return 0
    valid=$(sed 's/.*valid=\([0-9-]*\).*/\1/' <<<"$verdicts"); other=$(sed 's/.*other=\([0-9-]*\).*/\1/' <<<"$verdicts")
    if [ "$other" != 0 ] || [ "$valid" -lt "$(field "$name" requests)" ]; then
        echo "!! $name: BROKEN RUN: the server answered $valid valid and $other other verdicts to $(field "$name" requests) requests" >&2
        BROKEN=1
    fi
}

# One target: NAME, the pid whose CPU it costs, and wrk's URL and script arguments.
target() {
    local name=$1
    case $name in
        bare) echo "$BARE_PID $BARE_URL/v1/authenticate auth $TMP/authorizations $ORG_TOKEN" ;;
        healthz) echo "$SERVER_PID $URL/healthz healthz" ;;
        basic) echo "$SERVER_PID $URL/v1/authenticate auth $TMP/auth-basic $ORG_TOKEN" ;;
        jwt) echo "$SERVER_PID $URL/v1/authenticate auth $TMP/auth-jwt $ORG_TOKEN" ;;
    esac
}
TARGETS=(bare healthz basic jwt)

if [ "$WARMUP" != 0 ]; then
    say "warm-up: ${WARMUP}s on /v1/authenticate (untimed)"
    # shellcheck disable=SC2046
    run_wrk warmup $(target basic | cut -d' ' -f1-2) "$WARMUP" auth "$TMP/authorizations" "$ORG_TOKEN"
    check warmup
fi

# The timed passes alternate in short rounds (bare, healthz, basic, jwt, bare, …), so drift in
# this shared machine's speed hits every target alike; each ratio is the median of the rounds'.
PERF_PID=
for i in $(seq 1 "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        read -r pid url args <<<"$(target "$t")"
        if [ "$t" = jwt ] && [ "$i" = 1 ] && [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
            perf record -F 999 -g -p "$SERVER_PID" -o "$TMP/perf.data" -- sleep "$ROUND" \
                >"$TMP/perf.log" 2>&1 &
            PERF_PID=$!
        fi
        say "round $i/$ROUNDS, $t: ${ROUND}s, $CONNS connections, $THREADS wrk thread(s)"
        # shellcheck disable=SC2086
        run_wrk "$t-$i" "$pid" "$url" "$ROUND" $args
        check "$t-$i"
    done
done
if [ -n "$PERF_PID" ]; then
    wait "$PERF_PID" || true
    perf report -i "$TMP/perf.data" --no-children --percent-limit 1 --stdio 2>/dev/null |
        grep -v '^$' | grep '%' | head -60 >"$TMP/perf-top.txt" || true
    say "perf (server, self time): $TMP/perf-top.txt"
    sed 's/^/    /' "$TMP/perf-top.txt" | head -30 >&2 || true
fi

# aggregate NAME: one BENCH and CPU line over the rounds NAME-1..N: req/s = all requests over
# all seconds; latencies and CPU = the median round.
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
aggregate() {
    local name=$1 files=("$TMP/wrk-$1"-*.txt)
    local req sec
    req=$(for f in "${files[@]}"; do sed -n 's/^BENCH .*requests=\([0-9]*\).*/\1/p' "$f"; done | awk '{ s += $1 } END { print s + 0 }')
    sec=$(for f in "${files[@]}"; do sed -n 's/^BENCH .*seconds=\([0-9.]*\).*/\1/p' "$f"; done | awk '{ s += $1 } END { print s + 0 }')
    pick() { for f in "${files[@]}"; do grep "^$1 " "$f" | tr ' ' '\n' | sed -n "s/^$2=//p"; done | median | awk '{ printf "%.0f", $1 }'; }
    {
        printf 'BENCH requests=%s seconds=%s rps=%s' "$req" "$sec" "$(awk -v r="$req" -v s="$sec" 'BEGIN { printf "%.0f", (s > 0 ? r / s : 0) }')"
        for f in p50_us p90_us p99_us; do printf ' %s=%s' "$f" "$(pick BENCH "$f")"; done
        for f in bad_status invalid socket_errors; do
            printf ' %s=%s' "$f" "$(for x in "${files[@]}"; do sed -n "s/^BENCH .*[ ]$f=\([0-9]*\).*/\1/p" "$x"; done | awk '{ s += $1 } END { print s + 0 }')"
        done
        printf '\nCPU server=%s wrk=%s other=%s steal=%s\n' "$(pick CPU server)" "$(pick CPU wrk)" "$(pick CPU other)" "$(pick CPU steal)"
    } >"$TMP/wrk-$name.txt"
}
for t in "${TARGETS[@]}"; do aggregate "$t"; done
# ratio NAME: the median over the rounds of NAME's req/s over the bare server's.
ratios() {
    for i in $(seq 1 "$ROUNDS"); do
        awk -v a="$(field "$1-$i" rps)" -v b="$(field "bare-$i" rps)" 'BEGIN { printf "%.2f\n", (b > 0 ? a / b : 0) }'
    done
}

# --- report ----------------------------------------------------------------------------------
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
echo
echo "Latchkey /v1/authenticate against a bare axum server  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "binary: ${BENCH_BIN:-target/release/latchkey} built $BUILT; $REV"
echo "$(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)); servers on core $SERVER_CORE, wrk -t$THREADS -c$CONNS on core $LOAD_CORE; $ROUNDS alternating rounds of ${ROUND}s per target"
WARM_NOTE=""; [ "$WARMUP" != 0 ] && WARM_NOTE=", then a ${WARMUP}s wrk warm-up"
echo "SQLite, $KEYS keys seeded in ${SEED_S}s, log level $LOG_LEVEL, warm cache (every key verified once after seeding$WARM_NOTE)"
echo "server_cpu: % of one core; us/req: the server's CPU per request; other: processes outside this benchmark; steal: the hypervisor's (median of the rounds)"
echo
printf '%-10s %10s %8s %8s %8s %11s %8s %8s %10s %6s\n' target req/s p50_ms p90_ms p99_ms server_cpu us/req wrk_cpu other_cpu steal
for r in "${TARGETS[@]}"; do
    printf '%-10s %10s %8s %8s %8s %10s%% %8s %7s%% %9s%% %5s%%\n' "$r" "$(field "$r" rps)" \
        "$(ms "$(field "$r" p50_us)")" "$(ms "$(field "$r" p90_us)")" "$(ms "$(field "$r" p99_us)")" \
        "$(cpu "$r" server)" "$(awk -v c="$(cpu "$r" server)" -v r="$(field "$r" rps)" 'BEGIN { printf "%.1f", (r > 0 ? c * 1e4 / r : 0) }')" \
        "$(cpu "$r" wrk)" "$(cpu "$r" other)" "$(cpu "$r" steal)"
done
echo
MET=1
for r in healthz basic jwt; do
    R=$(ratios "$r" | median)
    R=$(awk -v r="$R" 'BEGIN { printf "%.2f", r }')
    case $r in
        healthz) echo "ratio healthz/bare req/s: $R   (information; rounds: $(ratios "$r" | tr '\n' ' '))" ;;
        *)
            P99=$(field "$r" p99_us)
            echo "ratio $r/bare req/s: $R   (target >= $TARGET_RATIO; rounds: $(ratios "$r" | tr '\n' ' '))  p99 $(ms "$P99") ms (target <= $(ms $TARGET_P99_US) ms)"
            awk -v r="$R" -v t="$TARGET_RATIO" 'BEGIN { exit !(r >= t) }' || MET=0
            [ "${P99:-999999}" -le "$TARGET_P99_US" ] || MET=0
            ;;
    esac
done
# The server's own view of /v1/authenticate (all rounds and the warm-up): its latency
# histogram, to tell a server-side tail from one in the network or the load generator.
curl -fsS "$URL/metrics" >"$TMP/metrics.txt" 2>/dev/null || true
grep '^latchkey_http_request_duration_seconds_bucket{method="POST",route="/v1/authenticate",status="200"' \
    "$TMP/metrics.txt" | sed 's/.*le="\([^"]*\)"} \([0-9]*\).*/\1 \2/' | awk '
    { le[++k] = $1; n[k] = $2 } $1 == "+Inf" { total = $2 }
    END { if (total) { printf "server-side /v1/authenticate latency, all passes (share of requests within):";
        for (j = 1; j <= k; j++) if (le[j] != "+Inf" && le[j] <= 0.05) printf "  %gms %.2f%%", le[j] * 1000, 100 * n[j] / total;
        print "" } }'
grep '^latchkey_cache_loads_total' "$TMP/metrics.txt" | sed 's/^/store reads by the caches (seeding included): /' || true
RSS=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
echo "latchkey RSS after the run: $((RSS / 1024)) MB with $KEYS keys"
if [ "$BROKEN" = 1 ]; then
    echo "RESULT: BROKEN RUN (see the !! lines above): these numbers do not count"
    exit 1
elif [ "$MET" = 1 ]; then
    echo "RESULT: targets met"
else
    echo "RESULT: targets NOT met"
    [ "${BENCH_STRICT:-0}" = 1 ] && exit 3
fi
exit 0
