import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { SocketReader, type ReadingSocketOptions } from './socket-reader.js';

/** Two loopback sockets; the receiving one reads through a SocketReader. */
async function pair(): Promise<{ sender: net.Socket; receiver: net.Socket; reader: SocketReader; close: () => void }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const reader = new SocketReader();
  const receiver = new net.Socket({ onread: reader.options } as ReadingSocketOptions);
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  receiver.connect({ host: '127.0.0.1', port });
  const [sender] = await accepted;
  sender.setNoDelay(true);
  return {
    sender,
    receiver,
    reader,
    close: () => {
      sender.destroy();
      receiver.destroy();
      server.close();
    },
  };
}

/** Sends `parts` one at a time, each after the last one arrived, and returns the chunks as handed over (not copies). */
async function collect(parts: Buffer[]): Promise<Buffer[]> {
  const { sender, reader, close } = await pair();
  const chunks: Buffer[] = [];
  let received = 0;
  let target = 0;
  let arrived: () => void = () => undefined;
  reader.onChunk = (buf, start, end) => {
    chunks.push(buf.subarray(start, end));
    received += end - start;
    if (received >= target) arrived();
  };
  try {
    for (const p of parts) {
      target += p.length;
      const got = new Promise<void>((resolve) => (arrived = resolve));
      sender.write(p);
      await got;
    }
    return chunks;
  } finally {
    close();
  }
}

test('every chunk keeps its bytes after later reads (no buffer is reused under a chunk)', async () => {
  const parts: Buffer[] = [];
  // Enough small reads to go through more than one slab, then reads big enough to get their own buffer.
  for (let i = 0; i < 400; i++) parts.push(Buffer.alloc(300 + (i % 7), i % 251));
  for (let i = 0; i < 3; i++) parts.push(Buffer.alloc(20_000, 200 + i));
  const chunks = await collect(parts);
  assert.deepEqual(Buffer.concat(chunks), Buffer.concat(parts));
});

test('end and close still arrive as events', async () => {
  const { sender, receiver, reader, close } = await pair();
  try {
    const got: string[] = [];
    reader.onChunk = (buf, start, end) => got.push(buf.toString('utf8', start, end));
    const ended = once(receiver, 'end');
    sender.end('last words');
    await ended;
    assert.deepEqual(got, ['last words']);
  } finally {
    close();
  }
});
