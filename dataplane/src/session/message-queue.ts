/**
 * Messages a client sent that wait to be relayed (no server yet, or names not settled), kept as ranges of
 * the buffers they arrived in: read chunks are never written again, so no copy and no view is needed. The
 * arrays are reused from wait to wait; a new pair of arrays and a view per message showed in profiles of
 * clients waiting for a server.
 */
export class MessageQueue {
  private bufs: (Buffer | null)[] = [];
  private starts: number[] = [];
  private ends: number[] = [];
  /** A whole message (true) or a part of a long one. */
  private wholes: boolean[] = [];
  length = 0;
  /** Bytes held, for backpressure. */
  bytes = 0;

  push(buf: Buffer, start: number, end: number, whole: boolean): void {
    const i = this.length++;
    this.bufs[i] = buf;
    this.starts[i] = start;
    this.ends[i] = end;
    this.wholes[i] = whole;
    this.bytes += end - start;
  }

  buf(i: number): Buffer {
    return this.bufs[i] as Buffer;
  }

  start(i: number): number {
    return this.starts[i];
  }

  end(i: number): number {
    return this.ends[i];
  }

  whole(i: number): boolean {
    return this.wholes[i];
  }

  /** The type byte of message i. */
  code(i: number): number {
    return (this.bufs[i] as Buffer)[this.starts[i]];
  }

  get allWhole(): boolean {
    for (let i = 0; i < this.length; i++) if (!this.wholes[i]) return false;
    return true;
  }

  /** Drops the first n messages (all, if there are fewer); the rest keep their order. */
  dropFirst(n: number): void {
    if (n >= this.length) return this.clear();
    for (let i = 0; i < n; i++) this.bytes -= this.ends[i] - this.starts[i];
    const left = this.length - n;
    for (let i = 0; i < left; i++) {
      this.bufs[i] = this.bufs[i + n];
      this.starts[i] = this.starts[i + n];
      this.ends[i] = this.ends[i + n];
      this.wholes[i] = this.wholes[i + n];
    }
    for (let i = left; i < this.length; i++) this.bufs[i] = null;
    this.length = left;
  }

  /** The messages as buffers of their own (a view each), oldest first. */
  views(): Buffer[] {
    const out: Buffer[] = [];
    for (let i = 0; i < this.length; i++) out.push((this.bufs[i] as Buffer).subarray(this.starts[i], this.ends[i]));
    return out;
  }

  /** Empties the queue and lets go of the buffers, so an idle client pins no slab. */
  clear(): void {
    for (let i = 0; i < this.length; i++) this.bufs[i] = null;
    this.length = 0;
    this.bytes = 0;
  }
}
