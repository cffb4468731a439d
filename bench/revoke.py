#!/usr/bin/env python3
"""Helper of bench/nodes.sh (issue 12, target 6): creates Sunshine account keys, warms them
into every node's cache, revokes keys one at a time and times how long each node takes to
refuse them. Standard library only.

    revoke.py create URL TOKEN COUNT OUT
        COUNT account keys through POST /v1/account_keys (16 threads); OUT gets one line per
        key: `id<TAB>Basic base64(id:secret)`.
    revoke.py warm TOKEN FILE URL...
        POSTs the Authorization value (last column) of every line of FILE once to
        /v1/authenticate on every URL, and requires {"valid":true}: a check of the keys that
        also loads each into every node's cache.
    revoke.py revoke TOKEN FILE SECONDS OUT URL...
        Revokes the keys of FILE one at a time, spaced over SECONDS (start to start), each on a
        node chosen at random: checks that every node still answers valid:true, sends
        DELETE /v1/account_keys/{id} (must be 204), then asks every node for the key every
        NODES_POLL_MS (5) ms (one thread per node) until each answers valid:false. Appends one line per revocation to
        OUT: node index, DELETE ms, then per node the ms from DELETE's answer to its first
        refusal. Stops early when SECONDS are up (the load is about to end). Exits 1 if a key
        is not refused by every node within NODES_TIMEOUT (5) s, or on any unexpected answer.
    revoke.py stats OUT
        Percentiles of the revocations in OUT (the last node's refusal, and per node).
"""
import base64
import concurrent.futures
import http.client
import json
import math
import os
import random
import sys
import threading
import time
import urllib.parse


class Node:
    """One keep-alive connection to a node; reconnects once if the server closed it."""

    def __init__(self, url, token):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.token = token
        self.conn = None

    def request(self, method, path, body=None):
        headers = {"Authorization": "Bearer " + self.token}
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                self.conn.request(method, path, body, headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def valid(self, authorization):
        """True or False from /v1/authenticate; raises on anything else."""
        status, body = self.request("POST", "/v1/authenticate", {"authorization": authorization})
        if status != 200:
            raise RuntimeError(f"authenticate: {status} {body[:200]!r}")
        answer = json.loads(body)
        if not isinstance(answer.get("valid"), bool):
            raise RuntimeError(f"authenticate: {body[:200]!r}")
        return answer["valid"]


def parallel(n, work):
    """Runs work(i) on n threads; re-raises the first failure."""
    errors = []

    def run(i):
        try:
            work(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def create(url, token, count, out):
    count, lock, lines = int(count), threading.Lock(), []
    left = [count]

    def work(_):
        node = Node(url, token)
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            status, body = node.request("POST", "/v1/account_keys", {"displayName": "nodes"})
            if status != 201:
                raise RuntimeError(f"create: {status} {body[:200]!r}")
            key = json.loads(body)["key"]
            basic = base64.b64encode(f"{key['id']}:{key['secret']}".encode()).decode()
            with lock:
                lines.append(f"{key['id']}\tBasic {basic}\n")

    parallel(16, work)
    random.shuffle(lines)
    with open(out, "w") as f:
        f.writelines(lines)


def keys(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def warm(token, path, *urls):
    values = [k[-1] for k in keys(path)]
    per = 2  # threads per node

    def work(i):
        node = Node(urls[i // per], token)
        for v in values[i % per::per]:
            if not node.valid(v):
                raise RuntimeError(f"warm: a fresh key is not valid on {urls[i // per]}")

    parallel(per * len(urls), work)


def revoke(token, path, seconds, out, *urls, control=False):
    """Revokes the keys of `path` one at a time over `seconds`, each on a random node, and
    records how long each node took to refuse it. With `control`, the same asks without the
    DELETE: each node is polled for NODES_CONTROL_MS (the time a refusal takes), so a round
    with it costs the nodes and the load generator's core what a revoking round does, bar the
    revocations themselves."""
    seconds = float(seconds)
    hold = float(os.environ.get("NODES_CONTROL_MS", "150")) / 1000
    poll = float(os.environ.get("NODES_POLL_MS", "5")) / 1000
    timeout = float(os.environ.get("NODES_TIMEOUT", "5"))
    nodes = [Node(u, token) for u in urls]
    # one thread per node, so a slow answer from one node does not delay asking the others
    pool = concurrent.futures.ThreadPoolExecutor(len(nodes))
    todo = keys(path)
    spacing = seconds / len(todo)
    start = time.perf_counter()
    done = 0

    def refused_after(n, authorization, answered):
        """Asks node n every `poll` s until it refuses; seconds from `answered` to that answer."""
        while True:
            asked = time.perf_counter()
            if not nodes[n].valid(authorization):
                if control:
                    raise RuntimeError(f"node {n + 1} refused a key no one revoked")
                return time.perf_counter() - answered
            if control and asked - answered >= hold:
                return asked - answered
            if asked - answered > timeout:
                return None
            time.sleep(max(0, poll - (time.perf_counter() - asked)))

    with open(out, "a") as f:
        for i, (key_id, authorization) in enumerate(todo):
            at = start + i * spacing
            now = time.perf_counter()
            if now > start + seconds:
                break
            if at > now:
                time.sleep(at - now)
            valid = list(pool.map(lambda node: node.valid(authorization), nodes))
            if not all(valid):
                raise RuntimeError(f"key {key_id} not valid on node {valid.index(False) + 1} before its revocation")
            who = random.randrange(len(nodes))
            sent = time.perf_counter()
            if not control:
                status, body = nodes[who].request("DELETE", f"/v1/account_keys/{key_id}")
                if status != 204:
                    raise RuntimeError(f"delete on node {who + 1}: {status} {body[:200]!r}")
            answered = time.perf_counter()
            refused = list(pool.map(lambda n: refused_after(n, authorization, answered), range(len(nodes))))
            if None in refused:
                late = [n + 1 for n, r in enumerate(refused) if r is None]
                raise RuntimeError(f"key {key_id} (revoked on node {who + 1}) still valid on node(s) {late} after {timeout:g} s")
            f.write("\t".join([str(who + 1), f"{(answered - sent) * 1000:.2f}"] + [f"{r * 1000:.2f}" for r in refused]) + "\n")
            done += 1
    pool.shutdown()
    print(f"{'asked about' if control else 'revoked'} {done} of {len(todo)} keys in {time.perf_counter() - start:.1f} s")


def control(token, path, seconds, out, *urls):
    revoke(token, path, seconds, out, *urls, control=True)


def pct(values, p):
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def stats(out):
    rows = [line.split("\t") for line in open(out) if line.strip()]
    if not rows:
        sys.exit("no revocations recorded")
    last = [max(float(x) for x in r[2:]) for r in rows]
    delete = [float(r[1]) for r in rows]
    n_nodes = len(rows[0]) - 2
    # per node: its refusals of keys revoked elsewhere, and of its own
    other = [float(r[2 + n]) for r in rows for n in range(n_nodes) if int(r[0]) != n + 1]
    own = [float(r[1 + int(r[0])]) for r in rows]

    def line(name, v):
        return (f"{name:<34} p50 {pct(v, 50):7.1f}  p90 {pct(v, 90):7.1f}  p99 {pct(v, 99):7.1f}"
                f"  max {max(v):7.1f} ms  (n={len(v)})")

    print(line("every node refuses (last node)", last))
    print(line("  a node that did not revoke", other))
    print(line("  the node that revoked", own))
    print(line("DELETE answered in", delete))
    print(f"P99_LAST_MS {pct(last, 99):.1f}")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    try:
        {"create": create, "warm": warm, "revoke": revoke, "control": control, "stats": stats}[command](*args)
    except RuntimeError as e:
        sys.exit(f"BROKEN RUN: {e}")
