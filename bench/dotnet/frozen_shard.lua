-- For bench/dotnet/frozen_shard.sh: one connection per wrk thread (-t N -c N), so request()
-- and response() alternate on a thread and each response's latency is known. Writes one line
-- per response, "start_us status latency_us" (CLOCK_MONOTONIC, as Python's time.monotonic),
-- to OUT.<thread>; the tenant is "bench" (TENANTS=1) or one per connection.
--   wrk -t32 -c32 -d10s -s frozen_shard.lua URL -- OUT TENANTS
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } frozen_timespec;
int clock_gettime(int clock, frozen_timespec *tp);
]]
local ts = ffi.new("frozen_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

local out, req, sent
function init(args)
  out = assert(io.open(args[1] .. "." .. id, "w"))
  out:setvbuf("full", 65536)  -- flushed when wrk exits
  local tenant = (tonumber(args[2]) or 1) > 1 and ("bench-" .. id) or "bench"
  req = wrk.format("GET", "/", { ["X-Tenant"] = tenant })
end

function request()
  sent = now_us()
  return req
end

function response(status, headers, body)
  out:write(string.format("%d %d %d\n", sent, status, now_us() - sent))
end
