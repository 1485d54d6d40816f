/**
 * Logs at debug level never carry a secret: Doorman runs with SCRAM and md5 users configured by their
 * verifiers (plus plaintext server passwords), clients log in with both methods, fail with wrong passwords,
 * use the admin console; then every captured line is searched for every password and verifier.
 */
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import {
  DOORMAN_ADMIN,
  DOORMAN_ADMIN_DB,
  MD5_USER,
  SCRAM_USER,
  connectPg,
  doormanConfigFor,
  eventually,
  sqlError,
  startDoorman,
  startPostgres,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 120_000;
const WRONG = 'not-the-password-7731';

describe('logs', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;
  const opened: pg.Client[] = [];
  const secrets: string[] = [SCRAM_USER.password, MD5_USER.password, DOORMAN_ADMIN.password, WRONG];

  function d(): DoormanProcess {
    assert.ok(doorman, 'Doorman did not start');
    return doorman;
  }

  async function connect(user: string, password: string, db = 'app'): Promise<pg.Client> {
    const c = await connectPg(d().connectionString(user, password, db));
    opened.push(c);
    return c;
  }

  before(async () => {
    cluster = await startPostgres();
    const verifier = await cluster.query(`select rolpassword from pg_authid where rolname = '${SCRAM_USER.user}'`);
    assert.match(verifier, /^SCRAM-SHA-256\$4096:/);
    const md5 = `md5${createHash('md5').update(MD5_USER.password + MD5_USER.user).digest('hex')}`;
    // The verifier whole and its salt, StoredKey and ServerKey parts.
    secrets.push(verifier, md5, md5.slice(3), ...verifier.split(/[$:]/).filter((p) => p.length >= 16));
    const config = doormanConfigFor(cluster, {
      hba: `host all ${MD5_USER.user} 127.0.0.1/32 md5\nhost all all 127.0.0.1/32 scram-sha-256\n`,
      general: { workers: 2, log_level: 'debug' },
    });
    config.pools.app.users = [
      { username: SCRAM_USER.user, password: verifier, server_password: SCRAM_USER.password, pool_size: 2 },
      { username: MD5_USER.user, password: md5, server_password: MD5_USER.password, pool_size: 2 },
    ];
    doorman = await startDoorman(config);
  });

  after(async () => {
    await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
    await doorman?.stop();
    await cluster?.stop();
  });

  test('no password or verifier in any log line at debug level', async () => {
    const scram = await connect(SCRAM_USER.user, SCRAM_USER.password);
    const md5 = await connect(MD5_USER.user, MD5_USER.password);
    await scram.query('SELECT 1');
    await md5.query('SELECT 1');
    for (const user of [SCRAM_USER.user, MD5_USER.user]) assert.equal((await sqlError(connect(user, WRONG))).code, '28P01');
    assert.equal((await sqlError(connect(DOORMAN_ADMIN.user, WRONG, DOORMAN_ADMIN_DB))).code, '28P01');
    const admin = await connect(DOORMAN_ADMIN.user, DOORMAN_ADMIN.password, DOORMAN_ADMIN_DB);
    await admin.query('SHOW CONFIG');
    await admin.query("SET log_level = 'trace'");
    await admin.query('RELOAD');
    await connect(SCRAM_USER.user, SCRAM_USER.password);
    await scram.end();
    // Both logins, the three failures (with their SQLSTATE), the disconnect and the shards' reload were logged.
    // RELOAD answers before the shards have reloaded: their debug line may come after the disconnect.
    const lines = await eventually(
      async () => d().process.lines(),
      (ls) =>
        ls.filter((l) => l.includes('"sqlstate":"28P01"')).length === 3 &&
        ls.some((l) => l.includes('client closed')) &&
        ls.filter((l) => l.includes('shard reloaded')).length === 2,
      5_000,
      'login failures, a disconnect and both shards reloading logged',
    );
    const json = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const logins = json.filter((l) => l.msg === 'client logged in').map((l) => l.user);
    for (const u of [SCRAM_USER.user, MD5_USER.user, DOORMAN_ADMIN.user]) assert.ok(logins.includes(u), `login of ${u} logged`);
    assert.ok(json.some((l) => l.level === 20), 'debug lines were written');
    assert.ok(json.every((l) => typeof l.shard === 'number' || !String(l.msg).startsWith('client')), 'connection events name their shard');
    for (const secret of secrets) {
      const leaks = lines.filter((l) => l.includes(secret));
      assert.deepEqual(leaks, [], `a log line holds the secret ${secret.slice(0, 6)}...`);
    }
  });
});
