/**
 * What the control-plane agent needs from the process that serves clients. The agent owns the config's
 * life cycle (fetch, validate, ACK/NACK, last-known-good); the host only applies what it is given.
 */
import type { PoolStats } from '@doorman/proto/api';
import type { LoadedConfig } from '../config/load.js';

export interface AgentHost {
  /** Applies a validated config; the first call starts serving (listen). Throws with a message to refuse it. */
  apply(loaded: LoadedConfig): Promise<void>;
  /** Per-pool figures summed over worker shards, for StatusReport. */
  poolStats(): Promise<PoolStats[]>;
  clientCount(): number;
  serverCount(): number;
  /** Worker shards serving clients (StatusReport.workers). */
  workerCount(): number;
  /**
   * Stops accepting clients and lets the connected ones finish, up to timeoutMs; resolves when they are
   * gone. Later apply() calls are refused: a drained node waits to be stopped.
   */
  drain(timeoutMs: number): Promise<void>;
  /** Process exit path (SIGTERM graceful, SIGINT fast); resolves when every connection is closed. */
  shutdown(graceful: boolean): Promise<void>;
}

/** What the admin console's RELOAD and SHUTDOWN do in agent mode (structurally Doorman's ProcessControls). */
export interface HostControls {
  reload(): void;
  shutdown(): void;
}

export type MakeHost = (controls: HostControls) => AgentHost;
