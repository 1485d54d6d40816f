// `bash scripts/fleet.sh`: a whole Doorman fleet on loopback. A throwaway PostgreSQL 15, one etcd, two
// control-plane replicas (TLS with a dev CA, an admin token, encrypted secrets) and two data planes in
// agent mode; deploy/examples/pools.yaml is applied; Ctrl-C stops everything and removes the temp files.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { REPO_ROOT, formatExit, makeTempDir, startPostgres, type PgCluster, type TempDir } from './harness/index.js';
import { makeControlPlaneSecurity, startControlPlane, type ControlPlaneProcess, type ControlPlaneSecurity } from './harness/controlplane.js';
import { startEtcd, type EtcdProcess } from './harness/etcd.js';
import { DOORMANCTL_CLI, doormanctl, startAgentDataPlane, type AgentDataPlane } from './harness/fleet.js';

const EXAMPLE = path.join(REPO_ROOT, 'deploy', 'examples', 'pools.yaml');
const APP = { user: 'app', password: 'app-secret' };
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

let pg: PgCluster | undefined;
let etcd: EtcdProcess | undefined;
let security: ControlPlaneSecurity | undefined;
let work: TempDir | undefined;
const cps: ControlPlaneProcess[] = [];
const dps: AgentDataPlane[] = [];
let stopping = false;

async function shutdown(exitCode: number): Promise<never> {
  if (stopping) process.exit(exitCode);
  stopping = true;
  console.log('\nfleet: stopping data planes, control planes, etcd and PostgreSQL...');
  try {
    await Promise.all(dps.map((d) => d.remove()));
    await Promise.all(cps.map((c) => c.stop()));
    await etcd?.remove();
    await pg?.stop();
    await security?.remove();
    await work?.remove();
    console.log('fleet: stopped, temp files removed');
  } catch (err) {
    console.error(`fleet: cleanup failed: ${err instanceof Error ? err.message : String(err)}`);
    exitCode = exitCode || 1;
  }
  process.exit(exitCode);
}

/** The example with its pools pointed at the throwaway PostgreSQL. */
function examplePointedAt(server: PgCluster): string {
  const doc = parse(readFileSync(EXAMPLE, 'utf8')) as { pools: Record<string, Record<string, unknown>> };
  for (const pool of Object.values(doc.pools)) {
    pool.server_host = server.host;
    pool.server_port = server.port;
  }
  return stringify(doc);
}

/** Prefixes a child's log lines so four interleaved processes stay readable. */
function tagged(tag: string): (line: string) => void {
  return (line) => {
    if (!stopping) process.stdout.write(`${tag} ${line}\n`);
  };
}

async function main(): Promise<void> {
  // A second signal while stopping exits at once; the harness's exit hooks still kill the children.
  for (const sig of STOP_SIGNALS) process.on(sig, () => void shutdown(0));

  console.log('fleet: starting PostgreSQL 15, etcd and a dev CA...');
  [pg, etcd, security, work] = await Promise.all([
    startPostgres(),
    startEtcd({ keepAlive: true }),
    makeControlPlaneSecurity(),
    makeTempDir('doorman-fleet', { forServiceUser: false }),
  ]);
  await pg.query([`CREATE ROLE ${APP.user} LOGIN PASSWORD '${APP.password}';`, `ALTER DATABASE app OWNER TO ${APP.user};`].join('\n'));

  console.log(`fleet: etcd on ${etcd.endpoint}; starting two control-plane replicas...`);
  for (const id of ['cp-a', 'cp-b']) {
    cps.push(await startControlPlane({ etcd: etcd.endpoint, security, replicaId: id, keepAlive: true, onLine: tagged(`[${id}]`) }));
  }
  const addresses = cps.map((c) => c.address);

  console.log('fleet: starting two data planes in agent mode...');
  for (const [i, id] of ['dp-1', 'dp-2'].entries()) {
    dps.push(
      await startAgentDataPlane({
        nodeId: id,
        // Each data plane prefers a different replica; both fail over to the other.
        controlPlanes: i === 0 ? addresses : [...addresses].reverse(),
        security,
        labels: { cluster: 'local', datacenter: 'loopback' },
        keepAlive: true,
        onLine: tagged(`[${id}]`),
      }),
    );
  }

  const poolsFile = path.join(work.path, 'pools.yaml');
  await writeFile(poolsFile, examplePointedAt(pg));
  const target = { servers: addresses, security };
  // The first leader election takes a moment: retry while the replicas answer "no leader".
  let applied = await doormanctl(target, ['apply', '-f', poolsFile]);
  for (let i = 0; applied.code !== 0 && i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    applied = await doormanctl(target, ['apply', '-f', poolsFile]);
  }
  if (applied.code !== 0) throw new Error(`doormanctl apply failed (exit ${String(applied.code)}):\n${applied.stderr}`);
  await Promise.all(dps.map((d) => d.serving(30_000)));

  const s = security;
  const envFile = path.join(work.path, 'doormanctl.env');
  await writeFile(
    envFile,
    [
      `export DOORMAN_CONTROL_PLANE=${addresses.join(',')}`,
      `export DOORMAN_CA=${s.certs.caCert}`,
      `export DOORMAN_CERT=${s.admin.cert}`,
      `export DOORMAN_KEY=${s.admin.key}`,
      `export DOORMAN_TOKEN=${s.adminToken}`,
      `alias doormanctl='node ${DOORMANCTL_CLI}'`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const url = (d: AgentDataPlane): string => d.url(APP, 'app');
  console.log(
    [
      '',
      applied.stdout.trimEnd(),
      '',
      `The fleet is up: control planes ${addresses.join(' and ')}, data planes:`,
      ...dps.map((d) => `  ${d.nodeId}:  psql "${url(d)}"`),
      '',
      'In another shell:',
      `  source ${envFile}`,
      '  doormanctl status                      # per node: acked generation, NACKs, last seen, replica',
      '  doormanctl get pools                   # also: users, nodes, config (secrets shown as [set])',
      `  doormanctl diff -f ${poolsFile}    # after editing pool_size: the diff, exit 1`,
      `  doormanctl apply -f ${poolsFile}   # both data planes ACK within a fraction of a second`,
      '  doormanctl history; doormanctl rollback --to 1',
      '  doormanctl stats --per-node',
      `  kill ${cps[0].pid}    # stop replica cp-a: data planes fail over to cp-b, clients keep running`,
      '',
      'Ctrl-C stops everything and removes the temp files. Logs follow.',
      '',
    ].join('\n'),
  );

  // Killing a replica or a data plane is one of the things to try: report it and keep the rest running.
  for (const [i, cp] of cps.entries()) {
    void cp.exited.then((e) => {
      if (!stopping) console.log(`fleet: control plane cp-${'ab'[i]} (${cp.address}) exited (${formatExit(e)}); data planes fail over to the other replica`);
    });
  }
  for (const dp of dps) {
    void dp.exited.then((e) => {
      if (!stopping) console.log(`fleet: data plane ${dp.nodeId} exited (${formatExit(e)})`);
    });
  }
}

main().catch((err: unknown) => {
  console.error(`fleet: ${err instanceof Error ? err.message : String(err)}`);
  void shutdown(1);
});
