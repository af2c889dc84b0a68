// The conductor SDK: `import { LeaseClient } from 'lease-service/client'`.
export { LeaseClient } from './lease-client.js';
export type { CallOptions, LeaseClientOptions } from './transport.js';
export { BackendUnavailableError, ConflictError, LeaseLostError, LeaseServiceError } from './errors.js';
export { HeldLease, type HeldLeaseOptions, type LeaseHandle, type Progress } from './held-lease.js';
export { holdWhile, RetryElsewhereError, withLease, type LeaseWork, type WithLeaseOptions } from './with-lease.js';
export { Conductor, ConductorStoppedError, type ConductorOptions, type OrphanJob } from './conductor.js';
export { streamEvents, type EventQuery, type EventStreamOptions, type EventStreamScope, type LeaseEvent } from './events.js';
export type { RetryPolicy } from './backoff.js';
export type * from './types.js';
