/**
 * Transparent prepared statements in transaction mode: every client keeps its own statement names while
 * Doorman maps each Parse onto statements prepared on whichever server runs the client's transaction.
 * Single-client exchanges are run directly against PostgreSQL too, so "as on a direct connection" is
 * checked literally; cross-client cases assert the values a direct connection would give.
 *
 * Raw protocol throughout (drivers hide what Doorman synthesizes), with `trust` roles so no SCRAM is needed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  RawClient,
  all,
  fe,
  startDoorman,
  startPostgres,
  type DoormanConfig,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const DB = 'prep';
/** pool_size 2 in pool `prep` and in pool `prep2` (same PostgreSQL database). */
const ROLE_A = 'prep_a';
/** pool_size 1: every transaction of this role runs on the same server connection. */
const ROLE_B = 'prep_b';
/** PostgreSQL logs every statement of this role (log_min_duration_statement = 0), so Parses can be counted. */
const ROLE_LOG = 'prep_log';
/** Name of the per-server statement limit in Doorman's general section. */
const MAX_PREPARED_KEY = 'max_prepared_statements';
const EVICTION_LIMIT = 3;

/** Bind (unnamed portal), Execute and Sync of a prepared statement. */
function run(statement: string, params: readonly (string | null)[] = []): Buffer[] {
  return [fe.bind(statement, params), fe.execute(), fe.sync()];
}

/** PostgreSQL's answer to a statement in an aborted transaction block, and its ReadyForQuery. */
const ABORTED = ['E 25P02 current transaction is aborted, commands ignored until end of transaction block', 'Z E'];

async function withClient<T>(port: number, user: string, body: (c: RawClient) => Promise<T>, database = DB): Promise<T> {
  const c = await RawClient.connect(port, user, database);
  try {
    return await body(c);
  } finally {
    await c.end();
  }
}

// ---------------------------------------------------------------------------

function doormanConfig(cluster: PgCluster, general: Record<string, unknown> = {}): DoormanConfig {
  const user = (username: string, poolSize: number): { username: string; password: string; pool_size: number } => ({ username, password: 'unused', pool_size: poolSize });
  const server = { server_host: cluster.host, server_port: cluster.port, server_database: DB, pool_mode: 'transaction' as const };
  return {
    // One worker shard: these tests assert which backend serves a client (worker shards are covered in workers.test.ts).
    general: { host: '127.0.0.1', port: 0, workers: 1, pg_hba: 'host all all 127.0.0.1/32 trust\n', ...general },
    pools: {
      [DB]: { ...server, users: [user(ROLE_A, 2), user(ROLE_B, 1), user(ROLE_LOG, 2)] },
      prep2: { ...server, users: [user(ROLE_A, 2)] },
    },
  };
}

describe('transparent prepared statements (transaction mode)', { timeout: 115_000 }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;
  let evicting: DoormanProcess | undefined;
  let evictingError = '';

  before(async () => {
    const trusted = [ROLE_A, ROLE_B, ROLE_LOG].map((r) => `host all ${r} 127.0.0.1/32 trust`);
    cluster = await startPostgres({ hba: ['local all all trust', ...trusted, 'host all all 127.0.0.1/32 scram-sha-256', ''].join('\n') });
    await cluster.query(
      [
        ...[ROLE_A, ROLE_B, ROLE_LOG].map((r) => `CREATE ROLE ${r} LOGIN;`),
        `ALTER ROLE ${ROLE_LOG} SET log_min_duration_statement = 0;`,
        `CREATE DATABASE ${DB};`,
        `\\connect ${DB}`,
        // Same table name in each role's own schema ("$user" leads search_path): one text, two meanings.
        ...[ROLE_A, ROLE_B].flatMap((r) => [
          `CREATE SCHEMA ${r} AUTHORIZATION ${r};`,
          `CREATE TABLE ${r}.t (v text);`,
          `INSERT INTO ${r}.t VALUES ('row of ${r}');`,
          `ALTER TABLE ${r}.t OWNER TO ${r};`,
        ]),
        '',
      ].join('\n'),
    );
    doorman = await startDoorman(doormanConfig(cluster));
    evicting = await startDoorman(doormanConfig(cluster, { [MAX_PREPARED_KEY]: EVICTION_LIMIT })).catch((err: unknown) => {
      // Only the eviction test needs this one; it reports the reason.
      evictingError = err instanceof Error ? err.message : String(err);
      return undefined;
    });
  });

  after(async () => {
    await Promise.all([doorman?.stop(), evicting?.stop()]);
    await cluster?.stop();
  });

  function servers(): { pg: PgCluster; doorman: DoormanProcess } {
    assert.ok(cluster && doorman, 'servers did not start');
    return { pg: cluster, doorman };
  }

  /**
   * Runs one client's exchange directly and through Doorman: both must give `expected`
   * (the direct run checks the test's own premise).
   */
  async function sameAsDirect(user: string, body: (c: RawClient) => Promise<string[]>, expected: readonly string[]): Promise<void> {
    const s = servers();
    assert.deepEqual(await withClient(s.pg.port, user, body), expected, 'direct PostgreSQL');
    assert.deepEqual(await withClient(s.doorman.port, user, body), expected, 'through Doorman');
  }

  // -------------------------------------------------------------------------
  test('one named statement, 8 clients over 2 servers, 10 transactions each; PostgreSQL parses it at most once per server', async () => {
    const { pg: direct, doorman: d } = servers();
    const sql = 'select $1::int * 100 + $2::int as v /* parse-count */';
    await all(
      Array.from({ length: 8 }, (_, i) =>
        withClient(d.port, ROLE_LOG, async (c) => {
          assert.deepEqual(await c.exchange([fe.parse('q', sql), fe.sync()]), ['1', 'Z I']);
          for (let round = 0; round < 10; round++) {
            const describe = round % 3 === 0 ? [fe.describe('S', 'q')] : [];
            const got = await c.exchange([...describe, ...run('q', [String(i), String(round)])]);
            assert.deepEqual(got, [...(describe.length > 0 ? ['t 23,23', 'T v:23'] : []), '2', `D ${i * 100 + round}`, 'C SELECT 1', 'Z I'], `client ${i} round ${round}`);
          }
          // The same text under a second name is the same server statement: no further Parse either.
          assert.deepEqual(await c.exchange([fe.parse('q_again', sql), ...run('q_again', [String(i), '99'])]), ['1', '2', `D ${i * 100 + 99}`, 'C SELECT 1', 'Z I']);
        }),
      ),
    );
    // PostgreSQL's log flushes line by line; give the last lines a moment.
    await sleep(500);
    const parses = direct
      .output(2000)
      .split('\n')
      .filter((line) => line.includes('parse-count') && /\bparse [^:]+: select/.test(line));
    const pids = new Set(parses.map((line) => /\[(\d+)\]/.exec(line)?.[1]));
    assert.ok(parses.length >= 1, `no Parse of the statement reached PostgreSQL:\n${direct.output(30)}`);
    assert.equal(parses.length, pids.size, `a server parsed the statement twice:\n${parses.join('\n')}`);
    assert.ok(pids.size <= 2, `parsed on ${pids.size} servers of a pool of 2:\n${parses.join('\n')}`);
  });

  test('Bind or Describe of an unknown statement: 26000, skipped to Sync, then the client goes on', async () => {
    await sameAsDirect(
      ROLE_A,
      async (c) => [
        ...(await c.exchange(run('nope'))),
        ...(await c.exchange([fe.parse('', 'select 1 as one'), ...run('')])),
        // One write: an error in the first batch, the unknown name never prepared because skipped, later batches fine.
        ...(await c.exchange([
          fe.parse('ok', 'select 2 as two'),
          fe.bind('nope'),
          fe.execute(),
          fe.parse('never', 'select 3 as three'),
          fe.sync(),
          ...run('ok'),
          ...run('never'),
          fe.describe('S', 'nope'),
          fe.sync(),
        ])),
      ],
      [
        'E 26000 prepared statement "nope" does not exist',
        'Z I',
        '1',
        '2',
        'D 1',
        'C SELECT 1',
        'Z I',
        '1',
        'E 26000 prepared statement "nope" does not exist',
        'Z I',
        '2',
        'D 2',
        'C SELECT 1',
        'Z I',
        'E 26000 prepared statement "never" does not exist',
        'Z I',
        'E 26000 prepared statement "nope" does not exist',
        'Z I',
      ],
    );
    // A fresh client has no unnamed statement either.
    await sameAsDirect(ROLE_A, (c) => c.exchange(run('')), ['E 26000 unnamed prepared statement does not exist', 'Z I']);
  });

  test('duplicate named Parse: 42P05 in a later transaction and within one batch; the first text stays', async () => {
    await sameAsDirect(
      ROLE_A,
      async (c) => [
        ...(await c.exchange([fe.parse('dup', 'select 1 as first'), fe.sync()])),
        ...(await c.exchange([fe.parse('dup', 'select 2 as second'), ...run('dup')])),
        ...(await c.exchange([fe.parse('d2', 'select 3 as third'), fe.parse('d2', 'select 3 as third'), fe.sync()])),
        ...(await c.exchange([fe.describe('S', 'dup'), ...run('dup'), ...run('d2')])),
        // The unnamed statement may be replaced at will.
        ...(await c.exchange([fe.parse('', 'select 4 as u'), fe.parse('', 'select 5 as u'), ...run('')])),
      ],
      [
        '1',
        'Z I',
        'E 42P05 prepared statement "dup" already exists',
        'Z I',
        '1',
        'E 42P05 prepared statement "d2" already exists',
        'Z I',
        't ',
        'T first:23',
        '2',
        'D 1',
        'C SELECT 1',
        'Z I',
        '2',
        'D 3',
        'C SELECT 1',
        'Z I',
        '1',
        '1',
        '2',
        'D 5',
        'C SELECT 1',
        'Z I',
      ],
    );
  });

  test('Close, then Parse of the same name with another text; Close of an unknown name is no error', async () => {
    await sameAsDirect(
      ROLE_A,
      async (c) => [
        ...(await c.exchange([fe.parse('c', 'select 1 as one'), ...run('c')])),
        ...(await c.exchange([fe.close('S', 'c'), fe.sync()])),
        ...(await c.exchange(run('c'))),
        ...(await c.exchange([fe.parse('c', 'select 2 as two'), fe.describe('S', 'c'), ...run('c')])),
        ...(await c.exchange([fe.close('S', 'c'), fe.parse('c', 'select 3 as three'), ...run('c')])),
        ...(await c.exchange([fe.close('S', 'never_prepared'), fe.close('P', 'no_portal'), fe.sync()])),
      ],
      [
        '1',
        '2',
        'D 1',
        'C SELECT 1',
        'Z I',
        '3',
        'Z I',
        'E 26000 prepared statement "c" does not exist',
        'Z I',
        '1',
        't ',
        'T two:23',
        '2',
        'D 2',
        'C SELECT 1',
        'Z I',
        '3',
        '1',
        '2',
        'D 3',
        'C SELECT 1',
        'Z I',
        '3',
        '3',
        'Z I',
      ],
    );
  });

  test('DEALLOCATE name / DEALLOCATE ALL / DISCARD ALL drop the client\'s statements; re-preparing works', async () => {
    await sameAsDirect(
      ROLE_A,
      async (c) => [
        ...(await c.exchange([fe.parse('a', 'select 1 as a'), fe.parse('b', 'select 2 as b'), fe.sync()])),
        ...(await c.exchange([fe.query('DEALLOCATE a')])),
        ...(await c.exchange(run('a'))),
        ...(await c.exchange(run('b'))),
        ...(await c.exchange([fe.query('deallocate prepare b;')])),
        ...(await c.exchange(run('b'))),
        ...(await c.exchange([fe.query('DEALLOCATE zzz')])),
        ...(await c.exchange([fe.parse('a', 'select 10 as a'), fe.parse('b', 'select 20 as b'), ...run('a')])),
        ...(await c.exchange([fe.query('DEALLOCATE ALL')])),
        ...(await c.exchange([...run('a'), ...run('b')])),
        ...(await c.exchange([fe.parse('a', 'select 100 as a'), ...run('a')])),
        // Inside a transaction block DISCARD ALL fails and nothing is dropped.
        ...(await c.exchange([fe.query('BEGIN'), fe.query('DISCARD ALL'), fe.query('ROLLBACK')])),
        ...(await c.exchange(run('a'))),
        ...(await c.exchange([fe.query('DISCARD ALL')])),
        ...(await c.exchange(run('a'))),
        ...(await c.exchange([fe.parse('a', 'select 1000 as a'), ...run('a')])),
      ],
      [
        '1',
        '1',
        'Z I',
        'C DEALLOCATE',
        'Z I',
        'E 26000 prepared statement "a" does not exist',
        'Z I',
        '2',
        'D 2',
        'C SELECT 1',
        'Z I',
        'C DEALLOCATE',
        'Z I',
        'E 26000 prepared statement "b" does not exist',
        'Z I',
        'E 26000 prepared statement "zzz" does not exist',
        'Z I',
        '1',
        '1',
        '2',
        'D 10',
        'C SELECT 1',
        'Z I',
        'C DEALLOCATE ALL',
        'Z I',
        'E 26000 prepared statement "a" does not exist',
        'Z I',
        'E 26000 prepared statement "b" does not exist',
        'Z I',
        '1',
        '2',
        'D 100',
        'C SELECT 1',
        'Z I',
        'C BEGIN',
        'Z T',
        'E 25001 DISCARD ALL cannot run inside a transaction block',
        'Z E',
        'C ROLLBACK',
        'Z I',
        '2',
        'D 100',
        'C SELECT 1',
        'Z I',
        'C DISCARD ALL',
        'Z I',
        'E 26000 prepared statement "a" does not exist',
        'Z I',
        '1',
        '2',
        'D 1000',
        'C SELECT 1',
        'Z I',
      ],
    );
  });

  test('DEALLOCATE name / DEALLOCATE ALL sent over the extended protocol drop the client\'s statements', async () => {
    await sameAsDirect(
      ROLE_A,
      async (c) => [
        ...(await c.exchange([fe.parse('a', 'select 1 as a'), fe.parse('', 'DEALLOCATE a'), ...run(''), ...run('a')])),
        ...(await c.exchange([fe.parse('a', 'select 2 as a'), fe.parse('b', 'select 3 as b'), fe.parse('', 'deallocate all'), ...run(''), ...run('a'), ...run('b')])),
        ...(await c.exchange([fe.parse('a', 'select 4 as a'), ...run('a')])),
      ],
      [
        '1',
        '1',
        '2',
        'C DEALLOCATE',
        'Z I',
        'E 26000 prepared statement "a" does not exist',
        'Z I',
        '1',
        '1',
        '1',
        '2',
        'C DEALLOCATE ALL',
        'Z I',
        'E 26000 prepared statement "a" does not exist',
        'Z I',
        'E 26000 prepared statement "b" does not exist',
        'Z I',
        '1',
        '2',
        'D 4',
        'C SELECT 1',
        'Z I',
      ],
    );
  });

  test('extended DEALLOCATE: a quoted name and Describe of the portal, a missing name run twice, a skipped one, an aborted transaction', async () => {
    await sameAsDirect(
      ROLE_A,
      async (c) => [
        ...(await c.exchange([fe.parse('Mixed', 'select 5 as m'), fe.parse('', 'deallocate prepare "Mixed"'), fe.bind(''), fe.describe('P', ''), fe.execute(), fe.sync()])),
        ...(await c.exchange(run('Mixed'))),
        ...(await c.exchange([fe.parse('', 'DEALLOCATE nothing_here'), ...run(''), ...run('')])),
        // The division fails first (at Bind: the constant is folded when planning), so PostgreSQL skips the
        // DEALLOCATE and j stays.
        ...(await c.exchange([fe.parse('j', 'select 7 as j'), fe.parse('', 'select 1/0'), fe.bind(''), fe.execute(), fe.parse('', 'deallocate j'), fe.bind(''), fe.execute(), fe.sync()])),
        ...(await c.exchange(run('j'))),
        ...(await c.exchange([fe.query('BEGIN')])),
        ...(await c.exchange([fe.query('select 1/0')])),
        ...(await c.exchange([fe.parse('', 'deallocate j'), ...run('')])),
        ...(await c.exchange([fe.query('ROLLBACK')])),
        ...(await c.exchange(run('j'))),
        ...(await c.exchange([fe.parse('', 'deallocate j'), ...run(''), ...run('j')])),
      ],
      [
        '1',
        '1',
        '2',
        'n',
        'C DEALLOCATE',
        'Z I',
        'E 26000 prepared statement "Mixed" does not exist',
        'Z I',
        '1',
        '2',
        'E 26000 prepared statement "nothing_here" does not exist',
        'Z I',
        '2',
        'E 26000 prepared statement "nothing_here" does not exist',
        'Z I',
        '1',
        '1',
        'E 22012 division by zero',
        'Z I',
        '2',
        'D 7',
        'C SELECT 1',
        'Z I',
        'C BEGIN',
        'Z T',
        'E 22012 division by zero',
        'Z E',
        ...ABORTED,
        'C ROLLBACK',
        'Z I',
        '2',
        'D 7',
        'C SELECT 1',
        'Z I',
        '1',
        '2',
        'C DEALLOCATE',
        'Z I',
        'E 26000 prepared statement "j" does not exist',
        'Z I',
      ],
    );
  });

  test('DEALLOCATE ALL and DISCARD ALL pipelined before more Parses: what is prepared after them stays', async () => {
    await sameAsDirect(
      ROLE_A,
      async (c) => [
        ...(await c.exchange([fe.parse('a', 'select 1 as a'), fe.parse('', 'deallocate all'), fe.bind(''), fe.execute(), fe.parse('b', 'select 2 as b'), fe.sync()])),
        ...(await c.exchange([...run('b'), ...run('a')])),
        ...(await c.exchange([fe.query('DISCARD ALL'), fe.parse('c', 'select 3 as c'), fe.sync()])),
        ...(await c.exchange([...run('c'), ...run('b')])),
      ],
      [
        '1',
        '1',
        '2',
        'C DEALLOCATE ALL',
        '1',
        'Z I',
        '2',
        'D 2',
        'C SELECT 1',
        'Z I',
        'E 26000 prepared statement "a" does not exist',
        'Z I',
        'C DISCARD ALL',
        'Z I',
        '1',
        'Z I',
        '2',
        'D 3',
        'C SELECT 1',
        'Z I',
        'E 26000 prepared statement "b" does not exist',
        'Z I',
      ],
    );
  });

  test('DEALLOCATE ALL / DISCARD ALL / Close by one client do not drop what another client prepared on the same server', async () => {
    const { doorman: d } = servers();
    // pool_size 1: both clients always run on the one server connection.
    const owner = await RawClient.connect(d.port, ROLE_B, DB);
    const other = await RawClient.connect(d.port, ROLE_B, DB);
    try {
      const sql = 'select 42 as shared';
      assert.deepEqual(await owner.exchange([fe.parse('mine', sql), ...run('mine')]), ['1', '2', 'D 42', 'C SELECT 1', 'Z I']);
      for (const drop of [[fe.close('S', 'theirs'), fe.sync()], [fe.query('DEALLOCATE theirs')], [fe.query('DEALLOCATE ALL')], [fe.query('DISCARD ALL')]]) {
        const dropped = await other.exchange([fe.parse('theirs', sql), ...run('theirs'), ...drop]);
        assert.deepEqual(dropped.slice(0, 5), ['1', '2', 'D 42', 'C SELECT 1', 'Z I']);
        assert.equal(dropped.at(-1), 'Z I');
        assert.deepEqual(dropped.filter((r) => r.startsWith('E ')), []);
        assert.deepEqual(await other.exchange(run('theirs')), ['E 26000 prepared statement "theirs" does not exist', 'Z I']);
        assert.deepEqual(await owner.exchange(run('mine')), ['2', 'D 42', 'C SELECT 1', 'Z I'], `after ${dropped.join(' ')}`);
      }
    } finally {
      await Promise.all([owner.end(), other.end()]);
    }
  });

  test('errors in a pipeline (bad SQL, runtime error, several Syncs) keep the statement maps right', async () => {
    const { doorman: d } = servers();
    // Another client leaves "select 1 as held" prepared on the only server of this pool (pool_size 1), so
    // Doorman could answer the skipped Parse itself; PostgreSQL skips it, and so must Doorman.
    await withClient(d.port, ROLE_B, async (c) => {
      assert.deepEqual(await c.exchange([fe.parse('h', 'select 1 as held'), ...run('h')]), ['1', '2', 'D 1', 'C SELECT 1', 'Z I']);
      const body = async (client: RawClient): Promise<string[]> => [
        ...(await client.exchange([
          fe.parse('good', 'select 11 as good'),
          fe.parse('bad', 'selec 1'),
          fe.parse('held', 'select 1 as held'),
          ...run('good'),
          ...run('held'),
          ...run('good'),
          fe.parse('bad', 'select 12 as bad'),
          ...run('bad'),
          fe.parse('div', 'select 10 / $1::int as q'),
          fe.bind('div', ['0']),
          fe.execute(),
          fe.parse('held', 'select 1 as held'),
          fe.sync(),
          ...run('div', ['5']),
          ...run('held'),
          fe.parse('held', 'select 1 as held'),
          ...run('held'),
        ])),
      ];
      const expected = [
        '1',
        'E 42601 syntax error at or near "selec"',
        'Z I',
        'E 26000 prepared statement "held" does not exist',
        'Z I',
        '2',
        'D 11',
        'C SELECT 1',
        'Z I',
        '1',
        '2',
        'D 12',
        'C SELECT 1',
        'Z I',
        '1',
        'E 22012 division by zero',
        'Z I',
        '2',
        'D 2',
        'C SELECT 1',
        'Z I',
        'E 26000 prepared statement "held" does not exist',
        'Z I',
        '1',
        '2',
        'D 1',
        'C SELECT 1',
        'Z I',
      ];
      assert.deepEqual(await withClient(servers().pg.port, ROLE_B, body), expected, 'direct PostgreSQL');
      assert.deepEqual(await withClient(d.port, ROLE_B, body), expected, 'through Doorman');
      assert.deepEqual(await c.exchange(run('h')), ['2', 'D 1', 'C SELECT 1', 'Z I']);
    });
  });

  test('a statement prepared on one server is used after the client\'s next transaction runs on the other', async () => {
    const { doorman: d } = servers();
    const [client, x, y] = await all([RawClient.connect(d.port, ROLE_A, DB), RawClient.connect(d.port, ROLE_A, DB), RawClient.connect(d.port, ROLE_A, DB)]);
    const pidIn = async (c: RawClient): Promise<number> => Number((await c.rows('BEGIN; select pg_backend_pid()'))[0][0]);
    try {
      // Open both server connections of the pool (pool_size 2).
      const both = new Set([await pidIn(x), await pidIn(y)]);
      assert.equal(both.size, 2);
      await all([x.rows('COMMIT'), y.rows('COMMIT')]);

      const first = await client.exchange([fe.parse('where', 'select pg_backend_pid() as pid, $1::int as n'), ...run('where', ['1'])]);
      assert.equal(first.length, 5, first.join(' / '));
      const home = Number(first[2].slice(2).split('|')[0]);
      assert.ok(both.has(home));

      // Hold the server the statement was prepared on, so the client's next transaction gets the other one.
      let holder = x;
      if ((await pidIn(x)) !== home) {
        assert.equal(await pidIn(y), home);
        await x.rows('COMMIT');
        holder = y;
      }
      for (let n = 2; n <= 4; n++) {
        const got = await client.exchange([fe.describe('S', 'where'), ...run('where', [String(n)])]);
        assert.deepEqual([...got.slice(0, 3), ...got.slice(4)], ['t 23', 'T pid:23,n:23', '2', 'C SELECT 1', 'Z I'], got.join(' / '));
        const [pid, value] = got[3].slice(2).split('|').map(Number);
        assert.notEqual(pid, home, 'ran on the server that is held by another client');
        assert.ok(both.has(pid));
        assert.equal(value, n);
      }
      await holder.rows('COMMIT');
      // Both servers now know the statement (or learn it again): it keeps working wherever it runs.
      for (let n = 5; n <= 10; n++) {
        const got = await client.exchange(run('where', [String(n)]));
        assert.equal(got[1].split('|')[1], String(n), got.join(' / '));
      }
    } finally {
      await all([client.end(), x.end(), y.end()]);
    }
  });

  test('two pools and two users: same names and texts, each client sees only its own statements and its own tables', async () => {
    const { doorman: d } = servers();
    const sql = 'select v, current_user::text as who from t';
    const clients = [
      { user: ROLE_A, db: DB, expect: `D row of ${ROLE_A}|${ROLE_A}` },
      { user: ROLE_A, db: 'prep2', expect: `D row of ${ROLE_A}|${ROLE_A}` },
      { user: ROLE_B, db: DB, expect: `D row of ${ROLE_B}|${ROLE_B}` },
    ];
    await all(
      clients.map(({ user, db, expect }, i) =>
        withClient(
          d.port,
          user,
          async (c) => {
            assert.deepEqual(await c.exchange([fe.parse('s', sql), fe.parse(`only_${i}`, 'select 1'), fe.sync()]), ['1', '1', 'Z I']);
            for (let round = 0; round < 10; round++) {
              assert.deepEqual(await c.exchange(run('s')), ['2', expect, 'C SELECT 1', 'Z I'], `${user}@${db} round ${round}`);
              // Names another client prepared do not exist here.
              const foreign = `only_${(i + 1 + (round % 2)) % clients.length}`;
              assert.deepEqual(await c.exchange(run(foreign)), [`E 26000 prepared statement "${foreign}" does not exist`, 'Z I']);
            }
          },
          db,
        ),
      ),
    );
  });

  test('the unnamed statement lasts across Syncs until the next unnamed Parse or simple query', async () => {
    await sameAsDirect(
      ROLE_A,
      async (c) => [
        ...(await c.exchange([fe.parse('', 'select $1::int + 1 as next'), fe.sync()])),
        ...(await c.exchange(run('', ['1']))),
        ...(await c.exchange([...run('', ['2']), ...run('', ['3'])])),
        ...(await c.exchange([fe.parse('', 'select $1::text as t'), ...run('', ['x'])])),
        ...(await c.exchange(run('', ['y']))),
        // A simple query destroys the unnamed statement, even one that only opens a transaction.
        ...(await c.exchange([fe.query('BEGIN'), ...run('', ['z']), fe.query('ROLLBACK')])),
      ],
      [
        '1',
        'Z I',
        '2',
        'D 2',
        'C SELECT 1',
        'Z I',
        '2',
        'D 3',
        'C SELECT 1',
        'Z I',
        '2',
        'D 4',
        'C SELECT 1',
        'Z I',
        '1',
        '2',
        'D x',
        'C SELECT 1',
        'Z I',
        '2',
        'D y',
        'C SELECT 1',
        'Z I',
        'C BEGIN',
        'Z T',
        'E 26000 unnamed prepared statement does not exist',
        'Z E',
        'C ROLLBACK',
        'Z I',
      ],
    );
  });

  test(`${MAX_PREPARED_KEY}: ${EVICTION_LIMIT}: statements prepared again in an aborted transaction, pipelined; all of them run after ROLLBACK`, async () => {
    assert.ok(evicting, `Doorman with ${MAX_PREPARED_KEY}: ${EVICTION_LIMIT} did not start: ${evictingError}`);
    const texts = ['select 1 as a', 'select 2 as b', 'select 3 as c', 'select 4 as d', 'select 5 as e'];
    const body = async (c: RawClient): Promise<string[]> => [
      ...(await c.exchange([fe.query('BEGIN')])),
      // Five statements on a server that keeps three: e0 and e1 go; the DEALLOCATE leaves room for one.
      ...(await c.exchange([...texts.map((t, i) => fe.parse(`e${i}`, t)), fe.sync()])),
      ...(await c.exchange([fe.query('DEALLOCATE e4')])),
      ...(await c.exchange([fe.query('select 1/0')])),
      // e0 is prepared again first thing in its batch, which fails (25P02): the last batch, which would close
      // e0 to make room for e1, fails before that Close, so e0 must not count as held afterwards.
      ...(await c.exchange([...run('e0'), ...run('e2'), ...run('e3'), fe.bind('nope'), ...run('e1')])),
      ...(await c.exchange([fe.query('ROLLBACK')])),
      ...(await c.exchange(texts.slice(0, 4).flatMap((_, i) => run(`e${i}`)))),
    ];
    const expected = [
      'C BEGIN',
      'Z T',
      ...texts.map(() => '1'),
      'Z T',
      'C DEALLOCATE',
      'Z T',
      'E 22012 division by zero',
      'Z E',
      ...ABORTED,
      ...ABORTED,
      ...ABORTED,
      'E 26000 prepared statement "nope" does not exist',
      'Z E',
      'C ROLLBACK',
      'Z I',
      ...texts.slice(0, 4).flatMap((_, i) => ['2', `D ${i + 1}`, 'C SELECT 1', 'Z I']),
    ];
    assert.deepEqual(await withClient(servers().pg.port, ROLE_A, body), expected, 'direct PostgreSQL');
    assert.deepEqual(await withClient(evicting.port, ROLE_A, body), expected, 'through Doorman');
  });

  test(`${MAX_PREPARED_KEY}: ${EVICTION_LIMIT}: in an aborted transaction, statements the server lost fail and describe as in PostgreSQL`, async () => {
    assert.ok(evicting, `Doorman with ${MAX_PREPARED_KEY}: ${EVICTION_LIMIT} did not start: ${evictingError}`);
    const texts = ['select $1::int as a', 'deallocate all', 'select 2', 'select 3', 'select 4'];
    const body = async (c: RawClient): Promise<string[]> => [
      ...(await c.exchange([fe.query('BEGIN')])),
      // The server keeps three: e0 and e1 go.
      ...(await c.exchange([...texts.map((t, i) => fe.parse(`e${i}`, t)), fe.sync()])),
      ...(await c.exchange([fe.query('select 1/0')])),
      // PostgreSQL counts the parameters before it looks at the transaction; preparing e0 again would fail first.
      ...(await c.exchange(run('e0'))),
      // A statement that returns no rows is described even in an aborted transaction.
      ...(await c.exchange([fe.describe('S', 'e1'), fe.sync()])),
      ...(await c.exchange([fe.query('ROLLBACK')])),
    ];
    const expected = [
      'C BEGIN',
      'Z T',
      ...texts.map(() => '1'),
      'Z T',
      'E 22012 division by zero',
      'Z E',
      'E 08P01 bind message supplies 0 parameters, but prepared statement "e0" requires 1',
      'Z E',
      't ',
      'n',
      'Z E',
      'C ROLLBACK',
      'Z I',
    ];
    assert.deepEqual(await withClient(servers().pg.port, ROLE_A, body), expected, 'direct PostgreSQL');
    assert.deepEqual(await withClient(evicting.port, ROLE_A, body), expected, 'through Doorman');
  });

  test('a Bind with the wrong number of parameters: the error names the client\'s statement', async () => {
    await sameAsDirect(
      ROLE_A,
      async (c) => [...(await c.exchange([fe.parse('w', 'select $1::int as w'), ...run('w')])), ...(await c.exchange([fe.parse('', 'select 1'), ...run('', ['1'])]))],
      [
        '1',
        'E 08P01 bind message supplies 0 parameters, but prepared statement "w" requires 1',
        'Z I',
        '1',
        'E 08P01 bind message supplies 1 parameters, but prepared statement "" requires 0',
        'Z I',
      ],
    );
  });

  test('after ALTER TABLE changes a statement\'s result type, the old name fails with 0A000 and the text prepared again works', async () => {
    const text = 'select * from result_type';
    await sameAsDirect(
      ROLE_B,
      async (c) => [
        ...(await c.exchange([fe.query('create table result_type (a int); insert into result_type values (1)')])),
        ...(await c.exchange([fe.parse('before', text), ...run('before')])),
        ...(await c.exchange([fe.query('alter table result_type add column b int default 7')])),
        ...(await c.exchange(run('before'))),
        // What asyncpg and pgjdbc do on that error: prepare the text again under a new name.
        ...(await c.exchange([fe.parse('after', text), ...run('after')])),
        ...(await c.exchange([fe.parse('', text), ...run('')])),
        ...(await c.exchange([fe.query('drop table result_type')])),
      ],
      [
        'C CREATE TABLE', 'C INSERT 0 1', 'Z I',
        '1', '2', 'D 1', 'C SELECT 1', 'Z I',
        'C ALTER TABLE', 'Z I',
        'E 0A000 cached plan must not change result type', 'Z I',
        '1', '2', 'D 1|7', 'C SELECT 1', 'Z I',
        '1', '2', 'D 1|7', 'C SELECT 1', 'Z I',
        'C DROP TABLE', 'Z I',
      ],
    );
  });

  test(`after a 0A000, the old name still fails on a server that lost the statement (${MAX_PREPARED_KEY}: ${EVICTION_LIMIT})`, async () => {
    assert.ok(evicting, `Doorman with ${MAX_PREPARED_KEY}: ${EVICTION_LIMIT} did not start: ${evictingError}`);
    const text = 'select * from result_type_lost';
    const others = Array.from({ length: EVICTION_LIMIT }, (_, k) => `select ${k} as other /* pushes the old statement out */`);
    const body = async (c: RawClient): Promise<string[]> => [
      ...(await c.exchange([fe.query('create table result_type_lost (a int); insert into result_type_lost values (1)')])),
      ...(await c.exchange([fe.parse('before', text), ...run('before')])),
      ...(await c.exchange([fe.query('alter table result_type_lost add column b int default 7')])),
      ...(await c.exchange(run('before'))),
      // Through Doorman the one server connection (pool_size 1) now closes the old statement to make room.
      ...(await c.exchange(others.flatMap((o, k) => [fe.parse(`o${k}`, o), ...run(`o${k}`)]))),
      ...(await c.exchange(run('before'))),
      ...(await c.exchange([fe.parse('after', text), ...run('after')])),
      ...(await c.exchange([fe.query('drop table result_type_lost')])),
    ];
    const expected = [
      'C CREATE TABLE', 'C INSERT 0 1', 'Z I',
      '1', '2', 'D 1', 'C SELECT 1', 'Z I',
      'C ALTER TABLE', 'Z I',
      'E 0A000 cached plan must not change result type', 'Z I',
      ...others.flatMap((_, k) => ['1', '2', `D ${k}`, 'C SELECT 1', 'Z I']),
      'E 0A000 cached plan must not change result type', 'Z I',
      '1', '2', 'D 1|7', 'C SELECT 1', 'Z I',
      'C DROP TABLE', 'Z I',
    ];
    assert.deepEqual(await withClient(servers().pg.port, ROLE_B, body), expected, 'direct PostgreSQL');
    assert.deepEqual(await withClient(evicting.port, ROLE_B, body), expected, 'through Doorman');
  });

  test('clients with another search_path in their startup options share no statement: one server, one text, each its own table', async () => {
    const s = servers();
    await s.pg.query(`CREATE SCHEMA other AUTHORIZATION ${ROLE_B}; CREATE TABLE other.t (x int, y int); INSERT INTO other.t VALUES (1, 2); ALTER TABLE other.t OWNER TO ${ROLE_B};`, DB);
    const turn = async (c: RawClient, name: string): Promise<string[]> => c.exchange([fe.parse(name, 'select * from t'), ...run(name)]);
    for (const port of [s.pg.port, s.doorman.port]) {
      const own = await RawClient.connect(port, ROLE_B, DB);
      const other = await RawClient.connect(port, ROLE_B, DB, { options: '-c search_path=other' });
      try {
        // pool_size 1: both clients' transactions run on the one server connection.
        assert.deepEqual(
          [...(await turn(own, 'q')), ...(await turn(other, 'q')), ...(await turn(own, 'again')), ...(await turn(other, 'again'))],
          [
            ...['1', '2', `D row of ${ROLE_B}`, 'C SELECT 1', 'Z I'],
            ...['1', '2', 'D 1|2', 'C SELECT 1', 'Z I'],
            ...['1', '2', `D row of ${ROLE_B}`, 'C SELECT 1', 'Z I'],
            ...['1', '2', 'D 1|2', 'C SELECT 1', 'Z I'],
          ],
          port === s.pg.port ? 'direct PostgreSQL' : 'through Doorman',
        );
      } finally {
        await Promise.all([own.end(), other.end()]);
      }
    }
  });

  test(`${MAX_PREPARED_KEY}: ${EVICTION_LIMIT}: 10 statements cycling over 2 servers; no server holds more than ${EVICTION_LIMIT}`, async () => {
    assert.ok(evicting, `Doorman with ${MAX_PREPARED_KEY}: ${EVICTION_LIMIT} did not start: ${evictingError}`);
    const port = evicting.port;
    const statements = Array.from({ length: 10 }, (_, k) => `select $1::int + ${k} as v${k} /* evict */`);
    const samples: number[] = [];
    const probe = async (c: RawClient): Promise<void> => {
      const [[held, foreign]] = (await c.rows("select count(*), count(*) filter (where statement not like '%/* evict */%') from pg_prepared_statements")).map((r) => r.map(Number));
      samples.push(held);
      assert.equal(foreign, 0);
    };
    await all(
      Array.from({ length: 4 }, (_, i) =>
        withClient(port, ROLE_A, async (c) => {
          assert.deepEqual(await c.exchange([...statements.map((sql, k) => fe.parse(`s${k}`, sql)), fe.sync()]), [...statements.map(() => '1'), 'Z I']);
          for (let round = 0; round < 6; round++) {
            const order = statements.map((_, k) => (k * (i + 3) + round) % statements.length);
            if (round % 2 === 0) {
              for (const k of order) {
                assert.deepEqual(await c.exchange(run(`s${k}`, [String(round * 1000)])), ['2', `D ${round * 1000 + k}`, 'C SELECT 1', 'Z I'], `client ${i} round ${round} s${k}`);
              }
            } else {
              // All ten in one batch: more statements than a server may keep, within one transaction.
              const got = await c.exchange([...order.flatMap((k) => [fe.bind(`s${k}`, [String(round * 1000)]), fe.execute()]), fe.sync()]);
              assert.deepEqual(got, [...order.flatMap((k) => ['2', `D ${round * 1000 + k}`, 'C SELECT 1']), 'Z I'], `client ${i} round ${round}`);
            }
            await probe(c);
          }
        }),
      ),
    );
    // Both servers at once: two clients each holding one in a transaction.
    const [p, q] = await all([RawClient.connect(port, ROLE_A, DB), RawClient.connect(port, ROLE_A, DB)]);
    try {
      const pids = await all([p, q].map(async (c) => (await c.rows('BEGIN; select pg_backend_pid()'))[0][0]));
      await all([p, q].map((c) => probe(c)));
      assert.notEqual(pids[0], pids[1]);
    } finally {
      await all([p.end(), q.end()]);
    }
    assert.ok(samples.length === 26, `samples: ${samples.join(',')}`);
    assert.ok(Math.max(...samples) <= EVICTION_LIMIT, `a server held ${Math.max(...samples)} statements: ${samples.join(',')}`);
  });

  test('pg: 20 clients with named queries over 2 servers, through runtime errors and rolled-back transactions', async () => {
    const { doorman: d } = servers();
    const url = `postgresql://${ROLE_A}@127.0.0.1:${d.port}/${DB}`;
    await all(
      Array.from({ length: 20 }, async (_, i) => {
        const client = new pg.Client({ connectionString: url, password: 'unused', connectionTimeoutMillis: 10_000, query_timeout: 30_000 });
        await client.connect();
        try {
          const divide = (by: number): Promise<pg.QueryResult<{ q: number; who: string }>> =>
            client.query({ name: 'divide', text: 'select 1000 / $1::int as q, current_user::text as who', values: [by] });
          for (let round = 0; round < 6; round++) {
            const by = (i + round) % 5;
            if (by === 0) {
              await assert.rejects(divide(by), (err: { code?: string }) => err.code === '22012');
            } else {
              assert.deepEqual((await divide(by)).rows, [{ q: Math.trunc(1000 / by), who: ROLE_A }]);
            }
            await client.query('begin');
            assert.deepEqual((await client.query({ name: 'inside', text: 'select $1::int + 1 as n', values: [round] })).rows, [{ n: round + 1 }]);
            await client.query(round % 2 === 0 ? 'rollback' : 'commit');
          }
          assert.deepEqual((await divide(1)).rows, [{ q: 1000, who: ROLE_A }]);
        } finally {
          await client.end();
        }
      }),
    );
  });
});
