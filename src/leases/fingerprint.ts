// What makes two acquires with one requestId "the same request": the same resources in
// any order, the same action (payload keys in any order) and the same effective limits.
// The lease keeps only a digest of it: short enough (under Redis' 64-byte listpack value
// limit) that a small lease hash stays in its compact encoding.
import { createHash } from 'node:crypto';

/** JSON with object keys sorted, so equal values give equal text. Values are at most 64 deep. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export interface AcquireShape {
  resources: { path: string; mode: string }[];
  action: unknown;
  ttlMs: number;
  maxHoldMs: number;
  lockDelayMs: number;
}

export function acquireFingerprint(request: AcquireShape): string {
  const resources = [...request.resources].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return createHash('sha256').update(canonicalJson({ ...request, resources })).digest('base64url');
}
