/**
 * One pool per (database, user): the server connections it owns and the clients waiting for one.
 *
 * Every server connection is in exactly one pool state; the counters below move only in the transition
 * methods of this class, so they cannot drift. Waiters are served strictly first come, first served; a
 * returned server goes straight to the oldest waiter.
 *
 * With worker shards, each shard has its own Pool for a (database, user) and they share one ServerBudget:
 * the cap counts connections over all shards, and a shard whose clients wait while another holds idle or
 * more than its share of connections gets one closed there and opens its own (see budget.ts).
 */
import type { PoolConfig, UserConfig } from '@doorman/proto';
import { E } from '../errors.js';
import { preciseNow } from '../io/batch-clock.js';
import { applySync, forgetUnreported, syncQueryFor } from '../session/params.js';
import { Dirty, resetStatements } from '../session/reset.js';
import { StatementRegistry } from '../prepared/statements.js';
import type { PoolStats } from '../stats/pool-stats.js';
import type { ServerBudget } from './budget.js';
import { Queue } from './queue.js';
import type { PoolHost } from './host.js';
import { ServerPoolState, type PoolClient, type PoolServer } from './members.js';

/** The first server's startup ParameterStatus list, replayed to every client at login. */
export interface PoolDefaults {
  /** [name as PostgreSQL spells it, value] in the order PostgreSQL sent them. */
  readonly status: ReadonlyArray<readonly [string, string]>;
}

/** The health check: an empty query. */
const HEALTH_CHECK: readonly string[] = [''];

export class Pool {
  readonly name: string;
  idle: PoolServer[] = [];
  readonly waiters = new Queue<PoolClient>();
  /** Live waiters (the queue may still hold clients that left; they are skipped). */
  waiting = 0;
  opening = 0;
  active = 0;
  resetting = 0;
  defaults: PoolDefaults | null = null;
  /** Transaction-mode prepared statements shared by the pool's clients. */
  readonly statements: StatementRegistry;
  /** Set by reload: no new clients; servers close as they come back. */
  retired = false;
  /** The pool that replaced this one on reload, for clients still attached here. */
  successor: Pool | null = null;
  /** Admin PAUSE: waiters queue, but no server is handed out or opened until resume(). */
  paused = false;
  lastServerError: string | null = null;
  /** What PostgreSQL reports for a client's spelling of a reported parameter ("iso" -> "ISO, MDY"). */
  private readonly canonical = new Map<string, string>();
  private retryAt = 0;
  private retryDelay = 0;
  /**
   * Admin RECONNECT bumps it: a server from an older generation is closed instead of reused (see expired()).
   * Servers carry the generation they were opened in.
   */
  generation = 0;
  /** Demand samples (active + waiting) since the last tick, and their smoothed average (see budget.ts). */
  private demandSum = 0;
  private demandSamples = 0;
  private demand = 0;
  /**
   * Coarse time of the last connection given up for another shard: at check-in at most one per tick, and
   * for that tick the freed slot is left to the other shard.
   */
  private lastDonation = 0;

  constructor(
    readonly host: PoolHost,
    public db: PoolConfig,
    public user: UserConfig,
    readonly budget: ServerBudget,
    readonly stats: PoolStats,
  ) {
    this.name = `${db.name}/${user.username}`;
    this.statements = new StatementRegistry(host.general.preparedStatementsCacheSize, stats);
  }

  get total(): number {
    return this.idle.length + this.opening + this.active + this.resetting;
  }

  get transactionMode(): boolean {
    return this.user.poolMode === 'transaction';
  }

  canonicalValue(key: string, raw: string): string | undefined {
    return this.canonical.get(`${key}\0${raw}`);
  }

  learnCanonical(key: string, raw: string, reported: string): void {
    // Bounded: the spellings come from clients.
    if (this.canonical.size >= 1024) this.canonical.clear();
    this.canonical.set(`${key}\0${raw}`, reported);
  }

  /** A client needs a server: hand it one now, or queue it. */
  acquire(client: PoolClient): void {
    this.demandSum += this.active + this.waiting + 1;
    this.demandSamples++;
    if (this.waiting === 0 && !this.paused) {
      const s = this.takeIdle();
      if (s !== null) {
        client.waitedSince = 0;
        this.prepare(s, client);
        return;
      }
    }
    client.waitStart = this.host.now;
    // The precise clock only for clients that really queue: the common path takes no reading.
    client.waitedSince = preciseNow();
    this.waiters.push(client);
    this.waiting++;
    this.grow();
  }

  /**
   * Another shard's clients wait: close up to `count` idle connections (the least recently used first) so
   * that shard `to` can open them: one if `to` holds none at all, and any this shard holds beyond its share.
   * Waiting for this shard's demand average to decay kept a client of a pool_size 1 pool waiting 0.7 s
   * whenever the previous transaction ran on the other shard.
   */
  evictIdle(count: number, to: number): void {
    let forStarving = this.budget.starving(to) ? 1 : 0;
    while (count-- > 0 && this.idle.length > 0) {
      if (forStarving > 0) forStarving--;
      else if (!this.budget.hasSurplus(this.user.poolSize)) break;
      this.stats.shardEvictions++;
      this.giveAway(this.idle.shift() as PoolServer);
      // The next round's surplus reads the gauge this shard publishes.
      this.publish();
    }
  }

  /** `s`, idle and out of every list, is closed so that a waiting shard can open one in its slot. */
  private giveAway(s: PoolServer): void {
    this.lastDonation = this.host.now;
    s.poolState = ServerPoolState.Closed;
    this.host.closeServer(s, 'closed for a waiting client of another worker');
  }

  /** Another shard released a slot while clients here may be waiting. */
  slotFreed(): void {
    this.budget.answered();
    this.grow();
  }

  /** Shares this pool's gauges with the other shards. */
  publish(): void {
    this.budget.publish(this.idle.length, this.waiting, this.total);
  }

  /** This shard's part of min_pool_size: the shards together keep min_pool_size open. */
  private minShare(): number {
    const { shards, shard } = this.budget;
    const min = this.user.minPoolSize;
    return Math.floor(min / shards) + (shard < min % shards ? 1 : 0);
  }

  /** Admin RESUME: the queue is served from idle servers first, then by opening more. */
  resume(): void {
    this.paused = false;
    while (this.waiting > 0) {
      const s = this.takeIdle();
      if (s === null) break;
      this.offer(s);
    }
    this.grow();
  }

  /** A queued client went away; its queue entry is skipped when it reaches the head. */
  cancelWait(): void {
    this.waiting--;
    this.publish();
  }

  /** A client is done with its server (transaction end in transaction mode, disconnect in session mode). */
  checkin(s: PoolServer): void {
    this.leave(s);
    const stmts = resetStatements(s.dirty, s.txStatus, !this.transactionMode && s.sessionUsed);
    s.sessionUsed = false;
    if (this.retired || this.expired(s)) {
      this.host.closeServer(s, 'returned to a retired pool or past server_lifetime');
      return;
    }
    if (stmts.length === 0 && s.cancelsInFlight === 0) {
      this.reuse(s);
      return;
    }
    this.enter(s, ServerPoolState.Resetting);
    this.reset(s, stmts);
  }

  /** Runs the reset statements once the cancels sent for the last client are done. */
  private reset(s: PoolServer, stmts: readonly string[]): void {
    const afterCancels = (): void => {
      if (stmts.length === 0) return this.resetDone(s, true);
      s.runInternal(stmts, (ok) => this.resetDone(s, ok));
    };
    if (s.cancelsInFlight > 0) s.onCancelsDone = afterCancels;
    else afterCancels();
  }

  /** A server connection closed or was closed, in whatever state it was. */
  serverGone(s: PoolServer): void {
    if (s.poolState === ServerPoolState.Idle) {
      const i = this.idle.indexOf(s);
      if (i >= 0) this.idle.splice(i, 1);
      s.poolState = ServerPoolState.Closed;
    } else {
      this.leave(s);
    }
    // The slot is given back only once the socket is closed, so the cap holds for sockets, not intentions.
    if (s.holdsSlot) {
      s.holdsSlot = false;
      this.budget.release();
    }
    this.grow();
  }

  /** Coarse periodic work: wait timeouts, reserve pool, retries, idle and lifetime limits, min_pool_size. */
  tick(now: number, maintenance: boolean): void {
    const current = this.active + this.waiting;
    this.demand = (this.demand + (this.demandSamples > 0 ? this.demandSum / this.demandSamples : current)) / 2;
    this.demandSum = 0;
    this.demandSamples = 0;
    this.budget.publishDemand(this.demand);
    if (this.budget.shards > 1) this.budget.tick(this.user.poolSize);
    const timeout = this.db.queryWaitTimeout;
    let head = this.waiters.peek();
    while (head !== undefined) {
      if (!head.isWaiting) {
        this.waiters.shift();
      } else if (timeout > 0 && now - head.waitStart >= timeout) {
        this.waiters.shift();
        this.waiting--;
        this.stats.waitTimeouts++;
        const detail = this.lastServerError ? `last server error: ${this.lastServerError}` : undefined;
        head.failWait(
          E.queryWaitTimeout,
          `could not get a server connection within query_wait_timeout (${timeout} ms): ${this.active} of ${this.user.poolSize} server connections of pool "${this.name}" are busy`,
          detail,
        );
      } else {
        break;
      }
      head = this.waiters.peek();
    }
    if (this.waiting > 0 && (this.retryAt === 0 || now >= this.retryAt)) this.grow();
    else this.publish();
    if (!maintenance) return;
    const g = this.host.general;
    for (let i = 0; i < this.idle.length; ) {
      const s = this.idle[i];
      const idleTooLong = g.serverIdleTimeout > 0 && now - s.lastUsed > g.serverIdleTimeout && this.total > this.minShare();
      if (this.expired(s) || idleTooLong) {
        this.idle.splice(i, 1);
        s.poolState = ServerPoolState.Closed;
        this.host.closeServer(s, idleTooLong ? 'server_idle_timeout' : 'server_lifetime');
      } else {
        i++;
      }
    }
    if (!this.retired && !this.paused && (this.retryAt === 0 || now >= this.retryAt)) {
      const min = this.minShare();
      while (this.total < min && this.budget.tryTake(this.user.poolSize)) this.open();
    }
    this.publish();
  }

  /** Admin RECONNECT: idle servers close now, busy ones when they come back (their generation is old). */
  reconnect(): void {
    this.generation++;
    for (const s of this.idle) {
      s.poolState = ServerPoolState.Closed;
      this.host.closeServer(s, 'RECONNECT');
    }
    this.idle = [];
    this.grow();
  }

  /** Admin KILL: every server of the pool closes now, whatever it is doing. */
  closeAll(): void {
    this.generation++;
    this.idle = [];
    this.host.closeServers(this, 'KILL');
    this.publish();
  }

  /** Servers that will not be reused (RECONNECT, a retired pool) and are still open. */
  closeNeeded(s: PoolServer): boolean {
    return this.retired || s.generation !== this.generation;
  }

  /** Clients have queued this long (ms, coarse clock); 0 when none wait. */
  maxWait(now: number): number {
    let head = this.waiters.peek();
    while (head !== undefined && !head.isWaiting) {
      this.waiters.shift();
      head = this.waiters.peek();
    }
    return head === undefined ? 0 : now - head.waitStart;
  }

  /** Closes idle servers now (reload of a changed pool, shutdown); busy ones close when returned. */
  retire(): void {
    this.retired = true;
    for (const s of this.idle) {
      s.poolState = ServerPoolState.Closed;
      this.host.closeServer(s, 'pool retired');
    }
    this.idle = [];
    this.publish();
  }

  // ---- transitions ----

  private enter(s: PoolServer, state: ServerPoolState): void {
    s.poolState = state;
    if (state === ServerPoolState.Active) this.active++;
    else if (state === ServerPoolState.Resetting) this.resetting++;
    else if (state === ServerPoolState.Opening) this.opening++;
  }

  private leave(s: PoolServer): void {
    const state = s.poolState;
    if (state === ServerPoolState.Active) this.active--;
    else if (state === ServerPoolState.Resetting) this.resetting--;
    else if (state === ServerPoolState.Opening) this.opening--;
    s.poolState = ServerPoolState.Closed;
  }

  private expired(s: PoolServer): boolean {
    if (s.generation !== this.generation) return true;
    const life = this.user.serverLifetime;
    return life > 0 && this.host.now - s.createdAt > life;
  }

  private takeIdle(): PoolServer | null {
    while (this.idle.length > 0) {
      const s = this.idle.pop() as PoolServer;
      if (!this.expired(s)) return s;
      s.poolState = ServerPoolState.Closed;
      this.host.closeServer(s, 'server_lifetime');
    }
    return null;
  }

  /**
   * A client is done with `s` and it is clean: it serves here, or is closed so that another shard can open
   * one: a shard whose clients wait with no connection at all, once `s` has served here for a tick after its
   * login (with pool_size 1 and clients waiting on both shards the connection takes turns, each costing a
   * login; it used to stay here for good), or a shard holding at least one less than its share for a few
   * ticks (ServerBudget.shouldDonate).
   */
  private reuse(s: PoolServer): void {
    const now = this.host.now;
    if (this.budget.shards > 1 && now !== this.lastDonation) {
      if ((this.budget.othersStarving() && preciseNow() - s.servingSince >= this.host.tickMs) || this.budget.shouldDonate(this.user.poolSize)) {
        this.stats.shardDonations++;
        this.giveAway(s);
        return;
      }
    }
    this.offer(s);
  }

  /** A clean server is available: the oldest waiter gets it, else it goes idle. */
  private offer(s: PoolServer): void {
    while (this.waiting > 0 && !this.paused) {
      const c = this.waiters.shift() as PoolClient;
      if (!c.isWaiting) continue;
      this.waiting--;
      this.prepare(s, c);
      this.publish();
      return;
    }
    // Nobody waits here, and another shard's clients wait with no connection at all: its slot goes there now.
    if (this.budget.shards > 1 && this.budget.othersStarving()) {
      this.stats.shardDonations++;
      this.giveAway(s);
      return;
    }
    s.poolState = ServerPoolState.Idle;
    s.lastUsed = this.host.now;
    this.idle.push(s);
    this.publish();
  }

  /** Health check (after a long idle) and parameter sync, then the client gets the server; `retry` after a failed check (its wait was counted). */
  private prepare(s: PoolServer, c: PoolClient, retry = false): void {
    if (!retry) this.stats.wait(c.waitedSince === 0 ? 0 : (preciseNow() - c.waitedSince) * 1000);
    c.waitedSince = 0;
    this.enter(s, ServerPoolState.Active);
    c.reserve(s);
    const checkDelay = this.host.general.serverCheckDelay;
    if (checkDelay > 0 && this.host.now - s.lastUsed > checkDelay) this.check(s, c);
    else this.sync(s, c);
  }

  // The callbacks of internal queries live in methods of their own: a function that makes a closure allocates
  // its context at every call, and prepare() and sync() run at every transaction.

  private check(s: PoolServer, c: PoolClient): void {
    s.runInternal(HEALTH_CHECK, (ok) => {
      if (ok) this.sync(s, c);
      else this.retryFor(s, c);
    });
  }

  private sync(s: PoolServer, c: PoolClient): void {
    if (!c.isReserving(s)) return this.checkin(s);
    const q = syncQueryFor(c.wanted, s.status, s.extra, s.agreement);
    if (q === null) return c.attach(s);
    this.syncParameters(s, c, q);
  }

  private syncParameters(s: PoolServer, c: PoolClient, q: string): void {
    const wanted = c.wanted;
    s.runInternal([q], (ok, error) => {
      if (!c.isReserving(s)) return this.checkin(s);
      // No answer at all (the server died, or hung past connect_timeout and was closed): the client waits for another.
      if (!ok && error === undefined) return this.retryFor(s, c);
      if (!ok) {
        // The client's startup parameters are not acceptable to PostgreSQL: fail it as PostgreSQL would.
        this.checkin(s);
        c.failWithServerError(error as NonNullable<typeof error>);
        return;
      }
      applySync(wanted, s.extra);
      c.attach(s);
    });
  }

  /** The health check or sync got no answer: that server is gone; the client goes back to the head of the queue. */
  private retryFor(s: PoolServer, c: PoolClient): void {
    this.host.closeServer(s, 'no answer to a health check or sync');
    if (!c.isReserving(s)) return;
    c.unreserve();
    if (!c.isWaiting) return;
    const next = this.paused ? null : this.takeIdle();
    if (next !== null) return this.prepare(next, c, true);
    c.waitStart = this.host.now;
    c.waitedSince = preciseNow();
    this.waiters.unshift(c);
    this.waiting++;
    this.grow();
  }

  private resetDone(s: PoolServer, ok: boolean): void {
    if (!ok || s.poolState !== ServerPoolState.Resetting) {
      if (s.poolState !== ServerPoolState.Closed) this.host.closeServer(s, 'reset failed');
      return;
    }
    this.leave(s);
    if (s.dirty & (Dirty.Settings | Dirty.Everything)) forgetUnreported(s.extra);
    // DEALLOCATE ALL / DISCARD ALL dropped the pool's statements on this server too.
    if (s.dirty & (Dirty.Prepared | Dirty.Everything) || !this.transactionMode) s.prepared.clear();
    s.dirty = Dirty.None;
    if (this.retired || this.expired(s)) return this.host.closeServer(s, 'server_lifetime');
    this.reuse(s);
  }

  /** Opens connections while clients wait and the cap allows; the reserve counts after reserve_pool_timeout. */
  private grow(): void {
    if (this.retired || this.paused || (this.retryAt !== 0 && this.host.now < this.retryAt)) {
      this.publish();
      return;
    }
    const now = this.host.now;
    let cap = this.user.poolSize;
    const head = this.waiters.peek();
    if (head !== undefined && this.user.reservePoolSize > 0 && now - head.waitStart >= this.host.general.reservePoolTimeout) {
      cap += this.user.reservePoolSize;
    }
    const budget = this.budget;
    while (
      this.waiting > this.opening &&
      budget.open < cap &&
      !(budget.shards > 1 && budget.owesSlot(this.user.poolSize, this.total, this.lastDonation === now)) &&
      budget.tryTake(cap)
    ) {
      this.open();
    }
    this.publish();
    if (this.waiting > this.opening && this.budget.shards > 1) this.budget.askForIdle(this.waiting - this.opening, now);
  }

  private open(): void {
    const s = this.host.createServer(this);
    s.holdsSlot = true;
    s.generation = this.generation;
    this.enter(s, ServerPoolState.Opening);
    this.stats.serversOpened++;
    s.connect((err, fatalForClients) => {
      if (s.poolState !== ServerPoolState.Opening) return;
      if (err !== null) {
        this.leave(s);
        this.lastServerError = err;
        this.retryDelay = Math.min(Math.max(this.retryDelay * 2, 100), 2000);
        this.retryAt = this.host.now + this.retryDelay;
        if (fatalForClients) this.failAllWaiters(err);
        return;
      }
      this.retryAt = 0;
      this.retryDelay = 0;
      this.lastServerError = null;
      this.stats.serverLogins++;
      s.servingSince = preciseNow();
      if (this.defaults === null) {
        this.defaults = { status: s.startupStatus };
        this.budget.shareDefaults(s.startupStatus);
      }
      this.leave(s);
      this.offer(s);
    });
  }

  /** PostgreSQL refused the login itself (wrong server password, no such database): waiting will not help. */
  private failAllWaiters(error: string): void {
    while (this.waiting > 0) {
      const c = this.waiters.shift() as PoolClient;
      if (!c.isWaiting) continue;
      this.waiting--;
      c.failWait(E.serverLoginFailed, `server login failed: ${error}`);
    }
    this.publish();
  }
}
