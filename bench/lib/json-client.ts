// A small keep-alive JSON client over node:http for the requests that are not load: a
// sanity check, the orphan scenario's waves and background load. (Load itself goes through
// autocannon.)
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LeaseApi } from './orphans.js';
import { runPool } from './pool.js';

export interface JsonResponse {
  status: number;
  text: string;
  /** The answer's headers (e.g. retry-after). */
  headers?: IncomingHttpHeaders;
}

export class JsonClient {
  private readonly agent: Agent;

  constructor(
    private readonly baseUrl: string,
    maxSockets = 32,
    /** How long one call may take before it fails. */
    private readonly timeoutMs = 10_000,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets });
  }

  call(method: string, path: string, body?: unknown): Promise<JsonResponse> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.baseUrl}${path}`,
        { method, agent: this.agent, headers: payload === undefined ? {} : { 'content-type': 'application/json' }, timeout: this.timeoutMs },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: response.headers }));
          response.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${this.timeoutMs / 1000} s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** The call's JSON body; throws unless it answered `expected`. */
  async expect<T>(expected: number, method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.call(method, path, body);
    if (response.status !== expected) throw new Error(`${method} ${path} answered ${response.status}: ${response.text.slice(0, 300)}`);
    return (response.text === '' ? undefined : JSON.parse(response.text)) as T;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Runs `use` with a client of its own, closed afterwards. */
export async function withJsonClient<T>(baseUrl: string, use: (client: JsonClient) => Promise<T>): Promise<T> {
  const client = new JsonClient(baseUrl, 8);
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

/** The lease calls of bench/lib/orphans.ts over real HTTP. */
export function httpLeaseApi(client: JsonClient): LeaseApi {
  return {
    async acquire(body) {
      const lease = await client.expect<{ id: string; expiresAt: string }>(201, 'POST', '/v1/leases', body);
      return { id: lease.id, expiresAt: Date.parse(lease.expiresAt) };
    },
    async renew(id) {
      await client.expect(200, 'POST', `/v1/leases/${id}/renew`, {});
    },
    async release(id) {
      await client.expect(200, 'POST', `/v1/leases/${id}/release`, {});
    },
  };
}

/**
 * Releases every lease GET /v1/leases?<query> lists (e.g. holder=x, prefix=p), until a
 * listing comes back empty: when load stops, autocannon drops the answers still in flight,
 * so leases are left that no release will follow, and the service may grant one of those
 * acquires after the first listing. Returns how many it released.
 */
export async function releaseListed(client: JsonClient, query: string): Promise<number> {
  let released = 0;
  for (let round = 0; ; round++) {
    await sleep(round === 0 ? 20 : 200);
    const page = await client.expect<{ items: { id: string }[] }>(200, 'GET', `/v1/leases?${query}&limit=1000`);
    if (page.items.length === 0) return released;
    if (round >= 10) throw new Error(`${query} still lists ${page.items.length} leases after 10 rounds of releases`);
    await runPool(page.items.length, 8, async (i) => {
      // 410: its own pair released it meanwhile.
      const answer = await client.call('POST', `/v1/leases/${page.items[i]!.id}/release`, {});
      if (answer.status !== 200 && answer.status !== 410) throw new Error(`release answered ${answer.status}: ${answer.text}`);
    });
    released += page.items.length;
  }
}
