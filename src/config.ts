// Every knob of the service, its default and its range, in one place. Nothing else reads
// process.env: main.ts calls loadConfig(process.env) once and passes the result down.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

const int = (def: number, min: number, max: number, description: string) =>
  Type.Integer({ default: def, minimum: min, maximum: max, description });

export const ConfigSchema = Type.Object({
  PORT: int(8080, 0, 65535, 'TCP port of the HTTP API (0 picks a free one).'),
  HOST: Type.String({
    default: '127.0.0.1',
    minLength: 1,
    description: 'Address the HTTP API binds to; 0.0.0.0 in containers. Any address but loopback needs AUTH set (on, or none to serve without access control).',
  }),
  AUTH: Type.Optional(
    Type.Union([Type.Literal('on'), Type.Literal('none')], {
      description:
        'on: every /v1 route needs Authorization: Bearer <token> (service tokens made with `lease tokens create`, and JWTs when AUTH_JWT_PUBLIC_KEY_FILE or AUTH_JWKS_FILE is set). none: no access control, on any HOST (a warning is logged). Unset: no access control, and HOST must be loopback.',
    }),
  ),
  AUTH_JWT_PUBLIC_KEY_FILE: Type.Optional(Type.String({ minLength: 1, description: 'AUTH=on: a PEM public key (SPKI) that JWTs are signed with (RS*, PS*, ES*, EdDSA).' })),
  AUTH_JWKS_FILE: Type.Optional(Type.String({ minLength: 1, description: 'AUTH=on: a JSON Web Key Set file; a JWT\'s kid picks its key.' })),
  AUTH_JWT_ISSUER: Type.Optional(Type.String({ minLength: 1, description: 'AUTH=on: the iss every JWT must carry, if set.' })),
  AUTH_JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1, description: 'AUTH=on: the aud every JWT must carry, if set.' })),
  AUTH_CACHE_MS: int(
    0,
    0,
    3600000,
    'AUTH=on: how long a replica remembers a checked service token. 0 (the default) looks each one up in Redis (one HGET) on every request, so a revoked token fails on the very next one. Above 0, a revocation still reaches every replica at once by Redis pub/sub (a request that races it may pass), and a replica whose subscription dropped forgets every token.',
  ),
  LEASES_MAX_PER_TOKEN: int(
    0,
    0,
    100000000,
    'AUTH=on: active leases one token may hold in one namespace (acquired or claimed); an acquire or claim past it gets 429 rate_limited, checked in the script that would grant it. 0: no limit.',
  ),
  RATE_LIMIT_PER_SECOND: int(
    0,
    0,
    1000000,
    'Requests a second one caller (a token with AUTH=on, else a client address) may make in one namespace (requests naming one that does not exist count in the namespace default\'s), counted in Redis across replicas; more get 429 rate_limited with Retry-After. 0: no limit.',
  ),
  AUTH_METRICS: Type.Union([Type.Literal('public'), Type.Literal('token')], { default: 'public', description: 'AUTH=on: whether /metrics needs a bearer token (any valid one).' }),
  AUTH_DOCS: Type.Union([Type.Literal('public'), Type.Literal('token')], { default: 'public', description: 'AUTH=on: whether /docs and /openapi.json need a bearer token (any valid one).' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'redis:// or rediss:// URL of an existing Redis. With none of it, REDIS_SENTINELS and REDIS_CLUSTER_NODES set, the service starts and manages its own redis-server under DATA_DIR.' })),
  DATA_DIR: Type.String({ default: './data', minLength: 1, description: 'Where the managed redis-server keeps its append-only file (only used without REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES).' }),
  REDIS_SERVER_BIN: Type.String({ default: 'redis-server', minLength: 1, description: 'The redis-server executable to manage when none of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES is set.' }),
  REDIS_APPENDFSYNC: Type.Union([Type.Literal('everysec'), Type.Literal('always')], {
    default: 'everysec',
    description: 'fsync policy of the managed redis-server: everysec may lose the last second of writes on a crash (fencing tokens stay safe), always loses none.',
  }),
  KEY_PREFIX: Type.String({ default: 'lease', pattern: '^[A-Za-z0-9._:-]{1,64}$', description: 'Hash tag of the Redis keys: {KEY_PREFIX}:... for the namespace default, {KEY_PREFIX/<namespace>}:... for the others, so each namespace is one Cluster slot.' }),
  NAMESPACES_MAX: int(1000, 0, 100000, 'Namespaces besides default that may exist (they need no creation step: the first acquire in one registers it). An acquire that would make one more gets 429 rate_limited. Each costs the reaper leader one sweep call per REAPER_INTERVAL_MS and each /metrics scrape one call.'),
  REDIS_MAXMEMORY: Type.String({
    default: '1gb',
    pattern: '^[1-9][0-9]{0,12}(kb|mb|gb)?$',
    description: 'maxmemory of the managed redis-server (policy noeviction): when it is full, requests that would write answer 503 backend_unavailable, and nothing is evicted.',
  }),
  REDIS_SENTINELS: Type.Optional(
    Type.String({
      pattern: '^[A-Za-z0-9._-]+:[0-9]{1,5}(,[A-Za-z0-9._-]+:[0-9]{1,5})*$',
      description: 'Sentinel mode: host:port,host:port,... of the Redis Sentinels to ask for the primary of REDIS_SENTINEL_MASTER (instead of REDIS_URL). The service follows a failover by itself.',
    }),
  ),
  REDIS_CLUSTER_NODES: Type.Optional(
    Type.String({
      pattern: '^[A-Za-z0-9._-]+:[0-9]{1,5}(,[A-Za-z0-9._-]+:[0-9]{1,5})*$',
      description:
        'Cluster mode: host:port,host:port,... of some nodes of a Redis Cluster (instead of REDIS_URL or REDIS_SENTINELS); the service finds the rest. ' +
        'Each namespace lives in one hash slot, so namespaces spread over the primaries. The service follows failovers and slot moves by itself.',
    }),
  ),
  REDIS_SENTINEL_MASTER: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$', description: 'Sentinel mode: the name the sentinels monitor the primary under (sentinel monitor <name> ...).' })),
  REDIS_PASSWORD: Type.Optional(Type.String({ minLength: 1, description: 'Password of the Redis servers (primary and replicas); with REDIS_URL, used when the URL carries none.' })),
  REDIS_SENTINEL_PASSWORD: Type.Optional(Type.String({ minLength: 1, description: 'Sentinel mode: password of the sentinels themselves (their requirepass), if any.' })),
  REDIS_MIN_REPLICAS: int(0, 0, 16, 'Above 0, a state change answers 2xx only once this many replicas confirm it (Redis WAIT); when fewer do within REDIS_REPLICA_ACK_TIMEOUT_MS the answer is 503 backend_unavailable. Needs REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES; in Cluster mode each write waits for the replicas of its own shard.'),
  REDIS_REPLICA_ACK_TIMEOUT_MS: int(500, 1, 60000, 'How long a state change waits for REDIS_MIN_REPLICAS replicas to confirm it (less than REDIS_COMMAND_TIMEOUT_MS).'),
  REDIS_COMMAND_TIMEOUT_MS: int(2000, 100, 60000, 'A Redis call that takes longer fails the request with 503 backend_unavailable.'),
  TTL_DEFAULT_MS: int(15000, 1, 86400000, 'ttlMs when a request gives none.'),
  TTL_MIN_MS: int(1000, 1, 86400000, 'Smallest ttlMs accepted.'),
  TTL_MAX_MS: int(300000, 1, 86400000, 'Largest ttlMs accepted.'),
  MAX_HOLD_DEFAULT_MS: int(86400000, 1, 31536000000, 'maxHoldMs when a request gives none.'),
  MAX_HOLD_MIN_MS: int(1000, 1, 31536000000, 'Smallest maxHoldMs accepted.'),
  MAX_HOLD_MAX_MS: int(604800000, 1, 31536000000, 'Largest maxHoldMs accepted.'),
  LOCK_DELAY_MAX_MS: int(60000, 0, 3600000, 'Largest lockDelayMs accepted.'),
  WAIT_MAX_MS: int(60000, 0, 600000, 'Largest waitMs accepted.'),
  MAX_ATTEMPTS_DEFAULT: int(3, 1, 100, 'action.maxAttempts when a request gives none.'),
  MAX_ATTEMPTS_MAX: int(100, 1, 10000, 'Largest action.maxAttempts accepted.'),
  BODY_LIMIT_BYTES: int(1048576, 1024, 67108864, 'Largest request body; larger ones get 413 payload_too_large.'),
  PAYLOAD_LIMIT_BYTES: int(65536, 16, 16777216, 'Largest action.payload, as JSON bytes.'),
  PROGRESS_LIMIT_BYTES: int(16384, 16, 16777216, 'Largest renew progress checkpoint, as JSON bytes.'),
  LIST_LIMIT_DEFAULT: int(100, 1, 1000, 'limit of a listing when the request gives none.'),
  LIST_LIMIT_MAX: int(1000, 1, 10000, 'Largest limit of a listing.'),
  TOMBSTONE_TTL_MS: int(3600000, 3600000, 604800000, 'How long an ended lease still answers with its tombstone (at least one hour).'),
  REAPER_INTERVAL_MS: int(1000, 50, 60000, 'The reaper sweeps at least this often (sooner when a lease is due sooner): an orphan is published within one interval of its expiry.'),
  REAPER_BATCH: int(500, 1, 100000, 'Expired leases one sweep call handles at most (bounds the time Redis is busy).'),
  REAPER_LOCK_MS: int(5000, 500, 600000, 'How long the reaper leader\'s redlock lasts unless extended: when the leader dies, another replica leads after at most this long.'),
  STREAM_MAX_BYTES: int(134217728, 1048576, 17179869184, 'The events and orphans streams are each trimmed to about this many bytes of Redis memory (each sweep checks a sampled MEMORY USAGE): an event names up to 64 paths of 512 characters, so a count alone does not bound them.'),
  STREAM_MAX_AGE_MS: int(86400000, 60000, 2592000000, 'The events and orphans streams also drop entries older than this (each sweep trims them).'),
  STREAM_MAX_ENTRIES: int(100000, 100, 10000000, 'The events and orphans streams are trimmed to about this many entries.'),
  WAITERS_MAX: int(1000, 1, 1000000, 'Waiting requests (acquires with waitMs, claims with waitMs) one replica holds open at once; more get 429 rate_limited.'),
  WAITERS_MAX_PER_HOLDER: int(100, 1, 1000000, 'Waiting requests of one holder (of one token, with AUTH=on) one replica holds open at once; more get 429 rate_limited.'),
  HOLDER_RENEW_MAX: int(500, 1, 100000, 'Leases one holder renew call renews at most (fewer when leases without an action have many index entries to move); the answer says how many are left and where to go on.'),
  EVENT_STREAMS_MAX: int(1000, 1, 1000000, 'Open event streams (GET /v1/events) one replica serves at once; more get 429 rate_limited.'),
  EVENT_STREAMS_MAX_PER_CLIENT: int(16, 1, 1000000, 'Open event streams from one client address (of one token, with AUTH=on) on one replica; more get 429 rate_limited.'),
  EVENT_STREAM_BUFFER_BYTES: int(1048576, 16384, 268435456, 'Unsent bytes an event stream may queue for a client that does not read; past it the stream is dropped, not buffered.'),
  HTTP_REQUEST_TIMEOUT_MS: int(30000, 1000, 600000, 'A client must send its whole request (headers and body) within this long, or the connection is closed (slow-body clients).'),
  HTTP_HEADERS_TIMEOUT_MS: int(10000, 1000, 600000, 'A client must send its request headers within this long (at most HTTP_REQUEST_TIMEOUT_MS).'),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(72000, 1000, 600000, 'An idle keep-alive connection is closed after this long (longer than a load balancer\'s idle timeout, so it closes first).'),
  HTTP_MAX_CONNECTIONS: int(10000, 1, 1000000, 'Open client connections one replica accepts; further ones are refused at once.'),
  LOAD_SHED_EVENT_LOOP_DELAY_MS: int(1000, 10, 60000, 'When the event loop lags more than this, new requests get 503 backend_unavailable with Retry-After until it recovers (@fastify/under-pressure); /healthz stays up.'),
  SHUTDOWN_GRACE_MS: int(10000, 0, 600000, 'How long a SIGTERM waits for in-flight requests before closing anyway.'),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info', description: 'pino log level.' },
  ),
});

export type Config = Static<typeof ConfigSchema>;

export class ConfigError extends Error {}

/**
 * Reads the configuration from an environment-like object. Unknown variables are ignored;
 * a bad value throws a ConfigError whose one-line message names the variable.
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const raw: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(ConfigSchema.properties) as [string, TSchema][]) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    raw[name] = schema.type === 'integer' ? parseIntegerOrKeep(text) : text;
  }
  const config = Value.Default(ConfigSchema, raw) as Record<string, unknown>;
  const firstError = Value.Errors(ConfigSchema, config).First();
  if (firstError) {
    const name = firstError.path.replace(/^\//, '');
    throw new ConfigError(`invalid ${name}=${JSON.stringify(env[name] ?? '')}: ${firstError.message}`);
  }
  return checkRanges(config as Config);
}

function parseIntegerOrKeep(text: string): number | string {
  return /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : text;
}

function checkRanges(config: Config): Config {
  const pairs: [keyof Config, keyof Config][] = [
    ['TTL_MIN_MS', 'TTL_DEFAULT_MS'],
    ['TTL_DEFAULT_MS', 'TTL_MAX_MS'],
    ['MAX_HOLD_MIN_MS', 'MAX_HOLD_DEFAULT_MS'],
    ['MAX_HOLD_DEFAULT_MS', 'MAX_HOLD_MAX_MS'],
    ['MAX_ATTEMPTS_DEFAULT', 'MAX_ATTEMPTS_MAX'],
    ['LIST_LIMIT_DEFAULT', 'LIST_LIMIT_MAX'],
    ['WAITERS_MAX_PER_HOLDER', 'WAITERS_MAX'],
    ['EVENT_STREAMS_MAX_PER_CLIENT', 'EVENT_STREAMS_MAX'],
    ['HTTP_HEADERS_TIMEOUT_MS', 'HTTP_REQUEST_TIMEOUT_MS'],
  ];
  for (const [low, high] of pairs) {
    if ((config[low] as number) > (config[high] as number)) {
      throw new ConfigError(`invalid ${low}=${config[low]}: must not exceed ${high}=${config[high]}`);
    }
  }
  return checkAuth(checkRedisMode(config));
}

/** Addresses that only this machine reaches. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Secure by default: no access control only on loopback, unless AUTH=none says so. */
function checkAuth(config: Config): Config {
  if (config.AUTH === undefined && !isLoopback(config.HOST)) {
    throw new ConfigError(
      `invalid HOST=${config.HOST}: other machines could reach it, and access control is off; set AUTH=on (bearer tokens), or AUTH=none to serve without access control`,
    );
  }
  const jwtSettings = (['AUTH_JWT_PUBLIC_KEY_FILE', 'AUTH_JWKS_FILE', 'AUTH_JWT_ISSUER', 'AUTH_JWT_AUDIENCE'] as const).filter((name) => config[name] !== undefined);
  if (config.AUTH !== 'on' && jwtSettings.length > 0) throw new ConfigError(`invalid ${jwtSettings[0]}: JWTs are checked only with AUTH=on`);
  if (config.AUTH_JWT_PUBLIC_KEY_FILE && config.AUTH_JWKS_FILE) throw new ConfigError('invalid AUTH_JWKS_FILE: set either AUTH_JWT_PUBLIC_KEY_FILE or AUTH_JWKS_FILE, not both');
  if ((config.AUTH_JWT_ISSUER || config.AUTH_JWT_AUDIENCE) && !config.AUTH_JWT_PUBLIC_KEY_FILE && !config.AUTH_JWKS_FILE) {
    throw new ConfigError('missing AUTH_JWT_PUBLIC_KEY_FILE: AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE need a key to check JWTs with');
  }
  return config;
}

/** True when no Redis is named: the service starts and manages its own redis-server. */
export function usesManagedRedis(config: Config): boolean {
  return !config.REDIS_URL && !config.REDIS_SENTINELS && !config.REDIS_CLUSTER_NODES;
}

/** One way to reach Redis: REDIS_URL, or Sentinel (both variables), or Cluster, or the managed redis-server. */
function checkRedisMode(config: Config): Config {
  const named = [config.REDIS_URL && 'REDIS_URL', config.REDIS_SENTINELS && 'REDIS_SENTINELS', config.REDIS_CLUSTER_NODES && 'REDIS_CLUSTER_NODES'].filter(Boolean);
  if (named.length > 1) throw new ConfigError(`invalid ${named[named.length - 1]}: set one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES, not ${named.join(' and ')}`);
  if (config.REDIS_SENTINELS && !config.REDIS_SENTINEL_MASTER) throw new ConfigError('missing REDIS_SENTINEL_MASTER: REDIS_SENTINELS needs the name of the primary the sentinels monitor');
  if (config.REDIS_SENTINEL_MASTER && !config.REDIS_SENTINELS) throw new ConfigError('missing REDIS_SENTINELS: REDIS_SENTINEL_MASTER needs the sentinels to ask');
  if (config.REDIS_MIN_REPLICAS > 0 && usesManagedRedis(config)) {
    throw new ConfigError(`invalid REDIS_MIN_REPLICAS=${config.REDIS_MIN_REPLICAS}: the managed redis-server has no replicas; set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES`);
  }
  if (config.REDIS_MIN_REPLICAS > 0 && config.REDIS_REPLICA_ACK_TIMEOUT_MS >= config.REDIS_COMMAND_TIMEOUT_MS) {
    throw new ConfigError(
      `invalid REDIS_REPLICA_ACK_TIMEOUT_MS=${config.REDIS_REPLICA_ACK_TIMEOUT_MS}: must be less than REDIS_COMMAND_TIMEOUT_MS=${config.REDIS_COMMAND_TIMEOUT_MS}`,
    );
  }
  return config;
}
