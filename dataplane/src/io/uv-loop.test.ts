import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { probeUvLoop } from './uv-loop.js';

test('the libuv loop of this thread is found and its layout checks out', () => {
  const uv = probeUvLoop();
  assert.ok(uv !== null, 'libuv loop not readable: shards would fall back to Node sockets');
  assert.ok(uv.backendFd > 2);
});

test('a connect started now is a pending watcher until libuv polls again', async () => {
  const uv = probeUvLoop()!;
  const server = net.createServer((s) => s.destroy());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    // Other watchers (the test runner's output) come and go: wait for a moment with none.
    for (let i = 0; i < 100 && uv.watchersPending(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(uv.watchersPending(), false);
    const c = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
    // Node starts a connect to an address on the next tick.
    await new Promise((r) => process.nextTick(r));
    assert.equal(uv.watchersPending(), true, 'libuv queues the new watcher for its next poll');
    await once(c, 'connect');
    c.destroy();
  } finally {
    server.close();
  }
});

test('a due timer shortens the time libuv may sleep', async () => {
  const uv = probeUvLoop()!;
  await new Promise((r) => setTimeout(r, 1));
  const t = setTimeout(() => undefined, 300);
  const timeout = uv.timeout();
  clearTimeout(t);
  assert.ok(timeout >= 0 && timeout <= 300, `timeout ${timeout}`);
});
