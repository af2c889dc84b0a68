// What every command gets: the SDK's LeaseClient (the same errors, and the same retries
// where a repeat is safe), where to write, and a helper that follows page cursors.
import { LeaseClient } from '../client/lease-client.js';
import { UsageError } from './exit-codes.js';
import type { Output } from './output.js';

export interface Context {
  url: string;
  client: LeaseClient;
  out: Output;
}

/** The global options: where the service is, which namespace, and the bearer token if any. */
export interface Target {
  url: string;
  namespace: string;
  token: string | undefined;
}

/** Throws UsageError (exit 1) for a namespace or token the SDK refuses, before any request. */
export function makeContext({ url, namespace, token }: Target, out: Output): Context {
  let client: LeaseClient;
  try {
    client = new LeaseClient({ baseUrl: url, namespace, token });
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(error.message);
    throw error;
  }
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
