// GET /v1/events: the lifecycle stream as Server-Sent Events, filtered by path prefix and
// type, resumable with Last-Event-ID. Real redis-server, real HTTP (the stream never ends
// by itself, so it is read from a socket while the test acts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { acquireBody, startTestApp, useTestApp, type TestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';

const { t, redis } = useTestApp();

let n = 0;
const unique = (name: string) => `${name}-${++n}-${Date.now().toString(36)}`;

interface SseEvent {
  id: string;
  event: string;
  data: { id: string; type: string; at: string; leaseId?: string; orphanId?: string; holder?: string; paths: string[]; fencingToken?: number };
}

/** Opens the event stream and collects its events until close(). */
async function openStream(app: TestApp, query = '', headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const res = await fetch(`${app.baseUrl}/v1/events${query}`, { headers, signal: controller.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const events: SseEvent[] = [];
  let buffer = '';
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) {
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const field = (name: string) => block.split('\n').find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2);
        const data = field('data');
        if (data !== undefined) events.push({ id: field('id')!, event: field('event')!, data: JSON.parse(data) });
      }
    }
  })().catch(() => {});
  return {
    events,
    ended: reading,
    close: () => controller.abort(),
  };
}

async function acquire(app: TestApp, holder: string, path: string, extra: Record<string, unknown> = {}) {
  const res = await app.post('/v1/leases', acquireBody(holder, [path], extra));
  assert.equal(res.statusCode, 201, res.body);
  return res.json<{ id: string; fencingToken: number }>();
}

describe('the live stream', () => {
  test('a lease\'s grant and release arrive as events with its id, holder, paths and token; a prefix keeps only its own paths', async () => {
    const root = `instances/${unique('i')}`;
    const stream = await openStream(t, `?prefix=${root}`);
    try {
      const lease = await acquire(t, 'conductor-z', `${root}/volumes/v-7`);
      await acquire(t, 'elsewhere', `instances/${unique('other')}`);
      assert.equal((await t.post(`/v1/leases/${lease.id}/release`, {})).statusCode, 200);
      await waitFor(async () => stream.events.length >= 2, { what: 'the grant and the release events' });
      assert.deepEqual(stream.events.map((e) => e.event), ['granted', 'released']);
      for (const { id, event, data } of stream.events) {
        assert.equal(data.id, id);
        assert.equal(data.type, event);
        assert.equal(data.leaseId, lease.id);
        assert.equal(data.holder, 'conductor-z');
        assert.deepEqual(data.paths, [`${root}/volumes/v-7`]);
        assert.equal(data.fencingToken, lease.fencingToken);
        assert.ok(!Number.isNaN(Date.parse(data.at)));
      }
    } finally {
      stream.close();
    }
  });

  test('types keeps only the named event types, such as an orphan\'s story', async () => {
    const root = `instances/${unique('i')}`;
    const stream = await openStream(t, `?prefix=${root}&types=orphaned,claimed,resolved`);
    try {
      const lease = await acquire(t, 'conductor-z', root, { action: { kind: 'resize' } });
      assert.equal((await t.post(`/v1/leases/${lease.id}/release`, { outcome: 'abandoned' })).statusCode, 200);
      const claim = await t.post('/v1/orphans/claim', { holder: 'conductor-y', kinds: ['resize'] });
      assert.equal(claim.statusCode, 200);
      const { orphan, lease: claimed } = claim.json();
      assert.equal((await t.post(`/v1/leases/${claimed.id}/release`, { outcome: 'completed' })).statusCode, 200);
      await waitFor(async () => stream.events.length >= 3, { what: 'the orphaned, claimed and resolved events' });
      assert.deepEqual(stream.events.map((e) => e.event), ['orphaned', 'claimed', 'resolved']);
      assert.ok(stream.events.every((e) => e.data.orphanId === orphan.id));
      assert.equal(stream.events[1]!.data.leaseId, claimed.id);
    } finally {
      stream.close();
    }
  });
});

describe('filtered streams', () => {
  test('events a filter leaves out still move the client\'s Last-Event-ID, by frames that carry only an id', async () => {
    const controller = new AbortController();
    const res = await fetch(`${t.baseUrl}/v1/events?types=dead_lettered`, { signal: controller.signal });
    assert.equal(res.status, 200);
    let text = '';
    const idOnly = /(?:^|\n\n)id: (\d+-\d+)\n\n/;
    const reading = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of res.body!) {
        text += decoder.decode(chunk, { stream: true });
        if (idOnly.test(text)) return;
      }
    })().catch(() => {});
    try {
      const lease = await acquire(t, unique('filtered'), `instances/${unique('f')}`);
      assert.equal((await t.post(`/v1/leases/${lease.id}/release`, { outcome: 'completed' })).statusCode, 200);
      await waitFor(() => idOnly.test(text), { timeoutMs: 5000, what: 'an id-only frame for the events the filter left out' });
      assert.doesNotMatch(text, /^event: /m, 'no event of another type was sent');
      // The client resumes from there: the id is one the stream issued.
      const id = idOnly.exec(text)![1]!;
      const resumed = await openStream(t, '?types=dead_lettered', { 'last-event-id': id });
      resumed.close();
    } finally {
      controller.abort();
      await reading;
    }
  });
});

describe('resuming', () => {
  test('with Last-Event-ID, every event after it comes first, in order and once, then the live ones', async () => {
    const root = `instances/${unique('i')}`;
    const first = await openStream(t, `?prefix=${root}`);
    const leases: { id: string; fencingToken: number }[] = [];
    try {
      leases.push(await acquire(t, 'h', `${root}/volumes/v-1`));
      await waitFor(async () => first.events.length === 1, { what: 'the first event' });
    } finally {
      first.close();
    }
    // Missed while disconnected:
    leases.push(await acquire(t, 'h', `${root}/volumes/v-2`));
    assert.equal((await t.post(`/v1/leases/${leases[0]!.id}/release`, {})).statusCode, 200);

    const resumed = await openStream(t, `?prefix=${root}`, { 'last-event-id': first.events[0]!.id });
    try {
      leases.push(await acquire(t, 'h', `${root}/volumes/v-3`));
      await waitFor(async () => resumed.events.length >= 3, { what: 'the missed and the live events' });
      assert.deepEqual(
        resumed.events.map((e) => [e.event, e.data.leaseId]),
        [
          ['granted', leases[1]!.id],
          ['released', leases[0]!.id],
          ['granted', leases[2]!.id],
        ],
      );
      const ids = resumed.events.map((e) => e.id);
      assert.deepEqual([...ids].sort(compareStreamIds), ids, 'in stream order');
      assert.equal(compareStreamIds(first.events[0]!.id, ids[0]!), -1, 'strictly after Last-Event-ID');
    } finally {
      resumed.close();
    }
  });
});

describe('bad requests', () => {
  test('an unknown type, a malformed Last-Event-ID or an invalid prefix is 400 problem+json, before any stream starts', async () => {
    const cases: [string, Record<string, string>][] = [
      ['?types=granted,bogus', {}],
      ['?types=', {}],
      ['?prefix=/instances', {}],
      ['?other=1', {}],
      ['', { 'last-event-id': 'yesterday' }],
      // Before the newest event, but a sequence number past Redis' 64 bits: XRANGE refuses it.
      ['', { 'last-event-id': '0-18446744073709551616' }],
      ['', { 'last-event-id': '1-99999999999999999999' }],
    ];
    for (const [query, headers] of cases) {
      const res = await fetch(`${t.baseUrl}/v1/events${query}`, { headers });
      assert.equal(res.status, 400, `${query} ${JSON.stringify(headers)}`);
      assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
      assert.equal(((await res.json()) as { code: string }).code.startsWith('invalid_'), true);
    }
  });
});

describe('shutdown', () => {
  test('closing the service ends open streams at once instead of waiting on them', async () => {
    const app = await startTestApp(redis.url);
    const stream = await openStream(app);
    const started = performance.now();
    await app.close();
    await stream.ended;
    assert.ok(performance.now() - started < 3000, `closing took ${Math.round(performance.now() - started)} ms`);
  });
});

function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am < bm || (am === bm && as < bs) ? -1 : am === bm && as === bs ? 0 : 1;
}
