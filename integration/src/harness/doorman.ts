import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { ClientTarget } from './clients.js';
import { freePort, waitForPort } from './ports.js';
import type { Credentials } from './postgres.js';
import {
  formatExit,
  makeTempDir,
  run,
  startProcess,
  type ExitInfo,
  type ManagedProcess,
  type OutputStream,
  type RunResult,
  type TempDir,
} from './processes.js';

/** integration/dist/harness/doorman.js -> repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The data plane entry point; DOORMAN_CLI in the environment points the suite at another build. */
export const DOORMAN_CLI = process.env.DOORMAN_CLI ?? path.join(REPO_ROOT, 'dataplane', 'dist', 'cli.js');

/** Admin account written by doormanConfigFor(). */
export const DOORMAN_ADMIN: Credentials = { user: 'admin', password: 'admin-secret' };
/** Virtual database that serves the admin console (SHOW POOLS, ...); `pgbouncer` is an alias. */
export const DOORMAN_ADMIN_DB = 'doorman';

export interface DoormanUserConfig {
  username: string;
  password: string;
  pool_size?: number;
  server_username?: string;
  server_password?: string;
  [key: string]: unknown;
}

export interface DoormanPoolConfig {
  server_host: string;
  server_port: number;
  pool_mode?: 'transaction' | 'session';
  users: DoormanUserConfig[];
  [key: string]: unknown;
}

export interface DoormanGeneralConfig {
  host?: string;
  /** 0 or absent: the harness picks a free port. */
  port?: number;
  admin_username?: string;
  admin_password?: string;
  /** Inline pg_hba.conf text. */
  pg_hba?: string;
  [key: string]: unknown;
}

export interface DoormanConfig {
  general: DoormanGeneralConfig;
  pools: Record<string, DoormanPoolConfig>;
  [key: string]: unknown;
}

export interface DoormanConfigOptions {
  /** Pool (and server database) name. Default "app". */
  database?: string;
  poolMode?: 'transaction' | 'session';
  poolSize?: number;
  users?: readonly Credentials[];
  /** Default: scram-sha-256 for every client from 127.0.0.1. */
  hba?: string;
  port?: number;
  /** Merged over the generated `general` section. */
  general?: DoormanGeneralConfig;
}

/** A one-pool config in front of `server` (a PgCluster or any host/port). */
export function doormanConfigFor(server: { host: string; port: number }, options: DoormanConfigOptions = {}): DoormanConfig {
  const users = options.users ?? [];
  return {
    general: {
      host: '127.0.0.1',
      port: options.port ?? 0,
      admin_username: DOORMAN_ADMIN.user,
      admin_password: DOORMAN_ADMIN.password,
      pg_hba: options.hba ?? 'host all all 127.0.0.1/32 scram-sha-256\n',
      ...options.general,
    },
    pools: {
      [options.database ?? 'app']: {
        server_host: server.host,
        server_port: server.port,
        pool_mode: options.poolMode ?? 'transaction',
        users: users.map((u) => ({ username: u.user, password: u.password, pool_size: options.poolSize ?? 10 })),
      },
    },
  };
}

export interface StartDoormanOptions {
  /** Where the YAML goes; default a fresh temp dir removed by stop()/kill(). */
  dir?: string;
  /** Bound on start-up (until the port accepts connections). Default 20 s. */
  readyTimeoutMs?: number;
  env?: Record<string, string | undefined>;
  /** Called for every stdout/stderr line (e.g. to forward logs). */
  onLine?: (line: string, stream: OutputStream) => void;
  /** Keep the event loop alive while Doorman runs (the demo); tests leave it off. */
  keepAlive?: boolean;
  /** How many log lines to keep. Default 20000. */
  ringSize?: number;
}

const BIND_ATTEMPTS = 3;

function withListenAddress(config: DoormanConfig, port: number): DoormanConfig {
  const copy = structuredClone(config);
  copy.general = { ...copy.general, host: copy.general.host ?? '127.0.0.1', port };
  return copy;
}

async function writeYaml(file: string, config: unknown): Promise<void> {
  await writeFile(file, typeof config === 'string' ? config : stringify(config), { mode: 0o600 });
}

export class DoormanProcess {
  readonly dir: string;
  readonly configPath: string;
  readonly process: ManagedProcess;
  private configValue: DoormanConfig;
  private readonly tempDir: TempDir | undefined;

  constructor(process: ManagedProcess, config: DoormanConfig, configPath: string, tempDir: TempDir | undefined) {
    this.process = process;
    this.configValue = config;
    this.configPath = configPath;
    this.dir = path.dirname(configPath);
    this.tempDir = tempDir;
  }

  /** The config as written (host and port filled in). */
  get config(): DoormanConfig {
    return this.configValue;
  }

  get host(): string {
    return this.configValue.general.host ?? '127.0.0.1';
  }

  get port(): number {
    return this.configValue.general.port ?? 0;
  }

  get pid(): number {
    return this.process.pid;
  }

  get running(): boolean {
    return this.process.running;
  }

  get exited(): Promise<ExitInfo> {
    return this.process.exited;
  }

  /** Captured stdout+stderr lines, oldest first. */
  logs(): string[] {
    return this.process.lines();
  }

  /** The captured lines that parse as JSON objects (Doorman logs one per line). */
  jsonLogs(): Record<string, unknown>[] {
    return this.process.jsonLines();
  }

  /** Last lines for assertion messages. */
  output(maxLines = 60): string {
    return this.process.output(maxLines);
  }

  waitForLog(match: RegExp | ((line: string) => boolean), timeoutMs = 10_000): Promise<string> {
    return this.process.waitForLine(match, timeoutMs);
  }

  connectionString(user: string, password: string, db = 'app'): string {
    return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${this.host}:${this.port}/${encodeURIComponent(db)}`;
  }

  target(credentials: Credentials, database = 'app'): ClientTarget {
    return { host: this.host, port: this.port, user: credentials.user, password: credentials.password, database };
  }

  /**
   * SIGHUP. With a config, first rewrites the file (keeping this listen
   * address unless the new config sets one).
   */
  async reload(config?: DoormanConfig): Promise<void> {
    if (config) {
      const next = structuredClone(config);
      next.general = { ...next.general, host: next.general.host ?? this.host, port: next.general.port || this.port };
      await writeYaml(this.configPath, next);
      this.configValue = next;
    }
    if (!this.process.signal('SIGHUP')) throw new Error(`doorman is not running (${this.describeExit()})`);
  }

  /**
   * Graceful: SIGTERM, SIGKILL after `timeoutMs`. Removes the harness temp dir. Throws if Doorman logged a
   * fault of its own code on the way (an exception caught per connection, a server connection its pool
   * lost): whatever a test did, those are bugs.
   */
  async stop(timeoutMs = 15_000): Promise<ExitInfo> {
    let exit: ExitInfo;
    try {
      exit = await this.process.stop({ signal: 'SIGTERM', timeoutMs });
    } finally {
      await this.tempDir?.remove();
    }
    const faults = this.jsonLogs().filter((l) => typeof l.msg === 'string' && INTERNAL_FAULTS.test(l.msg));
    if (faults.length > 0) throw new Error(`Doorman logged ${faults.length} internal fault(s):\n${faults.slice(0, 5).map((l) => JSON.stringify(l)).join('\n')}`);
    return exit;
  }

  /** Sends `signal` (default SIGKILL; SIGINT for the fast shutdown) and waits, SIGKILL after 10 s. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo> {
    try {
      return await this.process.stop({ signal, timeoutMs: 10_000 });
    } finally {
      await this.tempDir?.remove();
    }
  }

  check(config: object | string): Promise<RunResult> {
    return checkDoormanConfig(config);
  }

  private describeExit(): string {
    const info = this.process.exitInfo;
    return info ? formatExit(info) : 'running';
  }
}

/** What Doorman logs when its own code failed (see stop()). */
const INTERNAL_FAULTS = /^(internal error; closing|a server connection was lost by its pool|error in the shard event loop)/;

/**
 * Writes `config` as YAML and starts `node dataplane/dist/cli.js <file>`;
 * resolves once the listen port accepts TCP connections. A zero/absent
 * general.port gets a free port (retried if the bind races another process).
 */
export async function startDoorman(config: DoormanConfig, options: StartDoormanOptions = {}): Promise<DoormanProcess> {
  const tempDir = options.dir ? undefined : await makeTempDir('doorman', { forServiceUser: false });
  const dir = options.dir ?? (tempDir as TempDir).path;
  const configPath = path.join(dir, 'doorman.yaml');
  const pickPort = !config.general.port;
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  try {
    for (let attempt = 1; ; attempt++) {
      const effective = withListenAddress(config, pickPort ? await freePort() : (config.general.port as number));
      await writeYaml(configPath, effective);
      const child = startProcess(process.execPath, [DOORMAN_CLI, configPath], {
        name: `doorman:${effective.general.port ?? 0}`,
        cwd: REPO_ROOT,
        env: options.env ?? {},
        ringSize: options.ringSize ?? 20_000,
        ...(options.onLine ? { onLine: options.onLine } : {}),
        ...(options.keepAlive ? { keepAlive: true } : {}),
      });
      const doorman = new DoormanProcess(child, effective, configPath, tempDir);
      try {
        await waitForPort(doorman.port, doorman.host, readyTimeoutMs, { abort: child.exited });
        return doorman;
      } catch (err) {
        if (child.running) await child.stop({ signal: 'SIGKILL', timeoutMs: 5_000 });
        const bindFailed = /EADDRINUSE|address already in use/i.test(child.output(200));
        if (pickPort && bindFailed && attempt < BIND_ATTEMPTS) continue;
        const reason = err instanceof Error ? err.message : String(err);
        throw new Error(`doorman did not start: ${reason}\n--- doorman output ---\n${child.output()}`);
      }
    }
  } catch (err) {
    await tempDir?.remove();
    throw err;
  }
}

/**
 * `node dataplane/dist/cli.js check <file>`: a config object is written as
 * YAML, a string verbatim (for malformed-YAML cases).
 */
export async function checkDoormanConfig(config: object | string, timeoutMs = 30_000): Promise<RunResult> {
  const tempDir = await makeTempDir('doorman-check', { forServiceUser: false });
  try {
    const file = path.join(tempDir.path, 'doorman.yaml');
    await writeYaml(file, config);
    return await run(process.execPath, [DOORMAN_CLI, 'check', file], { cwd: REPO_ROOT, timeoutMs });
  } finally {
    await tempDir.remove();
  }
}
