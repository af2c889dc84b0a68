// Metrics of the state every replica shares (leases held, orphans by state, transitions
// counted inside the scripts), read from Redis at scrape time with one O(1) script call.
// Every replica reports the same values, so with several replicas scraped at once they
// are right as they stand: aggregate them with max(), not sum().
import { Counter, Gauge, type Registry } from 'prom-client';
import type { SharedStats } from '../store/lease-store.js';

const REASONS = ['expired', 'abandoned', 'revoked'] as const;
const RESOLUTIONS = ['completed', 'failed', 'discard'] as const;

export class SharedMetrics {
  private readonly leases: Gauge<'state'>;
  private readonly orphans: Gauge<'state'>;
  private readonly waiting: Gauge;
  private readonly expiries: Counter;
  private readonly revocations: Counter;
  private readonly published: Counter<'reason'>;
  private readonly claimed: Counter;
  private readonly resolved: Counter<'resolution'>;
  private readonly deadLettered: Counter;

  private registered = false;

  constructor(private readonly registry: Registry) {
    // Registered on the first successful read (see update), not before.
    const registers: Registry[] = [];
    const cluster = ' Cluster-wide, read from Redis at scrape time: every replica reports the same value.';
    this.leases = new Gauge({
      name: 'lease_leases',
      help: 'Leases holding resources, by state: active (held by a live holder or a claimer) or orphaned (awaiting a claim).' + cluster,
      labelNames: ['state'],
      registers,
    });
    this.orphans = new Gauge({
      name: 'lease_orphans',
      help: 'Orphans by state: pending (awaiting a claim), claimed (being finished), dead_letter (out of attempts).' + cluster,
      labelNames: ['state'],
      registers,
    });
    this.waiting = new Gauge({ name: 'lease_waiting_requests', help: 'Acquires queued with waitMs.' + cluster, registers });
    this.expiries = new Counter({ name: 'lease_expiries_total', help: 'Leases that expired unrenewed.' + cluster, registers });
    this.revocations = new Counter({ name: 'lease_revocations_total', help: 'Leases revoked by an operator.' + cluster, registers });
    this.published = new Counter({
      name: 'lease_orphans_published_total',
      help: 'Orphanings published (to the queue and the orphans stream), by reason: expired, abandoned, revoked.' + cluster,
      labelNames: ['reason'],
      registers,
    });
    this.claimed = new Counter({ name: 'lease_orphans_claimed_total', help: 'Orphans claimed by a conductor.' + cluster, registers });
    this.resolved = new Counter({
      name: 'lease_orphans_resolved_total',
      help: 'Orphans resolved, by resolution: completed or failed (by a claimer), discard (by an operator).' + cluster,
      labelNames: ['resolution'],
      registers,
    });
    this.deadLettered = new Counter({
      name: 'lease_orphans_dead_lettered_total',
      help: 'Orphanings that made an orphan a dead letter (its last attempt failed).' + cluster,
      registers,
    });
  }

  /**
   * Sets every series from one read. Counters are mirrored, not counted: they are set to
   * Redis' value. When Redis cannot be read they keep their last values (lease_redis_up
   * says so) rather than drop to 0, which Prometheus would take for a counter reset.
   */
  update(stats: SharedStats): void {
    // Until Redis has been read once, these series are absent rather than 0: a counter that
    // went from 0 to Redis' total would look like a burst to rate() and increase().
    if (!this.registered) {
      for (const metric of [this.leases, this.orphans, this.waiting, this.expiries, this.revocations, this.published, this.claimed, this.resolved, this.deadLettered]) {
        this.registry.registerMetric<string>(metric);
      }
      this.registered = true;
    }
    const count = (field: string) => Number(stats.counters[field] ?? 0);
    const mirror = <L extends string>(counter: Counter<L>, value: number, labels?: Partial<Record<L, string>>) => {
      if (labels) {
        counter.remove(labels);
        counter.inc(labels, value);
      } else {
        counter.reset();
        counter.inc(value);
      }
    };
    const orphaned = stats.pendingOrphans + stats.deadLetterOrphans;
    this.leases.set({ state: 'active' }, Math.max(0, stats.holdingLeases - orphaned));
    this.leases.set({ state: 'orphaned' }, orphaned);
    this.orphans.set({ state: 'pending' }, stats.pendingOrphans);
    this.orphans.set({ state: 'claimed' }, stats.claimedOrphans);
    this.orphans.set({ state: 'dead_letter' }, stats.deadLetterOrphans);
    this.waiting.set(stats.waitingRequests);
    mirror(this.expiries, count('expired'));
    mirror(this.revocations, count('revoked'));
    mirror(this.claimed, count('claimed'));
    mirror(this.deadLettered, count('dead_lettered'));
    for (const reason of REASONS) mirror(this.published, count(`orphaned:${reason}`), { reason });
    for (const resolution of RESOLUTIONS) mirror(this.resolved, count(`resolved:${resolution}`), { resolution });
  }
}
