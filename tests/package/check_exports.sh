#!/usr/bin/env bash
# libtollgate.so must export the tollgate:: C++ API and the tg_* C API and nothing else:
# no standard-library, Boost, hiredis or JSON symbols that could clash with another copy
# in the same process.
set -euo pipefail
lib=$1
symbols=$(nm -D --defined-only -C "$lib" | cut -d' ' -f3-)
allowed='^((typeinfo( name)? for |vtable for |VTT for |construction vtable for .*-in-)?tollgate::|tg_)'
bad=$(grep -Ev "$allowed" <<<"$symbols" || true)
count=$(wc -l <<<"$symbols")
if [[ -n $bad ]]; then
  echo "libtollgate.so exports symbols outside the API:"
  echo "$bad" | head -50
  exit 1
fi
echo "libtollgate.so: $count exported symbols, all tollgate:: or tg_*"
