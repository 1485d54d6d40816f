import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorResponse } from '../protocol/backend.js';
import { totalCount } from './histogram.js';
import { mergePoolStats, PoolStats, STATS_PERIOD_MS } from './pool-stats.js';

test('counters, histograms and SQLSTATE classes of server errors', () => {
  const s = new PoolStats('app', 'alice', 1_000);
  s.query(100);
  s.query(300);
  s.xact(500);
  s.wait(0);
  s.received += 42;
  for (const code of ['23505', '23503', '40001']) {
    const e = errorResponse({ severity: 'ERROR', code, message: 'boom' });
    s.serverError(e, 0, e.length);
  }
  // A malformed ErrorResponse without a code field is ignored.
  const noCode = Buffer.from([0x45, 0, 0, 0, 9, 0x4d, 0x78, 0, 0]);
  s.serverError(noCode, 0, noCode.length);
  const snap = s.snapshot(3_000);
  assert.deepEqual([snap.totals.queries, snap.totals.queryTime, snap.totals.xacts, snap.totals.xactTime, snap.totals.waits, snap.totals.received], [2, 400, 1, 500, 1, 42]);
  assert.deepEqual(snap.errors, { '23': 2, '40': 1 });
  assert.equal(totalCount(snap.queryHist), 2);
  // No period has completed: the averages cover the time since start.
  assert.equal(snap.periodMs, 2_000);
  assert.deepEqual(snap.period, snap.totals);
});

test('the stats period: averages cover the last completed period only', () => {
  const s = new PoolStats('app', 'alice', 0);
  for (let i = 0; i < 10; i++) s.xact(100);
  s.tick(STATS_PERIOD_MS - 1);
  assert.equal(s.snapshot(STATS_PERIOD_MS - 1).period.xacts, 10);
  s.tick(STATS_PERIOD_MS);
  for (let i = 0; i < 5; i++) s.xact(100);
  const snap = s.snapshot(STATS_PERIOD_MS + 10);
  assert.equal(snap.period.xacts, 10);
  assert.equal(snap.periodMs, STATS_PERIOD_MS);
  s.tick(2 * STATS_PERIOD_MS + 100);
  const next = s.snapshot(2 * STATS_PERIOD_MS + 100);
  assert.deepEqual([next.period.xacts, next.totals.xacts, next.periodMs], [5, 15, STATS_PERIOD_MS + 100]);
});

test('shards merge by pool: totals, periods, histograms and errors add up', () => {
  const a = new PoolStats('app', 'alice', 0);
  const b = new PoolStats('app', 'alice', 0);
  const other = new PoolStats('app', 'bob', 0);
  a.xact(10);
  b.xact(20);
  b.xact(30);
  const e = errorResponse({ severity: 'ERROR', code: '42P01', message: 'no table' });
  a.serverError(e, 0, e.length);
  b.serverError(e, 0, e.length);
  const merged = mergePoolStats([a.snapshot(1000), other.snapshot(1000), b.snapshot(2000)]);
  assert.deepEqual(merged.map((m) => `${m.database}/${m.user}`), ['app/alice', 'app/bob']);
  const [alice] = merged;
  assert.deepEqual([alice.totals.xacts, alice.totals.xactTime, alice.period.xacts, alice.periodMs], [3, 60, 3, 2000]);
  assert.equal(totalCount(alice.xactHist), 3);
  assert.deepEqual(alice.errors, { '42': 2 });
  // The inputs are left alone.
  assert.equal(a.snapshot(1000).totals.xacts, 1);
});
