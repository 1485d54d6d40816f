/**
 * Transaction pooling end to end: many clients over few servers, pipelines, COPY, notifications and
 * notices, session parameters that follow the client, and servers handed over clean.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  MD5_USER,
  RawClient,
  SCRAM_USER,
  backendPid,
  connectPg,
  dataRow,
  errorFields,
  fe,
  one,
  psql,
  startDoorman,
  startPostgres,
  type DoormanConfig,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 120_000;

describe('transaction mode', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;
  let admin: pg.Client | undefined;

  function servers(): { cluster: PgCluster; doorman: DoormanProcess; admin: pg.Client } {
    assert.ok(cluster && doorman && admin, 'servers did not start');
    return { cluster, doorman, admin };
  }

  /** `app`: scram_user x5, md5_user x2; `single` and `pair`: scram_user x1 and x2, same PostgreSQL database. */
  function url(db: 'app' | 'single' | 'pair' = 'app', user = SCRAM_USER): string {
    return servers().doorman.connectionString(user.user, user.password, db);
  }

  async function backendsOf(user: string): Promise<number[]> {
    const r = await servers().admin.query<{ pid: number }>('select pid from pg_stat_activity where usename = $1 order by pid', [user]);
    return r.rows.map((row) => row.pid);
  }

  before(async () => {
    cluster = await startPostgres();
    const server = { server_host: cluster.host, server_port: cluster.port, server_database: 'app', pool_mode: 'transaction' as const };
    const config: DoormanConfig = {
      // One worker shard: these tests assert which backend serves a client (worker shards are covered in workers.test.ts).
      general: { host: '127.0.0.1', port: 0, workers: 1, pg_hba: 'host all all 127.0.0.1/32 md5\n' },
      pools: {
        app: {
          ...server,
          users: [
            { username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 5 },
            { username: MD5_USER.user, password: MD5_USER.password, pool_size: 2 },
          ],
        },
        single: { ...server, users: [{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 1 }] },
        pair: { ...server, users: [{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 2 }] },
      },
    };
    doorman = await startDoorman(config);
    admin = new pg.Client({ connectionString: cluster.superuserUrl('app'), connectionTimeoutMillis: 10_000 });
    await admin.connect();
    await admin.query(`
      create table tx_load (id serial primary key, client int not null, seq int not null);
      create table copy_t (a int primary key, b text not null);
      create table dc_t (v int);
      grant all on tx_load, copy_t, dc_t to scram_user, md5_user;
      grant all on sequence tx_load_id_seq to scram_user, md5_user;
    `);
  });

  after(async () => {
    await admin?.end().catch(() => undefined);
    await doorman?.stop();
    await cluster?.stop();
  });

  test('40 concurrent clients, pool_size 5: every transaction sees its own data and commits', async () => {
    const { admin: su } = servers();
    const CLIENTS = 40;
    const TRANSACTIONS = 20;
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => connectPg(url())));
    const pids = new Set<number>();
    try {
      await Promise.all(
        clients.map(async (client, id) => {
          for (let seq = 0; seq < TRANSACTIONS; seq++) {
            await client.query('begin');
            const inserted = await one<{ client: number; seq: number; pid: number }>(
              client,
              'insert into tx_load (client, seq) values ($1, $2) returning client, seq, pg_backend_pid() as pid',
              [id, seq],
            );
            assert.deepEqual({ client: inserted.client, seq: inserted.seq }, { client: id, seq });
            const seen = await one<{ n: string; pid: number }>(client, 'select count(*) as n, pg_backend_pid() as pid from tx_load where client = $1', [id]);
            assert.equal(seen.n, String(seq + 1));
            // One transaction, one server: the backend does not change inside it.
            assert.equal(seen.pid, inserted.pid);
            pids.add(inserted.pid);
            await client.query('commit');
          }
        }),
      );
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    assert.ok(pids.size <= 5, `transactions ran on ${pids.size} backends`);
    assert.ok(pids.size >= 2, `transactions ran on ${pids.size} backend(s): no concurrency happened`);
    const counts = await su.query<{ client: number; n: string }>('select client, count(*) as n from tx_load group by client order by client');
    assert.deepEqual(
      counts.rows.map((r) => [r.client, r.n]),
      Array.from({ length: CLIENTS }, (_, i) => [i, String(TRANSACTIONS)]),
    );
  });

  test('pipelined extended queries: several Syncs in one write, an error skips only to its Sync', async () => {
    const { doorman: d } = servers();
    const wire = await RawClient.open(d.port);
    try {
      wire.send(fe.startup({ user: SCRAM_USER.user, database: 'app' }));
      await wire.login(SCRAM_USER.user, SCRAM_USER.password);
      wire.send(
        fe.parse('', 'select $1::int + 1'), fe.bind('', ['1']), fe.execute(), fe.sync(),
        fe.parse('', 'select 1/g from generate_series(0, 0) g'), fe.bind(''), fe.execute(), fe.sync(),
        fe.parse('', 'select $1::text'), fe.bind('', ['third']), fe.execute(), fe.sync(),
      );
      const first = await wire.until('Z');
      const second = await wire.until('Z');
      const third = await wire.until('Z');
      assert.deepEqual([first, second, third].map((ms) => ms.map((m) => m.type).join('')), ['12DCZ', '12EZ', '12DCZ']);
      assert.deepEqual(dataRow(first[2].body), ['2']);
      assert.equal(errorFields(second[2].body).C, '22012');
      assert.deepEqual(dataRow(third[2].body), ['third']);

      // Within one Sync segment an error discards the rest of the segment, then the next one runs.
      wire.send(
        fe.parse('s_a', 'select 1/g from generate_series(0, 0) g'), fe.bind('s_a'), fe.execute(),
        fe.parse('', "select 'skipped'"), fe.bind(''), fe.execute(), fe.sync(),
        fe.query("select 'after'"),
      );
      const failed = await wire.until('Z');
      assert.deepEqual(failed.map((m) => m.type).join(''), '12EZ');
      assert.equal(failed[failed.length - 1].body.toString(), 'I');
      const next = await wire.until('Z');
      assert.deepEqual(next.map((m) => m.type).join(''), 'TDCZ');
      assert.deepEqual(dataRow(next[1].body), ['after']);
      assert.deepEqual(await wire.simpleQuery('select 7'), [['7']]);
    } finally {
      wire.close();
    }
  });

  test('pg in pipeline mode: 30 queries in flight, one failing, all answered in order', async () => {
    const client = await connectPg(url(), { pipeline: true } as Partial<pg.ClientConfig>);
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 30 }, (_, i) => (i === 13 ? client.query('select 1/0') : client.query('select $1::int * 2 as v', [i]))),
      );
      results.forEach((r, i) => {
        if (i === 13) {
          assert.equal(r.status, 'rejected');
          assert.equal((r.reason as { code?: string }).code, '22012');
        } else {
          assert.equal(r.status, 'fulfilled', `query ${i}`);
          assert.deepEqual(r.value.rows, [{ v: i * 2 }]);
        }
      });
    } finally {
      await client.end();
    }
  });

  test('COPY FROM STDIN and COPY TO STDOUT through psql (20000 rows each way)', async () => {
    const { doorman: d } = servers();
    const rows = Array.from({ length: 20_000 }, (_, i) => `${i}\tvalue-${i}-${'x'.repeat(i % 50)}\n`).join('');
    const target = d.target(SCRAM_USER);
    const copyIn = await psql(target, ['-c', 'COPY copy_t FROM STDIN'], { input: rows });
    assert.equal(copyIn.code, 0, copyIn.stderr);
    assert.equal(copyIn.stdout, 'COPY 20000\n');
    const copyOut = await psql(target, ['-q', '-c', 'COPY (select a, b from copy_t order by a) TO STDOUT']);
    assert.equal(copyOut.code, 0, copyOut.stderr);
    assert.equal(copyOut.stdout, rows);
  });

  test('COPY at the protocol level: rows out, a bad row in, CopyFail, and the connection carries on', async () => {
    const { doorman: d } = servers();
    const wire = await RawClient.open(d.port);
    try {
      wire.send(fe.startup({ user: SCRAM_USER.user, database: 'single' }));
      await wire.login(SCRAM_USER.user, SCRAM_USER.password);

      wire.send(fe.query('COPY (select g, g * g from generate_series(1, 3) g) TO STDOUT'));
      const out = await wire.until('Z');
      assert.equal(out.map((m) => m.type).join(''), 'HdddcCZ');
      assert.deepEqual(out.filter((m) => m.type === 'd').map((m) => m.body.toString()), ['1\t1\n', '2\t4\n', '3\t9\n']);

      wire.send(fe.query('COPY copy_t FROM STDIN'));
      assert.equal((await wire.message())?.type, 'G');
      wire.send(fe.copyData('-1\tgood\n'), fe.copyData('notanumber\tbad\n'), fe.copyDone());
      const bad = await wire.until('Z');
      assert.equal(bad.map((m) => m.type).join(''), 'EZ');
      assert.equal(errorFields(bad[0].body).C, '22P02');

      wire.send(fe.query('COPY copy_t FROM STDIN'));
      assert.equal((await wire.message())?.type, 'G');
      wire.send(fe.copyData('-2\tgood\n'), fe.copyFail('client gave up'));
      const failed = await wire.until('Z');
      assert.equal(failed.map((m) => m.type).join(''), 'EZ');
      assert.equal(errorFields(failed[0].body).C, '57014');

      assert.deepEqual(await wire.simpleQuery('select count(*) from copy_t where a < 0'), [['0']]);
    } finally {
      wire.close();
    }
    // The only server of `single` came back usable.
    const other = await connectPg(url('single'));
    try {
      assert.equal((await one<{ n: number }>(other, 'select 5 as n')).n, 5);
    } finally {
      await other.end();
    }
  });

  test('LISTEN/NOTIFY inside a transaction delivers NotificationResponse (own and another client\'s)', async () => {
    const listener = await connectPg(url());
    const notifier = await connectPg(url());
    try {
      const received: { channel: string; payload: string | undefined }[] = [];
      listener.on('notification', (n) => received.push({ channel: n.channel, payload: n.payload }));
      await listener.query("begin; listen tx_chan; notify tx_chan, 'self'; commit");
      assert.deepEqual(received, [{ channel: 'tx_chan', payload: 'self' }]);

      // LISTEN commits first; the NOTIFY from another client lands while the listener's next transaction runs
      // and is delivered before that query's ReadyForQuery, while Doorman still has the server attached.
      const running = listener.query('begin; listen tx_chan2; commit; begin; select pg_sleep(1.5); commit');
      await sleep(500);
      await notifier.query("notify tx_chan2, 'from-other'");
      await running;
      assert.deepEqual(received, [
        { channel: 'tx_chan', payload: 'self' },
        { channel: 'tx_chan2', payload: 'from-other' },
      ]);
    } finally {
      await Promise.all([listener.end(), notifier.end()]);
    }
  });

  test('NOTICE from a DO block is forwarded', async () => {
    const client = await connectPg(url());
    try {
      const notices: { severity?: string; code?: string; message?: string }[] = [];
      client.on('notice', (n) => notices.push({ severity: n.severity, code: n.code, message: n.message }));
      await client.query("do $$ begin raise notice 'hello %', 42; end $$");
      assert.deepEqual(notices, [{ severity: 'NOTICE', code: '00000', message: 'hello 42' }]);
    } finally {
      await client.end();
    }
  });

  test('SET TimeZone/DateStyle/application_name follow the client to other servers; SET work_mem does not', async () => {
    const { admin: su } = servers();
    const defaults = await one<{ tz: string; ds: string; wm: string }>(
      su,
      "select current_setting('TimeZone') as tz, current_setting('DateStyle') as ds, current_setting('work_mem') as wm",
    );
    assert.notEqual(defaults.tz, 'Asia/Tokyo');
    const client = await connectPg(url('pair'), { application_name: 'before' });
    const holders = await Promise.all([connectPg(url('pair')), connectPg(url('pair'))]);
    try {
      const results = (await client.query(
        "set TimeZone = 'Asia/Tokyo'; set DateStyle = 'SQL, DMY'; set application_name = 'persisted'; set work_mem = '77MB'; select pg_backend_pid() as pid",
      )) as unknown as pg.QueryResult<{ pid: number }>[];
      const firstPid = results[4].rows[0].pid;
      // pool_size 2: the holders take both servers, one of them the server the client just dirtied.
      for (const h of holders) await h.query('begin');
      const holderPids = await Promise.all(holders.map(backendPid));
      const onFirst = holderPids.indexOf(firstPid);
      assert.ok(onFirst >= 0, `holders ${holderPids.join(',')} do not include ${firstPid}`);
      // Free the other server: the client's next transaction can only run there.
      await holders[1 - onFirst].query('commit');
      const now = await one<{ pid: number; tz: string; ds: string; app: string; wm: string }>(
        client,
        "select pg_backend_pid() as pid, current_setting('TimeZone') as tz, current_setting('DateStyle') as ds, current_setting('application_name') as app, current_setting('work_mem') as wm",
      );
      assert.equal(now.pid, holderPids[1 - onFirst]);
      assert.deepEqual(
        { tz: now.tz, ds: now.ds, app: now.app, wm: now.wm },
        // work_mem is not reported by PostgreSQL, so Doorman cannot carry it (documented limit, as in PgBouncer).
        { tz: 'Asia/Tokyo', ds: 'SQL, DMY', app: 'persisted', wm: defaults.wm },
      );
      // The server the client dirtied was reset before the holder got it.
      const seen = await one<{ tz: string; ds: string; wm: string }>(
        holders[onFirst],
        "select current_setting('TimeZone') as tz, current_setting('DateStyle') as ds, current_setting('work_mem') as wm",
      );
      assert.deepEqual(seen, defaults);
      await holders[onFirst].query('commit');
    } finally {
      await Promise.all([client.end(), ...holders.map((h) => h.end())]);
    }
  });

  test('a server is handed over clean after SET, DECLARE WITH HOLD, PREPARE, a named Parse and LISTEN', async () => {
    const a = await connectPg(url('single'));
    const b = await connectPg(url('single'));
    try {
      const results = (await a.query(
        "begin; set work_mem = '77MB'; set statement_timeout = 4321; declare c_hold cursor with hold for select generate_series(1, 3); prepare p_sql as select 2; listen chan_dirty; commit; select pg_backend_pid() as pid",
      )) as unknown as pg.QueryResult<{ pid: number }>[];
      const pid = results[results.length - 1].rows[0].pid;
      // A named protocol-level statement as well (pg sends Parse with the name).
      await a.query({ name: 'named_stmt', text: 'select $1::int as v', values: [1] });
      const seen = await one<{ pid: number; wm: string; st: string; cursors: string; prepared: string; channels: string }>(
        b,
        `select pg_backend_pid() as pid, current_setting('work_mem') as wm, current_setting('statement_timeout') as st,
                (select count(*) from pg_cursors) as cursors, (select count(*) from pg_prepared_statements where name not like 'DOORMAN\\_%') as prepared,
                (select count(*) from pg_listening_channels()) as channels`,
      );
      assert.deepEqual(seen, { pid, wm: '4MB', st: '0', cursors: '0', prepared: '0', channels: '0' });
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  test('client leaves mid-transaction (Terminate, then a dropped socket): rolled back, locks gone, server reused', async () => {
    const { admin: su } = servers();
    for (const how of ['terminate', 'drop'] as const) {
      const a = await connectPg(url('single'));
      await a.query('begin');
      await a.query('insert into dc_t values (1)');
      await a.query('lock table dc_t in access exclusive mode');
      const pid = await backendPid(a);
      if (how === 'terminate') await a.end();
      else (a as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();

      const b = await connectPg(url('single'));
      try {
        assert.equal(await backendPid(b), pid, `${how}: the server was not reused`);
        assert.equal((await one<{ n: string }>(b, 'select count(*) as n from dc_t')).n, '0', how);
        await b.query('begin');
        await b.query('lock table dc_t in access exclusive mode nowait');
        await b.query('rollback');
      } finally {
        await b.end();
      }
      const state = await one<{ state: string }>(su, 'select state from pg_stat_activity where pid = $1', [pid]);
      assert.equal(state.state, 'idle', how);
    }
  });

  test('client leaves while its query runs: that server is closed, the next client gets a fresh one', async () => {
    const { admin: su } = servers();
    const a = await connectPg(url('single'));
    const pid = await backendPid(a);
    const running = a.query('select pg_sleep(5)').catch(() => 'aborted');
    await sleep(300);
    (a as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
    assert.equal(await running, 'aborted');
    const started = Date.now();
    const b = await connectPg(url('single'));
    try {
      const pidB = await backendPid(b);
      assert.notEqual(pidB, pid);
      assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
    } finally {
      await b.end();
      await su.query('select pg_cancel_backend($1)', [pid]);
    }
  });

  test('idle clients hold no server: 50 idle clients on pool_size 2, a 51st runs queries', async () => {
    const idle: pg.Client[] = [];
    try {
      for (let batch = 0; batch < 5; batch++) {
        const group = await Promise.all(Array.from({ length: 10 }, () => connectPg(url('app', MD5_USER))));
        idle.push(...group);
        await Promise.all(group.map((c) => c.query('select 1')));
      }
      assert.ok((await backendsOf('md5_user')).length <= 2);
      const last = await connectPg(url('app', MD5_USER));
      try {
        const started = Date.now();
        for (let i = 0; i < 20; i++) assert.equal((await one<{ v: number }>(last, 'select $1::int as v', [i])).v, i);
        assert.ok(Date.now() - started < 5_000, `20 queries took ${Date.now() - started} ms`);
      } finally {
        await last.end();
      }
      const backends = await backendsOf('md5_user');
      assert.ok(backends.length >= 1 && backends.length <= 2, `md5_user backends: ${backends.length}`);
      // Every idle client is still usable.
      for (const c of idle) assert.equal((await one<{ v: number }>(c, 'select 3 as v')).v, 3);
    } finally {
      await Promise.all(idle.map((c) => c.end()));
    }
  });
});
