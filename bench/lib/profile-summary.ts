// Where the service spent its CPU: self time in the V8 CPU profiles (.cpuprofile) that
// `--profile` makes the service write when it exits, by package or source file and by
// function, as shares of the time it was not idle. A first pointer for tuning; open the
// files in Chrome DevTools or speedscope for the whole tree. (The service runs through
// tsx, so line numbers are those of the transpiled code.)
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './service-process.js';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

function shortUrl(url: string): string {
  return url.replace(`file://${REPO_ROOT}`, '').replace(/^.*node_modules\//, 'node_modules/');
}

/** node_modules/fastify/lib/x.js -> fastify; src/leases/routes.ts -> itself; node:net -> node:net. */
function owner(url: string): string {
  if (url === '') return '(V8 and natives)';
  const short = shortUrl(url);
  const pkg = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(short);
  return pkg ? pkg[1]! : short;
}

function top(counts: Map<string, number>, total: number, n: number): string[] {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, hits]) => `${((100 * hits) / total).toFixed(1).padStart(5)} %  ${name}`);
}

/** Lines: the busiest owners (packages, source files), then the busiest functions. */
export function summarizeProfiles(dir: string, n = 15): string[] {
  const byFunction = new Map<string, number>();
  const byOwner = new Map<string, number>();
  let busy = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: ProfileNode[] };
    for (const node of profile.nodes) {
      const hits = node.hitCount ?? 0;
      const { functionName, url, lineNumber } = node.callFrame;
      if (hits === 0 || functionName === '(idle)') continue;
      const name = `${functionName || '(anonymous)'}${url ? ` ${shortUrl(url)}:${lineNumber + 1}` : ''}`;
      byFunction.set(name, (byFunction.get(name) ?? 0) + hits);
      byOwner.set(owner(url), (byOwner.get(owner(url)) ?? 0) + hits);
      busy += hits;
    }
  }
  if (busy === 0) return ['(no samples: did the service exit normally?)'];
  return ['by package or file:', ...top(byOwner, busy, n).map((l) => `  ${l}`), 'by function:', ...top(byFunction, busy, n).map((l) => `  ${l}`)];
}
