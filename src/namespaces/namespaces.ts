// The namespaces of one service: each one's store (its scripts run on its own keys), its
// keys, and the registry of those that exist. Handlers ask it for the store of the
// namespace a request names; the reaper and /metrics walk the registry.
import type { StoreKeys } from '../store/keys.js';
import { storeKeys } from '../store/keys.js';
import type { LeaseStore } from '../store/lease-store.js';
import { DEFAULT_NAMESPACE, namespaceKeyPrefix } from './names.js';
import type { NamespaceRegistry } from './registry.js';

export class Namespaces {
  private readonly stores = new Map<string, LeaseStore>();

  constructor(
    /** KEY_PREFIX: the hash tag of the namespace "default" and the stem of every other's. */
    private readonly keyPrefix: string,
    private readonly registry: NamespaceRegistry,
    /** Makes the store of one key prefix (its hash tag included). */
    private readonly makeStore: (prefix: string) => LeaseStore,
    /** Stores kept at most (more are made again when asked): NAMESPACES_MAX and a margin. */
    private readonly maxKept: number,
    /** The active leases one token may hold in one namespace (LEASES_MAX_PER_TOKEN; 0: no limit). */
    readonly leaseQuota = 0,
  ) {}

  /** The store of a namespace; reads of one never admitted find it empty. */
  store(namespace: string = DEFAULT_NAMESPACE): LeaseStore {
    let store = this.stores.get(namespace);
    if (!store) {
      // Any well-formed name may be read, so what is kept is bounded apart from the registry.
      if (this.stores.size >= this.maxKept) this.stores.clear();
      store = this.makeStore(this.prefix(namespace));
      this.stores.set(namespace, store);
    }
    return store;
  }

  keys(namespace: string = DEFAULT_NAMESPACE): StoreKeys {
    return storeKeys(this.prefix(namespace));
  }

  prefix(namespace: string): string {
    return namespaceKeyPrefix(this.keyPrefix, namespace);
  }

  /**
   * Registers a namespace before its first write; throws NamespaceFullError past
   * NAMESPACES_MAX, NamespaceUnknownError for a new one when `mayCreate` is false.
   */
  admit(namespace: string, mayCreate = true): Promise<void> {
    return this.registry.admit(namespace, mayCreate);
  }

  /** Whether the namespace exists (is registered; "default" always is). */
  isRegistered(namespace: string): Promise<boolean> {
    return this.registry.isRegistered(namespace);
  }

  /** Every namespace that may hold state, "default" first. */
  list(): Promise<string[]> {
    return this.registry.list();
  }
}
