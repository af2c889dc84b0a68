// Limits on client JSON (action payloads, progress checkpoints) that a schema cannot state:
// size in bytes, and nesting depth, which is checked without recursion because a value
// nested thousands deep would overflow the stack of any recursive walker (JSON.stringify's too).
import { ProblemError } from '../errors.js';

export const MAX_JSON_DEPTH = 64;

export function nestingExceeds(value: unknown, maxDepth: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth > maxDepth) return true;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
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
