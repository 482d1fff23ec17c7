#!/usr/bin/env bash
# Builds a stand-in for the official node:24 slim image, which these machines cannot pull: a minimal
# Debian root file system (mmdebstrap, from Debian's packages) with Node from the npm registry's
# `node` package and npm from its `npm` package, laid out as the official image lays them out.
# Cached by version; prints the tarball's path (import it with `buildah add` onto scratch).
set -euo pipefail
suite=bookworm
node_version=24.21.0
npm_version=11.21.2
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kata-admission"
out="$cache/base-$suite-node-$node_version-npm-$npm_version.tar"
if [ -s "$out" ]; then echo "$out"; exit 0; fi
command -v mmdebstrap >/dev/null || { echo "base.sh: mmdebstrap is needed (apt-get install mmdebstrap)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "building the stand-in base image into $out (a minute, once per version)" >&2
# The mirror the machine's apt already uses.
mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
mmdebstrap --quiet --variant=minbase --include=ca-certificates "$suite" "$work/rootfs" "${mirror:-http://deb.debian.org/debian}" >&2
npm install --prefix "$work/npm" --no-save --no-audit --no-fund --loglevel=error \
  "node@$node_version" "npm@$npm_version" >&2
install -m 0755 "$work/npm/node_modules/node/bin/node" "$work/rootfs/usr/local/bin/node"
mkdir -p "$work/rootfs/usr/local/lib/node_modules"
cp -a "$work/npm/node_modules/npm" "$work/rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/rootfs/usr/local/bin/npx"
# The official image's unprivileged user.
chroot "$work/rootfs" /usr/sbin/groupadd --gid 1000 node
chroot "$work/rootfs" /usr/sbin/useradd --uid 1000 --gid node --shell /bin/bash --create-home node
rm -rf "$work/rootfs/var/cache/apt/"* "$work/rootfs/var/lib/apt/lists/"*
# A file of this process's own, renamed into place: two suites may build it at once.
tar -C "$work/rootfs" --numeric-owner -cf "$out.tmp.$$" .
mv "$out.tmp.$$" "$out"
echo "$out"
