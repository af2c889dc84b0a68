// Listings: the page, its size, its cursor, and whether items carry their payloads.
import { Type, type TSchema } from '@sinclair/typebox';
import type { Config } from '../../config.js';
import { pageExample } from '../examples.js';

/** A listing page: items and the cursor of the next page. */
export function Page<T extends TSchema>(item: T, description: string, exampleItem: unknown) {
  return Type.Object(
    {
      items: Type.Array(item),
      nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null on the last.' }),
    },
    { description, examples: [pageExample(exampleItem)] },
  );
}

/** A listing's page size. */
export function Limit(config: Config) {
  return Type.Integer({
    minimum: 1,
    maximum: config.LIST_LIMIT_MAX,
    default: config.LIST_LIMIT_DEFAULT,
    description: `Page size, 1..${config.LIST_LIMIT_MAX}, default ${config.LIST_LIMIT_DEFAULT}.`,
    examples: [50],
  });
}

/**
 * Listings leave each action's payload and progress out (null) unless asked: a page then
 * costs the same whatever the payloads hold. With them, a page holds at most
 * PAYLOAD_PAGE_MAX items.
 */
export const PAYLOAD_PAGE_MAX = 100;
export const IncludePayload = Type.Literal('payload', {
  description:
    `payload: answer with each action's payload and progress; without it they are null. With it, a page holds at most ${PAYLOAD_PAGE_MAX} ` +
    `items (a larger limit gives pages of ${PAYLOAD_PAGE_MAX}).`,
  examples: ['payload'],
});

/** The page size of a listing: `limit`, or the default, never more than the payload cap allows. */
export function pageSize(config: Config, limit: number | undefined, include: string | undefined): number {
  const size = limit ?? config.LIST_LIMIT_DEFAULT;
  return include === 'payload' ? Math.min(size, PAYLOAD_PAGE_MAX) : size;
}

/** A listing's cursor: the nextCursor of the page before. */
export function Cursor(description: string) {
  return Type.String({ minLength: 1, maxLength: 200, description, examples: [pageExample(null).nextCursor] });
}
