// What a Redis key holds, as a string two snapshots can compare: a hash's or a set's entries
// sorted, anything else's DUMP. (A large hash or set's DUMP lists it in the order of its hash
// table, which Redis' incremental rehashing reorders on mere reads: the same content would
// compare unequal.)
import type { Redis } from 'ioredis';

export async function keyContent(redis: Redis, key: string): Promise<string> {
  const type = await redis.type(key);
  if (type === 'hash') return JSON.stringify(Object.entries(await redis.hgetall(key)).sort(([a], [b]) => (a < b ? -1 : 1)));
  if (type === 'set') return JSON.stringify((await redis.smembers(key)).sort());
  return (await redis.dumpBuffer(key))?.toString('base64') ?? '';
}
