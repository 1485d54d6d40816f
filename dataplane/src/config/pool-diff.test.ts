import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '@doorman/proto';
import { diffPools } from './pool-diff.js';

const yaml = (pools: string): string => `general: {host: 127.0.0.1, port: 6432}\npools:\n${pools}`;

test('diffPools counts kept, replaced (server settings changed), added and removed (database, user) pools', () => {
  const old = parseConfig(
    yaml(`  a: {server_host: h1, users: [{username: u1, password: p, pool_size: 5}, {username: u2, password: p}]}
  b: {server_host: h1, users: [{username: u1, password: p}]}
`),
    'old',
  );
  const next = parseConfig(
    yaml(`  a: {server_host: h1, users: [{username: u1, password: p, pool_size: 9}, {username: u3, password: p}]}
  b: {server_host: h2, users: [{username: u1, password: p}]}
`),
    'next',
  );
  // a/u1: only pool_size changed -> kept; a/u2 removed; a/u3 added; b/u1: server_host changed -> replaced.
  assert.deepEqual(diffPools(old, next), { kept: 1, replaced: 1, added: 1, removed: 1 });
  assert.deepEqual(diffPools(next, next), { kept: 3, replaced: 0, added: 0, removed: 0 });
});
