-- One alert per request, each with a label set never sent before, to
-- Alertmanager's POST /api/v2/alerts. BENCH_RUN keeps runs distinct;
-- BENCH_BATCH=N sends N such alerts per request (default 1).
local run = os.getenv("BENCH_RUN") or "0"
local batch = tonumber(os.getenv("BENCH_BATCH") or "1")
local threads = {}
local counter = 0
local prefix = "t"

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  prefix = "r" .. run .. "-t" .. tostring(tid)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local alerts = {}
  for i = 1, batch do
    counter = counter + 1
    alerts[i] = '{"labels":{"alertname":"BenchHighCPU","instance":"' .. prefix .. '-' .. counter ..
      '","severity":"warning","job":"bench"},"annotations":{"value":"0.97","summary":"bench"},' ..
      '"startsAt":"2026-11-25T10:00:00Z","generatorURL":"http://bench/"}'
  end
  return wrk.format(nil, "/api/v2/alerts", nil, "[" .. table.concat(alerts, ",") .. "]")
end

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
