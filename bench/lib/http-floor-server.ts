// The HTTP floor: the least any JSON-over-HTTP lease service on Fastify must do, run in a
// child process exactly like the service (bench/lib/service-process.ts). It parses an
// acquire-sized JSON body, validates it against the service's own acquire schema (the
// TypeBox AcquireBody, compiled by the service's Ajv settings) and answers a hello-world
// 201. No Redis, no routes but this one, no hooks.
//
// The Fastify options are buildApp's own (serverOptions in src/app.ts).
import Fastify from 'fastify';
import { serverOptions, useSharedSchemas } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { requestSchemas } from '../../src/leases/schemas.js';
import { FLOOR_PATH } from './bodies.js';

const config = loadConfig(process.env);
const app = Fastify(serverOptions(config));
useSharedSchemas(app);

app.post(FLOOR_PATH, { schema: { body: requestSchemas(config).AcquireBody } }, async (_request, reply) => reply.code(201).send({ hello: 'world' }));
app.get('/healthz', async () => ({ status: 'ok' }));

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void app.close().finally(() => process.exit(0));
  });
}

await app.listen({ port: config.PORT, host: config.HOST });
