/**
 * `doorman generate` against PostgreSQL 15: the generated config passes `doorman check`, carries the roles'
 * verifiers, and Doorman started on it logs a client in with SCRAM against the copied verifier.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { parse } from 'yaml';
import {
  DOORMAN_CLI,
  MD5_USER,
  REPO_ROOT,
  SCRAM_USER,
  SUPERUSER,
  makeTempDir,
  run,
  startDoorman,
  startPostgres,
  type DoormanConfig,
  type PgCluster,
  type TempDir,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 90_000;
const PASSWORD_ENV = 'PGPASSWORD_GEN';

interface GeneratedUser {
  username: string;
  password: string;
  server_password?: string;
}

describe('doorman generate', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster;
  let tmp: TempDir;

  before(async () => {
    cluster = await startPostgres();
    tmp = await makeTempDir('doorman-generate', { forServiceUser: false });
  });

  after(async () => {
    await cluster?.stop();
    await tmp?.remove();
  });

  function generate(password: string, output: string): ReturnType<typeof run> {
    const args = ['generate', '--host', cluster.host, '--port', String(cluster.port), '--user', SUPERUSER.user];
    return run(process.execPath, [DOORMAN_CLI, ...args, '--password-env', PASSWORD_ENV, '--output', output], {
      cwd: REPO_ROOT,
      env: { [PASSWORD_ENV]: password },
      timeoutMs: 30_000,
    });
  }

  test('writes a config that checks, copies verifiers and serves a SCRAM login', async () => {
    const file = path.join(tmp.path, 'pools.yaml');
    const gen = await generate(SUPERUSER.password, file);
    assert.equal(gen.code, 0, gen.stderr);
    assert.equal(gen.stdout, '');
    assert.equal(gen.stderr.includes(SUPERUSER.password), false);
    assert.equal((await stat(file)).mode & 0o777, 0o600);

    const check = await run(process.execPath, [DOORMAN_CLI, 'check', file], { cwd: REPO_ROOT, timeoutMs: 30_000 });
    assert.equal(check.code, 0, check.stderr);
    assert.equal(check.stdout, `${file}: OK (2 pool(s), 6 user(s))\n`);

    const text = await readFile(file, 'utf8');
    assert.equal(text.includes(SUPERUSER.password), false);
    const config = parse(text) as DoormanConfig;
    assert.deepEqual(Object.keys(config.pools).sort(), ['app', 'postgres']);
    const app = config.pools.app!;
    assert.equal(app.server_host, cluster.host);
    assert.equal(app.server_port, cluster.port);
    assert.equal(app.pool_mode, 'transaction');
    const users = app.users as GeneratedUser[];
    assert.deepEqual(users.map((u) => u.username), [MD5_USER.user, SUPERUSER.user, SCRAM_USER.user]);
    const byName = new Map(users.map((u) => [u.username, u]));
    assert.match(byName.get(SCRAM_USER.user)!.password, /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    assert.match(byName.get(MD5_USER.user)!.password, /^md5[0-9a-f]{32}$/);
    for (const u of users) assert.equal(u.server_password, 'CHANGE-ME');
    assert.match(text, /# superuser\n {6}- username: "postgres"\n/);

    // The operator's step: give scram_user's server login its real password.
    byName.get(SCRAM_USER.user)!.server_password = SCRAM_USER.password;
    const doorman = await startDoorman({ ...config, general: { ...config.general, port: 0 } });
    try {
      const client = new pg.Client({
        connectionString: doorman.connectionString(SCRAM_USER.user, SCRAM_USER.password, 'app'),
        connectionTimeoutMillis: 10_000,
      });
      client.on('error', () => undefined);
      await client.connect();
      try {
        const r = await client.query<{ one: number }>('select 1 as one');
        assert.deepEqual(r.rows, [{ one: 1 }]);
      } finally {
        await client.end();
      }
    } finally {
      await doorman.stop();
    }
  });

  test('a wrong password exits 2 with a clear message and writes nothing', async () => {
    const file = path.join(tmp.path, 'wrong.yaml');
    const gen = await generate('not-the-password', file);
    assert.equal(gen.code, 2);
    assert.equal(gen.stdout, '');
    assert.equal(
      gen.stderr,
      `doorman: cannot connect to PostgreSQL at ${cluster.host}:${cluster.port} as "postgres" (database "postgres"): ` +
        'password authentication failed for user "postgres"\n',
    );
    await assert.rejects(stat(file), { code: 'ENOENT' });
  });
});
