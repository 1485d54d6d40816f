/**
 * Hostile and broken input on raw sockets: garbage, absurd lengths, oversized messages, a client that stops
 * reading, and a server that dies under a client. Doorman answers 08P01/08006 or closes, and keeps serving.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  RawClient,
  SCRAM_USER,
  connectPg,
  dataRow,
  errorFields,
  eventually,
  fe,
  int32,
  startDoorman,
  startPostgres,
  type DoormanConfig,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 120_000;
const MAX_MESSAGE_SIZE = 1024 * 1024;

/** VmRSS of a process in bytes. */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Deterministic pseudo-random bytes (xorshift32), so a failure can be replayed. */
function noise(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

describe('bad input', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;
  let admin: pg.Client | undefined;

  function servers(): { doorman: DoormanProcess; admin: pg.Client } {
    assert.ok(cluster && doorman && admin, 'servers did not start');
    return { doorman, admin };
  }

  function url(): string {
    return servers().doorman.connectionString(SCRAM_USER.user, SCRAM_USER.password);
  }

  async function loggedIn(): Promise<RawClient> {
    const wire = await RawClient.open(servers().doorman.port);
    wire.send(fe.startup({ user: SCRAM_USER.user, database: 'app' }));
    await wire.login(SCRAM_USER.user, SCRAM_USER.password);
    return wire;
  }

  /** The pooler is alive and serves a normal client. */
  async function stillServing(): Promise<void> {
    const { doorman: d } = servers();
    assert.equal(d.running, true, `doorman exited:\n${d.output()}`);
    const client = await connectPg(url());
    try {
      assert.deepEqual((await client.query('select 42 as v')).rows, [{ v: 42 }]);
    } finally {
      await client.end();
    }
  }

  /** What a hostile client gets: at most one FATAL 08P01, then the connection is closed. */
  async function refused(wire: RawClient, what: string, message?: RegExp): Promise<void> {
    const msgs = await wire.rest(5_000);
    assert.equal(wire.ended, true, `${what}: not closed`);
    assert.ok(msgs.length <= 1, `${what}: got ${msgs.map((m) => m.type).join('')}`);
    if (msgs.length === 1) {
      assert.equal(msgs[0].type, 'E', what);
      const f = errorFields(msgs[0].body);
      assert.deepEqual([f.S, f.C], ['FATAL', '08P01'], `${what}: ${f.M}`);
      if (message) assert.match(f.M, message, what);
    } else {
      assert.equal(message, undefined, `${what}: closed without the expected error`);
    }
  }

  async function backendsRunning(sql: string): Promise<number[]> {
    const r = await servers().admin.query<{ pid: number }>('select pid from pg_stat_activity where query = $1 and usename = $2', [sql, SCRAM_USER.user]);
    return r.rows.map((row) => row.pid);
  }

  before(async () => {
    cluster = await startPostgres();
    const config: DoormanConfig = {
      general: { host: '127.0.0.1', port: 0, max_message_size: '1MB', pg_hba: 'host all all 127.0.0.1/32 md5\n' },
      pools: {
        app: { server_host: cluster.host, server_port: cluster.port, users: [{ username: SCRAM_USER.user, password: SCRAM_USER.password, pool_size: 4 }] },
      },
    };
    doorman = await startDoorman(config);
    admin = new pg.Client({ connectionString: cluster.superuserUrl('app'), connectionTimeoutMillis: 10_000 });
    await admin.connect();
  });

  after(async () => {
    await admin?.end().catch(() => undefined);
    await doorman?.stop();
    await cluster?.stop();
  });

  test('garbage before the startup packet -> 08P01 or a clean close, never a crash', async () => {
    const inputs: [string, Buffer][] = [
      ['HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')],
      ['TLS ClientHello', Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]), noise(7, 64)])],
      ['negative length', Buffer.alloc(16, 0xff)],
      ['zero length', Buffer.alloc(8)],
      ['unknown request code', Buffer.concat([int32(8), int32(12345678)])],
      ['length shorter than the header', Buffer.concat([int32(3), int32(196608)])],
      ['unterminated parameters', Buffer.concat([int32(20), int32(196608), Buffer.from('user\0scram_u')])],
      ['half a startup packet, then EOF', Buffer.concat([int32(40), int32(196608), Buffer.from('user\0')])],
      ['noise 1', noise(1, 300)],
      ['noise 2', noise(2, 5000)],
    ];
    for (const [what, bytes] of inputs) {
      const wire = await RawClient.open(servers().doorman.port);
      try {
        wire.send(bytes);
        // A partial packet is legitimately waited for; the peer going away must then close it.
        await sleep(300);
        if (!wire.ended) wire.socket.end();
        await refused(wire, what);
      } finally {
        wire.close();
      }
    }
    await stillServing();
  });

  test('a startup packet claiming 100 MB is refused at once', async () => {
    const wire = await RawClient.open(servers().doorman.port);
    try {
      const t0 = Date.now();
      wire.send(int32(100 * 1024 * 1024), int32(196608), Buffer.from('user\0scram_user\0'));
      await refused(wire, '100 MB startup');
      assert.ok(Date.now() - t0 < 2_000, `took ${Date.now() - t0} ms`);
    } finally {
      wire.close();
    }
    await stillServing();
  });

  test('a message length below 4 after login -> 08P01 "invalid message length"', async () => {
    for (const len of [0, 2, 3]) {
      const wire = await loggedIn();
      try {
        wire.send(Buffer.from('Q'), int32(len), Buffer.from('select 1\0'));
        await refused(wire, `length ${len}`, /^invalid message length$/);
      } finally {
        wire.close();
      }
    }
    await stillServing();
  });

  test('a message beyond max_message_size (1MB) -> 08P01 "message too large"; one just under it works', async () => {
    const under = await loggedIn();
    try {
      const literal = 'x'.repeat(MAX_MESSAGE_SIZE - 1000);
      assert.deepEqual(await under.simpleQuery(`select length('${literal}')`), [[String(literal.length)]]);
    } finally {
      under.close();
    }
    const over = await loggedIn();
    try {
      const t0 = Date.now();
      // Only the header and a little of the body: Doorman must not wait for (or buffer) the rest.
      over.send(Buffer.from('Q'), int32(2 * MAX_MESSAGE_SIZE), Buffer.from('select 1'));
      await refused(over, 'oversized Query', /^message too large \(max_message_size is 1048576 bytes\)$/);
      assert.ok(Date.now() - t0 < 2_000, `took ${Date.now() - t0} ms`);
    } finally {
      over.close();
    }
    // Also before login: a password message over the limit.
    const early = await RawClient.open(servers().doorman.port);
    try {
      early.send(fe.startup({ user: SCRAM_USER.user, database: 'app' }));
      assert.equal((await early.message())?.type, 'R');
      early.send(Buffer.from('p'), int32(MAX_MESSAGE_SIZE + 5), Buffer.alloc(100, 0x61));
      await refused(early, 'oversized password message', /^message too large/);
    } finally {
      early.close();
    }
    await stillServing();
  });

  test('a client that stops reading a 200 MB result keeps Doorman\'s memory bounded; others carry on', async () => {
    const { doorman: d } = servers();
    const sql = "select repeat('x', 1000) from generate_series(1, 200000)";
    const before = rss(d.pid);
    const slow = await loggedIn();
    try {
      slow.socket.pause();
      slow.send(fe.query(sql));
      // PostgreSQL itself ends up blocked writing to Doorman: the back-pressure reached it.
      const [pid] = await eventually(() => backendsRunning(sql), (pids) => pids.length === 1, 5_000, 'the big query');
      await eventually(
        async () => (await servers().admin.query<{ w: string | null }>('select wait_event as w from pg_stat_activity where pid = $1', [pid])).rows[0]?.w ?? null,
        (w) => w === 'ClientWrite',
        10_000,
        'wait_event of the streaming backend',
      );
      await sleep(1_000);
      const grown = rss(d.pid) - before;
      assert.ok(grown < 100 * 1024 * 1024, `RSS grew by ${Math.round(grown / 1024 / 1024)} MB`);
      const t0 = Date.now();
      await stillServing();
      assert.ok(Date.now() - t0 < 3_000, `a normal client took ${Date.now() - t0} ms`);
      slow.close();
      // The reader left mid-result: its server connection is closed, not reused.
      await eventually(() => backendsRunning(sql), (pids) => pids.length === 0, 10_000, 'the abandoned query');
    } finally {
      slow.close();
    }
    await stillServing();
  });

  test('a server that dies mid-query: that client gets FATAL 08006 and is closed, others are fine', async () => {
    const { admin: su } = servers();
    const bystander = await connectPg(url());
    const victim = await loggedIn();
    try {
      await bystander.query('begin');
      const sql = 'select pg_sleep(30)';
      victim.send(fe.query(sql));
      const [pid] = await eventually(() => backendsRunning(sql), (pids) => pids.length === 1, 5_000, 'the victim query');
      // Terminated only once it sleeps: earlier, PostgreSQL may not have built the RowDescription yet.
      await eventually(
        async () => (await su.query<{ w: string | null }>('select wait_event as w from pg_stat_activity where pid = $1', [pid])).rows[0]?.w ?? null,
        (w) => w === 'PgSleep',
        5_000,
        'wait_event of the victim backend',
      );
      await su.query('select pg_terminate_backend($1)', [pid]);
      const msgs = await victim.rest(5_000);
      assert.equal(victim.ended, true);
      // The RowDescription of the query came before the backend was terminated.
      assert.equal(msgs[0]?.type, 'T');
      const errors = msgs.slice(1).map((m) => {
        assert.equal(m.type, 'E');
        return errorFields(m.body);
      });
      const last = errors[errors.length - 1];
      assert.deepEqual([last?.S, last?.C, last?.M], ['FATAL', '08006', 'server closed the connection unexpectedly']);
      // Anything before it is PostgreSQL's own notice of the termination, relayed.
      for (const e of errors.slice(0, -1)) assert.equal(e.C, '57P01');
      assert.deepEqual((await bystander.query('select 1 as v')).rows, [{ v: 1 }]);
      await bystander.query('commit');
    } finally {
      victim.close();
      await bystander.end();
    }
    await stillServing();
  });

  test('a server that dies while its client is idle in a transaction: FATAL 08006 at once', async () => {
    const { admin: su } = servers();
    const victim = await loggedIn();
    try {
      victim.send(fe.query('begin; select pg_backend_pid()'));
      const msgs = await victim.until('Z');
      assert.equal(msgs[msgs.length - 1].body.toString(), 'T');
      const pid = Number(dataRow(msgs.find((m) => m.type === 'D')!.body)[0]);
      await su.query('select pg_terminate_backend($1)', [pid]);
      const rest = await victim.rest(5_000);
      assert.equal(victim.ended, true);
      const codes = rest.map((m) => (m.type === 'E' ? errorFields(m.body).C : m.type));
      assert.equal(codes[codes.length - 1], '08006', codes.join(','));
    } finally {
      victim.close();
    }
    await stillServing();
  });

  test('a pooled server that dies while idle is dropped; its former client is not affected', async () => {
    const { admin: su, doorman: d } = servers();
    const client = await connectPg(url());
    try {
      const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      await su.query('select pg_terminate_backend($1)', [pid]);
      await d.waitForLog((line) => line.includes('"msg":"server closed"') && line.includes(`"pid":${pid}`), 5_000);
      const next = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      assert.notEqual(next, pid);
    } finally {
      await client.end();
    }
  });
});
