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

test('removeWhere drops matching items and keeps order', () => {
  const q = new Queue<number>(4);
  for (let i = 0; i < 10; i++) q.push(i);
  assert.equal(q.removeWhere((n) => n % 3 === 0), 4);
  const rest: number[] = [];
  while (q.length) rest.push(q.shift() as number);
  assert.deepEqual(rest, [1, 2, 4, 5, 7, 8]);
});

test('unshift puts an item back at the head, also when full', () => {
  const q = new Queue<number>(2);
  q.push(1);
  q.push(2);
  q.unshift(0);
  assert.equal(q.length, 3);
  assert.deepEqual([q.shift(), q.shift(), q.shift()], [0, 1, 2]);
});
