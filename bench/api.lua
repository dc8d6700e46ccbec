-- The operator API of bench/api-at-scale.sh, with the operator token
-- (BENCH_TOKEN) on every request. BENCH_MODE:
--   get      GET BENCH_PATH (e.g. /metrics, /ops/alerts?status=pending&limit=50);
--   view     GET /ops/alerts/{id}, cycling through the ids of BENCH_IDS;
--   approve  POST /ops/alerts/{id}/approve, each id of BENCH_IDS once;
--   reject   POST /ops/alerts/{id}/reject, each id of BENCH_IDS once.
-- BENCH_IDS holds one incident id a line; thread t of BENCH_THREADS takes
-- lines t, t + BENCH_THREADS, … For approve and reject a thread stops once
-- it has sent each of its ids (wrk still waits out its duration), so no
-- incident is approved or rejected twice.
local mode = os.getenv("BENCH_MODE") or "get"
local token = os.getenv("BENCH_TOKEN") or ""
local path = os.getenv("BENCH_PATH") or "/healthz"
local file = os.getenv("BENCH_IDS")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local threads = {}
local ids = nil
local next_id = 1
local sent = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. token
  if mode == "get" then
    return
  end
  ids = {}
  local n = 0
  for line in io.lines(file) do
    if line ~= "" then
      if n % nthreads == tid then table.insert(ids, line) end
      n = n + 1
    end
  end
  if mode == "view" and #ids > 0 then
    next_id = 1 + (tid * 7919) % #ids
  end
  if mode == "approve" or mode == "reject" then
    wrk.headers["Content-Type"] = "application/json"
  end
end

function request()
  if mode == "get" or ids == nil then
    -- (wrk also calls this once outside any thread, before init)
    return wrk.format("GET", path)
  end
  if mode == "view" then
    local id = ids[next_id]
    next_id = next_id % #ids + 1
    return wrk.format("GET", "/ops/alerts/" .. id)
  end
  if next_id > #ids then
    -- Every id was sent: stop before this request goes out.
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  local id = ids[next_id]
  next_id = next_id + 1
  sent = sent + 1
  local body = mode == "reject" and '{"reason":"bench: not now"}' or "{}"
  return wrk.format("POST", "/ops/alerts/" .. id .. "/" .. mode, nil, body)
end

function response(status, headers, body)
  if status >= 300 and (mode == "approve" or mode == "reject") then
    io.stderr:write(string.format("%s: HTTP %d %s\n", mode, status, string.sub(body, 1, 200)))
  end
end

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
