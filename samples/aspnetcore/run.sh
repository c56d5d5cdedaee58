#!/usr/bin/env bash
# One command: builds libtollgate.so if it is not there yet, then runs the sample on
# http://127.0.0.1:5080. Extra arguments go to the app, e.g.
#   samples/aspnetcore/run.sh --Tollgate:Store:Type=redis --Tollgate:Store:Shards:0=redis://127.0.0.1:6379
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [[ ! -f $ROOT/build-dotnet/sdk/libtollgate.so ]]; then
  cmake -S "$ROOT" -B "$ROOT/build-dotnet" -DCMAKE_BUILD_TYPE=Release -DTOLLGATE_BUILD_TESTS=OFF -DTOLLGATE_BUILD_BENCH=OFF >/dev/null
  cmake --build "$ROOT/build-dotnet" -j2 --target tollgate >/dev/null
fi
exec dotnet run -c Release --project "$ROOT/samples/aspnetcore" -- "$@"
