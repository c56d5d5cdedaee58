-- The give-back script: unused tokens of a lease go back to the key's bucket in Redis.
-- Many keys in one call: per key, KEYS bucket and group hash (same slot) and a run of #slots
-- ARGV.
-- ARGV: the slots named below, in order (the C++ enum GiveBackArg in store/redis/scripts.h names
-- the same slots; the build checks that the counts agree).
-- Returns the tokens credited per key (0: the lease had expired or its window has passed).
--
-- Negative tokens are a debt (GiveBack::debt): tokens an instance admitted beyond its leases,
-- charged to the bucket as core::charge_token_bucket / charge_window do — a token bucket's
-- level, brought up to now at rate and burst, goes below zero; a window's count, rolled to
-- now, goes above its limit — and the key lives until it has refilled (a new bucket starts
-- full, then is charged). A token bucket with a group budget (group_rate > 0) charges the
-- group's bucket (l, ts in its hash) the same way (core::charge_group). Returns minus the
-- tokens charged. Concurrency keys owe nothing.
-- A release before this one returns 0 for them (tokens <= 0) and changes nothing.
-- expires_at_us 0 is a late refund (GiveBack::late: a reservation's refund whose lease had
-- ended): a token bucket's level, brought up to now, takes it up to its burst
-- (core::credit_token_bucket); other kinds credit nothing. Returns the tokens credited.
local slots = {'kind', 'tokens', 'expires_at_us', 'holder', 'window_us', 'rate', 'burst',
               'group_rate', 'group_burst'}
local function int(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- A token bucket's level (fields l, ts of the hash `key`) charged `tokens`, brought up to now
-- at rate and burst first (a new one starts full).
local function charge_level(key, rate, burst, tokens)
  local s = redis.call('HMGET', key, 'l', 'ts')
  local level, ts = tonumber(s[1]), tonumber(s[2])
  if level == nil then
    level, ts = burst, now
  elseif now > ts then
    level = math.min(burst, level + rate * (now - ts) / 1e6)
    ts = now
  end
  level = level - tokens
  redis.call('HSET', key, 'l', level, 'ts', ts)
  local keep = math.ceil((burst - level) / rate * 1000) + 1000
  if redis.call('PTTL', key) < keep then redis.call('PEXPIRE', key, int(keep)) end
end

-- A late refund of `tokens` into the level of the hash `key` (a missing level is full).
local function credit_level(key, rate, burst, tokens)
  local s = redis.call('HMGET', key, 'l', 'ts')
  local level, ts = tonumber(s[1]), tonumber(s[2])
  if level == nil then return 0 end
  if now > ts then
    level = math.min(burst, level + rate * (now - ts) / 1e6)
    ts = now
  end
  local credit = math.min(tokens, burst - level)
  if credit <= 0 then return 0 end
  redis.call('HSET', key, 'l', level + credit, 'ts', ts)
  return math.floor(credit)
end

-- One key's debt (tokens > 0 to charge).
local function charge_one(key, group_key, arg, kind, tokens)
  if kind == 3 then return 0 end
  if kind == 0 then
    charge_level(key, tonumber(arg.rate), tonumber(arg.burst), tokens)
    local grate = tonumber(arg.group_rate)
    if grate > 0 then charge_level(group_key, grate, tonumber(arg.group_burst), tokens) end
    return -tokens
  end
  local window = tonumber(arg.window_us)
  local s = redis.call('HMGET', key, 'st', 'c', 'pv')
  local st, c, pv = tonumber(s[1]), tonumber(s[2]) or 0, tonumber(s[3]) or 0
  local start = now - (now % window)
  if st ~= start then
    if st == start - window then pv = c else pv = 0 end
    st, c = start, 0
  end
  c = c + tokens
  redis.call('HSET', key, 'st', int(st), 'c', int(c), 'pv', int(pv))
  local keep = math.ceil((st + 2 * window - now) / 1000)
  if redis.call('PTTL', key) < keep then redis.call('PEXPIRE', key, int(keep)) end
  return -tokens
end

-- One key's give-back: KEYS and ARGV are that key's two keys and #slots arguments.
local function give_back_one(KEYS, ARGV)
  local arg = {}
  for i, name in ipairs(slots) do arg[name] = ARGV[i] end
  local kind, tokens = tonumber(arg.kind), tonumber(arg.tokens)
  local expires = tonumber(arg.expires_at_us)
  if tokens < 0 then return charge_one(KEYS[1], KEYS[2], arg, kind, -tokens) end
  if tokens <= 0 or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  if kind == 3 then
    local v = redis.call('HGET', KEYS[1], arg.holder)
    if not v then return 0 end
    local r, e = string.match(v, '^(%d+):(%d+)$')
    r = tonumber(r)
    e = tonumber(e)
    if e <= now then
      redis.call('HDEL', KEYS[1], arg.holder)
      return 0
    end
    local credit = math.min(tokens, r)
    if r - credit == 0 then
      redis.call('HDEL', KEYS[1], arg.holder)
    else
      redis.call('HSET', KEYS[1], arg.holder, int(r - credit) .. ':' .. int(e))
    end
    return credit
  end
  if expires == 0 then  -- after kind 3: a permit's give-back carries no expiry either
    if kind ~= 0 then return 0 end
    return credit_level(KEYS[1], tonumber(arg.rate), tonumber(arg.burst), tokens)
  end
  if expires <= now then return 0 end
  if kind == 0 then
    local s = redis.call('HMGET', KEYS[1], 'p', 'pe')
    local pool, pe = tonumber(s[1]) or 0, tonumber(s[2]) or 0
    if pool > 0 and pe > now then
      pe = math.min(pe, expires)
      pool = pool + tokens
    else
      pool = tokens
      pe = expires
    end
    redis.call('HSET', KEYS[1], 'p', int(pool), 'pe', int(pe))
    local left = redis.call('PTTL', KEYS[1])
    local need = math.ceil((pe - now) / 1000) + 1000
    if left < need then redis.call('PEXPIRE', KEYS[1], int(need)) end
    return tokens
  end
  local window = tonumber(arg.window_us)
  local s = redis.call('HMGET', KEYS[1], 'st', 'c')
  local st, c = tonumber(s[1]), tonumber(s[2]) or 0
  if st == nil or now >= st + window or expires > st + window or expires <= st then return 0 end
  local credit = math.min(tokens, c)
  redis.call('HSET', KEYS[1], 'c', int(c - credit))
  return credit
end

local credited, n = {}, #slots
for i = 0, #KEYS / 2 - 1 do
  credited[i + 1] = give_back_one({KEYS[2 * i + 1], KEYS[2 * i + 2]},
                                  {unpack(ARGV, n * i + 1, n * i + n)})
end
return credited
