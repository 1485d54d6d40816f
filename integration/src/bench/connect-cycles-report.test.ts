import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cyclesProblems,
  describeGrowth,
  describeVerdict,
  describeWarmup,
  renderCyclesReport,
  renderCyclesTable,
  renderSeriesTable,
  type CyclesResults,
  type CyclesRun,
} from './connect-cycles-report.js';

const MiB = 1024 * 1024;

function cyclesRun(fields: Partial<CyclesRun> = {}): CyclesRun {
  return {
    target: 'doorman',
    warmup: { requested: 2000, finished: 2000, failures: 0, seconds: 4.25 },
    requested: 1000,
    finished: 1000,
    succeeded: 1000,
    failures: 0,
    failureKinds: {},
    seconds: 2.04,
    cyclesPerSecond: 490.2,
    cpuUsPerCycle: 120.04,
    samples: [
      { label: 'before', cycles: 0, rssBytes: 100 * MiB, openFds: 29 },
      { label: 'warmed', cycles: 0, rssBytes: 140 * MiB, openFds: 36 },
      { label: 'cycles', cycles: 500, rssBytes: 150 * MiB, openFds: 44 },
      { label: 'cycles', cycles: 1000, rssBytes: 152 * MiB, openFds: null },
      { label: 'after', cycles: 1000, rssBytes: null, openFds: 38 },
    ],
    summary: { samples: 5, minBytes: 100 * MiB, maxBytes: 152 * MiB, firstBytes: 100 * MiB, warmedBytes: 140 * MiB, lastBytes: 151.5 * MiB },
    growth: { fromCycles: 500, toCycles: 1000, fromBytes: 150 * MiB, toBytes: 152 * MiB, endpointGrowthBytes: 2 * MiB, growthBytes: -1.25 * MiB, growthPercent: -0.84, points: 6 },
    verdict: 'flat',
    fdsBefore: 29,
    fdsAfter: 38,
    serverConnectionsAfter: 8,
    aborted: null,
    error: null,
    ...fields,
  };
}

function results(runs: CyclesRun[]): CyclesResults {
  return {
    startedAt: '2026-11-24T22:00:00.000Z',
    finishedAt: null,
    command: 'node integration/dist/bench/bench.js --connect-cycles 1000',
    cycles: 1000,
    warmupCycles: 2000,
    concurrency: 8,
    deadlineSeconds: 600,
    warmupDeadlineSeconds: 1200,
    settleSeconds: 2,
    environment: { node: 'v20' },
    setup: ['Doorman: pool_size=20'],
    runs,
  };
}

test('describeGrowth gives the fitted growth with sign, percent, span and the endpoints', () => {
  assert.equal(describeGrowth(cyclesRun().growth), '−1.3 MiB (−0.8 %) from 500 to 1000 cycles (fit to 6 samples; endpoints +2.0 MiB)');
  assert.equal(describeGrowth(null), '–');
});

test('describeVerdict names the rule', () => {
  assert.equal(describeVerdict('flat'), 'flat (grew < 5 % or < 10 MiB)');
  assert.equal(describeVerdict('growing'), 'GROWING (≥ 5 % and ≥ 10 MiB)');
  assert.equal(describeVerdict('unknown'), 'unknown (the run did not reach its last cycle)');
});

test('the summary table: one column per pooler, warm-up apart, failures by kind, most frequent first', () => {
  const lines = renderCyclesTable([
    cyclesRun(),
    cyclesRun({
      target: 'pgbouncer',
      warmup: { requested: 0, finished: 0, failures: 0, seconds: 0 },
      failures: 3,
      failureKinds: { 'socket error: ECONNRESET': 1, 'warm-up: ErrorResponse: no | such': 2 },
      cyclesPerSecond: null,
    }),
  ]).split('\n');
  assert.equal(lines[0], '| | Doorman | PgBouncer |');
  assert.equal(lines[1], '|---|---:|---:|');
  assert.equal(lines[2], '| warm-up cycles finished | 2000 | none |');
  assert.equal(lines[3], '| measured cycles requested | 1000 | 1000 |');
  assert.equal(lines[4], '| measured cycles finished | 1000 | 1000 |');
  assert.equal(lines[5], '| failures, warm-up included | 0 | 3: 2× warm-up: ErrorResponse: no \\| such; 1× socket error: ECONNRESET |');
  assert.equal(lines[6], '| seconds (measured) | 2.0 | 2.0 |');
  assert.equal(lines[7], '| cycles/s | 490 | – |');
  assert.equal(lines[8], '| pooler µs CPU per cycle | 120.0 | 120.0 |');
  assert.equal(lines[9], '| RSS before, MiB | 100.0 | 100.0 |');
  assert.equal(lines[10], '| RSS after warm-up, MiB | 140.0 | – |');
  assert.equal(lines[11], '| RSS after settling, MiB | 151.5 | 151.5 |');
  assert.equal(lines[12], '| RSS min / max, MiB | 100.0 / 152.0 | 100.0 / 152.0 |');
  assert.equal(lines[13].split(' | ')[0], '| RSS growth over the last 50 % of measured cycles');
  assert.equal(lines[14], '| verdict | flat (grew < 5 % or < 10 MiB) | flat (grew < 5 % or < 10 MiB) |');
  assert.equal(lines[15], '| open fds before / after | 29 / 38 | 29 / 38 |');
  assert.equal(lines[16], '| server connections after | 8 | 8 |');
  assert.equal(lines[17], '| aborted | no | no |');
  assert.equal(lines.length, 18);
});

test('describeWarmup: cycles, failures, RSS before and after, and what the verdict covers', () => {
  assert.equal(
    describeWarmup(cyclesRun()),
    'Warm-up: 2000 cycles in 4.3 s, 0 failed; RSS 100.0 MiB before, 140.0 MiB after. The verdict covers the 1000 measured cycles only.',
  );
  assert.equal(
    describeWarmup(cyclesRun({ warmup: { requested: 2000, finished: 700, failures: 3, seconds: 1200.04 } })),
    'Warm-up: 700 of 2000 cycles in 1200.0 s, 3 failed; RSS 100.0 MiB before, 140.0 MiB after. The verdict covers the 1000 measured cycles only.',
  );
  assert.equal(
    describeWarmup(cyclesRun({ warmup: { requested: 0, finished: 0, failures: 0, seconds: 0 } })),
    'No warm-up: the verdict covers the cycles from a freshly started pooler.',
  );
});

test('the series table labels the before, warmed and after samples and dashes what was not read', () => {
  assert.equal(
    renderSeriesTable(cyclesRun()),
    [
      '| measured cycles | RSS MiB | open fds |',
      '|---:|---:|---:|',
      '| before (0) | 100.0 | 29 |',
      '| warmed (0) | 140.0 | 36 |',
      '| 500 | 150.0 | 44 |',
      '| 1000 | 152.0 | – |',
      '| after (1000) | – | 38 |',
    ].join('\n'),
  );
});

test('the report holds the section, the command, a series per pooler, setup and versions', () => {
  const report = renderCyclesReport(results([cyclesRun(), cyclesRun({ target: 'pgbouncer' })]));
  assert.equal(report.split('\n')[0], '# Doorman connect/disconnect cycles, 2026-11-24T22:00:00.000Z');
  assert.ok(report.includes('\n## Connect/disconnect cycles\n'));
  assert.ok(report.includes('Command: `node integration/dist/bench/bench.js --connect-cycles 1000`'));
  assert.ok(report.includes('hba `trust` rule'));
  assert.ok(report.includes('\n### Doorman: RSS and descriptors\n'));
  assert.ok(report.includes('\n### PgBouncer: RSS and descriptors\n'));
  assert.ok(report.includes('\n### Doorman: RSS and descriptors\n\nWarm-up: 2000 cycles in 4.3 s, 0 failed; RSS 100.0 MiB before, 140.0 MiB after.'));
  assert.ok(report.includes('\n| warmed (0) | 140.0 | 36 |\n'));
  assert.ok(report.includes('Each pooler first runs 2000 warm-up cycles the same way'));
  assert.ok(report.includes('sampled before the first cycle, after the warm-up (`warmed`), at every twentieth of the measured cycles'));
  assert.ok(report.includes('growth and the verdict cover the measured cycles only'));
  assert.ok(report.includes('No cycle starts after 1200 s of warm-up or 600 s of measured cycles.'));
  assert.ok(report.includes('\n- Doorman: pool_size=20\n'));
  assert.ok(report.includes('\n| node | v20 |\n'));
});

test('without warm-up the report says so and keeps the single deadline', () => {
  const report = renderCyclesReport({
    ...results([cyclesRun({ warmup: { requested: 0, finished: 0, failures: 0, seconds: 0 } })]),
    warmupCycles: 0,
  });
  assert.ok(report.includes('There is no warm-up, so the first half of the cycles includes the heap growing to its working size.'));
  assert.ok(report.includes('sampled before the first cycle, at every twentieth of the measured cycles'));
  assert.ok(report.includes('The run stops starting cycles after 600 s.'));
  assert.ok(report.includes('\n### Doorman: RSS and descriptors\n\nNo warm-up: the verdict covers the cycles from a freshly started pooler.\n'));
  assert.ok(!report.includes('warm-up cycles the same way'));
});

test('cyclesProblems: failures (warm-up ones named), aborts, errors and RSS that is not flat', () => {
  assert.deepEqual(cyclesProblems(results([cyclesRun()])), []);
  assert.deepEqual(
    cyclesProblems(
      results([
        cyclesRun({ failures: 2, aborted: 'deadline of 600 s passed after 10 of 1000 cycles', verdict: 'unknown' }),
        cyclesRun({ target: 'pgbouncer', verdict: 'growing' }),
      ]),
    ),
    [
      'Doorman: deadline of 600 s passed after 10 of 1000 cycles',
      'Doorman: 2 failed cycles',
      'Doorman: RSS unknown over the last 50 % of measured cycles',
      'PgBouncer: RSS growing over the last 50 % of measured cycles',
    ],
  );
  assert.deepEqual(cyclesProblems(results([cyclesRun({ warmup: { requested: 2000, finished: 2000, failures: 1, seconds: 4 }, failures: 1 })])), [
    'Doorman: 1 failed cycles (1 in warm-up)',
  ]);
  assert.deepEqual(cyclesProblems(results([cyclesRun({ error: 'Doorman exited during the run: boom', verdict: 'unknown' })])), [
    'Doorman: Doorman exited during the run: boom',
  ]);
});
