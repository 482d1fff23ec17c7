#!/usr/bin/env bash
# The release: for a tag vX.Y.Z that matches package.json and the chart, builds the image and
# pushes it as REGISTRY/kata-admission:X.Y.Z, then packages the chart and pushes it to
# oci://REGISTRY/charts (docs/developing.md: Releasing). The tests run it against a local registry.
#   .ci/release.sh vX.Y.Z REGISTRY [--plain-http] [image options, see .ci/image.sh]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,6s/^# \{0,1\}//p' "$0" >&2; exit 2; }
tag="$1" registry="$2"
shift 2
plain_http="" image_args=()
for arg in "$@"; do
  if [ "$arg" = --plain-http ]; then plain_http=1; else image_args+=("$arg"); fi
done
version="${tag#v}"
package_version="$(node -p 'require("./package.json").version')"
chart_version="$(sed -n 's/^version: *//p' charts/kata-admission/Chart.yaml)"
app_version="$(sed -n "s/^appVersion: *['\"]\{0,1\}\([^'\"]*\)['\"]\{0,1\}\$/\1/p" charts/kata-admission/Chart.yaml)"
for pair in "package.json:$package_version" "Chart.yaml version:$chart_version" "Chart.yaml appVersion:$app_version"; do
  [ "${pair##*:}" = "$version" ] || { echo "release: $tag does not match ${pair%:*} (${pair##*:})" >&2; exit 1; }
done
command -v helm >/dev/null || { echo "release: helm is needed (test/controlplane/build.sh tools builds it)" >&2; exit 1; }

bash .ci/image.sh --tag "kata-admission:$version" --push "$registry/kata-admission:$version" \
  ${plain_http:+--tls-verify=false} "${image_args[@]}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
helm lint --quiet charts/kata-admission
helm package charts/kata-admission --destination "$out" >&2
helm push "$out/kata-admission-$version.tgz" "oci://$registry/charts" ${plain_http:+--plain-http}
echo "released $tag: image $registry/kata-admission:$version, chart oci://$registry/charts/kata-admission" >&2
