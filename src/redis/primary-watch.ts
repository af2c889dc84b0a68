// Which Redis primary this replica writes to, for metrics: the address the shared client is
// connected to each time it becomes ready. A new address is a failover (or a Redis moved);
// the same one again is a reconnect. While the connection is down there is none.
import type { Socket } from 'node:net';
import type { Redis } from 'ioredis';

export interface PrimaryObserver {
  /** The client is ready on `address`; `previous` is where it was ready before, if anywhere. */
  connected(address: string, previous: string | undefined): void;
  /** The connection to `address` closed: no primary until the next connected(). */
  lost(address: string): void;
}

/** Tells `observer` of every 'ready' and 'close' of `client` (and at once, if it is ready); returns a stop function. */
export function watchPrimary(client: Redis, observer: PrimaryObserver): () => void {
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
