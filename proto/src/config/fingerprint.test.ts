import { test } from 'node:test';
import assert from 'node:assert/strict';
import { poolFingerprint, userFingerprint } from './fingerprint.js';
import type { PoolConfig, UserConfig } from './types.js';

function user(overrides: Partial<UserConfig> = {}): UserConfig {
  return {
    username: 'app',
    password: 'client-secret',
    poolSize: 40,
    minPoolSize: 0,
    reservePoolSize: 0,
    poolMode: 'transaction',
    serverUsername: 'app',
    serverPassword: null,
    serverLifetime: 3_600_000,
    ...overrides,
  };
}

function pool(overrides: Partial<PoolConfig> = {}): PoolConfig {
  return {
    name: 'db',
    serverHost: '127.0.0.1',
    serverPort: 5432,
    serverDatabase: 'db',
    poolMode: 'transaction',
    queryWaitTimeout: 5000,
    serverTlsMode: 'prefer',
    applicationName: 'doorman',
    users: [user()],
    ...overrides,
  };
}

test('fingerprints are sha256 hex and stable across calls', () => {
  const fp = poolFingerprint(pool());
  assert.match(fp, /^[0-9a-f]{64}$/);
  assert.equal(poolFingerprint(pool()), fp);
  assert.match(userFingerprint(pool(), user()), /^[0-9a-f]{64}$/);
  assert.notEqual(userFingerprint(pool(), user()), fp);
});

test('key order does not matter', () => {
  const p = pool();
  const reordered = Object.fromEntries(Object.entries(p).reverse()) as unknown as PoolConfig;
  const u = user();
  const reorderedUser = Object.fromEntries(Object.entries(u).reverse()) as unknown as UserConfig;
  reordered.users = [reorderedUser];
  assert.deepEqual(Object.keys(reordered)[0], 'users');
  assert.equal(poolFingerprint(reordered), poolFingerprint(p));
  assert.equal(userFingerprint(reordered, reorderedUser), userFingerprint(p, u));
});

test('user list order does not matter to the pool fingerprint', () => {
  const a = user({ username: 'a', serverUsername: 'a' });
  const b = user({ username: 'b', serverUsername: 'b' });
  assert.equal(poolFingerprint(pool({ users: [a, b] })), poolFingerprint(pool({ users: [b, a] })));
});

test('every pool field changes the pool fingerprint', () => {
  const base = poolFingerprint(pool());
  const changes: Array<Partial<PoolConfig>> = [
    { name: 'db2' },
    { serverHost: '10.0.0.1' },
    { serverPort: 5433 },
    { serverDatabase: 'other' },
    { poolMode: 'session' },
    { queryWaitTimeout: 0 },
    { serverTlsMode: 'require' },
    { applicationName: 'x' },
    { users: [user({ password: 'new-client-secret' })] },
    { users: [user(), user({ username: 'second', serverUsername: 'second' })] },
  ];
  const seen = new Set([base]);
  for (const change of changes) {
    const fp = poolFingerprint(pool(change));
    assert.ok(!seen.has(fp), `no change for ${JSON.stringify(change)}`);
    seen.add(fp);
  }
});

test('every server-affecting field changes the user fingerprint', () => {
  const base = userFingerprint(pool(), user());
  const cases: Array<[Partial<PoolConfig>, Partial<UserConfig>]> = [
    [{ name: 'db2' }, {}],
    [{ serverHost: '/var/run/postgresql' }, {}],
    [{ serverPort: 6543 }, {}],
    [{ serverDatabase: 'other' }, {}],
    [{ serverTlsMode: 'verify-full' }, {}],
    [{ applicationName: 'x' }, {}],
    [{}, { username: 'app2' }],
    [{}, { serverUsername: 'pg_app' }],
    [{}, { serverPassword: 'server-secret' }],
    [{}, { password: 'another-client-secret' }],
    [{}, { poolMode: 'session' }],
  ];
  const seen = new Set([base]);
  for (const [p, u] of cases) {
    const fp = userFingerprint(pool(p), user(u));
    assert.ok(!seen.has(fp), `no change for ${JSON.stringify([p, u])}`);
    seen.add(fp);
  }
});

test('the user fingerprint ignores what does not touch server connections', () => {
  const withServerPassword = user({ serverPassword: 'server-secret' });
  const base = userFingerprint(pool(), withServerPassword);
  // The client secret is not used towards PostgreSQL once server_password is set.
  assert.equal(userFingerprint(pool(), user({ serverPassword: 'server-secret', password: 'rotated' })), base);
  // Other users and client-facing pool settings do not matter.
  assert.equal(userFingerprint(pool({ queryWaitTimeout: 1, users: [] }), withServerPassword), base);
  // Sizes and lifetimes are applied to the running pool on reload.
  assert.equal(userFingerprint(pool(), user({ serverPassword: 'server-secret', poolSize: 41, minPoolSize: 1, reservePoolSize: 2, serverLifetime: 60_000 })), base);
});
