// The demo's side of a conductor process: starts it and sends it its orders, reads its JSON
// lines into an EventLog the story waits on, sends it the Go line, and kills it.
import { spawn } from 'node:child_process';
import { conductorProgram } from './entry-points.js';
import { EventLog } from './event-log.js';
import type { ConductorEvent, EventName, EventOf, Go, Orders } from './protocol.js';
import type { Exit } from './service-process.js';

export interface ConductorProcess {
  name: string;
  pid: number;
  /** Its next event of this kind (that matches), failing with what it printed if it ends first. */
  next<K extends EventName>(kind: K, match?: (event: EventOf<K>) => boolean, timeoutMs?: number): Promise<EventOf<K>>;
  /** Its first event of any of these kinds (e.g. acquired or refused). */
  first<K extends EventName>(kinds: K[], timeoutMs?: number): Promise<EventOf<K>>;
  /** Whether it has reported this kind of event (that matches) so far. */
  has<K extends EventName>(kind: K, match?: (event: EventOf<K>) => boolean): boolean;
  go(signal: Go): void;
  kill(signal: NodeJS.Signals): void;
  exited: Promise<Exit>;
  running(): boolean;
}

const DEFAULT_TIMEOUT_MS = 15_000;

export function spawnConductor(orders: Orders): ConductorProcess {
  const program = conductorProgram();
  const child = spawn(program.command, program.args, { cwd: program.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  const events = new EventLog<ConductorEvent>();
  let stderr = '';
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (line.trim() !== '') events.push(JSON.parse(line) as ConductorEvent);
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // A conductor that is killed cannot read its stdin any more; that is not the demo's error.
  child.stdin.on('error', () => {});
  child.stdin.write(`${JSON.stringify(orders)}\n`);
  let exit: Exit | null = null;
  const exited = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => {
      exit = { code, signal };
      const said = events.items.map((event) => `    ${JSON.stringify(event)}`).join('\n');
      events.end(`${orders.holder} ended (${signal ?? `exit code ${code}`}) after printing:\n${said}${stderr ? `\n  stderr: ${stderr.trim()}` : ''}`);
      resolve(exit);
    }),
  );
  const matching =
    <K extends EventName>(kind: K, match?: (event: EventOf<K>) => boolean) =>
    (event: ConductorEvent): boolean =>
      event.event === kind && (match?.(event as EventOf<K>) ?? true);

  return {
    name: orders.holder,
    pid: child.pid!,
    next: (kind, match, timeoutMs = DEFAULT_TIMEOUT_MS) =>
      events.next(matching(kind, match), `${orders.holder}'s "${kind}"`, timeoutMs) as Promise<EventOf<typeof kind>>,
    first: (kinds, timeoutMs = DEFAULT_TIMEOUT_MS) =>
      events.next((event) => (kinds as EventName[]).includes(event.event), `${orders.holder}'s ${kinds.join(' or ')}`, timeoutMs) as Promise<
        EventOf<(typeof kinds)[number]>
      >,
    has: (kind, match) => events.items.some(matching(kind, match)),
    go: (signal) => child.stdin.write(`${JSON.stringify(signal)}\n`),
    kill: (signal) => {
      if (!exit) child.kill(signal);
    },
    exited,
    running: () => exit === null,
  };
}
