#!/usr/bin/env python3
"""Prints `VALID OTHER`: the verifications the Latchkey servers at the given URLs have answered
since they started, summed. VALID counts the Sunshine key kinds these benchmarks verify
(`latchkey_verifications_total{result="app_key"|"integration_key"|"account_key"}`), OTHER every
other result (an invalid verdict is counted by its reason, another credential by its kind).

The benchmarks check the server's verdicts with it: wrk's Lua `response()` would have to turn
every response body into a Lua string, and with 100,000 distinct bodies that garbage made wrk
stall for milliseconds (see bench/README.md). So wrk counts statuses only, and a run is good
when VALID grew by at least the requests wrk completed (and, where nothing else asks, OTHER
did not grow).

    python3 bench/verdicts.py http://127.0.0.1:8080 [URL...]
"""

import re
import sys
import urllib.request

VALID = {"app_key", "integration_key", "account_key"}
LINE = re.compile(r'^latchkey_verifications_total\{result="([^"]*)"\} ([0-9.e+]+)$')


def verdicts(url):
    valid = other = 0
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            m = LINE.match(line)
            if m:
                if m.group(1) in VALID:
                    valid += int(float(m.group(2)))
                else:
                    other += int(float(m.group(2)))
    return valid, other


if __name__ == "__main__":
    totals = [verdicts(url) for url in sys.argv[1:]]
    print(sum(v for v, _ in totals), sum(o for _, o in totals))
