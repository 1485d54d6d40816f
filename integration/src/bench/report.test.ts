import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run, sampleCells, sampleResults } from './fixtures.js';
import { makeCell } from './cells.js';
import {
  collectNotes,
  escapeCell,
  formatMiB,
  formatMs,
  formatRatio,
  formatSwitches,
  formatTps,
  renderDetailTable,
  renderNotes,
  renderReport,
  renderSummaryTable,
} from './report.js';

test('number formats', () => {
  assert.equal(formatTps(15000.4), '15000');
  assert.equal(formatTps(null), '–');
  assert.equal(formatMs(0.0125), '0.013');
  assert.equal(formatMs(2.254), '2.25');
  assert.equal(formatMs(12.54), '12.5');
  assert.equal(formatMiB(64 * 1024 * 1024), '64.0');
  assert.equal(formatSwitches(2.456), '2.46');
  assert.equal(formatSwitches(0.5), '0.50');
  assert.equal(formatSwitches(null), '–');
  assert.equal(formatRatio(15000, 20000), '0.75');
  assert.equal(formatRatio(15000, null), '–');
  assert.equal(formatRatio(15000, 0), '–');
  assert.equal(escapeCell('a | b\n c'), 'a \\| b c');
});

test('the summary table has one row per cell with ratios, failures marked and numbered', () => {
  const lines = renderSummaryTable(sampleCells()).split('\n');
  assert.equal(lines.length, 4);
  assert.equal(
    lines[0],
    '| cell | Doorman TPS | PgBouncer TPS | direct TPS | TPS D/P | Doorman µs CPU/tx | PgBouncer µs CPU/tx | CPU/tx D/P | kernel µs/tx D / P | switches/tx D / P | p50 ms D / P / direct | p99 ms D / P / direct | RSS MiB D / P | failed tx D / P / direct |',
  );
  assert.equal(lines[1], `| --- |${' ---: |'.repeat(13)}`);
  assert.equal(
    lines[2],
    '| select-only/simple/c100 | 15000 | 20000 | 40000 | 0.75 | 30.0 | 20.0 | 1.50 | 9.9 / 8.3 | 2.46 / 1.00 | 0.500 / 0.400 / 0.013 | 2.25 / 1.50 / 12.5 | 64.0 / 10.0 | 0 / 0 / 0 |',
  );
  assert.equal(
    lines[3],
    '| select-only/prepared/c2000 | FAIL (expected) [1] | FAIL (expected) [2] | skipped [3] | – | FAIL (expected) [1] | FAIL (expected) [2] | – | – / – | – / – | – / – / – | – / – / – | – / – | – / – / – |',
  );
});

test('notes spell out every failure and skip with its error line', () => {
  assert.equal(
    renderNotes(collectNotes(sampleCells())),
    [
      '1. select-only/prepared/c2000, Doorman: expected failure: `ERROR:  prepared statement "P_0" does not exist`',
      "2. select-only/prepared/c2000, PgBouncer: expected failure: `ERROR: 'P_0' \\| exists`",
      '3. select-only/prepared/c2000, direct: skipped: `too many clients`',
    ].join('\n'),
  );
  assert.equal(renderNotes(collectNotes([])), 'Every run completed.');
});

test('an unexpected failure is shown as FAIL and FAILED', () => {
  const cells = [{ cell: makeCell('tpcb-like', 'simple', 100), runs: [run('doorman', { status: 'failed', reason: 'FATAL: boom' })] }];
  const row = renderSummaryTable(cells).split('\n')[2];
  assert.equal(row, '| tpcb-like/simple/c100 | FAIL [1] | – | – | – | FAIL [1] | – | – | – / – | – / – | – / – / – | – / – / – | – / – | – / – / – |');
  assert.equal(renderNotes(collectNotes(cells)), '1. tpcb-like/simple/c100, Doorman: FAILED: `FATAL: boom`');
});

test('kernel time and switches are shown per pooler, a dash where one is missing', () => {
  const cells = [
    {
      cell: makeCell('tpcb-like', 'extended', 50),
      runs: [run('doorman', { sysUsPerTx: 12.04, switchesPerTx: null }), run('pgbouncer', { status: 'failed', reason: 'FATAL: boom', sysUsPerTx: 5, switchesPerTx: 1 })],
    },
  ];
  const cols = (renderSummaryTable(cells).split('\n')[2] ?? '').split(' | ');
  assert.equal(cols[8], '12.0 / –');
  assert.equal(cols[9], '– / –');
});

test('the detail table lists every run with raw numbers, failed ones included', () => {
  const lines = renderDetailTable(sampleCells()).split('\n');
  assert.equal(lines.length, 8);
  assert.equal(
    lines[0],
    '| cell | target | status | exit | -T s | TPS | processed | failed tx | steady tx | steady s | p50 ms | p99 ms | µs CPU/tx | kernel µs/tx | switches/tx | RSS MiB | wall s |',
  );
  assert.equal(lines[1], `| --- | --- | --- |${' ---: |'.repeat(14)}`);
  assert.equal(lines[2], '| select-only/simple/c100 | Doorman | ok | 0 | 15 | 15000 | – | 0 | – | – | 0.500 | 2.25 | 30.0 | 9.9 | 2.46 | 64.0 | 15.0 |');
  assert.equal(lines[3], '| select-only/simple/c100 | PgBouncer | ok | 0 | 15 | 20000 | – | 0 | – | – | 0.400 | 1.50 | 20.0 | 8.3 | 1.00 | 10.0 | 15.0 |');
  assert.equal(lines[6], '| select-only/prepared/c2000 | PgBouncer | failed (expected) | 2 | 15 | 500 | – | 0 | – | – | – | – | – | – | – | – | 15.0 |');
  assert.equal(lines[7], '| select-only/prepared/c2000 | direct | skipped | – | 15 | – | – | – | – | – | – | – | – | – | – | – | 15.0 |');
});

test('the report carries the command, setup, versions and both tables', () => {
  const report = renderReport(sampleResults());
  assert.equal(report.split('\n')[0], '# Doorman vs PgBouncer: pgbench, 2025-11-24T19:00:00.000Z');
  assert.ok(report.includes('Command: `npm run bench -- --quick`\n'));
  assert.ok(report.includes('pgbench -j 2 -T 5 '));
  assert.ok(report.includes('Kernel µs/tx is the stime part of that, and switches/tx the voluntary plus involuntary context switches'));
  assert.ok(report.includes('\n- PostgreSQL: max_connections=300\n'));
  assert.ok(report.includes('\n| PgBouncer | PgBouncer 1.18.0 |\n| node | v20.20.2 |\n'));
  assert.ok(report.includes(renderSummaryTable(sampleCells())));
  assert.ok(report.includes(renderDetailTable(sampleCells())));
});
