// Which Redis primary this replica writes to, for metrics: the address the shared client is
// connected to each time it becomes ready. A new address is a failover (or a Redis moved);
// the same one again is a reconnect. While the connection is down there is none. In Cluster
// mode there are several: the primaries of the slot map each time the client reads it.
import type { Socket } from 'node:net';
import { Cluster, type Redis } from 'ioredis';
import type { RedisClient } from './connection.js';

export interface PrimaryObserver {
  /** The client is ready on `address`; `previous` is where it was ready before, if anywhere. */
  connected(address: string, previous: string | undefined): void;
  /** The connection to `address` closed: no primary until the next connected(). */
  lost(address: string): void;
}

/** Tells `observer` of every 'ready' and 'close' of `client` (and at once, if it is ready); returns a stop function. */
export function watchPrimary(client: RedisClient, observer: PrimaryObserver): () => void {
  return client instanceof Cluster ? watchClusterPrimaries(client, observer) : watchOnePrimary(client, observer);
}

function watchOnePrimary(client: Redis, observer: PrimaryObserver): () => void {
  let current: string | undefined;
  let connected = false;
  const onReady = () => {
    // Undefined before the first connection, in spite of ioredis' type.
    const socket = client.stream as Socket | undefined;
    const remoteAddress = socket?.remoteAddress;
    const remotePort = socket?.remotePort;
    if (!remoteAddress || !remotePort) return;
    const address = remoteAddress.includes(':') ? `[${remoteAddress}]:${remotePort}` : `${remoteAddress}:${remotePort}`;
    const previous = current;
    current = address;
    connected = true;
    observer.connected(address, previous);
  };
  const onClose = () => {
    if (!connected || current === undefined) return;
    connected = false;
    observer.lost(current);
  };
  if (client.status === 'ready') onReady();
  client.on('ready', onReady);
  client.on('close', onClose);
  return () => {
    client.off('ready', onReady);
    client.off('close', onClose);
  };
}

/**
 * Compares the primaries of the slot map with those of the last look: one that is new beside
 * one that is gone is a failover (a replica promoted in its place).
 */
function watchClusterPrimaries(cluster: Cluster, observer: PrimaryObserver): () => void {
  let known = new Set<string>();
  const look = () => {
    const now = new Set(cluster.nodes('master').map((node) => `${node.options.host}:${node.options.port}`));
    const gone = [...known].filter((address) => !now.has(address));
    const added = [...now].filter((address) => !known.has(address));
    for (const address of gone) observer.lost(address);
    added.forEach((address, i) => observer.connected(address, gone[i]));
    known = now;
  };
  const lostAll = () => {
    for (const address of known) observer.lost(address);
    known = new Set();
  };
  if (cluster.status === 'ready') look();
  cluster.on('ready', look);
  cluster.on('refresh', look);
  cluster.on('end', lostAll);
  return () => {
    cluster.off('ready', look);
    cluster.off('refresh', look);
    cluster.off('end', lostAll);
  };
}
