/**
 * The admin console (virtual database `doorman` / `pgbouncer`): PgBouncer-style SHOW and control commands
 * over the simple query protocol. Parsing and dispatch are pure over an AdminView; encoding is separate.
 */
import type { GeneralConfig, PoolMode } from '@doorman/proto';
import { commandComplete, dataRow, emptyQueryResponse, errorResponse, READY_IDLE, rowDescription } from '../protocol/backend.js';

const TEXT_OID = 25;
const INT8_OID = 20;

export interface DatabaseInfo {
  name: string;
  host: string;
  port: number;
  /** The database on PostgreSQL. */
  database: string;
  poolMode: PoolMode;
  /** Sum of the pool sizes of the database's users. */
  poolSize: number;
}

export interface UserInfo {
  name: string;
  poolMode: PoolMode;
}

export interface PoolInfo {
  database: string;
  user: string;
  clActive: number;
  clWaiting: number;
  svActive: number;
  svIdle: number;
  svLogin: number;
  poolSize: number;
  poolMode: PoolMode;
}

export interface ClientInfo {
  user: string;
  database: string;
  state: 'active' | 'waiting' | 'idle';
  addr: string;
  port: number;
  tls: boolean;
}

export interface ServerInfo {
  user: string;
  database: string;
  state: 'active' | 'idle' | 'login' | 'used';
  addr: string;
  port: number;
  pid: number;
}

/** What the console reads and controls. */
export interface AdminView {
  readonly version: string;
  readonly general: GeneralConfig;
  databases(): DatabaseInfo[];
  users(): UserInfo[];
  pools(): PoolInfo[];
  clients(): ClientInfo[];
  servers(): ServerInfo[];
  /** null = every pool; false when the database is not configured. */
  pause(database: string | null): boolean;
  resume(database: string | null): boolean;
  reload(): void;
  shutdown(): void;
}

export interface Column {
  name: string;
  typeOid: number;
}

export type AdminResult =
  | { kind: 'rows'; columns: Column[]; rows: (string | null)[][]; tag: string }
  /** `after` runs once the reply is written (SHUTDOWN must answer before it closes the client). */
  | { kind: 'done'; tag: string; after: (() => void) | null }
  | { kind: 'error'; code: string; message: string }
  | { kind: 'empty' };

const text = (name: string): Column => ({ name, typeOid: TEXT_OID });
const int = (name: string): Column => ({ name, typeOid: INT8_OID });

function table(columns: Column[], rows: (string | number | boolean | null)[][]): AdminResult {
  const out = rows.map((r) => r.map((v) => (v === null ? null : typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v))));
  return { kind: 'rows', columns, rows: out, tag: `SHOW` };
}

/** general fields whose values must not be shown. */
const SECRETS = new Set(['adminPassword']);
/** Fields a reload cannot change. */
const FIXED = new Set(['host', 'port', 'workers']);

function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** SHOW CONFIG rows: every effective general setting, secrets masked. */
export function configRows(general: GeneralConfig): (string | null)[][] {
  const rows: (string | null)[][] = [];
  for (const [key, value] of Object.entries(general) as [string, unknown][]) {
    let shown: string;
    if (SECRETS.has(key)) shown = value === '' ? '' : '[set]';
    else if (value === null) shown = '';
    else shown = String(value);
    rows.push([snakeCase(key), shown, FIXED.has(key) ? 'no' : 'yes']);
  }
  return rows;
}

function show(what: string, v: AdminView): AdminResult | null {
  switch (what) {
    case 'version':
      return table([text('version')], [[`Doorman ${v.version}`]]);
    case 'databases':
      return table(
        [text('name'), text('host'), int('port'), text('database'), text('pool_mode'), int('pool_size')],
        v.databases().map((d) => [d.name, d.host, d.port, d.database, d.poolMode, d.poolSize]),
      );
    case 'users':
      return table([text('name'), text('pool_mode')], v.users().map((u) => [u.name, u.poolMode]));
    case 'pools':
      return table(
        [
          text('database'),
          text('user'),
          int('cl_active'),
          int('cl_waiting'),
          int('sv_active'),
          int('sv_idle'),
          int('sv_used'),
          int('sv_login'),
          int('pool_size'),
          int('maxwait'),
          text('pool_mode'),
        ],
        v.pools().map((p) => [p.database, p.user, p.clActive, p.clWaiting, p.svActive, p.svIdle, 0, p.svLogin, p.poolSize, 0, p.poolMode]),
      );
    case 'clients':
      return table(
        [text('type'), text('user'), text('database'), text('state'), text('addr'), int('port'), text('tls')],
        v.clients().map((c) => ['C', c.user, c.database, c.state, c.addr, c.port, c.tls]),
      );
    case 'servers':
      return table(
        [text('type'), text('user'), text('database'), text('state'), text('addr'), int('port'), int('pid')],
        v.servers().map((s) => ['S', s.user, s.database, s.state, s.addr, s.port, s.pid]),
      );
    case 'lists':
      return table(
        [text('list'), int('items')],
        [
          ['databases', v.databases().length],
          ['users', v.users().length],
          ['pools', v.pools().length],
          ['clients', v.clients().length],
          ['servers', v.servers().length],
        ],
      );
    case 'config':
      return { kind: 'rows', columns: [text('key'), text('value'), text('changeable')], rows: configRows(v.general), tag: 'SHOW' };
    default:
      return null;
  }
}

function unknown(command: string): AdminResult {
  return { kind: 'error', code: '42601', message: `unknown admin console command: ${command}` };
}

/** Runs one console statement (the text of a Query message). */
export function runAdminCommand(query: string, v: AdminView): AdminResult {
  const statement = query.trim().replace(/;\s*$/, '').trim();
  if (statement === '') return { kind: 'empty' };
  const words = statement.split(/\s+/);
  const verb = words[0].toLowerCase();
  const arg = words.length > 1 ? words[1] : null;
  if (words.length > 2) return unknown(statement);
  switch (verb) {
    case 'show': {
      if (arg === null) return unknown(statement);
      return show(arg.toLowerCase(), v) ?? unknown(statement);
    }
    case 'pause':
    case 'resume': {
      const ok = verb === 'pause' ? v.pause(arg) : v.resume(arg);
      if (!ok) return { kind: 'error', code: '3D000', message: `no such database: ${arg}` };
      return { kind: 'done', tag: verb.toUpperCase(), after: null };
    }
    case 'reload':
    case 'shutdown':
      if (arg !== null) return unknown(statement);
      return { kind: 'done', tag: verb.toUpperCase(), after: verb === 'reload' ? () => v.reload() : () => v.shutdown() };
    default:
      return unknown(statement);
  }
}

/** The wire reply to one Query, ReadyForQuery included. */
export function encodeAdminResult(r: AdminResult): Buffer {
  const parts: Buffer[] = [];
  switch (r.kind) {
    case 'rows':
      parts.push(rowDescription(r.columns));
      for (const row of r.rows) parts.push(dataRow(row));
      parts.push(commandComplete(r.tag));
      break;
    case 'done':
      parts.push(commandComplete(r.tag));
      break;
    case 'error':
      parts.push(errorResponse({ severity: 'ERROR', code: r.code, message: r.message }));
      break;
    case 'empty':
      parts.push(emptyQueryResponse());
      break;
  }
  parts.push(READY_IDLE);
  return Buffer.concat(parts);
}
