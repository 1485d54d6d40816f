/**
 * Gathers what goes to one socket while a chunk is processed: contiguous ranges of the same buffer merge
 * into one slice, so a chunk of pass-through messages leaves as a single write; anything else (a rewritten
 * or synthesized message) is queued in order, and the lot goes out as one write (copied together when small).
 * On the shard's own loop a small copy goes to a range of the read slab and a larger one to one buffer per
 * thread that the kernel takes at once, so a write of several parts allocates nothing; a Node socket keeps
 * what it is given until sent, so it gets a buffer of its own.
 */
import { copyRange } from '../protocol/codes.js';
import type { ByteSocket } from './byte-socket.js';
import { RESERVE_IN_SLAB, reserve, reservedAt } from './socket-reader.js';

const COPY_LIMIT = 64 * 1024;
/** Flushes of one thread run one after another, and a transient write is done with the buffer when it returns. */
const staging = Buffer.allocUnsafeSlow(COPY_LIMIT);

export class Outbox {
  private buf: Buffer | null = null;
  private start = 0;
  private end = 0;
  /**
   * Sealed parts as ranges, reused from flush to flush with their own count: a view per part, a new array per
   * write and `length = 0` (which gives the backing store back) all showed in profiles.
   */
  private readonly bufs: (Buffer | null)[] = [];
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private count = 0;

  constructor(public socket: ByteSocket) {}

  add(buf: Buffer, start: number, end: number): void {
    if (buf === this.buf && start === this.end) {
      this.end = end;
      return;
    }
    this.seal();
    this.buf = buf;
    this.start = start;
    this.end = end;
  }

  addWhole(buf: Buffer): void {
    this.add(buf, 0, buf.length);
  }

  private seal(): void {
    const b = this.buf;
    if (b === null) return;
    const i = this.count++;
    this.bufs[i] = b;
    this.starts[i] = this.start;
    this.ends[i] = this.end;
    this.buf = null;
  }

  flush(): void {
    if (this.count === 0) return this.flushOne();
    // Parts were sealed, and add() always leaves a range open after them: two parts at least.
    this.seal();
    const n = this.count;
    const bufs = this.bufs as Buffer[];
    const starts = this.starts;
    const ends = this.ends;
    let total = 0;
    for (let i = 0; i < n; i++) total += ends[i] - starts[i];
    const s = this.socket;
    // A small copy is much cheaper than a corked writev through the stream machinery. In the slab, the parts
    // read into it move with copyWithin, which makes no view.
    if (total < RESERVE_IN_SLAB && s.writeRange !== undefined) {
      const into = reserve(total);
      const at = reservedAt;
      let off = at;
      for (let i = 0; i < n; i++) off = copyRange(bufs[i], starts[i], ends[i], into, off);
      s.writeRange(into, at, off);
    } else if (total <= COPY_LIMIT && s.writeTransient !== undefined) {
      let off = 0;
      for (let i = 0; i < n; i++) off = copyRange(bufs[i], starts[i], ends[i], staging, off);
      s.writeTransient(staging, total);
    } else if (total <= COPY_LIMIT) {
      s.write(Buffer.concat(this.views(n), total));
    } else {
      const views = this.views(n);
      s.cork();
      for (let i = 0; i < n; i++) s.write(views[i]);
      s.uncork();
    }
    // Sent or queued by the socket: the outbox lets go, so an idle connection pins no slab.
    for (let i = 0; i < n; i++) this.bufs[i] = null;
    this.count = 0;
  }

  /** The sealed parts as buffers of their own, for a socket that keeps what it is given. */
  private views(n: number): Buffer[] {
    const out: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const b = this.bufs[i] as Buffer;
      out.push(this.starts[i] === 0 && this.ends[i] === b.length ? b : b.subarray(this.starts[i], this.ends[i]));
    }
    return out;
  }

  /** The common case, one range (a relayed chunk): written without a view of it where the socket allows. */
  private flushOne(): void {
    const b = this.buf;
    if (b === null) return;
    this.buf = null;
    const s = this.socket;
    if (s.writeRange !== undefined) s.writeRange(b, this.start, this.end);
    else s.write(this.start === 0 && this.end === b.length ? b : b.subarray(this.start, this.end));
  }
}
