// What bounds the HTTP server's and the event streams' memory and time: request, header and
// keep-alive timeouts that cut slow clients but never a long answer, a connection limit,
// load shedding while the event loop lags, caps on event streams, dropping a client that does
// not read, and a Last-Event-ID outside the stream's range. Real sockets on loopback, short
// real timeouts; each test runs its own app with the limits it needs.
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { keyPrefix } from '../src/app.js';
import { acquireBody, startTestApp, type TestApp } from './helpers/app.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const redis = {} as TestRedis;
before(async () => {
  Object.assign(redis, await startTestRedis());
});
after(async () => {
  await redis.stop?.();
});

let n = 0;
const unique = (name: string) => `${name}-${++n}-${Date.now().toString(36)}`;

/** Runs `body` against an app of its own with these settings, and closes it after. */
async function withApp(env: Record<string, string>, body: (app: TestApp) => Promise<void>): Promise<void> {
  const app = await startTestApp(redis.url, env);
  try {
    await body(app);
  } finally {
    await app.close();
  }
}

const portOf = (app: TestApp) => Number(new URL(app.baseUrl).port);

interface RawConnection {
  socket: Socket;
  /** Everything received so far, as text. */
  received(): string;
  /** performance.now() when the connection closed, once it has. */
  closedAt(): number | undefined;
}

/** A plain TCP connection to the app, to send bytes as slowly or oddly as a test needs. */
async function rawConnection(app: TestApp): Promise<RawConnection> {
  const socket = connect({ host: '127.0.0.1', port: portOf(app) });
  let text = '';
  let closedAt: number | undefined;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => {});
  socket.on('close', () => (closedAt = performance.now()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('close', () => reject(new Error('closed before connecting')));
  });
  return { socket, received: () => text, closedAt: () => closedAt };
}

/** Writes `text` one byte every `everyMs` until it is all sent or the connection closes. */
function trickle(socket: Socket, text: string, everyMs: number): () => void {
  let sent = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || sent >= text.length) return clearInterval(timer);
    socket.write(text[sent++]!);
  }, everyMs);
  return () => clearInterval(timer);
}

interface StreamAnswer {
  status: number;
  headers: IncomingMessage['headers'];
  /** The body so far (an event stream keeps growing until close()). */
  body(): string;
  close(): void;
}

/** GET /v1/events over a real socket, from `localAddress` (any 127.x.y.z is this host). */
async function openStream(app: TestApp, { localAddress = '127.0.0.1', headers = {} }: { localAddress?: string; headers?: Record<string, string> } = {}): Promise<StreamAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: portOf(app), path: '/v1/events', localAddress, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('error', () => {});
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: () => body, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The body of a finished (non-stream) answer, as JSON. */
async function problemOf(answer: StreamAnswer): Promise<{ code: string; status: number; detail: string }> {
  await waitFor(() => {
    try {
      return JSON.parse(answer.body()) as { code: string; status: number; detail: string };
    } catch {
      return undefined;
    }
  }, { timeoutMs: 5000, what: 'a complete problem body' });
  return JSON.parse(answer.body());
}

/** lease_event_stream_clients, as the app's /metrics says. */
async function openStreamCount(app: TestApp): Promise<number> {
  const text = (await app.get('/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith('lease_event_stream_clients '));
  assert.ok(line, 'the metric lease_event_stream_clients is exported');
  return Number(line.split(' ')[1]);
}

/** 64 paths of about 380 characters: their grant and release events are about 25 KB each. */
function bigPaths(root: string, lease: number): string[] {
  return Array.from({ length: 64 }, (_, r) => `${root}/l${lease}/r${r}/${'x'.repeat(120)}/${'y'.repeat(120)}/${'z'.repeat(120)}`);
}

async function acquire(app: TestApp, holder: string, paths: string[]): Promise<{ id: string }> {
  const res = await app.post('/v1/leases', acquireBody(holder, paths));
  assert.equal(res.statusCode, 201, res.body);
  return res.json<{ id: string }>();
}

describe('request timeouts', () => {
  const env = { HTTP_REQUEST_TIMEOUT_MS: '1500', HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_KEEP_ALIVE_TIMEOUT_MS: '1000' };

  test('a body sent one byte every 300 ms is answered 408 and closed after HTTP_REQUEST_TIMEOUT_MS', async () => {
    await withApp(env, async (app) => {
      const connection = await rawConnection(app);
      const started = performance.now();
      connection.socket.write('POST /v1/leases HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n');
      const stop = trickle(connection.socket, JSON.stringify(acquireBody('slow', [`instances/${unique('i')}`])).padEnd(200), 300);
      try {
        const closedAt = await waitFor(() => connection.closedAt(), { timeoutMs: 6000, what: 'the slow connection to be closed' });
        const took = closedAt - started;
        assert.match(connection.received(), /^HTTP\/1\.1 408 /);
        assert.ok(took >= 1400 && took < 4000, `closed after ${Math.round(took)} ms`);
      } finally {
        stop();
        connection.socket.destroy();
      }
      assert.equal((await app.get('/healthz')).statusCode, 200, 'the service still serves');
    });
  });

  test('headers sent one byte every 300 ms are cut off after HTTP_HEADERS_TIMEOUT_MS', async () => {
    await withApp(env, async (app) => {
      const connection = await rawConnection(app);
      const started = performance.now();
      const stop = trickle(connection.socket, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${'p'.repeat(40)}\r\n\r\n`, 300);
      try {
        const closedAt = await waitFor(() => connection.closedAt(), { timeoutMs: 5000, what: 'the slow connection to be closed' });
        assert.match(connection.received(), /^HTTP\/1\.1 408 /);
        assert.ok(closedAt - started < 3500, `closed after ${Math.round(closedAt - started)} ms`);
      } finally {
        stop();
        connection.socket.destroy();
      }
    });
  });

  test('an idle keep-alive connection is closed after HTTP_KEEP_ALIVE_TIMEOUT_MS, not by the shorter header timeout', async () => {
    await withApp({ ...env, HTTP_KEEP_ALIVE_TIMEOUT_MS: '2500' }, async (app) => {
      const connection = await rawConnection(app);
      connection.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await waitFor(() => connection.received().includes('"ok"'), { timeoutMs: 5000, what: 'the /healthz answer' });
      const answeredAt = performance.now();
      try {
        const closedAt = await waitFor(() => connection.closedAt(), { timeoutMs: 5000, what: 'the idle connection to be closed' });
        assert.ok(closedAt - answeredAt > 2200, `closed ${Math.round(closedAt - answeredAt)} ms after the answer`);
      } finally {
        connection.socket.destroy();
      }
    });
  });

  test('an event stream and a waiting acquire outlive the request timeout: it bounds receiving a request, not answering it', async () => {
    await withApp({ ...env, HTTP_REQUEST_TIMEOUT_MS: '1000' }, async (app) => {
      const path = `instances/${unique('i')}`;
      const stream = await openStream(app);
      try {
        assert.equal(stream.status, 200);
        const blocker = await acquire(app, 'first', [path]);
        const opened = performance.now();
        const waiting = fetch(`${app.baseUrl}/v1/leases`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(acquireBody('second', [path], { waitMs: 8000 })),
        });
        // Time itself is what is tested: both must still be open well past the 1 s timeout
        // and Node's sweep of timed-out connections (every 250 ms here).
        await waitFor(() => performance.now() - opened > 2000, { what: 'the request timeout to pass twice' });
        assert.equal((await app.post(`/v1/leases/${blocker.id}/release`, {})).statusCode, 200);
        const answer = await waiting;
        assert.equal(answer.status, 201, await answer.clone().text());
        const second = (await answer.json()) as { id: string };
        await waitFor(() => stream.body().includes(second.id), { timeoutMs: 5000, what: 'the waiter\'s grant on the stream' });
        assert.match(stream.body(), new RegExp(`event: released\ndata: \\{"id":"[^"]+","type":"released"[^\\n]*"leaseId":"${blocker.id}"`));
      } finally {
        stream.close();
      }
    });
  });
});

describe('connection limit', () => {
  test('past HTTP_MAX_CONNECTIONS a connection is closed unanswered; closing one lets the next in', async () => {
    await withApp({ HTTP_MAX_CONNECTIONS: '2' }, async (app) => {
      const held: RawConnection[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          const connection = await rawConnection(app);
          held.push(connection);
          connection.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
          await waitFor(() => connection.received().includes('"ok"'), { timeoutMs: 5000, what: `connection ${i + 1} answered` });
        }
        const refused = await rawConnection(app);
        held.push(refused);
        refused.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
        await waitFor(() => refused.closedAt(), { timeoutMs: 5000, what: 'the third connection to be closed' });
        assert.equal(refused.received(), '', 'no answer on a refused connection');

        held[0]!.socket.destroy();
        // The server counts the closed connection out asynchronously: retry until it has.
        await waitFor(
          async () => {
            const next = await rawConnection(app).catch(() => undefined);
            if (!next) return false;
            held.push(next);
            next.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
            await waitFor(() => next.received().includes('"ok"') || next.closedAt() !== undefined, { timeoutMs: 3000, what: 'an answer or a close' });
            return next.received().includes('"ok"');
          },
          { timeoutMs: 5000, what: 'a new connection to be served' },
        );
      } finally {
        for (const connection of held) connection.socket.destroy();
      }
    });
  });
});

describe('load shedding', () => {
  test('while the event loop lags, requests get 503 problem+json with Retry-After; /healthz and /metrics still answer', async () => {
    await withApp({ LOAD_SHED_EVENT_LOOP_DELAY_MS: '10' }, async (app) => {
      // Lag the loop in slices (yielding between them) until the service measures it and
      // sheds (not in its first two seconds: those measurements count its own start-up).
      const deadline = performance.now() + 15000;
      let shed: Awaited<ReturnType<TestApp['post']>> | undefined;
      while (performance.now() < deadline) {
        const until = performance.now() + 200;
        while (performance.now() < until) {
          // busy: this is the lag
        }
        await yieldToLoop();
        if (!app.app.isUnderPressure()) continue;
        const answer = await app.post('/v1/leases', acquireBody('h', [`instances/${unique('i')}`]));
        if (answer.statusCode === 503) {
          shed = answer;
          break;
        }
        assert.equal(answer.statusCode, 201, answer.body);
      }
      assert.ok(shed, 'a request was shed while the loop lagged');
      assert.match(String(shed.headers['content-type']), /^application\/problem\+json/);
      assert.ok(Number(shed.headers['retry-after']) >= 1, 'Retry-After');
      const body = shed.json<{ code: string; detail: string }>();
      assert.equal(body.code, 'backend_unavailable');
      assert.match(body.detail, /overloaded/);
      assert.equal((await app.get('/healthz')).statusCode, 200);
      assert.equal((await app.get('/metrics')).statusCode, 200);

      await waitFor(() => !app.app.isUnderPressure(), { timeoutMs: 10000, what: 'the lag to be measured gone' });
      const served = await app.post('/v1/leases', acquireBody('h', [`instances/${unique('i')}`]));
      assert.equal(served.statusCode, 201, served.body);
    });
  });
});

describe('event stream caps and backpressure', () => {
  test('past EVENT_STREAMS_MAX_PER_CLIENT or EVENT_STREAMS_MAX a stream is 429 problem+json with Retry-After; closing one frees its slot', async () => {
    await withApp({ EVENT_STREAMS_MAX: '3', EVENT_STREAMS_MAX_PER_CLIENT: '2' }, async (app) => {
      const open: StreamAnswer[] = [];
      const expectRefused = async (answer: StreamAnswer, cap: RegExp) => {
        assert.equal(answer.status, 429);
        assert.match(String(answer.headers['content-type']), /^application\/problem\+json/);
        assert.ok(Number(answer.headers['retry-after']) >= 1, 'Retry-After');
        const problem = await problemOf(answer);
        assert.equal(problem.code, 'rate_limited');
        assert.match(problem.detail, cap);
      };
      try {
        for (let i = 0; i < 2; i++) open.push(await openStream(app));
        assert.deepEqual(open.map((s) => s.status), [200, 200]);
        await expectRefused(await openStream(app), /EVENT_STREAMS_MAX_PER_CLIENT/);

        // Another client address still gets one, up to the replica's total.
        open.push(await openStream(app, { localAddress: '127.0.0.2' }));
        assert.equal(open[2]!.status, 200);
        await expectRefused(await openStream(app, { localAddress: '127.0.0.3' }), /EVENT_STREAMS_MAX\)/);
        assert.equal(await openStreamCount(app), 3);

        open.shift()!.close();
        const next = await waitFor(
          async () => {
            const answer = await openStream(app, { localAddress: '127.0.0.3' });
            if (answer.status === 200) return answer;
            answer.close();
            return undefined;
          },
          { timeoutMs: 5000, what: 'the closed stream\'s slot to be free' },
        );
        open.push(next);
        await expectRefused(await openStream(app, { localAddress: '127.0.0.4' }), /EVENT_STREAMS_MAX\)/);
      } finally {
        for (const stream of open) stream.close();
      }
      await waitFor(async () => (await openStreamCount(app)) === 0, { timeoutMs: 5000, what: 'every stream to be counted out' });
    });
  });

  test('HEAD answers a stream\'s headers at once and takes no slot: a GET after more HEADs than the cap still streams', async () => {
    await withApp({ EVENT_STREAMS_MAX: '2', EVENT_STREAMS_MAX_PER_CLIENT: '1' }, async (app) => {
      const heads = await Promise.all(
        Array.from({ length: 3 }, () =>
          new Promise<{ status: number; type: string }>((resolve, reject) => {
            // (The connections stay open, as a client's keep-alive pool would keep them.)
            const req = httpRequest({ host: '127.0.0.1', port: portOf(app), path: '/v1/events', method: 'HEAD', headers: { connection: 'keep-alive' } }, (res) => {
              res.resume();
              resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']) });
            });
            req.setTimeout(3000, () => reject(new Error('HEAD /v1/events was not answered')));
            req.on('error', reject);
            req.end();
          }),
        ),
      );
      for (const head of heads) {
        assert.equal(head.status, 200);
        assert.match(head.type, /^text\/event-stream/);
      }
      assert.equal(await openStreamCount(app), 0);
      const stream = await openStream(app);
      try {
        assert.equal(stream.status, 200);
      } finally {
        stream.close();
      }
    });
  });

  test('a client that never reads is dropped once EVENT_STREAM_BUFFER_BYTES wait for it, and its slot is freed', async () => {
    await withApp({ EVENT_STREAMS_MAX: '1', EVENT_STREAMS_MAX_PER_CLIENT: '1', EVENT_STREAM_BUFFER_BYTES: '16384' }, async (app) => {
      const root = `big/${unique('b')}`;
      const reader = await rawConnection(app);
      try {
        reader.socket.write(`GET /v1/events?prefix=${root} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
        await waitFor(() => reader.received().startsWith('HTTP/1.1 200'), { timeoutMs: 5000, what: 'the stream to open' });
        reader.socket.pause(); // from now on nothing is read: the kernel's buffers fill, then the service's
        assert.equal(await openStreamCount(app), 1);

        // Big events fill the buffers quickly.
        let leases = 0;
        await waitFor(
          async () => {
            for (let i = 0; i < 10; i++) {
              const lease = await acquire(app, 'filler', bigPaths(root, leases++));
              assert.equal((await app.post(`/v1/leases/${lease.id}/release`, {})).statusCode, 200);
            }
            return (await openStreamCount(app)) === 0;
          },
          { timeoutMs: 60000, intervalMs: 0, what: 'the non-reading client to be dropped' },
        );

        // Its slot is free again: the same address may open a stream.
        const next = await openStream(app);
        try {
          assert.equal(next.status, 200);
        } finally {
          next.close();
        }
      } finally {
        reader.socket.destroy();
      }
    });
  });

  test('a client that reads gets a catch-up far larger than EVENT_STREAM_BUFFER_BYTES whole: the service waits for it', async () => {
    await withApp({ EVENT_STREAM_BUFFER_BYTES: '16384' }, async (app) => {
      const root = `big/${unique('b')}`;
      const streamKey = `${keyPrefix(app.config)}ev`;
      const resumeFrom = (await app.redis.xrevrange(streamKey, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
      const pairs = 40; // 80 events of about 25 KB: some 2 MB to catch up on
      for (let p = 0; p < pairs; p++) {
        const lease = await acquire(app, 'filler', bigPaths(root, p));
        assert.equal((await app.post(`/v1/leases/${lease.id}/release`, {})).statusCode, 200);
      }
      const stream = await openStream(app, { headers: { 'last-event-id': resumeFrom } });
      try {
        assert.equal(stream.status, 200);
        const count = () => stream.body().split('\nevent: ').length - 1;
        await waitFor(() => count() >= 2 * pairs, { timeoutMs: 20000, what: `all ${2 * pairs} events` });
        assert.equal(await openStreamCount(app), 1, 'still open');
      } finally {
        stream.close();
      }
    });
  });
});

describe('Last-Event-ID range', () => {
  test('0-0 on an empty stream is fine; an id after the newest event is 400; one before the oldest kept after a trim is 400 and says so', async () => {
    await withApp({}, async (app) => {
      const streamKey = `${keyPrefix(app.config)}ev`;
      const expectInvalid = async (lastEventId: string, detail: RegExp) => {
        const answer = await openStream(app, { headers: { 'last-event-id': lastEventId } });
        assert.equal(answer.status, 400, lastEventId);
        assert.match(String(answer.headers['content-type']), /^application\/problem\+json/);
        const problem = await problemOf(answer);
        assert.equal(problem.code, 'invalid_request');
        assert.match(problem.detail, detail);
      };
      const expectOpen = async (lastEventId: string) => {
        const answer = await openStream(app, { headers: { 'last-event-id': lastEventId } });
        answer.close();
        assert.equal(answer.status, 200, lastEventId);
      };

      await expectOpen('0-0');
      await expectInvalid('5-0', /after the newest event/);

      const path = `instances/${unique('i')}`;
      const lease = await acquire(app, 'h', [path]);
      assert.equal((await app.post(`/v1/leases/${lease.id}/release`, {})).statusCode, 200);
      await acquire(app, 'h', [path]);
      const ids = (await app.redis.xrange(streamKey, '-', '+')).map(([id]) => id);
      assert.equal(ids.length, 3);
      const [first, , newest] = ids as [string, string, string];
      const [ms] = newest.split('-');
      await expectInvalid(`${BigInt(ms!) + 60000n}-0`, /after the newest event/);
      await expectOpen(newest);
      await expectOpen('0-0');

      // What STREAM_MAX_ENTRIES does over time, at once: keep only the newest entry.
      await app.redis.xtrim(streamKey, 'MAXLEN', 1);
      await expectInvalid(first, /trimmed/);
      await expectInvalid('0-0', /reconnect without Last-Event-ID/);
      await expectOpen(newest);
    });
  });
});
