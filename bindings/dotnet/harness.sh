# Sourced by the scripts that start processes for a test (e2e/run.sh, prometheus/run.sh):
# a work folder, the processes started (all stopped on exit, also on failure), fail() with
# the logs' tails, free_port, and start_redis. Set HARNESS_NAME before sourcing.
WORK=$(mktemp -d "/tmp/tollgate-$HARNESS_NAME.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "$HARNESS_NAME: FAIL: $*"; for f in "$WORK"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A redis-server on a free loopback port, no persistence: REDIS_PORT. Not in a subshell
# (PIDS must see it).
start_redis() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  redis-cli -p "$REDIS_PORT" ping | grep -q PONG || fail "redis-server did not start"
}
