/**
 * The admin console's window onto the running process. Each worker shard takes a snapshot of its own
 * pools, clients, servers and counters (plain data, so it can cross threads); the console and /metrics read
 * the merge of every shard's snapshot, and the console's controls reach every shard.
 */
import tls from 'node:tls';
import type { DoormanConfig, GeneralConfig } from '@doorman/proto';
import { ServerPoolState } from '../pool/members.js';
import type { Pool } from '../pool/pool.js';
import { ClientState, type ClientConnection } from '../session/client.js';
import type { ServerConnection } from '../session/server.js';
import type { ByteSocket } from '../session/byte-socket.js';
import { mergePoolStats, type PoolStats, type PoolStatsSnapshot } from '../stats/pool-stats.js';
import { VERSION } from '../version.js';
import { MAX_SHARDS } from '../workers/messages.js';
import type { LogLevel } from '../log.js';
import type { AdminView, ClientInfo, DatabaseInfo, MemInfo, PoolInfo, PreparedInfo, ServerInfo, UserInfo } from './console.js';

/** One shard's share of what the console shows. */
export interface ShardSnapshot {
  pools: PoolInfo[];
  clients: ClientInfo[];
  servers: ServerInfo[];
  stats: PoolStatsSnapshot[];
  mem: MemInfo[];
  prepared: PreparedInfo[];
}

/** What a snapshot lists beyond the per-pool figures (the lists cost an object per connection). */
export interface SnapshotDetail {
  /** Every client and server (SHOW CLIENTS / SERVERS, WAIT_CLOSE, KILL_CLIENT). */
  lists: boolean;
  /** Every registered prepared statement (SHOW PREPARED_STATEMENTS). */
  prepared: boolean;
}

export const FULL_DETAIL: SnapshotDetail = { lists: true, prepared: false };

/** What a shard's snapshot is taken from. */
export interface SnapshotSource {
  readonly index: number;
  readonly now: number;
  readonly general: GeneralConfig;
  readonly clients: ReadonlySet<ClientConnection>;
  readonly servers: ReadonlySet<ServerConnection>;
  /** The current pools of every database. */
  allPools(): Pool[];
  /** The counters of every configured pool. */
  allStats(): Iterable<PoolStats>;
}

/** What the console's control commands do; they reach every shard (killClient only the client's). */
export interface AdminControls {
  pause(database: string | null): void;
  resume(database: string | null): void;
  reconnect(database: string | null): void;
  disable(database: string): void;
  enable(database: string): void;
  kill(database: string): void;
  killClient(id: number): void;
  setLogLevel(level: LogLevel): void;
  reload(): void;
  shutdown(): void;
  /** Binary upgrade of the whole process (its outcome is logged). */
  upgrade(): void;
}

/** Query text shown by SHOW PREPARED_STATEMENTS, at most this long. */
const PREPARED_TEXT = 100;
/** WAIT_CLOSE looks again this often. */
const WAIT_CLOSE_POLL_MS = 100;

const SERVER_STATES: Partial<Record<ServerPoolState, ServerInfo['state']>> = {
  [ServerPoolState.Opening]: 'login',
  [ServerPoolState.Idle]: 'idle',
  [ServerPoolState.Active]: 'active',
  [ServerPoolState.Resetting]: 'tested',
};

function clientState(c: ClientConnection): ClientInfo['state'] {
  if (c.state === ClientState.Active) return 'active';
  if (c.state === ClientState.Waiting || c.state === ClientState.Reserved) return 'waiting';
  return 'idle';
}

/** Logged in and not gone. */
function loggedIn(c: ClientConnection): boolean {
  return c.state >= ClientState.Idle && c.state !== ClientState.Closed;
}

/** A client's id in SHOW CLIENTS and KILL_CLIENT: unique over every shard (the low bits name the shard). */
export function clientId(shard: number, localId: number): number {
  return localId * MAX_SHARDS + shard;
}

export function clientShard(id: number): number {
  return id % MAX_SHARDS;
}

export function clientLocalId(id: number): number {
  return Math.floor(id / MAX_SHARDS);
}

/** The protocol and cipher of a TLS connection, on the shard's loop or on Node's TLSSocket; '' for plaintext. */
function tlsSessionOf(socket: ByteSocket): string {
  if (socket instanceof tls.TLSSocket) {
    const cipher = socket.getCipher();
    return cipher === undefined ? '' : `${socket.getProtocol() ?? ''}/${cipher.name}`;
  }
  return socket.tlsSession?.() ?? '';
}

export function takeSnapshot(src: SnapshotSource, detail: SnapshotDetail): ShardSnapshot {
  const active = new Map<Pool, number>();
  const waiting = new Map<Pool, number>();
  const clients: ClientInfo[] = [];
  for (const c of src.clients) {
    if (!loggedIn(c)) continue;
    const state = clientState(c);
    if (detail.lists) {
      clients.push({
        id: clientId(src.index, c.id),
        user: c.user,
        database: c.database,
        state,
        addr: c.remoteAddress,
        port: c.socket.remotePort ?? 0,
        tls: tlsSessionOf(c.socket),
      });
    }
    if (c.pool === null) continue;
    const counts = state === 'waiting' ? waiting : active;
    counts.set(c.pool, (counts.get(c.pool) ?? 0) + 1);
  }
  const checkDelay = src.general.serverCheckDelay;
  const pools = src.allPools().map((p) => {
    let used = 0;
    // PgBouncer's sv_used: idle long enough to be checked before its next use.
    if (checkDelay > 0) for (const s of p.idle) if (src.now - s.lastUsed > checkDelay) used++;
    return {
      database: p.db.name,
      user: p.user.username,
      clActive: active.get(p) ?? 0,
      clWaiting: waiting.get(p) ?? 0,
      svActive: p.active,
      svIdle: p.idle.length - used,
      svUsed: used,
      svTested: p.resetting,
      svLogin: p.opening,
      maxWaitMs: p.maxWait(src.now),
      poolSize: p.user.poolSize,
      poolMode: p.user.poolMode,
      paused: p.paused,
    };
  });
  const servers: ServerInfo[] = [];
  if (detail.lists) {
    for (const s of src.servers) {
      const state = SERVER_STATES[s.poolState];
      if (state === undefined) continue;
      const p = s.pool;
      servers.push({
        user: p.user.username,
        database: p.db.name,
        state,
        addr: p.db.serverHost,
        port: p.db.serverPort,
        pid: s.processId,
        closeNeeded: p.closeNeeded(s),
        tls: tlsSessionOf(s.socket),
      });
    }
  }
  const stats: PoolStatsSnapshot[] = [];
  for (const st of src.allStats()) stats.push(st.snapshot(src.now));
  const prepared: PreparedInfo[] = [];
  let statements = 0;
  for (const p of src.allPools()) {
    statements += p.statements.size;
    if (!detail.prepared) continue;
    for (const e of p.statements.entries(PREPARED_TEXT)) {
      prepared.push({ database: p.db.name, user: p.user.username, shard: src.index, name: e.name, query: e.text, hits: e.hits });
    }
  }
  const m = process.memoryUsage();
  const mem: MemInfo[] = [
    {
      shard: src.index,
      clients: src.clients.size,
      servers: src.servers.size,
      pools: pools.length,
      preparedStatements: statements,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      rss: m.rss,
    },
  ];
  return { pools, clients, servers, stats, mem, prepared };
}

/** Pools summed by (database, user) in first-seen order; everything else listed shard after shard. */
export function mergeSnapshots(snaps: readonly ShardSnapshot[]): ShardSnapshot {
  const pools = new Map<string, PoolInfo>();
  const out: ShardSnapshot = { pools: [], clients: [], servers: [], stats: [], mem: [], prepared: [] };
  const stats: PoolStatsSnapshot[] = [];
  for (const s of snaps) {
    for (const p of s.pools) {
      const key = `${p.database}\0${p.user}`;
      const sum = pools.get(key);
      if (sum === undefined) {
        pools.set(key, { ...p });
        continue;
      }
      sum.clActive += p.clActive;
      sum.clWaiting += p.clWaiting;
      sum.svActive += p.svActive;
      sum.svIdle += p.svIdle;
      sum.svUsed += p.svUsed;
      sum.svTested += p.svTested;
      sum.svLogin += p.svLogin;
      sum.maxWaitMs = Math.max(sum.maxWaitMs, p.maxWaitMs);
    }
    out.clients.push(...s.clients);
    out.servers.push(...s.servers);
    stats.push(...s.stats);
    out.mem.push(...s.mem);
    out.prepared.push(...s.prepared);
  }
  out.pools = [...pools.values()];
  out.stats = mergePoolStats(stats);
  return out;
}

export class SnapshotView implements AdminView {
  readonly version = VERSION;

  constructor(
    private readonly config: DoormanConfig,
    private readonly snap: ShardSnapshot,
    private readonly controls: AdminControls,
    /** A fresh merged snapshot (WAIT_CLOSE looks again until the servers are gone). */
    private readonly refresh: () => Promise<ShardSnapshot>,
  ) {}

  get general(): GeneralConfig {
    return this.config.general;
  }

  databases(): DatabaseInfo[] {
    return Object.values(this.config.pools).map((db) => ({
      name: db.name,
      host: db.serverHost,
      port: db.serverPort,
      database: db.serverDatabase,
      poolMode: db.poolMode,
      poolSize: db.users.reduce((n, u) => n + u.poolSize, 0),
    }));
  }

  users(): UserInfo[] {
    const seen = new Map<string, UserInfo>();
    for (const db of Object.values(this.config.pools)) {
      for (const u of db.users) if (!seen.has(u.username)) seen.set(u.username, { name: u.username, poolMode: u.poolMode });
    }
    return [...seen.values()];
  }

  pools(): PoolInfo[] {
    return this.snap.pools;
  }

  clients(): ClientInfo[] {
    return this.snap.clients;
  }

  servers(): ServerInfo[] {
    return this.snap.servers;
  }

  stats(): PoolStatsSnapshot[] {
    return this.snap.stats;
  }

  mem(): MemInfo[] {
    return this.snap.mem;
  }

  prepared(): PreparedInfo[] {
    return this.snap.prepared;
  }

  pause(database: string | null): boolean {
    if (!this.known(database)) return false;
    this.controls.pause(database);
    return true;
  }

  resume(database: string | null): boolean {
    if (!this.known(database)) return false;
    this.controls.resume(database);
    return true;
  }

  reconnect(database: string | null): boolean {
    if (!this.known(database)) return false;
    this.controls.reconnect(database);
    return true;
  }

  disable(database: string): boolean {
    if (!this.known(database)) return false;
    this.controls.disable(database);
    return true;
  }

  enable(database: string): boolean {
    if (!this.known(database)) return false;
    this.controls.enable(database);
    return true;
  }

  kill(database: string): boolean {
    if (!this.known(database)) return false;
    this.controls.kill(database);
    return true;
  }

  killClient(id: number): boolean {
    if (!this.snap.clients.some((c) => c.id === id)) return false;
    this.controls.killClient(id);
    return true;
  }

  setLogLevel(level: LogLevel): void {
    this.controls.setLogLevel(level);
  }

  async applied(): Promise<void> {
    // Messages between threads keep their order: a snapshot requested after a control is taken after it.
    await this.refresh();
  }

  async waitClose(database: string | null): Promise<boolean> {
    if (!this.known(database)) return false;
    let snap = this.snap;
    while (snap.servers.some((s) => s.closeNeeded && (database === null || s.database === database))) {
      await new Promise((resolve) => setTimeout(resolve, WAIT_CLOSE_POLL_MS));
      snap = await this.refresh();
    }
    return true;
  }

  reload(): void {
    this.controls.reload();
  }

  shutdown(): void {
    this.controls.shutdown();
  }

  upgrade(): void {
    this.controls.upgrade();
  }

  private known(database: string | null): boolean {
    return database === null || Object.hasOwn(this.config.pools, database);
  }
}
