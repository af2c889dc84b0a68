// Limits on client JSON (action payloads, progress checkpoints) that a schema cannot state:
// size in bytes, and nesting depth, which is checked without recursion because a value
// nested thousands deep would overflow the stack of any recursive walker (JSON.stringify's too).
import { ProblemError } from '../errors.js';

export const MAX_JSON_DEPTH = 64;

export function nestingExceeds(value: unknown, maxDepth: number): boolean {
  // Two stacks of plain values, arrays walked by index: a tuple and an Object.values copy per
  // node cost a 64 KiB payload of [[],[],...] (21 000 arrays) 3.7 ms of the event loop.
  const nodes: unknown[] = [value];
  const depths: number[] = [1];
  while (nodes.length > 0) {
    const node = nodes.pop();
    const depth = depths.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth > maxDepth) return true;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        nodes.push(node[i]);
        depths.push(depth + 1);
      }
    } else {
      for (const key in node) {
        if (!Object.hasOwn(node, key)) continue;
        nodes.push((node as Record<string, unknown>)[key]);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

/**
 * Returns the value as JSON, as it is stored. Throws 400 for JSON nested deeper than
 * MAX_JSON_DEPTH and 413 for JSON over `limitBytes`.
 */
export function jsonWithinLimits(value: unknown, limitBytes: number, name: string): string {
  if (nestingExceeds(value, MAX_JSON_DEPTH)) {
    throw new ProblemError('invalid_request', `${name} is nested deeper than ${MAX_JSON_DEPTH} levels.`);
  }
  const json = JSON.stringify(value);
  const bytes = Buffer.byteLength(json);
  if (bytes > limitBytes) throw new ProblemError('payload_too_large', `${name} is ${bytes} bytes of JSON; at most ${limitBytes} are allowed.`);
  return json;
}
