import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endBatch, preciseNow, startBatch } from './batch-clock.js';

function spinFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

test('within a batch every reading is the batch start; outside, the clock moves', () => {
  startBatch();
  const first = preciseNow();
  spinFor(2);
  assert.equal(preciseNow(), first);
  endBatch();
  const after = preciseNow();
  assert.ok(after - first >= 2, `${after} - ${first}`);
  spinFor(2);
  assert.ok(preciseNow() - after >= 2);
});
