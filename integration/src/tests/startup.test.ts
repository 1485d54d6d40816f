/**
 * What a client sees between connecting and its first ReadyForQuery: the ParameterStatus set, BackendKeyData,
 * startup parameters reaching PostgreSQL, protocol version negotiation and the SSL/GSS encryption requests.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import {
  MD5_USER,
  RawClient,
  SCRAM_USER,
  cstrings,
  doormanConfigFor,
  errorFields,
  fe,
  startDoorman,
  startPostgres,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 90_000;

// ---- pg helpers ----

interface PgLogin {
  client: pg.Client;
  status: Map<string, string>;
}

async function connectCollecting(config: pg.ClientConfig): Promise<PgLogin> {
  const client = new pg.Client({ connectionTimeoutMillis: 10_000, ...config });
  client.on('error', () => undefined);
  const status = new Map<string, string>();
  client.connection.on('parameterStatus', (msg: { parameterName: string; parameterValue: string }) => {
    status.set(msg.parameterName, msg.parameterValue);
  });
  await client.connect();
  return { client, status };
}

async function show(client: pg.Client, name: string): Promise<string> {
  const r = await client.query<Record<string, string>>(`show ${name}`);
  return Object.values(r.rows[0])[0];
}

describe('startup', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;

  function servers(): { cluster: PgCluster; doorman: DoormanProcess } {
    assert.ok(cluster && doorman, 'servers did not start');
    return { cluster, doorman };
  }

  before(async () => {
    cluster = await startPostgres();
    // md5 rules so the raw-socket clients here need no SCRAM; pool_size 1 and one worker shard make server reuse certain.
    doorman = await startDoorman(
      doormanConfigFor(cluster, { users: [SCRAM_USER, MD5_USER], poolSize: 1, hba: 'host all all 127.0.0.1/32 md5\n', general: { workers: 1 } }),
    );
  });

  after(async () => {
    await doorman?.stop();
    await cluster?.stop();
  });

  test('ParameterStatus set equals what PostgreSQL sends directly (first and later clients)', async () => {
    const { cluster: pgc, doorman: d } = servers();
    const config = { application_name: 'startup-test' };
    const direct = await connectCollecting({ connectionString: pgc.connectionString(SCRAM_USER.user, SCRAM_USER.password), ...config });
    await direct.client.end();
    assert.equal(direct.status.get('server_version')?.startsWith('15.'), true, JSON.stringify([...direct.status]));
    assert.ok(direct.status.size >= 12, `PostgreSQL sent ${direct.status.size} parameters`);
    for (let i = 0; i < 3; i++) {
      const via = await connectCollecting({ connectionString: d.connectionString(SCRAM_USER.user, SCRAM_USER.password), ...config });
      try {
        assert.deepEqual(Object.fromEntries([...via.status].sort()), Object.fromEntries([...direct.status].sort()), `client ${i}`);
      } finally {
        await via.client.end();
      }
    }
  });

  test('raw login: ParameterStatus..., one BackendKeyData, ReadyForQuery idle; same parameters as PostgreSQL', async () => {
    const { cluster: pgc, doorman: d } = servers();
    const params = { user: MD5_USER.user, database: 'app', application_name: 'raw-client' };
    const direct = await RawClient.open(pgc.port);
    let expected: Map<string, string>;
    try {
      direct.send(fe.startup(params));
      expected = (await direct.login(MD5_USER.user, MD5_USER.password)).status;
    } finally {
      direct.close();
    }
    const wire = await RawClient.open(d.port);
    try {
      wire.send(fe.startup(params));
      const { messages, status } = await wire.login(MD5_USER.user, MD5_USER.password);
      const afterOk = messages.slice(messages.findIndex((m) => m.type === 'R' && m.body.readInt32BE(0) === 0) + 1);
      assert.match(afterOk.map((m) => m.type).join(''), /^S+KZ$/);
      assert.equal(afterOk.find((m) => m.type === 'K')!.body.length, 8);
      assert.equal(afterOk[afterOk.length - 1].body.toString(), 'I');
      assert.deepEqual(Object.fromEntries([...status].sort()), Object.fromEntries([...expected].sort()));
    } finally {
      wire.close();
    }
  });

  test('BackendKeyData is present and distinct per client', async () => {
    const { doorman: d } = servers();
    const a = await connectCollecting({ connectionString: d.connectionString(SCRAM_USER.user, SCRAM_USER.password) });
    const b = await connectCollecting({ connectionString: d.connectionString(SCRAM_USER.user, SCRAM_USER.password) });
    try {
      const keys = [a.client, b.client].map((c) => (c as unknown as { processID: number | null; secretKey: number | null }));
      for (const k of keys) {
        assert.equal(typeof k.processID, 'number');
        assert.equal(typeof k.secretKey, 'number');
      }
      assert.notEqual(keys[0].processID, keys[1].processID);
    } finally {
      await Promise.all([a.client.end(), b.client.end()]);
    }
  });

  test('application_name and options=-c reach the server, also on a server another client used before', async () => {
    const { doorman: d } = servers();
    const url = d.connectionString(SCRAM_USER.user, SCRAM_USER.password);
    const plain = await connectCollecting({ connectionString: url, application_name: 'plain-client' });
    const withOptions = await connectCollecting({
      connectionString: url,
      application_name: 'alpha',
      options: '-c search_path=s1 -c statement_timeout=4321',
    });
    try {
      const plainPid = (await plain.client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      assert.equal(await show(plain.client, 'application_name'), 'plain-client');
      // pool_size 1: the same PostgreSQL backend serves both clients in turn.
      const pid = (await withOptions.client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      assert.equal(pid, plainPid);
      assert.equal(withOptions.status.get('application_name'), 'alpha');
      assert.equal(await show(withOptions.client, 'application_name'), 'alpha');
      assert.equal(await show(withOptions.client, 'search_path'), 's1');
      assert.equal(await show(withOptions.client, 'statement_timeout'), '4321ms');
      // Back to the first client on the same backend: its own settings, PostgreSQL's defaults for the rest.
      assert.equal(await show(plain.client, 'application_name'), 'plain-client');
      assert.equal(await show(plain.client, 'search_path'), '"$user", public');
      assert.equal(await show(plain.client, 'statement_timeout'), '0');
      assert.equal((await plain.client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid, plainPid);
    } finally {
      await Promise.all([plain.client.end(), withOptions.client.end()]);
    }
  });

  test('a list-valued options=-c setting (search_path=s1,public) arrives as PostgreSQL parses it', async () => {
    const { cluster: pgc, doorman: d } = servers();
    const options = '-c search_path=s1,public';
    const direct = await connectCollecting({ connectionString: pgc.connectionString(SCRAM_USER.user, SCRAM_USER.password), options });
    const directSearchPath = await show(direct.client, 'search_path');
    const schemasSql = "select array_to_string(current_schemas(false), '|') as s";
    const directSchemas = (await direct.client.query<{ s: string }>(schemasSql)).rows[0].s;
    await direct.client.end();
    assert.equal(directSearchPath, 's1,public');
    assert.equal(directSchemas, 'public');

    const via = await connectCollecting({ connectionString: d.connectionString(SCRAM_USER.user, SCRAM_USER.password), options });
    try {
      assert.equal(await show(via.client, 'search_path'), directSearchPath);
      // Two schemas (s1 does not exist, public does), not one schema named "s1,public".
      assert.equal((await via.client.query<{ s: string }>(schemasSql)).rows[0].s, directSchemas);
    } finally {
      await via.client.end();
    }
  });

  test('protocol 3.2 -> NegotiateProtocolVersion (3.0, no options) then a normal login', async () => {
    const { doorman: d } = servers();
    const wire = await RawClient.open(d.port);
    try {
      wire.send(fe.startup({ user: MD5_USER.user, database: 'app' }, 3, 2));
      const first = await wire.message();
      assert.equal(first?.type, 'v');
      assert.equal(first.body.readInt32BE(0), 0, 'newest minor version supported');
      assert.equal(first.body.readInt32BE(4), 0, 'unrecognized protocol options');
      await wire.login(MD5_USER.user, MD5_USER.password);
      assert.deepEqual(await wire.simpleQuery('select 40 + 2'), [['42']]);
    } finally {
      wire.close();
    }
  });

  test('_pq_ protocol options are listed in NegotiateProtocolVersion and the login proceeds', async () => {
    const { doorman: d } = servers();
    const wire = await RawClient.open(d.port);
    try {
      wire.send(fe.startup({ user: MD5_USER.user, database: 'app', '_pq_.test_option': 'on' }));
      const first = await wire.message();
      assert.equal(first?.type, 'v');
      assert.equal(first.body.readInt32BE(0), 0);
      assert.equal(first.body.readInt32BE(4), 1);
      assert.deepEqual(cstrings(first.body, 8), ['_pq_.test_option']);
      await wire.login(MD5_USER.user, MD5_USER.password);
      assert.deepEqual(await wire.simpleQuery('select current_user'), [['md5_user']]);
    } finally {
      wire.close();
    }
  });

  test('GSSENCRequest -> N, then a normal startup on the same socket', async () => {
    const { doorman: d } = servers();
    const wire = await RawClient.open(d.port);
    try {
      wire.send(fe.gssencRequest());
      assert.equal(await wire.byte(), 'N'.charCodeAt(0));
      wire.send(fe.startup({ user: MD5_USER.user, database: 'app' }));
      await wire.login(MD5_USER.user, MD5_USER.password);
      assert.deepEqual(await wire.simpleQuery("select 'gss-fallback'"), [['gss-fallback']]);
    } finally {
      wire.close();
    }
  });

  test('SSLRequest with TLS disabled -> N, then a normal startup on the same socket', async () => {
    const { doorman: d } = servers();
    const wire = await RawClient.open(d.port);
    try {
      wire.send(fe.sslRequest());
      assert.equal(await wire.byte(), 'N'.charCodeAt(0));
      wire.send(fe.startup({ user: MD5_USER.user, database: 'app' }));
      await wire.login(MD5_USER.user, MD5_USER.password);
      assert.deepEqual(await wire.simpleQuery("select 'plain'"), [['plain']]);
    } finally {
      wire.close();
    }
  });

  test('GSSENCRequest, then SSLRequest, then startup (what libpq does with gssencmode=prefer)', async () => {
    const { doorman: d } = servers();
    const wire = await RawClient.open(d.port);
    try {
      wire.send(fe.gssencRequest());
      assert.equal(await wire.byte(), 'N'.charCodeAt(0));
      wire.send(fe.sslRequest());
      assert.equal(await wire.byte(), 'N'.charCodeAt(0));
      wire.send(fe.startup({ user: MD5_USER.user, database: 'app' }));
      await wire.login(MD5_USER.user, MD5_USER.password);
      assert.deepEqual(await wire.simpleQuery('select 1'), [['1']]);
    } finally {
      wire.close();
    }
  });

  test('protocol 4.0 -> FATAL 08P01 and close', async () => {
    const { doorman: d } = servers();
    const wire = await RawClient.open(d.port);
    try {
      wire.send(fe.startup({ user: MD5_USER.user, database: 'app' }, 4, 0));
      const msgs = await wire.rest();
      assert.deepEqual(msgs.map((m) => m.type), ['E']);
      const f = errorFields(msgs[0].body);
      assert.equal(f.S, 'FATAL');
      assert.equal(f.C, '08P01');
      assert.match(f.M, /unsupported frontend protocol 4\.0/);
    } finally {
      wire.close();
    }
  });

  test('replication=database -> FATAL 08P01', async () => {
    const { doorman: d } = servers();
    const wire = await RawClient.open(d.port);
    try {
      wire.send(fe.startup({ user: MD5_USER.user, database: 'app', replication: 'database' }));
      const msgs = await wire.rest();
      assert.deepEqual(msgs.map((m) => m.type), ['E']);
      assert.equal(errorFields(msgs[0].body).C, '08P01');
    } finally {
      wire.close();
    }
  });

  test('an invalid startup setting fails the login as PostgreSQL would', async () => {
    const { cluster: pgc, doorman: d } = servers();
    const options = '-c statement_timeout=notanumber';
    const direct = new pg.Client({ connectionString: pgc.connectionString(SCRAM_USER.user, SCRAM_USER.password), options, connectionTimeoutMillis: 10_000 });
    direct.on('error', () => undefined);
    const directErr = await direct.connect().then(() => undefined, (e: { code?: string }) => e.code);
    await direct.end().catch(() => undefined);
    assert.equal(directErr, '22023');
    const via = await connectCollecting({ connectionString: d.connectionString(SCRAM_USER.user, SCRAM_USER.password), options })
      .then(async (l) => {
        // The login may succeed before the setting is applied; the first query then fails.
        try {
          await l.client.query('select 1');
          return 'no error';
        } catch (err) {
          return (err as { code?: string }).code;
        } finally {
          await l.client.end().catch(() => undefined);
        }
      }, (e: { code?: string }) => e.code);
    assert.equal(via, '22023');
  });
});

describe('client_login_timeout', { timeout: SUITE_TIMEOUT_MS }, () => {
  test('a client that does not log in within it is disconnected; a logged-in client stays', async () => {
    const cluster = await startPostgres();
    let doorman: DoormanProcess | undefined;
    const wires: RawClient[] = [];
    try {
      doorman = await startDoorman(
        doormanConfigFor(cluster, { users: [MD5_USER], hba: 'host all all 127.0.0.1/32 md5\n', general: { client_login_timeout: '1s' } }),
      );
      const silent = await RawClient.open(doorman.port);
      const unanswered = await RawClient.open(doorman.port);
      wires.push(silent, unanswered);
      unanswered.send(fe.startup({ user: MD5_USER.user, database: 'app' }));
      // The password request arrives; the client never answers it.
      assert.equal((await unanswered.message())?.type, 'R');
      const loggedIn = await RawClient.open(doorman.port);
      wires.push(loggedIn);
      loggedIn.send(fe.startup({ user: MD5_USER.user, database: 'app' }));
      await loggedIn.login(MD5_USER.user, MD5_USER.password);
      const started = Date.now();
      // PostgreSQL's authentication_timeout closes without a message too.
      assert.deepEqual(await silent.rest(5_000), []);
      assert.deepEqual(await unanswered.rest(5_000), []);
      assert.ok(silent.ended && unanswered.ended, 'both were disconnected');
      assert.ok(Date.now() - started < 4_000, `disconnected after ${Date.now() - started} ms`);
      await new Promise((r) => setTimeout(r, 1_500));
      assert.deepEqual(await loggedIn.rows('select 1'), [['1']]);
    } finally {
      for (const w of wires) w.close();
      await doorman?.stop();
      await cluster.stop();
    }
  });
});
