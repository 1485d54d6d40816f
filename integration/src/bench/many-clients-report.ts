import { escapeCell, formatMicros, formatMiB, formatMs, formatRatio } from './report.js';
import { TARGET_LABELS } from './types.js';

/** --many-clients results and their markdown. */

export interface ManyClientsRun {
  target: 'doorman' | 'pgbouncer';
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
  queries: number;
  queryFailures: number;
  firstQueryError: string | null;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** Clients that saw their connection end or fail while they were meant to stay open. */
  dropped: number;
  /** Pooler utime+stime over the trickle window / queries in it. */
  cpuUsPerQuery: number | null;
  /** Pooler CPU over the trickle window, percent of one core. */
  cpuPercent: number | null;
  /** Set when the run could not be completed at all. */
  error: string | null;
}

export interface ManyClientsResults {
  startedAt: string;
  finishedAt: string | null;
  command: string;
  connections: number;
  trickleSeconds: number;
  /** Trickle before the measured window, not counted: both poolers start measuring warm. */
  trickleWarmupSeconds: number;
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

/** Tail over median of the trickle latency, two decimals; a dash unless both were measured. */
export function tailRatio(run: ManyClientsRun): string {
  return formatRatio(run.p99Ms, run.p50Ms);
}

export function renderManyClientsTable(runs: readonly ManyClientsRun[]): string {
  const rows: [string, (r: ManyClientsRun) => string][] = [
    ['connections requested', (r) => String(r.requested)],
    ['connected', (r) => String(r.connected)],
    ['connect failures', (r) => String(r.connectFailures)],
    ['time to connect all, s', (r) => r.connectSeconds.toFixed(1)],
    ['RSS before clients, MiB', (r) => formatMiB(r.rssBeforeBytes)],
    ['RSS with all clients, MiB', (r) => formatMiB(r.rssConnectedBytes)],
    ['RSS per client, KiB', perClientKiB],
    ['RSS at end of trickle, MiB', (r) => formatMiB(r.rssEndBytes)],
    ['RSS 2 s after all closed, MiB', (r) => formatMiB(r.rssAfterCloseBytes)],
    ['trickle clients × seconds', (r) => `${r.trickleClients} × ${r.trickleSeconds}`],
    ['trickle queries', (r) => String(r.queries)],
    ['query failures', (r) => String(r.queryFailures)],
    ['trickle p50 ms', (r) => formatMs(r.p50Ms)],
    ['trickle p99 ms', (r) => formatMs(r.p99Ms)],
    ['trickle p99/p50', tailRatio],
    ['trickle max ms', (r) => formatMs(r.maxMs)],
    ['connections dropped while held', (r) => String(r.dropped)],
    ['pooler µs CPU per trickle query', (r) => formatMicros(r.cpuUsPerQuery)],
    ['pooler CPU % of a core during trickle', (r) => (r.cpuPercent === null ? DASH : r.cpuPercent.toFixed(1))],
    ['first error', (r) => r.error ?? r.firstConnectError ?? r.firstQueryError ?? DASH],
  ];
  const header = `| | ${runs.map((r) => TARGET_LABELS[r.target]).join(' | ')} |`;
  const align = `|---|${runs.map(() => '---:').join('|')}|`;
  const body = rows.map(([label, pick]) => `| ${label} | ${runs.map((r) => escapeCell(pick(r))).join(' | ')} |`);
  return [header, align, ...body].join('\n');
}

/** Doorman's trickle latency against PgBouncer's in the same run, when both were measured. */
export function latencyComparison(runs: readonly ManyClientsRun[]): string | null {
  const d = runs.find((r) => r.target === 'doorman');
  const p = runs.find((r) => r.target === 'pgbouncer');
  if (d === undefined || p === undefined || d.p50Ms === null || p.p50Ms === null || d.p99Ms === null || p.p99Ms === null) return null;
  return `Doorman/PgBouncer: p50 ${formatRatio(d.p50Ms, p.p50Ms)}, p99 ${formatRatio(d.p99Ms, p.p99Ms)}.`;
}

export function renderManyClientsReport(results: ManyClientsResults): string {
  const comparison = latencyComparison(results.runs);
  return [
    `# Doorman vs PgBouncer: ${results.connections} idle connections, ${results.startedAt}`,
    '',
    `Command: \`${results.command}\``,
    '',
    `Each pooler in turn gets ${results.connections} client connections from \`pg\` clients in the bench process, ` +
      `kept open; then a subset sends \`SELECT 1\` at random intervals (about 2 per second each): ${results.trickleWarmupSeconds} s ` +
      `of warm-up, not counted, then ${results.trickleSeconds} s measured. ` +
      'Latency is measured in the bench process around each query. RSS comes from /proc/<pid>/status, CPU from ' +
      '/proc/<pid>/task/*/stat.',
    '',
    renderManyClientsTable(results.runs),
    '',
    ...(comparison === null ? [] : [comparison, '']),
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
