-- wrk script for the egress benchmark (bench/egress.sh).
--   wrk ... http://UPSTREAM/thing -- direct
--       GET /thing with an X-Key header: calling the upstream directly, the floor.
--   wrk ... http://LATCHKEY/api/v1/http_requests -- proxy TOKEN BODY_FILE
--       POST /api/v1/http_requests with the body in BODY_FILE, as a runner token.
-- A response counts as good only if it is 200 and its body contains "ok" (the upstream's
-- answer, through the proxy too). done() prints one line:
--   BENCH requests=N seconds=S rps=R p50_us=A p99_us=B bad=C socket_errors=D

local threads = {}
function setup(thread) table.insert(threads, thread) end

bad = 0
function init(args)
   if args[1] == "proxy" then
      local f = assert(io.open(args[3], "r"))
      local body = f:read("*a")
      f:close()
      wrk.method = "POST"
      wrk.body = body
      wrk.headers["Content-Type"] = "application/json"
      wrk.headers["Authorization"] = "Bearer " .. args[2]
   else
      wrk.method = "GET"
      wrk.headers["X-Key"] = "direct-secret-value"
   end
end

function response(status, headers, body)
   if status ~= 200 or not string.find(body, "ok", 1, true) then
      bad = bad + 1
   end
end

function done(summary, latency, requests)
   local total_bad = 0
   for _, t in ipairs(threads) do total_bad = total_bad + t:get("bad") end
   local errors = summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout
   local seconds = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d seconds=%.2f rps=%.0f p50_us=%d p99_us=%d bad=%d socket_errors=%d\n",
      summary.requests, seconds, summary.requests / seconds, latency:percentile(50),
      latency:percentile(99), total_bad, errors))
end
