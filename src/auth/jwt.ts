// JWTs as bearer tokens: checked here against a configured public key (PEM) or a JWKS file,
// with no call to anyone, and carrying the same grant as a service token in their claims
// (role, namespaces, holders, kinds, payload; see grants.ts). A JWT cannot be revoked
// before its exp: keep them short-lived, or use service tokens.
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors, jwtVerify, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import { Value } from '@sinclair/typebox/value';
import { GrantClaims, type Grant } from './grants.js';
import { illFormedStringAt } from '../http/well-formed.js';

export interface JwtOptions {
  /** A PEM file holding the public key (SPKI) the JWTs are signed with. */
  publicKeyFile?: string;
  /** A JSON Web Key Set file; the JWT's kid picks the key. */
  jwksFile?: string;
  issuer?: string;
  audience?: string;
}

/** Why a JWT was refused, for the 401's detail (never which key would have worked). */
export class JwtRefusal extends Error {}

export class JwtVerifier {
  private readonly key: ReturnType<typeof createPublicKey> | JWTVerifyGetKey;
  private readonly options: JWTVerifyOptions;

  constructor({ publicKeyFile, jwksFile, issuer, audience }: JwtOptions) {
    if (publicKeyFile !== undefined) this.key = createPublicKey(readFileSync(publicKeyFile, 'utf8'));
    else if (jwksFile !== undefined) this.key = createLocalJWKSet(JSON.parse(readFileSync(jwksFile, 'utf8')) as Parameters<typeof createLocalJWKSet>[0]);
    else throw new TypeError('A JwtVerifier needs a public key file or a JWKS file.');
    // Asymmetric algorithms only: a key meant for verifying must never be taken for an HMAC secret.
    this.options = {
      algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
      ...(issuer !== undefined ? { issuer } : {}),
      ...(audience !== undefined ? { audience } : {}),
      // Clocks of the issuer and of this service may differ a little.
      clockTolerance: 5,
    };
  }

  /** The JWT's grant; throws JwtRefusal when it is not one to accept. */
  async verify(token: string): Promise<Grant> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.key as Parameters<typeof jwtVerify>[1], this.options));
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw new JwtRefusal('The JWT has expired.');
      if (error instanceof errors.JOSEError) throw new JwtRefusal(`The JWT is not valid here (${error.code}).`);
      throw error;
    }
    const claims = {
      role: payload.role,
      namespaces: payload.namespaces,
      ...(payload.holders !== undefined ? { holders: payload.holders } : {}),
      ...(payload.kinds !== undefined ? { kinds: payload.kinds } : {}),
      ...(payload.payload !== undefined ? { payload: payload.payload } : {}),
    };
    if (!Value.Check(GrantClaims, claims)) throw new JwtRefusal('The JWT does not carry a valid grant (role, namespaces, holders, kinds, payload).');
    if (typeof payload.exp !== 'number') throw new JwtRefusal('The JWT has no exp: only JWTs that expire are accepted.');
    // The actor that events, leases, quotas and slots name: JWTs without one would all share it.
    if (typeof payload.sub !== 'string' || payload.sub === '' || payload.sub.length > 128) throw new JwtRefusal('The JWT needs a sub (1 to 128 characters): it names the caller.');
    // Redis stores text as UTF-8, where a lone surrogate becomes U+FFFD: two subs that differ
    // only there would name one actor (its quota, its rate limit, its events).
    if (illFormedStringAt([payload.sub, claims]) !== null) throw new JwtRefusal('The JWT holds a string that is not well-formed Unicode (a lone UTF-16 surrogate).');
    return { ...claims, actor: `jwt:${payload.sub}`, expiresAt: payload.exp * 1000 };
  }
}

