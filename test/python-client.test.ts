// The Python client (clients/python, standard library only) against the real service and a
// real redis-server: runs its unittest suite with LEASE_URL pointing at the service. The
// reaper runs every 100 ms so that orphans of 1000 ms leases come quickly.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runToEnd } from './helpers/processes.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { startService, type ServiceProcess } from './helpers/service.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

let redis: TestRedis | undefined;
let service: ServiceProcess | undefined;

before(async () => {
  redis = await startTestRedis();
  service = await startService({ REDIS_URL: redis.url, KEY_PREFIX: 'python-client', REAPER_INTERVAL_MS: '100' });
});

after(async () => {
  if (service && service.child.exitCode === null && service.child.signalCode === null) {
    service.child.kill('SIGTERM');
    await service.exited;
  }
  await redis?.stop();
});

test('the Python client passes its unittest suite against the real service', async () => {
  assert.ok(service, 'the service did not start');
  const { code, output } = await runToEnd('python3', ['-m', 'unittest', 'discover', '-s', 'clients/python/tests', '-v'], {
    cwd: ROOT,
    env: { LEASE_URL: service.url, PYTHONPATH: 'clients/python', PYTHONUNBUFFERED: '1' },
    timeoutMs: 90_000,
  });
  assert.equal(code, 0, `python3 -m unittest failed (exit ${code}):\n${output}\n--- service output ---\n${service.output()}`);
  assert.match(output, /Ran \d+ tests/);
  assert.doesNotMatch(output, /skipped/, 'no test may be skipped: LEASE_URL is set');
});
