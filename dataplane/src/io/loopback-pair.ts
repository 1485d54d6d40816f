/**
 * For tests: a loopback TCP connection with a Node socket on one end and a RawSocket on a shard loop on the
 * other, the way a shard holds its clients.
 */
import net from 'node:net';
import { once } from 'node:events';
import { SocketReader } from '../session/socket-reader.js';
import { dupSocketDescriptor } from '../workers/fd.js';
import type { EpollLoop } from './epoll-loop.js';
import { RawSocket } from './raw-socket.js';

export interface LoopbackPair {
  peer: net.Socket;
  raw: RawSocket;
  reader: SocketReader;
  close: () => void;
}

export async function loopbackPair(loop: EpollLoop): Promise<LoopbackPair> {
  const server = net.createServer({ pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const peer = net.connect({ host: '127.0.0.1', port });
  const [s] = await accepted;
  const fd = dupSocketDescriptor(s);
  const address = s.remoteAddress;
  const remotePort = s.remotePort;
  s.destroy();
  const reader = new SocketReader();
  const raw = new RawSocket(fd, loop, reader, address, remotePort);
  return {
    peer,
    raw,
    reader,
    close: () => {
      peer.destroy();
      raw.destroy();
      server.close();
    },
  };
}

/** Resolves with the first `total` bytes `peer` receives. */
export function received(peer: net.Socket, total: number): Promise<Buffer> {
  const got: Buffer[] = [];
  let n = 0;
  return new Promise((resolve) =>
    peer.on('data', (b: Buffer) => {
      got.push(b);
      n += b.length;
      if (n >= total) resolve(Buffer.concat(got));
    }),
  );
}

/** Resolves with what `reader` is handed until `total` bytes; `onFirst` runs after the first chunk. */
export function delivered(reader: SocketReader, total: number, onFirst?: () => void): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  return new Promise((resolve) => {
    reader.onChunk = (buf, start, end) => {
      parts.push(Buffer.from(buf.subarray(start, end)));
      n += end - start;
      if (parts.length === 1) onFirst?.();
      if (n >= total) resolve(Buffer.concat(parts));
    };
  });
}
