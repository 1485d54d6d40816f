/**
 * A Doorman fleet on loopback for tests and the local-fleet script: data planes in agent mode
 * (`doorman --control-plane ...`, config and secrets from the control plane, last-known-good in a state
 * dir) and doormanctl runs against the control-plane replicas.
 */
import path from 'node:path';
import { stringify } from 'yaml';
import type { ControlPlaneSecurity } from './controlplane.js';
import { DOORMAN_CLI, REPO_ROOT } from './doorman.js';
import { freePort } from './ports.js';
import type { Credentials, PgCluster } from './postgres.js';
import { makeTempDir, run, startProcess, type ExitInfo, type ManagedProcess, type OutputStream, type RunResult, type TempDir } from './processes.js';

/** doormanctl's entry point; DOORMANCTL_CLI in the environment points the suite at another build. */
export const DOORMANCTL_CLI = process.env.DOORMANCTL_CLI ?? path.join(REPO_ROOT, 'controlplane', 'dist', 'cli', 'main.js');

export interface AgentDataPlaneOptions {
  nodeId: string;
  /** Control-plane replica addresses (host:port). */
  controlPlanes: readonly string[];
  /** TLS with the data-plane client certificate; without it, --insecure. */
  security?: ControlPlaneSecurity;
  /** Where the last accepted config lives; default a fresh temp dir. Pass the same one to a restart. */
  stateDir?: string;
  /** Listen port (--listen); default a free one. */
  port?: number;
  /** --initial-wait; default the CLI's. */
  initialWait?: string;
  labels?: Record<string, string>;
  logLevel?: string;
  onLine?: (line: string, stream: OutputStream) => void;
  keepAlive?: boolean;
}

export class AgentDataPlane {
  readonly host = '127.0.0.1';

  constructor(
    readonly process: ManagedProcess,
    readonly options: AgentDataPlaneOptions,
    readonly port: number,
    readonly stateDir: string,
    private readonly tempDir: TempDir | undefined,
  ) {}

  get nodeId(): string {
    return this.options.nodeId;
  }

  get running(): boolean {
    return this.process.running;
  }

  get exited(): Promise<ExitInfo> {
    return this.process.exited;
  }

  /** postgres:// URL through this data plane. */
  url(user: Credentials, database: string): string {
    return `postgres://${encodeURIComponent(user.user)}:${encodeURIComponent(user.password)}@${this.host}:${this.port}/${database}`;
  }

  output(maxLines = 60): string {
    return this.process.output(maxLines);
  }

  /** The JSON log records (pino, one per line) whose msg matches. */
  logs(msg: string | RegExp): Record<string, unknown>[] {
    return this.process
      .jsonLines()
      .filter((rec) => typeof rec.msg === 'string' && (typeof msg === 'string' ? rec.msg === msg : msg.test(rec.msg)));
  }

  waitForLog(msg: string, timeoutMs = 20_000): Promise<string> {
    return this.process.waitForLine((l) => l.includes(`"msg":${JSON.stringify(msg)}`), timeoutMs);
  }

  /** Resolves once the data plane listens (its first config is in force). */
  async serving(timeoutMs = 20_000): Promise<void> {
    await this.waitForLog('listening', timeoutMs);
  }

  stop(timeoutMs = 10_000): Promise<ExitInfo> {
    return this.process.stop({ signal: 'SIGTERM', timeoutMs });
  }

  /** Stops the process and removes the state dir if the harness made it. */
  async remove(): Promise<void> {
    try {
      if (this.process.running) await this.process.stop({ signal: 'SIGKILL', timeoutMs: 5_000 });
    } finally {
      await this.tempDir?.remove();
    }
  }
}

/** The command line of an agent-mode data plane (without the node executable). */
export function agentArgs(options: AgentDataPlaneOptions, port: number, stateDir: string): string[] {
  const args = [DOORMAN_CLI, '--control-plane', options.controlPlanes.join(','), '--node-id', options.nodeId];
  args.push('--listen', `127.0.0.1:${port}`, '--state-dir', stateDir, '-F', 'json', '-l', options.logLevel ?? 'info');
  const s = options.security;
  if (s) args.push('--ca', s.certs.caCert, '--cert', s.dataPlane.cert, '--key', s.dataPlane.key);
  else args.push('--insecure');
  if (options.initialWait !== undefined) args.push('--initial-wait', options.initialWait);
  const labels = Object.entries(options.labels ?? {}).map(([k, v]) => `${k}=${v}`);
  if (labels.length > 0) args.push('--labels', labels.join(','));
  return args;
}

/** Starts `node dataplane/dist/cli.js --control-plane ...`; it serves once a config arrives (see serving()). */
export async function startAgentDataPlane(options: AgentDataPlaneOptions): Promise<AgentDataPlane> {
  const tempDir = options.stateDir === undefined ? await makeTempDir('doorman-dp-state', { forServiceUser: false }) : undefined;
  const stateDir = options.stateDir ?? (tempDir as TempDir).path;
  const port = options.port ?? (await freePort());
  const child = startProcess(process.execPath, agentArgs(options, port, stateDir), {
    name: `doorman-agent:${options.nodeId}`,
    cwd: REPO_ROOT,
    ringSize: 20_000,
    ...(options.onLine ? { onLine: options.onLine } : {}),
    ...(options.keepAlive ? { keepAlive: true } : {}),
  });
  return new AgentDataPlane(child, options, port, stateDir, tempDir);
}

export interface DoormanctlTarget {
  servers: readonly string[];
  security?: ControlPlaneSecurity;
}

/** The global flags reaching `target`: TLS with doormanctl's client certificate and the token, or --insecure. */
export function doormanctlFlags(target: DoormanctlTarget): string[] {
  const flags = ['--server', target.servers.join(',')];
  const s = target.security;
  if (s) flags.push('--ca', s.certs.caCert, '--cert', s.admin.cert, '--key', s.admin.key, '--token-file', s.adminTokenFile);
  else flags.push('--insecure');
  return flags;
}

/** Runs doormanctl to completion (bounded); never rejects for a non-zero exit. */
export function doormanctl(target: DoormanctlTarget, args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, [DOORMANCTL_CLI, ...doormanctlFlags(target), ...args], {
    cwd: REPO_ROOT,
    timeoutMs: options.timeoutMs ?? 30_000,
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
}

export interface FleetPoolsOptions {
  /** Pool (database) name; default app. */
  database?: string;
  users: readonly Credentials[];
  poolSize?: number;
  /** Merged into general. */
  general?: Record<string, unknown>;
}

/** A pools.yaml for `pg` in the data plane's schema (as doormanctl apply takes it). */
export function fleetPoolsYaml(pg: PgCluster, options: FleetPoolsOptions): string {
  const database = options.database ?? 'app';
  return stringify({
    general: {
      host: '127.0.0.1',
      port: 6432,
      pg_hba: 'host all all 127.0.0.1/32 scram-sha-256\n',
      server_tls_mode: 'disable',
      ...options.general,
    },
    pools: {
      [database]: {
        server_host: pg.host,
        server_port: pg.port,
        pool_mode: 'transaction',
        users: options.users.map((u) => ({ username: u.user, password: u.password, pool_size: options.poolSize ?? 5 })),
      },
    },
  });
}
