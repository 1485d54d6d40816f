import type { GeneralConfig } from '@doorman/proto';
import type { Pool } from './pool.js';
import type { PoolServer } from './members.js';

/** What a pool needs from the process around it. */
export interface PoolHost {
  /** Coarse clock (ms), refreshed by the ticker: cheaper than Date.now() on every message. */
  readonly now: number;
  /** How often `now` moves and pools tick (ms). */
  readonly tickMs: number;
  readonly general: GeneralConfig;
  createServer(pool: Pool): PoolServer;
  /** Closes a server connection; its close reaches the pool through serverGone(). */
  closeServer(s: PoolServer, reason: string): void;
  /** Closes every server connection of `pool` now, busy ones included. */
  closeServers(pool: Pool, reason: string): void;
}
