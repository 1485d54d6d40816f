/**
 * Real clients through Doorman: psql, pgbench, pg, postgres.js, psycopg2 and psycopg 3. Transaction mode
 * runs with far more clients than server connections (pool_size 5); session mode is used where a driver
 * relies on named prepared statements, which transaction mode does not remap yet.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import postgres from 'postgres';
import {
  SCRAM_USER,
  all,
  doormanConfigFor,
  pgbench,
  psql,
  python,
  startDoorman,
  startPostgres,
  type DoormanProcess,
  type PgCluster,
  type RunResult,
} from '../harness/index.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/', import.meta.url));
const TRANSACTION_POOL_SIZE = 5;
const SESSION_POOL_SIZE = 10;

function fixture(name: string): string {
  return `${FIXTURES}${name}`;
}

function ok(result: RunResult, what: string): void {
  assert.equal(result.timedOut, false, `${what} timed out\n${result.stderr}`);
  assert.equal(result.code, 0, `${what} failed (exit ${String(result.code)})\nstdout:\n${result.stdout.slice(-3000)}\nstderr:\n${result.stderr.slice(-3000)}`);
}

describe('drivers through Doorman', { timeout: 170_000 }, () => {
  let cluster: PgCluster | undefined;
  let transaction: DoormanProcess | undefined;
  let session: DoormanProcess | undefined;

  before(async () => {
    cluster = await startPostgres();
    [transaction, session] = await Promise.all([
      startDoorman(doormanConfigFor(cluster, { users: [SCRAM_USER], poolMode: 'transaction', poolSize: TRANSACTION_POOL_SIZE })),
      startDoorman(doormanConfigFor(cluster, { users: [SCRAM_USER], poolMode: 'session', poolSize: SESSION_POOL_SIZE })),
    ]);
  });

  after(async () => {
    await Promise.all([transaction?.stop(), session?.stop()]);
    await cluster?.stop();
  });

  function servers(): { pg: PgCluster; tx: DoormanProcess; sess: DoormanProcess } {
    assert.ok(cluster && transaction && session, 'servers did not start');
    return { pg: cluster, tx: transaction, sess: session };
  }

  /** Server connections PostgreSQL sees from Doorman for scram_user (ours are the only ones). */
  async function backendCount(): Promise<number> {
    return Number(await servers().pg.query("SELECT count(*) FROM pg_stat_activity WHERE usename = 'scram_user' AND backend_type = 'client backend'"));
  }

  // -------------------------------------------------------------------------
  test('psql: a fixed script gives the same output directly and through Doorman', async () => {
    const { pg: direct, tx } = servers();
    const args = ['-A', '-t', '-f', fixture('psql-script.sql')];
    const viaDirect = await psql(direct.target(SCRAM_USER), args);
    ok(viaDirect, 'psql direct');
    const viaDoorman = await psql(tx.target(SCRAM_USER), args);
    ok(viaDoorman, 'psql through Doorman');
    assert.equal(viaDoorman.stdout, viaDirect.stdout);
    assert.equal(viaDoorman.stderr, viaDirect.stderr);
    assert.equal(
      viaDirect.stdout,
      [
        'DROP TABLE',
        'CREATE TABLE',
        'INSERT 0 5',
        'COPY 2',
        '7|28.75',
        '101|from-copy',
        '102|ünïcødé ✓ 🐘',
        'max id is 102, min label is doorman-1',
        'BEGIN',
        'DELETE 1',
        '6',
        'ROLLBACK',
        '7',
        'SET',
        '29.02.2024|29.02.2024 12:34:56',
        'RESET',
        '2024-02-29',
        'id,label,price',
        '1,doorman-1,1.25',
        '2,doorman-2,2.50',
        '3,doorman-3,3.75',
        '4,doorman-4,5.00',
        '5,doorman-5,6.25',
        '101,from-copy,9.99',
        '102,ünïcødé ✓ 🐘,0.01',
        '||tab\there',
        'DROP TABLE',
        '',
      ].join('\n'),
    );
  });

  test('psql: 20 concurrent scripts through 5 server connections', async () => {
    const { tx } = servers();
    const sql = (i: number): string =>
      `begin;\nselect ${i} as client, pg_sleep(0.05) \\gset\ncommit;\nselect :client * 10, current_setting('application_name');\n`;
    const results = await all(
      Array.from({ length: 20 }, (_, i) => psql({ ...tx.target(SCRAM_USER), params: { application_name: `psql-${i}` } }, ['-q', '-A', '-t'], { input: sql(i) })),
    );
    results.forEach((r, i) => {
      ok(r, `psql client ${i}`);
      assert.equal(r.stdout, `${i * 10}|psql-${i}\n`);
    });
  });

  // -------------------------------------------------------------------------
  describe('pgbench', () => {
    function assertBenchOk(r: RunResult, what: string): number {
      ok(r, what);
      assert.doesNotMatch(r.stdout + r.stderr, /aborted|error/i, `${what}:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /number of failed transactions: 0 \(0\.000%\)/, `${what}:\n${r.stdout}`);
      const processed = /number of transactions actually processed: (\d+)/.exec(r.stdout);
      assert.ok(processed, `${what}: no summary\n${r.stdout}`);
      const n = Number(processed[1]);
      assert.ok(n > 0, `${what}: processed ${n}`);
      return n;
    }

    test('pgbench -i -s 2 through Doorman', async () => {
      const { pg: direct, tx } = servers();
      const init = await pgbench(tx.target(SCRAM_USER), ['-i', '-s', '2', '-q'], { timeoutMs: 60_000 });
      ok(init, 'pgbench -i');
      assert.match(init.stderr, /done in/);
      assert.equal(await direct.query('SELECT count(*) FROM pgbench_accounts', 'app'), '200000');
      assert.equal(await direct.query('SELECT count(*) FROM pgbench_branches', 'app'), '2');
    });

    for (const mode of ['simple', 'extended'] as const) {
      for (const [script, flags] of [['select-only', ['-S']], ['tpcb-like', []]] as const) {
        test(`${script}, -M ${mode}, 50 clients over ${TRANSACTION_POOL_SIZE} server connections`, async () => {
          const { tx } = servers();
          const r = await pgbench(tx.target(SCRAM_USER), [...flags, '-M', mode, '-c', '50', '-j', '2', '-T', '5', '-n'], { timeoutMs: 40_000 });
          assertBenchOk(r, `pgbench ${script} -M ${mode}`);
          assert.ok((await backendCount()) <= TRANSACTION_POOL_SIZE * 2, 'more server connections than both pools allow');
        });
      }
    }

    test('-M prepared in session mode', async () => {
      const { sess } = servers();
      const r = await pgbench(sess.target(SCRAM_USER), ['-M', 'prepared', '-c', String(SESSION_POOL_SIZE), '-j', '2', '-T', '5', '-n'], { timeoutMs: 40_000 });
      assertBenchOk(r, 'pgbench -M prepared (session)');
    });
  });

  // -------------------------------------------------------------------------
  describe('pg (node-postgres)', () => {
    before(async () => {
      await servers().pg.query('CREATE TABLE pg_rows (client int, v text); GRANT ALL ON pg_rows TO scram_user;', 'app');
    });

    test('40 concurrent clients: parameters, rollback, commit, large rows, errors', async () => {
      const { tx } = servers();
      const url = tx.connectionString(SCRAM_USER.user, SCRAM_USER.password);
      const big = 1024 * 1024;
      await all(
        Array.from({ length: 40 }, async (_, i) => {
          const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, query_timeout: 30_000 });
          await client.connect();
          try {
            const p = await client.query('select $1::int * 2 as doubled, $2::text as echo, $3::int is null as isnull', [i, `client-${i}-ü🐘`, null]);
            assert.deepEqual(p.rows, [{ doubled: i * 2, echo: `client-${i}-ü🐘`, isnull: true }]);

            await client.query('begin');
            await client.query('insert into pg_rows values ($1, $2)', [i, 'rolled back']);
            await client.query('rollback');
            await client.query('begin');
            for (const v of ['a', 'b', 'c']) await client.query('insert into pg_rows values ($1, $2)', [i, v]);
            await client.query('commit');
            const mine = await client.query('select string_agg(v, \'\' order by v) as vs from pg_rows where client = $1', [i]);
            assert.deepEqual(mine.rows, [{ vs: 'abc' }]);

            const large = await client.query<{ big: string }>('select repeat($1, $2) as big', [String.fromCharCode(97 + (i % 26)), big]);
            assert.equal(large.rows[0].big.length, big);
            assert.equal(large.rows[0].big, String.fromCharCode(97 + (i % 26)).repeat(big));

            await assert.rejects(client.query('select 1/0'), (err: { code?: string }) => err.code === '22012');
            const after = await client.query('select $1::bigint + 1 as n, $2::text[] as arr', ['9007199254740992', ['x', 'y']]);
            assert.deepEqual(after.rows, [{ n: '9007199254740993', arr: ['x', 'y'] }]);
          } finally {
            await client.end();
          }
        }),
      );
      assert.equal(await servers().pg.query('SELECT count(*) FROM pg_rows', 'app'), '120');
      assert.equal(await servers().pg.query("SELECT count(*) FROM pg_rows WHERE v = 'rolled back'", 'app'), '0');
    });

    test('pg.Pool (max 20): 300 queries and 40 transactions', async () => {
      const { tx } = servers();
      const pool = new pg.Pool({ connectionString: tx.connectionString(SCRAM_USER.user, SCRAM_USER.password), max: 20, connectionTimeoutMillis: 10_000, query_timeout: 30_000 });
      try {
        const sums = await all(
          Array.from({ length: 300 }, async (_, i) => {
            const r = await pool.query<{ s: number; d: Date }>("select $1::int + $2::int as s, '2024-02-29T12:00:00Z'::timestamptz as d", [i, 1000]);
            assert.equal(r.rows[0].d.toISOString(), '2024-02-29T12:00:00.000Z');
            return r.rows[0].s;
          }),
        );
        assert.deepEqual(sums, Array.from({ length: 300 }, (_, i) => i + 1000));
        await all(
          Array.from({ length: 40 }, async (_, i) => {
            const client = await pool.connect();
            try {
              await client.query('begin');
              await client.query('insert into pg_rows values ($1, $2)', [1000 + i, 'pool']);
              if (i % 2 === 0) await client.query('commit');
              else await client.query('rollback');
            } finally {
              client.release();
            }
          }),
        );
        assert.equal(await servers().pg.query("SELECT count(*) || ':' || sum(client) FROM pg_rows WHERE v = 'pool'", 'app'), `20:${Array.from({ length: 20 }, (_, k) => 1000 + 2 * k).reduce((a, b) => a + b)}`);
      } finally {
        await pool.end();
      }
    });
  });

  // -------------------------------------------------------------------------
  describe('postgres (postgres.js)', () => {
    interface Row {
      i: number;
      arr: number[];
      doc: { n: number; s: string };
      at: Date;
      big: bigint;
      texts: string[];
    }

    async function run(url: string, prepare: boolean, max: number): Promise<void> {
      const sql = postgres(url, { max, prepare, connect_timeout: 10, idle_timeout: 5, onnotice: () => undefined, types: { bigint: postgres.BigInt } });
      try {
        await sql`create table if not exists pgjs_rows (k int, v text)`;
        const rows = await all(
          Array.from({ length: 40 }, async (_, i) => {
            // Twice per statement text: with prepare the second run uses the named statement again.
            let last: Row | undefined;
            for (let round = 0; round < 2; round++) {
              const result = await sql<Row[]>`
                select ${i}::int as i, ${sql.array([i, i + 1])}::int[] as arr, ${sql.json({ n: i, s: 'ü🐘' })}::jsonb as doc,
                       ${new Date(Date.UTC(2024, 1, 29, 12, 0, i % 60))}::timestamptz as at,
                       ${9007199254740993n + BigInt(i)}::int8 as big, array['a', 'b c', 'ü'] as texts`;
              last = result[0];
            }
            return last;
          }),
        );
        rows.forEach((row, i) => {
          assert.deepEqual(row, {
            i,
            arr: [i, i + 1],
            doc: { n: i, s: 'ü🐘' },
            at: new Date(Date.UTC(2024, 1, 29, 12, 0, i % 60)),
            big: 9007199254740993n + BigInt(i),
            // postgres.js reads NULL elements of text arrays as the string "NULL" (directly too), so none here.
            texts: ['a', 'b c', 'ü'],
          });
        });
        const tag = prepare ? 1 : 0;
        await all(
          Array.from({ length: 20 }, (_, i) =>
            sql
              .begin(async (tx) => {
                await tx`insert into pgjs_rows values (${i}, ${`prepare-${tag}`})`;
                if (i % 4 === 0) throw new Error('roll back');
              })
              .catch((err: Error) => assert.equal(err.message, 'roll back')),
          ),
        );
        const [count] = await sql<{ n: bigint }[]>`select count(*) as n from pgjs_rows where v = ${`prepare-${tag}`}`;
        assert.equal(count.n, 15n);
        await assert.rejects(sql`select 1/0`, (err: { code?: string }) => err.code === '22012');
      } finally {
        await sql.end({ timeout: 5 });
      }
    }

    test('transaction mode, prepare: false, 40 concurrent queries over 20 client connections', async () => {
      const { tx } = servers();
      await run(tx.connectionString(SCRAM_USER.user, SCRAM_USER.password), false, 20);
    });

    test('session mode, prepare: true (named statements)', async () => {
      const { sess } = servers();
      await run(sess.connectionString(SCRAM_USER.user, SCRAM_USER.password), true, SESSION_POOL_SIZE - 2);
    });
  });

  // -------------------------------------------------------------------------
  describe('python drivers', () => {
    const WORKERS = 8;

    async function workers(file: string, url: string): Promise<Record<string, unknown>[]> {
      const code = readFileSync(fixture(file), 'utf8');
      const results = await all(Array.from({ length: WORKERS }, (_, i) => python(code, [url, String(i + 1)], { timeoutMs: 45_000 })));
      return results.map((r, i) => {
        ok(r, `${file} worker ${i + 1}`);
        return JSON.parse(r.stdout) as Record<string, unknown>;
      });
    }

    test(`psycopg2: ${WORKERS} processes with inserts, COPY, transactions and named cursors`, async () => {
      const { tx } = servers();
      const results = await workers('psycopg2_worker.py', tx.connectionString(SCRAM_USER.user, SCRAM_USER.password));
      results.forEach((out, i) => {
        const worker = i + 1;
        assert.deepEqual(out, {
          after_insert: [100, '7575.0', 'name-99-ü'],
          deleted_then_rolled_back: 50,
          count_after_rollback: 100,
          copy_out: '1098,copied-1098\n1099,copied-1099\n1100,copied-1100\n',
          named_cursor: [1100, 1, 1100, 605550],
          error: '22012',
          params: [worker + 1000, null, '日本語 🎉'],
        });
      });
    });

    test(`psycopg 3: ${WORKERS} processes, autocommit and transactions, prepare_threshold=None`, async () => {
      const { tx } = servers();
      const results = await workers('psycopg3_worker.py', tx.connectionString(SCRAM_USER.user, SCRAM_USER.password));
      results.forEach((out, i) => {
        const worker = i + 1;
        assert.deepEqual(out, {
          autocommit: [50, 1275, true, 't9'],
          after_transactions: [50, 10],
          after_copy: [1050, 551775],
          error: '42P01',
          types: [worker * 2, '🐘 ✓', { k: [1, null] }, [1, 2, null], `2024-02-29T12:00:0${worker}+00:00`],
          non_autocommit: [6000],
          named_cursor: [1051, 1, 6000],
        });
      });
    });
  });
});
