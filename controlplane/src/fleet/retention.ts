import type { Logger } from 'pino';
import type { Election } from '../leader/election.js';
import type { NodeRecord, Store } from '../store/store.js';
import { fleetRecords } from './nodes.js';

/** The longest pause between sweeps; shorter for a short retention. */
const MAX_SWEEP_EVERY_MS = 60_000;

/**
 * The leader deletes the records of data planes that have been gone longer than the retention: a node
 * that was replaced or scaled away would otherwise be listed as disconnected for ever. Each delete is a
 * compare-and-swap on the record as last seen, with no liveness key and the leader's fence, so a node that
 * comes back in the meantime keeps its record.
 */
export class NodeRetention {
  private timer: NodeJS.Timeout | null = null;
  private sweeping = false;

  constructor(
    private readonly store: Store,
    private readonly election: Election,
    /** Records of the nodes attached to this replica (connected ones). */
    private readonly local: () => ReadonlyMap<string, NodeRecord>,
    private readonly retentionMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), Math.max(1_000, Math.min(MAX_SWEEP_EVERY_MS, this.retentionMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One pass, on the leader only: how many records it deleted. */
  async sweep(now = Date.now()): Promise<number> {
    if (this.sweeping || !this.election.isLeader()) return 0;
    this.sweeping = true;
    let forgotten = 0;
    try {
      const fence = this.election.fence();
      const stored = this.store.view().nodes;
      for (const { record, connected } of fleetRecords(this.store.view(), this.local())) {
        const last = stored.get(record.nodeId);
        if (connected || last === undefined || now - last.lastSeenUnixMs <= this.retentionMs) continue;
        if (await this.store.forgetNode(last, fence)) {
          forgotten++;
          this.log.info({ node: last.nodeId, hostname: last.hostname, lastSeenUnixMs: last.lastSeenUnixMs }, 'forgot a node gone longer than --node-retention');
        }
      }
    } catch (err) {
      this.log.warn({ err: String(err) }, 'node retention sweep failed; retrying at the next one');
    } finally {
      this.sweeping = false;
    }
    return forgotten;
  }
}
