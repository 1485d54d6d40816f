#!/usr/bin/env node
/**
 * A bare TCP pass-through for `--io-floor`: each client gets its own server connection and bytes are relayed
 * untouched, so what it spends per transaction is what Node's socket layer costs with no pooler around it.
 *
 *   node relay.js data|onread TARGET_PORT
 *
 * `data` reads through 'data' events (a fresh buffer per read); `onread` reads into one reused buffer and
 * copies each chunk out, as Doorman does. Listens on 127.0.0.1 on a port the OS picks, printed on stdout.
 */
import net from 'node:net';

const [mode, targetPort] = process.argv.slice(2);
if ((mode !== 'data' && mode !== 'onread') || !/^\d+$/.test(targetPort ?? '')) {
  process.stderr.write('usage: relay.js data|onread TARGET_PORT\n');
  process.exit(2);
}

const readBuffer = Buffer.allocUnsafeSlow(64 * 1024);

/** Reads of `from` go to `to()`: 'data' events, or `onread` into the shared buffer with a copy per chunk. */
function relayOptions(to: () => net.Socket): { onread?: net.OnReadOpts } {
  if (mode === 'data') return {};
  return {
    onread: {
      buffer: readBuffer,
      callback: (n) => {
        to().write(Buffer.from(readBuffer.subarray(0, n)));
        return true;
      },
    },
  };
}

function pipeEnds(a: net.Socket, b: net.Socket): void {
  if (mode === 'data') {
    a.on('data', (chunk: Buffer) => b.write(chunk));
    b.on('data', (chunk: Buffer) => a.write(chunk));
  }
  for (const [x, y] of [
    [a, b],
    [b, a],
  ] as const) {
    x.on('error', () => x.destroy());
    x.on('close', () => y.destroy());
  }
}

const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (accepted) => {
  let client: net.Socket = accepted;
  const upstream = net.connect({ host: '127.0.0.1', port: Number(targetPort), noDelay: true, ...relayOptions(() => client) });
  if (mode === 'onread') {
    // An accepted socket cannot take `onread`; a new Socket over the same libuv handle can (Node's own
    // `handle` option, undocumented, which Doorman does not need: it builds its sockets from descriptors).
    const handle = (accepted as unknown as { _handle: unknown })._handle;
    client = new net.Socket({ handle, ...relayOptions(() => upstream) } as net.SocketConstructorOpts);
  }
  pipeEnds(client, upstream);
  client.resume();
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`);
});
