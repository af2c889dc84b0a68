// /metrics as Prometheus sees it: promtool accepts the exposition, the lease API's work
// shows up in the domain series, shared state reads the same from every replica, and
// nothing unbounded (lease ids, holders, paths) becomes a label.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { acquireBody, startTestApp, useTestApp, type TestApp } from './helpers/app.js';
import { startTestRedis } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

/** One sample of the text exposition: name, labels and value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `an exposition line parses: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

async function scrape(t: TestApp): Promise<{ text: string; samples: Sample[] }> {
  const response = await t.get('/metrics');
  assert.equal(response.statusCode, 200);
  assert.match(String(response.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return { text: response.body, samples: parseExposition(response.body) };
}

/** The value of the one sample with this name and these labels (0 when absent). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} names one series, found ${found.length}`);
  return found[0]?.value ?? 0;
}

describe('the metrics of one replica', () => {
  const { t } = useTestApp();

  test('promtool check metrics accepts the exposition after real traffic of every kind', async () => {
    const granted = await t.post('/v1/leases', acquireBody('metrics-a', ['m/promtool/i-1'], { action: { kind: 'resize' } }));
    assert.equal(granted.statusCode, 201);
    const id = granted.json().id as string;
    assert.equal((await t.post('/v1/leases', acquireBody('metrics-b', ['m/promtool/i-1']))).statusCode, 409);
    assert.equal((await t.post(`/v1/leases/${id}/renew`, { progress: { step: 1 } })).statusCode, 200);
    assert.equal((await t.post(`/v1/leases/${id}/release`, { outcome: 'abandoned' })).statusCode, 200);
    assert.equal((await t.get('/no/such/route')).statusCode, 404);

    const { text } = await scrape(t);
    const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.ok(!result.error, `promtool runs (install it with bash scripts/setup.sh --test): ${result.error?.message}`);
    assert.equal(result.status, 0, `promtool check metrics:\n${result.stdout}${result.stderr}`);
  });

  test('acquires, renewals and releases are counted by outcome and mode', async () => {
    const before = (await scrape(t)).samples;
    const granted = await t.post('/v1/leases', acquireBody('metrics-c', ['m/count/i-1', { path: 'm/count/n-1', mode: 'shared' }]));
    assert.equal(granted.statusCode, 201);
    const id = granted.json().id as string;
    assert.equal((await t.post('/v1/leases', acquireBody('metrics-d', ['m/count/i-1/volumes/v-1']))).statusCode, 409);
    assert.equal((await t.post(`/v1/leases/${id}/renew`, {})).statusCode, 200);
    assert.equal((await t.post(`/v1/leases/${id}/release`, { outcome: 'failed' })).statusCode, 200);
    assert.equal((await t.post(`/v1/leases/${id}/renew`, {})).statusCode, 410);
    assert.equal((await t.post(`/v1/leases/${id}/release`, { outcome: 'completed' })).statusCode, 410);
    assert.equal((await t.post('/v1/leases/unknown-lease/renew', {})).statusCode, 404);

    const now = (await scrape(t)).samples;
    const grew = (name: string, labels: Record<string, string>) => valueOf(now, name, labels) - valueOf(before, name, labels);
    assert.equal(grew('lease_acquires_total', { outcome: 'granted', mode: 'mixed' }), 1);
    assert.equal(grew('lease_acquires_total', { outcome: 'conflict', mode: 'exclusive' }), 1);
    assert.equal(grew('lease_acquire_duration_seconds_count', { waited: 'false' }), 2);
    assert.equal(grew('lease_renewals_total', { outcome: 'renewed' }), 1);
    assert.equal(grew('lease_renewals_total', { outcome: 'lost' }), 1);
    assert.equal(grew('lease_renewals_total', { outcome: 'not_found' }), 1);
    assert.equal(grew('lease_releases_total', { outcome: 'failed' }), 1);
    assert.equal(grew('lease_releases_total', { outcome: 'lost' }), 1);
    assert.equal(grew('http_request_duration_seconds_count', { route: '/v1/leases/:id/renew', method: 'POST', status_class: '4xx' }), 2);
    assert.ok(grew('lease_redis_command_duration_seconds_count', { command: 'acquire', result: 'ok' }) >= 2);
  });

  test('a waiting acquire that gets the lease counts as waited, with its wait in the waited="true" histogram', async () => {
    const before = (await scrape(t)).samples;
    const first = await t.post('/v1/leases', acquireBody('metrics-e', ['m/wait/i-1'], { ttlMs: 1000 }));
    assert.equal(first.statusCode, 201);
    const waiter = t.post('/v1/leases', acquireBody('metrics-f', ['m/wait/i-1'], { waitMs: 5000 }));
    await waitFor(async () => valueOf((await scrape(t)).samples, 'lease_waiting_requests') >= 1, { what: 'the waiter to queue' });
    assert.equal((await t.post(`/v1/leases/${first.json().id}/release`, {})).statusCode, 200);
    assert.equal((await waiter).statusCode, 201);

    const now = (await scrape(t)).samples;
    const grew = (name: string, labels: Record<string, string>) => valueOf(now, name, labels) - valueOf(before, name, labels);
    assert.equal(grew('lease_acquires_total', { outcome: 'waited', mode: 'exclusive' }), 1);
    assert.equal(grew('lease_acquire_duration_seconds_count', { waited: 'true' }), 1);
    assert.equal(valueOf(now, 'lease_waiting_requests'), 0);
  });

  test('an expired action shows as an expiry, an orphan published for that reason, and a pending orphan', async () => {
    const before = (await scrape(t)).samples;
    const granted = await t.post('/v1/leases', acquireBody('metrics-g', ['m/expire/i-1'], { ttlMs: 1000, action: { kind: 'resize' } }));
    assert.equal(granted.statusCode, 201);
    assert.equal(valueOf((await scrape(t)).samples, 'lease_leases', { state: 'active' }) - valueOf(before, 'lease_leases', { state: 'active' }), 1);

    const now = await waitFor(
      async () => {
        const samples = (await scrape(t)).samples;
        return valueOf(samples, 'lease_expiries_total') > valueOf(before, 'lease_expiries_total') && samples;
      },
      { what: 'the reaper to settle the expiry' },
    );
    const grew = (name: string, labels: Record<string, string> = {}) => valueOf(now, name, labels) - valueOf(before, name, labels);
    assert.equal(grew('lease_expiries_total'), 1);
    assert.equal(grew('lease_orphans_published_total', { reason: 'expired' }), 1);
    assert.equal(grew('lease_orphans', { state: 'pending' }), 1);
    assert.equal(grew('lease_leases', { state: 'orphaned' }), 1);
    assert.equal(grew('lease_leases', { state: 'active' }), 0);
    assert.ok(valueOf(now, 'lease_reaper_sweeps_total', { result: 'ok' }) > 0, 'the reaper swept');
    assert.ok(valueOf(now, 'lease_reaper_settled_total') >= 1, 'the reaper counts what it settled');

    // A claim moves it to claimed; the claim's release "completed" resolves it.
    const claim = await t.post('/v1/orphans/claim', { holder: 'metrics-h', kinds: ['resize'] });
    assert.equal(claim.statusCode, 200);
    const afterClaim = (await scrape(t)).samples;
    assert.equal(valueOf(afterClaim, 'lease_orphans_claimed_total') - valueOf(before, 'lease_orphans_claimed_total'), 1);
    assert.equal(valueOf(afterClaim, 'lease_orphans', { state: 'claimed' }) - valueOf(before, 'lease_orphans', { state: 'claimed' }), 1);
    assert.equal(valueOf(afterClaim, 'lease_orphans', { state: 'pending' }), valueOf(before, 'lease_orphans', { state: 'pending' }));
    assert.equal((await t.post(`/v1/leases/${claim.json().lease.id}/release`, {})).statusCode, 200);
    const done = (await scrape(t)).samples;
    assert.equal(valueOf(done, 'lease_orphans_resolved_total', { resolution: 'completed' }) - valueOf(before, 'lease_orphans_resolved_total', { resolution: 'completed' }), 1);
    assert.equal(valueOf(done, 'lease_orphans', { state: 'claimed' }), valueOf(before, 'lease_orphans', { state: 'claimed' }));
  });

  test('a revocation and a dead letter are counted', async () => {
    const before = (await scrape(t)).samples;
    const granted = await t.post('/v1/leases', acquireBody('metrics-i', ['m/dead/i-1'], { action: { kind: 'delete', maxAttempts: 1 } }));
    assert.equal(granted.statusCode, 201);
    assert.equal((await t.del(`/v1/leases/${granted.json().id}`)).statusCode, 200);
    const now = (await scrape(t)).samples;
    const grew = (name: string, labels: Record<string, string> = {}) => valueOf(now, name, labels) - valueOf(before, name, labels);
    assert.equal(grew('lease_revocations_total'), 1);
    assert.equal(grew('lease_orphans_published_total', { reason: 'revoked' }), 1);
    assert.equal(grew('lease_orphans_dead_lettered_total'), 1);
    assert.equal(grew('lease_orphans', { state: 'dead_letter' }), 1);
  });

  test('no label value is a lease id, a holder or a resource path', async () => {
    const granted = await t.post('/v1/leases', acquireBody('metrics-secret-holder', ['m/labels/i-secret']));
    assert.equal(granted.statusCode, 201);
    const id = granted.json().id as string;
    await t.get(`/v1/leases/${id}`);
    await t.get('/v1/resources/m/labels/i-secret');
    const { samples } = await scrape(t);
    for (const sample of samples) {
      for (const value of Object.values(sample.labels)) {
        assert.ok(!value.includes(id) && !value.includes('secret'), `${sample.name} has no unbounded label value: ${value}`);
      }
    }
    const routes = new Set(samples.filter((s) => s.name === 'http_request_duration_seconds_count').map((s) => s.labels.route));
    assert.ok(routes.has('/v1/leases/:id') && routes.has('/v1/resources/*'), `routes are templates: ${[...routes].join(', ')}`);
  });
});

describe('the metrics of several replicas', () => {
  let apps: TestApp[] = [];
  let redis: Awaited<ReturnType<typeof startTestRedis>>;

  before(async () => {
    redis = await startTestRedis();
    const first = await startTestApp(redis.url);
    // The same key prefix: two replicas of one service.
    const second = await startTestApp(redis.url, { KEY_PREFIX: first.config.KEY_PREFIX });
    apps = [first, second];
  });
  after(async () => {
    for (const app of apps) await app.close();
    await redis.stop();
  });

  test('shared gauges and counters read the same on every replica; exactly one leads the reaper', async () => {
    const [a, b] = apps as [TestApp, TestApp];
    for (let i = 0; i < 3; i++) assert.equal((await a.post('/v1/leases', acquireBody(`replica-${i}`, [`m/replicas/i-${i}`]))).statusCode, 201);
    assert.equal((await b.post('/v1/leases', acquireBody('replica-b', ['m/replicas/i-b'], { action: { kind: 'resize', maxAttempts: 1 } }))).statusCode, 201);
    const granted = await b.post('/v1/leases', acquireBody('replica-b', ['m/replicas/i-r'], { action: { kind: 'resize' } }));
    assert.equal((await a.del(`/v1/leases/${granted.json().id}`)).statusCode, 200);

    const [fromA, fromB] = [(await scrape(a)).samples, (await scrape(b)).samples];
    for (const [name, labels] of [
      ['lease_leases', { state: 'active' }],
      ['lease_leases', { state: 'orphaned' }],
      ['lease_orphans', { state: 'pending' }],
      ['lease_revocations_total', {}],
      ['lease_orphans_published_total', { reason: 'revoked' }],
    ] as const) {
      assert.equal(valueOf(fromA, name, labels), valueOf(fromB, name, labels), `${name} ${JSON.stringify(labels)} is the same on both`);
    }
    assert.equal(valueOf(fromA, 'lease_leases', { state: 'active' }), 4);
    assert.equal(valueOf(fromA, 'lease_leases', { state: 'orphaned' }), 1);
    assert.equal(valueOf(fromA, 'lease_orphans', { state: 'pending' }), 1);
    // Per-replica series are each replica's own: the sum over replicas is the whole.
    assert.equal(valueOf(fromA, 'lease_acquires_total', { outcome: 'granted', mode: 'exclusive' }), 3);
    assert.equal(valueOf(fromB, 'lease_acquires_total', { outcome: 'granted', mode: 'exclusive' }), 2);

    const leaders = await waitFor(
      async () => {
        const sum = valueOf((await scrape(a)).samples, 'lease_reaper_leader') + valueOf((await scrape(b)).samples, 'lease_reaper_leader');
        return sum === 1 && sum;
      },
      { what: 'one reaper leader' },
    );
    assert.equal(leaders, 1);
  });

  test('when Redis does not answer, /metrics still answers, with lease_redis_up 0', async () => {
    const [a] = apps as [TestApp];
    assert.equal(valueOf((await scrape(a)).samples, 'lease_redis_up'), 1);
    redis.pause();
    try {
      const { samples } = await scrape(a);
      assert.equal(valueOf(samples, 'lease_redis_up'), 0);
      assert.ok(valueOf(samples, 'lease_redis_command_duration_seconds_count', { command: 'stats', result: 'error' }) >= 1);
    } finally {
      redis.resume();
    }
    await waitFor(async () => valueOf((await scrape(a)).samples, 'lease_redis_up') === 1, { what: 'Redis to be read again' });
  });

  test('a replica that has never read Redis reports no shared series rather than zeros (a counter from 0 would look like a burst)', async () => {
    const fresh = await startTestApp(redis.url, { KEY_PREFIX: apps[0]!.config.KEY_PREFIX }, { sweep: false });
    try {
      redis.pause();
      let samples: Sample[];
      try {
        samples = (await scrape(fresh)).samples;
      } finally {
        redis.resume();
      }
      assert.equal(valueOf(samples, 'lease_redis_up'), 0);
      const shared = samples.filter((s) => /^lease_(leases|orphans|waiting_requests|expiries_total|revocations_total)\b/.test(s.name));
      assert.deepEqual(shared, []);
      const later = await waitFor(async () => {
        const now = (await scrape(fresh)).samples;
        return valueOf(now, 'lease_redis_up') === 1 && now;
      }, { what: 'Redis to be read' });
      assert.equal(valueOf(later, 'lease_revocations_total'), valueOf((await scrape(apps[0]!)).samples, 'lease_revocations_total'));
      assert.ok(valueOf(later, 'lease_revocations_total') >= 1);
    } finally {
      await fresh.close();
    }
  });
});
