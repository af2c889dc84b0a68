// Everything the story plays on, and taking it all down again: the lease service with its
// own redis-server in a temporary folder and access control on, the tokens made for it, the
// toy hypervisor, the service's event stream, a LeaseClient for the demo's own calls, and
// the conductor processes the story starts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LeaseClient } from '../client/index.js';
import { StoryError } from './checks.js';
import { spawnConductor, type ConductorProcess } from './conductor-process.js';
import { serviceProgram } from './entry-points.js';
import { watchEvents, type EventStream } from './event-stream.js';
import { startHypervisor, type Hypervisor } from './hypervisor.js';
import type { Orders } from './protocol.js';
import { KEY_PREFIX, startService, type ServiceProcess } from './service-process.js';
import { makeTokens, type DemoTokens } from './tokens.js';

export interface StageSettings {
  ttlMs: number;
  reaperIntervalMs: number;
  /** Where the service's events are watched from (the story's instance). */
  watchPrefix: string;
  /** The conductors' holder names: each gets a token that may act as that name only. */
  conductors: readonly string[];
}

export interface Stage {
  settings: StageSettings;
  service: ServiceProcess;
  dataDir: string;
  hypervisor: Hypervisor;
  events: EventStream;
  /** The demo's own calls, with an operator's token. */
  client: LeaseClient;
  /** Starts a conductor process with its token; it is killed at teardown if still running. */
  conductor(orders: Omit<Orders, 'service' | 'hypervisor' | 'ttlMs' | 'token'>): ConductorProcess;
  /** A LeaseClient with a conductor's token: what that conductor would send, for the demo to replay. */
  clientOf(holder: string): LeaseClient;
  /** Kills whatever still runs (conductors, the service and its Redis) and removes the data folder. */
  tearDown(): Promise<void>;
}

export async function openStage(settings: StageSettings): Promise<Stage> {
  const dataDir = mkdtempSync(join(tmpdir(), 'lease-demo-'));
  const conductors: ConductorProcess[] = [];
  let service: ServiceProcess | undefined;
  let hypervisor: Hypervisor | undefined;
  let events: EventStream | undefined;
  let tokens: DemoTokens | undefined;
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
    hypervisor = await startHypervisor(() => service?.url ?? '', () => tokens?.resourceServer);
    service = await startService(serviceProgram(), { dataDir, reaperIntervalMs: settings.reaperIntervalMs });
    tokens = await makeTokens(dataDir, KEY_PREFIX, settings.conductors);
    events = await watchEvents(service.url, { prefix: settings.watchPrefix, types: ['orphaned', 'released', 'resolved'] }, tokens.operator);
  } catch (error) {
    await tearDown();
    throw error;
  }
  const started = { service, hypervisor, events, tokens };
  const tokenOf = (holder: string): string => {
    const token = started.tokens.conductors.get(holder);
    if (token === undefined) throw new StoryError(`no token was made for ${holder}: the stage's conductors are ${settings.conductors.join(', ')}`);
    return token;
  };
  return {
    settings,
    service,
    hypervisor,
    events,
    dataDir,
    client: new LeaseClient({ baseUrl: service.url, token: tokens.operator }),
    conductor(orders) {
      const conductor = spawnConductor({
        ...orders,
        service: started.service.url,
        token: tokenOf(orders.holder),
        hypervisor: started.hypervisor.url,
        ttlMs: settings.ttlMs,
      });
      conductors.push(conductor);
      return conductor;
    },
    clientOf: (holder) => new LeaseClient({ baseUrl: started.service.url, token: tokenOf(holder) }),
    tearDown,
  };
}
