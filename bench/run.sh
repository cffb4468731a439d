#!/usr/bin/env bash
# The /v1/authenticate benchmark: one command, see bench/README.md.
#
#   bench/run.sh
#
# Builds the release binary, starts it on SQLite in a temp dir, seeds 100,000 Sunshine API
# keys (bench/seed.py), then drives GET /healthz and POST /v1/authenticate (random keys, half
# Basic, half HS256 JWT) with wrk for the same duration and prints req/s, p50, p99 and the
# ratio authenticate/healthz, and whether the targets were met.
#
# Environment (all optional):
#   BENCH_DURATION=20      seconds per route, split into alternating rounds
#   BENCH_ROUNDS=4         healthz/authenticate rounds (1 with BENCH_PERF=1)
#   BENCH_CONNECTIONS=32   wrk connections        BENCH_THREADS=2   wrk threads
#   BENCH_WARMUP=5         seconds of an untimed wrk pass on /v1/authenticate first (0: none)
#   BENCH_APPS=5000        apps to seed (x 10 app keys + 1 integration x 10 keys)
#   BENCH_SEED_WORKERS=8   seeder threads
#   BENCH_LOG_LEVEL=warn   the server's LATCHKEY_LOG_LEVEL (info logs a line per request)
#   BENCH_SPLIT=1          also run Basic-only and JWT-only passes (same duration)
#   BENCH_PERF=1           record `perf` of the server during the authenticate run
#   BENCH_SKIP_BUILD=1     use target/release/latchkey as it is
#   BENCH_KEEP=1           keep the temp dir (server log, seeded values, wrk output)
#   BENCH_STRICT=1         exit 3 when a target is missed
# Exit: 0 done (targets met or not), 1 a broken run (non-200, "valid":false, socket errors
# or a failed seed), 3 targets missed with BENCH_STRICT=1.
# wrk is installed with `apt-get install -y wrk` when missing (Debian; needs root).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
DURATION=${BENCH_DURATION:-20}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
WARMUP=${BENCH_WARMUP:-5}
APPS=${BENCH_APPS:-5000}
SEED_WORKERS=${BENCH_SEED_WORKERS:-8}
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
TARGET_RATIO=0.8
TARGET_P99_US=2000

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
command -v python3 >/dev/null || { echo "python3 is needed (bench/seed.py)" >&2; exit 1; }

# --- build -----------------------------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building the release binary"
    (cd "$ROOT" && cargo build --release --locked --bin latchkey)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-bench.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
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
BUILT=$(date -u -r "$ROOT/target/release/latchkey" '+%Y-%m-%d %H:%M UTC')
# A copy, so a concurrent rebuild cannot swap the binary under the run.
BIN=$TMP/latchkey
cp "$ROOT/target/release/latchkey" "$BIN"

# --- server ----------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
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

say "starting latchkey on $URL (SQLite in $LATCHKEY_DATA_DIR, log level $LOG_LEVEL)"
"$BIN" serve >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "$URL/healthz" >/dev/null || { echo "server did not answer /healthz" >&2; exit 1; }

# --- seed ------------------------------------------------------------------------------------
say "seeding"
python3 "$BENCH_DIR/seed.py" --url "$URL" --admin-token "$ADMIN" --out-dir "$TMP" \
    --apps "$APPS" --workers "$SEED_WORKERS" | tee "$TMP/seed.txt"
SEED_S=$(sed -n 's/^SEED keys=[0-9]* seconds=\([0-9.]*\)/\1/p' "$TMP/seed.txt")
KEYS=$(sed -n 's/^SEED keys=\([0-9]*\).*/\1/p' "$TMP/seed.txt")
ORG_TOKEN=$(cat "$TMP/org_token")
AUTHS=$TMP/authorizations

# --- load ------------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
machine_ticks() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; } # total idle

children_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; } # wrk, once reaped

# Busy % of the whole machine over one second (a build in another session shows here).
busy_pct() {
    local a b
    a=$(machine_ticks); sleep 1; b=$(machine_ticks)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
        printf "%d", 100 * (1 - (y[2] - x[2]) / (y[1] - x[1])) }'
}
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

# run_wrk NAME PATH DURATION [script args...]: prints wrk's output, leaves $TMP/wrk-NAME.txt
# with the BENCH line and a CPU line: server, wrk, everything else, in % of one core.
run_wrk() {
    local name=$1 path=$2 dur=$3
    shift 3
    wait_quiet
    local s0 c0 m0 m1 t0 t1
    s0=$(server_ticks); c0=$(children_ticks); m0=$(machine_ticks); t0=$(date +%s.%N)
    wrk -t "$THREADS" -c "$CONNS" -d "${dur}s" --latency -s "$BENCH_DIR/authenticate.lua" \
        "$URL$path" -- "$@" >"$TMP/wrk-$name.txt" 2>&1 || true
    t1=$(date +%s.%N); m1=$(machine_ticks)
    awk -v s0="$s0" -v s1="$(server_ticks)" -v c0="$c0" -v c1="$(children_ticks)" \
        -v m0="$m0" -v m1="$m1" -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" -v n="$(nproc)" 'BEGIN {
            split(m0, a, " "); split(m1, b, " ");
            machine = n * 100 * (1 - (b[2] - a[2]) / (b[1] - a[1]));
            server = (s1 - s0) / hz / (t1 - t0) * 100; wrk = (c1 - c0) / hz / (t1 - t0) * 100;
            other = machine - server - wrk; if (other < 0) other = 0;
            printf "CPU server=%.0f wrk=%.0f other=%.0f\n", server, wrk, other
        }' >>"$TMP/wrk-$name.txt"
    sed 's/^/    /' "$TMP/wrk-$name.txt" >&2
}
field() { sed -n "s/^BENCH .*[ ]$2=\([0-9.]*\).*/\1/p" "$TMP/wrk-$1.txt"; }
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
}

if [ "$WARMUP" != 0 ]; then
    say "warm-up: ${WARMUP}s on /v1/authenticate (untimed)"
    run_wrk warmup /v1/authenticate "$WARMUP" auth "$AUTHS" "$ORG_TOKEN"
    check warmup
fi

# The timed passes alternate in short rounds (healthz, authenticate, healthz, …), so drift in
# this shared machine's speed hits both alike; the ratio is the median of the rounds' ratios.
ROUNDS=${BENCH_ROUNDS:-4}
[ "${BENCH_PERF:-0}" = 1 ] && ROUNDS=1
SLICE=$(( DURATION / ROUNDS )); [ "$SLICE" -ge 1 ] || SLICE=1
PERF_PID=
for i in $(seq 1 "$ROUNDS"); do
    say "round $i/$ROUNDS, healthz: ${SLICE}s, $CONNS connections, $THREADS threads"
    run_wrk "healthz-$i" /healthz "$SLICE" healthz
    check "healthz-$i"
    if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
        perf record -F 999 -p "$SERVER_PID" -o "$TMP/perf.data" -- sleep "$SLICE" \
            >"$TMP/perf.log" 2>&1 &
        PERF_PID=$!
    fi
    say "round $i/$ROUNDS, authenticate: ${SLICE}s, $KEYS keys (half Basic, half JWT)"
    run_wrk "authenticate-$i" /v1/authenticate "$SLICE" auth "$AUTHS" "$ORG_TOKEN"
    check "authenticate-$i"
done
if [ -n "$PERF_PID" ]; then
    wait "$PERF_PID" || true
    perf report -i "$TMP/perf.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null |
        grep -v '^$' | head -60 >"$TMP/perf-top.txt" || true
    say "perf (server, self time): $TMP/perf-top.txt"
    sed 's/^/    /' "$TMP/perf-top.txt" | grep '%' | head -25 >&2 || true
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
        printf '\nCPU server=%s wrk=%s other=%s\n' "$(pick CPU server)" "$(pick CPU wrk)" "$(pick CPU other)"
    } >"$TMP/wrk-$name.txt"
}
aggregate healthz
aggregate authenticate
ROUND_RATIOS=$(for i in $(seq 1 "$ROUNDS"); do
    awk -v a="$(field "authenticate-$i" rps)" -v h="$(field "healthz-$i" rps)" 'BEGIN { printf "%.2f\n", (h > 0 ? a / h : 0) }'
done)

ROWS=(healthz authenticate)
if [ "${BENCH_SPLIT:-0}" = 1 ]; then
    grep '^Basic ' "$AUTHS" >"$TMP/auth-basic"
    grep '^Bearer ' "$AUTHS" >"$TMP/auth-jwt"
    say "authenticate, Basic only"
    run_wrk basic /v1/authenticate "$DURATION" auth "$TMP/auth-basic" "$ORG_TOKEN"; check basic
    say "authenticate, JWT only"
    run_wrk jwt /v1/authenticate "$DURATION" auth "$TMP/auth-jwt" "$ORG_TOKEN"; check jwt
    ROWS+=(basic jwt)
fi

# --- report ----------------------------------------------------------------------------------
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
echo
echo "Latchkey /v1/authenticate benchmark  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "binary: target/release/latchkey built $BUILT; HEAD $REV when the run started"
echo "$(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), wrk -t$THREADS -c$CONNS, ${DURATION}s per route in $ROUNDS alternating rounds, on the same machine"
WARM_NOTE=""; [ "$WARMUP" != 0 ] && WARM_NOTE=", then a ${WARMUP}s wrk warm-up"
echo "SQLite, $KEYS keys seeded in ${SEED_S}s, log level $LOG_LEVEL, warm cache (every key verified once after seeding$WARM_NOTE)"
echo "CPU columns: % of one core over the run (the machine has $(nproc)00%); other = processes outside this benchmark"
echo
printf '%-14s %10s %8s %8s %8s %11s %8s %10s\n' run req/s p50_ms p90_ms p99_ms server_cpu wrk_cpu other_cpu
for r in "${ROWS[@]}"; do
    printf '%-14s %10s %8s %8s %8s %10s%% %7s%% %9s%%\n' "$r" "$(field "$r" rps)" \
        "$(ms "$(field "$r" p50_us)")" "$(ms "$(field "$r" p90_us)")" "$(ms "$(field "$r" p99_us)")" \
        "$(cpu "$r" server)" "$(cpu "$r" wrk)" "$(cpu "$r" other)"
done
RATIO=$(echo "$ROUND_RATIOS" | median)
RATIO=$(awk -v r="$RATIO" 'BEGIN { printf "%.2f", r }')
P99=$(field authenticate p99_us)
echo
echo "ratio authenticate/healthz req/s: $RATIO   (target >= $TARGET_RATIO; median of $ROUNDS alternating rounds: $(echo $ROUND_RATIOS))"
echo "authenticate p99: $(ms "$P99") ms   (target <= $(ms $TARGET_P99_US) ms)"
MET=1
awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN { exit !(r >= t) }' || MET=0
[ "${P99:-999999}" -le "$TARGET_P99_US" ] || MET=0
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
