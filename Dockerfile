# The base image: the official Node 24 slim image unless a build names another (a mirror of it, or
# a stand-in: docs/developing.md). Both stages use it, so the runtime has the Node that built it.
ARG BASE_IMAGE=docker.io/library/node:24-bookworm-slim

# Build stage: install everything, compile TypeScript (npm ci runs the prepare script), then drop
# the dev dependencies, so the runtime stage only copies.
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
# npm's own settings, for a build behind a mirror or with no network (`npm run image -- --npm-cache`).
ARG NPM_CONFIG_REGISTRY=https://registry.npmjs.org/
ARG NPM_CONFIG_OFFLINE=false
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund

# Runtime stage: production dependencies and the compiled output only; nothing runs at build time.
FROM ${BASE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY bin ./bin
# Numeric non-root user, so runAsNonRoot can verify it; nothing is written outside mounted volumes.
USER 65532:65532
# The command is an argument, so the image also runs `scan`, `explain` and the other commands.
ENTRYPOINT ["node", "/app/bin/kata-admission.js"]
CMD ["serve"]
