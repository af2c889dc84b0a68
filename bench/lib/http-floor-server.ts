// The HTTP floor: the least any JSON-over-HTTP lease service on Fastify must do, run in a
// child process exactly like the service (bench/lib/service-process.ts). It parses an
// acquire-sized JSON body, validates it against the service's own acquire schema (the
// TypeBox AcquireBody, compiled by the service's Ajv settings) and answers a hello-world
// 201. No Redis, no routes but this one, no hooks.
//
// The Fastify options mirror buildApp's in src/app.ts (logger at LOG_LEVEL, bodyLimit,
// router options, request ids, framework errors). They are written out here because
// src/app.ts builds them inline: keep the two in step (or export them from src/app.ts and
// import them here).
import Fastify from 'fastify';
import { loadConfig } from '../../src/config.js';
import { frameworkErrorHandler } from '../../src/http/problems.js';
import { requestIdOf } from '../../src/http/request-id.js';
import { validatorCompiler } from '../../src/http/validation.js';
import { requestSchemas } from '../../src/leases/schemas.js';
import { FLOOR_PATH } from './bodies.js';

const config = loadConfig(process.env);
const app = Fastify({
  logger: { level: config.LOG_LEVEL },
  bodyLimit: config.BODY_LIMIT_BYTES,
  routerOptions: { maxParamLength: 1024 },
  requestIdHeader: false,
  genReqId: requestIdOf,
  return503OnClosing: false,
  frameworkErrors: frameworkErrorHandler,
});
app.setValidatorCompiler(validatorCompiler);

app.post(FLOOR_PATH, { schema: { body: requestSchemas(config).AcquireBody } }, async (_request, reply) => reply.code(201).send({ hello: 'world' }));
app.get('/healthz', async () => ({ status: 'ok' }));

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void app.close().finally(() => process.exit(0));
  });
}

await app.listen({ port: config.PORT, host: config.HOST });
