#!/usr/bin/env bash
# libtollgate.so (and so the NuGet package's runtimes/linux-x64/native/libtollgate.so) may
# need only the C and C++ runtimes and OpenSSL: libc, libm, libgcc_s, libstdc++, libssl,
# libcrypto (and the dynamic loader). Anything else would have to be on every host.
set -euo pipefail
lib=$1
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
bad=$(grep -Ev '^(libc|libm|libgcc_s|libstdc\+\+|libssl|libcrypto|ld-linux-x86-64)\.so(\.[0-9]+)*$' <<<"$needed" || true)
if [[ -z $needed ]]; then
  echo "$lib: no NEEDED entries read"
  exit 1
fi
if [[ -n $bad ]]; then
  echo "$lib needs libraries beyond libc, libm, libgcc_s, libstdc++ and OpenSSL:"
  echo "$bad"
  exit 1
fi
echo "$lib NEEDED: $(tr '\n' ' ' <<<"$needed")"
