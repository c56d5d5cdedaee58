// The Lua scripts that run the global buckets in Redis. They mirror core/bucket_math.cpp
// line by line (in microseconds of the server's TIME; the C++ side works in nanoseconds),
// so the InProcessStore and Redis decide alike; one typed test suite runs on both.
//
// Rules every script keeps: time only from TIME; keys only through KEYS; every key written
// gets a TTL; numbers written as plain decimals (string.format), never Lua's %.14g.
// Kinds: 0 token bucket, 1 fixed window, 2 sliding window, 3 concurrency. Each kind is one
// function over (state, ask) so that a group level (a second bucket key in the same slot)
// and fair shares can be added as further steps of the same call.
#pragma once

namespace tollgate::redis {

// Many keys in one call (all of an instance's due keys on one shard): KEYS in threes and
// ARGV in seventeens, one group per key, answered in one flat array of six per key.
// Per key: KEYS bucket, request id, the group's hash (same slot; read only when the group
// has a budget)
// ARGV: kind, want, min, ttl_us, rate, burst, limit, window_us, holder,
//       demand, held, group_rate (0: no budget), group_burst, weight, guaranteed_rate,
//       fair_instances (0/1), tenant (the key's field in the group's hash)
// Returns {granted, now_us, expires_at_us, remaining, wait_until_us, limited_by} per key,
// one after the other. TIME is read once per call.
// Shares (core::lease_shared) keep in the bucket's hash: sl, sts (the key's pacing at its
// group share) and i:<holder> = "demand,held,seen,level,ts" per instance; in the group's
// hash: l, ts (its bucket) and t:<tenant> = "weight,guaranteed,demand,seen".
inline constexpr const char* kLeaseScript = R"lua(
local function int(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- One key's lease: KEYS and ARGV are that key's three keys and seventeen arguments.
local function lease_one(KEYS, ARGV)
  local seen = redis.call('GET', KEYS[2])
  if seen then
    local r = {}
    for v in string.gmatch(seen, '[^,]+') do r[#r + 1] = tonumber(v) end
    return r
  end
  local kind, want, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
  local min = math.max(1, tonumber(ARGV[3]))
  local granted, expires, remaining, wait, keep, limited = 0, 0, 0, 0, 0, 0

  local function roll(window)
    local s = redis.call('HMGET', KEYS[1], 'st', 'c', 'pv')
    local st, c, pv = tonumber(s[1]), tonumber(s[2]) or 0, tonumber(s[3]) or 0
    local start = now - (now % window)
    if st ~= start then
      if st == start - window then pv = c else pv = 0 end
      c = 0
      st = start
    end
    return st, c, pv
  end

  local function take_from_window(free, window_end)
    if want == 0 or free < min then return false end
    granted = math.min(want, free)
    expires = math.min(now + ttl, window_end)
    return true
  end

  -- A token bucket's level, ts, pool and pool expiry from HMGET l, ts, p, pe (the first
  -- four values of s), brought up to now. A new bucket starts full.
  local function bucket_state(s, rate, burst)
    local level, ts = tonumber(s[1]), tonumber(s[2])
    local pool, pe = tonumber(s[3]) or 0, tonumber(s[4]) or 0
    if level == nil then
      level = burst
      ts = now
    elseif now > ts then
      level = math.min(burst, level + rate * (now - ts) / 1e6)
      ts = now
    end
    if pool > 0 and pe <= now then pool = 0 end
    return level, ts, pool, pe
  end

  local function token_bucket()
    local rate, burst = tonumber(ARGV[5]), tonumber(ARGV[6])
    local s = redis.call('HMGET', KEYS[1], 'l', 'ts', 'p', 'pe')
    local level, ts, pool, pe = bucket_state(s, rate, burst)
    local quarter = math.floor(ttl / 4)
    if want > 0 then
      local share = 0
      if pool > 0 and pe - now >= quarter and ttl > 0 then share = math.ceil(want * (pe - now) / ttl) end
      if pool > 0 and pe - now >= quarter and math.min(pool, share) >= min then
        granted = math.min(want, pool, share)
        pool = pool - granted
        expires = pe
      elseif level >= min then
        granted = math.min(want, math.floor(level))
        level = level - granted
        expires = now + ttl
      else
        wait = now + math.max(1, math.ceil((min - level) / rate * 1e6))
      end
    end
    remaining = math.floor(level)
    if pool > 0 and pe - now >= quarter then remaining = remaining + pool end
    redis.call('HSET', KEYS[1], 'l', string.format('%.17g', level), 'ts', int(ts), 'p', int(pool),
               'pe', int(pe))
    keep = math.ceil((burst - level) / rate * 1000)
    if pool > 0 then keep = math.max(keep, math.ceil((pe - now) / 1000)) end
  end

  local function fields(v)
    local r = {}
    for x in string.gmatch(v, '[^,]+') do r[#r + 1] = tonumber(x) end
    return r
  end

  local function float(x) return string.format('%.17g', x) end

  -- A share level brought up to date at rate r, holding at most cap (new: full).
  local function refill_share(lv, lts, r, cap)
    if lv < 0 then return cap, now end
    if now > lts then
      lv = lv + r * (now - lts) / 1e6
      lts = now
    end
    return math.min(cap, lv), lts
  end

  -- Weighted max-min fair shares of capacity over claims {weight, floor, ceiling}, kept as
  -- (mode, k) as core::fair_share does: 0 ceiling + k*weight, 1 clamp(k*weight, floor,
  -- ceiling), 2 floor*k.
  local function fair_share(capacity, claims)
    local n = #claims
    local sum_hi, sum_w, sum_lo = 0, 0, 0
    for i = 1, n do
      sum_hi = sum_hi + claims[i][3]
      sum_w = sum_w + claims[i][1]
    end
    if n == 0 then return 0, 0 end
    if sum_hi <= capacity then return 0, (capacity - sum_hi) / sum_w end
    local lo = {}
    for i = 1, n do
      lo[i] = math.min(claims[i][2], claims[i][3])
      sum_lo = sum_lo + lo[i]
    end
    if sum_lo >= capacity then return 2, capacity / sum_lo end
    local ev = {}
    for i = 1, n do
      ev[#ev + 1] = {lo[i] / claims[i][1], claims[i][1]}
      ev[#ev + 1] = {claims[i][3] / claims[i][1], -claims[i][1]}
    end
    table.sort(ev, function(a, b) return a[1] < b[1] end)
    local f, cur, slope, lambda = sum_lo, 0, 0, -1
    for i = 1, #ev do
      local nf = f + slope * (ev[i][1] - cur)
      if nf >= capacity and slope > 0 then
        lambda = cur + (capacity - f) / slope
        break
      end
      f, cur, slope = nf, ev[i][1], slope + ev[i][2]
    end
    if lambda < 0 then lambda = cur end
    return 1, lambda
  end

  local function share_of(mode, k, w, floor, ceiling)
    local lo = math.min(floor, ceiling)
    if mode == 0 then return ceiling + k * w end
    if mode == 2 then return lo * k end
    return math.min(ceiling, math.max(lo, k * w))
  end

  -- Sums over all records are redone once per refresh (a sixteenth of a TTL); in between a
  -- call changes them by its own change only, so a lease reads no whole hash (O(1)).
  local function shared_bucket()
    local rate, burst = tonumber(ARGV[5]), tonumber(ARGV[6])
    local demand, held = tonumber(ARGV[10]), tonumber(ARGV[11])
    local grate, gburst = tonumber(ARGV[12]), tonumber(ARGV[13])
    local grouped, paced, tenant = grate > 0, ARGV[16] == '1', 't:' .. ARGV[17]
    local span = math.max(ttl, 1)
    local live_after = now - span
    local refresh = math.floor(span / 16)
    local window = math.floor(span / 4) / 1e6
    local need = min
    local mine = 'i:' .. ARGV[9]
    local s = redis.call('HMGET', KEYS[1], 'l', 'ts', 'p', 'pe', 'sl', 'sts', 'it', 'ia', mine)
    local level, ts, pool, pe = bucket_state(s, rate, burst)

    local d = demand
    if not (d > 0) then d = want / math.max(window, 1e-9) end
    local ml, mts, before = -1, now, 0
    if s[9] then
      local r = fields(s[9])
      before, ml, mts = r[1], r[4], r[5]
    end
    -- Reads the hash at key whole: records under prefix (but skip) last seen (their value's
    -- field `seen`) at or before live_after are deleted, the others given to visit.
    local function live_records(key, prefix, skip, seen, visit)
      local all = redis.call('HGETALL', key)
      for i = 1, #all, 2 do
        local k = all[i]
        if string.sub(k, 1, 2) == prefix and k ~= skip then
          local r = fields(all[i + 1])
          if r[seen] <= live_after then redis.call('HDEL', key, k) else visit(r) end
        end
      end
    end

    local total, total_at = tonumber(s[7]), tonumber(s[8])
    if total_at == nil or now - total_at >= refresh then
      total, total_at = d, now
      live_records(KEYS[1], 'i:', mine, 3, function(r) total = total + r[1] end)
    else
      total = total + d - before
    end

    local allowed, gshare, gl, gts, sl, sts = rate, 0, 0, 0, -1, now
    local weight, guaranteed = tonumber(ARGV[14]), tonumber(ARGV[15])
    local fm, fk, fa
    if grouped then
      local g = redis.call('HMGET', KEYS[3], 'l', 'ts', 'fm', 'fk', 'fa', tenant)
      gl, gts = bucket_state({g[1], g[2]}, grate, gburst)
      fm, fk, fa = tonumber(g[3]), tonumber(g[4]), tonumber(g[5])
      local hi = math.min(total, rate)
      if fa == nil or g[6] == false or now - fa >= refresh then
        local claims = {}
        live_records(KEYS[3], 't:', tenant, 4,
                     function(r) claims[#claims + 1] = {r[1], r[2], r[3]} end)
        claims[#claims + 1] = {weight, guaranteed, hi}
        fm, fk = fair_share(grate, claims)
        fa = now
      end
      gshare = share_of(fm, fk, weight, guaranteed, hi)
      sl, sts = tonumber(s[5]) or -1, tonumber(s[6]) or now
      sl, sts = refill_share(sl, sts, gshare,
                             math.max(gshare * window, gburst * gshare / grate, need))
      allowed = math.min(rate, gshare)
    end
    local part = 0
    if paced then
      if total > 0 then part = allowed * d / total else part = allowed end
      ml, mts = refill_share(ml, mts, part, math.max(part * window, burst * part / rate, need))
    end

    -- An instance's part belongs to the level that set the key's rate.
    local key_room, group_room = level, math.huge
    if grouped then group_room = math.min(gl, sl) end
    if paced and grouped and gshare < rate then
      group_room = math.min(group_room, ml)
    elseif paced then
      key_room = math.min(level, ml)
    end
    local room = math.min(key_room, group_room)
    local quarter = math.floor(ttl / 4)
    local pool_usable = pool > 0 and pe - now >= quarter
    if want > 0 then
      local share = 0
      if pool_usable and ttl > 0 then share = math.ceil(want * (pe - now) / ttl) end
      if pool_usable and math.min(pool, share) >= min then
        granted = math.min(want, pool, share)
        pool = pool - granted
        expires = pe
      elseif room >= need then
        granted = math.min(want, math.floor(room))
        level = level - granted
        if paced then ml = ml - granted end
        if grouped then
          gl = gl - granted
          sl = sl - granted
        end
        expires = now + ttl
      else
        local w = 1
        local function short(lv, r)
          if lv < need then
            if r > 0 then w = math.max(w, math.ceil((need - lv) / r * 1e6)) else w = span end
          end
        end
        short(level, rate)
        if paced then short(ml, part) end
        if grouped then
          short(gl, grate)
          short(sl, gshare)
        end
        wait = now + math.min(w, span)
      end
      if granted < want then
        if key_room <= group_room then limited = 1 else limited = 2 end
      end
    end
    local left = level
    if paced then left = math.min(left, ml) end
    if grouped then left = math.min(left, gl, sl) end
    remaining = math.floor(math.max(0, left))
    if pool > 0 and pe - now >= quarter then remaining = remaining + pool end
    local record = float(d) .. ',' .. int(held) .. ',' .. int(now) .. ',' .. float(ml) .. ',' ..
                   int(mts)
    if grouped then
      redis.call('HSET', KEYS[1], 'l', float(level), 'ts', int(ts), 'p', int(pool), 'pe', int(pe),
                 'it', float(total), 'ia', int(total_at), mine, record, 'sl', float(sl),
                 'sts', int(sts))
    else
      redis.call('HSET', KEYS[1], 'l', float(level), 'ts', int(ts), 'p', int(pool), 'pe', int(pe),
                 'it', float(total), 'ia', int(total_at), mine, record)
    end
    keep = math.max(math.ceil((burst - level) / rate * 1000), math.ceil(span / 1000))
    if pool > 0 then keep = math.max(keep, math.ceil((pe - now) / 1000)) end
    if grouped then
      local hi = math.min(total, rate)
      redis.call('HSET', KEYS[3], 'l', float(gl), 'ts', int(gts), 'fm', int(fm), 'fk', float(fk),
                 'fa', int(fa), tenant,
                 float(weight) .. ',' .. float(guaranteed) .. ',' .. float(hi) .. ',' .. int(now))
      redis.call('PEXPIRE', KEYS[3], int(math.max(math.ceil((gburst - gl) / grate * 1000),
                                                  math.ceil(span / 1000)) + 1000))
    end
  end

  local function fixed_window()
    local limit, window = tonumber(ARGV[7]), tonumber(ARGV[8])
    local st, c, pv = roll(window)
    local free = math.max(0, limit - c)
    if take_from_window(free, st + window) then
      c = c + granted
    elseif want > 0 then
      wait = st + window
    end
    remaining = limit - math.min(limit, c)
    redis.call('HSET', KEYS[1], 'st', int(st), 'c', int(c), 'pv', int(pv))
    keep = math.ceil((st + 2 * window - now) / 1000)
  end

  local function sliding_window()
    local limit, window = tonumber(ARGV[7]), tonumber(ARGV[8])
    local st, c, pv = roll(window)
    local weight = math.min(1, math.max(0, 1 - (now - st) / window))
    local used = pv * weight + c
    local free = 0
    if used < limit then free = math.floor(limit - used + 1e-9) end
    if take_from_window(free, st + window) then
      c = c + granted
      remaining = free - granted
    else
      remaining = free
      if want > 0 then
        if c + min <= limit then
          local e = math.ceil(window * (1 - (limit - c - min) / math.max(1, pv)))
          wait = st + math.min(window, math.max(now - st + 1, e))
        elseif min <= limit then
          local e = math.ceil(window * (1 - (limit - min) / math.max(1, c)))
          wait = st + window + math.min(window, math.max(0, e))
        else
          wait = st + 2 * window
        end
      end
    end
    redis.call('HSET', KEYS[1], 'st', int(st), 'c', int(c), 'pv', int(pv))
    keep = math.ceil((st + 2 * window - now) / 1000)
  end

  local function concurrency()
    local limit, holder = tonumber(ARGV[7]), ARGV[9]
    local all = redis.call('HGETALL', KEYS[1])
    local others, current, last = 0, 0, now
    local next_lapse = now + 50000
    for i = 1, #all, 2 do
      local r, e = string.match(all[i + 1], '^(%d+):(%d+)$')
      r = tonumber(r)
      e = tonumber(e)
      if e <= now then
        redis.call('HDEL', KEYS[1], all[i])
      elseif all[i] == holder then
        current = r
      else
        others = others + r
        next_lapse = math.min(next_lapse, e)
        last = math.max(last, e)
      end
    end
    granted = math.min(want, math.max(current, math.max(0, limit - others)))
    if granted > 0 then
      expires = now + ttl
      last = math.max(last, expires)
      redis.call('HSET', KEYS[1], holder, int(granted) .. ':' .. int(expires))
    else
      redis.call('HDEL', KEYS[1], holder)
    end
    remaining = math.max(0, limit - others - granted)
    if granted < math.min(want, min) then wait = next_lapse end
    keep = math.ceil((last - now) / 1000)
  end

  if kind == 0 and (tonumber(ARGV[12]) > 0 or ARGV[16] == '1') then shared_bucket()
  elseif kind == 0 then token_bucket()
  elseif kind == 1 then fixed_window()
  elseif kind == 2 then sliding_window()
  else concurrency() end

  redis.call('PEXPIRE', KEYS[1], int(math.max(1000, keep + 1000)))
  local answer = {granted, now, expires, remaining, wait, limited}
  local parts = {}
  for i = 1, 6 do parts[i] = int(answer[i]) end
  redis.call('SET', KEYS[2], table.concat(parts, ','), 'PX', int(math.max(1000, 2 * ttl / 1000)))
  return answer
end

local answers = {}
for i = 0, #KEYS / 3 - 1 do
  local a = lease_one({KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]},
                      {unpack(ARGV, 17 * i + 1, 17 * i + 17)})
  for j = 1, 6 do answers[6 * i + j] = a[j] end
end
return answers
)lua";

// Many keys in one call: per key, KEYS bucket and ARGV kind, tokens, expires_at_us, holder,
// window_us (five per key).
// Returns the tokens credited per key (0: the lease had expired or its window has passed).
inline constexpr const char* kGiveBackScript = R"lua(
local function int(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- One key's give-back: KEYS and ARGV are that key's one key and five arguments.
local function give_back_one(KEYS, ARGV)
  local kind, tokens, expires = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
  if tokens <= 0 or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  if kind == 3 then
    local v = redis.call('HGET', KEYS[1], ARGV[4])
    if not v then return 0 end
    local r, e = string.match(v, '^(%d+):(%d+)$')
    r = tonumber(r)
    e = tonumber(e)
    if e <= now then
      redis.call('HDEL', KEYS[1], ARGV[4])
      return 0
    end
    local credit = math.min(tokens, r)
    if r - credit == 0 then
      redis.call('HDEL', KEYS[1], ARGV[4])
    else
      redis.call('HSET', KEYS[1], ARGV[4], int(r - credit) .. ':' .. int(e))
    end
    return credit
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
  local window = tonumber(ARGV[5])
  local s = redis.call('HMGET', KEYS[1], 'st', 'c')
  local st, c = tonumber(s[1]), tonumber(s[2]) or 0
  if st == nil or now >= st + window or expires > st + window or expires <= st then return 0 end
  local credit = math.min(tokens, c)
  redis.call('HSET', KEYS[1], 'c', int(c - credit))
  return credit
end

local credited = {}
for i = 0, #KEYS - 1 do
  credited[i + 1] = give_back_one({KEYS[i + 1]}, {unpack(ARGV, 5 * i + 1, 5 * i + 5)})
end
return credited
)lua";

}  // namespace tollgate::redis
