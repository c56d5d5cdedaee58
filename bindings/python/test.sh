#!/usr/bin/env bash
# The Python binding's suite, as scripts/test's `python` stage runs it: installs what is
# missing (Debian packages only; PyPI is never asked), builds a wheel with
# `pip wheel --no-build-isolation --no-index`, installs it into a fresh venv made with
# --system-site-packages, and runs pytest against the INSTALLED package from outside the
# source tree. Exit status 0 when every test passed.
#   TOLLGATE_PY_BUILD_DIR  CMake tree and outputs, reused between runs (default: ROOT/build-python)
#   extra arguments go to pytest (e.g. `bindings/python/test.sh -k asyncio -x`)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${TOLLGATE_PY_BUILD_DIR:-$ROOT/build-python}
export TOLLGATE_PY_BUILD_DIR=$OUT

"$ROOT/scripts/deps"  # compilers, CMake, the SDK's libraries, redis-server
"$HERE/deps"

PYTHON=/usr/bin/python3  # Debian's: its site-packages hold pybind11, pytest, flask, ...
VENV=$OUT/test-venv
WHEELS=$OUT/wheels
mkdir -p "$OUT"
rm -rf "$VENV" "$WHEELS"

echo "== python: building the wheel"
"$PYTHON" -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip wheel --quiet --no-build-isolation --no-index --no-deps \
  --wheel-dir "$WHEELS" "$HERE" >"$OUT/wheel.log" 2>&1 || { tail -40 "$OUT/wheel.log"; exit 1; }
wheel=$(ls "$WHEELS"/tollgate-*.whl)
echo "== python: installing $(basename "$wheel") into a fresh venv"
"$VENV/bin/python" -m pip install --quiet --no-index --no-deps "$wheel"

echo "== python: testing"
# From $OUT, so that nothing in the source tree shadows the installed package.
cd "$OUT"
TOLLGATE_EXPECT_INSTALLED=1 "$VENV/bin/python" -m pytest -p no:cacheprovider \
  --rootdir "$HERE" -c "$HERE/pyproject.toml" "$HERE/tests" "$@"
