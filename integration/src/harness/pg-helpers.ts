/**
 * Helpers for suites that talk to PostgreSQL or Doorman through pg (node-postgres), and that count the
 * backends PostgreSQL has for a role.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
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

/** The BackendKeyData a pg client got at login. */
export interface Keyed {
  processID: number;
  secretKey: number;
}

export function keyOf(client: pg.Client): Keyed {
  const k = client as unknown as Keyed;
  assert.equal(typeof k.processID, 'number');
  assert.equal(typeof k.secretKey, 'number');
  return { processID: k.processID, secretKey: k.secretKey };
}

/** Sends a raw CancelRequest (length 16, code 80877102, pid, secret) and waits for the pooler to close. */
export function sendCancel(port: number, key: Keyed): Promise<void> {
  return new Promise((resolve, reject) => {
    const packet = Buffer.alloc(16);
    packet.writeInt32BE(16, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(key.processID, 8);
    packet.writeInt32BE(key.secretKey | 0, 12);
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(packet));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the cancel connection was not closed within 5 s'));
    }, 5_000);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
