// Orphan publication delay after expiry with 100 000 live leases: the measurement of
// `npm run bench:orphans` (bench/lib/orphans.ts), here against the service in its child
// process over HTTP. Leases with an action expire unrenewed in waves; only the reaper can
// publish them; the delay is (orphans-stream entry time - expiresAt), both on Redis' clock.
// The budget is one reaper interval plus 100 ms (REAPER_INTERVAL_MS as the service reads it).
//
// It reuses the live leases the live-leases scenario left in the store when they are the
// same (scenarios run in that order), which saves a fill of 100 000 leases.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Context } from '../lib/context.js';
import { httpLeaseApi, JsonClient } from '../lib/json-client.js';
import {
  acquireExpiringLeases,
  collectPublications,
  describeDelays,
  describeScriptTimes,
  readCommandLog,
  startBackgroundLoad,
  startCommandLog,
  type CommandLog,
  type Publication,
} from '../lib/orphans.js';
import { persistence } from '../lib/redis-info.js';
import { formatNumber } from '../lib/stats.js';
import { figure, type Scenario } from './types.js';

/** Slack over the budget before an orphan that has not appeared counts as never published. */
const PUBLICATION_GRACE_MS = 5_000;
/** Commands that ran longer than this (µs) are listed. */
const SLOW_COMMAND_US = 5_000;

/**
 * Waits until some replica's reaper holds its leadership lock. After a FLUSHALL the lock key
 * is gone and the leader only notices when it next extends it; orphans expiring until it
 * leads again would be published late for a reason that has nothing to do with load.
 */
async function waitForReaperLeader(ctx: Context): Promise<void> {
  const { REAPER_LOCK_MS, REAPER_INTERVAL_MS } = ctx.serviceConfig;
  const deadline = Date.now() + REAPER_LOCK_MS + 2 * REAPER_INTERVAL_MS + 2_000;
  while ((await ctx.probe.exists(`${ctx.prefix}reaper`)) === 0) {
    if (Date.now() > deadline) throw new Error('no reaper took its leadership lock');
    await sleep(50);
  }
}

export const orphans: Scenario = {
  name: 'orphans',
  summary: 'delay from expiry to publication on the orphans stream (the reaper alone) with 100 000 live leases (1 000 in smoke) and a light background load',
  async run(ctx: Context) {
    const live = ctx.sizes.liveLeases;
    const plan = ctx.sizes.orphans;
    if (ctx.store.extra || ctx.store.fillerIds.length > live) await ctx.resetStore();
    if (ctx.store.fillerIds.length === live) ctx.progress(`  reusing the ${formatNumber(live)} live leases already in the store`);
    await ctx.ensureFiller(live);
    ctx.store.extra = true; // orphans and churn are left behind
    const service = await ctx.service();
    await waitForReaperLeader(ctx);
    await ctx.compactAof();
    const rewritesBefore = (await persistence(ctx.probe)).rewrites;

    const budgetMs = ctx.serviceConfig.REAPER_INTERVAL_MS + 100;
    const client = new JsonClient(service.url, plan.concurrency);
    const api = httpLeaseApi(client);
    const background = startBackgroundLoad(api, ctx.store.fillerIds);
    await startCommandLog(ctx.probe);
    let expiring: Map<string, number>;
    let waves: { from: number; to: number }[];
    let published: Map<string, Publication>;
    let duplicates: number;
    let load: { requests: number; failures: number };
    let commands: CommandLog | undefined;
    try {
      ctx.progress(
        `  acquiring ${plan.count} leases with action 'resize', ttl ${plan.ttlMs.min}-${plan.ttlMs.max} ms, in ${plan.waves} waves ` +
          `${plan.waveGapMs} ms apart, never renewed; budget ${budgetMs} ms`,
      );
      ({ expiring, waves } = await acquireExpiringLeases(api, plan));
      const lastExpiry = Math.max(...expiring.values());
      ctx.progress(`  last one expires in ${Math.max(0, lastExpiry - Date.now())} ms; waiting for the reaper to publish all of them`);
      ({ published, duplicates } = await collectPublications(ctx.probe, `${ctx.prefix}orphans`, expiring, lastExpiry + budgetMs + PUBLICATION_GRACE_MS));
    } finally {
      load = await background.stop();
      commands = await readCommandLog(ctx.probe, SLOW_COMMAND_US).catch(() => undefined);
      client.close();
    }

    const { summary, lines } = describeDelays([...published.values()], waves);
    for (const line of lines) ctx.progress(`  ${line}`);
    const scripts = commands ? ['sweep', 'acquire', 'renew'].map((name) => describeScriptTimes(commands.scripts, name)).join('; ') : 'unavailable';
    ctx.progress(`  run time in Redis: ${scripts}`);
    if (commands?.slow.length) ctx.progress(`  commands over ${SLOW_COMMAND_US / 1000} ms: ${commands.slow.slice(0, 5).join(', ')}`);
    if (load.failures > 0) throw new Error(`${load.failures} of ${load.requests} background requests failed`);

    const aofRewrites = (await persistence(ctx.probe)).rewrites - rewritesBefore;
    if (aofRewrites > 0) ctx.progress(`  Redis rewrote its append-only file ${aofRewrites} time(s) meanwhile (a fork: sweeps may have waited)`);
    const missing = expiring.size - published.size;
    return {
      figures: {
        p50: figure('publication delay median', summary.median, 'ms'),
        // An orphan never published is an infinite delay: the target then fails.
        p99: figure('publication delay p99', missing > 0 ? Number.POSITIVE_INFINITY : summary.p99, 'ms'),
        max: figure('publication delay max', summary.max, 'ms'),
        expiries: figure('expiries measured', published.size, 'count'),
        missing: figure('never published', missing, 'count'),
        duplicates: figure('published twice (must be 0)', duplicates, 'count'),
        budget: figure('budget: reaper interval + 100 ms', budgetMs, 'ms'),
        live: figure('live leases in the store', live, 'count'),
      },
      details: {
        liveLeases: live,
        plan,
        summary,
        missing,
        duplicates,
        backgroundRequests: load.requests,
        aofRewrites,
        scriptTimes: scripts,
        slowCommands: commands?.slow.slice(0, 20) ?? [],
      },
    };
  },
};
