import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '@doorman/proto';
import { buildConfig, mergeSecrets, NO_SECRETS } from './document.js';

const DOC = JSON.stringify({
  general: { port: 6500 },
  pools: {
    app: { server_host: '127.0.0.1', server_port: 5432, users: [{ username: 'alice' }, { username: 'bob', password: 'inline' }] },
    other: { server_host: '127.0.0.1', server_port: 5432, users: [{ username: 'alice' }] },
  },
});

test('mergeSecrets fills passwords per (database, user) and the admin password; unknown entries are ignored', () => {
  const merged = JSON.parse(
    mergeSecrets(DOC, {
      version: 2,
      users: [
        { database: 'app', username: 'alice', password: 'a-pw', serverPassword: 'a-srv' },
        { database: 'app', username: 'bob', password: '', serverPassword: '' },
        { database: 'gone', username: 'alice', password: 'x', serverPassword: 'y' },
      ],
      adminPassword: 'admin-pw',
    }),
  ) as { general: Record<string, unknown>; pools: Record<string, { users: Record<string, unknown>[] }> };
  assert.deepEqual(merged.pools.app.users, [
    { username: 'alice', password: 'a-pw', server_password: 'a-srv' },
    { username: 'bob', password: 'inline' },
  ]);
  assert.deepEqual(merged.pools.other.users, [{ username: 'alice' }]);
  assert.deepEqual(merged.general, { port: 6500, admin_password: 'admin-pw' });
});

test('buildConfig validates with the standalone schema and names the version in the source', () => {
  const loaded = buildConfig(DOC, NO_SECRETS, 7);
  assert.equal(loaded.config.general.port, 6500);
  const local = buildConfig(DOC, NO_SECRETS, 7, { listen: { host: '127.0.0.2', port: 7100 } });
  assert.equal(local.config.general.host, '127.0.0.2');
  assert.equal(local.config.general.port, 7100);
  assert.deepEqual(Object.keys(loaded.config.pools), ['app', 'other']);
  assert.throws(
    () => buildConfig('{"general":{"port":"x"},"pools":{}}', NO_SECRETS, 8),
    (err: unknown) => err instanceof ConfigError && err.issues[0].path === 'general.port',
  );
  assert.throws(
    () => buildConfig('not json', NO_SECRETS, 9),
    (err: unknown) => err instanceof ConfigError && err.issues[0].path === '(document)' && /not JSON/.test(err.issues[0].message),
  );
});
