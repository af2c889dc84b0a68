// What every command gets: the SDK's LeaseClient (the same errors, and the same retries
// where a repeat is safe), where to write, and a helper that follows page cursors.
import { LeaseClient } from '../client/lease-client.js';
import type { Output } from './output.js';

export interface Context {
  url: string;
  client: LeaseClient;
  out: Output;
}

export function makeContext(url: string, out: Output): Context {
  const client = new LeaseClient({ baseUrl: url });
  return { url: client.baseUrl, client, out };
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** One page from `cursor`, or with `all` every page from there on, as one page. */
export async function collectPages<T>(read: (cursor: string | undefined) => Promise<Page<T>>, cursor: string | undefined, all: boolean): Promise<Page<T>> {
  let page = await read(cursor);
  const items = [...page.items];
  while (all && page.nextCursor !== null) {
    page = await read(page.nextCursor);
    items.push(...page.items);
  }
  return { items, nextCursor: page.nextCursor };
}
