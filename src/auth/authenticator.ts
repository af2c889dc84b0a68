// Turns an Authorization header into a grant. Service tokens are looked up in Redis (one
// HGET) and JWTs checked against the configured key. With AUTH_CACHE_MS above 0 a grant
// found is remembered that long, so most requests cost no lookup; a revocation is then
// published on Redis pub/sub and every replica forgets the token the moment it hears it (a
// replica whose subscription was down forgets every token when it is back, since it may
// have missed one). With 0, the default, a service token is looked up on every request, so
// a revoked one fails on the very next. JWTs cannot be revoked; their checks are remembered.
import type { RedisClient } from '../redis/connection.js';
import { onResubscribe, subscriberOf } from '../redis/connection.js';
import type { Grant } from './grants.js';
import { JwtRefusal, type JwtVerifier } from './jwt.js';
import { looksLikeServiceToken, type ServiceTokens, type TokenKeys } from './service-tokens.js';

/** A JWT's check is remembered at most this long (and never past its exp). */
const JWT_REMEMBER_MS = 60_000;
/** Grants remembered at most; past it the memory starts afresh (a lookup each, once). */
const MAX_REMEMBERED = 10_000;

export type Authentication = { ok: true; grant: Grant } | { ok: false; detail: string; error: 'invalid_request' | 'invalid_token' };

interface Remembered {
  grant: Grant;
  until: number;
}

export class Authenticator {
  private readonly remembered = new Map<string, Remembered>();
  private subscriber: RedisClient | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly tokens: ServiceTokens,
    private readonly keys: TokenKeys,
    private readonly jwt: JwtVerifier | undefined,
    private readonly rememberMs: number,
  ) {}

  async start(): Promise<void> {
    // Nothing remembered, nothing to forget: no subscription needed.
    if (this.rememberMs === 0) return;
    const subscriber = subscriberOf(this.redis);
    this.subscriber = subscriber;
    subscriber.on('smessage', (_channel: string, id: string) => this.forget(id));
    // Every (re)connection may have missed a revocation: forget everything once subscribed.
    // (A shard channel beside the tokens, as the scripts' notices are: in Cluster mode ioredis
    // says when it subscribed a shard's subscriber again, which it does not for plain ones.)
    onResubscribe(subscriber, () => {
      subscriber
        .ssubscribe(this.keys.revokedChannel)
        .then(() => this.remembered.clear())
        .catch(() => undefined);
    });
    subscriber.connect().catch(() => undefined);
    await Promise.race([subscriber.ssubscribe(this.keys.revokedChannel).catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
  }

  stop(): void {
    this.subscriber?.disconnect();
  }

  /** The grant of a request's Authorization header, or why there is none. */
  async authenticate(header: string | undefined): Promise<Authentication> {
    if (header === undefined || header === '') return { ok: false, detail: 'This route needs Authorization: Bearer <token>.', error: 'invalid_request' };
    const match = /^Bearer +([A-Za-z0-9._~+/=-]{1,8192})$/i.exec(header);
    if (!match) return { ok: false, detail: 'The Authorization header must be "Bearer <token>".', error: 'invalid_request' };
    const token = match[1]!;
    const now = Date.now();
    const known = this.remembered.get(token);
    if (known && known.until > now) return { ok: true, grant: known.grant };
    if (known) this.remembered.delete(token);

    let grant: Grant | null;
    // How long this check may be trusted: a service token's as configured (it may be revoked
    // any time), a JWT's until its exp (its signature does not change).
    let trustMs: number;
    if (looksLikeServiceToken(token)) {
      grant = await this.tokens.verify(token);
      if (!grant) return { ok: false, detail: 'The token is unknown, revoked or expired.', error: 'invalid_token' };
      trustMs = this.rememberMs;
    } else if (this.jwt) {
      try {
        grant = await this.jwt.verify(token);
      } catch (error) {
        if (error instanceof JwtRefusal) return { ok: false, detail: error.message, error: 'invalid_token' };
        throw error;
      }
      trustMs = JWT_REMEMBER_MS;
    } else {
      return { ok: false, detail: 'The token is not a service token, and this service accepts no JWTs.', error: 'invalid_token' };
    }
    const until = now + Math.min(trustMs, (grant.expiresAt ?? Infinity) - now);
    if (until > now) {
      if (this.remembered.size >= MAX_REMEMBERED) this.remembered.clear();
      this.remembered.set(token, { grant, until });
    }
    return { ok: true, grant };
  }

  private forget(actor: string): void {
    for (const [token, { grant }] of this.remembered) if (grant.actor === actor) this.remembered.delete(token);
  }
}
