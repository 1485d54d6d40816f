/**
 * Pool limits against real PostgreSQL backends, counted in pg_stat_activity: query_wait_timeout,
 * max_client_conn, the reserve pool, server_lifetime, server_idle_timeout and min_pool_size.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  MD5_USER,
  SCRAM_USER,
  backendPid,
  clientBackends,
  connectPg,
  eventually,
  sqlError,
  startDoorman,
  startPostgres,
  type DoormanConfig,
  type DoormanPoolConfig,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 120_000;

describe('pool limits', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let admin: pg.Client | undefined;
  const started: DoormanProcess[] = [];

  function su(): pg.Client {
    assert.ok(admin, 'PostgreSQL did not start');
    return admin;
  }

  function pool(users: DoormanPoolConfig['users'], extra: Partial<DoormanPoolConfig> = {}): DoormanPoolConfig {
    assert.ok(cluster);
    return { server_host: cluster.host, server_port: cluster.port, server_database: 'app', pool_mode: 'transaction', users, ...extra };
  }

  /**
   * Starts a Doorman for one test. Tests count backends per role, so the previous test's Doorman is
   * stopped first and its backends must be gone.
   */
  async function doormanWith(general: DoormanConfig['general'], pools: DoormanConfig['pools']): Promise<DoormanProcess> {
    await Promise.all(started.splice(0).map((d) => d.stop()));
    for (const user of [SCRAM_USER.user, MD5_USER.user]) {
      await eventually(() => backends(user), (pids) => pids.length === 0, 5_000, `${user} backends left by the previous test`);
    }
    const d = await startDoorman({ general: { host: '127.0.0.1', port: 0, workers: 1, pg_hba: 'host all all 127.0.0.1/32 scram-sha-256\n', ...general }, pools });
    started.push(d);
    return d;
  }

  /** Backends PostgreSQL has for `user` (Doorman's server connections; cancel requests do not show). */
  function backends(user: string): Promise<number[]> {
    return clientBackends(su(), user);
  }

  before(async () => {
    cluster = await startPostgres();
    admin = new pg.Client({ connectionString: cluster.superuserUrl('app'), connectionTimeoutMillis: 10_000 });
    await admin.connect();
  });

  after(async () => {
    await admin?.end().catch(() => undefined);
    await Promise.all(started.map((d) => d.stop()));
    await cluster?.stop();
  });

  test('query_wait_timeout: the waiting client gets FATAL 53300 and is closed; the others carry on', async () => {
    const d = await doormanWith({ query_wait_timeout: '1s' }, { app: pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 1 }]) });
    const url = d.connectionString(SCRAM_USER.user, SCRAM_USER.password);
    const holder = await connectPg(url);
    const waiter = await connectPg(url);
    try {
      await holder.query('begin');
      await holder.query('select 1');
      const ended = new Promise<void>((resolve) => waiter.once('end', resolve));
      const t0 = Date.now();
      const err = await sqlError(waiter.query('select 2'));
      const waited = Date.now() - t0;
      assert.equal(err.code, '53300');
      assert.match(err.message, /^could not get a server connection within query_wait_timeout \(1000 ms\)/);
      assert.ok(waited >= 900 && waited < 4_000, `waited ${waited} ms`);
      await Promise.race([ended, sleep(3_000).then(() => assert.fail('the timed-out client was not closed'))]);
      // The holder's transaction is untouched.
      assert.deepEqual((await holder.query('select 3 as v')).rows, [{ v: 3 }]);
      await holder.query('commit');
    } finally {
      await Promise.all([holder.end(), waiter.end().catch(() => undefined)]);
    }
  });

  test('after a query_wait_timeout the pool still hands its server to the next client', async () => {
    const d = await doormanWith({ query_wait_timeout: '1s' }, { app: pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 1 }]) });
    const url = d.connectionString(SCRAM_USER.user, SCRAM_USER.password);
    const holder = await connectPg(url);
    const waiter = await connectPg(url);
    const late = await connectPg(url);
    try {
      await holder.query('begin');
      const pid = await backendPid(holder);
      assert.equal((await sqlError(waiter.query('select 2'))).code, '53300');
      await holder.query('commit');
      const t0 = Date.now();
      assert.equal(await backendPid(late), pid);
      assert.ok(Date.now() - t0 < 500, `the free server reached the next client after ${Date.now() - t0} ms`);
    } finally {
      await Promise.all([holder.end(), late.end(), waiter.end().catch(() => undefined)]);
    }
  });

  test('max_client_conn: the client beyond it gets 53300 "sorry, too many clients already"', async () => {
    const d = await doormanWith({ max_client_conn: 3 }, { app: pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 2 }]) });
    const url = d.connectionString(SCRAM_USER.user, SCRAM_USER.password);
    const clients = await Promise.all([connectPg(url), connectPg(url), connectPg(url)]);
    try {
      const refused = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
      refused.on('error', () => undefined);
      const err = await sqlError(refused.connect());
      await refused.end().catch(() => undefined);
      assert.equal(err.code, '53300');
      assert.equal(err.message, 'sorry, too many clients already');
      for (const c of clients) assert.deepEqual((await c.query('select 1 as v')).rows, [{ v: 1 }]);
      // A slot frees when a client leaves.
      await clients.pop()!.end();
      const again = await eventually(
        async () => {
          try {
            const c = await connectPg(url);
            await c.end();
            return 'connected';
          } catch (e) {
            return (e as { code?: string }).code ?? 'error';
          }
        },
        (v) => v === 'connected',
        3_000,
        'connecting after a client left',
      );
      assert.equal(again, 'connected');
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  test('reserve_pool_size: extra servers only after reserve_pool_timeout, never beyond pool_size + reserve', async () => {
    const d = await doormanWith(
      { reserve_pool_timeout: '1s', query_wait_timeout: '10s' },
      { app: pool([{ username: MD5_USER.user, password: MD5_USER.password, pool_size: 2, reserve_pool_size: 1 }]) },
    );
    const url = d.connectionString(MD5_USER.user, MD5_USER.password);
    const clients = await Promise.all(Array.from({ length: 4 }, () => connectPg(url)));
    try {
      // A lone BEGIN is deferred (it takes no server): the first statement of each transaction takes one.
      await clients[0].query('begin; select 1');
      await clients[1].query('begin; select 1');
      assert.equal((await backends('md5_user')).length, 2);
      const t0 = Date.now();
      const third = clients[2].query('begin; select 1').then(() => Date.now() - t0);
      const fourth = clients[3].query('begin; select 1').then(() => Date.now() - t0);
      await sleep(500);
      assert.equal((await backends('md5_user')).length, 2, 'the reserve opened before reserve_pool_timeout');
      const thirdWait = await third;
      assert.ok(thirdWait >= 900 && thirdWait < 3_000, `third client waited ${thirdWait} ms`);
      assert.equal((await backends('md5_user')).length, 3);
      // The reserve (1) is used up: the fourth waits until someone commits.
      await sleep(1_000);
      assert.equal((await backends('md5_user')).length, 3);
      const raced = await Promise.race([fourth.then(() => 'served'), sleep(10, 'waiting')]);
      assert.equal(raced, 'waiting');
      await clients[0].query('commit');
      await fourth;
      assert.equal((await backends('md5_user')).length, 3);
      for (const c of clients.slice(1)) await c.query('commit');
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  test('server_lifetime closes a server once it is returned past its lifetime', async () => {
    const d = await doormanWith(
      { server_lifetime: '1s', server_idle_timeout: '10m' },
      { app: pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 1 }]) },
    );
    const client = await connectPg(d.connectionString(SCRAM_USER.user, SCRAM_USER.password));
    try {
      const first = await backendPid(client);
      await client.query('select pg_sleep(1.2)');
      await eventually(() => backends('scram_user'), (pids) => !pids.includes(first), 5_000, 'backends after server_lifetime');
      const second = await backendPid(client);
      assert.notEqual(second, first);
      const reasons = d.jsonLogs().filter((l) => l.msg === 'server closed' && l.pid === first).map((l) => l.reason);
      assert.equal(reasons.length, 1);
      assert.match(String(reasons[0]), /server_lifetime/);
    } finally {
      await client.end();
    }
  });

  test('server_idle_timeout closes idle servers; min_pool_size keeps its connections open', async () => {
    const d = await doormanWith(
      { server_idle_timeout: '1s', server_lifetime: '1h' },
      {
        app: pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 2 }]),
        warm: pool([{ username: MD5_USER.user, password: MD5_USER.password, pool_size: 3, min_pool_size: 2 }]),
      },
    );
    // min_pool_size opens connections with no client at all.
    const warm = await eventually(() => backends('md5_user'), (pids) => pids.length === 2, 5_000, 'min_pool_size backends');
    const client = await connectPg(d.connectionString(SCRAM_USER.user, SCRAM_USER.password));
    try {
      const pid = await backendPid(client);
      assert.deepEqual(await backends('scram_user'), [pid]);
      const t0 = Date.now();
      await eventually(() => backends('scram_user'), (pids) => pids.length === 0, 5_000, 'backends after server_idle_timeout');
      assert.ok(Date.now() - t0 >= 700, `closed after ${Date.now() - t0} ms, before the idle timeout`);
      const reasons = d.jsonLogs().filter((l) => l.msg === 'server closed' && l.pid === pid).map((l) => l.reason);
      assert.deepEqual(reasons, ['server_idle_timeout']);
      // The warm pool's connections were idle just as long and are still the same two.
      assert.deepEqual(await backends('md5_user'), warm);
      // The client itself is still logged in and simply gets a new server.
      assert.notEqual(await backendPid(client), pid);
    } finally {
      await client.end();
    }
  });

  test('server connections never exceed pool_size under load (sampled)', async () => {
    const d = await doormanWith({}, { app: pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 3 }]) });
    const url = d.connectionString(SCRAM_USER.user, SCRAM_USER.password);
    const clients = await Promise.all(Array.from({ length: 15 }, () => connectPg(url)));
    let running = true;
    const samples: number[] = [];
    const sampler = (async () => {
      while (running) {
        samples.push((await backends('scram_user')).length);
        await sleep(20);
      }
    })();
    try {
      await Promise.all(
        clients.map(async (c, i) => {
          for (let n = 0; n < 10; n++) {
            await c.query('begin');
            const r = await c.query<{ v: number }>('select $1::int as v, pg_sleep(0.01)', [i * 100 + n]);
            assert.equal(r.rows[0].v, i * 100 + n);
            await c.query('commit');
          }
        }),
      );
    } finally {
      running = false;
      await sampler;
      await Promise.all(clients.map((c) => c.end()));
    }
    assert.ok(samples.length >= 10, `only ${samples.length} samples`);
    assert.equal(Math.max(...samples), 3, `samples: ${samples.join(',')}`);
  });
});
