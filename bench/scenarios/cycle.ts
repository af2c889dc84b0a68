// Acquire + release pairs through HTTP, the service's equivalent of a redlock acquire +
// release (the target divides by redlock's pairs/s). Each connection acquires a new path,
// then releases that lease, then starts again: autocannon's request sequence carries the
// lease id from the 201 to the release in its per-connection context, so no custom driver
// is needed.
import { LONG_TTL_MS, nextSerial, singleAcquireBody } from '../lib/bodies.js';
import type { Context } from '../lib/context.js';
import { latencyOf, rateOf, type LoadRequest } from '../lib/http-load.js';
import { describeUsage } from '../lib/usage.js';
import { figure, type Scenario } from './types.js';

interface Holding {
  leaseId?: string;
}

/**
 * Acquire `pathOf(n)` then release it. The release is skipped (the sequence restarts) when
 * the acquire did not answer 201; the phase then fails on that unexpected status anyway.
 * `holder`, when given, holds every lease acquired: a phase stops in the middle of some
 * pairs (and autocannon never sees the answers still in flight), so a scenario that must
 * keep the live set constant releases that holder's leases afterwards (releaseListed).
 */
export function acquireThenRelease(pathOf: (n: number) => string, holder?: string): LoadRequest[] {
  return [
    {
      method: 'POST',
      path: '/v1/leases',
      setupRequest: (request) => {
        const n = nextSerial();
        const body = holder === undefined ? singleAcquireBody(pathOf(n), n) : JSON.stringify({ holder, resources: [{ path: pathOf(n) }], ttlMs: LONG_TTL_MS });
        return { ...request, body };
      },
      onResponse: (status, body, context: Holding) => {
        context.leaseId = status === 201 ? (JSON.parse(body) as { id: string }).id : undefined;
      },
    },
    {
      method: 'POST',
      body: '{}',
      setupRequest: ((request: LoadRequest, context: Holding) =>
        context.leaseId === undefined ? undefined : { ...request, path: `/v1/leases/${context.leaseId}/release` }) as never,
    },
  ];
}

export const cycle: Scenario = {
  name: 'cycle',
  summary: 'each connection: POST /v1/leases (instances/c-N, a new path), then POST /v1/leases/{id}/release of that lease; pairs/s',
  needs: ['redlock'],
  async run(ctx: Context) {
    await ctx.resetStore();
    const service = await ctx.service();
    const spec = { url: service.url, connections: ctx.options.connections, requests: acquireThenRelease((n) => `instances/c-${n}`), expect: [201, 200] };
    const phase = await ctx.phase('acquire + release', spec, service);
    const acquire = latencyOf(phase.load, 201);
    const release = latencyOf(phase.load, 200);
    // A pair is done when its release answered.
    const pairs = rateOf(phase.load, 200);
    return {
      figures: {
        pairs: figure('acquire+release pairs/s', pairs, 'pairs/s'),
        acquireP50: figure('acquire p50', acquire.p50, 'ms'),
        acquireP99: figure('acquire p99', acquire.p99, 'ms'),
        releaseP50: figure('release p50', release.p50, 'ms'),
        releaseP99: figure('release p99', release.p99, 'ms'),
        cpu: figure('CPU per request', Number.NaN, 'text', describeUsage(phase.usage)),
      },
      details: { ...phase },
    };
  },
};
