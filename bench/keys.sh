#!/usr/bin/env bash
# The scale of the key set (issue 12, target 2): memory and verify rate with many keys.
#
#   bench/keys.sh [KEYS]        (default 1,000,000; BINARY=path to measure another build)
#
# Starts `latchkey serve` on SQLite pinned to core 0, creates KEYS Sunshine account keys through
# the API with wrk (-c32, core 1), verifies every key once through /v1/authenticate (which loads
# it into the cache), and prints the server's RSS idle, after the creates and with every key
# cached. Then it alternates verify rounds (HTTP Basic, a random key per request) over 1,000
# keys and over all KEYS keys, and prints both rates, their ratio (target: all/1k >= 0.9) and
# the RSS (target: <= 400 MB with 1,000,000 keys cached).
#
# With KEYS_SOAK=SECONDS (e.g. 600), it then verifies over all KEYS keys for that long and prints
# the RSS every KEYS_SOAK_EVERY (30) seconds, with the spread (target: within ±10 %).
#
# Environment: KEYS_ROUND=8 seconds, KEYS_ROUNDS=3, BINARY, KEYS_KEEP=1 (keep the temp dir),
# KEYS_SOAK=0 seconds, KEYS_SOAK_EVERY=30 seconds.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-1000000}; ROUND=${KEYS_ROUND:-8}; ROUNDS=${KEYS_ROUNDS:-3}
BIN=$(realpath "${BINARY:-$ROOT/target/release/latchkey}")
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-keys.XXXXXX")
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    [ "${KEYS_KEEP:-0}" = 1 ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
export LATCHKEY_LISTEN=127.0.0.1:18097 LATCHKEY_DATA_DIR=$T/d LATCHKEY_LOG_LEVEL=warn
export LATCHKEY_RATE_LIMIT_PER_IP=0 LATCHKEY_RATE_LIMIT_PER_TOKEN=0 LATCHKEY_MASTER_KEY
LATCHKEY_MASTER_KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
U=http://127.0.0.1:18097
j() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
rss() { awk '/^VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$PID/status"; }
say() { printf '== %s\n' "$*" >&2; }
. "$ROOT/bench/lib.sh" # pid_ticks, machine_ticks, steal_pct
HZ=$(getconf CLK_TCK)

# run_until FILE SCRIPT URL OUT: wrk until its script writes FILE (wrk runs for its whole -d
# otherwise, whatever the script's threads do), then SIGINT: wrk stops and reports. Sets
# ELAPSED (seconds).
run_until() {
    local start
    start=$(date +%s.%N)
    taskset -c 1 wrk -t1 -c32 -d3600s -s "$2" "$3" >"$4" 2>&1 &
    local wrk=$!
    while [ ! -e "$1" ]; do
        kill -0 "$wrk" 2>/dev/null || { echo "wrk stopped early:" >&2; cat "$4" >&2; exit 1; }
        sleep 0.2
    done
    kill -INT "$wrk"; wait "$wrk" || true
    ELAPSED=$(echo "$(date +%s.%N) - $start" | bc)
}

ADMIN=$("$BIN" token create --admin --name b | grep -o 'lk_[A-Za-z0-9]*' | tail -1)
taskset -c 0 "$BIN" serve >server.log 2>&1 & PID=$!
for _ in $(seq 50); do curl -sf $U/healthz >/dev/null && break; sleep 0.1; done
ORG=$(curl -s -X POST $U/v1/organizations -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -d '{"name":"keys"}' | j '["id"]')
TOK=$(curl -s -X POST $U/v1/tokens -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -d "{\"organization_id\":\"$ORG\",\"name\":\"b\",\"role\":\"admin\"}" | j '["token"]')
IDLE=$(rss)

# --- create N keys: each wrk thread stops once the threads together have asked for N --------
cat >create.lua <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOK"
wrk.body = '{"displayName":"k"}'
local out, got = nil, 0
function init(args) out = io.open("keys.txt", "a") end
function request()
   if got >= $N then return wrk.format("GET", "/healthz", {}, "") end
   return wrk.format()
end
function response(status, headers, body)
   if status == 200 then return end
   if status ~= 201 then io.stderr:write("create: " .. status .. " " .. body .. "\n") os.exit(1) end
   local id = string.match(body, '"id":"([^"]+)"')
   local secret = string.match(body, '"secret":"([^"]+)"')
   out:write(id, ":", secret, "\n")
   got = got + 1
   if got % 1000 == 0 then out:flush() end
   if got == $N then out:flush() io.open("created", "w"):close() end
end
LUA
say "creating $N account keys"
run_until "created" create.lua "$U/v1/account_keys" create.txt
CREATE_S=$ELAPSED
python3 - "$N" <<'PY'
import base64, random, sys
lines = [l.strip() for l in open("keys.txt") if l.strip()]
n = int(sys.argv[1])
assert len(lines) >= n, f"created {len(lines)} of {n} keys"
lines = lines[:n]
random.shuffle(lines)
with open("all", "w") as f:
    for l in lines:
        f.write("Basic " + base64.b64encode(l.encode()).decode() + "\n")
PY
head -1000 all >hot
AFTER_CREATE=$(rss)

# --- verify every key once: loads the cache ---------------------------------------------------
cat >warm.lua <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOK"
local lines, i = {}, 0
function init(args) for l in io.lines("all") do lines[#lines + 1] = l end end
function request()
   i = i + 1
   -- every key sent (wrk may lose a few requests to reconnects: they load later)
   if i == #lines + 1 then io.open("warmed", "w"):close() end
   if i > #lines then return wrk.format("GET", "/healthz", {}, "") end
   return wrk.format(nil, nil, nil, '{"authorization":"' .. lines[i] .. '"}')
end
function response(status, headers, body)
   if status ~= 200 or not (string.find(body, '"valid":true', 1, true) or string.find(body, '"status"', 1, true)) then
      io.stderr:write("warm: " .. status .. " " .. body .. "\n") os.exit(1)
   end
end
LUA
say "verifying each key once"
run_until "warmed" warm.lua "$U/v1/authenticate" warm.txt
WARM_S=$ELAPSED
CACHED=$(rss)

# --- alternate rounds: 1,000 hot keys, then all N --------------------------------------------
verdicts() { python3 "$ROOT/bench/verdicts.py" "$U"; }
# good LINE V0: wrk's BENCH line shows no bad status or socket error, and the server answered a
# valid verdict to each of its requests and nothing else since V0 (bench/verdicts.py).
good() {
    local va oa vb ob req
    read -r va oa <<<"$2"; read -r vb ob < <(verdicts)
    req=$(sed -n 's/^BENCH requests=\([0-9]*\).*/\1/p' <<<"$1")
    if grep -q 'bad_status=0 invalid=0 socket_errors=0' <<<"$1" && [ $((ob - oa)) = 0 ] && [ $((vb - va)) -ge "${req:-1}" ]; then
        return 0
    fi
    echo "broken run: ${1:-no result from wrk}; the server answered $((vb - va)) valid and $((ob - oa)) other verdicts" >&2
    return 1
}
# rate FILE: one round over FILE's keys; prints "req/s p99_us busy_pct steal_pct" (busy: the
# server's share of its core; below ~95 % the load generator, not the server, set the rate;
# steal: the hypervisor's, see bench/lib.sh), nothing if the run was broken.
rate() {
    local v0 line s0 s1 m0
    v0=$(verdicts); s0=$(pid_ticks "$PID"); m0=$(machine_ticks)
    line=$(taskset -c 1 wrk -t1 -c32 -d"${ROUND}s" -s "$ROOT/bench/authenticate.lua" "$U/v1/authenticate" -- auth "$1" "$TOK" | grep '^BENCH ')
    s1=$(pid_ticks "$PID")
    local steal; steal=$(steal_pct "$m0" "$(machine_ticks)")
    good "$line" "$v0" && sed -n 's/^BENCH .* rps=\([0-9]*\) .*p99_us=\([0-9]*\) .*/\1 \2/p' <<<"$line" |
        awk -v d=$((s1 - s0)) -v hz="$HZ" -v t="$ROUND" -v st="$steal" '{ printf "%s %s %.0f %s\n", $1, $2, 100 * d / (hz * t), st }'
}
HOT=(); ALL=()
for i in $(seq "$ROUNDS"); do
    read -r r p b st < <(rate hot); [ -n "$r" ] || exit 1
    HOT+=("$r"); say "round $i, 1,000 keys: $r req/s, p99 ${p} us, server busy ${b} %, steal ${st} %"
    read -r r p b st < <(rate all); [ -n "$r" ] || exit 1
    ALL+=("$r"); say "round $i, $N keys: $r req/s, p99 ${p} us, server busy ${b} %, steal ${st} %"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
H=$(median "${HOT[@]}"); A=$(median "${ALL[@]}")
echo "keys: $N account keys, $(date -u '+%Y-%m-%d %H:%M UTC'), $(basename "$BIN")"
printf 'created in %.0f s (%.0f/s); verified each once in %.0f s (%.0f/s)\n' "$CREATE_S" "$(echo "$N / $CREATE_S" | bc -l)" "$WARM_S" "$(echo "$N / $WARM_S" | bc -l)"
echo "RSS: idle $IDLE, after the creates $AFTER_CREATE, every key cached $CACHED, after the rounds $(rss)"
echo "verify req/s (median of $ROUNDS rounds of ${ROUND}s): 1,000 keys $H, $N keys $A, ratio $(echo "scale=2; $A / $H" | bc)"

# --- soak: steady load over every key, RSS sampled ---------------------------------------------
SOAK=${KEYS_SOAK:-0}; EVERY=${KEYS_SOAK_EVERY:-30}
if [ "$SOAK" -gt 0 ]; then
    say "soak: ${SOAK}s of verification over all $N keys, RSS every ${EVERY}s"
    V0=$(verdicts)
    taskset -c 1 wrk -t1 -c32 -d"${SOAK}s" -s "$ROOT/bench/authenticate.lua" "$U/v1/authenticate" -- auth all "$TOK" >soak.txt 2>&1 &
    SOAK_WRK=$!
    SAMPLES=()
    sleep "$EVERY"
    while kill -0 "$SOAK_WRK" 2>/dev/null; do
        SAMPLES+=("$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")")
        sleep "$EVERY"
    done
    wait "$SOAK_WRK" || true
    good "$(grep '^BENCH ' soak.txt)" "$V0" || { cat soak.txt >&2; exit 1; }
    read -r r p < <(sed -n 's/^BENCH .* rps=\([0-9]*\) .*p99_us=\([0-9]*\) .*/\1 \2/p' soak.txt)
    printf '%s\n' "${SAMPLES[@]}" | awk -v rps="$r" -v p99="$p" '
        {kb[NR] = $1; if (NR == 1 || $1 < lo) lo = $1; if ($1 > hi) hi = $1}
        END {
            printf "soak: %d samples, RSS MB:", NR; for (i = 1; i <= NR; i++) printf " %.0f", kb[i] / 1024
            printf "\nsoak: RSS min %.0f MB, max %.0f MB, spread %+.1f %% of the first; %s req/s, p99 %s us\n", lo / 1024, hi / 1024, (hi - lo) * 100 / kb[1], rps, p99
        }'
fi
