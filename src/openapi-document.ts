// The OpenAPI document as the service with default configuration describes itself, without
// Redis: what `npm run openapi` writes to openapi/openapi.json and a test keeps in step.
import { Redis } from 'ioredis';
import { buildApp } from './app.js';
import { loadConfig } from './config.js';

export async function buildOpenApiDocument(): Promise<unknown> {
  // Never connects: building the app registers routes and defines scripts, nothing more.
  const redis = new Redis({ lazyConnect: true, enableOfflineQueue: false });
  const app = await buildApp({ config: loadConfig({}), redis, sweep: false, checkIndexFormat: false, logger: false });
  try {
    await app.ready();
    return app.swagger();
  } finally {
    await app.close();
    redis.disconnect();
  }
}

export const OPENAPI_FILE = 'openapi/openapi.json';

export function formatDocument(document: unknown): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}
