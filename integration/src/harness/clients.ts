import path from 'node:path';
import { PG_BIN } from './postgres.js';
import { run, type RunResult } from './processes.js';

/** Debian's psycopg2/psycopg/asyncpg live here, not in the python3 found on PATH. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

export interface ClientTarget {
  host: string;
  port: number;
  user: string;
  /** Passed only through the child's PGPASSWORD, never on the command line. */
  password?: string;
  database: string;
  /** libpq sslmode (disable, prefer, require, verify-ca, verify-full). */
  sslmode?: string;
  /** libpq sslrootcert, for verify-ca / verify-full. */
  sslrootcert?: string;
  /** Extra libpq keywords, e.g. { application_name: 'x', connect_timeout: '5' }. */
  params?: Record<string, string>;
}

export interface ClientOptions {
  /** Default 30 s for psql, 300 s for pgbench, 60 s for python. */
  timeoutMs?: number;
  /** stdin for the child. */
  input?: string;
  env?: Record<string, string | undefined>;
}

function conninfoValue(value: string): string {
  return /^[^\s'\\]+$/.test(value) ? value : `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** A libpq keyword/value connection string without the password. */
export function conninfo(target: ClientTarget): string {
  const pairs: Record<string, string> = {
    host: target.host,
    port: String(target.port),
    user: target.user,
    dbname: target.database,
    ...(target.sslmode ? { sslmode: target.sslmode } : {}),
    ...(target.sslrootcert ? { sslrootcert: target.sslrootcert } : {}),
    ...target.params,
  };
  return Object.entries(pairs).map(([key, value]) => `${key}=${conninfoValue(value)}`).join(' ');
}

function clientEnv(target: ClientTarget, extra: ClientOptions['env']): Record<string, string | undefined> {
  return { ...(target.password !== undefined ? { PGPASSWORD: target.password } : {}), ...extra };
}

/** psql -X -v ON_ERROR_STOP=1 -d <conninfo> ...args */
export function psql(target: ClientTarget, args: readonly string[], options: ClientOptions = {}): Promise<RunResult> {
  return run(path.join(PG_BIN, 'psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-d', conninfo(target), ...args], {
    env: clientEnv(target, options.env),
    timeoutMs: options.timeoutMs ?? 30_000,
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
}

/** One SQL string through psql; unaligned, tuples only, no command tags. */
export function psqlQuery(target: ClientTarget, sql: string, options: ClientOptions = {}): Promise<RunResult> {
  return psql(target, ['-q', '-A', '-t', '-c', sql], options);
}

/** pgbench ...args against the target (the database goes last on the command line). */
export function pgbench(target: ClientTarget, args: readonly string[], options: ClientOptions = {}): Promise<RunResult> {
  const connection = ['-h', target.host, '-p', String(target.port), '-U', target.user];
  const sslEnv: Record<string, string> = {
    ...(target.sslmode ? { PGSSLMODE: target.sslmode } : {}),
    ...(target.sslrootcert ? { PGSSLROOTCERT: target.sslrootcert } : {}),
  };
  return run(path.join(PG_BIN, 'pgbench'), [...connection, ...args, target.database], {
    env: { ...sslEnv, ...clientEnv(target, options.env) },
    timeoutMs: options.timeoutMs ?? 300_000,
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
}

/** /usr/bin/python3 -c <code> ...args (sys.argv[1:] = args). */
export function python(code: string, args: readonly string[] = [], options: ClientOptions = {}): Promise<RunResult> {
  return run(SYSTEM_PYTHON, ['-c', code, ...args], {
    env: { PYTHONDONTWRITEBYTECODE: '1', ...options.env },
    timeoutMs: options.timeoutMs ?? 60_000,
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
}
