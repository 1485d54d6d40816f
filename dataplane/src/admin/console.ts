/**
 * The admin console (virtual database `doorman` / `pgbouncer`): PgBouncer-style SHOW and control commands
 * over the simple query protocol. Parsing and dispatch are pure over an AdminView; encoding is separate.
 */
import type { GeneralConfig, PoolMode } from '@doorman/proto';
import { E, type ErrorDef } from '../errors.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import { commandComplete, dataRow, emptyQueryResponse, errorResponse, READY_IDLE, rowDescription } from '../protocol/backend.js';
import { quantile } from '../stats/histogram.js';
import { addSnapshot, type PoolStatsSnapshot, type StatTotals } from '../stats/pool-stats.js';

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
  /** Idle and usable at once / idle so long it is checked first (PgBouncer's sv_used) / resetting. */
  svIdle: number;
  svUsed: number;
  svTested: number;
  svLogin: number;
  /** How long the oldest waiting client has waited (ms). */
  maxWaitMs: number;
  poolSize: number;
  poolMode: PoolMode;
  paused: boolean;
}

export interface ClientInfo {
  /** Unique over every shard; KILL_CLIENT takes it. */
  id: number;
  user: string;
  database: string;
  state: 'active' | 'waiting' | 'idle';
  addr: string;
  port: number;
  /** "TLSv1.3/TLS_AES_256_GCM_SHA384"; '' for plaintext. */
  tls: string;
}

export interface ServerInfo {
  user: string;
  database: string;
  state: 'active' | 'idle' | 'login' | 'tested';
  addr: string;
  port: number;
  pid: number;
  /** RECONNECT or a reload replaced it: it closes instead of being reused (WAIT_CLOSE waits for these). */
  closeNeeded: boolean;
  /** As ClientInfo.tls. */
  tls: string;
}

/** One shard's memory and object counts (SHOW MEM). Heap figures are the shard's own; RSS is the process's. */
export interface MemInfo {
  shard: number;
  clients: number;
  servers: number;
  pools: number;
  preparedStatements: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  rss: number;
}

export interface PreparedInfo {
  database: string;
  user: string;
  shard: number;
  name: string;
  /** Shortened query text. */
  query: string;
  hits: number;
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
  /** Counters per pool, summed over shards. */
  stats(): PoolStatsSnapshot[];
  mem(): MemInfo[];
  prepared(): PreparedInfo[];
  /** null = every pool; false when the database is not configured. */
  pause(database: string | null): boolean;
  resume(database: string | null): boolean;
  reconnect(database: string | null): boolean;
  disable(database: string): boolean;
  enable(database: string): boolean;
  kill(database: string): boolean;
  /** false when no client has that id. */
  killClient(id: number): boolean;
  setLogLevel(level: LogLevel): void;
  /** Resolves once every shard has applied the controls sent before. */
  applied(): Promise<void>;
  /** Resolves once the servers RECONNECT or a reload marked are closed; false when the database is unknown. */
  waitClose(database: string | null): Promise<boolean>;
  reload(): void;
  shutdown(): void;
  /** Binary upgrade: the new process takes over (its outcome is logged). */
  upgrade(): void;
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
  | { kind: 'empty' }
  /** The answer needs waiting (WAIT_CLOSE). */
  | { kind: 'later'; result: Promise<AdminResult> };

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
        v.pools().map((p) => [
          p.database,
          p.user,
          p.clActive,
          p.clWaiting,
          p.svActive,
          p.svIdle,
          p.svUsed,
          p.svLogin,
          p.poolSize,
          Math.floor(p.maxWaitMs / 1000),
          p.poolMode,
        ]),
      );
    case 'clients':
      return table(
        [text('type'), text('user'), text('database'), text('state'), text('addr'), int('port'), text('tls'), int('id')],
        v.clients().map((c) => ['C', c.user, c.database, c.state, c.addr, c.port, c.tls, c.id]),
      );
    case 'servers':
      return table(
        [text('type'), text('user'), text('database'), text('state'), text('addr'), int('port'), int('pid'), text('close_needed'), text('tls')],
        v.servers().map((s) => ['S', s.user, s.database, s.state, s.addr, s.port, s.pid, s.closeNeeded, s.tls]),
      );
    case 'stats':
      return statsTable(v, 'stats');
    case 'stats_totals':
      return statsTable(v, 'totals');
    case 'stats_averages':
      return statsTable(v, 'averages');
    case 'mem':
      return table(
        [
          int('shard'),
          int('clients'),
          int('servers'),
          int('pools'),
          int('prepared_statements'),
          int('heap_used'),
          int('heap_total'),
          int('external'),
          int('array_buffers'),
          int('rss'),
        ],
        v.mem().map((m) => [m.shard, m.clients, m.servers, m.pools, m.preparedStatements, m.heapUsed, m.heapTotal, m.external, m.arrayBuffers, m.rss]),
      );
    case 'prepared_statements':
      return table(
        [text('database'), text('user'), int('shard'), text('name'), text('query'), int('hits')],
        v.prepared().map((p) => [p.database, p.user, p.shard, p.name, p.query, p.hits]),
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
  return fail(E.adminSyntax, `unknown admin console command: ${command}`);
}

function fail(def: ErrorDef, message: string): AdminResult {
  return { kind: 'error', code: def.sqlstate, message };
}

const noDatabase = (db: string | null): AdminResult => fail(E.adminNoDatabase, `no such database: ${db}`);

/** Per database (PgBouncer's shape): every user's pool summed. */
function statsByDatabase(stats: readonly PoolStatsSnapshot[]): PoolStatsSnapshot[] {
  const out = new Map<string, PoolStatsSnapshot>();
  for (const s of stats) {
    const sum = out.get(s.database);
    if (sum === undefined) {
      out.set(s.database, {
        ...s,
        totals: { ...s.totals },
        period: { ...s.period },
        xactHist: Float64Array.from(s.xactHist),
        queryHist: Float64Array.from(s.queryHist),
        waitHist: Float64Array.from(s.waitHist),
        errors: { ...s.errors },
      });
    } else {
      addSnapshot(sum, s);
    }
  }
  return [...out.values()];
}

/** PgBouncer's averages over the last stats period: counts and bytes per second, times per transaction / query / wait (µs). */
function averages(s: PoolStatsSnapshot): Record<'xacts' | 'queries' | 'received' | 'sent' | 'xactTime' | 'queryTime' | 'waitTime', number> {
  const p: StatTotals = s.period;
  const perSecond = (n: number): number => Math.round((n * 1000) / s.periodMs);
  const per = (n: number, d: number): number => (d === 0 ? 0 : Math.round(n / d));
  return {
    xacts: perSecond(p.xacts),
    queries: perSecond(p.queries),
    received: perSecond(p.received),
    sent: perSecond(p.sent),
    xactTime: per(p.xactTime, p.xacts),
    queryTime: per(p.queryTime, p.queries),
    waitTime: per(p.waitTime, p.waits),
  };
}

const PERCENTILES: readonly [string, number][] = [
  ['p50', 0.5],
  ['p90', 0.9],
  ['p95', 0.95],
  ['p99', 0.99],
];

function statsTable(v: AdminView, kind: 'stats' | 'totals' | 'averages'): AdminResult {
  const dbs = statsByDatabase(v.stats());
  const base = ['xact_count', 'query_count', 'received', 'sent', 'xact_time', 'query_time', 'wait_time'];
  if (kind === 'totals') {
    return table(
      [text('database'), ...['xact_count', 'query_count', 'bytes_received', 'bytes_sent', 'xact_time', 'query_time', 'wait_time'].map(int)],
      dbs.map((s) => [s.database, ...totalsRow(s.totals)]),
    );
  }
  if (kind === 'averages') {
    return table(
      [text('database'), ...['xact_count', 'query_count', 'bytes_received', 'bytes_sent', 'xact_time', 'query_time', 'wait_time'].map(int)],
      dbs.map((s) => [s.database, ...averagesRow(s)]),
    );
  }
  const pct: string[] = [];
  for (const h of ['xact', 'query', 'wait']) for (const [name] of PERCENTILES) pct.push(`${h}_${name}`);
  return table(
    [
      text('database'),
      ...base.map((c) => int(`total_${c}`)),
      ...['avg_xact_count', 'avg_query_count', 'avg_recv', 'avg_sent', 'avg_xact_time', 'avg_query_time', 'avg_wait_time'].map(int),
      ...pct.map(int),
    ],
    dbs.map((s) => {
      const q: number[] = [];
      for (const h of [s.xactHist, s.queryHist, s.waitHist]) for (const [, p] of PERCENTILES) q.push(Math.round(quantile(h, p)));
      return [s.database, ...totalsRow(s.totals), ...averagesRow(s), ...q];
    }),
  );
}

function totalsRow(t: StatTotals): number[] {
  return [t.xacts, t.queries, t.received, t.sent, t.xactTime, t.queryTime, t.waitTime].map(Math.round);
}

function averagesRow(s: PoolStatsSnapshot): number[] {
  const a = averages(s);
  return [a.xacts, a.queries, a.received, a.sent, a.xactTime, a.queryTime, a.waitTime];
}

/** `SET log_level = 'debug'` / `SET log_level TO debug`. */
const SET_STATEMENT = /^set\s+([a-z_]+)\s*(?:=|\s+to\s+)\s*(?:'([^']*)'|"([^"]*)"|([^\s'"]+))$/i;

function setCommand(statement: string, v: AdminView): AdminResult {
  const m = SET_STATEMENT.exec(statement);
  if (m === null) return unknown(statement);
  const name = m[1].toLowerCase();
  if (name !== 'log_level') return fail(E.adminSyntax, `unknown admin console parameter: ${m[1]} (only log_level can be set)`);
  const level = (m[2] ?? m[3] ?? m[4]).toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    return fail(E.adminBadValue, `invalid log_level "${level}": use one of ${LOG_LEVELS.join(', ')}`);
  }
  v.setLogLevel(level as LogLevel);
  return { kind: 'later', result: v.applied().then((): AdminResult => ({ kind: 'done', tag: 'SET', after: null })) };
}

/** Commands whose database argument is required. */
const NEEDS_DATABASE = new Set(['disable', 'enable', 'kill']);

/** Runs one console statement (the text of a Query message). */
export function runAdminCommand(query: string, v: AdminView): AdminResult {
  const statement = query.trim().replace(/;\s*$/, '').trim();
  if (statement === '') return { kind: 'empty' };
  const words = statement.split(/\s+/);
  const verb = words[0].toLowerCase();
  if (verb === 'set') return setCommand(statement, v);
  const arg = words.length > 1 ? words[1] : null;
  if (words.length > 2) return unknown(statement);
  const done = (after: (() => void) | null = null): AdminResult => ({ kind: 'done', tag: verb.toUpperCase(), after });
  // A control is answered once every shard has applied it: a client acting on the answer sees its effect.
  const applied = (): AdminResult => ({ kind: 'later', result: v.applied().then(() => done()) });
  if (NEEDS_DATABASE.has(verb) && arg === null) return fail(E.adminSyntax, `${verb.toUpperCase()} needs a database name`);
  switch (verb) {
    case 'show': {
      if (arg === null) return unknown(statement);
      return show(arg.toLowerCase(), v) ?? unknown(statement);
    }
    case 'pause':
      return v.pause(arg) ? applied() : noDatabase(arg);
    case 'resume':
      return v.resume(arg) ? applied() : noDatabase(arg);
    case 'reconnect':
      return v.reconnect(arg) ? applied() : noDatabase(arg);
    case 'disable':
      return v.disable(arg!) ? applied() : noDatabase(arg);
    case 'enable':
      return v.enable(arg!) ? applied() : noDatabase(arg);
    case 'kill':
      return v.kill(arg!) ? applied() : noDatabase(arg);
    case 'kill_client': {
      const id = arg === null || !/^\d+$/.test(arg) ? NaN : Number(arg);
      if (!Number.isSafeInteger(id)) return fail(E.adminSyntax, 'KILL_CLIENT needs a client id (the id column of SHOW CLIENTS)');
      return v.killClient(id) ? applied() : fail(E.adminNoClient, `no such client: ${id}`);
    }
    case 'wait_close':
      return { kind: 'later', result: v.waitClose(arg).then((ok) => (ok ? done() : noDatabase(arg))) };
    case 'reload':
    case 'shutdown':
    case 'upgrade':
      if (arg !== null) return unknown(statement);
      return done(verb === 'reload' ? () => v.reload() : verb === 'shutdown' ? () => v.shutdown() : () => v.upgrade());
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
    case 'later':
      throw new Error('a pending admin result is encoded once it has settled');
  }
  parts.push(READY_IDLE);
  return Buffer.concat(parts);
}
