#!/usr/bin/env bash
# Builds the binaries the tests run for real from the Go module proxy into a cache folder outside
# the checkout, keyed by version, and prints that folder:
#   build.sh [v1.37]   kube-apiserver, etcd and kubectl of that Kubernetes minor (default: the newest
#                      folder here); `kubectl kustomize` and `apply -k` are kubectl's own kustomize
#   build.sh tools     the standalone kustomize and helm binaries operators run
#   build.sh node      a node of the newest minor: kubelet, kube-scheduler, kube-controller-manager,
#                      containerd 2.x with its runc shim, and gVisor's runsc with its shim (the
#                      sandboxed handler standing in for Kata in the tests)
# What is already built is reused. KUBEBUILDER_ASSETS wins for the default control plane when it
# already holds all three (as envtest users expect).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kata-admission"
kustomize_version=v5.8.0
helm_version=v4.3.1
containerd_version=v2.4.2
gvisor_version=v0.0.0-20260905035102-160fafc42237

# Each binary is built into a temporary name and moved into place, so an interrupted build is redone.
build() { # out name ldflags package
  [ -x "$1/$2" ] && return 0
  command -v go >/dev/null || { echo "build.sh: Go is needed to build $2" >&2; exit 1; }
  echo "building $2 into $1 (minutes, once per version)" >&2
  mkdir -p "$1"
  go build -trimpath -ldflags "$3" -o "$1/$2.tmp" "$4" >&2
  mv "$1/$2.tmp" "$1/$2"
}
# A command at a version outside any module here: `go install` keeps the module's own go.mod.
install() { # out name module@version
  [ -x "$1/$2" ] && return 0
  command -v go >/dev/null || { echo "build.sh: Go is needed to build $2" >&2; exit 1; }
  echo "building $2 into $1 (minutes, once per version)" >&2
  mkdir -p "$1/.gobin"
  (cd "$1" && GOBIN="$1/.gobin" go install -trimpath -ldflags "-s -w" "$3" >&2)
  mv "$1/.gobin/$2" "$1/$2"
}

if [ "${1:-}" = tools ]; then
  out="$cache/tools-kustomize-$kustomize_version-helm-$helm_version"
  install "$out" kustomize "sigs.k8s.io/kustomize/kustomize/v5@$kustomize_version"
  install "$out" helm "helm.sh/helm/v4/cmd/helm@$helm_version"
  echo "$out"
  exit 0
fi

newest="$(cd "$here" && ls -d v1.* | sort -V | tail -1)"
if [ "${1:-}" = node ]; then
  k8s_version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$here/$newest/go.mod")"
  out="$cache/node-$k8s_version-containerd-$containerd_version-gvisor-${gvisor_version##*-}"
  version_flags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version"
  for cmd in kubelet kube-scheduler kube-controller-manager; do
    (cd "$here/$newest" && build "$out" "$cmd" "$version_flags" "k8s.io/kubernetes/cmd/$cmd")
  done
  export CGO_ENABLED=0 GOFLAGS="-tags=no_btrfs,no_devmapper,no_zfs"
  install "$out" containerd "github.com/containerd/containerd/v2/cmd/containerd@$containerd_version"
  install "$out" containerd-shim-runc-v2 \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$containerd_version"
  unset GOFLAGS
  if [ ! -x "$out/runsc" ] || [ ! -x "$out/containerd-shim-runsc-v1" ]; then
    echo "building runsc and its shim into $out (minutes, once per version)" >&2
    src="$out/.gvisor"
    rm -rf "$src"
    cp -r "$(go mod download -json "gvisor.dev/gvisor@$gvisor_version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')" "$src"
    chmod -R u+w "$src"
    # These machines drop CAP_SYS_RESOURCE: the shim may not lower its own oom_score_adj, which
    # it treats as fatal. Ignored silently: containerd reads the shim's start output as its reply,
    # so even a warning there breaks the start.
    python3 - "$src/pkg/shim/v1/manager.go" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
old = '''	if err := sys.SetOOMScore(cmd.Process.Pid, oomScoreMax); err != nil {
		return shim.BootstrapParams{}, fmt.Errorf("failed to set OOM Score on shim: %w", err)
	}'''
new = '''	_ = sys.SetOOMScore(cmd.Process.Pid, oomScoreMax)'''
if old not in text:
    sys.exit("build.sh: gVisor's shim no longer reads as expected; update the oom_score_adj patch")
open(path, 'w').write(text.replace(old, new))
PY
    (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$out/runsc.tmp" ./runsc >&2 &&
      go build -trimpath -ldflags "-s -w" -o "$out/containerd-shim-runsc-v1.tmp" ./shim >&2)
    mv "$out/runsc.tmp" "$out/runsc"
    mv "$out/containerd-shim-runsc-v1.tmp" "$out/containerd-shim-runsc-v1"
    rm -rf "$src"
  fi
  echo "$out"
  exit 0
fi

minor="${1:-$newest}"
mod="$here/$minor"
[ -f "$mod/go.mod" ] || { echo "build.sh: no Go module for Kubernetes $minor in $here" >&2; exit 1; }
all_in() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ] && [ -x "$1/kubectl" ]; }
if [ "$minor" = "$newest" ] && [ -n "${KUBEBUILDER_ASSETS:-}" ] && all_in "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi
k8s_version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$mod/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "$mod/go.mod")"
out="$cache/controlplane-$k8s_version-etcd-$etcd_version"
cd "$mod"
version_flags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version"
build "$out" kube-apiserver "$version_flags" k8s.io/kubernetes/cmd/kube-apiserver
build "$out" etcd "-s -w" go.etcd.io/etcd/server/v3
build "$out" kubectl "$version_flags" k8s.io/kubernetes/cmd/kubectl
echo "$out"
