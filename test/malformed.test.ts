// Malformed and hostile requests, on every route: each answers a 4xx problem+json with the
// stable code the contract names, never a 5xx, and none of them changes anything in Redis.
// The cases are data: one table, one test per row, then one test that Redis is untouched.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import { PROBLEM_TYPE_BASE, PROBLEMS, type ProblemCode } from '../src/errors.js';
import { acquireBody, startTestApp, type TestApp } from './helpers/app.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';

let redis: TestRedis;
let t: TestApp;

/** The leases every case may aim at, seeded before the snapshot. */
interface Seed {
  /** An active lease with an action. */
  lease: string;
  /** An active lease without an action (progress is refused on it). */
  plain: string;
}
let seed: Seed;
let snapshot: Record<string, unknown>;

const SEED_HOLDER = 'seed-holder';
const SEED_PATH = 'instances/i-seeded';
const PLAIN_PATH = 'instances/i-plain';
/** Free path a wrongly accepted acquire would be granted on, so a mistake shows in Redis. */
const TARGET = 'malformed/target';
/** Well-formed (same shape as the service's ids) but never issued. */
const UNKNOWN_ID = randomBytes(16).toString('base64url');

before(async () => {
  redis = await startTestRedis();
  t = await startTestApp(redis.url);
  const withAction = await t.post(
    '/v1/leases',
    acquireBody(SEED_HOLDER, [SEED_PATH], { ttlMs: 300000, action: { kind: 'resize', payload: { flavor: 'm1.large' } } }),
  );
  assert.equal(withAction.statusCode, 201, withAction.body);
  const plain = await t.post('/v1/leases', acquireBody(SEED_HOLDER, [PLAIN_PATH], { ttlMs: 300000 }));
  assert.equal(plain.statusCode, 201, plain.body);
  seed = { lease: withAction.json().id, plain: plain.json().id };
  snapshot = await t.snapshotKeys();
});
after(async () => {
  await t?.close();
  await redis?.stop();
});

// ---------------------------------------------------------------------------------------
// How a case sends its request.

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * url may hold {lease} and {plain}, replaced by the seeded ids at run time.
 * - json: sent as an application/json body (JSON.stringify of the value).
 * - raw: sent byte for byte, with contentType if given (none at all when absent).
 * - socket: sent over a real socket with the path exactly as written (inject parses the
 *   URL with WHATWG rules, which resolve "." and ".." segments before the service sees them).
 */
interface Req {
  method: Method;
  url: string;
  json?: unknown;
  raw?: string;
  contentType?: string;
  /** More request headers. */
  headers?: Record<string, string>;
  socket?: boolean;
}

interface Answer {
  statusCode: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
}

interface Case {
  name: string;
  request: Req;
  status: number;
  code: ProblemCode;
  /** A known defect: the case runs and reports, but does not fail the file. */
  todo?: string;
}

function resolveUrl(url: string): string {
  return url.replaceAll('{lease}', seed.lease).replaceAll('{plain}', seed.plain);
}

async function send(req: Req): Promise<Answer> {
  const url = resolveUrl(req.url);
  if (req.socket) return sendOverSocket(req.method, url);
  const options: InjectOptions = { method: req.method, url };
  if (req.json !== undefined) {
    options.payload = JSON.stringify(req.json);
    options.headers = { 'content-type': 'application/json' };
  } else if (req.raw !== undefined) {
    options.payload = req.raw;
    if (req.contentType !== undefined) options.headers = { 'content-type': req.contentType };
  }
  if (req.headers) options.headers = { ...(options.headers as Record<string, string> | undefined), ...req.headers };
  const res = await t.app.inject(options);
  return { statusCode: res.statusCode, headers: res.headers, body: res.body };
}

function sendOverSocket(method: Method, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(t.baseUrl, { method, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------
// Building blocks of the table.

const post = (url: string, json: unknown): Req => ({ method: 'POST', url, json });
const postRaw = (url: string, raw: string, contentType?: string): Req =>
  contentType === undefined ? { method: 'POST', url, raw } : { method: 'POST', url, raw, contentType };
const get = (url: string): Req => ({ method: 'GET', url });
const del = (url: string): Req => ({ method: 'DELETE', url });
const overSocket = (method: Method, url: string): Req => ({ method, url, socket: true });

/** A valid acquire on a free path with one part replaced: only that part is wrong. */
const acquire = (override: Record<string, unknown>) => ({ holder: 'mallory', resources: [{ path: TARGET }], ttlMs: 60000, ...override });
const acquireWithout = (field: string) => {
  const body: Record<string, unknown> = acquire({});
  delete body[field];
  return body;
};
const acquireAction = (action: unknown) => acquire({ action });

const segments = (count: number) => Array.from({ length: count }, (_, i) => `s${i}`).join('/');
/** 513 characters made only of valid segments: too long in all, not per segment. */
const PATH_513 = [...Array.from({ length: 5 }, (_, i) => `${i}`.repeat(100)), 'abcdefgh'].join('/');
assert.equal(PATH_513.length, 513);
assert.equal(segments(17).split('/').length, 17);

/** Strings the contract's resource path rules refuse (each on its own). */
const BAD_PATHS: { what: string; path: string }[] = [
  { what: 'a leading slash', path: '/instances/i-1' },
  { what: 'a trailing slash', path: 'instances/i-1/' },
  { what: 'an empty segment (a//b)', path: 'a//b' },
  { what: 'a "." segment', path: 'instances/./i-1' },
  { what: 'a ".." segment', path: 'instances/../i-1' },
  { what: 'a path that is only ".."', path: '..' },
  { what: '17 segments', path: segments(17) },
  { what: 'a 129-character segment', path: `instances/${'a'.repeat(129)}` },
  { what: 'a 513-character path', path: PATH_513 },
  { what: 'a space', path: 'instances/i 42' },
  { what: 'unicode (é)', path: 'instances/i-é' },
  { what: 'a segment starting with "-"', path: 'instances/-i-1' },
  { what: 'a segment starting with "_"', path: '_instances/i-1' },
  { what: 'the empty string', path: '' },
  { what: 'a trailing newline', path: 'instances/i-1\n' },
  { what: 'a NUL character', path: 'instances/i\u00001' },
  { what: 'a backslash', path: 'instances\\i-1' },
];

/** Non-string values where a JSON body wants a resource path. */
const NON_STRING_PATHS: { what: string; path: unknown }[] = [
  { what: 'a number', path: 42 },
  { what: 'null', path: null },
  { what: 'an object', path: { path: TARGET } },
];

const group = (route: string, cases: Case[]): Case[] => cases.map((c) => ({ ...c, name: `${route}: ${c.name}` }));
const invalidRequest = (name: string, request: Req): Case => ({ name, request, status: 400, code: 'invalid_request' });
const invalidResource = (name: string, request: Req): Case => ({ name, request, status: 400, code: 'invalid_resource' });

const BIG = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// The table.

const CASES: Case[] = [
  ...group('POST /v1/leases', [
    ...BAD_PATHS.map(({ what, path }) => invalidResource(`a resource path with ${what}`, post('/v1/leases', acquire({ resources: [{ path }] })))),
    ...NON_STRING_PATHS.map(({ what, path }) => invalidResource(`a resource path that is ${what}`, post('/v1/leases', acquire({ resources: [{ path }] })))),
    invalidResource('a bad path as the last of 64 otherwise valid resources', post('/v1/leases', acquire({
      resources: [...Array.from({ length: 63 }, (_, i) => ({ path: `malformed/r-${i}` })), { path: 'a//b' }],
    }))),
    invalidRequest('a resource without a path', post('/v1/leases', acquire({ resources: [{ mode: 'shared' }] }))),
    invalidRequest('an empty resources array', post('/v1/leases', acquire({ resources: [] }))),
    invalidRequest('65 resources', post('/v1/leases', acquire({ resources: Array.from({ length: 65 }, (_, i) => ({ path: `malformed/r-${i}` })) }))),
    invalidRequest('resources that is an object, not an array', post('/v1/leases', acquire({ resources: { path: TARGET } }))),
    invalidRequest('resources that is a list of strings', post('/v1/leases', acquire({ resources: [TARGET] }))),
    invalidRequest('missing resources', post('/v1/leases', acquireWithout('resources'))),
    invalidRequest('an unknown field in a resource', post('/v1/leases', acquire({ resources: [{ path: TARGET, ttl: 5 }] }))),
    invalidRequest('mode "read"', post('/v1/leases', acquire({ resources: [{ path: TARGET, mode: 'read' }] }))),
    invalidRequest('mode "Exclusive" (modes are case-sensitive)', post('/v1/leases', acquire({ resources: [{ path: TARGET, mode: 'Exclusive' }] }))),
    { name: 'overlapping resources (a path and one below it)', request: post('/v1/leases', acquire({ resources: [{ path: TARGET }, { path: `${TARGET}/volumes/v-1` }] })), status: 400, code: 'overlapping_resources' },
    { name: 'the same path twice', request: post('/v1/leases', acquire({ resources: [{ path: TARGET }, { path: TARGET }] })), status: 400, code: 'overlapping_resources' },
    { name: 'the same path twice in two modes', request: post('/v1/leases', acquire({ resources: [{ path: TARGET, mode: 'shared' }, { path: TARGET, mode: 'exclusive' }] })), status: 400, code: 'overlapping_resources' },
    invalidRequest('a missing holder', post('/v1/leases', acquireWithout('holder'))),
    invalidRequest('an empty holder', post('/v1/leases', acquire({ holder: '' }))),
    invalidRequest('a 129-character holder', post('/v1/leases', acquire({ holder: 'h'.repeat(129) }))),
    invalidRequest('a holder with a control character (\\u0007)', post('/v1/leases', acquire({ holder: 'conductor\u0007' }))),
    invalidRequest('a holder with a zero-width space (format character)', post('/v1/leases', acquire({ holder: 'conductor\u200bz' }))),
    invalidRequest('a holder with a lone surrogate', post('/v1/leases', acquire({ holder: 'conductor-\ud800' }))),
    invalidRequest('holder as the number 42 (no coercion)', post('/v1/leases', acquire({ holder: 42 }))),
    invalidRequest('holder given twice, the last one a number', postRaw('/v1/leases', `{"holder":"mallory","holder":42,"resources":[{"path":"${TARGET}"}]}`, 'application/json')),
    invalidRequest('ttlMs below 1000', post('/v1/leases', acquire({ ttlMs: 999 }))),
    invalidRequest('ttlMs 0', post('/v1/leases', acquire({ ttlMs: 0 }))),
    invalidRequest('ttlMs above 300000', post('/v1/leases', acquire({ ttlMs: 300001 }))),
    invalidRequest('ttlMs as the string "15000"', post('/v1/leases', acquire({ ttlMs: '15000' }))),
    invalidRequest('ttlMs 1.5', post('/v1/leases', acquire({ ttlMs: 1.5 }))),
    invalidRequest('ttlMs null', post('/v1/leases', acquire({ ttlMs: null }))),
    invalidRequest('ttlMs 1e400 (Infinity once parsed)', postRaw('/v1/leases', `{"holder":"mallory","resources":[{"path":"${TARGET}"}],"ttlMs":1e400}`, 'application/json')),
    // JSON.stringify would store it as null: refused rather than changed.
    invalidRequest('a payload holding 1e309', postRaw('/v1/leases', `{"holder":"mallory","resources":[{"path":"${TARGET}"}],"action":{"kind":"k","payload":{"big":1e309}}}`, 'application/json')),
    invalidRequest('progress holding -1e309 on a real lease', postRaw('/v1/leases/{lease}/renew', '{"progress":{"step":[1,-1e309]}}', 'application/json')),
    invalidRequest('a negative waitMs', post('/v1/leases', acquire({ waitMs: -1 }))),
    invalidRequest('waitMs above 60000', post('/v1/leases', acquire({ waitMs: 60001 }))),
    invalidRequest('maxHoldMs below 1000', post('/v1/leases', acquire({ maxHoldMs: 999 }))),
    invalidRequest('maxHoldMs above 604800000', post('/v1/leases', acquire({ maxHoldMs: 604800001 }))),
    invalidRequest('lockDelayMs above 60000', post('/v1/leases', acquire({ lockDelayMs: 60001 }))),
    invalidRequest('a negative lockDelayMs', post('/v1/leases', acquire({ lockDelayMs: -1 }))),
    invalidRequest('an empty requestId', post('/v1/leases', acquire({ requestId: '' }))),
    invalidRequest('a 129-character requestId', post('/v1/leases', acquire({ requestId: 'r'.repeat(129) }))),
    invalidRequest('an unknown top-level field "ttl"', post('/v1/leases', acquire({ ttl: 15000 }))),
    invalidRequest('an action without kind', post('/v1/leases', acquireAction({ payload: { flavor: 'm1.large' } }))),
    invalidRequest('an action with an empty kind', post('/v1/leases', acquireAction({ kind: '' }))),
    invalidRequest('an action with a 129-character kind', post('/v1/leases', acquireAction({ kind: 'k'.repeat(129) }))),
    invalidRequest('action.maxAttempts 0', post('/v1/leases', acquireAction({ kind: 'resize', maxAttempts: 0 }))),
    invalidRequest('action.maxAttempts 101', post('/v1/leases', acquireAction({ kind: 'resize', maxAttempts: 101 }))),
    invalidRequest('action.maxAttempts 2.5', post('/v1/leases', acquireAction({ kind: 'resize', maxAttempts: 2.5 }))),
    invalidRequest('an unknown field in the action', post('/v1/leases', acquireAction({ kind: 'resize', attempt: 7 }))),
    invalidRequest('an action that is a string', post('/v1/leases', acquireAction('resize'))),
    invalidRequest('an action that is null', post('/v1/leases', acquireAction(null))),
    { name: 'action.payload over 64 KiB of JSON', request: post('/v1/leases', acquireAction({ kind: 'resize', payload: { blob: 'x'.repeat(64 * 1024) } })), status: 413, code: 'payload_too_large' },
    invalidRequest('an empty object', post('/v1/leases', {})),
    invalidRequest('no body at all', { method: 'POST', url: '/v1/leases' }),
    invalidRequest('a body that is not JSON ("{")', postRaw('/v1/leases', '{', 'application/json')),
    invalidRequest('JSON followed by garbage', postRaw('/v1/leases', `${JSON.stringify(acquire({}))} trailing`, 'application/json')),
    invalidRequest('a JSON array body', post('/v1/leases', [acquire({})])),
    invalidRequest('a JSON string body', postRaw('/v1/leases', '"mallory"', 'application/json')),
    invalidRequest('a JSON null body', postRaw('/v1/leases', 'null', 'application/json')),
    invalidRequest('a "__proto__" key (prototype pollution)', postRaw('/v1/leases', `{"__proto__":{"polluted":true},"holder":"mallory","resources":[{"path":"${TARGET}"}]}`, 'application/json')),
    invalidRequest('a "constructor.prototype" key (prototype pollution)', postRaw('/v1/leases', `{"constructor":{"prototype":{"polluted":true}},"holder":"mallory","resources":[{"path":"${TARGET}"}]}`, 'application/json')),
    { name: 'a body sent as text/plain', request: postRaw('/v1/leases', JSON.stringify(acquire({})), 'text/plain'), status: 415, code: 'unsupported_media_type' },
    { name: 'a body sent as application/x-www-form-urlencoded', request: postRaw('/v1/leases', `holder=mallory&resources=${TARGET}`, 'application/x-www-form-urlencoded'), status: 415, code: 'unsupported_media_type' },
    { name: 'a body without a content-type', request: postRaw('/v1/leases', JSON.stringify(acquire({}))), status: 415, code: 'unsupported_media_type' },
    // Bodies are not decompressed: a gzip body is refused as such, not as text that is not UTF-8.
    {
      name: 'a JSON body sent with Content-Encoding: gzip',
      request: { ...postRaw('/v1/leases', JSON.stringify(acquire({})), 'application/json'), headers: { 'content-encoding': 'gzip' } },
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      name: 'a JSON body sent with an unknown Content-Encoding',
      request: { ...postRaw('/v1/leases', JSON.stringify(acquire({})), 'application/json'), headers: { 'content-encoding': 'x-bogus' } },
      status: 415,
      code: 'unsupported_media_type',
    },
    { name: 'a body over 1 MiB', request: post('/v1/leases', acquire({ action: { kind: 'resize', payload: 'x'.repeat(BIG) } })), status: 413, code: 'payload_too_large' },
  ]),

  ...group('POST /v1/leases/:id/renew', [
    invalidRequest('ttlMs 0 on a real lease', post('/v1/leases/{lease}/renew', { ttlMs: 0 })),
    invalidRequest('ttlMs below 1000 on a real lease', post('/v1/leases/{lease}/renew', { ttlMs: 999 })),
    invalidRequest('ttlMs above 300000 on a real lease', post('/v1/leases/{lease}/renew', { ttlMs: 300001 })),
    invalidRequest('ttlMs as the string "15000" on a real lease', post('/v1/leases/{lease}/renew', { ttlMs: '15000' })),
    invalidRequest('ttlMs 1.5 on a real lease', post('/v1/leases/{lease}/renew', { ttlMs: 1.5 })),
    invalidRequest('ttlMs null on a real lease', post('/v1/leases/{lease}/renew', { ttlMs: null })),
    invalidRequest('an unknown field on a real lease', post('/v1/leases/{lease}/renew', { ttl: 15000 })),
    { name: 'progress over 16 KiB of JSON on a real lease', request: post('/v1/leases/{lease}/renew', { progress: { blob: 'x'.repeat(16 * 1024) } }), status: 413, code: 'payload_too_large' },
    invalidRequest('progress on a lease without an action', post('/v1/leases/{plain}/renew', { progress: { step: 'disk-copied' } })),
    invalidRequest('a body that is not JSON on a real lease', postRaw('/v1/leases/{lease}/renew', '{', 'application/json')),
    invalidRequest('a JSON array body on a real lease', post('/v1/leases/{lease}/renew', [])),
    invalidRequest('a JSON string body on a real lease', postRaw('/v1/leases/{lease}/renew', '"renew"', 'application/json')),
    { name: 'a text/plain body on a real lease', request: postRaw('/v1/leases/{lease}/renew', '{}', 'text/plain'), status: 415, code: 'unsupported_media_type' },
    { name: 'a body over 1 MiB on a real lease', request: post('/v1/leases/{lease}/renew', { progress: 'x'.repeat(BIG) }), status: 413, code: 'payload_too_large' },
    { name: 'an unknown, well-formed id', request: post(`/v1/leases/${UNKNOWN_ID}/renew`, {}), status: 404, code: 'lease_not_found' },
    { name: 'an unknown, well-formed id without a body', request: { method: 'POST', url: `/v1/leases/${UNKNOWN_ID}/renew` }, status: 404, code: 'lease_not_found' },
    invalidRequest('an id with a space (a%20b)', post('/v1/leases/a%20b/renew', {})),
    invalidRequest('an id with an encoded slash (a%2Fb)', post('/v1/leases/a%2Fb/renew', {})),
    invalidRequest('a 65-character id', post(`/v1/leases/${'a'.repeat(65)}/renew`, {})),
  ]),

  ...group('POST /v1/leases/:id/release', [
    invalidRequest('outcome "done" on a real lease', post('/v1/leases/{lease}/release', { outcome: 'done' })),
    invalidRequest('outcome "COMPLETED" on a real lease (outcomes are case-sensitive)', post('/v1/leases/{lease}/release', { outcome: 'COMPLETED' })),
    invalidRequest('outcome null on a real lease', post('/v1/leases/{lease}/release', { outcome: null })),
    invalidRequest('outcome 1 on a real lease', post('/v1/leases/{lease}/release', { outcome: 1 })),
    invalidRequest('an unknown field on a real lease', post('/v1/leases/{lease}/release', { outcome: 'completed', reason: 'done' })),
    invalidRequest('a body that is not JSON on a real lease', postRaw('/v1/leases/{lease}/release', '{"outcome":', 'application/json')),
    invalidRequest('a JSON array body on a real lease', post('/v1/leases/{lease}/release', ['completed'])),
    { name: 'a text/plain body on a real lease', request: postRaw('/v1/leases/{lease}/release', 'completed', 'text/plain'), status: 415, code: 'unsupported_media_type' },
    { name: 'an unknown, well-formed id', request: post(`/v1/leases/${UNKNOWN_ID}/release`, {}), status: 404, code: 'lease_not_found' },
    invalidRequest('an id with bad characters (a.b)', post('/v1/leases/a.b/release', {})),
  ]),

  ...group('GET /v1/leases/:id', [
    { name: 'an unknown, well-formed id', request: get(`/v1/leases/${UNKNOWN_ID}`), status: 404, code: 'lease_not_found' },
    invalidRequest('an id with a space (a%20b)', get('/v1/leases/a%20b')),
    invalidRequest('an id with a NUL (a%00b)', get('/v1/leases/a%00b')),
    invalidRequest('an id with unicode', get('/v1/leases/l%C3%A9ase')),
    invalidRequest('an id with an encoded slash (a%2Fb)', get('/v1/leases/a%2Fb')),
    invalidRequest('a 65-character id', get(`/v1/leases/${'a'.repeat(65)}`)),
    { name: 'an id with a bad percent-encoding', request: get('/v1/leases/%E0%A4%A'), status: 400, code: 'invalid_request' },
    { name: 'an id over 1024 characters', request: get(`/v1/leases/${'a'.repeat(1100)}`), status: 400, code: 'invalid_request' },
  ]),

  ...group('DELETE /v1/leases/:id', [
    { name: 'an unknown, well-formed id', request: del(`/v1/leases/${UNKNOWN_ID}`), status: 404, code: 'lease_not_found' },
    invalidRequest('an id with a space (a%20b)', del('/v1/leases/a%20b')),
    invalidRequest('an id with bad characters (a.b)', del('/v1/leases/a.b')),
    invalidRequest('a 65-character id', del(`/v1/leases/${'a'.repeat(65)}`)),
  ]),

  ...group('GET /v1/leases', [
    invalidRequest('limit 0', get('/v1/leases?limit=0')),
    invalidRequest('limit 1001', get('/v1/leases?limit=1001')),
    invalidRequest('limit "abc"', get('/v1/leases?limit=abc')),
    invalidRequest('limit 1.5', get('/v1/leases?limit=1.5')),
    invalidRequest('a negative limit', get('/v1/leases?limit=-5')),
    invalidRequest('limit given twice', get('/v1/leases?limit=1&limit=2')),
    // Ajv's coercion makes these Infinity, which type integer, minimum and maximum let through.
    invalidRequest('limit Infinity', get('/v1/leases?limit=Infinity')),
    invalidRequest('limit 1e309 (Infinity once coerced)', get('/v1/leases?limit=1e309')),
    invalidRequest('limit -Infinity', get('/v1/leases?limit=-Infinity')),
    invalidRequest('orphans limit 1e309', get('/v1/orphans?limit=1e309')),
    invalidRequest('orphans limit -1e309', get('/v1/orphans?limit=-1e309')),
    // ...and these 16, 1, 1 and 100: a number in a query string is written in decimal digits.
    invalidRequest('limit 0x10', get('/v1/leases?limit=0x10')),
    invalidRequest('limit " 1" (a leading space)', get('/v1/leases?limit=%201')),
    invalidRequest('limit +1', get('/v1/leases?limit=%2B1')),
    invalidRequest('limit 1e2', get('/v1/orphans?limit=1e2')),
    invalidRequest('state "expired"', get('/v1/leases?state=expired')),
    invalidRequest('state "ACTIVE" (states are case-sensitive)', get('/v1/leases?state=ACTIVE')),
    invalidRequest('an empty holder', get('/v1/leases?holder=')),
    invalidRequest('a 129-character holder', get(`/v1/leases?holder=${'h'.repeat(129)}`)),
    invalidRequest('a holder with a control character', get('/v1/leases?holder=conductor%07')),
    invalidRequest('an unknown query parameter', get('/v1/leases?foo=1')),
    ...BAD_PATHS.map(({ what, path }) => invalidResource(`a prefix with ${what}`, get(`/v1/leases?prefix=${encodeURIComponent(path)}`))),
    { name: 'an empty cursor', request: get('/v1/leases?cursor='), status: 400, code: 'invalid_cursor' },
    { name: 'a garbage cursor', request: get('/v1/leases?cursor=!!!not-a-cursor!!!'), status: 400, code: 'invalid_cursor' },
    { name: 'a cursor base64url("v1:abc")', request: get(`/v1/leases?cursor=${Buffer.from('v1:abc').toString('base64url')}`), status: 400, code: 'invalid_cursor' },
    { name: 'a cursor base64url("v2:123") (another version)', request: get(`/v1/leases?cursor=${Buffer.from('v2:123').toString('base64url')}`), status: 400, code: 'invalid_cursor' },
    { name: 'a cursor base64url("v1:-1")', request: get(`/v1/leases?cursor=${Buffer.from('v1:-1').toString('base64url')}`), status: 400, code: 'invalid_cursor' },
    { name: 'a cursor with a 20-digit token', request: get(`/v1/leases?cursor=${Buffer.from(`v1:${'9'.repeat(20)}`).toString('base64url')}`), status: 400, code: 'invalid_cursor' },
    { name: 'a valid cursor with base64 padding appended', request: get(`/v1/leases?cursor=${Buffer.from('v1:123').toString('base64url')}%3D%3D`), status: 400, code: 'invalid_cursor' },
  ]),

  ...group('POST /v1/holders/:holder/renew', [
    invalidRequest('ttlMs 0', post(`/v1/holders/${SEED_HOLDER}/renew`, { ttlMs: 0 })),
    invalidRequest('ttlMs above 300000', post(`/v1/holders/${SEED_HOLDER}/renew`, { ttlMs: 300001 })),
    invalidRequest('ttlMs as the string "15000"', post(`/v1/holders/${SEED_HOLDER}/renew`, { ttlMs: '15000' })),
    invalidRequest('ttlMs 1.5', post(`/v1/holders/${SEED_HOLDER}/renew`, { ttlMs: 1.5 })),
    invalidRequest('a progress field (not accepted here)', post(`/v1/holders/${SEED_HOLDER}/renew`, { progress: { step: 1 } })),
    invalidRequest('a body that is not JSON', postRaw(`/v1/holders/${SEED_HOLDER}/renew`, '{', 'application/json')),
    invalidRequest('a JSON array body', post(`/v1/holders/${SEED_HOLDER}/renew`, [])),
    { name: 'a text/plain body', request: postRaw(`/v1/holders/${SEED_HOLDER}/renew`, '{}', 'text/plain'), status: 415, code: 'unsupported_media_type' },
    invalidRequest('a holder with a control character', post('/v1/holders/seed%07/renew', {})),
    invalidRequest('a holder with a zero-width space', post('/v1/holders/seed%E2%80%8Bholder/renew', {})),
    invalidRequest('a 129-character holder', post(`/v1/holders/${'h'.repeat(129)}/renew`, {})),
    { name: 'a holder with a bad percent-encoding', request: post('/v1/holders/%/renew', {}), status: 400, code: 'invalid_request' },
    { name: 'a holder over 1024 characters', request: post(`/v1/holders/${'h'.repeat(1100)}/renew`, {}), status: 400, code: 'invalid_request' },
  ]),

  ...group('GET /v1/resources/*', [
    invalidResource('the empty path', get('/v1/resources/')),
    invalidResource('an empty segment, as written (a//b)', get('/v1/resources/a//b')),
    invalidResource('a trailing slash, as written', get('/v1/resources/instances/i-1/')),
    invalidResource('a segment starting with "-", as written', get('/v1/resources/instances/-i-1')),
    invalidResource('17 segments, as written', get(`/v1/resources/${segments(17)}`)),
    invalidResource('a 129-character segment, as written', get(`/v1/resources/instances/${'a'.repeat(129)}`)),
    invalidResource('a 513-character path, as written', get(`/v1/resources/${PATH_513}`)),
    invalidResource('a 1100-character path, as written', get(`/v1/resources/${'a'.repeat(1100)}`)),
    invalidResource('a "." segment over the wire', overSocket('GET', '/v1/resources/instances/./i-1')),
    invalidResource('a ".." segment over the wire', overSocket('GET', '/v1/resources/instances/../i-1')),
    invalidResource('a leading "." segment over the wire', overSocket('GET', '/v1/resources/./instances')),
    invalidResource('an encoded "." segment over the wire (%2e)', overSocket('GET', '/v1/resources/instances/%2e/i-1')),
    // Over the socket: inject would resolve a bare ".." before the service saw it.
    ...BAD_PATHS.filter(({ path }) => path !== '').map(({ what, path }) =>
      invalidResource(`a URL-encoded path with ${what}`, overSocket('GET', `/v1/resources/${encodeURIComponent(path)}`)),
    ),
    { name: 'a bad percent-encoding', request: get('/v1/resources/instances/i-%ZZ'), status: 400, code: 'invalid_request' },
  ]),

  ...group('POST /v1/fencing/check', [
    invalidRequest('a missing fencingToken', post('/v1/fencing/check', { path: SEED_PATH })),
    invalidRequest('a negative fencingToken', post('/v1/fencing/check', { path: SEED_PATH, fencingToken: -1 })),
    invalidRequest('a non-integer fencingToken', post('/v1/fencing/check', { path: SEED_PATH, fencingToken: 1.5 })),
    invalidRequest('fencingToken as a string', post('/v1/fencing/check', { path: SEED_PATH, fencingToken: '5' })),
    invalidRequest('fencingToken null', post('/v1/fencing/check', { path: SEED_PATH, fencingToken: null })),
    invalidRequest('fencingToken 1e400 (Infinity once parsed)', postRaw('/v1/fencing/check', `{"path":"${SEED_PATH}","fencingToken":1e400}`, 'application/json')),
    invalidRequest('a missing path', post('/v1/fencing/check', { fencingToken: 1 })),
    ...BAD_PATHS.map(({ what, path }) => invalidResource(`a path with ${what}`, post('/v1/fencing/check', { path, fencingToken: 1 }))),
    ...NON_STRING_PATHS.map(({ what, path }) => invalidResource(`a path that is ${what}`, post('/v1/fencing/check', { path, fencingToken: 1 }))),
    invalidRequest('an unknown field', post('/v1/fencing/check', { path: SEED_PATH, fencingToken: 1, leaseId: 'x' })),
    invalidRequest('a body that is not JSON', postRaw('/v1/fencing/check', '{"path"', 'application/json')),
    invalidRequest('a JSON array body', post('/v1/fencing/check', [{ path: SEED_PATH, fencingToken: 1 }])),
    { name: 'a text/plain body', request: postRaw('/v1/fencing/check', JSON.stringify({ path: SEED_PATH, fencingToken: 1 }), 'text/plain'), status: 415, code: 'unsupported_media_type' },
  ]),

  ...group('unknown routes', [
    { name: 'GET /v1/nope', request: get('/v1/nope'), status: 404, code: 'not_found' },
    { name: 'GET /v1', request: get('/v1'), status: 404, code: 'not_found' },
    { name: 'GET /v2/leases', request: get('/v2/leases'), status: 404, code: 'not_found' },
    { name: 'PUT /v1/leases', request: { method: 'PUT', url: '/v1/leases', json: acquire({}) }, status: 404, code: 'not_found' },
    { name: 'PATCH /v1/leases/:id on a real lease', request: { method: 'PATCH', url: '/v1/leases/{lease}', json: { ttlMs: 1000 } }, status: 404, code: 'not_found' },
    { name: 'DELETE /v1/leases (no id)', request: del('/v1/leases'), status: 404, code: 'not_found' },
    { name: 'GET /v1/leases/:id/renew (renew is a POST)', request: get('/v1/leases/{lease}/renew'), status: 404, code: 'not_found' },
    { name: 'POST /v1/leases/:id/renew/extra', request: post('/v1/leases/{lease}/renew/extra', {}), status: 404, code: 'not_found' },
    { name: 'GET /v1/leases/:id/ with a trailing slash', request: get('/v1/leases/{lease}/'), status: 404, code: 'not_found' },
    { name: 'POST /v1/resources/:path', request: post(`/v1/resources/${SEED_PATH}`, {}), status: 404, code: 'not_found' },
    { name: 'GET /v1/fencing/check (check is a POST)', request: get('/v1/fencing/check'), status: 404, code: 'not_found' },
    { name: '"/.." climbing over the wire does not reach /healthz', request: overSocket('GET', '/v1/nope/../healthz'), status: 404, code: 'not_found' },
  ]),
];

// ---------------------------------------------------------------------------------------

describe('malformed and hostile requests answer 4xx problem+json and change nothing', () => {
  test('the table is consistent: unique names, each status is the one its code stands for', () => {
    assert.ok(CASES.length >= 45, `only ${CASES.length} cases`);
    assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length, 'duplicate case names');
    for (const c of CASES) assert.equal(PROBLEMS[c.code].status, c.status, c.name);
  });

  for (const c of CASES) {
    test(`${c.name} → ${c.status} ${c.code}`, c.todo === undefined ? {} : { todo: c.todo }, async () => {
      const res = await send(c.request);
      const context = `${c.request.method} ${c.request.url.slice(0, 120)} answered ${res.statusCode} ${String(res.headers['content-type'])} ${res.body.slice(0, 300)}`;
      assert.ok(res.statusCode >= 400 && res.statusCode < 500, `not a 4xx: ${context}`);
      assert.equal(res.statusCode, c.status, context);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json(;|$)/, context);
      const body = JSON.parse(res.body) as Record<string, unknown>;
      assert.equal(body.status, res.statusCode, context);
      assert.equal(body.code, c.code, context);
      assert.equal(body.type, PROBLEM_TYPE_BASE + c.code, context);
      assert.equal(body.title, PROBLEMS[c.code].title, context);
      assert.equal(typeof body.detail, 'string', context);
      assert.ok((body.detail as string).length > 0, context);
    });
  }

  test('after all of them, Redis holds exactly what it held before and the service still answers', async () => {
    assert.ok(Object.keys(snapshot).some((key) => key.endsWith(`:l:${seed.lease}`)), 'the snapshot holds the seeded lease');
    assert.deepEqual(await t.snapshotKeys(), snapshot);

    const lease = await t.get(`/v1/leases/${seed.lease}`);
    assert.equal(lease.statusCode, 200);
    assert.equal(lease.json().state, 'active');
    assert.equal(lease.json().action.progress, null);

    const health = await t.get('/healthz');
    assert.equal(health.statusCode, 200);
    assert.equal((await t.get('/readyz')).statusCode, 200);
  });
});

// Valid-looking JSON well under every size limit whose nesting would overflow the stack of a
// recursive walker (JSON.stringify's included): refused as too deeply nested, not a 500.
describe('requests Node would answer by itself are answered problem+json too', () => {
  /** Sends `raw` on a socket of its own and reads the whole answer (the server closes it). */
  const rawExchange = (raw: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(t.baseUrl).port), '127.0.0.1');
      let answer = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (answer += chunk));
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
      socket.setTimeout(5000, () => reject(new Error(`no answer to ${raw.split('\r\n')[0]}`)));
      socket.write(raw);
    });
  const problemOf = (answer: string) => {
    const [head, body] = answer.split('\r\n\r\n');
    assert.match(head ?? '', /^content-type: application\/problem\+json/im, answer);
    return { statusLine: head!.split('\r\n')[0]!, problem: JSON.parse(body ?? '') as { code: string; status: number } };
  };

  test('an Expect other than 100-continue is 400 invalid_request, not a bare 417', async () => {
    const { statusLine, problem } = problemOf(await rawExchange('GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nConnection: close\r\n\r\n'));
    assert.match(statusLine, /^HTTP\/1\.1 400 /);
    assert.deepEqual([problem.code, problem.status], ['invalid_request', 400]);
  });

  test('CONNECT is 404 not_found, not a connection closed without a word', async () => {
    const { statusLine, problem } = problemOf(await rawExchange('CONNECT 127.0.0.1:6379 HTTP/1.1\r\nHost: 127.0.0.1:6379\r\n\r\n'));
    assert.match(statusLine, /^HTTP\/1\.1 404 /);
    assert.deepEqual([problem.code, problem.status], ['not_found', 404]);
  });
});

describe('deeply nested JSON is refused with 400, not a 500', () => {
  const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

  const deepCases: { name: string; request: Req }[] = [
    {
      name: 'POST /v1/leases with a 10 KB action.payload nested 5000 deep',
      request: postRaw('/v1/leases', `{"holder":"mallory","resources":[{"path":"malformed/deep"}],"action":{"kind":"k","payload":${nested(5000)}}}`, 'application/json'),
    },
    {
      name: 'POST /v1/leases/:id/renew with a 10 KB progress nested 5000 deep',
      request: postRaw('/v1/leases/{lease}/renew', `{"progress":${nested(5000)}}`, 'application/json'),
    },
  ];
  for (const c of deepCases) {
    test(c.name, async () => {
      const before = await t.snapshotKeys();
      const res = await send(c.request);
      assert.equal(res.statusCode, 400, res.body.slice(0, 300));
      assert.match(String(res.headers['content-type']), /^application\/problem\+json(;|$)/);
      assert.equal(JSON.parse(res.body).code, 'invalid_request');
      assert.deepEqual(await t.snapshotKeys(), before);
    });
  }
});
