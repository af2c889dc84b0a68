// A private single-member etcd for the benchmark's etcd baseline (bench/scenarios/etcd.ts):
// the `etcd` found on PATH (Debian's etcd-server; `bash scripts/setup.sh --bench` installs
// it), listening on loopback only, on two free ports (clients, peers), with a unique name
// and cluster token and a fresh temporary data folder that stop() removes again. Like the
// private redis-server it is detached from our process group (a Ctrl-C reaches only us, and
// the cleanup steps stop it) and killed, its folder removed, if this process exits without
// calling stop(). etcd runs as shipped: its write-ahead log is fsynced on every write.
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findFreePort } from '../../src/redis/embedded.js';
import { trackChild } from './cleanup.js';
import { processCpuSeconds, stopChild, watchChild, type ChildServer } from './service-process.js';

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
/** Attempts at starting it: a free port may be taken between findFreePort and etcd's bind. */
const START_ATTEMPTS = 3;

export interface PrivateEtcd extends ChildServer {
  dataDir: string;
  /** e.g. "3.4.23" (the first line of `etcd --version`). */
  version: string;
}

/** The executable `name` as the shell would find it on PATH (no fallback folders: off PATH is "not installed"). */
export function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(isAbsolute)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

/** "3.4.23" from `etcd --version` ("etcd Version: 3.4.23"); "unknown" if it says something else. */
export function etcdVersion(executable: string): string {
  try {
    const text = execFileSync(executable, ['--version'], { encoding: 'utf8', timeout: 10_000, env: etcdEnv() });
    return /Version:\s*(\S+)/.exec(text)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** This process's environment less ETCD_* (etcd refuses to start when one shadows a flag we pass). */
function etcdEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined && !name.startsWith('ETCD_')) env[name] = value;
  return env;
}

export async function startPrivateEtcd(executable: string, label: string): Promise<PrivateEtcd> {
  const version = etcdVersion(executable);
  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    try {
      return await launch(executable, label, version);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

async function launch(executable: string, label: string, version: string): Promise<PrivateEtcd> {
  const clientPort = await findFreePort();
  let peerPort = await findFreePort();
  while (peerPort === clientPort) peerPort = await findFreePort();
  const dataDir = mkdtempSync(join(tmpdir(), `${label}-`));
  // Unique per start: a stray etcd of another run can never take this one for a peer.
  const name = `${label}-${process.pid}-${clientPort}`;
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', name,
    '--data-dir', join(dataDir, 'data'),
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `${name}=${peerUrl}`,
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', name,
    '--logger', 'zap',
    '--log-outputs', 'stderr',
    '--log-level', 'warn',
  ];
  const env = etcdEnv();
  const child = spawn(executable, args, { cwd: dataDir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) {
    rmSync(dataDir, { recursive: true, force: true });
    throw new Error(`could not start ${executable}`);
  }
  const pid = child.pid;
  const tracked = trackChild(pid, dataDir);
  const watched = watchChild(child);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await stopChild(child, watched, STOP_TIMEOUT_MS);
      rmSync(dataDir, { recursive: true, force: true });
      tracked.forget();
    })());

  const server: PrivateEtcd = {
    name: 'etcd',
    url: clientUrl,
    pid,
    env,
    dataDir,
    version,
    alive: () => watched.exit() === undefined,
    cpuSeconds: () => processCpuSeconds(pid),
    output: () => watched.output(),
    stop,
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await healthy(clientUrl))) {
    const exit = watched.exit();
    if (exit) {
      await stop();
      throw new Error(`etcd exited at start (code ${exit.code}, signal ${exit.signal}):\n${server.output()}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`etcd was not healthy within ${START_TIMEOUT_MS} ms:\n${server.output()}`);
    }
    await sleep(100);
  }
  return server;
}

/** GET /health answers 200 with {"health":"true"} (a fresh connection each time). */
function healthy(baseUrl: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = get(`${baseUrl}/health`, { agent: false, timeout: 1_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        if (response.statusCode !== 200) return resolve(false);
        try {
          resolve((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { health?: unknown }).health === 'true');
        } catch {
          resolve(false);
        }
      });
      response.on('error', () => resolve(false));
    });
    request.on('error', () => resolve(false));
    request.on('timeout', () => request.destroy());
  });
}
