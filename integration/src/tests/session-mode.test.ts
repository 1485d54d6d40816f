/**
 * Session pooling: a client keeps one PostgreSQL backend from login to logout, with everything that lives
 * in a session; the backend is cleaned with DISCARD ALL before the next client gets it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MD5_USER,
  SCRAM_USER,
  backendPid,
  connectPg,
  one,
  pgbench,
  startDoorman,
  startPostgres,
  type DoormanConfig,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 120_000;

describe('session mode', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;

  function servers(): { cluster: PgCluster; doorman: DoormanProcess } {
    assert.ok(cluster && doorman, 'servers did not start');
    return { cluster, doorman };
  }

  /** `app`: scram_user x5 (pgbench), md5_user x1 (hand-over tests), both in session mode. */
  function url(user = SCRAM_USER): string {
    return servers().doorman.connectionString(user.user, user.password, 'app');
  }

  before(async () => {
    cluster = await startPostgres();
    const config: DoormanConfig = {
      // One worker shard: these tests assert which backend serves a client (worker shards are covered in workers.test.ts).
      general: { host: '127.0.0.1', port: 0, workers: 1, pg_hba: 'host all all 127.0.0.1/32 scram-sha-256\n' },
      pools: {
        app: {
          server_host: cluster.host,
          server_port: cluster.port,
          pool_mode: 'session',
          users: [
            { username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 5 },
            { username: MD5_USER.user, password: MD5_USER.password, pool_size: 1 },
          ],
        },
      },
    };
    doorman = await startDoorman(config);
  });

  after(async () => {
    await doorman?.stop();
    await cluster?.stop();
  });

  test('one backend for the whole session; temp tables, SET and SQL PREPARE persist across transactions', async () => {
    const a = await connectPg(url());
    const b = await connectPg(url());
    try {
      const pid = await backendPid(a);
      await a.query('create temp table session_tmp (v int)');
      await a.query("set work_mem = '77MB'");
      await a.query('set search_path = pg_temp, public');
      await a.query('prepare session_stmt as select $1::int * 10 as v');
      for (let i = 0; i < 5; i++) {
        await a.query('begin');
        await a.query('insert into session_tmp values ($1)', [i]);
        // Another client working at the same time gets its own backend and does not disturb this one.
        assert.notEqual(await backendPid(b), pid);
        await a.query('commit');
        assert.equal(await backendPid(a), pid);
      }
      const state = await one<{ n: string; wm: string; sp: string }>(
        a,
        "select count(*) as n, current_setting('work_mem') as wm, current_setting('search_path') as sp from session_tmp",
      );
      assert.deepEqual(state, { n: '5', wm: '77MB', sp: 'pg_temp, public' });
      assert.deepEqual((await a.query('execute session_stmt(4)')).rows, [{ v: 40 }]);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  test('pgbench -M prepared works (0 failed transactions)', async () => {
    const { doorman: d } = servers();
    const target = d.target(SCRAM_USER);
    const init = await pgbench(target, ['-i', '-s', '1', '-q'], { timeoutMs: 60_000 });
    assert.equal(init.code, 0, init.stderr);
    const run = await pgbench(target, ['-M', 'prepared', '-c', '4', '-j', '2', '-t', '100', '-n'], { timeoutMs: 60_000 });
    assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /number of transactions actually processed: 400\/400/);
    assert.match(run.stdout, /number of failed transactions: 0 \(0\.000%\)/);
    assert.match(run.stdout, /query mode: prepared/);
  });

  test('DISCARD ALL on release: the next client of the backend sees no temp table, SET, PREPARE or LISTEN', async () => {
    const a = await connectPg(url(MD5_USER));
    const pid = await backendPid(a);
    await a.query('create temp table leftover (v int)');
    await a.query("set work_mem = '77MB'");
    await a.query('prepare leftover_stmt as select 1');
    await a.query('listen leftover_chan');
    await a.query('begin');
    await a.query('declare leftover_cursor cursor with hold for select 1');
    await a.query('commit');
    await a.end();

    const b = await connectPg(url(MD5_USER));
    try {
      const seen = await one<{ pid: number; tmp: string | null; wm: string; prepared: string; cursors: string; channels: string }>(
        b,
        `select pg_backend_pid() as pid, to_regclass('pg_temp.leftover')::text as tmp, current_setting('work_mem') as wm,
                (select count(*) from pg_prepared_statements) as prepared, (select count(*) from pg_cursors) as cursors,
                (select count(*) from pg_listening_channels()) as channels`,
      );
      assert.deepEqual(seen, { pid, tmp: null, wm: '4MB', prepared: '0', cursors: '0', channels: '0' });
    } finally {
      await b.end();
    }
  });

  test('a session that ends inside a transaction is rolled back before the backend is reused', async () => {
    const { cluster: pgc } = servers();
    await pgc.query('create table session_dc (v int); grant all on session_dc to md5_user;', 'app');
    const a = await connectPg(url(MD5_USER));
    const pid = await backendPid(a);
    await a.query('begin');
    await a.query('insert into session_dc values (1)');
    await a.end();
    const b = await connectPg(url(MD5_USER));
    try {
      assert.equal(await backendPid(b), pid);
      assert.equal((await one<{ n: string }>(b, 'select count(*) as n from session_dc')).n, '0');
      assert.equal((await one<{ s: string }>(b, 'select pg_current_xact_id_if_assigned()::text as s')).s, null);
    } finally {
      await b.end();
    }
  });

  test('clients beyond pool_size wait for a session to end, then get its backend', async () => {
    const a = await connectPg(url(MD5_USER));
    const pid = await backendPid(a);
    const b = await connectPg(url(MD5_USER));
    try {
      const waiting = backendPid(b);
      const raced = await Promise.race([waiting.then(() => 'served'), new Promise((r) => setTimeout(r, 500, 'waiting'))]);
      assert.equal(raced, 'waiting');
      await a.end();
      assert.equal(await waiting, pid);
    } finally {
      await b.end();
    }
  });
});
