/**
 * The driver matrix in transaction mode with far more clients than server connections: drivers that
 * keep named prepared statements (pgbench -M prepared, pgjdbc past prepareThreshold, asyncpg's statement
 * cache, psycopg 3 with prepare_threshold=0, pg named queries, postgres.js) and deferred BEGIN as psql and
 * psycopg2 use it. Every value the clients get back is checked.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import postgres from 'postgres';
import {
  MD5_USER,
  SCRAM_USER,
  all,
  backendActivity,
  makeTempDir,
  pgbench,
  psql,
  python,
  run,
  startDoorman,
  startPostgres,
  type DoormanConfig,
  type DoormanProcess,
  type PgCluster,
  type RunResult,
  type TempDir,
} from '../harness/index.js';

const MATRIX = fileURLToPath(new URL('../../fixtures/matrix/', import.meta.url));
/** Debian's libpostgresql-jdbc-java. */
const PGJDBC_JAR = '/usr/share/java/postgresql.jar';
const POOL_SIZE = 5;
/** Pool `small` (MD5_USER): for the idle-transaction cases. */
const SMALL_POOL_SIZE = 2;
const TABLES = ['asyncpg_rows (worker int, n int, label text)', 'psy3_rows (worker int, n int)', 'pipe_rows (worker int, n int)', 'psy2_rows (v int)', 'jdbc_batch (thread int, i int, label text, primary key (thread, i))', 'named_rows (client int, round int)', 'psql_rows (v int)'];

function ok(result: RunResult, what: string): void {
  assert.equal(result.timedOut, false, `${what} timed out\n${result.stderr.slice(-3000)}`);
  assert.equal(result.code, 0, `${what} failed (exit ${String(result.code)})\nstdout:\n${result.stdout.slice(-3000)}\nstderr:\n${result.stderr.slice(-3000)}`);
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function withOneShard(config: DoormanConfig): DoormanConfig {
  return { ...config, general: { ...config.general, workers: 1 } };
}

function doormanConfig(cluster: PgCluster): DoormanConfig {
  const server = { server_host: cluster.host, server_port: cluster.port, server_database: 'app', pool_mode: 'transaction' as const };
  return {
    general: { host: '127.0.0.1', port: 0, query_wait_timeout: '10s', pg_hba: 'host all all 127.0.0.1/32 scram-sha-256\n' },
    pools: {
      app: { ...server, users: [{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: POOL_SIZE }] },
      small: { ...server, users: [{ username: MD5_USER.user, password: MD5_USER.password, pool_size: SMALL_POOL_SIZE }] },
    },
  };
}

describe('driver matrix (transaction mode, prepared statements and deferred BEGIN)', { timeout: 118_000 }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;
  /**
   * For the schema-change tests: with one shard, no server connection closes for another shard mid-test. A
   * fresh connection is where the limit README names shows (a statement Doorman prepares again there gets the
   * changed result type without PostgreSQL's 0A000), and the pgjdbc test met it in about 1 run of 6.
   */
  let oneShard: DoormanProcess | undefined;
  let javaClasses: TempDir | undefined;
  let javaCompile: RunResult | undefined;

  before(async () => {
    cluster = await startPostgres();
    const grants = `GRANT ALL ON ${TABLES.map((t) => t.split(' ')[0]).join(', ')} TO ${SCRAM_USER.user}, ${MD5_USER.user};`;
    await cluster.query(['\\connect app', ...TABLES.map((t) => `CREATE TABLE ${t};`), grants, ''].join('\n'));
    // Started together: initdb-free work that takes a few seconds each.
    javaClasses = await makeTempDir('matrix-jdbc', { forServiceUser: false });
    const [, , init, compiled] = await Promise.all([
      startDoorman(doormanConfig(cluster)).then((d) => (doorman = d)),
      startDoorman(withOneShard(doormanConfig(cluster))).then((d) => (oneShard = d)),
      pgbench(cluster.target(SCRAM_USER), ['-i', '-s', '2', '-q'], { timeoutMs: 60_000 }),
      run('javac', ['-d', javaClasses.path, '-cp', PGJDBC_JAR, path.join(MATRIX, 'JdbcMatrix.java')], { timeoutMs: 60_000 }),
    ]);
    ok(init, 'pgbench -i');
    javaCompile = compiled;
  });

  after(async () => {
    await doorman?.stop();
    await oneShard?.stop();
    await cluster?.stop();
    await javaClasses?.remove();
  });

  function servers(): { pg: PgCluster; doorman: DoormanProcess } {
    assert.ok(cluster && doorman, 'servers did not start');
    return { pg: cluster, doorman };
  }

  function url(credentials = SCRAM_USER, db = 'app', d = servers().doorman): string {
    return d.connectionString(credentials.user, credentials.password, db);
  }

  function singleShard(): DoormanProcess {
    assert.ok(oneShard, 'the one-shard Doorman did not start');
    return oneShard;
  }

  // -------------------------------------------------------------------------
  describe('pgbench, 100 clients', () => {
    for (const mode of ['prepared', 'extended'] as const) {
      for (const [script, flags] of [['select-only', ['-S']], ['tpcb-like', []]] as const) {
        test(`-M ${mode} ${script}, 100 clients over ${POOL_SIZE} server connections, 5 s`, async () => {
          const { doorman: d } = servers();
          const r = await pgbench(d.target(SCRAM_USER), [...flags, '-M', mode, '-c', '100', '-j', '2', '-T', '5', '-n'], { timeoutMs: 45_000 });
          ok(r, `pgbench -M ${mode} ${script}`);
          const out = r.stdout + r.stderr;
          assert.doesNotMatch(out, /aborted|error|does not exist/i, out.slice(-3000));
          assert.match(r.stdout, /number of clients: 100\n/);
          assert.match(r.stdout, /number of failed transactions: 0 \(0\.000%\)/, r.stdout);
          const processed = /number of transactions actually processed: (\d+)/.exec(r.stdout);
          assert.ok(processed && Number(processed[1]) >= 100, `processed: ${processed?.[1] ?? 'none'}\n${r.stdout}`);
          assert.ok((await backendActivity(servers().pg, SCRAM_USER.user)).total <= POOL_SIZE);
        });
      }
    }
  });

  // -------------------------------------------------------------------------
  describe('pgjdbc', () => {
    async function jdbc(mode: 'reuse' | 'batch' | 'schema', params: string, threads: number, rounds: number, d = servers().doorman): Promise<string[]> {
      assert.ok(javaCompile && javaClasses, 'javac did not run');
      ok(javaCompile, 'javac JdbcMatrix.java');
      const jdbcUrl = `jdbc:postgresql://${d.host}:${d.port}/app?user=${SCRAM_USER.user}&password=${SCRAM_USER.password}&sslmode=disable&connectTimeout=15${params}`;
      const r = await run('java', ['-XX:TieredStopAtLevel=1', '-cp', `${javaClasses.path}:${PGJDBC_JAR}`, 'JdbcMatrix', mode, jdbcUrl, String(threads), String(rounds)], { timeoutMs: 45_000 });
      ok(r, `JdbcMatrix ${mode}${params}`);
      return r.stdout.trimEnd().split('\n').sort();
    }

    function reuseExpected(threads: number, rounds: number): string[] {
      return range(threads)
        .flatMap((t) => {
          const twice = <T>(f: (r: number) => T): T[] => [...range(rounds).map(f), ...range(rounds).map(f)];
          return [
            `server-prepared ${t} 0 true true`,
            `server-prepared ${t} 1 true true`,
            `values ${t} ${twice((r) => `${t * 1000 + r},`).join('')}`,
            `labels ${t} ${twice((r) => `t${t}-${r}@read committed,`).join('')}`,
          ];
        })
        .sort();
    }

    test('PreparedStatement reuse past the default prepareThreshold (5): 20 threads × 2 statements × 20 executions × 2 passes', async () => {
      assert.deepEqual(await jdbc('reuse', '', 20, 20), reuseExpected(20, 20));
    });

    test('prepareThreshold=1: named server statements from the first execution, 20 threads', async () => {
      assert.deepEqual(await jdbc('reuse', '&prepareThreshold=1', 20, 8), reuseExpected(20, 8));
    });

    test('a column added under a server-prepared `select *`: pgjdbc prepares it again and goes on, 8 threads', async () => {
      await servers().pg.query(`CREATE TABLE schema_change_jdbc (a int); INSERT INTO schema_change_jdbc VALUES (1); ALTER TABLE schema_change_jdbc OWNER TO ${SCRAM_USER.user};`, 'app');
      assert.deepEqual(await jdbc('schema', '', 8, 3, singleShard()), range(8).map((t) => `schema ${t} 1 -> 2 2 2`));
    });

    test('executeBatch with autocommit off: commit, rollback, unique violation, commit; 10 threads × 50 rows', async () => {
      const rows = 50;
      const expected = range(10)
        .flatMap((t) => [
          `committed ${t} ${rows}`,
          `rolled-back ${t} ${rows}`,
          `duplicate ${t} 23505`,
          `committed ${t} ${rows}`,
          // Rows 0..49 and 100..149.
          `table ${t} ${2 * rows} ${range(rows).reduce((a, i) => a + i + (2 * rows + i), 0)} row-${t}-0`,
        ])
        .sort();
      assert.deepEqual(await jdbc('batch', '', 10, rows), expected);
      assert.equal(await servers().pg.query('SELECT count(*) FROM jdbc_batch', 'app'), String(10 * 2 * rows));
    });
  });

  // -------------------------------------------------------------------------
  describe('Python drivers', () => {
    async function script(file: string, args: readonly string[]): Promise<unknown> {
      const r = await python(readFileSync(path.join(MATRIX, file), 'utf8'), args, { timeoutMs: 45_000 });
      ok(r, file);
      return JSON.parse(r.stdout) as unknown;
    }

    test('asyncpg: 30 concurrent connections with the statement cache: fetchval, fetchrow, fetch, executemany, transactions', async () => {
      const rounds = 20;
      const out = await script('asyncpg_matrix.py', [url(), '30', String(rounds)]);
      assert.deepEqual(
        out,
        range(30).map((w) => ({
          fetchval: range(rounds).map((r) => w * 1000 + r),
          fetchrow: [`w${w}`, [w, null, 3], `v${w}`, '2.50'],
          fetch: [1, 2, 3, 4].map((g) => [g, g * w]),
          after_executemany: [30, 435],
          isolation: 'serializable',
          error: '22012',
          again: [w * 1000, w * 1000 + rounds - 1],
          final: [31, 100],
        })),
      );
    });

    test('asyncpg: a column added under a cached `select *`: every connection recovers as it does directly', async () => {
      await servers().pg.query(`CREATE TABLE schema_change (a int); INSERT INTO schema_change VALUES (1); ALTER TABLE schema_change OWNER TO ${SCRAM_USER.user};`, 'app');
      const out = await script('asyncpg_schema_change.py', [url(SCRAM_USER, 'app', singleShard()), '4', 'schema_change']);
      assert.deepEqual(out, range(4).map(() => [['a'], [1, 7]]));
    });

    test('psycopg 3, prepare_threshold=0 (everything prepared), 10 threads; pipeline mode with an error in the middle; evictions from its cache of 3', async () => {
      const rounds = 20;
      const out = (await script('psycopg3_matrix.py', [url(), '10', String(rounds)])) as { exception?: string; pipeline?: { raised_at?: string } }[];
      assert.deepEqual(out.flatMap((o, w) => (o.exception === undefined ? [] : [`thread ${w}: ${o.exception}`])), []);
      const raisedAt = out.map((o) => o.pipeline?.raised_at);
      // Where psycopg raises depends on when the error arrives, never before the failing statement was queued.
      for (const at of raisedAt) assert.ok(['division', 'insert 4', 'second sync', 'end of pipeline'].includes(String(at)), `raised at ${String(at)}`);
      assert.deepEqual(
        out,
        range(10).map((w) => ({
          prepared: {
            values: range(rounds).map((r) => w * 1000 + r),
            in_transaction: 21,
            error: '22012',
            after: [21, 290],
            again: [w * 1000, w * 1000 + rounds - 1],
          },
          // Rows 1 and 2 committed at the first Sync; 3 rolled back with the error; 4 skipped; 5 and 6 later.
          pipeline: { raised_at: raisedAt[w], error: '22012', rows: [1, 2, 5], in_transaction: 4 },
          // psycopg evicts from its cache of 3 with DEALLOCATE: names that exist only on the client's side.
          evicting: { plain: [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5].map((i) => i + w), pipeline: [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5].map((i) => i * w) },
        })),
      );
    });

    test('psycopg2: set_session isolation and read only, explicit BEGIN / START TRANSACTION; 50 idle transactions over pool_size 2', async () => {
      const out = (await script('psycopg2_begin.py', [url(MD5_USER, 'small'), '50'])) as { idle?: { servers?: number } };
      const servers = Number(out.idle?.servers);
      // The counting connection is one of them; another may sit idle in the pool.
      assert.ok(servers >= 1 && servers <= SMALL_POOL_SIZE, `${servers} server connections for a pool of ${SMALL_POOL_SIZE}`);
      assert.deepEqual(out, {
        isolation: {
          set_session: 'serializable',
          readonly_insert: '25006',
          explicit: 'serializable',
          start_transaction_read_only: '25006',
          rows: [2],
        },
        idle: { other_values: true, other_seconds_under_5: true, servers, idle_in_transaction: 0, idle_finished: 50 },
      });
    });
  });

  // -------------------------------------------------------------------------
  describe('node drivers', () => {
    test('pg: 40 clients with named queries, 20 rounds each, named statements inside committed and rolled-back transactions', async () => {
      await all(
        range(40).map(async (i) => {
          const client = new pg.Client({ connectionString: url(), connectionTimeoutMillis: 15_000, query_timeout: 15_000 });
          await client.connect();
          try {
            for (let r = 0; r < 20; r++) {
              const a = await client.query({ name: 'mul', text: 'select $1::int * 1000 + $2::int as v', values: [i, r] });
              assert.deepEqual(a.rows, [{ v: i * 1000 + r }]);
              const b = await client.query({ name: 'txt', text: "select $1::text || '-' || $2::text as s, $3::int[] as arr", values: [`c${i}`, r, [i, r]] });
              assert.deepEqual(b.rows, [{ s: `c${i}-${r}`, arr: [i, r] }]);
              if (r % 4 === 0) {
                await client.query('begin');
                await client.query({ name: 'ins', text: 'insert into named_rows values ($1, $2)', values: [i, r] });
                await client.query(r % 8 === 0 ? 'commit' : 'rollback');
              }
            }
            const mine = await client.query({ name: 'mine', text: 'select array_agg(round order by round) as rounds from named_rows where client = $1', values: [i] });
            assert.deepEqual(mine.rows, [{ rounds: [0, 8, 16] }]);
          } finally {
            await client.end();
          }
        }),
      );
    });

    test('pg.Pool (max 20): 200 named queries', async () => {
      const pool = new pg.Pool({ connectionString: url(), max: 20, connectionTimeoutMillis: 15_000, query_timeout: 15_000 });
      try {
        const got = await all(range(200).map(async (i) => (await pool.query<{ v: string }>({ name: `q${i % 3}`, text: `select ($1::int + ${i % 3})::text as v`, values: [i] })).rows[0].v));
        assert.deepEqual(got, range(200).map((i) => String(i + (i % 3))));
      } finally {
        await pool.end();
      }
    });

    // postgres.js has no query timeout of its own: the test's timeout bounds a hang.
    test('postgres (npm) with its default prepare: true: 40 concurrent queries over 20 connections, transactions, errors', { timeout: 30_000 }, async () => {
      const sql = postgres(url(), { max: 20, connect_timeout: 15, idle_timeout: 5, onnotice: () => undefined });
      try {
        await sql`create table if not exists pgjs_rows (k int, v text)`;
        const rows = await all(
          range(40).map(async (i) => {
            const seen: { i: number; arr: number[]; label: string; at: Date }[] = [];
            for (let round = 0; round < 3; round++) {
              const [row] = await sql<{ i: number; arr: number[]; label: string; at: Date }[]>`
                select ${i}::int as i, ${sql.array([i, round])}::int[] as arr, ${`ü-${i}`}::text as label,
                       ${new Date(Date.UTC(2024, 1, 29, 12, 0, i % 60))}::timestamptz as at`;
              seen.push(row);
            }
            return seen;
          }),
        );
        rows.forEach((seen, i) =>
          assert.deepEqual(
            seen,
            range(3).map((round) => ({ i, arr: [i, round], label: `ü-${i}`, at: new Date(Date.UTC(2024, 1, 29, 12, 0, i % 60)) })),
          ),
        );
        await all(
          range(20).map((i) =>
            sql
              .begin(async (tx) => {
                await tx`insert into pgjs_rows values (${i}, 'tx')`;
                if (i % 4 === 0) throw new Error('roll back');
              })
              .catch((err: Error) => assert.equal(err.message, 'roll back')),
          ),
        );
        const [count] = await sql<{ n: string; s: string }[]>`select count(*)::text as n, sum(k)::text as s from pgjs_rows`;
        assert.deepEqual(count, { n: '15', s: String(range(20).filter((i) => i % 4 !== 0).reduce((a, b) => a + b, 0)) });
        await assert.rejects(sql`select 1 / ${0}::int`, (err: { code?: string }) => err.code === '22012');
        const [after] = await sql<{ v: number }[]>`select ${41}::int + 1 as v`;
        assert.deepEqual(after, { v: 42 });
      } finally {
        await sql.end({ timeout: 5 });
      }
    });
  });

  // -------------------------------------------------------------------------
  describe('psql and deferred BEGIN', () => {
    test('psql: BEGIN ISOLATION LEVEL SERIALIZABLE is honoured, START TRANSACTION READ ONLY refuses an INSERT (25006): same output as directly', async () => {
      const { pg: direct, doorman: d } = servers();
      const script = [
        '\\set ON_ERROR_STOP 0',
        '\\set VERBOSITY verbose',
        'BEGIN ISOLATION LEVEL SERIALIZABLE;',
        'SHOW transaction_isolation;',
        'COMMIT;',
        'START TRANSACTION READ ONLY;',
        'SHOW transaction_read_only;',
        'INSERT INTO psql_rows VALUES (1);',
        'ROLLBACK;',
        // Sent with \\g: no trailing semicolon reaches the server.
        'begin isolation level repeatable read, read write',
        '\\g',
        "SELECT current_setting('transaction_isolation') || '/' || current_setting('transaction_read_only');",
        'INSERT INTO psql_rows VALUES (2);',
        'END;',
        'SELECT count(*), sum(v) FROM psql_rows;',
        '',
      ].join('\n');
      const args = ['-q', '-A', '-t'];
      const viaDirect = await psql(direct.target(SCRAM_USER), args, { input: script });
      ok(viaDirect, 'psql directly');
      assert.equal(viaDirect.stdout, 'serializable\non\nrepeatable read/off\n1|2\n');
      assert.match(viaDirect.stderr, /^ERROR: {2}25006: cannot execute INSERT in a read-only transaction\nLOCATION: /);
      await direct.query('DELETE FROM psql_rows', 'app');
      const viaDoorman = await psql(d.target(SCRAM_USER), args, { input: script });
      ok(viaDoorman, 'psql through Doorman');
      assert.equal(viaDoorman.stdout, viaDirect.stdout);
      assert.equal(viaDoorman.stderr, viaDirect.stderr);
    });

    test(`psql: 50 sessions idle after BEGIN hold no server (pool_size ${SMALL_POOL_SIZE}); another client runs queries; then all 50 finish`, async () => {
      const { doorman: d } = servers();
      const dir = await makeTempDir('matrix-psql', { forServiceUser: false });
      try {
        const target = d.target(MD5_USER, 'small');
        const go = path.join(dir.path, 'go');
        const sessions = range(50).map((i) =>
          psql(target, ['-q', '-A', '-t'], {
            timeoutMs: 45_000,
            input: [
              i % 2 === 0 ? 'BEGIN ISOLATION LEVEL REPEATABLE READ;' : 'start transaction isolation level serializable, read only;',
              `\\! touch ${path.join(dir.path, `ready-${i}`)}`,
              // Bounded wait (30 s) for the test to say go.
              `\\! for n in $(seq 1 600); do [ -e ${go} ] && break; sleep 0.05; done`,
              `SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only'), ${i};`,
              'COMMIT;',
              '',
            ].join('\n'),
          }),
        );
        try {
          const deadline = Date.now() + 20_000;
          while ((await readdir(dir.path)).filter((f) => f.startsWith('ready-')).length < 50) {
            assert.ok(Date.now() < deadline, `only ${(await readdir(dir.path)).length} of 50 psql sessions got past BEGIN`);
            await sleep(100);
          }
          const other = new pg.Client({ connectionString: url(MD5_USER, 'small'), connectionTimeoutMillis: 10_000, query_timeout: 10_000 });
          await other.connect();
          try {
            const started = Date.now();
            for (let i = 0; i < 30; i++) assert.deepEqual((await other.query<{ n: number }>('select $1::int + 1 as n', [i])).rows, [{ n: i + 1 }]);
            assert.ok(Date.now() - started < 5_000, `30 queries took ${Date.now() - started} ms`);
          } finally {
            await other.end();
          }
          const during = await backendActivity(servers().pg, MD5_USER.user);
          assert.equal(during.idleInTransaction, 0, 'a server sits idle in a transaction that only said BEGIN');
          assert.ok(during.total <= SMALL_POOL_SIZE, `${during.total} server connections for a pool of ${SMALL_POOL_SIZE}`);
        } finally {
          await writeFile(go, '');
        }
        const results = await Promise.all(sessions);
        results.forEach((r, i) => {
          ok(r, `psql session ${i}`);
          assert.equal(r.stdout, i % 2 === 0 ? `repeatable read|off|${i}\n` : `serializable|on|${i}\n`);
        });
      } finally {
        await dir.remove();
      }
    });
  });
});
