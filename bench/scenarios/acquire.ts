// Acquire throughput: uncontended single-resource grants (the target against the HTTP floor),
// four-resource grants, and many clients racing for one path (mostly 409s).
import { fourResources, holderOf, LONG_TTL_MS, nextSerial } from '../lib/bodies.js';
import type { Context, Phase } from '../lib/context.js';
import { latencyOf, rateOf } from '../lib/http-load.js';
import { releaseListed, withJsonClient } from '../lib/json-client.js';
import { describeUsage } from '../lib/usage.js';
import { uncontendedAcquire } from './floors.js';
import { figure, type Figure, type Scenario } from './types.js';

/** req/s, p50, p99 of one status, and where the CPU went. */
function throughputFigures(phase: Phase, status: number, what: string): Record<string, Figure> {
  const latency = latencyOf(phase.load, status);
  return {
    rps: figure(`${what} req/s`, rateOf(phase.load, status), 'req/s'),
    p50: figure('latency p50', latency.p50, 'ms'),
    p99: figure('latency p99', latency.p99, 'ms'),
    cpu: figure('CPU per request', Number.NaN, 'text', describeUsage(phase.usage)),
  };
}

export const uncontended: Scenario = {
  name: 'uncontended',
  summary: 'POST /v1/leases, one exclusive resource instances/i-N, a new path every request, ttl 30 min, no action',
  needs: ['http-floor'],
  async run(ctx: Context) {
    await ctx.resetStore();
    const service = await ctx.service();
    const spec = { url: service.url, connections: ctx.options.connections, requests: [uncontendedAcquire('/v1/leases')], expect: [201] };
    const phase = await ctx.phase('acquire', spec, service);
    ctx.store.extra = true;
    return { figures: throughputFigures(phase, 201, 'acquire'), details: { ...phase } };
  },
};

export const multiResource: Scenario = {
  name: 'multi-resource',
  summary: 'POST /v1/leases with 4 resources two levels deep (instances/i-N/volumes/v-1,2 and networks/n-N/ports/p-1,2), new paths every request',
  async run(ctx: Context) {
    await ctx.resetStore();
    const service = await ctx.service();
    const spec = {
      url: service.url,
      connections: ctx.options.connections,
      expect: [201],
      requests: [
        {
          method: 'POST' as const,
          path: '/v1/leases',
          setupRequest: (request: object) => {
            const n = nextSerial();
            return { ...request, body: JSON.stringify({ holder: holderOf(n), resources: fourResources(n), ttlMs: LONG_TTL_MS }) };
          },
        },
      ],
    };
    const phase = await ctx.phase('acquire 4 resources', spec, service);
    ctx.store.extra = true;
    return { figures: throughputFigures(phase, 201, '4-resource acquire'), details: { ...phase } };
  },
};

const HOT_PATH = 'contended/hot';

interface Contender {
  leaseId?: string;
}

export const contended: Scenario = {
  name: 'contended',
  summary:
    'many clients race for one path: each acquires contended/hot (ttl 5 s) and, when it got it, releases it at once (try-lock); ' +
    'a 409 starts its next try',
  async run(ctx: Context) {
    await ctx.resetStore();
    const service = await ctx.service();
    const spec = {
      url: service.url,
      connections: ctx.sizes.contenders,
      expect: [201, 409, 200],
      requests: [
        {
          method: 'POST' as const,
          path: '/v1/leases',
          setupRequest: (request: object) => {
            const n = nextSerial();
            return { ...request, body: JSON.stringify({ holder: `contender-${n % ctx.sizes.contenders}`, resources: [{ path: HOT_PATH }], ttlMs: 5_000 }) };
          },
          onResponse: (status: number, body: string, context: Contender) => {
            context.leaseId = status === 201 ? (JSON.parse(body) as { id: string }).id : undefined;
          },
        },
        {
          method: 'POST' as const,
          body: '{}',
          // Nothing to release after a 409: returning nothing restarts the sequence (a new try).
          setupRequest: ((request: object, context: Contender) =>
            context.leaseId === undefined ? undefined : { ...request, path: `/v1/leases/${context.leaseId}/release` }) as never,
        },
      ],
    };
    // A lease granted as the warm-up stopped is never released by its client: it would hold
    // the path for its whole ttl, through the measurement.
    const phase = await withJsonClient(service.url, (client) =>
      ctx.phase(`${ctx.sizes.contenders} clients on one path`, spec, service, { afterWarmup: () => releaseListed(client, `prefix=${HOT_PATH}`) }),
    );
    const acquires = rateOf(phase.load, 201, 409);
    const conflicts = latencyOf(phase.load, 409);
    return {
      figures: {
        rps: figure('acquire answers/s (201 + 409)', acquires, 'req/s'),
        share409: figure('share of 409', (100 * rateOf(phase.load, 409)) / acquires, '%'),
        grants: figure('grants/s (each released)', rateOf(phase.load, 201), 'req/s'),
        p50: figure('409 latency p50', conflicts.p50, 'ms'),
        p99: figure('409 latency p99', conflicts.p99, 'ms'),
        cpu: figure('CPU per request', Number.NaN, 'text', describeUsage(phase.usage)),
      },
      details: { ...phase, connections: ctx.sizes.contenders },
    };
  },
};
