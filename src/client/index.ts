// The conductor SDK: `import { LeaseClient } from 'lease-service/client'`.
export { LeaseClient, type CallOptions, type LeaseClientOptions } from './lease-client.js';
export { BackendUnavailableError, ConflictError, LeaseLostError, LeaseServiceError } from './errors.js';
export type { RetryPolicy } from './backoff.js';
export type * from './types.js';
