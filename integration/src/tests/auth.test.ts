/**
 * Client and server authentication through Doorman against PostgreSQL 15: stored password formats,
 * pg_hba methods, the login Doorman performs towards PostgreSQL, and the SQLSTATEs of every refusal.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pg from 'pg';
import {
  MD5_USER,
  SCRAM_USER,
  doormanConfigFor,
  fe,
  startDoorman,
  startPostgres,
  type DoormanConfig,
  type DoormanPoolConfig,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 90_000;
const CLEAR_USER = { user: 'clear_user', password: 'clear-secret' };

/** AuthenticationRequest codes (PostgreSQL protocol docs). */
const AUTH_OK = 0;
const AUTH_CLEARTEXT = 3;
const AUTH_MD5 = 5;
const AUTH_SASL = 10;

interface LoginFailure {
  code: string | undefined;
  message: string;
  detail: string | undefined;
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  // A FATAL while idle arrives as an 'error' event; the tests assert on query results instead.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function scalar(url: string, sql: string): Promise<unknown> {
  const client = await connect(url);
  try {
    const result = await client.query<Record<string, unknown>>(sql);
    assert.equal(result.rows.length, 1, `one row from ${sql}`);
    return Object.values(result.rows[0])[0];
  } finally {
    await client.end();
  }
}

async function loginFailure(url: string): Promise<LoginFailure> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 15_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    const e = err as { code?: string; message: string; detail?: string };
    return { code: e.code, message: e.message, detail: e.detail };
  } finally {
    await client.end().catch(() => undefined);
  }
  assert.fail(`login unexpectedly succeeded: ${url}`);
}

/**
 * Sends a StartupMessage on a raw socket and reports the first answer: the AuthenticationRequest
 * code the server asked for, or the SQLSTATE of an ErrorResponse.
 */
function firstAuthAnswer(port: number, user: string, database: string): Promise<{ auth?: number; sqlstate?: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer to the startup message within 5 s'));
    }, 5_000);
    const done = (value: { auth?: number; sqlstate?: string }): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    socket.on('connect', () => socket.write(fe.startup({ user, database })));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 5 || buf.length < 1 + buf.readInt32BE(1)) return;
      const type = String.fromCharCode(buf[0]);
      const body = buf.subarray(5, 1 + buf.readInt32BE(1));
      if (type === 'R') return done({ auth: body.readInt32BE(0) });
      if (type === 'E') {
        for (let i = 0; i < body.length && body[i] !== 0; ) {
          const end = body.indexOf(0, i + 1);
          if (body[i] === 0x43 /* C */) return done({ sqlstate: body.toString('utf8', i + 1, end) });
          i = end + 1;
        }
      }
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`unexpected first message "${type}"`));
    });
  });
}

describe('authentication', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let noHba: DoormanProcess | undefined;
  let withHba: DoormanProcess | undefined;
  let scramVerifier = '';
  let md5Hash = '';

  function pools(): { noHba: DoormanProcess; withHba: DoormanProcess; cluster: PgCluster } {
    assert.ok(cluster && noHba && withHba, 'servers did not start');
    return { noHba, withHba, cluster };
  }

  function pool(server: PgCluster, users: DoormanPoolConfig['users']): DoormanPoolConfig {
    return { server_host: server.host, server_port: server.port, server_database: 'app', pool_mode: 'transaction', users };
  }

  before(async () => {
    // Each server-side method gets its own role, so the PostgreSQL log shows which one Doorman answered.
    cluster = await startPostgres({
      settings: { log_connections: 'on' },
      hba: [
        'local all all trust',
        `host all ${MD5_USER.user} 127.0.0.1/32 md5`,
        `host all ${CLEAR_USER.user} 127.0.0.1/32 password`,
        'host all all 127.0.0.1/32 scram-sha-256',
        '',
      ].join('\n'),
    });
    await cluster.query(`CREATE ROLE ${CLEAR_USER.user} LOGIN PASSWORD '${CLEAR_USER.password}';`);
    scramVerifier = await cluster.query(`select rolpassword from pg_authid where rolname = '${SCRAM_USER.user}'`);
    md5Hash = await cluster.query(`select rolpassword from pg_authid where rolname = '${MD5_USER.user}'`);
    assert.match(scramVerifier, /^SCRAM-SHA-256\$4096:/);
    assert.match(md5Hash, /^md5[0-9a-f]{32}$/);

    const plain = doormanConfigFor(cluster, { users: [SCRAM_USER, MD5_USER] });
    delete plain.general.pg_hba;
    plain.pools.app_md5hash = pool(cluster, [{ username: MD5_USER.user, password: md5Hash, pool_size: 2 }]);
    plain.pools.app_verifier = pool(cluster, [
      { username: SCRAM_USER.user, password: scramVerifier, server_password: SCRAM_USER.password, pool_size: 2 },
    ]);
    plain.pools.app_clear = pool(cluster, [{ username: CLEAR_USER.user, password: CLEAR_USER.password, pool_size: 2 }]);
    plain.pools.app_alias = pool(cluster, [
      { username: 'alias_user', password: 'alias-secret', server_username: MD5_USER.user, server_password: MD5_USER.password, pool_size: 2 },
    ]);
    plain.pools.app_badserver = pool(cluster, [
      { username: SCRAM_USER.user, password: SCRAM_USER.password, server_password: 'not-the-server-password', pool_size: 2 },
    ]);
    plain.pools.app_later = {
      ...pool(cluster, [{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 2 }]),
      server_database: 'later_db',
    };
    noHba = await startDoorman(plain);

    const ruled: DoormanConfig = {
      general: {
        host: '127.0.0.1',
        port: 0,
        pg_hba: [
          'host trustdb all 127.0.0.1/32 trust',
          'host rejectdb all 127.0.0.1/32 reject',
          'host pwdb all 127.0.0.1/32 password',
          'host md5db all 127.0.0.1/32 md5',
          '',
        ].join('\n'),
      },
      pools: {},
    };
    const users = [
      { username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 2 },
      { username: MD5_USER.user, password: MD5_USER.password, pool_size: 2 },
      // Logs in as scram_user towards PostgreSQL; its client-side secret is the copied verifier.
      { username: 'verifier_user', password: scramVerifier, server_username: SCRAM_USER.user, server_password: SCRAM_USER.password, pool_size: 2 },
    ];
    for (const db of ['trustdb', 'rejectdb', 'pwdb', 'md5db', 'nohbadb']) ruled.pools[db] = pool(cluster, users);
    withHba = await startDoorman(ruled);
  });

  after(async () => {
    await Promise.all([noHba?.stop(), withHba?.stop()]);
    await cluster?.stop();
  });

  describe('without pg_hba', () => {
    test('plaintext passwords: SCRAM is asked of every client and both roles log in', async () => {
      const { noHba: d } = pools();
      assert.deepEqual(await firstAuthAnswer(d.port, SCRAM_USER.user, 'app'), { auth: AUTH_SASL });
      assert.deepEqual(await firstAuthAnswer(d.port, MD5_USER.user, 'app'), { auth: AUTH_SASL });
      assert.equal(await scalar(d.connectionString(SCRAM_USER.user, SCRAM_USER.password), 'select current_user'), 'scram_user');
      assert.equal(await scalar(d.connectionString(MD5_USER.user, MD5_USER.password), 'select current_user'), 'md5_user');
    });

    test('an md5 hash as the Doorman password: MD5 towards the client, pass-the-hash towards PostgreSQL', async () => {
      const { noHba: d } = pools();
      assert.deepEqual(await firstAuthAnswer(d.port, MD5_USER.user, 'app_md5hash'), { auth: AUTH_MD5 });
      const url = d.connectionString(MD5_USER.user, MD5_USER.password, 'app_md5hash');
      assert.equal(await scalar(url, "select current_user || '@' || current_database()"), 'md5_user@app');
      const wrong = await loginFailure(d.connectionString(MD5_USER.user, 'md5-wrong', 'app_md5hash'));
      assert.equal(wrong.code, '28P01');
      assert.equal(wrong.message, 'password authentication failed for user "md5_user"');
    });

    test('a SCRAM verifier copied from pg_authid authenticates clients; server_password logs in', async () => {
      const { noHba: d } = pools();
      assert.deepEqual(await firstAuthAnswer(d.port, SCRAM_USER.user, 'app_verifier'), { auth: AUTH_SASL });
      const url = d.connectionString(SCRAM_USER.user, SCRAM_USER.password, 'app_verifier');
      assert.equal(await scalar(url, 'select current_user'), 'scram_user');
      const wrong = await loginFailure(d.connectionString(SCRAM_USER.user, 'scram-wrong', 'app_verifier'));
      assert.equal(wrong.code, '28P01');
      assert.equal(wrong.message, 'password authentication failed for user "scram_user"');
    });

    test('wrong password -> 28P01 for SCRAM and MD5 roles', async () => {
      const { noHba: d } = pools();
      for (const user of [SCRAM_USER.user, MD5_USER.user]) {
        const failure = await loginFailure(d.connectionString(user, 'definitely-wrong'));
        assert.equal(failure.code, '28P01');
        assert.equal(failure.message, `password authentication failed for user "${user}"`);
      }
    });

    test('unknown user -> 28P01, indistinguishable from a wrong password', async () => {
      const { noHba: d } = pools();
      assert.deepEqual(await firstAuthAnswer(d.port, 'nobody', 'app'), { auth: AUTH_SASL });
      const failure = await loginFailure(d.connectionString('nobody', 'whatever'));
      assert.equal(failure.code, '28P01');
      assert.equal(failure.message, 'password authentication failed for user "nobody"');
    });

    test('unknown database -> 3D000', async () => {
      const { noHba: d } = pools();
      const failure = await loginFailure(d.connectionString(SCRAM_USER.user, SCRAM_USER.password, 'nosuchdb'));
      assert.equal(failure.code, '3D000');
      assert.equal(failure.message, 'database "nosuchdb" does not exist');
    });
  });

  describe('pg_hba methods', () => {
    test('trust: no password is asked, even a wrong one logs in', async () => {
      const { withHba: d } = pools();
      assert.deepEqual(await firstAuthAnswer(d.port, SCRAM_USER.user, 'trustdb'), { auth: AUTH_OK });
      assert.equal(await scalar(d.connectionString(SCRAM_USER.user, 'wrong', 'trustdb'), 'select current_user'), 'scram_user');
    });

    test('reject -> 28000', async () => {
      const { withHba: d } = pools();
      const failure = await loginFailure(d.connectionString(SCRAM_USER.user, SCRAM_USER.password, 'rejectdb'));
      assert.equal(failure.code, '28000');
      assert.match(failure.message, /^pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "scram_user", database "rejectdb"/);
    });

    test('no matching entry -> 28000', async () => {
      const { withHba: d } = pools();
      const failure = await loginFailure(d.connectionString(SCRAM_USER.user, SCRAM_USER.password, 'nohbadb'));
      assert.equal(failure.code, '28000');
      assert.equal(failure.message, 'no pg_hba.conf entry for host "127.0.0.1", user "scram_user", database "nohbadb", no encryption');
    });

    test('password: cleartext is asked and checked against plaintext and SCRAM-stored secrets', async () => {
      const { withHba: d } = pools();
      assert.deepEqual(await firstAuthAnswer(d.port, SCRAM_USER.user, 'pwdb'), { auth: AUTH_CLEARTEXT });
      assert.equal(await scalar(d.connectionString(SCRAM_USER.user, SCRAM_USER.password, 'pwdb'), 'select current_user'), 'scram_user');
      assert.equal(await scalar(d.connectionString('verifier_user', SCRAM_USER.password, 'pwdb'), 'select current_user'), 'scram_user');
      const wrong = await loginFailure(d.connectionString('verifier_user', 'nope', 'pwdb'));
      assert.equal(wrong.code, '28P01');
      assert.equal(wrong.message, 'password authentication failed for user "verifier_user"');
    });

    test('md5: MD5 for plaintext-stored users, SCRAM for a SCRAM-stored one (as PostgreSQL does)', async () => {
      const { withHba: d } = pools();
      assert.deepEqual(await firstAuthAnswer(d.port, MD5_USER.user, 'md5db'), { auth: AUTH_MD5 });
      assert.deepEqual(await firstAuthAnswer(d.port, 'verifier_user', 'md5db'), { auth: AUTH_SASL });
      assert.equal(await scalar(d.connectionString(MD5_USER.user, MD5_USER.password, 'md5db'), 'select current_user'), 'md5_user');
      assert.equal(await scalar(d.connectionString('verifier_user', SCRAM_USER.password, 'md5db'), 'select current_user'), 'scram_user');
      const wrong = await loginFailure(d.connectionString(MD5_USER.user, 'nope', 'md5db'));
      assert.equal(wrong.code, '28P01');
    });
  });

  describe('login towards PostgreSQL', () => {
    /** `connection authenticated` lines PostgreSQL logged for `user` (log_connections = on). */
    function serverAuthMethods(server: PgCluster, user: string): string[] {
      const out: string[] = [];
      for (const line of server.output(2000).split('\n')) {
        const m = /connection authenticated: identity="([^"]+)" method=([a-z0-9-]+)/.exec(line);
        if (m && m[1] === user) out.push(m[2]);
      }
      return out;
    }

    test('PostgreSQL asks scram-sha-256, md5 and password: Doorman answers each', async () => {
      const { noHba: d, cluster: server } = pools();
      assert.equal(await scalar(d.connectionString(SCRAM_USER.user, SCRAM_USER.password), 'select current_user'), 'scram_user');
      assert.equal(await scalar(d.connectionString(MD5_USER.user, MD5_USER.password), 'select current_user'), 'md5_user');
      assert.equal(await scalar(d.connectionString(CLEAR_USER.user, CLEAR_USER.password, 'app_clear'), 'select current_user'), 'clear_user');
      assert.ok(serverAuthMethods(server, 'scram_user').includes('scram-sha-256'), server.output(30));
      assert.ok(serverAuthMethods(server, 'md5_user').includes('md5'), server.output(30));
      assert.deepEqual([...new Set(serverAuthMethods(server, 'clear_user'))], ['password']);
    });

    test('server_username/server_password map a Doorman user to another PostgreSQL role', async () => {
      const { noHba: d } = pools();
      const url = d.connectionString('alias_user', 'alias-secret', 'app_alias');
      assert.equal(await scalar(url, "select session_user || '/' || current_user"), 'md5_user/md5_user');
      const wrong = await loginFailure(d.connectionString('alias_user', MD5_USER.password, 'app_alias'));
      assert.equal(wrong.code, '28P01');
      assert.equal(wrong.message, 'password authentication failed for user "alias_user"');
    });

    test('a wrong server_password fails the waiting client with FATAL 08006 "server login failed"', async () => {
      const { noHba: d } = pools();
      const started = Date.now();
      const failure = await loginFailure(d.connectionString(SCRAM_USER.user, SCRAM_USER.password, 'app_badserver'));
      assert.equal(failure.code, '08006');
      assert.match(failure.message, /^server login failed: .*password authentication failed for user "scram_user"/);
      // Refused by PostgreSQL itself: reported at once, not after query_wait_timeout (5 s by default).
      assert.ok(Date.now() - started < 4_000, `took ${Date.now() - started} ms`);
      // The other pools of the same Doorman are unaffected.
      assert.equal(await scalar(d.connectionString(SCRAM_USER.user, SCRAM_USER.password), 'select 1'), 1);
    });

    test('a database missing on PostgreSQL: 08006 "server login failed", and the pool serves once it exists', async () => {
      const { noHba: d, cluster: server } = pools();
      const url = d.connectionString(SCRAM_USER.user, SCRAM_USER.password, 'app_later');
      const failure = await loginFailure(url);
      assert.equal(failure.code, '08006');
      assert.match(failure.message, /^server login failed: .*database "later_db" does not exist/);
      await server.query('create database later_db owner scram_user');
      // Connects are retried with a short backoff after a failure; the pool must not stay wedged.
      assert.equal(await scalar(url, 'select current_database()'), 'later_db');
    });
  });
});
