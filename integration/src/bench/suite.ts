import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTempDir, SCRAM_USER } from '../harness/index.js';
import { directCapacity, isExpectedFailure, SELECT_ONLY_SCRIPT, selectedCells, WARMUP_CLIENTS, warmupCells } from './cells.js';
import { collectEnvironment, loadAverage, ticksPerSecond } from './environment.js';
import { raiseOwnOpenFiles } from './fd-limit.js';
import type { BenchOptions } from './options.js';
import { runPgbench, skippedRun, warmUp, type RunContext } from './run-pgbench.js';
import {
  describePoolers,
  describePostgres,
  initPgbenchTables,
  PG_MAX_CONNECTIONS,
  PG_RESERVED_CONNECTIONS,
  PGBENCH_SCALE,
  POOL_SIZE,
  startBenchDoorman,
  startBenchPgBouncer,
  startBenchPostgres,
  StopList,
  type Endpoint,
  type PoolerSettings,
} from './servers.js';
import { TARGET_LABELS, type BenchResults, type Cell, type CellResult, type TargetName, type TargetRun } from './types.js';

/** The pgbench matrix: every selected cell against every selected target, one after the other. */

/** Enough for 2000 pgbench clients, the poolers' sockets and --many-clients' 10,000. */
export const WANTED_OPEN_FILES = 65_536;
/** Lets TIME_WAIT sockets and server-side cleanup from one run settle before the next. */
const PAUSE_BETWEEN_RUNS_MS = 1000;

export interface SuiteIo {
  /** Progress lines. */
  log(line: string): void;
  /** Called after every cell with the results so far (raw.json survives an interrupted run). */
  checkpoint(results: BenchResults): Promise<void>;
}

/** Enough of a pooler to tell, after a run, whether it died during it. */
interface Pooler {
  running: () => boolean;
  output: () => string;
}

interface Targets {
  endpoints: Map<TargetName, Endpoint>;
  poolers: Map<TargetName, Pooler>;
}

function describeRun(run: TargetRun): string {
  if (run.status === 'skipped') return `skipped: ${run.reason ?? ''}`;
  const numbers = [
    `tps ${run.tps === null ? '–' : Math.round(run.tps)}`,
    `p99 ${run.p99Ms === null ? '–' : run.p99Ms.toFixed(2)} ms`,
    `cpu/tx ${run.cpuUsPerTx === null ? '–' : run.cpuUsPerTx.toFixed(1)} µs`,
    `kernel/tx ${run.sysUsPerTx === null ? '–' : run.sysUsPerTx.toFixed(1)} µs`,
    `switches/tx ${run.switchesPerTx === null ? '–' : run.switchesPerTx.toFixed(2)}`,
  ].join(', ');
  if (run.status === 'ok') return numbers;
  return `${run.expectedFailure ? 'FAILED (expected)' : 'FAILED'}: ${run.reason ?? ''} (${numbers})`;
}

export async function runSuite(options: BenchOptions, command: string, io: SuiteIo): Promise<BenchResults> {
  const cells = selectedCells(options.quick, options.cells);
  const stops = new StopList();
  try {
    const fd = await raiseOwnOpenFiles(WANTED_OPEN_FILES);
    if (fd.error) io.log(`open-files limit stays at ${fd.limit ? `${fd.limit.soft} soft / ${fd.limit.hard} hard` : 'unknown'}: ${fd.error}`);
    const openFilesSoft = fd.limit?.soft ?? 1024;

    io.log('starting PostgreSQL and loading pgbench tables (scale 10)');
    const pg = await startBenchPostgres();
    stops.add('PostgreSQL', () => pg.stop());
    await initPgbenchTables(pg);

    const settings: PoolerSettings = {
      user: SCRAM_USER,
      auth: 'scram-sha-256',
      maxClientConn: Math.max(1000, ...cells.map((c) => c.clients + 100)),
      ...(options.workers === null ? {} : { workers: options.workers }),
      ...(pg.certs ? { certs: pg.certs } : {}),
    };
    /** The targets of one pooler configuration: their endpoints, and how to tell that a pooler is still up. */
    const startTargets = async (poolerSettings: PoolerSettings, label: string): Promise<Targets> => {
      const t: Targets = { endpoints: new Map(), poolers: new Map() };
      if (options.targets.includes('doorman')) {
        const doorman = await startBenchDoorman(pg, poolerSettings);
        stops.add(`Doorman${label}`, () => doorman.stop());
        t.endpoints.set('doorman', { target: doorman.target(SCRAM_USER), poolerPid: doorman.pid });
        t.poolers.set('doorman', { running: () => doorman.running, output: () => doorman.output(5) });
      }
      if (options.targets.includes('pgbouncer')) {
        const pgbouncer = await startBenchPgBouncer(pg, poolerSettings);
        stops.add(`PgBouncer${label}`, () => pgbouncer.stop());
        t.endpoints.set('pgbouncer', { target: pgbouncer.target(SCRAM_USER), poolerPid: pgbouncer.pid });
        t.poolers.set('pgbouncer', { running: () => pgbouncer.process.running, output: () => pgbouncer.output(5) });
      }
      if (options.targets.includes('direct')) t.endpoints.set('direct', { target: pg.target(SCRAM_USER), poolerPid: null });
      return t;
    };
    // Server-TLS cells get poolers of their own, configured to reach PostgreSQL over TLS.
    const serverTlsSettings: PoolerSettings = { ...settings, serverTls: true };
    const plainTargets = cells.some((c) => !c.serverTls) ? await startTargets(settings, '') : null;
    const serverTlsTargets = cells.some((c) => c.serverTls) ? await startTargets(serverTlsSettings, ' (server TLS)') : null;

    const scriptDir = await makeTempDir('doorman-bench-script', { forServiceUser: false });
    stops.add('script dir', () => scriptDir.remove());
    const scriptPath = path.join(scriptDir.path, 'select-only.sql');
    await writeFile(scriptPath, SELECT_ONLY_SCRIPT);

    const ctx: RunContext = {
      durationSeconds: options.durationSeconds,
      scriptPath,
      ticksPerSecond: await ticksPerSecond(),
      openFilesSoft,
    };
    const capacity = directCapacity(PG_MAX_CONNECTIONS, PG_RESERVED_CONNECTIONS, POOL_SIZE * 2);
    const results: BenchResults = {
      startedAt: new Date().toISOString(),
      finishedAt: null,
      command,
      durationSeconds: options.durationSeconds,
      environment: await collectEnvironment(pg),
      setup: [
        `${describePostgres()}, pgbench tables at scale ${PGBENCH_SCALE}`,
        ...describePoolers(settings),
        ...(serverTlsTargets !== null ? describePoolers(serverTlsSettings).map((line) => `server-tls cells: ${line}`) : []),
        `pgbench connects as ${settings.user.user} over TCP to 127.0.0.1 with PGSSLMODE=disable, or require in TLS cells (and directly to PostgreSQL in server-TLS cells)`,
        options.warmupSeconds > 0
          ? `before the first cell of each kind (workload, protocol, --connect, TLS), every target runs the same pgbench at ${WARMUP_CLIENTS} clients for ${options.warmupSeconds} s, not measured`
          : 'no warm-up runs (--warmup 0): the first cell of each kind includes Doorman compiling that path',
      ],
      cells: [],
    };

    const warmups = options.warmupSeconds > 0 ? warmupCells(cells) : new Map<Cell, Cell>();
    let step = 0;
    const total = cells.length * options.targets.length;
    for (const cell of cells) {
      const cellResult: CellResult = { cell, runs: [] };
      results.cells.push(cellResult);
      const warmup = warmups.get(cell);
      if (warmup !== undefined) {
        const targets = (cell.serverTls ? serverTlsTargets : plainTargets) as Targets;
        for (const name of options.targets) {
          if (isExpectedFailure(warmup, name)) continue;
          io.log(`warm-up: ${warmup.id} → ${TARGET_LABELS[name]} (${options.warmupSeconds} s, not measured)`);
          const error = await warmUp(warmup, name, targets.endpoints.get(name) as Endpoint, ctx, options.warmupSeconds);
          if (error !== null) io.log(`    warm-up failed: ${error}`);
          await sleep(PAUSE_BETWEEN_RUNS_MS);
        }
      }
      for (const name of options.targets) {
        step++;
        const targets = (cell.serverTls ? serverTlsTargets : plainTargets) as Targets;
        const endpoint = targets.endpoints.get(name) as Endpoint;
        let run: TargetRun;
        if (name === 'direct' && cell.clients > capacity) {
          run = skippedRun(
            name,
            cell,
            options.durationSeconds,
            `PostgreSQL takes at most ${capacity} clients here (max_connections ${PG_MAX_CONNECTIONS} - ${PG_RESERVED_CONNECTIONS} reserved - ${POOL_SIZE * 2} pooler server connections)`,
          );
        } else {
          io.log(`[${step}/${total}] ${cell.id} → ${TARGET_LABELS[name]} (${options.durationSeconds} s)`);
          run = await runPgbench(cell, name, endpoint, ctx);
          const pooler = targets.poolers.get(name);
          if (pooler && !pooler.running()) {
            run = { ...run, status: 'failed', reason: `${run.reason ?? 'pgbench finished'}; ${TARGET_LABELS[name]} exited: ${pooler.output()}` };
          }
          await sleep(PAUSE_BETWEEN_RUNS_MS);
        }
        cellResult.runs.push(run);
        io.log(`    ${TARGET_LABELS[name]}: ${describeRun(run)}`);
      }
      await io.checkpoint(results);
    }
    results.finishedAt = new Date().toISOString();
    results.environment['load average at end'] = loadAverage();
    return results;
  } finally {
    const errors = await stops.stopAll();
    for (const error of errors) io.log(`while stopping: ${error}`);
  }
}
