#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kubectl for the test control plane from Go modules,
# into a cache directory, only when they are absent. Prints the asset directory on stdout.
#
# Honours KUBEBUILDER_ASSETS (the envtest convention): when it names a directory that
# already holds the three binaries, they are used as they are and nothing is built.
set -euo pipefail

K8S_VERSION=v1.35.4
ETCD_VERSION=v3.6.16
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" \
      && -x "$KUBEBUILDER_ASSETS/etcd" && -x "$KUBEBUILDER_ASSETS/kubectl" ]]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

sum_key="$(cat "$here/k8s/go.sum" "$here/etcd/go.sum" | sha256sum | cut -c1-12)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/policy-bot/kube-${K8S_VERSION}-etcd${ETCD_VERSION#v}-${sum_key}"

if [[ -x "$cache/kube-apiserver" && -x "$cache/etcd" && -x "$cache/kubectl" ]] \
   && "$cache/kube-apiserver" --version 2>/dev/null | grep -q "Kubernetes ${K8S_VERSION}$"; then
  echo "$cache"
  exit 0
fi

# The official Go tarball installs to /usr/local/go without touching PATH.
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="$PATH:/usr/local/go/bin"; fi
command -v go >/dev/null || { echo "build.sh: Go is needed to build the test control plane" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod"
mkdir -p "$cache.partial"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
start=$(date +%s)
echo "build.sh: building kube-apiserver, kubectl ($K8S_VERSION) and etcd ($ETCD_VERSION) into $cache" >&2
(cd "$here/k8s" && go build -ldflags "$ldflags" -o "$cache.partial/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl) >&2
(cd "$here/etcd" && go build -ldflags "-s -w" -o "$cache.partial/etcd" go.etcd.io/etcd/server/v3) >&2
rm -rf "$cache"
mv "$cache.partial" "$cache"
echo "build.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$cache"
