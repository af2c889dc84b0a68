// The tooz driver (clients/python/tooz_lease) judged by tooz's own driver test suite:
// Debian's python3-tooz ships tooz/tests/test_coordination.py (76 tests), run here against
// the real service with TOOZ_TEST_URL=lease://... (clients/python/tooz-tests/run.sh). No
// test may fail; a test may be skipped only where the driver raises tooz.NotImplemented,
// which is what the README lists (member capabilities: the service stores no data on a
// lease but an action, and an expired action lease becomes an orphan).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runToEnd } from './helpers/processes.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { startService, type ServiceProcess } from './helpers/service.js';

const RUN = fileURLToPath(new URL('../clients/python/tooz-tests/run.sh', import.meta.url));

let redis: TestRedis | undefined;
let service: ServiceProcess | undefined;

before(async () => {
  redis = await startTestRedis();
  service = await startService({ REDIS_URL: redis.url, KEY_PREFIX: 'tooz', REAPER_INTERVAL_MS: '100' });
});

after(async () => {
  if (service && service.child.exitCode === null && service.child.signalCode === null) {
    service.child.kill('SIGTERM');
    await service.exited;
  }
  await redis?.stop();
});

test("tooz's own coordination tests pass against the lease:// driver: no failure, skips only for NotImplemented", async () => {
  assert.ok(service, 'the service did not start');
  const { host } = new URL(service.url);
  const { code, output } = await runToEnd('sh', [RUN, `lease://${host}`], { timeoutMs: 100_000 });
  assert.equal(code, 0, `tooz's suite failed (exit ${code}):\n${output}\n--- service output ---\n${service.output()}`);
  const summary = /(\d+) passed(?:, (\d+) skipped)?/.exec(output);
  assert.ok(summary, `no pytest summary in:\n${output}`);
  assert.doesNotMatch(output, /\d+ failed|\d+ error/);
  const passed = Number(summary[1]);
  const skipped = Number(summary[2] ?? 0);
  assert.equal(passed + skipped, 76, 'every test of test_coordination.py ran');
  // pytest -rs prints one line per skip with its reason: each must be the driver's NotImplemented.
  const skipLines = output.split('\n').filter((line) => line.startsWith('SKIPPED'));
  assert.equal(skipLines.length > 0 ? skipLines.reduce((n, line) => n + Number(/^SKIPPED \[(\d+)\]/.exec(line)?.[1] ?? 1), 0) : 0, skipped);
  for (const line of skipLines) assert.match(line, /capabilit/i, `a skip that is not the driver's NotImplemented for capabilities: ${line}`);
});
