/**
 * The admin console (virtual database `doorman` / `pgbouncer`) against real PostgreSQL: SHOW values follow
 * live clients and servers, PAUSE holds new transactions until RESUME, admin-only access, simple protocol only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import {
  DOORMAN_ADMIN,
  DOORMAN_ADMIN_DB,
  SCRAM_USER,
  backendPid,
  connectPg,
  doormanConfigFor,
  eventually,
  psql,
  sqlError,
  startDoorman,
  startPostgres,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 120_000;

describe('admin console', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;
  const opened: pg.Client[] = [];

  function d(): DoormanProcess {
    assert.ok(doorman, 'Doorman did not start');
    return doorman;
  }

  async function connect(user: { user: string; password: string }, db: string): Promise<pg.Client> {
    const c = await connectPg(d().connectionString(user.user, user.password, db));
    opened.push(c);
    return c;
  }

  async function pools(admin: pg.Client): Promise<Record<string, string>> {
    const r = await admin.query<Record<string, string>>('SHOW POOLS');
    assert.equal(r.rows.length, 1);
    return r.rows[0];
  }

  before(async () => {
    cluster = await startPostgres();
    doorman = await startDoorman(doormanConfigFor(cluster, { users: [SCRAM_USER], poolSize: 1, general: { query_wait_timeout: '20s' } }));
  });

  after(async () => {
    await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
    await doorman?.stop();
    await cluster?.stop();
  });

  test('psql runs SHOW POOLS and SHOW VERSION through the console', async () => {
    const r = await psql(d().target(DOORMAN_ADMIN, DOORMAN_ADMIN_DB), ['-A', '-t', '-F', '|', '-c', 'SHOW POOLS']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'app|scram_user|0|0|0|0|0|0|1|0|transaction');
    const v = await psql(d().target(DOORMAN_ADMIN, 'pgbouncer'), ['-A', '-t', '-c', 'show version;']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout.trim(), /^Doorman \d+\.\d+\.\d+/);
  });

  test('SHOW POOLS, CLIENTS and SERVERS follow clients and their transactions', async () => {
    const admin = await connect(DOORMAN_ADMIN, DOORMAN_ADMIN_DB);
    const app = await connect(SCRAM_USER, 'app');
    const idle = await pools(admin);
    assert.deepEqual([idle.cl_active, idle.cl_waiting, idle.sv_active, idle.sv_idle], ['1', '0', '0', '1']);
    await app.query('BEGIN');
    await app.query('SELECT 1');
    const busy = await pools(admin);
    assert.deepEqual([busy.cl_active, busy.cl_waiting, busy.sv_active, busy.sv_idle], ['1', '0', '1', '0']);
    const servers = (await admin.query<Record<string, string>>('SHOW SERVERS')).rows;
    assert.deepEqual(
      servers.map((s) => [s.type, s.user, s.database, s.state, s.pid]),
      [['S', 'scram_user', 'app', 'active', String(await backendPid(app))]],
    );
    const clients = (await admin.query<Record<string, string>>('SHOW CLIENTS')).rows.map((c) => `${c.user}@${c.database}:${c.state}`).sort();
    assert.deepEqual(clients, ['admin@doorman:idle', 'scram_user@app:active']);
    await app.query('COMMIT');
    const after = await pools(admin);
    assert.deepEqual([after.sv_active, after.sv_idle], ['0', '1']);
    const lists = (await admin.query<{ list: string; items: string }>('SHOW LISTS')).rows.map((r) => `${r.list}=${r.items}`);
    assert.deepEqual(lists, ['databases=1', 'users=1', 'pools=1', 'clients=2', 'servers=1']);
  });

  test('PAUSE holds a new transaction until RESUME', async () => {
    const admin = await connect(DOORMAN_ADMIN, DOORMAN_ADMIN_DB);
    const app = await connect(SCRAM_USER, 'app');
    assert.equal((await admin.query('PAUSE app')).command, 'PAUSE');
    let done = false;
    const q = app.query<{ n: number }>('SELECT 42 AS n').then((r) => {
      done = true;
      return r;
    });
    await eventually(() => pools(admin), (p) => p.cl_waiting === '1', 5_000, 'client waiting on the paused pool');
    await sleep(300);
    assert.equal(done, false, 'the query ran while the pool was paused');
    assert.equal((await admin.query('RESUME')).command, 'RESUME');
    assert.equal((await q).rows[0].n, 42);
  });

  test('errors: unknown command, unknown database, extended protocol', async () => {
    const admin = await connect(DOORMAN_ADMIN, DOORMAN_ADMIN_DB);
    const unknown = await sqlError(admin.query('SELECT 1'));
    assert.equal(unknown.code, '42601');
    assert.equal(unknown.message, 'unknown admin console command: SELECT 1');
    const noDb = await sqlError(admin.query('PAUSE nope'));
    assert.deepEqual([noDb.code, noDb.message], ['3D000', 'no such database: nope']);
    const extended = await sqlError(admin.query({ name: 'stmt', text: 'SHOW VERSION' }));
    assert.deepEqual([extended.code, extended.message], ['08P01', 'the admin console speaks the simple query protocol only']);
    assert.equal((await admin.query('SHOW USERS')).rows[0].name, 'scram_user');
  });

  test('only the admin user with the admin password gets in', async () => {
    const wrong = await sqlError(connect({ user: DOORMAN_ADMIN.user, password: 'wrong' }, DOORMAN_ADMIN_DB));
    assert.equal(wrong.code, '28P01');
    const nonAdmin = await sqlError(connect(SCRAM_USER, DOORMAN_ADMIN_DB));
    assert.equal(nonAdmin.code, '28000');
  });

  test('SHUTDOWN answers, then the process exits', async () => {
    assert.ok(cluster);
    const other = await startDoorman(doormanConfigFor(cluster, { users: [SCRAM_USER] }));
    try {
      const r = await psql(other.target(DOORMAN_ADMIN, DOORMAN_ADMIN_DB), ['-A', '-t', '-c', 'SHUTDOWN']);
      assert.equal(r.code, 0, r.stderr);
      const exit = await Promise.race([other.exited, sleep(10_000).then(() => null)]);
      assert.ok(exit !== null, 'Doorman did not exit after SHUTDOWN');
      assert.equal(exit.code, 0);
    } finally {
      if (other.running) await other.kill();
    }
  });
});
