/**
 * The data plane process: the listener, the pools keyed by (database, user), the coarse ticker, cancel
 * routing, reload and shutdown. Connections do the per-message work; this file only wires them.
 */
import net from 'node:net';
import tls from 'node:tls';
import { userFingerprint, type DoormanConfig, type GeneralConfig } from '@doorman/proto';
import type { Logger } from 'pino';
import type { HbaRule } from './auth/hba.js';
import type { AdminView } from './admin/console.js';
import { ProcessAdminView, type AdminSource } from './admin/view.js';
import type { LoadedConfig } from './config/load.js';
import { Pool } from './pool/pool.js';
import type { PoolHost } from './pool/host.js';
import type { PoolServer } from './pool/members.js';
import { ClientConnection, ClientState } from './session/client.js';
import { userCredentials, type ClientCredentials, type UserCredentials } from './session/credentials.js';
import type { SessionHost } from './session/host.js';
import { ServerConnection } from './session/server.js';

const TICK_MS = 100;
/** Pool maintenance (idle/lifetime limits, min_pool_size) runs every this many ticks. */
const MAINTENANCE_EVERY = 10;
/** A client that has not finished logging in by then is cut off (PgBouncer's client_login_timeout). */
const LOGIN_TIMEOUT_MS = 60_000;

/** What SIGHUP and SIGTERM do (the CLI owns the config path and the process exit); the console's RELOAD and SHUTDOWN. */
export interface ProcessControls {
  reload(): void;
  shutdown(): void;
}

export class Doorman implements SessionHost, PoolHost, AdminSource {
  now = Date.now();
  general: GeneralConfig;
  config: DoormanConfig;
  hba: HbaRule[] | null;
  clientTls: tls.SecureContext | null;
  serverCa: Buffer | null;
  shuttingDown = false;
  clientCount = 0;
  readonly clients = new Set<ClientConnection>();
  readonly servers = new Set<ServerConnection>();
  /** pools.get(database).get(user) */
  private pools = new Map<string, Map<string, Pool>>();
  private creds = new Map<Pool, UserCredentials>();
  private cancelKeys = new Map<number, ClientConnection>();
  private nextProcessId = 1;
  private listener: net.Server | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private ticks = 0;
  private shutdownDeadline = 0;
  private exitWaiters: (() => void)[] = [];
  readonly admin: AdminView = new ProcessAdminView(this);
  /** The admin password the cached credentials were derived from. */
  private adminCredsFor = '';
  private adminCreds: ClientCredentials | null = null;

  constructor(
    loaded: LoadedConfig,
    readonly log: Logger,
    private readonly controls: ProcessControls,
  ) {
    this.config = loaded.config;
    this.general = loaded.config.general;
    this.hba = loaded.hba;
    this.clientTls = loaded.tls === null ? null : tls.createSecureContext(loaded.tls);
    this.serverCa = loaded.serverCa;
    this.buildPools(loaded.config);
  }

  /** Binds the listener; resolves with the bound address. */
  listen(): Promise<net.AddressInfo> {
    const server = net.createServer({ noDelay: this.general.tcpNoDelay }, (socket) => this.onConnection(socket));
    this.listener = server;
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.general.host, port: this.general.port, backlog: 4096 }, () => {
        server.removeListener('error', reject);
        const addr = server.address() as net.AddressInfo;
        this.log.info({ host: addr.address, port: addr.port, pools: this.poolNames() }, 'listening');
        resolve(addr);
      });
    });
  }

  private onConnection(socket: net.Socket): void {
    if (this.shuttingDown) {
      socket.destroy();
      return;
    }
    this.clientCount++;
    const c = new ClientConnection(socket, this);
    this.clients.add(c);
  }

  // ---- SessionHost / PoolHost ----

  findPool(database: string, user: string): Pool | null | undefined {
    const byUser = this.pools.get(database);
    if (byUser === undefined) return undefined;
    return byUser.get(user) ?? null;
  }

  adminCredentials(): ClientCredentials | null {
    const password = this.general.adminPassword;
    if (password === '') return null;
    if (this.adminCreds === null || this.adminCredsFor !== password) {
      const u = this.general.adminUsername;
      // Derived like a configured user's, so the same SCRAM / md5 / cleartext exchange checks it.
      this.adminCreds = userCredentials({
        username: u,
        password,
        poolSize: 0,
        minPoolSize: 0,
        reservePoolSize: 0,
        poolMode: 'session',
        serverUsername: u,
        serverPassword: null,
        serverLifetime: 0,
      }).client;
      this.adminCredsFor = password;
    }
    return this.adminCreds;
  }

  // ---- AdminSource ----

  poolsOf(database: string | null): Pool[] | undefined {
    if (database === null) {
      const out: Pool[] = [];
      for (const byUser of this.pools.values()) out.push(...byUser.values());
      return out;
    }
    const byUser = this.pools.get(database);
    return byUser === undefined ? undefined : [...byUser.values()];
  }

  reloadConfig(): void {
    this.controls.reload();
  }

  shutdownGracefully(): void {
    this.controls.shutdown();
  }

  credentials(pool: Pool): UserCredentials {
    return this.creds.get(pool)!;
  }

  createServer(pool: Pool): PoolServer {
    const s = new ServerConnection(pool, this, this.creds.get(pool)!.server);
    this.servers.add(s);
    return s;
  }

  closeServer(s: PoolServer, reason: string): void {
    (s as ServerConnection).close(reason);
  }

  registerCancelKey(c: ClientConnection): void {
    // Synthetic keys: a client never learns a real backend's pid, so it cannot cancel someone else's query.
    let pid = this.nextProcessId;
    while (this.cancelKeys.has(pid)) pid = pid >= 0x7fffffff ? 1 : pid + 1;
    this.nextProcessId = pid >= 0x7fffffff ? 1 : pid + 1;
    c.processId = pid;
    c.secretKey = (Math.random() * 0x100000000) | 0;
    this.cancelKeys.set(pid, c);
  }

  cancel(processId: number, secretKey: number): void {
    const c = this.cancelKeys.get(processId);
    if (c === undefined || c.secretKey !== secretKey) return;
    // Only a query in flight is cancelled; once the server is back in the pool the key no longer reaches it.
    if (c.server !== null && c.pending > 0) c.server.cancel();
  }

  clientLoggedIn(c: ClientConnection): void {
    this.log.info({ client: c.id, addr: c.remoteAddress, user: c.user, database: c.database, tls: c.tls }, 'client logged in');
  }

  clientClosed(c: ClientConnection): void {
    if (!this.clients.delete(c)) return;
    this.clientCount--;
    if (c.processId !== 0 && this.cancelKeys.get(c.processId) === c) this.cancelKeys.delete(c.processId);
    if (c.user !== '') this.log.info({ client: c.id, addr: c.remoteAddress, user: c.user, database: c.database }, 'client closed');
    if (this.shuttingDown) this.checkExit();
  }

  serverClosed(s: ServerConnection): void {
    if (!this.servers.delete(s)) return;
    if (s.closeReason !== '') this.log.info({ server: s.id, pool: s.pool.name, pid: s.processId, reason: s.closeReason }, 'server closed');
    if (this.shuttingDown) this.checkExit();
  }

  // ---- pools, reload ----

  private poolNames(): string[] {
    const out: string[] = [];
    for (const byUser of this.pools.values()) for (const p of byUser.values()) out.push(p.name);
    return out;
  }

  private buildPools(config: DoormanConfig): void {
    for (const db of Object.values(config.pools)) {
      const byUser = new Map<string, Pool>();
      for (const user of db.users) {
        const pool = new Pool(this, db, user);
        this.creds.set(pool, userCredentials(user));
        byUser.set(user.username, pool);
      }
      this.pools.set(db.name, byUser);
    }
  }

  /**
   * Applies a new config. Pools whose server-side settings are unchanged keep their connections (their
   * sizes and timeouts update in place); changed pools are replaced and drain; removed pools drain.
   */
  reload(loaded: LoadedConfig): void {
    const next = loaded.config;
    const creds = new Map<string, UserCredentials>();
    for (const db of Object.values(next.pools)) for (const u of db.users) creds.set(`${db.name}\0${u.username}`, userCredentials(u));
    const old = this.pools;
    const fresh = new Map<string, Map<string, Pool>>();
    let kept = 0;
    let replaced = 0;
    let added = 0;
    for (const db of Object.values(next.pools)) {
      const byUser = new Map<string, Pool>();
      for (const user of db.users) {
        const prev = old.get(db.name)?.get(user.username);
        let pool: Pool;
        if (prev !== undefined && userFingerprint(prev.db, prev.user) === userFingerprint(db, user)) {
          prev.db = db;
          prev.user = user;
          pool = prev;
          kept++;
        } else {
          pool = new Pool(this, db, user);
          if (prev !== undefined) {
            pool.paused = prev.paused;
            prev.successor = pool;
            replaced++;
          } else {
            added++;
          }
        }
        this.creds.set(pool, creds.get(`${db.name}\0${user.username}`)!);
        byUser.set(user.username, pool);
      }
      fresh.set(db.name, byUser);
    }
    let removed = 0;
    for (const byUser of old.values()) {
      for (const p of byUser.values()) {
        if (fresh.get(p.db.name)?.get(p.user.username) === p) continue;
        if (p.successor === null) removed++;
        p.retire();
      }
    }
    this.pools = fresh;
    const listenChanged = next.general.host !== this.general.host || next.general.port !== this.general.port;
    this.config = next;
    this.general = { ...next.general, host: this.general.host, port: this.general.port };
    this.hba = loaded.hba;
    this.clientTls = loaded.tls === null ? null : tls.createSecureContext(loaded.tls);
    this.serverCa = loaded.serverCa;
    this.log.info({ kept, replaced, added, removed }, 'configuration reloaded');
    if (listenChanged) this.log.warn('general.host/general.port changes need a restart; still listening on the old address');
  }

  // ---- ticker ----

  private tick(): void {
    this.now = Date.now();
    const maintenance = ++this.ticks % MAINTENANCE_EVERY === 0;
    for (const byUser of this.pools.values()) for (const p of byUser.values()) p.tick(this.now, maintenance && !this.shuttingDown);
    if (maintenance) {
      // Doorman's own queries (health check, parameter sync, reset) are short: one that hangs means a dead server.
      const bound = Math.max(this.general.connectTimeout, 1000);
      for (const s of this.servers) if (s.internalOverdue(this.now, bound)) s.close('the server did not answer a health check, sync or reset in time');
      for (const c of this.clients) {
        if (c.state <= ClientState.Auth && this.now - c.startedAt > LOGIN_TIMEOUT_MS) c.close();
      }
    }
    if (this.shuttingDown && this.now >= this.shutdownDeadline) this.forceClose();
  }

  // ---- shutdown ----

  /**
   * Graceful: stop accepting, close clients that are between transactions, let the others finish up to
   * shutdown_timeout. Fast: close everything now. Resolves when every connection is gone.
   */
  shutdown(graceful: boolean): Promise<void> {
    if (!this.shuttingDown) {
      this.shuttingDown = true;
      this.shutdownDeadline = this.now + (graceful ? this.general.shutdownTimeout : 0);
      this.listener?.close();
      this.log.info({ graceful, clients: this.clientCount, timeoutMs: graceful ? this.general.shutdownTimeout : 0 }, 'shutting down');
      if (graceful) {
        for (const c of [...this.clients]) {
          if (c.state <= ClientState.Auth || c.betweenTransactions) {
            c.fatal({ code: 'DM_ADMIN_SHUTDOWN', sqlstate: '57P01', severity: 'FATAL' }, 'terminating connection due to administrator command');
          }
        }
      } else {
        this.forceClose();
      }
    }
    return new Promise((resolve) => {
      this.exitWaiters.push(resolve);
      this.checkExit();
    });
  }

  private forceClose(): void {
    for (const c of [...this.clients]) c.fatal({ code: 'DM_ADMIN_SHUTDOWN', sqlstate: '57P01', severity: 'FATAL' }, 'terminating connection due to administrator command');
    for (const byUser of this.pools.values()) for (const p of byUser.values()) p.retire();
    for (const s of [...this.servers]) s.close('shutdown');
  }

  private checkExit(): void {
    if (this.clients.size > 0) return;
    // With no clients left, idle servers are all that remains: close them and wait for their sockets.
    for (const byUser of this.pools.values()) for (const p of byUser.values()) p.retire();
    if (this.servers.size > 0) return;
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    for (const w of waiters) w();
  }
}
