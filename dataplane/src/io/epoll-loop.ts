/**
 * A shard's own event loop for plain TCP and Unix sockets. `npm run bench -- --io-floor` showed that a relay
 * on Node sockets spends more CPU per transaction than PgBouncer before doing any pooling; a relay that waits
 * in its own epoll_wait and calls recv/send directly matches PgBouncer. So the shard waits here, in one
 * epoll set holding its sockets and libuv's own epoll descriptor, and returns to libuv whenever libuv has
 * something to do: a ready descriptor (a message from the main thread, a TLS socket, a connect), a due
 * timer, or a watcher it has not polled yet. libuv calls back in through a pipe it reads as a Node socket.
 * A koffi poll handle was tried first: its callback aborts the process when a worker is terminated. So was
 * setImmediate: Node keeps its immediate idle handle active while the callback runs, so libuv's timeout
 * reads 0 inside it and this loop would spin.
 *
 * Callbacks queued while this loop runs (process.nextTick, promise reactions) run when it returns; it
 * returns after `MAX_SLEEP_MS` at the latest, and at once when a caller asks with `yieldSoon()`.
 * The shard's ticker runs inside the loop (`setTicker`): a libuv timer would cost a return to libuv, a
 * callback through Node and a wake-up byte each time, which was most of what an idle shard spent.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  EINTR,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_EVENT_SIZE,
  EPOLLIN,
  close,
  epollCreate,
  epollCtl,
  epollWait,
  errno,
  pipe,
  pokeByte,
} from './libc.js';
import type { ReadingSocketOptions } from '../session/socket-reader.js';
import { endBatch, startBatch } from './batch-clock.js';
import { probeUvLoop, type UvLoop } from './uv-loop.js';
import { SendRing, type RingSender } from './send-ring.js';

/** Readiness of one descriptor, as epoll reports it. */
export interface EpollHandler {
  onEvents(events: number): void;
}

const MAX_EVENTS = 256;
/** Where wake-up bytes are read to; their value does not matter. One loop per thread, so one buffer per thread. */
const WAKE_BYTES = Buffer.alloc(64);
/**
 * The longest wait without returning to libuv, as a bound on how late a queued callback runs that nobody
 * asked for with yieldSoon(); each return costs an idle shard CPU and garbage.
 */
const MAX_SLEEP_MS = 1000;

export class EpollLoop {
  private readonly handlers: (EpollHandler | undefined)[] = [];
  private readonly events = Buffer.alloc(EPOLL_EVENT_SIZE * MAX_EVENTS);
  /** The same memory as 32-bit words (the 12-byte events are 4-byte aligned): no offset checks per event. */
  private readonly eventWords = new Int32Array(this.events.buffer, this.events.byteOffset, (EPOLL_EVENT_SIZE / 4) * MAX_EVENTS);
  private readonly ctl = Buffer.alloc(EPOLL_EVENT_SIZE);
  private readonly deferred: (() => void)[] = [];
  private readonly wakeReader: net.Socket;
  private readonly wake: number;
  private running = false;
  private onTick: (() => void) | null = null;
  private tickEvery = 0;
  /** performance.now() when the ticker is due next. */
  private nextTickAt = 0;
  private yieldRequested = false;
  private closed = false;
  /** Where the sends of a batch gather; null: each send is a send(2) of its own. */
  private readonly ring: SendRing | null;

  /**
   * A loop for the calling thread, or null where libuv's loop cannot be read (then Node's sockets are used).
   * `sendRing: false` keeps every send a send(2) of its own, even where io_uring works.
   */
  static start(onError: (err: unknown) => void, options: { sendRing?: boolean } = {}): EpollLoop | null {
    const uv = probeUvLoop();
    return uv === null ? null : new EpollLoop(uv, onError, options.sendRing === false ? null : SendRing.open());
  }

  private constructor(
    private readonly uv: UvLoop,
    private readonly onError: (err: unknown) => void,
    ring: SendRing | null,
    private readonly epfd = epollCreate(),
  ) {
    this.ring = ring;
    this.control(EPOLL_CTL_ADD, uv.backendFd, EPOLLIN);
    const [readEnd, writeEnd] = pipe();
    this.wake = writeEnd;
    // Read into one small buffer: Node's default read path allocates 64 KiB and runs the stream machinery per wake-up.
    const options: ReadingSocketOptions = {
      fd: readEnd,
      readable: true,
      writable: false,
      onread: {
        buffer: WAKE_BYTES,
        callback: (): boolean => {
          this.run();
          return true;
        },
      },
    };
    this.wakeReader = new net.Socket(options);
    // The shard's port keeps the thread alive; this socket must not.
    this.wakeReader.unref();
    pokeByte(writeEnd);
  }

  add(fd: number, handler: EpollHandler, events: number): void {
    this.handlers[fd] = handler;
    this.control(EPOLL_CTL_ADD, fd, events);
  }

  modify(fd: number, events: number): void {
    this.control(EPOLL_CTL_MOD, fd, events);
  }

  remove(fd: number): void {
    this.handlers[fd] = undefined;
    this.control(EPOLL_CTL_DEL, fd, 0);
  }

  /**
   * Queues a send to go out with the others of this batch (see SendRing); false outside a batch or without
   * a ring: send it now.
   */
  queueSend(sender: RingSender, fd: number, address: number, length: number, memory: Buffer): boolean {
    return this.running && this.ring !== null && this.ring.add(sender, fd, address, length, memory);
  }

  /** Whether sends in a batch go out together through io_uring. */
  get batchesSends(): boolean {
    return this.ring !== null;
  }

  /** Makes the sends queued so far. */
  flushSends(): void {
    this.ring?.flush();
  }

  /** Runs `fn` after the current batch of events (or on the next tick outside the loop): never re-entrantly. */
  defer(fn: () => void): void {
    if (this.running) this.deferred.push(fn);
    else process.nextTick(fn);
  }

  /**
   * Calls `fn` every `intervalMs` from inside the loop (null: stop). Late by at most the batch it falls in;
   * while control is with libuv, a due tick runs when the loop is entered again.
   */
  setTicker(fn: (() => void) | null, intervalMs: number): void {
    this.onTick = fn;
    this.tickEvery = intervalMs;
    this.nextTickAt = performance.now() + intervalMs;
  }

  /** Hands control back to libuv after the current batch, so callbacks queued with Node run now. */
  yieldSoon(): void {
    this.yieldRequested = true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wakeReader.destroy();
    this.ring?.close();
    close(this.wake);
    close(this.epfd);
  }

  private control(op: number, fd: number, events: number): void {
    this.ctl.writeUInt32LE(events, 0);
    this.ctl.writeInt32LE(fd, 4);
    if (epollCtl(this.epfd, op, fd, this.ctl) < 0 && op !== EPOLL_CTL_DEL) {
      throw new Error(`epoll_ctl(${op}) on descriptor ${fd} failed (errno ${errno()})`);
    }
  }

  private run(): void {
    if (this.closed) return;
    const uv = this.uv;
    const backendFd = uv.backendFd;
    const events = this.events;
    const words = this.eventWords;
    const handlers = this.handlers;
    this.running = true;
    let now = performance.now();
    // When libuv's next timer is due. libuv counts from the time it read at its last turn, which stands still
    // while this loop runs: the same reading keeps saying "in 80 ms", so the loop keeps the earliest deadline.
    let uvDueAt = Infinity;
    const returnBy = now + MAX_SLEEP_MS;
    try {
      for (;;) {
        if (this.onTick !== null && now >= this.nextTickAt) this.tick(now);
        if (uv.watchersPending() || this.yieldRequested || now >= returnBy) break;
        let timeout = uv.timeout();
        if (timeout === 0) break;
        if (timeout > 0 && now + timeout < uvDueAt) uvDueAt = now + timeout;
        const until = Math.min(uvDueAt, returnBy);
        if (now >= until) break;
        timeout = Math.ceil(until - now);
        let forTick = false;
        if (this.onTick !== null && this.nextTickAt - now < timeout) {
          timeout = Math.max(1, Math.ceil(this.nextTickAt - now));
          forTick = true;
        }
        const n = epollWait(this.epfd, events, MAX_EVENTS, timeout);
        if (n < 0) {
          if (errno() === EINTR) continue;
          throw new Error(`epoll_wait failed (errno ${errno()})`);
        }
        if (n === 0) {
          // Nothing ready within the timeout: the ticker is due, or else a libuv timer or the return bound.
          if (!forTick) break;
          now = performance.now();
          continue;
        }
        now = startBatch();
        let uvReady = false;
        for (let i = 0; i < n; i++) {
          const at = i * (EPOLL_EVENT_SIZE / 4);
          const fd = words[at + 1];
          if (fd === backendFd) {
            uvReady = true;
            continue;
          }
          const h = handlers[fd];
          if (h === undefined) continue;
          try {
            h.onEvents(words[at] >>> 0);
          } catch (err) {
            this.onError(err);
          }
        }
        this.settle();
        endBatch();
        if (uvReady || this.yieldRequested) break;
      }
    } catch (err) {
      this.onError(err);
    } finally {
      endBatch();
      this.settle();
      this.running = false;
      this.yieldRequested = false;
    }
    if (!this.closed) pokeByte(this.wake);
  }

  private tick(now: number): void {
    this.nextTickAt = now + this.tickEvery;
    try {
      this.onTick!();
    } catch (err) {
      this.onError(err);
    }
    this.settle();
  }

  /** Runs what was deferred and makes the sends queued, until neither leaves more (a failed send defers its 'close'). */
  private settle(): void {
    this.runDeferred();
    const ring = this.ring;
    if (ring === null) return;
    while (ring.pending > 0) {
      ring.flush();
      this.runDeferred();
    }
  }

  private runDeferred(): void {
    const q = this.deferred;
    // Setting an array's length is a call into the runtime: most batches defer nothing.
    if (q.length === 0) return;
    for (let i = 0; i < q.length; i++) {
      try {
        q[i]();
      } catch (err) {
        this.onError(err);
      }
    }
    q.length = 0;
  }
}
