# Build stage: compile TypeScript with the dev dependencies, then drop them.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# npm run build compiles the service (tsconfig.build.json) and the SDK's declarations
# (tsconfig.client.json); test/dockerfile.test.ts stages exactly what is copied here and builds.
COPY tsconfig.json tsconfig.build.json tsconfig.client.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Runtime stage: the compiled service, production dependencies, and redis-server for the
# embedded mode (used only when REDIS_URL is not set).
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
  && rm -rf /var/lib/apt/lists/* \
  && mkdir -p /data && chown node:node /data
WORKDIR /app
COPY --from=build --chown=node:node /app/package.json ./
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
USER node
# A container binds every address of its own, so access control is on: every /v1 call needs a
# bearer token (make one with `node dist/cli/main.js tokens create ...` in the container).
# AUTH=none turns it off, on purpose.
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 DATA_DIR=/data AUTH=on
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/main.js"]
