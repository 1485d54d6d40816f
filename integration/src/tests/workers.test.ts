/**
 * Worker shards against real PostgreSQL: clients spread by the least-loaded rule, one server cap per pool
 * over all shards (sampled in pg_stat_activity while load runs), idle connections of one shard given up
 * for the waiting clients of another, cancel requests routed to the owning shard, admin totals.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  DOORMAN_ADMIN,
  DOORMAN_ADMIN_DB,
  SCRAM_USER,
  backendPid,
  connectPg,
  doormanConfigFor,
  eventually,
  startDoorman,
  startPostgres,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 180_000;
const POOL_SIZE = 4;

describe('worker shards', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;
  let su: pg.Client | undefined;

  function d(): DoormanProcess {
    assert.ok(doorman, 'Doorman did not start');
    return doorman;
  }

  /** Shard of each "client logged in" line so far, in order. */
  function loginShards(dm = d()): number[] {
    return dm
      .jsonLogs()
      .filter((l) => l.msg === 'client logged in' && l.user === SCRAM_USER.user)
      .map((l) => l.shard as number);
  }

  const connect = (dm = d()): Promise<pg.Client> => connectPg(dm.connectionString(SCRAM_USER.user, SCRAM_USER.password));

  /** Connects one client and waits for its login line (shards log from their own threads) to learn its shard. */
  async function connectTracked(dm = d()): Promise<{ c: pg.Client; shard: number }> {
    const seen = loginShards(dm).length;
    const c = await connect(dm);
    await eventually(async () => loginShards(dm).length, (n) => n > seen, 5_000, 'login log line');
    return { c, shard: loginShards(dm)[seen] };
  }

  async function backendsOfUser(): Promise<number> {
    const r = await su!.query<{ n: string }>(`select count(*) as n from pg_stat_activity where usename = $1`, [SCRAM_USER.user]);
    return Number(r.rows[0].n);
  }

  before(async () => {
    cluster = await startPostgres();
    doorman = await startDoorman(
      doormanConfigFor(cluster, { users: [SCRAM_USER], poolSize: POOL_SIZE, general: { workers: 2, query_wait_timeout: '30s' } }),
    );
    su = new pg.Client({ connectionString: cluster.superuserUrl('app'), connectionTimeoutMillis: 10_000 });
    await su.connect();
  });

  after(async () => {
    await su?.end().catch(() => undefined);
    await doorman?.stop();
    await cluster?.stop();
  });

  test('clients go to the shard with the fewest clients, also after others left', async () => {
    const before = loginShards().length;
    const first = [];
    for (let i = 0; i < 6; i++) first.push(await connect());
    // Shards log on their own threads: wait until all six lines are in.
    await eventually(async () => loginShards().length, (n) => n >= before + 6, 5_000, 'login log lines');
    const placed = loginShards().slice(before, before + 6);
    assert.deepEqual(
      [...placed].sort(),
      [0, 0, 0, 1, 1, 1],
      `6 sequential clients spread evenly over 2 shards, got ${placed.join(',')}`,
    );
    // Close the three clients of shard 0: the next three connections must all go there (round robin would alternate).
    const onZero = first.filter((_, i) => placed[i] === 0);
    await Promise.all(onZero.map((c) => c.end()));
    await sleep(200);
    const more = [];
    for (let i = 0; i < 3; i++) more.push(await connect());
    await eventually(async () => loginShards().length, (n) => n >= before + 9, 5_000, 'login log lines');
    assert.deepEqual(loginShards().slice(before + 6), [0, 0, 0]);
    await Promise.all([...first.filter((_, i) => placed[i] === 1), ...more].map((c) => c.end()));
  });

  test(`40 clients on 2 shards, pool_size ${POOL_SIZE}: never more than ${POOL_SIZE} server connections, every transaction commits`, async () => {
    const CLIENTS = 40;
    const TRANSACTIONS = 25;
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => connect()));
    let maxBackends = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxBackends = Math.max(maxBackends, await backendsOfUser());
        await sleep(5);
      }
    })();
    let committed = 0;
    try {
      await Promise.all(
        clients.map(async (c, id) => {
          for (let i = 0; i < TRANSACTIONS; i++) {
            await c.query('begin');
            const r = await c.query<{ v: number }>('select $1::int as v, pg_sleep(0.001)', [id]);
            assert.equal(r.rows[0].v, id);
            await c.query('commit');
            committed++;
          }
        }),
      );
    } finally {
      sampling = false;
      await sampler;
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    }
    assert.equal(committed, CLIENTS * TRANSACTIONS);
    assert.ok(maxBackends >= 2, `load used ${maxBackends} backends`);
    assert.ok(maxBackends <= POOL_SIZE, `${maxBackends} backends of ${SCRAM_USER.user} at once, cap ${POOL_SIZE}`);
    const shards = new Set(loginShards());
    assert.deepEqual([...shards].sort(), [0, 1]);
  });

  test('a shard whose clients wait gets the connections another shard holds idle', async () => {
    // Fill the cap from clients on both shards, so both end up holding idle connections.
    const all: { c: pg.Client; shard: number }[] = [];
    for (let i = 0; i < POOL_SIZE; i++) all.push(await connectTracked());
    await Promise.all(all.map((t) => t.c.query('begin; select 1')));
    await Promise.all(all.map((t) => t.c.query('commit')));
    assert.deepEqual([...new Set(all.map((t) => t.shard))].sort(), [0, 1]);
    // More clients until shard 0 has POOL_SIZE of them (those on shard 1 stay connected and silent).
    while (all.filter((t) => t.shard === 0).length < POOL_SIZE) all.push(await connectTracked());
    const burst = all.filter((t) => t.shard === 0).map((t) => t.c);
    // All of shard 0's clients in a transaction at once need the whole cap: shard 1 closes its idle ones.
    await Promise.all(burst.map((c) => c.query('begin')));
    const pids = await Promise.all(burst.map((c) => backendPid(c)));
    assert.equal(new Set(pids).size, POOL_SIZE, 'every client of shard 0 holds its own server connection');
    assert.ok((await backendsOfUser()) <= POOL_SIZE);
    await Promise.all(burst.map((c) => c.query('commit')));
    await Promise.all(all.map((t) => t.c.end()));
  });

  test('when a second shard gets as busy as the first, connections move to it once, not closed and reopened at every tick', async () => {
    const PER_SHARD = 8;
    const tracked: { c: pg.Client; shard: number }[] = [];
    const on = (shard: number): pg.Client[] => tracked.filter((t) => t.shard === shard).map((t) => t.c);
    while (on(0).length < PER_SHARD || on(1).length < PER_SHARD) tracked.push(await connectTracked());
    const count = (msg: string): number => d().jsonLogs().filter((l) => l.msg === msg).length;
    // Twice as many clients as connections on each shard: a shard that gives one up still has waiters of its own.
    const load = (clients: pg.Client[], ms: number): Promise<void[]> => {
      const until = Date.now() + ms;
      return Promise.all(
        clients.map(async (c) => {
          while (Date.now() < until) await c.query('select pg_sleep(0.002)');
        }),
      );
    };
    try {
      const first = load(on(0), 4_000);
      // Shard 0 alone takes the whole cap.
      await sleep(1_000);
      const before = count('server connected');
      await Promise.all([first, load(on(1), 3_000)]);
      const opened = count('server connected') - before;
      // Equal demand: two connections move to shard 1. Closing and reopening at every 100 ms tick made about 30.
      assert.ok(opened >= 1, 'shard 1 got connections of its own');
      assert.ok(opened <= 5, `${opened} server connections opened while both shards were busy`);
    } finally {
      await Promise.all(tracked.map((t) => t.c.end().catch(() => undefined)));
    }
  });

  test('pool_size 1 over 2 shards: clients of both shards taking turns get the connection without waiting for demand to decay', async () => {
    const small = await startDoorman(doormanConfigFor(cluster!, { users: [SCRAM_USER], poolSize: 1, general: { workers: 2 } }));
    const clients: pg.Client[] = [];
    try {
      for (let i = 0; i < 4; i++) clients.push(await connectPg(small.connectionString(SCRAM_USER.user, SCRAM_USER.password)));
      const shards = small.jsonLogs().filter((l) => l.msg === 'client logged in').map((l) => l.shard as number);
      assert.deepEqual([...new Set(shards)].sort(), [0, 1]);
      let slowest = 0;
      for (let round = 0; round < 10; round++) {
        for (const [i, c] of clients.entries()) {
          const started = performance.now();
          // Named statements too: each turn prepares them again on the new connection.
          const r = await c.query<{ v: number }>({ name: `turn${i % 2}`, text: `select $1::int + ${i % 2} as v`, values: [round] });
          slowest = Math.max(slowest, performance.now() - started);
          assert.equal(r.rows[0].v, round + (i % 2));
        }
      }
      // The idle connection used to stay on its shard until that shard's demand average fell to zero: 0.7 s.
      assert.ok(slowest < 300, `slowest turn took ${slowest.toFixed(0)} ms`);
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await small.stop();
    }
  });

  test('pool_size 1 over 2 shards, clients busy on both: the connection takes turns, and no shard waits for good', async () => {
    const small = await startDoorman(doormanConfigFor(cluster!, { users: [SCRAM_USER], poolSize: 1, general: { workers: 2 } }));
    const clients: { c: pg.Client; shard: number; done: number; slowest: number }[] = [];
    try {
      while (clients.filter((t) => t.shard === 0).length < 2 || clients.filter((t) => t.shard === 1).length < 2) {
        clients.push({ ...(await connectTracked(small)), done: 0, slowest: 0 });
      }
      const until = Date.now() + 3_000;
      await Promise.all(
        clients.map(async (t) => {
          while (Date.now() < until) {
            const started = performance.now();
            await t.c.query('select pg_sleep(0.001)');
            t.slowest = Math.max(t.slowest, performance.now() - started);
            t.done++;
          }
        }),
      );
      const perShard = [0, 1].map((s) => clients.filter((t) => t.shard === s).reduce((n, t) => n + t.done, 0));
      // The shard that held the connection used to keep it while its own clients waited: the other shard's
      // clients got one query each in 4 s.
      assert.ok(Math.min(...perShard) >= Math.max(...perShard) / 3, `queries per shard ${perShard.join(' / ')}`);
      const slowest = Math.max(...clients.map((t) => t.slowest));
      assert.ok(slowest < 1_500, `slowest query took ${slowest.toFixed(0)} ms`);
    } finally {
      await Promise.all(clients.map((t) => t.c.end().catch(() => undefined)));
      await small.stop();
    }
  });

  test('a cancel request reaches the query of a client on another shard', async () => {
    const { c, shard } = await connectTracked();
    const started = Date.now();
    const sleeper = new pg.Query('select pg_sleep(30)');
    const outcome = new Promise<string>((resolve) => {
      sleeper.on('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
      sleeper.on('end', () => resolve('finished'));
    });
    c.query(sleeper);
    await sleep(300);
    // pg's cancel opens a new connection; with one client connected (on `shard`) the least-loaded rule sends
    // it to the other shard, which must route it to the owner.
    const canceller = new pg.Client({ connectionString: d().connectionString(SCRAM_USER.user, SCRAM_USER.password) }) as unknown as {
      cancel(client: pg.Client, query: pg.Query): void;
    };
    canceller.cancel(c, sleeper);
    assert.equal(await outcome, '57014');
    assert.ok(Date.now() - started < 10_000, `cancelled after ${Date.now() - started} ms`);
    assert.ok(shard === 0 || shard === 1);
    assert.equal((await c.query<{ v: number }>('select 1 as v')).rows[0].v, 1);
    await c.end();
  });

  test('admin SHOW POOLS sums both shards; PAUSE holds clients of every shard until RESUME', async () => {
    const { c: a, shard: sa } = await connectTracked();
    const { c: b, shard: sb } = await connectTracked();
    assert.notEqual(sa, sb, 'two sequential clients land on different shards');
    await a.query('begin; select 1');
    await b.query('begin; select 1');
    const admin = await connectPg(d().connectionString(DOORMAN_ADMIN.user, DOORMAN_ADMIN.password, DOORMAN_ADMIN_DB));
    try {
      const r = await admin.query<Record<string, string>>('SHOW POOLS');
      assert.equal(r.rows.length, 1);
      assert.equal(r.rows[0].cl_active, '2');
      assert.equal(r.rows[0].sv_active, '2');
      await a.query('commit');
      await b.query('commit');
      await admin.query('PAUSE');
      const held = [a.query('select 1 as v'), b.query('select 2 as v')];
      let settled = 0;
      for (const h of held) void h.then(() => settled++);
      await sleep(300);
      assert.equal(settled, 0, 'queries wait while paused');
      const w = await admin.query<Record<string, string>>('SHOW POOLS');
      assert.equal(w.rows[0].cl_waiting, '2');
      await admin.query('RESUME');
      const results = await Promise.all(held);
      assert.deepEqual(
        results.map((x) => x.rows[0].v),
        [1, 2],
      );
    } finally {
      await admin.end();
      await a.end();
      await b.end();
    }
  });
});
