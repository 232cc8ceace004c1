#!/usr/bin/env bash
# Builds Kyverno (admission, reports, background and cleanup controllers, and the kubectl-kyverno
# CLI) from the Go module pinned in go.mod, into a cache directory, only when absent, and copies
# the CRDs that match those controllers next to them (<cache>/crds). Prints the cache directory
# on stdout.
#
#   build.sh          binaries + CRDs (minutes, once)
#   build.sh --crds   only the CRDs: downloads two modules, prints <cache>/crds (seconds)
#
# The CRDs come from Kyverno's own config/crds and from config/crd of the openreports
# reports-api module Kyverno's go.mod pins, both read from the Go module cache; a PROVENANCE
# file in <cache>/crds names the module versions and their go.sum hashes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
module_version() { sed -n "s|^[[:space:]]*$1 \(v[^ ]*\).*|\1|p" "$here/go.mod"; }
KYVERNO_VERSION="$(module_version github.com/kyverno/kyverno)"
[[ -n "$KYVERNO_VERSION" ]] || { echo "build.sh: no github.com/kyverno/kyverno requirement in go.mod" >&2; exit 1; }
BINARIES=(kyverno reports-controller background-controller cleanup-controller kubectl-kyverno)

sum_key="$(sha256sum < "$here/go.sum" | cut -c1-12)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/policy-bot/kyverno-${KYVERNO_VERSION}-${sum_key}"

crds_only=0
case "${1:-}" in
  --crds) crds_only=1 ;;
  "") ;;
  *) echo "usage: build.sh [--crds]" >&2; exit 2 ;;
esac

built() {
  local b version
  for b in "${BINARIES[@]}"; do [[ -x "$cache/$b" ]] || return 1; done
  [[ -f "$cache/crds/PROVENANCE" ]] || return 1
  # read all of it first: `| grep -q` under pipefail fails when the CLI gets SIGPIPE
  version="$("$cache/kubectl-kyverno" version 2>/dev/null)" || return 1
  grep -qx "Version: ${KYVERNO_VERSION}" <<< "$version"
}
done_already() {
  if (( crds_only )); then [[ -f "$cache/crds/PROVENANCE" ]]; else built; fi
}
result() { if (( crds_only )); then echo "$cache/crds"; else echo "$cache"; fi; }

if done_already; then result; exit 0; fi
# One build at a time (parallel test sessions, make -j): the others wait, then find it done.
mkdir -p "$(dirname "$cache")"
exec 9> "$cache.lock"
flock 9
if done_already; then result; exit 0; fi

# The official Go tarball installs to /usr/local/go without touching PATH.
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="$PATH:/usr/local/go/bin"; fi
command -v go >/dev/null || { echo "build.sh: Go is needed to build Kyverno and read its CRDs" >&2; exit 1; }
# Kyverno's go.mod asks for Go >= 1.26.6; a local toolchain that is too old fails clearly
# rather than downloading another one.
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath"

# copy_crds DIR: Kyverno's and openreports' CRD files, flat, plus the provenance note.
copy_crds() {
  local out="$1" kyverno_dir reports_version reports_dir
  reports_version="$(module_version github.com/openreports/reports-api)"
  (cd "$here" && go mod download github.com/kyverno/kyverno "github.com/openreports/reports-api") >&2
  kyverno_dir="$(cd "$here" && go list -m -f '{{.Dir}}' github.com/kyverno/kyverno)"
  reports_dir="$(cd "$here" && go list -m -f '{{.Dir}}' github.com/openreports/reports-api)"
  [[ -d "$kyverno_dir/config/crds" && -d "$reports_dir/config/crd" ]] \
    || { echo "build.sh: no CRDs in $kyverno_dir/config/crds or $reports_dir/config/crd" >&2; return 1; }
  rm -rf "$out"
  mkdir -p "$out"
  find "$kyverno_dir/config/crds" "$reports_dir/config/crd" -name '*.yaml' -exec cp {} "$out/" \;
  chmod u+w "$out"/*.yaml
  {
    echo "CRDs copied unmodified from the Go module cache by tools/kyverno/build.sh:"
    echo "  github.com/kyverno/kyverno ${KYVERNO_VERSION} config/crds/**/*.yaml"
    echo "    $(grep "^github.com/kyverno/kyverno ${KYVERNO_VERSION} " "$here/go.sum")"
    echo "  github.com/openreports/reports-api ${reports_version} config/crd/*.yaml"
    echo "    $(grep "^github.com/openreports/reports-api ${reports_version} " "$here/go.sum")"
    echo "Both Apache License 2.0."
  } > "$out/PROVENANCE"
}

if (( crds_only )); then
  mkdir -p "$cache"
  copy_crds "$cache/crds.partial"
  rm -rf "$cache/crds"
  mv "$cache/crds.partial" "$cache/crds"
  echo "$cache/crds"
  exit 0
fi

# As Kyverno's Makefile stamps its release builds (LD_FLAGS); read back by `kyverno version`.
ldflags="-s -w -X github.com/kyverno/kyverno/pkg/version.BuildVersion=${KYVERNO_VERSION}"
packages=()
for b in "${BINARIES[@]}"; do
  case "$b" in
    kubectl-kyverno) packages+=(github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno) ;;
    *) packages+=("github.com/kyverno/kyverno/cmd/$b") ;;
  esac
done

start=$(date +%s)
echo "build.sh: building Kyverno ${KYVERNO_VERSION} (${BINARIES[*]}) into $cache" >&2
rm -rf "$cache.partial"
mkdir -p "$cache.partial"
(cd "$here" && go build -ldflags "$ldflags" -o "$cache.partial/" "${packages[@]}") >&2
copy_crds "$cache.partial/crds"
rm -rf "$cache"
mv "$cache.partial" "$cache"
echo "build.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$cache"
