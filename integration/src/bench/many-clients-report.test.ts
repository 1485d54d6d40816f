import { test } from 'node:test';
import assert from 'node:assert/strict';
import { latencyComparison, perClientKiB, renderManyClientsReport, renderManyClientsTable, tailRatio, type ManyClientsRun } from './many-clients-report.js';
import type { TrickleFigures } from './trickle.js';
import type { TargetName } from './types.js';

const MiB = 1024 * 1024;

function figures(fields: Partial<TrickleFigures>): TrickleFigures {
  return { queries: 4000, failed: 0, p50Ms: 0.5, p99Ms: 3, maxMs: 15, cpuUsPerQuery: 55.55, cpuPercent: 1.234, error: null, ...fields };
}

function manyRun(target: TargetName, fields: Partial<ManyClientsRun>): ManyClientsRun {
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
    afterLogins: figures({ p99Ms: 6 }),
    burstError: null,
    warm: figures({}),
    dropped: 0,
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
  assert.equal(tailRatio(figures({ p50Ms: 0.4, p99Ms: 0.5 })), '1.25');
  assert.equal(tailRatio(figures({ p50Ms: null })), '–');
  assert.equal(tailRatio(figures({ p99Ms: null })), '–');
  assert.equal(tailRatio(null), '–');
});

test('the table has one column per pooler, both trickles and the first error', () => {
  const lines = renderManyClientsTable([
    manyRun('doorman', {}),
    manyRun('pgbouncer', { connected: 9990, connectFailures: 10, firstConnectError: 'sorry, too many clients already', warm: null }),
  ]).split('\n');
  assert.equal(lines[0], '| | Doorman | PgBouncer |');
  assert.equal(lines[1], '|---|---:|---:|');
  assert.equal(lines[3], '| connected | 10000 | 9990 |');
  assert.equal(lines[5], '| time to connect all, s | 12.3 | 12.3 |');
  assert.equal(lines[8], '| RSS per client, KiB | 10.2 | 10.3 |');
  assert.equal(lines[11], '| trickle clients × seconds measured | 100 × 20 | 100 × 20 |');
  assert.equal(lines[15], '| after logins: p99 ms | 6.00 | 6.00 |');
  assert.equal(lines[16], '| after logins: p99/p50 | 12.00 | 12.00 |');
  assert.equal(lines[22], '| after a burst: p50 ms | 0.500 | – |');
  assert.equal(lines[24], '| after a burst: p99/p50 | 6.00 | – |');
  assert.equal(lines[26], '| after a burst: pooler µs CPU per query | 55.5 | – |');
  assert.equal(lines[27], '| after a burst: pooler CPU % of a core | 1.2 | – |');
  assert.equal(lines[28], '| connections dropped while held | 0 | 0 |');
  assert.equal(lines[29], '| first error | – | sorry, too many clients already |');
  assert.equal(lines.length, 30);
});

test('the first error comes from whichever phase failed first', () => {
  const lines = renderManyClientsTable([
    manyRun('doorman', { afterLogins: figures({ error: 'pgbench exited with 2' }), burstError: 'burst: refused' }),
    manyRun('pgbouncer', { burstError: 'burst: refused' }),
  ]).split('\n');
  assert.equal(lines[29], '| first error | pgbench exited with 2 | burst: refused |');
});

test('the report names the command and the connection count', () => {
  const report = renderManyClientsReport({
    startedAt: '2025-11-24T19:00:00.000Z',
    finishedAt: null,
    command: 'npm run bench -- --many-clients',
    connections: 10000,
    trickleSeconds: 20,
    trickleRate: 200,
    burstSeconds: 5,
    environment: { node: 'v20' },
    setup: ['Doorman: pool_size=20'],
    runs: [manyRun('doorman', {})],
  });
  assert.equal(report.split('\n')[0], '# Doorman vs PgBouncer: 10000 idle connections, 2025-11-24T19:00:00.000Z');
  assert.ok(report.includes('Command: `npm run bench -- --many-clients`'));
  assert.ok(report.includes('\n- Doorman: pool_size=20\n'));
  assert.ok(report.includes('\n| node | v20 |\n'));
  assert.ok(report.includes('`SELECT 1` at 200 per second: right after the logins, then again after 5 s of pgbench at full rate; 20 s of each'));
  assert.ok(!report.includes('Doorman/PgBouncer:'), 'no comparison without a PgBouncer run');
});

test('Doorman latency is compared with PgBouncer in the same run, per trickle', () => {
  const runs = [manyRun('doorman', { warm: figures({ p50Ms: 0.45, p99Ms: 1.2 }) }), manyRun('pgbouncer', { warm: figures({ p50Ms: 0.3, p99Ms: 1.5 }) })];
  assert.equal(latencyComparison(runs, 'warm', 'after a burst'), 'Doorman/PgBouncer after a burst: p50 1.50, p99 0.80.');
  assert.equal(latencyComparison(runs, 'afterLogins', 'after logins'), 'Doorman/PgBouncer after logins: p50 1.00, p99 1.00.');
  assert.equal(latencyComparison([runs[0], manyRun('pgbouncer', { warm: figures({ p99Ms: null }) })], 'warm', 'after a burst'), null);
  assert.equal(latencyComparison([runs[0], manyRun('pgbouncer', { warm: null })], 'warm', 'after a burst'), null);
  const report = renderManyClientsReport({
    startedAt: 'now',
    finishedAt: null,
    command: 'bench',
    connections: 10000,
    trickleSeconds: 20,
    trickleRate: 200,
    burstSeconds: 5,
    environment: {},
    setup: [],
    runs,
  });
  assert.ok(report.includes('\nDoorman/PgBouncer after logins: p50 1.00, p99 1.00.\nDoorman/PgBouncer after a burst: p50 1.50, p99 0.80.\n'));
});

test('the direct column has the trickles only: every row about held clients is a dash', () => {
  const direct = manyRun('direct', { requested: 0, connected: 0, rssBeforeBytes: null, warm: figures({ p50Ms: 0.2, p99Ms: 0.44, cpuUsPerQuery: null, cpuPercent: null }) });
  const lines = renderManyClientsTable([manyRun('doorman', {}), direct]).split('\n');
  assert.equal(lines[0], '| | Doorman | direct |');
  for (const row of [2, 3, 4, 5, 6, 7, 8, 9, 10, 28]) assert.match(lines[row] as string, / \| –( \|)$/, lines[row]);
  assert.equal(lines[11], '| trickle clients × seconds measured | 100 × 20 | 100 × 20 |');
  assert.equal(lines[24], '| after a burst: p99/p50 | 6.00 | 2.20 |');
  assert.equal(lines[26], '| after a burst: pooler µs CPU per query | 55.5 | – |');
  const results = { startedAt: 'now', finishedAt: null, command: 'bench', connections: 10000, trickleSeconds: 20, trickleRate: 200, burstSeconds: 5, environment: {}, setup: [] };
  assert.ok(renderManyClientsReport({ ...results, runs: [manyRun('doorman', {}), direct] }).includes('The direct column is the same trickles and burst straight to PostgreSQL'));
  assert.ok(!renderManyClientsReport({ ...results, runs: [manyRun('doorman', {})] }).includes('The direct column'));
});
