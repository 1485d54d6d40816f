/**
 * Transparent prepared statements in transaction mode, for one client.
 *
 * Every Parse, named or not, maps to the pool-wide statement for its query text and parameter types. The
 * client keeps its own names; each server connection holds statements under the pool's names. A Parse the
 * server already holds is not sent and its ParseComplete is synthesized in order; Bind/Describe/Close of a
 * statement are rewritten; a statement the server lacks is prepared just before it is needed.
 *
 * Client-side maps change when a message is sent (later messages of the same pipeline rely on them) and are
 * undone if PostgreSQL rejects or skips that message, so after any error the maps are what PostgreSQL's
 * would be. Errors PostgreSQL would raise for client names (26000, 42P05) are produced by sending a message
 * that is sure to fail and replacing its error, so the transaction state and the skip-to-Sync are PostgreSQL's own.
 */
import { allocMessage, BackendCode, bodyStart, FrontendCode, nulIndex, TxStatus, uint32At } from '../protocol/codes.js';
import { commandComplete, errorResponse, errorResponseOf, readErrorFields, READY_IDLE, READY_IN_TX } from '../protocol/backend.js';
import {
  buildParse,
  closeStatement,
  readBind,
  readLoneExecution,
  readParse,
  readTarget,
  rewriteBind,
  rewrittenBindSize,
  TARGET_STATEMENT,
  type BindParts,
  type ParseParts,
  type Target,
} from '../protocol/extended.js';
import { query, readQueryText } from '../protocol/frontend.js';
import { deallocateRest, deallocateTarget, dropsAllTag } from './deallocate.js';
import { beginTag } from '../session/begin.js';
import { endsBatch, isSynthetic, ResponseQueue, Slot } from '../session/responses.js';
import type { Outbox } from '../session/outbox.js';
import { parseContextOf, type VersionedParams } from '../session/params.js';
import { reserve, reservedAt } from '../session/socket-reader.js';
import { isStatementOf, type PreparedStatement, type ServerStatements, type StatementRegistry } from './statements.js';

export type LocalAnswer = { kind: 'prepared' } | { kind: 'begin'; text: string } | { kind: 'end'; tag: 'COMMIT' | 'ROLLBACK' };

export const FORWARD = true;
export const DROP = false;

/** What the remapper needs of the server connection the client is attached to. */
export interface RemapServer {
  readonly prepared: ServerStatements;
  /** Status of the last ReadyForQuery. */
  readonly txStatus: number;
}

export interface RemapLimits {
  /** Statements one server connection keeps prepared. */
  maxPerServer: number;
  /** Named statements one client may hold. */
  maxPerClient: number;
}

const PARSE_COMPLETE = allocMessage(BackendCode.ParseComplete, 0);
const BIND_COMPLETE = allocMessage(BackendCode.BindComplete, 0);
const NO_DATA = allocMessage(BackendCode.NoData, 0);
const CLOSE_COMPLETE = allocMessage(BackendCode.CloseComplete, 0);
/** Fails with 42601 on any server; its error is replaced by the one the client is owed. */
const FAILING_PARSE = buildParse('', Buffer.from('DOORMAN PLACEHOLDER THAT FAILS\0\0\0', 'latin1'));
const FAILING_PARSE_CODE = '42601';
/** A statement name no server has (Doorman's are DOORMAN_<n>): DEALLOCATE of it fails with 26000. */
const NO_SUCH_STATEMENT = 'doorman: no such statement';
const FAILING_DEALLOCATE = query(`DEALLOCATE "${NO_SUCH_STATEMENT}"`);
const FAILING_DEALLOCATE_CODE = '26000';

/** How PostgreSQL's messages name a statement of Doorman's (see StatementRegistry). */
const SERVER_NAME_IN_MESSAGE = /prepared statement "DOORMAN_\d+"/;
/** feature_not_supported: what a Bind gets when a statement's result type changed (PostgreSQL's words below). */
const RESULT_TYPE_CHANGED_CODE = '0A000';
const RESULT_TYPE_CHANGED = 'cached plan must not change result type';
const TAG_DISCARD_ALL = Buffer.from('DISCARD ALL\0');
const TAG_DEALLOCATE_ALL = Buffer.from('DEALLOCATE ALL\0');
const TAG_PREPARE = Buffer.from('PREPARE\0');

// Filled by the readers for one message and read at once: one each per thread instead of one per message.
const PARSE_PARTS: ParseParts = { name: '', restStart: 0 };
const BIND_PARTS: BindParts = { statement: '', statementStart: 0, statementEnd: 0 };
const TARGET: Target = { kind: 0, name: '' };

/** A portal bound to a statement that drops prepared statements: what its Execute does to the client's names. */
interface DroppingPortal {
  portal: string;
  /** `DEALLOCATE name`: the name, and the statement it held at the Bind (null: none, and the Execute fails). */
  name: string;
  target: PreparedStatement | null;
  /** The server statement the portal is bound to. */
  bound: PreparedStatement | null;
  /** `DEALLOCATE ALL` or `DISCARD ALL` instead (then `name` is empty). */
  all: 'DEALLOCATE ALL' | 'DISCARD ALL' | null;
}

/** What a DEALLOCATE ALL or DISCARD ALL took away, given back if PostgreSQL does not run it. */
interface DroppedAll {
  named: Map<string, PreparedStatement>;
  unnamed: PreparedStatement | null;
  server: Map<PreparedStatement, number>;
}

/** A client-side name change, with what to restore if PostgreSQL does not perform it. */
interface NameChange {
  /** null = the unnamed statement. */
  name: string | null;
  prev: PreparedStatement | null | undefined;
  st: PreparedStatement | null;
  /** The statement was sent to (or dropped from) the server for this change. */
  server: boolean;
}

function tagIs(buf: Buffer, start: number, end: number, tag: Buffer): boolean {
  return end - start - 5 === tag.length && buf.compare(tag, 0, tag.length, start + 5, end) === 0;
}

export class StatementRemapper {
  readonly responses = new ResponseQueue();
  private named = new Map<string, PreparedStatement>();
  private unnamed: PreparedStatement | null = null;
  /** The statement of this client's last Parse: most clients parse the same few texts again and again. */
  private lastParsed: PreparedStatement | null = null;
  /** The last portal bound to a statement that drops statements, until it is executed, bound again or closed. */
  private dropping: DroppingPortal | null = null;

  constructor(
    private readonly registry: StatementRegistry,
    private readonly limits: RemapLimits,
    /** The client's parameters now (the client replaces the map when it resets them). */
    private readonly wanted: () => VersionedParams,
  ) {}

  private contextOf: VersionedParams | null = null;
  private contextVersion = -1;
  private contextKey = '';

  /** The client's parse context (parseContextOf), worked out again only when its parameters change. */
  private context(): string {
    const w = this.wanted();
    if (w !== this.contextOf || w.version !== this.contextVersion) {
      this.contextKey = parseContextOf(w);
      this.contextOf = w;
      this.contextVersion = w.version;
    }
    return this.contextKey;
  }

  /**
   * Set at a sync point while earlier name changes are unsettled: PostgreSQL may still skip them after an
   * error, and a later batch must be translated against the names PostgreSQL really has. The client holds
   * its next messages until `tentative` drops to zero.
   */
  hold = false;

  /**
   * The client's statements as [client name (null = unnamed), query text and parameter types] for a binary
   * upgrade: the new process maps them onto its own pool's statements. Only valid when nothing is in flight.
   */
  exportNames(): [string | null, Buffer][] {
    const out: [string | null, Buffer][] = [];
    const rest = (st: PreparedStatement): Buffer => st.parse.subarray(st.restAt);
    if (this.unnamed !== null) out.push([null, rest(this.unnamed)]);
    for (const [name, st] of this.named) out.push([name, rest(st)]);
    return out;
  }

  importNames(names: ReadonlyArray<readonly [string | null, Uint8Array]>): void {
    for (const [name, rest] of names) {
      const buf = Buffer.from(rest.buffer, rest.byteOffset, rest.byteLength);
      this.setName(name, this.registry.lookup(buf, 0, buf.length, this.context()));
    }
  }

  /** Nothing sent to a server is still unanswered. */
  get idle(): boolean {
    return this.responses.length === 0 && !this.hold;
  }

  /** The client's held messages may be translated now: every batch sent before them is answered. */
  get settled(): boolean {
    return this.responses.batches === 0;
  }

  private holdIfTentative(): void {
    if (this.responses.tentative > 0) this.hold = true;
  }

  /** A message sent to the server since the last sync point: it may fail, and PostgreSQL then skips the rest. */
  private batchFallible = false;

  /**
   * Queues a slot. A slot's effect on the client's names or on what the server holds is tentative when the
   * message itself may fail (a Parse sent to the server; `fallible` for others that may) or something before
   * it in its batch may.
   */
  private push(kind: Slot, ref: unknown = undefined, fallible = false): void {
    let tentative = fallible;
    switch (kind) {
      case Slot.Parse:
      case Slot.Deallocate:
      case Slot.DeallocateElsewhere:
      case Slot.ExecuteDeallocate:
      case Slot.ExecuteDropAll:
      case Slot.QueryDropAll:
        tentative = true;
        break;
      case Slot.SynthParse:
      case Slot.SynthClose:
      case Slot.SynthDescribe:
      case Slot.SwallowParse:
      case Slot.SwallowClose:
        tentative ||= this.batchFallible;
        break;
    }
    this.responses.push(kind, ref, tentative);
    if (endsBatch(kind)) {
      this.batchFallible = false;
    } else if (!isSynthetic(kind)) {
      this.batchFallible = true;
    }
  }

  // ---- client -> server ----

  /** Sends one client message (buf[start..end)) to `s`, rewritten as needed. */
  translate(buf: Buffer, start: number, end: number, s: RemapServer, toServer: Outbox): void {
    switch (buf[start]) {
      case FrontendCode.Parse:
        return this.parse(buf, start, end, s, toServer);
      case FrontendCode.Bind: {
        const parts = readBind(buf, start, end, BIND_PARTS);
        if (this.dropping !== null && this.dropping.portal === portalOfBind(buf, start, parts)) this.dropping = null;
        const st = this.resolve(parts.statement);
        if (st === null) return this.fail(toServer, '26000', missing(parts.statement));
        // Answered here, as PostgreSQL checks it before the transaction state: a statement prepared again in an
        // aborted transaction would get 25P02 first.
        const refused = bindRefusal(buf, parts.statementEnd, end, st.paramCount, parts.statement);
        if (refused !== null) return this.fail(toServer, '08P01', refused);
        // A server refused this statement for its changed result type; one that never held it would take it
        // with the new type, where PostgreSQL keeps refusing the client's statement until it is prepared anew.
        if (st.retired && !s.prepared.has(st)) return this.fail(toServer, RESULT_TYPE_CHANGED_CODE, RESULT_TYPE_CHANGED);
        if (st.deallocates !== null) return this.bindDeallocate(buf, start, end, parts, st, s, toServer);
        this.ensureHeld(s, st, toServer);
        sendBind(buf, start, end, parts, st.nameZ, toServer);
        if (st.dropsAll !== null) this.dropping = { portal: portalOfBind(buf, start, parts), name: '', target: null, bound: st, all: st.dropsAll };
        return this.push(Slot.Bind, parts.statement);
      }
      case FrontendCode.Describe: {
        const t = readTarget(buf, start, end, TARGET);
        if (t.kind === TARGET_STATEMENT) {
          const st = this.resolve(t.name);
          if (st === null) return this.fail(toServer, '26000', missing(t.name));
          if (st.noRowsDescription !== null && !s.prepared.has(st)) return this.push(Slot.SynthDescribe, st);
          this.ensureHeld(s, st, toServer);
          toServer.addWhole(st.describe);
          return this.push(Slot.Describe, st);
        }
        toServer.add(buf, start, end);
        return this.push(Slot.Describe);
      }
      case FrontendCode.Close: {
        const t = readTarget(buf, start, end, TARGET);
        if (t.kind !== TARGET_STATEMENT) {
          if (this.dropping !== null && this.dropping.portal === t.name) this.dropping = null;
          toServer.add(buf, start, end);
          return this.push(Slot.Close);
        }
        // The server keeps the statement for others; only the client's name goes.
        const name = t.name === '' ? null : t.name;
        const change: NameChange = { name, prev: this.current(name), st: null, server: false };
        this.setName(name, undefined);
        return this.push(Slot.SynthClose, change);
      }
      case FrontendCode.Execute:
        if (this.dropping !== null && this.dropping.portal === readExecutePortal(buf, start, end)) return this.executeDropping(buf, start, end, s, toServer);
        toServer.add(buf, start, end);
        return this.push(Slot.Execute);
      case FrontendCode.Sync:
        toServer.add(buf, start, end);
        this.push(Slot.Sync);
        return this.holdIfTentative();
      case FrontendCode.Query:
        // A simple Query destroys the unnamed statement, as in PostgreSQL.
        this.unnamed = null;
        if (!this.deallocate(buf, start, end, s, toServer)) {
          toServer.add(buf, start, end);
          this.push(Slot.Query);
        }
        return this.holdIfTentative();
      case FrontendCode.FunctionCall:
        toServer.add(buf, start, end);
        return this.push(Slot.Query);
      default:
        toServer.add(buf, start, end);
    }
  }

  private parse(buf: Buffer, start: number, end: number, s: RemapServer, toServer: Outbox): void {
    const { name, restStart } = readParse(buf, start, end, PARSE_PARTS);
    if (name !== '') {
      if (this.named.has(name)) {
        toServer.addWhole(buildParse('', buf.subarray(restStart, end)));
        this.push(Slot.DuplicateParse, errorResponse({ severity: 'ERROR', code: '42P05', message: `prepared statement "${name}" already exists` }));
        toServer.addWhole(FAILING_PARSE);
        return this.push(Slot.SwallowError);
      }
      if (this.named.size >= this.limits.maxPerClient) {
        return this.fail(toServer, '54000', `too many prepared statements on this connection (limit ${this.limits.maxPerClient})`);
      }
    }
    const last = this.lastParsed;
    const context = this.context();
    const st =
      last !== null && !last.retired && last.context === context && isStatementOf(last, buf, restStart, end)
        ? last
        : this.registry.lookup(buf, restStart, end, context);
    this.lastParsed = st;
    const key = name === '' ? null : name;
    const change: NameChange = { name: key, prev: this.current(key), st, server: false };
    this.setName(key, st);
    if (s.prepared.has(st)) {
      s.prepared.use(st);
      this.registry.hit(st);
      if (s.txStatus === TxStatus.Failed || this.responses.batches > 0) {
        // Skipping the Parse is right only in a transaction that is not aborted, by now or by a batch still in
        // flight (PostgreSQL rejects a Parse there, unless it is ROLLBACK): so let the server answer it, as an
        // unnamed Parse that cannot clash with the statement it holds.
        toServer.addWhole(buildParse('', buf.subarray(restStart, end)));
        return this.push(Slot.Parse, change);
      }
      return this.push(Slot.SynthParse, change);
    }
    this.makeRoom(s, toServer, st);
    toServer.addWhole(st.parse);
    s.prepared.use(st);
    this.registry.counters.preparedMisses++;
    change.server = true;
    this.push(Slot.Parse, change);
    this.learnParams(st, toServer);
  }

  /** Asks the server how many parameters a statement it has just prepared takes, once per statement of the pool. */
  private learnParams(st: PreparedStatement, toServer: Outbox): void {
    if (st.paramCount >= 0) return;
    toServer.addWhole(st.describe);
    this.push(Slot.SwallowDescribe, st);
  }

  /**
   * Bind of the client's `DEALLOCATE name`. The server does not know the client's names, so the portal is
   * bound to `DEALLOCATE "<server name>"` (the statement put on the server first) when the client holds the
   * name, else to a DEALLOCATE of a name no server has. Either way the server answers the Execute itself: a
   * portal PostgreSQL dropped or never made (an earlier error) fails as it would, and so does an aborted
   * transaction.
   */
  private bindDeallocate(buf: Buffer, start: number, end: number, parts: BindParts, st: PreparedStatement, s: RemapServer, toServer: Outbox): void {
    const name = st.deallocates as string;
    const target = this.named.get(name) ?? null;
    if (target !== null) this.ensureHeld(s, target, toServer);
    const rest = deallocateRest(target === null ? NO_SUCH_STATEMENT : target.name);
    const bound = this.registry.lookup(rest, 0, rest.length);
    this.ensureHeld(s, bound, toServer, target);
    sendBind(buf, start, end, parts, bound.nameZ, toServer);
    this.dropping = { portal: portalOfBind(buf, start, parts), name, target, bound, all: null };
    this.push(Slot.Bind, parts.statement);
  }

  /**
   * Execute of a portal that drops statements: the names go now, and come back if the server refuses or skips
   * it. Later messages of the pipeline are translated against the names PostgreSQL will have by then. For
   * `DEALLOCATE name`, PostgreSQL looks the name up at Execute; one closed since the Bind is not noticed.
   */
  private executeDropping(buf: Buffer, start: number, end: number, s: RemapServer, toServer: Outbox): void {
    const { name, target, bound, all } = this.dropping as DroppingPortal;
    this.dropping = null;
    // A message since the Bind may have evicted the statement the server is to drop: it must be there.
    if (target !== null) this.ensureHeld(s, target, toServer, bound);
    toServer.add(buf, start, end);
    if (all !== null) return this.push(Slot.ExecuteDropAll, this.dropAll(all, s));
    if (target === null) return this.push(Slot.ExecuteMissing, errorResponse({ severity: 'ERROR', code: '26000', message: missing(name) }));
    const change: NameChange = { name, prev: this.named.get(name), st: target, server: true };
    this.named.delete(name);
    s.prepared.delete(target);
    this.push(Slot.ExecuteDeallocate, change);
  }

  /** Forgets every client name (and the unnamed statement for DISCARD ALL), and what the server holds. */
  private dropAll(tag: 'DEALLOCATE ALL' | 'DISCARD ALL', s: RemapServer): DroppedAll {
    const dropped: DroppedAll = { named: this.named, unnamed: this.unnamed, server: s.prepared.takeAll() };
    this.named = new Map();
    if (tag === 'DISCARD ALL') this.unnamed = null;
    return dropped;
  }

  /**
   * `DEALLOCATE name` alone in a Query: the name is the client's, so it is translated. A lone `DEALLOCATE ALL`
   * or `DISCARD ALL` passes, and the names go at once, for the statements pipelined after it.
   */
  private deallocate(buf: Buffer, start: number, end: number, s: RemapServer, toServer: Outbox): boolean {
    let i = start + 5;
    while (i < end && (buf[i] === 0x20 || buf[i] === 0x0a || buf[i] === 0x09 || buf[i] === 0x0d)) i++;
    if (i >= end || (buf[i] | 0x20) !== 0x64 /* d */) return false;
    const text = readQueryText(buf, start, end);
    const all = dropsAllTag(text);
    if (all !== null) {
      toServer.add(buf, start, end);
      this.push(Slot.QueryDropAll, this.dropAll(all, s));
      return true;
    }
    const name = deallocateTarget(text);
    if (name === null) return false;
    const st = this.named.get(name);
    if (st === undefined) {
      toServer.addWhole(FAILING_DEALLOCATE);
      this.push(Slot.ReplaceErrorQuery, errorResponse({ severity: 'ERROR', code: '26000', message: missing(name) }));
      return true;
    }
    this.named.delete(name);
    const change: NameChange = { name, prev: st, st, server: s.prepared.has(st) };
    if (change.server) {
      s.prepared.delete(st);
      toServer.addWhole(query(`DEALLOCATE "${st.name}"`));
      this.push(Slot.Deallocate, change);
    } else {
      // This server never had it; a throwaway statement gives PostgreSQL's own DEALLOCATE answer.
      toServer.addWhole(query('PREPARE doorman_deallocate AS SELECT 1;DEALLOCATE doorman_deallocate'));
      this.push(Slot.DeallocateElsewhere, change);
    }
    return true;
  }

  private resolve(name: string): PreparedStatement | null {
    return name === '' ? this.unnamed : (this.named.get(name) ?? null);
  }

  private current(name: string | null): PreparedStatement | null | undefined {
    return name === null ? this.unnamed : this.named.get(name);
  }

  private setName(name: string | null, st: PreparedStatement | null | undefined): void {
    if (name === null) this.unnamed = st ?? null;
    else if (st === undefined || st === null) this.named.delete(name);
    else this.named.set(name, st);
  }

  /** Prepares `st` on the server first if it lacks it (the ParseComplete is swallowed), keeping `alsoKeep` there. */
  private ensureHeld(s: RemapServer, st: PreparedStatement, toServer: Outbox, alsoKeep: PreparedStatement | null = null): void {
    if (!s.prepared.has(st)) {
      this.makeRoom(s, toServer, st, alsoKeep);
      toServer.addWhole(st.parse);
      this.registry.counters.preparedMisses++;
      // Inside a transaction block (or behind a batch in flight that may leave one aborted) the Parse fails
      // with 25P02: later batches must not be translated as if the server held the statement.
      this.push(Slot.SwallowParse, st, s.txStatus !== TxStatus.Idle || this.responses.batches > 0);
      this.learnParams(st, toServer);
    }
    s.prepared.use(st);
  }

  /** Closes least recently used statements so that `st` fits. */
  private makeRoom(s: RemapServer, toServer: Outbox, st: PreparedStatement, alsoKeep: PreparedStatement | null = null): void {
    while (s.prepared.size >= this.limits.maxPerServer) {
      const victim = s.prepared.victim(st, alsoKeep);
      if (victim === null) return;
      s.prepared.delete(victim);
      toServer.addWhole(closeStatement(victim.name));
      this.registry.counters.preparedEvictions++;
      this.push(Slot.SwallowClose, victim);
    }
  }

  /** Sends a message that fails; its error is replaced by the one PostgreSQL would give the client. */
  private fail(toServer: Outbox, code: string, message: string): void {
    toServer.addWhole(FAILING_PARSE);
    this.push(Slot.ReplaceError, errorResponse({ severity: 'ERROR', code, message }));
  }

  /**
   * No server attached: answers what needs none. Parse+Sync of statements a server already accepted (drivers
   * that prepare with a blocking round trip, like pgbench -M prepared, would otherwise wait for a server
   * while their other connections hold all of them idle in transaction, and never get one); and
   * Bind/Execute/Sync of a prepared BEGIN, or of the transaction end of a BEGIN that never reached a server.
   * `tx`: the state of that deferred transaction block (Idle: none); in an aborted one every end is a ROLLBACK.
   */
  tryLocal(buf: Buffer, start: number, end: number, tx: TxStatus, toClient: Outbox): LocalAnswer | null {
    const inTransaction = tx !== TxStatus.Idle;
    // PostgreSQL refuses a Parse in an aborted block: the server answers that.
    if (buf[start] === FrontendCode.Parse) return tx === TxStatus.Failed ? null : this.localParse(buf, start, end, inTransaction, toClient);
    if (buf[start] !== FrontendCode.Bind) return null;
    const run = readLoneExecution(buf, start, end);
    if (run === null) return null;
    const st = this.resolve(run.statement);
    if (st === null) return null;
    let answer: LocalAnswer;
    if (!inTransaction && st.begin !== null) answer = { kind: 'begin', text: st.begin };
    else if (inTransaction && st.end !== null) answer = { kind: 'end', tag: tx === TxStatus.Failed ? 'ROLLBACK' : st.end };
    else return null;
    toClient.addWhole(BIND_COMPLETE);
    if (run.describe) toClient.addWhole(NO_DATA);
    toClient.addWhole(commandComplete(answer.kind === 'begin' ? (beginTag(answer.text) ?? 'BEGIN') : answer.tag));
    toClient.addWhole(answer.kind === 'begin' ? READY_IN_TX : READY_IDLE);
    return answer;
  }

  private localParse(buf: Buffer, start: number, end: number, inTransaction: boolean, toClient: Outbox): LocalAnswer | null {
    // Only Parse messages and then one Sync qualify: look at the message headers before decoding anything.
    let q = start;
    while (q + 5 <= end && buf[q] === FrontendCode.Parse) q += 1 + uint32At(buf, q + 1);
    if (q === start || q + 5 !== end || buf[q] !== FrontendCode.Sync) return null;
    const found: [string | null, PreparedStatement][] = [];
    let p = start;
    while (p < end && buf[p] === FrontendCode.Parse) {
      const parseEnd = p + 1 + uint32At(buf, p + 1);
      if (parseEnd > end) return null;
      const { name, restStart } = readParse(buf, p, parseEnd);
      if (name !== '' && (this.named.has(name) || found.some(([n]) => n === name))) return null;
      const st = this.registry.find(buf, restStart, parseEnd, this.context());
      if (st === undefined || !st.validated) return null;
      found.push([name === '' ? null : name, st]);
      p = parseEnd;
    }
    if (found.length === 0 || p + 5 !== end || buf[p] !== FrontendCode.Sync || uint32At(buf, p + 1) !== 4) return null;
    if (this.named.size + found.length > this.limits.maxPerClient) return null;
    for (const [name, st] of found) {
      this.setName(name, st);
      this.registry.hit(st);
      toClient.addWhole(PARSE_COMPLETE);
    }
    toClient.addWhole(inTransaction ? READY_IN_TX : READY_IDLE);
    return { kind: 'prepared' };
  }

  // ---- server -> client ----

  /**
   * After a client chunk is translated: answers Doorman owes that no server message will follow go out now;
   * the others wait for the server's reply so that both leave in one write.
   */
  afterTranslate(toClient: Outbox): void {
    if (this.responses.serverBound === 0) this.emitSynthetics(toClient);
  }

  /** Writes the responses Doorman owes itself once everything before them has arrived. */
  emitSynthetics(toClient: Outbox): void {
    const q = this.responses;
    while (q.length > 0) {
      const k = q.headKind;
      if (k === Slot.SynthParse) toClient.addWhole(PARSE_COMPLETE);
      else if (k === Slot.SynthClose) toClient.addWhole(CLOSE_COMPLETE);
      else if (k === Slot.SynthDescribe) toClient.addWhole((q.headRef as PreparedStatement).noRowsDescription as Buffer);
      else return;
      q.shift();
    }
  }

  /** One server message for the attached client: FORWARD it, or DROP it (swallowed or replaced). */
  onResponse(code: number, buf: Buffer, start: number, end: number, s: RemapServer, toClient: Outbox): boolean {
    const q = this.responses;
    this.emitSynthetics(toClient);
    if (q.length === 0) return FORWARD;
    switch (code) {
      case BackendCode.NoticeResponse:
      case BackendCode.NotificationResponse:
      case BackendCode.ParameterStatus:
        return FORWARD;
      case BackendCode.ErrorResponse:
        return this.onError(buf, start, end, s, toClient);
      case BackendCode.ReadyForQuery:
        // Ends the Sync or Query at the head; anything still before it was skipped by the server.
        if (!endsBatch(q.headKind)) this.undoSkipped(s, false);
        if (q.length > 0) q.shift();
        return FORWARD;
    }
    switch (q.headKind) {
      case Slot.Parse:
        if (code === BackendCode.ParseComplete) {
          const st = (q.headRef as NameChange).st;
          if (st !== null) st.validated = true;
          q.shift();
        }
        return FORWARD;
      case Slot.SwallowParse:
        if (code === BackendCode.ParseComplete) {
          (q.headRef as PreparedStatement).validated = true;
          q.shift();
        }
        return DROP;
      case Slot.SwallowClose:
        if (code === BackendCode.CloseComplete) q.shift();
        return DROP;
      case Slot.DuplicateParse:
        if (code !== BackendCode.ParseComplete) return FORWARD;
        toClient.addWhole(q.headRef as Buffer);
        q.shift();
        return DROP;
      case Slot.Bind:
        if (code === BackendCode.BindComplete) q.shift();
        return FORWARD;
      case Slot.Describe:
        if (q.headRef !== undefined) this.learn(q.headRef as PreparedStatement, code, buf, start, end);
        if (code === BackendCode.RowDescription || code === BackendCode.NoData) q.shift();
        return FORWARD;
      case Slot.SwallowDescribe:
        this.learn(q.headRef as PreparedStatement, code, buf, start, end);
        if (code === BackendCode.RowDescription || code === BackendCode.NoData) q.shift();
        return DROP;
      case Slot.ExecuteDeallocate:
      case Slot.ExecuteMissing:
      case Slot.ExecuteDropAll:
        if (code === BackendCode.CommandComplete) q.shift();
        return FORWARD;
      case Slot.Execute:
        if (code === BackendCode.CommandComplete) {
          this.afterCommand(buf, start, end, s);
          q.shift();
        } else if (code === BackendCode.EmptyQueryResponse || code === BackendCode.PortalSuspended) {
          q.shift();
        }
        return FORWARD;
      case Slot.Close:
        if (code === BackendCode.CloseComplete) q.shift();
        return FORWARD;
      case Slot.Query:
        if (code === BackendCode.CommandComplete) this.afterCommand(buf, start, end, s);
        return FORWARD;
      case Slot.DeallocateElsewhere:
        return code === BackendCode.CommandComplete && tagIs(buf, start, end, TAG_PREPARE) ? DROP : FORWARD;
      default:
        return FORWARD;
    }
  }

  /** DISCARD ALL and DEALLOCATE ALL run on the server: both sides' maps follow. */
  private afterCommand(buf: Buffer, start: number, end: number, s: RemapServer): void {
    const discard = tagIs(buf, start, end, TAG_DISCARD_ALL);
    if (!discard && !tagIs(buf, start, end, TAG_DEALLOCATE_ALL)) return;
    this.named.clear();
    if (discard) this.unnamed = null;
    s.prepared.clear();
  }

  private onError(buf: Buffer, start: number, end: number, s: RemapServer, toClient: Outbox): boolean {
    const q = this.responses;
    const k = q.headKind;
    switch (k) {
      case Slot.Query:
      case Slot.Sync:
        return FORWARD;
      case Slot.ReplaceErrorQuery:
        return this.replace(buf, start, end, FAILING_DEALLOCATE_CODE, q.headRef as Buffer, toClient);
      case Slot.Deallocate:
      case Slot.DeallocateElsewhere:
      case Slot.QueryDropAll:
        // The DEALLOCATE did not happen (e.g. the transaction is aborted): the client keeps its names.
        this.undo(k, q.headRef, s);
        q.setHead(Slot.Query);
        return FORWARD;
    }
    let result = FORWARD;
    if (k === Slot.ReplaceError) result = this.replace(buf, start, end, FAILING_PARSE_CODE, q.headRef as Buffer, toClient);
    else if (k === Slot.ExecuteMissing) result = this.replace(buf, start, end, FAILING_DEALLOCATE_CODE, q.headRef as Buffer, toClient);
    else if (k === Slot.SwallowError && readErrorFields(buf, start, end).code === FAILING_PARSE_CODE) result = DROP;
    else if (k === Slot.Bind) result = this.bindFailed(buf, start, end, q.headRef as string, toClient);
    // The failed message and everything PostgreSQL skips up to the next Sync take no effect.
    const failed = q.headRef;
    this.undoSkipped(s, true);
    // An unnamed Parse that fails has still dropped the previous unnamed statement, as in PostgreSQL.
    if (k === Slot.Parse && (failed as NameChange).name === null) this.unnamed = null;
    return result;
  }

  /**
   * Takes skipped slots off the queue, up to the next Sync after an error (PostgreSQL skips even a Query
   * then), else up to the ReadyForQuery's own slot, and undoes them newest first: a later change may have
   * been made on top of an earlier one (names given after a DEALLOCATE ALL), so it goes first.
   */
  private undoSkipped(s: RemapServer, afterError: boolean): void {
    const q = this.responses;
    const undone: [Slot, unknown][] = [];
    while (q.length > 0 && (afterError ? q.headKind !== Slot.Sync : !endsBatch(q.headKind))) {
      undone.push([q.headKind, q.headRef]);
      q.shift();
    }
    for (let i = undone.length - 1; i >= 0; i--) this.undo(undone[i][0], undone[i][1], s);
  }

  /** The ParameterDescription of a statement's first description, kept until its NoData or RowDescription. */
  private described: Buffer | null = null;
  private describedFor: PreparedStatement | null = null;

  /** Learns from the first description of `st`: its parameter count, and its whole answer if it returns no rows. */
  private learn(st: PreparedStatement, code: number, buf: Buffer, start: number, end: number): void {
    if (code === BackendCode.ParameterDescription) {
      if (st.paramCount >= 0 || end - start < 7) return;
      st.paramCount = uint16At(buf, start + 5);
      this.described = Buffer.from(buf.subarray(start, end));
      this.describedFor = st;
    } else if (this.described !== null) {
      if (code === BackendCode.NoData && this.describedFor === st) st.noRowsDescription = Buffer.concat([this.described, NO_DATA]);
      this.described = null;
      this.describedFor = null;
    }
  }

  /**
   * A Bind the server refused. An error naming the server's statement (08P01, wrong parameter count) names
   * the client's, as PostgreSQL would. 0A000 there means the statement's result type changed (ALTER TABLE under a
   * `SELECT *`): PostgreSQL refuses that statement until it is prepared again, and a driver recovers by
   * preparing the text anew (asyncpg, pgjdbc). The pool's statement for that text is retired, so the new
   * Parse gets a fresh server statement instead of the broken one.
   */
  private bindFailed(buf: Buffer, start: number, end: number, clientName: string, toClient: Outbox): boolean {
    const e = readErrorFields(buf, start, end);
    if (e.code === RESULT_TYPE_CHANGED_CODE) {
      const st = this.resolve(clientName);
      if (st !== null) this.registry.retire(st);
    }
    if (!SERVER_NAME_IN_MESSAGE.test(e.message)) return FORWARD;
    e.fields.M = e.message.replace(SERVER_NAME_IN_MESSAGE, () => `prepared statement "${clientName}"`);
    toClient.addWhole(errorResponseOf(e.fields));
    return DROP;
  }

  private replace(buf: Buffer, start: number, end: number, placeholderCode: string, replacement: Buffer, toClient: Outbox): boolean {
    // Another error (e.g. 25P02 in an aborted transaction) is what PostgreSQL would have said: pass it on.
    if (readErrorFields(buf, start, end).code !== placeholderCode) return FORWARD;
    toClient.addWhole(replacement);
    return DROP;
  }

  /** Reverts what sending a message assumed, when PostgreSQL failed or skipped it. */
  private undo(kind: Slot, ref: unknown, s: RemapServer): void {
    switch (kind) {
      case Slot.Parse:
      case Slot.SynthParse:
      case Slot.SynthClose: {
        const c = ref as NameChange;
        this.setName(c.name, c.prev);
        if (kind === Slot.Parse && c.server && c.st !== null) s.prepared.delete(c.st);
        return;
      }
      case Slot.Deallocate:
      case Slot.DeallocateElsewhere:
      case Slot.ExecuteDeallocate: {
        const c = ref as NameChange;
        this.setName(c.name, c.prev);
        if (c.server && c.st !== null) s.prepared.use(c.st);
        return;
      }
      case Slot.ExecuteDropAll:
      case Slot.QueryDropAll: {
        const d = ref as DroppedAll;
        this.named = d.named;
        this.unnamed = d.unnamed;
        s.prepared.restore(d.server);
        return;
      }
      case Slot.SwallowParse:
        s.prepared.delete(ref as PreparedStatement);
        return;
      case Slot.SwallowClose:
        // The Close was skipped: the server still holds the statement.
        s.prepared.use(ref as PreparedStatement);
        return;
    }
  }
}

/** Sends the Bind buf[start, end) renamed to `statement`, written where it allocates nothing (see reserve). */
function sendBind(buf: Buffer, start: number, end: number, parts: BindParts, statement: Buffer, toServer: Outbox): void {
  const size = rewrittenBindSize(start, end, parts, statement);
  const out = reserve(size);
  const at = reservedAt;
  toServer.add(out, at, rewriteBind(buf, start, end, parts, statement, out, at));
}

/** PostgreSQL reads these counts as unsigned 16-bit. */
function uint16At(buf: Buffer, at: number): number {
  return (buf[at] << 8) | buf[at + 1];
}

/**
 * PostgreSQL's 08P01 for a Bind (its format codes and parameters from `p`) that does not fit its statement,
 * else null. `expected` is the statement's parameter count, -1 when not known yet; a malformed rest is left
 * to the server.
 */
function bindRefusal(buf: Buffer, p: number, end: number, expected: number, name: string): string | null {
  if (p + 2 > end) return null;
  const formats = uint16At(buf, p);
  const at = p + 2 + 2 * formats;
  if (at + 2 > end) return null;
  const params = uint16At(buf, at);
  if (formats > 1 && formats !== params) return `bind message has ${formats} parameter formats but ${params} parameters`;
  if (expected >= 0 && params !== expected) return `bind message supplies ${params} parameters, but prepared statement "${name}" requires ${expected}`;
  return null;
}

function portalOfBind(buf: Buffer, start: number, parts: BindParts): string {
  return buf.toString('utf8', start + 5, parts.statementStart - 1);
}

function readExecutePortal(buf: Buffer, start: number, end: number): string {
  const p = bodyStart(buf, start, end);
  return buf.toString('utf8', p, nulIndex(buf, p, end));
}

function missing(name: string): string {
  return name === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${name}" does not exist`;
}
