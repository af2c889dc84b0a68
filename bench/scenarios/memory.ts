// Redis memory per live lease: used_memory (INFO memory) after acquiring N leases, minus
// used_memory of the emptied store before, divided by N. Three kinds of lease:
// (i)   one resource (instances/i-N), no action, no requestId: the target (<= 1 KiB);
// (ii)  four resources two levels deep and an action with a 1 KiB payload;
// (iii) as (i) with a requestId, which the conductor SDK always sends (its idempotency key
//       costs a key of its own): for information.
//
// The events stream is left out of the per-lease figure and reported on its own: it is
// capped at STREAM_MAX_ENTRIES entries (default 100 000) whatever the number of live leases,
// and it fills with renewals and releases as much as with grants, so its memory is a cost
// of the event history, not of holding a lease. (After the fill, XTRIM empties it and
// used_memory is read again; the difference is the stream's share.)
//
// To show where the bytes go, every key's MEMORY USAGE is then summed by key family (the
// key name after the prefix, up to ':': l = lease hashes, ax/as/b/bx = path indexes,
// t = listing index per path, h = per holder, exp = expiry schedule, ...).
import { fourResources, holderOf, LONG_TTL_MS, payloadOfSize } from '../lib/bodies.js';
import type { Redis } from 'ioredis';
import type { Context } from '../lib/context.js';
import { usedMemory } from '../lib/redis-info.js';
import { formatBytes, formatNumber } from '../lib/stats.js';
import { figure, type Scenario } from './types.js';

export const MEMORY_BUDGET_BYTES = 1024;

interface Variant {
  key: string;
  label: string;
  body: (i: number) => object;
}

const PAYLOAD_BYTES = 1024;

const VARIANTS: Variant[] = [
  {
    key: 'plain',
    label: '(i) 1 resource, no action',
    body: (i) => ({ holder: holderOf(i), resources: [{ path: `instances/i-${i}` }], ttlMs: LONG_TTL_MS }),
  },
  {
    key: 'rich',
    label: '(ii) 4 resources, action with 1 KiB payload',
    body: (i) => ({
      holder: holderOf(i),
      resources: fourResources(i),
      ttlMs: LONG_TTL_MS,
      action: { kind: 'resize', payload: payloadOfSize(PAYLOAD_BYTES) },
    }),
  },
  {
    key: 'requestId',
    label: '(iii) as (i) with a requestId (as the SDK sends)',
    body: (i) => ({ holder: holderOf(i), resources: [{ path: `instances/i-${i}` }], ttlMs: LONG_TTL_MS, requestId: `req-${i}-0123456789abcdef` }),
  },
];

interface Measurement {
  leases: number;
  before: number;
  afterWithStream: number;
  afterWithoutStream: number;
  perLease: number;
  streamPerGrant: number;
  /** family -> keys, MEMORY USAGE bytes summed (events stream emptied), and the encodings met. */
  byFamily: Record<string, FamilyUsage>;
}

interface FamilyUsage {
  keys: number;
  bytes: number;
  /** OBJECT ENCODING -> keys: a compact encoding (listpack) costs a fraction of a hashtable or skiplist. */
  encodings: Record<string, number>;
}

/** MEMORY USAGE (exact: SAMPLES 0) and OBJECT ENCODING of every key, summed by key family. */
async function memoryByFamily(probe: Redis, prefix: string): Promise<Record<string, FamilyUsage>> {
  const families: Record<string, FamilyUsage> = {};
  let cursor = '0';
  do {
    const [next, keys] = await probe.scan(cursor, 'COUNT', 1000);
    cursor = next;
    const pipeline = probe.pipeline();
    for (const key of keys) pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '0').call('OBJECT', 'ENCODING', key);
    const results = (await pipeline.exec()) ?? [];
    keys.forEach((key, i) => {
      const rest = key.startsWith(prefix) ? key.slice(prefix.length) : undefined;
      const family = rest === undefined ? '(other)' : rest.includes(':') ? rest.slice(0, rest.indexOf(':')) : rest;
      const entry = (families[family] ??= { keys: 0, bytes: 0, encodings: {} });
      entry.keys++;
      entry.bytes += Number(results[2 * i]?.[1] ?? 0);
      const encoding = (results[2 * i + 1]?.[1] as string | undefined) ?? '?';
      entry.encodings[encoding] = (entry.encodings[encoding] ?? 0) + 1;
    });
  } while (cursor !== '0');
  return families;
}

/** "l 610 B (500 keys, hashtable), ..." bytes per lease by family, largest first. */
function describeFamilies(byFamily: Measurement['byFamily'], leases: number): string {
  return Object.entries(byFamily)
    .filter(([, { bytes }]) => bytes / leases >= 1)
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .map(([family, { keys, bytes, encodings }]) => `${family} ${formatNumber(bytes / leases)} (${formatNumber(keys)} x ${Object.keys(encodings).join('/')})`)
    .join(', ');
}

export const memory: Scenario = {
  name: 'memory',
  summary: 'Redis used_memory per live lease (events stream excluded, reported apart) for (i) 1 resource, (ii) 4 resources + 1 KiB action, (iii) (i) + requestId',
  async run(ctx: Context) {
    const count = ctx.sizes.memoryLeases;
    const measurements: Record<string, Measurement> = {};
    for (const variant of VARIANTS) {
      await ctx.resetStore();
      await ctx.service();
      const before = await usedMemory(ctx.probe);
      await ctx.fillOther(variant.label, count, variant.body);
      const live = await ctx.activeLeases();
      if (live !== count) throw new Error(`${variant.label}: the service counts ${live} active leases, not ${count}`);
      const afterWithStream = await usedMemory(ctx.probe);
      await ctx.probe.xtrim(`${ctx.prefix}ev`, 'MAXLEN', 0);
      const afterWithoutStream = await usedMemory(ctx.probe);
      const byFamily = await memoryByFamily(ctx.probe, ctx.prefix);
      const m: Measurement = {
        leases: count,
        before,
        afterWithStream,
        afterWithoutStream,
        perLease: (afterWithoutStream - before) / count,
        streamPerGrant: (afterWithStream - afterWithoutStream) / count,
        byFamily,
      };
      measurements[variant.key] = m;
      ctx.progress(
        `    ${variant.label}: used_memory ${formatBytes(before)} -> ${formatBytes(afterWithStream)} (${formatBytes(afterWithoutStream)} without the events stream): ` +
          `${formatNumber(m.perLease)} B per lease, events stream ${formatNumber(m.streamPerGrant)} B per grant`,
      );
      ctx.progress(`      MEMORY USAGE per lease by key family: ${describeFamilies(byFamily, count)}`);
    }
    const figures: Record<string, ReturnType<typeof figure>> = {};
    for (const variant of VARIANTS) {
      const m = measurements[variant.key]!;
      figures[variant.key] = figure(`${variant.label}, bytes per lease`, m.perLease, 'B');
    }
    figures.breakdown = figure('(i) bytes per lease by key family (MEMORY USAGE)', Number.NaN, 'text', describeFamilies(measurements.plain!.byFamily, count));
    figures.stream = figure('events stream, bytes per grant event (apart)', measurements.plain!.streamPerGrant, 'B');
    figures.budget = figure('budget per single-resource lease', MEMORY_BUDGET_BYTES, 'B');
    figures.leases = figure('leases per variant', count, 'count');
    return { figures, details: { measurements, payloadBytes: PAYLOAD_BYTES } };
  },
};
