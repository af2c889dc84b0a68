// Conductors under load for the failover tests: each acquires a lease on one of a few shared
// paths (through the service replicas in turn), writes to a fenced "resource server" with its
// token, renews once and releases. Everything they were told is recorded, so a test can
// check afterwards what was acknowledged, what the resource server saw and which answers
// came back.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Grant {
  leaseId: string;
  /** The namespace it was acquired in ("" for the unprefixed routes, namespace "default"). */
  namespace: string;
  holder: string;
  path: string;
  token: number;
  /** Left to expire with an action (on a path of its own), to be orphaned. */
  abandoned: boolean;
  /** When the acquire was sent and when its 201 arrived (Date.now()). */
  sentAt: number;
  answeredAt: number;
}

export interface Write {
  leaseId: string;
  namespace: string;
  holder: string;
  path: string;
  token: number;
  at: number;
}

export interface LoadRecord {
  grants: Grant[];
  writes: Write[];
  /** Every status by count, and the times of the answers that were 2xx. */
  statuses: Map<number, number>;
  /** `url` is the service's origin, `route` the path asked (its namespace's routes). */
  okAt: { url: string; route: string; at: number }[];
  /** Answers that were no HTTP answer at all (a refused or broken connection, or none within 10 s). */
  networkErrors: number;
  /** 503 answers without a Retry-After header. */
  unavailableWithoutRetryAfter: number;
}

export interface LoadOptions {
  urls: string[];
  conductors: number;
  paths: string[];
  ttlMs: number;
  /** About one lease in this many is left to expire with an action, to be orphaned (0: none). */
  abandonEvery?: number;
  /** Conductor n works in namespaces[n % length] (default: the unprefixed routes only). */
  namespaces?: string[];
}

/** The routes' base of a namespace: /v1/namespaces/{namespace}, or /v1 for "". */
export function routesOf(namespace: string): string {
  return namespace === '' ? '/v1' : `/v1/namespaces/${namespace}`;
}

/** Starts the conductors; `stop()` ends their loops and resolves with the record. */
export function startConductors({ urls, conductors, paths, ttlMs, abandonEvery = 0, namespaces = [''] }: LoadOptions): { record: LoadRecord; stop(): Promise<LoadRecord> } {
  const record: LoadRecord = { grants: [], writes: [], statuses: new Map(), okAt: [], networkErrors: 0, unavailableWithoutRetryAfter: 0 };
  let running = true;
  let turn = 0;
  // Request ids unique to this run: a later run on the same Redis must not find its ids used.
  const run = randomBytes(4).toString('hex');

  const call = async (method: string, url: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> } | undefined> => {
    try {
      const res = await fetch(url, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10000),
      });
      const text = await res.text();
      record.statuses.set(res.status, (record.statuses.get(res.status) ?? 0) + 1);
      if (res.status < 300) record.okAt.push({ url: new URL(url).origin, route: new URL(url).pathname, at: Date.now() });
      if (res.status === 503 && !res.headers.get('retry-after')) record.unavailableWithoutRetryAfter++;
      return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    } catch {
      record.networkErrors++;
      return undefined;
    }
  };

  const conductor = async (n: number) => {
    const holder = `conductor-${n}`;
    const namespace = namespaces[n % namespaces.length]!;
    for (let round = 0; running; round++) {
      const base = `${urls[turn++ % urls.length]!}${routesOf(namespace)}`;
      const abandon = abandonEvery > 0 && (n * 7 + round) % abandonEvery === 0;
      // An orphan keeps its paths reserved until claimed: abandoned leases get paths of their own.
      const path = abandon ? `volumes/abandoned-${n}-${round}` : paths[(n + round) % paths.length]!;
      const sentAt = Date.now();
      const acquired = await call('POST', `${base}/leases`, {
        holder,
        resources: [{ path }],
        ttlMs,
        requestId: `${run}-${holder}-${round}`,
        ...(abandon && { action: { kind: 'failover-test', payload: { round } } }),
      });
      if (acquired?.status !== 201) {
        await sleep(acquired?.status === 409 ? 5 : 50);
        continue;
      }
      const lease = acquired.json as { id: string; fencingToken: number };
      record.grants.push({ leaseId: lease.id, namespace, holder, path, token: lease.fencingToken, abandoned: abandon, sentAt, answeredAt: Date.now() });
      record.writes.push({ leaseId: lease.id, namespace, holder, path, token: lease.fencingToken, at: Date.now() });
      if (abandon) continue; // this conductor "dies": its lease expires and is orphaned
      await call('POST', `${base}/leases/${lease.id}/renew`, {});
      record.writes.push({ leaseId: lease.id, namespace, holder, path, token: lease.fencingToken, at: Date.now() });
      await call('POST', `${base}/leases/${lease.id}/release`, { outcome: 'completed' });
    }
  };

  const loops = Array.from({ length: conductors }, (_, n) => conductor(n));
  return {
    record,
    async stop() {
      running = false;
      await Promise.all(loops);
      return record;
    },
  };
}

/**
 * Fencing, checked over real time: a lease whose 201 arrived before another conflicting
 * acquire was sent must carry the smaller token. (Two grants in flight at once may be
 * applied in either order.) Returns the pairs that break it.
 */
/**
 * The grants (answered 201) whose lease is unknown now (404): each is asked at `urlOf(grant)`
 * as a client would, again after a 503 (up to 10 times, 200 ms apart), and must otherwise be
 * 200 or a 410 tombstone; `explain()` is added to the message of any other answer.
 */
export async function lostGrants(grants: Grant[], urlOf: (grant: Grant) => string, explain: () => string = () => ''): Promise<Grant[]> {
  const lost: Grant[] = [];
  for (const grant of grants) {
    let res = await fetch(urlOf(grant), { signal: AbortSignal.timeout(10000) });
    for (let retry = 0; res.status === 503 && retry < 10; retry++) {
      console.log(`lease ${grant.leaseId}: 503 ${await res.text()}; asking again`);
      await sleep(200);
      res = await fetch(urlOf(grant), { signal: AbortSignal.timeout(10000) });
    }
    const body = await res.text();
    if (res.status === 404) lost.push(grant);
    else if (res.status !== 200 && res.status !== 410) throw new Error(`lease ${grant.leaseId}: ${res.status} ${body}\n${explain()}`);
  }
  return lost;
}

export function fencingInversions(grants: Grant[]): [Grant, Grant][] {
  const inversions: [Grant, Grant][] = [];
  const byPath = new Map<string, Grant[]>();
  // One path of two namespaces is two resources, each with its own counter.
  for (const grant of grants) byPath.set(resourceOf(grant), [...(byPath.get(resourceOf(grant)) ?? []), grant]);
  for (const list of byPath.values()) {
    for (const earlier of list) {
      for (const later of list) {
        if (earlier.answeredAt < later.sentAt && earlier.token >= later.token) inversions.push([earlier, later]);
      }
    }
  }
  return inversions;
}

/**
 * What a resource server that keeps the largest token it has seen would accept, per path:
 * the writers whose accepted writes interleave (A, then B, then A again) are the violations.
 */
export function interleavedWriters(writes: Write[]): { path: string; leases: string[] }[] {
  const found: { path: string; leases: string[] }[] = [];
  const byPath = new Map<string, Write[]>();
  for (const write of [...writes].sort((a, b) => a.at - b.at)) byPath.set(resourceOf(write), [...(byPath.get(resourceOf(write)) ?? []), write]);
  for (const [path, list] of byPath) {
    let largest = -Infinity;
    const finished = new Set<string>();
    let current: string | undefined;
    for (const write of list) {
      if (write.token < largest) continue; // refused by the fenced server
      largest = write.token;
      if (write.leaseId !== current) {
        if (finished.has(write.leaseId)) found.push({ path, leases: [current!, write.leaseId] });
        if (current) finished.add(current);
        current = write.leaseId;
      }
    }
  }
  return found;
}

function resourceOf({ namespace, path }: { namespace: string; path: string }): string {
  return namespace === '' ? path : `${namespace} ${path}`;
}
