import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { run, type ClientTarget, type RunResult } from '../harness/index.js';
import { sampleProcess, samplesWithin, type CpuSample } from './cpu.js';
import { inWindow, parseLog, steadyWindow, summarizeLatency, type LogRecord } from './pgbench-log.js';
import { errorLine } from './pgbench-summary.js';
import { PGBENCH } from './run-pgbench.js';

/**
 * The query trickle of --many-clients: pgbench at a fixed rate (-R), its latency read from --log. Timing
 * in the bench process, which also holds the 10,000 idle clients, put that process's own GC pauses into
 * both poolers' tails.
 */

export const TRICKLE_SCRIPT = 'SELECT 1;\n';
/** Ramp-up and ramp-down cut from both ends of a trickle. */
const MARGIN_US = 1_000_000;
/** Beyond -T: 100 logins and the final report. */
const EXTRA_TIMEOUT_MS = 60_000;

export interface TrickleOptions {
  clients: number;
  /** Transactions per second over all clients (pgbench -R: Poisson arrivals). */
  ratePerSecond: number;
  seconds: number;
  scriptPath: string;
  /** pgbench --log-prefix; the directory must be empty of other logs with this prefix. */
  logPrefix: string;
}

export interface TrickleFigures {
  /** Transactions that ended inside the measured window. */
  queries: number;
  /** Of those, logged as failed or skipped. */
  failed: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** Pooler utime+stime over the window / queries in it. */
  cpuUsPerQuery: number | null;
  /** Pooler CPU over the window, percent of one core. */
  cpuPercent: number | null;
  /** Why pgbench failed, when it did. */
  error: string | null;
}

/** pgbench arguments for a trickle (host, port, user and database come before and after). */
export function trickleArgs(o: TrickleOptions): string[] {
  return [
    '-n',
    '-j', '1',
    '-c', String(o.clients),
    '-R', String(o.ratePerSecond),
    '-T', String(o.seconds),
    '-f', o.scriptPath,
    '--log', `--log-prefix=${o.logPrefix}`,
  ];
}

/** pgbench arguments for a burst at full rate: `clients` connections, no -R, no log. */
export function burstArgs(clients: number, seconds: number, scriptPath: string): string[] {
  return ['-n', '-j', '1', '-c', String(clients), '-T', String(seconds), '-f', scriptPath];
}

function pgbenchCommand(target: ClientTarget, args: string[], timeoutMs: number): Promise<RunResult> {
  return run(PGBENCH, ['-h', target.host, '-p', String(target.port), '-U', target.user, ...args, target.database], {
    env: { PGPASSWORD: target.password, PGSSLMODE: 'disable' },
    timeoutMs,
  });
}

/** Why a pgbench run failed, or null. */
function failureOf(result: RunResult, seconds: number): string | null {
  if (result.timedOut) return `pgbench timed out after ${seconds} s + ${EXTRA_TIMEOUT_MS} ms`;
  return result.code === 0 ? null : (errorLine(result.stderr) ?? `pgbench exited with ${String(result.code)}`);
}

/** Figures for the records ending in the trickle's steady window; CPU from the pooler's samples in it. */
export function trickleFigures(records: readonly LogRecord[], cpu: { windowUs: number; ticks: number } | null, ticksPerSecond: number): TrickleFigures {
  const latency = summarizeLatency(records);
  let maxUs: number | null = null;
  for (const r of records) if (r.latencyUs !== null && (maxUs === null || r.latencyUs > maxUs)) maxUs = r.latencyUs;
  const cpuUs = cpu === null ? null : (cpu.ticks * 1_000_000) / ticksPerSecond;
  return {
    queries: latency.transactions,
    failed: latency.withoutLatency,
    p50Ms: latency.p50Us === null ? null : latency.p50Us / 1000,
    p99Ms: latency.p99Us === null ? null : latency.p99Us / 1000,
    maxMs: maxUs === null ? null : maxUs / 1000,
    cpuUsPerQuery: cpuUs === null || latency.transactions === 0 ? null : cpuUs / latency.transactions,
    cpuPercent: cpuUs === null || cpu === null ? null : (cpuUs / cpu.windowUs) * 100,
    error: null,
  };
}

/** One trickle against `target`, sampling the pooler `pid` (null: none); the window drops the first and last second. */
export async function runTrickle(target: ClientTarget, pid: number | null, o: TrickleOptions, ticksPerSecond: number): Promise<TrickleFigures> {
  const sampler = pid === null ? null : sampleProcess(pid);
  let samples: CpuSample[] = [];
  let result: RunResult;
  try {
    result = await pgbenchCommand(target, trickleArgs(o), o.seconds * 1000 + EXTRA_TIMEOUT_MS);
  } finally {
    samples = (await sampler?.stop()) ?? [];
  }
  const dir = path.dirname(o.logPrefix);
  const base = path.basename(o.logPrefix);
  const logs: LogRecord[][] = [];
  for (const file of (await readdir(dir)).filter((f) => f.startsWith(`${base}.`)).sort()) logs.push(parseLog(await readFile(path.join(dir, file), 'utf8')));
  const failure = failureOf(result, o.seconds);
  const steady = steadyWindow(logs, MARGIN_US);
  if (steady === null) return { ...trickleFigures([], null, ticksPerSecond), error: failure ?? 'no steady window in the pgbench log' };
  const cpuWindow = samplesWithin(samples, steady.startUs, steady.endUs);
  const window = cpuWindow ? { startUs: cpuWindow.from.atUs, endUs: cpuWindow.to.atUs } : steady;
  const cpu = cpuWindow ? { windowUs: window.endUs - window.startUs, ticks: cpuWindow.to.ticks - cpuWindow.from.ticks } : null;
  return { ...trickleFigures(inWindow(logs.flat(), window), cpu, ticksPerSecond), error: failure };
}

/** A burst at full rate, to bring a pooler's query path to steady state; resolves with an error line or null. */
export async function runBurst(target: ClientTarget, clients: number, seconds: number, scriptPath: string): Promise<string | null> {
  const result = await pgbenchCommand(target, burstArgs(clients, seconds, scriptPath), seconds * 1000 + EXTRA_TIMEOUT_MS);
  const failure = failureOf(result, seconds);
  return failure === null ? null : `burst: ${failure}`;
}
