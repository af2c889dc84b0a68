// Loads the Lua scripts beside this module: each `verb-N.lua` (N = number of KEYS) becomes
// an ioredis command run by EVALSHA, falling back to EVAL after Redis lost its script cache.
// `--- @include "includes/x"` lines are replaced by that file, each at most once per script.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { primariesOf, type RedisClient } from '../redis/connection.js';

export interface LuaScript {
  name: string;
  numberOfKeys: number;
  source: string;
  sha: string;
}

const LUA_DIR = fileURLToPath(new URL('./lua/', import.meta.url));
const INCLUDE = /^--- @include "([\w/-]+)"\s*$/gm;

export function loadScripts(dir = LUA_DIR): LuaScript[] {
  return readdirSync(dir)
    .filter((file) => /^[a-z-]+-\d+\.lua$/.test(file))
    .map((file) => {
      const [, name, keys] = /^([a-z-]+)-(\d+)\.lua$/.exec(file)!;
      const source = expandIncludes(readFileSync(join(dir, file), 'utf8'), dir, new Set());
      return { name: camelCase(name!), numberOfKeys: Number(keys), source, sha: sha1(source) };
    });
}

function expandIncludes(source: string, dir: string, included: Set<string>): string {
  return source.replace(INCLUDE, (_line, name: string) => {
    if (included.has(name)) return '';
    included.add(name);
    return expandIncludes(readFileSync(join(dir, `${name}.lua`), 'utf8'), dir, included);
  });
}

function camelCase(name: string): string {
  return name.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

export type ScriptRunner = (name: string, keys: string[], args: (string | number)[]) => Promise<unknown>;

/** Defines every script on the client and returns a typed-enough way to run them by name. */
export function defineScripts(client: RedisClient, scripts: LuaScript[]): ScriptRunner {
  // Prefixed, so a script called "get" never shadows the client's own GET.
  const commandName = (name: string) => `lease_${name}`;
  for (const script of scripts) {
    client.defineCommand(commandName(script.name), { numberOfKeys: script.numberOfKeys, lua: script.source });
  }
  const commands = client as unknown as Record<string, (...args: (string | number)[]) => Promise<unknown>>;
  return (name, keys, args) => {
    const command = commands[commandName(name)];
    if (!command) throw new Error(`no Lua script named ${name}`);
    return command.call(client, ...keys, ...args);
  };
}

/**
 * Loads into Redis' script cache whatever it lacks (after a restart it lacks all); in Cluster
 * mode into every primary's (a promoted replica, or a primary added later, starts empty).
 * Throws when no primary answers. In Cluster mode one shard that is down (until its replica
 * is promoted) does not stop the others' namespaces: it is reported, not thrown.
 */
export async function ensureScriptsLoaded(client: RedisClient, scripts: LuaScript[]): Promise<{ primaries: number; unreachable: string[] }> {
  const primaries = primariesOf(client);
  if (primaries.length === 0) throw new Error('no Redis primary is known yet');
  const loads = await Promise.allSettled(
    primaries.map(async (primary) => {
      const present = (await primary.script('EXISTS', ...scripts.map((s) => s.sha))) as number[];
      await Promise.all(scripts.filter((_, i) => present[i] !== 1).map((s) => primary.script('LOAD', s.source)));
    }),
  );
  const failed = loads.flatMap((load, i) => (load.status === 'rejected' ? [{ primary: primaries[i]!, reason: load.reason as Error }] : []));
  if (failed.length === primaries.length) throw failed[0]!.reason;
  return { primaries: primaries.length, unreachable: failed.map(({ primary }) => `${primary.options.host}:${primary.options.port}`) };
}
