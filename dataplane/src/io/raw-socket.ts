/**
 * A connected socket driven by the shard's EpollLoop: reads with recv(2) straight into the thread's slab
 * (the one SocketReader's onread path copies into) and hands the chunk to the reader; writes with send(2) straight
 * from the caller's buffer, and queues only what the kernel did not take. It offers the part of
 * net.Socket's interface the sessions use, with the same events: 'end', 'error', 'close' and 'drain'.
 */
import net from 'node:net';
import type { ByteSocket } from '../session/byte-socket.js';
import { slabFor, slabOffset, takeSlab, type SocketReader } from '../session/socket-reader.js';
import { dupDescriptor } from '../workers/fd.js';
import type { EpollHandler, EpollLoop } from './epoll-loop.js';
import { SocketEvents } from './socket-events.js';
import type { RingSender } from './send-ring.js';
import { EAGAIN, EINTR, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, addressOf, close, errno, recvAt, send, sendAt, setKeepAlive, setNoDelay, shutdownWrite } from './libc.js';

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
    if ((events & EPOLLOUT) !== 0) this.flushQueue();
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
    const length = end - start;
    let sent = 0;
    if (this.ringQueued) this.loop.flushSends();
    if (this.queue.length === 0) {
      if (b === slabSeen && this.loop.queueSend(this, this.fd, slabAddress + start, length, b)) {
        this.ringQueued = true;
        this.ringStart = start;
        this.ringEnd = end;
        return true;
      }
      const n =
        b === slabSeen
          ? sendAt(this.fd, slabAddress + start, length)
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
    if (transient) this.enqueue(Buffer.from(b.subarray(start + sent, end)));
    else this.enqueue(start + sent === 0 && end === b.length ? b : b.subarray(start + sent, end));
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
    if (this.queue.length === 0) shutdownWrite(this.fd);
    else this.ending = true;
    return this;
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
    return this;
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
    close(this.fd);
    this.queue.length = 0;
    this.writableLength = 0;
  }

  private readOnce(): void {
    const slab = slabFor(MIN_READ_ROOM);
    if (slab !== slabSeen) {
      slabSeen = slab;
      slabAddress = addressOf(slab);
    }
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

  private enqueue(b: Buffer): void {
    this.queue.push(b);
    this.writableLength += b.length;
    this.updateInterest();
  }

  private flushQueue(): void {
    const q = this.queue;
    while (q.length > 0) {
      const b = q[0];
      const n = send(this.fd, b);
      if (n < 0) {
        const e = errno();
        if (e === EAGAIN || e === EINTR) return;
        return this.fail(e, 'write');
      }
      this.writableLength -= n;
      if (n < b.length) {
        q[0] = b.subarray(n);
        return;
      }
      q.shift();
    }
    this.updateInterest();
    if (this.ending) {
      this.ending = false;
      shutdownWrite(this.fd);
    }
    this.emit('drain');
  }

  private fail(code: number, op: string): void {
    this.destroy(socketError(code, op));
  }

  private updateInterest(): void {
    if (this.destroyed) return;
    const want = (this.reading ? EPOLLIN : 0) | (this.queue.length > 0 ? EPOLLOUT : 0);
    if (want === this.registered) return;
    if (this.registered === -1) this.loop.add(this.fd, this, want);
    else this.loop.modify(this.fd, want);
    this.registered = want;
  }
}
