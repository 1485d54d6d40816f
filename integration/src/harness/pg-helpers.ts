/**
 * Helpers for suites that talk to PostgreSQL or Doorman through pg (node-postgres), and that count the
 * backends PostgreSQL has for a role.
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import type { PgCluster } from './postgres.js';

/** The error a failed pg call rejects with, as far as the suites look at it. */
export interface SqlError {
  code?: string;
  message: string;
  detail?: string;
}

/** A connected pg client; `extra` adds to or overrides the connection config. */
export async function connectPg(url: string, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 15_000, ...extra });
  // FATALs while idle arrive as 'error' events; tests that care listen themselves.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** The only row of `sql`; fails unless there is exactly one. */
export async function one<T>(client: pg.Client, sql: string, values: unknown[] = []): Promise<T> {
  const r = await client.query(sql, values);
  assert.equal(r.rows.length, 1, `one row from ${sql}`);
  return r.rows[0] as T;
}

/** The PostgreSQL backend serving `client` right now. */
export async function backendPid(client: pg.Client): Promise<number> {
  return (await one<{ pid: number }>(client, 'select pg_backend_pid() as pid')).pid;
}

/** The error `p` rejects with; fails if it resolves. */
export async function sqlError(p: Promise<unknown>): Promise<SqlError> {
  try {
    await p;
  } catch (err) {
    return err as SqlError;
  }
  assert.fail('expected an error');
}

/** Pids of the client backends PostgreSQL has for `user`, ascending (cancel requests do not show). */
export async function clientBackends(admin: pg.Client, user: string): Promise<number[]> {
  const r = await admin.query<{ pid: number }>("select pid from pg_stat_activity where usename = $1 and backend_type = 'client backend' order by pid", [user]);
  return r.rows.map((row) => row.pid);
}

/** How many client backends `user` has, and how many of them are idle in a transaction (asked as the superuser). */
export async function backendActivity(cluster: PgCluster, user: string): Promise<{ total: number; idleInTransaction: number }> {
  const [total, idle] = (
    await cluster.query(
      `SELECT count(*), count(*) FILTER (WHERE state LIKE 'idle in transaction%') FROM pg_stat_activity WHERE usename = '${user}' AND backend_type = 'client backend'`,
    )
  )
    .split('|')
    .map(Number);
  return { total, idleInTransaction: idle };
}
