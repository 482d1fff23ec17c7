#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy into a cache folder outside the checkout,
# keyed by version, and prints that folder. Reused when already built; KUBEBUILDER_ASSETS wins
# when it already holds both binaries (as envtest users expect).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
k8s_version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$here/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "$here/go.mod")"

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi
out="${XDG_CACHE_HOME:-$HOME/.cache}/kata-admission/controlplane-$k8s_version-etcd-$etcd_version"
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "build.sh: Go is needed to build the control plane" >&2; exit 1; }
mkdir -p "$out.tmp"
cd "$here"
echo "building kube-apiserver $k8s_version and etcd $etcd_version into $out (several minutes, once)" >&2
go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version" \
  -o "$out.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3 >&2
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
