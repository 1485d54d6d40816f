/**
 * The metrics listener against real PostgreSQL with two worker shards: /healthz, /readyz before and after
 * a pool reaches its server, and a /metrics scrape carrying every family, whose totals move with load.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import {
  SCRAM_USER,
  connectPg,
  doormanConfigFor,
  freePort,
  sqlError,
  startDoorman,
  startPostgres,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 120_000;
const HTTP_TIMEOUT_MS = 5_000;

/** Every family Doorman exports, plus two of prom-client's process metrics. */
const FAMILIES = [
  'doorman_build_info', 'doorman_workers', 'doorman_clients', 'doorman_shard_heap_used_bytes', 'doorman_pool_clients',
  'doorman_pool_servers', 'doorman_pool_size', 'doorman_pool_max_wait_seconds', 'doorman_pool_paused',
  'doorman_pool_transactions_total', 'doorman_pool_queries_total', 'doorman_pool_received_bytes_total',
  'doorman_pool_sent_bytes_total', 'doorman_pool_transaction_seconds_total', 'doorman_pool_query_seconds_total',
  'doorman_pool_wait_seconds_total', 'doorman_pool_wait_timeouts_total', 'doorman_pool_server_connections_opened_total',
  'doorman_pool_server_logins_total', 'doorman_pool_prepared_hits_total', 'doorman_pool_prepared_misses_total',
  'doorman_pool_prepared_evictions_total', 'doorman_pool_shard_donations_total', 'doorman_pool_shard_evictions_total',
  'doorman_pool_errors_total', 'doorman_pool_transaction_duration_seconds', 'doorman_pool_query_duration_seconds',
  'doorman_pool_wait_duration_seconds', 'process_resident_memory_bytes', 'process_cpu_seconds_total',
];

const POOL = '{database="app",user="scram_user"}';

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  return { status: res.status, body: await res.text() };
}

/** The value of one sample line, e.g. value(text, 'doorman_pool_queries_total', POOL). */
function value(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  assert.ok(line !== undefined, `no sample ${name}${labels}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('metrics listener', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;
  let base = '';
  const opened: pg.Client[] = [];

  function d(): DoormanProcess {
    assert.ok(doorman, 'Doorman did not start');
    return doorman;
  }

  before(async () => {
    cluster = await startPostgres();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    doorman = await startDoorman({
      ...doormanConfigFor(cluster, { users: [SCRAM_USER], poolSize: 2, general: { workers: 2 } }),
      metrics: { listen: `127.0.0.1:${port}` },
    });
  });

  after(async () => {
    await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
    await doorman?.stop();
    await cluster?.stop();
  });

  test('healthz answers; readyz is 503 with a reason until a pool reaches its server, then 200', async () => {
    assert.deepEqual(await get(`${base}/healthz`), { status: 200, body: '{"status":"ok"}\n' });
    const before = await get(`${base}/readyz`);
    assert.equal(before.status, 503);
    assert.deepEqual(JSON.parse(before.body), { ready: false, reason: 'no pool has reached its PostgreSQL server yet' });
    const c = await connectPg(d().connectionString(SCRAM_USER.user, SCRAM_USER.password, 'app'));
    opened.push(c);
    await c.query('SELECT 1');
    const ready = await get(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(JSON.parse(ready.body).ready, true);
    assert.equal((await get(`${base}/nope`)).status, 404);
  });

  test('a scrape has every family; totals over both shards move with load', async () => {
    const clients = await Promise.all([0, 1, 2, 3].map(() => connectPg(d().connectionString(SCRAM_USER.user, SCRAM_USER.password, 'app'))));
    opened.push(...clients);
    const first = await get(`${base}/metrics`);
    assert.equal(first.status, 200);
    for (const name of FAMILIES) assert.match(first.body, new RegExp(`^# TYPE ${name} `, 'm'), name);
    assert.equal(value(first.body, 'doorman_workers'), 2);
    assert.equal(value(first.body, 'doorman_pool_size', POOL), 2);
    assert.equal(value(first.body, 'doorman_pool_clients', '{database="app",user="scram_user",state="active"}'), 5);
    const perClient = 20;
    await Promise.all(clients.map(async (c) => {
      for (let i = 0; i < perClient; i++) await c.query('SELECT $1::int AS n', [i]);
    }));
    assert.equal((await sqlError(clients[0].query('SELECT * FROM no_such_table'))).code, '42P01');
    const second = (await get(`${base}/metrics`)).body;
    const queries = clients.length * perClient + 1;
    assert.equal(value(second, 'doorman_pool_queries_total', POOL) - value(first.body, 'doorman_pool_queries_total', POOL), queries);
    assert.equal(value(second, 'doorman_pool_transactions_total', POOL) - value(first.body, 'doorman_pool_transactions_total', POOL), queries);
    assert.equal(value(second, 'doorman_pool_query_duration_seconds_count', POOL) - value(first.body, 'doorman_pool_query_duration_seconds_count', POOL), queries);
    assert.equal(value(second, 'doorman_pool_errors_total', '{database="app",user="scram_user",sqlstate_class="42"}'), 1);
    assert.ok(value(second, 'doorman_pool_sent_bytes_total', POOL) > value(first.body, 'doorman_pool_sent_bytes_total', POOL) + queries * 10);
    assert.ok(value(second, 'doorman_pool_received_bytes_total', POOL) > value(first.body, 'doorman_pool_received_bytes_total', POOL) + queries * 10);
    assert.ok(value(second, 'doorman_pool_query_seconds_total', POOL) > 0);
    const prepared = value(second, 'doorman_pool_prepared_hits_total', POOL) + value(second, 'doorman_pool_prepared_misses_total', POOL);
    assert.ok(prepared >= queries - 1, `prepared hits + misses ${prepared}`);
    assert.ok(value(second, 'doorman_pool_server_logins_total', POOL) >= 1);
    assert.equal(value(second, 'doorman_pool_query_duration_seconds_bucket', '{database="app",user="scram_user",le="+Inf"}'), value(second, 'doorman_pool_query_duration_seconds_count', POOL));
    assert.ok(value(second, 'process_resident_memory_bytes') > 10_000_000);
  });
});
