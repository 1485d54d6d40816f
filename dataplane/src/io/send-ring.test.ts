import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { dupSocketDescriptor } from '../workers/fd.js';
import { addressOf, close } from './libc.js';
import { received } from './loopback-pair.js';
import { RING_ENTRIES, SendRing, type RingSender } from './send-ring.js';

const ring = SendRing.open();
after(() => ring?.close());

/**
 * A loopback connection: the descriptor of one end (a duplicate of an accepted socket Node never reads,
 * so nothing else touches its bytes) and the Node socket at the other.
 */
async function connection(): Promise<{ fd: number; peer: net.Socket; close: () => void }> {
  const server = net.createServer({ pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const peer = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
  const [ours] = await accepted;
  await once(peer, 'connect');
  const fd = dupSocketDescriptor(ours);
  return {
    fd,
    peer,
    close: () => {
      close(fd);
      ours.destroy();
      peer.destroy();
      server.close();
    },
  };
}

/** Collects the results the ring reports, in the order it reports them. */
class Results implements RingSender {
  readonly seen: number[] = [];
  readonly memories: Buffer[] = [];
  constructor(private readonly order: string[] = [], private readonly name = '') {}
  onSent(result: number, memory: Buffer): void {
    this.seen.push(result);
    this.memories.push(memory);
    this.order.push(this.name);
  }
}

test('io_uring works on this machine, so shards batch their sends', () => {
  assert.notEqual(ring, null);
});

test('sends to several sockets go out in one flush, and each sender hears its own result and buffer in queue order', async () => {
  const conns = await Promise.all([connection(), connection(), connection()]);
  const memory = Buffer.from('alpha|-----------|charlie-charlie-charlie');
  const other = Buffer.from('bravo-bravo');
  const ranges: [Buffer, number, number][] = [
    [memory, 0, 5],
    [other, 0, 11],
    [memory, 18, memory.length],
  ];
  const order: string[] = [];
  const senders = ranges.map((_, i) => new Results(order, String(i)));
  const arriving = conns.map((c, i) => received(c.peer, ranges[i][2] - ranges[i][1]));
  ranges.forEach(([b, start, end], i) => assert.equal(ring!.add(senders[i], conns[i].fd, addressOf(b) + start, end - start, b), true));
  assert.equal(ring!.pending, 3);
  ring!.flush();
  assert.equal(ring!.pending, 0);
  assert.deepEqual(order, ['0', '1', '2']);
  senders.forEach((s, i) => {
    assert.deepEqual(s.seen, [ranges[i][2] - ranges[i][1]]);
    assert.equal(s.memories[0], ranges[i][0], 'the buffer the bytes were in');
  });
  const got = await Promise.all(arriving);
  assert.deepEqual(
    got.map((b) => b.toString()),
    ['alpha', 'bravo-bravo', 'charlie-charlie-charlie'],
  );
  for (const c of conns) c.close();
});

test('a lone send is reported the same way (it goes out with send(2))', async () => {
  const c = await connection();
  const memory = Buffer.from('just one');
  const sender = new Results();
  const arriving = received(c.peer, memory.length);
  ring!.add(sender, c.fd, addressOf(memory), memory.length, memory);
  ring!.flush();
  assert.deepEqual(sender.seen, [memory.length]);
  assert.equal((await arriving).toString(), 'just one');
  c.close();
});

test('a socket that cannot take everything reports a short count or -EAGAIN, never waits', async () => {
  const a = await connection();
  const b = await connection();
  const block = Buffer.alloc(8 * 1024 * 1024, 7);
  const address = addressOf(block);
  const first = new Results();
  const second = new Results();
  // Nobody reads at the other end: the first send fills the socket, the second finds it full.
  ring!.add(first, a.fd, address, block.length, block);
  ring!.add(second, a.fd, address, block.length, block);
  const other = new Results();
  ring!.add(other, b.fd, address, 10, block);
  ring!.flush();
  assert.equal(first.seen.length, 1);
  assert.ok(first.seen[0] > 0 && first.seen[0] < block.length, `short send: ${first.seen[0]}`);
  assert.deepEqual(second.seen, [-11]);
  assert.deepEqual(other.seen, [10], 'the other socket is unaffected');
  a.close();
  b.close();
});

test('a send to a connection the peer reset reports -errno', async () => {
  const c = await connection();
  c.peer.resetAndDestroy();
  await once(c.peer, 'close');
  const memory = Buffer.alloc(100, 1);
  const senders = [new Results(), new Results()];
  // The first send meets the reset; a second one finds the connection already failed.
  for (const s of senders) ring!.add(s, c.fd, addressOf(memory), memory.length, memory);
  ring!.flush();
  const results = senders.map((s) => s.seen[0]);
  assert.ok(results.every((r) => r < 0) && results.some((r) => r === -104 || r === -32), `results: ${results.join(', ')}`);
  c.close();
});

test('a full ring refuses more until flushed', async () => {
  const c = await connection();
  const memory = Buffer.alloc(1, 1);
  const sender = new Results();
  const arriving = received(c.peer, RING_ENTRIES);
  for (let i = 0; i < RING_ENTRIES; i++) assert.equal(ring!.add(sender, c.fd, addressOf(memory), 1, memory), true);
  assert.equal(ring!.add(sender, c.fd, addressOf(memory), 1, memory), false);
  ring!.flush();
  assert.equal(sender.seen.length, RING_ENTRIES);
  assert.ok(sender.seen.every((r) => r === 1));
  assert.equal((await arriving).length, RING_ENTRIES);
  c.close();
});

test('a closed ring takes nothing', () => {
  const other = SendRing.open();
  assert.notEqual(other, null);
  other!.close();
  assert.equal(other!.add(new Results(), 0, 0, 1, Buffer.alloc(1)), false);
});
