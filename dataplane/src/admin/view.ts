/**
 * The admin console's window onto the running process. Each worker shard takes a snapshot of its own
 * pools, clients and servers (plain data, so it can cross threads); the console reads the merge of every
 * shard's snapshot, and its controls (pause, resume, reload, shutdown) reach every shard.
 */
import type { DoormanConfig, GeneralConfig } from '@doorman/proto';
import { ServerPoolState } from '../pool/members.js';
import type { Pool } from '../pool/pool.js';
import { ClientState, type ClientConnection } from '../session/client.js';
import type { ServerConnection } from '../session/server.js';
import { VERSION } from '../version.js';
import type { AdminView, ClientInfo, DatabaseInfo, PoolInfo, ServerInfo, UserInfo } from './console.js';

/** One shard's share of what the console shows. */
export interface ShardSnapshot {
  pools: PoolInfo[];
  clients: ClientInfo[];
  servers: ServerInfo[];
}

/** What a shard's snapshot is taken from. */
export interface SnapshotSource {
  readonly clients: ReadonlySet<ClientConnection>;
  readonly servers: ReadonlySet<ServerConnection>;
  /** The current pools of every database. */
  allPools(): Pool[];
}

/** What the console's control commands do; they reach every shard. */
export interface AdminControls {
  pause(database: string | null): void;
  resume(database: string | null): void;
  reload(): void;
  shutdown(): void;
}

const SERVER_STATES: Partial<Record<ServerPoolState, ServerInfo['state']>> = {
  [ServerPoolState.Opening]: 'login',
  [ServerPoolState.Idle]: 'idle',
  [ServerPoolState.Active]: 'active',
  [ServerPoolState.Resetting]: 'used',
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

export function takeSnapshot(src: SnapshotSource): ShardSnapshot {
  const active = new Map<Pool, number>();
  const waiting = new Map<Pool, number>();
  const clients: ClientInfo[] = [];
  for (const c of src.clients) {
    if (!loggedIn(c)) continue;
    const state = clientState(c);
    clients.push({ user: c.user, database: c.database, state, addr: c.remoteAddress, port: c.socket.remotePort ?? 0, tls: c.tls });
    if (c.pool === null) continue;
    const counts = state === 'waiting' ? waiting : active;
    counts.set(c.pool, (counts.get(c.pool) ?? 0) + 1);
  }
  const pools = src.allPools().map((p) => ({
    database: p.db.name,
    user: p.user.username,
    clActive: active.get(p) ?? 0,
    clWaiting: waiting.get(p) ?? 0,
    svActive: p.active,
    svIdle: p.idle.length,
    svLogin: p.opening,
    poolSize: p.user.poolSize,
    poolMode: p.user.poolMode,
  }));
  const servers: ServerInfo[] = [];
  for (const s of src.servers) {
    const state = SERVER_STATES[s.poolState];
    if (state === undefined) continue;
    const p = s.pool;
    servers.push({ user: p.user.username, database: p.db.name, state, addr: p.db.serverHost, port: p.db.serverPort, pid: s.processId });
  }
  return { pools, clients, servers };
}

/** Pools summed by (database, user) in first-seen order; clients and servers listed shard after shard. */
export function mergeSnapshots(snaps: readonly ShardSnapshot[]): ShardSnapshot {
  const pools = new Map<string, PoolInfo>();
  const clients: ClientInfo[] = [];
  const servers: ServerInfo[] = [];
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
      sum.svLogin += p.svLogin;
    }
    clients.push(...s.clients);
    servers.push(...s.servers);
  }
  return { pools: [...pools.values()], clients, servers };
}

export class SnapshotView implements AdminView {
  readonly version = VERSION;

  constructor(
    private readonly config: DoormanConfig,
    private readonly snap: ShardSnapshot,
    private readonly controls: AdminControls,
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

  reload(): void {
    this.controls.reload();
  }

  shutdown(): void {
    this.controls.shutdown();
  }

  private known(database: string | null): boolean {
    return database === null || Object.hasOwn(this.config.pools, database);
  }
}
