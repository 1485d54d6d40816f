/**
 * What a client or server connection needs from its socket. A Node `net.Socket` (TLS, or where the shard
 * has no loop of its own) and a `RawSocket` on the shard's epoll loop both provide it.
 */
export interface ByteSocket {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly destroyed: boolean;
  readonly writable: boolean;
  readonly writableLength: number;
  readonly readyState: string;
  write(buf: Uint8Array): boolean;
  /** Only on the shard's own loop: writes buf[start, end) without a view of it made first. */
  writeRange?(buf: Buffer, start: number, end: number): boolean;
  /** Only on the shard's own loop: writes buf[0, length) and keeps a copy of what is left; `buf` is reused at once. */
  writeTransient?(buf: Buffer, length: number): boolean;
  end(): unknown;
  end(buf: Uint8Array): unknown;
  destroy(): unknown;
  pause(): unknown;
  resume(): unknown;
  cork(): void;
  uncork(): void;
  setNoDelay(noDelay?: boolean): unknown;
  setKeepAlive(enable?: boolean, initialDelay?: number): unknown;
  on(event: string, listener: (...args: any[]) => void): unknown;
  once(event: string, listener: (...args: any[]) => void): unknown;
  removeAllListeners(event?: string): unknown;
  /** Only on the shard's own loop: the TLS protocol and cipher, '' for plaintext. */
  tlsSession?(): string;
  /** Bytes read from the kernel and not yet delivered (a paused Node socket may hold some). */
  read(): Buffer | null;
}
