/**
 * The admin console's window onto the running process: live pools, clients and servers, and the
 * controls (pause, resume, reload, shutdown).
 */
import type { DoormanConfig, GeneralConfig } from '@doorman/proto';
import { ServerPoolState } from '../pool/members.js';
import type { Pool } from '../pool/pool.js';
import { ClientState, type ClientConnection } from '../session/client.js';
import type { ServerConnection } from '../session/server.js';
import { VERSION } from '../version.js';
import type { AdminView, ClientInfo, DatabaseInfo, PoolInfo, ServerInfo, UserInfo } from './console.js';

/** What the view reads from the process. */
export interface AdminSource {
  readonly general: GeneralConfig;
  readonly config: DoormanConfig;
  readonly clients: ReadonlySet<ClientConnection>;
  readonly servers: ReadonlySet<ServerConnection>;
  /** The current pools of a database (undefined: not configured), or of every database. */
  poolsOf(database: string | null): Pool[] | undefined;
  reloadConfig(): void;
  shutdownGracefully(): void;
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

export class ProcessAdminView implements AdminView {
  readonly version = VERSION;

  constructor(private readonly src: AdminSource) {}

  get general(): GeneralConfig {
    return this.src.general;
  }

  databases(): DatabaseInfo[] {
    return Object.values(this.src.config.pools).map((db) => ({
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
    for (const db of Object.values(this.src.config.pools)) {
      for (const u of db.users) if (!seen.has(u.username)) seen.set(u.username, { name: u.username, poolMode: u.poolMode });
    }
    return [...seen.values()];
  }

  pools(): PoolInfo[] {
    const pools = this.src.poolsOf(null)!;
    const active = new Map<Pool, number>();
    const waiting = new Map<Pool, number>();
    for (const c of this.src.clients) {
      if (c.pool === null || !loggedIn(c)) continue;
      const counts = clientState(c) === 'waiting' ? waiting : active;
      counts.set(c.pool, (counts.get(c.pool) ?? 0) + 1);
    }
    return pools.map((p) => ({
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
  }

  clients(): ClientInfo[] {
    const out: ClientInfo[] = [];
    for (const c of this.src.clients) {
      if (!loggedIn(c)) continue;
      out.push({ user: c.user, database: c.database, state: clientState(c), addr: c.remoteAddress, port: c.socket.remotePort ?? 0, tls: c.tls });
    }
    return out;
  }

  servers(): ServerInfo[] {
    const out: ServerInfo[] = [];
    for (const s of this.src.servers) {
      const state = SERVER_STATES[s.poolState];
      if (state === undefined) continue;
      const p = s.pool;
      out.push({ user: p.user.username, database: p.db.name, state, addr: p.db.serverHost, port: p.db.serverPort, pid: s.processId });
    }
    return out;
  }

  pause(database: string | null): boolean {
    const pools = this.src.poolsOf(database);
    if (pools === undefined) return false;
    for (const p of pools) p.paused = true;
    return true;
  }

  resume(database: string | null): boolean {
    const pools = this.src.poolsOf(database);
    if (pools === undefined) return false;
    for (const p of pools) p.resume();
    return true;
  }

  reload(): void {
    this.src.reloadConfig();
  }

  shutdown(): void {
    this.src.shutdownGracefully();
  }
}
