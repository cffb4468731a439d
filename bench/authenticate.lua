-- wrk script for the Latchkey benchmark (bench/run.sh). Two modes, chosen by the script
-- arguments after `--`, so that both runs cost the load generator the same (each parses
-- every response body):
--
--   wrk ... http://HOST/v1/authenticate -- auth AUTHORIZATIONS_FILE ORG_TOKEN
--       POST /v1/authenticate {"authorization": <a random line of the file>} per request.
--       The requests are all formatted once in init(), each body padded with spaces to the
--       longest (JSON allows them), and kept in strings of BLOCK requests each; request()
--       cuts one out. Responses count as bad only by their status: the caller checks the
--       verdicts with the server's own counters (bench/verdicts.py). A Lua `response()`
--       turns every body into a Lua string, and 100,000 distinct bodies (or 100,000 request
--       strings in a table) made LuaJIT's collector stall wrk for milliseconds: a p99 of
--       10-18 ms while the server's histogram had 99.97 % of requests within 0.1 ms.
--   wrk ... http://HOST/healthz -- healthz
--       GET /healthz; good only if 200 and the body contains "ok".
--
-- done() prints one machine-readable line:
--   BENCH requests=N seconds=S rps=R p50_us=A p90_us=B p99_us=C max_us=D bad_status=E
--         invalid=F socket_errors=G
-- (invalid: healthz bodies without "ok"; always 0 in auth mode, where the server's counters
-- tell), plus up to three sample bodies of bad responses.

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
   table.insert(threads, thread)
end

-- per-thread state (each wrk thread has its own Lua state)
local BLOCK = 4096
local blocks = {} -- every request, each `size` bytes, BLOCK of them to a string
local size = 0
local n = 0
local expect = nil
bad_status = 0
invalid = 0
samples = {}

function init(args)
   local mode = args[1]
   math.randomseed(os.time() * 1000 + (thread_id or 0))
   if mode == "auth" then
      local file, token = args[2], args[3]
      assert(file and token, "usage: -- auth AUTHORIZATIONS_FILE ORG_TOKEN")
      local headers = {
         ["Authorization"] = "Bearer " .. token,
         ["Content-Type"] = "application/json",
      }
      local values, longest = {}, 0
      for line in io.lines(file) do
         if #line > 0 then
            table.insert(values, line)
            longest = math.max(longest, #line)
         end
      end
      n = #values
      assert(n > 0, "no authorization values in " .. file)
      local block = {}
      for i, value in ipairs(values) do
         -- the values are base64 / base64url and spaces: nothing to escape in JSON
         local body = '{"authorization":"' .. value .. '"}' .. string.rep(" ", longest - #value)
         local request = wrk.format("POST", nil, headers, body)
         if size == 0 then size = #request end
         assert(#request == size, "requests of unequal length")
         table.insert(block, request)
         if #block == BLOCK or i == n then
            table.insert(blocks, table.concat(block))
            block = {}
         end
      end
      values = nil
      collectgarbage()
      -- wrk asks for response bodies only if `response` is a function after init().
      response = nil
   elseif mode == "healthz" then
      n = 1
      blocks[1] = wrk.format("GET", nil, {}, nil)
      size = #blocks[1]
      expect = '"ok"'
   else
      error("first script argument must be `auth` or `healthz`")
   end
end

function request()
   local i = math.random(n) - 1
   local at = (i % BLOCK) * size
   return string.sub(blocks[math.floor(i / BLOCK) + 1], at + 1, at + size)
end

function response(status, headers, body)
   if status ~= 200 then
      bad_status = bad_status + 1
   elseif not string.find(body, expect, 1, true) then
      invalid = invalid + 1
   else
      return
   end
   if #samples < 3 then
      table.insert(samples, status .. " " .. string.sub(body or "", 1, 200))
   end
end

function done(summary, latency, requests)
   local bad, inv, shown = 0, 0, 0
   for _, t in ipairs(threads) do
      bad = bad + (t:get("bad_status") or 0)
      inv = inv + (t:get("invalid") or 0)
      local s = t:get("samples") or {}
      for _, body in ipairs(s) do
         if shown < 3 then
            io.write("BAD-SAMPLE " .. body .. "\n")
            shown = shown + 1
         end
      end
   end
   local e = summary.errors
   bad = math.max(bad, e.status) -- non-2xx/3xx, counted by wrk itself
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local seconds = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d seconds=%.2f rps=%.0f p50_us=%d p90_us=%d p99_us=%d max_us=%d bad_status=%d invalid=%d socket_errors=%d\n",
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      bad, inv, socket_errors))
end
