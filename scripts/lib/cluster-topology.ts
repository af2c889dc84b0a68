// A Redis Cluster on loopback from Debian's redis-server and redis-cli: N primaries with R
// replicas each, every node a real process with its own folder, ports and a shared password,
// made into one cluster by `redis-cli --cluster create`. `npm run cluster` runs the service
// against one; the cluster tests kill, freeze and thaw its members for real, as the Sentinel
// tests do with sentinel-topology.ts (whose process handling this reuses).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { freePort, HOST, ProcessNode, replicatedServerLines, type RedisNode } from './sentinel-topology.js';

export type { RedisNode } from './sentinel-topology.js';

export interface ClusterTopologyOptions {
  /** Shards. From 3 up `redis-cli --cluster create` joins them; 1 or 2 (without replicas) are joined by hand. */
  primaries?: number;
  replicasPerPrimary?: number;
  /** cluster-node-timeout: how long a silent node takes to be suspected (a failover takes 2-3 of these). */
  nodeTimeoutMs?: number;
  redisServerBin?: string;
  redisCliBin?: string;
}

export interface ClusterTopology {
  password: string;
  nodes: RedisNode[];
  /** The variables that point the service at this topology (REDIS_CLUSTER_NODES: "127.0.0.1:p1,127.0.0.1:p2,..."). */
  env: Record<string, string>;
  /** The nodes that serve slots now and answer as primaries, in slot order. */
  primaries(): Promise<RedisNode[]>;
  /** The node that serves `slot` now. */
  primaryOfSlot(slot: number): Promise<RedisNode>;
  /**
   * Waits until the slots `old` served (by its nodes.conf: it is usually dead or frozen) are
   * served, by every live node's account, by another node that answers as a primary with
   * cluster_state:ok. Throws if `old` served none.
   */
  waitForPromotion(old: RedisNode, timeoutMs: number): Promise<RedisNode>;
  /** Thaws every node, restarts the ones that are down, and waits until the cluster is whole: every slot served, every replica in sync. */
  heal(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export const SLOTS = 16384;

/** The hash slot of a key, as CLUSTER KEYSLOT computes it: CRC16 (XMODEM) of the key or of its first non-empty {tag}. */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  // Bytes, not characters: a multi-byte UTF-8 sequence never holds "{" or "}", and Redis counts bytes.
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % SLOTS;
  }
  return crc16(bytes) % SLOTS;
}

/** CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as in Redis' crc16.c. (cluster-key-slot is only ioredis' dependency, not ours.) */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

export async function startClusterTopology(options: ClusterTopologyOptions = {}): Promise<ClusterTopology> {
  const { primaries: shards = 3, replicasPerPrimary = 1, nodeTimeoutMs = 1000, redisServerBin = 'redis-server', redisCliBin = 'redis-cli' } = options;
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`primaries must be 1 or more, not ${shards}`);
  if (shards < 3 && replicasPerPrimary > 0) throw new Error('a cluster of fewer than 3 primaries is made without replicas here');
  if (!Number.isInteger(replicasPerPrimary) || replicasPerPrimary < 0) throw new Error(`replicasPerPrimary must be 0 or more, not ${replicasPerPrimary}`);
  assertExecutable(redisServerBin);
  const dir = mkdtempSync(join(tmpdir(), 'lease-cluster-'));
  const password = randomBytes(12).toString('hex');
  const nodes: ProcessNode[] = [];
  const folders = new Map<RedisNode, string>();
  // Should the process end without stop() (an uncaught error, process.exit), the nodes end with
  // it: a redis-server outlives its parent otherwise, holding its ports and folder for good.
  const killOnExit = () => killAtExit(nodes, dir);
  process.once('exit', killOnExit);
  const stop = async () => {
    process.off('exit', killOnExit);
    await Promise.all(nodes.map((node) => node.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < shards * (1 + replicasPerPrimary); i++) {
      const { node, folder } = await startNode(dir, password, nodeTimeoutMs, redisServerBin, nodes);
      folders.set(node, folder);
    }
    if (shards >= 3) await createCluster(redisCliBin, password, nodes, replicasPerPrimary);
    else await createSmallCluster(nodes);
    await waitUntilWhole(nodes, shards, 30000);
    return clusterTopology({ nodes, folders, password, shards, stop });
  } catch (error) {
    await stop();
    throw error;
  }
}

interface Members {
  nodes: ProcessNode[];
  /** Each node's folder, where its nodes.conf says which slots it last served. */
  folders: Map<RedisNode, string>;
  password: string;
  shards: number;
  stop: () => Promise<void>;
}

/** The topology's questions and actions over nodes that already form a whole cluster. */
function clusterTopology({ nodes, folders, password, shards, stop }: Members): ClusterTopology {
  const addresses = nodes.map((node) => `${HOST}:${node.port}`).join(',');
  const nodeAt = (port: number) => nodes.find((node) => node.port === port);
  return {
    password,
    nodes,
    env: { REDIS_CLUSTER_NODES: addresses, REDIS_PASSWORD: password },
    async primaries() {
      const owners = [...new Set(resolveOwners(await liveViews(nodes)).filter((port) => port > 0))];
      const serving = owners.map(nodeAt).filter((node): node is ProcessNode => node !== undefined);
      const roles = await Promise.all(serving.map((node) => node.role()));
      return serving.filter((_, i) => roles[i] === 'master');
    },
    async primaryOfSlot(slot) {
      const node = nodeAt(resolveOwners(await liveViews(nodes))[slot] ?? 0);
      if (!node) throw new Error(`no live node of this topology names the node that serves slot ${slot}`);
      return node;
    },
    async waitForPromotion(old, timeoutMs) {
      const folder = folders.get(old);
      if (!folder) throw new Error(`node ${old.port} is not one of this topology`);
      // Asked of its nodes.conf, not of the node: it is usually dead or frozen by now.
      const slots = slotsInNodesConf(folder);
      if (slots.length === 0) throw new Error(`node ${old.port} served no slots: nothing to promote`);
      const others = nodes.filter((node) => node !== old);
      return waitUntil(timeoutMs, () => `the slots of node ${old.port} were not taken over within ${timeoutMs} ms`, async () => {
        const node = nodeAt(agreedOwner(await liveViews(others), slots) ?? 0);
        if (!node || node === old || (await node.role()) !== 'master') return undefined;
        return (await clusterInfo(node))?.cluster_state === 'ok' ? node : undefined;
      });
    },
    async heal(timeoutMs) {
      for (const node of nodes) {
        node.thaw();
        // Its nodes.conf brings it back into the cluster; a primary that was replaced meanwhile
        // learns so from the others and becomes its successor's replica.
        if (!node.running()) await node.restart();
      }
      await waitUntilWhole(nodes, shards, timeoutMs);
    },
    stop,
  };
}

/**
 * Throws unless `bin` (a path, or a name on PATH) can be run. ProcessNode does not listen for
 * a spawn's 'error' event, so a missing binary would end the process instead of failing here.
 */
function assertExecutable(bin: string): void {
  const candidates = bin.includes('/') ? [bin] : (process.env.PATH ?? '').split(delimiter).map((folder) => join(folder, bin));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return;
    } catch {
      // not this one
    }
  }
  throw new Error(`cannot run ${bin}: not found or not executable (is redis-server installed?)`);
}

/** stop() for an 'exit' listener, which cannot wait: SIGKILL (a frozen process dies of it too) and no waiting. */
function killAtExit(nodes: ProcessNode[], dir: string): void {
  for (const node of nodes.filter((node) => node.running())) {
    try {
      process.kill(node.pid(), 'SIGKILL');
    } catch {
      // it ended meanwhile
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Starts one node on a free port and a free cluster-bus port; it joins `nodes` before it starts, so stop() reaches it whatever happens. */
async function startNode(
  dir: string,
  password: string,
  nodeTimeoutMs: number,
  bin: string,
  nodes: ProcessNode[],
): Promise<{ node: ProcessNode; folder: string }> {
  // Nodes start one after another: each listens on both its ports before the next one picks
  // its own, so freePort never hands out a port twice.
  const port = await freePort();
  let busPort = await freePort();
  while (busPort === port) busPort = await freePort();
  const folder = join(dir, `redis-${port}`);
  const node = new ProcessNode(bin, folder, `redis-${port}.conf`, nodeConfig(port, busPort, folder, password, nodeTimeoutMs), port, password);
  nodes.push(node);
  await node.start();
  return { node, folder };
}

function nodeConfig(port: number, busPort: number, folder: string, password: string, nodeTimeoutMs: number): string[] {
  return [
    `port ${port}`,
    // The bus port is picked as the client port is, not left at port + 10000: for a port above
    // 22767 that is in the kernel's ephemeral range (32768+), where some outgoing socket could
    // hold it when the node restarts.
    `cluster-port ${busPort}`,
    `bind ${HOST}`,
    `dir ${folder}`,
    'cluster-enabled yes',
    // A node learns its own address from the others' MEET; a cluster of one never would, and
    // CLUSTER SLOTS would name it "" (clients could not find it).
    `cluster-announce-ip ${HOST}`,
    // Relative to dir. Redis keeps the node's id, epoch and slots there: a restart rejoins the cluster.
    'cluster-config-file nodes.conf',
    `cluster-node-timeout ${nodeTimeoutMs}`,
    ...replicatedServerLines(password),
    // A replica may always be promoted, however long it was cut off: the tests freeze and kill
    // at will, and a shard with no eligible replica would stay down.
    'cluster-replica-validity-factor 0',
    // The replicas stay with the primary redis-cli gave them, so the tests know who backs whom.
    'cluster-allow-replica-migration no',
    // While one shard has no primary the others keep serving: its namespaces are down, the rest are not.
    'cluster-require-full-coverage no',
  ];
}

const execFileAsync = promisify(execFile);

/** `redis-cli --cluster create`: assigns the slots, joins the nodes, attaches the replicas. */
async function createCluster(bin: string, password: string, nodes: RedisNode[], replicasPerPrimary: number): Promise<void> {
  const args = ['--cluster', 'create', ...nodes.map((node) => `${HOST}:${node.port}`), '--cluster-replicas', String(replicasPerPrimary), '--cluster-yes'];
  try {
    // REDISCLI_AUTH rather than -a: the password stays out of the process list.
    await execFileAsync(bin, args, { env: { ...process.env, REDISCLI_AUTH: password }, timeout: 30000, killSignal: 'SIGKILL' });
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`${bin} --cluster create failed: ${error instanceof Error ? error.message : String(error)}\n${stdout.slice(-2000)}${stderr.slice(-2000)}`, { cause: error });
  }
}

/**
 * What redis-cli refuses to make (fewer than 3 primaries, as the benchmark's one-primary side
 * needs): each node takes an equal share of the slots, then they meet.
 */
async function createSmallCluster(nodes: RedisNode[]): Promise<void> {
  for (const [i, node] of nodes.entries()) {
    const client = node.client();
    try {
      const first = Math.floor((SLOTS * i) / nodes.length);
      const last = Math.floor((SLOTS * (i + 1)) / nodes.length) - 1;
      await client.call('CLUSTER', 'ADDSLOTSRANGE', first, last);
      if (i > 0) await client.call('CLUSTER', 'MEET', HOST, nodes[0]!.port);
    } finally {
      client.disconnect();
    }
  }
}

/** Polls `probe` until it gives a value; throws `message` at the deadline. */
async function waitUntil<T>(timeoutMs: number, message: () => string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(message());
    await sleep(50);
  }
}

/** Until every node runs and the cluster is whole: see clusterProblem. */
async function waitUntilWhole(nodes: ProcessNode[], shards: number, timeoutMs: number): Promise<void> {
  let problem = 'not asked yet';
  await waitUntil(timeoutMs, () => `the cluster was not whole within ${timeoutMs} ms: ${problem}`, async () => {
    problem = (await clusterProblem(nodes, shards)) ?? '';
    return problem === '' ? true : undefined;
  });
}

/**
 * What keeps the cluster from being whole, or undefined. Whole: every node runs and says
 * cluster_state:ok with every slot served and every node known; no node sees another as
 * failing; `shards` nodes are primaries; every other node is a replica whose link is up and
 * whose sync is done. cluster_state alone is not enough: with cluster-require-full-coverage
 * no it says ok while slots have no primary.
 */
async function clusterProblem(nodes: ProcessNode[], shards: number): Promise<string | undefined> {
  const down = nodes.find((node) => !node.running());
  if (down) return `node ${down.port} is down`;
  const states = await Promise.all(nodes.map((node) => nodeState(node)));
  for (const [i, state] of states.entries()) {
    const problem = state ? nodeProblem(state, nodes.length) : 'does not answer';
    if (problem) return `node ${nodes[i]!.port} ${problem}`;
  }
  const primaries = states.filter((state) => state?.replication.role === 'master').length;
  return primaries === shards ? undefined : `${primaries} primaries, not ${shards}`;
}

/** One node's problem, or '' when it sees a whole cluster and is a primary or a replica in sync. */
function nodeProblem({ info, view, replication }: NodeState, total: number): string {
  if (info.cluster_state !== 'ok') return `says cluster_state:${info.cluster_state}`;
  if (info.cluster_slots_ok !== String(SLOTS)) return `sees ${info.cluster_slots_ok} of ${SLOTS} slots served`;
  if (info.cluster_known_nodes !== String(total)) return `knows ${info.cluster_known_nodes} of ${total} nodes`;
  const failing = view.find((line) => line.flags.some((flag) => flag === 'fail' || flag === 'fail?' || flag === 'handshake'));
  if (failing) return `sees node ${failing.port} as ${failing.flags.join(',')}`;
  if (replication.role === 'master') return view.find((line) => line.flags.includes('myself'))?.slots.length ? '' : 'is a primary without slots';
  if (replication.master_link_status !== 'up') return `is a replica whose link is ${replication.master_link_status}`;
  return replication.master_sync_in_progress === '0' ? '' : 'is a replica still syncing';
}

interface NodeState {
  info: Record<string, string>;
  view: NodeLine[];
  replication: Record<string, string>;
}

/** CLUSTER INFO, CLUSTER NODES and INFO replication of one node, or undefined if it does not answer. */
function nodeState(node: RedisNode): Promise<NodeState | undefined> {
  return ask(node, async (client) => {
    const [info, nodesText, replication] = await Promise.all([
      client.call('CLUSTER', 'INFO') as Promise<string>,
      client.call('CLUSTER', 'NODES') as Promise<string>,
      client.info('replication'),
    ]);
    return { info: infoFields(info), view: parseClusterNodes(nodesText), replication: infoFields(replication) };
  });
}

function clusterInfo(node: RedisNode): Promise<Record<string, string> | undefined> {
  return ask(node, async (client) => infoFields((await client.call('CLUSTER', 'INFO')) as string));
}

/** `question` asked of a fresh client to `node` alone, or undefined if the node does not answer. */
async function ask<T>(node: RedisNode, question: (client: Redis) => Promise<T>): Promise<T | undefined> {
  const client = node.client();
  try {
    return await question(client);
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

function infoFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return fields;
}

/** One line of CLUSTER NODES (or of nodes.conf): a node as another (or itself) sees it. */
interface NodeLine {
  port: number;
  flags: string[];
  configEpoch: number;
  /** Inclusive [first, last] ranges of the slots it serves. */
  slots: Array<[number, number]>;
}

/** `<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`; nodes.conf adds a `vars` line, skipped. */
function parseClusterNodes(text: string): NodeLine[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(' '))
    .filter((parts) => parts.length >= 8 && parts[0] !== 'vars')
    .map((parts) => ({
      port: Number(/:(\d+)@/.exec(parts[1]!)?.[1] ?? 0),
      flags: parts[2]!.split(','),
      configEpoch: Number(parts[6]),
      // "[slot->-id]" and "[slot-<-id]" are migrations in progress, not slots served.
      slots: parts
        .slice(8)
        .filter((part) => !part.startsWith('['))
        .map((part): [number, number] => {
          const [first, last = first] = part.split('-').map(Number) as [number, number?];
          return [first, last];
        }),
    }));
}

/** The slots a node served when it last wrote its nodes.conf: for a node killed or frozen, what it held. */
function slotsInNodesConf(folder: string): Array<[number, number]> {
  let text: string;
  try {
    text = readFileSync(join(folder, 'nodes.conf'), 'utf8');
  } catch {
    return [];
  }
  return parseClusterNodes(text).find((line) => line.flags.includes('myself'))?.slots ?? [];
}

/** CLUSTER NODES of every node that runs and answers (a frozen one times out and is left out). */
async function liveViews(nodes: ProcessNode[]): Promise<NodeLine[][]> {
  const views = await Promise.all(nodes.filter((node) => node.running()).map((node) => clusterNodes(node)));
  return views.filter((view): view is NodeLine[] => view !== undefined);
}

function clusterNodes(node: RedisNode): Promise<NodeLine[] | undefined> {
  return ask(node, async (client) => parseClusterNodes((await client.call('CLUSTER', 'NODES')) as string));
}

/**
 * The port serving each slot (0: none), merging views as Redis does: of two claims on a slot
 * the one with the higher config epoch wins. A promoted replica takes an epoch above all
 * others, so a node that has not heard of the failover yet does not outvote one that has.
 */
function resolveOwners(views: NodeLine[][]): number[] {
  const owner = new Array<number>(SLOTS).fill(0);
  const epoch = new Array<number>(SLOTS).fill(-1);
  for (const line of views.flat()) {
    for (const [first, last] of line.slots) {
      for (let slot = first; slot <= last; slot++) {
        if (line.configEpoch > epoch[slot]!) {
          epoch[slot] = line.configEpoch;
          owner[slot] = line.port;
        }
      }
    }
  }
  return owner;
}

/**
 * The port that every view names as serving `slots`, or undefined while the views disagree.
 * It looks at each range's first and last slot: a failover moves all of a primary's slots at once.
 */
function agreedOwner(views: NodeLine[][], slots: Array<[number, number]>): number | undefined {
  const owners = new Set<number>();
  for (const view of views) {
    for (const [first, last] of slots) {
      for (const slot of [first, last]) owners.add(view.find((line) => line.slots.some(([a, b]) => a <= slot && slot <= b))?.port ?? 0);
    }
  }
  const [port] = owners;
  return views.length > 0 && owners.size === 1 && port ? port : undefined;
}
