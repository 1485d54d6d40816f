/**
 * V8 settings for the shard isolates, applied in the main thread before the first Worker exists (an isolate
 * reads them when its heap is set up; ones created earlier keep theirs).
 *
 * The memory reducer is off. A pooler's allocation rate drops sharply after every burst (a login storm,
 * a busy minute); the reducer takes each drop as idleness and runs up to three compacting full GCs per
 * shard about 8 s later. With 10,000 clients a shard's heap is about 30 MB and each of those GCs paused
 * its queries for 8-10 ms, plus marking steps of several ms, while the shard was serving a trickle.
 * Without it, full GCs still run when the heap reaches its limit; memory a burst used is given back then
 * rather than at the first quiet moment.
 */
import v8 from 'node:v8';

export const SHARD_V8_FLAGS = ['--no-memory-reducer'] as const;

export function applyShardHeapFlags(): void {
  for (const flag of SHARD_V8_FLAGS) v8.setFlagsFromString(flag);
}
