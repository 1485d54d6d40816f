/**
 * A connected socket driven by the shard's EpollLoop: reads with recv(2) straight into the thread's slab
 * (the one SocketReader's onread path copies into) and hands the chunk to the reader; writes with send(2) straight
 * from the caller's buffer, and queues only what the kernel did not take. It offers the part of
 * net.Socket's interface the sessions use, with the same events: 'end', 'error', 'close' and 'drain'.
 *
 * After startTls() the same socket carries a TLS session: OpenSSL reads and writes the descriptor
 * (SSL_read into the slab, SSL_write from the caller's buffer), so TLS connections, to clients and to
 * PostgreSQL, stay on the shard's loop.
 */
import net from 'node:net';
import type { ByteSocket } from '../session/byte-socket.js';
import { slabFor, slabOffset, takeSlab, type SocketReader } from '../session/socket-reader.js';
import { dupDescriptor } from '../workers/fd.js';
import type { EpollHandler, EpollLoop } from './epoll-loop.js';
import { SocketEvents } from './socket-events.js';
import type { RingSender } from './send-ring.js';
import { EAGAIN, EINTR, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, addressOf, close, errno, recvAt, send, sendAt, setKeepAlive, setNoDelay, shutdownWrite } from './libc.js';
import {
  SSL_ERROR_SSL,
  SSL_ERROR_SYSCALL,
  SSL_ERROR_WANT_READ,
  SSL_ERROR_WANT_WRITE,
  SSL_ERROR_ZERO_RETURN,
  TlsConnection,
  takeError,
  type TlsContext,
  type TlsPeer,
} from './openssl.js';

/** A read gets at least this much room in the slab; a large result streams through in reads this big or bigger. */
const MIN_READ_ROOM = 16 * 1024;
/**
 * The thread's current slab and its address, looked up once per slab. A relayed chunk is a range of it, so a
 * write of it goes out by address: no view of the range made, no buffer handed to koffi.
 */
let slabSeen: Buffer | null = null;
let slabAddress = 0;
/** The buffer last written transiently (the outbox's staging buffer) and its address. */
let transientSeen: Buffer | null = null;
let transientAddress = 0;

/**
 * The slabs before the current one, with their addresses. A waiting client's query is relayed from the slab
 * it arrived in once a server is free: at 2,000 clients that was mostly an older slab, written with a
 * send(2) of its own (0.4 per transaction) instead of in the batch's io_uring_enter.
 */
const OLD_SLABS = 4;
const oldSlabs: (Buffer | null)[] = [null, null, null, null];
const oldAddresses = [0, 0, 0, 0];
let oldNext = 0;

function noteSlab(slab: Buffer): void {
  if (slabSeen !== null) {
    oldSlabs[oldNext] = slabSeen;
    oldAddresses[oldNext] = slabAddress;
    oldNext = (oldNext + 1) % OLD_SLABS;
  }
  slabSeen = slab;
  slabAddress = addressOf(slab);
}

/** The slab a read lands in, with room for MIN_READ_ROOM; slabAddress is its address. */
function readSlab(): Buffer {
  const slab = slabFor(MIN_READ_ROOM);
  if (slab !== slabSeen) noteSlab(slab);
  return slab;
}

/** The address of `b` when it is the current slab or a recent one (never written again); -1 otherwise. */
function slabAddressOf(b: Buffer): number {
  if (b === slabSeen) return slabAddress;
  for (let i = 0; i < OLD_SLABS; i++) if (oldSlabs[i] === b) return oldAddresses[i];
  // reserve() may have moved to a new slab since the last read.
  if (b === slabFor(0)) {
    noteSlab(b);
    return slabAddress;
  }
  return -1;
}

const ERRNO_NAMES: Record<number, string> = { 32: 'EPIPE', 104: 'ECONNRESET', 110: 'ETIMEDOUT', 113: 'EHOSTUNREACH' };

function socketError(code: number, op: string): NodeJS.ErrnoException {
  const name = ERRNO_NAMES[code] ?? `errno ${code}`;
  const err: NodeJS.ErrnoException = new Error(`${op} ${name}`);
  err.code = name;
  err.errno = -code;
  err.syscall = op;
  return err;
}

export class RawSocket extends SocketEvents implements ByteSocket, EpollHandler, RingSender {
  destroyed = false;
  writable = true;
  readyState: 'open' | 'readOnly' | 'closed' = 'open';
  writableLength = 0;
  private readonly queue: Buffer[] = [];
  private reading = true;
  /** The events registered with epoll; -1 when the descriptor is out of the set (hung up while paused). */
  private registered = EPOLLIN;
  private ending = false;
  /** A send queued in the loop's ring, of [start, end) of a buffer the ring keeps: at most one at a time, so they never reorder. */
  private ringQueued = false;
  private ringStart = 0;
  private ringEnd = 0;
  /** The TLS session on this connection, from startTls() on. */
  private tls: TlsConnection | null = null;
  /** The TLS handshake is under way, waiting for these epoll events. */
  private handshakeWants = 0;
  /** SSL_read needs the socket writable first (it has a protocol message of its own to send). */
  private readWantsWrite = false;

  constructor(
    readonly fd: number,
    private readonly loop: EpollLoop,
    private readonly reader: SocketReader,
    /** undefined for a Unix-domain socket */
    readonly remoteAddress: string | undefined,
    readonly remotePort: number | undefined,
  ) {
    super();
    loop.add(fd, this, EPOLLIN);
  }

  onEvents(events: number): void {
    if (this.handshakeWants !== 0) return this.handshake();
    if ((events & EPOLLOUT) !== 0) {
      this.flushQueue();
      if (this.readWantsWrite && !this.destroyed) {
        this.readWantsWrite = false;
        this.updateInterest();
        if (this.reading) this.readOnce();
      }
    }
    if (this.destroyed) return;
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) === 0) return;
    if (this.reading) return this.readOnce();
    // epoll reports a hang-up even without interest in reads: leave the set until reading resumes.
    if (this.queue.length === 0) {
      this.loop.remove(this.fd);
      this.registered = -1;
    }
  }

  write(buf: Uint8Array): boolean {
    return this.put(buf as Buffer, 0, buf.length, false);
  }

  /** Writes buf[start, end); keeps `buf` itself for whatever the kernel does not take. */
  writeRange(buf: Buffer, start: number, end: number): boolean {
    return this.put(buf, start, end, false);
  }

  /** Writes buf[0, length) and copies whatever the kernel does not take: the caller reuses `buf` at once. */
  writeTransient(buf: Buffer, length: number): boolean {
    if (buf !== transientSeen) {
      transientSeen = buf;
      transientAddress = addressOf(buf);
    }
    return this.put(buf, 0, length, true);
  }

  private put(b: Buffer, start: number, end: number, transient: boolean): boolean {
    if (this.destroyed || !this.writable) return false;
    if (this.tls !== null) return this.putTls(this.tls, b, start, end, transient);
    const length = end - start;
    let sent = 0;
    if (this.ringQueued) this.loop.flushSends();
    if (this.queue.length === 0) {
      const address = transient ? -1 : slabAddressOf(b);
      if (address >= 0 && this.loop.queueSend(this, this.fd, address + start, length, b)) {
        this.ringQueued = true;
        this.ringStart = start;
        this.ringEnd = end;
        return true;
      }
      const n =
        address >= 0
          ? sendAt(this.fd, address + start, length)
          : b === transientSeen
            ? sendAt(this.fd, transientAddress + start, length)
            : send(this.fd, start === 0 ? b : b.subarray(start, end), length);
      if (n === length) return true;
      if (n < 0) {
        const e = errno();
        if (e !== EAGAIN && e !== EINTR) {
          this.fail(e, 'write');
          return false;
        }
      } else {
        sent = n;
      }
    }
    this.keepUnsent(b, start + sent, end, transient);
    return false;
  }

  /** The result of the send queued in the loop's ring; it never sends anything itself (the ring is mid-flush). */
  onSent(result: number, b: Buffer): void {
    const start = this.ringStart;
    const end = this.ringEnd;
    this.ringQueued = false;
    if (result === end - start || this.destroyed) return;
    if (result < 0) {
      if (-result !== EAGAIN && -result !== EINTR) return this.fail(-result, 'write');
      result = 0;
    }
    this.enqueue(b.subarray(start + result, end));
  }

  cork(): void {}

  uncork(): void {}

  end(buf?: Uint8Array): this {
    if (buf !== undefined) this.write(buf);
    if (this.destroyed || !this.writable) return this;
    this.writable = false;
    this.readyState = 'readOnly';
    if (this.ringQueued) this.loop.flushSends();
    if (this.queue.length === 0 && this.handshakeWants === 0) this.shutdownOutput();
    else this.ending = true;
    return this;
  }

  /**
   * A TLS session from here on, the handshake first: the server side (the client was just told 'S'), or
   * with a context for servers the client side, towards `peer`. Writes made before the handshake is done
   * go out after it. Throws when OpenSSL cannot make one; the socket is unchanged then.
   */
  startTls(context: TlsContext, peer: TlsPeer | null = null): void {
    if (this.ringQueued) this.loop.flushSends();
    if (this.queue.length > 0) throw new Error('plaintext still queued when TLS was to start');
    this.tls = new TlsConnection(context, this.fd, peer);
    if (context.client) return this.handshake();
    // The ClientHello is not here yet: the client waits for the answer just sent.
    this.handshakeWants = EPOLLIN;
    this.updateInterest();
  }

  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.release();
    this.loop.defer(() => {
      if (err !== undefined) this.emit('error', err);
      this.emit('close', err !== undefined);
    });
    return this;
  }

  pause(): this {
    this.reading = false;
    this.updateInterest();
    return this;
  }

  resume(): this {
    this.reading = true;
    this.updateInterest();
    // Records OpenSSL already took off the socket make no epoll event of their own.
    if (this.tls !== null && this.handshakeWants === 0 && this.tls.hasPending()) {
      this.loop.defer(() => {
        if (!this.destroyed && this.reading) this.readOnce();
      });
    }
    return this;
  }

  /** The TLS protocol and cipher once the handshake is done; '' otherwise. */
  tlsSession(): string {
    return this.tls === null || this.handshakeWants !== 0 ? '' : this.tls.describe();
  }

  /** Nothing is ever buffered on this side of the kernel. */
  read(): null {
    return null;
  }

  setNoDelay(noDelay = true): this {
    if (this.remoteAddress !== undefined) setNoDelay(this.fd, noDelay);
    return this;
  }

  setKeepAlive(enable = false, initialDelay = 0): this {
    if (this.remoteAddress !== undefined) setKeepAlive(this.fd, enable, initialDelay);
    return this;
  }

  /** The same connection as a Node socket (for TLS); this object lets go of it without a 'close'. */
  toNodeSocket(): net.Socket {
    if (this.tls !== null) throw new Error('a TLS connection cannot move to a Node socket');
    const fd = dupDescriptor(this.fd);
    this.release();
    return new net.Socket({ fd, readable: true, writable: true });
  }

  private release(): void {
    this.destroyed = true;
    // A queued send goes out before the descriptor closes (its number may be reused at once); being destroyed,
    // the socket ignores its result.
    if (this.ringQueued) this.loop.flushSends();
    this.writable = false;
    this.readyState = 'closed';
    if (this.registered !== -1) this.loop.remove(this.fd);
    if (this.tls !== null) {
      this.tls.free();
      this.tls = null;
      this.handshakeWants = 0;
    }
    close(this.fd);
    this.queue.length = 0;
    this.writableLength = 0;
  }

  private readOnce(): void {
    if (this.tls !== null) return this.readTls(this.tls);
    const slab = readSlab();
    const at = slabOffset();
    const n = recvAt(this.fd, slabAddress + at, slab.length - at);
    if (n > 0) {
      takeSlab(n);
      this.reader.onChunk(slab, at, at + n);
      return;
    }
    if (n === 0) {
      this.emit('end');
      this.destroy();
      return;
    }
    const e = errno();
    if (e !== EAGAIN && e !== EINTR) this.fail(e, 'read');
  }

  /** Queues buf[from, end) for EPOLLOUT: a copy when the caller reuses `buf` at once. */
  private keepUnsent(b: Buffer, from: number, end: number, transient: boolean): void {
    if (transient) this.enqueue(Buffer.from(b.subarray(from, end)));
    else this.enqueue(from === 0 && end === b.length ? b : b.subarray(from, end));
  }

  private enqueue(b: Buffer): void {
    this.queue.push(b);
    this.writableLength += b.length;
    this.updateInterest();
  }

  private flushQueue(): void {
    const q = this.queue;
    const tls = this.tls;
    while (q.length > 0) {
      const b = q[0];
      let n: number;
      if (tls === null) {
        n = send(this.fd, b);
        if (n < 0) {
          const e = errno();
          if (e === EAGAIN || e === EINTR) return;
          return this.fail(e, 'write');
        }
      } else {
        n = tls.write(b, b.length);
        if (n <= 0) {
          const e = tls.errorOf(n);
          if (e === SSL_ERROR_WANT_WRITE) return;
          return this.tlsFailed(e, n, 'write');
        }
      }
      this.writableLength -= n;
      if (n < b.length) {
        q[0] = b.subarray(n);
        // SSL_write takes one record at a time: try again while the kernel takes them.
        if (tls !== null) continue;
        return;
      }
      q.shift();
    }
    this.updateInterest();
    if (this.ending) {
      this.ending = false;
      this.shutdownOutput();
    }
    this.emit('drain');
  }

  private shutdownOutput(): void {
    this.tls?.shutdown();
    shutdownWrite(this.fd);
  }

  // ---- TLS ----

  private handshake(): void {
    const tls = this.tls!;
    const r = tls.handshake();
    if (r === 1) {
      this.handshakeWants = 0;
      this.updateInterest();
      if (this.queue.length > 0) this.flushQueue();
      else if (this.ending) {
        this.ending = false;
        this.shutdownOutput();
      }
      // The startup packet may have come right behind the client's Finished, already read by OpenSSL.
      if (!this.destroyed && this.reading && tls.hasPending()) this.readOnce();
      return;
    }
    const e = tls.errorOf(r);
    if (e === SSL_ERROR_WANT_READ || e === SSL_ERROR_WANT_WRITE) {
      this.handshakeWants = e === SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
      this.updateInterest();
      return;
    }
    this.tlsFailed(e, r, 'handshake');
  }

  private readTls(tls: TlsConnection): void {
    for (;;) {
      const slab = readSlab();
      const at = slabOffset();
      const n = tls.readAt(slabAddress + at, slab.length - at);
      if (n > 0) {
        takeSlab(n);
        this.reader.onChunk(slab, at, at + n);
        // SSL_read returns one record; more may wait inside OpenSSL, where epoll cannot see them.
        if (this.destroyed || !this.reading || !tls.hasPending()) return;
        continue;
      }
      const e = tls.errorOf(n);
      if (e === SSL_ERROR_WANT_READ) return;
      if (e === SSL_ERROR_WANT_WRITE) {
        this.readWantsWrite = true;
        this.updateInterest();
        return;
      }
      if (e === SSL_ERROR_ZERO_RETURN || (e === SSL_ERROR_SYSCALL && n === 0)) {
        // close_notify, or the peer closed without one: the end of the stream either way.
        tls.clearErrors();
        this.emit('end');
        this.destroy();
        return;
      }
      return this.tlsFailed(e, n, 'read');
    }
  }

  private putTls(tls: TlsConnection, b: Buffer, start: number, end: number, transient: boolean): boolean {
    let at = start;
    if (this.handshakeWants === 0 && this.queue.length === 0) {
      const address = transient ? -1 : slabAddressOf(b);
      while (at < end) {
        const n =
          address >= 0
            ? tls.writeAt(address + at, end - at)
            : b === transientSeen
              ? tls.writeAt(transientAddress + at, end - at)
              : tls.write(at === 0 ? b : b.subarray(at, end), end - at);
        if (n > 0) {
          at += n;
          continue;
        }
        const e = tls.errorOf(n);
        if (e === SSL_ERROR_WANT_WRITE) break;
        this.tlsFailed(e, n, 'write');
        return false;
      }
      if (at === end) return true;
    }
    // What OpenSSL did not take starts with the record it could not finish: it must be written again first.
    this.keepUnsent(b, at, end, transient);
    return false;
  }

  private tlsFailed(e: number, result: number, op: string): void {
    const refused = op === 'handshake' && this.tls!.verifies ? this.tls!.verifyError() : null;
    let reason: string;
    if (e === SSL_ERROR_SSL) reason = takeError('protocol error');
    else if (e === SSL_ERROR_SYSCALL) reason = result === 0 ? 'connection closed' : takeError(`errno ${errno()}`);
    else reason = takeError(`SSL error ${e}`);
    const err: NodeJS.ErrnoException = new Error(refused === null ? `TLS ${op}: ${reason}` : `TLS handshake: certificate verify failed: ${refused}`);
    // A certificate that does not verify is not a broken connection: every retry would meet it again.
    err.code = refused === null ? 'ETLS' : 'CERT_VERIFY_FAILED';
    this.destroy(err);
  }

  private fail(code: number, op: string): void {
    this.destroy(socketError(code, op));
  }

  private updateInterest(): void {
    if (this.destroyed) return;
    const want =
      this.handshakeWants !== 0
        ? this.handshakeWants
        : (this.reading ? EPOLLIN : 0) | (this.queue.length > 0 || this.readWantsWrite ? EPOLLOUT : 0);
    if (want === this.registered) return;
    if (this.registered === -1) this.loop.add(this.fd, this, want);
    else this.loop.modify(this.fd, want);
    this.registered = want;
  }
}
