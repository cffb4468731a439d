#!/usr/bin/env python3
"""Seeds and times the long lists for bench/lists.sh (issue 12, target 5). Stdlib only.

    lists.py seed URL STATE     seeds through the public API, writes STATE (JSON)
    lists.py time URL STATE     times the lists named in STATE, prints one table row each
                                (median, p90 and max of LISTS_REPS requests, after a checked one)

`seed` reads the tokens from STATE (written by lists.sh: one organization per surface, so
PostgreSQL's per-organization audit chain does not serialize the four seeders against each
other) and the sizes from the environment (see lists.sh). Each seeder runs on its own
threads with one keep-alive connection per thread; every answer must be the documented
status, else the run stops. The four seeders run at the same time.
"""
import http.client
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse


def env_int(name, default):
    return int(os.environ.get(name, default))


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects (and retries once) if it breaks."""

    def __init__(self, url, token):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn = None

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                self.conn.request(method, path, data, self.headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, OSError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class Failed(Exception):
    pass


def expect(status, body, want, what):
    if status not in want:
        raise Failed(f"{what}: HTTP {status} {body[:300]!r}")


def run_threads(n, work, label, total, progress):
    """Runs work(client_index, next_item) on n threads; next_item() hands out 0..total-1."""
    lock = threading.Lock()
    state = {"next": 0, "error": None}

    def next_item():
        with lock:
            if state["error"] is not None or state["next"] >= total:
                return None
            i = state["next"]
            state["next"] += 1
            progress[label] = i
            return i

    def body(t):
        try:
            work(t, next_item)
        except BaseException as e:  # noqa: BLE001 - reported below
            with lock:
                state["error"] = state["error"] or e

    threads = [threading.Thread(target=body, args=(t,), daemon=True) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if state["error"] is not None:
        raise Failed(f"{label}: {state['error']}")
    progress[label] = total


def seed(url, path):
    st = json.load(open(path))
    threads = env_int("LISTS_THREADS", 8)
    n_tines = env_int("LISTS_TINES", 100_000)
    n_teams = env_int("LISTS_TEAMS", 2)
    n_folders = env_int("LISTS_FOLDERS", 20)
    n_keys = env_int("LISTS_KEYS", 100_000)
    n_apps = env_int("LISTS_APPS", 100_000)
    n_creds = env_int("LISTS_GATEWAY_CREDENTIALS", 100_000)
    per_gateway = 5
    n_gateways = (n_creds + per_gateway - 1) // per_gateway
    progress, seconds = {}, {}

    def timed(label, f):
        def run():
            start = time.monotonic()
            f()
            seconds[label] = time.monotonic() - start
        return run

    # --- Tines: teams, then credentials (mode TEXT) spread round-robin over the teams ------
    def tines():
        c = Client(url, st["tokens"]["tines"])
        teams = []
        for t in range(n_teams):
            s, b = c.request("POST", "/api/v1/teams", {"name": f"bench team {t}"})
            expect(s, b, (201,), "team")
            teams.append(json.loads(b)["id"])
        st["tines_teams"] = teams
        # Folders in the first team, holding 50 credentials each: the first ones created (a
        # create into a folder reads the folder with its size, which scans the table today).
        folders = []
        for f in range(n_folders):
            s, b = c.request("POST", "/api/v1/folders", {"name": f"bench folder {f}", "team_id": teams[0]})
            expect(s, b, (201,), "folder")
            folders.append(json.loads(b)["id"])
        st["tines_folders"] = folders
        clients = [Client(url, st["tokens"]["tines"]) for _ in range(threads)]

        def work(t, next_item):
            while (i := next_item()) is not None:
                body = {"name": f"bench credential {i:07d}", "mode": "TEXT",
                        "team_id": teams[i % n_teams], "value": f"secret-{i}",
                        "description": "a TEXT credential seeded by bench/lists.sh"}
                if folders and i % n_teams == 0 and i < 50 * n_folders * n_teams:
                    body["folder_id"] = folders[(i // n_teams) % n_folders]
                s, b = clients[t].request("POST", "/api/v1/user_credentials", body)
                # 409: a retried create whose first attempt went through.
                expect(s, b, (201, 409), "user credential")
        run_threads(threads, work, "tines", n_tines, progress)

    # --- Sunshine account keys ------------------------------------------------------------
    def keys():
        clients = [Client(url, st["tokens"]["keys"]) for _ in range(threads)]
        first = {}

        def work(t, next_item):
            while (i := next_item()) is not None:
                s, b = clients[t].request("POST", "/v1/account_keys", {"displayName": f"key {i}"})
                expect(s, b, (201,), "account key")
                if i < 6:
                    first[i] = json.loads(b)["key"]["id"]
        run_threads(threads, work, "keys", n_keys, progress)
        if n_keys:
            st["account_keys"] = [first[i] for i in sorted(first)]
        # One app with ten app keys in the same organization: a short list beside 100,000 keys.
        c = clients[0]
        s, b = c.request("POST", "/v2/apps", {"displayName": "keyed app"})
        expect(s, b, (201,), "app")
        app = json.loads(b)["app"]["id"]
        for k in range(10):
            s, b = c.request("POST", f"/v2/apps/{app}/keys", {"displayName": f"app key {k}"})
            expect(s, b, (201,), "app key")
        st["keyed_app"] = app

    # --- Sunshine apps -------------------------------------------------------------------------
    def apps():
        clients = [Client(url, st["tokens"]["apps"]) for _ in range(threads)]
        ids = [None] * n_apps

        def work(t, next_item):
            while (i := next_item()) is not None:
                s, b = clients[t].request("POST", "/v2/apps", {"displayName": f"app {i}"})
                expect(s, b, (201,), "app")
                ids[i] = json.loads(b)["app"]["id"]
        run_threads(threads, work, "apps", n_apps, progress)
        st["app_ids"] = sorted(ids)

    # --- PingOne: one environment, gateways, five credentials each ----------------------------
    def pingone():
        c = Client(url, st["tokens"]["pingone"])
        s, b = c.request("POST", "/v1/environments", {"name": "bench environment"})
        expect(s, b, (201,), "environment")
        env = json.loads(b)["id"]
        clients = [Client(url, st["tokens"]["pingone"]) for _ in range(threads)]
        gateways = [None] * n_gateways

        def make_gateways(t, next_item):
            while (i := next_item()) is not None:
                s, b = clients[t].request("POST", f"/v1/environments/{env}/gateways",
                                          {"name": f"gateway {i:06d}", "type": "LDAP", "enabled": True})
                expect(s, b, (201,), "gateway")
                gateways[i] = json.loads(b)["id"]
        run_threads(threads, make_gateways, "gateways", n_gateways, progress)

        def make_credentials(t, next_item):
            # A thread takes a whole gateway: its five creates queue on the gateway's lock.
            while (g := next_item()) is not None:
                want = min(per_gateway, n_creds - g * per_gateway)
                for _ in range(want):
                    s, b = clients[t].request(
                        "POST", f"/v1/environments/{env}/gateways/{gateways[g]}/credentials")
                    # 400: a retried create whose first attempt went through (limit of five).
                    expect(s, b, (201, 400), "gateway credential")
        run_threads(threads, make_credentials, "gateway credentials (gateways done)", n_gateways, progress)
        st["environment"] = env
        st["gateways"] = [gateways[0], gateways[-1]] if gateways else []
        st["gateway_count"] = n_gateways

    jobs = [("tines", tines), ("keys", keys), ("apps", apps), ("pingone", pingone)]
    errors = []

    def guard(label, f):
        def run():
            try:
                f()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(f"{label}: {e}")
        return run

    start = time.monotonic()
    workers = [threading.Thread(target=guard(label, timed(label, f)), daemon=True) for label, f in jobs]
    for w in workers:
        w.start()
    last = start
    while any(w.is_alive() for w in workers):
        time.sleep(0.5)
        if errors:
            break
        if time.monotonic() - last >= 15:
            last = time.monotonic()
            done = ", ".join(f"{k} {v:,}" for k, v in progress.items())
            print(f"   {last - start:4.0f} s: {done}", file=sys.stderr, flush=True)
    if errors:
        raise Failed("; ".join(errors))
    total = time.monotonic() - start
    creates = n_teams + n_folders + n_tines + n_keys + 11 + n_apps + 1 + n_gateways + n_creds
    st["seed"] = {"seconds": total, "creates": creates, "per_seeder": seconds}
    st["sizes"] = {"LISTS_TINES": n_tines, "LISTS_KEYS": n_keys}
    json.dump(st, open(path, "w"))
    per = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    print(f"   seeded {creates:,} objects in {total:.0f} s ({creates / total:,.0f}/s; {per})",
          file=sys.stderr, flush=True)


def timings(url, path):
    st = json.load(open(path))
    reps = env_int("LISTS_REPS", 20)
    target = float(os.environ.get("LISTS_TARGET_MS", "20"))
    engine = os.environ.get("LISTS_ENGINE_NAME", "?")
    rows = []
    sizes = st.get("sizes", {})  # what was seeded (a reused run is timed as it was seeded)

    def size(name):
        return sizes.get(name, env_int(name, 100_000))

    def measure(label, token, req_path, check):
        c = Client(url, token)
        s, b = c.request("GET", req_path)  # warm-up, and the answer checked
        expect(s, b, (200,), label)
        items, total = check(json.loads(b))
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            s, b2 = c.request("GET", req_path)
            times.append((time.perf_counter() - t0) * 1000)
            expect(s, b2, (200,), label)
        times.sort()
        med = statistics.median(times)
        p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
        rows.append((label, total, items, len(b), med, p90, times[-1], med <= target))

    tok = st["tokens"]
    # Tines user credentials: page numbers, so the last page is an OFFSET.
    def tines_check(page, per_page):
        def check(body):
            meta = body["meta"]
            items = len(body["user_credentials"])
            last = page == meta["pages"]
            assert page == 1 or last, meta
            assert items == (meta["count"] - (page - 1) * per_page if last else per_page), meta
            return items, meta["count"]
        return check

    def tines_pages(query):
        c = Client(url, tok["tines"])
        s, b = c.request("GET", f"/api/v1/user_credentials?{query}")
        expect(s, b, (200,), "tines page 1")
        return json.loads(b)["meta"]["pages"]

    if size("LISTS_TINES"):
        for label, query in [("Tines credentials", ""),
                             ("Tines credentials, team_id=", f"team_id={st['tines_teams'][-1]}&")]:
            if query:
                label += str(st["tines_teams"][-1])
            pages = tines_pages(query)
            measure(f"{label}, page 1", tok["tines"], f"/api/v1/user_credentials?{query}page=1", tines_check(1, 20))
            measure(f"{label}, page {pages} (last)", tok["tines"],
                    f"/api/v1/user_credentials?{query}page={pages}", tines_check(pages, 20))
        if st["tines_folders"]:
            folder = st["tines_folders"][0]
            query = f"folder_id={folder}&"
            pages = tines_pages(query)
            measure(f"Tines credentials, folder_id={folder}, page 1", tok["tines"],
                    f"/api/v1/user_credentials?{query}page=1", tines_check(1, 20))
            measure(f"Tines credentials, folder_id={folder}, page {pages} (last)", tok["tines"],
                    f"/api/v1/user_credentials?{query}page={pages}", tines_check(pages, 20))
            measure(f"Tines folders, page 1 (with their sizes)", tok["tines"], "/api/v1/folders",
                    lambda b: (len(b["folders"]), b["meta"]["count"]))
        pages = tines_pages("per_page=500&")
        measure("Tines credentials, per_page=500, page 1", tok["tines"],
                "/api/v1/user_credentials?per_page=500&page=1", tines_check(1, 500))
        measure(f"Tines credentials, per_page=500, page {pages} (last)", tok["tines"],
                f"/api/v1/user_credentials?per_page=500&page={pages}", tines_check(pages, 500))

    # Sunshine account keys: one unpaginated list, or (since d02c8b4) pages of `limit` (default
    # 50) with `next_cursor`, walked once (untimed) to find the last page's `after`.
    if size("LISTS_KEYS"):
        c = Client(url, tok["keys"])
        s, b = c.request("GET", "/v1/account_keys")
        expect(s, b, (200,), "account keys")
        first = json.loads(b)
        if "next_cursor" not in first:
            measure("Sunshine account keys, whole list (unpaginated)", tok["keys"], "/v1/account_keys",
                    lambda b: (len(b["keys"]), len(b["keys"])))
        else:
            after, body, total, pages = None, first, 0, 0
            while True:
                total += len(body["keys"])
                pages += 1
                if body["next_cursor"] is None:
                    break
                after = body["next_cursor"]
                s, b = c.request("GET", "/v1/account_keys?after=" + urllib.parse.quote(after))
                expect(s, b, (200,), "account keys")
                body = json.loads(b)
            per_page = len(first["keys"])

            def keys_check(last):
                def check(body):
                    n = len(body["keys"])
                    assert (body["next_cursor"] is None) == last, body["next_cursor"]
                    assert n == (total - (pages - 1) * per_page if last else per_page), n
                    return n, total
                return check
            measure("Sunshine account keys, page 1", tok["keys"], "/v1/account_keys", keys_check(pages == 1))
            last_path = "/v1/account_keys" + ("?after=" + urllib.parse.quote(after) if after else "")
            measure(f"Sunshine account keys, page {pages:,} (last)", tok["keys"], last_path, keys_check(True))
        measure("Sunshine account key, GET one by id", tok["keys"], f"/v1/account_keys/{st['account_keys'][0]}",
                lambda b: (1, 1))
        # Deleting a key is a write: five times, create a key (untimed) and delete it (timed).
        c = Client(url, tok["keys"])
        times = []
        for _ in range(5):
            s, b = c.request("POST", "/v1/account_keys", {"displayName": "deleted by lists.py"})
            expect(s, b, (201,), "account key")
            kid = json.loads(b)["key"]["id"]
            t0 = time.perf_counter()
            s, b = c.request("DELETE", f"/v1/account_keys/{kid}")
            times.append((time.perf_counter() - t0) * 1000)
            expect(s, b, (204,), "delete account key")
        times.sort()
        rows.append(("Sunshine account key, DELETE one (x5)", size("LISTS_KEYS"), 0, len(b),
                     statistics.median(times), times[-1], times[-1], statistics.median(times) <= target))
        measure("Sunshine app keys of one app (beside them)", tok["keys"], f"/v2/apps/{st['keyed_app']}/keys",
                lambda b: (len(b["keys"]), len(b["keys"])))

    # Sunshine apps: cursor pagination (page[after]).
    ids = st.get("app_ids", [])
    if ids:
        psize = 25  # the default page[size]
        last_start = ((len(ids) - 1) // psize) * psize

        def apps_check(first):
            def check(body):
                got = [a["id"] for a in body["apps"]]
                want = ids[:psize] if first else ids[last_start:]
                assert got == want, (got[:2], want[:2])
                assert body["meta"]["hasMore"] == (first and len(ids) > psize), body["meta"]
                return len(got), len(ids)
            return check
        measure("Sunshine apps, page 1", tok["apps"], "/v2/apps", apps_check(True))
        after = f"?page%5Bafter%5D={ids[last_start - 1]}" if last_start else ""
        measure("Sunshine apps, last page (page[after])", tok["apps"], f"/v2/apps{after}", apps_check(False))

    # PingOne: the credentials of the first and of the last gateway (five each).
    if st.get("gateways"):
        env = st["environment"]

        def creds_check(body):
            n = len(body["_embedded"]["credentials"])
            return n, n
        for which, gw in zip(("first", "last"), st["gateways"]):
            measure(f"PingOne credentials of the {which} gateway", tok["pingone"],
                    f"/v1/environments/{env}/gateways/{gw}/credentials", creds_check)
        measure(f"PingOne gateways of the environment (unpaginated)", tok["pingone"],
                f"/v1/environments/{env}/gateways", lambda b: (b["count"], b["count"]))

    for label, total, items, nbytes, med, p90, mx, ok in rows:
        print(f"{engine:<10} {label:<52} {total:>7,} {items:>6,} {nbytes:>11,} {med:>8.2f} {p90:>8.2f} {mx:>8.2f}  {'ok' if ok else 'MISS'}")
    sys.stdout.flush()


def main():
    cmd, url, path = sys.argv[1:4]
    try:
        {"seed": seed, "time": timings}[cmd](url, path)
    except (Failed, AssertionError) as e:
        print(f"lists.py {cmd}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
