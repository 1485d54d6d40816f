/**
 * What the main thread and the worker shards say to each other. Only plain data crosses threads: a client
 * socket travels as a file descriptor the receiver wraps in its own net.Socket.
 */
import type { DoormanConfig } from '@doorman/proto';
import type { ShardSnapshot, SnapshotDetail } from '../admin/view.js';
import type { LogLevel } from '../log.js';
import type { MigratedClient } from '../upgrade/messages.js';

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

/** A console control every shard applies (kill_client: only the client's shard). */
export type ShardControl =
  | { op: 'pause' | 'resume' | 'reconnect'; database: string | null }
  | { op: 'disable' | 'enable' | 'kill'; database: string }
  | { op: 'kill_client'; id: number }
  | { op: 'log_level'; level: LogLevel };

/** What a shard's console asks the main thread for: a shard control, or the process's reload / shutdown. */
export type AdminControl = ShardControl | { op: 'reload' } | { op: 'shutdown' } | { op: 'upgrade' };

export type MainToShard =
  | { t: 'socket'; fd: number; /** undefined for a Unix-domain client */ address: string | undefined; port: number | undefined }
  | { t: 'reload'; config: DoormanConfig; slots: SlotTable }
  | { t: 'shutdown'; graceful: boolean }
  | { t: 'snapshot'; id: number; detail: SnapshotDetail }
  | { t: 'snapshots'; id: number; snaps: ShardSnapshot[] }
  | { t: 'control'; control: ShardControl }
  /** `final`: it came from the other process of a binary upgrade; do not send it back there. */
  | { t: 'cancel'; processId: number; secretKey: number; final: boolean }
  | { t: 'migrate' }
  | { t: 'adopt'; fd: number; client: MigratedClient };

export type ShardToMain =
  | { t: 'ready' }
  | { t: 'snapshot'; id: number; snap: ShardSnapshot }
  /** An admin console client wants every shard's snapshot; the answer comes back as 'snapshots'. */
  | { t: 'snapshots'; id: number; detail: SnapshotDetail }
  | { t: 'control'; control: AdminControl }
  /** A CancelRequest arrived at this shard for a client of another one (shard -1: of the other process). */
  | { t: 'cancel'; shard: number; processId: number; secretKey: number }
  | { t: 'migrated'; fd: number; client: MigratedClient }
  | { t: 'migrationDone' }
  /** After 'shutdown': every connection of this shard is gone. */
  | { t: 'exited' };

/** Shard-to-shard, over a BroadcastChannel: every shard hears it; `to` picks one. */
export type BudgetMessage =
  | { t: 'evict'; slot: number; from: number; to: number; count: number }
  | { t: 'freed'; slot: number; from: number }
  | { t: 'defaults'; slot: number; from: number; status: [string, string][] };

/** Cancel keys carry their shard in the low bits, so any shard can route a CancelRequest. */
export const SHARD_BITS = 6;
export const MAX_SHARDS = 1 << SHARD_BITS;

/** The shard that holds a cancel key (modulo, for keys of clients that moved in from a process with more shards). */
export function ownerShard(processId: number, shards: number): number {
  return (processId & (MAX_SHARDS - 1)) % shards;
}
