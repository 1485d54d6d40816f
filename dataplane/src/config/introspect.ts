/**
 * `doorman generate`, the I/O part: reads databases and login roles (with their verifiers when pg_authid
 * is readable, which normally takes a superuser) from a running PostgreSQL.
 */
import pg from 'pg';
import type { Catalog, CatalogRole } from './generate.js';

export interface IntrospectTarget {
  host: string;
  port: number;
  user: string;
  database: string;
  /** undefined: none known; asked for only if the server wants one. */
  password: string | undefined;
  /** Name of the environment variable the password came from, for the error message. */
  passwordSource: string;
  connectTimeoutMs: number;
}

/** Failure to connect or log in; the message is meant for the operator and never holds the password. */
export class IntrospectError extends Error {
  override name = 'IntrospectError';
}

const INSUFFICIENT_PRIVILEGE = '42501';

interface RoleRow {
  rolname: string;
  rolpassword: string | null;
  rolsuper: boolean;
}

export async function introspect(t: IntrospectTarget): Promise<Catalog> {
  const client = new pg.Client({
    host: t.host,
    port: t.port,
    user: t.user,
    database: t.database,
    // A function, so pg neither falls back to PGPASSWORD nor ~/.pgpass when the variable is unset.
    password: () => {
      if (t.password === undefined) throw new Error(`the server asks for a password but ${t.passwordSource} is not set`);
      return t.password;
    },
    connectionTimeoutMillis: t.connectTimeoutMs,
    application_name: 'doorman generate',
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new IntrospectError(
      `cannot connect to PostgreSQL at ${t.host}:${t.port} as "${t.user}" (database "${t.database}"): ${(err as Error).message}`,
    );
  }
  try {
    const dbs = await client.query<{ datname: string }>(
      'select datname from pg_database where datallowconn and not datistemplate order by datname',
    );
    let rows: RoleRow[];
    let verifiersRead = true;
    try {
      rows = (
        await client.query<RoleRow>('select rolname, rolpassword, rolsuper from pg_authid where rolcanlogin order by rolname')
      ).rows;
    } catch (err) {
      if ((err as { code?: string }).code !== INSUFFICIENT_PRIVILEGE) throw err;
      verifiersRead = false;
      rows = (
        await client.query<RoleRow>('select rolname, null as rolpassword, rolsuper from pg_roles where rolcanlogin order by rolname')
      ).rows;
    }
    const roles: CatalogRole[] = rows.map((r) => ({ name: r.rolname, verifier: r.rolpassword, superuser: r.rolsuper }));
    return { databases: dbs.rows.map((r) => r.datname), roles, verifiersRead };
  } catch (err) {
    if (err instanceof IntrospectError) throw err;
    throw new IntrospectError(`reading the catalog of ${t.host}:${t.port} failed: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}
