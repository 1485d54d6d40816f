/**
 * What a client sees between connecting and its first ReadyForQuery: the ParameterStatus set, BackendKeyData,
 * startup parameters reaching PostgreSQL, protocol version negotiation and the SSL/GSS encryption requests.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import {
  MD5_USER,
  SCRAM_USER,
  doormanConfigFor,
  startDoorman,
  startPostgres,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 90_000;

// ---- raw protocol (local helper: the harness speaks only through real clients) ----

interface BackendMessage {
  type: string;
  body: Buffer;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function frontend(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
}

function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`);
}

function startupMessage(params: Record<string, string>, major = 3, minor = 0): Buffer {
  const body = Buffer.concat([int32((major << 16) | minor), ...Object.entries(params).map(([k, v]) => Buffer.concat([cstr(k), cstr(v)])), Buffer.from([0])]);
  return Buffer.concat([int32(body.length + 4), body]);
}

const SSL_REQUEST = Buffer.concat([int32(8), int32(80877103)]);
const GSSENC_REQUEST = Buffer.concat([int32(8), int32(80877104)]);

function query(sql: string): Buffer {
  return frontend('Q', cstr(sql));
}

/** Fields of an ErrorResponse/NoticeResponse keyed by their one-letter codes. */
function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const end = body.indexOf(0, i + 1);
    out[String.fromCharCode(body[i])] = body.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return out;
}

function cstrings(body: Buffer, from = 0): string[] {
  const out: string[] = [];
  let i = from;
  while (i < body.length) {
    const end = body.indexOf(0, i);
    if (end < 0) break;
    out.push(body.toString('utf8', i, end));
    i = end + 1;
  }
  return out;
}

function dataRow(body: Buffer): (string | null)[] {
  const n = body.readInt16BE(0);
  const out: (string | null)[] = [];
  let at = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(at);
    at += 4;
    if (len < 0) {
      out.push(null);
    } else {
      out.push(body.toString('utf8', at, at + len));
      at += len;
    }
  }
  return out;
}

/** A raw client socket that buffers what the server sends and hands it out as bytes or messages. */
class Wire {
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  ended = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.notify();
    });
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(new Wire(socket)));
      socket.once('error', reject);
    });
  }

  send(...parts: Buffer[]): void {
    this.socket.write(Buffer.concat(parts));
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Waits until `n` bytes are buffered; false if the socket closed first. */
  private async fill(n: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended) return false;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for the server (have ${this.buf.length} of ${n} bytes)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return true;
  }

  /** One byte (the answer to SSLRequest/GSSENCRequest); null when the socket closed. */
  async byte(timeoutMs = 5_000): Promise<number | null> {
    if (!(await this.fill(1, timeoutMs))) return null;
    const b = this.buf[0];
    this.buf = this.buf.subarray(1);
    return b;
  }

  /** The next backend message; null when the socket closed. */
  async message(timeoutMs = 5_000): Promise<BackendMessage | null> {
    if (!(await this.fill(5, timeoutMs))) return null;
    const len = this.buf.readInt32BE(1);
    if (!(await this.fill(1 + len, timeoutMs))) return null;
    const msg = { type: String.fromCharCode(this.buf[0]), body: Buffer.from(this.buf.subarray(5, 1 + len)) };
    this.buf = this.buf.subarray(1 + len);
    return msg;
  }

  /** Messages up to and including the first of `type`; throws if the socket closes first. */
  async until(type: string, timeoutMs = 5_000): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    for (;;) {
      const m = await this.message(timeoutMs);
      if (m === null) throw new Error(`connection closed before "${type}"; got ${out.map((x) => x.type).join('')}`);
      out.push(m);
      if (m.type === type) return out;
    }
  }

  /** Everything until the server closes the connection. */
  async rest(timeoutMs = 5_000): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    for (;;) {
      const m = await this.message(timeoutMs);
      if (m === null) return out;
      out.push(m);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

interface Login {
  messages: BackendMessage[];
  status: Map<string, string>;
}

/** Answers cleartext/MD5 requests until ReadyForQuery; throws with the SQLSTATE on an ErrorResponse. */
async function login(wire: Wire, user: string, password: string): Promise<Login> {
  const messages: BackendMessage[] = [];
  const status = new Map<string, string>();
  for (;;) {
    const m = await wire.message();
    if (m === null) throw new Error(`closed during login after ${messages.map((x) => x.type).join('')}`);
    messages.push(m);
    if (m.type === 'E') {
      const f = errorFields(m.body);
      throw Object.assign(new Error(f.M), { code: f.C });
    }
    if (m.type === 'S') {
      const [name, value] = cstrings(m.body);
      status.set(name, value);
    }
    if (m.type === 'Z') return { messages, status };
    if (m.type !== 'R') continue;
    const code = m.body.readInt32BE(0);
    if (code === 3) wire.send(frontend('p', cstr(password)));
    else if (code === 5) {
      const inner = createHash('md5').update(password + user).digest('hex');
      const outer = createHash('md5').update(inner).update(m.body.subarray(4, 8)).digest('hex');
      wire.send(frontend('p', cstr(`md5${outer}`)));
    } else if (code !== 0) throw new Error(`unsupported authentication request ${code}`);
  }
}

/** Runs one simple query on a logged-in wire; returns the rows as text. */
async function simpleQuery(wire: Wire, sql: string): Promise<(string | null)[][]> {
  wire.send(query(sql));
  const msgs = await wire.until('Z');
  const err = msgs.find((m) => m.type === 'E');
  if (err) throw new Error(`${sql}: ${errorFields(err.body).M}`);
  return msgs.filter((m) => m.type === 'D').map((m) => dataRow(m.body));
}

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
    // md5 rules so the raw-socket clients here need no SCRAM; pool_size 1 makes server reuse certain.
    doorman = await startDoorman(
      doormanConfigFor(cluster, { users: [SCRAM_USER, MD5_USER], poolSize: 1, hba: 'host all all 127.0.0.1/32 md5\n' }),
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
    const direct = await Wire.connect(pgc.port);
    let expected: Map<string, string>;
    try {
      direct.send(startupMessage(params));
      expected = (await login(direct, MD5_USER.user, MD5_USER.password)).status;
    } finally {
      direct.close();
    }
    const wire = await Wire.connect(d.port);
    try {
      wire.send(startupMessage(params));
      const { messages, status } = await login(wire, MD5_USER.user, MD5_USER.password);
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
    const wire = await Wire.connect(d.port);
    try {
      wire.send(startupMessage({ user: MD5_USER.user, database: 'app' }, 3, 2));
      const first = await wire.message();
      assert.equal(first?.type, 'v');
      assert.equal(first.body.readInt32BE(0), 0, 'newest minor version supported');
      assert.equal(first.body.readInt32BE(4), 0, 'unrecognized protocol options');
      await login(wire, MD5_USER.user, MD5_USER.password);
      assert.deepEqual(await simpleQuery(wire, 'select 40 + 2'), [['42']]);
    } finally {
      wire.close();
    }
  });

  test('_pq_ protocol options are listed in NegotiateProtocolVersion and the login proceeds', async () => {
    const { doorman: d } = servers();
    const wire = await Wire.connect(d.port);
    try {
      wire.send(startupMessage({ user: MD5_USER.user, database: 'app', '_pq_.test_option': 'on' }));
      const first = await wire.message();
      assert.equal(first?.type, 'v');
      assert.equal(first.body.readInt32BE(0), 0);
      assert.equal(first.body.readInt32BE(4), 1);
      assert.deepEqual(cstrings(first.body, 8), ['_pq_.test_option']);
      await login(wire, MD5_USER.user, MD5_USER.password);
      assert.deepEqual(await simpleQuery(wire, 'select current_user'), [['md5_user']]);
    } finally {
      wire.close();
    }
  });

  test('GSSENCRequest -> N, then a normal startup on the same socket', async () => {
    const { doorman: d } = servers();
    const wire = await Wire.connect(d.port);
    try {
      wire.send(GSSENC_REQUEST);
      assert.equal(await wire.byte(), 'N'.charCodeAt(0));
      wire.send(startupMessage({ user: MD5_USER.user, database: 'app' }));
      await login(wire, MD5_USER.user, MD5_USER.password);
      assert.deepEqual(await simpleQuery(wire, "select 'gss-fallback'"), [['gss-fallback']]);
    } finally {
      wire.close();
    }
  });

  test('SSLRequest with TLS disabled -> N, then a normal startup on the same socket', async () => {
    const { doorman: d } = servers();
    const wire = await Wire.connect(d.port);
    try {
      wire.send(SSL_REQUEST);
      assert.equal(await wire.byte(), 'N'.charCodeAt(0));
      wire.send(startupMessage({ user: MD5_USER.user, database: 'app' }));
      await login(wire, MD5_USER.user, MD5_USER.password);
      assert.deepEqual(await simpleQuery(wire, "select 'plain'"), [['plain']]);
    } finally {
      wire.close();
    }
  });

  test('GSSENCRequest, then SSLRequest, then startup (what libpq does with gssencmode=prefer)', async () => {
    const { doorman: d } = servers();
    const wire = await Wire.connect(d.port);
    try {
      wire.send(GSSENC_REQUEST);
      assert.equal(await wire.byte(), 'N'.charCodeAt(0));
      wire.send(SSL_REQUEST);
      assert.equal(await wire.byte(), 'N'.charCodeAt(0));
      wire.send(startupMessage({ user: MD5_USER.user, database: 'app' }));
      await login(wire, MD5_USER.user, MD5_USER.password);
      assert.deepEqual(await simpleQuery(wire, 'select 1'), [['1']]);
    } finally {
      wire.close();
    }
  });

  test('protocol 4.0 -> FATAL 08P01 and close', async () => {
    const { doorman: d } = servers();
    const wire = await Wire.connect(d.port);
    try {
      wire.send(startupMessage({ user: MD5_USER.user, database: 'app' }, 4, 0));
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
    const wire = await Wire.connect(d.port);
    try {
      wire.send(startupMessage({ user: MD5_USER.user, database: 'app', replication: 'database' }));
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
