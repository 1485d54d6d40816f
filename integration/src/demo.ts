// `npm start [-- config.yaml]`: without arguments, a throwaway PostgreSQL 15 with
// a Doorman in front of it; with arguments, the data plane run on them.
import { spawn } from 'node:child_process';
import {
  DOORMAN_CLI,
  REPO_ROOT,
  doormanConfigFor,
  formatExit,
  onExit,
  startDoorman,
  startPostgres,
  type Credentials,
  type DoormanProcess,
  type PgCluster,
} from './harness/index.js';

const APP: Credentials = { user: 'app', password: 'app-secret' };
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Runs the data plane on the caller's arguments, relaying signals; exits with its status. */
function runDataPlane(args: string[]): void {
  // Own process group, so a terminal Ctrl-C reaches Doorman once (relayed by us), not twice.
  const child = spawn(process.execPath, [DOORMAN_CLI, ...args], { stdio: 'inherit', cwd: REPO_ROOT, detached: true });
  onExit(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  for (const sig of STOP_SIGNALS) process.on(sig, () => child.kill(sig));
  child.once('error', (err) => {
    console.error(`demo: cannot start ${DOORMAN_CLI}: ${err.message}`);
    process.exit(1);
  });
  child.once('exit', (code, signal) => process.exit(code ?? (signal === 'SIGINT' ? 130 : 1)));
}

async function runThrowaway(): Promise<void> {
  let pg: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;
  let stopping = false;

  const shutdown = async (exitCode: number): Promise<never> => {
    if (stopping) process.exit(exitCode);
    stopping = true;
    console.log('\ndemo: stopping Doorman and PostgreSQL...');
    try {
      if (doorman?.running) {
        const exit = await doorman.stop();
        console.log(`demo: Doorman stopped (${formatExit(exit)})`);
      }
      await pg?.stop();
      console.log('demo: PostgreSQL stopped, temp files removed');
    } catch (err) {
      console.error(`demo: cleanup failed: ${err instanceof Error ? err.message : String(err)}`);
      exitCode = exitCode || 1;
    }
    process.exit(exitCode);
  };
  // A second signal while stopping exits at once; the harness's exit hooks still kill the children.
  for (const sig of STOP_SIGNALS) process.on(sig, () => void shutdown(0));

  console.log('demo: starting a throwaway PostgreSQL 15 cluster...');
  pg = await startPostgres();
  await pg.query([
    `CREATE ROLE ${APP.user} LOGIN PASSWORD '${APP.password}';`,
    `ALTER DATABASE app OWNER TO ${APP.user};`,
  ].join('\n'));

  const config = doormanConfigFor(pg, {
    database: 'app',
    users: [APP],
    poolMode: 'transaction',
    poolSize: 10,
    // Doorman sees a pipe (we forward its output), so ask for the human format when a person watches.
    general: process.stdout.isTTY ? { log_format: 'pretty' } : {},
  });
  console.log(`demo: PostgreSQL on 127.0.0.1:${pg.port}; starting Doorman...`);
  doorman = await startDoorman(config, {
    keepAlive: true,
    onLine: (line) => process.stdout.write(`${line}\n`),
  });
  const { port } = doorman;
  const appUrl = doorman.connectionString(APP.user, APP.password, 'app');
  console.log([
    '',
    `Doorman is listening on 127.0.0.1:${port} (pool "app", transaction mode, pool_size 10).`,
    '',
    `  connect:  psql "${appUrl}"`,
    `  bench:    PGPASSWORD=${APP.password} pgbench -h 127.0.0.1 -p ${port} -U ${APP.user} -i app`,
    `            PGPASSWORD=${APP.password} pgbench -h 127.0.0.1 -p ${port} -U ${APP.user} -S -c 10 -T 10 app`,
    `  direct:   psql "${pg.superuserUrl('app')}"   (PostgreSQL itself, bypassing Doorman)`,
    `  config:   ${doorman.configPath}`,
    '',
    'Doorman logs follow. Ctrl-C stops Doorman and PostgreSQL and removes the temp files.',
    '',
  ].join('\n'));

  const exit = await doorman.exited;
  if (!stopping) {
    console.error(`demo: Doorman exited unexpectedly (${formatExit(exit)})`);
    await shutdown(1);
  }
}

const args = process.argv.slice(2);
if (args.length > 0) {
  runDataPlane(args);
} else {
  runThrowaway().catch((err: unknown) => {
    console.error(`demo: ${err instanceof Error ? err.message : String(err)}`);
    // The harness's exit hooks stop whatever did start.
    process.exit(1);
  });
}
