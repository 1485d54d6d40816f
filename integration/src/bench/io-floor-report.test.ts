import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderIoFloorReport, type FloorResults, type FloorRun } from './io-floor-report.js';

function run(label: string, protocol: 'simple' | 'extended', round: number, cpu: number | null, tps: number | null, status: FloorRun['status'] = 'ok'): FloorRun {
  return { label, protocol, round, status, reason: status === 'ok' ? null : 'pgbench exited with 1', tps, cpuUsPerTx: cpu };
}

const results: FloorResults = {
  command: 'npm run bench -- --io-floor',
  durationSeconds: 10,
  clients: 10,
  labels: ['PgBouncer', 'Doorman', 'relay, onread'],
  runs: [
    run('PgBouncer', 'simple', 1, 10, 60000),
    run('Doorman', 'simple', 1, 18, 42000),
    run('relay, onread', 'simple', 1, 13, 50000),
    run('PgBouncer', 'simple', 2, 9, 62000),
    run('Doorman', 'simple', 2, 16, 44000),
    run('relay, onread', 'simple', 2, null, null, 'failed'),
    run('PgBouncer', 'extended', 1, 10, 55000),
    run('Doorman', 'extended', 1, 20, 40000),
  ],
};

function row(report: string, protocol: string, label: string): string[] {
  const line = report.split('\n').find((l) => l.startsWith(`| ${protocol} | ${label} |`));
  assert.ok(line, `${protocol} ${label}`);
  return line.split('|').slice(1, -1).map((c) => c.trim());
}

test('medians per target and protocol, ratios against the first target', () => {
  const report = renderIoFloorReport(results);
  assert.deepEqual(row(report, 'simple', 'PgBouncer'), ['simple', 'PgBouncer', '10.0 / 9.0', '9.5', '1.00', '60000 / 62000', '61000', '1.00']);
  assert.deepEqual(row(report, 'simple', 'Doorman'), ['simple', 'Doorman', '18.0 / 16.0', '17.0', '1.79', '42000 / 44000', '43000', '0.70']);
  // A failed round shows as such and stays out of the median.
  assert.deepEqual(row(report, 'simple', 'relay, onread'), ['simple', 'relay, onread', '13.0 / failed', '13.0', '1.37', '50000 / failed', '50000', '0.82']);
  assert.deepEqual(row(report, 'extended', 'relay, onread'), ['extended', 'relay, onread', '', '–', '–', '', '–', '–']);
  assert.match(report, /- round 2, simple, relay, onread: failed: pgbench exited with 1/);
  assert.match(report, /`npm run bench -- --io-floor`/);
});
