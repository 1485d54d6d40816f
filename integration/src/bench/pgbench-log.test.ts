import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inWindow, parseLog, parseLogLine, percentile, steadyWindow, summarizeLatency, type LogRecord } from './pgbench-log.js';

test('parseLogLine reads client, end time and latency', () => {
  assert.deepEqual(parseLogLine('3 17 532 0 1764013200 250000'), { client: 3, endUs: 1764013200250000, latencyUs: 532 });
});

test('parseLogLine accepts the optional schedule_lag and retries columns', () => {
  assert.deepEqual(parseLogLine('0 1 1200 0 1764013200 5 100 0'), { client: 0, endUs: 1764013200000005, latencyUs: 1200 });
});

test('parseLogLine keeps failed and skipped transactions without a latency', () => {
  assert.deepEqual(parseLogLine('1 2 failed 0 1764013201 10'), { client: 1, endUs: 1764013201000010, latencyUs: null });
  assert.deepEqual(parseLogLine('1 3 skipped 0 1764013201 20'), { client: 1, endUs: 1764013201000020, latencyUs: null });
});

test('parseLogLine rejects short and non-numeric lines', () => {
  assert.equal(parseLogLine(''), null);
  assert.equal(parseLogLine('0 1 500 0 1764013200'), null);
  assert.equal(parseLogLine('x 1 500 0 1764013200 1'), null);
  assert.equal(parseLogLine('0 1 fast 0 1764013200 1'), null);
});

test('parseLog skips blank and malformed lines', () => {
  const text = '0 0 100 0 10 0\n\ngarbage\n1 0 200 0 10 500\n';
  assert.deepEqual(parseLog(text), [
    { client: 0, endUs: 10_000_000, latencyUs: 100 },
    { client: 1, endUs: 10_000_500, latencyUs: 200 },
  ]);
});

function rec(endSeconds: number, latencyUs: number | null = 100): LogRecord {
  return { client: 0, endUs: endSeconds * 1_000_000, latencyUs };
}

test('steadyWindow starts after the last thread started and ends before the first stopped', () => {
  const thread0 = [rec(100), rec(105), rec(110)];
  const thread1 = [rec(101), rec(106), rec(109)];
  assert.deepEqual(steadyWindow([thread0, thread1], 1_000_000), { startUs: 102_000_000, endUs: 108_000_000 });
});

test('steadyWindow is null when a thread logged nothing or the margins eat the run', () => {
  assert.equal(steadyWindow([], 1_000_000), null);
  assert.equal(steadyWindow([[rec(100), rec(110)], []], 1_000_000), null);
  assert.equal(steadyWindow([[rec(100), rec(101.5)]], 1_000_000), null);
});

test('inWindow keeps records ending in (start, end]', () => {
  const records = [rec(1), rec(2), rec(3), rec(4)];
  assert.deepEqual(inWindow(records, { startUs: 1_000_000, endUs: 3_000_000 }), [rec(2), rec(3)]);
});

test('percentile uses the nearest rank', () => {
  const sorted = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
  assert.equal(percentile(sorted, 50), 50);
  assert.equal(percentile(sorted, 99), 100);
  assert.equal(percentile(sorted, 10), 10);
  assert.equal(percentile(sorted, 11), 20);
  assert.equal(percentile([7], 99), 7);
  assert.equal(percentile([], 50), null);
  assert.throws(() => percentile(sorted, 0), RangeError);
});

test('summarizeLatency sorts numerically and counts records without latency', () => {
  // 1..200 in a scrambled order plus two failures: a string sort would put 100 before 20.
  const latencies = Array.from({ length: 200 }, (_, i) => ((i * 77) % 200) + 1);
  const records = [...latencies.map((l) => rec(1, l)), rec(1, null), rec(1, null)];
  assert.deepEqual(summarizeLatency(records), { transactions: 202, withoutLatency: 2, p50Us: 100, p99Us: 198 });
  assert.deepEqual(summarizeLatency([]), { transactions: 0, withoutLatency: 0, p50Us: null, p99Us: null });
});
