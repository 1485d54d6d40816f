import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { EpollLoop } from '../io/epoll-loop.js';
import { loopbackPair, received } from '../io/loopback-pair.js';
import { Outbox } from './outbox.js';
import { reserve, reservedAt } from './socket-reader.js';

const loop = EpollLoop.start((err) => {
  throw err;
});
after(() => loop?.close());

/**
 * Adds ranges of a few source buffers to `box`: short and long ones, ranges that continue the one before
 * (merged), whole buffers and ranges in the middle. Returns the bytes the socket must receive, in order.
 */
function addMixed(box: Outbox, scale: number): Buffer {
  const chunk = Buffer.alloc(300 * scale);
  for (let i = 0; i < chunk.length; i++) chunk[i] = i % 251;
  const message = Buffer.from('Bxyz-a-rewritten-bind');
  const long = Buffer.alloc(1000 * scale, 0x41);
  const want: Buffer[] = [];
  const add = (b: Buffer, start: number, end: number): void => {
    box.add(b, start, end);
    want.push(b.subarray(start, end));
  };
  add(chunk, 0, 10);
  add(chunk, 10, 40);
  add(message, 0, message.length);
  add(chunk, 57, 299 * scale);
  add(long, 3, long.length);
  add(message, 2, 9);
  add(chunk, 299 * scale, 300 * scale);
  return Buffer.concat(want);
}

/** An outbox on one end of a loopback pair driven by the shard loop; resolves once `fn`'s bytes have arrived. */
async function onShardLoop(fn: (box: Outbox) => Buffer[]): Promise<void> {
  const { peer, raw, close } = await loopbackPair(loop!);
  try {
    const box = new Outbox(raw);
    const want = Buffer.concat(fn(box));
    assert.ok((await received(peer, want.length)).equals(want));
  } finally {
    close();
  }
}

test('ranges of several buffers reach a socket on the shard loop in order, byte for byte', () =>
  onShardLoop((box) => {
    const want = addMixed(box, 1);
    box.flush();
    return [want];
  }));

test('ranges of the read slab, short and long, are gathered within it in order', () =>
  onShardLoop((box) => {
    const want: Buffer[] = [];
    for (const [length, fill] of [[5, 1], [13, 2], [200, 3], [40, 4]] as const) {
      const slab = reserve(length);
      const at = reservedAt;
      slab.fill(fill, at, at + length);
      box.add(slab, at, at + length);
      // A constant message between slab ranges, as a synthesized reply sits between relayed ones.
      box.addWhole(Buffer.from([0x31, 0, 0, 0, 4]));
      want.push(Buffer.alloc(length, fill), Buffer.from([0x31, 0, 0, 0, 4]));
    }
    box.flush();
    return want;
  }));

test('writes between the slab limit and the copy limit, and past the copy limit, reach a socket on the shard loop whole', () =>
  onShardLoop((box) => {
    const medium = addMixed(box, 20);
    assert.ok(medium.length > 8 * 1024 && medium.length < 64 * 1024);
    box.flush();
    const large = addMixed(box, 100);
    assert.ok(large.length > 64 * 1024);
    box.flush();
    return [medium, large];
  }));

test('a Node socket gets the same bytes, small and past the copy limit, and one range alone', async () => {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
  const [peer] = await accepted;
  try {
    const box = new Outbox(client);
    const small = addMixed(box, 1);
    box.flush();
    const large = addMixed(box, 100);
    box.flush();
    const alone = Buffer.from('one range alone');
    box.add(alone, 4, 9);
    box.flush();
    const want = Buffer.concat([small, large, alone.subarray(4, 9)]);
    assert.ok((await received(peer, want.length)).equals(want));
  } finally {
    client.destroy();
    server.close();
  }
});
