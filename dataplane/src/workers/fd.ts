/**
 * dup(2), which Node 20 does not expose. A client socket accepted on the main thread is handed to a worker
 * shard as a duplicate descriptor; the main thread then destroys its own socket (closing only its
 * descriptor, never the connection) so nothing is left behind per connection. Without dup, one thread
 * keeps a handle it can never close (measured: ~2.6 KB leaked per connection) or two handles close the
 * same descriptor. koffi (a maintained FFI package shipping prebuilt binaries) makes the one libc call.
 */
import type net from 'node:net';
import koffi from 'koffi';

let dupFn: ((fd: number) => number) | null = null;

export function dupDescriptor(fd: number): number {
  dupFn ??= koffi.load('libc.so.6').func('int dup(int)') as (fd: number) => number;
  const copy = dupFn(fd);
  if (copy < 0) throw new Error(`dup(${fd}) failed`);
  return copy;
}

/** A duplicate of the descriptor under a connected Node socket (its libuv handle's, which Node does not expose). */
export function dupSocketDescriptor(socket: net.Socket): number {
  return dupDescriptor((socket as unknown as { _handle: { fd: number } })._handle.fd);
}
