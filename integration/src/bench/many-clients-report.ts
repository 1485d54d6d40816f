import { escapeCell, formatMicros, formatMiB, formatMs, formatRatio } from './report.js';
import type { TrickleFigures } from './trickle.js';
import { TARGET_LABELS, type TargetName } from './types.js';

/** --many-clients results and their markdown. */

export interface ManyClientsRun {
  /** direct: the trickles straight to PostgreSQL, without idle clients. */
  target: TargetName;
  requested: number;
  connected: number;
  connectFailures: number;
  connectSeconds: number;
  firstConnectError: string | null;
  rssBeforeBytes: number | null;
  rssConnectedBytes: number | null;
  rssEndBytes: number | null;
  rssAfterCloseBytes: number | null;
  trickleClients: number;
  trickleSeconds: number;
  /** The trickle right after the logins. */
  afterLogins: TrickleFigures | null;
  burstError: string | null;
  /** The trickle after a burst at full rate. */
  warm: TrickleFigures | null;
  /** Idle clients that saw their connection end or fail while they were meant to stay open. */
  dropped: number;
  /** Set when the run could not be completed at all. */
  error: string | null;
}

export interface ManyClientsResults {
  startedAt: string;
  finishedAt: string | null;
  command: string;
  connections: number;
  trickleSeconds: number;
  /** Queries per second over all trickle clients. */
  trickleRate: number;
  /** Full-rate pgbench between the two trickles. */
  burstSeconds: number;
  environment: Record<string, string>;
  setup: string[];
  runs: ManyClientsRun[];
}

const DASH = '–';

/** RSS growth per connected client, in KiB. */
export function perClientKiB(run: ManyClientsRun): string {
  if (run.rssBeforeBytes === null || run.rssConnectedBytes === null || run.connected === 0) return DASH;
  return ((run.rssConnectedBytes - run.rssBeforeBytes) / run.connected / 1024).toFixed(1);
}

/** Tail over median of a trickle's latency, two decimals; a dash unless both were measured. */
export function tailRatio(f: TrickleFigures | null): string {
  return formatRatio(f?.p99Ms ?? null, f?.p50Ms ?? null);
}

type Phase = 'afterLogins' | 'warm';

function phaseRows(phase: Phase, label: string): [string, (r: ManyClientsRun) => string][] {
  const f = (r: ManyClientsRun): TrickleFigures | null => r[phase];
  return [
    [`${label}: queries`, (r) => (f(r) === null ? DASH : String(f(r)?.queries))],
    [`${label}: failed`, (r) => (f(r) === null ? DASH : String(f(r)?.failed))],
    [`${label}: p50 ms`, (r) => formatMs(f(r)?.p50Ms ?? null)],
    [`${label}: p99 ms`, (r) => formatMs(f(r)?.p99Ms ?? null)],
    [`${label}: p99/p50`, (r) => tailRatio(f(r))],
    [`${label}: max ms`, (r) => formatMs(f(r)?.maxMs ?? null)],
    [`${label}: pooler µs CPU per query`, (r) => formatMicros(f(r)?.cpuUsPerQuery ?? null)],
    [`${label}: pooler CPU % of a core`, (r) => (f(r)?.cpuPercent == null ? DASH : (f(r)?.cpuPercent as number).toFixed(1))],
  ];
}

function firstError(r: ManyClientsRun): string {
  return r.error ?? r.firstConnectError ?? r.afterLogins?.error ?? r.burstError ?? r.warm?.error ?? DASH;
}

/** Rows about holding idle clients in a pooler: a dash for direct, which holds none. */
function held(pick: (r: ManyClientsRun) => string): (r: ManyClientsRun) => string {
  return (r) => (r.target === 'direct' ? DASH : pick(r));
}

export function renderManyClientsTable(runs: readonly ManyClientsRun[]): string {
  const rows: [string, (r: ManyClientsRun) => string][] = [
    ['connections requested', held((r) => String(r.requested))],
    ['connected', held((r) => String(r.connected))],
    ['connect failures', held((r) => String(r.connectFailures))],
    ['time to connect all, s', held((r) => r.connectSeconds.toFixed(1))],
    ['RSS before clients, MiB', held((r) => formatMiB(r.rssBeforeBytes))],
    ['RSS with all clients, MiB', held((r) => formatMiB(r.rssConnectedBytes))],
    ['RSS per client, KiB', held(perClientKiB)],
    ['RSS at end of trickle, MiB', held((r) => formatMiB(r.rssEndBytes))],
    ['RSS 2 s after all closed, MiB', held((r) => formatMiB(r.rssAfterCloseBytes))],
    ['trickle clients × seconds measured', (r) => `${r.trickleClients} × ${r.trickleSeconds}`],
    ...phaseRows('afterLogins', 'after logins'),
    ...phaseRows('warm', 'after a burst'),
    ['connections dropped while held', held((r) => String(r.dropped))],
    ['first error', firstError],
  ];
  const header = `| | ${runs.map((r) => TARGET_LABELS[r.target]).join(' | ')} |`;
  const align = `|---|${runs.map(() => '---:').join('|')}|`;
  const body = rows.map(([label, pick]) => `| ${label} | ${runs.map((r) => escapeCell(pick(r))).join(' | ')} |`);
  return [header, align, ...body].join('\n');
}

/** Doorman's latency in one trickle against PgBouncer's in the same run, when both were measured. */
export function latencyComparison(runs: readonly ManyClientsRun[], phase: Phase, label: string): string | null {
  const d = runs.find((r) => r.target === 'doorman')?.[phase];
  const p = runs.find((r) => r.target === 'pgbouncer')?.[phase];
  if (!d || !p || d.p50Ms === null || p.p50Ms === null || d.p99Ms === null || p.p99Ms === null) return null;
  return `Doorman/PgBouncer ${label}: p50 ${formatRatio(d.p50Ms, p.p50Ms)}, p99 ${formatRatio(d.p99Ms, p.p99Ms)}.`;
}

export function renderManyClientsReport(results: ManyClientsResults): string {
  const comparisons = [latencyComparison(results.runs, 'afterLogins', 'after logins'), latencyComparison(results.runs, 'warm', 'after a burst')].filter(
    (line): line is string => line !== null,
  );
  return [
    `# Doorman vs PgBouncer: ${results.connections} idle connections, ${results.startedAt}`,
    '',
    `Command: \`${results.command}\``,
    '',
    `Each pooler in turn gets ${results.connections} client connections from \`pg\` clients in the bench process, ` +
      `kept open and idle. Beside them pgbench sends \`SELECT 1\` at ${results.trickleRate} per second: right after the logins, ` +
      `then again after ${results.burstSeconds} s of pgbench at full rate; ${results.trickleSeconds} s of each trickle are measured. ` +
      'Latency comes from the pgbench log. RSS comes from /proc/<pid>/status, CPU from /proc/<pid>/task/*/stat.' +
      (results.runs.some((r) => r.target === 'direct')
        ? ' The direct column is the same trickles and burst straight to PostgreSQL, with no pooler and no idle clients: ' +
          'what this machine gives at the time, for reference.'
        : ''),
    '',
    renderManyClientsTable(results.runs),
    '',
    ...(comparisons.length === 0 ? [] : [...comparisons, '']),
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
