import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './ports.js';
import {
  chownToServiceUser,
  formatExit,
  makeTempDir,
  run,
  runChecked,
  startProcess,
  type ManagedProcess,
  type RunResult,
  type TempDir,
} from './processes.js';
import { makeTestCerts, type TestCerts } from './tls.js';
import type { ClientTarget } from './clients.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

/** Bootstrap superuser (password auth over TCP, trust over the unix socket). */
export const SUPERUSER: Credentials = { user: 'postgres', password: 'postgres-secret' };
/** Stored as SCRAM-SHA-256; authenticates with scram-sha-256 over TCP. */
export const SCRAM_USER: Credentials = { user: 'scram_user', password: 'scram-secret' };
/** Stored as an MD5 hash; authenticates with md5 over TCP. */
export const MD5_USER: Credentials = { user: 'md5_user', password: 'md5-secret' };
/** Owned by SCRAM_USER; MD5_USER may connect and create objects in it. */
export const APP_DB = 'app';

export interface StartPostgresOptions {
  /** ssl=on with a fresh CA + server certificate (see `certs`), plus hostssl rules. */
  ssl?: boolean;
  /** postgresql.conf settings, applied after (and so overriding) the harness defaults. */
  settings?: Record<string, string>;
  /** Replaces the whole generated pg_hba.conf. */
  hba?: string;
  /** Bound on initdb + start-up. Default 60 s. */
  startTimeoutMs?: number;
}

const HOST = '127.0.0.1';
const BIND_ATTEMPTS = 3;

function quoteConf(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function defaultHba(ssl: boolean): string {
  const rules = [
    'local all all trust',
    ...(ssl ? [`hostssl all ${MD5_USER.user} ${HOST}/32 md5`, `hostssl all all ${HOST}/32 scram-sha-256`] : []),
    // "host" also matches TLS connections, so plain TCP and TLS both work when ssl is on.
    `host all ${MD5_USER.user} ${HOST}/32 md5`,
    `host all all ${HOST}/32 scram-sha-256`,
  ];
  return rules.join('\n') + '\n';
}

function bootstrapSql(): string {
  return [
    "SET password_encryption = 'scram-sha-256';",
    `CREATE ROLE ${SCRAM_USER.user} LOGIN PASSWORD '${SCRAM_USER.password}';`,
    "SET password_encryption = 'md5';",
    `CREATE ROLE ${MD5_USER.user} LOGIN PASSWORD '${MD5_USER.password}';`,
    'RESET password_encryption;',
    `CREATE DATABASE ${APP_DB} OWNER ${SCRAM_USER.user};`,
    `GRANT CONNECT, CREATE, TEMPORARY ON DATABASE ${APP_DB} TO ${MD5_USER.user};`,
    `\\connect ${APP_DB}`,
    // PostgreSQL 15 no longer lets every role create in public.
    `GRANT USAGE, CREATE ON SCHEMA public TO ${MD5_USER.user};`,
    '',
  ].join('\n');
}

export class PgCluster {
  readonly host = HOST;
  readonly dir: string;
  readonly dataDir: string;
  /** unix_socket_directories: connect with host=<socketDir>. */
  readonly socketDir: string;
  readonly certs: TestCerts | undefined;
  private portValue = 0;
  private server: ManagedProcess | undefined;
  private readonly tempDir: TempDir;
  private readonly startTimeoutMs: number;

  private constructor(tempDir: TempDir, certs: TestCerts | undefined, startTimeoutMs: number) {
    this.tempDir = tempDir;
    this.dir = tempDir.path;
    this.dataDir = path.join(this.dir, 'data');
    this.socketDir = this.dir;
    this.certs = certs;
    this.startTimeoutMs = startTimeoutMs;
  }

  static async start(options: StartPostgresOptions = {}): Promise<PgCluster> {
    const tempDir = await makeTempDir('doorman-pg');
    let cluster: PgCluster | undefined;
    try {
      const certs = options.ssl ? await makeTestCerts(path.join(tempDir.path, 'tls')) : undefined;
      cluster = new PgCluster(tempDir, certs, options.startTimeoutMs ?? 60_000);
      await cluster.initdb(options);
      await cluster.launch(true);
      await cluster.query(bootstrapSql());
      return cluster;
    } catch (err) {
      if (cluster) await cluster.stop().catch(() => undefined);
      else await tempDir.remove();
      throw err;
    }
  }

  get port(): number {
    return this.portValue;
  }

  /** Postmaster pid. */
  get pid(): number {
    if (!this.server) throw new Error('PostgreSQL is not running');
    return this.server.pid;
  }

  get running(): boolean {
    return this.server?.running ?? false;
  }

  /** The server log (stderr) tail. */
  output(maxLines = 60): string {
    return this.server?.output(maxLines) ?? '';
  }

  superuserUrl(db = 'postgres'): string {
    return this.connectionString(SUPERUSER.user, SUPERUSER.password, db);
  }

  connectionString(user: string, password: string, db: string = APP_DB): string {
    return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${HOST}:${this.port}/${encodeURIComponent(db)}`;
  }

  /** For psql()/pgbench()/python helpers: TCP to 127.0.0.1 with a password. */
  target(credentials: Credentials = SCRAM_USER, database: string = APP_DB): ClientTarget {
    return { host: HOST, port: this.port, user: credentials.user, password: credentials.password, database };
  }

  /**
   * Runs SQL (several statements and psql meta-commands allowed) as the
   * superuser over the unix socket; returns unaligned, tuples-only output.
   */
  async query(sql: string, db = 'postgres'): Promise<string> {
    const result = await runChecked(
      path.join(PG_BIN, 'psql'),
      ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', this.socketDir, '-p', String(this.port), '-U', SUPERUSER.user, '-d', db, '-f', '-'],
      { input: sql, asServiceUser: true, cwd: this.dir, timeoutMs: 60_000 },
    );
    return result.stdout.trimEnd();
  }

  /** pgbench as the superuser over the unix socket; `db` defaults to app. */
  pgbench(args: readonly string[], options: { db?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return run(
      path.join(PG_BIN, 'pgbench'),
      ['-h', this.socketDir, '-p', String(this.port), '-U', SUPERUSER.user, ...args, options.db ?? APP_DB],
      { asServiceUser: true, cwd: this.dir, timeoutMs: options.timeoutMs ?? 300_000 },
    );
  }

  /** SIGHUP: re-reads postgresql.conf and pg_hba.conf. */
  reload(): void {
    this.server?.signal('SIGHUP');
  }

  /** Fast shutdown and start again on the same port and data. */
  async restart(): Promise<void> {
    await this.shutdown();
    await this.launch(false);
  }

  /** Fast shutdown, then removes the whole temp dir. */
  async stop(): Promise<void> {
    try {
      await this.shutdown();
    } finally {
      await this.tempDir.remove();
    }
  }

  private async shutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    // SIGINT = fast shutdown; SIGKILL only if it hangs.
    await server.stop({ signal: 'SIGINT', timeoutMs: 30_000 });
  }

  private async initdb(options: StartPostgresOptions): Promise<void> {
    const pwfile = path.join(this.dir, 'pwfile');
    await writeFile(pwfile, `${SUPERUSER.password}\n`, { mode: 0o600 });
    await chownToServiceUser(pwfile);
    await runChecked(
      path.join(PG_BIN, 'initdb'),
      [
        '-D', this.dataDir, '-U', SUPERUSER.user, `--pwfile=${pwfile}`,
        '--auth-local=trust', '--auth-host=scram-sha-256',
        '--encoding=UTF8', '--locale=C', '--no-sync', '--no-instructions',
      ],
      { asServiceUser: true, cwd: this.dir, timeoutMs: this.startTimeoutMs },
    );
    await rm(pwfile, { force: true });

    const settings: Record<string, string> = {
      listen_addresses: HOST,
      unix_socket_directories: this.socketDir,
      max_connections: '300',
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      password_encryption: 'scram-sha-256',
      log_line_prefix: '%m [%p] %q%u@%d ',
      ...(this.certs
        ? {
            ssl: 'on',
            ssl_cert_file: this.certs.serverCert,
            ssl_key_file: this.certs.serverKey,
            ssl_ca_file: this.certs.caCert,
          }
        : {}),
      ...options.settings,
    };
    const conf = Object.entries(settings).map(([key, value]) => `${key} = ${quoteConf(value)}`);
    await appendFile(path.join(this.dataDir, 'postgresql.conf'), `\n# doorman integration harness\n${conf.join('\n')}\n`);
    await writeFile(path.join(this.dataDir, 'pg_hba.conf'), options.hba ?? defaultHba(this.certs !== undefined));
  }

  /** Starts the postmaster; on a fresh cluster retries with another port if the bind fails. */
  private async launch(pickPort: boolean): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (pickPort) this.portValue = await freePort(HOST);
      const server = startProcess(path.join(PG_BIN, 'postgres'), ['-D', this.dataDir, '-p', String(this.portValue)], {
        name: `postgres:${this.portValue}`,
        asServiceUser: true,
        cwd: this.dir,
        // Immediate shutdown if the test process dies with the server still up.
        exitSignal: 'SIGQUIT',
      });
      this.server = server;
      try {
        await this.waitReady(server);
        return;
      } catch (err) {
        if (server.running) await server.stop({ signal: 'SIGQUIT', timeoutMs: 5_000 });
        const bindFailed = /could not bind|could not create any TCP\/IP sockets|Address already in use/.test(server.output(200));
        if (!pickPort || !bindFailed || attempt >= BIND_ATTEMPTS) throw err;
      }
    }
  }

  /** Ready when postmaster.pid's status line says so (PostgreSQL 10+ writes it). */
  private async waitReady(server: ManagedProcess): Promise<void> {
    const pidFile = path.join(this.dataDir, 'postmaster.pid');
    const deadline = Date.now() + this.startTimeoutMs;
    for (;;) {
      if (!server.running) {
        const info = server.exitInfo ?? (await server.exited);
        throw new Error(`PostgreSQL exited during start-up (${formatExit(info)}):\n${server.output()}`);
      }
      const lines = await readFile(pidFile, 'utf8').then((text) => text.split('\n'), () => [] as string[]);
      if (lines[0]?.trim() === String(server.pid) && lines[7]?.trim() === 'ready') return;
      if (Date.now() > deadline) {
        throw new Error(`PostgreSQL not ready after ${this.startTimeoutMs} ms:\n${server.output()}`);
      }
      await sleep(50);
    }
  }
}

/** Starts a throwaway PostgreSQL 15 cluster on a free 127.0.0.1 port (see PgCluster). */
export function startPostgres(options: StartPostgresOptions = {}): Promise<PgCluster> {
  return PgCluster.start(options);
}
