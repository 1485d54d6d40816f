import { makeCell } from './cells.js';
import type { BenchResults, CellResult, TargetName, TargetRun } from './types.js';

/** Hand-made results for the report and chart tests. */

export function run(target: TargetName, fields: Partial<TargetRun> = {}): TargetRun {
  return {
    target,
    status: 'ok',
    reason: null,
    expectedFailure: false,
    exitCode: 0,
    tps: null,
    processed: null,
    failedTransactions: 0,
    p50Ms: null,
    p99Ms: null,
    steadyTransactions: null,
    steadySeconds: null,
    cpuUsPerTx: null,
    sysUsPerTx: null,
    switchesPerTx: null,
    rssBytes: null,
    pgbenchSeconds: 15,
    wallSeconds: 15,
    ...fields,
  };
}

export function sampleCells(): CellResult[] {
  return [
    {
      cell: makeCell('select-only', 'simple', 100),
      runs: [
        run('doorman', { tps: 15000.4, p50Ms: 0.5, p99Ms: 2.25, cpuUsPerTx: 30, sysUsPerTx: 9.94, switchesPerTx: 2.456, rssBytes: 64 * 1024 * 1024 }),
        run('pgbouncer', { tps: 20000, p50Ms: 0.4, p99Ms: 1.5, cpuUsPerTx: 20, sysUsPerTx: 8.3, switchesPerTx: 1.004, rssBytes: 10 * 1024 * 1024 }),
        run('direct', { tps: 40000, p50Ms: 0.0125, p99Ms: 12.5 }),
      ],
    },
    {
      cell: makeCell('select-only', 'prepared', 2000),
      runs: [
        run('doorman', { status: 'failed', expectedFailure: true, exitCode: 2, reason: 'ERROR:  prepared statement "P_0" does not exist' }),
        run('pgbouncer', { status: 'failed', expectedFailure: true, exitCode: 2, tps: 500, reason: 'ERROR: `P_0` | exists' }),
        run('direct', { status: 'skipped', exitCode: null, failedTransactions: null, reason: 'too many clients' }),
      ],
    },
  ];
}

export function sampleResults(): BenchResults {
  return {
    startedAt: '2025-11-24T19:00:00.000Z',
    finishedAt: '2025-11-24T19:10:00.000Z',
    command: 'npm run bench -- --quick',
    durationSeconds: 5,
    environment: { PgBouncer: 'PgBouncer 1.18.0', node: 'v20.20.2' },
    setup: ['PostgreSQL: max_connections=300'],
    cells: sampleCells(),
  };
}
