// Loads the Lua scripts beside this module as one Redis Functions library: each
// `verb-N.lua` (N = number of KEYS) becomes a function of it, called with FCALL. The shared
// code (`--- @include "includes/x"` lines) is defined once, at the library's top, rather
// than again on every call as it was with EVALSHA (about 9 µs of each call went on defining
// some 400 lines of functions). Redis keeps a library across restarts (in its append-only
// file) and hands it to its replicas; a Redis that lacks it anyway (flushed, a new cluster
// primary) is given it again at the first call that finds it missing.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { primariesOf, type RedisClient } from '../redis/connection.js';

export interface LuaScript {
  /** camelCase of the file's verb: "renewHolder" for renew-holder-1.lua. */
  name: string;
  numberOfKeys: number;
  /** The script's own file: its header (what KEYS and ARGV it takes) and its body. */
  source: string;
  /** What it is registered as: unique to this version of the library. */
  functionName: string;
}

export interface LuaLibrary {
  /** "lease_<hash of the source>": two versions of the service (a rolling deploy) each find their own. */
  name: string;
  /** What FUNCTION LOAD is given. */
  source: string;
  scripts: LuaScript[];
}

const LUA_DIR = fileURLToPath(new URL('./lua/', import.meta.url));
const INCLUDE = /^--- @include "([\w/-]+)"\s*$/gm;
/** A script's first line may give its Redis flags, as for EVAL: `#!lua flags=allow-oom`. */
const SHEBANG = /^#!lua(?: flags=([\w,-]*))?\n/;

/** Libraries built, by folder: start-up, the app and its health route all ask for the same one. */
const built = new Map<string, LuaLibrary>();

/** The library of the scripts in `dir`, built once per process. */
export function loadLibrary(dir = LUA_DIR): LuaLibrary {
  let library = built.get(dir);
  if (!library) {
    library = buildLibrary(dir);
    built.set(dir, library);
  }
  return library;
}

function buildLibrary(dir: string): LuaLibrary {
  const files = readdirSync(dir)
    .filter((file) => /^[a-z-]+-\d+\.lua$/.test(file))
    .sort();
  const texts = files.map((file) => readFileSync(join(dir, file), 'utf8'));
  // Every include once, each after those it includes, in the order the scripts first ask.
  const includeLines = texts.flatMap((text) => text.match(INCLUDE) ?? []).join('\n');
  const shared = expandIncludes(includeLines, dir, new Set());
  const bodies = texts.map((text) => text.replace(SHEBANG, '').replace(INCLUDE, ''));
  // The name is a hash of the whole source, built first with a placeholder in its place:
  // any change (a body, an include, a flag, the wrapper) makes a new library.
  const build = (name: string) => {
    const scripts = files.map((file, i) => {
      const [, verb, keys] = /^([a-z-]+)-(\d+)\.lua$/.exec(file)!;
      return { name: camelCase(verb!), numberOfKeys: Number(keys), source: texts[i]!, functionName: `${name}_${verb!.replace(/-/g, '_')}` };
    });
    // Without flags a function may write and is refused while Redis refuses writes (at its
    // maxmemory, before it runs); allow-oom lets those that free memory run then, and
    // no-writes marks those that only read.
    const functions = scripts.map((script, i) => {
      const flags = (SHEBANG.exec(texts[i]!)?.[1] ?? '').split(',').filter(Boolean);
      return (
        `redis.register_function{function_name = '${script.functionName}', flags = { ${flags.map((f) => `'${f}'`).join(', ')} }, callback = function(keys, args)\n` +
        `if begin(keys, args) then return { 'too_late', nowMs() } end\n${bodies[i]!}\nend}`
      );
    });
    return { name, source: [`#!lua name=${name}`, shared, ...functions].join('\n'), scripts };
  };
  const hash = createHash('sha1').update(build('lease_LIBRARY').source).digest('hex').slice(0, 16);
  return build(`lease_${hash}`);
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

export type ScriptRunner = (name: string, keys: string[], args: (string | number)[]) => Promise<unknown>;

/** True when Redis does not have the function called (it lacks the library). */
export function isMissingFunction(error: unknown): boolean {
  return error instanceof Error && /^ERR Function not found/.test(error.message);
}

/** Runs the library's functions by script name, giving Redis the library first when it lacks it. */
export function defineScripts(client: RedisClient, library: LuaLibrary): ScriptRunner {
  const byName = new Map(library.scripts.map((script) => [script.name, script]));
  return async (name, keys, args) => {
    const script = byName.get(name);
    if (!script) throw new Error(`no Lua script named ${name}`);
    try {
      return await client.fcall(script.functionName, keys.length, ...keys, ...args);
    } catch (error) {
      if (!isMissingFunction(error)) throw error;
      // Nothing ran. Redis lost the library (FUNCTION FLUSH, a primary that never had it).
      await reloadLibrary(client, library);
      return client.fcall(script.functionName, keys.length, ...keys, ...args);
    }
  };
}

/** Loads in progress, by client: the calls in flight that all found the library missing share one load. */
const reloading = new WeakMap<RedisClient, Promise<unknown>>();

/** ensureLibraryLoaded, once for all the calls that ask at the same time on one client. */
export async function reloadLibrary(client: RedisClient, library: LuaLibrary): Promise<void> {
  let load = reloading.get(client);
  if (!load) {
    load = ensureLibraryLoaded(client, library).finally(() => reloading.delete(client));
    reloading.set(client, load);
  }
  await load;
}

/**
 * Loads the library into whichever primary lacks it (after a FUNCTION FLUSH every one does);
 * in Cluster mode into every primary of the slot map. Throws when no primary answers. In
 * Cluster mode one shard that is down (until its replica is promoted) does not stop the
 * others' namespaces: it is reported, not thrown.
 */
export async function ensureLibraryLoaded(client: RedisClient, library: LuaLibrary): Promise<{ primaries: number; unreachable: string[] }> {
  const primaries = primariesOf(client);
  if (primaries.length === 0) throw new Error('no Redis primary is known yet');
  const loads = await Promise.allSettled(
    primaries.map(async (primary) => {
      const present = (await primary.call('FUNCTION', 'LIST', 'LIBRARYNAME', library.name)) as unknown[];
      // LIBRARYNAME is a pattern; no other library's name holds this one's hash.
      if (present.length === 0) await primary.call('FUNCTION', 'LOAD', 'REPLACE', library.source);
    }),
  );
  const failed = loads.flatMap((load, i) => (load.status === 'rejected' ? [{ primary: primaries[i]!, reason: load.reason as Error }] : []));
  if (failed.length === primaries.length) throw failed[0]!.reason;
  return { primaries: primaries.length, unreachable: failed.map(({ primary }) => `${primary.options.host}:${primary.options.port}`) };
}
