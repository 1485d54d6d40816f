/**
 * TLS on both sides of Doorman: clients with tls_mode allow/require (pg and libpq), and Doorman's own
 * connections to PostgreSQL with server_tls_mode disable/prefer/require/verify-ca/verify-full.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import pg from 'pg';
import {
  DOORMAN_ADMIN,
  DOORMAN_ADMIN_DB,
  SCRAM_USER,
  makeTempDir,
  makeTestCerts,
  psql,
  psqlQuery,
  runChecked,
  startDoorman,
  startPostgres,
  type DoormanConfig,
  type DoormanPoolConfig,
  type DoormanProcess,
  type PgCluster,
  type TempDir,
  type TestCerts,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 120_000;

async function connect(config: pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client({ connectionTimeoutMillis: 15_000, ...config });
  // FATALs while idle arrive as 'error' events; the tests assert on query results instead.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function loginError(config: pg.ClientConfig): Promise<{ code?: string; message: string; detail?: string }> {
  const client = new pg.Client({ connectionTimeoutMillis: 15_000, ...config });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    return err as { code?: string; message: string; detail?: string };
  } finally {
    await client.end().catch(() => undefined);
  }
  assert.fail('login unexpectedly succeeded');
}

function encrypted(client: pg.Client): boolean {
  const stream = (client as unknown as { connection: { stream: unknown } }).connection.stream;
  return stream instanceof tls.TLSSocket && stream.encrypted;
}

/** Whether the PostgreSQL backend serving this session sees TLS. */
async function serverSideSsl(client: pg.Client): Promise<boolean> {
  const r = await client.query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
  return r.rows[0].ssl;
}

/** Replaces a cluster's server certificate with one for "wrong.example" from the same CA, then reloads. */
async function giveWrongName(server: PgCluster): Promise<void> {
  const certs = server.certs;
  assert.ok(certs);
  const dir = path.dirname(certs.serverCert);
  const key = path.join(dir, 'wrong.key');
  const csr = path.join(dir, 'wrong.csr');
  const ext = path.join(dir, 'wrong.ext');
  const crt = path.join(dir, 'wrong.crt');
  const opts = { cwd: dir, timeoutMs: 30_000 };
  await runChecked('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-keyout', key, '-out', csr, '-subj', '/CN=wrong.example'], opts);
  await writeFile(ext, 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:wrong.example\n');
  await runChecked('openssl', [
    'x509', '-req', '-in', csr, '-CA', certs.caCert, '-CAkey', certs.caKey, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '30', '-sha256', '-extfile', ext, '-out', crt,
  ], opts);
  // Overwriting keeps the files' owner and mode, which PostgreSQL checks for the key.
  await writeFile(certs.serverCert, await readFile(crt));
  await writeFile(certs.serverKey, await readFile(key));
  await server.query('select pg_reload_conf()');
  const ca = await readFile(certs.caCert, 'utf8');
  // Wait until new connections get the new certificate (verification against "localhost" then fails).
  for (let i = 0; ; i++) {
    const err = await loginError({ connectionString: server.connectionString(SCRAM_USER.user, SCRAM_USER.password), ssl: { ca, servername: 'localhost' } }).catch(() => null);
    if (err && /wrong\.example|altnames/.test(err.message)) return;
    assert.ok(i < 50, 'PostgreSQL did not pick up the new certificate');
    await sleep(100);
  }
}

describe('tls', { timeout: SUITE_TIMEOUT_MS }, () => {
  let plainPg: PgCluster | undefined;
  let sslPg: PgCluster | undefined;
  let wrongPg: PgCluster | undefined;
  let tmp: TempDir | undefined;
  let certs: TestCerts | undefined;
  const doormen: DoormanProcess[] = [];

  function clusters(): { plainPg: PgCluster; sslPg: PgCluster; wrongPg: PgCluster; certs: TestCerts } {
    assert.ok(plainPg && sslPg && wrongPg && certs, 'servers did not start');
    return { plainPg, sslPg, wrongPg, certs };
  }

  function pool(server: PgCluster, extra: Partial<DoormanPoolConfig> = {}): DoormanPoolConfig {
    return {
      server_host: server.host,
      server_port: server.port,
      server_database: 'app',
      users: [{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 2 }],
      ...extra,
    };
  }

  async function launch(general: DoormanConfig['general'], pools: DoormanConfig['pools'], env?: Record<string, string>): Promise<DoormanProcess> {
    const d = await startDoorman(
      {
        general: {
          host: '127.0.0.1',
          port: 0,
          pg_hba: 'host all all 127.0.0.1/32 scram-sha-256\n',
          admin_username: DOORMAN_ADMIN.user,
          admin_password: DOORMAN_ADMIN.password,
          ...general,
        },
        pools,
      },
      env ? { env } : {},
    );
    doormen.push(d);
    return d;
  }

  /**
   * A 6.4 MB result, then 60,000 rows of COPY FROM STDIN through psql, each checked by md5, through `d` to
   * `db`; `ssl`: the client's TLS options (psql then uses sslmode=require), or none for plaintext.
   */
  async function crossIntact(d: DoormanProcess, db: string, ssl: tls.ConnectionOptions | null): Promise<void> {
    const file = path.join(clusters().certs.dir, 'copy.tsv');
    const lines: string[] = [];
    for (let i = 0; i < 60_000; i++) lines.push(`${i}\t${randomBytes(24).toString('hex')}`);
    const text = `${lines.join('\n')}\n`;
    await writeFile(file, text);
    const expected = createHash('md5').update(text).digest('hex');
    const client = await connect({ connectionString: d.connectionString(SCRAM_USER.user, SCRAM_USER.password, db), ...(ssl === null ? {} : { ssl }) });
    try {
      assert.equal(encrypted(client), ssl !== null);
      const big = await client.query<{ s: string; m: string }>("select repeat(md5('x'), 200000) as s, md5(repeat(md5('x'), 200000)) as m");
      assert.equal(big.rows[0].s.length, 6_400_000);
      assert.equal(createHash('md5').update(big.rows[0].s).digest('hex'), big.rows[0].m);
      await client.query('drop table if exists tls_copy; create table tls_copy (i int primary key, v text)');
      const copied = await psql({ ...d.target(SCRAM_USER, db), sslmode: ssl === null ? 'disable' : 'require' }, ['-v', 'ON_ERROR_STOP=1', '-c', `\\copy tls_copy from '${file}'`]);
      assert.equal(copied.code, 0, copied.stderr);
      const r = await client.query<{ n: number; m: string }>(
        "select count(*)::int as n, md5(string_agg(i || E'\\t' || v || E'\\n', '' order by i)) as m from tls_copy",
      );
      assert.deepEqual(r.rows[0], { n: 60_000, m: expected });
    } finally {
      await client.end();
    }
  }

  /** Rows of an admin SHOW command, over plaintext. */
  async function show(d: DoormanProcess, what: 'CLIENTS' | 'SERVERS'): Promise<Record<string, string>[]> {
    const admin = await connect({ connectionString: d.connectionString(DOORMAN_ADMIN.user, DOORMAN_ADMIN.password, DOORMAN_ADMIN_DB) });
    try {
      return (await admin.query<Record<string, string>>(`SHOW ${what}`)).rows;
    } finally {
      await admin.end();
    }
  }

  before(async () => {
    const started = await Promise.allSettled([startPostgres(), startPostgres({ ssl: true }), startPostgres({ ssl: true })]);
    [plainPg, sslPg, wrongPg] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    tmp = await makeTempDir('doorman-tls-test', { forServiceUser: false });
    certs = await makeTestCerts(path.join(tmp.path, 'client-side'));
    await giveWrongName(wrongPg!);
  });

  after(async () => {
    await Promise.all(doormen.map((d) => d.stop()));
    await Promise.all([plainPg?.stop(), sslPg?.stop(), wrongPg?.stop()]);
    await tmp?.remove();
  });

  describe('client side', () => {
    let allow: DoormanProcess | undefined;
    let require: DoormanProcess | undefined;
    let nodeTls: DoormanProcess | undefined;
    let ca = '';

    function doormen2(): { allow: DoormanProcess; require: DoormanProcess } {
      assert.ok(allow && require, 'doorman did not start');
      return { allow, require };
    }

    before(async () => {
      const { plainPg: server, certs: c } = clusters();
      ca = await readFile(c.caCert, 'utf8');
      const tlsFiles = { tls_certificate: c.serverCert, tls_private_key: c.serverKey };
      allow = await launch({ ...tlsFiles, tls_mode: 'allow' }, { app: pool(server) });
      require = await launch({ ...tlsFiles, tls_mode: 'require' }, { app: pool(server) });
      nodeTls = await launch({ ...tlsFiles, tls_mode: 'allow' }, { app: pool(server) }, { DOORMAN_TLS: 'node' });
    });

    test('tls_mode allow: TLS without verification, TLS verified with the test CA, and plaintext all work', async () => {
      const { allow: d } = doormen2();
      const connectionString = d.connectionString(SCRAM_USER.user, SCRAM_USER.password);
      for (const ssl of [{ rejectUnauthorized: false }, { ca }, undefined]) {
        const client = await connect({ connectionString, ...(ssl ? { ssl } : {}) });
        try {
          assert.equal(encrypted(client), ssl !== undefined);
          assert.deepEqual((await client.query('select current_user as u')).rows, [{ u: 'scram_user' }]);
        } finally {
          await client.end();
        }
      }
      const logins = d.jsonLogs().filter((l) => l.msg === 'client logged in').map((l) => l.tls);
      assert.deepEqual(logins, [true, true, false]);
    });

    test('a client verifying against another CA refuses Doorman\'s certificate', async () => {
      const { allow: d } = doormen2();
      const otherCa = await readFile(clusters().sslPg.certs!.caCert, 'utf8');
      const err = await loginError({ connectionString: d.connectionString(SCRAM_USER.user, SCRAM_USER.password), ssl: { ca: otherCa } });
      assert.match(err.message, /self[- ]signed certificate|unable to verify|unable to get local issuer/);
    });

    test('libpq (psql) with sslmode=verify-full against the test CA', async () => {
      const { allow: d } = doormen2();
      const result = await psql({ ...d.target(SCRAM_USER), sslmode: 'verify-full', sslrootcert: clusters().certs.caCert }, [
        '-A', '-t', '-c', 'select current_user', '-c', '\\conninfo',
      ]);
      assert.match(result.stdout, /^scram_user\n/);
      assert.match(result.stdout, /SSL connection \(protocol: TLSv1\.[23]/);
      assert.equal(result.code, 0, result.stderr);
      const logins = d.jsonLogs().filter((l) => l.msg === 'client logged in');
      assert.equal(logins[logins.length - 1].tls, true);
    });

    test('tls_mode require: plaintext is refused with 28000 "SSL required", TLS works', async () => {
      const { require: d } = doormen2();
      const connectionString = d.connectionString(SCRAM_USER.user, SCRAM_USER.password);
      const err = await loginError({ connectionString });
      assert.equal(err.code, '28000');
      assert.equal(err.message, 'SSL required');
      const libpq = await psqlQuery({ ...d.target(SCRAM_USER), sslmode: 'disable' }, 'select 1');
      assert.equal(libpq.code, 2);
      assert.match(libpq.stderr, /SSL required/);
      const client = await connect({ connectionString, ssl: { ca } });
      try {
        assert.equal(encrypted(client), true);
        assert.deepEqual((await client.query('select 1 as v')).rows, [{ v: 1 }]);
      } finally {
        await client.end();
      }
    });

    test('the shards run client TLS through OpenSSL, or Node\'s TLS with DOORMAN_TLS=node', () => {
      assert.ok(allow && nodeTls, 'doorman did not start');
      const modes = (d: DoormanProcess): unknown[] => d.jsonLogs().filter((l) => l.msg === 'shard started').map((l) => l.tls);
      assert.ok(modes(allow).length > 0);
      assert.deepEqual(new Set(modes(allow)), new Set(['openssl']));
      assert.deepEqual(new Set(modes(nodeTls)), new Set(['node']));
    });

    test('SHOW CLIENTS gives a TLS client\'s protocol and cipher, on both TLS paths, and nothing for plaintext', async () => {
      assert.ok(allow && nodeTls, 'doorman did not start');
      for (const d of [allow, nodeTls]) {
        const client = await connect({ connectionString: d.connectionString(SCRAM_USER.user, SCRAM_USER.password), ssl: { ca, maxVersion: 'TLSv1.2' } });
        try {
          const rows = await show(d, 'CLIENTS');
          const mine = rows.filter((r) => r.user === SCRAM_USER.user).map((r) => r.tls);
          assert.equal(mine.length, 1);
          assert.match(mine[0], /^TLSv1\.2\/ECDHE-RSA-AES\d+-GCM-SHA\d+$/);
          assert.deepEqual(rows.filter((r) => r.user === DOORMAN_ADMIN.user).map((r) => r.tls), ['']);
        } finally {
          await client.end();
        }
      }
    });

    test('megabytes cross TLS intact both ways: a large result, and COPY FROM STDIN through psql', async () => {
      assert.ok(allow && nodeTls, 'doorman did not start');
      for (const d of [allow, nodeTls]) await crossIntact(d, 'app', { ca });
    });
  });

  describe('server side', () => {
    let d: DoormanProcess | undefined;
    let wrong: DoormanProcess | undefined;
    let nodeTls: DoormanProcess | undefined;

    function url(db: string, which: 'main' | 'wrong' = 'main'): string {
      const p = which === 'main' ? d : wrong;
      assert.ok(p, 'doorman did not start');
      return p.connectionString(SCRAM_USER.user, SCRAM_USER.password, db);
    }

    before(async () => {
      const { plainPg: plain, sslPg: ssl, wrongPg: wrongName } = clusters();
      d = await launch(
        { server_tls_ca_cert: ssl.certs!.caCert, query_wait_timeout: '2s' },
        {
          s_disable: pool(ssl, { server_tls_mode: 'disable' }),
          s_prefer: pool(ssl, { server_tls_mode: 'prefer' }),
          s_require: pool(ssl, { server_tls_mode: 'require' }),
          s_verify_ca: pool(ssl, { server_tls_mode: 'verify-ca' }),
          s_verify_full: pool(ssl, { server_tls_mode: 'verify-full' }),
          s_verify_full_name: pool(ssl, { server_tls_mode: 'verify-full', server_host: 'localhost' }),
          p_prefer: pool(plain, { server_tls_mode: 'prefer' }),
          p_require: pool(plain, { server_tls_mode: 'require' }),
          // wrongPg's certificate comes from another CA than the one configured here.
          w_verify_ca_other_ca: pool(wrongName, { server_tls_mode: 'verify-ca' }),
        },
      );
      wrong = await launch(
        { server_tls_ca_cert: wrongName.certs!.caCert, query_wait_timeout: '2s' },
        {
          w_verify_ca: pool(wrongName, { server_tls_mode: 'verify-ca' }),
          w_verify_full: pool(wrongName, { server_tls_mode: 'verify-full' }),
        },
      );
      nodeTls = await launch(
        { server_tls_ca_cert: ssl.certs!.caCert },
        { s_require: pool(ssl, { server_tls_mode: 'require' }), s_verify_full_name: pool(ssl, { server_tls_mode: 'verify-full', server_host: 'localhost' }) },
        { DOORMAN_TLS: 'node' },
      );
    });

    for (const [db, expected] of [
      ['s_disable', false],
      ['s_prefer', true],
      ['s_require', true],
      ['s_verify_ca', true],
      ['s_verify_full', true],
      ['s_verify_full_name', true],
      ['p_prefer', false],
    ] as const) {
      test(`${db}: the PostgreSQL session ${expected ? 'is' : 'is not'} encrypted`, async () => {
        const client = await connect({ connectionString: url(db) });
        try {
          assert.equal(await serverSideSsl(client), expected);
        } finally {
          await client.end();
        }
      });
    }

    test('server_tls_mode require against a server without TLS: FATAL 08006 server login failed', async () => {
      const err = await loginError({ connectionString: url('p_require') });
      assert.equal(err.code, '08006');
      assert.equal(err.message, 'server login failed: the server does not support TLS (server_tls_mode require)');
    });

    test('verify-ca accepts a certificate whose name does not match, when the chain is good', async () => {
      const client = await connect({ connectionString: url('w_verify_ca', 'wrong') });
      try {
        assert.equal(await serverSideSsl(client), true);
      } finally {
        await client.end();
      }
    });

    test('verify-ca refuses a certificate from another CA', async () => {
      const err = await loginError({ connectionString: url('w_verify_ca_other_ca') });
      assert.ok(['08006', '53300'].includes(err.code ?? ''), `${err.code}: ${err.message}`);
      assert.match(`${err.message} ${err.detail ?? ''}`, /self[- ]signed|unable to verify|unable to get local issuer/);
    });

    test('verify-full refuses a certificate whose name does not match the server host', async () => {
      const err = await loginError({ connectionString: url('w_verify_full', 'wrong') });
      assert.ok(['08006', '53300'].includes(err.code ?? ''), `${err.code}: ${err.message}`);
      assert.match(`${err.message} ${err.detail ?? ''}`, /IP address mismatch \(verifying 127\.0\.0\.1\)/);
    });

    test('verify-full through Node\'s TLS (DOORMAN_TLS=node) checks the name too', async () => {
      assert.ok(nodeTls, 'doorman did not start');
      const client = await connect({ connectionString: nodeTls.connectionString(SCRAM_USER.user, SCRAM_USER.password, 's_verify_full_name') });
      try {
        assert.equal(await serverSideSsl(client), true);
      } finally {
        await client.end();
      }
    });

    test('connections to PostgreSQL run TLS through OpenSSL on the shard\'s loop, or Node\'s TLS with DOORMAN_TLS=node', async () => {
      assert.ok(d && nodeTls, 'doorman did not start');
      for (const p of [d, nodeTls]) {
        const client = await connect({ connectionString: p.connectionString(SCRAM_USER.user, SCRAM_USER.password, 's_require') });
        await client.end();
      }
      const modes = (p: DoormanProcess): Set<unknown> => new Set(p.jsonLogs().filter((l) => l.msg === 'server connected').map((l) => l.tls));
      assert.ok(modes(d).has('openssl') && !modes(d).has('node'), [...modes(d)].join());
      assert.deepEqual(modes(nodeTls), new Set(['node']));
      for (const p of [d, nodeTls]) {
        const tlsOf = async (db: string): Promise<string[]> => (await show(p, 'SERVERS')).filter((r) => r.database === db).map((r) => r.tls);
        const sessions = await tlsOf('s_require');
        assert.ok(sessions.length > 0 && sessions.every((t) => /^TLSv1\.3\/TLS_AES_\w+$/.test(t)), sessions.join());
        if (p === d) assert.ok((await tlsOf('s_disable')).every((t) => t === ''));
      }
    });

    test('PostgreSQL ending a TLS server connection mid-query: that client gets FATAL 08006, the next gets a new server', async () => {
      assert.ok(d && nodeTls, 'doorman did not start');
      for (const p of [d, nodeTls]) {
        const connectionString = p.connectionString(SCRAM_USER.user, SCRAM_USER.password, 's_require');
        const victim = await connect({ connectionString });
        const bystander = await connect({ connectionString });
        try {
          const pid = (await victim.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
          // Held in a transaction: the bystander cannot be given the same server.
          await victim.query('begin');
          const sleeping = victim.query('select pg_sleep(30)').then(
            () => null,
            (err: { code?: string; message: string }) => err,
          );
          const server = clusters().sslPg;
          for (let i = 0; (await server.query(`select wait_event from pg_stat_activity where pid = ${pid}`)).trim() !== 'PgSleep'; i++) {
            assert.ok(i < 100, 'the victim query did not start');
            await sleep(50);
          }
          await server.query(`select pg_terminate_backend(${pid})`);
          const err = await sleeping;
          assert.ok(err !== null, 'the query was not interrupted');
          assert.match(`${err.code ?? ''} ${err.message}`, /57P01|08006|terminating connection|server closed the connection/);
          const next = (await bystander.query<{ pid: number; ssl: boolean }>('select pg_backend_pid() as pid, ssl from pg_stat_ssl where pid = pg_backend_pid()')).rows[0];
          assert.notEqual(next.pid, pid);
          assert.equal(next.ssl, true);
        } finally {
          await victim.end().catch(() => undefined);
          await bystander.end();
        }
      }
    });

    test('megabytes cross TLS to PostgreSQL intact both ways, through OpenSSL and through Node\'s TLS', async () => {
      assert.ok(d && nodeTls, 'doorman did not start');
      for (const p of [d, nodeTls]) await crossIntact(p, 's_require', null);
    });
  });
});
