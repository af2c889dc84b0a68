// The service as a real process: its own redis-server, crashes (SIGKILL), graceful stops
// (SIGTERM), and refusing to start on a bad configuration.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { isAlive, readEmbeddedState } from '../src/redis/embedded.js';
import { acquireBody } from './helpers/app.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { startService, waitUntilServing, type ServiceProcess } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';


const services: ServiceProcess[] = [];
/** Data folders of services that manage their own redis-server, to stop it even on failure. */
const embeddedDirs: string[] = [];
const redisPids = new Set<number>();
const tempDirs: string[] = [];
let testRedis: TestRedis | undefined;

/** startService, tracked for clean-up even when it never becomes ready. */
async function start(env: Record<string, string>, { waitReady = true } = {}): Promise<ServiceProcess> {
  const service = await startService(env, { waitReady: false });
  services.push(service);
  if (waitReady) await waitUntilServing(service);
  return service;
}

function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `lease-process-${name}-`));
  tempDirs.push(dir);
  return dir;
}

/** The redis-server the service recorded under dataDir; it must have recorded one. */
function embeddedState(dataDir: string): { pid: number; port: number } {
  const state = readEmbeddedState(dataDir);
  assert.ok(state, `no embedded redis-server recorded under ${dataDir}`);
  return state;
}

function ended(service: ServiceProcess): boolean {
  return service.child.exitCode !== null || service.child.signalCode !== null;
}

/** The exit code (or signal) of `service`, failing when it has not ended within `ms`. */
async function exitWithin(service: ServiceProcess, ms: number): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the service did not exit within ${ms} ms; output:\n${service.output()}`)), ms);
  });
  try {
    return await Promise.race([service.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function kill9(service: ServiceProcess): Promise<void> {
  service.child.kill('SIGKILL');
  assert.equal(await exitWithin(service, 5000), 'SIGKILL');
}

async function request(service: ServiceProcess, method: 'GET' | 'POST', url: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${service.url}${url}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

before(async () => {
  testRedis = await startTestRedis();
});

after(async () => {
  for (const service of services) {
    if (!ended(service)) {
      service.child.kill('SIGKILL');
      await service.exited;
    }
  }
  for (const dir of embeddedDirs) {
    const state = readEmbeddedState(dir);
    if (state) redisPids.add(state.pid);
  }
  for (const pid of redisPids) {
    let commandLine: string;
    try {
      commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (commandLine.includes('redis-server') && isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  await testRedis?.stop();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('without REDIS_URL the service runs its own redis-server', () => {
  test('a SIGKILLed service comes back with its leases; SIGTERM exits 0 and stops the redis-server', async () => {
    const dataDir = tempDir('data');
    embeddedDirs.push(dataDir);
    const first = await start({ DATA_DIR: dataDir });
    const { pid: redisPid } = embeddedState(dataDir);
    redisPids.add(redisPid);
    assert.ok(isAlive(redisPid), 'the managed redis-server runs');

    const granted = await request(first, 'POST', '/v1/leases', acquireBody('conductor-z', ['instances/i-42'], { ttlMs: 60000 }));
    assert.equal(granted.status, 201);
    const lease = granted.body;

    await kill9(first);
    assert.ok(isAlive(redisPid), 'the redis-server outlives a SIGKILLed service (it keeps the leases)');

    const second = await start({ DATA_DIR: dataDir });
    assert.equal(embeddedState(dataDir).pid, redisPid, 'the second start adopts the running server instead of starting another');

    const found = await request(second, 'GET', `/v1/leases/${lease.id}`);
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.equal(found.body.state, 'active');
    assert.equal(found.body.fencingToken, lease.fencingToken);
    const conflicting = await request(second, 'POST', '/v1/leases', acquireBody('other', ['instances/i-42/volumes/v-7']));
    assert.equal(conflicting.status, 409);
    assert.equal(conflicting.body.conflicts[0].leaseId, lease.id);

    second.child.kill('SIGTERM');
    assert.equal(await exitWithin(second, 15000), 0, second.output());
    assert.ok(!isAlive(redisPid), `the managed redis-server (pid ${redisPid}) is still running after the service stopped`);
  });

  test('a managed redis-server that dies is started again and comes back with the leases', async () => {
    const dataDir = tempDir('supervised');
    embeddedDirs.push(dataDir);
    const service = await start({ DATA_DIR: dataDir, REDIS_APPENDFSYNC: 'always' });
    const { pid: firstPid, port } = embeddedState(dataDir);
    redisPids.add(firstPid);
    const granted = await request(service, 'POST', '/v1/leases', acquireBody('conductor-z', ['instances/i-43'], { ttlMs: 60000 }));
    assert.equal(granted.status, 201);

    process.kill(firstPid, 'SIGKILL');
    const restarted = await waitFor(
      () => {
        const state = readEmbeddedState(dataDir);
        return state && state.pid !== firstPid && isAlive(state.pid) ? state : undefined;
      },
      { what: 'a new redis-server' },
    );
    redisPids.add(restarted.pid);
    assert.equal(restarted.port, port, 'on the same port, where the client reconnects');
    const found = await waitFor(
      async () => {
        const answer = await request(service, 'GET', `/v1/leases/${granted.body.id}`);
        return answer.status === 503 ? undefined : answer;
      },
      { what: 'the service to reach Redis again' },
    );
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.equal(found.body.fencingToken, granted.body.fencingToken);
    assert.equal((await request(service, 'POST', '/v1/leases', acquireBody('other', ['instances/i-43']))).status, 409);

    service.child.kill('SIGTERM');
    assert.equal(await exitWithin(service, 15000), 0, service.output());
    assert.ok(!isAlive(restarted.pid), 'SIGTERM stops the restarted redis-server too');
  });

  test('a missing redis-server stops the start with an exit code and says how to install it', async () => {
    const service = await start({ DATA_DIR: tempDir('nobin'), REDIS_SERVER_BIN: '/nonexistent/redis-server' }, { waitReady: false });
    const code = await exitWithin(service, 15000);
    assert.equal(typeof code, 'number');
    assert.notEqual(code, 0);
    assert.match(service.output(), /apt-get install -y redis-server/);
    assert.match(service.output(), /\/nonexistent\/redis-server/);
  });
});

describe('with REDIS_URL', () => {
  test('SIGTERM closes a connection that never sent a request instead of waiting for it', async () => {
    // A client pool's spare connection, or a load balancer's TCP check: Node would wait out
    // its headersTimeout (about a minute) before close() returns, so the grace would run out.
    const service = await start({ REDIS_URL: testRedis!.url, KEY_PREFIX: 'silent', SHUTDOWN_GRACE_MS: '30000' });
    const socket = connect(Number(new URL(service.url).port), '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    const closedByServer = once(socket, 'close');
    service.child.kill('SIGTERM');
    assert.equal(await exitWithin(service, 10000), 0, service.output());
    await closedByServer;
  });

  test('a SIGKILL of the service mid-life loses no lease', async () => {
    const env = { REDIS_URL: testRedis!.url, KEY_PREFIX: 'crash' };
    const first = await start(env);
    const granted = await request(first, 'POST', '/v1/leases', acquireBody('conductor-z', ['instances/i-7'], { ttlMs: 60000 }));
    assert.equal(granted.status, 201);
    await kill9(first);

    const second = await start(env);
    const found = await request(second, 'GET', `/v1/leases/${granted.body.id}`);
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.equal(found.body.state, 'active');
    assert.equal(found.body.fencingToken, granted.body.fencingToken);
    assert.equal((await request(second, 'POST', '/v1/leases', acquireBody('other', ['instances/i-7']))).status, 409);
    await kill9(second);
  });

  describe('SIGTERM during a burst of 50 acquires', () => {
    type Outcome = { status: number; body: string } | { error: string };
    let outcomes: Outcome[];
    let exitCode: number | string;
    let service: ServiceProcess;

    before(async () => {
      // A short grace: a shutdown that hangs shows up as a non-zero exit within the test's time.
      service = await start({ REDIS_URL: testRedis!.url, KEY_PREFIX: 'burst', SHUTDOWN_GRACE_MS: '5000' });
      const pending = Array.from({ length: 50 }, (_, i) =>
        fetch(`${service.url}/v1/leases`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(acquireBody(`burst-${i}`, [`instances/burst-${i}`])),
        }).then(
          async (res): Promise<Outcome> => ({ status: res.status, body: await res.text() }),
          (error: Error & { cause?: { code?: string } }): Outcome => ({ error: error.cause?.code ?? error.message }),
        ),
      );
      // SIGTERM at once would beat the requests to the socket (every one refused, nothing
      // tested); once the first answer is back the burst has reached the service: stop now.
      await Promise.race(pending);
      service.child.kill('SIGTERM');
      outcomes = await Promise.all(pending);
      exitCode = await exitWithin(service, 15000);
    });

    test(
      'every request that got an answer got 201 (in-flight requests are finished, none is 5xx)',
      () => {
        const answered = outcomes.filter((o): o is { status: number; body: string } => 'status' in o);
        assert.ok(answered.length >= 1, 'at least the first request was answered');
        assert.deepEqual(
          answered.filter((o) => o.status !== 201),
          [],
        );
      },
    );

    test('Redis holds exactly the leases that were answered 201: nothing granted unseen', async () => {
      const granted = outcomes
        .filter((o): o is { status: number; body: string } => 'status' in o && o.status === 201)
        .map((o) => (JSON.parse(o.body) as { id: string }).id);
      // Read Redis directly: the service is gone.
      const client = new Redis(testRedis!.url);
      const keys = await client.keys('{burst}:l:*').finally(() => client.disconnect());
      assert.deepEqual(keys.map((key) => key.slice('{burst}:l:'.length)).sort(), granted.sort());
    });

    test(
      'the process exits 0',
      () => {
        assert.equal(exitCode, 0, service.output());
      },
    );
  });
});

describe('a bad configuration stops the start with one line naming the variable', () => {
  const cases: [string, string][] = [
    ['TTL_MIN_MS', 'abc'],
    ['PORT', '70000'],
    ['KEY_PREFIX', 'a b'],
    ['KEY_PREFIX', 'a\nb'],
    ['REDIS_URL', 'localhost:6379'],
    ['LOG_LEVEL', 'verbose'],
    ['TTL_MIN_MS', '20000'],
  ];
  for (const [name, value] of cases) {
    test(`${name}=${JSON.stringify(value)}`, async () => {
      const env: Record<string, string> = { REDIS_URL: testRedis!.url, DATA_DIR: tempDir('config'), [name]: value };
      const service = await start(env, { waitReady: false });
      const code = await exitWithin(service, 15000);
      assert.equal(typeof code, 'number', `ended by ${code}`);
      assert.notEqual(code, 0);
      const lines = service.output().split('\n').filter((line) => line.trim() !== '');
      assert.equal(lines.length, 1, service.output());
      assert.ok(lines[0]!.includes(name), lines[0]);
    });
  }
});
