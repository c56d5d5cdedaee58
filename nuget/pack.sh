#!/usr/bin/env bash
# Packs Tollgate.<version>.nupkg (the binding and runtimes/linux-x64/native/libtollgate.so)
# and Tollgate.AspNetCore.<version>.nupkg into OUT (default build-dotnet/nupkgs), then checks
# them: the native library is there, needs only libc/libm/libgcc_s/libstdc++/OpenSSL, and
# both packages carry a README, a license and repository metadata.
#   nuget/pack.sh [OUT]     (expects build-dotnet/sdk/libtollgate.so; bindings/dotnet/test.sh builds it)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/build-dotnet/nupkgs}
LIB=${TOLLGATE_NATIVE_LIBRARY:-$ROOT/build-dotnet/sdk/libtollgate.so}
[[ -f $LIB ]] || { echo "pack: $LIB not found (build the native library first)"; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/Tollgate.*.nupkg

props=(-p:TollgateNativeLibrary="$LIB")
if commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null); then props+=(-p:RepositoryCommit="$commit"); fi
url=${TOLLGATE_REPOSITORY_URL:-$(git -C "$ROOT" remote get-url origin 2>/dev/null || true)}
[[ -n $url ]] && props+=(-p:RepositoryUrl="$url")

for project in Tollgate Tollgate.AspNetCore; do
  dotnet pack "$ROOT/bindings/dotnet/src/$project/$project.csproj" -c Release -o "$OUT" \
    "${props[@]}" -v:q -nologo >/dev/null
done

version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$ROOT/bindings/dotnet/Directory.Build.props")
check() {  # package
  local pkg=$OUT/$1.$version.nupkg work
  [[ -f $pkg ]] || { echo "pack: $pkg missing"; exit 1; }
  work=$(mktemp -d)
  python3 -m zipfile -e "$pkg" "$work"
  local nuspec=$work/$1.nuspec
  for tag in '<readme>' '<license type="expression">' '<repository '; do
    grep -q "$tag" "$nuspec" || { echo "pack: $1.nuspec lacks $tag"; rm -rf "$work"; exit 1; }
  done
  [[ -f $work/README.md ]] || { echo "pack: $1 has no README.md"; rm -rf "$work"; exit 1; }
  if [[ $1 == Tollgate ]]; then
    local so=$work/runtimes/linux-x64/native/libtollgate.so
    [[ -f $so ]] || { echo "pack: $1 lacks runtimes/linux-x64/native/libtollgate.so"; rm -rf "$work"; exit 1; }
    "$ROOT/tests/package/check_needed.sh" "$so"
    "$ROOT/tests/package/check_exports.sh" "$so"
    for tfm in net8.0 net10.0; do
      [[ -f $work/lib/$tfm/Tollgate.dll ]] || { echo "pack: $1 lacks lib/$tfm"; rm -rf "$work"; exit 1; }
    done
  fi
  rm -rf "$work"
  echo "pack: $pkg ok"
}
check Tollgate
check Tollgate.AspNetCore
