// LeaseClient, what a conductor author holds: every call of the HTTP API (the transport,
// transport.ts) and withLease on top of them. The transport knows nothing of the helpers
// built on it; this class is where the two meet, so that neither imports the other.
import { LeaseTransport } from './transport.js';
import { withLease, type LeaseWork, type WithLeaseOptions } from './with-lease.js';
import type { AcquireRequest } from './types.js';

export type { CallOptions, LeaseClientOptions } from './transport.js';

export class LeaseClient extends LeaseTransport {
  /**
   * Acquires, runs `work` while a heartbeat renews the lease at a third of its ttl, and
   * releases: `completed` on return, `failed` on an error, `abandoned` on RetryElsewhereError.
   * `work`'s signal aborts as soon as the lease is lost (410, 404 for a grant lost in a failover, or no renewal confirmed within
   * the ttl of being sent). See with-lease.ts.
   */
  withLease<T>(request: AcquireRequest, work: LeaseWork<T>, options: WithLeaseOptions = {}): Promise<T> {
    return withLease(this, request, work, options);
  }
}
