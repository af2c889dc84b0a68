// The resource routes' examples, from the story of http/examples.ts: what holds a volume of
// instance i-42 while conductor-z resizes it, and a fencing check of conductor-z's token.
import { LEASE_EXAMPLE, RESIZE_LEASE } from '../http/examples.js';

export const RESOURCE_EXAMPLE = {
  path: 'instances/i-42/volumes/v-7',
  coveredBy: [LEASE_EXAMPLE],
  coveredByCount: 1,
  below: { count: 0, items: [] },
};

export const FENCING_EXAMPLE = {
  valid: true,
  current: [{ leaseId: RESIZE_LEASE.id, holder: RESIZE_LEASE.holder, fencingToken: Number(RESIZE_LEASE.fencingToken), state: 'active' }],
  coveringCount: 1,
};
