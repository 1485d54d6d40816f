/**
 * Socket reads without an allocation per read. Node's default read path mallocs 64 KiB, wraps it in a new
 * ArrayBuffer and pushes it through the Readable machinery: `npm run bench -- --io-floor` measured a bare
 * relay at about 14.5 µs of CPU per select-only transaction with 'data' events and 12.3 µs reading into one
 * buffer and copying out.
 * With `onread`, reads land in one buffer per thread and the bytes are copied into consecutive ranges of a
 * slab; recv(2) on the shard's own loop (io/raw-socket.ts) reads straight into the slab. A chunk is never
 * overwritten, so anything may keep a slice of it (queued messages, held replies).
 */
import type net from 'node:net';

/** One read through Node's onread at most this big; the reads of one thread happen one after another, so one buffer serves all. */
const READ_SIZE = 64 * 1024;
const SLAB_SIZE = 128 * 1024;
/** A reserve() smaller than this is a range of the slab; a larger one gets a buffer of its own. */
export const RESERVE_IN_SLAB = 8 * 1024;

const readBuffer = Buffer.allocUnsafeSlow(READ_SIZE);
let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let used = 0;

/** The slab to read into at slabOffset(), with at least `room` bytes free there (a fresh slab otherwise). */
export function slabFor(room: number): Buffer {
  if (SLAB_SIZE - used < room) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    used = 0;
  }
  return slab;
}

export function slabOffset(): number {
  return used;
}

/** Marks the next n bytes of the slab, just written, as taken: they are never written again. */
export function takeSlab(n: number): void {
  // 8-byte steps keep every chunk aligned, as Node's own buffer pool does.
  used += (n + 7) & ~7;
}

/** Where reserve() put the room it returned. */
export let reservedAt = 0;

/**
 * Room for n bytes (a read through onread, or a message Doorman writes itself such as a rewritten Bind), at
 * `reservedAt` of the buffer returned: a range of the slab when it is small, so it allocates nothing, and
 * never written again. A large one gets a buffer of its own, so it never pins a slab of small chunks.
 */
export function reserve(n: number): Buffer {
  if (n >= RESERVE_IN_SLAB) {
    reservedAt = 0;
    return Buffer.allocUnsafeSlow(n);
  }
  const into = slabFor(n);
  reservedAt = used;
  takeSlab(n);
  return into;
}

/** Hands the n bytes Node read to `reader`, copied out of the shared read buffer. */
function copyOut(reader: SocketReader, n: number): void {
  const into = reserve(n);
  const at = reservedAt;
  readBuffer.copy(into, at, 0, n);
  reader.onChunk(into, at, at + n);
}

function ignore(): void {}

/** `net.Socket` options the typings lack although Node accepts them at construction. */
export type ReadingSocketOptions = net.SocketConstructorOpts & { onread?: net.OnReadOpts };

/** The read side of one plain socket: pass `options` as `onread` when creating it, then set `onChunk`. */
export class SocketReader {
  /**
   * Called with each chunk read, buf[start, end): a range of a slab, so a read makes no view of its own.
   * 'end', 'close' and 'error' still come as socket events.
   */
  onChunk: (buf: Buffer, start: number, end: number) => void = ignore;

  private onread: net.OnReadOpts | null = null;

  /** For a Node socket created with `onread`; made on first use, since sockets on the shard's loop never need it. */
  get options(): net.OnReadOpts {
    return (this.onread ??= {
      buffer: readBuffer,
      callback: (n: number): boolean => {
        copyOut(this, n);
        return true;
      },
    });
  }
}
