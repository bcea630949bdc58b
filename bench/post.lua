-- wrk script: POST a JSON body, optionally with a bearer key.
-- BENCH_BODY: the request body (JSON); BENCH_KEY: API key (empty/unset: no Authorization).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key ~= nil and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

-- Count non-2xx answers so the runner can reject a broken run.
done = function(summary, latency, requests)
  io.write(string.format("BENCH_STATUS errors=%d\n", summary.errors.status))
end
