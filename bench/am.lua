-- One alert per request, each with a label set never sent before, to
-- Alertmanager's POST /api/v2/alerts. BENCH_RUN keeps runs distinct.
local run = os.getenv("BENCH_RUN") or "0"
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
  counter = counter + 1
  local body = '[{"labels":{"alertname":"BenchHighCPU","instance":"' .. prefix .. '-' .. counter ..
    '","severity":"warning","job":"bench"},"annotations":{"value":"0.97","summary":"bench"},' ..
    '"startsAt":"2026-11-25T10:00:00Z","generatorURL":"http://bench/"}]'
  return wrk.format(nil, "/api/v2/alerts", nil, body)
end

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
