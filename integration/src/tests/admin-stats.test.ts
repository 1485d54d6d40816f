/**
 * The admin console's statistics and the rest of its controls against real PostgreSQL, with two worker
 * shards so every figure is a total over shards: SHOW STATS / STATS_TOTALS / STATS_AVERAGES / MEM /
 * PREPARED_STATEMENTS move as a bounded load runs; RECONNECT + WAIT_CLOSE, DISABLE / ENABLE, KILL,
 * KILL_CLIENT and SET log_level (UPGRADE is in upgrade.test.ts).
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

const SUITE_TIMEOUT_MS = 150_000;
/** Every SHOW the console answers. */
const SHOWS = ['VERSION', 'DATABASES', 'USERS', 'POOLS', 'CLIENTS', 'SERVERS', 'LISTS', 'CONFIG', 'STATS', 'STATS_TOTALS', 'STATS_AVERAGES', 'MEM', 'PREPARED_STATEMENTS'];

type Row = Record<string, string>;

describe('admin console statistics and controls', { timeout: SUITE_TIMEOUT_MS }, () => {
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

  async function show(admin: pg.Client, what: string): Promise<Row[]> {
    return (await admin.query<Row>(`SHOW ${what}`)).rows;
  }

  async function appStats(admin: pg.Client, what = 'STATS'): Promise<Row> {
    const rows = await show(admin, what);
    assert.deepEqual(rows.map((r) => r.database), ['app']);
    return rows[0];
  }

  before(async () => {
    cluster = await startPostgres();
    doorman = await startDoorman(
      doormanConfigFor(cluster, { users: [SCRAM_USER], poolSize: 2, general: { workers: 2, query_wait_timeout: '20s' } }),
    );
  });

  after(async () => {
    await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
    await doorman?.stop();
    await cluster?.stop();
  });

  test('every SHOW answers through psql and pg', async () => {
    const admin = await connect(DOORMAN_ADMIN, DOORMAN_ADMIN_DB);
    for (const what of SHOWS) {
      const r = await psql(d().target(DOORMAN_ADMIN, DOORMAN_ADMIN_DB), ['-A', '-F', '|', '-c', `SHOW ${what}`]);
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      const result = await admin.query(`show ${what.toLowerCase()};`);
      assert.equal(r.stdout.split('\n')[0], result.fields.map((f) => f.name).join('|'), what);
    }
    // Two shards, one row each.
    assert.deepEqual((await show(admin, 'MEM')).map((m) => m.shard), ['0', '1']);
  });

  test('STATS, STATS_TOTALS and STATS_AVERAGES move as load runs, summed over both shards', async () => {
    const admin = await connect(DOORMAN_ADMIN, DOORMAN_ADMIN_DB);
    const clients = await Promise.all([0, 1, 2, 3].map(() => connect(SCRAM_USER, 'app')));
    // The clients landed on both shards (the low bits of a client id name its shard).
    const shards = new Set((await show(admin, 'CLIENTS')).filter((c) => c.database === 'app').map((c) => Number(c.id) % 64));
    assert.deepEqual([...shards].sort(), [0, 1]);
    const before = await appStats(admin, 'STATS_TOTALS');
    const perClient = 25;
    await Promise.all(
      clients.map(async (c, i) => {
        for (let n = 0; n < perClient; n++) {
          if (n % 5 === 0) await c.query('SELECT pg_sleep(0.002)');
          else await c.query('SELECT $1::int AS n', [i * 1000 + n]);
        }
      }),
    );
    const failed = await sqlError(clients[0].query('SELECT 1/0'));
    assert.equal(failed.code, '22012');
    const queries = clients.length * perClient + 1;
    const totals = await appStats(admin, 'STATS_TOTALS');
    // Transaction mode: every autocommit statement is one transaction, one query.
    assert.equal(Number(totals.xact_count) - Number(before.xact_count), queries);
    assert.equal(Number(totals.query_count) - Number(before.query_count), queries);
    assert.ok(Number(totals.bytes_received) > Number(before.bytes_received) + queries * 10);
    assert.ok(Number(totals.bytes_sent) > Number(before.bytes_sent) + queries * 10);
    // 20 sleeps of 2 ms: at least 40 ms of query time.
    assert.ok(Number(totals.query_time) - Number(before.query_time) >= 40_000, `query_time ${totals.query_time}`);
    assert.ok(Number(totals.xact_time) >= Number(totals.query_time) * 0.9);
    const stats = await appStats(admin);
    assert.equal(stats.total_xact_count, totals.xact_count);
    assert.ok(Number(stats.avg_xact_count) > 0 && Number(stats.avg_query_time) > 0, JSON.stringify(stats));
    assert.ok(Number(stats.query_p50) > 0 && Number(stats.query_p99) >= Number(stats.query_p50), JSON.stringify(stats));
    assert.ok(Number(stats.xact_p99) >= 1_600, `a 2 ms sleep is in the slowest 5 %: ${stats.xact_p99}`);
    const averages = await appStats(admin, 'STATS_AVERAGES');
    assert.ok(Number(averages.xact_count) > 0 && Number(averages.bytes_sent) > 0, JSON.stringify(averages));
    const prepared = (await show(admin, 'PREPARED_STATEMENTS')).filter((p) => p.query === 'SELECT $1::int AS n');
    assert.ok(prepared.length >= 1 && prepared.length <= 2, JSON.stringify(prepared));
    assert.ok(prepared.reduce((n, p) => n + Number(p.hits), 0) > 0, JSON.stringify(prepared));
    const mem = await show(admin, 'MEM');
    assert.equal(mem.reduce((n, m) => n + Number(m.clients), 0), (await show(admin, 'CLIENTS')).length);
    for (const m of mem) assert.ok(Number(m.heap_used) > 1_000_000 && Number(m.rss) > Number(m.heap_used));
  });

  test('RECONNECT closes idle servers now and busy ones after their transaction; WAIT_CLOSE waits for them', async () => {
    const admin = await connect(DOORMAN_ADMIN, DOORMAN_ADMIN_DB);
    const busy = await connect(SCRAM_USER, 'app');
    await busy.query('BEGIN');
    const pid = await backendPid(busy);
    assert.equal((await admin.query('RECONNECT app')).command, 'RECONNECT');
    const flagged = (await show(admin, 'SERVERS')).filter((s) => s.close_needed === 'yes').map((s) => Number(s.pid));
    assert.deepEqual(flagged, [pid]);
    let waited = false;
    const waitClose = admin.query('WAIT_CLOSE app').then((r) => {
      waited = true;
      return r;
    });
    await sleep(500);
    assert.equal(waited, false, 'WAIT_CLOSE answered while a server of app was still in a transaction');
    await busy.query('COMMIT');
    // pg reads a command tag up to the first non-letter: WAIT_CLOSE comes out as WAIT.
    assert.equal((await waitClose).command, 'WAIT');
    assert.notEqual(await backendPid(busy), pid);
  });

  test('DISABLE refuses new logins to the database until ENABLE; existing clients go on', async () => {
    const admin = await connect(DOORMAN_ADMIN, DOORMAN_ADMIN_DB);
    const existing = await connect(SCRAM_USER, 'app');
    assert.equal((await admin.query('DISABLE app')).command, 'DISABLE');
    const refused = await sqlError(connect(SCRAM_USER, 'app'));
    assert.deepEqual([refused.code, refused.message], ['55000', 'database "app" is not currently accepting connections']);
    assert.equal((await existing.query('SELECT 1 AS one')).rows[0].one, 1);
    assert.equal((await admin.query('ENABLE app')).command, 'ENABLE');
    const back = await connect(SCRAM_USER, 'app');
    assert.equal((await back.query('SELECT 2 AS two')).rows[0].two, 2);
    assert.equal((await sqlError(admin.query('DISABLE nope'))).code, '3D000');
  });

  test('KILL_CLIENT drops one client by its SHOW CLIENTS id; KILL drops every client and server of a database', async () => {
    const admin = await connect(DOORMAN_ADMIN, DOORMAN_ADMIN_DB);
    const victim = await connect(SCRAM_USER, 'app');
    const pid = await backendPid(victim);
    const bystander = await connect(SCRAM_USER, 'app');
    await bystander.query('SELECT 1');
    const known = new Set((await show(admin, 'CLIENTS')).map((c) => c.id));
    const extra = await connect(SCRAM_USER, 'app');
    const extraId = (await show(admin, 'CLIENTS')).map((c) => c.id).filter((id) => !known.has(id));
    assert.equal(extraId.length, 1);
    await admin.query(`KILL_CLIENT ${extraId[0]}`);
    const killed = await sqlError(extra.query('SELECT 1'));
    assert.ok(['57P01', undefined].includes(killed.code), `${killed.code} ${killed.message}`);
    assert.equal((await bystander.query('SELECT 3 AS n')).rows[0].n, 3);
    assert.equal((await sqlError(admin.query('KILL_CLIENT 999999999'))).code, '42704');

    await victim.query('BEGIN');
    assert.equal((await admin.query('KILL app')).command, 'KILL');
    await sqlError(victim.query('SELECT 1'));
    await eventually(() => show(admin, 'SERVERS'), (s) => !s.some((x) => Number(x.pid) === pid), 5_000, 'the killed transaction\'s server closed');
    // Only the admin console is left.
    await eventually(() => show(admin, 'CLIENTS'), (c) => c.every((x) => x.database === DOORMAN_ADMIN_DB), 5_000, 'app clients gone');
    const fresh = await connect(SCRAM_USER, 'app');
    assert.equal((await fresh.query('SELECT 4 AS n')).rows[0].n, 4);
  });

  test('SET log_level reaches every shard', async () => {
    const admin = await connect(DOORMAN_ADMIN, DOORMAN_ADMIN_DB);
    assert.equal((await admin.query("SET log_level = 'warn'")).command, 'SET');
    const mark = d().process.lines().length;
    // Two logins: the least-loaded rule puts them on different shards or next to each other; none may log at info.
    const quiet = [await connect(SCRAM_USER, 'app'), await connect(SCRAM_USER, 'app')];
    await Promise.all(quiet.map((c) => c.query('SELECT 1')));
    await sleep(200);
    assert.deepEqual(d().process.lines().slice(mark).filter((l) => l.includes('client logged in')), []);
    assert.equal((await admin.query('SET log_level TO info')).command, 'SET');
    await connect(SCRAM_USER, 'app');
    await eventually(async () => d().process.lines().slice(mark).filter((l) => l.includes('client logged in')).length, (n) => n === 1, 5_000, 'login logged at info');
    const bad = await sqlError(admin.query("SET log_level = 'loud'"));
    assert.equal(bad.code, '22023');
  });
});
