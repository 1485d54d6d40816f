/**
 * What the main thread and the worker shards say to each other. Only plain data crosses threads: a client
 * socket travels as a file descriptor the receiver wraps in its own net.Socket.
 */
import type { DoormanConfig } from '@doorman/proto';
import type { ShardSnapshot } from '../admin/view.js';

/** Pool slots in the shared budget memory: [`database\0user`, slot index]. */
export type SlotTable = [string, number][];

export interface ShardInit {
  index: number;
  shards: number;
  config: DoormanConfig;
  slots: SlotTable;
  /** The shared budget cells (see pool/budget.ts) and the per-shard client counters. */
  budgetMemory: SharedArrayBuffer;
  clientMemory: SharedArrayBuffer;
  /** BroadcastChannel name for shard-to-shard budget signals. */
  channel: string;
  /** Command-line log settings that override the config's. */
  logLevel: string | null;
  logFormat: 'json' | 'pretty' | null;
}

export type AdminOp = 'pause' | 'resume' | 'reload' | 'shutdown';

export type MainToShard =
  | { t: 'socket'; fd: number }
  | { t: 'reload'; config: DoormanConfig; slots: SlotTable }
  | { t: 'shutdown'; graceful: boolean }
  | { t: 'snapshot'; id: number }
  | { t: 'snapshots'; id: number; snaps: ShardSnapshot[] }
  | { t: 'control'; op: 'pause' | 'resume'; database: string | null }
  | { t: 'cancel'; processId: number; secretKey: number };

export type ShardToMain =
  | { t: 'ready' }
  | { t: 'snapshot'; id: number; snap: ShardSnapshot }
  /** An admin console client wants every shard's snapshot; the answer comes back as 'snapshots'. */
  | { t: 'snapshots'; id: number }
  | { t: 'control'; op: AdminOp; database: string | null }
  /** A CancelRequest arrived at this shard for a client of another one. */
  | { t: 'cancel'; processId: number; secretKey: number }
  /** After 'shutdown': every connection of this shard is gone. */
  | { t: 'exited' };

/** Shard-to-shard, over a BroadcastChannel: every shard hears it; `to` picks one. */
export type BudgetMessage =
  | { t: 'evict'; slot: number; to: number; count: number }
  | { t: 'freed'; slot: number; from: number }
  | { t: 'defaults'; slot: number; from: number; status: [string, string][] };

/** Cancel keys carry their shard in the low bits, so any shard can route a CancelRequest. */
export const SHARD_BITS = 6;
export const MAX_SHARDS = 1 << SHARD_BITS;
