// How a lease's (or orphan's, or waiting ticket's) resources are stored in its Redis hash:
// "x<path> s<path>", a mode letter then the path, space-separated (paths never hold a space).
// Half the size of the JSON, so a one-resource lease hash keeps every value under Redis'
// 64-byte listpack limit and stays in the compact encoding. Lua reads it with
// decodeResources in includes/paths.lua.
import type { Mode } from '../mode.js';

export interface ResourceClaim {
  path: string;
  mode: Mode;
}

export function encodeResources(resources: readonly ResourceClaim[]): string {
  return resources.map((r) => (r.mode === 'shared' ? 's' : 'x') + r.path).join(' ');
}

export function decodeResources(stored: string): ResourceClaim[] {
  if (stored === '') return [];
  return stored.split(' ').map((entry) => ({ mode: entry[0] === 's' ? 'shared' : 'exclusive', path: entry.slice(1) }));
}

/**
 * The paths an event or a "freed" notice names. Lua writes them as resources are stored
 * (making JSON of 64 long paths took a maximal request half a millisecond of Redis' time);
 * entries written before, and the holder renew's event, carry a JSON array.
 */
export function decodePathList(text: string): string[] {
  if (text.startsWith('[')) {
    const paths: unknown = JSON.parse(text);
    return Array.isArray(paths) ? paths.filter((p): p is string => typeof p === 'string') : [];
  }
  return decodeResources(text).map((r) => r.path);
}
