import { performance } from 'node:perf_hooks';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { makeTempDir, MD5_USER, type ClientTarget, type Credentials, type PgCluster } from '../harness/index.js';
import { readRss } from './cpu.js';
import { collectEnvironment, loadAverage, packageVersion, ticksPerSecond } from './environment.js';
import { raiseOwnOpenFiles } from './fd-limit.js';
import type { ManyClientsResults, ManyClientsRun } from './many-clients-report.js';
import type { BenchOptions } from './options.js';
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
import { runBurst, runTrickle, TRICKLE_SCRIPT, type TrickleFigures } from './trickle.js';
import { TARGET_LABELS, type TargetName } from './types.js';

/**
 * --many-clients: thousands of idle client connections held open through a
 * pooler while a small subset keeps querying. Clients authenticate with md5:
 * SCRAM's PBKDF2 for 10,000 logins on both sides would dominate the connect
 * phase on two cores and measure hashing, not holding connections.
 */

/** Logins in flight at once while connecting. */
const CONNECT_CONCURRENCY = 64;
const TRICKLE_CLIENTS = 100;
/** Queries per second over all trickle clients: 2 per client per second. */
const TRICKLE_RATE = 200;
/**
 * Between the two trickles, pgbench at full rate with this many clients for BURST_SECONDS. The first trickle
 * meets Doorman's query path before V8 has optimised it, which takes some thousands of queries: at this rate
 * about 40 s (12 s trickles back to back, without a burst, had p99/p50 5.3, 5.8, 4.3, then 2.2 from the
 * fourth on). The burst gets there in seconds, so the second trickle shows the steady state. Both are reported.
 */
const BURST_CLIENTS = 10;
export const BURST_SECONDS = 5;
const CONNECT_TIMEOUT_MS = 60_000;
const CLOSE_TIMEOUT_MS = 60_000;

/**
 * The idle clients live in this process: 10,000 node-postgres clients make a heap of about 70 MB. A full GC
 * of it (three from V8's memory reducer once the process goes quiet, or one at the heap limit) kept both
 * cores busy for up to 40 ms, and the pooler being measured stalled with it: p99/p50 of Doorman's trickle
 * after the burst swung between 2 and 15. `npm run bench` starts node with --expose-gc --no-memory-reducer,
 * and a full GC right before each trickle leaves none due during it.
 */
const collectGarbage = (globalThis as { gc?: () => void }).gc;
const HEAP_QUIET = collectGarbage !== undefined && process.execArgv.includes('--no-memory-reducer');

type PoolerName = 'doorman' | 'pgbouncer';

interface StartedPooler {
  pid: number;
  target: ClientTarget;
  stop(): Promise<unknown>;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function describe(f: TrickleFigures): string {
  const ms = (v: number | null): string => (v === null ? '-' : v.toFixed(3));
  return `${f.queries} queries, ${f.failed} failed, p50 ${ms(f.p50Ms)} ms, p99 ${ms(f.p99Ms)} ms${f.error === null ? '' : `; ${f.error}`}`;
}

function emptyRun(target: TargetName, requested: number): ManyClientsRun {
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
    afterLogins: null,
    burstError: null,
    warm: null,
    dropped: 0,
    error: null,
  };
}

/** The trickle, a burst at full rate, the trickle again; figures go into `result`. `pid` null: no CPU figures. */
async function queryPhases(
  name: TargetName,
  target: ClientTarget,
  pid: number | null,
  options: BenchOptions,
  ticks: number,
  log: (line: string) => void,
  result: ManyClientsRun,
): Promise<void> {
  result.trickleClients = TRICKLE_CLIENTS;
  result.trickleSeconds = options.durationSeconds;
  const dir = await makeTempDir('doorman-bench-trickle', { forServiceUser: false });
  try {
    const scriptPath = path.join(dir.path, 'select-1.sql');
    await writeFile(scriptPath, TRICKLE_SCRIPT);
    const trickle = (phase: string): Promise<TrickleFigures> => {
      collectGarbage?.();
      return runTrickle(
        target,
        pid,
        { clients: TRICKLE_CLIENTS, ratePerSecond: TRICKLE_RATE, seconds: options.durationSeconds + 2, scriptPath, logPrefix: path.join(dir.path, phase) },
        ticks,
      );
    };
    result.afterLogins = await trickle('after-logins');
    log(`    ${TARGET_LABELS[name]}: trickle after logins: ${describe(result.afterLogins)}`);
    result.burstError = await runBurst(target, BURST_CLIENTS, BURST_SECONDS, scriptPath);
    result.warm = await trickle('warm');
    log(`    ${TARGET_LABELS[name]}: trickle after a ${BURST_SECONDS} s burst: ${describe(result.warm)}`);
  } finally {
    await dir.remove();
  }
}

/**
 * The same trickles straight to PostgreSQL, with no idle clients and no pooler: the reference for the
 * poolers' latency figures, from this machine at this time (pgbench's own schedule lag included).
 */
async function measureDirect(pgCluster: PgCluster, user: Credentials, options: BenchOptions, ticks: number, log: (line: string) => void): Promise<ManyClientsRun> {
  const result = emptyRun('direct', 0);
  await queryPhases('direct', pgCluster.target(user), null, options, ticks, log, result);
  return result;
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

  // Query phases: pgbench adds its trickle clients beside the idle ones, which stay untouched.
  await queryPhases(name, target, pooler.pid, options, ticks, log, result);
  result.rssEndBytes = await readRss(pooler.pid);
  holding = false;
  result.dropped = dropped.size;
  log(`    ${TARGET_LABELS[name]}: ${result.dropped} idle connections dropped`);

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
      maxClientConn: options.connections + 200,
      ...(options.workers === null ? {} : { workers: options.workers }),
    };
    const ticks = await ticksPerSecond();
    const results: ManyClientsResults = {
      startedAt: new Date().toISOString(),
      finishedAt: null,
      command,
      connections: options.connections,
      trickleSeconds: options.durationSeconds,
      trickleRate: TRICKLE_RATE,
      burstSeconds: BURST_SECONDS,
      environment: await collectEnvironment(pgCluster),
      setup: [
        describePostgres(),
        ...describePoolers(settings),
        `Idle clients: node-postgres ${await packageVersion('pg')} in the bench process, ${CONNECT_CONCURRENCY} logins in flight, as ${settings.user.user} (md5), no TLS`,
        `Trickle: pgbench -n -j 1 -c ${TRICKLE_CLIENTS} -R ${TRICKLE_RATE} -T ${options.durationSeconds + 2} -f (SELECT 1;) --log, the first and last second cut; burst: pgbench -c ${BURST_CLIENTS} -T ${BURST_SECONDS}, same script`,
        HEAP_QUIET
          ? 'The bench process (which holds the idle clients) runs without V8\'s memory reducer and collects its heap before each trickle, so that its own full GCs do not stall the pooler under test'
          : 'The bench process ran without --expose-gc --no-memory-reducer (npm run bench passes them): its own full GCs may stall the pooler during a trickle',
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
    if (options.targets.includes('direct')) {
      log('direct: the trickles straight to PostgreSQL, no idle clients');
      try {
        results.runs.push(await measureDirect(pgCluster, settings.user, options, ticks, log));
      } catch (err) {
        results.runs.push({ ...emptyRun('direct', 0), error: message(err) });
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
