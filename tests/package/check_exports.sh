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
# The C API: every function tollgate.h declares is exported, and no other tg_* symbol.
header=$(dirname "$0")/../../sdk/include/tollgate/tollgate.h
declared=$(grep -oE '^TG_API [^(]*\btg_[a-z_0-9]+\(' "$header" | grep -oE 'tg_[a-z_0-9]+\($' | tr -d '(' | sort -u)
exported=$(grep -E '^tg_' <<<"$symbols" | sort -u || true)
if [[ -z $declared ]]; then
  echo "no TG_API functions found in $header"
  exit 1
fi
if [[ $declared != "$exported" ]]; then
  echo "tg_* exports differ from tollgate.h (< declared, > exported):"
  diff <(echo "$declared") <(echo "$exported") || true
  exit 1
fi
echo "libtollgate.so: $count exported symbols, all tollgate:: or tg_*; $(wc -l <<<"$declared") C functions as declared"
