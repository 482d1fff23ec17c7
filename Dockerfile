# Build stage: install everything and compile TypeScript (npm ci runs the prepare script).
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
RUN npm ci

# Runtime stage: production dependencies and the compiled output only.
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin ./bin
# Numeric non-root user, so runAsNonRoot can verify it; nothing is written outside mounted volumes.
USER 65532:65532
ENTRYPOINT ["node", "/app/bin/kata-admission.js", "serve"]
