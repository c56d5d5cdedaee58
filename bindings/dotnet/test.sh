#!/usr/bin/env bash
# The .NET stage, from a clean clone: builds libtollgate.so (Release, build-dotnet/), checks
# its exports and NEEDED entries, builds and tests the binding against real Redis, packs the
# NuGet packages (nuget/pack.sh), runs the end-to-end test (e2e/run.sh) and has a real
# Prometheus server scrape the ASP.NET Core sample (prometheus/run.sh). Exit 0 = passed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
JOBS=${TOLLGATE_JOBS:-2}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

"$ROOT/scripts/deps"
"$HERE/deps"

step() { echo "== dotnet: $*"; }

step "native library (Release)"
cmake -S "$ROOT" -B "$ROOT/build-dotnet" -DCMAKE_BUILD_TYPE=Release \
  -DTOLLGATE_BUILD_TESTS=OFF -DTOLLGATE_BUILD_BENCH=OFF >/dev/null
cmake --build "$ROOT/build-dotnet" -j"$JOBS" --target tollgate >"$ROOT/build-dotnet/build.log" 2>&1 ||
  { tail -40 "$ROOT/build-dotnet/build.log"; exit 1; }
LIB=$ROOT/build-dotnet/sdk/libtollgate.so
"$ROOT/tests/package/check_exports.sh" "$LIB"
"$ROOT/tests/package/check_needed.sh" "$LIB"

step "build"
dotnet build "$HERE/Tollgate.slnx" -c Release -p:TollgateNativeLibrary="$LIB" -v:q -nologo

step "xunit tests (real redis-server), net8.0 and net10.0"
# Only the .NET 10 runtime is installed here: the net8.0 build runs rolled forward onto it.
DOTNET_ROLL_FORWARD=Major dotnet test "$HERE/tests/Tollgate.Tests" -c Release --no-build -v:q -nologo

if [[ -x $ROOT/nuget/pack.sh ]]; then
  step "pack"
  "$ROOT/nuget/pack.sh" "$ROOT/build-dotnet/nupkgs"
fi
if [[ -x $HERE/e2e/run.sh ]]; then
  step "end to end"
  "$HERE/e2e/run.sh" "$ROOT/build-dotnet/nupkgs"
fi
step "a real Prometheus server scrapes the ASP.NET Core sample"
TOLLGATE_NATIVE_LIBRARY="$LIB" "$HERE/prometheus/run.sh"
echo "== dotnet: all passed"
