import {
  doormanConfigFor,
  pgbench,
  startDoorman,
  startPgBouncer,
  startPostgres,
  SCRAM_USER,
  type ClientTarget,
  type Credentials,
  type DoormanProcess,
  type PgBouncerProcess,
  type PgCluster,
  type TestCerts,
} from '../harness/index.js';

/** Starting the throwaway PostgreSQL and the two poolers in front of it, configured alike. */

/** Server connections per pooler, as in the peers baseline. */
export const POOL_SIZE = 20;
export const PG_MAX_CONNECTIONS = 300;
/** PostgreSQL's superuser_reserved_connections default. */
export const PG_RESERVED_CONNECTIONS = 3;
export const PGBENCH_SCALE = 10;
/** PgBouncer's default; Doorman's is shorter, and a 2000-client queue must not time out on only one of them. */
const QUERY_WAIT_TIMEOUT_SECONDS = 120;

/** trust: connect/disconnect cycles, where a password exchange would be most of the cost measured. */
export type ClientAuth = 'scram-sha-256' | 'md5' | 'trust';

export interface PoolerSettings {
  user: Credentials;
  auth: ClientAuth;
  maxClientConn: number;
  /** Client TLS is offered (not required) with these. */
  certs?: TestCerts;
  /** Doorman's general.workers; absent: one shard per core. */
  workers?: number;
  /** The pooler reaches PostgreSQL over TLS (server_tls_mode / server_tls_sslmode require). */
  serverTls?: boolean;
}

/** PostgreSQL with TLS on (for the direct TLS cell), fsync off, room for direct runs at 100 clients. */
export function startBenchPostgres(): Promise<PgCluster> {
  return startPostgres({
    ssl: true,
    settings: {
      max_connections: String(PG_MAX_CONNECTIONS),
      superuser_reserved_connections: String(PG_RESERVED_CONNECTIONS),
      fsync: 'off',
    },
  });
}

/** `pgbench -i -s 10` as the database owner, over plain TCP. */
export async function initPgbenchTables(pg: PgCluster): Promise<void> {
  const result = await pgbench({ ...pg.target(SCRAM_USER), sslmode: 'disable' }, ['-i', '-s', String(PGBENCH_SCALE), '-q'], {
    timeoutMs: 600_000,
  });
  if (result.code !== 0) throw new Error(`pgbench -i failed (exit ${String(result.code)}):\n${result.stderr.trim()}`);
}

/** `env` reaches the Doorman process (e.g. DOORMAN_SHARD_IO=node). */
export function startBenchDoorman(pg: PgCluster, settings: PoolerSettings, env?: Record<string, string>): Promise<DoormanProcess> {
  const config = doormanConfigFor(pg, {
    users: [settings.user],
    poolMode: 'transaction',
    poolSize: POOL_SIZE,
    // trust is for the one bench user only, so nothing else gets in without a password.
    hba: `host all ${settings.auth === 'trust' ? settings.user.user : 'all'} 127.0.0.1/32 ${settings.auth}\n`,
    general: {
      max_client_conn: settings.maxClientConn,
      query_wait_timeout: `${QUERY_WAIT_TIMEOUT_SECONDS}s`,
      // PgBouncer talks plain TCP to PostgreSQL by default; so must Doorman, or TLS costs would skew the comparison.
      server_tls_mode: settings.serverTls === true ? 'require' : 'disable',
      // PgBouncer logs no per-connection lines here (log_connections=0); Doorman logs them at info.
      log_level: 'warn',
      ...(settings.workers === undefined ? {} : { workers: settings.workers }),
      ...(settings.certs
        ? { tls_mode: 'allow', tls_certificate: settings.certs.serverCert, tls_private_key: settings.certs.serverKey }
        : {}),
    },
  });
  return startDoorman(config, { ringSize: 2000, ...(env === undefined ? {} : { env }) });
}

export function startBenchPgBouncer(pg: PgCluster, settings: PoolerSettings): Promise<PgBouncerProcess> {
  return startPgBouncer({
    pg,
    poolMode: 'transaction',
    poolSize: POOL_SIZE,
    users: [settings.user],
    maxClientConn: settings.maxClientConn,
    settings: {
      auth_type: settings.auth,
      query_wait_timeout: String(QUERY_WAIT_TIMEOUT_SECONDS),
      server_tls_sslmode: settings.serverTls === true ? 'require' : 'disable',
      ...(settings.certs
        ? { client_tls_sslmode: 'allow', client_tls_cert_file: settings.certs.serverCert, client_tls_key_file: settings.certs.serverKey }
        : {}),
    },
  });
}

export function describePostgres(): string {
  return `PostgreSQL: max_connections=${PG_MAX_CONNECTIONS}, fsync=off, synchronous_commit=off, ssl=on`;
}

/** One line per pooler for the report. */
export function describePoolers(settings: PoolerSettings): string[] {
  const tls = settings.certs ? '; client TLS offered with the harness test certificate' : '';
  const serverTls = settings.serverTls === true ? 'require' : 'disable';
  return [
    `PgBouncer: pool_mode=transaction, default_pool_size=${POOL_SIZE}, auth_type=${settings.auth} (userlist), max_client_conn=${settings.maxClientConn}, query_wait_timeout=${QUERY_WAIT_TIMEOUT_SECONDS}, server_tls_sslmode=${serverTls}${tls}`,
    `Doorman: pool_mode=transaction, pool_size=${POOL_SIZE}, pg_hba ${settings.auth}${settings.auth === 'trust' ? ` (for ${settings.user.user} only)` : ''}, workers=${settings.workers ?? 'default (one per core)'}, max_client_conn=${settings.maxClientConn}, query_wait_timeout=${QUERY_WAIT_TIMEOUT_SECONDS}s, server_tls_mode=${serverTls}, log_level=warn${tls}`,
  ];
}

export interface Endpoint {
  target: ClientTarget;
  /** The pooler process to charge CPU and memory to; null for direct PostgreSQL. */
  poolerPid: number | null;
}

/** Things to stop at the end, last started first; errors are collected, not thrown midway. */
export class StopList {
  private readonly entries: { name: string; stop: () => Promise<unknown> }[] = [];

  add(name: string, stop: () => Promise<unknown>): void {
    this.entries.push({ name, stop });
  }

  async stopAll(): Promise<string[]> {
    const errors: string[] = [];
    while (this.entries.length > 0) {
      const entry = this.entries.pop() as { name: string; stop: () => Promise<unknown> };
      try {
        await entry.stop();
      } catch (err) {
        errors.push(`${entry.name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return errors;
  }
}
