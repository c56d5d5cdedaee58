-- The lease script: one key's global bucket in Redis. It mirrors quota math
-- (sdk/src/quota/bucket_math.cpp) line by line, in microseconds of the server's TIME (the C++
-- side works in nanoseconds), so the InProcessStore and Redis decide alike; one typed test
-- suite runs on both.
--
-- Rules every script keeps: time only from TIME; keys only through KEYS; every key written
-- gets a TTL; numbers written as plain decimals (string.format), never Lua's %.14g.
-- Kinds: 0 token bucket, 1 fixed window, 2 sliding window, 3 concurrency. Each kind is one
-- function over (state, ask) so that a group level (a second bucket key in the same slot)
-- and fair shares can be added as further steps of the same call.
--
-- Many keys in one call (all of an instance's due keys on one shard): KEYS in threes and
-- ARGV in runs of #slots, one run per key; TIME is read once per call. Per key: KEYS
-- bucket, request id, the group's hash (same slot; read only when the group has a budget).
-- ARGV: the slots named below, in order (group_rate 0: no budget; fair_instances 0/1;
-- tenant: the key's field in the group's hash). The C++ enum LeaseArg (store/redis/scripts.h)
-- names the same slots in the same order, and the build checks that the counts agree.
-- Returns {granted, now_us, expires_at_us, remaining, wait_until_us, limited_by} per key,
-- one after the other in one flat array.
-- Shares (core::lease_shared) keep in the bucket's hash: sl, sts (the key's pacing at its
-- group share) and i:<holder> = "demand,held,seen,level,ts" per instance; in the group's
-- hash: l, ts (its bucket) and t:<tenant> = "weight,guaranteed,demand,seen".
local slots = {'kind', 'want', 'min', 'ttl_us', 'rate', 'burst', 'limit', 'window_us', 'holder',
               'demand', 'held', 'group_rate', 'group_burst', 'weight', 'guaranteed_rate',
               'fair_instances', 'tenant'}
local function int(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- One key's lease: KEYS and ARGV are that key's three keys and #slots arguments.
local function lease_one(KEYS, ARGV)
  local arg = {}
  for i, name in ipairs(slots) do arg[name] = ARGV[i] end
  local seen = redis.call('GET', KEYS[2])
  if seen then
    local r = {}
    for v in string.gmatch(seen, '[^,]+') do r[#r + 1] = tonumber(v) end
    return r
  end
  local kind, want, ttl = tonumber(arg.kind), tonumber(arg.want), tonumber(arg.ttl_us)
  local min = math.max(1, tonumber(arg.min))
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

  -- Given-back tokens are usable while the pool lasts a quarter of a TTL more.
  local function pool_usable(pool, pe) return pool > 0 and pe - now >= math.floor(ttl / 4) end

  -- Grants from the given-back pool when this ask's share of it (by the time it has left)
  -- reaches min, else from room when it reaches need. Returns where from ('pool', 'room',
  -- or nil: nothing granted) and the pool left.
  local function take(pool, pe, room, need)
    if pool_usable(pool, pe) then
      local share = 0
      if ttl > 0 then share = math.ceil(want * (pe - now) / ttl) end
      if math.min(pool, share) >= min then
        granted = math.min(want, pool, share)
        expires = pe
        return 'pool', pool - granted
      end
    end
    if room >= need then
      granted = math.min(want, math.floor(room))
      expires = now + ttl
      return 'room', pool
    end
    return nil, pool
  end

  local function token_bucket()
    local rate, burst = tonumber(arg.rate), tonumber(arg.burst)
    local s = redis.call('HMGET', KEYS[1], 'l', 'ts', 'p', 'pe')
    local level, ts, pool, pe = bucket_state(s, rate, burst)
    if want > 0 then
      local from
      from, pool = take(pool, pe, level, min)
      if from == 'room' then
        level = level - granted
      elseif not from then
        wait = now + math.max(1, math.ceil((min - level) / rate * 1e6))
      end
    end
    remaining = math.floor(level)
    if pool_usable(pool, pe) then remaining = remaining + pool end
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
    local rate, burst = tonumber(arg.rate), tonumber(arg.burst)
    local demand, held = tonumber(arg.demand), tonumber(arg.held)
    local grate, gburst = tonumber(arg.group_rate), tonumber(arg.group_burst)
    local grouped, paced, tenant = grate > 0, arg.fair_instances == '1', 't:' .. arg.tenant
    local span = math.max(ttl, 1)
    local live_after = now - span
    local refresh = math.floor(span / 16)
    local window = math.floor(span / 4) / 1e6
    local need = min
    local mine = 'i:' .. arg.holder
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
    local weight, guaranteed = tonumber(arg.weight), tonumber(arg.guaranteed_rate)
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
    if want > 0 then
      local from
      from, pool = take(pool, pe, room, need)
      if from == 'room' then
        level = level - granted
        if paced then ml = ml - granted end
        if grouped then
          gl = gl - granted
          sl = sl - granted
        end
      elseif not from then
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
    if pool_usable(pool, pe) then remaining = remaining + pool end
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
    local limit, window = tonumber(arg.limit), tonumber(arg.window_us)
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
    local limit, window = tonumber(arg.limit), tonumber(arg.window_us)
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
    local limit, holder = tonumber(arg.limit), arg.holder
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

  if kind == 0 and (tonumber(arg.group_rate) > 0 or arg.fair_instances == '1') then shared_bucket()
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

local answers, n = {}, #slots
for i = 0, #KEYS / 3 - 1 do
  local a = lease_one({KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]},
                      {unpack(ARGV, n * i + 1, n * i + n)})
  for j = 1, 6 do answers[6 * i + j] = a[j] end
end
return answers
