/**
 * The process around the pools: SIGHUP reload (resize, add, remove, invalid config), SIGTERM and SIGINT
 * shutdown, `doorman check`, and PostgreSQL going away underneath.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  MD5_USER,
  SCRAM_USER,
  backendPid,
  checkDoormanConfig,
  clientBackends,
  eventually,
  freePort,
  sqlError,
  startDoorman,
  startPostgres,
  type DoormanConfig,
  type DoormanPoolConfig,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 120_000;

interface Watched {
  client: pg.Client;
  /** SQLSTATEs of the ErrorResponses that arrived outside a query, in order. */
  errors: string[];
  ended: Promise<void>;
}

async function connect(url: string): Promise<pg.Client> {
  return (await watch(url)).client;
}

/** Connects and records the errors that arrive outside a query (FATALs while idle). */
async function watch(url: string): Promise<Watched> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 15_000 });
  const errors: string[] = [];
  // pg also reports the socket closing after a FATAL ("Connection terminated unexpectedly", no code).
  client.on('error', (err: Error & { code?: string }) => {
    if (err.code !== undefined) errors.push(err.code);
  });
  const ended = new Promise<void>((resolve) => client.once('end', resolve));
  await client.connect();
  return { client, errors, ended };
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A proxy in front of PostgreSQL whose open connections can be silenced: a server that is there but no
 * longer answers. Connections made after silence() pass bytes as usual.
 */
async function silenceableProxy(target: { host: string; port: number }): Promise<{ port: number; silence: () => void; close: () => Promise<void> }> {
  const port = await freePort();
  const links: { inbound: net.Socket; outbound: net.Socket; silent: boolean }[] = [];
  const proxy = net.createServer((inbound) => {
    const link = { inbound, outbound: net.connect({ host: target.host, port: target.port }), silent: false };
    links.push(link);
    inbound.on('data', (chunk: Buffer) => link.silent || link.outbound.write(chunk));
    link.outbound.on('data', (chunk: Buffer) => link.silent || inbound.write(chunk));
    for (const [a, b] of [[inbound, link.outbound], [link.outbound, inbound]]) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
  return {
    port,
    silence: () => {
      for (const link of links) link.silent = true;
    },
    close: async () => {
      for (const link of links) link.inbound.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}

/** Log records with this `msg`. */
function logs(d: DoormanProcess, msg: string): Record<string, unknown>[] {
  return d.jsonLogs().filter((l) => l.msg === msg);
}

/** Sends SIGHUP (rewriting the config first) and waits for the outcome record. */
async function reloadAndWait(d: DoormanProcess, config: DoormanConfig, msg: string): Promise<Record<string, unknown>> {
  const seen = logs(d, msg).length;
  await d.reload(config);
  await eventually(async () => logs(d, msg).length, (n) => n > seen, 5_000, `"${msg}" log records`);
  return logs(d, msg)[seen];
}

function refusedConnection(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

describe('lifecycle', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let admin: pg.Client | undefined;
  const started: DoormanProcess[] = [];

  function pgc(): PgCluster {
    assert.ok(cluster, 'PostgreSQL did not start');
    return cluster;
  }

  function pool(users: DoormanPoolConfig['users']): DoormanPoolConfig {
    return { server_host: pgc().host, server_port: pgc().port, server_database: 'app', pool_mode: 'transaction', users };
  }

  function config(pools: DoormanConfig['pools'], general: DoormanConfig['general'] = {}): DoormanConfig {
    return { general: { host: '127.0.0.1', port: 0, pg_hba: 'host all all 127.0.0.1/32 scram-sha-256\n', ...general }, pools };
  }

  async function launch(c: DoormanConfig): Promise<DoormanProcess> {
    const d = await startDoorman(c);
    started.push(d);
    return d;
  }

  function backends(user: string): Promise<number[]> {
    assert.ok(admin);
    return clientBackends(admin, user);
  }

  async function connectAdmin(): Promise<void> {
    await admin?.end().catch(() => undefined);
    admin = new pg.Client({ connectionString: pgc().superuserUrl('app'), connectionTimeoutMillis: 10_000 });
    // A PostgreSQL restart ends this session too; the test that restarts reconnects.
    admin.on('error', () => undefined);
    await admin.connect();
  }

  before(async () => {
    cluster = await startPostgres();
    await connectAdmin();
    await cluster.query('create table lc_t (v int); grant all on lc_t to scram_user, md5_user;', 'app');
  });

  after(async () => {
    await admin?.end().catch(() => undefined);
    await Promise.all(started.map((d) => d.kill('SIGKILL')));
    await cluster?.stop();
  });

  describe('SIGHUP reload', () => {
    let d: DoormanProcess | undefined;
    const scram = (poolSize: number): DoormanPoolConfig['users'][number] => ({ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: poolSize });
    const extraPool = (): DoormanPoolConfig => pool([{ username: MD5_USER.user, password: MD5_USER.password, pool_size: 2 }]);

    function doorman(): DoormanProcess {
      assert.ok(d, 'doorman did not start');
      return d;
    }

    before(async () => {
      d = await launch(config({ app: pool([scram(2)]) }, { query_wait_timeout: '3s' }));
    });

    test('changing pool_size keeps the existing server connections and takes effect at once', async () => {
      const url = doorman().connectionString(SCRAM_USER.user, SCRAM_USER.password);
      const two = await Promise.all([connect(url), connect(url)]);
      for (const c of two) await c.query('begin');
      const oldPids = (await Promise.all(two.map(backendPid))).sort();
      await Promise.all(two.map((c) => c.query('commit')));
      await Promise.all(two.map((c) => c.end()));
      assert.deepEqual(await backends('scram_user'), oldPids);

      const record = await reloadAndWait(doorman(), config({ app: pool([scram(4)]) }, { query_wait_timeout: '3s' }), 'configuration reloaded');
      assert.deepEqual([record.kept, record.replaced, record.added, record.removed], [1, 0, 0, 0]);
      assert.deepEqual(await backends('scram_user'), oldPids, 'server connections were replaced');

      const four = await Promise.all(Array.from({ length: 4 }, () => connect(url)));
      try {
        // Four transactions at once: with the old size two of them would wait.
        await within(Promise.all(four.map((c) => c.query('begin'))), 2_000, 'four concurrent transactions');
        const pids = await Promise.all(four.map(backendPid));
        assert.equal(new Set(pids).size, 4);
        for (const p of oldPids) assert.ok(pids.includes(p), `old backend ${p} not reused`);
        await Promise.all(four.map((c) => c.query('commit')));
      } finally {
        await Promise.all(four.map((c) => c.end()));
      }
    });

    test('adding a pool makes it usable', async () => {
      const url = doorman().connectionString(MD5_USER.user, MD5_USER.password, 'extra');
      assert.equal((await sqlError(connect(url))).code, '3D000');
      const record = await reloadAndWait(doorman(), config({ app: pool([scram(4)]), extra: extraPool() }, { query_wait_timeout: '3s' }), 'configuration reloaded');
      assert.deepEqual([record.kept, record.added, record.removed], [1, 1, 0]);
      const client = await connect(url);
      try {
        const r = await client.query<{ u: string; db: string }>('select current_user as u, current_database() as db');
        assert.deepEqual(r.rows, [{ u: 'md5_user', db: 'app' }]);
      } finally {
        await client.end();
      }
    });

    test('removing a pool drains it: a transaction in flight finishes, then its clients get 57P01', async () => {
      const url = doorman().connectionString(MD5_USER.user, MD5_USER.password, 'extra');
      const idle = await connect(url);
      const busy = await connect(url);
      try {
        await busy.query('begin');
        await busy.query('insert into lc_t values (100)');
        await idle.query('select 1');
        assert.equal((await backends('md5_user')).length, 2);

        const record = await reloadAndWait(doorman(), config({ app: pool([scram(4)]) }, { query_wait_timeout: '3s' }), 'configuration reloaded');
        assert.deepEqual([record.kept, record.removed], [1, 1]);
        // The idle server closed at once; the busy one stays with its transaction.
        await eventually(() => backends('md5_user'), (pids) => pids.length === 1, 3_000, 'md5_user backends after removal');
        await busy.query('insert into lc_t values (101)');
        await busy.query('commit');
        assert.equal(await pgc().query('select count(*) from lc_t where v >= 100', 'app'), '2');

        for (const c of [busy, idle]) {
          const err = await sqlError(c.query('select 1'));
          assert.equal(err.code, '57P01');
          assert.equal(err.message, 'pool "extra/md5_user" was removed from the configuration');
        }
        await eventually(() => backends('md5_user'), (pids) => pids.length === 0, 3_000, 'md5_user backends after draining');
        assert.equal((await sqlError(connect(url))).code, '3D000');
      } finally {
        await Promise.all([idle.end().catch(() => undefined), busy.end().catch(() => undefined)]);
      }
    });

    test('an invalid config on reload is refused and the running one stays', async () => {
      const url = doorman().connectionString(SCRAM_USER.user, SCRAM_USER.password);
      const kept = await connect(url);
      try {
        const record = await reloadAndWait(doorman(), config({ app: pool([scram(0)]) }), 'reload failed; keeping the current configuration');
        assert.match(String(record.err), /pools\.app\.users\[0\]\.pool_size/);
        assert.equal(doorman().running, true);
        assert.deepEqual((await kept.query('select 1 as v')).rows, [{ v: 1 }]);
        // Still pool_size 4, still no `extra`.
        const four = await Promise.all(Array.from({ length: 4 }, () => connect(url)));
        try {
          await within(Promise.all(four.map((c) => c.query('begin'))), 2_000, 'four concurrent transactions');
          await Promise.all(four.map((c) => c.query('commit')));
        } finally {
          await Promise.all(four.map((c) => c.end()));
        }
        assert.equal((await sqlError(connect(doorman().connectionString(MD5_USER.user, MD5_USER.password, 'extra')))).code, '3D000');
      } finally {
        await kept.end();
      }
    });
  });

  describe('shutdown', () => {
    test('SIGTERM: idle clients get 57P01 at once, a transaction may COMMIT and then gets 57P01, exit 0', async () => {
      const d = await launch(config({ app: pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 3 }]) }, { shutdown_timeout: '10s' }));
      const url = d.connectionString(SCRAM_USER.user, SCRAM_USER.password);
      const inTx = await watch(url);
      const idle = await watch(url);
      await idle.client.query('select 1');
      await inTx.client.query('begin');
      await inTx.client.query('insert into lc_t values (1)');

      assert.equal(d.process.signal('SIGTERM'), true);
      await within(idle.ended, 3_000, 'idle client closed');
      assert.deepEqual(idle.errors, ['57P01']);
      assert.equal(await eventually(() => refusedConnection(d.port), (r) => r, 3_000, 'listener closed'), true);
      assert.equal(d.running, true, 'exited while a transaction was open');

      await inTx.client.query('insert into lc_t values (2)');
      await inTx.client.query('commit');
      await within(inTx.ended, 3_000, 'client closed after its transaction');
      assert.deepEqual(inTx.errors, ['57P01']);
      const exit = await within(d.exited, 5_000, 'doorman exit');
      assert.deepEqual([exit.code, exit.signal], [0, null]);
      assert.equal(await pgc().query('select count(*) from lc_t where v in (1, 2)', 'app'), '2');
      assert.ok(logs(d, 'shutting down').length === 1);
    });

    test('SIGINT exits promptly, even with a query running', async () => {
      const d = await launch(config({ app: pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 3 }]) }, { shutdown_timeout: '30s' }));
      const url = d.connectionString(SCRAM_USER.user, SCRAM_USER.password);
      const running = await watch(url);
      const idle = await watch(url);
      await idle.client.query('select 1');
      const pid = await backendPid(running.client);
      const query = running.client.query('select pg_sleep(10)').then(() => 'finished', (err: { code?: string }) => err.code ?? 'closed');
      await sleep(200);
      const t0 = Date.now();
      assert.equal(d.process.signal('SIGINT'), true);
      const exit = await within(d.exited, 3_000, 'doorman exit after SIGINT');
      assert.deepEqual([exit.code, exit.signal], [0, null]);
      assert.ok(Date.now() - t0 < 2_000, `exited after ${Date.now() - t0} ms`);
      assert.notEqual(await query, 'finished');
      await within(Promise.all([running.ended, idle.ended]), 3_000, 'clients closed');
      assert.deepEqual(idle.errors, ['57P01']);
      assert.ok(admin);
      await admin.query('select pg_cancel_backend($1)', [pid]);
    });
  });

  describe('doorman check', () => {
    test('a broken config exits 2 naming every offending field path', async () => {
      const result = await checkDoormanConfig({
        general: { port: 70000, query_wait_timeout: 'soon' },
        pools: { app: { server_host: '127.0.0.1', users: [{ username: 'u', password: 'p', pool_size: 0 }] } },
      });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /^ {2}general\.port: /m);
      assert.match(result.stderr, /^ {2}general\.query_wait_timeout: /m);
      assert.match(result.stderr, /^ {2}pools\.app\.users\[0\]\.pool_size: /m);
    });

    test('malformed YAML exits 2; a valid config exits 0', async () => {
      const broken = await checkDoormanConfig('general: [unclosed\npools: {}\n');
      assert.equal(broken.code, 2);
      assert.notEqual(broken.stderr, '');
      const ok = await checkDoormanConfig(config({ app: pool([{ username: 'u', password: 'p', pool_size: 1 }]) }, { port: 6432 }));
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /: OK \(1 pool\(s\), 1 user\(s\)\)\n$/);
    });
  });

  describe('dead server', () => {
    test('nothing listening: a client waits query_wait_timeout, then 53300 naming the connect error', async () => {
      const port = await freePort();
      const d = await launch(config({ app: { ...pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 2 }]), server_port: port } }, { query_wait_timeout: '1s' }));
      const t0 = Date.now();
      const err = await sqlError(connect(d.connectionString(SCRAM_USER.user, SCRAM_USER.password)));
      assert.equal(err.code, '53300');
      assert.match(err.detail ?? '', /ECONNREFUSED/);
      assert.ok(Date.now() - t0 >= 900 && Date.now() - t0 < 4_000, `after ${Date.now() - t0} ms`);
      assert.equal(d.running, true);
    });

    test('a server that comes up while clients wait serves them (connects are retried)', async () => {
      const { host, port: pgPort } = pgc();
      const port = await freePort();
      const d = await launch(config({ app: { ...pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 2 }]), server_port: port } }, { query_wait_timeout: '8s' }));
      // A forwarding proxy stands in for a PostgreSQL that starts late.
      const proxy = net.createServer((inbound) => {
        const outbound = net.connect({ host, port: pgPort });
        inbound.pipe(outbound).pipe(inbound);
        inbound.on('error', () => outbound.destroy());
        outbound.on('error', () => inbound.destroy());
      });
      try {
        const t0 = Date.now();
        const client = connect(d.connectionString(SCRAM_USER.user, SCRAM_USER.password));
        await sleep(1_500);
        await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
        const c = await client;
        try {
          assert.ok(Date.now() - t0 >= 1_400, `logged in after ${Date.now() - t0} ms`);
          assert.deepEqual((await c.query('select current_user as u')).rows, [{ u: 'scram_user' }]);
        } finally {
          await c.end();
        }
      } finally {
        await d.kill('SIGKILL');
        await new Promise<void>((resolve) => proxy.close(() => resolve()));
      }
    });

    test('a server that stops answering is caught by the idle health check; the client gets a fresh server', async () => {
      const { port, silence, close } = await silenceableProxy(pgc());
      const d = await launch(
        config(
          { app: { ...pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 2 }]), server_port: port } },
          { server_idle_check_timeout: '500ms', connect_timeout: '1s', query_wait_timeout: '3s' },
        ),
      );
      const client = await connect(d.connectionString(SCRAM_USER.user, SCRAM_USER.password));
      try {
        const first = await backendPid(client);
        await sleep(1_000);
        // Idle past the check delay and healthy: checked and reused.
        assert.equal(await backendPid(client), first);
        await sleep(1_000);
        silence();
        const t0 = Date.now();
        const next = await within(backendPid(client), 6_000, 'query after the server went silent');
        assert.notEqual(next, first);
        assert.ok(Date.now() - t0 < 6_000);
      } finally {
        await client.end().catch(() => undefined);
        await d.kill('SIGKILL');
        await close();
      }
    });

    test('a server that stops answering while the pool syncs it for a client: the client gets a fresh server', async () => {
      const { port, silence, close } = await silenceableProxy(pgc());
      const d = await launch(
        config(
          { app: { ...pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 1 }]), server_port: port } },
          // One shard and one server: A's query leaves it with A's application_name, so B's needs a sync first.
          { connect_timeout: '1s', query_wait_timeout: '5s', workers: 1 },
        ),
      );
      const url = d.connectionString(SCRAM_USER.user, SCRAM_USER.password);
      const a = await connect(url);
      // Another application_name: the pool sets it on the server before B's query goes there.
      const b = await connect(`${url}?application_name=synced`);
      try {
        const first = await backendPid(a);
        silence();
        const t0 = Date.now();
        const next = await within(backendPid(b), 6_000, 'query whose server went silent during the sync');
        assert.notEqual(next, first);
        assert.deepEqual((await b.query('show application_name')).rows, [{ application_name: 'synced' }]);
        assert.ok(Date.now() - t0 < 6_000);
      } finally {
        await Promise.all([a.end().catch(() => undefined), b.end().catch(() => undefined)]);
        await d.kill('SIGKILL');
        await close();
      }
    });

    test('PostgreSQL restarts: the client in a transaction gets 08006, an idle client just gets a new server', async () => {
      const d = await launch(config({ app: pool([{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 3 }]) }));
      const url = d.connectionString(SCRAM_USER.user, SCRAM_USER.password);
      const idle = await watch(url);
      const inTx = await watch(url);
      const before = await backendPid(idle.client);
      await inTx.client.query('begin');
      await backendPid(inTx.client);
      await pgc().restart();
      await connectAdmin();
      await within(inTx.ended, 5_000, 'the client in a transaction closed');
      assert.equal(inTx.errors[inTx.errors.length - 1], '08006', inTx.errors.join(','));
      const after = await backendPid(idle.client);
      assert.notEqual(after, before);
      assert.deepEqual(idle.errors, []);
      assert.equal(d.running, true);
    });
  });
});
