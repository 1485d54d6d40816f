/**
 * Messages a client sent that wait to be relayed (no server yet, or names not settled), kept as ranges of
 * the buffers they arrived in: read chunks are never written again, so no copy and no view is needed. The
 * array is reused from wait to wait; a new pair of arrays and a view per message showed in profiles of
 * clients waiting for a server. It is made on first use, as most of 10,000 idle clients never queue.
 */
export class MessageQueue {
  /** Four entries per message: its buffer, start, end, and whether it is whole (else a part of a long one). */
  private items: (Buffer | number | boolean | null)[] | null = null;
  length = 0;
  /** Bytes held, for backpressure. */
  bytes = 0;

  push(buf: Buffer, start: number, end: number, whole: boolean): void {
    const items = (this.items ??= []);
    const at = this.length++ * 4;
    items[at] = buf;
    items[at + 1] = start;
    items[at + 2] = end;
    items[at + 3] = whole;
    this.bytes += end - start;
  }

  buf(i: number): Buffer {
    return (this.items as Buffer[])[i * 4];
  }

  start(i: number): number {
    return (this.items as number[])[i * 4 + 1];
  }

  end(i: number): number {
    return (this.items as number[])[i * 4 + 2];
  }

  whole(i: number): boolean {
    return (this.items as boolean[])[i * 4 + 3];
  }

  /** The type byte of message i. */
  code(i: number): number {
    return this.buf(i)[this.start(i)];
  }

  get allWhole(): boolean {
    for (let i = 0; i < this.length; i++) if (!this.whole(i)) return false;
    return true;
  }

  /** Drops the first n messages (all, if there are fewer); the rest keep their order. */
  dropFirst(n: number): void {
    if (n >= this.length) return this.clear();
    const items = this.items as (Buffer | number | boolean | null)[];
    for (let i = 0; i < n; i++) this.bytes -= this.end(i) - this.start(i);
    const used = this.length * 4;
    const moved = n * 4;
    for (let j = moved; j < used; j++) items[j - moved] = items[j];
    for (let j = used - moved; j < used; j += 4) items[j] = null;
    this.length -= n;
  }

  /** The messages as buffers of their own (a view each), oldest first. */
  views(): Buffer[] {
    const out: Buffer[] = [];
    for (let i = 0; i < this.length; i++) out.push(this.buf(i).subarray(this.start(i), this.end(i)));
    return out;
  }

  /** Empties the queue and lets go of the buffers, so an idle client pins no slab. */
  clear(): void {
    const items = this.items;
    if (items !== null) for (let j = 0; j < this.length * 4; j += 4) items[j] = null;
    this.length = 0;
    this.bytes = 0;
  }
}
