import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffDocuments, summarize } from './diff.js';
import { emptySecrets, splitSecrets } from '../secrets/split.js';

const base = {
  general: { port: 6432, host: '127.0.0.1' },
  pools: { app: { server_host: 'db', users: [{ username: 'alice', pool_size: 5 }, { username: 'bob', pool_size: 3 }] } },
};

test('user order and key order are not changes', () => {
  const reordered = { pools: { app: { users: [{ pool_size: 3, username: 'bob' }, { username: 'alice', pool_size: 5 }], server_host: 'db' } }, general: { host: '127.0.0.1', port: 6432 } };
  assert.deepEqual(diffDocuments(base, emptySecrets(), reordered, emptySecrets()), []);
});

test('paths name users by username; restart-required fields are flagged', () => {
  const next = structuredClone(base);
  next.general.port = 7432;
  next.pools.app.users[0]!.pool_size = 9;
  next.pools.app.users.pop();
  const diff = diffDocuments(base, emptySecrets(), next, emptySecrets());
  assert.deepEqual(diff, [
    { change: 'changed', path: 'general.port', before: '6432', after: '7432', restartRequired: true },
    { change: 'changed', path: 'pools.app.users.alice.pool_size', before: '5', after: '9', restartRequired: false },
    { change: 'removed', path: 'pools.app.users.bob', before: '{"pool_size":3}', after: '', restartRequired: false },
  ]);
  assert.equal(summarize('apply', diff), 'apply: 0 added, 1 removed, 2 changed');
});

test('secret changes show as [set], never their values', () => {
  const a = splitSecrets({ pools: { app: { users: [{ username: 'alice', password: 'one' }] } } });
  const b = splitSecrets({ general: { admin_password: 'adm' }, pools: { app: { users: [{ username: 'alice', password: 'two', server_password: 'srv' }] } } });
  const diff = diffDocuments(a.document, a.secrets, b.document, b.secrets);
  assert.deepEqual(diff, [
    { change: 'added', path: 'secrets.general.admin_password', before: '', after: '[set]', restartRequired: false },
    { change: 'changed', path: 'secrets.app.alice.password', before: '[set]', after: '[set]', restartRequired: false },
    { change: 'added', path: 'secrets.app.alice.server_password', before: '', after: '[set]', restartRequired: false },
  ]);
  assert.ok(!JSON.stringify(diff).includes('two') && !JSON.stringify(diff).includes('srv'));
});
