import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import pg from 'pg';
import {
  APP_DB,
  DOORMAN_CLI,
  MD5_USER,
  SCRAM_USER,
  canBind,
  doormanConfigFor,
  freePort,
  isRoot,
  psqlQuery,
  python,
  run,
  startDoorman,
  startPgBouncer,
  startPostgres,
  waitForPort,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 180_000;

/** Connects with `pg`, runs `sql`, returns the first column of the first row. */
async function scalar(config: pg.ClientConfig, sql: string): Promise<unknown> {
  const client = new pg.Client({ connectionTimeoutMillis: 10_000, ...config });
  await client.connect();
  try {
    const result = await client.query<Record<string, unknown>>(sql);
    const row = result.rows[0];
    assert.ok(row, `no row from ${sql}`);
    return Object.values(row)[0];
  } finally {
    await client.end();
  }
}

/** The SQLSTATE a failed `pg` connection attempt reports. */
async function loginError(connectionString: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
  } catch (err) {
    return (err as { code?: string }).code;
  } finally {
    await client.end().catch(() => undefined);
  }
  assert.fail(`login unexpectedly succeeded for ${connectionString}`);
}

describe('ports', { timeout: 30_000 }, () => {
  test('freePort picks distinct bindable ports below the ephemeral range', async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    assert.equal(new Set(ports).size, 4);
    for (const port of ports) {
      assert.ok(port >= 20000 && port < 32000, `port ${port} outside 20000..32000`);
      assert.equal(await canBind(port), true);
    }
  });

  test('waitForPort resolves for a listener and times out for a closed port', async () => {
    const port = await freePort();
    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      await waitForPort(port, '127.0.0.1', 2_000);
      assert.equal(await canBind(port), false);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    const started = Date.now();
    await assert.rejects(waitForPort(port, '127.0.0.1', 300), /timed out after 300 ms/);
    assert.ok(Date.now() - started < 2_000);
  });
});

describe('processes', { timeout: 30_000 }, () => {
  test('children get a clean environment: no PG* or npm_* from the caller', async () => {
    const saved = { PGPASSWORD: process.env.PGPASSWORD, PGHOST: process.env.PGHOST, npm_lifecycle_event: process.env.npm_lifecycle_event };
    process.env.PGPASSWORD = 'leaked-password';
    process.env.PGHOST = '/nonexistent';
    process.env.npm_lifecycle_event = 'test';
    try {
      const result = await run('/usr/bin/env', [], { env: { PGAPPNAME: 'explicit' } });
      assert.equal(result.code, 0);
      const pgVars = result.stdout.split('\n').filter((line) => /^(PG|npm_)/.test(line));
      assert.deepEqual(pgVars, ['PGAPPNAME=explicit']);
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });

  test('service-user children run as postgres when we are root', async () => {
    const result = await run('/usr/bin/id', ['-un'], { asServiceUser: true });
    assert.equal(result.code, 0);
    const expected = isRoot() ? 'postgres' : (await run('/usr/bin/id', ['-un'])).stdout.trim();
    assert.equal(result.stdout.trim(), expected);
  });

  test('run() enforces its time bound', async () => {
    const result = await run('/bin/sleep', ['5'], { timeoutMs: 200 });
    assert.equal(result.timedOut, true);
    assert.equal(result.code, null);
    assert.equal(result.signal, 'SIGKILL');
  });
});

describe('postgres clusters', { timeout: SUITE_TIMEOUT_MS }, () => {
  let a: PgCluster | undefined;
  let b: PgCluster | undefined;

  before(async () => {
    const started = await Promise.allSettled([startPostgres(), startPostgres({ ssl: true, settings: { max_connections: '50' } })]);
    a = started[0].status === 'fulfilled' ? started[0].value : undefined;
    b = started[1].status === 'fulfilled' ? started[1].value : undefined;
    for (const outcome of started) if (outcome.status === 'rejected') throw outcome.reason;
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    for (const cluster of [a, b]) if (cluster) assert.equal(existsSync(cluster.dir), false, `${cluster.dir} left behind`);
  });

  function clusters(): [PgCluster, PgCluster] {
    assert.ok(a && b, 'clusters did not start');
    return [a, b];
  }

  test('two clusters run at once on different ports and directories', async () => {
    const [first, second] = clusters();
    assert.notEqual(first.port, second.port);
    assert.notEqual(first.dir, second.dir);
    assert.equal(await first.query('SHOW port'), String(first.port));
    assert.equal(await second.query('SHOW port'), String(second.port));
    assert.equal(await first.query('SHOW max_connections'), '300');
    assert.equal(await second.query('SHOW max_connections'), '50');
    assert.equal(await first.query('SHOW fsync'), 'off');
    assert.equal(await first.query("SELECT current_setting('listen_addresses')"), '127.0.0.1');
  });

  test('roles are stored with the intended password hashes', async () => {
    const [first] = clusters();
    const rows = await first.query(
      "SELECT rolname || ':' || split_part(rolpassword, '$', 1) FROM pg_authid WHERE rolname IN ('scram_user', 'md5_user') ORDER BY rolname",
    );
    // MD5 hashes have no '$'; show only their 3-character prefix.
    assert.deepEqual(rows.split('\n').map((row) => (row.startsWith('md5_user:') ? row.slice(0, 12) : row)), ['md5_user:md5', 'scram_user:SCRAM-SHA-256']);
    assert.equal(await first.query(`SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = '${APP_DB}'`), 'scram_user');
  });

  test('scram_user and md5_user log in over TCP with their passwords (pg)', async () => {
    for (const cluster of clusters()) {
      assert.equal(await scalar({ connectionString: cluster.connectionString(SCRAM_USER.user, SCRAM_USER.password) }, 'SELECT current_user'), 'scram_user');
      assert.equal(await scalar({ connectionString: cluster.connectionString(MD5_USER.user, MD5_USER.password) }, 'SELECT current_user'), 'md5_user');
      assert.equal(await scalar({ connectionString: cluster.superuserUrl() }, 'SELECT current_user'), 'postgres');
    }
  });

  test('md5_user can create tables in app', async () => {
    const [first] = clusters();
    const url = first.connectionString(MD5_USER.user, MD5_USER.password);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    await client.connect();
    try {
      await client.query('CREATE TABLE md5_owned AS SELECT 42 AS answer');
      const result = await client.query<{ answer: number; owner: string }>(
        "SELECT answer, pg_catalog.pg_get_userbyid(relowner) AS owner FROM md5_owned, pg_class WHERE relname = 'md5_owned'",
      );
      assert.deepEqual(result.rows, [{ answer: 42, owner: 'md5_user' }]);
    } finally {
      await client.end();
    }
  });

  test('wrong passwords fail with SQLSTATE 28P01', async () => {
    const [first, second] = clusters();
    assert.equal(await loginError(first.connectionString(SCRAM_USER.user, 'not-the-password')), '28P01');
    assert.equal(await loginError(first.connectionString(MD5_USER.user, 'not-the-password')), '28P01');
    assert.equal(await loginError(second.connectionString(SCRAM_USER.user, MD5_USER.password)), '28P01');
  });

  test('the ssl cluster serves TLS verified against the test CA', async () => {
    const [, second] = clusters();
    assert.ok(second.certs);
    const ca = readFileSync(second.certs.caCert, 'utf8');
    const viaTls = await scalar(
      { connectionString: second.connectionString(SCRAM_USER.user, SCRAM_USER.password), ssl: { ca, servername: 'localhost' } },
      'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
    );
    assert.equal(viaTls, true);
    const plain = await scalar({ connectionString: second.connectionString(SCRAM_USER.user, SCRAM_USER.password) }, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    assert.equal(plain, false);
  });

  test('psql works with the password passed only through its environment', async () => {
    const [first] = clusters();
    const ok = await psqlQuery(first.target(MD5_USER), 'SELECT current_user, current_database()');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'md5_user|app\n');
    const bad = await psqlQuery({ ...first.target(SCRAM_USER), password: 'nope' }, 'SELECT 1');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /password authentication failed for user "scram_user"/);
  });

  test('/usr/bin/python3 has Debian\'s drivers and psycopg2 reaches the cluster', async () => {
    const [first] = clusters();
    const code = [
      'import sys, psycopg2, psycopg, asyncpg',
      'conn = psycopg2.connect(sys.argv[1])',
      'cur = conn.cursor()',
      "cur.execute('SELECT current_user')",
      'print(cur.fetchone()[0])',
      'conn.close()',
    ].join('\n');
    const result = await python(code, [first.connectionString(SCRAM_USER.user, SCRAM_USER.password)]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'scram_user\n');
  });

  test('pgbench initializes and runs through the unix socket', async () => {
    const [first] = clusters();
    const init = await first.pgbench(['-i', '-s', '1', '-q']);
    assert.equal(init.code, 0, init.stderr);
    const bench = await first.pgbench(['-S', '-t', '50', '-c', '2', '-n'], { timeoutMs: 60_000 });
    assert.equal(bench.code, 0, bench.stderr);
    assert.match(bench.stdout, /number of transactions actually processed: 100\/100/);
  });

  test('restart keeps port and data', async () => {
    const [first] = clusters();
    const port = first.port;
    const pidBefore = first.pid;
    await first.restart();
    assert.equal(first.port, port);
    assert.notEqual(first.pid, pidBefore);
    assert.equal(await first.query('SELECT answer FROM md5_owned', APP_DB), '42');
  });

  test('pgbouncer pools scram_user and md5_user in transaction mode', async () => {
    const [first] = clusters();
    const bouncer = await startPgBouncer({ pg: first, poolMode: 'transaction', poolSize: 2 });
    try {
      assert.notEqual(bouncer.port, first.port);
      assert.equal(await scalar({ connectionString: bouncer.connectionString(SCRAM_USER.user, SCRAM_USER.password) }, 'SELECT current_user'), 'scram_user');
      assert.equal(await scalar({ connectionString: bouncer.connectionString(MD5_USER.user, MD5_USER.password) }, 'SELECT 6 * 7'), 42);
      // The query ran on first's backend, reached through PgBouncer's own port.
      assert.equal(
        await scalar({ connectionString: bouncer.connectionString(SCRAM_USER.user, SCRAM_USER.password) }, "SELECT current_setting('port')"),
        String(first.port),
      );
      assert.equal(await loginError(bouncer.connectionString(SCRAM_USER.user, 'wrong')), '08P01');
    } finally {
      await bouncer.stop();
    }
    assert.equal(existsSync(bouncer.dir), false);
    assert.equal(await canBind(bouncer.port), true);
  });

  test('doorman starts from a generated config and proxies a query', { skip: existsSync(DOORMAN_CLI) ? false : `${DOORMAN_CLI} not built yet` }, async () => {
    const [first] = clusters();
    const doorman = await startDoorman(doormanConfigFor(first, { users: [SCRAM_USER] }));
    try {
      const check = await doorman.check(doorman.config);
      assert.equal(check.code, 0, check.stderr);
      assert.equal(await scalar({ connectionString: doorman.connectionString(SCRAM_USER.user, SCRAM_USER.password) }, 'SELECT current_user'), 'scram_user');
    } finally {
      const exit = await doorman.stop();
      assert.equal(exit.code, 0, doorman.output());
    }
  });
});
