/**
 * The ways a shard drives its plain sockets: its own epoll loop with each batch's sends made together
 * through io_uring (the default), the same loop with a send(2) per send (DOORMAN_IO_URING=off, as where
 * io_uring is refused), and Node's sockets (DOORMAN_SHARD_IO=node). Each carries concurrent transactions, a result far larger than the socket
 * buffers (writes the kernel cannot take at once), clients that leave mid-query, the admin console (whose
 * answers arrive as messages between threads) and a cancel request.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import {
  DOORMAN_ADMIN,
  DOORMAN_ADMIN_DB,
  SCRAM_USER,
  connectPg,
  doormanConfigFor,
  eventually,
  keyOf,
  psql,
  sendCancel,
  sqlError,
  startDoorman,
  startPostgres,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 120_000;

const MODES = {
  epoll: { title: 'the shard epoll loop', env: {}, io: 'epoll', sends: 'io_uring' },
  'epoll-send': { title: 'the shard epoll loop, one send(2) per send', env: { DOORMAN_IO_URING: 'off' }, io: 'epoll', sends: 'send' },
  node: { title: "Node's sockets", env: { DOORMAN_SHARD_IO: 'node' }, io: 'node', sends: 'node' },
} as const;

for (const { title, env, io, sends } of Object.values(MODES)) {
  describe(`shard sockets on ${title}`, { timeout: SUITE_TIMEOUT_MS }, () => {
    let cluster: PgCluster | undefined;
    let doorman: DoormanProcess | undefined;

    function d(): DoormanProcess {
      assert.ok(doorman, 'Doorman did not start');
      return doorman;
    }
    const connect = (): Promise<pg.Client> => connectPg(d().connectionString(SCRAM_USER.user, SCRAM_USER.password));

    before(async () => {
      cluster = await startPostgres();
      doorman = await startDoorman(doormanConfigFor(cluster, { users: [SCRAM_USER], poolSize: 4, general: { workers: 2 } }), { env });
    });

    after(async () => {
      await doorman?.stop();
      await cluster?.stop();
    });

    test(`every shard reports the ${io} socket layer, sending with ${sends}`, async () => {
      await eventually(
        async () => d().jsonLogs().filter((l) => l.msg === 'shard started'),
        (lines) => lines.length === 2,
        5_000,
        'shard started lines',
      );
      const layers = d()
        .jsonLogs()
        .filter((l) => l.msg === 'shard started')
        .map((l) => `${String(l.io)}/${String(l.sends)}`);
      assert.deepEqual(layers, [`${io}/${sends}`, `${io}/${sends}`]);
    });

    test('30 clients x 40 transactions on a pool of 4: every answer is the client own', async () => {
      const clients = await Promise.all(Array.from({ length: 30 }, () => connect()));
      try {
        await Promise.all(
          clients.map(async (c, id) => {
            for (let i = 0; i < 40; i++) {
              await c.query('begin');
              const r = await c.query<{ v: string }>('select $1::text as v', [`${id}:${i}`]);
              assert.equal(r.rows[0].v, `${id}:${i}`);
              await c.query('commit');
            }
          }),
        );
      } finally {
        await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      }
    });

    test('a 40 MB result reaches a client intact while others keep working', async () => {
      const big = psql(d().target(SCRAM_USER), ['-A', '-t', '-c', "select count(*), sum(length(s)) from (select repeat('x', 2000) || g as s from generate_series(1, 20000) g) t"]);
      const rows = psql(d().target(SCRAM_USER), ['-A', '-t', '-c', "select repeat(md5(g::text), 64) from generate_series(1, 20000) g"]);
      const c = await connect();
      try {
        for (let i = 0; i < 50; i++) assert.equal((await c.query<{ n: number }>('select $1::int as n', [i])).rows[0].n, i);
      } finally {
        await c.end();
      }
      const b = await big;
      assert.equal(b.code, 0, b.stderr);
      assert.equal(b.stdout.trim(), `20000|${20000 * 2000 + 88894}`);
      const r = await rows;
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 20000);
      assert.ok(lines.every((l) => l.length === 2048));
    });

    test('clients that leave mid-query do not disturb the pool', async () => {
      for (let i = 0; i < 8; i++) {
        const c = await connect();
        void c.query('select pg_sleep(5)').catch(() => undefined);
        await new Promise((r) => setTimeout(r, 20));
        (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      }
      const c = await connect();
      try {
        const r = await c.query<{ ok: number }>('select 1 as ok');
        assert.equal(r.rows[0].ok, 1);
      } finally {
        await c.end();
      }
    });

    test('the admin console answers across shards, and a cancel reaches its query', async () => {
      const show = await psql(d().target(DOORMAN_ADMIN, DOORMAN_ADMIN_DB), ['-A', '-t', '-c', 'SHOW POOLS']);
      assert.equal(show.code, 0, show.stderr);
      assert.match(show.stdout, new RegExp(SCRAM_USER.user));
      const c = await connect();
      try {
        const q = sqlError(c.query('select pg_sleep(30)'));
        // The cancel must reach the query on its server (a query still waiting is answered by Doorman: cancel.test.ts).
        await eventually(
          async () => Number(await cluster!.query("SELECT count(*) FROM pg_stat_activity WHERE query = 'select pg_sleep(30)' AND state = 'active'")),
          (n) => n > 0,
          10_000,
          'the query running on PostgreSQL',
        );
        await sendCancel(d().port, keyOf(c));
        const err = await q;
        assert.equal(err.code, '57014');
      } finally {
        await c.end();
      }
    });
  });
}
