import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { SCRAM_USER, type PgCluster } from '../harness/index.js';
import type { CyclesResults, CyclesRun } from './connect-cycles-report.js';
import { readCpuTicks, readOpenFds, readRss } from './cpu.js';
import { driveCycles, type CycleOutcome, type CycleTarget } from './cycle-driver.js';
import { collectEnvironment, loadAverage, ticksPerSecond } from './environment.js';
import type { BenchOptions } from './options.js';
import { checkpoints, growthOverLastHalf, growthVerdict, sortSamples, summarizeSeries, type ProcessSample, type SampleLabel } from './rss-series.js';
import { describePoolers, describePostgres, startBenchDoorman, startBenchPgBouncer, startBenchPostgres, StopList, type PoolerSettings } from './servers.js';
import { TARGET_LABELS } from './types.js';

/**
 * --connect-cycles: N connect/disconnect cycles through each pooler, started fresh for its turn, with its
 * RSS and open descriptors sampled along the way. --warmup-cycles run first, so that a heap still growing
 * to its working size is not read as a leak. A per-connection leak shows as RSS still rising in the second
 * half of the measured cycles, or descriptors left open after them.
 */

const CONCURRENCY = 8;
/** The measured cycles of one pooler; 100,000 cycles take a few minutes even on a loaded two-core machine. */
const DEADLINE_MS = 10 * 60_000;
/** The warm-up's own budget, before DEADLINE_MS starts: the same allowance per cycle for the default 200,000. */
const WARMUP_DEADLINE_MS = 20 * 60_000;
const CYCLE_TIMEOUT_MS = 10_000;
/** After start and after the last cycle: lets closes finish and the allocator return what it will. */
const SETTLE_MS = 2000;

type PoolerName = 'doorman' | 'pgbouncer';

interface StartedPooler {
  pid: number;
  target: CycleTarget;
  running(): boolean;
  output(): string;
  stop(): Promise<unknown>;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function startPooler(name: PoolerName, pg: PgCluster, settings: PoolerSettings): Promise<StartedPooler> {
  const pooler = name === 'doorman' ? await startBenchDoorman(pg, settings) : await startBenchPgBouncer(pg, settings);
  const { host, port, user, database } = pooler.target(settings.user);
  return {
    pid: pooler.pid,
    target: { host, port, user, database },
    running: () => pooler.process.running,
    output: () => pooler.output(5),
    stop: () => pooler.stop(),
  };
}

async function sample(pid: number, label: SampleLabel, cycles: number): Promise<ProcessSample> {
  const [rssBytes, openFds] = await Promise.all([readRss(pid), readOpenFds(pid)]);
  return { label, cycles, rssBytes, openFds };
}

function emptyRun(target: PoolerName, requested: number, warmupRequested: number): CyclesRun {
  return {
    target,
    warmup: { requested: warmupRequested, finished: 0, failures: 0, seconds: 0 },
    requested,
    finished: 0,
    succeeded: 0,
    failures: 0,
    failureKinds: {},
    seconds: 0,
    cyclesPerSecond: null,
    cpuUsPerCycle: null,
    samples: [],
    summary: { samples: 0, minBytes: null, maxBytes: null, firstBytes: null, warmedBytes: null, lastBytes: null },
    growth: null,
    verdict: 'unknown',
    fdsBefore: null,
    fdsAfter: null,
    serverConnectionsAfter: null,
    aborted: null,
    error: null,
  };
}

async function serverConnections(pg: PgCluster, user: string): Promise<number | null> {
  const text = await pg.query(`SELECT count(*) FROM pg_stat_activity WHERE usename = '${user}'`).catch(() => null);
  return text === null ? null : Number(text);
}

function mib(s: ProcessSample): string {
  return s.rssBytes === null ? '?' : (s.rssBytes / 1048576).toFixed(1);
}

/**
 * Warm-up cycles, then `total` measured ones. Only the measured cycles are checkpointed, timed and
 * charged CPU; failures of both count, the warm-up's marked as such.
 */
async function measure(
  name: PoolerName,
  pooler: StartedPooler,
  pg: PgCluster,
  total: number,
  warmupTotal: number,
  ticks: number,
  log: (line: string) => void,
): Promise<CyclesRun> {
  const result = emptyRun(name, total, warmupTotal);
  const drive = (count: number, deadlineMs: number, onProgress?: (finished: number) => void): Promise<CycleOutcome> =>
    driveCycles(pooler.target, { total: count, concurrency: CONCURRENCY, deadlineMs, cycleTimeoutMs: CYCLE_TIMEOUT_MS, onProgress });
  await sleep(SETTLE_MS);
  const samples: ProcessSample[] = [await sample(pooler.pid, 'before', 0)];

  let warmupAborted: string | null = null;
  if (warmupTotal > 0) {
    const warmup = await drive(warmupTotal, WARMUP_DEADLINE_MS);
    const warmed = await sample(pooler.pid, 'warmed', 0);
    samples.push(warmed);
    result.warmup = { requested: warmupTotal, finished: warmup.finished, failures: warmup.failures, seconds: warmup.seconds };
    result.failures = warmup.failures;
    for (const [reason, count] of Object.entries(warmup.failureKinds)) result.failureKinds[`warm-up: ${reason}`] = count;
    warmupAborted = warmup.aborted;
    log(`    ${TARGET_LABELS[name]}: ${warmup.finished} warm-up cycles in ${warmup.seconds.toFixed(1)} s, ${warmup.failures} failed, RSS ${mib(warmed)} MiB`);
  }

  const marks = checkpoints(total);
  let nextMark = 0;
  const pending: Promise<void>[] = [];
  const onProgress = (finished: number): void => {
    const mark = marks[nextMark];
    if (mark === undefined || finished < mark) return;
    nextMark++;
    pending.push(
      sample(pooler.pid, 'cycles', mark).then((s) => {
        samples.push(s);
        log(`    ${TARGET_LABELS[name]}: ${mark} cycles, RSS ${mib(s)} MiB, ${s.openFds ?? '?'} fds`);
      }),
    );
  };
  // Measured cycles after a cut-short warm-up would be judged on a heap still growing: not worth the time.
  if (warmupAborted === null) {
    const cpuBefore = await readCpuTicks(pooler.pid);
    const outcome = await drive(total, DEADLINE_MS, onProgress);
    const cpuAfter = await readCpuTicks(pooler.pid).catch(() => null);
    result.finished = outcome.finished;
    result.succeeded = outcome.succeeded;
    result.failures += outcome.failures;
    Object.assign(result.failureKinds, outcome.failureKinds);
    result.seconds = outcome.seconds;
    result.aborted = outcome.aborted;
    result.cyclesPerSecond = outcome.seconds > 0 ? outcome.finished / outcome.seconds : null;
    result.cpuUsPerCycle = cpuAfter === null || outcome.finished === 0 ? null : ((cpuAfter - cpuBefore) * 1_000_000) / ticks / outcome.finished;
  } else {
    result.aborted = `warm-up: ${warmupAborted}; measured cycles not run`;
  }
  await Promise.all(pending);
  await sleep(SETTLE_MS);
  samples.push(await sample(pooler.pid, 'after', result.finished));
  result.serverConnectionsAfter = await serverConnections(pg, pooler.target.user);
  sortSamples(samples);

  result.samples = samples;
  result.summary = summarizeSeries(samples);
  result.growth = growthOverLastHalf(samples, total);
  result.verdict = growthVerdict(result.growth);
  result.fdsBefore = samples[0]?.openFds ?? null;
  result.fdsAfter = samples[samples.length - 1]?.openFds ?? null;
  if (!pooler.running()) result.error = `${TARGET_LABELS[name]} exited during the run: ${pooler.output()}`;
  return result;
}

export async function runConnectCycles(options: BenchOptions, command: string, log: (line: string) => void): Promise<CyclesResults> {
  const total = options.connectCycles;
  if (total === null) throw new Error('runConnectCycles needs --connect-cycles');
  const warmupTotal = options.warmupCycles;
  const poolers: PoolerName[] = options.cyclesPeer ? ['doorman', 'pgbouncer'] : ['doorman'];
  const stops = new StopList();
  try {
    log('starting PostgreSQL');
    const pg = await startBenchPostgres();
    stops.add('PostgreSQL', () => pg.stop());
    const settings: PoolerSettings = {
      user: SCRAM_USER,
      auth: 'trust',
      maxClientConn: 1000,
      ...(options.workers === null ? {} : { workers: options.workers }),
    };
    const ticks = await ticksPerSecond();
    const results: CyclesResults = {
      startedAt: new Date().toISOString(),
      finishedAt: null,
      command,
      cycles: total,
      warmupCycles: warmupTotal,
      concurrency: CONCURRENCY,
      deadlineSeconds: DEADLINE_MS / 1000,
      warmupDeadlineSeconds: WARMUP_DEADLINE_MS / 1000,
      settleSeconds: SETTLE_MS / 1000,
      environment: await collectEnvironment(pg),
      setup: [
        describePostgres(),
        ...describePoolers(settings).filter((line) => poolers.some((p) => line.startsWith(TARGET_LABELS[p]))),
        `Doorman worker shards: ${options.workers ?? `${os.availableParallelism()} (general.workers unset = cores)`}`,
        `Clients: raw protocol 3.0 over TCP in the bench process, ${CONCURRENCY} cycles in flight, as ${settings.user.user} (trust), no TLS`,
        'Each pooler is started fresh for its turn and stopped afterwards',
      ],
      runs: [],
    };
    for (const name of poolers) {
      log(`${TARGET_LABELS[name]}: ${warmupTotal} warm-up and ${total} measured connect/disconnect cycles, ${CONCURRENCY} at a time`);
      let pooler: StartedPooler | null = null;
      try {
        pooler = await startPooler(name, pg, settings);
        const run = await measure(name, pooler, pg, total, warmupTotal, ticks, log);
        results.runs.push(run);
        if (run.aborted) log(`    ${TARGET_LABELS[name]}: ABORTED: ${run.aborted}`);
        log(`    ${TARGET_LABELS[name]}: ${run.finished} measured cycles in ${run.seconds.toFixed(1)} s, ${run.failures} failed (warm-up included), RSS ${run.verdict}`);
      } catch (err) {
        results.runs.push({ ...emptyRun(name, total, warmupTotal), error: message(err) });
        log(`    ${TARGET_LABELS[name]}: ${message(err)}`);
      } finally {
        await pooler?.stop();
      }
    }
    results.finishedAt = new Date().toISOString();
    results.environment['load average at end'] = loadAverage();
    return results;
  } finally {
    const errors = await stops.stopAll();
    for (const error of errors) log(`while stopping: ${error}`);
  }
}
