/**
 * Deferred BEGIN in transaction mode: Doorman answers BEGIN / START TRANSACTION itself and takes a server
 * only when the transaction's first statement arrives (sending the BEGIN with its exact options first);
 * COMMIT / ROLLBACK of a transaction that never reached a server are answered without one. What the client
 * sees must still be exactly what PostgreSQL says, so most exchanges run directly against PostgreSQL too.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import {
  MD5_USER,
  RawClient,
  SCRAM_USER,
  all,
  backendActivity,
  fe,
  render,
  startDoorman,
  startPostgres,
  type DoormanConfig,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const DB = 'app';
/** Raw-protocol role (trust on both PostgreSQL and Doorman): pool_size 2 in pool `app`, 1 in pool `single`. */
const RAW = 'begin_raw';
/** pool_size 2 in pool `small`, used only by the idle-transactions test so its backends can be counted. */
const IDLE_USER = MD5_USER;
/** Bound for replies Doorman gives without a server while the only one is busy elsewhere. */
const LOCAL_REPLY_MS = 2_000;

const SETTINGS_SQL =
  "select current_setting('transaction_isolation') as iso, current_setting('transaction_read_only') as ro, current_setting('transaction_deferrable') as df";

/** A transaction-opening text, the command tag PostgreSQL answers it with, and the transaction it opens. */
interface BeginCase {
  sql: string;
  tag: 'BEGIN' | 'START TRANSACTION';
  iso: string;
  ro: 'on' | 'off';
  df: 'on' | 'off';
}

const BEGINS: readonly BeginCase[] = [
  { sql: 'begin', tag: 'BEGIN', iso: 'read committed', ro: 'off', df: 'off' },
  { sql: 'BEGIN;', tag: 'BEGIN', iso: 'read committed', ro: 'off', df: 'off' },
  { sql: 'Begin Transaction', tag: 'BEGIN', iso: 'read committed', ro: 'off', df: 'off' },
  { sql: '  begin work ;  ', tag: 'BEGIN', iso: 'read committed', ro: 'off', df: 'off' },
  { sql: 'START TRANSACTION', tag: 'START TRANSACTION', iso: 'read committed', ro: 'off', df: 'off' },
  { sql: 'START TRANSACTION ISOLATION LEVEL REPEATABLE READ', tag: 'START TRANSACTION', iso: 'repeatable read', ro: 'off', df: 'off' },
  { sql: 'start transaction isolation level read uncommitted, read only;', tag: 'START TRANSACTION', iso: 'read uncommitted', ro: 'on', df: 'off' },
  { sql: 'BEGIN READ ONLY', tag: 'BEGIN', iso: 'read committed', ro: 'on', df: 'off' },
  { sql: 'BEGIN ISOLATION LEVEL SERIALIZABLE', tag: 'BEGIN', iso: 'serializable', ro: 'off', df: 'off' },
  { sql: 'BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE', tag: 'BEGIN', iso: 'serializable', ro: 'on', df: 'on' },
  { sql: 'begin transaction read write isolation level repeatable read not deferrable', tag: 'BEGIN', iso: 'repeatable read', ro: 'off', df: 'off' },
  { sql: 'BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE DEFERRABLE', tag: 'BEGIN', iso: 'serializable', ro: 'off', df: 'on' },
  { sql: 'BEGIN\n\tISOLATION LEVEL\n\tREAD COMMITTED\n', tag: 'BEGIN', iso: 'read committed', ro: 'off', df: 'off' },
  { sql: '/* a comment */ BEGIN READ ONLY', tag: 'BEGIN', iso: 'read committed', ro: 'on', df: 'off' },
];

function doormanConfig(cluster: PgCluster): DoormanConfig {
  const server = { server_host: cluster.host, server_port: cluster.port, server_database: DB, pool_mode: 'transaction' as const };
  return {
    general: {
      host: '127.0.0.1',
      port: 0,
      query_wait_timeout: '30s',
      pg_hba: `host all ${RAW} 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n`,
    },
    pools: {
      app: {
        ...server,
        users: [
          { username: RAW, password: 'unused', pool_size: 2 },
          { username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 5 },
        ],
      },
      single: { ...server, users: [{ username: RAW, password: 'unused', pool_size: 1 }] },
      small: { ...server, users: [{ username: IDLE_USER.user, password: IDLE_USER.password, pool_size: 2 }] },
    },
  };
}

describe('deferred BEGIN (transaction mode)', { timeout: 115_000 }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;

  before(async () => {
    cluster = await startPostgres({
      hba: ['local all all trust', `host all ${RAW} 127.0.0.1/32 trust`, `host all ${IDLE_USER.user} 127.0.0.1/32 md5`, 'host all all 127.0.0.1/32 scram-sha-256', ''].join('\n'),
    });
    await cluster.query(
      [`CREATE ROLE ${RAW} LOGIN;`, `\\connect ${DB}`, 'CREATE TABLE begin_t (k text, v int);', `GRANT ALL ON begin_t TO ${RAW}, ${SCRAM_USER.user}, ${IDLE_USER.user};`, ''].join('\n'),
    );
    doorman = await startDoorman(doormanConfig(cluster));
  });

  after(async () => {
    await doorman?.stop();
    await cluster?.stop();
  });

  function servers(): { pg: PgCluster; doorman: DoormanProcess } {
    assert.ok(cluster && doorman, 'servers did not start');
    return { pg: cluster, doorman };
  }

  /**
   * One raw client's exchange, directly and through Doorman (pool `database`). The direct run must give
   * `expected` (the test's own premise); returns how the Doorman run differs, if it does.
   */
  async function differenceFromDirect(
    body: (c: RawClient) => Promise<string[]>,
    expected: readonly string[],
    database = DB,
    startup: Readonly<Record<string, string>> = {},
  ): Promise<string | null> {
    const s = servers();
    const once = async (port: number, db: string): Promise<string[]> => {
      const c = await RawClient.connect(port, RAW, db, startup);
      try {
        return await body(c);
      } finally {
        await c.end();
      }
    };
    assert.deepEqual(await once(s.pg.port, DB), expected, 'direct PostgreSQL');
    const via = await once(s.doorman.port, database);
    const at = via.findIndex((r, i) => r !== expected[i]);
    if (at < 0 && via.length === expected.length) return null;
    const from = Math.max(0, at - 2);
    return `through Doorman, from reply #${from}: got [${via.slice(from, from + 6).join(' / ')}], PostgreSQL gives [${expected.slice(from, from + 6).join(' / ')}]`;
  }

  async function sameAsDirect(...args: Parameters<typeof differenceFromDirect>): Promise<void> {
    assert.equal(await differenceFromDirect(...args), null);
  }

  /** Runs `check` for every case and fails once, listing every case that failed. */
  async function everyCase<T>(cases: readonly T[], label: (c: T) => string, check: (c: T) => Promise<string | null>): Promise<void> {
    const failures: string[] = [];
    for (const c of cases) {
      const problem = await check(c);
      if (problem !== null) failures.push(`${JSON.stringify(label(c))}: ${problem}`);
    }
    assert.deepEqual(failures, []);
  }

  // -------------------------------------------------------------------------
  test(`${BEGINS.length} BEGIN / START TRANSACTION spellings, simple protocol: PostgreSQL's replies, and the options reach the server`, async () => {
    await everyCase(BEGINS, (b) => b.sql, (b) =>
      differenceFromDirect(
        async (c) => [...(await c.exchange([fe.query(b.sql)])), ...(await c.exchange([fe.query(SETTINGS_SQL)])), ...(await c.exchange([fe.query('COMMIT')]))],
        [`C ${b.tag}`, 'Z T', 'T iso:25,ro:25,df:25', `D ${b.iso}|${b.ro}|${b.df}`, 'C SELECT 1', 'Z T', 'C COMMIT', 'Z I'],
      ),
    );
  });

  test(`${BEGINS.length} BEGIN spellings, extended protocol (Parse/Bind/Describe/Execute/Sync, and in one pipeline with the next statement)`, async () => {
    const extended = (sql: string): Buffer[] => [fe.parse('', sql), fe.bind(''), fe.describe('P', ''), fe.execute(), fe.sync()];
    await everyCase(BEGINS, (b) => b.sql, (b) =>
      differenceFromDirect(
        async (c) => [
          ...(await c.exchange(extended(b.sql))),
          ...(await c.exchange(extended(SETTINGS_SQL))),
          ...(await c.exchange(extended('COMMIT'))),
          // BEGIN and the first statement in one batch: the BEGIN must still come first on the server.
          ...(await c.exchange([fe.parse('', b.sql), fe.bind(''), fe.execute(), fe.parse('s', SETTINGS_SQL), fe.describe('S', 's'), fe.bind('s'), fe.execute(), fe.sync()])),
          ...(await c.exchange([fe.parse('', 'ROLLBACK'), fe.bind(''), fe.execute(), fe.sync()])),
        ],
        [
          '1',
          '2',
          'n',
          `C ${b.tag}`,
          'Z T',
          '1',
          '2',
          'T iso:25,ro:25,df:25',
          `D ${b.iso}|${b.ro}|${b.df}`,
          'C SELECT 1',
          'Z T',
          '1',
          '2',
          'n',
          'C COMMIT',
          'Z I',
          '1',
          '2',
          `C ${b.tag}`,
          '1',
          't ',
          'T iso:25,ro:25,df:25',
          '2',
          `D ${b.iso}|${b.ro}|${b.df}`,
          'C SELECT 1',
          'Z T',
          '1',
          '2',
          'C ROLLBACK',
          'Z I',
        ],
      ),
    );
  });

  test('pg: simple and queryMode extended BEGINs from 40 clients over 5 servers', async () => {
    const { doorman: d } = servers();
    const url = d.connectionString(SCRAM_USER.user, SCRAM_USER.password);
    // pg sends a query with an empty `values` array as a simple Query; only queryMode 'extended' forces Parse/Bind.
    // Wrong command tags are collected so they do not hide whether the transactions themselves work.
    const wrongTags = new Set<string>();
    await all(
      Array.from({ length: 40 }, async (_, i) => {
        const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, query_timeout: 30_000 });
        await client.connect();
        try {
          for (let round = 0; round < 4; round++) {
            const b = BEGINS[(i + round * 3) % BEGINS.length];
            const extended = (i + round) % 2 === 1;
            const begin: pg.QueryConfig & { queryMode?: 'extended' } = extended ? { text: b.sql, queryMode: 'extended' } : { text: b.sql, values: [] };
            const opened = await client.query(begin);
            if (opened.command !== b.tag.split(' ')[0]) wrongTags.add(`${b.sql} (${extended ? 'extended' : 'simple'}): ${String(opened.command)}`);
            const r = await client.query<{ iso: string; ro: string; df: string; n: number }>(`${SETTINGS_SQL}, $1::int as n`, [i * 10 + round]);
            assert.deepEqual(r.rows, [{ iso: b.iso, ro: b.ro, df: b.df, n: i * 10 + round }], `client ${i}: ${b.sql}`);
            if (b.ro === 'off') await client.query('insert into begin_t values ($1, $2)', [`pg-${i}`, round]);
            assert.equal((await client.query(round % 2 === 0 ? 'commit' : 'rollback')).command, round % 2 === 0 ? 'COMMIT' : 'ROLLBACK');
          }
        } finally {
          await client.end();
        }
      }),
    );
    // Only committed rounds of read-write transactions left rows.
    const expected = Array.from({ length: 40 }, (_, i) => [0, 2].filter((round) => BEGINS[(i + round * 3) % BEGINS.length].ro === 'off').length).reduce((a, b) => a + b);
    assert.equal(await servers().pg.query("SELECT count(*) FROM begin_t WHERE k LIKE 'pg-%'", DB), String(expected));
    assert.deepEqual([...wrongTags].sort(), []);
  });

  test('empty transactions, nested BEGIN, COMMIT / END / ROLLBACK / ABORT, AND CHAIN: replies as PostgreSQL gives them', async () => {
    await sameAsDirect(
      async (c) => {
        const out: string[] = [];
        for (const sql of ['BEGIN', 'BEGIN', 'COMMIT', 'begin', 'END', 'begin transaction', 'ABORT', 'begin;', 'rollback work;', 'BEGIN; COMMIT', 'COMMIT']) {
          out.push(...(await c.exchange([fe.query(sql)])));
        }
        out.push(...(await c.exchange([fe.query('BEGIN ISOLATION LEVEL REPEATABLE READ'), fe.query('COMMIT AND CHAIN'), fe.query(SETTINGS_SQL)])));
        out.push(...(await c.exchange([fe.query('ROLLBACK AND CHAIN'), fe.query(SETTINGS_SQL), fe.query('ROLLBACK')])));
        const ext = (sql: string): Buffer[] => [fe.parse('', sql), fe.bind(''), fe.execute()];
        out.push(...(await c.exchange([...ext('BEGIN READ ONLY'), fe.sync(), ...ext('COMMIT'), fe.sync()])));
        out.push(...(await c.exchange([...ext('BEGIN'), ...ext('ROLLBACK'), fe.sync()])));
        return out;
      },
      [
        'C BEGIN',
        'Z T',
        'N 25001 there is already a transaction in progress',
        'C BEGIN',
        'Z T',
        'C COMMIT',
        'Z I',
        'C BEGIN',
        'Z T',
        'C COMMIT',
        'Z I',
        'C BEGIN',
        'Z T',
        'C ROLLBACK',
        'Z I',
        'C BEGIN',
        'Z T',
        'C ROLLBACK',
        'Z I',
        'C BEGIN',
        'C COMMIT',
        'Z I',
        'N 25P01 there is no transaction in progress',
        'C COMMIT',
        'Z I',
        'C BEGIN',
        'Z T',
        'C COMMIT',
        'Z T',
        'T iso:25,ro:25,df:25',
        'D repeatable read|off|off',
        'C SELECT 1',
        'Z T',
        'C ROLLBACK',
        'Z T',
        'T iso:25,ro:25,df:25',
        'D repeatable read|off|off',
        'C SELECT 1',
        'Z T',
        'C ROLLBACK',
        'Z I',
        '1',
        '2',
        'C BEGIN',
        'Z T',
        '1',
        '2',
        'C COMMIT',
        'Z I',
        '1',
        '2',
        'C BEGIN',
        '1',
        '2',
        'C ROLLBACK',
        'Z I',
      ],
    );
  });

  test('a failing first statement leaves the transaction failed (E) as PostgreSQL does; READ ONLY refuses writes with 25006', async () => {
    await sameAsDirect(
      async (c) => {
        const out: string[] = [];
        for (const sql of ['BEGIN', 'select 1/0', 'select 1', 'COMMIT', 'BEGIN READ ONLY', "insert into begin_t values ('ro', 1)", 'ROLLBACK', 'BEGIN', 'selec 1', 'ROLLBACK']) {
          out.push(...(await c.exchange([fe.query(sql)])));
        }
        // Extended: the first statement after BEGIN fails to parse.
        out.push(...(await c.exchange([fe.query('BEGIN ISOLATION LEVEL SERIALIZABLE')])));
        out.push(...(await c.exchange([fe.parse('', 'selec 2'), fe.bind(''), fe.execute(), fe.sync()])));
        out.push(...(await c.exchange([fe.parse('', 'select 3'), fe.bind(''), fe.execute(), fe.sync()])));
        out.push(...(await c.exchange([fe.query('ROLLBACK'), fe.query("select count(*) from begin_t where k = 'ro'")])));
        return out;
      },
      [
        'C BEGIN',
        'Z T',
        'E 22012 division by zero',
        'Z E',
        'E 25P02 current transaction is aborted, commands ignored until end of transaction block',
        'Z E',
        'C ROLLBACK',
        'Z I',
        'C BEGIN',
        'Z T',
        'E 25006 cannot execute INSERT in a read-only transaction',
        'Z E',
        'C ROLLBACK',
        'Z I',
        'C BEGIN',
        'Z T',
        'E 42601 syntax error at or near "selec"',
        'Z E',
        'C ROLLBACK',
        'Z I',
        'C BEGIN',
        'Z T',
        'E 42601 syntax error at or near "selec"',
        'Z E',
        'E 25P02 current transaction is aborted, commands ignored until end of transaction block',
        'Z E',
        'C ROLLBACK',
        'Z I',
        'T count:20',
        'D 0',
        'C SELECT 1',
        'Z I',
      ],
    );
  });

  test('SAVEPOINT as the first statement after BEGIN, ROLLBACK TO, RELEASE; an unknown savepoint fails the transaction', async () => {
    await sameAsDirect(
      async (c) => {
        const out: string[] = [];
        const steps = [
          'BEGIN',
          'SAVEPOINT a',
          'create temp table sp (v int) on commit drop',
          'insert into sp values (1)',
          'SAVEPOINT b',
          'insert into sp values (2)',
          'ROLLBACK TO SAVEPOINT b',
          'insert into sp values (3)',
          'RELEASE SAVEPOINT a',
          "select string_agg(v::text, ',' order by v) from sp",
          'COMMIT',
          'begin read only',
          'ROLLBACK TO SAVEPOINT nope',
          'ROLLBACK',
        ];
        for (const sql of steps) out.push(...(await c.exchange([fe.query(sql)])));
        return out;
      },
      [
        'C BEGIN',
        'Z T',
        'C SAVEPOINT',
        'Z T',
        'C CREATE TABLE',
        'Z T',
        'C INSERT 0 1',
        'Z T',
        'C SAVEPOINT',
        'Z T',
        'C INSERT 0 1',
        'Z T',
        'C ROLLBACK',
        'Z T',
        'C INSERT 0 1',
        'Z T',
        'C RELEASE',
        'Z T',
        'T string_agg:25',
        'D 1,3',
        'C SELECT 1',
        'Z T',
        'C COMMIT',
        'Z I',
        'C BEGIN',
        'Z T',
        'E 3B001 savepoint "nope" does not exist',
        'Z E',
        'C ROLLBACK',
        'Z I',
      ],
    );
  });

  test('session settings meet deferred BEGIN: startup default_transaction_isolation, SET default_transaction_read_only', async () => {
    await sameAsDirect(
      async (c) => {
        const out: string[] = [];
        for (const sql of ['BEGIN', SETTINGS_SQL, 'COMMIT', 'BEGIN ISOLATION LEVEL READ COMMITTED', SETTINGS_SQL, 'COMMIT', 'SET default_transaction_read_only = on', 'begin', SETTINGS_SQL, 'COMMIT', 'BEGIN READ WRITE', SETTINGS_SQL, 'ROLLBACK']) {
          out.push(...(await c.exchange([fe.query(sql)])).filter((r) => !r.startsWith('S')));
        }
        return out;
      },
      [
        'C BEGIN',
        'Z T',
        'T iso:25,ro:25,df:25',
        'D serializable|off|off',
        'C SELECT 1',
        'Z T',
        'C COMMIT',
        'Z I',
        'C BEGIN',
        'Z T',
        'T iso:25,ro:25,df:25',
        'D read committed|off|off',
        'C SELECT 1',
        'Z T',
        'C COMMIT',
        'Z I',
        'C SET',
        'Z I',
        'C BEGIN',
        'Z T',
        'T iso:25,ro:25,df:25',
        'D serializable|on|off',
        'C SELECT 1',
        'Z T',
        'C COMMIT',
        'Z I',
        'C BEGIN',
        'Z T',
        'T iso:25,ro:25,df:25',
        'D serializable|off|off',
        'C SELECT 1',
        'Z T',
        'C ROLLBACK',
        'Z I',
      ],
      DB,
      { options: '-c default_transaction_isolation=serializable' },
    );
  });

  test('an empty transaction completes while the only server is held by another client; the first statement waits for it', async () => {
    const { doorman: d } = servers();
    const holder = await RawClient.connect(d.port, RAW, 'single');
    const client = await RawClient.connect(d.port, RAW, 'single');
    try {
      assert.deepEqual(await holder.exchange([fe.query('BEGIN; select 1 as held')]), ['C BEGIN', 'T held:23', 'D 1', 'C SELECT 1', 'Z T']);
      const ext = (sql: string): Buffer[] => [fe.parse('', sql), fe.bind(''), fe.execute(), fe.sync()];
      const pairs: [Buffer[], Buffer[], string[]][] = [
        [[fe.query('BEGIN')], [fe.query('COMMIT')], ['C BEGIN', 'Z T', 'C COMMIT', 'Z I']],
        [[fe.query('begin;')], [fe.query('ROLLBACK')], ['C BEGIN', 'Z T', 'C ROLLBACK', 'Z I']],
        [[fe.query('BEGIN ISOLATION LEVEL SERIALIZABLE')], [fe.query('END')], ['C BEGIN', 'Z T', 'C COMMIT', 'Z I']],
        [[fe.query('BEGIN TRANSACTION READ ONLY')], [fe.query('abort;')], ['C BEGIN', 'Z T', 'C ROLLBACK', 'Z I']],
        [ext('BEGIN'), ext('COMMIT'), ['1', '2', 'C BEGIN', 'Z T', '1', '2', 'C COMMIT', 'Z I']],
        [ext('BEGIN'), ext('ROLLBACK'), ['1', '2', 'C BEGIN', 'Z T', '1', '2', 'C ROLLBACK', 'Z I']],
      ];
      for (const [begin, end, expected] of pairs) {
        const started = Date.now();
        const got = [...(await client.exchange(begin, LOCAL_REPLY_MS)), ...(await client.exchange(end, LOCAL_REPLY_MS))];
        assert.deepEqual(got, expected);
        assert.ok(Date.now() - started < LOCAL_REPLY_MS, `took ${Date.now() - started} ms`);
      }
      // The first real statement needs the server: it waits until the holder is done.
      assert.deepEqual(await client.exchange([fe.query('BEGIN')], LOCAL_REPLY_MS), ['C BEGIN', 'Z T']);
      client.send(fe.query('select 2 as mine'));
      await assert.rejects(client.untilReady(1, 700), /no 1× ReadyForQuery/);
      assert.deepEqual(await holder.exchange([fe.query('COMMIT')]), ['C COMMIT', 'Z I']);
      assert.deepEqual((await client.untilReady(1)).map(render), ['T mine:23', 'D 2', 'C SELECT 1', 'Z T']);
      assert.deepEqual(await client.exchange([fe.query('COMMIT')]), ['C COMMIT', 'Z I']);
      // A client that leaves inside a deferred transaction leaves nothing behind.
      const leaver = await RawClient.connect(d.port, RAW, 'single');
      assert.deepEqual(await leaver.exchange([fe.query('BEGIN')], LOCAL_REPLY_MS), ['C BEGIN', 'Z T']);
      await leaver.end();
      assert.deepEqual(await holder.exchange([fe.query('select 3 as after')], LOCAL_REPLY_MS), ['T after:23', 'D 3', 'C SELECT 1', 'Z I']);
    } finally {
      await all([holder.end(), client.end()]);
    }
  });

  test('50 pg clients idle after BEGIN hold no server (pool_size 2); another client runs 30 queries meanwhile', async () => {
    const { doorman: d } = servers();
    const url = d.connectionString(IDLE_USER.user, IDLE_USER.password, 'small');
    const connect = async (): Promise<pg.Client> => {
      const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 15_000, query_timeout: 10_000 });
      await c.connect();
      return c;
    };
    // Spellings a pooler must recognise (a leading comment may legitimately be passed through to a server).
    const begins = BEGINS.filter((b) => !b.sql.includes('/*'));
    const idle = await all(Array.from({ length: 50 }, () => connect()));
    const other = await connect();
    try {
      await all(idle.map((c, i) => c.query(begins[i % begins.length].sql)));
      const started = Date.now();
      for (let i = 0; i < 30; i++) {
        const r = await other.query<{ n: number }>('select $1::int * 3 as n', [i]);
        assert.deepEqual(r.rows, [{ n: i * 3 }]);
      }
      assert.ok(Date.now() - started < 5_000, `30 queries took ${Date.now() - started} ms beside 50 idle transactions`);
      const during = await backendActivity(servers().pg, IDLE_USER.user);
      assert.equal(during.idleInTransaction, 0, 'a server sits idle in transaction for a client that only said BEGIN');
      assert.ok(during.total <= 2, `${during.total} server connections for a pool of 2`);

      // Each idle client's transaction now reaches a server, with the options it asked for.
      await all(
        idle.map(async (c, i) => {
          const b = begins[i % begins.length];
          const r = await c.query<{ iso: string; ro: string; df: string; n: number }>(`${SETTINGS_SQL}, $1::int as n`, [i]);
          assert.deepEqual(r.rows, [{ iso: b.iso, ro: b.ro, df: b.df, n: i }], b.sql);
          await c.query('commit');
        }),
      );
      assert.equal((await backendActivity(servers().pg, IDLE_USER.user)).idleInTransaction, 0);
    } finally {
      await all([...idle, other].map((c) => c.end()));
    }
  });
});
