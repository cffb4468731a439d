# Shared by the scripts that run third-party tools against a fresh Latchkey (sourced, not run).
#   make_venv DIR REQUIREMENTS a virtualenv under target/, with the pinned requirements
#   start_latchkey NAME        builds the binary, starts `latchkey serve` in an empty directory
#                              on a free port with the LATCHKEY_* settings already exported;
#                              sets $bin, $url, $admin (a server admin token) and $work, and
#                              stops the server and removes $work on exit
#   json EXPR, post PATH TOKEN BODY   read a JSON answer, POST JSON with a bearer token
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$root/target/debug/latchkey"

make_venv() {
  [ -x "$1/bin/python" ] || python3 -m venv "$1"
  "$1/bin/pip" install --quiet --disable-pip-version-check -r "$2"
}

start_latchkey() {
  cargo build --locked --quiet --manifest-path "$root/Cargo.toml" --bin latchkey
  work=$(mktemp -d)
  pid=""
  trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi; rm -rf "$work"' EXIT
  cd "$work"
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export LATCHKEY_LISTEN="127.0.0.1:$port" LATCHKEY_LOG_LEVEL="${LATCHKEY_LOG_LEVEL:-warn}"
  admin=$("$bin" token create --admin --name "$1" 2>/dev/null)
  "$bin" serve >serve.log 2>&1 &
  pid=$!
  url="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    curl -fsS "$url/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "latchkey serve did not answer" >&2
  cat serve.log >&2
  return 1
}

json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
post() { curl -fsS -X POST "$url$1" -H "Authorization: Bearer $2" -H 'content-type: application/json' -d "$3"; }
