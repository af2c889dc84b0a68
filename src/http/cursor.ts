// Listing cursors: opaque to clients, a fencing token inside (pages are in grant order).
import { ProblemError } from '../errors.js';

const PREFIX = 'v1:';

export function encodeCursor(afterToken: string): string {
  return Buffer.from(PREFIX + afterToken).toString('base64url');
}

export function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const token = text.startsWith(PREFIX) ? text.slice(PREFIX.length) : '';
  if (!/^\d{1,19}$/.test(token) || encodeCursor(token) !== cursor) {
    throw new ProblemError('invalid_cursor', 'cursor must be a nextCursor this service returned.');
  }
  return token;
}
