// etcd beside us: what a user would do with etcd 3.4 instead of the service. A private
// single-member etcd on loopback (bench/lib/private-etcd.ts) and, with the same load
// generator and the same number of connections as the service's pairs (cycle), each
// connection takes and drops a lock through etcd's JSON gateway:
//   POST /v3/lease/grant  {"TTL": 15}
//   POST /v3/kv/txn       if create_revision(key) == 0 then put key (a new one) with that lease
//   POST /v3/lease/revoke {"ID": lease}   (which deletes the key)
// The lease id of the grant feeds the txn and the revoke through autocannon's per-connection
// context, as acquireThenRelease (cycle.ts) feeds the service's lease id into its release.
// A pair counts once its revoke answered after a txn that succeeded; a txn that did not
// (`succeeded` absent) is still revoked, counted as failed, and fails the scenario.
//
// Without `etcd` on PATH it is skipped, and says so; the run goes on. Like the other
// baselines it runs before the service starts.
import { holderOf, nextSerial } from '../lib/bodies.js';
import { onCleanup } from '../lib/cleanup.js';
import type { Context } from '../lib/context.js';
import type { LoadRequest } from '../lib/http-load.js';
import { findOnPath, startPrivateEtcd } from '../lib/private-etcd.js';
import { ScenarioFailure } from '../lib/scenario-failure.js';
import { formatMs, formatNumber, latencySummary, type LatencySummary } from '../lib/stats.js';
import type { Usage } from '../lib/usage.js';
import { figure, type ScenarioResult, type Scenario } from './types.js';

export const ETCD_SKIPPED = 'etcd skipped: not installed (bash scripts/setup.sh --bench)';

/** The lease's TTL in seconds: longer than any pair takes, short enough that leases a phase cut off go soon. */
const LEASE_TTL_S = 15;

/** What one connection carries from the grant to the revoke (reset at each new pair). */
interface PairContext {
  leaseId?: string;
  /** The txn answered succeeded: true. */
  held?: boolean;
  pairStartedAt?: number;
  sentAt?: number;
}

/** What the requests' callbacks see of a phase: completed pairs, failures, each step's latency (ms). */
export class PairRecorder {
  pairs = 0;
  /** The txn answered 200 without succeeded: true (the key existed). */
  txnRefused = 0;
  /** The grant answered 200 without a lease id. */
  noLeaseId = 0;
  pair: number[] = [];
  grant: number[] = [];
  txn: number[] = [];
  revoke: number[] = [];

  get failed(): number {
    return this.txnRefused + this.noLeaseId;
  }

  reset(): void {
    this.pairs = this.txnRefused = this.noLeaseId = 0;
    this.pair = [];
    this.grant = [];
    this.txn = [];
    this.revoke = [];
  }
}

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** Put `key` = `value` with `leaseId` if `key` was never created (put-if-absent). Ids stay strings: they are int64. */
function txnBody(key: string, value: string, leaseId: string): string {
  const k = base64(key);
  return JSON.stringify({
    compare: [{ key: k, target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
    success: [{ request_put: { key: k, value: base64(value), lease: leaseId } }],
  });
}

/** autocannon's types want a Request back; returning nothing restarts the sequence (a reset). */
type Setup = (request: LoadRequest, context: PairContext) => LoadRequest | undefined;
const setup = (fn: Setup) => fn as never;
type OnResponse = (status: number, body: string, context: PairContext) => void;
const onResponse = (fn: OnResponse) => fn as never;

/** grant -> txn (put-if-absent of `keyOf(n)`, a new key per pair) -> revoke, recorded in `recorder`. */
export function grantTxnRevoke(recorder: PairRecorder, keyOf: (n: number) => string): LoadRequest[] {
  const since = (t: number | undefined) => performance.now() - (t ?? Number.NaN);
  return [
    {
      method: 'POST',
      path: '/v3/lease/grant',
      body: JSON.stringify({ TTL: LEASE_TTL_S }),
      setupRequest: setup((request, context) => {
        context.pairStartedAt = context.sentAt = performance.now();
        return request;
      }),
      onResponse: onResponse((status, body, context) => {
        recorder.grant.push(since(context.sentAt));
        if (status !== 200) return; // the phase fails on the status
        const id = (JSON.parse(body) as { ID?: unknown }).ID;
        if (typeof id === 'string' && /^\d+$/.test(id)) context.leaseId = id;
        else recorder.noLeaseId++;
      }),
    },
    {
      method: 'POST',
      path: '/v3/kv/txn',
      setupRequest: setup((request, context) => {
        if (context.leaseId === undefined) return undefined;
        const n = nextSerial();
        context.sentAt = performance.now();
        return { ...request, body: txnBody(keyOf(n), holderOf(n), context.leaseId) };
      }),
      onResponse: onResponse((status, body, context) => {
        recorder.txn.push(since(context.sentAt));
        if (status !== 200) return;
        context.held = (JSON.parse(body) as { succeeded?: unknown }).succeeded === true;
        if (!context.held) recorder.txnRefused++;
      }),
    },
    {
      method: 'POST',
      path: '/v3/lease/revoke',
      setupRequest: setup((request, context) => {
        if (context.leaseId === undefined) return undefined;
        context.sentAt = performance.now();
        return { ...request, body: JSON.stringify({ ID: context.leaseId }) };
      }),
      onResponse: onResponse((status, _body, context) => {
        recorder.revoke.push(since(context.sentAt));
        if (status !== 200 || !context.held) return;
        recorder.pairs++;
        recorder.pair.push(since(context.pairStartedAt));
      }),
    },
  ];
}

const steps = (parts: [string, LatencySummary][]) => parts.map(([name, s]) => `${name} ${formatMs(s.p50)} / ${formatMs(s.p99)}`).join(', ');

function describeEtcdUsage(usage: Usage): string {
  const { server, client } = usage.perOpUs;
  return `etcd ${server.toFixed(0)}, client ${client.toFixed(0)} µs CPU/request (3 requests a pair)`;
}

export const etcd: Scenario = {
  name: 'etcd',
  summary: `etcd 3.4 beside us: each connection, through etcd's JSON gateway: POST /v3/lease/grant (TTL ${LEASE_TTL_S} s), /v3/kv/txn (put-if-absent of a new key with that lease), /v3/lease/revoke; pairs/s`,
  // Its target divides the service's pairs/s (cycle) by etcd's.
  needs: ['cycle'],
  async run(ctx: Context): Promise<ScenarioResult> {
    const executable = findOnPath('etcd');
    if (!executable) {
      ctx.progress(`  ${ETCD_SKIPPED}`);
      return { figures: { skipped: figure('etcd 3.4 (lease grant + txn + revoke)', Number.NaN, 'text', ETCD_SKIPPED) }, details: { skipped: ETCD_SKIPPED } };
    }
    const server = await startPrivateEtcd(executable, 'lease-bench-etcd');
    onCleanup(() => server.stop());
    ctx.progress(`  etcd ${server.version} pid ${server.pid} at ${server.url}, data in ${server.dataDir}`);
    try {
      const recorder = new PairRecorder();
      const spec = {
        url: server.url,
        connections: ctx.options.connections,
        requests: grantTxnRevoke(recorder, (n) => `bench/locks/instances/c-${n}`),
        expect: [200],
      };
      const phase = await ctx.phase('etcd grant + txn + revoke', spec, server, {
        serverName: 'etcd',
        // What the warm-up counted is not measured (but a failure there fails too); the leases
        // it cut off expire by themselves, and every pair takes a new key.
        afterWarmup: async () => {
          if (recorder.failed > 0) throw new Error(`etcd warm-up: ${recorder.txnRefused} txns did not succeed, ${recorder.noLeaseId} grants had no ID`);
          recorder.reset();
        },
      });
      const pair = latencySummary(recorder.pair);
      const grant = latencySummary(recorder.grant);
      const txn = latencySummary(recorder.txn);
      const revoke = latencySummary(recorder.revoke);
      const failed = recorder.failed;
      const result: ScenarioResult = {
        figures: {
          pairs: figure('lock pairs/s (lease grant + txn + revoke)', recorder.pairs / phase.load.durationS, 'pairs/s'),
          p50: figure('pair latency p50 (grant sent to revoke answered)', pair.p50, 'ms'),
          p99: figure('pair latency p99', pair.p99, 'ms'),
          steps: figure('p50 / p99 per step', Number.NaN, 'text', steps([['grant', grant], ['txn', txn], ['revoke', revoke]])),
          failed: figure('failed pairs (txn not succeeded, grant without ID)', failed, 'count'),
          cpu: figure('CPU per request', Number.NaN, 'text', describeEtcdUsage(phase.usage)),
          setup: figure(
            'etcd',
            Number.NaN,
            'text',
            `etcd ${server.version}, one member on loopback, write-ahead log fsynced per write (as shipped); its JSON gateway, ${spec.connections} connections`,
          ),
        },
        details: {
          version: server.version,
          leaseTtlS: LEASE_TTL_S,
          pairs: recorder.pairs,
          txnRefused: recorder.txnRefused,
          noLeaseId: recorder.noLeaseId,
          latency: { pair, grant, txn, revoke },
          ...phase,
        },
      };
      ctx.progress(`    ${formatNumber(recorder.pairs)} pairs: pair p50 ${formatMs(pair.p50)} p99 ${formatMs(pair.p99)}; ${steps([['grant', grant], ['txn', txn], ['revoke', revoke]])}`);
      if (failed > 0) {
        throw new ScenarioFailure(`etcd: ${recorder.txnRefused} txns did not succeed and ${recorder.noLeaseId} grants had no ID, of ${recorder.pairs + failed} pairs`, result);
      }
      return result;
    } finally {
      await server.stop();
    }
  },
};
