/**
 * The responses a client is owed, in order: one slot per message sent on its behalf (or answered by
 * Doorman itself). When Doorman skips a Parse the server already has, the ParseComplete is synthesized
 * when its slot reaches the head; when it injects a message, the slot says its response is swallowed.
 */

export const enum Slot {
  /** Parse sent to the server: ends at ParseComplete. */
  Parse,
  Bind,
  /** Ends at RowDescription or NoData (after an optional ParameterDescription). */
  Describe,
  /** Ends at CommandComplete, EmptyQueryResponse or PortalSuspended. */
  Execute,
  /** Close of a portal, passed through. */
  Close,
  /** Ends at ReadyForQuery. */
  Sync,
  /** Simple Query or FunctionCall: everything up to ReadyForQuery; errors do not end it. */
  Query,
  /** Parse the server already had: ParseComplete is written by Doorman. */
  SynthParse,
  /** Close of a client statement: CloseComplete is written by Doorman. */
  SynthClose,
  /** Parse injected so the server has a statement a Bind/Describe needs: its ParseComplete is swallowed. */
  SwallowParse,
  /** Close injected to evict a statement: its CloseComplete is swallowed. */
  SwallowClose,
  /** A message injected to fail; its ErrorResponse is replaced by the client's own error. */
  ReplaceError,
  /**
   * Parse of a name the client already uses, sent unnamed: PostgreSQL checks the SQL first, so its error
   * passes; if the SQL is fine, the ParseComplete becomes the "already exists" error.
   */
  DuplicateParse,
  /** A message injected only to make the server skip to Sync: its ErrorResponse is swallowed. */
  SwallowError,
  /** Simple-query twin of ReplaceError: the error is replaced, ReadyForQuery passes. */
  ReplaceErrorQuery,
  /** The client's DEALLOCATE of a statement this server holds, rewritten to the server name. */
  Deallocate,
  /** The client's DEALLOCATE of a statement this server does not hold: PREPARE's tag is swallowed. */
  DeallocateElsewhere,
  /**
   * Execute of a portal bound to the client's `DEALLOCATE name`, rebound to the server statement's name: ends
   * at CommandComplete; the name stays the client's if it fails or is skipped.
   */
  ExecuteDeallocate,
  /** The same for a name the client does not hold: the server's 26000 is replaced by the client's. */
  ExecuteMissing,
  /** Execute of a portal bound to DEALLOCATE ALL or DISCARD ALL: the names dropped come back if it fails or is skipped. */
  ExecuteDropAll,
  /** A lone DEALLOCATE ALL or DISCARD ALL in a Query: the same, ending at ReadyForQuery. */
  QueryDropAll,
  /** Describe injected after Doorman's Parse to learn the statement's parameter count: its answer is swallowed. */
  SwallowDescribe,
  /** Describe of a statement that returns no rows and that this server lacks: answered by Doorman from what it learned. */
  SynthDescribe,
}

/** Slots Doorman answers itself, in their turn: no server message answers them. */
export function isSynthetic(kind: Slot): boolean {
  return kind === Slot.SynthParse || kind === Slot.SynthClose || kind === Slot.SynthDescribe;
}

/** Slots answered by ReadyForQuery. */
export function endsBatch(kind: Slot): boolean {
  return (
    kind === Slot.Sync ||
    kind === Slot.Query ||
    kind === Slot.ReplaceErrorQuery ||
    kind === Slot.Deallocate ||
    kind === Slot.DeallocateElsewhere ||
    kind === Slot.QueryDropAll
  );
}

const INITIAL_CAPACITY = 8;
/** Set on a slot whose effect PostgreSQL may still undo; the kinds fit below it. */
const TENTATIVE = 0x80;
const KIND = 0x7f;

export class ResponseQueue {
  /** Queued slots whose effect (on statement names, or on what the server holds) PostgreSQL may still undo. */
  tentative = 0;
  /** Queued slots awaiting a ReadyForQuery: batches sent and not yet answered. */
  batches = 0;
  /** Queued slots a server message answers (all but the ones Doorman answers itself). */
  serverBound = 0;
  // Small at first (a power of two; grows by doubling): one per logged-in client in transaction mode.
  /** Per slot, the kind and the TENTATIVE bit. */
  private kinds = new Uint8Array(INITIAL_CAPACITY);
  private refs: unknown[] = new Array(INITIAL_CAPACITY);
  private head = 0;
  private count = 0;

  get length(): number {
    return this.count;
  }

  get headKind(): Slot {
    return (this.kinds[this.head] & KIND) as Slot;
  }

  get headRef(): unknown {
    return this.refs[this.head];
  }

  push(kind: Slot, ref: unknown = undefined, tentative = false): void {
    if (this.count === this.kinds.length) this.grow();
    const i = (this.head + this.count) & (this.kinds.length - 1);
    this.kinds[i] = tentative ? kind | TENTATIVE : kind;
    this.refs[i] = ref;
    this.count++;
    if (tentative) this.tentative++;
    if (endsBatch(kind)) this.batches++;
    if (!isSynthetic(kind)) this.serverBound++;
  }

  /** Replaces the head slot (a DEALLOCATE that failed becomes a plain Query awaiting its ReadyForQuery). */
  setHead(kind: Slot, ref: unknown = undefined): void {
    const old = (this.kinds[this.head] & KIND) as Slot;
    if ((this.kinds[this.head] & TENTATIVE) !== 0) this.tentative--;
    if (endsBatch(old)) this.batches--;
    if (endsBatch(kind)) this.batches++;
    this.kinds[this.head] = kind;
    this.refs[this.head] = ref;
  }

  shift(): void {
    const kind = (this.kinds[this.head] & KIND) as Slot;
    if ((this.kinds[this.head] & TENTATIVE) !== 0) this.tentative--;
    if (endsBatch(kind)) this.batches--;
    if (!isSynthetic(kind)) this.serverBound--;
    this.refs[this.head] = undefined;
    this.head = (this.head + 1) & (this.kinds.length - 1);
    this.count--;
  }

  clear(): void {
    while (this.count > 0) this.shift();
  }

  private grow(): void {
    const n = this.kinds.length * 2;
    const kinds = new Uint8Array(n);
    const refs: unknown[] = new Array(n);
    for (let i = 0; i < this.count; i++) {
      const j = (this.head + i) & (this.kinds.length - 1);
      kinds[i] = this.kinds[j];
      refs[i] = this.refs[j];
    }
    this.kinds = kinds;
    this.refs = refs;
    this.head = 0;
  }
}
