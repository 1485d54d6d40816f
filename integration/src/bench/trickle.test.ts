import assert from 'node:assert/strict';
import { test } from 'node:test';
import { burstArgs, trickleArgs, trickleFigures } from './trickle.js';

test('a trickle is pgbench at a fixed rate with a transaction log', () => {
  assert.deepEqual(trickleArgs({ clients: 100, ratePerSecond: 200, seconds: 22, scriptPath: '/t/s.sql', logPrefix: '/t/warm' }), [
    '-n', '-j', '1', '-c', '100', '-R', '200', '-T', '22', '-f', '/t/s.sql', '--log', '--log-prefix=/t/warm',
  ]);
  assert.deepEqual(burstArgs(10, 5, '/t/s.sql'), ['-n', '-j', '1', '-c', '10', '-T', '5', '-f', '/t/s.sql']);
});

test('trickle figures: percentiles and max over logged latencies, failures counted, CPU per query and per wall time', () => {
  const records = [
    ...Array.from({ length: 98 }, (_, i) => ({ client: i % 10, endUs: 1_000_000 + i, latencyUs: 300 + i })),
    { client: 1, endUs: 2_000_000, latencyUs: 9000 },
    { client: 2, endUs: 2_000_001, latencyUs: null },
  ];
  // 100 ticks of 10 ms = 1 s of CPU over a 10 s window.
  const f = trickleFigures(records, { windowUs: 10_000_000, ticks: 100 }, 100);
  assert.equal(f.queries, 100);
  assert.equal(f.failed, 1);
  assert.equal(f.p50Ms, 0.349);
  assert.equal(f.p99Ms, 9);
  assert.equal(f.maxMs, 9);
  assert.equal(f.cpuUsPerQuery, 10_000);
  assert.equal(f.cpuPercent, 10);
  assert.equal(f.error, null);
});

test('trickle figures without records or CPU samples are empty, not zero', () => {
  const f = trickleFigures([], null, 100);
  assert.deepEqual(f, { queries: 0, failed: 0, p50Ms: null, p99Ms: null, maxMs: null, cpuUsPerQuery: null, cpuPercent: null, error: null });
});
