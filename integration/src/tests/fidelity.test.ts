/**
 * Byte-for-byte fidelity: the same protocol exchange run directly against PostgreSQL and through Doorman
 * (transaction and session mode) must yield identical backend message streams.
 *
 * A raw-socket client speaks protocol 3.0 itself so nothing a driver does (buffering, retries, parsing)
 * can hide a difference. Authentication is `trust` on both PostgreSQL and Doorman for a dedicated role,
 * so the client needs no SCRAM.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { setImmediate as tick } from 'node:timers/promises';
import {
  MD5_USER,
  dataRowValues,
  doormanConfigFor,
  errorFields,
  fe,
  int32,
  startDoorman,
  startPostgres,
  type BackendMessage,
  type BindValue,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const ROLE = 'fidelity';
const DB = 'fidelity';
const WAIT_MS = 30_000;

/** The client's startup parameters; values are already in PostgreSQL's canonical spelling. */
const STARTUP: Readonly<Record<string, string>> = {
  user: ROLE,
  database: DB,
  application_name: 'fidelity-suite',
  client_encoding: 'UTF8',
  DateStyle: 'ISO, DMY',
  TimeZone: 'Asia/Kolkata',
};

// ---------------------------------------------------------------------------
// Frontend messages (protocol 3.0).

const PARAM_NULL = null;

/** Parse/Bind/Execute/Sync for one statement, unnamed. */
function extendedQuery(sql: string, params: readonly BindValue[] = [], types: readonly number[] = []): Buffer {
  return Buffer.concat([fe.parse('', sql, types), fe.bind('', params), fe.execute(), fe.sync()]);
}

// ---------------------------------------------------------------------------
// Backend messages.

/** Message types in order, runs of one type collapsed ("D×3"), for readable assertions. */
function summary(messages: readonly BackendMessage[]): string {
  const out: string[] = [];
  let i = 0;
  while (i < messages.length) {
    let j = i;
    while (j < messages.length && messages[j].type === messages[i].type) j++;
    const type = messages[i].type;
    // ReadyForQuery is listed one by one with its transaction status.
    if (type === 'Z') for (let k = i; k < j; k++) out.push(`Z:${String.fromCharCode(messages[k].body[0])}`);
    else out.push(j - i > 1 ? `${type}×${j - i}` : type);
    i = j;
  }
  return out.join(' ');
}

/** DataRow columns (null for SQL NULL). */
function columns(m: BackendMessage): (Buffer | null)[] {
  assert.equal(m.type, 'D');
  return dataRowValues(m.body);
}

function textColumns(m: BackendMessage): (string | null)[] {
  return columns(m).map((c) => (c === null ? null : c.toString('utf8')));
}

function commandTag(m: BackendMessage): string {
  assert.equal(m.type, 'C');
  return m.body.toString('utf8', 0, m.body.length - 1);
}

function ofType(messages: readonly BackendMessage[], type: string): BackendMessage[] {
  return messages.filter((m) => m.type === type);
}

function describeMessage(m: BackendMessage | undefined): string {
  if (m === undefined) return '(none)';
  const preview = m.body.subarray(0, 120).toString('utf8').replace(/[^\x20-\x7e]/g, '.');
  return `${m.type} len=${m.body.length} "${preview}"`;
}

/** Exact comparison with a readable first difference instead of a multi-megabyte diff. */
function assertSameStream(expected: readonly BackendMessage[], actual: readonly BackendMessage[], label: string): void {
  assert.equal(summary(actual), summary(expected), `${label}: message types differ`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a.type !== e.type || !a.body.equals(e.body)) {
      assert.fail(`${label}: message #${i} differs\n  direct:  ${describeMessage(e)}\n  doorman: ${describeMessage(a)}`);
    }
  }
}

// ---------------------------------------------------------------------------
// The raw client.

class RawClient {
  /** Every message after the login's ReadyForQuery. */
  readonly received: BackendMessage[] = [];
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private cursor = 0;
  private scanFrom = 0;
  private matches = 0;
  private waiter: { type: string; n: number; resolve: (m: BackendMessage[]) => void; reject: (e: Error) => void } | null = null;
  private closedError: Error | null = null;
  private readonly closed: Promise<void>;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.closedError ??= new Error('connection closed');
        this.failWaiter();
        resolve();
      });
    });
    socket.on('error', (err) => {
      this.closedError = err;
    });
  }

  /** Connects and logs in; returns the client and the login messages (AuthenticationOk .. ReadyForQuery). */
  static async connect(port: number, startup: Readonly<Record<string, string>> = STARTUP): Promise<{ client: RawClient; login: BackendMessage[] }> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawClient(socket);
    client.send(fe.startup(startup));
    const login = await client.waitFor('Z');
    // Login traffic is compared separately from the case's own messages.
    client.received.length = 0;
    client.cursor = 0;
    client.scanFrom = 0;
    return { client, login };
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Writes `bytes` in the given piece sizes (cycled), yielding to the event loop between pieces. */
  async sendPieces(bytes: Buffer, sizes: readonly number[]): Promise<void> {
    let at = 0;
    for (let i = 0; at < bytes.length; i++) {
      const size = sizes[i % sizes.length];
      const ok = this.socket.write(bytes.subarray(at, at + size));
      at += size;
      if (!ok) await new Promise<void>((resolve) => this.socket.once('drain', resolve));
      else if (i % 8 === 0) await tick();
    }
  }

  /**
   * Resolves with the messages from the previous wait's end through the `n`th next message of `type`
   * (which may have arrived already).
   */
  waitFor(type: string, n = 1): Promise<BackendMessage[]> {
    assert.equal(this.waiter, null, 'one wait at a time');
    return new Promise<BackendMessage[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`no ${n}× "${type}" within ${WAIT_MS} ms; got: ${summary(this.received.slice(this.cursor))}`));
      }, WAIT_MS);
      this.waiter = {
        type,
        n,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.scanFrom = this.cursor;
      this.matches = 0;
      this.check();
      if (this.closedError !== null) this.failWaiter();
    });
  }

  /** Terminate, then wait (bounded) for the server side to close. */
  async finish(): Promise<void> {
    if (!this.socket.destroyed) this.socket.end(fe.terminate());
    const timer = setTimeout(() => this.socket.destroy(), 5_000);
    await this.closed;
    clearTimeout(timer);
  }

  private failWaiter(): void {
    const w = this.waiter;
    if (w === null) return;
    this.waiter = null;
    w.reject(new Error(`${this.closedError?.message ?? 'closed'} while waiting for "${w.type}"; got: ${summary(this.received.slice(this.cursor))}`));
  }

  private check(): void {
    const w = this.waiter;
    if (w === null) return;
    while (this.scanFrom < this.received.length) {
      const m = this.received[this.scanFrom++];
      if (m.type === w.type && ++this.matches === w.n) {
        const out = this.received.slice(this.cursor, this.scanFrom);
        this.cursor = this.scanFrom;
        this.waiter = null;
        w.resolve(out);
        return;
      }
    }
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 5) {
      const total = 1 + this.head().readInt32BE(1);
      if (this.buffered < total) break;
      const bytes = this.take(total);
      this.received.push({ type: String.fromCharCode(bytes[0]), body: bytes.subarray(5) });
    }
    this.check();
  }

  private head(): Buffer {
    if (this.chunks[0].length < 5) this.merge();
    return this.chunks[0];
  }

  /** Joins buffered chunks only when a message spans them, so a 20 MB message is copied once. */
  private merge(): void {
    const all = Buffer.concat(this.chunks);
    this.chunks.length = 0;
    this.chunks.push(all);
  }

  private take(n: number): Buffer {
    if (this.chunks[0].length < n) this.merge();
    const first = this.chunks[0];
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}

// ---------------------------------------------------------------------------
// Cases: each sends its messages and returns after the last expected ReadyForQuery.

type Case = (c: RawClient) => Promise<void>;

const COPY_OUT_ROWS = 100_000;
const COPY_IN_ROWS = 100_000;
const BIG = 20 * 1024 * 1024;

function copyInPayload(): { data: Buffer; chars: number; octets: number } {
  const lines: string[] = [];
  let chars = 0;
  let octets = 0;
  for (let i = 1; i <= COPY_IN_ROWS; i++) {
    // Multi-byte characters land on chunk boundaries somewhere in 10 MB of odd-sized pieces.
    const payload = `row ${i} ${'é'.repeat(i % 7)}${'✓'.repeat(i % 3)}${'x'.repeat(80)}`;
    chars += [...payload].length;
    octets += Buffer.byteLength(payload);
    lines.push(`${i}\t${payload}\n`);
  }
  return { data: Buffer.from(lines.join(''), 'utf8'), chars, octets };
}

const COPY_IN = copyInPayload();
const BIG_PARAM = Buffer.alloc(BIG, 'y');
const BIG_PARAM_MD5 = createHash('md5').update(BIG_PARAM).digest('hex');
const UNICODE = 'héllo wörld ✓ 日本語 Ελληνικά 🐘🎉👩‍💻';

/** OID of int4pl, looked up once for the FunctionCall case. */
let int4plOid = 0;

const cases: Record<string, { run: Case; check: (m: BackendMessage[]) => void }> = {
  'notices from a DO block (NOTICE, WARNING)': {
    run: async (c) => {
      c.send(fe.query("DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful: %', 'ü'; END $$"));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), 'N×2 C Z:I');
      assert.deepEqual(m.slice(0, 2).map((n) => [errorFields(n.body).V, errorFields(n.body).M]), [['NOTICE', 'hello 42'], ['WARNING', 'careful: ü']]);
    },
  },
  'syntax error with a position (select 1 +)': {
    run: async (c) => {
      c.send(fe.query('select 1 +'));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), 'E Z:I');
      assert.deepEqual([errorFields(m[0].body).C, errorFields(m[0].body).P, errorFields(m[0].body).M], ['42601', '11', 'syntax error at end of input']);
    },
  },
  'undefined table with a position': {
    run: async (c) => {
      c.send(fe.query('select * from nonexistent'));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), 'E Z:I');
      assert.deepEqual([errorFields(m[0].body).C, errorFields(m[0].body).P], ['42P01', '15']);
    },
  },
  'multi-statement simple query with an error in the middle': {
    run: async (c) => {
      c.send(fe.query("select 1 as a; select 1/0; select 'never'"));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), 'T D C E Z:I');
      assert.equal(errorFields(m[3].body).C, '22012');
    },
  },
  'empty query, simple and extended': {
    run: async (c) => {
      c.send(fe.query(''));
      await c.waitFor('Z');
      c.send(extendedQuery(''));
      await c.waitFor('Z');
    },
    check: (m) => assert.equal(summary(m), 'I Z:I 1 2 I Z:I'),
  },
  'COPY (select ...) TO STDOUT, about 10 MB': {
    run: async (c) => {
      c.send(fe.query(`copy (select i, repeat(md5(i::text), 3) from generate_series(1, ${COPY_OUT_ROWS}) i) to stdout`));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), `H d×${COPY_OUT_ROWS} c C Z:I`);
      const bytes = ofType(m, 'd').reduce((n, d) => n + d.body.length, 0);
      assert.ok(bytes > 10_000_000, `only ${bytes} bytes copied`);
      assert.equal(ofType(m, 'd')[0].body.toString('utf8'), `1\t${createHash('md5').update('1').digest('hex').repeat(3)}\n`);
      assert.equal(commandTag(m[m.length - 2]), `COPY ${COPY_OUT_ROWS}`);
    },
  },
  'COPY FROM STDIN, about 10 MB in odd-sized pieces, then count and sum': {
    run: async (c) => {
      c.send(fe.query('begin'));
      await c.waitFor('Z');
      c.send(fe.query('create temp table copy_in (id int, payload text) on commit drop'));
      await c.waitFor('Z');
      c.send(fe.query('copy copy_in from stdin'));
      await c.waitFor('G');
      // CopyData messages of odd sizes that split rows (and characters), written in odd-sized socket writes.
      const messages: Buffer[] = [];
      const sizes = [4093, 1, 65537, 333, 17];
      for (let at = 0, i = 0; at < COPY_IN.data.length; i++) {
        const size = sizes[i % sizes.length];
        messages.push(fe.copyData(COPY_IN.data.subarray(at, at + size)));
        at += size;
      }
      messages.push(fe.copyDone());
      await c.sendPieces(Buffer.concat(messages), [7, 70001, 3, 12289, 1, 131071]);
      await c.waitFor('Z');
      c.send(fe.query('select count(*), sum(length(payload)), sum(octet_length(payload)) from copy_in'));
      await c.waitFor('Z');
      c.send(fe.query('commit'));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), 'C Z:T C Z:T G C Z:T T D C Z:T C Z:I');
      assert.equal(commandTag(m[5]), `COPY ${COPY_IN_ROWS}`);
      assert.deepEqual(textColumns(ofType(m, 'D')[0]), [String(COPY_IN_ROWS), String(COPY_IN.chars), String(COPY_IN.octets)]);
    },
  },
  '20 MB result value (simple query)': {
    run: async (c) => {
      c.send(fe.query(`select repeat('x', ${BIG}) as big`));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), 'T D C Z:I');
      const [value] = columns(m[1]);
      assert.equal(value?.length, BIG);
      assert.ok(value?.equals(Buffer.alloc(BIG, 'x')));
    },
  },
  '20 MB bind parameter (extended protocol)': {
    run: async (c) => {
      c.send(Buffer.concat([fe.parse('', 'select length($1), md5($1)', [25]), fe.bind('', [BIG_PARAM]), fe.describe('P'), fe.execute(), fe.sync()]));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), '1 2 T D C Z:I');
      assert.deepEqual(textColumns(m[3]), [String(BIG), BIG_PARAM_MD5]);
    },
  },
  '1000 parameters': {
    run: async (c) => {
      const n = 1000;
      const sql = `select array[${Array.from({ length: n }, (_, i) => `$${i + 1}`).join(',')}]`;
      const params = Array.from({ length: n }, (_, i) => String(i * 3));
      c.send(Buffer.concat([fe.parse('', sql, Array(n).fill(23)), fe.describe('S'), fe.bind('', params), fe.execute(), fe.sync()]));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), '1 t T 2 D C Z:I');
      assert.equal(m[1].body.readInt16BE(0), 1000);
      assert.equal(textColumns(m[4])[0], `{${Array.from({ length: 1000 }, (_, i) => i * 3).join(',')}}`);
    },
  },
  'unicode text (multi-byte, emoji), simple and extended': {
    run: async (c) => {
      c.send(fe.query(`select '${UNICODE}' as "ключ 🔑", length('${UNICODE}'), octet_length('${UNICODE}')`));
      await c.waitFor('Z');
      c.send(Buffer.concat([fe.parse('', 'select $1::text || $2, upper($1)'), fe.bind('', [UNICODE, '🐘']), fe.describe('P'), fe.execute(), fe.sync()]));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), 'T D C Z:I 1 2 T D C Z:I');
      assert.match(m[0].body.toString('utf8'), /ключ 🔑/);
      assert.deepEqual(textColumns(m[1]), [UNICODE, String([...UNICODE].length), String(Buffer.byteLength(UNICODE))]);
      // The cluster's locale is C: upper() changes ASCII letters only.
      assert.deepEqual(textColumns(m[7]), [`${UNICODE}🐘`, UNICODE.replace(/[a-z]/g, (ch) => ch.toUpperCase())]);
    },
  },
  'NULLs in results and parameters': {
    run: async (c) => {
      c.send(fe.query("select null, 1, null::text, ''"));
      await c.waitFor('Z');
      c.send(extendedQuery("select $1::text, $2::int, coalesce($1, 'was null'), $3::text is null", [PARAM_NULL, '5', PARAM_NULL]));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), 'T D C Z:I 1 2 D C Z:I');
      assert.deepEqual(textColumns(m[1]), [null, '1', null, '']);
      assert.deepEqual(textColumns(m[6]), [null, '5', 'was null', 't']);
    },
  },
  'binary-format results': {
    run: async (c) => {
      const sql =
        "select 42::int4, 9000000000::int8, 1.5::float8, 'bin'::text, '\\x00ff'::bytea, true, " +
        "'2024-02-29 12:34:56+00'::timestamptz, array[1,2]::int4[], null::int4";
      c.send(Buffer.concat([fe.parse('', sql), fe.bind('', [], '', [1]), fe.describe('P'), fe.execute(), fe.sync()]));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), '1 2 T D C Z:I');
      const cols = columns(m[3]);
      assert.deepEqual(cols.slice(0, 6).map((b) => b?.toString('hex')), ['0000002a', '0000000218711a00', '3ff8000000000000', '62696e', '00ff', '01']);
      assert.equal(cols[8], null);
    },
  },
  'Describe statement and portal': {
    run: async (c) => {
      c.send(
        Buffer.concat([
          fe.parse('', 'select $1::int + 1 as next, $2::text as label'),
          fe.describe('S'),
          fe.bind('', ['41', 'answer']),
          fe.describe('P'),
          fe.execute(),
          fe.parse('', 'begin'),
          fe.describe('S'),
          fe.sync(),
        ]),
      );
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), '1 t T 2 T D C 1 t n Z:I');
      assert.deepEqual(textColumns(m[5]), ['42', 'answer']);
    },
  },
  'extended pipeline: three Syncs, an error in the second batch': {
    run: async (c) => {
      c.send(
        Buffer.concat([
          extendedQuery('select 1'),
          fe.parse('', 'select 10 / $1::int'),
          fe.bind('', ['0']),
          fe.execute(),
          // Skipped: the server discards everything up to the Sync after an error.
          fe.parse('', "select 'skipped'"),
          fe.bind(''),
          fe.execute(),
          fe.sync(),
          extendedQuery('select 3'),
        ]),
      );
      await c.waitFor('Z', 3);
    },
    check: (m) => {
      // The custom plan for the bound value folds 10 / 0, so the error comes at Bind.
      assert.equal(summary(m), '1 2 D C Z:I 1 E Z:I 1 2 D C Z:I');
      assert.equal(errorFields(m[6].body).C, '22012');
      assert.deepEqual(textColumns(m[10]), ['3']);
    },
  },
  'FunctionCall (fastpath int4pl)': {
    run: async (c) => {
      c.send(fe.functionCall(int4plOid, [int32(40), int32(2)]));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), 'V Z:I');
      assert.equal(m[0].body.toString('hex'), '000000040000002a');
    },
  },
  'select pg_sleep(0.1)': {
    run: async (c) => {
      c.send(fe.query('select pg_sleep(0.1)'));
      await c.waitFor('Z');
    },
    check: (m) => {
      assert.equal(summary(m), 'T D C Z:I');
      assert.deepEqual(textColumns(m[1]), ['']);
    },
  },
  'transaction block: BEGIN ... COMMIT (status T then I)': {
    run: async (c) => {
      for (const sql of ['begin', 'select 1', "select current_setting('transaction_isolation')", 'commit']) {
        c.send(fe.query(sql));
        await c.waitFor('Z');
      }
      c.send(fe.query('begin; select 2; commit'));
      await c.waitFor('Z');
      c.send(Buffer.concat([extendedQuery('begin'), extendedQuery('select 3'), extendedQuery('commit')]));
      await c.waitFor('Z', 3);
    },
    check: (m) => {
      assert.equal(summary(m), 'C Z:T T D C Z:T T D C Z:T C Z:I C T D C×2 Z:I 1 2 C Z:T 1 2 D C Z:T 1 2 C Z:I');
      assert.equal(commandTag(m[m.length - 2]), 'COMMIT');
    },
  },
  'failed transaction (status E) then ROLLBACK': {
    run: async (c) => {
      for (const sql of ['begin', 'select 1/0', 'select 1', 'rollback', 'select 2']) {
        c.send(fe.query(sql));
        await c.waitFor('Z');
      }
    },
    check: (m) => {
      assert.equal(summary(m), 'C Z:T E Z:E E Z:E C Z:I T D C Z:I');
      assert.equal(errorFields(m[4].body).C, '25P02');
      assert.equal(commandTag(m[6]), 'ROLLBACK');
    },
  },
};

// ---------------------------------------------------------------------------

describe('byte-for-byte fidelity: direct vs Doorman', { timeout: 170_000 }, () => {
  let pg: PgCluster | undefined;
  let transaction: DoormanProcess | undefined;
  let session: DoormanProcess | undefined;

  before(async () => {
    pg = await startPostgres({
      hba: [
        'local all all trust',
        `host all ${ROLE} 127.0.0.1/32 trust`,
        `host all ${MD5_USER.user} 127.0.0.1/32 md5`,
        'host all all 127.0.0.1/32 scram-sha-256',
        '',
      ].join('\n'),
    });
    await pg.query(`CREATE ROLE ${ROLE} LOGIN; CREATE DATABASE ${DB} OWNER ${ROLE};`);
    int4plOid = Number(await pg.query("SELECT 'pg_catalog.int4pl(int4,int4)'::regprocedure::oid"));
    const options = {
      database: DB,
      // Doorman's own hba is trust too; the password is never asked for (PostgreSQL trusts the role).
      users: [{ user: ROLE, password: 'unused' }],
      poolSize: 2,
      hba: 'host all all 127.0.0.1/32 trust\n',
    };
    [transaction, session] = await Promise.all([
      startDoorman(doormanConfigFor(pg, { ...options, poolMode: 'transaction' })),
      startDoorman(doormanConfigFor(pg, { ...options, poolMode: 'session' })),
    ]);
  });

  after(async () => {
    await Promise.all([transaction?.stop(), session?.stop()]);
    await pg?.stop();
  });

  /** Runs a case on a fresh connection; BackendKeyData is the only login message allowed to differ. */
  async function record(port: number, run: Case): Promise<{ login: BackendMessage[]; messages: BackendMessage[] }> {
    const { client, login } = await RawClient.connect(port);
    try {
      await run(client);
    } finally {
      await client.finish();
    }
    const normalized = login.map((m) => (m.type === 'K' ? { type: 'K', body: Buffer.alloc(8) } : m));
    return { login: normalized, messages: client.received };
  }

  /** Login messages with BackendKeyData zeroed. */
  async function login(port: number, startup: Readonly<Record<string, string>>): Promise<BackendMessage[]> {
    const { client, login: messages } = await RawClient.connect(port, startup);
    await client.finish();
    return messages.map((m) => (m.type === 'K' ? { type: 'K', body: Buffer.alloc(8) } : m));
  }

  // JDBC sends DateStyle=ISO, other clients lower-case names; PostgreSQL reports its own canonical spelling.
  test('startup parameters in non-canonical spelling are reported as PostgreSQL spells them', async () => {
    assert.ok(pg && transaction && session, 'servers did not start');
    const startup = { ...STARTUP, DateStyle: 'iso', client_encoding: 'utf8', TimeZone: 'asia/kolkata' };
    const direct = await login(pg.port, startup);
    const reported = Object.fromEntries(ofType(direct, 'S').map((m) => m.body.toString('utf8').split('\0').slice(0, 2)));
    assert.deepEqual([reported.DateStyle, reported.client_encoding, reported.TimeZone], ['ISO, MDY', 'UTF8', 'Asia/Kolkata']);
    const failures: string[] = [];
    for (const [label, doorman] of [['transaction mode', transaction], ['session mode', session]] as const) {
      // The first login of a pool learns from a server; later ones are answered from what the pool knows.
      for (const attempt of [1, 2]) {
        const via = await login(doorman.port, startup);
        // Login messages are small: list every difference, readably.
        const readable = (ms: BackendMessage[]): string[] => ms.map((m) => `${m.type} ${m.body.toString('utf8').replace(/\0/g, ' ').trimEnd()}`);
        const expected = readable(direct);
        const got = readable(via);
        const diffs = got.flatMap((line, i) => (line === expected[i] ? [] : [`${line} (direct: ${expected[i] ?? 'none'})`]));
        if (got.length !== expected.length || diffs.length > 0) failures.push(`[${label}] login #${attempt}: ${diffs.join('; ')}`);
      }
    }
    assert.deepEqual(failures, []);
  });

  for (const [name, { run, check }] of Object.entries(cases)) {
    test(name, async () => {
      assert.ok(pg && transaction && session, 'servers did not start');
      const direct = await record(pg.port, run);
      check(direct.messages);
      assert.match(summary(direct.login), /^R S×\d+ K Z:I$/);
      for (const [label, doorman] of [['transaction mode', transaction], ['session mode', session]] as const) {
        const via = await record(doorman.port, run);
        assertSameStream(direct.login, via.login, `${name} [${label}] login`);
        assertSameStream(direct.messages, via.messages, `${name} [${label}]`);
      }
    });
  }
});
