// Request bodies of the benchmark. The HTTP floor is sent exactly the body the uncontended
// acquire is sent (same builder), so the two differ only in what the server does with it.
import { LIVE_TTL_MS } from './orphans.js';

/** The floor server's one route. */
export const FLOOR_PATH = '/floor';

/** Leases of the load phases outlive every phase: no renewal, no expiry while we measure. */
export const LONG_TTL_MS = LIVE_TTL_MS;

let serial = 0;
/**
 * A number never used before in this run: paths built from it never collide across
 * phases, warm-ups and scenarios, so an "uncontended" acquire never meets a lease from
 * an earlier phase.
 */
export function nextSerial(): number {
  return serial++;
}

/** Holders as a pool of conductors would have them: 64 holders share the leases. */
export function holderOf(n: number): string {
  return `conductor-${n % 64}`;
}

/** One exclusive resource, no action: the commonest acquire. ~100 bytes of JSON. */
export function singleAcquireBody(path: string, n: number): string {
  return JSON.stringify({ holder: holderOf(n), resources: [{ path }], ttlMs: LONG_TTL_MS });
}

/**
 * Four exclusive resources two levels below their roots, none covering another (that
 * would be 400 overlapping_resources): two volumes of an instance, two ports of a network.
 */
export function fourResources(n: number): { path: string }[] {
  return [
    { path: `instances/i-${n}/volumes/v-1` },
    { path: `instances/i-${n}/volumes/v-2` },
    { path: `networks/n-${n}/ports/p-1` },
    { path: `networks/n-${n}/ports/p-2` },
  ];
}

/** A JSON payload of exactly `bytes` bytes when serialised ({"blob":"xxx..."}). */
export function payloadOfSize(bytes: number): { blob: string } {
  const overhead = JSON.stringify({ blob: '' }).length;
  return { blob: 'x'.repeat(Math.max(0, bytes - overhead)) };
}
