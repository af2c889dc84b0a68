// A private redis-server for a benchmark: started by the service's own manager
// (src/redis/embedded.ts, the same flags as production: append-only file, everysec) in a
// fresh temporary data folder, which stop() removes again. The server is detached from our
// process group, so it is also killed (and its folder removed) if this process exits
// without calling stop().
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedRedis } from '../../src/redis/embedded.js';
import { trackChild } from './cleanup.js';

export interface PrivateRedis {
  url: string;
  pid: number;
  dataDir: string;
  /** Stops the server and removes its data folder; safe to call more than once. */
  stop(): Promise<void>;
}

export async function startPrivateRedis(name: string): Promise<PrivateRedis> {
  const dataDir = mkdtempSync(join(tmpdir(), `${name}-`));
  const removeDir = () => rmSync(dataDir, { recursive: true, force: true });
  let server;
  try {
    server = await startEmbeddedRedis({ dataDir });
  } catch (error) {
    removeDir();
    throw error;
  }
  const tracked = trackChild(server.pid, dataDir);
  let stopped = false;
  const embedded = server;
  return {
    url: embedded.url,
    pid: embedded.pid,
    dataDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await embedded.stop();
      } finally {
        removeDir();
        tracked.forget();
      }
    },
  };
}
