// The demo's bearer tokens for a service with access control on (AUTH=on), made as an
// operator makes them with `lease tokens create`: straight in the service's own Redis (found
// from the state file the service keeps in DATA_DIR), once the service is ready. Each caller
// gets only what it needs, as in production: the stage's client and event stream an
// operator's, the hypervisor a resource-server's (it only checks fencing tokens), and each
// conductor one that may act as its own holder name only.
import { ServiceTokens, tokenKeys } from '../auth/service-tokens.js';
import type { GrantClaimsValue } from '../auth/grants.js';
import { createRedisClient, waitUntilReady } from '../redis/connection.js';
import { embeddedRedisUrl } from '../redis/embedded.js';
import { StoryError } from './checks.js';

export interface DemoTokens {
  operator: string;
  resourceServer: string;
  /** Holder name → a conductor token that may act as that holder and no other. */
  conductors: ReadonlyMap<string, string>;
}

const REDIS_WAIT_MS = 5000;
/** The story plays in the namespace "default"; no token reaches another. */
const NAMESPACES = ['default'];

/** `holders` are plain names (no `*`), so each conductor's glob matches its own name only. */
export async function makeTokens(dataDir: string, keyPrefix: string, holders: readonly string[]): Promise<DemoTokens> {
  const wildcard = holders.find((holder) => holder.includes('*'));
  if (wildcard !== undefined) throw new StoryError(`the conductor name ${wildcard} is a glob: its token would act as other conductors too`);
  const url = embeddedRedisUrl(dataDir);
  if (!url) throw new StoryError(`the service's redis-server left no state file in ${dataDir}`);
  const redis = createRedisClient({ target: { mode: 'single', url }, commandTimeoutMs: REDIS_WAIT_MS });
  try {
    await waitUntilReady(redis, REDIS_WAIT_MS);
    const store = new ServiceTokens(redis, tokenKeys(keyPrefix));
    const make = async (grant: GrantClaimsValue, description: string) => (await store.create(grant, { description })).token;
    const [operator, resourceServer, ...conductors] = await Promise.all([
      make({ role: 'operator', namespaces: NAMESPACES }, 'demo: the stage'),
      make({ role: 'resource-server', namespaces: NAMESPACES }, 'demo: the hypervisor'),
      // Resize orphans are the only kind the story's conductors claim.
      ...holders.map((holder) => make({ role: 'conductor', namespaces: NAMESPACES, holders: holder, kinds: ['resize'] }, `demo: ${holder}`)),
    ]);
    return { operator, resourceServer, conductors: new Map(holders.map((holder, i) => [holder, conductors[i]!])) };
  } finally {
    redis.disconnect();
  }
}
