// ioredis gives a Sentinel-mode client up for good when a failover's +switch-master reaches it
// while it is asking the sentinels where the primary is: that connection attempt fails with
// "Connection is closed." and the client stays "end" for the life of the process (every
// command then fails at once). Seen in the failover test as one service replica answering
// 503 for ever after a promotion. This holds the fix (reviveWhenEndedUnasked in
// src/redis/connection.ts) to it, on a real Sentinel topology.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Redis } from 'ioredis';
import { startSentinelTopology, type SentinelTopology } from '../../scripts/lib/sentinel-topology.js';
import { loadConfig } from '../../src/config.js';
import { createRedisClient, redisTargetOf, waitUntilReady } from '../../src/redis/connection.js';
import { waitFor } from '../helpers/wait.js';

let topology: SentinelTopology;

before(async () => {
  topology = await startSentinelTopology({ replicas: 1, sentinels: 1 });
});
after(async () => {
  await topology?.stop();
});

/** What ioredis' FailoverDetector does on +switch-master: drop the connection attempt in progress. */
function switchMasterArrives(client: Redis): void {
  (client as unknown as { connector: { disconnect(): void } }).connector.disconnect();
}

test('a client whose connection attempt a +switch-master aborts connects again by itself, and so do its duplicates', async () => {
  const config = loadConfig(topology.env);
  const client = createRedisClient({ target: redisTargetOf(config), commandTimeoutMs: 1000 }) as Redis;
  client.on('error', () => {});
  const duplicate = client.duplicate();
  duplicate.on('error', () => {});
  try {
    await waitUntilReady(client, 10000);
    await waitUntilReady(duplicate, 10000);
    const [sentinel] = topology.sentinels;
    for (const redis of [client, duplicate]) {
      // A frozen sentinel holds the next attempt in "where is the primary?"...
      sentinel!.freeze();
      try {
        redis.disconnect(true);
        await waitFor(async () => redis.status === 'connecting', { what: 'a connection attempt asking the sentinel', timeoutMs: 5000 });
        // ...when the switch arrives: ioredis ends that attempt, and with it the client.
        switchMasterArrives(redis);
        await waitFor(async () => redis.status === 'end' || redis.status === 'reconnecting', { what: 'the attempt to fail', timeoutMs: 5000 });
      } finally {
        sentinel!.thaw();
      }
      await waitFor(async () => redis.status === 'ready', { what: 'the client to be connected again', timeoutMs: 10000 });
      assert.equal(await redis.ping(), 'PONG');
    }
  } finally {
    client.disconnect();
    duplicate.disconnect();
  }
});

test('a client closed on purpose stays closed', async () => {
  const config = loadConfig(topology.env);
  const client = createRedisClient({ target: redisTargetOf(config), commandTimeoutMs: 1000 }) as Redis;
  client.on('error', () => {});
  await waitUntilReady(client, 10000);
  client.disconnect();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  assert.equal(client.status, 'end');
});
