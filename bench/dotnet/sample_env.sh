# Sourced by the bench/dotnet scripts that run samples/aspnetcore on a real redis-server
# (frozen_shard.sh, two_instances.sh): installs what is missing, checks for the native
# library, builds the sample against it, and defines free_port and start_redis. Needs ROOT
# and NAME (the script's name, for messages); sets LIB and APP.
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
"$ROOT/bindings/dotnet/deps"  # dotnet (checked), curl, wrk, redis-server
LIB=${TOLLGATE_NATIVE_LIBRARY:-$ROOT/build-dotnet/sdk/libtollgate.so}
[[ -f $LIB ]] || { echo "$NAME: build libtollgate.so first (bindings/dotnet/test.sh)" >&2; exit 1; }
dotnet build "$ROOT/samples/aspnetcore" -c Release -p:TollgateNativeLibrary="$LIB" -v:q -nologo >/dev/null
APP=$ROOT/samples/aspnetcore/bin/Release/net10.0/Tollgate.Sample

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_redis DIR: a redis-server on a free loopback port, no persistence, its log in DIR;
# sets REDIS_PORT and REDIS_PID (the caller's trap stops it); fails unless it answers PING.
start_redis() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$1" >"$1/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  redis-cli -p "$REDIS_PORT" ping | grep -q PONG || fail "redis-server did not start"
}
