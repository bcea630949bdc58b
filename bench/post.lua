-- wrk script of bench/run.py: POST a JSON body, with a bearer key when one is given.
--   BENCH_BODY  the request body (JSON)
--   BENCH_KEY   API key; unset or empty: no Authorization header (the direct upstream)
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"

local key = os.getenv("BENCH_KEY")
if key ~= nil and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

-- One machine-readable line: requests completed and every kind of failure
-- (non-2xx/3xx answers, connect/read/write errors, timeouts).
done = function(summary, latency, requests)
  local e = summary.errors
  local failed = e.status + e.connect + e.read + e.write + e.timeout
  io.write(string.format("BENCH requests=%d errors=%d\n", summary.requests, failed))
end
