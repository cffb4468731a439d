#!/usr/bin/env bash
# Many nodes (issue 12, target 6): three nodes on one PostgreSQL under verification load on all
# three; a revocation on one is refused on every node within one second (p99 over many
# revocations), and each node's verification rate stays within ±10 % while revocations flow.
#
#   bench/nodes.sh              (BINARY=path to measure another build)
#
# Creates a fresh database on the local PostgreSQL (dropped afterwards), starts three
# `latchkey serve` on it (ports 18101-18103, all pinned to core 0), creates NODES_KEYS steady
# Sunshine account keys and the keys to revoke through the API, and verifies every key once on
# every node (which loads it into each node's cache). Then it alternates rounds on core 1:
#   A  load only: one `wrk -t1 -c8` per node, HTTP Basic, a random steady key per request
#      (bench/authenticate.lua: anything but 200 {"valid":true} breaks the run);
#   B  the same load while bench/revoke.py revokes keys one at a time, spaced over the round,
#      each on a random node, and polls all three nodes every 5 ms until each refuses it;
#   C  a control: the same load and the same asks about the next B round's keys, without
#      the DELETEs (each node polled for NODES_CONTROL_MS), so B/C is what the revocations
#      themselves cost and C/A what measuring them costs (the poller shares wrk's core).
# It prints the time from each DELETE's answer to the last node's refusal (p50/p90/p99/max,
# target p99 <= 1 s), and per node the req/s in A and B and B/A (each B round over the mean of
# the A rounds before and after it, median of the rounds; target 0.90-1.10), with each round's
# CPU and the verifications that read the store (a key not cached, or a feed over 1 s old).
# ~3.5 minutes on an idle 2-core machine.
#
# Environment (all optional):
#   NODES_KEYS=10000      steady keys (never revoked: the load)
#   NODES_REVOKES=180     revocations in all, spread over the B rounds
#   NODES_ROUND=10        seconds per round
#   NODES_ROUNDS=6        B rounds, each with an A round before it, and one A after the last
#   NODES_CONNECTIONS=8   wrk connections per node
#   NODES_TIMEOUT=5       seconds a revoked key may still verify before the run is broken
#   NODES_POLL_MS=5       how often revoke.py asks each node while it waits for a refusal
#   NODES_CONTROL_MS=150  how long a C round polls each node per key (about a refusal's time)
#   NODES_PORT=18101      the first node's port (the others follow)
#   NODES_PG=postgres://postgres@127.0.0.1:5432
#   NODES_QUIET_WAIT=60   seconds, over the whole run, to wait for an idle machine before rounds
#   NODES_STRICT=1        exit 3 when a target is missed
#   NODES_KEEP=1          keep the temp dir
#   BINARY                another latchkey build
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(realpath "${BINARY:-$ROOT/target/release/latchkey}")
KEYS=${NODES_KEYS:-10000}; REVOKES=${NODES_REVOKES:-180}; ROUND=${NODES_ROUND:-10}
ROUNDS=${NODES_ROUNDS:-6}; CONNS=${NODES_CONNECTIONS:-8}; PORT=${NODES_PORT:-18101}
PG=${NODES_PG:-postgres://postgres@127.0.0.1:5432}
PER_ROUND=$(( (REVOKES + ROUNDS - 1) / ROUNDS ))
export NODES_TIMEOUT=${NODES_TIMEOUT:-5} NODES_POLL_MS=${NODES_POLL_MS:-5}
for tool in wrk psql taskset curl python3; do
    command -v $tool >/dev/null || { echo "$tool is needed (wrk: apt-get install wrk)" >&2; exit 1; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-nodes.XXXXXX")
DB=latchkey_nodes_$$
PIDS=(); WRKS=()
cleanup() {
    for p in "${WRKS[@]}" "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${WRKS[@]}" "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    [ "${NODES_KEEP:-0}" = 1 ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
psql "$PG/postgres" -qc "CREATE DATABASE $DB" >/dev/null
export LATCHKEY_DATABASE_URL=$PG/$DB LATCHKEY_LOG_LEVEL=warn LATCHKEY_MASTER_KEY
export LATCHKEY_RATE_LIMIT_PER_IP=0 LATCHKEY_RATE_LIMIT_PER_TOKEN=0
LATCHKEY_MASTER_KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
j() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
say() { printf '== %s\n' "$*" >&2; }
URLS=(); for n in 1 2 3; do URLS+=("http://127.0.0.1:$((PORT + n - 1))"); done
U=${URLS[0]}

# start N: node N on its own port and data dir, pinned to core 0; waits for /healthz.
start() {
    local n=$1 url=${URLS[$1-1]}
    LATCHKEY_LISTEN=${url#http://} LATCHKEY_DATA_DIR=$T/d$n taskset -c 0 "$BIN" serve >"node$n.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do curl -sf "$url/healthz" >/dev/null && return; sleep 0.1; done
    echo "node $n did not start:" >&2; cat "node$n.log" >&2; exit 1
}
# ticks: CPU clock ticks so far: node 1, 2, 3; this script's reaped children (wrk, revoke.py);
# the machine busy and in all; core 0 busy and in all; core 1 busy and in all.
ticks() {
    for p in "${PIDS[@]}"; do awk '{printf "%s ", $14 + $15}' "/proc/$p/stat"; done
    awk '{printf "%s ", $16 + $17}' "/proc/$$/stat"
    awk '/^cpu[01]? / {printf "%s %s ", $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9} END {print ""}' /proc/stat
}
# usage BEFORE AFTER: in % of one core, node 1, 2, 3, the load generators (wrk, revoke.py) and
# the rest (PostgreSQL and processes outside this benchmark: the machine's busy time less the
# nodes' and the load's); then how busy core 0 (the nodes) and core 1 (the load) were, in %.
usage() {
    awk -v a="$1" -v b="$2" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ");
        all = (y[6] - x[6]) / n; mine = 0
        for (i = 1; i <= 4; i++) { d = y[i] - x[i]; mine += d; printf "%.0f ", 100 * d / all }
        rest = (y[5] - x[5]) - mine; printf "%.0f ", 100 * (rest < 0 ? 0 : rest) / all
        printf "%.0f %.0f\n", 100 * (y[7] - x[7]) / (y[8] - x[8]), 100 * (y[9] - x[9]) / (y[10] - x[10]) }'
}
# loads: per node, the verifications that read the store (latchkey_cache_loads_total: a key not
# in the cache), then per node those of them that read it because the node's revocation feed
# was over a second old (why="feed_stale": the cache is not trusted then).
loads() {
    local url all="" stale=""
    for url in "${URLS[@]}"; do
        read -r a b < <(curl -sf "$url/metrics" | awk '/^latchkey_cache_loads_total\{/ {n += $NF; if (/why="feed_stale"/) s += $NF}
            END {printf "%d %d\n", n, s}')
        all+="$a "; stale+="$b "
    done
    echo "$all$stale"
}
# wait_quiet: waits until the machine is at most 10 % busy, so that another session's build or
# benchmark does not share the cores with the next round; NODES_QUIET_WAIT (60) seconds at most
# over the whole run, after which it says so and goes on.
QUIET_LEFT=${NODES_QUIET_WAIT:-60}
wait_quiet() {
    local busy a b
    while :; do
        a=$(awk '/^cpu / {print $5+$6, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat); sleep 1
        b=$(awk '/^cpu / {print $5+$6, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
        busy=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%d", 100 * (1 - (y[1] - x[1]) / (y[2] - x[2])) }')
        [ "$busy" -le 10 ] && return 0
        if [ "$QUIET_LEFT" -le 0 ]; then
            say "!! the machine is ${busy}% busy with other work: the next numbers are low"; return 0
        fi
        say "machine ${busy}% busy (other processes); waiting (${QUIET_LEFT} s left to wait)"
        QUIET_LEFT=$((QUIET_LEFT - 5)); sleep 4
    done
}

ADMIN=$(LATCHKEY_DATA_DIR=$T/d0 "$BIN" token create --admin --name b | grep -o 'lk_[A-Za-z0-9]*' | tail -1)
start 1   # the first node migrates the database; then the others
start 2; start 3
ORG=$(curl -s -X POST "$U/v1/organizations" -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -d '{"name":"nodes"}' | j '["id"]')
TOK=$(curl -s -X POST "$U/v1/tokens" -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -d "{\"organization_id\":\"$ORG\",\"name\":\"b\",\"role\":\"admin\"}" | j '["token"]')

say "creating $KEYS steady keys and $((PER_ROUND * ROUNDS)) keys to revoke"
SECONDS=0
taskset -c 1 python3 "$ROOT/bench/revoke.py" create "$U" "$TOK" $((KEYS + PER_ROUND * ROUNDS)) keys.tsv
head -n "$KEYS" keys.tsv >steady.tsv; cut -f2 steady.tsv >steady
for i in $(seq "$ROUNDS"); do sed -n "$((KEYS + (i - 1) * PER_ROUND + 1)),$((KEYS + i * PER_ROUND))p" keys.tsv >"revoke$i.tsv"; done
CREATE_S=$SECONDS
say "verifying every key once on every node"
SECONDS=0
taskset -c 1 python3 "$ROOT/bench/revoke.py" warm "$TOK" keys.tsv "${URLS[@]}"
WARM_S=$SECONDS

# load NAME: starts one wrk per node for ROUND seconds (core 1), output in NAME.N.
load() {
    WRKS=()
    # Each node's verdicts so far: each request must add a valid one (bench/verdicts.py; the
    # revocation poller's asks add more, so only "at least" is checked).
    V0=()
    for n in 1 2 3; do V0+=("$(python3 "$ROOT/bench/verdicts.py" "${URLS[$n-1]}" | cut -d' ' -f1)"); done
    for n in 1 2 3; do
        taskset -c 1 wrk -t1 -c"$CONNS" -d"${ROUND}s" --latency -s "$ROOT/bench/authenticate.lua" \
            "${URLS[$n-1]}/v1/authenticate" -- auth "$T/steady" "$TOK" >"$1.$n" 2>&1 &
        WRKS+=($!)
    done
}
# finish NAME: waits for the wrks; prints per node "rps p99_us" and breaks the run on an error.
finish() {
    for p in "${WRKS[@]}"; do wait "$p" || true; done
    WRKS=()
    local n line valid
    for n in 1 2 3; do
        line=$(grep '^BENCH ' "$1.$n") || { echo "BROKEN RUN: wrk on node $n:" >&2; cat "$1.$n" >&2; exit 1; }
        if ! grep -q 'bad_status=0 invalid=0 socket_errors=0' <<<"$line"; then
            echo "BROKEN RUN: node $n: $line" >&2; grep BAD-SAMPLE "$1.$n" >&2 || true; exit 1
        fi
        valid=$(( $(python3 "$ROOT/bench/verdicts.py" "${URLS[$n-1]}" | cut -d' ' -f1) - V0[n-1] ))
        if [ "$valid" -lt "$(sed 's/^BENCH requests=\([0-9]*\).*/\1/' <<<"$line")" ]; then
            echo "BROKEN RUN: node $n answered $valid valid verdicts: $line" >&2; exit 1
        fi
        sed 's/.* rps=\([0-9]*\) .*p99_us=\([0-9]*\) .*/\1 \2/' <<<"$line"
    done | paste -sd' '
}

wait_quiet
say "warm-up: 5 s of load"
ROUND=5 load warmup; ROUND=5 finish warmup >/dev/null
declare -A RPS READS; REST=()
# round PHASE I: one round; PHASE B revokes the keys of revoke$I.tsv while the load runs, PHASE
# C asks about them the same way without revoking them.
round() {
    local phase=$1 i=$2 before l1 l2 l3 s1 s2 s3 r1 p1 r2 p2 r3 p3 c1 c2 c3 load rest core0 core1 m1 m2 m3 t1 t2 t3
    wait_quiet
    before=$(ticks); read -r l1 l2 l3 s1 s2 s3 < <(loads)
    load "$phase$i"
    if [ "$phase" != A ]; then
        sleep 1   # the load is up; revocations end ~1 s before it does
        local d0 mode=revoke out=revocations.tsv; d0=$(awk '{print $16 + $17}' "/proc/$$/stat")
        [ "$phase" = C ] && mode=control out=control.tsv
        taskset -c 1 python3 "$ROOT/bench/revoke.py" "$mode" "$TOK" "revoke$i.tsv" $((ROUND - 2)) "$out" \
            "${URLS[@]}" >"driver$phase$i" || { cat "driver$phase$i" >&2; exit 1; }
        awk -v a="$d0" -v hz="$(getconf CLK_TCK)" -v s="$ROUND" '{printf " (revoke.py: %.0f %% of a core over the round)\n", 100 * ($16 + $17 - a) / hz / s}' \
            "/proc/$$/stat" >>"driver$phase$i"
    fi
    finish "$phase$i" >rates   # (not in a subshell: it waits for the wrks and may exit)
    read -r r1 p1 r2 p2 r3 p3 <rates
    read -r c1 c2 c3 load rest core0 core1 < <(usage "$before" "$(ticks)")
    read -r m1 m2 m3 t1 t2 t3 < <(loads)
    m1=$((m1 - l1)); m2=$((m2 - l2)); m3=$((m3 - l3)); t1=$((t1 - s1)); t2=$((t2 - s2)); t3=$((t3 - s3))
    RPS[$phase$i]="$r1 $r2 $r3"; REST+=("$rest"); READS[$phase$i]="$m1 $m2 $m3"
    say "$phase$i: req/s $r1 / $r2 / $r3 (p99 $((p1 / 1000)) / $((p2 / 1000)) / $((p3 / 1000)) ms), CPU % nodes $c1 / $c2 / $c3, load $load, rest $rest (cores busy $core0 / $core1 %), store reads $m1 / $m2 / $m3 (stale feed $t1 / $t2 / $t3)$( [ "$phase" != A ] && echo "; $(paste -sd' ' "driver$phase$i")")"
}
# A1 C1 B1 A2 C2 B2 ... B<ROUNDS> A<ROUNDS+1>: each B and C is compared with the A rounds on
# either side.
for i in $(seq "$ROUNDS"); do round A "$i"; round C "$i"; round B "$i"; done
round A $((ROUNDS + 1))

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "nodes: 3 nodes on one PostgreSQL, $(date -u '+%Y-%m-%d %H:%M UTC'), $(basename "$BIN"); $KEYS steady keys, wrk -t1 -c$CONNS per node, $((3 * ROUNDS + 1)) rounds of ${ROUND}s (A C B ... C B A)"
echo "created $((KEYS + PER_ROUND * ROUNDS)) keys in ${CREATE_S} s; verified each once on every node in ${WARM_S} s"
echo
echo "revocation -> refused, from DELETE's answer:"
STATS=$(python3 "$ROOT/bench/revoke.py" stats revocations.tsv)
grep -v '^P99_LAST_MS' <<<"$STATS"
P99=$(sed -n 's/^P99_LAST_MS //p' <<<"$STATS")
echo
printf '%-6s %10s %10s %10s %6s %6s %6s   %-26s %s\n' node "A req/s" "C req/s" "B req/s" "C/A" "B/A" "B/C" "rounds' B/A" "store reads (A, C, B)"
FAIL=0
# over PHASE N: PHASE's rounds on node N, each over the mean of the A rounds on either side.
over() {
    local i x
    for i in $(seq "$ROUNDS"); do
        x=$(cut -d' ' -f"$2" <<<"${RPS[$1$i]}")
        echo "scale=3; 2 * $x / ($(cut -d' ' -f"$2" <<<"${RPS[A$i]}") + $(cut -d' ' -f"$2" <<<"${RPS[A$((i + 1))]}"))" | bc
    done
}
# rates PHASE N COUNT: node N's req/s in PHASE's rounds 1..COUNT; reads: its store reads, summed.
rates() { local i; for i in $(seq "$3"); do cut -d' ' -f"$2" <<<"${RPS[$1$i]}"; done; }
reads() { local i; for i in $(seq "$3"); do cut -d' ' -f"$2" <<<"${READS[$1$i]}"; done | paste -sd+ | bc; }
for n in 1 2 3; do
    mapfile -t RB < <(over B "$n"); mapfile -t RC < <(over C "$n")
    ratio=$(median "${RB[@]}"); control=$(median "${RC[@]}")
    printf '%-6s %10s %10s %10s %6.2f %6.2f %6.2f   %-26s %s, %s, %s\n' "$n" \
        "$(median $(rates A "$n" $((ROUNDS + 1))))" "$(median $(rates C "$n" "$ROUNDS"))" "$(median $(rates B "$n" "$ROUNDS"))" \
        "$control" "$ratio" "$(echo "scale=3; $ratio / $control" | bc)" "$(printf '%.2f ' "${RB[@]}")" \
        "$(reads A "$n" $((ROUNDS + 1)))" "$(reads C "$n" "$ROUNDS")" "$(reads B "$n" "$ROUNDS")"
    awk -v r="$ratio" 'BEGIN {exit !(r < 0.9 || r > 1.1)}' && FAIL=1
done
echo "B/A (C/A): each B (C) round's rate over the mean of the A rounds before and after it; the median of the rounds."
echo "B/C: what the revocations cost beyond asking about them (the poller shares wrk's core)."
echo "CPU of the rest (PostgreSQL and processes outside this benchmark), % of a core, rounds A1 C1 B1 A2 ...: ${REST[*]}"
echo
awk -v p="$P99" 'BEGIN {exit !(p > 1000)}' && FAIL=1
echo "revocation p99: $P99 ms (target <= 1000 ms); B/A per node: target 0.90-1.10"
if [ $FAIL = 0 ]; then echo "RESULT: targets met"; else echo "RESULT: targets NOT met"; fi
[ "${NODES_STRICT:-0}" = 1 ] && [ $FAIL = 1 ] && exit 3
exit 0
