import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_GENERAL } from '@doorman/proto';
import { newCounts, record } from '../stats/histogram.js';
import { zeroTotals, type PoolStatsSnapshot } from '../stats/pool-stats.js';
import { configRows, encodeAdminResult, runAdminCommand, type AdminResult, type AdminView } from './console.js';

/** Pool counters as one shard would report them: `xacts` transactions of `us` µs each over a 10 s period. */
function poolStats(database: string, user: string, xacts: number, us: number): PoolStatsSnapshot {
  const totals = { ...zeroTotals(), xacts, queries: 2 * xacts, received: 100 * xacts, sent: 1000 * xacts, xactTime: xacts * us, queryTime: xacts * us, waitTime: 50 * xacts, waits: xacts };
  const xactHist = newCounts();
  const queryHist = newCounts();
  const waitHist = newCounts();
  for (let i = 0; i < xacts; i++) {
    record(xactHist, us);
    record(queryHist, us / 2);
    record(queryHist, us / 2);
    record(waitHist, 50);
  }
  return { database, user, totals, period: { ...totals }, periodMs: 10_000, xactHist, queryHist, waitHist, errors: {} };
}

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
    pools: () => [
      {
        database: 'app',
        user: 'alice',
        clActive: 3,
        clWaiting: 1,
        svActive: 2,
        svIdle: 4,
        svUsed: 1,
        svTested: 0,
        svLogin: 1,
        maxWaitMs: 2500,
        poolSize: 5,
        poolMode: 'transaction',
        paused: false,
      },
    ],
    clients: () => [{ id: 129, user: 'alice', database: 'app', state: 'waiting', addr: '10.0.0.9', port: 40001, tls: 'TLSv1.3/TLS_AES_256_GCM_SHA384' }],
    servers: () => [{ user: 'alice', database: 'app', state: 'login', addr: 'db1', port: 5432, pid: 4242, closeNeeded: true, tls: '' }],
    // Two users of app (one of them reported by two shards) and one of other.
    stats: () => [poolStats('app', 'alice', 100, 1000), poolStats('app', 'bob', 300, 3000), poolStats('other', 'carol', 0, 0)],
    mem: () => [
      { shard: 0, clients: 3, servers: 2, pools: 1, preparedStatements: 7, heapUsed: 10, heapTotal: 20, external: 3, arrayBuffers: 1, rss: 99 },
      { shard: 1, clients: 1, servers: 0, pools: 1, preparedStatements: 0, heapUsed: 11, heapTotal: 21, external: 4, arrayBuffers: 2, rss: 99 },
    ],
    prepared: () => [{ database: 'app', user: 'alice', shard: 1, name: 'DOORMAN_3', query: 'SELECT $1', hits: 12 }],
    pause: (db) => {
      calls.push(`pause ${db}`);
      return db === null || db === 'app';
    },
    resume: (db) => {
      calls.push(`resume ${db}`);
      return db === null || db === 'app';
    },
    reconnect: (db) => (calls.push(`reconnect ${db}`), db === null || db === 'app'),
    disable: (db) => (calls.push(`disable ${db}`), db === 'app'),
    enable: (db) => (calls.push(`enable ${db}`), db === 'app'),
    kill: (db) => (calls.push(`kill ${db}`), db === 'app'),
    killClient: (id) => (calls.push(`kill_client ${id}`), id === 129),
    setLogLevel: (level) => calls.push(`log_level ${level}`),
    applied: async () => undefined,
    waitClose: async (db) => (calls.push(`wait_close ${db}`), db === null || db === 'app'),
    reload: () => calls.push('reload'),
    shutdown: () => calls.push('shutdown'),
    upgrade: () => calls.push('upgrade'),
  };
}

/** A control's answer comes once the shards have applied it. */
async function settled(r: AdminResult): Promise<AdminResult> {
  return r.kind === 'later' ? r.result : r;
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

test('SHOW POOLS lists the live counters, sv_used and maxwait in seconds', () => {
  assert.deepEqual(rows(runAdminCommand('SHOW POOLS', fakeView())), {
    columns: ['database', 'user', 'cl_active', 'cl_waiting', 'sv_active', 'sv_idle', 'sv_used', 'sv_login', 'pool_size', 'maxwait', 'pool_mode'],
    rows: [['app', 'alice', '3', '1', '2', '4', '1', '1', '5', '2', 'transaction']],
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
    columns: ['type', 'user', 'database', 'state', 'addr', 'port', 'tls', 'id'],
    rows: [['C', 'alice', 'app', 'waiting', '10.0.0.9', '40001', 'TLSv1.3/TLS_AES_256_GCM_SHA384', '129']],
  });
  assert.deepEqual(rows(runAdminCommand('show servers', v)), {
    columns: ['type', 'user', 'database', 'state', 'addr', 'port', 'pid', 'close_needed', 'tls'],
    rows: [['S', 'alice', 'app', 'login', 'db1', '5432', '4242', 'yes', '']],
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

test('PAUSE and RESUME with and without a database', async () => {
  const v = fakeView();
  assert.deepEqual(await settled(runAdminCommand('PAUSE', v)), { kind: 'done', tag: 'PAUSE', after: null });
  assert.deepEqual(await settled(runAdminCommand('resume app;', v)), { kind: 'done', tag: 'RESUME', after: null });
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
  assert.deepEqual(runAdminCommand('SHOW STATISTICS', v), { kind: 'error', code: '42601', message: 'unknown admin console command: SHOW STATISTICS' });
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

test('SHOW STATS: PgBouncer columns per database, averages over the period, then percentiles', () => {
  const r = rows(runAdminCommand('SHOW STATS', fakeView()));
  assert.deepEqual(r.columns, [
    'database',
    'total_xact_count', 'total_query_count', 'total_received', 'total_sent', 'total_xact_time', 'total_query_time', 'total_wait_time',
    'avg_xact_count', 'avg_query_count', 'avg_recv', 'avg_sent', 'avg_xact_time', 'avg_query_time', 'avg_wait_time',
    'xact_p50', 'xact_p90', 'xact_p95', 'xact_p99', 'query_p50', 'query_p90', 'query_p95', 'query_p99', 'wait_p50', 'wait_p90', 'wait_p95', 'wait_p99',
  ]);
  const [app, other] = r.rows;
  // app = alice (100 x 1 ms) + bob (300 x 3 ms): 400 transactions, 1 000 000 µs; averages over 10 s.
  assert.deepEqual(app.slice(0, 15), ['app', '400', '800', '40000', '400000', '1000000', '1000000', '20000', '40', '80', '4000', '40000', '2500', '1250', '50']);
  // Three quarters of the transactions took 3 ms: p50 and above fall in 3 ms's bucket, (2^11.5, 2^11.75] µs.
  for (const p of app.slice(15, 19).map(Number)) assert.ok(p > 2896 && p <= 3444, `xact percentile ${p}`);
  // Every wait was 50 µs: bucket (2^5.5, 2^5.75] µs.
  for (const p of app.slice(23, 27).map(Number)) assert.ok(p > 45 && p <= 54, `wait percentile ${p}`);
  assert.deepEqual(other, ['other', ...Array<string>(26).fill('0')]);
});

test('SHOW STATS_TOTALS and STATS_AVERAGES', () => {
  const v = fakeView();
  assert.deepEqual(rows(runAdminCommand('show stats_totals', v)), {
    columns: ['database', 'xact_count', 'query_count', 'bytes_received', 'bytes_sent', 'xact_time', 'query_time', 'wait_time'],
    rows: [
      ['app', '400', '800', '40000', '400000', '1000000', '1000000', '20000'],
      ['other', '0', '0', '0', '0', '0', '0', '0'],
    ],
  });
  assert.deepEqual(rows(runAdminCommand('SHOW STATS_AVERAGES;', v)).rows[0], ['app', '40', '80', '4000', '40000', '2500', '1250', '50']);
});

test('SHOW MEM and SHOW PREPARED_STATEMENTS', () => {
  const v = fakeView();
  assert.deepEqual(rows(runAdminCommand('SHOW MEM', v)), {
    columns: ['shard', 'clients', 'servers', 'pools', 'prepared_statements', 'heap_used', 'heap_total', 'external', 'array_buffers', 'rss'],
    rows: [
      ['0', '3', '2', '1', '7', '10', '20', '3', '1', '99'],
      ['1', '1', '0', '1', '0', '11', '21', '4', '2', '99'],
    ],
  });
  assert.deepEqual(rows(runAdminCommand('show prepared_statements', v)), {
    columns: ['database', 'user', 'shard', 'name', 'query', 'hits'],
    rows: [['app', 'alice', '1', 'DOORMAN_3', 'SELECT $1', '12']],
  });
});

test('RECONNECT, DISABLE, ENABLE, KILL, KILL_CLIENT reach the view; unknown targets are errors', async () => {
  const v = fakeView();
  assert.deepEqual(await settled(runAdminCommand('RECONNECT', v)), { kind: 'done', tag: 'RECONNECT', after: null });
  assert.deepEqual(await settled(runAdminCommand('reconnect app', v)), { kind: 'done', tag: 'RECONNECT', after: null });
  assert.deepEqual(await settled(runAdminCommand('DISABLE app', v)), { kind: 'done', tag: 'DISABLE', after: null });
  assert.deepEqual(await settled(runAdminCommand('ENABLE app', v)), { kind: 'done', tag: 'ENABLE', after: null });
  assert.deepEqual(await settled(runAdminCommand('KILL app', v)), { kind: 'done', tag: 'KILL', after: null });
  assert.deepEqual(runAdminCommand('KILL nope', v), { kind: 'error', code: '3D000', message: 'no such database: nope' });
  assert.deepEqual(runAdminCommand('KILL', v), { kind: 'error', code: '42601', message: 'KILL needs a database name' });
  assert.deepEqual(runAdminCommand('DISABLE', v), { kind: 'error', code: '42601', message: 'DISABLE needs a database name' });
  assert.deepEqual(await settled(runAdminCommand('KILL_CLIENT 129', v)), { kind: 'done', tag: 'KILL_CLIENT', after: null });
  assert.deepEqual(runAdminCommand('KILL_CLIENT 7', v), { kind: 'error', code: '42704', message: 'no such client: 7' });
  assert.deepEqual(runAdminCommand('KILL_CLIENT x', v), { kind: 'error', code: '42601', message: 'KILL_CLIENT needs a client id (the id column of SHOW CLIENTS)' });
  assert.deepEqual(v.calls, ['reconnect null', 'reconnect app', 'disable app', 'enable app', 'kill app', 'kill nope', 'kill_client 129', 'kill_client 7']);
});

test('WAIT_CLOSE answers once the view says the servers are closed', async () => {
  const v = fakeView();
  const r = runAdminCommand('WAIT_CLOSE app', v);
  assert.equal(r.kind, 'later');
  if (r.kind !== 'later') return;
  assert.deepEqual(await r.result, { kind: 'done', tag: 'WAIT_CLOSE', after: null });
  const bad = runAdminCommand('wait_close nope', v);
  assert.ok(bad.kind === 'later');
  assert.deepEqual(await bad.result, { kind: 'error', code: '3D000', message: 'no such database: nope' });
  assert.throws(() => encodeAdminResult(r), /pending admin result/);
});

test('SET log_level in its spellings; bad values and other parameters are errors; UPGRADE starts an upgrade', async () => {
  const v = fakeView();
  for (const q of ["SET log_level = 'debug'", 'set LOG_LEVEL to warn;', 'SET log_level=info', 'set log_level = "ERROR"']) {
    assert.deepEqual(await settled(runAdminCommand(q, v)), { kind: 'done', tag: 'SET', after: null });
  }
  assert.deepEqual(v.calls, ['log_level debug', 'log_level warn', 'log_level info', 'log_level error']);
  assert.deepEqual(runAdminCommand("SET log_level = 'loud'", v), {
    kind: 'error',
    code: '22023',
    message: 'invalid log_level "loud": use one of trace, debug, info, warn, error, fatal',
  });
  assert.deepEqual(runAdminCommand('SET work_mem = 1', v), { kind: 'error', code: '42601', message: 'unknown admin console parameter: work_mem (only log_level can be set)' });
  assert.deepEqual(runAdminCommand('SET log_level', v), { kind: 'error', code: '42601', message: 'unknown admin console command: SET log_level' });
  const up = runAdminCommand('UPGRADE', v);
  assert.equal(up.kind, 'done');
  if (up.kind === 'done') up.after?.();
  assert.equal(v.calls.at(-1), 'upgrade');
});
