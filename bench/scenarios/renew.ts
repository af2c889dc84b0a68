// Heartbeats: renewing one live lease (what every holder does every ttl/3), and the
// holder-wide renew of a conductor with many leases (POST /v1/holders/{holder}/renew).
import { LONG_TTL_MS } from '../lib/bodies.js';
import type { Context } from '../lib/context.js';
import { latencyOf, rateOf } from '../lib/http-load.js';
import { withJsonClient } from '../lib/json-client.js';
import { describeUsage } from '../lib/usage.js';
import { figure, type Scenario } from './types.js';

export const renew: Scenario = {
  name: 'renew',
  summary: 'POST /v1/leases/{id}/renew with {} on a random one of a pool of live leases (instances/r-N, ttl 30 min)',
  async run(ctx: Context) {
    await ctx.resetStore();
    const service = await ctx.service();
    const ids = await ctx.fillOther('renew pool', ctx.sizes.renewPool, (i) => ({ holder: `conductor-${i % 64}`, resources: [{ path: `instances/r-${i}` }], ttlMs: LONG_TTL_MS }));
    const spec = {
      url: service.url,
      connections: ctx.options.connections,
      expect: [200],
      requests: [
        {
          method: 'POST' as const,
          body: '{}',
          setupRequest: (request: object) => ({ ...request, path: `/v1/leases/${ids[Math.floor(Math.random() * ids.length)]}/renew` }),
        },
      ],
    };
    const phase = await ctx.phase('renew', spec, service);
    const latency = latencyOf(phase.load, 200);
    return {
      figures: {
        rps: figure('renew req/s', rateOf(phase.load, 200), 'req/s'),
        p50: figure('latency p50', latency.p50, 'ms'),
        p99: figure('latency p99', latency.p99, 'ms'),
        cpu: figure('CPU per request', Number.NaN, 'text', describeUsage(phase.usage)),
      },
      details: { ...phase, pool: ids.length },
    };
  },
};

const HOLDER = 'conductor-with-many';

export const holderRenew: Scenario = {
  name: 'holder-renew',
  summary: 'POST /v1/holders/{holder}/renew with {} for a holder of 100 live leases (every call renews all 100)',
  async run(ctx: Context) {
    await ctx.resetStore();
    const service = await ctx.service();
    const count = ctx.sizes.holderLeases;
    await ctx.fillOther(`${count} leases of one holder`, count, (i) => ({ holder: HOLDER, resources: [{ path: `instances/h-${i}` }], ttlMs: LONG_TTL_MS }));
    const path = `/v1/holders/${HOLDER}/renew`;
    // Make sure one call renews them all, or the figure would not mean what it says.
    const answer = await withJsonClient(service.url, (client) => client.expect<{ renewed: unknown[] }>(200, 'POST', path, {}));
    if (answer.renewed.length !== count) throw new Error(`${path} renewed ${answer.renewed.length} leases, not ${count}`);
    const spec = { url: service.url, connections: ctx.options.connections, expect: [200], requests: [{ method: 'POST' as const, path, body: '{}' }] };
    const phase = await ctx.phase(`holder renew (${count} leases)`, spec, service);
    const latency = latencyOf(phase.load, 200);
    const rps = rateOf(phase.load, 200);
    return {
      figures: {
        rps: figure('holder renew req/s', rps, 'req/s'),
        leases: figure(`leases renewed/s (x${count})`, rps * count, 'leases/s'),
        p50: figure('latency p50', latency.p50, 'ms'),
        p99: figure('latency p99', latency.p99, 'ms'),
        cpu: figure('CPU per request', Number.NaN, 'text', describeUsage(phase.usage)),
      },
      details: { ...phase, leases: count },
    };
  },
};
