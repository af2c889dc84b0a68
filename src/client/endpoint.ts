// Where the SDK's requests go and as whom (lease-api-v1, "Namespaces" and "Access control"):
// the namespace's /v1 routes, and the bearer token. The transport and the event stream both
// build their paths and headers here, so the two cannot disagree on either.

/** The routes without /namespaces/{namespace} are this namespace. */
export const DEFAULT_NAMESPACE = 'default';

/** The contract's namespace names: lower-case letters, digits and dashes, 1 to 63. */
const NAMESPACE_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * What a header can carry as one bearer credential: visible ASCII, no spaces. Checked up
 * front because fetch would otherwise throw on the first request, which the retries would
 * read as the service not answering.
 */
const TOKEN = /^[\x21-\x7e]+$/;

/** The namespace to work in ("default" when none is given); throws TypeError for a name the service would refuse. */
export function checkNamespace(namespace: string | undefined): string {
  if (namespace === undefined) return DEFAULT_NAMESPACE;
  if (typeof namespace !== 'string' || !NAMESPACE_NAME.test(namespace)) {
    throw new TypeError(
      `Invalid namespace ${JSON.stringify(namespace)}: a namespace is 1 to 63 lower-case letters, digits and dashes, starting with a letter or a digit (${NAMESPACE_NAME.source}).`,
    );
  }
  return namespace;
}

/** The bearer token, if any; throws TypeError for one no Authorization header can carry. */
export function checkToken(token: string | undefined): string | undefined {
  if (token === undefined) return undefined;
  if (typeof token !== 'string' || !TOKEN.test(token)) {
    throw new TypeError('Invalid token: a bearer token is one or more visible ASCII characters, without spaces.');
  }
  return token;
}

/** `/v1/...` in `namespace`: `/v1/namespaces/<namespace>/...`, or as it is for "default". */
export function namespacedPath(namespace: string, path: `/v1/${string}`): string {
  return namespace === DEFAULT_NAMESPACE ? path : `/v1/namespaces/${namespace}${path.slice('/v1'.length)}`;
}

/** The Authorization header that carries `token`; none without one. */
export function authorization(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}
