import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResponseQueue, Slot } from './responses.js';

test('the queue grows (twice at least) past its first size and keeps order and counters across the wrap', () => {
  const q = new ResponseQueue();
  // Move the head so that growing has to unwrap the ring.
  for (let i = 0; i < 5; i++) q.push(Slot.Sync);
  for (let i = 0; i < 5; i++) q.shift();
  const kinds = [Slot.Parse, Slot.Bind, Slot.Sync];
  for (let i = 0; i < 100; i++) q.push(kinds[i % 3], i, i % 3 === 0);
  assert.equal(q.length, 100);
  assert.equal(q.batches, 33);
  assert.equal(q.tentative, 34);
  for (let i = 0; i < 100; i++) {
    assert.equal(q.headKind, kinds[i % 3]);
    assert.equal(q.headRef, i);
    q.shift();
  }
  assert.equal(q.length, 0);
  assert.equal(q.batches, 0);
  assert.equal(q.tentative, 0);
  assert.equal(q.serverBound, 0);
});
