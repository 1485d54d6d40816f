/**
 * What travels between the old and the new process of a binary upgrade (child_process IPC with the
 * 'advanced' serialization, so Buffers arrive as Uint8Arrays), and between a process's shards and its
 * main thread while clients move.
 */

/** An idle client moving to the new process; its socket travels beside this as the IPC handle. */
export interface MigratedClient {
  user: string;
  database: string;
  /** The session's parameters ([lower-case name, value]) and its defaults from login. */
  wanted: [string, string][];
  sessionDefaults: [string, string][];
  /** The BackendKeyData the client got at login: cancels keep working after the move. */
  processId: number;
  secretKey: number;
  /** Prepared statements: [client's name (null = unnamed), query text and parameter types]. */
  statements: [string | null, Uint8Array][];
  /** Bytes the client sent that the old process had not relayed yet; the new one reads them first. */
  pending: Uint8Array;
}

export type OldToNew =
  /** The listening socket travels as the handle. */
  | { t: 'listener' }
  | { t: 'client'; client: MigratedClient }
  /** A CancelRequest reached the old process for a key it does not hold. */
  | { t: 'cancel'; processId: number; secretKey: number };

export type NewToOld =
  /** The new process listens and its shards run. */
  | { t: 'ready'; pid: number }
  | { t: 'cancel'; processId: number; secretKey: number };

/** Set in the new process's environment: take the listener from the parent instead of binding. */
export const UPGRADE_ENV = 'DOORMAN_UPGRADE_CHILD';
