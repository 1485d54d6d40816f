import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';

/**
 * One etcd lease per replica: it backs the leader key, the replica record and the liveness keys of
 * the data planes attached here. The etcd3 library reports a lost lease only after 2xTTL; this keeps
 * its own keepalive loop and treats one TTL without a successful keepalive as lost, because by then
 * etcd may already have expired the lease and someone else may lead.
 */
export const enum SessionState {
  Granting = 'granting',
  Alive = 'alive',
  Closed = 'closed',
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface SessionEvents {
  alive: [leaseId: string];
  lost: [leaseId: string, reason: string];
}

export class Session extends EventEmitter<SessionEvents> {
  private stateValue: SessionState = SessionState.Granting;
  private leaseIdValue: string | null = null;
  private lastOk = 0;
  private loop: Promise<void> | null = null;
  private readonly ttlMs: number;

  constructor(
    private readonly store: Store,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
  ) {
    super();
    this.ttlMs = ttlSeconds * 1000;
  }

  get state(): SessionState {
    return this.stateValue;
  }

  /** The lease id while the lease is believed alive (within one TTL of the last keepalive). */
  get leaseId(): string | null {
    return this.isAlive() ? this.leaseIdValue : null;
  }

  /** A getter so TypeScript does not narrow the state across awaits. */
  private get closed(): boolean {
    return this.stateValue === SessionState.Closed;
  }

  isAlive(): boolean {
    return this.stateValue === SessionState.Alive && this.clock.now() - this.lastOk < this.ttlMs;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops keepalives and revokes the lease (deleting its keys at once: a clean hand-over). */
  async close(): Promise<void> {
    const leaseId = this.leaseIdValue;
    const wasAlive = this.isAlive();
    this.stateValue = SessionState.Closed;
    if (leaseId && wasAlive) await this.store.revokeLease(leaseId).catch(() => undefined);
    await this.loop;
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      try {
        const leaseId = await this.store.grantLease(this.ttlSeconds);
        if (this.closed) {
          await this.store.revokeLease(leaseId).catch(() => undefined);
          return;
        }
        this.leaseIdValue = leaseId;
        this.lastOk = this.clock.now();
        this.stateValue = SessionState.Alive;
        attempt = 0;
        this.log.info({ leaseId }, 'lease granted');
        this.emit('alive', leaseId);
        const reason = await this.keepAliveUntilLost(leaseId);
        if (this.closed) return;
        this.stateValue = SessionState.Granting;
        this.log.warn({ leaseId, reason }, 'lease lost');
        this.emit('lost', leaseId, reason);
      } catch (err) {
        if (attempt % 10 === 0) this.log.warn({ err: String(err) }, 'cannot grant a lease; retrying');
        attempt++;
        await sleep(Math.min(200 * 2 ** Math.min(attempt, 4), 2_000));
      }
    }
  }

  /** Keepalive every TTL/3; resolves with the reason once the lease must be considered lost. */
  private async keepAliveUntilLost(leaseId: string): Promise<string> {
    const interval = Math.max(200, Math.floor(this.ttlMs / 3));
    for (;;) {
      const remaining = this.ttlMs - (this.clock.now() - this.lastOk);
      if (remaining <= 0) return `no successful keepalive within ${this.ttlSeconds} s`;
      if (this.closed) return 'closed';
      try {
        const alive = await this.store.keepAlive(leaseId, Math.min(interval, remaining));
        if (!alive) return 'etcd reports the lease expired';
        this.lastOk = this.clock.now();
      } catch {
        // Unreachable: keep trying until the TTL budget is spent.
      }
      const wait = Math.min(interval, this.ttlMs - (this.clock.now() - this.lastOk));
      if (wait > 0) await sleep(wait);
    }
  }
}
