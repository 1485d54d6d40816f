/**
 * AgentHost over the Doorman process object: the first config creates it and starts the shards and the
 * listener, later ones are diff reloads. Kept thin on purpose: everything here is Doorman's public API.
 */
import type { PoolStats } from '@doorman/proto/api';
import type { Logger } from 'pino';
import { mergeSnapshots } from '../admin/view.js';
import { quantile } from '../stats/histogram.js';
import type { LoadedConfig } from '../config/load.js';
import { Doorman, type DoormanOptions } from '../doorman.js';
import { AgentError, A } from './errors.js';
import type { AgentHost, HostControls } from './host.js';

export class DoormanHost implements AgentHost {
  private doorman: Doorman | null = null;
  private drained = false;
  /** Server connections as of the last poolStats() (the shards only report them asynchronously). */
  private servers = 0;

  constructor(
    private readonly log: Logger,
    private readonly controls: HostControls,
    private readonly opts: DoormanOptions = {},
  ) {}

  async apply(loaded: LoadedConfig): Promise<void> {
    if (this.drained) throw new AgentError(A.drained, 'this node has been drained');
    if (this.doorman !== null) {
      this.doorman.reload(loaded);
      return;
    }
    const doorman = new Doorman(loaded, this.log, this.controls, this.opts);
    try {
      await doorman.listen();
    } catch (err) {
      // Stop the shards that did start.
      await doorman.shutdown(false);
      throw err;
    }
    this.doorman = doorman;
  }

  async poolStats(): Promise<PoolStats[]> {
    if (this.doorman === null) return [];
    const merged = mergeSnapshots(await this.doorman.snapshots());
    this.servers = merged.servers.length;
    const stats = new Map(merged.stats.map((st) => [`${st.database}\0${st.user}`, st]));
    return merged.pools.map((p) => {
      const st = stats.get(`${p.database}\0${p.user}`);
      return {
        database: p.database,
        user: p.user,
        poolMode: p.poolMode,
        clientsActive: p.clActive,
        clientsWaiting: p.clWaiting,
        serversActive: p.svActive,
        serversIdle: p.svIdle,
        serversOther: p.svLogin,
        transactionsTotal: st?.totals.xacts ?? 0,
        queriesTotal: st?.totals.queries ?? 0,
        bytesReceived: st?.totals.received ?? 0,
        bytesSent: st?.totals.sent ?? 0,
        waitTimeUsTotal: st?.totals.waitTime ?? 0,
        transactionP99Ms: st === undefined ? 0 : quantile(st.xactHist, 0.99) / 1000,
        waitP99Ms: st === undefined ? 0 : quantile(st.waitHist, 0.99) / 1000,
      };
    });
  }

  clientCount(): number {
    return this.doorman?.clientTotal() ?? 0;
  }

  serverCount(): number {
    return this.servers;
  }

  workerCount(): number {
    return this.doorman?.shards ?? 0;
  }

  async drain(timeoutMs: number): Promise<void> {
    this.drained = true;
    const d = this.doorman;
    if (d === null) return;
    // The command's timeout stands in for shutdown_timeout during this drain.
    d.config = { ...d.config, general: { ...d.config.general, shutdownTimeout: timeoutMs } };
    await d.shutdown(true);
  }

  async shutdown(graceful: boolean): Promise<void> {
    await this.doorman?.shutdown(graceful);
  }
}
