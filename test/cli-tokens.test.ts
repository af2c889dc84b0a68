// `lease tokens create | ls | revoke`: the service tokens of access control, made by the CLI
// on the service's Redis (as an operator does with kubectl exec), and used against a real
// service with AUTH=on on the same Redis and KEY_PREFIX.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { acquireBody, useTestApp } from './helpers/app.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

const { t, redis } = useTestApp({ env: { AUTH: 'on' } });

/** `lease ...args` with the service's Redis settings in its environment, as where the service runs. */
async function lease(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { LEASE_NAMESPACE: _namespace, LEASE_TOKEN: _token, REDIS_URL: _url, ...inherited } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    env: { ...inherited, NO_COLOR: '1', REDIS_URL: redis.url, KEY_PREFIX: t.config.KEY_PREFIX },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number>((resolve) => child.on('close', (exit) => resolve(exit ?? 1)));
  return { code, stdout, stderr };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('lease tokens', () => {
  test('create prints a token once; it works for what it grants and nothing more; ls shows it without its secret; revoke stops it at once', async () => {
    const created = await lease('tokens', 'create', '--role', 'conductor', '--namespace', 'cell-1', '--holder', 'conductor-*', '--description', 'test conductors');
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^lst_[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}$/);
    const id = token.slice(4, 20);
    assert.match(created.stderr, new RegExp(`Token ${id} \\(conductor, namespaces cell-1, holders conductor-\\*\\)`));

    const granted = await t.app.inject({ method: 'POST', url: '/v1/namespaces/cell-1/leases', headers: bearer(token), payload: acquireBody('conductor-7', ['instances/i-1']) });
    assert.equal(granted.statusCode, 201, granted.body);
    const otherHolder = await t.app.inject({ method: 'POST', url: '/v1/namespaces/cell-1/leases', headers: bearer(token), payload: acquireBody('janitor', ['instances/i-2']) });
    assert.equal(otherHolder.statusCode, 403);
    const otherNamespace = await t.app.inject({ method: 'POST', url: '/v1/namespaces/cell-2/leases', headers: bearer(token), payload: acquireBody('conductor-7', ['instances/i-1']) });
    assert.equal(otherNamespace.statusCode, 403);

    const listed = await lease('--json', 'tokens', 'ls');
    assert.equal(listed.code, 0, listed.stderr);
    const records = JSON.parse(listed.stdout) as Record<string, unknown>[];
    const record = records.find((r) => r.id === id);
    assert.deepEqual(
      { role: record?.role, namespaces: record?.namespaces, holders: record?.holders, description: record?.description },
      { role: 'conductor', namespaces: ['cell-1'], holders: 'conductor-*', description: 'test conductors' },
    );
    assert.ok(!listed.stdout.includes(token.split('.')[1]!), 'ls never shows a secret');
    assert.ok(!JSON.stringify(await t.redis.hgetall(`{${t.config.KEY_PREFIX}}:tokens`)).includes(token.split('.')[1]!), 'Redis keeps no secret, only its hash');

    const revoked = await lease('tokens', 'revoke', id);
    assert.equal(revoked.code, 0, revoked.stderr);
    const after = await t.app.inject({ method: 'GET', url: '/v1/namespaces/cell-1/leases?holder=conductor-7', headers: bearer(token) });
    assert.equal(after.statusCode, 401, 'the very next request after the revocation');
    assert.equal((await lease('tokens', 'revoke', id)).code, 1, 'revoking an unknown id is an error');
  });

  test('an operator token for every namespace; a token must say its namespaces, a conductor its holders', async () => {
    const created = await lease('tokens', 'create', '--role', 'operator', '--namespace', '*');
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    for (const url of ['/v1/leases', '/v1/namespaces/anywhere/leases']) {
      const res = await t.app.inject({ method: 'GET', url, headers: bearer(token) });
      assert.equal(res.statusCode, 200, `${url}: ${res.body}`);
    }
    const before = await t.redis.hlen(`{${t.config.KEY_PREFIX}}:tokens`);
    const noNamespace = await lease('tokens', 'create', '--role', 'reader');
    assert.equal(noNamespace.code, 1);
    assert.match(noNamespace.stderr, /--namespace/);
    const noHolder = await lease('tokens', 'create', '--role', 'conductor', '--namespace', 'cell-1');
    assert.equal(noHolder.code, 1);
    assert.match(noHolder.stderr, /--holder/);
    assert.equal(await t.redis.hlen(`{${t.config.KEY_PREFIX}}:tokens`), before, 'refused creations made no token');
  });
});
