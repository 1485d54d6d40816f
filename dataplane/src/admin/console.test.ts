import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_GENERAL } from '@doorman/proto';
import { configRows, encodeAdminResult, runAdminCommand, type AdminResult, type AdminView } from './console.js';

function fakeView(): AdminView & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    version: '1.2.3',
    general: { ...DEFAULT_GENERAL, adminPassword: 'secret' },
    databases: () => [{ name: 'app', host: 'db1', port: 5432, database: 'app_real', poolMode: 'transaction', poolSize: 7 }],
    users: () => [
      { name: 'alice', poolMode: 'transaction' },
      { name: 'bob', poolMode: 'session' },
    ],
    pools: () => [{ database: 'app', user: 'alice', clActive: 3, clWaiting: 1, svActive: 2, svIdle: 4, svLogin: 1, poolSize: 5, poolMode: 'transaction' }],
    clients: () => [{ user: 'alice', database: 'app', state: 'waiting', addr: '10.0.0.9', port: 40001, tls: true }],
    servers: () => [{ user: 'alice', database: 'app', state: 'login', addr: 'db1', port: 5432, pid: 4242 }],
    pause: (db) => {
      calls.push(`pause ${db}`);
      return db === null || db === 'app';
    },
    resume: (db) => {
      calls.push(`resume ${db}`);
      return db === null || db === 'app';
    },
    reload: () => calls.push('reload'),
    shutdown: () => calls.push('shutdown'),
  };
}

function rows(r: AdminResult): { columns: string[]; rows: (string | null)[][] } {
  assert.equal(r.kind, 'rows');
  if (r.kind !== 'rows') throw new Error('unreachable');
  return { columns: r.columns.map((c) => c.name), rows: r.rows };
}

test('SHOW VERSION: one row naming Doorman and its version, any case, optional semicolon', () => {
  const v = fakeView();
  for (const q of ['SHOW VERSION', 'show version;', '  Show Version ;  ']) {
    assert.deepEqual(rows(runAdminCommand(q, v)), { columns: ['version'], rows: [['Doorman 1.2.3']] });
  }
});

test('SHOW POOLS lists the live counters with sv_used and maxwait 0', () => {
  assert.deepEqual(rows(runAdminCommand('SHOW POOLS', fakeView())), {
    columns: ['database', 'user', 'cl_active', 'cl_waiting', 'sv_active', 'sv_idle', 'sv_used', 'sv_login', 'pool_size', 'maxwait', 'pool_mode'],
    rows: [['app', 'alice', '3', '1', '2', '4', '0', '1', '5', '0', 'transaction']],
  });
});

test('SHOW DATABASES, USERS, CLIENTS, SERVERS and LISTS', () => {
  const v = fakeView();
  assert.deepEqual(rows(runAdminCommand('show databases', v)).rows, [['app', 'db1', '5432', 'app_real', 'transaction', '7']]);
  assert.deepEqual(rows(runAdminCommand('show users', v)).rows, [
    ['alice', 'transaction'],
    ['bob', 'session'],
  ]);
  assert.deepEqual(rows(runAdminCommand('show clients', v)), {
    columns: ['type', 'user', 'database', 'state', 'addr', 'port', 'tls'],
    rows: [['C', 'alice', 'app', 'waiting', '10.0.0.9', '40001', 'yes']],
  });
  assert.deepEqual(rows(runAdminCommand('show servers', v)), {
    columns: ['type', 'user', 'database', 'state', 'addr', 'port', 'pid'],
    rows: [['S', 'alice', 'app', 'login', 'db1', '5432', '4242']],
  });
  assert.deepEqual(rows(runAdminCommand('show lists', v)).rows, [
    ['databases', '1'],
    ['users', '2'],
    ['pools', '1'],
    ['clients', '1'],
    ['servers', '1'],
  ]);
});

test('SHOW CONFIG masks the admin password and marks listen settings unchangeable', () => {
  const r = rows(runAdminCommand('SHOW CONFIG', fakeView()));
  assert.deepEqual(r.columns, ['key', 'value', 'changeable']);
  assert.deepEqual(r.rows.find((row) => row[0] === 'admin_password'), ['admin_password', '[set]', 'yes']);
  assert.deepEqual(r.rows.find((row) => row[0] === 'port'), ['port', String(DEFAULT_GENERAL.port), 'no']);
  assert.deepEqual(r.rows.find((row) => row[0] === 'max_client_conn'), ['max_client_conn', String(DEFAULT_GENERAL.maxClientConn), 'yes']);
  assert.equal(configRows({ ...DEFAULT_GENERAL, adminPassword: '' }).find((row) => row[0] === 'admin_password')?.[1], '');
});

test('PAUSE and RESUME with and without a database', () => {
  const v = fakeView();
  assert.deepEqual(runAdminCommand('PAUSE', v), { kind: 'done', tag: 'PAUSE', after: null });
  assert.deepEqual(runAdminCommand('resume app;', v), { kind: 'done', tag: 'RESUME', after: null });
  assert.deepEqual(runAdminCommand('PAUSE nope', v), { kind: 'error', code: '3D000', message: 'no such database: nope' });
  assert.deepEqual(v.calls, ['pause null', 'resume app', 'pause nope']);
});

test('RELOAD and SHUTDOWN act only after the reply is written', () => {
  const v = fakeView();
  const reload = runAdminCommand('reload', v);
  const shutdown = runAdminCommand('SHUTDOWN;', v);
  assert.deepEqual(v.calls, []);
  assert.ok(reload.kind === 'done' && reload.tag === 'RELOAD' && reload.after !== null);
  assert.ok(shutdown.kind === 'done' && shutdown.tag === 'SHUTDOWN' && shutdown.after !== null);
  reload.after();
  shutdown.after();
  assert.deepEqual(v.calls, ['reload', 'shutdown']);
});

test('unknown commands are 42601 naming the command; an empty query is empty', () => {
  const v = fakeView();
  assert.deepEqual(runAdminCommand('SELECT 1', v), { kind: 'error', code: '42601', message: 'unknown admin console command: SELECT 1' });
  assert.deepEqual(runAdminCommand('SHOW STATS', v), { kind: 'error', code: '42601', message: 'unknown admin console command: SHOW STATS' });
  assert.deepEqual(runAdminCommand('RELOAD now', v), { kind: 'error', code: '42601', message: 'unknown admin console command: RELOAD now' });
  assert.deepEqual(runAdminCommand(' ; ', v), { kind: 'empty' });
});

test('encoding: RowDescription, DataRows, CommandComplete, then ReadyForQuery idle', () => {
  const wire = encodeAdminResult(runAdminCommand('SHOW USERS', fakeView()));
  const codes: string[] = [];
  for (let p = 0; p < wire.length; p += 1 + wire.readUInt32BE(p + 1)) codes.push(String.fromCharCode(wire[p]));
  assert.deepEqual(codes, ['T', 'D', 'D', 'C', 'Z']);
  assert.equal(wire[wire.length - 1], 'I'.charCodeAt(0));
  const err = encodeAdminResult({ kind: 'error', code: '42601', message: 'x' });
  assert.equal(String.fromCharCode(err[0]), 'E');
  assert.equal(String.fromCharCode(err[1 + err.readUInt32BE(1)]), 'Z');
});
