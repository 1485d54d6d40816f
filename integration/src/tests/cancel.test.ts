/**
 * Query cancellation through Doorman: CancelRequest with the synthetic key a client got at login reaches its
 * query only, never another client's, and never a server the client has already given back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { SCRAM_USER, backendPid, connectPg, keyOf, sendCancel, startDoorman, startPostgres, type DoormanConfig, type DoormanProcess, type PgCluster } from '../harness/index.js';

const SUITE_TIMEOUT_MS = 90_000;

/** Runs `sql`; resolves with the SQLSTATE it failed with (or 'ok') and how long it took. */
async function timed(client: pg.Client, sql: string): Promise<{ outcome: string; ms: number }> {
  const t0 = Date.now();
  try {
    await client.query(sql);
    return { outcome: 'ok', ms: Date.now() - t0 };
  } catch (err) {
    return { outcome: (err as { code?: string }).code ?? String(err), ms: Date.now() - t0 };
  }
}

describe('cancel', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;

  function d(): DoormanProcess {
    assert.ok(cluster && doorman, 'servers did not start');
    return doorman;
  }

  /** `app`: pool_size 2; `single`: pool_size 1 (the same PostgreSQL database). */
  function url(db: 'app' | 'single' = 'app'): string {
    return d().connectionString(SCRAM_USER.user, SCRAM_USER.password, db);
  }

  before(async () => {
    cluster = await startPostgres();
    const server = { server_host: cluster.host, server_port: cluster.port, server_database: 'app', pool_mode: 'transaction' as const };
    const config: DoormanConfig = {
      // One worker shard: these tests assert which backend serves a client (worker shards are covered in workers.test.ts).
      general: { host: '127.0.0.1', port: 0, workers: 1, pg_hba: 'host all all 127.0.0.1/32 scram-sha-256\n' },
      pools: {
        app: { ...server, users: [{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 2 }] },
        single: { ...server, users: [{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 1 }] },
      },
    };
    doorman = await startDoorman(config);
  });

  after(async () => {
    await doorman?.stop();
    await cluster?.stop();
  });

  test('pg cancel of pg_sleep(30) -> 57014 in < 5 s; a concurrent client on another server is not cancelled', async () => {
    const a = await connectPg(url());
    const b = await connectPg(url());
    try {
      // Both hold a server at once (pool_size 2), so they are on different backends.
      const other = timed(b, 'select pg_sleep(1)');
      const sleeper = new pg.Query('select pg_sleep(30)');
      const t0 = Date.now();
      const outcome = new Promise<string>((resolve) => {
        sleeper.on('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
        sleeper.on('end', () => resolve('ok'));
      });
      a.query(sleeper);
      await sleep(300);
      const canceller = new pg.Client({ connectionString: url() }) as unknown as { cancel(client: pg.Client, query: pg.Query): void };
      canceller.cancel(a, sleeper);
      assert.equal(await outcome, '57014');
      assert.ok(Date.now() - t0 < 5_000, `cancelled after ${Date.now() - t0} ms`);
      const b1 = await other;
      assert.equal(b1.outcome, 'ok');
      assert.ok(b1.ms >= 950, `the other query ended after ${b1.ms} ms`);
      // The cancelled client keeps working.
      assert.deepEqual((await a.query('select 1 as v')).rows, [{ v: 1 }]);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  test('a cancel of a query still waiting for a server: 57014 at once, the statement never runs, the client carries on', async () => {
    const a = await connectPg(url('single'));
    const b = await connectPg(url('single'));
    try {
      await a.query('create table if not exists cancelled_marks (x int)');
      const holder = timed(a, 'select pg_sleep(30)');
      await sleep(300);
      // Simple protocol: B's Query waits in Doorman's queue, since A holds the pool's only server.
      const simple = timed(b, 'insert into cancelled_marks values (1)');
      await sleep(300);
      await sendCancel(d().port, keyOf(b));
      const r = await simple;
      assert.equal(r.outcome, '57014');
      assert.ok(r.ms < 5_000, `cancelled after ${r.ms} ms`);
      // Extended protocol: a parameter makes pg send Parse/Bind/Describe/Execute/Sync.
      const t0 = Date.now();
      const extended = b.query('insert into cancelled_marks values ($1)', [2]).then(
        () => 'ok',
        (err: { code?: string }) => err.code ?? String(err),
      );
      await sleep(300);
      await sendCancel(d().port, keyOf(b));
      assert.equal(await extended, '57014');
      assert.ok(Date.now() - t0 < 5_000, `cancelled after ${Date.now() - t0} ms`);
      assert.equal(await Promise.race([holder.then(() => 'ended'), sleep(50, 'running')]), 'running', "A's query was not touched");
      await sendCancel(d().port, keyOf(a));
      assert.equal((await holder).outcome, '57014');
      assert.deepEqual((await b.query('select count(*)::int as n from cancelled_marks')).rows, [{ n: 0 }]);
    } finally {
      await a.query('drop table if exists cancelled_marks').catch(() => undefined);
      await Promise.all([a.end(), b.end()]);
    }
  });

  test('a cancel while the pool syncs the server picked for the query: 57014 at once, the statement never runs', async () => {
    const a = await connectPg(url('single'));
    // Another application_name: the pool sets it on the server before B's statement goes there.
    const b = await connectPg(url('single'), { application_name: 'cancel while reserved' });
    const pid = await backendPid(a);
    let stopped = false;
    try {
      await a.query('create table if not exists reserved_marks (x int)');
      // The pool's only server stops answering, so B stays at the sync, with its statement unsent.
      process.kill(pid, 'SIGSTOP');
      stopped = true;
      const insert = timed(b, 'insert into reserved_marks values (1)');
      await sleep(300);
      await sendCancel(d().port, keyOf(b));
      const r = await Promise.race([insert, sleep(5_000, { outcome: 'no answer within 5 s', ms: 5_000 })]);
      assert.equal(r.outcome, '57014');
      process.kill(pid, 'SIGCONT');
      stopped = false;
      assert.deepEqual((await b.query('select count(*)::int as n from reserved_marks')).rows, [{ n: 0 }]);
      assert.deepEqual((await b.query('show application_name')).rows, [{ application_name: 'cancel while reserved' }]);
    } finally {
      if (stopped) process.kill(pid, 'SIGCONT');
      await a.query('drop table if exists reserved_marks').catch(() => undefined);
      await Promise.all([a.end(), b.end()]);
    }
  });

  test('a cancel inside BEGIN while the pool syncs the server picked for the statement: the block turns aborted and stays in Doorman', async () => {
    const a = await connectPg(url('single'));
    const b = await connectPg(url('single'), { application_name: 'cancel in a block while reserved' });
    const pid = await backendPid(a);
    let stopped = false;
    try {
      await a.query('create table if not exists reserved_block_marks (x int)');
      // Doorman answers the BEGIN itself; the INSERT gets the pool's only server, whose sync then hangs.
      await b.query('BEGIN');
      process.kill(pid, 'SIGSTOP');
      stopped = true;
      const insert = timed(b, 'insert into reserved_block_marks values (1)');
      await sleep(300);
      await sendCancel(d().port, keyOf(b));
      const r = await Promise.race([insert, sleep(5_000, { outcome: 'no answer within 5 s', ms: 5_000 })]);
      assert.equal(r.outcome, '57014');
      // The block never reached the stopped server: its end is answered at once, as a ROLLBACK.
      const end = await Promise.race([b.query('COMMIT').then((res) => res.command), sleep(5_000, 'no answer within 5 s')]);
      assert.equal(end, 'ROLLBACK');
      process.kill(pid, 'SIGCONT');
      stopped = false;
      assert.deepEqual((await b.query('select count(*)::int as n from reserved_block_marks')).rows, [{ n: 0 }]);
      assert.deepEqual((await a.query('select 1 as one')).rows, [{ one: 1 }]);
    } finally {
      if (stopped) process.kill(pid, 'SIGCONT');
      await a.query('drop table if exists reserved_block_marks').catch(() => undefined);
      await Promise.all([a.end(), b.end()]);
    }
  });

  test('a cancel inside BEGIN while the statement waits for a server: the block turns aborted, as in PostgreSQL, and none of it runs', async () => {
    const a = await connectPg(url('single'));
    const b = await connectPg(url('single'));
    try {
      await a.query('create table if not exists cancelled_in_block (x int)');
      const holder = timed(a, 'select pg_sleep(30)');
      await sleep(300);
      // Doorman answers the BEGIN itself; the INSERT waits, since A holds the pool's only server.
      await b.query('BEGIN');
      const waiting = timed(b, 'insert into cancelled_in_block values (1)');
      await sleep(300);
      await sendCancel(d().port, keyOf(b));
      const r = await waiting;
      assert.equal(r.outcome, '57014');
      assert.ok(r.ms < 5_000, `cancelled after ${r.ms} ms`);
      // The block is aborted: COMMIT ends it as a ROLLBACK, answered at once while A still holds the server.
      assert.equal((await b.query('COMMIT')).command, 'ROLLBACK');
      // Again over the extended protocol, and this time the block's next statement reaches a server.
      await b.query('BEGIN');
      const extended = b.query('insert into cancelled_in_block values ($1)', [2]).then(
        () => 'ok',
        (err: { code?: string }) => err.code ?? String(err),
      );
      await sleep(300);
      await sendCancel(d().port, keyOf(b));
      assert.equal(await extended, '57014');
      await sendCancel(d().port, keyOf(a));
      assert.equal((await holder).outcome, '57014');
      assert.equal((await timed(b, 'insert into cancelled_in_block values (3)')).outcome, '25P02');
      assert.equal((await b.query('ROLLBACK')).command, 'ROLLBACK');
      assert.deepEqual((await b.query('select count(*)::int as n from cancelled_in_block')).rows, [{ n: 0 }]);
    } finally {
      await a.query('drop table if exists cancelled_in_block').catch(() => undefined);
      await Promise.all([a.end(), b.end()]);
    }
  });

  test('a cancel with a wrong secret or an unknown key does nothing', async () => {
    const a = await connectPg(url());
    const b = await connectPg(url());
    try {
      const key = keyOf(a);
      const running = timed(a, 'select pg_sleep(1.5)');
      await sleep(300);
      await sendCancel(d().port, { processID: key.processID, secretKey: key.secretKey + 1 });
      await sendCancel(d().port, { processID: keyOf(b).processID, secretKey: key.secretKey });
      await sendCancel(d().port, { processID: 0x7ffffff0, secretKey: key.secretKey });
      const r = await running;
      assert.equal(r.outcome, 'ok');
      assert.ok(r.ms >= 1_400, `ended after ${r.ms} ms`);
      // Control: the right key cancels, so the requests above did reach Doorman in time.
      const again = timed(a, 'select pg_sleep(10)');
      await sleep(300);
      await sendCancel(d().port, key);
      const c = await again;
      assert.equal(c.outcome, '57014');
      assert.ok(c.ms < 5_000, `cancelled after ${c.ms} ms`);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  test('a cancel sent after the query finished does not hit the next user of that server', async () => {
    const a = await connectPg(url('single'));
    const b = await connectPg(url('single'));
    try {
      const keyA = keyOf(a);
      const pid = await backendPid(a);
      assert.deepEqual((await a.query('select 1 as v')).rows, [{ v: 1 }]);
      const running = timed(b, 'select pg_sleep(2)');
      await sleep(300);
      await sendCancel(d().port, keyA);
      const r = await running;
      assert.equal(r.outcome, 'ok');
      assert.ok(r.ms >= 1_900, `ended after ${r.ms} ms`);
      assert.equal(await backendPid(b), pid, 'B did not run on A\'s former server');
      // Control: B's own key does cancel B on that server.
      const again = timed(b, 'select pg_sleep(10)');
      await sleep(300);
      await sendCancel(d().port, keyOf(b));
      assert.equal((await again).outcome, '57014');
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  test('a cancel racing the end of a query never reaches the client that gets the server next', async () => {
    const a = await connectPg(url('single'));
    const b = await connectPg(url('single'));
    try {
      const keyA = keyOf(a);
      for (let i = 0; i < 6; i++) {
        const first = timed(a, 'select pg_sleep(0.3)');
        // B queues behind A for the only server and runs as soon as A's query ends.
        await sleep(20);
        const second = timed(b, 'select pg_sleep(0.5)');
        await sleep(260 + i * 8);
        await sendCancel(d().port, keyA);
        const [ra, rb] = await Promise.all([first, second]);
        assert.ok(['ok', '57014'].includes(ra.outcome), `round ${i}: A ${ra.outcome}`);
        assert.equal(rb.outcome, 'ok', `round ${i}: B was cancelled by A's key`);
      }
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });
});
