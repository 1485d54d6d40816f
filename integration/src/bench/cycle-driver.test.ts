import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { cstr, fe, frame, int32 } from '../harness/index.js';
import { driveCycles, runCycle, type CycleTarget } from './cycle-driver.js';

/**
 * A fake pooler on 127.0.0.1:0 whose answer to a StartupMessage is chosen per test, so every way a cycle
 * can fail is produced on purpose.
 */

type Behaviour = 'ok' | 'error' | 'md5' | 'hang-up' | 'ignore-terminate';

const TERMINATE = 0x58;
let behaviour: Behaviour = 'ok';
let accepted = 0;
let server: net.Server;
let target: CycleTarget;
const sockets = new Set<net.Socket>();

function answer(socket: net.Socket): void {
  const ready = Buffer.concat([frame('R', int32(0)), frame('S', cstr('server_version'), cstr('15')), frame('K', int32(1), int32(2)), frame('Z', Buffer.from('I'))]);
  switch (behaviour) {
    case 'ok':
    case 'ignore-terminate':
      // Split mid-message: the driver must reassemble.
      socket.write(ready.subarray(0, 7));
      setTimeout(() => socket.write(ready.subarray(7)), 5);
      return;
    case 'error':
      socket.write(frame('E', cstr('SFATAL'), cstr('C28000'), cstr('Mno such user'), Buffer.alloc(1)));
      return;
    case 'md5':
      socket.write(frame('R', int32(5), Buffer.from([1, 2, 3, 4])));
      return;
    case 'hang-up':
      socket.destroy();
      return;
  }
}

before(async () => {
  // Half-open allowed, so the server closes only when the behaviour says so, not on the client's FIN.
  server = net.createServer({ allowHalfOpen: true }, (socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let received = Buffer.alloc(0);
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (!answered && received.length >= 4 && received.length >= received.readInt32BE(0)) {
        answered = true;
        answer(socket);
        received = received.subarray(received.readInt32BE(0));
      }
      if (answered && received[0] === TERMINATE && behaviour !== 'ignore-terminate') socket.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  target = { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, user: 'u', database: 'app' };
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const startup = fe.startup({ user: 'u', database: 'app' });
const terminate = fe.terminate();

test('a cycle succeeds on AuthenticationOk, ReadyForQuery and the pooler closing after Terminate', async () => {
  behaviour = 'ok';
  assert.equal(await runCycle(target, startup, terminate, 5000), null);
});

test('each way a cycle fails has its own reason', async () => {
  behaviour = 'error';
  assert.equal(await runCycle(target, startup, terminate, 5000), 'ErrorResponse: no such user');
  behaviour = 'md5';
  assert.equal(await runCycle(target, startup, terminate, 5000), 'authentication request 5 (trust expected)');
  behaviour = 'hang-up';
  assert.equal(await runCycle(target, startup, terminate, 5000), 'closed by the pooler while awaiting-ready');
  behaviour = 'ignore-terminate';
  assert.equal(await runCycle(target, startup, terminate, 300), 'timed out after 300 ms while closing');
  const closed = { ...target, port: await closedPort() };
  assert.equal(await runCycle(closed, startup, terminate, 5000), 'socket error: ECONNREFUSED');
});

test('driveCycles runs exactly the total, bounded in concurrency, reporting every finished cycle', async () => {
  behaviour = 'ok';
  const before = accepted;
  const progress: number[] = [];
  const outcome = await driveCycles(target, { total: 25, concurrency: 4, deadlineMs: 60_000, cycleTimeoutMs: 5000, onProgress: (n) => progress.push(n) });
  assert.equal(outcome.finished, 25);
  assert.equal(outcome.succeeded, 25);
  assert.equal(outcome.failures, 0);
  assert.deepEqual(outcome.failureKinds, {});
  assert.equal(outcome.aborted, null);
  assert.deepEqual(progress, Array.from({ length: 25 }, (_, i) => i + 1));
  assert.equal(accepted - before, 25);
});

test('driveCycles counts failures by reason and stops at the deadline with a message', async () => {
  behaviour = 'error';
  const failed = await driveCycles(target, { total: 6, concurrency: 2, deadlineMs: 60_000, cycleTimeoutMs: 5000 });
  assert.equal(failed.failures, 6);
  assert.deepEqual(failed.failureKinds, { 'ErrorResponse: no such user': 6 });
  const late = await driveCycles(target, { total: 6, concurrency: 2, deadlineMs: 0, cycleTimeoutMs: 5000 });
  assert.equal(late.finished, 0);
  assert.equal(late.aborted, 'deadline of 0 s passed after 0 of 6 cycles');
});

/** A port nothing listens on: bound, noted, released. */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
