import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from './queue.js';

test('queue keeps FIFO order across wrap-around and growth', () => {
  const q = new Queue<number>(2);
  const out: number[] = [];
  let next = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < (round % 5) + 1; i++) q.push(next++);
    for (let i = 0; i < (round % 3) + 1 && q.length > 0; i++) out.push(q.shift() as number);
  }
  while (q.length > 0) out.push(q.shift() as number);
  assert.deepEqual(out, Array.from({ length: next }, (_, i) => i));
  assert.equal(q.shift(), undefined);
  assert.equal(q.peek(), undefined);
});

test('unshift puts an item back at the head, also when full', () => {
  const q = new Queue<number>(2);
  q.push(1);
  q.push(2);
  q.unshift(0);
  assert.equal(q.length, 3);
  assert.deepEqual([q.shift(), q.shift(), q.shift()], [0, 1, 2]);
});
