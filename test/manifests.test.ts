// deploy/kubernetes/ and deploy/compose.yaml agree with the service, checked without a cluster
// or a Docker engine (neither runs here): the files are parsed and what they say is compared
// with what the service does. The environment they give the service loads through loadConfig
// (src/config.ts), every name in it known there; the probes, the Service, the scrape
// annotations and the ServiceMonitor reach the port the service listens on, at paths a real
// app answers as the probes expect; the termination grace period covers the preStop pause and
// SHUTDOWN_GRACE_MS. In the compose file the service finds its sentinels, the sentinels their
// primary under the master name the service asks for, and Prometheus the alerts file. Each
// check is also shown to fail: it runs again on a copy of the files with one thing broken.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { ConfigSchema, loadConfig, type Config } from '../src/config.js';
import { useTestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const KUBE_DIR = join(ROOT, 'deploy/kubernetes');
const COMPOSE_FILE = join(ROOT, 'deploy/compose.yaml');
const ALERTS = join(ROOT, 'deploy/prometheus/alerts.yml');

/** What the service serves (src/observability/): the last describe below asks a real app. */
const READINESS_PATH = '/readyz';
const LIVENESS_PATH = '/healthz';
const METRICS_PATH = '/metrics';

/** Every variable src/config.ts reads. */
const KNOWN_VARIABLES = new Set(Object.keys(ConfigSchema.properties));
/** Variables that hold passwords: in the Secret, never in the ConfigMap. */
const SECRET_VARIABLES = ['REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD'];

const MAIN = readFileSync(join(ROOT, 'src/main.ts'), 'utf8');
/** How long main.ts waits for Redis before it listens (and exits when it does not answer). */
const REDIS_START_TIMEOUT_MS = Number(/const REDIS_START_TIMEOUT_MS = (\d+);/.exec(MAIN)?.[1]);

/** The job the alerts select (up{job="..."}): the scrapes must carry it. */
const ALERT_JOBS = new Set([...readFileSync(ALERTS, 'utf8').matchAll(/job="([^"]+)"/g)].map((m) => m[1]!));

type Doc = Record<string, any>;

// --- the image -------------------------------------------------------------------------------

/** The runtime stage of the Dockerfile (its last FROM): its ENV, which every container starts with, and its USER. */
function runtimeImage(text: string): { env: Record<string, string>; user: string | undefined } {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const from = lines.map((line) => /^FROM\s/i.test(line)).lastIndexOf(true);
  const env: Record<string, string> = {};
  let user: string | undefined;
  for (const line of lines.slice(from)) {
    const [instruction = '', ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (/^ENV$/i.test(instruction)) {
      for (const pair of args.match(/\S+=("[^"]*"|\S*)/g) ?? []) {
        const at = pair.indexOf('=');
        env[pair.slice(0, at)] = pair.slice(at + 1).replace(/^"|"$/g, '');
      }
    }
    if (/^USER$/i.test(instruction)) user = args.split(':')[0];
  }
  return { env, user };
}

const IMAGE = runtimeImage(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));

/** The configuration the service would run with, or the ConfigError's message. */
function configOf(env: Record<string, string>): { config: Config; error?: undefined } | { config?: undefined; error: string } {
  try {
    return { config: loadConfig(env) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

// --- units -----------------------------------------------------------------------------------

/** A Kubernetes quantity (250m, 1, 512Mi, 1G) as a number of base units. */
function quantity(value: unknown): number {
  const match = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(value));
  if (!match) return NaN;
  const factors: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(match[1]) * (match[2] ? factors[match[2]]! : 1);
}

/** A Prometheus or compose duration (5s, 1m30s, 500ms) in milliseconds. */
function durationMs(value: unknown): number {
  const text = String(value);
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60000, h: 3600000 };
  const parts = [...text.matchAll(/(\d+)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return NaN;
  return parts.reduce((sum, p) => sum + Number(p[1]) * units[p[2]!]!, 0);
}

/** Every label of `selector` is on `labels` with the same value (and there is at least one). */
function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([key, value]) => labels?.[key] === value);
}

// --- the Kubernetes manifests ----------------------------------------------------------------

interface Manifest {
  file: string;
  doc: Doc;
}

function readManifests(): Manifest[] {
  const manifests: Manifest[] = [];
  for (const file of readdirSync(KUBE_DIR).filter((name) => /\.ya?ml$/.test(name)).sort()) {
    for (const document of parseAllDocuments(readFileSync(join(KUBE_DIR, file), 'utf8'))) {
      assert.deepEqual(document.errors, [], `${file} parses`);
      const doc = document.toJS() as Doc | null;
      if (doc) manifests.push({ file, doc });
    }
  }
  return manifests;
}

/** The manifests, and what the service's container gets from them. */
interface Kube {
  manifests: Manifest[];
  of(kind: string): Doc[];
  deployment: Doc;
  pod: Doc;
  container: Doc;
  configMaps: Doc[];
  secrets: Doc[];
  /** Names and values the manifests set (ConfigMap, Secret, env), without the image's. */
  variables: Record<string, unknown>;
  /** The container's whole environment: the image's ENV, then envFrom in order, then env. */
  env: Record<string, string>;
  config: Config;
  configError: string | undefined;
  problems: string[];
}

function secretData(secret: Doc): Record<string, unknown> {
  const decoded = Object.fromEntries(Object.entries((secret.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
  return { ...decoded, ...(secret.stringData ?? {}) };
}

function kubeView(manifests: Manifest[]): Kube {
  const problems: string[] = [];
  const of = (kind: string) => manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc);
  const deployments = of('Deployment');
  if (deployments.length !== 1) problems.push(`one Deployment, not ${deployments.length}`);
  const deployment = deployments[0] ?? {};
  const pod = deployment.spec?.template?.spec ?? {};
  const containers = (pod.containers ?? []) as Doc[];
  if (containers.length !== 1) problems.push(`the pod has one container, not ${containers.length}`);
  const container = containers[0] ?? {};
  const configMaps = of('ConfigMap');
  const secrets = of('Secret');

  const variables: Record<string, unknown> = {};
  for (const source of (container.envFrom ?? []) as Doc[]) {
    if (source.configMapRef) {
      const map = configMaps.find((c) => c.metadata?.name === source.configMapRef.name);
      if (!map) problems.push(`envFrom names ConfigMap ${source.configMapRef.name}, which no manifest defines`);
      Object.assign(variables, map?.data ?? {});
    } else if (source.secretRef) {
      const secret = secrets.find((s) => s.metadata?.name === source.secretRef.name);
      if (!secret) problems.push(`envFrom names Secret ${source.secretRef.name}, which no manifest defines`);
      Object.assign(variables, secret ? secretData(secret) : {});
    } else {
      problems.push(`envFrom ${JSON.stringify(source)}: only configMapRef and secretRef`);
    }
  }
  for (const entry of (container.env ?? []) as Doc[]) {
    if (entry.valueFrom) problems.push(`env ${entry.name}: valueFrom is not checked here; use envFrom`);
    variables[entry.name] = entry.value;
  }
  const env = { ...IMAGE.env, ...Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, String(v)])) };
  const loaded = configOf(env);
  return {
    manifests,
    of,
    deployment,
    pod,
    container,
    configMaps,
    secrets,
    variables,
    env,
    // The other checks go on with the image's configuration when this one is invalid.
    config: loaded.config ?? loadConfig(IMAGE.env),
    configError: loaded.error,
    problems,
  };
}

/** The container port a probe's or a Service's port names (a name or a number), if any. */
function containerPort(k: Kube, port: unknown): number | undefined {
  const ports = (k.container.ports ?? []) as Doc[];
  const found = typeof port === 'string' ? ports.find((p) => p.name === port) : ports.find((p) => p.containerPort === port);
  return found?.containerPort as number | undefined;
}

function checkEnvironment(k: Kube): string[] {
  const problems = [...k.problems];
  for (const [name, value] of Object.entries(k.variables)) {
    if (!KNOWN_VARIABLES.has(name)) problems.push(`${name} is not a variable of src/config.ts`);
    if (typeof value !== 'string') problems.push(`${name}: ${JSON.stringify(value)} is not a string (quote it: ConfigMaps and env values are strings)`);
  }
  for (const map of k.configMaps) {
    for (const name of SECRET_VARIABLES) if (name in (map.data ?? {})) problems.push(`${name} is in ConfigMap ${map.metadata?.name}: passwords belong in the Secret`);
  }
  for (const name of SECRET_VARIABLES) {
    if (!k.secrets.some((s) => name in secretData(s))) problems.push(`no Secret holds ${name}`);
  }
  if (k.configError) {
    problems.push(`loadConfig rejects the container's environment: ${k.configError}`);
    return problems;
  }
  const c = k.config;
  if (!c.REDIS_SENTINELS || !c.REDIS_SENTINEL_MASTER || c.REDIS_URL) problems.push('Sentinel mode: REDIS_SENTINELS and REDIS_SENTINEL_MASTER set, REDIS_URL not');
  if (c.REDIS_MIN_REPLICAS < 1) problems.push(`REDIS_MIN_REPLICAS=${c.REDIS_MIN_REPLICAS}: at least 1, so that a failover loses no acknowledged change`);
  if (c.HOST !== '0.0.0.0') problems.push(`HOST=${c.HOST}: 0.0.0.0, or the probes and the Service cannot reach the pod`);
  // The kubelet would add a *_PORT variable for every Service of the namespace.
  if (k.pod.enableServiceLinks !== false) problems.push('enableServiceLinks: false, so that the environment is only what the manifests list');
  return problems;
}

function checkRollout(k: Kube): string[] {
  const problems: string[] = [];
  const spec = k.deployment.spec ?? {};
  if (spec.replicas !== 3) problems.push(`the Deployment runs 3 replicas, not ${spec.replicas}`);
  if (!selects(spec.selector?.matchLabels, spec.template?.metadata?.labels)) problems.push("the Deployment's selector matches its pods' labels");
  const rolling = spec.strategy?.rollingUpdate ?? {};
  if (spec.strategy?.type !== 'RollingUpdate' || rolling.maxUnavailable !== 0 || !(rolling.maxSurge >= 1)) {
    problems.push(`replica by replica: strategy RollingUpdate with maxUnavailable 0 and maxSurge 1, not ${JSON.stringify(spec.strategy)}`);
  }
  return problems;
}

function checkProbes(k: Kube): string[] {
  const problems: string[] = [];
  const port = k.config.PORT;
  const declared = ((k.container.ports ?? []) as Doc[]).map((p) => p.containerPort as number);
  if (!declared.includes(port)) problems.push(`the container declares port ${port} (PORT), not only ${declared.join(', ')}`);
  const expected: [string, string][] = [
    ['readinessProbe', READINESS_PATH],
    ['livenessProbe', LIVENESS_PATH],
    ['startupProbe', LIVENESS_PATH],
  ];
  for (const [name, path] of expected) {
    const probe = k.container[name] as Doc | undefined;
    if (!probe?.httpGet) {
      problems.push(`${name}: an httpGet probe of ${path}`);
      continue;
    }
    if (probe.httpGet.path !== path) problems.push(`${name} probes ${probe.httpGet.path}, not ${path}`);
    const target = containerPort(k, probe.httpGet.port);
    if (target !== port) problems.push(`${name} probes port ${JSON.stringify(probe.httpGet.port)} (${target}), not PORT=${port}`);
  }
  const readiness = k.container.readinessProbe ?? {};
  // /readyz answers within REDIS_COMMAND_TIMEOUT_MS: a shorter probe timeout fails a slow but healthy Redis.
  if ((readiness.timeoutSeconds ?? 1) * 1000 <= k.config.REDIS_COMMAND_TIMEOUT_MS) {
    problems.push(`readinessProbe.timeoutSeconds ${readiness.timeoutSeconds ?? 1} s is not above REDIS_COMMAND_TIMEOUT_MS=${k.config.REDIS_COMMAND_TIMEOUT_MS}`);
  }
  const startup = k.container.startupProbe ?? {};
  const window = (startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3) * 1000;
  if (!(window > REDIS_START_TIMEOUT_MS)) {
    problems.push(`the startupProbe gives ${window / 1000} s, not more than main.ts waits for Redis before it listens (${REDIS_START_TIMEOUT_MS / 1000} s)`);
  }
  return problems;
}

/** Seconds of the preStop pause: the native sleep action, or exec of sleep. */
function preStopSeconds(container: Doc): number | undefined {
  const preStop = container.lifecycle?.preStop;
  if (preStop?.sleep) return Number(preStop.sleep.seconds);
  const command = preStop?.exec?.command as string[] | undefined;
  if (command && /(^|\/)sleep$/.test(command[0] ?? '')) return Number(command[1]);
  return undefined;
}

function checkTermination(k: Kube): string[] {
  const problems: string[] = [];
  const pause = preStopSeconds(k.container);
  if (!(pause !== undefined && pause >= 1)) problems.push('a preStop pause (lifecycle.preStop.sleep) lets the endpoints drop the pod before SIGTERM');
  const grace = k.pod.terminationGracePeriodSeconds ?? 30;
  const needed = (pause ?? 0) + k.config.SHUTDOWN_GRACE_MS / 1000;
  if (!(grace > needed)) {
    problems.push(`terminationGracePeriodSeconds ${grace} is not above the preStop pause (${pause ?? 0} s) plus SHUTDOWN_GRACE_MS=${k.config.SHUTDOWN_GRACE_MS}`);
  }
  return problems;
}

function checkSecurity(k: Kube): string[] {
  const problems: string[] = [];
  const pod = (k.pod.securityContext ?? {}) as Doc;
  const own = (k.container.securityContext ?? {}) as Doc;
  const effective = { ...pod, ...own };
  if (effective.runAsNonRoot !== true) problems.push('runAsNonRoot: true');
  // The kubelet checks runAsNonRoot against a numeric uid only; the image's USER is a name.
  if (!/^\d+$/.test(IMAGE.user ?? '') && !(Number.isInteger(effective.runAsUser) && effective.runAsUser > 0)) {
    problems.push(`runAsUser: the uid of the image's user ${IMAGE.user} (not root), or the kubelet refuses runAsNonRoot`);
  }
  if (own.readOnlyRootFilesystem !== true) problems.push('readOnlyRootFilesystem: true');
  if (own.allowPrivilegeEscalation !== false) problems.push('allowPrivilegeEscalation: false');
  if (!((own.capabilities?.drop ?? []) as string[]).includes('ALL')) problems.push('capabilities: drop ALL');
  if (effective.seccompProfile?.type !== 'RuntimeDefault') problems.push('seccompProfile: RuntimeDefault');
  const volumes = new Map(((k.pod.volumes ?? []) as Doc[]).map((v) => [v.name, v]));
  const tmp = ((k.container.volumeMounts ?? []) as Doc[]).find((m) => m.mountPath === '/tmp');
  if (!tmp || !volumes.get(tmp.name)?.emptyDir) problems.push('/tmp is an emptyDir (the root filesystem is read-only)');
  // Only the managed redis-server writes (under DATA_DIR); it does not run with Redis elsewhere.
  if (!k.config.REDIS_SENTINELS && !k.config.REDIS_URL) problems.push(`without REDIS_SENTINELS or REDIS_URL the service writes DATA_DIR=${k.config.DATA_DIR}`);
  return problems;
}

function checkResources(k: Kube): string[] {
  const problems: string[] = [];
  const { requests = {}, limits = {} } = (k.container.resources ?? {}) as Doc;
  for (const resource of ['cpu', 'memory']) {
    const [request, limit] = [quantity(requests[resource]), quantity(limits[resource])];
    if (!(request > 0)) problems.push(`resources.requests.${resource}`);
    if (!(limit > 0)) problems.push(`resources.limits.${resource}`);
    if (request > limit) problems.push(`resources.requests.${resource} ${requests[resource]} is above its limit ${limits[resource]}`);
  }
  return problems;
}

function checkService(k: Kube): string[] {
  const problems: string[] = [];
  const podLabels = k.deployment.spec?.template?.metadata?.labels;
  const services = k.of('Service');
  if (services.length !== 1) return [`one Service, not ${services.length}`];
  const service = services[0]!;
  if (!selects(service.spec?.selector, podLabels)) problems.push(`the Service's selector ${JSON.stringify(service.spec?.selector)} matches the pods' labels`);
  const ports = (service.spec?.ports ?? []) as Doc[];
  if (!ports.some((p) => containerPort(k, p.targetPort ?? p.port) === k.config.PORT)) {
    problems.push(`a Service port targets the container's PORT=${k.config.PORT}: ${JSON.stringify(ports)}`);
  }
  const budgets = k.of('PodDisruptionBudget');
  if (budgets.length !== 1) return [...problems, `one PodDisruptionBudget, not ${budgets.length}`];
  const budget = budgets[0]!;
  if (!selects(budget.spec?.selector?.matchLabels, podLabels)) problems.push("the PodDisruptionBudget's selector matches the pods' labels");
  const replicas = k.deployment.spec?.replicas as number;
  const { maxUnavailable, minAvailable } = budget.spec ?? {};
  const allowed = maxUnavailable ?? (typeof minAvailable === 'number' ? replicas - minAvailable : NaN);
  if (!(Number.isInteger(allowed) && allowed >= 1 && allowed < replicas)) {
    problems.push(`the PodDisruptionBudget lets drains evict at least one of ${replicas} replicas and keeps one serving, not ${JSON.stringify(budget.spec)}`);
  }
  return problems;
}

function checkScraping(k: Kube): string[] {
  const problems: string[] = [];
  if (ALERT_JOBS.size !== 1) problems.push(`alerts.yml selects one job, not ${[...ALERT_JOBS].join(', ')}`);
  const job = [...ALERT_JOBS][0];
  const annotations = (k.deployment.spec?.template?.metadata?.annotations ?? {}) as Record<string, string>;
  const wanted = { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(k.config.PORT), 'prometheus.io/path': METRICS_PATH };
  for (const [name, value] of Object.entries(wanted)) {
    if (annotations[name] !== value) problems.push(`pod annotation ${name}: ${JSON.stringify(value)}, not ${JSON.stringify(annotations[name])}`);
  }
  const monitors = k.of('ServiceMonitor');
  if (monitors.length !== 1) return [...problems, `one ServiceMonitor, not ${monitors.length}`];
  const monitor = monitors[0]!;
  // The Prometheus Operator names the job after the Service the monitor selects.
  const service = k.of('Service').find((s) => selects(monitor.spec?.selector?.matchLabels, s.metadata?.labels));
  if (!service) return [...problems, "the ServiceMonitor's selector matches the Service's labels"];
  if (service.metadata?.name !== job) problems.push(`the Service (the scrape job) is named ${service.metadata?.name}, not ${job}, the job alerts.yml selects`);
  const endpoints = (monitor.spec?.endpoints ?? []) as Doc[];
  if (endpoints.length !== 1) return [...problems, `the ServiceMonitor has one endpoint, not ${endpoints.length}`];
  const endpoint = endpoints[0]!;
  const port = ((service.spec?.ports ?? []) as Doc[]).find((p) => p.name === endpoint.port);
  if (!port || containerPort(k, port.targetPort ?? port.port) !== k.config.PORT) {
    problems.push(`the ServiceMonitor scrapes the Service port ${endpoint.port}, which must target PORT=${k.config.PORT}`);
  }
  if (endpoint.path !== METRICS_PATH) problems.push(`the ServiceMonitor scrapes ${endpoint.path}, not ${METRICS_PATH}`);
  const timeout = durationMs(endpoint.scrapeTimeout ?? '10s');
  if (!(timeout > k.config.REDIS_COMMAND_TIMEOUT_MS && timeout <= durationMs(endpoint.interval ?? '30s'))) {
    problems.push(`scrapeTimeout ${endpoint.scrapeTimeout} is above REDIS_COMMAND_TIMEOUT_MS=${k.config.REDIS_COMMAND_TIMEOUT_MS} and within the interval`);
  }
  return problems;
}

function checkKustomization(k: Kube): string[] {
  const problems: string[] = [];
  const kustomization = k.of('Kustomization')[0];
  if (!kustomization) return ['a kustomization.yaml'];
  const listed = (kustomization.resources ?? []) as string[];
  for (const file of listed) if (!existsSync(join(KUBE_DIR, file))) problems.push(`kustomization.yaml lists ${file}, which does not exist`);
  // The Secret's placeholders must never overwrite the real one; the ServiceMonitor needs the Operator's CRDs.
  const apart = new Set(['kustomization.yaml', 'secret.yaml', 'servicemonitor.yaml']);
  const files = [...new Set(k.manifests.map((m) => m.file))].filter((file) => !apart.has(file));
  for (const file of files) if (!listed.includes(file)) problems.push(`kustomization.yaml does not list ${file}`);
  for (const file of apart) if (listed.includes(file)) problems.push(`kustomization.yaml lists ${file}, which is applied apart`);
  return problems;
}

const KUBE_CHECKS = { checkEnvironment, checkRollout, checkProbes, checkTermination, checkSecurity, checkResources, checkService, checkScraping, checkKustomization };

function kubeProblems(manifests: Manifest[]): string[] {
  const k = kubeView(manifests);
  return Object.values(KUBE_CHECKS).flatMap((check) => check(k));
}

// --- the compose file ------------------------------------------------------------------------

/** Compose's interpolation: $$ is a dollar; ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, $NAME. */
function interpolate<T>(value: T, env: Record<string, string>): T {
  if (typeof value === 'string') {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, braced?: string, op?: string, arg?: string, bare?: string) => {
      if (whole === '$$') return '$';
      const name = (braced ?? bare)!;
      const set = env[name] !== undefined && (env[name] !== '' || !op?.startsWith(':'));
      if (op?.endsWith('-')) return set ? env[name]! : arg!;
      if (op?.endsWith('?')) {
        if (!set) throw new Error(`${name}: ${arg}`);
        return env[name]!;
      }
      if (op?.endsWith('+')) return set ? arg! : '';
      return env[name] ?? '';
    }) as T;
  }
  if (Array.isArray(value)) return value.map((item: unknown) => interpolate(item, env)) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)])) as T;
  return value;
}

/** The variables a compose file takes from the environment ($$ escapes a shell's own). */
function composeVariables(text: string): Set<string> {
  const names = new Set<string>();
  for (const match of text.replace(/^\s*#.*$/gm, '').matchAll(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)/g)) {
    if (match[0] !== '$$') names.add((match[1] ?? match[2])!);
  }
  return names;
}

function readCompose(): Doc {
  // Merge keys (<<: *anchor) as Compose reads them; through JSON, so that services merged
  // from one anchor do not share objects (a check breaks one service at a time).
  return JSON.parse(JSON.stringify(parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }))) as Doc;
}

function environmentOf(service: Doc): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries((env as string[]).map((pair) => [pair.split('=')[0]!, pair.slice(pair.indexOf('=') + 1)]));
  }
  return Object.fromEntries(Object.entries(env as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
}

function commandOf(service: Doc): string[] {
  const list = (value: unknown) => (Array.isArray(value) ? (value as string[]) : typeof value === 'string' ? value.split(/\s+/) : []);
  return [...list(service.entrypoint), ...list(service.command)];
}

/** `--name value...` options of a redis-server command line. */
function redisOptions(command: string[]): Map<string, string[]> {
  const options = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const word of command.slice(1)) {
    if (word.startsWith('--')) options.set(word.slice(2), (current = []));
    else current?.push(word);
  }
  return options;
}

interface Sentinel {
  name: string;
  port: number;
  lines: string[][];
  script: string;
  problems: string[];
}

/**
 * A sentinel service: a shell script that writes the configuration (a heredoc) and runs
 * redis-server --sentinel on it. Its variables are resolved from the container's environment
 * and its hostname, as the shell would.
 */
function readSentinel(name: string, service: Doc): Sentinel {
  const problems: string[] = [];
  const command = commandOf(service);
  const script = command[0] === 'sh' && command[1] === '-c' ? command.slice(2).join(' ') : '';
  if (!script) problems.push(`${name}: entrypoint sh -c and a script that writes the configuration`);
  const heredoc = /cat > (\S+) <<-?'?EOF'?\n([\s\S]*?)\nEOF\n/.exec(script);
  if (!heredoc) problems.push(`${name}: the script writes the configuration with cat > file <<EOF`);
  const run = /exec docker-entrypoint\.sh redis-server (\S+) --sentinel\s*$/.exec(script.trim());
  if (!run || run[1] !== heredoc?.[1]) problems.push(`${name}: the script ends with exec docker-entrypoint.sh redis-server ${heredoc?.[1]} --sentinel`);
  const vars = { ...environmentOf(service), HOSTNAME: String(service.hostname ?? '') };
  const text = (heredoc?.[2] ?? '').replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, v: string) => vars[v as keyof typeof vars] ?? '');
  const lines = text.split('\n').map((line) => line.trim().split(/\s+/)).filter((words) => words[0] !== '');
  const port = Number(lines.find((l) => l[0] === 'port')?.[1] ?? 26379);
  return { name, port, lines, script, problems };
}

function checkCompose(raw: Doc, shell: Record<string, string>, k: Kube): string[] {
  const problems: string[] = [];
  const compose = interpolate(raw, shell);
  const services = (compose.services ?? {}) as Record<string, Doc>;
  const composeDir = dirname(COMPOSE_FILE);

  // The service, built from this repository's Dockerfile, with the manifests' variables.
  const leases = Object.entries(services).filter(([, s]) => s.build && resolve(composeDir, s.build.context ?? s.build) === ROOT);
  if (leases.length !== 2) problems.push(`two replicas of the service built from the repository's Dockerfile, not ${leases.map(([n]) => n).join(', ')}`);
  const manifestNames = Object.keys(k.variables).sort();
  /** Each replica of the service with the configuration it would run with. */
  const clients: { name: string; env: Record<string, string>; config: Config }[] = [];
  for (const [name, service] of leases) {
    const env = environmentOf(service);
    for (const variable of Object.keys(env)) if (!KNOWN_VARIABLES.has(variable)) problems.push(`${name}: ${variable} is not a variable of src/config.ts`);
    if (JSON.stringify(Object.keys(env).sort()) !== JSON.stringify(manifestNames)) {
      problems.push(`${name} sets ${Object.keys(env).sort().join(', ')}; the manifests set ${manifestNames.join(', ')}`);
    }
    for (const variable of manifestNames) {
      if (variable === 'REDIS_SENTINELS' || SECRET_VARIABLES.includes(variable)) continue;
      if (env[variable] !== undefined && env[variable] !== String(k.variables[variable])) {
        problems.push(`${name}: ${variable}=${env[variable]}, the manifests' is ${String(k.variables[variable])}`);
      }
    }
    const loaded = configOf({ ...IMAGE.env, ...env });
    if (loaded.error !== undefined) {
      problems.push(`${name}: loadConfig rejects its environment: ${loaded.error}`);
      continue;
    }
    const config = loaded.config;
    clients.push({ name, env, config });
    if (!(durationMs(service.stop_grace_period ?? '10s') > config.SHUTDOWN_GRACE_MS)) {
      problems.push(`${name}: stop_grace_period ${service.stop_grace_period ?? '10s (the default)'} is not above SHUTDOWN_GRACE_MS=${config.SHUTDOWN_GRACE_MS}`);
    }
    const published = ((service.ports ?? []) as (string | number | Doc)[]).map((p) => (typeof p === 'object' ? Number(p.target) : Number(`${p}`.split(':').at(-1))));
    if (!published.includes(config.PORT)) problems.push(`${name}: publishes PORT=${config.PORT} (ports: ${JSON.stringify(service.ports)})`);
  }
  const config = clients[0]?.config;
  if (!config) return problems;

  // Redis: servers and sentinels.
  const isSentinel = (s: Doc) => commandOf(s).some((word) => /--sentinel|redis-sentinel/.test(word));
  const sentinels = Object.entries(services)
    .filter(([, s]) => isSentinel(s))
    .map(([name, s]) => readSentinel(name, s));
  const servers = new Map(
    Object.entries(services)
      .filter(([, s]) => !isSentinel(s) && commandOf(s)[0] === 'redis-server')
      .map(([name, s]) => [name, redisOptions(commandOf(s))]),
  );
  if (sentinels.length !== 3) problems.push(`three sentinels, not ${sentinels.length}`);
  for (const client of clients) {
    const addresses = (client.config.REDIS_SENTINELS ?? '').split(',').filter(Boolean);
    for (const address of addresses) {
      const [host, port] = address.split(':');
      const sentinel = sentinels.find((s) => s.name === host);
      if (!sentinel) problems.push(`${client.name}: REDIS_SENTINELS names ${host}, which is not a sentinel service of the compose file`);
      else if (sentinel.port !== Number(port)) problems.push(`${client.name}: REDIS_SENTINELS names ${address}; ${host} listens on ${sentinel.port}`);
    }
    for (const sentinel of sentinels) {
      if (!addresses.some((a) => a.split(':')[0] === sentinel.name)) problems.push(`${client.name}: REDIS_SENTINELS leaves out the sentinel ${sentinel.name}`);
    }
  }
  for (const sentinel of sentinels) {
    problems.push(...sentinel.problems);
    const syntax = spawnSync('sh', ['-n', '-c', sentinel.script], { encoding: 'utf8' });
    if (syntax.status !== 0) problems.push(`${sentinel.name}: the script does not parse: ${syntax.stderr}`);
    const find = (...words: string[]) => sentinel.lines.find((line) => words.every((w, i) => line[i] === w));
    const at = (...words: string[]) => sentinel.lines.findIndex((line) => words.every((w, i) => line[i] === w));
    const monitor = find('sentinel', 'monitor');
    if (!monitor) {
      problems.push(`${sentinel.name}: no sentinel monitor line`);
      continue;
    }
    const [, , master, host, port, quorum] = monitor;
    for (const client of clients) {
      if (master !== client.config.REDIS_SENTINEL_MASTER) problems.push(`${sentinel.name} monitors ${master}; ${client.name} asks for REDIS_SENTINEL_MASTER=${client.config.REDIS_SENTINEL_MASTER}`);
    }
    const primary = servers.get(host!);
    if (!primary) problems.push(`${sentinel.name} monitors ${host}, which is not a redis-server service of the compose file`);
    else if (Number(primary.get('port')?.[0] ?? 6379) !== Number(port)) problems.push(`${sentinel.name} monitors ${host}:${port}; it listens on ${primary.get('port')?.[0]}`);
    if (!(Number(quorum) > sentinels.length / 2 && Number(quorum) <= sentinels.length)) problems.push(`${sentinel.name}: quorum ${quorum} is a majority of ${sentinels.length} sentinels`);
    // Every per-master option names the monitored master.
    for (const line of sentinel.lines) {
      if (line[0] === 'sentinel' && ['auth-pass', 'down-after-milliseconds', 'failover-timeout', 'parallel-syncs'].includes(line[1]!) && line[2] !== master) {
        problems.push(`${sentinel.name}: ${line.join(' ')} names another master than ${master}`);
      }
    }
    // Compose names services, not addresses: the sentinels must resolve and hand out names.
    for (const option of ['resolve-hostnames', 'announce-hostnames']) {
      const index = at('sentinel', option, 'yes');
      if (index < 0 || index > at('sentinel', 'monitor')) problems.push(`${sentinel.name}: sentinel ${option} yes, before the monitor line`);
    }
    if (find('sentinel', 'announce-ip')?.[2] !== sentinel.name) problems.push(`${sentinel.name}: announces ${find('sentinel', 'announce-ip')?.[2] || 'nothing'}, not its service name`);
    for (const { name, env } of clients) {
      if (find('sentinel', 'auth-pass')?.[3] !== env.REDIS_PASSWORD) problems.push(`${sentinel.name}: sentinel auth-pass is not ${name}'s REDIS_PASSWORD`);
      if (find('requirepass')?.[1] !== env.REDIS_SENTINEL_PASSWORD) problems.push(`${sentinel.name}: requirepass is not ${name}'s REDIS_SENTINEL_PASSWORD`);
      if (find('sentinel', 'sentinel-pass')?.[2] !== env.REDIS_SENTINEL_PASSWORD) problems.push(`${sentinel.name}: sentinel sentinel-pass is not ${name}'s REDIS_SENTINEL_PASSWORD`);
    }
  }
  const monitored = sentinels[0] && sentinels[0].lines.find((l) => l[0] === 'sentinel' && l[1] === 'monitor')?.[3];
  const replicas = [...servers].filter(([, options]) => options.has('replicaof'));
  if (replicas.length !== 1) problems.push(`one Redis replica, not ${replicas.length}`);
  for (const client of clients) {
    if (replicas.length < client.config.REDIS_MIN_REPLICAS) problems.push(`${client.name}: REDIS_MIN_REPLICAS=${client.config.REDIS_MIN_REPLICAS} needs as many Redis replicas`);
  }
  for (const [name, options] of servers) {
    const of = options.get('replicaof');
    if (of && of[0] !== monitored) problems.push(`${name} replicates ${of.join(' ')}, not the monitored primary ${monitored}`);
    if (!of && name !== monitored) problems.push(`${name} is a second primary`);
    for (const option of ['requirepass', 'masterauth']) {
      for (const client of clients) if (options.get(option)?.[0] !== client.env.REDIS_PASSWORD) problems.push(`${name}: --${option} is not ${client.name}'s REDIS_PASSWORD`);
    }
    if (options.get('appendonly')?.[0] !== 'yes') problems.push(`${name}: --appendonly yes`);
    if ((options.get('maxmemory-policy')?.[0] ?? 'noeviction') !== 'noeviction') problems.push(`${name}: --maxmemory-policy noeviction`);
    if (options.get('replica-announce-ip')?.[0] !== name) problems.push(`${name}: --replica-announce-ip ${name}, so that the sentinels name it by its service name`);
  }

  // Prometheus: the alerts file of this repository, the service's replicas as targets.
  const prometheus = Object.entries(services).find(([, s]) => /^prom\/prometheus(:|$)/.test(String(s.image)));
  if (!prometheus) return [...problems, 'a Prometheus service (prom/prometheus)'];
  const [promName, promService] = prometheus;
  const mounts = ((promService.volumes ?? []) as (string | Doc)[]).map((v) => {
    if (typeof v === 'object') return { source: String(v.source), target: String(v.target) };
    const [source = '', target = ''] = v.split(':');
    return { source, target };
  });
  const configMount = ((promService.configs ?? []) as Doc[]).find((c) => c.target === '/etc/prometheus/prometheus.yml');
  const promConfigText = configMount && (compose.configs?.[configMount.source]?.content as string | undefined);
  if (!promConfigText) return [...problems, `${promName}: a config (configs: content) at /etc/prometheus/prometheus.yml`];
  const promConfig = parse(promConfigText) as Doc;
  const ruleFiles = (promConfig.rule_files ?? []) as string[];
  const alertMount = mounts.find((m) => resolve(composeDir, m.source) === ALERTS);
  if (!alertMount) problems.push(`${promName} mounts deploy/prometheus/alerts.yml (mounts: ${JSON.stringify(mounts)})`);
  else if (!ruleFiles.includes(alertMount.target)) problems.push(`${promName}: rule_files ${JSON.stringify(ruleFiles)} does not load ${alertMount.target}`);
  for (const mount of mounts) if (mount.source.startsWith('.') && !existsSync(resolve(composeDir, mount.source))) problems.push(`${promName} mounts ${mount.source}, which does not exist`);
  const jobs = (promConfig.scrape_configs ?? []) as Doc[];
  const job = jobs.find((j) => ALERT_JOBS.has(j.job_name));
  if (!job) return [...problems, `${promName}: a scrape job named ${[...ALERT_JOBS].join()} (the job alerts.yml selects)`];
  if ((job.metrics_path ?? '/metrics') !== METRICS_PATH) problems.push(`${promName} scrapes ${job.metrics_path}, not ${METRICS_PATH}`);
  const targets = ((job.static_configs ?? []) as Doc[]).flatMap((c) => c.targets as string[]).sort();
  const expected = clients.map(({ name, config: c }) => `${name}:${c.PORT}`).sort();
  if (JSON.stringify(targets) !== JSON.stringify(expected)) problems.push(`${promName} scrapes ${targets.join(', ')}, not the replicas ${expected.join(', ')}`);
  if (!(durationMs(job.scrape_timeout ?? promConfig.global?.scrape_timeout ?? '10s') > config.REDIS_COMMAND_TIMEOUT_MS)) {
    problems.push(`${promName}: scrape_timeout is above REDIS_COMMAND_TIMEOUT_MS=${config.REDIS_COMMAND_TIMEOUT_MS}`);
  }
  return problems;
}

// --- the tests -------------------------------------------------------------------------------

const MANIFESTS = readManifests();
const KUBE = kubeView(MANIFESTS);
const COMPOSE_TEXT = readFileSync(COMPOSE_FILE, 'utf8');
const COMPOSE = readCompose();

/** Handles on a copy of the manifests, to break one thing in it. */
function handles(manifests: Manifest[]) {
  const of = (kind: string) => manifests.find((m) => m.doc.kind === kind)!.doc;
  const deployment = of('Deployment');
  return {
    configMap: of('ConfigMap').data as Doc,
    secret: of('Secret'),
    deployment,
    pod: deployment.spec.template.spec as Doc,
    container: deployment.spec.template.spec.containers[0] as Doc,
    service: of('Service'),
    budget: of('PodDisruptionBudget'),
    monitor: of('ServiceMonitor'),
    kustomization: of('Kustomization'),
  };
}
type Handles = ReturnType<typeof handles>;

describe('the Kubernetes manifests (deploy/kubernetes/)', () => {
  test('the facts they are checked against are found: main.ts, the Dockerfile, alerts.yml', () => {
    assert.ok(REDIS_START_TIMEOUT_MS > 0, 'REDIS_START_TIMEOUT_MS in src/main.ts');
    // The grace period is checked against SHUTDOWN_GRACE_MS because this is what bounds a SIGTERM.
    assert.match(MAIN, /closeWithGrace\(\s*\{\s*delay:\s*config\.SHUTDOWN_GRACE_MS\b/, 'main.ts stops with close-with-grace, delay SHUTDOWN_GRACE_MS');
    assert.equal(IMAGE.user, 'node', "the runtime image's USER");
    assert.equal(IMAGE.env.HOST, '0.0.0.0');
    assert.deepEqual([...ALERT_JOBS], ['lease-service']);
    assert.deepEqual(
      [...new Set(MANIFESTS.map((m) => `${m.doc.apiVersion} ${m.doc.kind}`))].sort(),
      [
        'apps/v1 Deployment',
        'kustomize.config.k8s.io/v1beta1 Kustomization',
        'monitoring.coreos.com/v1 ServiceMonitor',
        'policy/v1 PodDisruptionBudget',
        'v1 ConfigMap',
        'v1 Secret',
        'v1 Service',
      ],
    );
    for (const { file, doc } of MANIFESTS) {
      if (doc.kind !== 'Kustomization') assert.equal(doc.metadata?.labels?.['app.kubernetes.io/name'], 'lease-service', `${file}: ${doc.kind} is labelled`);
    }
  });

  for (const [name, check] of Object.entries(KUBE_CHECKS)) {
    test(`${name}: no problem`, () => {
      assert.deepEqual(check(KUBE), []);
    });
  }

  test('the environment the container gets loads through loadConfig as Sentinel mode, with the values of the manifests', () => {
    const { config } = KUBE;
    assert.equal(KUBE.configError, undefined);
    assert.equal(config.PORT, 8080);
    assert.equal(config.REDIS_SENTINELS?.split(',').length, 3);
    assert.equal(config.REDIS_MIN_REPLICAS, 1);
    assert.ok(config.REDIS_REPLICA_ACK_TIMEOUT_MS < config.REDIS_COMMAND_TIMEOUT_MS);
    assert.equal(config.SHUTDOWN_GRACE_MS, 10000);
  });

  // Each check fails when the one thing it guards is broken in a copy of the manifests.
  const breaks: [string, (h: Handles) => void, RegExp][] = [
    ['the readiness probe asks /healthz', (h) => (h.container.readinessProbe.httpGet.path = '/healthz'), /readinessProbe probes \/healthz, not \/readyz/],
    ['the liveness probe asks /readyz', (h) => (h.container.livenessProbe.httpGet.path = '/readyz'), /livenessProbe probes \/readyz, not \/healthz/],
    ['a probe asks another port', (h) => (h.container.livenessProbe.httpGet.port = 9090), /livenessProbe probes port 9090/],
    ['the container port is not PORT', (h) => (h.container.ports[0].containerPort = 8081), /declares port 8080/],
    ['PORT moves without the container port', (h) => (h.configMap.PORT = '9000'), /declares port 9000/],
    ['a variable is misspelt', (h) => (h.configMap.REDIS_SENTINEL = 'a:1'), /REDIS_SENTINEL is not a variable of src\/config\.ts/],
    ['a value is not a string', (h) => (h.configMap.SHUTDOWN_GRACE_MS = 10000), /SHUTDOWN_GRACE_MS: 10000 is not a string/],
    ['the master name is missing', (h) => delete h.configMap.REDIS_SENTINEL_MASTER, /loadConfig rejects .*REDIS_SENTINEL_MASTER/],
    ['the replica timeout reaches the command timeout', (h) => (h.configMap.REDIS_REPLICA_ACK_TIMEOUT_MS = '2000'), /loadConfig rejects .*REDIS_REPLICA_ACK_TIMEOUT_MS/],
    ['REDIS_MIN_REPLICAS is 0', (h) => (h.configMap.REDIS_MIN_REPLICAS = '0'), /REDIS_MIN_REPLICAS=0/],
    ['HOST is loopback', (h) => (h.configMap.HOST = '127.0.0.1'), /HOST=127\.0\.0\.1/],
    ['a password is in the ConfigMap', (h) => (h.configMap.REDIS_PASSWORD = 'x'), /REDIS_PASSWORD is in ConfigMap/],
    ['envFrom names no Secret of the manifests', (h) => (h.container.envFrom[1].secretRef.name = 'redis'), /envFrom names Secret redis/],
    ['service links are on', (h) => delete h.pod.enableServiceLinks, /enableServiceLinks/],
    ['the Deployment runs two replicas', (h) => (h.deployment.spec.replicas = 2), /3 replicas, not 2/],
    ['the rollout may stop a replica first', (h) => (h.deployment.spec.strategy.rollingUpdate.maxUnavailable = 1), /maxUnavailable 0/],
    ['the readiness timeout is under the Redis command timeout', (h) => (h.container.readinessProbe.timeoutSeconds = 2), /readinessProbe\.timeoutSeconds 2 s/],
    ['the startup probe gives up before main.ts does', (h) => (h.container.startupProbe.failureThreshold = 10), /startupProbe gives 20 s/],
    ['SHUTDOWN_GRACE_MS outgrows the grace period', (h) => (h.configMap.SHUTDOWN_GRACE_MS = '30000'), /terminationGracePeriodSeconds 20 is not above .* SHUTDOWN_GRACE_MS=30000/],
    ['the grace period leaves no room to close', (h) => (h.pod.terminationGracePeriodSeconds = 15), /terminationGracePeriodSeconds 15/],
    ['there is no preStop pause', (h) => delete h.container.lifecycle, /a preStop pause/],
    ['the root filesystem is writable', (h) => (h.container.securityContext.readOnlyRootFilesystem = false), /readOnlyRootFilesystem: true/],
    ['no numeric uid is given', (h) => delete h.pod.securityContext.runAsUser, /runAsUser/],
    ['root is allowed', (h) => delete h.pod.securityContext.runAsNonRoot, /runAsNonRoot: true/],
    ['/tmp is not writable', (h) => (h.container.volumeMounts = []), /\/tmp is an emptyDir/],
    ['Sentinel mode is off (the managed redis-server would write DATA_DIR)', (h) => {
      delete h.configMap.REDIS_SENTINELS;
      delete h.configMap.REDIS_SENTINEL_MASTER;
      h.configMap.REDIS_MIN_REPLICAS = '0';
    }, /writes DATA_DIR=\/data/],
    ['there is no memory limit', (h) => delete h.container.resources.limits.memory, /resources\.limits\.memory/],
    ['a request is above its limit', (h) => (h.container.resources.requests.cpu = '2'), /requests\.cpu 2 is above its limit 1/],
    ['the Service selects other pods', (h) => (h.service.spec.selector = { app: 'other' }), /the Service's selector/],
    ['the Service targets another port', (h) => (h.service.spec.ports[0].targetPort = 9000), /a Service port targets the container's PORT=8080/],
    ['the budget allows no eviction', (h) => (h.budget.spec.maxUnavailable = 0), /PodDisruptionBudget lets drains evict/],
    ['the budget allows every replica out', (h) => (h.budget.spec.maxUnavailable = 3), /PodDisruptionBudget lets drains evict/],
    ['the budget selects other pods', (h) => (h.budget.spec.selector.matchLabels = { app: 'other' }), /PodDisruptionBudget's selector/],
    ['the scrape annotation names another port', (h) => (h.deployment.spec.template.metadata.annotations['prometheus.io/port'] = '9090'), /prometheus\.io\/port: "8080"/],
    ['the ServiceMonitor names no Service port', (h) => (h.monitor.spec.endpoints[0].port = 'metrics'), /scrapes the Service port metrics/],
    ['the ServiceMonitor scrapes another path', (h) => (h.monitor.spec.endpoints[0].path = '/metricz'), /scrapes \/metricz/],
    ['the scrape times out before Redis does', (h) => (h.monitor.spec.endpoints[0].scrapeTimeout = '2s'), /scrapeTimeout 2s/],
    ['the Service (the job) is renamed', (h) => (h.service.metadata.name = 'leases'), /named leases, not lease-service/],
    ['kustomization.yaml lists a missing file', (h) => h.kustomization.resources.push('hpa.yaml'), /lists hpa\.yaml, which does not exist/],
    ['kustomization.yaml lists the Secret', (h) => h.kustomization.resources.push('secret.yaml'), /lists secret\.yaml, which is applied apart/],
    ['kustomization.yaml leaves the Service out', (h) => h.kustomization.resources.splice(h.kustomization.resources.indexOf('service.yaml'), 1), /does not list service\.yaml/],
  ];
  for (const [what, breakIt, expected] of breaks) {
    test(`fails when ${what}`, () => {
      const copy = structuredClone(MANIFESTS);
      breakIt(handles(copy));
      const problems = kubeProblems(copy);
      assert.ok(problems.some((p) => expected.test(p)), `expected a problem matching ${expected}; got:\n  ${problems.join('\n  ')}`);
    });
  }
});

describe('the compose file (deploy/compose.yaml)', () => {
  test('takes from the environment only the variables of the manifests (the passwords)', () => {
    assert.deepEqual([...composeVariables(COMPOSE_TEXT)].sort(), [...SECRET_VARIABLES].sort());
  });

  test('agrees with the service and the manifests, with the laptop defaults', () => {
    assert.deepEqual(checkCompose(COMPOSE, {}, KUBE), []);
  });

  test('agrees with the service and the manifests, with passwords from the environment', () => {
    assert.deepEqual(checkCompose(COMPOSE, { REDIS_PASSWORD: 'p-redis', REDIS_SENTINEL_PASSWORD: 'p-sentinel' }, KUBE), []);
  });

  test("Prometheus' configuration is valid and loads alerts.yml (promtool check config)", () => {
    const content = (COMPOSE.configs?.prometheus?.content ?? '') as string;
    const config = parse(content) as Doc;
    assert.deepEqual(config.rule_files, ['/etc/prometheus/alerts.yml']);
    // The file as the container sees it, with the mounted alerts.yml where it is on this machine.
    config.rule_files = [ALERTS];
    const dir = mkdtempSync(join(tmpdir(), 'lease-compose-prometheus-'));
    try {
      const file = join(dir, 'prometheus.yml');
      writeFileSync(file, JSON.stringify(config, null, 2));
      const result = spawnSync('promtool', ['check', 'config', file], { encoding: 'utf8', timeout: 60000 });
      assert.ok(!result.error, `promtool runs (install it with \`bash scripts/setup.sh --test\`): ${result.error?.message}`);
      assert.equal(result.status, 0, `promtool check config:\n${result.stdout}${result.stderr}`);
      assert.match(result.stdout, /SUCCESS: \d+ rules found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const service = (c: Doc, name: string) => c.services[name] as Doc;
  const sentinelScript = (c: Doc, name: string) => service(c, name).command as string[];
  const breaks: [string, (c: Doc) => void, RegExp][] = [
    ['the service gets a variable config.ts does not know', (c) => (service(c, 'lease-1').environment.REDIS_SENTINEL_NAME = 'x'), /lease-1: REDIS_SENTINEL_NAME is not a variable/],
    ['a value differs from the manifests', (c) => (service(c, 'lease-2').environment.REDIS_MIN_REPLICAS = '0'), /lease-2: REDIS_MIN_REPLICAS=0, the manifests' is 1/],
    ['the service runs once', (c) => delete c.services['lease-2'], /two replicas of the service/],
    ['REDIS_SENTINELS names a Redis server', (c) => (service(c, 'lease-1').environment.REDIS_SENTINELS = 'redis-primary:6379,sentinel-2:26379,sentinel-3:26379'), /lease-1: REDIS_SENTINELS names redis-primary, which is not a sentinel service/],
    ['REDIS_SENTINELS names a service that does not exist', (c) => (service(c, 'lease-1').environment.REDIS_SENTINELS = 'sentinel:26379,sentinel-2:26379,sentinel-3:26379'), /lease-1: REDIS_SENTINELS names sentinel, which is not a sentinel service/],
    ['REDIS_SENTINELS names the wrong port', (c) => (service(c, 'lease-1').environment.REDIS_SENTINELS = 'sentinel-1:26380,sentinel-2:26379,sentinel-3:26379'), /lease-1: REDIS_SENTINELS names sentinel-1:26380; sentinel-1 listens on 26379/],
    ['a replica of the service asks for another master', (c) => (service(c, 'lease-2').environment.REDIS_SENTINEL_MASTER = 'mymaster'), /monitors lease-primary; lease-2 asks for REDIS_SENTINEL_MASTER=mymaster/],
    ['a sentinel monitors another master', (c) => {
      const [script] = sentinelScript(c, 'sentinel-2');
      service(c, 'sentinel-2').command = [script!.replace('monitor lease-primary', 'monitor mymaster')];
    }, /sentinel-2 monitors mymaster/],
    ['a sentinel monitors a service that does not exist', (c) => {
      const [script] = sentinelScript(c, 'sentinel-3');
      service(c, 'sentinel-3').command = [script!.replace('lease-primary redis-primary 6379', 'lease-primary redis 6379')];
    }, /sentinel-3 monitors redis, which is not a redis-server service/],
    ['a sentinel does not resolve hostnames', (c) => {
      const [script] = sentinelScript(c, 'sentinel-1');
      service(c, 'sentinel-1').command = [script!.replace('sentinel resolve-hostnames yes\n', '')];
    }, /sentinel-1: sentinel resolve-hostnames yes/],
    ['a sentinel has no hostname to announce', (c) => delete service(c, 'sentinel-1').hostname, /sentinel-1: announces nothing/],
    ['a sentinel gets another password', (c) => (service(c, 'sentinel-2').environment.REDIS_PASSWORD = 'other'), /sentinel-2: sentinel auth-pass is not lease-1's REDIS_PASSWORD/],
    ['a Redis server gets another password', (c) => {
      const command = service(c, 'redis-replica').command as string[];
      command[command.indexOf('--requirepass') + 1] = 'other';
    }, /redis-replica: --requirepass is not lease-1's REDIS_PASSWORD/],
    ['the replica replicates nothing', (c) => {
      const command = service(c, 'redis-replica').command as string[];
      command.splice(command.indexOf('--replicaof'), 3);
    }, /one Redis replica, not 0/],
    ['a Redis server has no append-only file', (c) => {
      const command = service(c, 'redis-primary').command as string[];
      command.splice(command.indexOf('--appendonly'), 2);
    }, /redis-primary: --appendonly yes/],
    ['there are only two sentinels', (c) => delete c.services['sentinel-3'], /three sentinels, not 2/],
    ['the service stops within its own grace', (c) => (service(c, 'lease-1').stop_grace_period = '10s'), /lease-1: stop_grace_period 10s is not above SHUTDOWN_GRACE_MS=10000/],
    ['Prometheus mounts an alerts file that does not exist', (c) => (service(c, 'prometheus').volumes = ['./prometheus/alert.yml:/etc/prometheus/alerts.yml:ro']), /mounts \.\/prometheus\/alert\.yml, which does not exist/],
    ['Prometheus loads another rules file', (c) => (c.configs.prometheus.content = c.configs.prometheus.content.replace('/etc/prometheus/alerts.yml', '/etc/prometheus/rules.yml')), /does not load \/etc\/prometheus\/alerts\.yml/],
    ['Prometheus scrapes another port', (c) => (c.configs.prometheus.content = c.configs.prometheus.content.replace('lease-2:8080', 'lease-2:9090')), /scrapes lease-1:8080, lease-2:9090, not the replicas/],
    ['the scrape job is renamed', (c) => (c.configs.prometheus.content = c.configs.prometheus.content.replace('job_name: lease-service', 'job_name: leases')), /a scrape job named lease-service/],
  ];
  for (const [what, breakIt, expected] of breaks) {
    test(`fails when ${what}`, () => {
      const copy = structuredClone(COMPOSE);
      breakIt(copy);
      const problems = checkCompose(copy, {}, KUBE);
      assert.ok(problems.some((p) => expected.test(p)), `expected a problem matching ${expected}; got:\n  ${problems.join('\n  ')}`);
    });
  }
});

describe('the paths the manifests probe and scrape, on a real app', () => {
  const { t, redis } = useTestApp();

  test('readiness, liveness and metrics answer 200; with Redis down readiness answers 503 and liveness still 200', async () => {
    assert.equal((await t.get(READINESS_PATH)).statusCode, 200);
    assert.equal((await t.get(LIVENESS_PATH)).statusCode, 200);
    const metrics = await t.get(METRICS_PATH);
    assert.equal(metrics.statusCode, 200);
    assert.match(metrics.body, /^lease_redis_up 1$/m);
    await redis.kill();
    try {
      await waitFor(async () => (await t.get(READINESS_PATH)).statusCode === 503, { timeoutMs: 10000, what: `${READINESS_PATH} to answer 503 with Redis down` });
      assert.equal((await t.get(LIVENESS_PATH)).statusCode, 200, 'liveness does not depend on Redis (a Redis outage must not restart the pods)');
    } finally {
      await redis.start();
    }
  });
});
