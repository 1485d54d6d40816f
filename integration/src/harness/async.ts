/** Waiting and concurrency in tests: polling until a condition holds, running tasks at once. */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

/** How often eventually() probes. */
const POLL_MS = 100;

/** Polls `probe` until `done` accepts its value; fails after `timeoutMs` with the last value. */
export async function eventually<T>(probe: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await probe();
  while (!done(last)) {
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`);
    await sleep(POLL_MS);
    last = await probe();
  }
  return last;
}

/** Runs `tasks` at once and fails with every rejection, not only the first. */
export async function all<T>(tasks: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(tasks);
  const failures = settled.flatMap((s, i) => (s.status === 'rejected' ? [`#${i}: ${String(s.reason instanceof Error ? s.reason.stack : s.reason)}`] : []));
  assert.equal(failures.length, 0, `${failures.length} of ${tasks.length} failed:\n${failures.slice(0, 5).join('\n')}`);
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}
