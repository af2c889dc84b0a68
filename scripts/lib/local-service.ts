// The service (`node --import tsx src/main.ts`) run in the foreground against a local Redis
// topology, as `npm run ha` and `npm run cluster` do: it stops on Ctrl-C or SIGTERM (the
// service first, then the topology), and when the service exits by itself.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface LocalService {
  /** True once stopping began: no new work on the topology then. */
  stopping(): boolean;
}

/** Starts the service with `env` (the topology's variables, REDIS_MIN_REPLICAS=1 unless the environment says otherwise). */
export function runLocalService(env: Record<string, string>, stopTopology: () => Promise<void>): LocalService {
  const service = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    stdio: 'inherit',
    env: { REDIS_MIN_REPLICAS: '1', ...process.env, ...env },
  });
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    if (service.exitCode === null) {
      service.kill('SIGTERM');
      // It drains its requests first; one that hangs is killed after 30 s.
      const hung = setTimeout(() => service.kill('SIGKILL'), 30_000);
      await new Promise((resolve) => service.once('exit', resolve));
      clearTimeout(hung);
    }
    await stopTopology();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  service.once('exit', (code) => void stop(code ?? 1));
  return { stopping: () => stopping };
}
