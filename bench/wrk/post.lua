-- POST requests for wrk, sent in turn, and a JSON summary line for the driver.
--
--   BENCH_REQUESTS=/tmp/requests.lua wrk -s bench/wrk/post.lua http://127.0.0.1:8790
--
-- $BENCH_REQUESTS is a Lua file the driver (bench/run.py) writes; it returns a
-- list of {path = ..., headers = {...}, body = ...}. The bodies live in the
-- driver only, so wrk and the driver's own clients send exactly the same bytes.
-- With $BENCH_STOP_AFTER set, each thread stops after that many answers.

local specs = dofile(os.getenv("BENCH_REQUESTS"))
local stop_after = tonumber(os.getenv("BENCH_STOP_AFTER") or "")
local prepared = {}
local sent = 0
local answered = 0

function init(args)
   for i, spec in ipairs(specs) do
      prepared[i] = wrk.format("POST", spec.path, spec.headers, spec.body)
   end
end

function request()
   sent = sent + 1
   return prepared[(sent - 1) % #prepared + 1]
end

if stop_after then
   function response(status, headers, body)
      answered = answered + 1
      if answered >= stop_after then
         wrk.thread:stop()
      end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests": %d, "duration_us": %d, "socket_errors": %d, "status_errors": %d, ' ..
      '"p50_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
      summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
      latency:percentile(50), latency:percentile(99), latency.mean))
end
