#!/usr/bin/env bash
# Puts Node 24 first on PATH, installing it from the npm registry's `node` package into a cache
# folder when the machine's own Node is older. Source it: `. .ci/node24.sh`.
NODE24_VERSION=24.21.0
if ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 24 ? 0 : 1)' 2>/dev/null; then
  node24_dir="${XDG_CACHE_HOME:-$HOME/.cache}/kata-admission/node-$NODE24_VERSION"
  if [ ! -x "$node24_dir/node_modules/.bin/node" ]; then
    npm install --prefix "$node24_dir" --no-save --no-audit --no-fund --loglevel=error "node@$NODE24_VERSION" >&2
  fi
  export PATH="$node24_dir/node_modules/.bin:$PATH"
fi
node --version >&2
