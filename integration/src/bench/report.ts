import { TARGET_LABELS, type BenchResults, type CellResult, type TargetName, type TargetRun } from './types.js';

/** report.md: the comparison table with ratios, every failure and skip spelled out, setup, versions, per-run details. */

const DASH = '–';

export function formatTps(value: number | null): string {
  return value === null ? DASH : String(Math.round(value));
}

export function formatMs(value: number | null): string {
  if (value === null) return DASH;
  if (value < 1) return value.toFixed(3);
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

export function formatMicros(value: number | null): string {
  return value === null ? DASH : value.toFixed(1);
}

export function formatSwitches(value: number | null): string {
  return value === null ? DASH : value.toFixed(2);
}

export function formatMiB(bytes: number | null): string {
  return bytes === null ? DASH : (bytes / (1024 * 1024)).toFixed(1);
}

/** a/b to two decimals; a dash unless both are positive numbers. */
export function formatRatio(a: number | null, b: number | null): string {
  if (a === null || b === null || !(a > 0) || !(b > 0)) return DASH;
  return (a / b).toFixed(2);
}

/** Table cells must not break the row: pipes escaped, newlines flattened. */
export function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

export function runOf(cell: CellResult, target: TargetName): TargetRun | undefined {
  return cell.runs.find((r) => r.target === target);
}

function okRun(cell: CellResult, target: TargetName): TargetRun | undefined {
  const run = runOf(cell, target);
  return run?.status === 'ok' ? run : undefined;
}

export interface Note {
  number: number;
  text: string;
}

/** Numbered notes for every run that did not succeed, in table order. */
export function collectNotes(cells: readonly CellResult[]): Map<TargetRun, Note> {
  const notes = new Map<TargetRun, Note>();
  for (const cell of cells) {
    for (const run of cell.runs) {
      if (run.status === 'ok') continue;
      const kind = run.status === 'skipped' ? 'skipped' : run.expectedFailure ? 'expected failure' : 'FAILED';
      const reason = (run.reason ?? 'no error output').replace(/`/g, "'");
      notes.set(run, { number: notes.size + 1, text: `${cell.cell.id}, ${TARGET_LABELS[run.target]}: ${kind}: \`${reason}\`` });
    }
  }
  return notes;
}

function statusCell(run: TargetRun | undefined, notes: Map<TargetRun, Note>): string | null {
  if (!run) return DASH;
  if (run.status === 'ok') return null;
  const note = notes.get(run);
  const mark = note ? ` [${note.number}]` : '';
  if (run.status === 'skipped') return `skipped${mark}`;
  return run.expectedFailure ? `FAIL (expected)${mark}` : `FAIL${mark}`;
}

const ORDER: readonly TargetName[] = ['doorman', 'pgbouncer', 'direct'];

function triple(cell: CellResult, pick: (run: TargetRun) => string): string {
  return ORDER.map((t) => {
    const run = okRun(cell, t);
    return run ? pick(run) : DASH;
  }).join(' / ');
}

/** One row per cell: TPS per target, ratios, CPU, kernel time and context switches per transaction, latency, memory, failed transactions. */
export function renderSummaryTable(cells: readonly CellResult[], notes: Map<TargetRun, Note> = collectNotes(cells)): string {
  const header = [
    'cell',
    'Doorman TPS',
    'PgBouncer TPS',
    'direct TPS',
    'TPS D/P',
    'Doorman µs CPU/tx',
    'PgBouncer µs CPU/tx',
    'CPU/tx D/P',
    'kernel µs/tx D / P',
    'switches/tx D / P',
    'p50 ms D / P / direct',
    'p99 ms D / P / direct',
    'RSS MiB D / P',
    'failed tx D / P / direct',
  ];
  const align = ['---', ...header.slice(1).map(() => '---:')];
  const rows = cells.map((cell) => {
    const doorman = okRun(cell, 'doorman');
    const pgbouncer = okRun(cell, 'pgbouncer');
    const tps = (t: TargetName): string => statusCell(runOf(cell, t), notes) ?? formatTps(okRun(cell, t)?.tps ?? null);
    const cpu = (t: TargetName): string => statusCell(runOf(cell, t), notes) ?? formatMicros(okRun(cell, t)?.cpuUsPerTx ?? null);
    const pair = (format: (run: TargetRun | undefined) => string): string => [doorman, pgbouncer].map(format).join(' / ');
    return [
      cell.cell.id,
      tps('doorman'),
      tps('pgbouncer'),
      tps('direct'),
      formatRatio(doorman?.tps ?? null, pgbouncer?.tps ?? null),
      cpu('doorman'),
      cpu('pgbouncer'),
      formatRatio(doorman?.cpuUsPerTx ?? null, pgbouncer?.cpuUsPerTx ?? null),
      pair((r) => formatMicros(r?.sysUsPerTx ?? null)),
      pair((r) => formatSwitches(r?.switchesPerTx ?? null)),
      triple(cell, (r) => formatMs(r.p50Ms)),
      triple(cell, (r) => formatMs(r.p99Ms)),
      pair((r) => formatMiB(r?.rssBytes ?? null)),
      triple(cell, (r) => (r.failedTransactions === null ? DASH : String(r.failedTransactions))),
    ];
  });
  return [header, align, ...rows].map((cols) => `| ${cols.map(escapeCell).join(' | ')} |`).join('\n');
}

export function renderNotes(notes: Map<TargetRun, Note>): string {
  if (notes.size === 0) return 'Every run completed.';
  return [...notes.values()].map((n) => `${n.number}. ${escapeCell(n.text)}`).join('\n');
}

/** Every run with its raw numbers, failed ones included. */
export function renderDetailTable(cells: readonly CellResult[]): string {
  const header = [
    'cell',
    'target',
    'status',
    'exit',
    '-T s',
    'TPS',
    'processed',
    'failed tx',
    'steady tx',
    'steady s',
    'p50 ms',
    'p99 ms',
    'µs CPU/tx',
    'kernel µs/tx',
    'switches/tx',
    'RSS MiB',
    'wall s',
  ];
  const align = ['---', '---', '---', ...header.slice(3).map(() => '---:')];
  const num = (v: number | null): string => (v === null ? DASH : String(v));
  const rows = cells.flatMap((cell) =>
    cell.runs.map((r) => [
      cell.cell.id,
      TARGET_LABELS[r.target],
      r.status === 'failed' && r.expectedFailure ? 'failed (expected)' : r.status,
      num(r.exitCode),
      String(r.pgbenchSeconds),
      formatTps(r.tps),
      num(r.processed),
      num(r.failedTransactions),
      num(r.steadyTransactions),
      r.steadySeconds === null ? DASH : r.steadySeconds.toFixed(1),
      formatMs(r.p50Ms),
      formatMs(r.p99Ms),
      formatMicros(r.cpuUsPerTx),
      formatMicros(r.sysUsPerTx),
      formatSwitches(r.switchesPerTx),
      formatMiB(r.rssBytes),
      r.wallSeconds.toFixed(1),
    ]),
  );
  return [header, align, ...rows].map((cols) => `| ${cols.map(escapeCell).join(' | ')} |`).join('\n');
}

export function renderReport(results: BenchResults): string {
  const notes = collectNotes(results.cells);
  const versions = Object.entries(results.environment).map(([k, v]) => `| ${escapeCell(k)} | ${escapeCell(v)} |`);
  return [
    `# Doorman vs PgBouncer: pgbench, ${results.startedAt}`,
    '',
    `Command: \`${results.command}\``,
    '',
    `Each cell runs pgbench -j 2 -T ${results.durationSeconds} (plus 1 s per 200 clients, as -T includes the initial connections) ` +
      'against Doorman, PgBouncer and PostgreSQL directly, one after the other, all in front of the same PostgreSQL. ' +
      'TPS is pgbench\'s "without initial connection time" (--connect cells: "including reconnection times"). Latency percentiles and the ' +
      'transactions behind CPU/tx come from the pgbench --log files, over a steady window that starts 1 s after every pgbench ' +
      'thread completed its first transaction and ends 1 s before the first thread stopped. µs CPU/tx is the pooler\'s ' +
      'utime+stime (all threads) over that window divided by the transactions completed in it. Kernel µs/tx is the stime part ' +
      'of that, and switches/tx the voluntary plus involuntary context switches of all the pooler\'s threads per transaction, ' +
      'both over the same window. RSS is the pooler\'s at the end of the run. D/P = Doorman / PgBouncer (TPS: higher is ' +
      'better for Doorman; CPU/tx: lower is better). ' +
      'The machine is shared: compare CPU/tx rather than TPS.',
    '',
    renderSummaryTable(results.cells, notes),
    '',
    '## Failures and skips',
    '',
    renderNotes(notes),
    '',
    '## Setup',
    '',
    ...results.setup.map((line) => `- ${line}`),
    '',
    '## Versions and machine',
    '',
    '| | |',
    '|---|---|',
    ...versions,
    '',
    '## Every run',
    '',
    renderDetailTable(results.cells),
    '',
  ].join('\n');
}
