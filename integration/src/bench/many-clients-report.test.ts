import { test } from 'node:test';
import assert from 'node:assert/strict';
import { latencyComparison, perClientKiB, renderManyClientsReport, renderManyClientsTable, tailRatio, type ManyClientsRun } from './many-clients-report.js';

const MiB = 1024 * 1024;

function manyRun(target: 'doorman' | 'pgbouncer', fields: Partial<ManyClientsRun>): ManyClientsRun {
  return {
    target,
    requested: 10000,
    connected: 10000,
    connectFailures: 0,
    connectSeconds: 12.34,
    firstConnectError: null,
    rssBeforeBytes: 60 * MiB,
    rssConnectedBytes: 160 * MiB,
    rssEndBytes: 161 * MiB,
    rssAfterCloseBytes: 90 * MiB,
    trickleClients: 100,
    trickleSeconds: 20,
    queries: 4000,
    queryFailures: 0,
    firstQueryError: null,
    p50Ms: 0.5,
    p99Ms: 3,
    maxMs: 15,
    dropped: 0,
    cpuUsPerQuery: 55.55,
    cpuPercent: 1.234,
    error: null,
    ...fields,
  };
}

test('perClientKiB is the RSS growth per connected client', () => {
  assert.equal(perClientKiB(manyRun('doorman', {})), '10.2');
  assert.equal(perClientKiB(manyRun('doorman', { connected: 0 })), '–');
  assert.equal(perClientKiB(manyRun('doorman', { rssBeforeBytes: null })), '–');
});

test('tailRatio is p99 over p50, a dash without both', () => {
  assert.equal(tailRatio(manyRun('doorman', { p50Ms: 0.4, p99Ms: 0.5 })), '1.25');
  assert.equal(tailRatio(manyRun('doorman', { p50Ms: null })), '–');
  assert.equal(tailRatio(manyRun('doorman', { p99Ms: null })), '–');
});

test('the table has one column per pooler and the first error', () => {
  const lines = renderManyClientsTable([
    manyRun('doorman', {}),
    manyRun('pgbouncer', { connected: 9990, connectFailures: 10, firstConnectError: 'sorry, too many clients already' }),
  ]).split('\n');
  assert.equal(lines[0], '| | Doorman | PgBouncer |');
  assert.equal(lines[1], '|---|---:|---:|');
  assert.equal(lines[3], '| connected | 10000 | 9990 |');
  assert.equal(lines[5], '| time to connect all, s | 12.3 | 12.3 |');
  assert.equal(lines[8], '| RSS per client, KiB | 10.2 | 10.3 |');
  assert.equal(lines[15], '| trickle p99 ms | 3.00 | 3.00 |');
  assert.equal(lines[16], '| trickle p99/p50 | 6.00 | 6.00 |');
  assert.equal(lines[19], '| pooler µs CPU per trickle query | 55.5 | 55.5 |');
  assert.equal(lines[20], '| pooler CPU % of a core during trickle | 1.2 | 1.2 |');
  assert.equal(lines[21], '| first error | – | sorry, too many clients already |');
  assert.equal(lines.length, 22);
});

test('the report names the command and the connection count', () => {
  const report = renderManyClientsReport({
    startedAt: '2025-11-24T19:00:00.000Z',
    finishedAt: null,
    command: 'npm run bench -- --many-clients',
    connections: 10000,
    trickleSeconds: 20,
    trickleWarmupSeconds: 5,
    environment: { node: 'v20' },
    setup: ['Doorman: pool_size=20'],
    runs: [manyRun('doorman', {})],
  });
  assert.equal(report.split('\n')[0], '# Doorman vs PgBouncer: 10000 idle connections, 2025-11-24T19:00:00.000Z');
  assert.ok(report.includes('Command: `npm run bench -- --many-clients`'));
  assert.ok(report.includes('\n- Doorman: pool_size=20\n'));
  assert.ok(report.includes('\n| node | v20 |\n'));
  assert.ok(report.includes('5 s of warm-up, not counted, then 20 s measured'));
  assert.ok(!report.includes('Doorman/PgBouncer:'), 'no comparison without a PgBouncer run');
});

test('Doorman latency is compared with PgBouncer in the same run', () => {
  const runs = [manyRun('doorman', { p50Ms: 0.45, p99Ms: 1.2 }), manyRun('pgbouncer', { p50Ms: 0.3, p99Ms: 1.5 })];
  assert.equal(latencyComparison(runs), 'Doorman/PgBouncer: p50 1.50, p99 0.80.');
  assert.equal(latencyComparison([runs[0], manyRun('pgbouncer', { p99Ms: null })]), null);
});
