#!/usr/bin/env bash
# Lists stay flat (issue 12, target 5): page 1 and the last page of 100,000 Tines credentials,
# 100,000 Sunshine keys and 100,000 PingOne gateway credentials, each in <= 20 ms.
#
#   bench/lists.sh                          (both engines: ~15 minutes on this 2-core VM)
#   LISTS_ENGINE=sqlite bench/lists.sh      (or postgres)
#   LISTS_KEEP=1 bench/lists.sh             keep the seeded data, then time it again (e.g. with
#   LISTS_REUSE=DIR BINARY=new bench/lists.sh   another build: its migrations run on start)
#
# For each engine: starts `latchkey serve` pinned to core 0 (SQLite in a temp dir, or a fresh
# database on the local PostgreSQL, dropped afterwards), gives each surface its own
# organization and admin token, and seeds through the public API with bench/lists.py (stdlib
# Python on core 1, four seeders at once, LISTS_THREADS keep-alive connections each):
#   - Tines: LISTS_TEAMS teams and LISTS_TINES TEXT user credentials, round-robin over the
#     teams; LISTS_FOLDERS folders in the first team, holding 50 of its credentials each;
#   - Sunshine: LISTS_KEYS account keys (GET /v1/account_keys is the only key list that can
#     hold that many; app and integration keys stop at ten per owner), plus one app with ten
#     app keys in the same organization; and LISTS_APPS apps (cursor-paginated);
#   - PingOne: one environment, LISTS_GATEWAY_CREDENTIALS/5 gateways, five credentials each.
# On PostgreSQL the seeding runs with synchronous_commit=off for its database (seeding is not
# what is measured; one organization's writes commit one at a time) and an ANALYZE every 10 s,
# then VACUUM ANALYZE: what autovacuum does to new rows soon after (it is off on this VM's
# PostgreSQL). The server is restarted (durable settings), the script waits (up to
# LISTS_QUIET_WAIT s) until the machine is idle, then times each list LISTS_REPS times, one
# request at a time on one keep-alive connection (core 1), after an untimed request whose
# answer is checked (item count, page contents, hasMore). Last pages are found as a client
# finds them: Tines' meta.pages, the apps' ids, the account keys' next_cursor walked once (a
# build before d02c8b4 answers the whole list: that is timed). Also five deletes of an account
# key (each created just before, untimed). It prints per list: rows in the list, items in the
# answer, answer bytes, median / p90 / max time to the whole answer (ms), and the median
# against LISTS_TARGET_MS.
#
# Environment (all optional):
#   BINARY=target/release/latchkey   the server to measure
#   LISTS_ENGINE=both                sqlite, postgres or both
#   LISTS_PG=postgres://postgres@127.0.0.1:5432   the PostgreSQL server (trust auth)
#   LISTS_TINES=100000  LISTS_TEAMS=2  LISTS_FOLDERS=20  LISTS_KEYS=100000  LISTS_APPS=100000
#   LISTS_GATEWAY_CREDENTIALS=100000   (0 skips a list)
#   LISTS_THREADS=8     connections per seeder     LISTS_REPS=20   timed requests per list
#   LISTS_QUIET_WAIT=120  seconds to wait, before the timing, for the machine to be <= 10 % busy
#   LISTS_TARGET_MS=20
#   LISTS_KEEP=1        keep the temp dir (master key, state, SQLite data) and the database, to
#                       time again (LISTS_REUSE=DIR) or to try queries: sqlite3 DIR/sqlite/
#                       latchkey.db, psql LISTS_PG/$(cat DIR/postgres.db)
#   LISTS_REUSE=DIR     time a kept run again without seeding (an engine not seeded there yet
#                       is seeded into DIR); DIR and its database are kept
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(realpath "${BINARY:-$ROOT/target/release/latchkey}")
ENGINE=${LISTS_ENGINE:-both}; PG=${LISTS_PG:-postgres://postgres@127.0.0.1:5432}
case $ENGINE in both) ENGINES=(sqlite postgres) ;; sqlite|postgres) ENGINES=("$ENGINE") ;;
    *) echo "LISTS_ENGINE must be sqlite, postgres or both" >&2; exit 1 ;; esac
[ -x "$BIN" ] || { echo "no binary at $BIN (build it, or set BINARY)" >&2; exit 1; }
REUSE=${LISTS_REUSE:-}
if [ -n "$REUSE" ]; then
    T=$(realpath "$REUSE"); [ -s "$T/master.key" ] || { echo "$T is not a kept lists.sh run" >&2; exit 1; }
else
    T=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-lists.XXXXXX")
fi
PID=; DBS=()
cleanup() {
    [ -n "${ANALYZER:-}" ] && { kill "$ANALYZER" 2>/dev/null || true; }
    [ -n "$PID" ] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
    if [ "${LISTS_KEEP:-0}" = 1 ] || [ -n "$REUSE" ]; then
        echo "kept $T${DBS[*]:+ and the database(s) ${DBS[*]}} (time it again: LISTS_REUSE=$T bench/lists.sh)" >&2
    else
        for db in "${DBS[@]}"; do psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
        rm -rf "$T"
    fi
}
trap cleanup EXIT
export LATCHKEY_LISTEN=127.0.0.1:18098 LATCHKEY_LOG_LEVEL=warn
export LATCHKEY_RATE_LIMIT_PER_IP=0 LATCHKEY_RATE_LIMIT_PER_TOKEN=0 LATCHKEY_MASTER_KEY
# Kept with the data, so a kept run can be started again (LISTS_REUSE).
[ -s "$T/master.key" ] || python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())' >"$T/master.key"
LATCHKEY_MASTER_KEY=$(cat "$T/master.key")
U=http://127.0.0.1:18098
j() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
say() { printf '== %s\n' "$*" >&2; }
rss() { awk '/^VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$PID/status"; }
start_server() {
    taskset -c 0 "$BIN" serve >>"$T/$engine.log" 2>&1 & PID=$!
    for _ in $(seq 100); do curl -sf $U/healthz >/dev/null && break; sleep 0.1; done
    curl -sf $U/healthz >/dev/null || { echo "server did not start:" >&2; cat "$T/$engine.log" >&2; exit 1; }
}
stop_server() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
# A wait (up to LISTS_QUIET_WAIT s) until other processes (a build in another session) leave
# the cores to this run (as bench/run.sh).
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh" # machine_ticks, busy_pct
wait_quiet() {
    local waited=0 busy max=${LISTS_QUIET_WAIT:-120}
    while :; do
        busy=$(busy_pct)
        [ "$busy" -le 10 ] && { BUSY="$busy%"; return 0; }
        if [ "$waited" -ge "$max" ]; then
            echo "!! the machine is still ${busy}% busy with other work: the next numbers are high" >&2
            BUSY="$busy% (still busy after ${max}s)"; return 0
        fi
        [ "$waited" = 0 ] && echo "   machine ${busy}% busy (another process); waiting up to ${max}s" >&2
        waited=$((waited + 5)); sleep 4
    done
}

ROWS=$T/rows.txt; : >"$ROWS"; NOTES=()
for engine in "${ENGINES[@]}"; do
    export LATCHKEY_DATA_DIR=$T/$engine
    unset LATCHKEY_DATABASE_URL
    if [ "$engine" = postgres ]; then
        if [ -s "$T/postgres.db" ]; then db=$(cat "$T/postgres.db"); else
            db=latchkey_lists_$$_$RANDOM
            psql "$PG/postgres" -qc "CREATE DATABASE $db" >/dev/null; echo "$db" >"$T/postgres.db"
        fi
        DBS+=("$db")
        export LATCHKEY_DATABASE_URL=$PG/$db
    fi
    EARLIER=" (an earlier run)"
    if ! grep -qs '"seed"' "$T/$engine.json"; then
        EARLIER=
        # Seeding is not what is measured: on PostgreSQL its commits skip the WAL flush wait
        # (each organization's writes commit one at a time, see the create benchmark).
        [ "$engine" = postgres ] && psql "$PG/postgres" -qc "ALTER DATABASE $db SET synchronous_commit = off"
        admin=$("$BIN" token create --admin --name b | grep -o 'lk_[A-Za-z0-9]*' | tail -1)
        start_server
        # One organization per surface, each with an admin token.
        tokens={}
        for surface in tines keys apps pingone; do
            org=$(curl -sf -X POST $U/v1/organizations -H "Authorization: Bearer $admin" -H 'content-type: application/json' -d "{\"name\":\"lists $surface\"}" | j '["id"]')
            tok=$(curl -sf -X POST $U/v1/tokens -H "Authorization: Bearer $admin" -H 'content-type: application/json' -d "{\"organization_id\":\"$org\",\"name\":\"b\",\"role\":\"admin\"}" | j '["token"]')
            tokens=$(python3 -c 'import json,sys; t=json.loads(sys.argv[1]); t[sys.argv[2]]=sys.argv[3]; print(json.dumps(t))' "$tokens" "$surface" "$tok")
        done
        echo "{\"tokens\": $tokens}" >"$T/$engine.json"
        say "$engine: seeding ($(date -u '+%H:%M:%S UTC'))"
        ANALYZER=
        if [ "$engine" = postgres ]; then
            # ANALYZE every 10 s, as autovacuum would (it is off on some servers, this VM's
            # included): without it, the plans sqlx caches per connection while the table is
            # nearly empty stay in use, and some walk the whole organization (see README).
            ( while sleep 10; do psql "$LATCHKEY_DATABASE_URL" -qc ANALYZE >/dev/null 2>&1; done ) &
            ANALYZER=$!
        fi
        taskset -c 1 python3 "$ROOT/bench/lists.py" seed $U "$T/$engine.json"
        [ -n "$ANALYZER" ] && { kill "$ANALYZER"; wait "$ANALYZER" 2>/dev/null || true; ANALYZER=; }
        stop_server
        if [ "$engine" = postgres ]; then
            psql "$PG/postgres" -qc "ALTER DATABASE $db RESET synchronous_commit"
            psql "$LATCHKEY_DATABASE_URL" -qc "VACUUM ANALYZE"
        fi
    fi
    start_server   # afresh (on PostgreSQL: with durable commits again)
    wait_quiet
    say "$engine: timing (machine ${BUSY} busy before)"
    LISTS_ENGINE_NAME=$engine taskset -c 1 python3 "$ROOT/bench/lists.py" time $U "$T/$engine.json" | tee -a "$ROWS" >&2
    NOTES+=("$engine: machine $BUSY busy before the timing; $(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["seed"]; c, t = s["creates"], s["seconds"]; print(f"seeded {c:,} objects in {t:.0f} s ({c / t:,.0f}/s)")' "$T/$engine.json")$EARLIER, server RSS $(rss)")
    if [ "$engine" = sqlite ]; then
        NOTES+=("sqlite: database $(du -sh "$LATCHKEY_DATA_DIR" | cut -f1)")
    else
        NOTES+=("postgres: database $(psql "$LATCHKEY_DATABASE_URL" -Atc 'SELECT pg_size_pretty(pg_database_size(current_database()))')")
    fi
    stop_server
done

echo
echo "lists: $(date -u '+%Y-%m-%d %H:%M UTC'), $(basename "$BIN"), median of ${LISTS_REPS:-20} sequential requests each (core 1; server on core 0)"
printf '%-10s %-52s %7s %6s %11s %8s %8s %8s  %s\n' engine list rows items bytes med_ms p90_ms max_ms "<= ${LISTS_TARGET_MS:-20} ms"
cat "$ROWS"
printf '%s\n' "${NOTES[@]}"
MISSED=$(grep -c 'MISS$' "$ROWS" || true)
echo "RESULT: $MISSED of $(wc -l <"$ROWS") lists over ${LISTS_TARGET_MS:-20} ms"
