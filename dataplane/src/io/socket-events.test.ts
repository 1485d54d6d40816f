import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SocketEvents } from './socket-events.js';

class Raiser extends SocketEvents {
  raise(event: string, arg?: unknown): boolean {
    return this.emit(event, arg);
  }
}

test('listeners run in registration order with the argument; once-listeners run once', () => {
  const r = new Raiser();
  const seen: string[] = [];
  r.on('close', (hadError: boolean) => seen.push(`on ${hadError}`));
  r.once('close', (hadError: boolean) => seen.push(`once ${hadError}`));
  r.on('drain', () => seen.push('drain'));
  assert.equal(r.raise('close', true), true);
  assert.equal(r.raise('close', false), true);
  assert.equal(r.raise('end'), false);
  assert.deepEqual(seen, ['on true', 'once true', 'on false']);
});

test('removeAllListeners drops one event or all; a listener added while raising waits for the next time', () => {
  const r = new Raiser();
  const seen: string[] = [];
  r.on('end', () => seen.push('end'));
  r.on('drain', () => {
    seen.push('drain');
    r.on('drain', () => seen.push('late'));
  });
  r.raise('drain');
  assert.deepEqual(seen, ['drain']);
  r.removeAllListeners('drain');
  r.raise('drain');
  r.raise('end');
  assert.deepEqual(seen, ['drain', 'end']);
  r.removeAllListeners();
  assert.equal(r.raise('end'), false);
});

test("an 'error' nobody listens to is thrown, as EventEmitter does; listeners see the raiser as this", () => {
  const r = new Raiser();
  const err = new Error('read ECONNRESET');
  assert.throws(() => r.raise('error', err), err);
  let self: unknown = null;
  r.once('error', function (this: unknown) {
    self = this;
  });
  assert.equal(r.raise('error', err), true);
  assert.equal(self, r);
  assert.throws(() => r.raise('error', err), err);
});
