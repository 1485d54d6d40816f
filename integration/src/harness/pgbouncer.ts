import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ClientTarget } from './clients.js';
import { freePort, waitForPort } from './ports.js';
import { MD5_USER, SCRAM_USER, type Credentials } from './postgres.js';
import { chownToServiceUser, makeTempDir, startProcess, type ManagedProcess, type TempDir } from './processes.js';

export const PGBOUNCER_BIN = '/usr/sbin/pgbouncer';

export interface StartPgBouncerOptions {
  /** The PostgreSQL server to pool (a PgCluster or any host/port). */
  pg: { host: string; port: number };
  poolMode?: 'session' | 'transaction' | 'statement';
  /** default_pool_size. Default 20. */
  poolSize?: number;
  /** Accounts in userlist.txt (plaintext, so PgBouncer can do SCRAM to the server). Default scram_user and md5_user. */
  users?: readonly Credentials[];
  /** Default 1000. */
  maxClientConn?: number;
  /** Extra or overriding [pgbouncer] settings. */
  settings?: Record<string, string>;
  /** Default 15 s. */
  readyTimeoutMs?: number;
}

const HOST = '127.0.0.1';
const BIND_ATTEMPTS = 3;

function userlistLine(user: Credentials): string {
  const quote = (value: string): string => `"${value.replace(/"/g, '""')}"`;
  return `${quote(user.user)} ${quote(user.password)}`;
}

export class PgBouncerProcess {
  readonly host = HOST;
  readonly port: number;
  readonly dir: string;
  readonly process: ManagedProcess;
  private readonly tempDir: TempDir;

  constructor(process: ManagedProcess, port: number, tempDir: TempDir) {
    this.process = process;
    this.port = port;
    this.tempDir = tempDir;
    this.dir = tempDir.path;
  }

  get pid(): number {
    return this.process.pid;
  }

  output(maxLines = 60): string {
    return this.process.output(maxLines);
  }

  connectionString(user: string, password: string, db = 'app'): string {
    return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${HOST}:${this.port}/${encodeURIComponent(db)}`;
  }

  target(credentials: Credentials, database = 'app'): ClientTarget {
    return { host: HOST, port: this.port, user: credentials.user, password: credentials.password, database };
  }

  /** SIGTERM (immediate shutdown in PgBouncer), then removes its temp dir. */
  async stop(): Promise<void> {
    try {
      await this.process.stop({ signal: 'SIGTERM', timeoutMs: 10_000 });
    } finally {
      await this.tempDir.remove();
    }
  }
}

/** PgBouncer (the benchmark peer) in the foreground on a free 127.0.0.1 port, as the postgres user when root. */
export async function startPgBouncer(options: StartPgBouncerOptions): Promise<PgBouncerProcess> {
  const tempDir = await makeTempDir('doorman-pgbouncer');
  try {
    const authFile = path.join(tempDir.path, 'userlist.txt');
    const users = options.users ?? [SCRAM_USER, MD5_USER];
    await writeFile(authFile, users.map(userlistLine).join('\n') + '\n', { mode: 0o600 });
    await chownToServiceUser(authFile);
    const iniFile = path.join(tempDir.path, 'pgbouncer.ini');

    for (let attempt = 1; ; attempt++) {
      const port = await freePort(HOST);
      const settings: Record<string, string> = {
        listen_addr: HOST,
        listen_port: String(port),
        // Empty disables the unix socket (the default /tmp one would collide between instances).
        unix_socket_dir: '',
        auth_type: 'scram-sha-256',
        auth_file: authFile,
        pool_mode: options.poolMode ?? 'transaction',
        default_pool_size: String(options.poolSize ?? 20),
        max_client_conn: String(options.maxClientConn ?? 1000),
        // JDBC and some drivers send these; PgBouncer rejects unknown startup parameters.
        ignore_startup_parameters: 'extra_float_digits,options',
        log_connections: '0',
        log_disconnections: '0',
        ...options.settings,
      };
      const ini = [
        '[databases]',
        `* = host=${options.pg.host} port=${options.pg.port}`,
        '',
        '[pgbouncer]',
        ...Object.entries(settings).map(([key, value]) => `${key} = ${value}`),
        '',
      ].join('\n');
      await writeFile(iniFile, ini, { mode: 0o600 });
      await chownToServiceUser(iniFile);

      const child = startProcess(PGBOUNCER_BIN, [iniFile], {
        name: `pgbouncer:${port}`,
        asServiceUser: true,
        cwd: tempDir.path,
      });
      try {
        await waitForPort(port, HOST, options.readyTimeoutMs ?? 15_000, { abort: child.exited });
        return new PgBouncerProcess(child, port, tempDir);
      } catch (err) {
        if (child.running) await child.stop({ signal: 'SIGKILL', timeoutMs: 5_000 });
        if (/Address already in use/i.test(child.output(200)) && attempt < BIND_ATTEMPTS) continue;
        const reason = err instanceof Error ? err.message : String(err);
        throw new Error(`pgbouncer did not start: ${reason}\n--- pgbouncer output ---\n${child.output()}`);
      }
    }
  } catch (err) {
    await tempDir.remove();
    throw err;
  }
}
