/**
 * A connection from Doorman to PostgreSQL: connect (optionally TLS), log in, then relay the server's
 * messages to whichever client the pool attached, reading only what the pooler must act on.
 *
 * States: Connecting -> TlsNegotiation? -> Login -> Ready -> Closed. Internal queries (health check,
 * parameter sync, reset) run in Ready with the client detached; their responses never reach a client.
 */
import net from 'node:net';
import tls from 'node:tls';
import { md5Response } from '../auth/md5.js';
import { ScramClientExchange, SCRAM_SHA_256 } from '../auth/scram.js';
import { Framer, FrameKind } from '../protocol/framer.js';
import { AuthCode, BackendCode, BACKEND_STREAMABLE, TxStatus } from '../protocol/codes.js';
import { readAuthentication, readBackendKeyData, readErrorFields, readParameterStatus, type ErrorInfo } from '../protocol/backend.js';
import { cancelRequest, passwordMessage, query, saslInitialResponse, saslResponse, sslRequest, startupMessage, TERMINATE } from '../protocol/frontend.js';
import type { Pool } from '../pool/pool.js';
import { lostByPool, ServerPoolState, type PoolServer } from '../pool/members.js';
import { Agreement, isReported, VersionedParams } from './params.js';
import { dirtyAfterCommand, resetsParameters } from './reset.js';
import { ServerStatements } from '../prepared/statements.js';
import type { ClientConnection } from './client.js';
import type { ServerCredentials } from './credentials.js';
import type { SessionHost } from './host.js';
import { SocketReader, type ReadingSocketOptions } from './socket-reader.js';
import type { ByteSocket } from './byte-socket.js';
import type { Outbox } from './outbox.js';
import { RawSocket } from '../io/raw-socket.js';
import { dupSocketDescriptor } from '../workers/fd.js';

export const enum ServerState {
  Connecting,
  TlsNegotiation,
  Login,
  Ready,
  Closed,
}

type InternalDone = (ok: boolean, error?: ErrorInfo) => void;

/** Node's codes, and RawSocket's, of a certificate that does not verify (as opposed to a broken connection). */
const CERTIFICATE_ERRORS = /^(ERR_TLS_CERT_ALTNAME_INVALID|UNABLE_TO_|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_|HOSTNAME_MISMATCH)/;

let nextServerId = 1;

export class ServerConnection implements PoolServer {
  readonly id = nextServerId++;
  state = ServerState.Connecting;
  poolState = ServerPoolState.Opening;
  holdsSlot = false;
  generation = 0;
  socket: ByteSocket;
  /** The Node socket that connects and logs in; after login a plain connection moves to the shard's loop. */
  private nodeSocket: net.Socket;
  private readonly reader = new SocketReader();
  readonly framer: Framer;
  /** The client whose bytes flow to this server (attached). */
  client: ClientConnection | null = null;
  /** The client the pool chose while the server is checked and synced for it. */
  reservedFor: ClientConnection | null = null;
  processId = 0;
  secretKey = 0;
  readonly status = new VersionedParams();
  readonly extra = new VersionedParams();
  readonly agreement = new Agreement();
  readonly startupStatus: [string, string][] = [];
  readonly prepared = new ServerStatements();
  readonly createdAt: number;
  lastUsed: number;
  servingSince = 0;
  dirty = 0;
  txStatus: number = TxStatus.Idle;
  sessionUsed = false;
  cancelsInFlight = 0;
  onCancelsDone: (() => void) | null = null;
  tls = false;
  closeReason = '';

  private internalLeft = 0;
  private internalStartedAt = 0;
  private internalDone: InternalDone | null = null;
  private internalError: ErrorInfo | undefined;
  private connectDone: ((err: string | null, fatalForClients: boolean) => void) | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private scram: ScramClientExchange | null = null;
  private closedNotified = false;
  /** The client stopped reading; this socket is paused until it drains. */
  pausedForClient = false;

  constructor(
    readonly pool: Pool,
    private readonly host: SessionHost,
    private readonly creds: ServerCredentials,
  ) {
    this.createdAt = host.now;
    this.lastUsed = host.now;
    this.framer = new Framer({ maxMessageSize: host.general.maxMessageSize, streamable: BACKEND_STREAMABLE, streamThreshold: 64 * 1024 });
    this.nodeSocket = new net.Socket({ onread: this.reader.options } as ReadingSocketOptions);
    this.socket = this.nodeSocket;
  }

  /** Read through a getter so that narrowing on `state` does not hide changes made by callbacks. */
  get closed(): boolean {
    return this.state === ServerState.Closed;
  }

  get unixSocket(): boolean {
    return this.pool.db.serverHost.startsWith('/');
  }

  // ---- connect and login ----

  connect(done: (err: string | null, fatalForClients: boolean) => void): void {
    this.connectDone = done;
    this.connectTimer = setTimeout(() => this.loginFailed(`timeout after ${this.host.general.connectTimeout} ms connecting to the server`, false), this.host.general.connectTimeout);
    const db = this.pool.db;
    const s = this.nodeSocket;
    this.bindSocket(s);
    s.once('connect', () => {
      if (this.state !== ServerState.Connecting) return;
      s.setNoDelay(this.host.general.tcpNoDelay);
      if (this.host.general.tcpKeepalive) s.setKeepAlive(true, 30000);
      if (db.serverTlsMode !== 'disable' && !this.unixSocket) {
        this.state = ServerState.TlsNegotiation;
        s.write(sslRequest());
      } else {
        this.startLogin();
      }
    });
    if (this.unixSocket) s.connect({ path: `${db.serverHost}/.s.PGSQL.${db.serverPort}` });
    else s.connect({ host: db.serverHost, port: db.serverPort });
    // Node starts the connect on the next tick, which runs only once the shard's loop hands back to libuv.
    this.host.io?.yieldSoon();
  }

  private bindSocket(s: ByteSocket): void {
    const onChunk = (buf: Buffer, start: number, end: number): void => {
      try {
        this.onData(buf, start, end);
      } catch (err) {
        this.internalFault(err);
      }
    };
    if (s instanceof tls.TLSSocket) s.on('data', (chunk: Buffer) => onChunk(chunk, 0, chunk.length));
    else this.reader.onChunk = onChunk;
    s.on('error', (err: NodeJS.ErrnoException) => {
      // A certificate PostgreSQL presents that fails verification will fail every retry: tell the waiters now.
      if (this.state !== ServerState.Ready) this.loginFailed(err.message, this.tls && CERTIFICATE_ERRORS.test(err.code ?? ''));
      else this.closeReason ||= err.message;
    });
    s.on('close', () => this.onClose());
    s.on('drain', () => {
      const c = this.client;
      if (c !== null && c.pausedForServer) c.resumeReading();
    });
  }

  private startLogin(): void {
    this.state = ServerState.Login;
    const params: Record<string, string> = { user: this.creds.username, database: this.pool.db.serverDatabase };
    if (this.pool.db.applicationName !== '') params.application_name = this.pool.db.applicationName;
    this.socket.write(startupMessage(params));
  }

  /**
   * TLS after the server's 'S': OpenSSL on the shard's loop, as for TLS clients, where the shard has a loop
   * and a context; Node's TLSSocket otherwise. The startup packet is written at once and goes out when the
   * handshake is done.
   */
  private upgradeToTls(): void {
    const mode = this.pool.db.serverTlsMode;
    const verify = mode === 'verify-ca' || mode === 'verify-full';
    const ssl = this.host.io === null ? null : this.host.serverSsl(verify);
    if (ssl === null) return this.upgradeToNodeTls(mode, verify);
    const host = this.pool.db.serverHost;
    const raw = this.moveToShardLoop();
    this.tls = true;
    try {
      raw.startTls(ssl, { serverName: net.isIP(host) === 0 ? host : null, checkName: mode === 'verify-full' ? host : null });
    } catch (err) {
      return this.loginFailed((err as Error).message, false);
    }
    this.startLogin();
  }

  private upgradeToNodeTls(mode: string, verify: boolean): void {
    const raw = this.nodeSocket;
    raw.removeAllListeners('data');
    // From here TLS reads the descriptor; a plain byte would be the server's, out of protocol.
    this.reader.onChunk = () => this.loginFailed('received unencrypted data after SSL negotiation', false);
    const opts: tls.ConnectionOptions = {
      socket: raw,
      rejectUnauthorized: verify,
      ca: this.host.serverCa ?? undefined,
    };
    if (net.isIP(this.pool.db.serverHost) === 0) opts.servername = this.pool.db.serverHost;
    // verify-ca checks the chain only; verify-full also the host name (libpq's meanings).
    if (mode !== 'verify-full') opts.checkServerIdentity = () => undefined;
    else if (net.isIP(this.pool.db.serverHost) !== 0) {
      const ip = this.pool.db.serverHost;
      opts.checkServerIdentity = (_h, cert) => tls.checkServerIdentity(ip, cert);
    }
    const t = tls.connect(opts);
    this.socket = t;
    this.nodeSocket = t;
    this.tls = true;
    this.bindSocket(t);
    t.once('secureConnect', () => this.startLogin());
  }

  /**
   * From here the shard's loop drives the connection: once logged in over a plain connection, or as TLS
   * starts. The server sends nothing after ReadyForQuery until asked, nor after 'S' until the ClientHello,
   * so no byte is left behind in the Node socket, whose descriptor alone closes.
   */
  private moveToShardLoop(): RawSocket {
    const old = this.nodeSocket;
    const fd = dupSocketDescriptor(old);
    old.removeAllListeners();
    old.on('error', () => {});
    old.destroy();
    const raw = new RawSocket(fd, this.host.io!, this.reader, this.unixSocket ? undefined : this.pool.db.serverHost, this.unixSocket ? undefined : this.pool.db.serverPort);
    this.socket = raw;
    this.bindSocket(raw);
    return raw;
  }

  private loginFailed(reason: string, fatalForClients: boolean): void {
    const done = this.connectDone;
    if (done === null) return;
    this.connectDone = null;
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.closeReason = reason;
    this.state = ServerState.Closed;
    this.socket.destroy();
    done(reason, fatalForClients);
  }

  private onLoginMessage(buf: Buffer, start: number, end: number): void {
    switch (buf[start]) {
      case BackendCode.Authentication:
        return this.onAuthRequest(buf, start, end);
      case BackendCode.ParameterStatus: {
        const [name, value] = readParameterStatus(buf, start, end);
        this.status.set(name.toLowerCase(), value);
        this.startupStatus.push([name, value]);
        return;
      }
      case BackendCode.BackendKeyData: {
        const k = readBackendKeyData(buf, start, end);
        this.processId = k.processId;
        this.secretKey = k.secretKey;
        return;
      }
      case BackendCode.ErrorResponse: {
        const e = readErrorFields(buf, start, end);
        return this.loginFailed(`${e.severity}: ${e.message} (SQLSTATE ${e.code})`, true);
      }
      case BackendCode.ReadyForQuery: {
        this.state = ServerState.Ready;
        this.txStatus = buf[start + 5];
        const done = this.connectDone;
        this.connectDone = null;
        if (this.connectTimer !== null) clearTimeout(this.connectTimer);
        this.connectTimer = null;
        this.lastUsed = this.host.now;
        if (this.host.io !== null && !this.tls) this.moveToShardLoop();
        this.host.log.info({ server: this.id, pool: this.pool.name, pid: this.processId, tls: this.tls ? (this.socket instanceof RawSocket ? 'openssl' : 'node') : 'off' }, 'server connected');
        done?.(null, false);
        return;
      }
      case BackendCode.NoticeResponse:
      case BackendCode.NegotiateProtocolVersion:
        return;
      default:
        return this.loginFailed(`unexpected message type "${String.fromCharCode(buf[start])}" during login`, false);
    }
  }

  private onAuthRequest(buf: Buffer, start: number, end: number): void {
    const { type, data } = readAuthentication(buf, start, end);
    const c = this.creds;
    try {
      switch (type) {
        case AuthCode.Ok:
          return;
        case AuthCode.CleartextPassword:
          if (c.password === null) return this.noPassword('password');
          this.socket.write(passwordMessage(c.password));
          return;
        case AuthCode.MD5Password: {
          const secret = c.password ?? c.md5Hash;
          if (secret === null) return this.noPassword('md5');
          this.socket.write(passwordMessage(md5Response(secret, c.username, data.subarray(0, 4))));
          return;
        }
        case AuthCode.SASL: {
          const mechanisms = data.toString('utf8').split('\0').filter((m) => m !== '');
          if (!mechanisms.includes(SCRAM_SHA_256)) {
            return this.loginFailed(`server offers SASL mechanisms ${mechanisms.join(', ')}, none of which Doorman supports`, true);
          }
          if (c.password === null) return this.noPassword('scram-sha-256');
          this.scram = new ScramClientExchange(c.password);
          this.socket.write(saslInitialResponse(SCRAM_SHA_256, Buffer.from(this.scram.clientFirst())));
          return;
        }
        case AuthCode.SASLContinue:
          if (this.scram === null) return this.loginFailed('unexpected SASLContinue', false);
          this.socket.write(saslResponse(Buffer.from(this.scram.handleServerFirst(data.toString('utf8')))));
          return;
        case AuthCode.SASLFinal:
          if (this.scram === null) return this.loginFailed('unexpected SASLFinal', false);
          this.scram.verifyServerFinal(data.toString('utf8'));
          this.scram = null;
          return;
        default:
          return this.loginFailed(`server asks for authentication type ${type}, which Doorman does not support`, true);
      }
    } catch (err) {
      this.loginFailed(`authentication with the server failed: ${(err as Error).message}`, true);
    }
  }

  private noPassword(method: string): void {
    this.loginFailed(
      `the server asks for ${method} authentication but user "${this.pool.user.username}" has no usable server_password`,
      true,
    );
  }

  // ---- relaying ----

  /** A chunk the server sent: buf[start, end). */
  private onData(buf: Buffer, start: number, end: number): void {
    const f = this.framer;
    f.push(buf, start, end);
    if (this.client !== null) this.pool.stats.sent += end - start;
    if (this.state === ServerState.TlsNegotiation) return this.onTlsAnswer(buf, start, end);
    let kind: FrameKind;
    while ((kind = f.next()) !== FrameKind.None) {
      if (kind === FrameKind.Error) {
        this.close('protocol violation from server');
        return;
      }
      if (this.state !== ServerState.Ready) {
        if (kind !== FrameKind.Message) return this.loginFailed('oversized message during login', false);
        try {
          this.onLoginMessage(f.buf, f.start, f.end);
        } catch (err) {
          this.loginFailed(`malformed message during login: ${(err as Error).message}`, false);
        }
        if (this.closed) return;
        continue;
      }
      const client = this.client;
      if (this.internalLeft > 0 || client === null) {
        if (kind === FrameKind.Message) this.onDetachedMessage(f.buf, f.start, f.end);
        if (this.closed) return;
        continue;
      }
      if (kind === FrameKind.Message) {
        const buf = f.buf;
        const start = f.start;
        const code = f.code;
        if (code === BackendCode.ReadyForQuery) {
          this.txStatus = buf[start + 5];
        } else if (code === BackendCode.ParameterStatus) {
          const [name, value] = readParameterStatus(buf, start, f.end);
          this.status.set(name.toLowerCase(), value);
          client.holdParameterStatus(name, value, buf, start, f.end);
          continue;
        }
        if (code === BackendCode.CommandComplete && resetsParameters(buf, start, f.end)) client.parametersReset = true;
        if (client.heldStatusCount > 0) client.releaseParameterStatus(client.parametersReset);
        if (code === BackendCode.ReadyForQuery) client.parametersReset = false;
        const rm = client.remapper;
        if (rm !== null && !rm.onResponse(code, buf, start, f.end, this, client.toClient)) continue;
        if (code === BackendCode.ReadyForQuery) {
          client.pending--;
          client.queryDone(this.txStatus);
        } else if (code === BackendCode.CommandComplete) {
          this.dirty = dirtyAfterCommand(this.dirty, buf, start, f.end);
        } else if (code === BackendCode.ErrorResponse) {
          this.pool.stats.serverError(buf, start, f.end);
        }
      } else if (f.first) {
        // A long DataRow begins: whatever Doorman owes the client before it goes first.
        if (client.heldStatusCount > 0) client.releaseParameterStatus(client.parametersReset);
        client.remapper?.emitSynthetics(client.toClient);
      }
      client.toClient.add(f.buf, f.start, f.end);
    }
    const client = this.client;
    if (client !== null) client.afterServerData(this);
  }

  private onTlsAnswer(buf: Buffer, start: number, end: number): void {
    const answer = buf[start];
    const mode = this.pool.db.serverTlsMode;
    if (end - start !== 1) return this.loginFailed('unexpected data after the answer to SSLRequest', false);
    if (answer === 0x53 /* 'S' */) return this.upgradeToTls();
    if (answer === 0x4e /* 'N' */ && mode === 'prefer') return this.startLogin();
    this.loginFailed(answer === 0x4e ? `the server does not support TLS (server_tls_mode ${mode})` : 'invalid answer to SSLRequest', answer === 0x4e);
  }

  private onParameterStatus(buf: Buffer, start: number, end: number, client: ClientConnection | null): void {
    const [name, value] = readParameterStatus(buf, start, end);
    const key = name.toLowerCase();
    this.status.set(key, value);
    if (client !== null && isReported(key)) client.wanted.set(key, value);
  }

  /** Messages while no client is attached: internal query responses, or something unsolicited. */
  private onDetachedMessage(buf: Buffer, start: number, end: number): void {
    switch (buf[start]) {
      case BackendCode.ParameterStatus:
        return this.onParameterStatus(buf, start, end, this.reservedFor);
      case BackendCode.ReadyForQuery:
        this.txStatus = buf[start + 5];
        if (this.internalLeft > 0 && --this.internalLeft === 0) {
          const done = this.internalDone;
          const error = this.internalError;
          this.internalDone = null;
          this.internalError = undefined;
          done?.(error === undefined, error);
        }
        return;
      case BackendCode.ErrorResponse: {
        const e = readErrorFields(buf, start, end);
        if (this.internalLeft > 0) {
          this.internalError ??= e;
          return;
        }
        // Unsolicited: the backend is going away (terminated, idle timeout); the close follows.
        this.closeReason = `${e.severity}: ${e.message} (SQLSTATE ${e.code})`;
        return;
      }
      case BackendCode.CommandComplete:
      case BackendCode.EmptyQueryResponse:
      case BackendCode.NoticeResponse:
      case BackendCode.NotificationResponse:
      case BackendCode.RowDescription:
      case BackendCode.DataRow:
        return;
      default:
        if (this.internalLeft > 0) return;
        this.close(`unexpected message type "${String.fromCharCode(buf[start])}" from an idle server`);
    }
  }

  /** Open, yet in no pool list and used by nobody: see lostByPool. */
  get lost(): boolean {
    return lostByPool({
      poolState: this.poolState,
      ready: this.state === ServerState.Ready,
      runningInternal: this.internalLeft > 0,
      cancelsInFlight: this.cancelsInFlight,
      claimed: this.client !== null || this.reservedFor !== null,
    });
  }

  /** A health check, sync or reset that has not answered within `bound` ms: the server is not usable. */
  internalOverdue(now: number, bound: number): boolean {
    return this.internalLeft > 0 && now - this.internalStartedAt > bound;
  }

  /** `via`: an outbox bound for this server that is flushed soon, so the statements share its write. */
  runInternal(statements: readonly string[], done: InternalDone, via: Outbox | null = null): void {
    if (this.state !== ServerState.Ready) {
      process.nextTick(done, false);
      this.host.io?.yieldSoon();
      return;
    }
    this.internalLeft = statements.length;
    this.internalStartedAt = this.host.now;
    this.internalDone = done;
    this.internalError = undefined;
    if (via !== null) for (const sql of statements) via.addWhole(query(sql));
    else if (statements.length === 1) this.socket.write(query(statements[0]));
    else this.socket.write(Buffer.concat(statements.map((s) => query(s))));
  }

  /** Sends a CancelRequest for this backend on a new connection; the server is not reused until it is done. */
  cancel(): void {
    if (this.state !== ServerState.Ready) return;
    this.cancelsInFlight++;
    const db = this.pool.db;
    const s = this.unixSocket ? net.connect({ path: `${db.serverHost}/.s.PGSQL.${db.serverPort}` }) : net.connect({ host: db.serverHost, port: db.serverPort });
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      s.destroy();
      if (--this.cancelsInFlight === 0 && this.onCancelsDone !== null) {
        const next = this.onCancelsDone;
        this.onCancelsDone = null;
        next();
      }
    };
    s.setTimeout(this.host.general.connectTimeout, finish);
    s.on('connect', () => s.end(cancelRequest(this.processId, this.secretKey)));
    this.host.io?.yieldSoon();
    s.on('error', finish);
    s.on('close', finish);
  }

  // ---- closing ----

  /** A bug met while handling this server's bytes: it is logged, and this connection (only) is closed; its client gets 08006. */
  private internalFault(err: unknown): void {
    this.host.log.error({ server: this.id, pid: this.processId, pool: this.pool.name, err: (err as Error).message, stack: (err as Error).stack }, 'internal error; closing the server connection');
    this.close('internal error in the connection pooler');
  }

  /** Closes the connection politely (Terminate) unless it is broken. */
  close(reason: string): void {
    if (this.state === ServerState.Closed) return;
    this.closeReason ||= reason;
    const wasReady = this.state === ServerState.Ready;
    if (this.connectDone !== null) return this.loginFailed(reason, false);
    this.state = ServerState.Closed;
    if (wasReady && !this.socket.destroyed) this.socket.end(TERMINATE);
    else this.socket.destroy();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private onClose(): void {
    if (this.connectDone !== null) {
      this.loginFailed(this.closeReason || 'the server closed the connection during login', false);
    }
    if (this.closedNotified) return;
    this.closedNotified = true;
    this.state = ServerState.Closed;
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.pool.serverGone(this);
    this.host.serverClosed(this);
    const client = this.client;
    this.client = null;
    if (client !== null) client.serverLost(this, this.closeReason || 'the server closed the connection unexpectedly');
    const done = this.internalDone;
    this.internalDone = null;
    this.internalLeft = 0;
    done?.(false);
    if (this.cancelsInFlight > 0) {
      this.cancelsInFlight = 0;
      this.onCancelsDone = null;
    }
  }
}
