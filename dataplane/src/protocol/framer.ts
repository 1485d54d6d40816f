/**
 * Incremental, zero-copy message framer for the PostgreSQL wire protocol (either direction).
 *
 * It only finds message boundaries. A message that lies whole inside the chunk it arrived in is
 * reported as a range of that chunk (no copy); only a message split across chunks is assembled in
 * a buffer of its own. Long messages of a "streamable" type (DataRow, CopyData, ...) are reported in
 * parts as they arrive, so a 20 MB row never has to be buffered whole.
 *
 * Use: push(buf, start, end), then call next() until it returns FrameKind.None; read the frame from the fields.
 * A buffer reported in a frame is never written to again, so callers may hand slices of it to a
 * socket without copying.
 */
import { uint32At } from './codes.js';

export const enum FrameKind {
  /** Nothing complete is left in the pushed chunk; push the next one. */
  None = 0,
  /** A whole message: buf[start] is the type byte (startup packets: buf[start] is the length). */
  Message = 1,
  /** A slice of a long streamable message; `first` marks the one that holds its header. */
  Part = 2,
  /** The stream is not valid PostgreSQL protocol; see `error`. The framer stays in this state. */
  Error = 3,
}

export const enum FramerError {
  LengthTooSmall = 1,
  LengthTooLarge = 2,
}

export interface FramerOptions {
  /** Largest accepted message, counting its length field (not the type byte). */
  maxMessageSize: number;
  /** Streamable messages longer than this are passed on in parts instead of being assembled. */
  streamThreshold?: number;
  /** Type bytes (index) whose long messages may be passed on in parts; 1 = streamable. */
  streamable?: Uint8Array;
}

const EMPTY = Buffer.alloc(0);
const NO_STREAM = new Uint8Array(256);
/** Startup packets have no type byte; PostgreSQL itself refuses ones over 10000 bytes. */
export const MAX_STARTUP_PACKET = 10000;

export class Framer {
  kind: FrameKind = FrameKind.None;
  /** Type byte of the current message (0 for an untyped startup packet). */
  code = 0;
  buf: Buffer = EMPTY;
  start = 0;
  end = 0;
  /** Declared length of the current message (includes the 4-byte length, not the type byte). */
  length = 0;
  /** For parts: true on the part that begins the message, `last` on the one that ends it. */
  first = false;
  last = false;
  error: FramerError | 0 = 0;
  /** When true, the next message is a startup-phase packet with no type byte. */
  untyped = false;

  maxMessageSize: number;
  private readonly streamThreshold: number;
  private readonly streamable: Uint8Array;

  private cur: Buffer = EMPTY;
  private pos = 0;
  /** Where the pushed chunk ends in `cur`. */
  private curEnd = 0;
  /** Assembly buffer for a message split across chunks. */
  private pend: Buffer = EMPTY;
  private pendLen = 0;
  /** Total size (type byte included) of the message being assembled, 0 while its header is incomplete. */
  private pendTotal = 0;
  /** Bytes of a streamed message still to come. */
  private streamLeft = 0;

  constructor(opts: FramerOptions) {
    this.maxMessageSize = opts.maxMessageSize;
    this.streamThreshold = opts.streamThreshold ?? 1 << 20;
    this.streamable = opts.streamable ?? NO_STREAM;
  }

  /** The next chunk is buf[start, end): a range, so a reader's slab needs no view made per read. */
  push(buf: Buffer, start = 0, end = buf.length): void {
    this.cur = buf;
    this.pos = start;
    this.curEnd = end;
  }

  /** Bytes held for an incomplete message (for buffer accounting). */
  get buffered(): number {
    return this.pendLen;
  }

  /** True while a long message is being passed on in parts. */
  get inStream(): boolean {
    return this.streamLeft > 0;
  }

  /** True when no partial message is held and the pushed chunk is consumed. */
  get idle(): boolean {
    return this.pendLen === 0 && this.streamLeft === 0 && this.pos >= this.curEnd;
  }

  /** Unconsumed bytes of the pushed chunk plus any partial message, e.g. to hand a socket on. */
  takeRemainder(): Buffer {
    const rest = this.cur.subarray(this.pos, this.curEnd);
    const pending = this.pend.subarray(0, this.pendLen);
    this.cur = EMPTY;
    this.pos = 0;
    this.curEnd = 0;
    this.pend = EMPTY;
    this.pendLen = 0;
    this.pendTotal = 0;
    return pending.length === 0 ? rest : Buffer.concat([pending, rest]);
  }

  next(): FrameKind {
    if (this.kind === FrameKind.Error) return FrameKind.Error;
    const cur = this.cur;
    const avail = this.curEnd - this.pos;
    if (this.streamLeft > 0) {
      if (avail === 0) return (this.kind = FrameKind.None);
      const n = avail < this.streamLeft ? avail : this.streamLeft;
      this.buf = cur;
      this.start = this.pos;
      this.end = this.pos + n;
      this.pos += n;
      this.streamLeft -= n;
      this.first = false;
      this.last = this.streamLeft === 0;
      return (this.kind = FrameKind.Part);
    }
    if (this.pendLen > 0) return this.continuePending();
    if (avail === 0) {
      // Drop the consumed chunk: an idle connection should not keep a view of it (or its slab) alive.
      this.cur = EMPTY;
      this.buf = EMPTY;
      this.pos = 0;
      this.curEnd = 0;
      return (this.kind = FrameKind.None);
    }

    const head = this.untyped ? 4 : 5;
    if (avail < head) {
      this.startPending(head);
      return (this.kind = FrameKind.None);
    }
    const p = this.pos;
    const len = this.untyped ? uint32At(cur, p) : uint32At(cur, p + 1);
    const total = this.check(len);
    if (total < 0) return (this.kind = FrameKind.Error);
    if (total <= avail) {
      this.buf = cur;
      this.start = p;
      this.end = p + total;
      this.pos = p + total;
      this.code = this.untyped ? 0 : cur[p];
      this.length = len;
      return (this.kind = FrameKind.Message);
    }
    if (!this.untyped && this.streamable[cur[p]] === 1 && total > this.streamThreshold) {
      this.code = cur[p];
      this.length = len;
      this.buf = cur;
      this.start = p;
      this.end = this.curEnd;
      this.pos = this.curEnd;
      this.streamLeft = total - avail;
      this.first = true;
      this.last = false;
      return (this.kind = FrameKind.Part);
    }
    this.startPending(total);
    this.pendTotal = total;
    return (this.kind = FrameKind.None);
  }

  /** Validates a declared length; returns the total frame size or -1. */
  private check(len: number): number {
    if (len < 4) {
      this.error = FramerError.LengthTooSmall;
      return -1;
    }
    const max = this.untyped ? MAX_STARTUP_PACKET : this.maxMessageSize;
    if (len > max) {
      this.error = FramerError.LengthTooLarge;
      return -1;
    }
    return this.untyped ? len : len + 1;
  }

  /** Copies the rest of the current chunk into a fresh assembly buffer sized for `size` bytes. */
  private startPending(size: number): void {
    const avail = this.curEnd - this.pos;
    // Grown as bytes arrive, so a hostile length header alone costs no memory.
    this.pend = Buffer.allocUnsafe(Math.max(Math.min(size, 65536), avail));
    this.cur.copy(this.pend, 0, this.pos, this.curEnd);
    this.pendLen = avail;
    this.pos = this.curEnd;
  }

  private continuePending(): FrameKind {
    const head = this.untyped ? 4 : 5;
    if (this.pendTotal === 0) {
      this.fill(head);
      if (this.pendLen < head) return (this.kind = FrameKind.None);
      const len = this.untyped ? uint32At(this.pend, 0) : uint32At(this.pend, 1);
      const total = this.check(len);
      if (total < 0) return (this.kind = FrameKind.Error);
      this.pendTotal = total;
      this.length = len;
      this.code = this.untyped ? 0 : this.pend[0];
      // A message that is all header (total == pendLen) has nothing left to stream.
      if (!this.untyped && this.streamable[this.pend[0]] === 1 && total > this.streamThreshold && total > this.pendLen) {
        // Emit the header bytes gathered so far; the rest streams straight from the chunks.
        this.buf = this.pend;
        this.start = 0;
        this.end = this.pendLen;
        this.streamLeft = total - this.pendLen;
        this.first = true;
        this.last = false;
        this.pend = EMPTY;
        this.pendLen = 0;
        this.pendTotal = 0;
        return (this.kind = FrameKind.Part);
      }
    }
    this.fill(this.pendTotal);
    if (this.pendLen < this.pendTotal) return (this.kind = FrameKind.None);
    this.buf = this.pend;
    this.start = 0;
    this.end = this.pendTotal;
    this.code = this.untyped ? 0 : this.pend[0];
    this.length = this.untyped ? uint32At(this.pend, 0) : uint32At(this.pend, 1);
    this.pend = EMPTY;
    this.pendLen = 0;
    this.pendTotal = 0;
    return (this.kind = FrameKind.Message);
  }

  /** Moves bytes from the current chunk into the assembly buffer until it holds `upto` bytes. */
  private fill(upto: number): void {
    const need = upto - this.pendLen;
    if (need <= 0) return;
    const avail = this.curEnd - this.pos;
    const n = avail < need ? avail : need;
    if (this.pend.length < this.pendLen + n) {
      const grown = Buffer.allocUnsafe(Math.min(upto, Math.max(this.pendLen + n, this.pend.length * 2)));
      this.pend.copy(grown, 0, 0, this.pendLen);
      this.pend = grown;
    }
    this.cur.copy(this.pend, this.pendLen, this.pos, this.pos + n);
    this.pendLen += n;
    this.pos += n;
  }
}
