import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { errorFields, fe } from '../harness/index.js';

/**
 * Connect/disconnect cycles over raw TCP: connect, StartupMessage, read through ReadyForQuery, Terminate,
 * close. No driver in between, so the bench process spends as little as possible per cycle and every
 * byte the pooler sends is checked. A fixed number of loops run side by side until `total` cycles have
 * been started or the deadline passes.
 */

export interface CycleTarget {
  host: string;
  port: number;
  user: string;
  database: string;
}

export interface CycleDriverOptions {
  total: number;
  /** Cycles in flight at once. */
  concurrency: number;
  /** No new cycle starts after this many ms from the start; the run is then reported as aborted. */
  deadlineMs: number;
  /** Bound on one cycle, from connect() until the pooler has closed its side. */
  cycleTimeoutMs: number;
  /** Called after every finished cycle with the number finished so far. */
  onProgress?: (finished: number) => void;
}

export interface CycleOutcome {
  /** Cycles finished, whether they succeeded or not. */
  finished: number;
  succeeded: number;
  failures: number;
  /** Failure messages and how often each occurred (messages are short and few in kind). */
  failureKinds: Record<string, number>;
  seconds: number;
  /** Why the run stopped before `total` cycles; null when it did not. */
  aborted: string | null;
}

/** Where one cycle is; every event is checked against it. */
type CycleState = 'connecting' | 'awaiting-ready' | 'closing' | 'done';

const AUTH_OK = 0;

/**
 * One cycle. Resolves with null on success, else a short reason. Success needs AuthenticationOk (trust:
 * no password exchange), ReadyForQuery, and the pooler closing the connection after Terminate.
 */
export function runCycle(target: CycleTarget, startup: Buffer, terminate: Buffer, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    let state: CycleState = 'connecting';
    let pending: Buffer | null = null;
    const socket = net.connect({ host: target.host, port: target.port, noDelay: true });
    const finish = (reason: string | null): void => {
      if (state === 'done') return;
      state = 'done';
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => finish(`timed out after ${timeoutMs} ms while ${state}`), timeoutMs);
    socket.on('connect', () => {
      state = 'awaiting-ready';
      socket.write(startup);
    });
    socket.on('data', (chunk: Buffer) => {
      if (state !== 'awaiting-ready') {
        if (state === 'closing') finish('data after Terminate');
        return;
      }
      let buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
      pending = null;
      while (buf.length >= 5) {
        const length = buf.readInt32BE(1);
        if (buf.length < length + 1) break;
        const type = buf[0];
        const body = buf.subarray(5, length + 1);
        buf = buf.subarray(length + 1);
        if (type === 0x45 /* E */) {
          finish(`ErrorResponse: ${errorFields(body).M ?? '?'}`);
          return;
        }
        if (type === 0x52 /* R */ && body.readInt32BE(0) !== AUTH_OK) {
          finish(`authentication request ${body.readInt32BE(0)} (trust expected)`);
          return;
        }
        if (type === 0x5a /* Z */) {
          state = 'closing';
          socket.end(terminate);
          return;
        }
      }
      if (buf.length > 0) pending = Buffer.from(buf);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(`socket error: ${err.code ?? err.message}`));
    socket.on('close', () => finish(state === 'closing' ? null : `closed by the pooler while ${state}`));
  });
}

export async function driveCycles(target: CycleTarget, options: CycleDriverOptions): Promise<CycleOutcome> {
  const startup = fe.startup({ user: target.user, database: target.database, application_name: 'doorman-bench-cycles' });
  const terminate = fe.terminate();
  const outcome: CycleOutcome = { finished: 0, succeeded: 0, failures: 0, failureKinds: {}, seconds: 0, aborted: null };
  const started = performance.now();
  const deadline = started + options.deadlineMs;
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next < options.total) {
      if (performance.now() >= deadline) {
        outcome.aborted ??= `deadline of ${options.deadlineMs / 1000} s passed after ${outcome.finished} of ${options.total} cycles`;
        return;
      }
      next++;
      const reason = await runCycle(target, startup, terminate, options.cycleTimeoutMs);
      outcome.finished++;
      if (reason === null) {
        outcome.succeeded++;
      } else {
        outcome.failures++;
        outcome.failureKinds[reason] = (outcome.failureKinds[reason] ?? 0) + 1;
      }
      options.onProgress?.(outcome.finished);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  outcome.seconds = (performance.now() - started) / 1000;
  return outcome;
}
