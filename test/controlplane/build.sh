#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl (whose `kubectl kustomize` and `apply -k` are the stock
# kustomize) from the Go module proxy into a cache folder outside the checkout, keyed by version,
# and prints that folder. What is already built is reused; KUBEBUILDER_ASSETS wins when it already
# holds all three (as envtest users expect).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
k8s_version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$here/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "$here/go.mod")"

all_in() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ] && [ -x "$1/kubectl" ]; }
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && all_in "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi
out="${XDG_CACHE_HOME:-$HOME/.cache}/kata-admission/controlplane-$k8s_version-etcd-$etcd_version"
if all_in "$out"; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "build.sh: Go is needed to build the control plane" >&2; exit 1; }
mkdir -p "$out"
cd "$here"
version_flags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version"
# Each binary is built into a temporary name and moved into place, so an interrupted build is redone.
build() {
  [ -x "$out/$1" ] && return 0
  echo "building $1 into $out (minutes, once per version)" >&2
  go build -trimpath -ldflags "$2" -o "$out/$1.tmp" "$3" >&2
  mv "$out/$1.tmp" "$out/$1"
}
build kube-apiserver "$version_flags" k8s.io/kubernetes/cmd/kube-apiserver
build etcd "-s -w" go.etcd.io/etcd/server/v3
build kubectl "$version_flags" k8s.io/kubernetes/cmd/kubectl
echo "$out"
