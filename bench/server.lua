-- One alert per request, each with a fingerprint never sent before, as an
-- Alertmanager webhook (version 4) to the server's
-- POST /ops/webhook/alertmanager. BENCH_RUN keeps runs distinct;
-- BENCH_DUPLICATE=1 sends the same alert every time (a storm);
-- BENCH_STATE=resolved sends resolved alerts instead of firing ones;
-- BENCH_BATCH=N sends N alerts per webhook (default 1).
local run = os.getenv("BENCH_RUN") or "0"
local duplicate = os.getenv("BENCH_DUPLICATE") == "1"
local state = os.getenv("BENCH_STATE") or "firing"
local ends = state == "resolved" and "2026-11-25T10:05:00Z" or "0001-01-01T00:00:00Z"
local batch = tonumber(os.getenv("BENCH_BATCH") or "1")
local token = os.getenv("BENCH_TOKEN") or ""
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
  wrk.headers["Authorization"] = "Bearer " .. token
end

-- One alert of the webhook: instance and fingerprint `name`.
local function one(name)
  return '{"status":"' .. state .. '","labels":{"alertname":"BenchHighCPU","instance":"' .. name ..
    '","severity":"warning","job":"bench"},"annotations":{"value":"0.97","summary":"bench"},' ..
    '"startsAt":"2026-11-25T10:00:00Z","endsAt":"' .. ends .. '",' ..
    '"generatorURL":"http://bench/","fingerprint":"' .. name .. '"}'
end

function request()
  local alerts = {}
  for i = 1, batch do
    if duplicate then
      alerts[i] = one("storm")
    else
      counter = counter + 1
      alerts[i] = one(prefix .. "-" .. counter)
    end
  end
  local body = '{"version":"4","groupKey":"{}:{alertname=\\"BenchHighCPU\\"}","status":"' .. state .. '",' ..
    '"receiver":"infraai","groupLabels":{"alertname":"BenchHighCPU"},"commonLabels":{},' ..
    '"commonAnnotations":{},"externalURL":"http://bench/","truncatedAlerts":0,' ..
    '"alerts":[' .. table.concat(alerts, ",") .. ']}'
  return wrk.format(nil, "/ops/webhook/alertmanager", nil, body)
end

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
