import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameKind, Framer, FramerError, MAX_STARTUP_PACKET } from './framer.js';
import { BACKEND_STREAMABLE, FRONTEND_STREAMABLE } from './codes.js';
import {
  READY_IDLE,
  authenticationOk,
  backendKeyData,
  commandComplete,
  dataRow,
  errorResponse,
  parameterStatus,
  readyForQuery,
  rowDescription,
} from './backend.js';
import { SYNC, query, sslRequest, startupMessage } from './frontend.js';

const THRESHOLD = 256;

/** A typed message with a correct length field around `body`. */
function typed(code: string, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  const out = Buffer.alloc(5 + b.length);
  out[0] = code.charCodeAt(0);
  out.writeUInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}
const cstr = (s: string): Buffer => Buffer.from(s + '\0');
const i16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const i32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

const BIG_ROW = dataRow(['x'.repeat(700), null, 'y'.repeat(300)]);

const BACKEND_MESSAGES: Buffer[] = [
  authenticationOk(),
  parameterStatus('server_version', '17.2'),
  parameterStatus('client_encoding', 'UTF8'),
  parameterStatus('DateStyle', 'ISO, MDY'),
  backendKeyData(4242, -123456789),
  READY_IDLE,
  rowDescription([
    { name: 'id', typeOid: 23 },
    { name: 'name', typeOid: 25 },
  ]),
  dataRow(['1', 'alice']),
  dataRow(['2', null]),
  dataRow(['3', 'élan']),
  commandComplete('SELECT 3'),
  errorResponse({ severity: 'ERROR', code: '42P01', message: 'relation "t" does not exist', hint: 'check it' }),
  BIG_ROW,
  commandComplete('SELECT 1'),
  READY_IDLE,
];

const BIG_COPY = typed('d', Buffer.alloc(600, 0x41));

const FRONTEND_MESSAGES: Buffer[] = [
  typed('P', cstr('s1'), cstr('SELECT $1::int'), i16(1), i32(23)),
  typed('B', cstr(''), cstr('s1'), i16(0), i16(1), i32(2), Buffer.from('42'), i16(0)),
  typed('D', Buffer.from('P'), cstr('')),
  typed('E', cstr(''), i32(0)),
  SYNC,
  query('SELECT 1'),
  query('COPY t FROM STDIN'),
  typed('d', Buffer.from('1\tone\n')),
  BIG_COPY,
  typed('c'),
];

interface Got {
  code: number;
  length: number;
  bytes: Buffer;
  /** Number of Part frames it came in; 0 for a whole Message. */
  parts: number;
}

/**
 * Pushes the chunks and collects every message. Message bytes are kept as the views the framer
 * handed out (not copies), so comparing them at the end also checks later pushes left them intact.
 */
function frameAll(f: Framer, chunks: (Buffer | Range)[], onMessage?: (g: Got) => void): Got[] {
  const out: Got[] = [];
  let parts: Buffer[] = [];
  for (const c of chunks) {
    if (Buffer.isBuffer(c)) f.push(c);
    else f.push(c.buf, c.start, c.end);
    for (;;) {
      const k = f.next();
      if (k === FrameKind.None) break;
      assert.notEqual(k, FrameKind.Error, `framer error ${f.error}`);
      const view = f.buf.subarray(f.start, f.end);
      if (k === FrameKind.Message) {
        assert.equal(parts.length, 0, 'message inside a streamed one');
        const g = { code: f.code, length: f.length, bytes: view, parts: 0 };
        out.push(g);
        onMessage?.(g);
        continue;
      }
      assert.equal(f.first, parts.length === 0, 'first flag');
      assert.ok(view.length > 0, 'empty part');
      parts.push(view);
      if (f.last) {
        out.push({ code: f.code, length: f.length, bytes: Buffer.concat(parts), parts: parts.length });
        parts = [];
      }
    }
  }
  assert.equal(parts.length, 0, 'stream ended inside a streamed message');
  assert.ok(f.idle, 'framer holds bytes at the end of the stream');
  return out;
}

function assertSame(got: Got[], want: Buffer[], untypedCount = 0): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    const w = want[i];
    const untyped = i < untypedCount;
    assert.equal(got[i].code, untyped ? 0 : w[0], `code of #${i}`);
    assert.equal(got[i].length, untyped ? w.readUInt32BE(0) : w.readUInt32BE(1), `length of #${i}`);
    assert.ok(got[i].bytes.equals(w), `bytes of #${i}`);
  }
}

const backendFramer = (): Framer =>
  new Framer({ maxMessageSize: 1 << 20, streamThreshold: THRESHOLD, streamable: BACKEND_STREAMABLE });
const frontendFramer = (): Framer =>
  new Framer({ maxMessageSize: 1 << 20, streamThreshold: THRESHOLD, streamable: FRONTEND_STREAMABLE });

/** Deterministic PRNG (mulberry32) so random chunkings are reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A chunk pushed as a range of a larger buffer, as readers hand over ranges of their slab. */
interface Range {
  buf: Buffer;
  start: number;
  end: number;
}

/**
 * The chunks copied one after another into one slab, with bytes between them that would read as a huge
 * length or a message type: a framer that looks past a range's end trips on them.
 */
function inSlab(chunks: Buffer[]): Range[] {
  const gap = 7;
  const slab = Buffer.alloc(chunks.reduce((n, c) => n + c.length + gap, gap), 0x7f);
  const out: Range[] = [];
  let at = gap;
  for (const c of chunks) {
    c.copy(slab, at);
    out.push({ buf: slab, start: at, end: at + c.length });
    at += c.length + gap;
  }
  return out;
}

function randomChunks(stream: Buffer, rnd: () => number): Buffer[] {
  const chunks: Buffer[] = [];
  let p = 0;
  while (p < stream.length) {
    const r = rnd();
    // A third of the chunks are single bytes; the rest up to 400 bytes, beyond the stream threshold.
    const n = r < 0.33 ? 1 : 1 + Math.floor(rnd() * 400);
    chunks.push(stream.subarray(p, p + n));
    p += n;
  }
  return chunks;
}

test('fixtures: the large messages exceed the stream threshold, the others do not', () => {
  assert.ok(BIG_ROW.length > THRESHOLD && BIG_COPY.length > THRESHOLD);
  for (const m of [...BACKEND_MESSAGES, ...FRONTEND_MESSAGES]) {
    if (m !== BIG_ROW && m !== BIG_COPY) assert.ok(m.length <= THRESHOLD);
  }
});

test('whole backend stream in one chunk: every message is a zero-copy view of the chunk', () => {
  const stream = Buffer.concat(BACKEND_MESSAGES);
  const f = backendFramer();
  const got = frameAll(f, [stream]);
  assertSame(got, BACKEND_MESSAGES);
  let offset = 0;
  for (const g of got) {
    assert.equal(g.bytes.buffer, stream.buffer);
    assert.equal(g.bytes.byteOffset, stream.byteOffset + offset);
    offset += g.bytes.length;
  }
  assert.ok(got.every((g) => g.parts === 0));
});

test('backend stream split at every byte position', () => {
  const stream = Buffer.concat(BACKEND_MESSAGES);
  const bigStart = Buffer.concat(BACKEND_MESSAGES.slice(0, BACKEND_MESSAGES.indexOf(BIG_ROW))).length;
  const bigEnd = bigStart + BIG_ROW.length;
  for (let cut = 0; cut <= stream.length; cut++) {
    const got = frameAll(backendFramer(), [stream.subarray(0, cut), stream.subarray(cut)]);
    assertSame(got, BACKEND_MESSAGES);
    const big = got[BACKEND_MESSAGES.indexOf(BIG_ROW)];
    // Cut strictly inside the long DataRow: it must stream in 2 parts instead of being assembled.
    assert.equal(big.parts, cut > bigStart && cut < bigEnd ? 2 : 0, `parts at cut ${cut}`);
  }
});

test('frontend stream split at every byte position', () => {
  const stream = Buffer.concat(FRONTEND_MESSAGES);
  for (let cut = 0; cut <= stream.length; cut++) {
    const got = frameAll(frontendFramer(), [stream.subarray(0, cut), stream.subarray(cut)]);
    assertSame(got, FRONTEND_MESSAGES);
    for (const g of got) if (g.bytes.length <= THRESHOLD) assert.equal(g.parts, 0);
  }
});

test('random chunking, including 1-byte chunks, reassembles both streams', () => {
  const rnd = prng(0xd00a);
  const backend = Buffer.concat(BACKEND_MESSAGES);
  const frontend = Buffer.concat(FRONTEND_MESSAGES);
  for (let i = 0; i < 200; i++) {
    assertSame(frameAll(backendFramer(), randomChunks(backend, rnd)), BACKEND_MESSAGES);
    assertSame(frameAll(frontendFramer(), randomChunks(frontend, rnd)), FRONTEND_MESSAGES);
  }
});

test('chunks that are ranges of one slab frame as chunks of their own, split anywhere', () => {
  const rnd = prng(0x51ab);
  const backend = Buffer.concat(BACKEND_MESSAGES);
  const frontend = Buffer.concat(FRONTEND_MESSAGES);
  for (let cut = 0; cut <= frontend.length; cut++) {
    assertSame(frameAll(frontendFramer(), inSlab([frontend.subarray(0, cut), frontend.subarray(cut)])), FRONTEND_MESSAGES);
  }
  for (let i = 0; i < 100; i++) {
    assertSame(frameAll(backendFramer(), inSlab(randomChunks(backend, rnd))), BACKEND_MESSAGES);
    assertSame(frameAll(frontendFramer(), inSlab(randomChunks(frontend, rnd))), FRONTEND_MESSAGES);
  }
});

test('1-byte chunks: the long DataRow streams byte by byte after its header', () => {
  const stream = Buffer.concat(BACKEND_MESSAGES);
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
  const got = frameAll(backendFramer(), chunks);
  assertSame(got, BACKEND_MESSAGES);
  // The header is gathered (5 bytes, one part), then one part per remaining byte.
  assert.equal(got[BACKEND_MESSAGES.indexOf(BIG_ROW)].parts, 1 + BIG_ROW.length - 5);
});

test('streamed DataRow: parts concatenate to the message, flags right, later messages framed', () => {
  const row = dataRow(['z'.repeat(5000)]);
  const after = commandComplete('SELECT 1');
  const stream = Buffer.concat([row, after, READY_IDLE]);
  const f = new Framer({ maxMessageSize: 1 << 20, streamThreshold: 1024, streamable: BACKEND_STREAMABLE });
  const frames: { kind: FrameKind; first: boolean; last: boolean; bytes: Buffer; code: number; length: number }[] = [];
  for (let p = 0; p < stream.length; p += 700) {
    f.push(stream.subarray(p, p + 700));
    for (let k = f.next(); k !== FrameKind.None; k = f.next()) {
      frames.push({
        kind: k,
        first: f.first,
        last: f.last,
        bytes: f.buf.subarray(f.start, f.end),
        code: f.code,
        length: f.length,
      });
    }
  }
  const parts = frames.filter((x) => x.kind === FrameKind.Part);
  assert.equal(parts.length, Math.ceil(row.length / 700));
  parts.forEach((x, i) => {
    assert.equal(x.first, i === 0);
    assert.equal(x.last, i === parts.length - 1);
    assert.equal(x.code, 0x44);
    assert.equal(x.length, row.length - 1);
  });
  assert.ok(Buffer.concat(parts.map((x) => x.bytes)).equals(row));
  const messages = frames.filter((x) => x.kind === FrameKind.Message);
  assert.equal(messages.length, 2);
  assert.ok(messages[0].bytes.equals(after));
  assert.ok(messages[1].bytes.equals(READY_IDLE));
  assert.equal(frames.length, parts.length + 2);
});

test('streamed CopyData whose header is split: the first part is the gathered header', () => {
  const copy = typed('d', Buffer.alloc(2000, 0x62));
  const f = new Framer({ maxMessageSize: 1 << 20, streamThreshold: 1024, streamable: FRONTEND_STREAMABLE });
  f.push(copy.subarray(0, 3));
  assert.equal(f.next(), FrameKind.None);
  assert.equal(f.buffered, 3);
  f.push(copy.subarray(3, 1000));
  assert.equal(f.next(), FrameKind.Part);
  assert.ok(f.first && !f.last);
  assert.ok(f.buf.subarray(f.start, f.end).equals(copy.subarray(0, 5)));
  assert.equal(f.next(), FrameKind.Part);
  assert.ok(!f.first && !f.last);
  assert.ok(f.buf.subarray(f.start, f.end).equals(copy.subarray(5, 1000)));
  assert.equal(f.next(), FrameKind.None);
  f.push(copy.subarray(1000));
  assert.equal(f.next(), FrameKind.Part);
  assert.ok(!f.first && f.last);
  assert.ok(f.buf.subarray(f.start, f.end).equals(copy.subarray(1000)));
  assert.equal(f.next(), FrameKind.None);
  assert.ok(f.idle);
});

test('a long message of a type that is not streamable is assembled whole', () => {
  const q = query('SELECT ' + "'q'".repeat(500));
  const f = new Framer({ maxMessageSize: 1 << 20, streamThreshold: 64, streamable: FRONTEND_STREAMABLE });
  const got = frameAll(f, [q.subarray(0, 100), q.subarray(100, 900), q.subarray(900)]);
  assertSame(got, [q]);
  assert.equal(got[0].parts, 0);
});

test('a message no longer than its header is never streamed, even with a tiny threshold', () => {
  const empty = typed('d');
  const f = new Framer({ maxMessageSize: 1 << 20, streamThreshold: 0, streamable: FRONTEND_STREAMABLE });
  const got = frameAll(f, [empty.subarray(0, 1), empty.subarray(1), SYNC]);
  assertSame(got, [empty, SYNC]);
  assert.equal(got[0].parts, 0);
});

test('untyped startup packets: SSLRequest then StartupMessage then typed traffic, split everywhere', () => {
  const startup = startupMessage({ user: 'alice', database: 'app', application_name: 'psql' });
  const q = query('SELECT 1');
  const want = [sslRequest(), startup, q, SYNC];
  const stream = Buffer.concat(want);
  for (let cut = 0; cut <= stream.length; cut++) {
    const f = frontendFramer();
    f.untyped = true;
    let n = 0;
    // The session leaves untyped mode once the StartupMessage (second packet) has been read.
    const got = frameAll(f, [stream.subarray(0, cut), stream.subarray(cut)], () => {
      if (++n === 2) f.untyped = false;
    });
    assertSame(got, want, 2);
  }
});

test('error: length field below 4', () => {
  const f = frontendFramer();
  f.push(Buffer.from([0x51, 0, 0, 0, 3, 0x41]));
  assert.equal(f.next(), FrameKind.Error);
  assert.equal(f.error, FramerError.LengthTooSmall);
  // The framer stays failed.
  f.push(SYNC);
  assert.equal(f.next(), FrameKind.Error);
});

test('error: length below 4 when the header arrives byte by byte', () => {
  const f = frontendFramer();
  const bad = Buffer.from([0x51, 0, 0, 0, 2]);
  for (let i = 0; i < 4; i++) {
    f.push(bad.subarray(i, i + 1));
    assert.equal(f.next(), FrameKind.None);
  }
  f.push(bad.subarray(4));
  assert.equal(f.next(), FrameKind.Error);
  assert.equal(f.error, FramerError.LengthTooSmall);
});

test('error: untyped length below 4', () => {
  const f = frontendFramer();
  f.untyped = true;
  f.push(Buffer.from([0, 0, 0, 0]));
  assert.equal(f.next(), FrameKind.Error);
  assert.equal(f.error, FramerError.LengthTooSmall);
});

test('error: length above maxMessageSize, in one chunk and split header', () => {
  const f = new Framer({ maxMessageSize: 1000 });
  const msg = typed('Q', Buffer.alloc(997, 0x20)); // length 1001
  f.push(msg);
  assert.equal(f.next(), FrameKind.Error);
  assert.equal(f.error, FramerError.LengthTooLarge);

  const g = new Framer({ maxMessageSize: 1000 });
  g.push(msg.subarray(0, 2));
  assert.equal(g.next(), FrameKind.None);
  g.push(msg.subarray(2, 40));
  assert.equal(g.next(), FrameKind.Error);
  assert.equal(g.error, FramerError.LengthTooLarge);

  const ok = new Framer({ maxMessageSize: 1001 });
  assertSame(frameAll(ok, [msg]), [msg]);
});

test('error: a 100 MB startup length is refused from its header, without allocating it', () => {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(100_000_000, 0);
  header.writeUInt32BE(196608, 4);
  const before = process.memoryUsage().arrayBuffers;
  const f = new Framer({ maxMessageSize: 1 << 30 });
  f.untyped = true;
  f.push(header.subarray(0, 2));
  assert.equal(f.next(), FrameKind.None);
  f.push(header.subarray(2));
  assert.equal(f.next(), FrameKind.Error);
  assert.equal(f.error, FramerError.LengthTooLarge);
  assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20);

  const g = new Framer({ maxMessageSize: 1 << 30 });
  g.untyped = true;
  g.push(header);
  assert.equal(g.next(), FrameKind.Error);
  assert.equal(g.error, FramerError.LengthTooLarge);
});

test('startup packets are limited to MAX_STARTUP_PACKET', () => {
  const at = Buffer.alloc(MAX_STARTUP_PACKET);
  at.writeUInt32BE(MAX_STARTUP_PACKET, 0);
  const f = new Framer({ maxMessageSize: 1 << 20 });
  f.untyped = true;
  f.push(at);
  assert.equal(f.next(), FrameKind.Message);
  assert.equal(f.end - f.start, MAX_STARTUP_PACKET);

  const over = Buffer.alloc(8);
  over.writeUInt32BE(MAX_STARTUP_PACKET + 1, 0);
  const g = new Framer({ maxMessageSize: 1 << 20 });
  g.untyped = true;
  g.push(over);
  assert.equal(g.next(), FrameKind.Error);
  assert.equal(g.error, FramerError.LengthTooLarge);
});

test('a large declared length within the limit costs memory only as its bytes arrive', () => {
  const header = Buffer.from([0x51, 0x0c, 0x80, 0x00, 0x00]); // Query declaring a length of 200 MiB
  const before = process.memoryUsage().arrayBuffers;
  const f = new Framer({ maxMessageSize: 1 << 30 });
  f.push(header);
  assert.equal(f.next(), FrameKind.None);
  f.push(Buffer.alloc(100));
  assert.equal(f.next(), FrameKind.None);
  assert.equal(f.buffered, 105);
  assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20);
});

test('buffers handed out are not overwritten by later pushes', () => {
  const a = query('first message, split across chunks');
  const b = query('second message, also split');
  const row = dataRow(['w'.repeat(400)]);
  const stream = Buffer.concat([a, b, row, READY_IDLE]);
  const f = backendFramer();
  const held: { view: Buffer; copy: Buffer }[] = [];
  // Small chunks so every message is assembled in, or streamed from, the framer's own buffers.
  for (let p = 0; p < stream.length; p += 7) {
    f.push(Buffer.from(stream.subarray(p, p + 7)));
    for (let k = f.next(); k !== FrameKind.None; k = f.next()) {
      assert.notEqual(k, FrameKind.Error);
      const view = f.buf.subarray(f.start, f.end);
      held.push({ view, copy: Buffer.from(view) });
    }
  }
  assert.ok(held.length > 4);
  for (const h of held) assert.ok(h.view.equals(h.copy));
  const messages = held.filter((h) => h.view[0] === 0x51);
  assert.ok(messages[0].view.equals(a));
  assert.ok(messages[1].view.equals(b));
});

test('takeRemainder returns the unread rest of the chunk after an SSLRequest', () => {
  const tlsHello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
  const f = frontendFramer();
  f.untyped = true;
  f.push(Buffer.concat([sslRequest(), tlsHello]));
  assert.equal(f.next(), FrameKind.Message);
  assert.ok(f.buf.subarray(f.start, f.end).equals(sslRequest()));
  assert.ok(f.takeRemainder().equals(tlsHello));
  assert.ok(f.idle);
  assert.equal(f.next(), FrameKind.None);
  assert.equal(f.takeRemainder().length, 0);
});

test('takeRemainder of a chunk pushed as a range stops at the range end', () => {
  const tlsHello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
  const [range] = inSlab([Buffer.concat([sslRequest(), tlsHello])]);
  const f = frontendFramer();
  f.untyped = true;
  f.push(range.buf, range.start, range.end);
  assert.equal(f.next(), FrameKind.Message);
  assert.ok(f.takeRemainder().equals(tlsHello));
});

test('takeRemainder returns a partial message held by the framer', () => {
  const q = query('SELECT 42');
  const f = frontendFramer();
  f.push(q.subarray(0, 3));
  assert.equal(f.next(), FrameKind.None);
  f.push(q.subarray(3, 8));
  assert.equal(f.next(), FrameKind.None);
  assert.equal(f.buffered, 8);
  assert.ok(!f.idle);
  assert.ok(f.takeRemainder().equals(q.subarray(0, 8)));
  assert.equal(f.buffered, 0);
  assert.ok(f.idle);
  // The framer starts afresh at a message boundary.
  assertSame(frameAll(f, [SYNC]), [SYNC]);
});

test('a consumed chunk is let go: the framer holds no view of it once next() finds nothing', () => {
  const f = backendFramer();
  const chunk = Buffer.concat([readyForQuery(0x49), readyForQuery(0x54)]);
  f.push(chunk);
  assert.equal(f.next(), FrameKind.Message);
  assert.equal(f.buf, chunk);
  assert.equal(f.next(), FrameKind.Message);
  assert.equal(f.next(), FrameKind.None);
  assert.equal(f.buf.length, 0);
  assert.ok(f.idle);
  // A partial message is still kept (copied), and completes from the next chunk.
  const rfq = readyForQuery(0x45);
  f.push(rfq.subarray(0, 3));
  assert.equal(f.next(), FrameKind.None);
  assert.ok(!f.idle);
  f.push(rfq.subarray(3));
  assert.equal(f.next(), FrameKind.Message);
  assert.deepEqual(f.buf.subarray(f.start, f.end), rfq);
});
