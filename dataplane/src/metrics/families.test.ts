import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PoolInfo } from '../admin/console.js';
import { PoolStats } from '../stats/pool-stats.js';
import { createMetrics, type MetricsSample } from './families.js';
import { readiness } from './ready.js';

function pool(over: Partial<PoolInfo> = {}): PoolInfo {
  return {
    database: 'app',
    user: 'alice',
    clActive: 2,
    clWaiting: 1,
    svActive: 1,
    svIdle: 0,
    svUsed: 0,
    svTested: 0,
    svLogin: 0,
    maxWaitMs: 1500,
    poolSize: 4,
    poolMode: 'transaction',
    paused: false,
    ...over,
  };
}

function sample(): MetricsSample {
  const st = new PoolStats('app', 'alice', 0);
  st.query(100); // 100 µs
  st.query(5_000); // 5 ms
  st.xact(5_100);
  st.serversOpened = 3;
  const e = Buffer.from('E\0\0\0\x0eSERROR\0C23505\0\0', 'latin1');
  e.writeUInt32BE(e.length - 1, 1);
  st.serverError(e, 0, e.length);
  return { snap: { pools: [pool()], stats: [st.snapshot(1000)], mem: [] }, shards: 2, clients: 3 };
}

test('a scrape renders every family with pool labels; histograms are cumulative with _sum and _count', async () => {
  const current = sample();
  const { registry, families } = createMetrics(() => current);
  const text = await registry.metrics();
  for (const name of families) assert.match(text, new RegExp(`^# TYPE ${name} (counter|gauge|histogram)$`, 'm'), name);
  assert.ok(families.length >= 25);
  assert.match(text, /^doorman_workers 2$/m);
  assert.match(text, /^doorman_pool_clients\{database="app",user="alice",state="waiting"\} 1$/m);
  assert.match(text, /^doorman_pool_size\{database="app",user="alice"\} 4$/m);
  assert.match(text, /^doorman_pool_max_wait_seconds\{database="app",user="alice"\} 1.5$/m);
  assert.match(text, /^doorman_pool_queries_total\{database="app",user="alice"\} 2$/m);
  assert.match(text, /^doorman_pool_server_connections_opened_total\{database="app",user="alice"\} 3$/m);
  assert.match(text, /^doorman_pool_errors_total\{database="app",user="alice",sqlstate_class="23"\} 1$/m);
  // 100 µs is above the 64 µs bound and within 256 µs; 5 ms is within 16.384 ms.
  assert.match(text, /^doorman_pool_query_duration_seconds_bucket\{database="app",user="alice",le="0.000064"\} 0$/m);
  assert.match(text, /^doorman_pool_query_duration_seconds_bucket\{database="app",user="alice",le="0.000256"\} 1$/m);
  assert.match(text, /^doorman_pool_query_duration_seconds_bucket\{database="app",user="alice",le="0.016384"\} 2$/m);
  assert.match(text, /^doorman_pool_query_duration_seconds_bucket\{database="app",user="alice",le="\+Inf"\} 2$/m);
  assert.match(text, /^doorman_pool_query_duration_seconds_sum\{database="app",user="alice"\} 0.0051$/m);
  assert.match(text, /^doorman_pool_query_duration_seconds_count\{database="app",user="alice"\} 2$/m);
  assert.match(text, /^process_cpu_user_seconds_total /m);
});

test('readiness: listening and a pool that reached its server', () => {
  const none = { pools: [pool({ svActive: 0 })], stats: [new PoolStats('app', 'alice', 0).snapshot(1)] };
  assert.deepEqual(readiness(true, none), { ready: false, reason: 'no pool has reached its PostgreSQL server yet' });
  assert.deepEqual(readiness(true, { pools: [], stats: [] }), { ready: false, reason: 'no pool is configured' });
  assert.equal(readiness(true, { ...none, pools: [pool({ svActive: 0, svIdle: 1 })] }).ready, true);
  const st = new PoolStats('app', 'alice', 0);
  st.serverLogins = 1;
  assert.equal(readiness(true, { ...none, stats: [st.snapshot(1)] }).ready, true);
  assert.deepEqual(readiness(false, { ...none, stats: [st.snapshot(1)] }), { ready: false, reason: 'not listening for clients (starting or shutting down)' });
});
