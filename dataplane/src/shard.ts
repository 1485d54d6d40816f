/**
 * One worker shard of the data plane: the client connections handed to it, their server connections, its
 * Pool objects keyed by (database, user) (their cap is shared with the other shards through the budget),
 * the coarse ticker, cancel keys, reload and shutdown. Connections do the per-message work; this file only
 * wires them. What crosses threads goes through the ShardBus.
 */
import net from 'node:net';
import tls from 'node:tls';
import { userFingerprint, type DoormanConfig, type GeneralConfig } from '@doorman/proto';
import type { Logger } from 'pino';
import type { HbaRule } from './auth/hba.js';
import type { AdminView } from './admin/console.js';
import {
  clientLocalId,
  FULL_DETAIL,
  mergeSnapshots,
  SnapshotView,
  takeSnapshot,
  type AdminControls,
  type ShardSnapshot,
  type SnapshotDetail,
  type SnapshotSource,
} from './admin/view.js';
import type { LoadedConfig } from './config/load.js';
import type { ServerBudget } from './pool/budget.js';
import { Pool } from './pool/pool.js';
import type { PoolHost } from './pool/host.js';
import type { PoolServer } from './pool/members.js';
import { ClientConnection, ClientState } from './session/client.js';
import { userCredentials, type ClientCredentials, type UserCredentials } from './session/credentials.js';
import type { SessionHost } from './session/host.js';
import { ServerConnection } from './session/server.js';
import { SocketReader, type ReadingSocketOptions } from './session/socket-reader.js';
import { errorResponse } from './protocol/backend.js';
import type { MigratedClient } from './upgrade/messages.js';
import { dupDescriptor, dupSocketDescriptor } from './workers/fd.js';
import type { EpollLoop } from './io/epoll-loop.js';
import { RawSocket } from './io/raw-socket.js';
import { TlsContext } from './io/openssl.js';
import type { ByteSocket } from './session/byte-socket.js';
import { ownerShard, SHARD_BITS, type ShardControl } from './workers/messages.js';
import { E } from './errors.js';
import type { LogLevel } from './log.js';
import { PoolStats } from './stats/pool-stats.js';

const TICK_MS = 100;
/** Pool maintenance (idle/lifetime limits, min_pool_size) runs every this many ticks. */
const MAINTENANCE_EVERY = 10;
const MAX_SHARED_ADDRESSES = 4096;

/** What a shard needs from the threads around it. */
export interface ShardBus {
  readonly index: number;
  readonly shards: number;
  /** The shared cap of pool (database, user). */
  budget(database: string, user: string): ServerBudget;
  /** Clients connected to every shard. */
  clientTotal(): number;
  /** One of this shard's clients is gone. */
  clientGone(): void;
  /** Every shard's snapshot, this one's included. */
  snapshots(detail: SnapshotDetail): Promise<ShardSnapshot[]>;
  /** The console's controls, for every shard. */
  readonly controls: AdminControls;
  /** A CancelRequest for a client of shard `shard` (-1: of the other process of a binary upgrade). */
  forwardCancel(shard: number, processId: number, secretKey: number): void;
  /** Binary upgrade: a client leaves for the new process (a duplicate of its socket's descriptor). */
  migrate(fd: number, client: MigratedClient): void;
  /** Binary upgrade: this shard has no client left. */
  migrationDone(): void;
}

export class Shard implements SessionHost, PoolHost, SnapshotSource {
  now = Date.now();
  readonly tickMs = TICK_MS;
  general: GeneralConfig;
  config: DoormanConfig;
  hba: HbaRule[] | null;
  clientTls: tls.SecureContext | null = null;
  clientSsl: TlsContext | null = null;
  serverCa: Buffer | null;
  /** OpenSSL contexts towards PostgreSQL, [encrypt only, verify], made on first use; null: Node's TLS. */
  private readonly serverContexts: (TlsContext | null | undefined)[] = [undefined, undefined];
  shuttingDown = false;
  readonly clients = new Set<ClientConnection>();
  /**
   * Clients still in startup or authentication: the only ones client_login_timeout applies to. Going over every
   * client each second cost a shard 0.6 ms per 5,000 clients, and once 11 ms, which queries of a trickle waited out.
   */
  private readonly loggingIn = new Set<ClientConnection>();
  readonly servers = new Set<ServerConnection>();
  /** pools.get(database).get(user) */
  private pools = new Map<string, Map<string, Pool>>();
  /** Counters per `database\0user`: they outlive a Pool a reload replaces. */
  private stats = new Map<string, PoolStats>();
  /** Databases an admin DISABLEd. */
  private disabled = new Set<string>();
  private creds = new Map<Pool, UserCredentials>();
  private cancelKeys = new Map<number, ClientConnection>();
  private nextProcessSeq = 1;
  private migrating = false;
  private migrationReported = false;
  private ticker: NodeJS.Timeout | null = null;
  private readonly addresses = new Map<string, string>();
  private ticks = 0;
  private shutdownDeadline = 0;
  private exitWaiters: (() => void)[] = [];
  /** The admin password the cached credentials were derived from. */
  private adminCredsFor = '';
  private adminCreds: ClientCredentials | null = null;

  constructor(
    loaded: LoadedConfig,
    readonly log: Logger,
    private readonly bus: ShardBus,
    /** The shard's own epoll loop for plain sockets; null: Node's sockets throughout. */
    readonly io: EpollLoop | null = null,
  ) {
    this.config = loaded.config;
    this.general = loaded.config.general;
    this.hba = loaded.hba;
    this.setClientTls(loaded);
    this.serverCa = loaded.serverCa;
    this.buildPools(loaded.config);
    if (io !== null) io.setTicker(() => this.tick(), TICK_MS);
    else this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  /**
   * Client TLS from the configured certificate and key: OpenSSL on the shard's loop where it can, Node's
   * TLSSocket otherwise (no loop, or DOORMAN_TLS=node). Connections keep the context they started with.
   */
  private setClientTls(loaded: LoadedConfig): void {
    this.clientTls = loaded.tls === null ? null : tls.createSecureContext(loaded.tls);
    const old = this.clientSsl;
    this.clientSsl = null;
    if (loaded.tls !== null && this.io !== null && process.env.DOORMAN_TLS !== 'node') {
      try {
        this.clientSsl = TlsContext.create(loaded.tls.cert, loaded.tls.key);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "OpenSSL refused the TLS certificate or key; TLS clients use Node's TLS");
      }
    }
    old?.free();
  }

  serverSsl(verify: boolean): TlsContext | null {
    const i = verify ? 1 : 0;
    let ctx = this.serverContexts[i];
    if (ctx !== undefined) return ctx;
    ctx = null;
    if (this.io !== null && process.env.DOORMAN_TLS !== 'node') {
      try {
        ctx = TlsContext.createForServers(verify, this.serverCa);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "OpenSSL refused server_tls_ca_cert; connections to PostgreSQL use Node's TLS");
      }
    }
    this.serverContexts[i] = ctx;
    return ctx;
  }

  /** Connections keep the context they started with; new ones get a context with the new CA. */
  private setServerCa(ca: Buffer | null): void {
    this.serverCa = ca;
    for (let i = 0; i < this.serverContexts.length; i++) {
      this.serverContexts[i]?.free();
      this.serverContexts[i] = undefined;
    }
  }

  /** Takes over an accepted client connection (a descriptor the main thread handed over). */
  adopt(fd: number, address: string | undefined, port: number | undefined): void {
    if (address !== undefined) address = this.sharedAddress(address);
    const reader = new SocketReader();
    const socket: ByteSocket =
      this.io !== null ? new RawSocket(fd, this.io, reader, address, port) : new net.Socket({ fd, readable: true, writable: true, onread: reader.options } as ReadingSocketOptions);
    if (this.shuttingDown) {
      socket.destroy();
      this.bus.clientGone();
      return;
    }
    const c = new ClientConnection(socket, this, reader);
    this.clients.add(c);
    this.loggingIn.add(c);
  }

  /** One string per client address (each arrives as a fresh copy from the main thread); bounded. */
  private sharedAddress(address: string): string {
    const known = this.addresses.get(address);
    if (known !== undefined) return known;
    if (this.addresses.size >= MAX_SHARED_ADDRESSES) this.addresses.clear();
    this.addresses.set(address, address);
    return address;
  }

  get clientCount(): number {
    return this.bus.clientTotal();
  }

  get index(): number {
    return this.bus.index;
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

  // ---- admin ----

  allPools(): Pool[] {
    const out: Pool[] = [];
    for (const byUser of this.pools.values()) out.push(...byUser.values());
    return out;
  }

  allStats(): Iterable<PoolStats> {
    return this.stats.values();
  }

  snapshot(detail: SnapshotDetail): ShardSnapshot {
    return takeSnapshot(this, detail);
  }

  async adminView(query: string): Promise<AdminView> {
    // Listing every prepared statement costs; only the command that shows them asks for it.
    const detail: SnapshotDetail = { lists: true, prepared: /prepared_statements/i.test(query) };
    const refresh = async (): Promise<ShardSnapshot> => mergeSnapshots(await this.bus.snapshots(FULL_DETAIL));
    return new SnapshotView(this.config, mergeSnapshots(await this.bus.snapshots(detail)), this.bus.controls, refresh);
  }

  isDisabled(database: string): boolean {
    return this.disabled.has(database);
  }

  /** A console control, from any shard's console. */
  control(c: ShardControl): void {
    switch (c.op) {
      case 'pause':
      case 'resume':
      case 'reconnect':
        for (const p of this.poolsOf(c.database)) {
          if (c.op === 'pause') p.paused = true;
          else if (c.op === 'resume') p.resume();
          else p.reconnect();
        }
        return;
      case 'disable':
        this.disabled.add(c.database);
        return;
      case 'enable':
        this.disabled.delete(c.database);
        return;
      case 'kill':
        for (const cl of [...this.clients]) {
          if (cl.database === c.database && cl.pool !== null) cl.fatal(E.adminKill, 'terminating connection due to administrator command');
        }
        for (const p of this.poolsOf(c.database)) p.closeAll();
        this.log.info({ database: c.database }, 'KILL: clients and servers of the database closed');
        return;
      case 'kill_client': {
        const local = clientLocalId(c.id);
        for (const cl of this.clients) {
          if (cl.id !== local) continue;
          this.log.info({ client: cl.id, user: cl.user, database: cl.database }, 'KILL_CLIENT');
          cl.fatal(E.adminKill, 'terminating connection due to administrator command');
          return;
        }
        return;
      }
      case 'log_level':
        this.setLogLevel(c.level);
        return;
    }
  }

  setLogLevel(level: LogLevel): void {
    this.log.level = level;
  }

  /** The current pools of `database` (every pool for null). */
  private poolsOf(database: string | null): Pool[] {
    return this.allPools().filter((p) => database === null || p.db.name === database);
  }

  private statsFor(database: string, user: string): PoolStats {
    const key = `${database}\0${user}`;
    let st = this.stats.get(key);
    if (st === undefined) {
      st = new PoolStats(database, user, this.now);
      this.stats.set(key, st);
    }
    return st;
  }

  /** Another shard's first server of pool (database, user) reported its startup parameters. */
  learnDefaults(database: string, user: string, status: [string, string][]): void {
    const p = this.pools.get(database)?.get(user);
    if (p !== undefined && p.defaults === null) p.defaults = { status };
  }

  /** A budget signal from another shard about pool (database, user): `evict` idle connections for shard `from`, or a slot freed. */
  budgetSignal(database: string, user: string, evict: number, from: number): void {
    const p = this.pools.get(database)?.get(user);
    if (p === undefined) return;
    if (evict > 0) p.evictIdle(evict, from);
    else p.slotFreed();
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

  closeServers(pool: Pool, reason: string): void {
    for (const s of [...this.servers]) if (s.pool === pool) s.close(reason);
  }

  registerCancelKey(c: ClientConnection): void {
    // Synthetic keys: a client never learns a real backend's pid, so it cannot cancel someone else's query.
    // The low bits name this shard, so a CancelRequest that lands on another shard can be routed here.
    const maxSeq = 0x7fffffff >>> SHARD_BITS;
    let pid: number;
    do {
      const seq = this.nextProcessSeq;
      this.nextProcessSeq = seq >= maxSeq ? 1 : seq + 1;
      pid = (seq << SHARD_BITS) | this.bus.index;
    } while (this.cancelKeys.has(pid));
    c.processId = pid;
    c.secretKey = (Math.random() * 0x100000000) | 0;
    this.cancelKeys.set(pid, c);
  }

  /**
   * A CancelRequest. A key this shard does not hold goes to the shard its low bits name, or, when it is
   * that shard's and unknown, to the other process of a binary upgrade (unless it came from there: `final`).
   */
  cancel(processId: number, secretKey: number, final = false): void {
    const owner = ownerShard(processId, this.bus.shards);
    if (owner !== this.bus.index) {
      if (!final) this.bus.forwardCancel(owner, processId, secretKey);
      return;
    }
    const c = this.cancelKeys.get(processId);
    if (c === undefined) {
      if (!final) this.bus.forwardCancel(-1, processId, secretKey);
      return;
    }
    if (c.secretKey !== secretKey) return;
    // A query on a server is cancelled there; once the server is back in the pool the key no longer reaches it.
    if (c.server !== null && c.pending > 0) c.server.cancel();
    else c.cancelWaiting();
  }

  // ---- binary upgrade ----

  /** Clients move to the new process as they become idle; the shard reports when none is left. */
  startMigration(): void {
    if (this.migrating || this.shuttingDown) return;
    this.migrating = true;
    this.sweepMigrations();
  }

  private sweepMigrations(): void {
    // A send still in the loop's ring is not in writableLength yet; made now, what the kernel did not take
    // is, and keeps that client here until it has gone out.
    this.io?.flushSends();
    for (const c of this.clients) {
      const m = c.detachForMigration();
      if (m === null) continue;
      let fd: number;
      try {
        const s = c.socket;
        fd = s instanceof RawSocket ? dupDescriptor(s.fd) : dupSocketDescriptor(s as net.Socket);
      } catch (err) {
        this.log.error({ client: c.id, err: (err as Error).message }, 'cannot hand a client over to the new process');
        c.socket.destroy();
        this.clientClosed(c);
        continue;
      }
      // Closes this descriptor only; the connection lives on in the duplicate. The client is Closed already,
      // so its close handler does nothing.
      c.socket.destroy();
      this.clients.delete(c);
      this.bus.clientGone();
      if (this.cancelKeys.get(c.processId) === c) this.cancelKeys.delete(c.processId);
      this.bus.migrate(fd, m);
    }
    if (this.clients.size === 0 && !this.migrationReported) {
      this.migrationReported = true;
      this.bus.migrationDone();
    }
  }

  /** A client that moved in from the old process, with the socket descriptor the main thread received. */
  adoptMigrated(fd: number, m: MigratedClient): void {
    const reader = new SocketReader();
    const socket = new net.Socket({ fd, readable: true, writable: true, onread: reader.options } as ReadingSocketOptions);
    const pool = this.findPool(m.database, m.user);
    if (!(pool instanceof Pool)) {
      socket.end(errorResponse({ severity: 'FATAL', code: '57P01', message: `pool "${m.database}/${m.user}" is not configured after the upgrade` }));
      this.bus.clientGone();
      return;
    }
    const c = ClientConnection.migrated(socket, reader, this, pool, m);
    this.clients.add(c);
    this.cancelKeys.set(c.processId, c);
    this.log.info({ client: c.id, addr: c.remoteAddress, user: c.user, database: c.database }, 'client moved in');
    c.replay(m.pending);
  }

  clientLoggedIn(c: ClientConnection): void {
    this.loggingIn.delete(c);
    this.log.info({ client: c.id, addr: c.remoteAddress, user: c.user, database: c.database, tls: c.tls }, 'client logged in');
  }

  clientClosed(c: ClientConnection): void {
    this.loggingIn.delete(c);
    if (!this.clients.delete(c)) return;
    this.bus.clientGone();
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

  private buildPools(config: DoormanConfig): void {
    for (const db of Object.values(config.pools)) {
      const byUser = new Map<string, Pool>();
      for (const user of db.users) {
        const pool = new Pool(this, db, user, this.bus.budget(db.name, user.username), this.statsFor(db.name, user.username));
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
          pool = new Pool(this, db, user, this.bus.budget(db.name, user.username), this.statsFor(db.name, user.username));
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
    for (const [key, st] of this.stats) if (fresh.get(st.database)?.get(st.user) === undefined) this.stats.delete(key);
    this.config = next;
    this.general = { ...next.general, host: this.general.host, port: this.general.port };
    this.hba = loaded.hba;
    this.setClientTls(loaded);
    this.setServerCa(loaded.serverCa);
    this.log.debug({ kept, replaced, added, removed }, 'shard reloaded');
  }

  // ---- ticker ----

  private tick(): void {
    this.now = Date.now();
    const maintenance = ++this.ticks % MAINTENANCE_EVERY === 0;
    for (const byUser of this.pools.values()) for (const p of byUser.values()) p.tick(this.now, maintenance && !this.shuttingDown);
    for (const st of this.stats.values()) st.tick(this.now);
    if (maintenance) {
      // Doorman's own queries (health check, parameter sync, reset) are short: one that hangs means a dead server.
      const bound = Math.max(this.general.connectTimeout, 1000);
      for (const s of this.servers) {
        if (s.internalOverdue(this.now, bound)) s.close('the server did not answer a health check, sync or reset in time');
        else if (s.lost) {
          this.log.error({ server: s.id, pid: s.processId, pool: s.pool.name, poolState: s.poolState }, 'a server connection was lost by its pool; closed so that its slot is free again');
          s.close('lost by its pool');
        }
      }
      const loginTimeout = this.general.clientLoginTimeout;
      for (const c of this.loggingIn) {
        if (c.state > ClientState.Auth) this.loggingIn.delete(c);
        else if (loginTimeout > 0 && this.now - c.startedAt > loginTimeout) c.close();
      }
    }
    if (this.migrating) this.sweepMigrations();
    if (this.shuttingDown && this.now >= this.shutdownDeadline) this.forceClose();
    // Shutdown and migration go on partly in promise callbacks: let Node run them at the ticker's pace.
    if (this.shuttingDown || this.migrating) this.io?.yieldSoon();
  }

  // ---- shutdown ----

  /**
   * Graceful: close clients that are between transactions, let the others finish up to
   * shutdown_timeout. Fast: close everything now. Resolves when every connection is gone.
   */
  shutdown(graceful: boolean): Promise<void> {
    if (!this.shuttingDown) {
      this.shuttingDown = true;
      this.shutdownDeadline = this.now + (graceful ? this.general.shutdownTimeout : 0);
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
    this.io?.setTicker(null, 0);
    // The waiters go on in promise callbacks, which run once the loop hands control back to Node.
    this.io?.yieldSoon();
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    for (const w of waiters) w();
  }
}
