//! The Lua scripts behind every multi-key change. Redis runs a script
//! atomically, so each check-and-set below is one transaction. `ARGV[1]` is
//! always the key prefix; incident replies are `{code, field, value, …}`
//! (the incident hash flattened) or `{code, status}` for refusals. The
//! lifecycle's tables (`KNOWN`, `MOVES`, `CLAIMABLE`, …) are rendered from
//! core's constants ([`infraai_core::lifecycle::lua_tables`]) and prepended.

use std::sync::LazyLock;

const PRELUDE: &str = r#"
local P = ARGV[1] .. ':'
local function ikey(id) return P .. 'incident:' .. id end
local function move_status(id, from, to)
  if from ~= to then
    redis.call('SREM', P .. 'status:' .. from, id)
    redis.call('SADD', P .. 'status:' .. to, id)
  end
end
local function close_if_closed(id, to)
  if CLOSED[to] then
    local fp = redis.call('HGET', ikey(id), 'fingerprint')
    if fp and redis.call('GET', P .. 'open:' .. fp) == id then
      redis.call('DEL', P .. 'open:' .. fp)
    end
  end
end
local function reply(code, id)
  local out = {code}
  local h = redis.call('HGETALL', ikey(id))
  for i = 1, #h do out[#out + 1] = h[i] end
  return out
end
"#;

fn script(body: &str) -> redis::Script {
    let tables = infraai_core::lifecycle::lua_tables();
    redis::Script::new(&format!("{tables}\n{PRELUDE}\n{body}"))
}

/// ARGV: prefix, fingerprint, state, alert_json, now, new_id, created_score,
/// started_at (as in alert_json).
pub(super) static RECORD_ALERT: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
local okey = P .. 'open:' .. ARGV[2]
local id = redis.call('GET', okey)
if id then
  local status = redis.call('HGET', ikey(id), 'status')
  if not status then return {'corrupt', 'the open-fingerprint index names a missing incident ' .. id} end
  if not KNOWN[status] then return {'corrupt', 'unknown status ' .. status} end
  if ARGV[3] == 'firing' then
    redis.call('HSET', ikey(id), 'alert', ARGV[4], 'updated_at', ARGV[5])
    redis.call('HINCRBY', ikey(id), 'occurrences', 1)
    return reply('repeated', id)
  elseif not RESOLVE_ONLY_NOTED[status] then
    redis.call('HSET', ikey(id), 'alert', ARGV[4], 'status', 'resolved',
      'note', CLEARED_NOTE, 'updated_at', ARGV[5])
    move_status(id, status, 'resolved')
    redis.call('DEL', okey)
    return reply('resolved', id)
  end
  return reply('noted', id)
end
-- A late copy of an episode already resolved (same start) is noted on it.
local last = redis.call('GET', P .. 'last:' .. ARGV[2])
if last and redis.call('HGET', ikey(last), 'status') == 'resolved' then
  local ok, stored = pcall(cjson.decode, redis.call('HGET', ikey(last), 'alert') or '')
  if ok and type(stored) == 'table' and stored['started_at'] == ARGV[8] then
    return reply('noted', last)
  end
end
if ARGV[3] ~= 'firing' then return {'noted'} end
id = ARGV[6]
redis.call('HSET', ikey(id), 'id', id, 'fingerprint', ARGV[2], 'status', 'new',
  'alert', ARGV[4], 'occurrences', 1, 'guardrail_notes', '[]',
  'created_at', ARGV[5], 'updated_at', ARGV[5])
redis.call('ZADD', P .. 'incidents', ARGV[7], id)
redis.call('SADD', P .. 'status:new', id)
redis.call('SET', okey, id)
redis.call('SET', P .. 'last:' .. ARGV[2], id)
return reply('opened', id)
"#,
    )
});

/// ARGV: prefix, id, decision_json, notes_json, to, now, replaces
/// (",a,b,": statuses whose decision this one may replace). Refuses with
/// `{'refused', status, decided}`.
pub(super) static RECORD_DECISION: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
local id = ARGV[2]
local status = redis.call('HGET', ikey(id), 'status')
if not status then return {'notfound'} end
if not KNOWN[status] then return {'corrupt', 'unknown status ' .. status} end
local decided = redis.call('HEXISTS', ikey(id), 'decision')
local first = status == 'new' and decided == 0
if not (first or string.find(ARGV[7], ',' .. status .. ',', 1, true)) or not MOVES[status][ARGV[5]] then
  return {'refused', status, tostring(decided)}
end
redis.call('HSET', ikey(id), 'decision', ARGV[3], 'guardrail_notes', ARGV[4],
  'status', ARGV[5], 'updated_at', ARGV[6])
move_status(id, status, ARGV[5])
close_if_closed(id, ARGV[5])
return reply('ok', id)
"#,
    )
});

/// ARGV: prefix, id, to, now, from (",a,b,"), has_note ("1"/"0"), note.
/// Refuses with `{'refused', status}`.
pub(super) static TRANSITION: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
local id = ARGV[2]
local status = redis.call('HGET', ikey(id), 'status')
if not status then return {'notfound'} end
if not KNOWN[status] then return {'corrupt', 'unknown status ' .. status} end
if not string.find(ARGV[5], ',' .. status .. ',', 1, true) or not MOVES[status][ARGV[3]] then
  return {'refused', status}
end
redis.call('HSET', ikey(id), 'status', ARGV[3], 'updated_at', ARGV[4])
if ARGV[6] == '1' then redis.call('HSET', ikey(id), 'note', ARGV[7]) end
move_status(id, status, ARGV[3])
close_if_closed(id, ARGV[3])
return reply('ok', id)
"#,
    )
});

/// ARGV: prefix, id, now. Reads the kill-switch in the same script as the claim.
pub(super) static CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
local id = ARGV[2]
local status = redis.call('HGET', ikey(id), 'status')
if not status then return {'notfound'} end
if not KNOWN[status] then return {'corrupt', 'unknown status ' .. status} end
if not CLAIMABLE[status] then return reply('notclaimable', id) end
local engaged = redis.call('HGET', P .. 'kill_switch', 'engaged') == '1'
local to = 'executing'
if engaged then to = 'blocked' end
redis.call('HSET', ikey(id), 'status', to, 'updated_at', ARGV[3])
move_status(id, status, to)
if engaged then return reply('blocked', id) end
return reply('claimed', id)
"#,
    )
});

/// ARGV: prefix, engaged ("1"/"0"), set_by, set_at, has_reason, reason, to,
/// from… . Returns the ids moved.
pub(super) static SET_KILL_SWITCH: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
local ks = P .. 'kill_switch'
redis.call('DEL', ks)
redis.call('HSET', ks, 'engaged', ARGV[2], 'set_by', ARGV[3], 'set_at', ARGV[4])
if ARGV[5] == '1' then redis.call('HSET', ks, 'reason', ARGV[6]) end
local to = ARGV[7]
local affected = {}
for i = 8, #ARGV do
  local from = ARGV[i]
  for _, id in ipairs(redis.call('SMEMBERS', P .. 'status:' .. from)) do
    redis.call('HSET', ikey(id), 'status', to, 'updated_at', ARGV[4])
    move_status(id, from, to)
    affected[#affected + 1] = id
  end
end
return affected
"#,
    )
});

/// ARGV: prefix, id, json, incident_id or "", run_id or "".
pub(super) static APPEND_AUDIT: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('SADD', P .. 'audit:ids', ARGV[2]) == 0 then return 'conflict' end
redis.call('RPUSH', P .. 'audit', ARGV[3])
if ARGV[4] ~= '' then redis.call('RPUSH', P .. 'audit:incident:' .. ARGV[4], ARGV[3]) end
if ARGV[5] ~= '' then redis.call('RPUSH', P .. 'audit:run:' .. ARGV[5], ARGV[3]) end
return 'ok'
"#,
    )
});

/// ARGV: prefix, id, json, incident_id, resource, started_score.
pub(super) static RECORD_ACTION: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('SADD', P .. 'action:ids', ARGV[2]) == 0 then return 'conflict' end
redis.call('RPUSH', P .. 'actions:' .. ARGV[4], ARGV[3])
redis.call('ZADD', P .. 'actions_by_resource:' .. ARGV[5], ARGV[6], ARGV[2])
return 'ok'
"#,
    )
});

/// Shared by the job scripts: a job is the hash `job:{key}` (`owner`,
/// `lease_until` in ms since the epoch, `claims`) and its member in the
/// sorted set `jobs`, scored by when it may be taken (0 once released).
/// Replies are flat `key, owner, lease_until, claims` quadruples.
const JOBS: &str = r#"
local function jkey(key) return P .. 'job:' .. key end
local function take(key, owner, until_ms)
  local claims = redis.call('HINCRBY', jkey(key), 'claims', 1)
  redis.call('HSET', jkey(key), 'owner', owner, 'lease_until', until_ms)
  redis.call('ZADD', P .. 'jobs', until_ms, key)
  return {key, owner, until_ms, tostring(claims)}
end
"#;

fn job_script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{PRELUDE}\n{JOBS}\n{body}"))
}

/// ARGV: prefix, key, owner, now (ms), lease end (ms).
pub(super) static CLAIM_JOB: LazyLock<redis::Script> = LazyLock::new(|| {
    job_script(
        r#"
local h = redis.call('HMGET', jkey(ARGV[2]), 'owner', 'lease_until')
if h[1] and tonumber(h[2] or '0') > tonumber(ARGV[4]) then return {} end
return take(ARGV[2], ARGV[3], ARGV[5])
"#,
    )
});

/// ARGV: prefix, owner, now (ms), lease end (ms), limit.
pub(super) static CLAIM_ABANDONED_JOBS: LazyLock<redis::Script> = LazyLock::new(|| {
    job_script(
        r#"
local keys = redis.call('ZRANGEBYSCORE', P .. 'jobs', '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[5]))
local out = {}
for _, key in ipairs(keys) do
  for _, v in ipairs(take(key, ARGV[2], ARGV[4])) do out[#out + 1] = v end
end
return out
"#,
    )
});

/// ARGV: prefix, key, owner, lease end (ms). Returns 1 when renewed.
pub(super) static RENEW_JOB: LazyLock<redis::Script> = LazyLock::new(|| {
    job_script(
        r#"
if redis.call('HGET', jkey(ARGV[2]), 'owner') ~= ARGV[3] then return 0 end
redis.call('HSET', jkey(ARGV[2]), 'lease_until', ARGV[4])
redis.call('ZADD', P .. 'jobs', ARGV[4], ARGV[2])
return 1
"#,
    )
});

/// ARGV: prefix, key, owner, finished ("1"/"0"). Returns 1 when released.
pub(super) static RELEASE_JOB: LazyLock<redis::Script> = LazyLock::new(|| {
    job_script(
        r#"
if redis.call('HGET', jkey(ARGV[2]), 'owner') ~= ARGV[3] then return 0 end
if ARGV[4] == '1' then
  redis.call('DEL', jkey(ARGV[2]))
  redis.call('ZREM', P .. 'jobs', ARGV[2])
else
  redis.call('HDEL', jkey(ARGV[2]), 'owner', 'lease_until')
  redis.call('ZADD', P .. 'jobs', 0, ARGV[2])
end
return 1
"#,
    )
});

/// Settings live in the hash `settings`: key → `{"version": n, "value": …}`
/// (JSON the client writes; the script only reads the version). ARGV:
/// prefix, key, expected version (0: absent), the new document. Replies
/// `{'ok'}`, `{'conflict', stored version}` or `{'corrupt', why}`.
pub(super) static PUT_SETTING: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{PRELUDE}\n{}",
        r#"
local h = P .. 'settings'
local raw = redis.call('HGET', h, ARGV[2])
local current = 0
if raw then
  local ok, doc = pcall(cjson.decode, raw)
  if not ok or type(doc) ~= 'table' or type(doc['version']) ~= 'number' then
    return {'corrupt', 'no version in the stored document'}
  end
  current = doc['version']
end
if current ~= tonumber(ARGV[3]) then
  return {'conflict', string.format('%.0f', current)}
end
redis.call('HSET', h, ARGV[2], ARGV[4])
return {'ok'}
"#
    ))
});
