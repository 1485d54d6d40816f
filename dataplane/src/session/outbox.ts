/**
 * Gathers what goes to one socket while a chunk is processed: contiguous ranges of the same buffer merge
 * into one slice, so a chunk of pass-through messages leaves as a single write; anything else (a rewritten
 * or synthesized message) is queued in order, and the lot goes out as one write (copied together when small).
 * On the shard's own loop the copy goes to one buffer per thread that the kernel takes at once, so a write of
 * several parts allocates nothing; a Node socket keeps what it is given until sent, so it gets a buffer of its own.
 */
import type { ByteSocket } from './byte-socket.js';

const COPY_LIMIT = 64 * 1024;
/** Flushes of one thread run one after another, and a transient write is done with the buffer when it returns. */
const staging = Buffer.allocUnsafeSlow(COPY_LIMIT);

export class Outbox {
  private buf: Buffer | null = null;
  private start = 0;
  private end = 0;
  /** Reused from flush to flush: a new array per write showed in profiles. */
  private readonly parts: Buffer[] = [];

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
    this.parts.push(this.start === 0 && this.end === b.length ? b : b.subarray(this.start, this.end));
    this.buf = null;
  }

  flush(): void {
    this.seal();
    const parts = this.parts;
    if (parts.length === 0) return;
    if (parts.length === 1) {
      this.socket.write(parts[0]);
    } else {
      let total = 0;
      for (const p of parts) total += p.length;
      // A small copy is much cheaper than a corked writev through the stream machinery.
      if (total <= COPY_LIMIT) {
        const s = this.socket;
        if (s.writeTransient !== undefined) {
          let off = 0;
          for (const p of parts) {
            staging.set(p, off);
            off += p.length;
          }
          s.writeTransient(staging, total);
        } else {
          s.write(Buffer.concat(parts, total));
        }
      } else {
        this.socket.cork();
        for (const p of parts) this.socket.write(p);
        this.socket.uncork();
      }
    }
    parts.length = 0;
  }
}
