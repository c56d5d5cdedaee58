#!/usr/bin/env bash
# Packs Tollgate.<version>.nupkg (the binding and runtimes/linux-x64/native/libtollgate.so)
# and Tollgate.AspNetCore.<version>.nupkg into OUT (default build-dotnet/nupkgs), then checks
# them: the native library is there, needs only libc/libm/libgcc_s/libstdc++/OpenSSL, and
# both packages carry a README, a license and repository metadata (a public https URL or
# none, never a local path).
# The version is <Version> of bindings/dotnet/Directory.Build.props with a pre-release suffix
# naming the commit, 0.1.0-dev.g1a2b3c4d5e6f (and .dirty<UTC time> for uncommitted changes), so
# a local pack never takes a released number and a re-pack never meets its predecessor in a
# NuGet cache; TOLLGATE_PACKAGE_VERSION=0.1.0 packs a release. The version is written to
# OUT/VERSION.
#   nuget/pack.sh [OUT]     (expects build-dotnet/sdk/libtollgate.so; bindings/dotnet/test.sh builds it)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/build-dotnet/nupkgs}
LIB=${TOLLGATE_NATIVE_LIBRARY:-$ROOT/build-dotnet/sdk/libtollgate.so}
[[ -f $LIB ]] || { echo "pack: $LIB not found (build the native library first)"; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/Tollgate.*.nupkg

base=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$ROOT/bindings/dotnet/Directory.Build.props")
version=${TOLLGATE_PACKAGE_VERSION:-}
props=(-p:TollgateNativeLibrary="$LIB")
if commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null); then
  props+=(-p:RepositoryCommit="$commit")
  if [[ -z $version ]]; then
    version=$base-dev.g${commit:0:12}
    [[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || version+=.dirty$(date -u +%Y%m%d%H%M%S)
  fi
fi
[[ -n $version ]] || version=$base-dev.$(date -u +%Y%m%d%H%M%S)  # not a git checkout
props+=(-p:Version="$version")

# The repository URL: TOLLGATE_REPOSITORY_URL, else the remote origin, if either is a public
# https URL (credentials dropped); a clone's origin is often a local path, which is no URL.
url=${TOLLGATE_REPOSITORY_URL:-$(git -C "$ROOT" remote get-url origin 2>/dev/null || true)}
url=$(sed -E 's#^(https://)[^/@]*@#\1#' <<<"$url")
if [[ $url =~ ^https://[A-Za-z0-9.-]+\.[A-Za-z]{2,}(:[0-9]+)?/[^[:space:]]+$ ]]; then
  props+=(-p:RepositoryUrl="$url")
elif [[ -n ${TOLLGATE_REPOSITORY_URL:-} ]]; then
  echo "pack: TOLLGATE_REPOSITORY_URL=$TOLLGATE_REPOSITORY_URL is not a public https URL"; exit 1
fi

for project in Tollgate Tollgate.AspNetCore; do
  dotnet pack "$ROOT/bindings/dotnet/src/$project/$project.csproj" -c Release -o "$OUT" \
    "${props[@]}" -v:q -nologo >/dev/null
done

check() {  # package
  local pkg=$OUT/$1.$version.nupkg work
  [[ -f $pkg ]] || { echo "pack: $pkg missing"; exit 1; }
  work=$(mktemp -d)
  python3 -m zipfile -e "$pkg" "$work"
  local nuspec=$work/$1.nuspec
  for tag in '<readme>' '<license type="expression">' '<repository '; do
    grep -q "$tag" "$nuspec" || { echo "pack: $1.nuspec lacks $tag"; rm -rf "$work"; exit 1; }
  done
  local repo_url
  repo_url=$(sed -n 's:.*<repository [^>]*url="\([^"]*\)".*:\1:p' "$nuspec")
  if [[ -n $repo_url && ! $repo_url =~ ^https:// ]]; then
    echo "pack: $1.nuspec has repository url $repo_url (not an https URL)"; rm -rf "$work"; exit 1
  fi
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
echo "$version" >"$OUT/VERSION"
