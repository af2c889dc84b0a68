// The Dockerfile builds and its image runs, checked without a Docker engine (none runs here):
// each stage's context is staged from its COPY lines into an empty folder (the build context
// filtered by .dockerignore, or an earlier stage's staged folder), the build stage's RUN lines
// run there, and the runtime stage's CMD starts from the staged result with the image's ENV.
// A file the build needs that the Dockerfile does not copy fails the build here as it would
// in `docker build`.
//
// What cannot be staged without an engine is left to the image: the base image, the runtime
// stage's RUN (apt-get of redis-server, here the machine's own), USER, VOLUME, HEALTHCHECK.
// Three ENV values are overridden, and the test says so: PORT (a free port), HOST (loopback
// only) and DATA_DIR (a temporary folder instead of the image's /data volume).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findFreePort } from '../src/redis/embedded.js';
import { waitFor } from './helpers/wait.js';

const ROOT = new URL('..', import.meta.url).pathname;

interface Copy {
  from: string | null;
  sources: string[];
  destination: string;
}
interface Stage {
  name: string | null;
  workdir: string;
  copies: Copy[];
  runs: string[];
  env: Record<string, string>;
  cmd: string[] | null;
}

/** The Dockerfile's stages, with the instructions this test needs; line continuations joined. */
export function parseDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [instruction = '', ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    const stage = stages.at(-1);
    switch (instruction.toUpperCase()) {
      case 'FROM': {
        const as = /\sAS\s+(\S+)$/i.exec(args);
        // A stage starts afresh (the base images' own ENV is theirs, not this file's).
        stages.push({ name: as ? as[1]! : null, workdir: '/', copies: [], runs: [], env: {}, cmd: null });
        break;
      }
      case 'WORKDIR':
        stage!.workdir = args;
        break;
      case 'COPY': {
        const words = args.split(/\s+/);
        const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length) ?? null;
        const paths = words.filter((w) => !w.startsWith('--'));
        stage!.copies.push({ from, sources: paths.slice(0, -1), destination: paths.at(-1)! });
        break;
      }
      case 'RUN':
        stage!.runs.push(args);
        break;
      case 'ENV':
        for (const pair of args.match(/\S+=("[^"]*"|\S*)/g) ?? []) {
          const at = pair.indexOf('=');
          stage!.env[pair.slice(0, at)] = pair.slice(at + 1).replace(/^"|"$/g, '');
        }
        break;
      case 'CMD':
        stage!.cmd = JSON.parse(args) as string[];
        break;
    }
  }
  return stages;
}

/** .dockerignore's patterns as a test of a context-relative path. */
function dockerIgnore(text: string): (path: string) => boolean {
  const patterns = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((pattern) => {
      const source = pattern
        .replace(/^\//, '')
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*\//g, '(?:.*/)?')
        .replace(/\*/g, '[^/]*');
      // A pattern names a path and everything below it.
      return new RegExp(`^${source}(?:/.*)?$`);
    });
  return (path) => patterns.some((pattern) => pattern.test(path));
}

/** Where a stage's absolute image path lies in the folder staging it. */
function inStage(root: string, imagePath: string): string {
  return join(root, imagePath);
}

function resolveIn(stage: Stage, path: string): string {
  return path.startsWith('/') ? path : join(stage.workdir, path);
}

/** Stages one stage's COPY lines: from the build context (minus .dockerignore) or from an earlier stage. */
function stageCopies(stage: Stage, root: string, roots: Map<string, string>, ignored: (path: string) => boolean): void {
  for (const copy of stage.copies) {
    const fromRoot = copy.from === null ? null : roots.get(copy.from);
    if (copy.from !== null && !fromRoot) throw new Error(`COPY --from=${copy.from}: no such stage`);
    const destination = inStage(root, resolveIn(stage, copy.destination));
    for (const source of copy.sources) {
      const origin = fromRoot ? inStage(fromRoot, source) : join(ROOT, source);
      if (!fromRoot && ignored(relative(ROOT, origin))) throw new Error(`COPY ${source}: excluded by .dockerignore`);
      if (!existsSync(origin)) throw new Error(`COPY ${source}: not in the ${fromRoot ? `stage ${copy.from}` : 'build context'}`);
      const into = copy.destination.endsWith('/') || copy.sources.length > 1 ? join(destination, source.split('/').at(-1)!) : destination;
      mkdirSync(dirname(into), { recursive: true });
      cpSync(origin, into, {
        recursive: true,
        filter: (path) => fromRoot !== null || !ignored(relative(ROOT, path)),
      });
    }
  }
}

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(dockerfile);
const build = stages.find((stage) => stage.name === 'build');
const runtime = stages.at(-1)!;

describe('the Dockerfile, staged without an engine', { timeout: 300_000 }, () => {
  let work: string;
  const roots = new Map<string, string>();
  let service: ReturnType<typeof spawn> | undefined;

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'lease-image-'));
  });
  after(async () => {
    if (service && service.exitCode === null) {
      service.kill('SIGTERM');
      await new Promise((resolve) => service!.once('exit', resolve));
    }
    rmSync(work, { recursive: true, force: true });
  });

  test('has a build stage and a runtime stage whose CMD runs node', () => {
    assert.ok(build, 'a stage named build');
    assert.notEqual(runtime, build);
    assert.equal(runtime.cmd?.[0], 'node');
  });

  test('the build stage builds from exactly what it copies', () => {
    const root = join(work, 'build');
    stageCopies(build!, root, roots, dockerIgnore(readFileSync(join(ROOT, '.dockerignore'), 'utf8')));
    const cwd = inStage(root, build!.workdir);
    for (const command of build!.runs) {
      const result = spawnSync('sh', ['-c', command], { cwd, env: { ...process.env, ...build!.env }, encoding: 'utf8', timeout: 240_000 });
      assert.equal(result.status, 0, `RUN ${command} failed:\n${result.stdout}\n${result.stderr}`);
    }
    roots.set('build', root);
    assert.ok(statSync(join(cwd, 'dist/main.js')).isFile());
    assert.ok(existsSync(join(cwd, 'dist/store/lua/acquire-1.lua')), 'the Lua scripts are beside the compiled store');
    assert.ok(!existsSync(join(cwd, 'node_modules/typescript')), 'dev dependencies are pruned');
  });

  test('the runtime stage, staged from the build, answers /healthz and /readyz with the image\'s ENV', async () => {
    assert.ok(roots.has('build'), 'the build stage was staged');
    const root = join(work, 'runtime');
    stageCopies(runtime, root, roots, () => false);
    const port = await findFreePort();
    const dataDir = join(work, 'data');
    const env = { PATH: process.env.PATH ?? '', ...runtime.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir };
    assert.equal(runtime.env.HOST, '0.0.0.0', 'the image binds every address (a container\'s own)');
    assert.equal(runtime.env.AUTH, 'on', 'so access control is on: a token for every /v1 call');
    let output = '';
    service = spawn(runtime.cmd![0]!, runtime.cmd!.slice(1), { cwd: inStage(root, runtime.workdir), env, stdio: ['ignore', 'pipe', 'pipe'] });
    service.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    service.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const answers = async (path: string) => {
      if (service!.exitCode !== null) throw new Error(`the service exited (${service!.exitCode}): ${output}`);
      return fetch(`http://127.0.0.1:${port}${path}`).then((res) => res.status === 200, () => false);
    };
    await waitFor(() => answers('/healthz'), { timeoutMs: 30_000, what: `/healthz of the staged image (output so far: ${output.slice(-500)})` });
    await waitFor(() => answers('/readyz'), { timeoutMs: 30_000, what: '/readyz of the staged image' });
    service.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => service!.once('exit', (exitCode) => resolve(exitCode)));
    assert.equal(code, 0, output);
  });
});

describe('.dockerignore', () => {
  test('keeps dependencies, builds, data, bench results and logs out of the build context', () => {
    const ignored = dockerIgnore(readFileSync(join(ROOT, '.dockerignore'), 'utf8'));
    for (const path of ['node_modules/fastify/package.json', 'dist/main.js', 'data/appendonlydir/x.aof', 'bench/results/latest.json', 'test/x.log', '.git/HEAD']) {
      assert.ok(ignored(path), path);
    }
    for (const path of ['src/main.ts', 'package.json', 'package-lock.json', 'tsconfig.client.json', 'scripts/copy-lua.mjs']) {
      assert.ok(!ignored(path), path);
    }
  });
});
