-- The lease script: one key's global bucket in Redis. It mirrors quota math
-- (sdk/src/quota/bucket_math.cpp) line by line, in microseconds of the server's TIME (the C++
-- side works in nanoseconds), so the InProcessStore and Redis decide alike; one typed test
-- suite runs on both.
--
-- Rules every script keeps: time only from TIME; keys only through KEYS; every key written
-- gets a TTL; numbers go to redis.call as Lua numbers (Redis writes them with %.17g, exact),
-- through string.format, or, an ARGV number written unchanged, as the string the C++ sent
-- (%.17g or an integer), never through Lua's tostring (%.14g).
-- Kinds: 0 token bucket, 1 fixed window, 2 sliding window, 3 concurrency.
--
-- Many keys in one call (all of an instance's due keys on one shard): KEYS in threes and
-- ARGV in runs of #slots, one run per key; TIME is read once per call. Per key: KEYS
-- bucket, request record, the group's hash (same slot; read only when the group has a budget).
-- ARGV: the slots named below, in order (group_rate 0: no budget; fair_instances 0/1;
-- tenant: the key's field in the group's hash). The C++ enum LeaseArg (store/redis/scripts.h)
-- names the same slots in the same order, and the build checks that the counts agree.
-- Returns {granted, now_us, expires_at_us, remaining, wait_until_us, limited_by} per key,
-- one after the other in one flat array.
--
-- Cost (docs/redis.md, "What a lease costs inside Redis"): per key one HMGET and one HSET of
-- the bucket, and a PEXPIRE only when the TTL set before is too short (a token bucket's, at
-- most about once a second: extend_ttl; windows' and concurrency's every lease); no closure or
-- table made per key, no unchanged field written again; a group's hash is read once per call
-- (one HMGET of all its tenants in the call) and written once per call.
--
-- Schema (field v = 3 in the bucket's hash from its first sweep by layout 3, and in the
-- group's hash; layouts 1 and 2, the releases before, wrote no v or v = 2, and their hashes
-- are read as they are: each layout only adds fields, which the one before ignores). A token
-- bucket or window keeps each instance's latest request in its own hash, the field
-- r:<holder> = 'granted,now,expires,remaining,wait,limited,<KEYS[2]>' (KEYS[2], the request
-- id's record key, names the request): a retry of it (same request id) gets that answer, and
-- the next request of that instance overwrites it, so a bucket holds one record per instance
-- that asked (layout 2 kept one per request, a field named KEYS[2], 2-4 TTL long: thousands
-- per bucket at the reference fleet). Records older than max(1 s, 2 TTL), of either layout,
-- are swept (qs: when last swept). Concurrency keeps layout 1's record key KEYS[2].
-- Shares (core::lease_shared) keep in the bucket's hash: sl, sts (the key's pacing at its
-- group share), it, ia (its instances' summed demand and when summed) and i:<holder> =
-- "demand,held,seen,level,ts" per instance; in the group's hash: l, ts (its bucket), fm, fk,
-- fa (the last water-filling) and t:<tenant> = "weight,guaranteed,demand,seen". A shared
-- bucket lists its instances in ix (holders, one per line), so that redoing their sum reads
-- their records only, not the request records beside them. A token bucket keeps xe (when the
-- TTL it last set ends, µs of TIME) and xt (the ts of its last write); both are optional: a
-- hash without them, or with xt ~= ts (another writer since), gets its TTL set anew.
local slots = {'kind', 'want', 'min', 'ttl_us', 'rate', 'burst', 'limit', 'window_us', 'holder',
               'demand', 'held', 'group_rate', 'group_burst', 'weight', 'guaranteed_rate',
               'fair_instances', 'tenant'}
local at = {}
for i, name in ipairs(slots) do at[name] = i end
local n = #slots
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local call, format, match, sub, find = redis.call, string.format, string.match, string.sub,
                                      string.find
-- now as Redis writes it (an integer): formatted once per call, not once per field written
local now_s = format('%d', now)
local floor, ceil, min, max, huge = math.floor, math.ceil, math.min, math.max, math.huge
local version = 3
local answer_pattern = '^' .. string.rep('(%-?%d+),', 6) .. '(.*)$'

-- The key in hand: its keys, where its ARGV run starts (a0 + at.name), its request and its
-- answer. Set by lease_one for each key in turn; the functions below read them. in_hash: the
-- request's record is the field record_field of the bucket's hash (else the key record_key).
local bucket, record_key, record_field, group_key, a0, holder, in_hash, grouped
local want, least, ttl
local granted, expires, remaining, wait, keep, limited
local ttl_set  -- the key's function has set its TTL (token buckets: extend_ttl)

-- HDEL of a list of fields, in runs that fit Lua's stack.
local function hdel(key, fields)
  for i = 1, #fields, 1000 do call('HDEL', key, unpack(fields, i, min(#fields, i + 999))) end
end

-- A request record ('granted,now,expires,remaining,wait,limited,<record key>') as the answer
-- to this request; nil: none, or the record of another request (its instance's previous one).
local function remembered(v)
  if not v or not find(v, record_key, #v - #record_key + 1, true) then return nil end
  local g, nw, e, r, w, l, id = match(v, answer_pattern)
  if id ~= record_key then return nil end
  return {tonumber(g), tonumber(nw), tonumber(e), tonumber(r), tonumber(w), tonumber(l)}
end

-- The answer as a record (%d truncates as Redis does when it turns the reply into integers).
local function record()
  return format('%d,%s,%d,%d,%d,%d,%s', granted, now_s, expires, remaining, wait, limited,
                record_key)
end

-- Request records older than max(1 s, 2 TTL) go, at most once per that time (qs: when last
-- swept; a hash without qs was last written by layout 1 or is new). Returns the qs to write
-- (nil: not swept) and the holders that have an instance record (i:<holder>) in the hash.
local function sweep(qs)
  local keep_for = max(1000000, 2 * ttl)
  qs = tonumber(qs)
  if qs and now - qs < keep_for then return nil end
  local all, dead, holders = call('HGETALL', bucket), {}, {}
  for i = 1, #all, 2 do
    local k = all[i]
    local c = sub(k, 1, 2)
    if c == 'r:' or c == 'tg' then  -- r:<holder> (layout 3), tg:…:r:<request id> (layout 2)
      local seen = tonumber(match(all[i + 1], '^[^,]*,([^,]*)'))
      if not seen or seen <= now - keep_for then dead[#dead + 1] = k end
    elseif c == 'i:' then
      holders[#holders + 1] = sub(k, 3)
    end
  end
  hdel(bucket, dead)
  return now, holders
end

-- A token bucket's level, ts, pool and pool expiry (as HMGET gives them), brought up to now.
-- A new bucket starts full.
local function bucket_state(l, ts, p, e, rate, burst)
  local level, pool, pe = tonumber(l), tonumber(p) or 0, tonumber(e) or 0
  ts = tonumber(ts)
  if level == nil then
    level = burst
    ts = now
  elseif now > ts then
    level = min(burst, level + rate * (now - ts) / 1e6)
    ts = now
  end
  if pool > 0 and pe <= now then pool = 0 end
  return level, ts, pool, pe
end

-- Given-back tokens are usable while the pool lasts a quarter of a TTL more.
local function pool_usable(pool, pe) return pool > 0 and pe - now >= floor(ttl / 4) end

-- A token bucket's TTL. Its state must live `keep_ms` more (and its request records 2 TTL);
-- returns the PEXPIRE to send, or nil when the TTL this script set before still covers that:
-- xe (µs of TIME) is when that TTL ends, set with the hash's ts = xt. A writer that does not
-- know xe and xt (the previous release's lease, a give-back's debt, ctl's top-up) writes ts
-- and may shorten the TTL; it leaves xt ~= ts, so its TTL is set anew. A TTL is set a second
-- longer than needed, so that the leases of the next second find it long enough.
local function extend_ttl(xt, ts_read, xe, keep_ms)
  keep_ms = max(1000, max(keep_ms, ceil(2 * ttl / 1000) - 1000) + 1000)
  if xt and xt == ts_read and (tonumber(xe) or 0) >= now + keep_ms * 1000 then return nil end
  return keep_ms + 1000
end

-- Grants from the given-back pool when this ask's share of it (by the time it has left)
-- reaches least, else from room when it reaches need. Returns where from ('pool', 'room',
-- or nil: nothing granted) and the pool left.
local function take(pool, pe, room, need)
  if pool_usable(pool, pe) then
    local share = 0
    if ttl > 0 then share = ceil(want * (pe - now) / ttl) end
    if min(pool, share) >= least then
      granted = min(want, pool, share)
      expires = pe
      return 'pool', pool - granted
    end
  end
  if room >= need then
    granted = min(want, floor(room))
    expires = now + ttl
    return 'room', pool
  end
  return nil, pool
end

local function token_bucket()
  local rate, burst = tonumber(ARGV[a0 + at.rate]), tonumber(ARGV[a0 + at.burst])
  local s = call('HMGET', bucket, 'l', 'ts', 'p', 'pe', record_field, 'qs', 'xt', 'xe')
  local r = remembered(s[5])
  if r then return r end
  local p0, e0 = tonumber(s[3]) or 0, tonumber(s[4]) or 0
  local level, ts, pool, pe = bucket_state(s[1], s[2], p0, e0, rate, burst)
  if want > 0 then
    local from
    from, pool = take(pool, pe, level, least)
    if from == 'room' then
      level = level - granted
    elseif not from then
      wait = now + max(1, ceil((least - level) / rate * 1e6))
    end
  end
  remaining = floor(max(0, level))  -- a debt takes the level below zero (give_back.lua)
  if pool_usable(pool, pe) then remaining = remaining + pool end
  keep = ceil((burst - level) / rate * 1000)
  if pool > 0 then keep = max(keep, ceil((pe - now) / 1000)) end
  local ms = extend_ttl(s[7], s[2], s[8], keep)
  local xe = s[8]
  if ms then xe = now + ms * 1000 end
  local qs = sweep(s[6])
  if ts == now then ts = now_s end
  if qs then
    call('HSET', bucket, 'l', level, 'ts', ts, 'p', pool, 'pe', pe, 'v', version, 'qs', qs,
         record_field, record(), 'xt', ts, 'xe', xe)
  elseif pool ~= p0 or pe ~= e0 then
    call('HSET', bucket, 'l', level, 'ts', ts, 'p', pool, 'pe', pe, record_field, record(), 'xt',
         ts, 'xe', xe)
  else
    call('HSET', bucket, 'l', level, 'ts', ts, record_field, record(), 'xt', ts, 'xe', xe)
  end
  if ms then call('PEXPIRE', bucket, ms) end
  ttl_set = true
end

-- Which kinds the call's keys need (each kind's functions are made only then: Lua makes a
-- script's functions anew on every run), and the tenants of each group in the call.
-- kinds[i], grouped_at[i], shared_at[i]: key i's kind, whether it has a group budget and
-- whether it is a shared bucket (a budget or fair instances), parsed once here.
local groups, group_order, tenants_of = {}, {}, {}
local kinds, grouped_at, shared_at = {}, {}, {}
local keys, any_shared, any_window = #KEYS / 3, false, false
for i = 0, keys - 1 do
  a0 = n * i
  local kind = tonumber(ARGV[a0 + at.kind])
  kinds[i] = kind
  if kind == 0 and tonumber(ARGV[a0 + at.group_rate]) > 0 then
    grouped_at[i], shared_at[i] = true, true
    local key, field = KEYS[3 * i + 3], 't:' .. ARGV[a0 + at.tenant]
    local fields = tenants_of[key]
    if not fields then
      fields = {}
      tenants_of[key] = fields
    end
    if not fields[field] then
      fields[field] = true
      fields[#fields + 1] = field
    end
    any_shared = true
  elseif kind == 0 then
    local paced = ARGV[a0 + at.fair_instances] == '1'
    shared_at[i] = paced
    any_shared = any_shared or paced
  else
    any_window = true
  end
end

local shared_bucket
if any_shared then
  shared_bucket = (function()
    -- A share level brought up to date at rate r, holding at most cap (new: full).
    local function refill_share(lv, lts, r, cap)
      if lv < 0 then return cap, now end
      if now > lts then
        lv = lv + r * (now - lts) / 1e6
        lts = now
      end
      return min(cap, lv), lts
    end

    -- Weighted max-min fair shares of capacity over claims {weight, floor, ceiling}, kept as
    -- (mode, k) as core::fair_share does: 0 ceiling + k*weight, 1 clamp(k*weight, floor,
    -- ceiling), 2 floor*k.
    local function fair_share(capacity, claims)
      local count = #claims
      local sum_hi, sum_w, sum_lo = 0, 0, 0
      for i = 1, count do
        sum_hi = sum_hi + claims[i][3]
        sum_w = sum_w + claims[i][1]
      end
      if count == 0 then return 0, 0 end
      if sum_hi <= capacity then return 0, (capacity - sum_hi) / sum_w end
      local lo = {}
      for i = 1, count do
        lo[i] = min(claims[i][2], claims[i][3])
        sum_lo = sum_lo + lo[i]
      end
      if sum_lo >= capacity then return 2, capacity / sum_lo end
      local ev = {}
      for i = 1, count do
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

    local function share_of(mode, k, w, floor_, ceiling)
      local lo = min(floor_, ceiling)
      if mode == 0 then return ceiling + k * w end
      if mode == 2 then return lo * k end
      return min(ceiling, max(lo, k * w))
    end

    -- The group hashes of this call, read once and written once (at the end of the call): per
    -- group key {l, ts, fm, fk, fa (numbers or nil), rec = {t:<tenant> = {weight, guaranteed,
    -- demand, seen} or false (none)}, all (whole hash read), dead, dirty (fields to delete and to
    -- write), ttl_ms}. `tenants_of` lists the tenant fields of the call's keys per group key, so
    -- that the first read of a group asks for all of them in one HMGET.

    local function tenant_record(v)
      if not v then return false end
      local w, gu, d, seen = match(v, '^([^,]*),([^,]*),([^,]*),([^,]*)')
      return {tonumber(w), tonumber(gu), tonumber(d), tonumber(seen)}
    end

    local function group(key)
      local g = groups[key]
      if g then return g end
      local fields = tenants_of[key]
      local v = call('HMGET', key, 'l', 'ts', 'fm', 'fk', 'fa', unpack(fields))
      g = {l = tonumber(v[1]), ts = tonumber(v[2]), fm = tonumber(v[3]), fk = tonumber(v[4]),
           fa = tonumber(v[5]), rec = {}, dead = {}, dirty = {}}
      for i = 1, #fields do g.rec[fields[i]] = tenant_record(v[5 + i]) end
      groups[key] = g
      group_order[#group_order + 1] = key
      return g
    end

    -- The live claims of a group's tenants but `skip` (after reading the whole hash once per call):
    -- tenants last seen at or before live_after are forgotten.
    local function live_claims(g, skip, live_after)
      if not g.all then
        local all = call('HGETALL', group_key)
        for i = 1, #all, 2 do
          local k = all[i]
          if g.rec[k] == nil and sub(k, 1, 2) == 't:' then g.rec[k] = tenant_record(all[i + 1]) end
        end
        g.all = true
      end
      local claims = {}
      for k, r in pairs(g.rec) do
        if r and k ~= skip then
          if r[4] <= live_after then
            g.rec[k] = false
            g.dead[k] = true
            g.dirty[k] = nil
          else
            claims[#claims + 1] = {r[1], r[2], r[3]}
          end
        end
      end
      return claims
    end

    -- The holders a shared bucket lists in ix.
    local function indexed()
      local listed = {}
      for h in string.gmatch(call('HGET', bucket, 'ix') or '', '[^\n]+') do
        listed[#listed + 1] = h
      end
      return listed
    end

    -- The names of `from` not marked in `once`, each once, appended to `out` (and marked).
    local function distinct(from, once, out)
      for _, h in ipairs(from) do
        if not once[h] then
          once[h] = true
          out[#out + 1] = h
        end
      end
      return out
    end

    -- Sums over all records are redone once per refresh (a sixteenth of a TTL); in between a
    -- call changes them by its own change only, so a lease reads no whole hash (O(1)).
    local function shared_bucket()
      local rate, burst = tonumber(ARGV[a0 + at.rate]), tonumber(ARGV[a0 + at.burst])
      local demand = tonumber(ARGV[a0 + at.demand])
      local paced = ARGV[a0 + at.fair_instances] == '1'
      local grate, gburst, weight, guaranteed
      if grouped then
        grate, gburst = tonumber(ARGV[a0 + at.group_rate]), tonumber(ARGV[a0 + at.group_burst])
        weight, guaranteed = tonumber(ARGV[a0 + at.weight]), tonumber(ARGV[a0 + at.guaranteed_rate])
      end
      local tenant
      local span = max(ttl, 1)
      local live_after = now - span
      local refresh = floor(span / 16)
      local window = floor(span / 4) / 1e6
      local need = least
      local mine = 'i:' .. holder
      local s
      if grouped then
        s = call('HMGET', bucket, 'l', 'ts', 'p', 'pe', 'it', 'ia', mine, record_field, 'qs', 'xt',
                 'xe', 'sl', 'sts')
      else
        s = call('HMGET', bucket, 'l', 'ts', 'p', 'pe', 'it', 'ia', mine, record_field, 'qs', 'xt',
                 'xe')
      end
      local answer = remembered(s[8])
      if answer then return answer end
      local ml, mts, before = -1, now, 0
      if s[7] then
        local a, lv, lt = match(s[7], '^([^,]*),[^,]*,[^,]*,([^,]*),([^,]*)')
        before, ml, mts = tonumber(a), tonumber(lv), tonumber(lt)
      end
      local p0, e0 = tonumber(s[3]) or 0, tonumber(s[4]) or 0
      local level, ts, pool, pe = bucket_state(s[1], s[2], p0, e0, rate, burst)

      local d = demand
      if not (d > 0) then d = want / max(window, 1e-9) end

      -- The instances are listed in ix (holders, one per line), so that redoing the sum reads
      -- their records only, not the request records beside them. A sweep lists them anew from
      -- the whole hash (and so adds those that a layout-1 writer added); a new one adds itself.
      local qs, listed = sweep(s[9])
      local index
      local total, total_at = tonumber(s[5]), tonumber(s[6])
      if total_at == nil or now - total_at >= refresh then
        -- Instances that stopped asking are deleted when the sum is redone.
        total, total_at = d, now
        listed = listed or indexed()
        local names = {holder}
        local fields = distinct(listed, {[holder] = true}, {})
        local dead = {}
        for i = 1, #fields, 1000 do
          local part = {}
          for j = i, min(#fields, i + 999) do part[#part + 1] = 'i:' .. fields[j] end
          local records = call('HMGET', bucket, unpack(part))
          for j = 1, #part do
            local v = records[j]
            if v then
              local dm, seen = match(v, '^([^,]*),[^,]*,([^,]*)')
              if tonumber(seen) <= live_after then
                dead[#dead + 1] = part[j]
              else
                total = total + tonumber(dm)
                names[#names + 1] = fields[i + j - 1]
              end
            end
          end
        end
        hdel(bucket, dead)
        index = table.concat(names, '\n')
      else
        total = total + d - before
        if listed or not s[7] then
          listed = listed or indexed()
          local once = {}
          local names = distinct(listed, once, {})
          if not once[holder] then names[#names + 1] = holder end
          index = table.concat(names, '\n')
        end
      end

      local allowed, gshare, gl, gts, sl, sts = rate, 0, 0, 0, -1, now
      local g, fm, fk, fa
      if grouped then
        tenant = 't:' .. ARGV[a0 + at.tenant]
        g = group(group_key)
        gl, gts = bucket_state(g.l, g.ts, nil, nil, grate, gburst)
        fm, fk, fa = g.fm, g.fk, g.fa
        local hi = min(total, rate)
        if fa == nil or not g.rec[tenant] or now - fa >= refresh then
          local claims = live_claims(g, tenant, live_after)
          claims[#claims + 1] = {weight, guaranteed, hi}
          fm, fk = fair_share(grate, claims)
          fa = now
        end
        gshare = share_of(fm, fk, weight, guaranteed, hi)
        sl, sts = tonumber(s[12]) or -1, tonumber(s[13]) or now
        sl, sts = refill_share(sl, sts, gshare, max(gshare * window, gburst * gshare / grate, need))
        allowed = min(rate, gshare)
      end
      local part = 0
      if paced then
        if total > 0 then part = allowed * d / total else part = allowed end
        ml, mts = refill_share(ml, mts, part, max(part * window, burst * part / rate, need))
      end

      -- An instance's part belongs to the level that set the key's rate; when the key's own
      -- rate set it, what the bucket holds above three quarters of its burst is lent
      -- beyond the part (core::kLentAbove: parts left unspent, about to overflow).
      local key_room, group_room = level, huge
      if grouped then group_room = min(gl, sl) end
      local lends = paced and not (grouped and gshare < rate)
      local kept = burst * 0.75
      local lent = ml
      if paced and not lends then
        group_room = min(group_room, ml)
      elseif lends then
        lent = max(ml, level - kept)
        key_room = min(level, lent)
      end
      local room = min(key_room, group_room)
      if want > 0 then
        local from
        from, pool = take(pool, pe, room, need)
        if from == 'room' then
          level = level - granted
          if paced then ml = max(0, ml - granted) end
          if grouped then
            gl = gl - granted
            sl = sl - granted
          end
        elseif not from then
          local w = 1
          local function short(lv, r)
            if lv < need then
              if r > 0 then w = max(w, ceil((need - lv) / r * 1e6)) else w = span end
            end
          end
          short(level, rate)
          -- A part that is short waits for its refill, or for the bucket's spare if sooner.
          if paced and lent < need then
            local pw = span
            if part > 0 then pw = ceil((need - ml) / part * 1e6) end
            if lends and rate > 0 then pw = min(pw, ceil((kept + need - level) / rate * 1e6)) end
            w = max(w, pw)
          end
          if grouped then
            short(gl, grate)
            short(sl, gshare)
            -- A group emptied by others, asked of by several instances: this one's turn
            -- comes when its part has refilled its ask, at most the group's fill time
            -- (core::lease_shared).
            if paced and part > 0 and total > d and gl < need and grate > 0 then
              w = max(w, min(ceil(want / part * 1e6), ceil(gburst / grate * 1e6)))
            end
          end
          wait = now + min(w, span)
        end
        if granted < want then
          if key_room <= group_room then limited = 1 else limited = 2 end
        end
      end
      local left = level
      if paced then left = min(left, lent) end
      if grouped then left = min(left, gl, sl) end
      remaining = floor(max(0, left))
      if pool_usable(pool, pe) then remaining = remaining + pool end
      -- demand and held as the C++ sent them (%.17g and an integer): not formatted again.
      local ds = ARGV[a0 + at.demand]
      if not (demand > 0) then ds = format('%.17g', d) end
      local instance = format('%s,%s,%s,%.17g,%d', ds, ARGV[a0 + at.held], now_s, ml, mts)
      keep = max(ceil((burst - level) / rate * 1000), ceil(span / 1000))
      if pool > 0 then keep = max(keep, ceil((pe - now) / 1000)) end
      local ms = extend_ttl(s[10], s[2], s[11], keep)
      local xe = s[11]
      if ms then xe = now + ms * 1000 end
      -- Fields that did not change are not written again (p, pe, ia; v with each sweep).
      local more = qs or index or pool ~= p0 or pe ~= e0
      if ts == now then ts = now_s end
      if total_at == now then total_at = now_s end
      if sts == now then sts = now_s end
      if more then
        local w = {'HSET', bucket, 'l', level, 'ts', ts, 'p', pool, 'pe', pe, 'it', total, 'ia',
                   total_at, mine, instance, record_field, record(), 'xt', ts, 'xe', xe}
        if grouped then w[#w + 1], w[#w + 2], w[#w + 3], w[#w + 4] = 'sl', sl, 'sts', sts end
        if index then w[#w + 1], w[#w + 2] = 'ix', index end
        if qs then w[#w + 1], w[#w + 2], w[#w + 3], w[#w + 4] = 'qs', qs, 'v', version end
        call(unpack(w))
      elseif grouped then
        call('HSET', bucket, 'l', level, 'ts', ts, 'it', total, mine, instance, record_field,
             record(), 'xt', ts, 'xe', xe, 'sl', sl, 'sts', sts)
      else
        call('HSET', bucket, 'l', level, 'ts', ts, 'it', total, mine, instance, record_field,
             record(), 'xt', ts, 'xe', xe)
      end
      if ms then call('PEXPIRE', bucket, ms) end
      ttl_set = true
      if grouped then
        g.l, g.ts, g.fm, g.fk, g.fa = gl, gts, fm, fk, fa
        local r = g.rec[tenant]
        if not r then
          r = {}
          g.rec[tenant] = r
        end
        r[1], r[2], r[3], r[4] = weight, guaranteed, min(total, rate), now
        -- weight and guaranteed as the C++ sent them (%.17g), for the record: not formatted again
        r[5], r[6] = ARGV[a0 + at.weight], ARGV[a0 + at.guaranteed_rate]
        g.dirty[tenant] = true
        g.dead[tenant] = nil
        g.ttl_ms = max(ceil((gburst - gl) / grate * 1000), ceil(span / 1000)) + 1000
      end
    end

    return shared_bucket
  end)()
end

local fixed_window, sliding_window, concurrency
if any_window then
  fixed_window, sliding_window, concurrency = (function()
    -- A window's start, count and previous count from HMGET st, c, pv (s), rolled to now.
    local function roll(s, window)
      local st, c, pv = tonumber(s[1]), tonumber(s[2]) or 0, tonumber(s[3]) or 0
      local start = now - (now % window)
      if st ~= start then
        if st == start - window then pv = c else pv = 0 end
        c = 0
        st = start
      end
      return st, c, pv
    end

    -- The key's limit and window (us), its HMGET st, c, pv, record, qs (s) and its window
    -- rolled to now; or first the remembered answer to a request already served.
    local function open_window()
      local limit, window = tonumber(ARGV[a0 + at.limit]), tonumber(ARGV[a0 + at.window_us])
      local s = call('HMGET', bucket, 'st', 'c', 'pv', record_field, 'qs')
      local r = remembered(s[4])
      if r then return r end
      local st, c, pv = roll(s, window)
      return nil, limit, window, s, st, c, pv
    end

    local function take_from_window(free, window_end)
      if want == 0 or free < least then return false end
      granted = min(want, free)
      expires = min(now + ttl, window_end)
      return true
    end

    local function write_window(st, c, pv, qs)
      qs = sweep(qs)
      if qs then
        call('HSET', bucket, 'st', st, 'c', c, 'pv', pv, 'v', version, record_field, record(),
             'qs', qs)
      else
        call('HSET', bucket, 'st', st, 'c', c, 'pv', pv, 'v', version, record_field, record())
      end
    end

    local function fixed_window()
      local r, limit, window, s, st, c, pv = open_window()
      if r then return r end
      local free = max(0, limit - c)
      if take_from_window(free, st + window) then
        c = c + granted
      elseif want > 0 then
        wait = st + window
      end
      remaining = limit - min(limit, c)
      write_window(st, c, pv, s[5])
      keep = ceil((st + 2 * window - now) / 1000)
    end

    local function sliding_window()
      local r, limit, window, s, st, c, pv = open_window()
      if r then return r end
      local weight = min(1, max(0, 1 - (now - st) / window))
      local used = pv * weight + c
      local free = 0
      if used < limit then free = floor(limit - used + 1e-9) end
      if take_from_window(free, st + window) then
        c = c + granted
        remaining = free - granted
      else
        remaining = free
        if want > 0 then
          if c + least <= limit then
            local e = ceil(window * (1 - (limit - c - least) / max(1, pv)))
            wait = st + min(window, max(now - st + 1, e))
          elseif least <= limit then
            local e = ceil(window * (1 - (limit - least) / max(1, c)))
            wait = st + window + min(window, max(0, e))
          else
            wait = st + 2 * window
          end
        end
      end
      write_window(st, c, pv, s[5])
      keep = ceil((st + 2 * window - now) / 1000)
    end

    -- A concurrency bucket's fields are its holders (no other field may be in its hash).
    local function concurrency()
      local limit = tonumber(ARGV[a0 + at.limit])
      local all = call('HGETALL', bucket)
      local others, current, last = 0, 0, now
      local next_lapse = now + 50000
      for i = 1, #all, 2 do
        local r, e = match(all[i + 1], '^(%d+):(%d+)$')
        r = tonumber(r)
        e = tonumber(e)
        if e <= now then
          call('HDEL', bucket, all[i])
        elseif all[i] == holder then
          current = r
        else
          others = others + r
          next_lapse = min(next_lapse, e)
          last = max(last, e)
        end
      end
      granted = min(want, max(current, max(0, limit - others)))
      if granted > 0 then
        expires = now + ttl
        last = max(last, expires)
        call('HSET', bucket, holder, format('%d:%d', granted, expires))
      else
        call('HDEL', bucket, holder)
      end
      remaining = max(0, limit - others - granted)
      if granted < min(want, least) then wait = next_lapse end
      keep = ceil((last - now) / 1000)
    end

    return fixed_window, sliding_window, concurrency
  end)()
end

-- Key i's lease (0-based): its remembered answer, or nil when decided now (granted, expires,
-- remaining, wait, limited).
local function lease_one(i)
  bucket, record_key, group_key = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  a0 = n * i
  holder = ARGV[a0 + at.holder]
  record_field = 'r:' .. holder
  local kind = kinds[i]
  grouped = grouped_at[i]
  in_hash = kind ~= 3
  if not in_hash then
    local r = remembered(call('GET', record_key))
    if r then return r end
  end
  want, ttl = tonumber(ARGV[a0 + at.want]), tonumber(ARGV[a0 + at.ttl_us])
  least = max(1, tonumber(ARGV[a0 + at.min]))
  granted, expires, remaining, wait, keep, limited = 0, 0, 0, 0, 0, 0
  ttl_set = false

  local r
  if shared_at[i] then
    r = shared_bucket()
  elseif kind == 0 then
    r = token_bucket()
  elseif kind == 1 then
    r = fixed_window()
  elseif kind == 2 then
    r = sliding_window()
  else
    r = concurrency()
  end
  if r then return r end

  -- A bucket with request records lives as long as its newest record must (2 TTL); a token
  -- bucket has set its TTL already (extend_ttl).
  if not ttl_set then
    if in_hash then keep = max(keep, ceil(2 * ttl / 1000) - 1000) end
    call('PEXPIRE', bucket, max(1000, keep + 1000))
  end
  if not in_hash then call('SET', record_key, record(), 'PX', ceil(max(1000, 2 * ttl / 1000))) end
end

-- Each key's answer: a remembered one, or the one just decided.
local answers = {}
for i = 0, keys - 1 do
  local a, o = lease_one(i), 6 * i
  if a then
    for j = 1, 6 do answers[o + j] = a[j] end
  else
    answers[o + 1], answers[o + 2], answers[o + 3] = granted, now, expires
    answers[o + 4], answers[o + 5], answers[o + 6] = remaining, wait, limited
  end
end

for _, key in ipairs(group_order) do
  local g = groups[key]
  if g.ttl_ms then
    local dead, w = {}, {'l', g.l, 'ts', g.ts, 'fm', g.fm, 'fk', g.fk, 'fa', g.fa, 'v', version}
    for k in pairs(g.dead) do dead[#dead + 1] = k end
    hdel(key, dead)
    for k in pairs(g.dirty) do
      local r = g.rec[k]
      w[#w + 1] = k
      w[#w + 1] = format('%s,%s,%.17g,%d', r[5], r[6], r[3], r[4])
    end
    for i = 1, #w, 1000 do call('HSET', key, unpack(w, i, min(#w, i + 999))) end
    call('PEXPIRE', key, g.ttl_ms)
  end
end
return answers
