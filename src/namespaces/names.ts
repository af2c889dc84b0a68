// What a namespace is called and where its keys live. A namespace is a tenant, a cell or a
// region: a world of its own (leases, orphans, events, waiters, fencing tokens). Its keys
// share a hash tag of their own, so a namespace is one Redis Cluster slot; the namespace
// "default" keeps the keys the service has always used, so existing data stays where it is.
import { Type } from '@sinclair/typebox';

export const DEFAULT_NAMESPACE = 'default';

/** The contract's namespace names: lower-case letters, digits and dashes, 1 to 63. */
export const NAMESPACE_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';

export const NamespaceName = Type.String({
  pattern: NAMESPACE_PATTERN,
  description:
    'The namespace (a tenant, a cell or a region): 1 to 63 lower-case letters, digits and dashes. Leases, orphans, events, ' +
    'waiters and fencing tokens of one namespace never meet those of another; the routes without /namespaces/{namespace} ' +
    'are the namespace "default". A namespace needs no creation step.',
  examples: ['cell-1'],
});

/**
 * The key prefix (with its hash tag) of a namespace's keys, from KEY_PREFIX: "{lease}:" for
 * the namespace "default", "{lease/cell-1}:" for "cell-1". KEY_PREFIX holds no "/", so two
 * namespaces never share a prefix.
 */
export function namespaceKeyPrefix(keyPrefix: string, namespace: string): string {
  return namespace === DEFAULT_NAMESPACE ? `{${keyPrefix}}:` : `{${keyPrefix}/${namespace}}:`;
}
