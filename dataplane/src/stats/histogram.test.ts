import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addCounts, bucketBound, bucketIndex, BUCKETS, newCounts, quantile, record, totalCount } from './histogram.js';

test('buckets: bound i is 2^(i/4) µs; a value lands in the first bucket whose bound holds it', () => {
  assert.equal(BUCKETS, 122);
  assert.equal(bucketBound(0), 1);
  assert.equal(bucketBound(4), 2);
  assert.equal(bucketBound(40), 1024);
  assert.equal(bucketBound(BUCKETS - 1), Infinity);
  assert.equal(bucketIndex(0), 0);
  assert.equal(bucketIndex(1), 0);
  assert.equal(bucketIndex(2), 4);
  assert.equal(bucketIndex(2.01), 5);
  assert.equal(bucketIndex(1024), 40);
  assert.equal(bucketIndex(1025), 41);
  assert.equal(bucketIndex(1e12), BUCKETS - 1);
  assert.equal(bucketIndex(Number.NaN), 0);
  assert.equal(bucketIndex(2 ** 30), BUCKETS - 2);
  assert.equal(bucketIndex(2 ** 30 + 1), BUCKETS - 1);
  assert.equal(bucketIndex(2 ** 40), BUCKETS - 1);
  for (let i = 1; i < BUCKETS - 1; i++) {
    assert.equal(bucketIndex(bucketBound(i)), i, `bound ${i}`);
    assert.equal(bucketIndex(bucketBound(i) * (1 + 1e-12)), i + 1, `just above bound ${i}`);
  }
  for (let us = 1.5; us < 1e9; us *= 1.37) {
    const i = bucketIndex(us);
    assert.ok(us <= bucketBound(i) && us > bucketBound(i - 1), `${us} in bucket ${i}`);
  }
});

test('quantiles of a uniform 1..1000 µs sample are within one bucket (19 %)', () => {
  const c = newCounts();
  for (let us = 1; us <= 1000; us++) record(c, us);
  assert.equal(totalCount(c), 1000);
  for (const [q, exact] of [
    [0.5, 500],
    [0.9, 900],
    [0.95, 950],
    [0.99, 990],
  ] as const) {
    const got = quantile(c, q);
    assert.ok(Math.abs(got - exact) / exact < 0.19, `q${q}: ${got} vs ${exact}`);
  }
  assert.equal(quantile(newCounts(), 0.99), 0);
});

test('histograms merge by adding counts: the merge equals recording everything in one', () => {
  const a = newCounts();
  const b = newCounts();
  const both = newCounts();
  for (let i = 0; i < 500; i++) {
    const fast = 50 + (i % 7);
    const slow = 20_000 + 13 * i;
    record(a, fast);
    record(b, slow);
    record(both, fast);
    record(both, slow);
  }
  const merged = newCounts();
  addCounts(merged, a);
  addCounts(merged, b);
  assert.deepEqual(merged, both);
  // Half fast, half slow: p90 and p99 are slow, p25 is fast.
  assert.ok(quantile(merged, 0.25) < 60);
  assert.ok(quantile(merged, 0.9) > 20_000 && quantile(merged, 0.99) < 32_000);
});
