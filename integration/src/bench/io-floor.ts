import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, SCRAM_USER, startProcess } from '../harness/index.js';
import { makeCell, SELECT_ONLY_SCRIPT } from './cells.js';
import { ticksPerSecond } from './environment.js';
import { raiseOwnOpenFiles } from './fd-limit.js';
import type { FloorResults, FloorRun } from './io-floor-report.js';
import type { BenchOptions } from './options.js';
import { runPgbench } from './run-pgbench.js';
import { initPgbenchTables, startBenchDoorman, startBenchPgBouncer, startBenchPostgres, StopList, type Endpoint } from './servers.js';
import type { Protocol, TargetName } from './types.js';

/**
 * `--io-floor`: Doorman beside what Node's socket layer costs on its own. Select-only at 10 clients, simple and
 * extended, against PgBouncer, Doorman (one shard per core; one shard; and its shards on Node's sockets
 * instead of their own epoll loops, DOORMAN_SHARD_IO=node) and two bare relays (relay.ts: no
 * pooling, bytes passed untouched). Rounds go through every target in turn, so drift on a shared machine
 * reaches all of them alike.
 */

const FLOOR_ROUNDS = 2;
const FLOOR_CLIENTS = 10;
const FLOOR_PROTOCOLS: readonly Protocol[] = ['simple', 'extended'];

interface FloorTarget {
  label: string;
  /** What pgbench's expectations are judged as: the relays are direct connections through a pipe. */
  kind: TargetName;
  endpoint: Endpoint;
}

async function startRelay(mode: 'data' | 'onread', pgPort: number, stops: StopList): Promise<Endpoint & { port: number }> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'relay.js');
  const child = startProcess(process.execPath, [script, mode, String(pgPort)], { name: `relay (${mode})` });
  stops.add(`relay (${mode})`, () => child.stop());
  const port = Number(await child.waitForLine(/^\d+$/));
  const pid = child.child.pid;
  if (pid === undefined) throw new Error(`relay (${mode}) did not start`);
  return { port, poolerPid: pid, target: { host: '127.0.0.1', port, user: SCRAM_USER.user, password: SCRAM_USER.password, database: 'app' } };
}

export async function runIoFloor(options: BenchOptions, command: string, log: (line: string) => void): Promise<FloorResults> {
  const stops = new StopList();
  const scriptDir = await makeTempDir('doorman-bench-script', { forServiceUser: false });
  try {
    const fd = await raiseOwnOpenFiles(1024);
    const scriptPath = path.join(scriptDir.path, 'select-only.sql');
    await writeFile(scriptPath, SELECT_ONLY_SCRIPT);
    log('starting PostgreSQL and loading pgbench tables (scale 10)');
    const pg = await startBenchPostgres();
    stops.add('PostgreSQL', () => pg.stop());
    await initPgbenchTables(pg);
    const settings = { user: SCRAM_USER, auth: 'scram-sha-256' as const, maxClientConn: 1000 };
    const pgbouncer = await startBenchPgBouncer(pg, settings);
    stops.add('PgBouncer', () => pgbouncer.stop());
    const doorman = await startBenchDoorman(pg, settings);
    stops.add('Doorman', () => doorman.stop());
    const oneShard = await startBenchDoorman(pg, { ...settings, workers: 1 });
    stops.add('Doorman (workers 1)', () => oneShard.stop());
    const nodeSockets = await startBenchDoorman(pg, settings, { DOORMAN_SHARD_IO: 'node' });
    stops.add('Doorman (Node sockets)', () => nodeSockets.stop());
    const targets: FloorTarget[] = [
      { label: 'PgBouncer', kind: 'pgbouncer', endpoint: { target: pgbouncer.target(SCRAM_USER), poolerPid: pgbouncer.pid } },
      { label: 'Doorman', kind: 'doorman', endpoint: { target: doorman.target(SCRAM_USER), poolerPid: doorman.pid } },
      { label: 'Doorman, workers 1', kind: 'doorman', endpoint: { target: oneShard.target(SCRAM_USER), poolerPid: oneShard.pid } },
      { label: 'Doorman, Node sockets', kind: 'doorman', endpoint: { target: nodeSockets.target(SCRAM_USER), poolerPid: nodeSockets.pid } },
      { label: 'relay, data events', kind: 'direct', endpoint: await startRelay('data', pg.port, stops) },
      { label: 'relay, onread', kind: 'direct', endpoint: await startRelay('onread', pg.port, stops) },
    ];
    const ctx = { durationSeconds: options.durationSeconds, scriptPath, ticksPerSecond: await ticksPerSecond(), openFilesSoft: fd.limit?.soft ?? 1024 };
    const runs: FloorRun[] = [];
    for (let round = 1; round <= FLOOR_ROUNDS; round++) {
      for (const protocol of FLOOR_PROTOCOLS) {
        const cell = makeCell('select-only', protocol, FLOOR_CLIENTS);
        for (const t of targets) {
          log(`round ${round}: ${cell.id} → ${t.label} (${options.durationSeconds} s)`);
          const run = await runPgbench(cell, t.kind, t.endpoint, ctx);
          runs.push({ label: t.label, protocol, round, status: run.status, reason: run.reason, tps: run.tps, cpuUsPerTx: run.cpuUsPerTx });
          log(`    tps ${run.tps === null ? '–' : Math.round(run.tps)}, cpu/tx ${run.cpuUsPerTx === null ? '–' : run.cpuUsPerTx.toFixed(1)} µs`);
        }
      }
    }
    return { command, durationSeconds: options.durationSeconds, clients: FLOOR_CLIENTS, labels: targets.map((t) => t.label), runs };
  } finally {
    const errors = await stops.stopAll();
    await scriptDir.remove();
    for (const e of errors) log(`stopping: ${e}`);
  }
}
