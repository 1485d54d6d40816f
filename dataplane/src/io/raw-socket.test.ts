import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { EpollLoop } from './epoll-loop.js';
import { delivered, loopbackPair, received, type LoopbackPair } from './loopback-pair.js';
import { RawSocket } from './raw-socket.js';
import { RESERVE_IN_SLAB, reserve, slabFor } from '../session/socket-reader.js';

/** Resolves when `socket` raises `event`. */
function raised(socket: RawSocket, event: string): Promise<void> {
  return new Promise((resolve) => socket.once(event, () => resolve()));
}

const loop = EpollLoop.start((err) => {
  throw err;
});
after(() => loop?.close());

const pair = (): Promise<LoopbackPair> => loopbackPair(loop!);

/** The sha256 of the first `total` bytes the peer receives. */
function digestOf(peer: net.Socket, total: number): Promise<string> {
  const hash = createHash('sha256');
  let n = 0;
  return new Promise((resolve) =>
    peer.on('data', (b: Buffer) => {
      hash.update(b);
      n += b.length;
      if (n === total) resolve(hash.digest('hex'));
    }),
  );
}

test('the loop starts on this platform (otherwise shards fall back to Node sockets)', () => {
  assert.notEqual(loop, null);
});

test('bytes flow both ways; a slice is sent from its own offset', async () => {
  const { peer, raw, reader, close } = await pair();
  assert.equal(raw.remoteAddress, '127.0.0.1');
  const got = delivered(reader, 5);
  peer.write('hello');
  assert.equal((await got).toString(), 'hello');
  const back = once(peer, 'data');
  assert.equal(raw.write(Buffer.from('xxworldyy').subarray(2, 7)), true);
  assert.equal(String((await back)[0]), 'world');
  close();
});

test('reads land in the slab and are never overwritten: chunks kept without copying stay intact', async () => {
  const { peer, reader, close } = await pair();
  const sent = Buffer.alloc(1024 * 1024 + 12345);
  for (let i = 0; i < sent.length; i++) sent[i] = (i * 7 + (i >> 10)) & 0xff;
  const kept: Buffer[] = [];
  let n = 0;
  const all = new Promise<void>((resolve) => {
    reader.onChunk = (buf, start, end) => {
      kept.push(buf.subarray(start, end));
      n += end - start;
      if (n >= sent.length) resolve();
    };
  });
  for (let off = 0; off < sent.length; off += 3000) peer.write(sent.subarray(off, Math.min(off + 3000, sent.length)));
  await all;
  assert.ok(kept.length > 1);
  assert.ok(Buffer.concat(kept).equals(sent));
  close();
});

test('a write the kernel cannot take is queued, drains in order, and emits drain', async () => {
  const { peer, raw, close } = await pair();
  peer.pause();
  const block = Buffer.alloc(1024 * 1024);
  const sent = createHash('sha256');
  for (let i = 0; i < 16; i++) {
    block.fill(i);
    const copy = Buffer.from(block);
    sent.update(copy);
    raw.write(copy);
  }
  assert.ok(raw.writableLength > 0, 'a peer that does not read leaves bytes queued');
  const received = digestOf(peer, 16 * 1024 * 1024);
  const drained = raised(raw, 'drain');
  peer.resume();
  await drained;
  assert.equal(await received, sent.digest('hex'));
  assert.equal(raw.writableLength, 0);
  close();
});

test('a transient write keeps a copy of what the kernel did not take: the caller reuses its buffer at once', async () => {
  const { peer, raw, close } = await pair();
  peer.pause();
  const scratch = Buffer.alloc(64 * 1024);
  const sent = createHash('sha256');
  let queuedAt = -1;
  for (let i = 0; i < 256; i++) {
    scratch.fill(i & 0xff);
    const length = 1000 + i * 200;
    sent.update(scratch.subarray(0, length));
    if (!raw.writeTransient(scratch, length) && queuedAt < 0) queuedAt = i;
  }
  // Whatever stayed queued must survive the scratch buffer being overwritten.
  scratch.fill(0xee);
  assert.ok(queuedAt >= 0 && raw.writableLength > 0, 'a peer that does not read leaves bytes queued');
  const total = Array.from({ length: 256 }, (_, k) => 1000 + k * 200).reduce((a, b) => a + b, 0);
  const received = digestOf(peer, total);
  peer.resume();
  assert.equal(await received, sent.digest('hex'));
  close();
});

test('a range of the chunk just read is written from its bytes in the slab', async () => {
  const { peer, raw, reader, close } = await pair();
  peer.setNoDelay(true);
  reader.onChunk = (buf, start, end) => {
    // Skip each chunk's first 3 and last 2 bytes: a range well inside the slab.
    assert.equal(raw.writeRange(buf, start + 3, end - 2), true);
  };
  for (let i = 0; i < 5; i++) {
    const body = `message ${i} ${'x'.repeat(i * 100)}`;
    const echoed = once(peer, 'data');
    peer.write(`<<<${body}>>`);
    assert.equal(String((await echoed)[0]), body);
  }
  close();
});

test('a range write the kernel cannot take is queued from the buffer itself, in order', async () => {
  const { peer, raw, close } = await pair();
  peer.pause();
  const block = Buffer.alloc(1024 * 1024 + 10);
  const sent = createHash('sha256');
  for (let i = 0; i < 16; i++) {
    const own = Buffer.from(block.fill(i + 1));
    sent.update(own.subarray(7, own.length - 3));
    raw.writeRange(own, 7, own.length - 3);
  }
  assert.ok(raw.writableLength > 0, 'a peer that does not read leaves bytes queued');
  const received = digestOf(peer, 16 * 1024 * 1024);
  peer.resume();
  assert.equal(await received, sent.digest('hex'));
  close();
});

test('sends made inside a batch go out together at its end, to every socket, and all arrive', async () => {
  assert.equal(loop!.batchesSends, true, 'io_uring works here');
  const a = await pair();
  const b = await pair();
  a.reader.onChunk = (buf, start, end) => {
    assert.equal(a.raw.writeRange(buf, start, end), true);
    assert.equal(b.raw.writeRange(buf, start + 1, end), true);
  };
  const echoed = once(a.peer, 'data');
  const relayed = once(b.peer, 'data');
  a.peer.write('#batched');
  assert.equal(String((await echoed)[0]), '#batched');
  assert.equal(String((await relayed)[0]), 'batched');
  a.close();
  b.close();
});

test('a range of an older slab (a waiting client\'s query) also goes out in the batch\'s ring', async () => {
  const { peer, raw, reader, close } = await pair();
  const kept = await new Promise<[Buffer, number, number]>((resolve) => {
    reader.onChunk = (buf, start, end) => resolve([buf, start, end]);
    peer.write('#queued');
  });
  // Reservations fill the slab until a new one is taken: the kept range is now in an older slab.
  while (slabFor(0) === kept[0]) reserve(RESERVE_IN_SLAB - 1);
  const queueSend = loop!.queueSend.bind(loop!);
  let queued = 0;
  loop!.queueSend = (...args) => {
    if (args[1] === raw.fd) queued++;
    return queueSend(...args);
  };
  try {
    reader.onChunk = () => raw.writeRange(...kept);
    const got = received(peer, 7);
    peer.write('go');
    assert.equal((await got).toString(), '#queued');
    assert.equal(queued, 1);
  } finally {
    loop!.queueSend = queueSend;
    close();
  }
});

test('writes to one socket within a batch keep their order, whether batched or sent at once', async () => {
  const { peer, raw, reader, close } = await pair();
  reader.onChunk = (buf, start, end) => {
    raw.writeRange(buf, start, start + 3);
    raw.write(Buffer.from('-X-'));
    raw.writeRange(buf, start + 3, end);
    raw.writeRange(buf, start, start + 1);
  };
  const got = received(peer, 13);
  peer.write('abcdefghi');
  assert.equal((await got).toString(), 'abc-X-defghia');
  close();
});

test('a write then destroy within a batch still reaches the peer before the connection closes', async () => {
  const { peer, raw, reader, close } = await pair();
  reader.onChunk = (buf, start, end) => {
    raw.writeRange(buf, start, end);
    raw.destroy();
  };
  const got = received(peer, 4);
  const ended = once(peer, 'end');
  peer.write('last');
  const lost = new Promise<Buffer>((_, reject) => setTimeout(() => reject(new Error('the bytes never arrived')), 5000).unref());
  assert.equal((await Promise.race([got, lost])).toString(), 'last');
  await ended;
  close();
});

test('a paused socket delivers nothing until resumed', async () => {
  const { peer, raw, reader, close } = await pair();
  raw.pause();
  let seen = 0;
  reader.onChunk = (_buf, start, end) => {
    seen += end - start;
  };
  peer.write('abc');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(seen, 0);
  const got = delivered(reader, 3);
  raw.resume();
  assert.equal((await got).toString(), 'abc');
  close();
});

test('the peer closing gives end, then close, once', async () => {
  const { peer, raw, close } = await pair();
  const events: string[] = [];
  raw.on('end', () => events.push('end'));
  raw.on('close', () => events.push('close'));
  const closed = raised(raw, 'close');
  peer.end();
  await closed;
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(events, ['end', 'close']);
  assert.equal(raw.destroyed, true);
  close();
});

test('a peer that hangs up while the socket is paused is reported once reading resumes', async () => {
  const { peer, raw, close } = await pair();
  raw.pause();
  peer.destroy();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(raw.destroyed, false);
  const closed = raised(raw, 'close');
  raw.resume();
  await closed;
  close();
});

test('end() sends what is queued, then half-closes', async () => {
  const { peer, raw, close } = await pair();
  const parts: Buffer[] = [];
  peer.on('data', (b: Buffer) => parts.push(b));
  const ended = once(peer, 'end');
  raw.end(Buffer.from('bye'));
  await ended;
  assert.equal(Buffer.concat(parts).toString(), 'bye');
  assert.equal(raw.writable, false);
  close();
});

test('toNodeSocket hands the connection to a Node socket without closing it', async () => {
  const { peer, raw, close } = await pair();
  let closed = false;
  raw.on('close', () => {
    closed = true;
  });
  const s = raw.toNodeSocket();
  const got = once(s, 'data');
  peer.write('still here');
  assert.equal(String((await got)[0]), 'still here');
  assert.equal(closed, false);
  s.destroy();
  close();
});

test('while the loop waits, libuv still runs timers and Node sockets', async () => {
  const { peer, raw, reader, close } = await pair();
  const started = Date.now();
  await new Promise((r) => setTimeout(r, 120));
  assert.ok(Date.now() - started < 1000);
  // A Node connection opened from inside a RawSocket read completes: its watcher is polled by libuv.
  const server = net.createServer((s) => s.end('pong'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const answer = new Promise<string>((resolve) => {
    reader.onChunk = () => {
      const c = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
      c.on('data', (b: Buffer) => resolve(String(b)));
    };
  });
  peer.write('go');
  assert.equal(await answer, 'pong');
  server.close();
  assert.equal(raw.destroyed, false);
  close();
});

test('the ticker runs inside the loop at its interval, and libuv timers still fire on time beside it', async () => {
  let ticks = 0;
  loop!.setTicker(() => ticks++, 20);
  try {
    const started = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    const elapsed = Date.now() - started;
    // The loop must not keep sleeping tick to tick past a libuv timer that fell due (it did, once: libuv's
    // clock stands still while the loop runs).
    assert.ok(elapsed < 700, `a 300 ms timer fired after ${elapsed} ms`);
    assert.ok(ticks >= 5 && ticks <= Math.ceil(elapsed / 20) + 1, `${ticks} ticks in ${elapsed} ms`);
  } finally {
    loop!.setTicker(null, 0);
  }
  const stoppedAt = ticks;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(ticks, stoppedAt);
});
