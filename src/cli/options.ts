// Parsers for option values, so a typo is a usage error before any request is sent.
import { InvalidArgumentError } from 'commander';

/** A non-negative integer number of milliseconds (or a count). */
export function integer(value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new InvalidArgumentError('Not a non-negative integer.');
  return Number(value);
}

/** A JSON value (an action payload, a progress checkpoint). */
export function json(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`Not valid JSON: ${(error as Error).message}`);
  }
}

/** A comma-separated list: "resize,migrate". */
export function list(value: string): string[] {
  const items = value.split(',').map((item) => item.trim()).filter((item) => item !== '');
  if (items.length === 0) throw new InvalidArgumentError('An empty list.');
  return items;
}
