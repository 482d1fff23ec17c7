#!/usr/bin/env bash
# `npm run image -- [options]`: builds the OCI image from the Dockerfile with buildah (Debian's
# `buildah` package; no Docker daemon), and pushes it when asked (docs/install.md: The image).
#   --tag NAME          the image name (default: kata-admission:<package.json version>)
#   --base IMAGE        the base image of both stages (default: the Dockerfile's, node:24 slim)
#   --push REF          push to REF afterwards, e.g. registry.example.com/ci/kata-admission:0.1.0
#   --tls-verify=false  for a push to (and a base from) a plain-http or self-signed registry
#   --npm-cache DIR     build with no network, npm installing from this cache (~/.npm, say)
#   --digestfile FILE   write the pushed image's digest there
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,10s/^# \{0,1\}//p' "$0"; }
tag="kata-admission:$(node -p 'require("./package.json").version')"
base="" push="" tls_verify=true npm_cache="" digestfile=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --base) base="$2"; shift 2 ;;
    --push) push="$2"; shift 2 ;;
    --tls-verify=*) tls_verify="${1#*=}"; shift ;;
    --npm-cache) npm_cache="$2"; shift 2 ;;
    --digestfile) digestfile="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "image: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
command -v buildah >/dev/null || { echo "image: buildah is needed (Debian/Ubuntu: apt-get install buildah)" >&2; exit 1; }
args=(build --tls-verify="$tls_verify" -f Dockerfile -t "$tag")
[ -z "$base" ] || args+=(--build-arg "BASE_IMAGE=$base")
if [ -n "$npm_cache" ]; then
  args+=(--network none --volume "$(cd "$npm_cache" && pwd):/root/.npm" --build-arg NPM_CONFIG_OFFLINE=true)
fi
buildah "${args[@]}" .
if [ -n "$push" ]; then
  buildah push --tls-verify="$tls_verify" ${digestfile:+--digestfile "$digestfile"} "$tag" "docker://$push"
  echo "pushed $push" >&2
fi
