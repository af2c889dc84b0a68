// fast-check generators of requests for every route of the lease API, valid and invalid, for
// test/property.test.ts. A generated step is plain data (so a shrunk counterexample prints
// readably); the test turns it into an HTTP request against the service it runs.
//
// Every generated part of a request says whether the contract refuses it, and with which
// status: a `Defect`. A request whose defects all stand for one status must get exactly
// that status; one without defects gets the oracles of its route. A defect with status 0
// means "refused or not, no certain status" (the test then only checks the generic rules).
//
// Runtime placeholders, replaced when the step runs:
//   FRESH___  (8 characters) in a path, kind or requestId: a root nobody has used yet, the
//             same for the whole step (so generated lengths are exact: "FRESH___/" + ...).
//   @CURSOR@  in a query string: a nextCursor the service handed out earlier in the run.
import fc from 'fast-check';

/** The limits the service under test was configured with (its request schemas use the same). */
export interface Limits {
  ttlMin: number;
  ttlMax: number;
  holdMin: number;
  holdMax: number;
  lockDelayMax: number;
  waitMax: number;
  attemptsMax: number;
  listMax: number;
  payloadLimit: number;
  progressLimit: number;
}

/** Why the contract refuses a part of a request, and the status it must get (0: not certain). */
export interface Defect {
  status: number;
  why: string;
}

/** A generated value, with the defects it carries. `v: undefined` is a field left out. */
export interface Part<T = unknown> {
  v: T;
  d?: Defect[];
}

/** JSON text written verbatim into a body (a number JSON.stringify cannot write, say). */
export interface Raw {
  $raw: string;
}

export const FRESH = 'FRESH___';
export const CURSOR = '@CURSOR@';
/** A lone surrogate percent-encoded as a WTF-8 client would (ED A0 80 is not valid UTF-8). */
export const URL_SURROGATE = '%ED%A0%80';

/** Which lease or orphan a URL names. */
export type IdRef =
  /** The n-th lease this run has been granted (modulo how many); a never-issued id when none. */
  | { to: 'lease'; n: number }
  /** The n-th orphan this run has seen; a never-issued id when none. */
  | { to: 'orphan'; n: number }
  /** Well-formed, never issued. */
  | { to: 'unknown' }
  /** An odd id, as written in the URL: refused (its defects say how), or well-formed and never issued. */
  | { to: 'raw'; raw: string; d?: Defect[] };

export type LastEventId = 'none' | 'recent' | 'zero' | 'future' | 'huge' | 'garbage' | 'latin1' | 'spaces';

export type Mutation =
  | 'none'
  | 'padToLimit'
  | 'padPastLimit'
  | 'truncated'
  | 'trailingGarbage'
  | 'wrappedInArray'
  | 'jsonNull'
  | 'jsonString'
  | 'extraField'
  | 'duplicateKey'
  | 'bom'
  | 'invalidUtf8'
  | 'noBody';

export type Op =
  | 'acquire'
  | 'renew'
  | 'release'
  | 'revoke'
  | 'getLease'
  | 'listLeases'
  | 'holderRenew'
  | 'resource'
  | 'fencing'
  | 'claim'
  | 'resolve'
  | 'getOrphan'
  | 'listOrphans'
  | 'events'
  | 'healthz'
  | 'readyz'
  | 'metrics';

/** One request. */
export interface Call {
  op: Op;
  id?: IdRef;
  /** The {holder} or {*} part of the URL, as written. */
  param?: Part<string>;
  /** name=value pairs, as written. */
  query?: Part<string>[];
  /** The JSON body; absent: no body. */
  body?: Part<unknown>;
  ctype?: Part<string | null>;
  mutation?: Part<Mutation>;
  requestIdHeader?: string;
  lastEventId?: Part<LastEventId>;
}

/** One step of a sequence: a request, a pause (leases expire), or requests sent at once. */
export type Step = Call | { op: 'sleep'; ms: number } | { op: 'parallel'; calls: Call[] };

/** Method and OpenAPI path of each route. */
export const ROUTES: Record<Op, { method: string; path: string }> = {
  acquire: { method: 'POST', path: '/v1/leases' },
  renew: { method: 'POST', path: '/v1/leases/{id}/renew' },
  release: { method: 'POST', path: '/v1/leases/{id}/release' },
  revoke: { method: 'DELETE', path: '/v1/leases/{id}' },
  getLease: { method: 'GET', path: '/v1/leases/{id}' },
  listLeases: { method: 'GET', path: '/v1/leases' },
  holderRenew: { method: 'POST', path: '/v1/holders/{holder}/renew' },
  resource: { method: 'GET', path: '/v1/resources/{*}' },
  fencing: { method: 'POST', path: '/v1/fencing/check' },
  claim: { method: 'POST', path: '/v1/orphans/claim' },
  resolve: { method: 'POST', path: '/v1/orphans/{id}/resolve' },
  getOrphan: { method: 'GET', path: '/v1/orphans/{id}' },
  listOrphans: { method: 'GET', path: '/v1/orphans' },
  events: { method: 'GET', path: '/v1/events' },
  healthz: { method: 'GET', path: '/healthz' },
  readyz: { method: 'GET', path: '/readyz' },
  metrics: { method: 'GET', path: '/metrics' },
};

// ---------------------------------------------------------------------------------------
// Small helpers.

const bad400 = (why: string): Defect[] => [{ status: 400, why }];
const ok = <T>(v: T): Part<T> => ({ v });
const refused = <T>(v: T, why: string, status = 400): Part<T> => ({ v, d: [{ status, why }] });
const raw = (text: string): Raw => ({ $raw: text });

/** Valid parts usually, an invalid one now and then. */
function mostly<T>(valid: fc.Arbitrary<Part<T>>, invalid: fc.Arbitrary<Part<T>>, validWeight = 6): fc.Arbitrary<Part<T>> {
  return fc.oneof({ weight: validWeight, arbitrary: valid }, { weight: 1, arbitrary: invalid });
}

/** An optional field: left out half of the time. */
function optional<T>(part: fc.Arbitrary<Part<T>>, presentWeight = 1): fc.Arbitrary<Part<T> | undefined> {
  return fc.oneof({ weight: 1, arbitrary: fc.constant(undefined) }, { weight: presentWeight, arbitrary: part });
}

/** A required field: now and then left out, which the contract refuses. */
function required<T>(part: fc.Arbitrary<Part<T>>, name: string): fc.Arbitrary<Part<T | undefined>> {
  return fc.oneof({ weight: 30, arbitrary: part }, { weight: 1, arbitrary: fc.constant({ v: undefined, d: bad400(`${name} is missing`) }) });
}

/** An object whose fields are parts: the object, and every defect of its fields. */
function objectOf(fields: Record<string, fc.Arbitrary<Part | undefined>>): fc.Arbitrary<Part<Record<string, unknown>>> {
  return fc.record(fields).map((parts) => {
    const v: Record<string, unknown> = {};
    const d: Defect[] = [];
    for (const [name, part] of Object.entries(parts)) {
      if (part === undefined) continue;
      if (part.v !== undefined) v[name] = part.v;
      if (part.d) d.push(...part.d);
    }
    return d.length > 0 ? { v, d } : { v };
  });
}

/** Strings that are not well-formed Unicode: lone surrogates, as JS strings (JSON carries them as \\u escapes). */
export const LONE_SURROGATES = ['\ud800', '\udfff', '\udc00x', 'x\ud83d', '\ud800\ud800', 'a\udbffb'] as const;
const loneSurrogate = fc.constantFrom(...LONE_SURROGATES);
const withSurrogate = (prefix: string) => loneSurrogate.map((s) => refused(`${prefix}${s}`, 'a lone surrogate'));

// ---------------------------------------------------------------------------------------
// Names: holders, kinds, request ids, paths.

/** Holders a run uses: few, so that renewing, listing and conflicting meet the same ones. */
export const HOLDERS = ['conductor-a', 'conductor-b', 'op é ü', '🚀'.repeat(64), 'h'.repeat(128)] as const;
export const KINDS = ['resize', 'migrate', 'k é 🚀', 'k'.repeat(128)] as const;

const holderValid = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('conductor-a', 'conductor-b') },
  { weight: 1, arbitrary: fc.constantFrom(...HOLDERS) },
).map((h) => ok<unknown>(h));

const holderInvalid: fc.Arbitrary<Part> = fc.oneof(
  fc.constantFrom<Part>(
    refused('', 'an empty holder'),
    refused('h'.repeat(129), 'a 129-character holder'),
    refused('conductor\u0007', 'a control character in holder'),
    refused('a\u200bb', 'a format character in holder'),
    refused(42, 'holder is a number'),
    refused(null, 'holder is null'),
    refused(['conductor-a'], 'holder is an array'),
  ),
  withSurrogate('conductor-'),
);
export const holderPart = mostly(holderValid, holderInvalid);

const kindValid = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('resize', 'migrate') },
  { weight: 1, arbitrary: fc.constantFrom(...KINDS, `${FRESH}-k`) },
).map((k) => ok<unknown>(k));
const kindInvalid: fc.Arbitrary<Part> = fc.oneof(
  fc.constantFrom<Part>(
    refused('', 'an empty kind'),
    refused('k'.repeat(129), 'a 129-character kind'),
    refused('k\u0007', 'a control character in kind'),
    refused(7, 'kind is a number'),
  ),
  withSurrogate('resize-'),
);
const kindPart = mostly(kindValid, kindInvalid);

const requestIdPart = mostly(
  fc.constantFrom('r-1', 'r-2', 'r-1', `${FRESH}-rid`, 'r'.repeat(128), 'é-🚀').map((r) => ok<unknown>(r)),
  fc.oneof(
    fc.constantFrom<Part>(
      refused('', 'an empty requestId'),
      refused('r'.repeat(129), 'a 129-character requestId'),
      refused('r\u0007', 'a control character in requestId'),
      refused(12, 'requestId is a number'),
    ),
    withSurrogate('req-'),
  ),
);

/** Paths every run shares, so that requests meet: a tree, and a neighbour that is not below it. */
export const UNIVERSE = ['i', 'i/1', 'i/1/v/a', 'i/1/v/b', 'i/10', 'i/2', 'n/1', 'n/1/s', 'a.b:c@d-e/F9'] as const;

function segments(count: number, root: string): string {
  return [root, ...Array.from({ length: count - 1 }, (_, i) => `s${i}`)].join('/');
}
/** "FRESH___" (8) and four 126-character segments: 512 characters, the most a path may have. */
const PATH_512 = [FRESH, ...Array.from({ length: 4 }, () => 'a'.repeat(125))].join('/');
const PATH_513 = [FRESH, ...Array.from({ length: 3 }, () => 'a'.repeat(125)), 'a'.repeat(126)].join('/');

const pathValid: fc.Arbitrary<Part<unknown>> = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...UNIVERSE) },
  { weight: 4, arbitrary: fc.constantFrom(FRESH, `${FRESH}/a`, `${FRESH}/a/b`, `${FRESH}/c`) },
  { weight: 1, arbitrary: fc.constantFrom(segments(16, FRESH), PATH_512, `${FRESH}/${'a'.repeat(128)}`, `${FRESH}/x_y.z:w@v-1`) },
).map((p) => ok<unknown>(p));

const BAD_PATHS: [unknown, string][] = [
  ['/i/1', 'a leading slash'],
  ['i/1/', 'a trailing slash'],
  ['i//1', 'an empty segment'],
  ['i/./1', 'a "." segment'],
  ['i/../1', 'a ".." segment'],
  ['..', 'the path ".."'],
  [segments(17, FRESH), '17 segments'],
  [PATH_513, 'a 513-character path'],
  [`${FRESH}/${'a'.repeat(129)}`, 'a 129-character segment'],
  ['i/a b', 'a space'],
  ['i/é', 'a non-ASCII character'],
  ['i/-1', 'a segment starting with "-"'],
  ['_i', 'a segment starting with "_"'],
  ['', 'an empty path'],
  ['i/1\n', 'a trailing newline'],
  ['i/\u00001', 'a NUL'],
  ['i\\1', 'a backslash'],
  [42, 'a number'],
  [null, 'null'],
  [{ path: 'i/1' }, 'an object'],
];
const pathInvalid: fc.Arbitrary<Part<unknown>> = fc.oneof(
  fc.constantFrom(...BAD_PATHS).map(([p, why]) => refused(p, `a path with ${why}`)),
  withSurrogate('i/'),
);
export const pathPart = mostly(pathValid, pathInvalid, 14);

const modePart = optional(
  mostly(
    fc.constantFrom('exclusive', 'shared').map((m) => ok<unknown>(m)),
    fc.constantFrom<Part>(refused('read', 'mode "read"'), refused('Exclusive', 'mode "Exclusive"'), refused(1, 'mode is a number')),
  ),
  2,
);

const resourceItem: fc.Arbitrary<Part<Record<string, unknown>>> = fc.oneof(
  { weight: 20, arbitrary: objectOf({ path: required(pathPart, 'path'), mode: modePart }) },
  { weight: 1, arbitrary: objectOf({ path: pathPart, ttl: fc.constant(refused(5, 'an unknown field in a resource')) }) },
);

const resourcesPart: fc.Arbitrary<Part<unknown>> = fc.oneof(
  {
    weight: 30,
    arbitrary: fc.oneof({ weight: 5, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) }).chain((n) => fc.array(resourceItem, { minLength: n, maxLength: n })).map((items) => ({
      v: items.map((i) => i.v),
      d: items.flatMap((i) => i.d ?? []),
    })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Part>(
      ok(Array.from({ length: 64 }, (_, i) => ({ path: `${FRESH}/r${i}` }))),
      ok(Array.from({ length: 64 }, (_, i) => ({ path: `${segments(15, FRESH)}/r${i}`, mode: i % 2 ? 'shared' : 'exclusive' }))),
      refused(Array.from({ length: 65 }, (_, i) => ({ path: `${FRESH}/r${i}` })), '65 resources'),
      refused([], 'no resources'),
      refused({ path: 'i/1' }, 'resources is an object'),
      refused(['i/1'], 'resources is a list of strings'),
    ),
  },
);

// ---------------------------------------------------------------------------------------
// Numbers with limits: inside, on the edges, and just past them.

function intPart(name: string, min: number, max: number, typical: fc.Arbitrary<number>): fc.Arbitrary<Part<unknown>> {
  return mostly(
    fc.oneof({ weight: 6, arbitrary: typical }, { weight: 1, arbitrary: fc.constantFrom(min, max) }).map((n) => ok<unknown>(n)),
    fc.constantFrom<Part>(
      refused(min - 1, `${name} just below its minimum`),
      refused(max + 1, `${name} just above its maximum`),
      refused(min + 0.5, `${name} not an integer`),
      refused(String(Math.max(min, 1)), `${name} as a string`),
      refused(null, `${name} null`),
      refused(raw('1e400'), `${name} 1e400 (Infinity once parsed)`),
      refused(true, `${name} a boolean`),
    ),
  );
}

const ttlPart = (l: Limits) =>
  intPart('ttlMs', l.ttlMin, l.ttlMax, fc.oneof({ weight: 2, arbitrary: fc.integer({ min: l.ttlMin, max: l.ttlMin + 400 }) }, { weight: 3, arbitrary: fc.constantFrom(2000, 5000, 60000) }));
const waitPart = (l: Limits) => intPart('waitMs', 0, l.waitMax, fc.oneof(fc.constant(0), fc.integer({ min: 1, max: Math.min(120, l.waitMax) })));
const holdPart = (l: Limits) => intPart('maxHoldMs', l.holdMin, l.holdMax, fc.constantFrom(l.holdMin + 200, 5000, 3600000));
const lockDelayPart = (l: Limits) => intPart('lockDelayMs', 0, l.lockDelayMax, fc.oneof(fc.constant(0), fc.integer({ min: 1, max: Math.min(300, l.lockDelayMax) })));
const attemptsPart = (l: Limits) => intPart('maxAttempts', 1, l.attemptsMax, fc.constantFrom(1, 2, 3));

// ---------------------------------------------------------------------------------------
// Client JSON: action payloads and progress checkpoints. Sizes and depths over the limits
// are found when the step runs (from the bytes actually sent), so these only aim at them.

const SAFE_KEY = /^(?!__proto__$|constructor$|prototype$)/;

/** Any JSON with well-formed strings (no key the body parser refuses as prototype pollution). */
const jsonValue: fc.Arbitrary<unknown> = fc
  .jsonValue({ maxDepth: 3, stringUnit: 'grapheme' })
  .map(function clean(value: unknown): unknown {
    if (Array.isArray(value)) return value.map(clean);
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).filter(([k]) => SAFE_KEY.test(k)).map(([k, v]) => [k, clean(v)]));
    }
    return value;
  });

function nested(depth: number): unknown {
  let value: unknown = [];
  for (let i = 1; i < depth; i++) value = [value];
  return value;
}

function clientJsonPart(limit: number): fc.Arbitrary<Part<unknown>> {
  return fc.oneof(
    { weight: 12, arbitrary: jsonValue.map((v) => ok(v)) },
    {
      weight: 2,
      arbitrary: fc.constantFrom<Part>(
        ok({ flavor: 'm1.large', step: 2 }),
        ok({ s: '🚀 é \u2028 \uffff \u0000 "\\' }),
        ok('x'.repeat(limit - 2)),
        ok('é'.repeat(Math.floor((limit - 2) / 2))),
        ok(nested(64)),
        ok('x'.repeat(limit - 1)),
        ok(nested(65)),
        ok(Number.MAX_SAFE_INTEGER),
        ok(null),
        refused(JSON.parse('{"__proto__":{"polluted":true}}'), 'a __proto__ key'),
      ),
    },
    {
      weight: 2,
      arbitrary: fc.oneof(
        loneSurrogate.map((s) => refused({ s }, 'a lone surrogate')),
        loneSurrogate.map((s) => refused([`a${s}b`, 1], 'a lone surrogate')),
        loneSurrogate.map((s) => refused(s, 'a lone surrogate')),
        loneSurrogate.map((s) => refused({ [`k${s}`]: 1 }, 'a lone surrogate in a key')),
        loneSurrogate.map((s) => refused({ deep: { deeper: [{ s: `ok-${s}` }] } }, 'a lone surrogate')),
      ),
    },
  );
}

// ---------------------------------------------------------------------------------------
// The wire: content type and what happens to the body's bytes.

const ctypePart: fc.Arbitrary<Part<string | null>> = fc.oneof(
  { weight: 40, arbitrary: fc.constant(ok<string | null>('application/json')) },
  { weight: 2, arbitrary: fc.constantFrom('application/json; charset=utf-8', 'application/json; charset=UTF-8', 'APPLICATION/JSON').map((c) => ok<string | null>(c)) },
  {
    weight: 2,
    arbitrary: fc.constantFrom<Part<string | null>>(
      refused('application/json; charset=latin1', 'a charset other than UTF-8', 415),
      refused('application/json; charset=iso-8859-1', 'a charset other than UTF-8', 415),
      refused('application/json; charset=utf-16', 'a charset other than UTF-8', 415),
      refused('text/plain', 'a text/plain body', 415),
      refused('application/x-www-form-urlencoded', 'a form body', 415),
      refused(null, 'a body without a content-type', 415),
      { v: 'application/json; charset="utf-8"', d: [{ status: 0, why: 'a quoted charset' }] },
    ),
  },
);

const mutationPart: fc.Arbitrary<Part<Mutation>> = fc.oneof(
  { weight: 40, arbitrary: fc.constant(ok<Mutation>('none')) },
  { weight: 1, arbitrary: fc.constantFrom<Part<Mutation>>(ok('padToLimit'), refused('padPastLimit', 'a body over BODY_LIMIT_BYTES', 413)) },
  {
    weight: 2,
    arbitrary: fc.constantFrom<Part<Mutation>>(
      refused('truncated', 'a body that is not JSON'),
      refused('trailingGarbage', 'JSON followed by garbage'),
      refused('wrappedInArray', 'a JSON array body'),
      refused('jsonNull', 'a JSON null body'),
      refused('jsonString', 'a JSON string body'),
      refused('extraField', 'an unknown field'),
      { v: 'duplicateKey', d: [{ status: 0, why: 'a key given twice' }] },
      { v: 'bom', d: [{ status: 0, why: 'a byte order mark' }] },
      { v: 'invalidUtf8', d: [{ status: 0, why: 'bytes that are not UTF-8 in a string' }] },
      ok('noBody'),
    ),
  },
);

const wire = { ctype: ctypePart, mutation: mutationPart };

// ---------------------------------------------------------------------------------------
// Ids, query strings, URL parameters.

const ODD_IDS: { raw: string; d?: Defect[] }[] = [
  { raw: 'a.b', d: bad400('an id with "."') },
  { raw: 'a%20b', d: bad400('an id with a space') },
  { raw: 'a%2Fb', d: bad400('an id with an encoded slash') },
  { raw: URL_SURROGATE, d: bad400('an id with a lone surrogate') },
  { raw: `x${URL_SURROGATE}y`, d: bad400('an id with a lone surrogate') },
  { raw: '%E0%A4%A', d: bad400('an id with a bad percent-encoding') },
  { raw: '%C3%A9', d: bad400('an id with a non-ASCII character') },
  { raw: '%F0%9F%9A%80', d: bad400('an id that is an emoji') },
  { raw: '%00', d: bad400('an id with a NUL') },
  { raw: 'x'.repeat(65), d: bad400('a 65-character id') },
  { raw: 'x'.repeat(1100), d: bad400('an id over 1024 characters') },
  // Well-formed, never issued: 404.
  { raw: 'A'.repeat(64) },
  { raw: '-_-' },
  { raw: '%41%42' },
  { raw: '', d: [{ status: 0, why: 'an empty id' }] },
];

const idRef: fc.Arbitrary<IdRef> = fc.oneof(
  { weight: 12, arbitrary: fc.nat({ max: 20 }).map((n): IdRef => ({ to: 'lease', n })) },
  { weight: 2, arbitrary: fc.nat({ max: 20 }).map((n): IdRef => ({ to: 'orphan', n })) },
  { weight: 1, arbitrary: fc.constant<IdRef>({ to: 'unknown' }) },
  { weight: 2, arbitrary: fc.constantFrom(...ODD_IDS).map((o): IdRef => ({ to: 'raw', ...o })) },
);
const orphanIdRef: fc.Arbitrary<IdRef> = fc.oneof(
  { weight: 12, arbitrary: fc.nat({ max: 20 }).map((n): IdRef => ({ to: 'orphan', n })) },
  { weight: 2, arbitrary: fc.nat({ max: 20 }).map((n): IdRef => ({ to: 'lease', n })) },
  { weight: 1, arbitrary: fc.constant<IdRef>({ to: 'unknown' }) },
  { weight: 2, arbitrary: fc.constantFrom(...ODD_IDS).map((o): IdRef => ({ to: 'raw', ...o })) },
);

/** A query parameter; its defects say they are in the query (FUZZ_SKIP tells them apart). */
const param = (name: string, part: fc.Arbitrary<Part<string>>) =>
  part.map((p): Part<string> => ({ v: `${name}=${p.v}`, ...(p.d ? { d: p.d.map((d) => ({ ...d, why: `${d.why} (query)` })) } : {}) }));

const queryHolder = mostly(
  fc.constantFrom(...HOLDERS).map((h) => ok(encodeURIComponent(h))),
  fc.constantFrom<Part<string>>(
    refused('', 'an empty holder'),
    refused('h'.repeat(129), 'a 129-character holder'),
    refused('conductor%07', 'a control character in holder'),
    refused(URL_SURROGATE, 'a lone surrogate in holder'),
    refused(`conductor-${URL_SURROGATE}`, 'a lone surrogate in holder'),
    { v: 'conductor%ZZ', d: [{ status: 0, why: 'a bad percent-encoding in the query' }] },
  ),
);
const queryPrefix = mostly(
  fc.constantFrom(...UNIVERSE, FRESH).map((p) => ok(encodeURIComponent(p))),
  fc.oneof(
    fc.constantFrom(...BAD_PATHS.filter(([p]) => typeof p === 'string')).map(([p, why]) => refused(encodeURIComponent(p as string), `a prefix with ${why}`)),
    fc.constant(refused(`i%2F${URL_SURROGATE}`, 'a lone surrogate in prefix')),
  ),
);
const queryKind = mostly(
  fc.constantFrom(...KINDS, `${FRESH}-k`).map((k) => ok(encodeURIComponent(k))),
  fc.constantFrom<Part<string>>(
    refused('', 'an empty kind'),
    refused(URL_SURROGATE, 'a lone surrogate in kind'),
    refused(`resize${URL_SURROGATE}`, 'a lone surrogate in kind'),
    refused('k%07', 'a control character in kind'),
  ),
);
const queryCursor = mostly(
  fc.constant(ok(CURSOR)),
  fc.constantFrom<Part<string>>(
    refused('', 'an empty cursor'),
    refused('!!!not-a-cursor!!!', 'a garbage cursor'),
    refused(Buffer.from('v1:abc').toString('base64url'), 'a cursor that is not a token'),
    refused(Buffer.from('v2:123').toString('base64url'), 'a cursor of another version'),
    refused(Buffer.from(`v1:${'9'.repeat(20)}`).toString('base64url'), 'a cursor with a 20-digit token'),
    refused(`${Buffer.from('v1:123').toString('base64url')}%3D%3D`, 'a cursor with padding'),
    refused(URL_SURROGATE, 'a lone surrogate in cursor'),
  ),
  6,
);
const limitQuery = (l: Limits) =>
  mostly(
    fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(l.listMax)).map((n) => ok(String(n))),
    fc.constantFrom<Part<string>>(
      refused('0', 'limit 0'),
      refused(String(l.listMax + 1), 'limit above its maximum'),
      refused('abc', 'limit not a number'),
      refused('1.5', 'limit not an integer'),
      refused('-5', 'a negative limit'),
      refused(URL_SURROGATE, 'a lone surrogate in limit'),
    ),
  );

/** The query of a listing: some of its parameters, in some order, now and then an unknown or repeated one. */
function queryOf(params: fc.Arbitrary<Part<string> | undefined>[]): fc.Arbitrary<Part<string>[]> {
  const extra = fc.oneof(
    { weight: 30, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constantFrom(refused('foo=1', 'an unknown query parameter'), refused('limit=1&limit=2', 'limit given twice')) },
  );
  return fc.tuple(fc.tuple(...params), extra).map(([ps, e]) => [...ps, e].filter((p): p is Part<string> => p !== undefined));
}

const leaseStateQuery = mostly(
  fc.constantFrom('active', 'orphaned').map((s) => ok(s)),
  fc.constantFrom<Part<string>>(refused('expired', 'state "expired"'), refused('ACTIVE', 'state "ACTIVE"'), refused(URL_SURROGATE, 'a lone surrogate in state')),
);
const orphanStateQuery = mostly(
  fc.constantFrom('pending', 'claimed', 'dead_letter', 'resolved').map((s) => ok(s)),
  fc.constantFrom<Part<string>>(refused('gone', 'state "gone"'), refused('Pending', 'state "Pending"')),
);

/** A resource path as written after /v1/resources/: with its slashes, or URL-encoded. */
const resourceParam: fc.Arbitrary<Part<string>> = mostly(
  fc.tuple(fc.constantFrom(...UNIVERSE, FRESH, `${FRESH}/a`, segments(16, FRESH), PATH_512), fc.boolean()).map(([p, encoded]) => ok(encoded ? encodeURIComponent(p) : p)),
  fc.oneof(
    fc.constantFrom(...BAD_PATHS.filter(([p]) => typeof p === 'string' && p !== '' && !p.includes('.'))).map(([p, why]) => refused(encodeURIComponent(p as string), `a path with ${why}`)),
    fc.constantFrom<Part<string>>(
      refused(`i/${URL_SURROGATE}`, 'a lone surrogate in the path'),
      refused(`i/1${URL_SURROGATE}`, 'a lone surrogate in the path'),
      refused('i//1', 'an empty segment'),
      refused('i/1/', 'a trailing slash'),
      refused('i/%ZZ', 'a bad percent-encoding'),
      refused('a'.repeat(1100), 'a path over 1024 characters'),
      { v: '', d: [{ status: 0, why: 'an empty path' }] },
    ),
  ),
);

const holderParam: fc.Arbitrary<Part<string>> = mostly(
  fc.constantFrom(...HOLDERS, 'a/b', 'nobody-here').map((h) => ok(encodeURIComponent(h))),
  fc.constantFrom<Part<string>>(
    refused('conductor%07', 'a control character in holder'),
    refused('seed%E2%80%8Bholder', 'a format character in holder'),
    refused('h'.repeat(129), 'a 129-character holder'),
    refused(URL_SURROGATE, 'a lone surrogate in holder'),
    refused(`c-${URL_SURROGATE}`, 'a lone surrogate in holder'),
    refused('%', 'a bad percent-encoding'),
    refused('h'.repeat(1100), 'a holder over 1024 characters'),
  ),
);

const requestIdHeader = fc.oneof(
  { weight: 20, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constantFrom('trace-1.2:3', 'x'.repeat(200), 'a b', 'é', '') },
);

// ---------------------------------------------------------------------------------------
// The calls, route by route.

export function callArbitraries(l: Limits): { acquire: fc.Arbitrary<Call>; any: fc.Arbitrary<Call> } {
  const ttl = ttlPart(l);
  const progress = clientJsonPart(l.progressLimit);

  const action: fc.Arbitrary<Part<unknown> | undefined> = fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    {
      weight: 8,
      arbitrary: objectOf({
        kind: required(kindPart, 'action.kind'),
        payload: optional(clientJsonPart(l.payloadLimit), 3),
        maxAttempts: optional(attemptsPart(l)),
        attempt: fc.oneof({ weight: 30, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant(refused(7, 'an unknown field in the action')) }),
      }),
    },
    { weight: 1, arbitrary: fc.constantFrom<Part>(refused(null, 'action null'), refused('resize', 'action a string'), refused([], 'action an array')) },
  );

  const acquire = fc.record({
    op: fc.constant('acquire' as const),
    body: objectOf({
      holder: required(holderPart, 'holder'),
      resources: required(resourcesPart, 'resources'),
      ttlMs: optional(ttl, 2),
      waitMs: fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: waitPart(l) }),
      action,
      requestId: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: requestIdPart }),
      maxHoldMs: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: holdPart(l) }),
      lockDelayMs: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: lockDelayPart(l) }),
    }),
    ...wire,
  });

  const renew = fc.record({
    op: fc.constant('renew' as const),
    id: idRef,
    body: objectOf({ ttlMs: optional(ttl), progress: optional(progress, 2) }),
    ...wire,
  });

  const outcome = optional(
    mostly(
      fc.constantFrom('completed', 'failed', 'abandoned').map((o) => ok<unknown>(o)),
      fc.constantFrom<Part>(refused('done', 'outcome "done"'), refused('COMPLETED', 'outcome "COMPLETED"'), refused(null, 'outcome null'), refused(1, 'outcome 1')),
    ),
    4,
  );
  const release = fc.record({ op: fc.constant('release' as const), id: idRef, body: objectOf({ outcome }), ...wire });
  const revoke = fc.record({ op: fc.constant('revoke' as const), id: idRef });
  const getLease = fc.record({ op: fc.constant('getLease' as const), id: idRef });

  const listLeases = fc.record({
    op: fc.constant('listLeases' as const),
    query: queryOf([
      optional(param('holder', queryHolder)),
      optional(param('prefix', queryPrefix)),
      optional(param('state', leaseStateQuery), 1),
      optional(param('limit', limitQuery(l))),
      optional(param('cursor', queryCursor)),
    ]),
  });

  const holderRenew = fc.record({
    op: fc.constant('holderRenew' as const),
    param: holderParam,
    body: objectOf({
      ttlMs: optional(ttl),
      progress: fc.oneof({ weight: 30, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant(refused({ step: 1 }, 'progress is not accepted here')) }),
    }),
    ...wire,
  });

  const resource = fc.record({ op: fc.constant('resource' as const), param: resourceParam });

  const token: fc.Arbitrary<Part<unknown>> = mostly(
    fc.oneof(
      { weight: 6, arbitrary: fc.nat({ max: 20 }).map((n) => ok<unknown>({ $token: n })) },
      { weight: 1, arbitrary: fc.constantFrom(0, 1, 5, Number.MAX_SAFE_INTEGER).map((n) => ok<unknown>(n)) },
    ),
    fc.constantFrom<Part>(
      refused(-1, 'a negative fencingToken'),
      refused(1.5, 'a fencingToken that is not an integer'),
      refused('5', 'a fencingToken as a string'),
      refused(null, 'fencingToken null'),
      refused(raw('1e400'), 'fencingToken 1e400'),
      refused(raw('9007199254740992'), 'a fencingToken above 2^53 - 1'),
      refused(raw('18446744073709551616'), 'a fencingToken of 2^64'),
    ),
  );
  const fencing = fc.record({
    op: fc.constant('fencing' as const),
    body: objectOf({ path: required(pathPart, 'path'), fencingToken: required(token, 'fencingToken') }),
    ...wire,
  });

  const kinds: fc.Arbitrary<Part<unknown> | undefined> = optional(
    mostly(
      fc.oneof(
        fc.uniqueArray(fc.constantFrom(...KINDS), { minLength: 1, maxLength: 3 }),
        fc.constantFrom([`${FRESH}-k`], [`${FRESH}-k`, `${FRESH}-l`]),
      ).map((k) => ok<unknown>(k)),
      fc.oneof(
        fc.constantFrom<Part>(
          refused([], 'no kinds'),
          refused(['resize', 'resize'], 'a kind given twice'),
          refused(Array.from({ length: 33 }, (_, i) => `k${i}`), '33 kinds'),
          refused('resize', 'kinds is a string'),
          refused([''], 'an empty kind'),
        ),
        loneSurrogate.map((s) => refused([`resize${s}`], 'a lone surrogate in kinds')),
      ),
    ),
  );
  const claimWait = intPart('waitMs', 0, l.waitMax, fc.integer({ min: 0, max: Math.min(40, l.waitMax) }));
  const claim = fc.record({
    op: fc.constant('claim' as const),
    body: objectOf({
      holder: required(holderPart, 'holder'),
      ttlMs: optional(ttl, 2),
      kinds,
      waitMs: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: claimWait }),
    }),
    ...wire,
  });

  const resolution = required(
    mostly(fc.constant(ok<unknown>('discard')), fc.constantFrom<Part>(refused('keep', 'resolution "keep"'), refused(null, 'resolution null'), refused('DISCARD', 'resolution "DISCARD"'))),
    'resolution',
  );
  const resolve = fc.record({ op: fc.constant('resolve' as const), id: orphanIdRef, body: objectOf({ resolution }), ...wire });
  const getOrphan = fc.record({ op: fc.constant('getOrphan' as const), id: orphanIdRef });
  const listOrphans = fc.record({
    op: fc.constant('listOrphans' as const),
    query: queryOf([
      optional(param('kind', queryKind)),
      optional(param('state', orphanStateQuery)),
      optional(param('limit', limitQuery(l))),
      optional(param('cursor', queryCursor)),
    ]),
  });

  const lastEventId: fc.Arbitrary<Part<LastEventId>> = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom<Part<LastEventId>>(ok('none'), ok('recent')) },
    {
      weight: 3,
      arbitrary: fc.constantFrom<Part<LastEventId>>(
        refused('future', 'a Last-Event-ID after the newest event'),
        refused('huge', 'a Last-Event-ID with a 20-digit time'),
        refused('garbage', 'a Last-Event-ID that is not a stream id'),
        refused('latin1', 'a Last-Event-ID with a latin1 byte'),
        refused('spaces', 'a Last-Event-ID with spaces'),
        { v: 'zero', d: [{ status: 0, why: 'Last-Event-ID 0-0' }] },
      ),
    },
  );
  const events = fc.record({
    op: fc.constant('events' as const),
    query: queryOf([
      optional(param('prefix', queryPrefix)),
      optional(
        param(
          'types',
          mostly(
            fc.constantFrom('granted', 'orphaned,resolved', 'granted,released,expired,revoked,claimed').map((t) => ok(t)),
            fc.constantFrom<Part<string>>(refused('nope', 'an unknown event type'), refused('granted,', 'a trailing comma'), refused('GRANTED', 'an upper-case type')),
          ),
        ),
      ),
    ]),
    lastEventId,
  });

  const meta = fc.constantFrom<Call>({ op: 'healthz' }, { op: 'readyz' }, { op: 'metrics' });

  const call: fc.Arbitrary<Call> = fc.oneof(
    { weight: 32, arbitrary: acquire },
    { weight: 12, arbitrary: renew },
    { weight: 10, arbitrary: release },
    { weight: 7, arbitrary: revoke },
    { weight: 4, arbitrary: getLease },
    { weight: 3, arbitrary: listLeases },
    { weight: 3, arbitrary: holderRenew },
    { weight: 3, arbitrary: resource },
    { weight: 4, arbitrary: fencing },
    { weight: 12, arbitrary: claim },
    { weight: 5, arbitrary: resolve },
    { weight: 2, arbitrary: getOrphan },
    { weight: 2, arbitrary: listOrphans },
    { weight: 2, arbitrary: events },
    { weight: 1, arbitrary: meta },
  );
  return {
    acquire,
    any: fc.tuple(call, requestIdHeader).map(([c, header]) => (header === undefined ? c : { ...c, requestIdHeader: header })),
  };
}

/** How many defects the generated parts of a call carry. */
export function generatedDefects(call: Call): number {
  const parts: (Part | undefined)[] = [call.param, call.body, call.ctype, call.mutation, call.lastEventId, ...(call.query ?? [])];
  const inId = call.id?.to === 'raw' ? (call.id.d?.length ?? 0) : 0;
  return parts.reduce((n, part) => n + (part?.d?.length ?? 0), inId);
}

export const generatedClean = (call: Call) => generatedDefects(call) === 0;

function stepArbitrary(anyCall: fc.Arbitrary<Call>): fc.Arbitrary<Step> {
  // Most calls are valid, so that sequences build up leases, conflicts and orphans to act on;
  // the rest carry one invalid part, or any number.
  const call = fc.oneof(
    { weight: 7, arbitrary: anyCall.filter(generatedClean) },
    // One defect: the answer must be exactly the status that defect stands for.
    { weight: 2, arbitrary: anyCall.filter((c) => generatedDefects(c) === 1) },
    { weight: 1, arbitrary: anyCall },
  );
  return fc.oneof(
    { weight: 40, arbitrary: call },
    { weight: 2, arbitrary: fc.constantFrom(40, 120, 260).map((ms): Step => ({ op: 'sleep', ms })) },
    { weight: 2, arbitrary: fc.array(call, { minLength: 2, maxLength: 3 }).map((calls): Step => ({ op: 'parallel', calls })) },
  );
}

/** A sequence: a few valid acquires to start from (so later steps meet leases), then anything. */
export function sequenceArbitrary(l: Limits, maxSteps: number): fc.Arbitrary<Step[]> {
  const calls = callArbitraries(l);
  return fc
    .tuple(fc.array(calls.acquire.filter(generatedClean), { maxLength: 4 }), fc.array(stepArbitrary(calls.any), { minLength: 1, maxLength: maxSteps, size: 'max' }))
    .map(([start, rest]) => [...start, ...rest]);
}
