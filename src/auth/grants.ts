// What a token allows: its role, the namespaces it may use, and for a conductor the holders
// it may act as and the orphan kinds it may claim. Service tokens and JWTs carry the same
// grant; the routes ask it questions, and never look at where it came from.
import { Type, type Static } from '@sinclair/typebox';
import { NAMESPACE_PATTERN } from '../namespaces/names.js';

export const ROLES = ['conductor', 'operator', 'reader', 'resource-server'] as const;
export type Role = (typeof ROLES)[number];

/** "*" for every namespace (or kind), else a list. */
const AllOrList = (item: string, description: string) => Type.Union([Type.Literal('*'), Type.Array(Type.String({ pattern: item }), { minItems: 1, maxItems: 1000 })], { description });

/**
 * A grant as stored with a service token and as carried by a JWT's claims: the same shape,
 * checked by the same schema.
 */
export const GrantClaims = Type.Object({
  role: Type.Union(ROLES.map((role) => Type.Literal(role)), { description: 'What the token may do (see the README\'s access matrix).' }),
  namespaces: AllOrList(NAMESPACE_PATTERN, 'The namespaces it may use: "*" or a list.'),
  holders: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 128,
      // At most two stars: matching backtracks (in Node and in Redis' Lua), and a glob of many
      // stars against a long holder would take seconds, with Redis blocked for all of them.
      pattern: '^[^*]*(\\*[^*]*){0,2}$',
      description: 'conductor: the holders it may act as, a glob in which * matches any run of characters (e.g. conductor-*), with at most two *.',
    }),
  ),
  // No control characters (a newline would split one granted kind into two in claim-1.lua).
  // Written without \p{...}: TypeBox compiles patterns without the u flag.
  kinds: Type.Optional(AllOrList('^[^\\x00-\\x1f\\x7f-\\x9f]{1,64}$', 'conductor: the orphan kinds it may claim ("*" for all, the default).')),
  payload: Type.Optional(Type.Boolean({ description: 'reader: whether answers show action.payload and progress (hidden by default).' })),
});
export type GrantClaimsValue = Static<typeof GrantClaims>;

export interface Grant extends GrantClaimsValue {
  /** Who acts, as events and lease records name it: a service token's id, or "jwt:" and the JWT's sub. */
  actor: string;
  /** ms since the epoch when the token stops working, if it does by itself. */
  expiresAt?: number;
}

/** A holder glob as a RegExp: * matches any run of characters, everything else itself. */
export function holderPattern(glob: string): RegExp {
  const escaped = glob.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`, 'su');
}

/** Whether the grant lets its bearer act in `namespace`. */
export function mayUseNamespace(grant: Grant, namespace: string): boolean {
  return grant.namespaces === '*' || grant.namespaces.includes(namespace);
}

/** Whether the grant lets its bearer act as `holder`: an operator as anyone, a conductor as its holders. */
export function mayActAs(grant: Grant, holder: string): boolean {
  if (grant.role === 'operator') return true;
  if (grant.role !== 'conductor' || grant.holders === undefined) return false;
  return holderPattern(grant.holders).test(holder);
}

/** The orphan kinds the grant may claim: null for any. */
export function claimableKinds(grant: Grant): string[] | null {
  if (grant.role === 'operator' || grant.kinds === undefined || grant.kinds === '*') return null;
  return grant.kinds;
}
