import { escapeCell, formatMiB } from './report.js';
import { FLAT_BYTES, FLAT_PERCENT, type Growth, type ProcessSample, type SeriesSummary, type Verdict } from './rss-series.js';
import { TARGET_LABELS } from './types.js';

/** --connect-cycles results (the raw.json entry) and their markdown section. */

/** The cycles run before the measured ones, so that the heap reaches its working size first. */
export interface WarmupRun {
  /** 0: no warm-up, and no `warmed` sample. */
  requested: number;
  finished: number;
  failures: number;
  seconds: number;
}

export interface CyclesRun {
  target: 'doorman' | 'pgbouncer';
  warmup: WarmupRun;
  /** Measured cycles asked for, finished and succeeded; the warm-up is not included. */
  requested: number;
  finished: number;
  succeeded: number;
  /** Failed cycles of the warm-up and the measured run together, so that a warm-up failure fails the run too. */
  failures: number;
  /** Failure messages and their counts; the warm-up's are prefixed "warm-up: ". */
  failureKinds: Record<string, number>;
  /** Seconds, rate and CPU of the measured cycles. */
  seconds: number;
  cyclesPerSecond: number | null;
  /** Pooler utime+stime (all threads) from the first to the last measured cycle / measured cycles finished. */
  cpuUsPerCycle: number | null;
  samples: ProcessSample[];
  summary: SeriesSummary;
  growth: Growth | null;
  verdict: Verdict;
  fdsBefore: number | null;
  fdsAfter: number | null;
  /** The pooler's connections to PostgreSQL after the cycles (pg_stat_activity): fds that are not client leftovers. */
  serverConnectionsAfter: number | null;
  /** A deadline passed before every cycle ran (the warm-up's is prefixed "warm-up: "). */
  aborted: string | null;
  /** The run could not be completed at all (a pooler that did not start, ...). */
  error: string | null;
}

export interface CyclesResults {
  startedAt: string;
  finishedAt: string | null;
  command: string;
  /** Measured cycles per pooler. */
  cycles: number;
  /** Warm-up cycles per pooler, run before the measured ones. */
  warmupCycles: number;
  concurrency: number;
  /** Bound on the measured cycles of one pooler. */
  deadlineSeconds: number;
  /** Bound on the warm-up of one pooler, which comes before deadlineSeconds starts. */
  warmupDeadlineSeconds: number;
  settleSeconds: number;
  environment: Record<string, string>;
  setup: string[];
  runs: CyclesRun[];
}

const DASH = '–';
const MiB = 1024 * 1024;

function signedMiB(bytes: number): string {
  return `${bytes >= 0 ? '+' : '−'}${(Math.abs(bytes) / MiB).toFixed(1)}`;
}

/** "+1.2 MiB (+0.9 %) from 50000 to 100000 cycles (fit to 6 samples; endpoints −3.0 MiB)", or a dash. */
export function describeGrowth(growth: Growth | null): string {
  if (growth === null) return DASH;
  const percent = `${growth.growthPercent >= 0 ? '+' : '−'}${Math.abs(growth.growthPercent).toFixed(1)} %`;
  return (
    `${signedMiB(growth.growthBytes)} MiB (${percent}) from ${growth.fromCycles} to ${growth.toCycles} cycles ` +
    `(fit to ${growth.points} samples; endpoints ${signedMiB(growth.endpointGrowthBytes)} MiB)`
  );
}

/** The verdict as the report states it, with the rule behind it. */
export function describeVerdict(verdict: Verdict): string {
  switch (verdict) {
    case 'flat':
      return `flat (grew < ${FLAT_PERCENT} % or < ${FLAT_BYTES / MiB} MiB)`;
    case 'growing':
      return `GROWING (≥ ${FLAT_PERCENT} % and ≥ ${FLAT_BYTES / MiB} MiB)`;
    case 'unknown':
      return 'unknown (the run did not reach its last cycle)';
  }
}

/** The warm-up of one pooler in a sentence: its cycles, failures and RSS before and after. */
export function describeWarmup(run: CyclesRun): string {
  const w = run.warmup;
  if (w.requested === 0) return 'No warm-up: the verdict covers the cycles from a freshly started pooler.';
  const cycles = w.finished === w.requested ? String(w.finished) : `${w.finished} of ${w.requested}`;
  return (
    `Warm-up: ${cycles} cycles in ${w.seconds.toFixed(1)} s, ${w.failures} failed; RSS ${formatMiB(run.summary.firstBytes)} MiB ` +
    `before, ${formatMiB(run.summary.warmedBytes)} MiB after. The verdict covers the ${run.requested} measured cycles only.`
  );
}

function failureText(run: CyclesRun): string {
  const kinds = Object.entries(run.failureKinds).sort((a, b) => b[1] - a[1]);
  if (kinds.length === 0) return String(run.failures);
  return `${run.failures}: ${kinds.map(([reason, count]) => `${count}× ${reason}`).join('; ')}`;
}

export function renderCyclesTable(runs: readonly CyclesRun[]): string {
  const rows: [string, (r: CyclesRun) => string][] = [
    ['warm-up cycles finished', (r) => (r.warmup.requested === 0 ? 'none' : String(r.warmup.finished))],
    ['measured cycles requested', (r) => String(r.requested)],
    ['measured cycles finished', (r) => String(r.finished)],
    ['failures, warm-up included', failureText],
    ['seconds (measured)', (r) => r.seconds.toFixed(1)],
    ['cycles/s', (r) => (r.cyclesPerSecond === null ? DASH : String(Math.round(r.cyclesPerSecond)))],
    ['pooler µs CPU per cycle', (r) => (r.cpuUsPerCycle === null ? DASH : r.cpuUsPerCycle.toFixed(1))],
    ['RSS before, MiB', (r) => formatMiB(r.summary.firstBytes)],
    ['RSS after warm-up, MiB', (r) => (r.warmup.requested === 0 ? DASH : formatMiB(r.summary.warmedBytes))],
    ['RSS after settling, MiB', (r) => formatMiB(r.summary.lastBytes)],
    ['RSS min / max, MiB', (r) => `${formatMiB(r.summary.minBytes)} / ${formatMiB(r.summary.maxBytes)}`],
    ['RSS growth over the last 50 % of measured cycles', (r) => describeGrowth(r.growth)],
    ['verdict', (r) => describeVerdict(r.verdict)],
    ['open fds before / after', (r) => `${r.fdsBefore ?? DASH} / ${r.fdsAfter ?? DASH}`],
    ['server connections after', (r) => String(r.serverConnectionsAfter ?? DASH)],
    ['aborted', (r) => r.error ?? r.aborted ?? 'no'],
  ];
  const header = `| | ${runs.map((r) => TARGET_LABELS[r.target]).join(' | ')} |`;
  const align = `|---|${runs.map(() => '---:').join('|')}|`;
  const body = rows.map(([label, pick]) => `| ${label} | ${runs.map((r) => escapeCell(pick(r))).join(' | ')} |`);
  return [header, align, ...body].join('\n');
}

/** One row per sample: where it was taken (in measured cycles), RSS and open fds of one pooler. */
export function renderSeriesTable(run: CyclesRun): string {
  const rows = run.samples.map((s) => {
    const at = s.label === 'cycles' ? String(s.cycles) : `${s.label} (${s.cycles})`;
    return `| ${at} | ${formatMiB(s.rssBytes)} | ${s.openFds ?? DASH} |`;
  });
  return ['| measured cycles | RSS MiB | open fds |', '|---:|---:|---:|', ...rows].join('\n');
}

/** Why there is a warm-up and what it leaves out, for the section's introduction. */
function warmupText(results: CyclesResults): string {
  if (results.warmupCycles === 0) return 'There is no warm-up, so the first half of the cycles includes the heap growing to its working size.';
  return (
    `Each pooler first runs ${results.warmupCycles} warm-up cycles the same way, so that its heap reaches its working ` +
    "size (Doorman's shards run without V8's memory reducer and grow for the first 100,000-200,000 cycles). Cycle " +
    "counts, rates, CPU, growth and the verdict cover the measured cycles only; failures include the warm-up's."
  );
}

function deadlineText(results: CyclesResults): string {
  if (results.warmupCycles === 0) return `The run stops starting cycles after ${results.deadlineSeconds} s.`;
  return `No cycle starts after ${results.warmupDeadlineSeconds} s of warm-up or ${results.deadlineSeconds} s of measured cycles.`;
}

/** The markdown section: what was run, the summary table, then each pooler's series. */
export function renderCyclesSection(results: CyclesResults): string {
  return [
    '## Connect/disconnect cycles',
    '',
    `Command: \`${results.command}\``,
    '',
    `${results.cycles} measured cycles per pooler, ${results.concurrency} at a time over raw TCP from the bench process: connect, ` +
      `StartupMessage, read through ReadyForQuery, Terminate, wait for the pooler to close. ${warmupText(results)} The pooler admits the user ` +
      'through an hba `trust` rule, so no password exchange is measured: the cost is the pooler\'s own connection ' +
      'handling (accept, hand-off to a shard, startup, teardown); server connections stay pooled. RSS (VmRSS, shared ' +
      `by all threads) and open descriptors (/proc/<pid>/fd) are sampled before the first cycle, ${results.warmupCycles > 0 ? 'after the warm-up (`warmed`), ' : ''}` +
      `at every twentieth of the measured cycles, and ${results.settleSeconds} s after the last. Growth over the last 50 % is ` +
      'the least-squares line through the samples from half the measured cycles to the last, over that span (garbage ' +
      'collection moves single samples by tens of MiB); the difference of the two endpoint samples is shown beside it. ' +
      `The open fds after include the server connections the pool opened (counted in pg_stat_activity). ${deadlineText(results)}`,
    '',
    renderCyclesTable(results.runs),
    '',
    ...results.runs.flatMap((run) => [`### ${TARGET_LABELS[run.target]}: RSS and descriptors`, '', describeWarmup(run), '', renderSeriesTable(run), '']),
  ].join('\n');
}

/** A run that should fail the command: failures, an abort, an error, or RSS not flat. */
export function cyclesProblems(results: CyclesResults): string[] {
  return results.runs.flatMap((run) => {
    const label = TARGET_LABELS[run.target];
    const problems: string[] = [];
    if (run.error) problems.push(`${label}: ${run.error}`);
    if (run.aborted) problems.push(`${label}: ${run.aborted}`);
    if (run.failures > 0) {
      const inWarmup = run.warmup.failures > 0 ? ` (${run.warmup.failures} in warm-up)` : '';
      problems.push(`${label}: ${run.failures} failed cycles${inWarmup}`);
    }
    if (!run.error && run.verdict !== 'flat') problems.push(`${label}: RSS ${run.verdict} over the last 50 % of measured cycles`);
    return problems;
  });
}

export function renderCyclesReport(results: CyclesResults): string {
  return [
    `# Doorman connect/disconnect cycles, ${results.startedAt}`,
    '',
    renderCyclesSection(results),
    '## Setup',
    '',
    ...results.setup.map((line) => `- ${line}`),
    '',
    '## Versions and machine',
    '',
    '| | |',
    '|---|---|',
    ...Object.entries(results.environment).map(([k, v]) => `| ${escapeCell(k)} | ${escapeCell(v)} |`),
    '',
  ].join('\n');
}
