// `npm run demo`: the design list's story (two resizes in one millisecond, a volume delete
// held off, a conductor killed with SIGKILL and its action taken over, its late write
// fenced off) played by real processes against the real service with its own Redis, printed
// as a timeline. It checks its own story: exit 0 when every act happened as told, 1 with
// the reason when one did not. Runs built (dist/demo/main.js) or from source
// (`node --import tsx src/demo/main.ts`).
import { StoryError } from './checks.js';
import { openStage, type Stage } from './stage.js';
import { CONDUCTORS, INSTANCE, playStory } from './story.js';
import { Timeline } from './timeline.js';
import { wallClock } from './protocol.js';

/** Short, so the whole story takes seconds; the service's minimum is 1000. */
const TTL_MS = 2000;
/** The reaper publishes an orphan within one interval of its lease's expiry. */
const REAPER_INTERVAL_MS = 100;

async function main(): Promise<number> {
  const timeline = new Timeline();
  timeline.say('Lease service demo: the design list\'s resize story, with real conductor processes', 'bold');
  let stage: Stage | undefined;
  let interrupted = false;
  // Ctrl-C: take everything down rather than leave a service and its Redis behind.
  process.once('SIGINT', () => {
    interrupted = true;
    timeline.say('\nInterrupted: stopping the conductors, the service and its redis-server.', 'yellow');
    // While the stage is still being set up, the flow below takes it down once it is up.
    if (stage) void stage.tearDown().finally(() => process.exit(130));
  });
  try {
    stage = await openStage({ ttlMs: TTL_MS, reaperIntervalMs: REAPER_INTERVAL_MS, watchPrefix: INSTANCE, conductors: CONDUCTORS });
    if (interrupted) return 130;
    timeline.say(
      `  service ${stage.service.url} (pid ${stage.service.pid}) with its own redis-server (pid ${stage.service.redisPid ?? '?'}) in ${stage.dataDir}\n` +
        `  hypervisor ${stage.hypervisor.url}; leases live ${TTL_MS} ms without a heartbeat; the reaper looks every ${REAPER_INTERVAL_MS} ms\n` +
        '  access control on (AUTH=on): the demo calls with an operator token, the hypervisor checks fencing with a resource-server token,\n' +
        '  and each conductor has a conductor token that may act as its own holder name only',
      'dim',
    );
    await playStory(stage, timeline);
    timeline.say(`\nThe story happened as told, in ${(timeline.since(wallClock()) / 1000).toFixed(1)} s.`, 'green', 'bold');
    return 0;
  } catch (error) {
    // The teardown under way makes the story fail; that is not news.
    if (interrupted) return 130;
    // A StoryError says what did not happen; anything else is the demo's own bug, with its stack.
    const why = error instanceof StoryError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    timeline.say(`\nThe story broke in ${timeline.current}: ${why}`, 'red', 'bold');
    const serviceSaid = stage?.service.output().trim();
    if (serviceSaid) timeline.say(`The service printed:\n${serviceSaid}`, 'dim');
    return 1;
  } finally {
    await stage?.tearDown();
  }
}

process.exitCode = await main();
