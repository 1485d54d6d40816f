/**
 * What the pool needs from the connections it manages. The session layer implements these; the pool
 * never touches sockets.
 */
import type { ErrorInfo } from '../protocol/backend.js';
import type { ErrorDef } from '../errors.js';
import type { Agreement, VersionedParams } from '../session/params.js';
import type { ServerStatements } from '../prepared/statements.js';

export const enum ServerPoolState {
  Opening,
  Idle,
  Active,
  Resetting,
  Closed,
}

export interface PoolServer {
  poolState: ServerPoolState;
  /** Counted in the pool's ServerBudget until the connection is gone. */
  holdsSlot: boolean;
  /** The pool's generation when it was opened (see Pool.generation). */
  generation: number;
  readonly createdAt: number;
  /** When its login completed (precise clock, ms): from then on it serves this shard's clients. */
  servingSince: number;
  lastUsed: number;
  /** Reset flags left by the client's statements (see session/reset.ts). */
  dirty: number;
  /** Status byte of the last ReadyForQuery. */
  txStatus: number;
  /** Session mode: the server served a client, so it is reset with DISCARD ALL. */
  sessionUsed: boolean;
  cancelsInFlight: number;
  onCancelsDone: (() => void) | null;
  /** ParameterStatus values by lower-case name. */
  readonly status: VersionedParams;
  /** Unreported parameters Doorman set on this connection. */
  readonly extra: VersionedParams;
  /** The last client parameters found to agree with this connection's. */
  readonly agreement: Agreement;
  readonly startupStatus: ReadonlyArray<readonly [string, string]>;
  /** Transaction-mode prepared statements this connection holds. */
  readonly prepared: ServerStatements;
  /** Connects and logs in; `fatalForClients` when PostgreSQL itself refused the login. */
  connect(done: (err: string | null, fatalForClients: boolean) => void): void;
  /** Runs statements for Doorman's own purposes; the client never sees their responses. */
  runInternal(statements: readonly string[], done: (ok: boolean, error?: ErrorInfo) => void): void;
}

export interface PoolClient {
  /** Coarse time (ms) it queued, for query_wait_timeout. */
  waitStart: number;
  /** performance.now() when it queued, for wait-time statistics; 0 = it did not queue. */
  waitedSince: number;
  readonly isWaiting: boolean;
  /** Parameters the client's session should have on whatever server runs its transaction. */
  readonly wanted: VersionedParams;
  /** The pool chose `s` for this client; it is being checked and synced. */
  reserve(s: PoolServer): void;
  isReserving(s: PoolServer): boolean;
  unreserve(): void;
  /** `s` is ready: the client's bytes may flow. */
  attach(s: PoolServer): void;
  failWait(def: ErrorDef, message: string, detail?: string): void;
  failWithServerError(error: ErrorInfo): void;
}

/** What decides whether the pool has lost track of an open server connection (see lostByPool). */
export interface ServerUse {
  readonly poolState: ServerPoolState;
  /** Logged in and not closing. */
  readonly ready: boolean;
  /** A health check, sync or reset of Doorman's own is running on it. */
  readonly runningInternal: boolean;
  readonly cancelsInFlight: number;
  /** A client is attached to it, or the pool reserved it for one. */
  readonly claimed: boolean;
}

/**
 * Logged in, outside the idle list, yet nobody uses it and nothing of Doorman's runs on it. Every
 * transition that takes a connection out of the idle list hands it on in the same call, so only a
 * fault in Doorman's own code (an exception between two steps) leaves one like this; its slot would
 * count against the cap for good.
 */
export function lostByPool(s: ServerUse): boolean {
  return s.ready && s.poolState !== ServerPoolState.Idle && !s.runningInternal && s.cancelsInFlight === 0 && !s.claimed;
}
