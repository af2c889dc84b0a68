// Keeps the embedded redis-server running: if it dies (OOM killer, a stray kill -9), it is
// started again on the same port and data folder, where it reloads its append-only file,
// and the client, which reconnects by itself, finds it where it was, with the password it
// already has.
import type { FastifyBaseLogger } from 'fastify';
import { isAlive, startEmbeddedRedis, type EmbeddedRedis, type EmbeddedRedisOptions } from './embedded.js';

const CHECK_INTERVAL_MS = 500;

export class EmbeddedRedisSupervisor {
  private timer: NodeJS.Timeout | undefined;
  private restarting: Promise<void> | undefined;

  constructor(
    private server: EmbeddedRedis,
    private readonly options: EmbeddedRedisOptions,
    private readonly log: FastifyBaseLogger,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.restarting && !isAlive(this.server.pid)) this.restarting = this.restart().finally(() => (this.restarting = undefined));
    }, CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.restarting;
    await this.server.stop();
  }

  private async restart(): Promise<void> {
    this.log.error({ pid: this.server.pid, port: this.server.port }, 'the managed redis-server died; starting it again');
    try {
      this.server = await startEmbeddedRedis({ ...this.options, port: this.server.port, password: this.server.password });
      this.log.info({ pid: this.server.pid, port: this.server.port }, 'redis-server started again from its append-only file');
    } catch (error) {
      this.log.error({ err: (error as Error).message }, 'could not start redis-server again; retrying');
    }
  }
}
