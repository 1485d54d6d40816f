import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { makeTempDir, PG_BIN, run, type RunResult } from '../harness/index.js';
import { isExpectedFailure, pgbenchArgs, pgbenchOpenFiles, pgbenchSeconds } from './cells.js';
import {
  cpuMicrosPerTransaction,
  nowUs,
  sampleProcess,
  samplesWithin,
  switchesPerTransaction,
  sysMicrosPerTransaction,
  type CpuSample,
} from './cpu.js';
import { inWindow, parseLog, steadyWindow, summarizeLatency, type LogRecord } from './pgbench-log.js';
import { errorLine, parsePgbenchSummary } from './pgbench-summary.js';
import type { Endpoint } from './servers.js';
import type { Cell, TargetName, TargetRun } from './types.js';

export const PGBENCH = path.join(PG_BIN, 'pgbench');
/** Ramp-up and ramp-down cut from both ends of the run. */
const STEADY_MARGIN_US = 1_000_000;
/** Beyond -T: initial connections (2000 SCRAM logins) and the final report. */
const EXTRA_TIMEOUT_MS = 180_000;

export interface RunContext {
  durationSeconds: number;
  scriptPath: string;
  /** getconf CLK_TCK. */
  ticksPerSecond: number;
  /** This process's soft open-files limit, which pgbench would inherit. */
  openFilesSoft: number;
}

function emptyRun(target: TargetName, cell: Cell, durationSeconds: number): TargetRun {
  return {
    target,
    status: 'ok',
    reason: null,
    expectedFailure: isExpectedFailure(cell, target),
    exitCode: null,
    tps: null,
    processed: null,
    failedTransactions: null,
    p50Ms: null,
    p99Ms: null,
    steadyTransactions: null,
    steadySeconds: null,
    cpuUsPerTx: null,
    sysUsPerTx: null,
    switchesPerTx: null,
    rssBytes: null,
    pgbenchSeconds: pgbenchSeconds(durationSeconds, cell),
    wallSeconds: 0,
  };
}

export function skippedRun(target: TargetName, cell: Cell, durationSeconds: number, reason: string): TargetRun {
  return { ...emptyRun(target, cell, durationSeconds), status: 'skipped', reason };
}

async function readLogs(dir: string): Promise<LogRecord[][]> {
  const files = (await readdir(dir)).sort();
  const logs: LogRecord[][] = [];
  for (const file of files) logs.push(parseLog(await readFile(path.join(dir, file), 'utf8')));
  return logs;
}

/** pgbench through `prlimit --nofile`, so high client counts get their sockets. */
function runWithin(nofile: number, cell: Cell, name: TargetName, endpoint: Endpoint, args: string[], seconds: number): Promise<RunResult> {
  const { target } = endpoint;
  return run(
    'prlimit',
    [`--nofile=${nofile}:${nofile}`, PGBENCH, '-h', target.host, '-p', String(target.port), '-U', target.user, ...args, target.database],
    {
      env: { PGPASSWORD: target.password, PGSSLMODE: cell.tls || (cell.serverTls && name === 'direct') ? 'require' : 'disable' },
      timeoutMs: seconds * 1000 + EXTRA_TIMEOUT_MS,
    },
  );
}

/** An unmeasured run of `cell` (see warmupCells): null, or why it failed. */
export async function warmUp(cell: Cell, name: TargetName, endpoint: Endpoint, ctx: RunContext, seconds: number): Promise<string | null> {
  const args = pgbenchArgs(cell, { durationSeconds: seconds, scriptPath: ctx.scriptPath, logPrefix: null });
  const r = await runWithin(pgbenchOpenFiles(cell.clients, ctx.openFilesSoft), cell, name, endpoint, args, pgbenchSeconds(seconds, cell));
  if (r.timedOut) return 'pgbench timed out';
  return r.code === 0 ? null : (errorLine(r.stderr) ?? `pgbench exited with ${String(r.code)}`);
}

/**
 * One measured pgbench run of `cell` against `endpoint`. The pooler is sampled for the
 * whole run; the steady window is chosen afterwards from the transaction log.
 */
export async function runPgbench(cell: Cell, name: TargetName, endpoint: Endpoint, ctx: RunContext): Promise<TargetRun> {
  const result = emptyRun(name, cell, ctx.durationSeconds);
  const logDir = await makeTempDir('doorman-bench-log', { forServiceUser: false });
  try {
    const args = pgbenchArgs(cell, {
      durationSeconds: ctx.durationSeconds,
      scriptPath: ctx.scriptPath,
      logPrefix: path.join(logDir.path, 'tx'),
    });
    const nofile = pgbenchOpenFiles(cell.clients, ctx.openFilesSoft);
    const sampler = endpoint.poolerPid === null ? null : sampleProcess(endpoint.poolerPid);
    const startedUs = nowUs();
    let pgbenchResult: RunResult;
    let samples: CpuSample[] = [];
    try {
      pgbenchResult = await runWithin(nofile, cell, name, endpoint, args, result.pgbenchSeconds);
    } finally {
      if (sampler) samples = await sampler.stop();
    }
    result.wallSeconds = (nowUs() - startedUs) / 1e6;
    result.exitCode = pgbenchResult.code;

    if (pgbenchResult.code !== 0 && /^prlimit:/m.test(pgbenchResult.stderr)) {
      return { ...result, status: 'skipped', reason: `cannot raise the open-files limit to ${nofile}: ${errorLine(pgbenchResult.stderr)}` };
    }

    const summary = parsePgbenchSummary(pgbenchResult.stdout, pgbenchResult.stderr);
    result.tps = summary.tps;
    result.processed = summary.processed;
    result.failedTransactions = summary.failedTransactions;
    if (pgbenchResult.timedOut) {
      result.status = 'failed';
      result.reason = `pgbench timed out after ${result.pgbenchSeconds * 1000 + EXTRA_TIMEOUT_MS} ms`;
    } else if (pgbenchResult.code !== 0 || summary.aborted) {
      result.status = 'failed';
      result.reason = errorLine(pgbenchResult.stderr) ?? `pgbench exited with ${String(pgbenchResult.code)}`;
    }

    const logs = await readLogs(logDir.path);
    const steady = steadyWindow(logs, STEADY_MARGIN_US);
    if (steady === null) {
      if (result.status === 'ok') {
        result.status = 'failed';
        result.reason = `no steady window: ${result.processed ?? 0} transactions in -T ${result.pgbenchSeconds} s (${result.wallSeconds.toFixed(1)} s wall), too few to cut 1 s from both ends`;
      }
      return result;
    }
    const all = logs.flat();
    const cpuWindow = samples.length > 0 ? samplesWithin(samples, steady.startUs, steady.endUs) : null;
    // With CPU samples, count exactly the transactions between the two samples used.
    const window = cpuWindow ? { startUs: cpuWindow.from.atUs, endUs: cpuWindow.to.atUs } : steady;
    const steadyRecords = inWindow(all, window);
    const latency = summarizeLatency(steadyRecords);
    result.steadyTransactions = latency.transactions;
    result.steadySeconds = (window.endUs - window.startUs) / 1e6;
    result.p50Ms = latency.p50Us === null ? null : latency.p50Us / 1000;
    result.p99Ms = latency.p99Us === null ? null : latency.p99Us / 1000;
    if (cpuWindow) {
      result.cpuUsPerTx = cpuMicrosPerTransaction(cpuWindow, latency.transactions, ctx.ticksPerSecond);
      result.sysUsPerTx = sysMicrosPerTransaction(cpuWindow, latency.transactions, ctx.ticksPerSecond);
      result.switchesPerTx = switchesPerTransaction(cpuWindow, latency.transactions);
    }
    const lastRss = [...samples].reverse().find((s) => s.rssBytes !== null);
    result.rssBytes = lastRss?.rssBytes ?? null;
    return result;
  } finally {
    await logDir.remove();
  }
}
