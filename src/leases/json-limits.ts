// Limits on client JSON (action payloads, progress checkpoints) that a schema cannot state:
// size in bytes, and nesting depth, which is checked without recursion because a value
// nested thousands deep would overflow the stack of any recursive walker (JSON.stringify's too).
import { ProblemError } from '../errors.js';

export const MAX_JSON_DEPTH = 64;

/**
 * What a value holds that it may not, in one walk: JSON nested deeper than `maxDepth`
 * ('depth'), or a number that is not finite ('number': what JSON.parse makes of 1e309, which
 * JSON.stringify would store as null). Null when neither.
 */
function shapeProblem(value: unknown, maxDepth: number, checkNumbers = true): 'depth' | 'number' | null {
  // Two stacks of plain values, arrays walked by index: a tuple and an Object.values copy per
  // node cost a 64 KiB payload of [[],[],...] (21 000 arrays) 3.7 ms of the event loop.
  const nodes: unknown[] = [value];
  const depths: number[] = [1];
  while (nodes.length > 0) {
    const node = nodes.pop();
    const depth = depths.pop()!;
    if (checkNumbers && typeof node === 'number' && !Number.isFinite(node)) return 'number';
    if (node === null || typeof node !== 'object') continue;
    if (depth > maxDepth) return 'depth';
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
  return null;
}

export function nestingExceeds(value: unknown, maxDepth: number): boolean {
  return shapeProblem(value, maxDepth, false) === 'depth';
}

/**
 * Returns the value as JSON, as it is stored. Throws 400 for JSON nested deeper than
 * MAX_JSON_DEPTH and 413 for JSON over `limitBytes`.
 */
export function jsonWithinLimits(value: unknown, limitBytes: number, name: string): string {
  const problem = shapeProblem(value, MAX_JSON_DEPTH);
  if (problem === 'depth') throw new ProblemError('invalid_request', `${name} is nested deeper than ${MAX_JSON_DEPTH} levels.`);
  if (problem === 'number') throw new ProblemError('invalid_request', `${name} holds a number too large for a double (such as 1e309); it could not be stored as sent.`);
  const json = JSON.stringify(value);
  const bytes = Buffer.byteLength(json);
  if (bytes > limitBytes) throw new ProblemError('payload_too_large', `${name} is ${bytes} bytes of JSON; at most ${limitBytes} are allowed.`);
  return json;
}
