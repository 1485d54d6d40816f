import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeSecrets, secretsEqual, secretsFor, splitSecrets } from './split.js';

const doc = {
  general: { port: 6432, admin_password: 'adm' },
  pools: {
    app: { server_host: 'db', users: [{ username: 'alice', password: 'pw', pool_size: 2 }, { username: 'bob', server_password: 'srv' }, { username: 'carol' }] },
    other: { users: { 0: { username: 'dave', password: 'md5abc' } } },
  },
};

test('split removes every secret and keeps them by database and user', () => {
  const { document, secrets } = splitSecrets(doc);
  assert.deepEqual(document, {
    general: { port: 6432 },
    pools: {
      app: { server_host: 'db', users: [{ username: 'alice', pool_size: 2 }, { username: 'bob' }, { username: 'carol' }] },
      other: { users: { 0: { username: 'dave' } } },
    },
  });
  assert.deepEqual(secrets, {
    adminPassword: 'adm',
    users: {
      app: { alice: { password: 'pw', serverPassword: '' }, bob: { password: '', serverPassword: 'srv' } },
      other: { dave: { password: 'md5abc', serverPassword: '' } },
    },
  });
  assert.equal(doc.general.admin_password, 'adm', 'the input is not modified');
});

test('merge restores the original document; a marker renderer hides values', () => {
  const { document, secrets } = splitSecrets(doc);
  assert.deepEqual(mergeSecrets(document, secrets), doc);
  const shown = mergeSecrets(document, secrets, (v) => (v === '' ? '[unset]' : '[set]'));
  assert.deepEqual((shown.pools as { app: { users: unknown[] } }).app.users[2], { username: 'carol', password: '[unset]', server_password: '[unset]' });
  assert.equal((shown.general as { admin_password: string }).admin_password, '[set]');
});

test('secretsFor keeps only users still present', () => {
  const { secrets } = splitSecrets(doc);
  const kept = secretsFor({ pools: { app: { users: [{ username: 'bob' }] } } }, secrets);
  assert.deepEqual(kept, { adminPassword: 'adm', users: { app: { bob: { password: '', serverPassword: 'srv' } } } });
  assert.equal(secretsEqual(kept, { users: { app: { bob: { serverPassword: 'srv', password: '' } } }, adminPassword: 'adm' }), true);
});
