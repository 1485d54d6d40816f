/**
 * A client connection: startup and authentication, then relaying its messages to the server the pool
 * attaches for each transaction (transaction mode) or for the whole session (session mode).
 *
 * States: Startup -> Auth -> Idle <-> Waiting -> Reserved -> Active -> ... -> Closed.
 * Idle: logged in, no server. Waiting: queued in the pool. Reserved: the pool picked a server and is
 * checking or syncing it. Active: bytes flow both ways. Bytes a client sends without a server are queued
 * (bounded) and flushed in order when one is attached.
 */
import type net from 'node:net';
import tls from 'node:tls';
import { RESERVED_DATABASE_NAMES } from '@doorman/proto';
import { encodeAdminResult, runAdminCommand } from '../admin/console.js';
import type { HbaMethod } from '../auth/hba.js';
import { matchHba } from '../auth/hba.js';
import { E, type ErrorDef } from '../errors.js';
import {
  authenticationOk,
  backendKeyData,
  errorResponse,
  negotiateProtocolVersion,
  parameterStatus,
  commandComplete,
  READY_FAILED,
  READY_IDLE,
  READY_IN_TX,
  type ErrorInfo,
} from '../protocol/backend.js';
import { allocMessage, BackendCode, FrontendCode, FRONTEND_STREAMABLE, ProtocolViolation, TxStatus, uint32At } from '../protocol/codes.js';
import { parseIsNamed, readLoneStatement } from '../protocol/extended.js';
import { Framer, FrameKind, FramerError } from '../protocol/framer.js';
import { readQueryText } from '../protocol/frontend.js';
import { StatementRemapper } from '../prepared/remap.js';
import { parseStartupPacket } from '../protocol/startup.js';
import type { Pool } from '../pool/pool.js';
import type { PoolClient, PoolServer } from '../pool/members.js';
import { ClientAuthExchange, type AuthOutcome } from './client-auth.js';
import type { ClientCredentials } from './credentials.js';
import type { SessionHost } from './host.js';
import { applySync, isReported, reportedName, sharedParams, startupParameters, syncQueryFor, VersionedParams, type ParamMap } from './params.js';
import { beginTag, mayBeTransactionControl, transactionEndTag } from './begin.js';
import { MessageQueue } from './message-queue.js';
import { Outbox } from './outbox.js';
import type { SocketReader } from './socket-reader.js';
import type { ByteSocket } from './byte-socket.js';
import { preciseNow } from '../io/batch-clock.js';
import { RawSocket } from '../io/raw-socket.js';
import { Dirty } from './reset.js';
import type { ServerConnection } from './server.js';
import { VERSION } from '../version.js';
import type { MigratedClient } from '../upgrade/messages.js';

export const enum ClientState {
  Startup,
  Auth,
  Idle,
  Waiting,
  Reserved,
  Active,
  Closed,
}

const PARSE_COMPLETE = allocMessage(BackendCode.ParseComplete, 0);
const BIND_COMPLETE = allocMessage(BackendCode.BindComplete, 0);
const NO_DATA = allocMessage(BackendCode.NoData, 0);
/** The tags of the transaction control Doorman answers itself, as whole CommandComplete messages. */
type LocalTag = 'BEGIN' | 'START TRANSACTION' | 'COMMIT' | 'ROLLBACK';
const LOCAL_COMMAND_COMPLETE: Readonly<Record<LocalTag, Buffer>> = {
  BEGIN: commandComplete('BEGIN'),
  'START TRANSACTION': commandComplete('START TRANSACTION'),
  COMMIT: commandComplete('COMMIT'),
  ROLLBACK: commandComplete('ROLLBACK'),
};
/** Aborts the transaction block a deferred BEGIN opens, for a block whose statement was cancelled while it waited. */
const ABORT_BLOCK = "DO $$BEGIN RAISE EXCEPTION 'doorman: a statement of this transaction was canceled while it waited for a server' USING ERRCODE = 'query_canceled'; END$$";
const ABORT_BLOCK_CODE = '57014';
const SSL_NO = Buffer.from('N');
const SSL_YES = Buffer.from('S');

/** What the admin console reports at login: enough for drivers to decode its text rows. */
const ADMIN_PARAMETERS: readonly (readonly [string, string])[] = [
  ['server_version', VERSION],
  ['server_encoding', 'UTF8'],
  ['client_encoding', 'UTF8'],
  ['DateStyle', 'ISO'],
  ['integer_datetimes', 'on'],
  ['standard_conforming_strings', 'on'],
];

let nextClientId = 1;

/** The empty parameter set every client starts with; never modified. */
const NO_PARAMS: ReadonlyMap<string, string> = new Map();

export class ClientConnection implements PoolClient {
  readonly id = nextClientId++;
  state = ClientState.Startup;
  socket: ByteSocket;
  readonly framer: Framer;
  readonly startedAt: number;
  readonly remoteAddress: string;
  readonly local: boolean;
  tls = false;
  user = '';
  database = '';
  pool: Pool | null = null;
  /** Parameters this client's session has; applied to each server before its bytes flow. */
  wanted = new VersionedParams();
  processId = 0;
  secretKey = 0;
  server: ServerConnection | null = null;
  /** Sync points (Sync, Query, FunctionCall) sent whose ReadyForQuery has not come back. */
  pending = 0;
  /** Extended-protocol messages sent since the last Sync: the server is mid-transaction even without 'T'. */
  unsynced = false;
  /** Reset flags from the client's own messages (named Parse), merged into the server at check-in. */
  dirtyFromClient = 0;
  waitStart = 0;
  waitedSince = 0;
  /** preciseNow() when the oldest unanswered query was sent (or reached a server), and when the transaction began. */
  private queryStartedAt = 0;
  private xactStartedAt = 0;
  /** Session mode: a transaction is open on the server (a query ran since the last ReadyForQuery 'I'). */
  private inXact = false;
  pausedForServer = false;
  private reserved: PoolServer | null = null;
  /** What the client sent while it had no server. */
  private readonly queued = new MessageQueue();
  /** Inside relay(): writes are flushed once the whole chunk is handled. */
  private relaying = false;
  private heldStatus: { key: string; name: string; value: string; before: string | undefined; message: Buffer }[] = [];
  /** The client's session defaults: the parameters it had right after login. */
  private sessionDefaults: ReadonlyMap<string, string> = NO_PARAMS;
  private resyncNeeded = false;
  /** A RESET or DISCARD ALL completed and its ReadyForQuery has not come yet (PostgreSQL reports the changes in between). */
  parametersReset = false;
  /** Messages held behind a sync point until earlier statement-name changes are settled (see StatementRemapper.hold). */
  private readonly held = new MessageQueue();
  /** A BEGIN answered by Doorman, to be sent before the client's next statement. */
  private deferredBegin: string | null = null;
  /**
   * That transaction block is aborted: a statement in it was cancelled while it waited for a server. Its end
   * is answered here (as ROLLBACK); anything else reaches a server after the BEGIN and a statement that
   * fails, so PostgreSQL itself refuses it (25P02) until the block ends.
   */
  private deferredAborted = false;
  /** Transaction mode: the client's prepared statements mapped onto the pool's. */
  remapper: StatementRemapper | null = null;
  readonly toClient: Outbox;
  private readonly toServer: Outbox;
  private loginPending = false;
  private auth: ClientAuthExchange | null = null;
  private creds: ClientCredentials | null = null;
  /** What the startup packet asked for, until login completes. */
  private startupWanted: ReadonlyMap<string, string> = NO_PARAMS;
  /** Logged in to the admin console: messages go to it, never to a pool. */
  private adminConsole = false;
  /** A console command is waiting for the shards' figures. */
  private consoleBusy = false;
  /** An extended-protocol message was refused; the rest up to Sync is skipped, as PostgreSQL does after an error. */
  private consoleSkipping = false;

  /** `reader` is the socket's `onread` side when it was created with one; otherwise 'data' events are read. */
  constructor(
    socket: ByteSocket,
    private readonly host: SessionHost,
    private readonly reader: SocketReader | null = null,
  ) {
    this.socket = socket;
    this.startedAt = host.now;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.local = socket.remoteAddress === undefined;
    this.framer = new Framer({ maxMessageSize: host.general.maxMessageSize, streamable: FRONTEND_STREAMABLE, streamThreshold: 64 * 1024 });
    this.framer.untyped = true;
    this.toClient = new Outbox(socket);
    this.toServer = new Outbox(socket);
    if (!this.local) {
      socket.setNoDelay(host.general.tcpNoDelay);
      if (host.general.tcpKeepalive) socket.setKeepAlive(true, 30000);
    }
    this.bindSocket(socket);
  }

  private bindSocket(s: ByteSocket): void {
    const onChunk = (buf: Buffer, start: number, end: number): void => {
      try {
        this.onData(buf, start, end);
      } catch (err) {
        this.internalError(err);
      }
    };
    if (this.reader !== null && !this.tls) this.reader.onChunk = onChunk;
    else s.on('data', (chunk: Buffer) => onChunk(chunk, 0, chunk.length));
    s.on('end', () => this.onClose());
    s.on('close', () => this.onClose());
    s.on('error', () => this.onClose());
    s.on('drain', () => {
      const srv = this.server;
      if (srv !== null && srv.pausedForClient) {
        srv.pausedForClient = false;
        srv.socket.resume();
      }
    });
  }

  get isWaiting(): boolean {
    return this.state === ClientState.Waiting;
  }

  /** Between transactions: nothing in flight and, if a server is attached, it is idle. */
  get betweenTransactions(): boolean {
    if (this.pending > 0 || this.unsynced || this.deferredBegin !== null) return false;
    if (this.state === ClientState.Idle || this.state === ClientState.Waiting) return true;
    return this.state === ClientState.Active && this.server !== null && this.server.txStatus === TxStatus.Idle;
  }

  // ---- relaying ----

  /** A chunk the client sent: buf[start, end). */
  private onData(buf: Buffer, start: number, end: number): void {
    // A refused client may still send (its Terminate, pipelined queries): nothing of it is relayed.
    if (this.state === ClientState.Closed) return;
    this.framer.push(buf, start, end);
    if (this.state <= ClientState.Auth) this.onStartupData(buf, start, end);
    else this.relay(buf, start, end);
  }

  /** Relays the framed messages of the chunk buf[start, end); runs of pass-through messages leave as single slices. */
  private relay(buf: Buffer, start: number, end: number): void {
    if (this.adminConsole) return this.consoleFrames();
    this.pool!.stats.received += end - start;
    if (this.state === ClientState.Idle && this.pool!.transactionMode && this.answerLocally(buf, start, end)) return;
    this.relaying = true;
    try {
      this.relayFrames();
    } finally {
      this.relaying = false;
    }
    if (this.state !== ClientState.Closed) this.flushToServer();
  }

  private relayFrames(): void {
    const f = this.framer;
    let kind: FrameKind;
    while ((kind = f.next()) !== FrameKind.None) {
      if (kind === FrameKind.Error) return this.framingError();
      if (kind === FrameKind.Message) {
        switch (f.code) {
          case FrontendCode.Sync:
            if (this.pending++ === 0) this.queryStartedAt = preciseNow();
            this.unsynced = false;
            break;
          case FrontendCode.Query:
          case FrontendCode.FunctionCall:
            if (this.pending++ === 0) this.queryStartedAt = preciseNow();
            break;
          case FrontendCode.Parse:
            // Without remapping a named statement outlives the transaction on that server: DEALLOCATE ALL at check-in.
            if (this.remapper === null && parseIsNamed(f.buf, f.start)) this.dirtyFromClient |= Dirty.Prepared;
            this.unsynced = true;
            break;
          case FrontendCode.Bind:
          case FrontendCode.Describe:
          case FrontendCode.Execute:
          case FrontendCode.Close:
          case FrontendCode.Flush:
            this.unsynced = true;
            break;
          case FrontendCode.Terminate:
            this.flushToServer();
            return this.onClose();
        }
        if (this.server !== null) this.send(f.buf, f.start, f.end);
        else this.enqueue(f.buf, f.start, f.end, true);
      } else if (this.server !== null && this.held.length === 0) {
        this.toServer.add(f.buf, f.start, f.end);
      } else if (this.server !== null) {
        this.hold(f.buf, f.start, f.end, false);
      } else {
        this.enqueue(f.buf, f.start, f.end, false);
      }
      if (this.state === ClientState.Closed) return;
    }
  }

  /** One whole client message to the attached server, remapped in transaction mode. */
  private send(buf: Buffer, start: number, end: number): void {
    const rm = this.remapper;
    if (rm === null) return this.toServer.add(buf, start, end);
    if (rm.hold) return this.hold(buf, start, end, true);
    try {
      rm.translate(buf, start, end, this.server!, this.toServer);
    } catch (err) {
      if (!(err instanceof ProtocolViolation)) throw err;
      this.fatal(E.protocolViolation, `invalid message: ${err.message}`);
    }
  }

  private hold(buf: Buffer, start: number, end: number, whole: boolean): void {
    this.held.push(buf, start, end, whole);
    if (this.held.bytes > this.host.general.maxBufferedBytes && !this.pausedForServer) {
      this.pausedForServer = true;
      this.socket.pause();
    }
  }

  /** The server still serves this client (session mode, or inside a transaction): give it the client's values again. */
  private resync(s: ServerConnection): void {
    this.resyncNeeded = false;
    const q = syncQueryFor(this.wanted, s.status, s.extra, s.agreement);
    if (q === null) return;
    s.runInternal([q], (ok) => {
      if (ok) applySync(this.wanted, s.extra);
    });
  }

  /** The names are settled: the messages held behind a sync point are translated now. */
  private releaseHeld(rm: StatementRemapper): void {
    rm.hold = false;
    const held = this.held;
    // Messages held again on the way are added behind these n, and stay; a client closed on the way has none.
    const n = held.length;
    for (let i = 0; i < n && i < held.length; i++) {
      if (rm.hold || this.server === null) {
        this.hold(held.buf(i), held.start(i), held.end(i), held.whole(i));
        continue;
      }
      if (held.whole(i)) this.send(held.buf(i), held.start(i), held.end(i));
      else this.toServer.add(held.buf(i), held.start(i), held.end(i));
    }
    held.dropFirst(n);
    this.flushToServer();
    if (this.pausedForServer && this.held.bytes <= this.host.general.maxBufferedBytes) this.resumeReading();
  }

  private flushToServer(): void {
    this.toServer.flush();
    this.remapper?.afterTranslate(this.toClient);
    this.toClient.flush();
    const s = this.server;
    if (s !== null && s.socket.writableLength > this.host.general.maxBufferedBytes && !this.pausedForServer) {
      this.pausedForServer = true;
      this.socket.pause();
    }
  }

  /** Holds a message until a server is attached (bounded: reading pauses past max_buffered_bytes). */
  private enqueue(buf: Buffer, start: number, end: number, whole: boolean): void {
    // The common case: an idle server is free and in sync, so it is attached at once and the message goes
    // straight to it. Only a message that keeps the server (a query, or part of an unsynced batch) asks first.
    if (this.state === ClientState.Idle && this.queued.length === 0 && (this.pending > 0 || this.unsynced)) {
      this.requestServer();
      if (this.server !== null) return whole ? this.send(buf, start, end) : this.toServer.add(buf, start, end);
      if ((this.state as ClientState) === ClientState.Closed) return;
    }
    this.queued.push(buf, start, end, whole);
    if (this.state === ClientState.Idle) this.requestServer();
    if (this.queued.bytes > this.host.general.maxBufferedBytes && !this.pausedForServer && this.state !== ClientState.Closed) {
      this.pausedForServer = true;
      this.socket.pause();
    }
  }

  /**
   * Transaction mode, no server attached: a lone BEGIN is answered here and sent later with the first real
   * statement; the COMMIT/ROLLBACK of such a transaction that never reached a server is answered here too.
   */
  private answerPreparedLocally(buf: Buffer, start: number, end: number): boolean {
    const rm = this.remapper;
    if (rm === null) return false;
    let answer;
    try {
      answer = rm.tryLocal(buf, start, end, this.deferredTxStatus(), this.toClient);
    } catch (err) {
      if (err instanceof ProtocolViolation) return false;
      throw err;
    }
    if (answer === null) return false;
    if (answer.kind === 'begin') this.deferredBegin = answer.text;
    else if (answer.kind === 'end') this.endDeferred();
    while (this.framer.next() !== FrameKind.None);
    this.toClient.flush();
    return true;
  }

  /** The chunk buf[start, end) from an idle client, answered here if it needs no server. */
  private answerLocally(buf: Buffer, start: number, end: number): boolean {
    if (this.pending !== 0 || this.unsynced || this.framer.buffered !== 0 || end - start < 6) return false;
    let text: string | null = null;
    let lone: { text: string; describe: boolean } | null = null;
    try {
      const deferred = this.deferredBegin !== null;
      if (buf[start] === FrontendCode.Query && uint32At(buf, start + 1) + 1 === end - start) {
        if (mayBeTransactionControl(buf, start + 5, end, deferred)) text = readQueryText(buf, start, end);
      } else if (buf[start] === FrontendCode.Parse && buf[start + 5] === 0 && mayBeTransactionControl(buf, start + 6, end, deferred)) {
        text = (lone = readLoneStatement(buf, start, end))?.text ?? null;
      }
    } catch (err) {
      if (err instanceof ProtocolViolation) return false;
      throw err;
    }
    if (text === null) return this.answerPreparedLocally(buf, start, end);
    let tag: LocalTag;
    let status: Buffer;
    if (this.deferredBegin === null) {
      const begin = beginTag(text);
      if (begin === null) return false;
      this.deferredBegin = text;
      tag = begin;
      status = READY_IN_TX;
    } else {
      const end = transactionEndTag(text);
      if (end === null) return false;
      tag = this.deferredAborted ? 'ROLLBACK' : end;
      this.endDeferred();
      status = READY_IDLE;
    }
    while (this.framer.next() !== FrameKind.None);
    const out = this.toClient;
    if (lone !== null) {
      out.addWhole(PARSE_COMPLETE);
      out.addWhole(BIND_COMPLETE);
      if (lone.describe) out.addWhole(NO_DATA);
    }
    out.addWhole(LOCAL_COMMAND_COMPLETE[tag]);
    out.addWhole(status);
    out.flush();
    return true;
  }

  /** The deferred transaction block's status, as a ReadyForQuery would give it (Idle: none open). */
  private deferredTxStatus(): TxStatus {
    if (this.deferredBegin === null) return TxStatus.Idle;
    return this.deferredAborted ? TxStatus.Failed : TxStatus.InTransaction;
  }

  private endDeferred(): void {
    this.deferredBegin = null;
    this.deferredAborted = false;
  }

  private requestServer(): void {
    let pool = this.pool!;
    if (pool.retired) {
      if (pool.successor === null) return this.fatal(E.poolDraining, `pool "${pool.name}" was removed from the configuration`);
      pool = this.pool = pool.successor;
    }
    if (this.host.shuttingDown && !this.loginPending) return this.fatal(E.adminShutdown, 'terminating connection due to administrator command');
    this.state = ClientState.Waiting;
    pool.acquire(this);
  }

  resumeReading(): void {
    this.pausedForServer = false;
    if (this.state !== ClientState.Closed) this.socket.resume();
  }

  /** Called by the server after relaying a chunk: release at transaction end, apply backpressure. */
  afterServerData(s: ServerConnection): void {
    if (this.heldStatus.length > 0) this.releaseParameterStatus(this.parametersReset);
    const rm = this.remapper;
    if (rm !== null) {
      rm.emitSynthetics(this.toClient);
      if (rm.hold && rm.settled) this.releaseHeld(rm);
    }
    this.toClient.flush();
    if (this.pending <= 0 && !this.unsynced && s.txStatus === TxStatus.Idle && !this.framer.inStream) {
      this.pending = 0;
      if (this.pool!.transactionMode) this.releaseServer();
      // Shutting down: a client leaves at its first transaction boundary, in either pool mode.
      if (this.host.shuttingDown) return this.fatal(E.adminShutdown, 'terminating connection due to administrator command');
      if (this.server === null) return;
      if (this.resyncNeeded) this.resync(s);
    }
    if (this.socket.writableLength > this.host.general.maxBufferedBytes && !s.pausedForClient) {
      s.pausedForClient = true;
      s.socket.pause();
    }
  }

  /**
   * A ReadyForQuery reached this client: one query done. Pipelined queries are timed from the previous one's
   * answer, so query time is time the server spent on this client, not time queued behind earlier queries.
   */
  queryDone(txStatus: number): void {
    const t = preciseNow();
    const pool = this.pool!;
    pool.stats.query((t - this.queryStartedAt) * 1000);
    if (!pool.transactionMode) {
      if (!this.inXact) {
        this.inXact = true;
        this.xactStartedAt = this.queryStartedAt;
      }
      if (txStatus === TxStatus.Idle) {
        this.inXact = false;
        pool.stats.xact((t - this.xactStartedAt) * 1000);
      }
    }
    this.queryStartedAt = t;
  }

  /** Transaction mode: the transaction ends with the check-in (`counted` is false for a login-only attach). */
  private releaseServer(counted = true): void {
    const s = this.server!;
    if (counted) this.pool!.stats.xact((preciseNow() - this.xactStartedAt) * 1000);
    this.server = null;
    s.client = null;
    this.state = ClientState.Idle;
    s.dirty |= this.dirtyFromClient;
    this.dirtyFromClient = 0;
    s.lastUsed = this.host.now;
    if (s.pausedForClient) {
      s.pausedForClient = false;
      s.socket.resume();
    }
    this.pool!.checkin(s);
    if (this.pausedForServer) this.resumeReading();
  }

  // ---- PoolClient ----

  reserve(s: PoolServer): void {
    this.reserved = s;
    this.state = ClientState.Reserved;
    (s as ServerConnection).reservedFor = this;
  }

  isReserving(s: PoolServer): boolean {
    return this.state === ClientState.Reserved && this.reserved === s;
  }

  unreserve(): void {
    if (this.reserved !== null) (this.reserved as ServerConnection).reservedFor = null;
    this.reserved = null;
    if (this.state !== ClientState.Reserved) return;
    // A cancel may have left it nothing to run (see cancelWaiting): then it waits for no server.
    // A deferred BEGIN alone needs no server: it goes out with the block's first statement.
    const nothingToRun = this.queued.length === 0 && this.pending === 0 && !this.unsynced && !this.loginPending;
    this.state = nothingToRun ? ClientState.Idle : ClientState.Waiting;
  }

  attach(ps: PoolServer): void {
    const s = ps as ServerConnection;
    s.reservedFor = null;
    this.reserved = null;
    if (this.state === ClientState.Closed) {
      this.pool!.checkin(s);
      return;
    }
    this.state = ClientState.Active;
    this.server = s;
    s.client = this;
    // Queries sent while waiting are timed from here: the wait is counted apart.
    const t = preciseNow();
    this.xactStartedAt = t;
    if (this.pending > 0) this.queryStartedAt = t;
    this.ensureRemapper();
    if (!this.pool!.transactionMode) s.sessionUsed = true;
    if (this.loginPending) {
      this.loginPending = false;
      this.sendLoginOk(s);
    }
    this.toServer.socket = s.socket;
    if (this.deferredBegin !== null) this.beginDeferred(s);
    if (this.queued.length > 0) {
      const q = this.queued;
      const n = q.length;
      for (let i = 0; i < n && this.server === s && i < q.length; i++) {
        if (q.whole(i)) this.send(q.buf(i), q.start(i), q.end(i));
        else this.toServer.add(q.buf(i), q.start(i), q.end(i));
      }
      // The server may have gone on the way: what was not sent is dropped, as the client is closing.
      q.dropFirst(n);
      // Attached in the middle of relaying a chunk: the rest of it joins the same write.
      if (!this.relaying) this.flushToServer();
    } else if (this.pending === 0 && !this.unsynced && this.pool!.transactionMode) {
      // Attached only to learn the server's parameters at login: give it straight back.
      this.releaseServer(false);
      return;
    }
    if (this.pausedForServer) this.resumeReading();
  }

  /**
   * The transaction the client opened earlier starts now on `s`, with its exact options; its answer was given.
   * Apart from attach(), which runs at every transaction, for the same reason as newRemapper().
   */
  private beginDeferred(s: ServerConnection): void {
    const statements = this.deferredAborted ? [this.deferredBegin as string, ABORT_BLOCK] : [this.deferredBegin as string];
    this.endDeferred();
    // Through the outbox: the BEGIN and the statements queued behind it leave in one write.
    s.runInternal(
      statements,
      (ok, error) => {
        if (this.server !== s) return;
        if (statements.length === 2 && error?.code === ABORT_BLOCK_CODE && s.txStatus === TxStatus.Failed) return;
        if (!ok) this.failWithServerError(error ?? { severity: 'FATAL', code: '08006', message: 'BEGIN failed on the server', fields: {} });
      },
      this.toServer,
    );
    if (this.queued.length === 0 && !this.relaying) this.toServer.flush();
  }

  /**
   * ParameterStatus from the attached server is held until the next message shows why it came: after RESET or
   * DISCARD ALL the server went back to its own defaults, but the client's session defaults are its startup
   * values, so the client is told those (only where its value really changes) and the server is re-synced.
   */
  holdParameterStatus(name: string, value: string, buf: Buffer, start: number, end: number): void {
    const key = name.toLowerCase();
    this.heldStatus.push({ key, name, value, before: this.wanted.get(key), message: Buffer.from(buf.subarray(start, end)) });
    if (isReported(key)) this.wanted.set(key, value);
  }

  get heldStatusCount(): number {
    return this.heldStatus.length;
  }

  releaseParameterStatus(afterReset: boolean): void {
    const held = this.heldStatus;
    this.heldStatus = [];
    for (const h of held) {
      const own = this.sessionDefaults.get(h.key);
      if (!afterReset || own === undefined || !isReported(h.key)) {
        this.toClient.addWhole(h.message);
        continue;
      }
      this.wanted.set(h.key, own);
      if (h.before !== own) this.toClient.addWhole(parameterStatus(h.name, own));
      this.resyncNeeded = true;
    }
  }

  private ensureRemapper(): void {
    if (this.remapper === null && this.pool!.transactionMode && this.host.general.preparedStatements) this.remapper = this.newRemapper();
  }

  /** Apart from ensureRemapper, which runs at every attach: a function that makes a closure allocates a context at every call. */
  private newRemapper(): StatementRemapper {
    const limits = { maxPerServer: this.host.general.maxPreparedStatements, maxPerClient: this.host.general.preparedStatementsCacheSize };
    return new StatementRemapper(this.pool!.statements, limits, () => this.wanted);
  }

  failWait(def: ErrorDef, message: string, detail?: string): void {
    // The pool has already taken this client off its queue.
    if (this.state === ClientState.Waiting) this.state = ClientState.Idle;
    this.fatal(def, message, detail);
  }

  /**
   * A CancelRequest while the query still waits for a server: PostgreSQL's answer to a cancelled statement
   * (57014, then ReadyForQuery) comes from here and the messages up to the first sync point are dropped
   * unsent, so nothing of them ever runs. Later queued statements keep their place in the queue, as they
   * would run after the cancelled one. Inside a transaction block Doorman answered itself, the block is now
   * aborted (see deferredAborted). Not done (false) before the batch's Sync has arrived.
   * The same holds while the pool checks or syncs the server picked for it (Reserved): nothing of the client's
   * has been sent yet, and a server it then gets with nothing left to run goes straight back. Inside such a
   * block with nothing left to run, the client lets go of that server at once, since its BEGIN would go first.
   */
  cancelWaiting(): boolean {
    if (this.loginPending) return false;
    if (this.state !== ClientState.Waiting && this.state !== ClientState.Reserved) return false;
    const q = this.queued;
    let cut = -1;
    for (let i = 0; i < q.length && cut < 0; i++) {
      const code = q.code(i);
      if (q.whole(i) && (code === FrontendCode.Query || code === FrontendCode.Sync || code === FrontendCode.FunctionCall)) cut = i;
    }
    if (cut < 0) return false;
    q.dropFirst(cut + 1);
    this.pending--;
    this.queryStartedAt = preciseNow();
    if (q.length === 0 && this.state === ClientState.Waiting) {
      this.pool!.cancelWait();
      this.state = ClientState.Idle;
    } else if (q.length === 0 && this.deferredBegin !== null) {
      // Reserved: attach() would open the block on that server with nothing to run in it. The block stays in
      // Doorman, aborted; the pool takes the server back once its check or sync is done (see Pool.sync).
      this.unreserve();
    }
    const message = 'canceling statement due to user request';
    this.logError('ERROR', E.queryCanceled.sqlstate, E.queryCanceled.code, message);
    const inBlock = this.deferredBegin !== null;
    if (inBlock) this.deferredAborted = true;
    this.socket.write(Buffer.concat([errorResponse({ severity: 'ERROR', code: E.queryCanceled.sqlstate, message }), inBlock ? READY_FAILED : READY_IDLE]));
    if (this.pausedForServer && this.queued.bytes <= this.host.general.maxBufferedBytes) this.resumeReading();
    return true;
  }

  failWithServerError(e: ErrorInfo): void {
    this.logError('FATAL', e.code, null, e.message);
    this.sendError({ severity: 'FATAL', code: e.code, message: e.message, detail: e.fields.D, hint: e.fields.H });
    this.close();
  }

  /** Every error Doorman itself sends a client is logged once, with its SQLSTATE (never a secret: messages name users, not passwords). */
  private logError(severity: string, sqlstate: string, code: string | null, message: string): void {
    this.host.log.info({ client: this.id, addr: this.remoteAddress, user: this.user, database: this.database, severity, sqlstate, code }, message);
  }

  /** The attached server died. */
  serverLost(s: ServerConnection, reason: string): void {
    if (this.server !== s) return;
    this.server = null;
    this.fatal(E.serverGone, 'server closed the connection unexpectedly', reason);
  }

  // ---- startup and authentication ----

  private onStartupData(buf: Buffer, start: number, end: number): void {
    const f = this.framer;
    let kind: FrameKind;
    while (this.state <= ClientState.Auth && (kind = f.next()) !== FrameKind.None) {
      if (kind !== FrameKind.Message) return this.framingError();
      try {
        if (this.state === ClientState.Startup) this.onStartupPacket(f.buf, f.start, f.end);
        else this.onAuthMessage(f.buf, f.start, f.end);
      } catch (err) {
        if (err instanceof ProtocolViolation) return this.fatal(E.protocolViolation, `invalid message: ${err.message}`);
        throw err;
      }
      if (this.state === ClientState.Closed) return;
    }
    // Messages pipelined behind the login (rare, but legal once ReadyForQuery is due) are relayed now.
    if (this.state > ClientState.Auth && this.state !== ClientState.Closed && !f.idle) this.relay(buf, start, end);
  }

  /** The admin console answers simple queries only; Terminate ends the session. */
  private consoleFrames(): void {
    if (this.consoleBusy) return;
    const f = this.framer;
    let kind: FrameKind;
    while (this.state !== ClientState.Closed && (kind = f.next()) !== FrameKind.None) {
      if (kind === FrameKind.Error) return this.framingError();
      if (kind !== FrameKind.Message) return this.fatal(E.protocolViolation, 'message too long for the admin console');
      const code = f.buf[f.start];
      if (code === FrontendCode.Terminate) return this.onClose();
      if (this.consoleSkipping) {
        if (code === FrontendCode.Sync) {
          this.consoleSkipping = false;
          this.socket.write(READY_IDLE);
        }
        continue;
      }
      if (code === FrontendCode.Query) {
        // The view gathers every shard's figures; later messages wait in the framer until it answers.
        const text = readQueryText(f.buf, f.start, f.end);
        this.consoleBusy = true;
        void this.host.adminView(text).then(async (view) => {
          let result = runAdminCommand(text, view);
          if (result.kind === 'later') result = await result.result;
          this.consoleBusy = false;
          if (this.state === ClientState.Closed) return;
          this.socket.write(encodeAdminResult(result));
          if (result.kind === 'done' && result.after !== null) result.after();
          this.consoleFrames();
        });
        return;
      }
      this.sendError({ severity: 'ERROR', code: '08P01', message: 'the admin console speaks the simple query protocol only' });
      if (code === FrontendCode.Sync) this.socket.write(READY_IDLE);
      else this.consoleSkipping = true;
    }
  }

  private framingError(): void {
    const tooLarge = this.framer.error === FramerError.LengthTooLarge;
    this.fatal(
      tooLarge ? E.messageTooLarge : E.protocolViolation,
      tooLarge ? `message too large (max_message_size is ${this.host.general.maxMessageSize} bytes)` : 'invalid message length',
    );
  }

  private onStartupPacket(buf: Buffer, start: number, end: number): void {
    const p = parseStartupPacket(buf, start, end);
    switch (p.kind) {
      case 'invalid':
        return this.fatal(E.protocolViolation, `invalid startup packet: ${p.reason}`);
      case 'cancel':
        this.host.cancel(p.processId, p.secretKey);
        return this.close();
      case 'gssenc':
        this.socket.write(SSL_NO);
        return;
      case 'ssl':
        return this.onSslRequest();
      case 'startup':
        return this.onStartup(p.major, p.minor, p.params);
    }
  }

  private onSslRequest(): void {
    const ctx = this.host.clientTls;
    if (!this.framer.idle) return this.fatal(E.protocolViolation, 'received unencrypted data after SSL request');
    if (this.tls || ctx === null || this.host.general.tlsMode === 'disable' || this.local) {
      this.socket.write(SSL_NO);
      return;
    }
    this.socket.write(SSL_YES);
    let raw = this.socket;
    const ssl = this.host.clientSsl;
    if (raw instanceof RawSocket && ssl !== null) {
      // OpenSSL on the shard's loop: reads stay on the reader path, decrypted.
      raw.startTls(ssl);
      this.tls = true;
      return;
    }
    raw.removeAllListeners('data');
    raw.removeAllListeners('drain');
    if (raw instanceof RawSocket) {
      // TLS runs on Node's sockets; the shard's loop lets go of the descriptor.
      raw.removeAllListeners();
      raw = raw.toNodeSocket();
      raw.on('error', () => this.onClose());
      // Node starts reading the new socket on the next tick: let libuv run it now.
      this.host.io?.yieldSoon();
    }
    // From here TLS reads the descriptor; nothing may reach the framer unencrypted.
    if (this.reader !== null) this.reader.onChunk = () => this.fatal(E.protocolViolation, 'received unencrypted data after SSL request');
    const t = new tls.TLSSocket(raw as net.Socket, { isServer: true, secureContext: ctx });
    this.socket = t;
    this.toClient.socket = t;
    this.tls = true;
    this.bindSocket(t);
  }

  private onStartup(major: number, minor: number, params: Map<string, string>): void {
    const g = this.host.general;
    if (major !== 3) return this.fatal(E.unsupportedProtocol, `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`);
    let wanted: ParamMap;
    let protocolOptions: string[];
    try {
      ({ wanted, protocolOptions } = startupParameters(params));
    } catch (err) {
      return this.fatal(E.protocolViolation, (err as Error).message);
    }
    if (minor > 0 || protocolOptions.length > 0) this.socket.write(negotiateProtocolVersion(0, protocolOptions));
    const replication = params.get('replication');
    if (replication !== undefined && !['false', 'off', 'no', '0'].includes(replication.toLowerCase())) {
      return this.fatal(E.replicationUnsupported, 'replication connections are not supported by Doorman');
    }
    this.user = params.get('user') ?? '';
    this.database = params.get('database') || this.user;
    this.startupWanted = wanted;
    this.framer.untyped = false;
    if (this.host.clientCount > g.maxClientConn) return this.fatal(E.tooManyClients, 'sorry, too many clients already');
    if (g.tlsMode === 'require' && !this.tls && !this.local) return this.fatal(E.tlsRequired, 'SSL required');

    let method: Exclude<HbaMethod, 'reject'> | null = null;
    if (this.host.hba !== null) {
      const rule = matchHba(this.host.hba, { local: this.local, ssl: this.tls, database: this.database, user: this.user, address: this.remoteAddress });
      const where = `host "${this.remoteAddress}", user "${this.user}", database "${this.database}", ${this.tls ? 'SSL encryption' : 'no encryption'}`;
      if (rule === null) return this.fatal(E.hbaNoEntry, `no pg_hba.conf entry for ${where}`);
      if (rule.method === 'reject') return this.fatal(E.hbaReject, `pg_hba.conf rejects connection for ${where}`);
      method = rule.method;
    }
    if (RESERVED_DATABASE_NAMES.includes(this.database)) {
      if (this.user !== g.adminUsername) return this.fatal(E.hbaReject, `user "${this.user}" may not connect to the admin console`);
      this.adminConsole = true;
      this.creds = this.host.adminCredentials();
      this.state = ClientState.Auth;
      return this.beginAuth(method);
    }
    const pool = this.host.findPool(this.database, this.user);
    if (pool === undefined) return this.fatal(E.noSuchDatabase, `database "${this.database}" does not exist`);
    if (this.host.isDisabled(this.database)) {
      return this.fatal(E.databaseDisabled, `database "${this.database}" is not currently accepting connections`, 'an administrator ran DISABLE; ENABLE lets clients in again');
    }
    this.pool = pool;
    if (pool !== null) {
      // The same text, but the pool's copy: 10,000 clients of one pool need not hold 10,000 of each.
      this.user = pool.user.username;
      this.database = pool.db.name;
    }
    this.creds = pool === null ? null : this.host.credentials(pool).client;
    this.state = ClientState.Auth;
    this.beginAuth(method);
  }

  private beginAuth(method: Exclude<HbaMethod, 'reject'> | null): void {
    if (method === 'trust') {
      if (this.adminConsole) return this.authenticated();
      if (this.creds === null) return this.fatal(E.hbaNoEntry, `role "${this.user}" does not exist`);
      return this.authenticated();
    }
    this.auth = new ClientAuthExchange(this.creds, this.user);
    this.applyAuth(this.auth.begin(method));
  }

  private onAuthMessage(buf: Buffer, start: number, end: number): void {
    if (buf[start] !== FrontendCode.PasswordMessage || this.auth === null) {
      return this.fatal(E.protocolViolation, `expected password response, got message type "${String.fromCharCode(buf[start])}"`);
    }
    this.applyAuth(this.auth.onMessage(buf, start, end));
  }

  private applyAuth(o: AuthOutcome): void {
    switch (o.kind) {
      case 'send':
        this.socket.write(o.message);
        return;
      case 'ok':
        if (o.message !== null) this.socket.write(o.message);
        return this.authenticated();
      case 'failed':
        return this.authFailed();
      case 'violation':
        return this.fatal(E.protocolViolation, o.reason);
    }
  }

  private authFailed(): void {
    this.fatal(E.authFailed, `password authentication failed for user "${this.user}"`);
  }

  private authenticated(): void {
    this.auth = null;
    this.creds = null;
    this.host.registerCancelKey(this);
    if (this.adminConsole) return this.consoleLoginOk();
    const pool = this.pool!;
    if (pool.defaults === null || !this.spellingsKnown(pool)) {
      // The first client of a pool, or one spelling a parameter in a way not seen yet ("iso", "utf8"), waits
      // for a server to learn what PostgreSQL reports, so the client sees exactly what PostgreSQL would send.
      this.wanted = new VersionedParams(this.startupWanted);
      this.loginPending = true;
      this.state = ClientState.Idle;
      this.requestServer();
      return;
    }
    this.sendLoginOk(null);
  }

  private consoleLoginOk(): void {
    const parts = [authenticationOk()];
    for (const [name, value] of ADMIN_PARAMETERS) parts.push(parameterStatus(name, value));
    parts.push(backendKeyData(this.processId, this.secretKey), READY_IDLE);
    this.socket.write(Buffer.concat(parts));
    this.state = ClientState.Idle;
    this.host.clientLoggedIn(this);
  }

  /** True when every reported parameter the client set at startup has a known reported form. */
  private spellingsKnown(pool: Pool): boolean {
    for (const [name, value] of pool.defaults!.status) {
      const key = name.toLowerCase();
      const raw = this.startupWanted.get(key);
      if (raw !== undefined && raw !== value && pool.canonicalValue(key, raw) === undefined) return false;
    }
    return true;
  }

  /** AuthenticationOk, the ParameterStatus set, BackendKeyData and ReadyForQuery in one write. */
  private sendLoginOk(s: ServerConnection | null): void {
    const pool = this.pool!;
    const wanted: ParamMap = new Map();
    const parts: Buffer[] = [authenticationOk()];
    for (const [name, value] of pool.defaults!.status) {
      const key = name.toLowerCase();
      const raw = this.startupWanted.get(key);
      let v = value;
      if (s !== null) {
        v = s.status.get(key) ?? value;
        if (raw !== undefined) pool.learnCanonical(key, raw, v);
      } else if (raw !== undefined && raw !== value) {
        v = pool.canonicalValue(key, raw) ?? raw;
      }
      if (isReported(key)) wanted.set(key, v);
      parts.push(parameterStatus(name, v));
    }
    for (const [k, v] of this.startupWanted) {
      if (!wanted.has(k)) {
        wanted.set(k, v);
        if (isReported(k)) parts.push(parameterStatus(reportedName(k), v));
      }
    }
    const defaults = sharedParams(wanted);
    this.wanted = VersionedParams.of(defaults);
    this.sessionDefaults = defaults.values;
    this.startupWanted = NO_PARAMS;
    this.ensureRemapper();
    parts.push(backendKeyData(this.processId, this.secretKey), READY_IDLE);
    this.socket.write(Buffer.concat(parts));
    if (this.state === ClientState.Auth) this.state = ClientState.Idle;
    this.host.clientLoggedIn(this);
  }

  /** A bug met while handling this client's bytes: it is logged and this client (only) is closed. */
  private internalError(err: unknown): void {
    this.host.log.error({ client: this.id, user: this.user, database: this.database, err: (err as Error).message, stack: (err as Error).stack }, 'internal error; closing the client');
    const s = this.server;
    if (s !== null) {
      this.server = null;
      s.client = null;
      s.close('internal error on its client');
    }
    this.fatal(E.internal, 'internal error in the connection pooler');
  }

  // ---- binary upgrade ----

  /**
   * If this client can move to a new process now (logged in, transaction mode, no server, nothing in flight
   * either way, no TLS), stops reading its socket and returns what travels with it; the caller hands the
   * socket over. Bytes it sent that were not relayed yet (a queued query of a waiting client) travel along.
   */
  detachForMigration(): MigratedClient | null {
    if (this.state !== ClientState.Idle && this.state !== ClientState.Waiting) return null;
    const pool = this.pool;
    if (pool === null || !pool.transactionMode || this.tls || this.adminConsole || this.loginPending || this.consoleBusy) return null;
    if (this.server !== null || this.reserved !== null || this.deferredBegin !== null || this.held.length > 0 || this.heldStatus.length > 0) return null;
    if (this.framer.inStream || !this.queued.allWhole || (this.remapper !== null && !this.remapper.idle)) return null;
    if (this.socket.writableLength > 0 || this.pausedForServer || this.parametersReset || this.resyncNeeded) return null;
    const s = this.socket;
    s.pause();
    (s as unknown as { _handle?: { readStop?: () => void } })._handle?.readStop?.();
    const parts = [...this.queued.views(), this.framer.takeRemainder()];
    const unread = s.read();
    if (unread !== null) parts.push(unread);
    if (this.state === ClientState.Waiting) pool.cancelWait();
    this.state = ClientState.Closed;
    this.queued.clear();
    return {
      user: this.user,
      database: this.database,
      wanted: [...this.wanted],
      sessionDefaults: [...this.sessionDefaults],
      processId: this.processId,
      secretKey: this.secretKey,
      statements: this.remapper?.exportNames() ?? [],
      pending: Buffer.concat(parts),
    };
  }

  /** The new process's side of detachForMigration(): a logged-in client on a handed-over socket. */
  static migrated(socket: ByteSocket, reader: SocketReader, host: SessionHost, pool: Pool, m: MigratedClient): ClientConnection {
    const c = new ClientConnection(socket, host, reader);
    c.user = m.user;
    c.database = m.database;
    c.pool = pool;
    c.wanted = new VersionedParams(m.wanted);
    c.sessionDefaults = new Map(m.sessionDefaults);
    c.processId = m.processId;
    c.secretKey = m.secretKey;
    c.framer.untyped = false;
    c.state = ClientState.Idle;
    c.ensureRemapper();
    if (m.statements.length > 0) c.remapper?.importNames(m.statements);
    return c;
  }

  /** Relays bytes the client sent before it moved, ahead of anything read from now on. */
  replay(pending: Uint8Array): void {
    if (pending.length > 0) this.onData(Buffer.from(pending.buffer, pending.byteOffset, pending.byteLength), 0, pending.byteLength);
  }

  // ---- closing ----

  fatal(def: ErrorDef, message: string, detail?: string): void {
    if (this.state === ClientState.Closed) return;
    this.logError(def.severity, def.sqlstate, def.code, message);
    this.sendError({ severity: def.severity, code: def.sqlstate, message, detail });
    this.close();
  }

  private sendError(f: { severity: 'ERROR' | 'FATAL'; code: string; message: string; detail?: string; hint?: string }): void {
    if (this.socket.writable) this.socket.write(errorResponse(f));
  }

  /** Ends the connection after pending writes; a peer that does not read is cut off after a bound. */
  close(): void {
    if (this.state === ClientState.Closed) return;
    this.onClose();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  private onClose(): void {
    if (this.state === ClientState.Closed) return;
    const prev = this.state;
    this.state = ClientState.Closed;
    this.queued.clear();
    this.held.clear();
    if (prev === ClientState.Waiting) this.pool!.cancelWait();
    if (prev === ClientState.Reserved && this.reserved !== null) {
      (this.reserved as ServerConnection).reservedFor = null;
      this.reserved = null;
    }
    const s = this.server;
    if (s !== null) {
      this.server = null;
      s.client = null;
      if (s.pausedForClient) {
        s.pausedForClient = false;
        s.socket.resume();
      }
      if (this.pending <= 0 && !this.unsynced && !this.framer.inStream) {
        // Idle or idle in transaction: the reset (with ROLLBACK if needed) makes the server reusable.
        s.dirty |= this.dirtyFromClient;
        this.pool!.checkin(s);
      } else {
        s.close('client disconnected while a query was in progress');
      }
    }
    if (!this.socket.destroyed && this.socket.readyState !== 'closed') this.socket.end();
    this.host.clientClosed(this);
  }
}
