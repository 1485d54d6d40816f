/**
 * The precise clock (ms, as performance.now()) for query, transaction and wait times, read once per batch of
 * events. A transaction took four readings, each a call into Node and a clock_gettime; a batch's events are
 * handled within microseconds, so timing them all from its start loses nothing the statistics show.
 * Outside a batch (Node sockets, timers) every call reads the clock.
 */
// The global `performance` is a lazy getter on globalThis, looked up the slow way on every use.
import { performance } from 'node:perf_hooks';

let batchNow = 0;
let inBatch = false;

export function preciseNow(): number {
  return inBatch ? batchNow : performance.now();
}

/** The shard's loop, when epoll_wait returns events: the batch's time, which it also uses itself. */
export function startBatch(): number {
  batchNow = performance.now();
  inBatch = true;
  return batchNow;
}

/** The shard's loop, before it waits again or returns to libuv. */
export function endBatch(): void {
  inBatch = false;
}
