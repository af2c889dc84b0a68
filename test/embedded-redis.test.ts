// The embedded redis-server is private and memory-bounded: a random password that no
// command line shows, a 0700 data folder with 0600 files, a maxmemory with noeviction, and
// a full Redis fails writes with an error the service turns into 503. Real redis-servers,
// started by the manager the service uses, each in its own temporary folder.
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyBaseLogger } from 'fastify';
import { Redis } from 'ioredis';
import { isBackendUnavailable, isRedisOutOfMemory } from '../src/redis/connection.js';
import {
  forgetEmbeddedState,
  isAlive,
  readEmbeddedState,
  startEmbeddedRedis,
  type EmbeddedRedis,
  type EmbeddedRedisOptions,
} from '../src/redis/embedded.js';
import { EmbeddedRedisSupervisor } from '../src/redis/supervisor.js';
import { waitFor } from './helpers/wait.js';

const servers: EmbeddedRedis[] = [];
const clients: Redis[] = [];
const tempDirs: string[] = [];
/** The test runner's umask, put back after the file; a usual one (0022) while it runs. */
let savedUmask: number;

before(() => {
  // Under a umask of 0077 every file would be private without the manager's help.
  savedUmask = process.umask(0o022);
});

after(async () => {
  for (const client of clients) client.disconnect();
  // An adopting handle and the one it adopted share a pid: stop() of the second finds it gone.
  for (const server of servers) await server.stop();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  process.umask(savedUmask);
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lease-embedded-'));
  tempDirs.push(dir);
  return dir;
}

async function start(options: Partial<EmbeddedRedisOptions> = {}): Promise<EmbeddedRedis> {
  const server = await startEmbeddedRedis({ dataDir: options.dataDir ?? tempDir(), ...options });
  servers.push(server);
  return server;
}

function connect(url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  clients.push(client);
  return client;
}

/** A client that sends no AUTH, and no ready check (INFO would already be refused). */
function connectWithoutPassword(port: number): Redis {
  const client = new Redis({ host: '127.0.0.1', port, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  clients.push(client);
  return client;
}

async function configGet(client: Redis, name: string): Promise<string> {
  const [, value] = (await client.config('GET', name)) as [string, string];
  return value;
}

function mode(path: string): number {
  return lstatSync(path).mode & 0o777;
}

/** Every entry under `dir` (the folder itself included) with its permission bits. */
function modesUnder(dir: string): { path: string; mode: number; folder: boolean }[] {
  const entries = [{ path: dir, mode: mode(dir), folder: true }];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    entries.push({ path, mode: mode(path), folder: entry.isDirectory() });
  }
  return entries;
}

describe('the password', () => {
  let server: EmbeddedRedis;
  before(async () => {
    server = await start();
  });

  test('a client without the password gets NOAUTH; one with a wrong password is refused', async () => {
    await assert.rejects(connectWithoutPassword(server.port).ping(), /^ReplyError: NOAUTH|NOAUTH/);
    const wrong = new Redis({ host: '127.0.0.1', port: server.port, password: 'x'.repeat(64), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    wrong.on('error', () => {});
    clients.push(wrong);
    await assert.rejects(wrong.connect());
  });

  test('the url of the handle carries a random password of 32+ bytes, and it works', async () => {
    assert.match(server.password, /^[0-9a-f]{64,}$/);
    assert.equal(new URL(server.url).password, server.password);
    assert.equal(await connect(server.url).ping(), 'PONG');
    const other = await start();
    assert.notEqual(other.password, server.password, 'each new server gets its own password');
  });

  test('the password is not on the command line of redis-server (what ps shows)', async () => {
    // redis-server overwrites its command line with a title once it runs, which would hide
    // a password given there too: this one keeps the arguments it was started with.
    const untitled = await start({ extraArgs: ['--set-proc-title', 'no'] });
    const commandLine = readFileSync(`/proc/${untitled.pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    assert.match(commandLine, /redis-server .*--port \d+/, 'the arguments are there to be seen');
    assert.ok(!commandLine.includes(untitled.password), `the password is in /proc/<pid>/cmdline: ${commandLine}`);
    assert.ok(!readFileSync(`/proc/${server.pid}/cmdline`, 'utf8').includes(server.password));
  });

  test('the state file keeps the password, for a later start that adopts the server', () => {
    assert.deepEqual(readEmbeddedState(server.dataDir), { pid: server.pid, port: server.port, password: server.password });
  });
});

describe('the data folder', () => {
  test('is 0700 and every file in it 0600 after writes and an append-only file rewrite', async () => {
    const server = await start();
    const client = connect(server.url);
    for (let i = 0; i < 100; i++) await client.set(`k${i}`, 'v'.repeat(1000));
    await client.bgrewriteaof();
    await waitFor(async () => /aof_rewrite_in_progress:0[\s\S]*aof_rewrite_scheduled:0/.test(await client.info('persistence')), {
      what: 'the append-only file rewrite to end',
    });
    await client.set('after-rewrite', '1');

    const entries = modesUnder(server.dataDir);
    const names = entries.map((entry) => entry.path.slice(server.dataDir.length));
    for (const expected of ['/embedded-redis.json', '/redis.log', '/appendonlydir']) assert.ok(names.includes(expected), `${expected} in ${names.join(',')}`);
    assert.ok(entries.filter((entry) => entry.path.endsWith('.aof')).length >= 1, `an .aof file in ${names.join(',')}`);
    for (const entry of entries) {
      const wanted = entry.folder ? 0o700 : 0o600;
      assert.equal(entry.mode.toString(8), wanted.toString(8), entry.path);
    }
  });

  test('a folder made before, with 0755 and 0644 files, is made private at start', async () => {
    const dataDir = tempDir();
    chmodSync(dataDir, 0o755);
    writeFileSync(join(dataDir, 'redis.log'), 'an older log\n', { mode: 0o644 });
    chmodSync(join(dataDir, 'redis.log'), 0o644);
    const server = await start({ dataDir });
    assert.equal(mode(server.dataDir).toString(8), '700');
    assert.equal(mode(join(server.dataDir, 'redis.log')).toString(8), '600');
  });

  test('the umask of the service is what it was after a start', async () => {
    await start();
    const during = process.umask(0o022);
    assert.equal(during.toString(8), '22');
  });
});

describe('adoption of a server left running', () => {
  test('a second start on the same folder, without a stop in between (the owner crashed), adopts it and authenticates', async () => {
    const first = await start();
    const second = await start({ dataDir: first.dataDir });
    assert.equal(second.adopted, true);
    assert.equal(second.pid, first.pid);
    assert.equal(second.password, first.password);
    const client = connect(second.url);
    await client.set('adopted', 'yes');
    assert.equal(await connect(first.url).get('adopted'), 'yes');
  });

  test('a server recorded without a password (an earlier version started it) is adopted and given one', async () => {
    const first = await start();
    const admin = connect(first.url);
    await admin.config('SET', 'requirepass', '');
    writeFileSync(join(first.dataDir, 'embedded-redis.json'), JSON.stringify({ pid: first.pid, port: first.port }));
    await assert.doesNotReject(connectWithoutPassword(first.port).ping());

    const second = await start({ dataDir: first.dataDir });
    assert.equal(second.adopted, true);
    assert.equal(second.pid, first.pid);
    assert.match(second.password, /^[0-9a-f]{64,}$/);
    assert.equal(readEmbeddedState(first.dataDir)?.password, second.password);
    assert.equal(mode(join(first.dataDir, 'embedded-redis.json')).toString(8), '600');
    await assert.rejects(connectWithoutPassword(first.port).ping(), /NOAUTH/);
    assert.equal(await connect(second.url).ping(), 'PONG');
  });

  test('the supervisor starts a dead server again with the same password, so its clients reconnect', async () => {
    const first = await start({ maxmemory: '64mb' });
    const silent = { error() {}, info() {} } as unknown as FastifyBaseLogger;
    const supervisor = new EmbeddedRedisSupervisor(first, { dataDir: first.dataDir, maxmemory: '64mb' }, silent);
    supervisor.start();
    try {
      process.kill(first.pid, 'SIGKILL');
      const restarted = await waitFor(
        () => {
          const state = readEmbeddedState(first.dataDir);
          return state && state.pid !== first.pid && isAlive(state.pid) ? state : undefined;
        },
        { what: 'a new redis-server' },
      );
      assert.equal(restarted.port, first.port);
      assert.equal(restarted.password, first.password);
      assert.equal(await connect(first.url).ping(), 'PONG');
    } finally {
      await supervisor.stop();
      forgetEmbeddedState(first.dataDir);
    }
  });
});

describe('memory', () => {
  test('maxmemory is the one asked for and the policy is noeviction', async () => {
    const server = await start({ maxmemory: '64mb' });
    const client = connect(server.url);
    assert.equal(await configGet(client, 'maxmemory'), String(64 * 1024 * 1024));
    assert.equal(await configGet(client, 'maxmemory-policy'), 'noeviction');
  });

  test('an adopting start applies its own maxmemory (the setting may have changed since)', async () => {
    const first = await start({ maxmemory: '64mb' });
    const second = await start({ dataDir: first.dataDir, maxmemory: '32mb' });
    assert.equal(second.adopted, true);
    assert.equal(await configGet(connect(second.url), 'maxmemory'), String(32 * 1024 * 1024));
  });

  test('a write to a full Redis fails with an error that is out of memory and backend unavailable', async () => {
    const server = await start({ maxmemory: '4mb' });
    const client = connect(server.url);
    const value = 'x'.repeat(64 * 1024);
    let refused: unknown;
    // 4 MB hold about 60 such values: 1000 writes are far more than enough to fill it.
    for (let i = 0; i < 1000 && refused === undefined; i++) {
      await client.set(`fill:${i}`, value).catch((error: unknown) => (refused = error));
    }
    assert.ok(refused, 'Redis took 64 MB with a maxmemory of 4 MB');
    assert.match((refused as Error).message, /^OOM /);
    assert.equal(isRedisOutOfMemory(refused), true);
    assert.equal(isBackendUnavailable(refused), true);

    // The service writes through scripts: a script refused at its first write says so too.
    const scripted = await client.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, 'scripted', value).catch((error: unknown) => error);
    assert.equal(isRedisOutOfMemory(scripted), true, String(scripted));
    assert.equal(isBackendUnavailable(scripted), true);

    // Reads still work, and other errors are not taken for a full Redis.
    assert.equal(await client.get('fill:0'), value);
    // (A read: Redis checks memory before the type of a write's key.)
    const wrongType = await client.llen('fill:0').catch((error: unknown) => error);
    assert.match(String(wrongType), /WRONGTYPE/);
    assert.equal(isRedisOutOfMemory(wrongType), false);
    assert.equal(isRedisOutOfMemory(new Error('OOM command not allowed')), false, 'only a reply of Redis');
  });
});
