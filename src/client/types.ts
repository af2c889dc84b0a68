// Names for the shapes of the API, taken from the types openapi-typescript generates from
// the committed OpenAPI document (api-types.ts; `npm run openapi` regenerates both), so the
// SDK cannot drift from what the service documents. The shapes the document names
// (components.schemas) are taken by name.
import type { components, paths } from './api-types.js';

type Schemas = components['schemas'];

type JsonBody<T> = T extends { content: { 'application/json': infer B } } ? B : never;
type RequestBody<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends { requestBody?: infer R } ? JsonBody<NonNullable<R>> : never;
type Response<P extends keyof paths, M extends keyof paths[P], S extends number> = paths[P][M] extends { responses: infer R }
  ? S extends keyof R
    ? JsonBody<R[S]>
    : never
  : never;
type Query<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

export type AcquireRequest = RequestBody<'/v1/leases', 'post'>;
export type Lease = Schemas['Lease'];
export type Tombstone = Schemas['Tombstone'];
export type RenewRequest = RequestBody<'/v1/leases/{id}/renew', 'post'>;
export type ReleaseOutcome = NonNullable<RequestBody<'/v1/leases/{id}/release', 'post'>['outcome']>;
export type ListLeasesQuery = Query<'/v1/leases', 'get'>;
export type LeasePage = Response<'/v1/leases', 'get', 200>;
export type Conflict = Schemas['Conflict'];
export type ClaimRequest = RequestBody<'/v1/orphans/claim', 'post'>;
export type Claim = Response<'/v1/orphans/claim', 'post', 200>;
export type Orphan = Schemas['Orphan'];
export type FencingCheck = Response<'/v1/fencing/check', 'post', 200>;
export type Problem = Schemas['Problem'];
export type ListOrphansQuery = Query<'/v1/orphans', 'get'>;
export type OrphanPage = Response<'/v1/orphans', 'get', 200>;
export type ResolveRequest = RequestBody<'/v1/orphans/{id}/resolve', 'post'>;
export type ResourceView = Response<'/v1/resources/{*}', 'get', 200>;
export type HolderRenewRequest = RequestBody<'/v1/holders/{holder}/renew', 'post'>;
export type HolderRenewal = Response<'/v1/holders/{holder}/renew', 'post', 200>;
