#!/usr/bin/env bash
# Builds the helm CLI (for the chart tests: lint, template) from the Go module pinned in
# go.mod, into a cache directory, only when it is absent. Prints the binary's path on stdout.
#
# Honours HELM_BIN: when it names an executable, it is used as it is and nothing is built.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELM_VERSION="$(sed -n 's|^[[:space:]]*helm.sh/helm/v3 \(v[0-9.]*\).*|\1|p' "$here/go.mod")"
[[ -n "$HELM_VERSION" ]] || { echo "build.sh: no helm.sh/helm/v3 requirement in go.mod" >&2; exit 1; }

if [[ -n "${HELM_BIN:-}" && -x "$HELM_BIN" ]]; then
  echo "$HELM_BIN"
  exit 0
fi

sum_key="$(sha256sum < "$here/go.sum" | cut -c1-12)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/policy-bot/helm-${HELM_VERSION}-${sum_key}"

if [[ -x "$cache/helm" ]] && "$cache/helm" version --short 2>/dev/null | grep -q "^${HELM_VERSION}+"; then
  echo "$cache/helm"
  exit 0
fi

# The official Go tarball installs to /usr/local/go without touching PATH.
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="$PATH:/usr/local/go/bin"; fi
command -v go >/dev/null || { echo "build.sh: Go is needed to build helm" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod"

# Stamped as helm's own Makefile does: its version, and the Kubernetes version that
# `.Capabilities.KubeVersion` and the deprecation lint assume (client-go's minor + 1.x).
client_go="$(sed -n 's|^[[:space:]]*k8s.io/client-go \(v[0-9.]*\).*|\1|p' "$here/go.mod")"
k8s_minor="$(echo "$client_go" | cut -d. -f2)"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
ldflags="$ldflags -X helm.sh/helm/v3/internal/version.metadata=policy-bot"
ldflags="$ldflags -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags="$ldflags -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=${k8s_minor}"
done

start=$(date +%s)
echo "build.sh: building helm ${HELM_VERSION} into $cache" >&2
mkdir -p "$cache.partial"
(cd "$here" && go build -ldflags "$ldflags" -o "$cache.partial/helm" helm.sh/helm/v3/cmd/helm) >&2
rm -rf "$cache"
mv "$cache.partial" "$cache"
echo "build.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$cache/helm"
