// Service tokens: random bearer tokens whose grants live in Redis, created, listed and
// revoked with the CLI (`lease tokens ...`). Only a SHA-256 of each token's secret is kept,
// so a copy of Redis' data gives nobody a token. A token reads "lst_<id>.<secret>": the id
// names it (in listings, events and lease records), the secret proves it.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { RedisClient } from '../redis/connection.js';
import { Value } from '@sinclair/typebox/value';
import { DEFAULT_NAMESPACE, namespaceKeyPrefix } from '../namespaces/names.js';
import { GrantClaims, type Grant, type GrantClaimsValue } from './grants.js';

const TOKEN = /^lst_([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})$/;

/** What Redis keeps of a token: its grant, the hash of its secret, and when it was made. */
export interface TokenRecord extends GrantClaimsValue {
  id: string;
  /** Hex SHA-256 of the secret. */
  secretHash: string;
  createdAt: string;
  /** ms since the epoch after which it no longer works, if it ever stops by itself. */
  expiresAt?: number;
  description?: string;
}

/** The Redis names service tokens use, all beside the namespace "default"'s keys. */
export interface TokenKeys {
  /** Hash: token id → JSON TokenRecord. */
  tokens: string;
  /** Shard channel (SPUBLISH, in the tokens' slot): the id of a token just revoked (every replica forgets it at once). */
  revokedChannel: string;
}

export function tokenKeys(keyPrefix: string): TokenKeys {
  const prefix = namespaceKeyPrefix(keyPrefix, DEFAULT_NAMESPACE);
  return { tokens: `${prefix}tokens`, revokedChannel: `${prefix}tokens-revoked` };
}

export function looksLikeServiceToken(token: string): boolean {
  return token.startsWith('lst_');
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export class ServiceTokens {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: TokenKeys,
  ) {}

  /** Makes a token; the answer is the only place its secret ever appears. */
  async create(grant: GrantClaimsValue, options: { ttlMs?: number; description?: string } = {}): Promise<{ token: string; record: TokenRecord }> {
    if (!Value.Check(GrantClaims, grant)) throw new TypeError(`Not a valid grant: ${[...Value.Errors(GrantClaims, grant)].map((e) => `${e.path} ${e.message}`).join('; ')}`);
    if (grant.role === 'conductor' && grant.holders === undefined) throw new TypeError('A conductor token needs the holders it may act as (a glob such as conductor-*).');
    const id = randomBytes(12).toString('base64url');
    const secret = randomBytes(32).toString('base64url');
    const record: TokenRecord = {
      ...grant,
      id,
      secretHash: sha256(secret),
      createdAt: new Date().toISOString(),
      ...(options.ttlMs !== undefined ? { expiresAt: Date.now() + options.ttlMs } : {}),
      ...(options.description !== undefined ? { description: options.description } : {}),
    };
    await this.redis.hset(this.keys.tokens, id, JSON.stringify(record));
    return { token: `lst_${id}.${secret}`, record };
  }

  /** Every token's record (never a secret); for the CLI, not for requests. */
  async list(): Promise<TokenRecord[]> {
    const records: TokenRecord[] = [];
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(this.keys.tokens, cursor, 'COUNT', 200);
      for (let i = 1; i < flat.length; i += 2) records.push(JSON.parse(flat[i]!) as TokenRecord);
      cursor = next;
    } while (cursor !== '0');
    return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Revokes a token; every replica stops accepting it at once. False when there was none. */
  async revoke(id: string): Promise<boolean> {
    const [[, removed]] = (await this.redis.multi().hdel(this.keys.tokens, id).spublish(this.keys.revokedChannel, id).exec()) as [[null, number], [null, number]];
    return removed === 1;
  }

  /** The grant of a token, or null when it is unknown, revoked, expired or its secret is wrong. One HGET. */
  async verify(token: string): Promise<Grant | null> {
    const match = TOKEN.exec(token);
    if (!match) return null;
    const [, id, secret] = match as unknown as [string, string, string];
    const stored = await this.redis.hget(this.keys.tokens, id);
    if (stored === null) return null;
    const record = JSON.parse(stored) as TokenRecord;
    const given = Buffer.from(sha256(secret), 'hex');
    const expected = Buffer.from(record.secretHash, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    if (record.expiresAt !== undefined && Date.now() >= record.expiresAt) return null;
    return {
      actor: record.id,
      role: record.role,
      namespaces: record.namespaces,
      ...(record.holders !== undefined ? { holders: record.holders } : {}),
      ...(record.kinds !== undefined ? { kinds: record.kinds } : {}),
      ...(record.payload !== undefined ? { payload: record.payload } : {}),
      ...(record.expiresAt !== undefined ? { expiresAt: record.expiresAt } : {}),
    };
  }
}
