// lease tokens create | ls | revoke: the service tokens of access control (AUTH=on). These
// commands talk to Redis, not to the service: whoever can reach its Redis controls it anyway,
// so no first token is needed to make the first token. They read the same variables as the
// service (REDIS_URL, or REDIS_SENTINELS..., or the managed redis-server under DATA_DIR, and
// KEY_PREFIX), so run them where the service runs: `kubectl exec deploy/lease-service -- ...`.
import type { Command } from 'commander';
import { Option } from 'commander';
import type { RedisClient } from '../redis/connection.js';
import { ROLES, type GrantClaimsValue, type Role } from '../auth/grants.js';
import { ServiceTokens, tokenKeys, type TokenRecord } from '../auth/service-tokens.js';
import { ConfigError, loadConfig, usesManagedRedis } from '../config.js';
import { createRedisClient, redisTargetOf, waitUntilReady } from '../redis/connection.js';
import { embeddedRedisUrl } from '../redis/embedded.js';
import { UsageError } from './exit-codes.js';
import { integer, list } from './options.js';
import { makeOutput, printJson, printLine, printTable, type Output } from './output.js';

const REDIS_WAIT_MS = 5000;

interface CreateOptions {
  role: Role;
  holder?: string;
  kinds?: string[];
  payload?: boolean;
  ttl?: number;
  description?: string;
}

export function registerTokenCommands(program: Command): void {
  const tokens = program
    .command('tokens')
    .description("service tokens of access control (AUTH=on), kept in the service's Redis: create, ls, revoke")
    .addHelpText(
      'after',
      '\nThese commands reach Redis as the service does (REDIS_URL, REDIS_SENTINELS and REDIS_SENTINEL_MASTER, REDIS_CLUSTER_NODES, REDIS_PASSWORD, ' +
        'KEY_PREFIX; or the managed redis-server under DATA_DIR), not the service itself: run them where the service runs.',
    );

  tokens
    .command('create')
    .description(
      "make a token and print it (the only time it is shown; Redis keeps only a hash of it). The global --namespace, required here, " +
        "names the namespaces it may use: one, several comma-separated, or '*' for all",
    )
    .addOption(new Option('--role <role>', 'what it may do').choices([...ROLES]).makeOptionMandatory())
    .option('--holder <glob>', "conductor: the holders it may act as, * matching any run of characters (e.g. 'conductor-*')")
    .option('--kinds <kinds>', 'conductor: the orphan kinds it may claim, comma-separated (default: all)', list)
    .option('--payload', 'reader: show action payloads and progress (hidden by default)')
    .option('--ttl <ms>', 'it stops working this long after now (default: never)', integer)
    .option('--description <text>', 'what it is for, shown by ls')
    .action(async (options: CreateOptions, command: Command) => {
      const out = outputOf(command);
      const grant = grantOf(options, namespacesOf(command));
      await withTokens(async (store) => {
        const { token, record } = await store.create(grant, {
          ...(options.ttl !== undefined ? { ttlMs: options.ttl } : {}),
          ...(options.description !== undefined ? { description: options.description } : {}),
        });
        if (out.json) return printJson({ token, ...withoutHash(record) });
        process.stderr.write(`Token ${record.id} (${describeGrant(record)}). It is shown once; keep it secret:\n`);
        printLine(token);
      });
    });

  tokens
    .command('ls')
    .description('list the tokens (never their secrets)')
    .action(async (_options: unknown, command: Command) => {
      const out = outputOf(command);
      await withTokens(async (store) => {
        const records = await store.list();
        if (out.json) return printJson(records.map(withoutHash));
        if (records.length === 0) return printLine('No tokens.');
        printTable(
          out,
          ['ID', 'ROLE', 'NAMESPACES', 'HOLDERS', 'KINDS', 'CREATED', 'EXPIRES', 'DESCRIPTION'],
          records.map((r) => [
            r.id,
            r.role,
            r.namespaces === '*' ? '*' : r.namespaces.join(','),
            r.holders ?? '-',
            r.kinds === undefined ? '-' : r.kinds === '*' ? '*' : r.kinds.join(','),
            r.createdAt,
            r.expiresAt === undefined ? 'never' : new Date(r.expiresAt).toISOString(),
            r.description ?? '',
          ]),
        );
      });
    });

  tokens
    .command('revoke')
    .description('revoke a token by its id: every replica refuses it from the next request on')
    .argument('<id>', 'the token id (the part after lst_ and before the dot, as ls shows it)')
    .action(async (id: string, _options: unknown, command: Command) => {
      const out = outputOf(command);
      await withTokens(async (store) => {
        if (!(await store.revoke(id))) throw new UsageError(`No token ${id}.`);
        if (out.json) printJson({ revoked: id });
        else printLine(`Revoked ${id}.`);
      });
    });
}

function outputOf(command: Command): Output {
  return makeOutput(command.optsWithGlobals<{ json?: boolean }>().json === true);
}

/** The global --namespace, as given on this command line (never its default: a token's reach is said out loud). */
function namespacesOf(command: Command): string[] {
  let root = command;
  while (root.parent) root = root.parent;
  if (root.getOptionValueSource('namespace') !== 'cli') {
    throw new UsageError("Say which namespaces the token may use: --namespace cell-1 (several: --namespace cell-1,cell-2; all: --namespace '*').");
  }
  return command
    .optsWithGlobals<{ namespace: string }>()
    .namespace.split(',')
    .map((ns) => ns.trim())
    .filter((ns) => ns !== '');
}

function grantOf(options: CreateOptions, namespaces: string[]): GrantClaimsValue {
  if (options.role === 'conductor' && options.holder === undefined) throw new UsageError("A conductor token needs --holder, e.g. --holder 'conductor-*'.");
  if (options.role !== 'conductor' && (options.holder !== undefined || options.kinds !== undefined)) {
    throw new UsageError('--holder and --kinds are for conductor tokens.');
  }
  if (options.payload && options.role !== 'reader') throw new UsageError('--payload is for reader tokens (the others see payloads anyway).');
  return {
    role: options.role,
    namespaces: namespaces.includes('*') ? '*' : namespaces,
    ...(options.holder !== undefined ? { holders: options.holder } : {}),
    ...(options.kinds !== undefined ? { kinds: options.kinds } : {}),
    ...(options.payload ? { payload: true } : {}),
  };
}

function describeGrant(record: TokenRecord): string {
  const namespaces = record.namespaces === '*' ? 'every namespace' : `namespaces ${record.namespaces.join(', ')}`;
  return `${record.role}, ${namespaces}${record.holders !== undefined ? `, holders ${record.holders}` : ''}`;
}

function withoutHash(record: TokenRecord): Omit<TokenRecord, 'secretHash'> {
  const { secretHash: _secretHash, ...rest } = record;
  return rest;
}

/** Connects to the service's Redis as the service would, runs `work`, disconnects. */
async function withTokens(work: (store: ServiceTokens) => Promise<void>): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
  let managedUrl: string | undefined;
  if (usesManagedRedis(config)) {
    managedUrl = embeddedRedisUrl(config.DATA_DIR) ?? undefined;
    if (managedUrl === undefined) {
      throw new UsageError(`No REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES, and no managed redis-server under DATA_DIR=${config.DATA_DIR}: start the service first, or set REDIS_URL.`);
    }
  }
  const redis: RedisClient = createRedisClient({ target: redisTargetOf(config, managedUrl), commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS });
  redis.on('error', () => {});
  try {
    await waitUntilReady(redis, REDIS_WAIT_MS);
    await work(new ServiceTokens(redis, tokenKeys(config.KEY_PREFIX)));
  } finally {
    redis.disconnect();
  }
}
