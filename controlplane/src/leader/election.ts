import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { CpError } from '../errors.js';
import type { Fence, LeaderRecord, Store } from '../store/store.js';
import type { Session } from './session.js';

/**
 * Leader election on one etcd key created under this replica's lease (create-if-absent). The key's
 * create revision is the fencing token: every leader write compares it in the same transaction, so a
 * deposed leader's writes fail. Leadership ends at once when the session's lease is considered lost.
 */
export const enum Role {
  Follower = 'follower',
  Campaigning = 'campaigning',
  Leader = 'leader',
  Stopped = 'stopped',
}

export interface ElectionEvents {
  elected: [fence: Fence];
  demoted: [reason: string];
}

export class Election extends EventEmitter<ElectionEvents> {
  private roleValue: Role = Role.Follower;
  private fenceValue: Fence | null = null;
  private campaignTimer: NodeJS.Timeout | null = null;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: Store,
    private readonly session: Session,
    private readonly self: LeaderRecord,
    private readonly log: Logger,
    /** Retry period while another replica leads (the watch normally wakes us sooner). */
    private readonly retryMs: number,
  ) {
    super();
    session.on('alive', () => void this.campaign());
    session.on('lost', (_id, reason) => this.demote(`lease lost: ${reason}`));
    this.unsubscribe = store.onChange((sections) => {
      if (!sections.has('leader')) return;
      const leader = store.view().leader;
      if (this.roleValue === Role.Leader && leader !== null && leader.createRevision !== this.fenceValue?.createRevision) {
        this.demote('the leader key belongs to someone else');
      }
      if (leader === null && this.roleValue === Role.Follower) void this.campaign();
    });
  }

  get role(): Role {
    return this.roleValue;
  }

  /** True only while leading with a lease believed alive. */
  isLeader(): boolean {
    return this.roleValue === Role.Leader && this.session.isAlive();
  }

  /** The fencing token for a write, or the error a follower answers with. */
  fence(): Fence {
    if (this.isLeader() && this.fenceValue) return this.fenceValue;
    if (this.roleValue === Role.Leader) this.demote('lease not confirmed within its TTL');
    throw this.notLeaderError();
  }

  /** FAILED_PRECONDITION naming the leader when another replica leads, else UNAVAILABLE. */
  notLeaderError(): CpError {
    const leader = this.store.view().leader;
    if (leader && leader.record.address !== this.self.address) {
      return new CpError('NOT_LEADER', `this replica is not the leader; the leader is ${leader.record.address}`, {
        leader: leader.record.address,
      });
    }
    return new CpError('NO_LEADER', 'no control-plane leader is elected right now (etcd unreachable or an election in progress); retry shortly');
  }

  /** Called when a fenced write failed: someone else holds the leader key. */
  fenced(): void {
    this.demote('a fenced write was refused');
  }

  start(): void {
    this.session.start();
    this.campaignTimer = setInterval(() => {
      if (this.roleValue === Role.Follower) void this.campaign();
    }, this.retryMs);
    this.campaignTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.campaignTimer) clearInterval(this.campaignTimer);
    this.unsubscribe();
    const fence = this.roleValue === Role.Leader ? this.fenceValue : null;
    this.roleValue = Role.Stopped;
    this.fenceValue = null;
    if (fence) await this.store.releaseLeader(fence).catch(() => undefined);
  }

  private async campaign(): Promise<void> {
    const leaseId = this.session.leaseId;
    if (this.roleValue !== Role.Follower || leaseId === null) return;
    this.roleValue = Role.Campaigning;
    try {
      const createRevision = await this.store.tryAcquireLeader(this.self, leaseId);
      if (this.roleValue !== Role.Campaigning) return;
      if (createRevision !== null && this.session.leaseId === leaseId) {
        this.fenceValue = { createRevision };
        this.roleValue = Role.Leader;
        this.log.info({ createRevision, leaseId }, 'elected leader');
        this.emit('elected', this.fenceValue);
        return;
      }
      this.roleValue = Role.Follower;
    } catch (err) {
      if (this.roleValue === Role.Campaigning) this.roleValue = Role.Follower;
      this.log.debug({ err: String(err) }, 'campaign failed');
    }
  }

  private demote(reason: string): void {
    if (this.roleValue !== Role.Leader) return;
    this.roleValue = Role.Follower;
    this.fenceValue = null;
    this.log.warn({ reason }, 'stepped down as leader');
    this.emit('demoted', reason);
  }
}
