import type { Logger } from 'pino';
import type { Session } from '../leader/session.js';
import type { NodeRecord, NodeWrite, Store } from '../store/store.js';

interface Tracked {
  record: NodeRecord;
  /** A change other replicas should see soon (attach, ACK, NACK). */
  urgent: boolean;
  /** Only figures changed (status reports): written at most every statusIntervalMs. */
  figures: boolean;
  /** The lease the liveness key was last written with. */
  liveLease: string | null;
  lastWritten: number;
}

export interface RecorderOptions {
  flushMs: number;
  statusIntervalMs: number;
}

/**
 * Writes the records of the data planes attached to this replica to etcd, coalesced: one flush per
 * tick in transactions of at most 128 operations, so 500 streams ACKing at once cost a few writes,
 * not 500. A node's liveness key sits on this replica's lease: if the replica dies the key lapses and
 * every replica sees the node as disconnected, while its record keeps last_seen.
 */
export class NodeRecorder {
  private readonly tracked = new Map<string, Tracked>();
  private readonly detaching = new Map<string, NodeRecord>();
  private timer: NodeJS.Timeout | null = null;
  private flushing = false;
  private failures = 0;

  constructor(
    private readonly store: Store,
    private readonly session: Session,
    private readonly address: string,
    private readonly log: Logger,
    private readonly options: RecorderOptions,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.options.flushMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Records this replica holds fresh in memory. */
  local(): ReadonlyMap<string, NodeRecord> {
    const out = new Map<string, NodeRecord>();
    for (const [id, t] of this.tracked) out.set(id, t.record);
    return out;
  }

  attach(record: NodeRecord): void {
    this.detaching.delete(record.nodeId);
    this.tracked.set(record.nodeId, { record, urgent: true, figures: false, liveLease: null, lastWritten: 0 });
  }

  /** Replaces the record; `urgent` for protocol events, not for periodic figures. */
  update(record: NodeRecord, urgent: boolean): void {
    const t = this.tracked.get(record.nodeId);
    if (!t) return;
    t.record = record;
    if (urgent) t.urgent = true;
    else t.figures = true;
  }

  detach(record: NodeRecord): void {
    this.tracked.delete(record.nodeId);
    this.detaching.set(record.nodeId, record);
  }

  /** Writes everything pending now (also used at shutdown). */
  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      await this.flushDetaches();
      await this.flushRecords();
      this.failures = 0;
    } catch (err) {
      if (this.failures++ % 20 === 0) this.log.warn({ err: String(err) }, 'cannot record node state in etcd; will retry');
    } finally {
      this.flushing = false;
    }
  }

  private async flushDetaches(): Promise<void> {
    for (const [id, record] of [...this.detaching]) {
      await this.store.detachNode(record, this.address);
      if (this.detaching.get(id) === record) this.detaching.delete(id);
    }
  }

  private async flushRecords(): Promise<void> {
    const now = Date.now();
    const leaseId = this.session.leaseId;
    const writes: NodeWrite[] = [];
    const written: [Tracked, NodeRecord][] = [];
    for (const t of this.tracked.values()) {
      const needLive = leaseId !== null && t.liveLease !== leaseId;
      const due = t.urgent || needLive || (t.figures && now - t.lastWritten >= this.options.statusIntervalMs);
      if (!due) continue;
      writes.push({ record: t.record, live: needLive });
      written.push([t, t.record]);
    }
    if (writes.length === 0) return;
    await this.store.writeNodes(writes, leaseId ?? '0');
    for (const [t, record] of written) {
      if (t.record === record) {
        t.urgent = false;
        t.figures = false;
      }
      if (leaseId !== null) t.liveLease = leaseId;
      t.lastWritten = now;
    }
  }
}
