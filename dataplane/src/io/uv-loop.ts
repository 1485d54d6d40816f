/**
 * The libuv loop of the calling thread, seen from JavaScript: its epoll descriptor, how long it may sleep,
 * and whether it has watchers it has not handed to epoll yet. A shard's own loop sleeps in one epoll_wait
 * that also watches libuv's descriptor, and hands control back to libuv whenever libuv has work.
 *
 * libuv hands new watchers to epoll only at its next poll, and uv_backend_timeout() does not count them, so
 * the watcher queue is read straight from uv_loop_t. Its offset is checked at startup against a field whose
 * value is known (backend_fd): on a libuv with another layout, probe() returns null and the shard keeps
 * Node's sockets.
 */
import koffi from 'koffi';

/** x86-64 / arm64 offsets in uv_loop_t (libuv 1.4x unix): backend_fd, then pending_queue, then watcher_queue. */
const BACKEND_FD_OFFSET = 64;
const WATCHER_QUEUE_OFFSET = 88;

export interface UvLoop {
  readonly backendFd: number;
  /** Milliseconds libuv could sleep now: -1 forever, 0 when it has something to run. */
  timeout(): number;
  /** Watchers started since libuv last polled (a connect, a write that did not complete). */
  watchersPending(): boolean;
}

export function probeUvLoop(): UvLoop | null {
  if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) return null;
  try {
    const self = koffi.load(null);
    const getLoop = self.func('int napi_get_uv_event_loop(void *env, _Out_ void **loop)') as (env: unknown, out: unknown[]) => number;
    const backendFd = self.func('int uv_backend_fd(void *loop)') as (loop: unknown) => number;
    const backendTimeout = self.func('int uv_backend_timeout(void *loop)') as (loop: unknown) => number;
    const out: unknown[] = [null];
    if (getLoop(koffi.node.env, out) !== 0 || out[0] === null) return null;
    const loop = out[0];
    const fd = backendFd(loop);
    const memory = koffi.view(loop, WATCHER_QUEUE_OFFSET + 16) as ArrayBuffer;
    if (new Int32Array(memory, BACKEND_FD_OFFSET, 1)[0] !== fd) return null;
    // An empty queue points at itself. Compared as two 32-bit halves: reading a BigUint64Array allocates a
    // BigInt, and this runs at every turn of the shard's loop.
    const queue = new Uint32Array(memory, WATCHER_QUEUE_OFFSET, 2);
    const queueAddress = BigInt(koffi.address(loop)) + BigInt(WATCHER_QUEUE_OFFSET);
    const low = Number(queueAddress & 0xffffffffn);
    const high = Number(queueAddress >> 32n);
    return {
      backendFd: fd,
      timeout: () => backendTimeout(loop),
      watchersPending: () => queue[0] !== low || queue[1] !== high,
    };
  } catch {
    return null;
  }
}
