// Everything the story plays on, and taking it all down again: the lease service with its
// own redis-server in a temporary folder, the toy hypervisor, the service's event stream,
// a LeaseClient for the demo's own calls, and the conductor processes the story starts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LeaseClient } from '../client/index.js';
import { spawnConductor, type ConductorProcess } from './conductor-process.js';
import { serviceProgram } from './entry-points.js';
import { watchEvents, type EventStream } from './event-stream.js';
import { startHypervisor, type Hypervisor } from './hypervisor.js';
import type { Orders } from './protocol.js';
import { startService, type ServiceProcess } from './service-process.js';

export interface StageSettings {
  ttlMs: number;
  reaperIntervalMs: number;
  /** Where the service's events are watched from (the story's instance). */
  watchPrefix: string;
}

export interface Stage {
  settings: StageSettings;
  service: ServiceProcess;
  dataDir: string;
  hypervisor: Hypervisor;
  events: EventStream;
  client: LeaseClient;
  /** Starts a conductor process; it is killed at teardown if still running. */
  conductor(orders: Omit<Orders, 'service' | 'hypervisor' | 'ttlMs'>): ConductorProcess;
  /** Kills whatever still runs (conductors, the service and its Redis) and removes the data folder. */
  tearDown(): Promise<void>;
}

export async function openStage(settings: StageSettings): Promise<Stage> {
  const dataDir = mkdtempSync(join(tmpdir(), 'lease-demo-'));
  const conductors: ConductorProcess[] = [];
  let service: ServiceProcess | undefined;
  let hypervisor: Hypervisor | undefined;
  let events: EventStream | undefined;
  let tornDown: Promise<void> | undefined;
  // Once only: Ctrl-C and the end of the story may both ask for it.
  const tearDown = (): Promise<void> => (tornDown ??= takeDown());
  const takeDown = async (): Promise<void> => {
    for (const conductor of conductors) conductor.kill('SIGKILL');
    await Promise.all(conductors.map((conductor) => conductor.exited));
    events?.close();
    await hypervisor?.close();
    await service?.terminate();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    // The hypervisor asks the service at each write, so it can start first.
    hypervisor = await startHypervisor(() => service?.url ?? '');
    service = await startService(serviceProgram(), { dataDir, reaperIntervalMs: settings.reaperIntervalMs });
    events = await watchEvents(service.url, { prefix: settings.watchPrefix, types: ['orphaned', 'released', 'resolved'] });
  } catch (error) {
    await tearDown();
    throw error;
  }
  const started = { service, hypervisor, events };
  return {
    settings,
    ...started,
    dataDir,
    client: new LeaseClient({ baseUrl: service.url }),
    conductor(orders) {
      const conductor = spawnConductor({ ...orders, service: started.service.url, hypervisor: started.hypervisor.url, ttlMs: settings.ttlMs });
      conductors.push(conductor);
      return conductor;
    },
    tearDown,
  };
}
