import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { MD5_USER, type ClientTarget, type PgCluster } from '../harness/index.js';
import { nowUs, readRss, sampleProcess, samplesWithin } from './cpu.js';
import { collectEnvironment, loadAverage, packageVersion, ticksPerSecond } from './environment.js';
import { raiseOwnOpenFiles } from './fd-limit.js';
import type { ManyClientsResults, ManyClientsRun } from './many-clients-report.js';
import type { BenchOptions } from './options.js';
import { percentile } from './pgbench-log.js';
import {
  describePoolers,
  describePostgres,
  startBenchDoorman,
  startBenchPgBouncer,
  startBenchPostgres,
  StopList,
  type PoolerSettings,
} from './servers.js';
import { WANTED_OPEN_FILES } from './suite.js';
import { TARGET_LABELS } from './types.js';

/**
 * --many-clients: thousands of idle client connections held open through a
 * pooler while a small subset keeps querying. Clients authenticate with md5:
 * SCRAM's PBKDF2 for 10,000 logins on both sides would dominate the connect
 * phase on two cores and measure hashing, not holding connections.
 */

/** Logins in flight at once while connecting. */
const CONNECT_CONCURRENCY = 64;
const TRICKLE_CLIENTS = 100;
/** Each trickle client waits a uniform 0..this between queries (about 2 queries/s each). */
const TRICKLE_MAX_PAUSE_MS = 1000;
/**
 * The trickle runs this long before its measured window. The first queries after 10,000 logins met code
 * not yet optimised and heaps still settling in both poolers' neighbourhood (Doorman's JIT and GC, the bench
 * process's own GC): their tail said more about the moment than about the pooler.
 */
export const TRICKLE_WARMUP_SECONDS = 5;
const QUERY_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 60_000;
const CLOSE_TIMEOUT_MS = 60_000;

type PoolerName = 'doorman' | 'pgbouncer';

interface StartedPooler {
  pid: number;
  target: ClientTarget;
  stop(): Promise<unknown>;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function emptyRun(target: PoolerName, requested: number): ManyClientsRun {
  return {
    target,
    requested,
    connected: 0,
    connectFailures: 0,
    connectSeconds: 0,
    firstConnectError: null,
    rssBeforeBytes: null,
    rssConnectedBytes: null,
    rssEndBytes: null,
    rssAfterCloseBytes: null,
    trickleClients: 0,
    trickleSeconds: 0,
    queries: 0,
    queryFailures: 0,
    firstQueryError: null,
    p50Ms: null,
    p99Ms: null,
    maxMs: null,
    dropped: 0,
    cpuUsPerQuery: null,
    cpuPercent: null,
    error: null,
  };
}

async function measure(
  name: PoolerName,
  pooler: StartedPooler,
  options: BenchOptions,
  ticks: number,
  log: (line: string) => void,
): Promise<ManyClientsRun> {
  const result = emptyRun(name, options.connections);
  const { target } = pooler;
  await sleep(1000);
  result.rssBeforeBytes = await readRss(pooler.pid);

  // Connect phase.
  const clients: pg.Client[] = [];
  const dropped = new Set<pg.Client>();
  let holding = true;
  let next = 0;
  const connectStart = performance.now();
  const connectOne = async (): Promise<void> => {
    while (next < options.connections) {
      next++;
      const client = new pg.Client({
        host: target.host,
        port: target.port,
        user: target.user,
        password: target.password,
        database: target.database,
        ssl: false,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        query_timeout: QUERY_TIMEOUT_MS,
      });
      const lost = (): void => {
        if (holding) dropped.add(client);
      };
      client.on('error', lost);
      client.on('end', lost);
      try {
        await client.connect();
        clients.push(client);
      } catch (err) {
        result.connectFailures++;
        result.firstConnectError ??= message(err);
      }
    }
  };
  const progress = setInterval(() => log(`    ${TARGET_LABELS[name]}: ${clients.length} connected, ${result.connectFailures} failed`), 5000);
  try {
    await Promise.all(Array.from({ length: CONNECT_CONCURRENCY }, connectOne));
  } finally {
    clearInterval(progress);
  }
  result.connectSeconds = (performance.now() - connectStart) / 1000;
  result.connected = clients.length;
  log(`    ${TARGET_LABELS[name]}: ${clients.length} connected in ${result.connectSeconds.toFixed(1)} s, ${result.connectFailures} failed`);
  await sleep(1000);
  result.rssConnectedBytes = await readRss(pooler.pid);

  // Trickle phase: every k-th client queries, the rest stay idle.
  const step = Math.max(1, Math.floor(clients.length / TRICKLE_CLIENTS));
  const subset = clients.filter((_, i) => i % step === 0).slice(0, TRICKLE_CLIENTS);
  result.trickleClients = subset.length;
  result.trickleSeconds = options.durationSeconds;
  const completions: { atUs: number; ms: number }[] = [];
  const warmEnd = performance.now() + TRICKLE_WARMUP_SECONDS * 1000;
  const deadline = warmEnd + options.durationSeconds * 1000;
  const sampler = sampleProcess(pooler.pid);
  let measuredStartUs = 0;
  const measuring = sleep(TRICKLE_WARMUP_SECONDS * 1000).then(() => {
    measuredStartUs = nowUs();
  });
  await Promise.all(
    subset.map(async (client) => {
      for (;;) {
        await sleep(Math.random() * TRICKLE_MAX_PAUSE_MS);
        if (performance.now() >= deadline) return;
        const started = performance.now();
        try {
          await client.query('SELECT 1');
          if (started >= warmEnd) completions.push({ atUs: nowUs(), ms: performance.now() - started });
        } catch (err) {
          result.queryFailures++;
          result.firstQueryError ??= message(err);
        }
      }
    }),
  );
  await measuring;
  const trickleEndUs = nowUs();
  const samples = await sampler.stop();
  result.rssEndBytes = await readRss(pooler.pid);
  result.queries = completions.length;
  const sorted = Float64Array.from(completions.map((c) => c.ms)).sort();
  result.p50Ms = percentile(sorted, 50);
  result.p99Ms = percentile(sorted, 99);
  result.maxMs = sorted.length > 0 ? (sorted[sorted.length - 1] as number) : null;
  const window = samplesWithin(samples, measuredStartUs, trickleEndUs);
  if (window) {
    const cpuUs = ((window.to.ticks - window.from.ticks) * 1_000_000) / ticks;
    const inside = completions.filter((c) => c.atUs > window.from.atUs && c.atUs <= window.to.atUs).length;
    result.cpuUsPerQuery = inside > 0 ? cpuUs / inside : null;
    result.cpuPercent = (cpuUs / (window.to.atUs - window.from.atUs)) * 100;
  }
  holding = false;
  result.dropped = dropped.size;
  log(`    ${TARGET_LABELS[name]}: ${result.queries} trickle queries, ${result.queryFailures} failed, ${result.dropped} connections dropped`);

  // Close everyone, bounded: a pooler that never answers Terminate must not hang the bench.
  await Promise.race([Promise.all(clients.map((c) => c.end().catch(() => undefined))), sleep(CLOSE_TIMEOUT_MS, undefined, { ref: false })]);
  await sleep(2000);
  result.rssAfterCloseBytes = await readRss(pooler.pid);
  return result;
}

async function startPooler(name: PoolerName, pgCluster: PgCluster, settings: PoolerSettings): Promise<StartedPooler> {
  if (name === 'doorman') {
    const doorman = await startBenchDoorman(pgCluster, settings);
    return { pid: doorman.pid, target: doorman.target(settings.user), stop: () => doorman.stop() };
  }
  const pgbouncer = await startBenchPgBouncer(pgCluster, settings);
  return { pid: pgbouncer.pid, target: pgbouncer.target(settings.user), stop: () => pgbouncer.stop() };
}

export async function runManyClients(options: BenchOptions, command: string, log: (line: string) => void): Promise<ManyClientsResults> {
  const poolers = options.targets.filter((t): t is PoolerName => t !== 'direct');
  if (poolers.length === 0) throw new Error('--many-clients compares the poolers; --targets must include doorman or pgbouncer');
  const stops = new StopList();
  try {
    const fd = await raiseOwnOpenFiles(Math.max(WANTED_OPEN_FILES, options.connections * 2 + 1000));
    if (fd.error) log(`open-files limit stays at ${fd.limit ? `${fd.limit.soft} soft / ${fd.limit.hard} hard` : 'unknown'}: ${fd.error}`);
    log('starting PostgreSQL');
    const pgCluster = await startBenchPostgres();
    stops.add('PostgreSQL', () => pgCluster.stop());
    const settings: PoolerSettings = {
      user: MD5_USER,
      auth: 'md5',
      maxClientConn: options.connections + 100,
      ...(options.workers === null ? {} : { workers: options.workers }),
    };
    const ticks = await ticksPerSecond();
    const results: ManyClientsResults = {
      startedAt: new Date().toISOString(),
      finishedAt: null,
      command,
      connections: options.connections,
      trickleSeconds: options.durationSeconds,
      trickleWarmupSeconds: TRICKLE_WARMUP_SECONDS,
      environment: await collectEnvironment(pgCluster),
      setup: [
        describePostgres(),
        ...describePoolers(settings),
        `Clients: node-postgres ${await packageVersion('pg')} in the bench process, ${CONNECT_CONCURRENCY} logins in flight, as ${settings.user.user} (md5), no TLS`,
        'Each pooler is started fresh for its turn and stopped afterwards',
      ],
      runs: [],
    };
    for (const name of poolers) {
      log(`${TARGET_LABELS[name]}: ${options.connections} connections`);
      const pooler = await startPooler(name, pgCluster, settings);
      try {
        results.runs.push(await measure(name, pooler, options, ticks, log));
      } catch (err) {
        results.runs.push({ ...emptyRun(name, options.connections), error: message(err) });
      } finally {
        await pooler.stop();
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
