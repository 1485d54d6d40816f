/**
 * A raw protocol-3.0 frontend for tests that need byte-level control, or must see exactly what the server
 * sends (drivers buffer, retry and parse): frontend message builders, backend message parsing, and a small
 * client over one TCP socket.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';

/** Default bound for untilReady/exchange: whole exchanges, possibly queued behind other clients. */
const REPLY_WAIT_MS = 20_000;
/** Default bound for byte/message/until/rest: the next bytes of a reply already under way. */
const READ_WAIT_MS = 5_000;
/** How long end() waits for the server to close after Terminate before dropping the socket. */
const END_WAIT_MS = 5_000;

// ---------------------------------------------------------------------------
// Frontend messages.

export function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

export function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** A protocol String: UTF-8, null-terminated. */
export function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'utf8');
}

/** A typed message: the type byte, an Int32 length that counts itself, then the body. */
export function frame(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from(type, 'ascii'), int32(body.length + 4), body]);
}

/** A Bind parameter value: text, raw bytes (for binary format), or SQL NULL. */
export type BindValue = string | Buffer | null;

function bindValue(value: BindValue): Buffer[] {
  if (value === null) return [int32(-1)];
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return [int32(bytes.length), bytes];
}

/** Request codes of the untyped messages sent before a StartupMessage. */
const SSL_REQUEST_CODE = 80877103;
const GSSENC_REQUEST_CODE = 80877104;

export const fe = {
  /** StartupMessage; tests of version negotiation pass another protocol version. */
  startup(params: Readonly<Record<string, string>>, major = 3, minor = 0): Buffer {
    const pairs = Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]);
    const body = Buffer.concat([int32((major << 16) | minor), ...pairs, Buffer.alloc(1)]);
    return Buffer.concat([int32(body.length + 4), body]);
  },
  sslRequest: (): Buffer => Buffer.concat([int32(8), int32(SSL_REQUEST_CODE)]),
  gssencRequest: (): Buffer => Buffer.concat([int32(8), int32(GSSENC_REQUEST_CODE)]),
  password: (password: string): Buffer => frame('p', cstr(password)),
  query: (sql: string): Buffer => frame('Q', cstr(sql)),
  parse: (name: string, sql: string, types: readonly number[] = []): Buffer => frame('P', cstr(name), cstr(sql), int16(types.length), ...types.map(int32)),
  /** Format code lists left empty mean text for every parameter and result column. */
  bind(statement: string, params: readonly BindValue[] = [], portal = '', resultFormats: readonly number[] = [], paramFormats: readonly number[] = []): Buffer {
    return frame(
      'B',
      cstr(portal),
      cstr(statement),
      int16(paramFormats.length),
      ...paramFormats.map(int16),
      int16(params.length),
      ...params.flatMap(bindValue),
      int16(resultFormats.length),
      ...resultFormats.map(int16),
    );
  },
  describe: (kind: 'S' | 'P', name = ''): Buffer => frame('D', Buffer.from(kind, 'ascii'), cstr(name)),
  execute: (portal = '', maxRows = 0): Buffer => frame('E', cstr(portal), int32(maxRows)),
  close: (kind: 'S' | 'P', name: string): Buffer => frame('C', Buffer.from(kind, 'ascii'), cstr(name)),
  sync: (): Buffer => frame('S'),
  copyData: (data: string | Buffer): Buffer => frame('d', typeof data === 'string' ? Buffer.from(data, 'utf8') : data),
  copyDone: (): Buffer => frame('c'),
  copyFail: (message: string): Buffer => frame('f', cstr(message)),
  /** FunctionCall with binary arguments and a binary result. */
  functionCall: (oid: number, args: readonly Buffer[]): Buffer =>
    frame('F', int32(oid), int16(1), int16(1), int16(args.length), ...args.flatMap((a) => [int32(a.length), a]), int16(1)),
  terminate: (): Buffer => frame('X'),
};

// ---------------------------------------------------------------------------
// Backend messages.

export interface BackendMessage {
  type: string;
  body: Buffer;
}

/** Fields of an ErrorResponse/NoticeResponse keyed by their one-letter codes. */
export function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const end = body.indexOf(0, i + 1);
    out[String.fromCharCode(body[i])] = body.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return out;
}

/** The null-terminated strings of a body from `from` on (ParameterStatus, NegotiateProtocolVersion). */
export function cstrings(body: Buffer, from = 0): string[] {
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

/** DataRow columns as bytes (null for SQL NULL), whatever their format. */
export function dataRowValues(body: Buffer): (Buffer | null)[] {
  const out: (Buffer | null)[] = [];
  let at = 2;
  for (let i = body.readInt16BE(0); i > 0; i--) {
    const len = body.readInt32BE(at);
    at += 4;
    if (len < 0) {
      out.push(null);
    } else {
      out.push(body.subarray(at, at + len));
      at += len;
    }
  }
  return out;
}

/** DataRow columns as text (null for SQL NULL). */
export function dataRow(body: Buffer): (string | null)[] {
  return dataRowValues(body).map((v) => (v === null ? null : v.toString('utf8')));
}

/** RowDescription as `name:typeoid` pairs. */
export function rowDescription(body: Buffer): string {
  const out: string[] = [];
  let at = 2;
  for (let i = body.readInt16BE(0); i > 0; i--) {
    const end = body.indexOf(0, at);
    out.push(`${body.toString('utf8', at, end)}:${body.readInt32BE(end + 7)}`);
    at = end + 19;
  }
  return out.join(',');
}

/** A backend message as a short string, so whole exchanges compare with deepEqual. */
export function render(m: BackendMessage): string {
  switch (m.type) {
    case 'E':
    case 'N': {
      const f = errorFields(m.body);
      return `${m.type} ${f.C} ${f.M}`;
    }
    case 'D':
      return `D ${dataRow(m.body).map((c) => c ?? 'NULL').join('|')}`;
    case 'C':
      return `C ${m.body.toString('utf8', 0, m.body.length - 1)}`;
    case 'Z':
      return `Z ${String.fromCharCode(m.body[0])}`;
    case 'T':
      return `T ${rowDescription(m.body)}`;
    case 't': {
      const oids = Array.from({ length: m.body.readInt16BE(0) }, (_, i) => m.body.readInt32BE(2 + 4 * i));
      return `t ${oids.join(',')}`;
    }
    default:
      return m.type;
  }
}

// ---------------------------------------------------------------------------
// The client.

/** What a password login received: every message through ReadyForQuery, and the ParameterStatus values. */
export interface Login {
  messages: BackendMessage[];
  status: Map<string, string>;
}

/**
 * One TCP connection speaking the frontend side. Replies are read message by message (`message`, `until`,
 * `rest`; `byte` for the one-byte answer to SSLRequest/GSSENCRequest) or as whole exchanges through
 * ReadyForQuery (`untilReady`, `exchange`, `rows`).
 */
export class RawClient {
  /** The connection is closed; what arrived before stays readable. */
  ended = false;
  private buf: Buffer = Buffer.alloc(0);
  /** Complete messages untilReady cut from `buf` and has not handed out; they come before `buf`. */
  private readonly parsed: BackendMessage[] = [];
  private wake: (() => void) | null = null;

  private constructor(readonly socket: net.Socket) {
    // A write is the test's input as written: never held back to be merged with the next one.
    socket.setNoDelay(true);
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

  /** A connection on which nothing has been sent yet. */
  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Connects and logs in as a `trust` role (application_name raw-suite unless `startup` sets it). */
  static async connect(port: number, user: string, database: string, startup: Readonly<Record<string, string>> = {}): Promise<RawClient> {
    const client = await RawClient.open(port);
    client.send(fe.startup({ user, database, application_name: 'raw-suite', ...startup }));
    const login = await client.untilReady(1);
    const error = login.find((m) => m.type === 'E');
    if (error) throw new Error(`login of ${user} to ${database} on ${port} failed: ${render(error)}`);
    return client;
  }

  send(...parts: Buffer[]): void {
    this.socket.write(Buffer.concat(parts));
  }

  /**
   * After the caller sent a StartupMessage: answers cleartext/MD5 requests until ReadyForQuery; throws with
   * the SQLSTATE (as `code`) on an ErrorResponse.
   */
  async login(user: string, password: string): Promise<Login> {
    const messages: BackendMessage[] = [];
    const status = new Map<string, string>();
    for (;;) {
      const m = await this.message();
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
      if (code === 3) this.send(fe.password(password));
      else if (code === 5) {
        const inner = createHash('md5').update(password + user).digest('hex');
        const outer = createHash('md5').update(inner).update(m.body.subarray(4, 8)).digest('hex');
        this.send(fe.password(`md5${outer}`));
      } else if (code !== 0) throw new Error(`unsupported authentication request ${code}`);
    }
  }

  /** One simple query on a logged-in connection; its rows as text, SQL NULL as null. Throws on an error. */
  async simpleQuery(sql: string): Promise<(string | null)[][]> {
    this.send(fe.query(sql));
    const msgs = await this.until('Z');
    const err = msgs.find((m) => m.type === 'E');
    if (err) throw new Error(`${sql}: ${errorFields(err.body).M}`);
    return msgs.filter((m) => m.type === 'D').map((m) => dataRow(m.body));
  }

  /** One byte (the answer to SSLRequest/GSSENCRequest); null when the socket closed. */
  async byte(timeoutMs = READ_WAIT_MS): Promise<number | null> {
    assert.equal(this.parsed.length, 0, 'byte() after messages were read ahead');
    if (!(await this.fill(1, timeoutMs))) return null;
    const b = this.buf[0];
    this.buf = this.buf.subarray(1);
    return b;
  }

  /** The next backend message; null when the socket closed. */
  async message(timeoutMs = READ_WAIT_MS): Promise<BackendMessage | null> {
    const ahead = this.parsed.shift();
    if (ahead) return ahead;
    if (!(await this.fill(5, timeoutMs))) return null;
    const total = 1 + this.buf.readInt32BE(1);
    if (!(await this.fill(total, timeoutMs))) return null;
    return this.cut(total);
  }

  /** Messages up to and including the first of `type`; throws if the socket closes first. */
  async until(type: string, timeoutMs = READ_WAIT_MS): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    for (;;) {
      const m = await this.message(timeoutMs);
      if (m === null) throw new Error(`connection closed before "${type}"; got ${out.map((x) => x.type).join('')}`);
      out.push(m);
      if (m.type === type) return out;
    }
  }

  /** Everything until the server closes the connection. */
  async rest(timeoutMs = READ_WAIT_MS): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    for (;;) {
      const m = await this.message(timeoutMs);
      if (m === null) return out;
      out.push(m);
    }
  }

  /** Takes the messages through the `n`th ReadyForQuery from now; rejects after `timeoutMs` without consuming any. */
  async untilReady(n: number, timeoutMs = REPLY_WAIT_MS): Promise<BackendMessage[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.parseBuffered();
      let seen = 0;
      const end = this.parsed.findIndex((m) => m.type === 'Z' && ++seen === n);
      if (end >= 0) return this.parsed.splice(0, end + 1);
      if (this.ended) throw new Error(`connection closed while waiting for ${n}× ReadyForQuery; got ${this.parsed.map(render).join(' / ')}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${n}× ReadyForQuery within ${timeoutMs} ms; got ${this.parsed.map(render).join(' / ')}`);
      await this.arrival(left);
    }
  }

  /** Sends `frames` and returns the rendered replies through one ReadyForQuery per Sync or Query sent. */
  async exchange(frames: readonly Buffer[], timeoutMs = REPLY_WAIT_MS): Promise<string[]> {
    const waits = frames.filter((f) => f[0] === 0x53 || f[0] === 0x51).length;
    this.send(...frames);
    return (await this.untilReady(waits, timeoutMs)).map(render);
  }

  /** Simple query that must not fail; its data rows as rendered (SQL NULL as 'NULL'). */
  async rows(sql: string): Promise<string[][]> {
    const replies = await this.exchange([fe.query(sql)]);
    assert.deepEqual(replies.filter((r) => r.startsWith('E ')), [], `${sql}: ${replies.join(' / ')}`);
    return replies.filter((r) => r.startsWith('D ')).map((r) => r.slice(2).split('|'));
  }

  /** Terminate, then waits (bounded) for the server to close the connection. */
  async end(): Promise<void> {
    if (!this.ended) this.socket.end(fe.terminate());
    const timer = setTimeout(() => this.socket.destroy(), END_WAIT_MS);
    while (!this.ended) await new Promise<void>((resolve) => (this.wake = resolve));
    clearTimeout(timer);
  }

  /** Drops the connection without a Terminate. */
  close(): void {
    this.socket.destroy();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Resolves on the next data or close event, or after `ms`. */
  private arrival(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Waits until `n` bytes are buffered; false if the socket closed first. */
  private async fill(n: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended) return false;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for the server (have ${this.buf.length} of ${n} bytes)`);
      await this.arrival(left);
    }
    return true;
  }

  /** Removes the first `total` buffered bytes as one message (copied, so it outlives the buffer). */
  private cut(total: number): BackendMessage {
    const msg = { type: String.fromCharCode(this.buf[0]), body: Buffer.from(this.buf.subarray(5, total)) };
    this.buf = this.buf.subarray(total);
    return msg;
  }

  private parseBuffered(): void {
    while (this.buf.length >= 5 && this.buf.length >= 1 + this.buf.readInt32BE(1)) this.parsed.push(this.cut(1 + this.buf.readInt32BE(1)));
  }
}
