import { readdir, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';

/**
 * CPU time and memory of a process from /proc. utime+stime are summed over
 * every thread in /proc/<pid>/task so multi-threaded poolers are charged fully.
 */

export interface CpuTimes {
  /** Clock ticks (see `getconf CLK_TCK`). */
  utime: number;
  stime: number;
}

/** utime and stime (fields 14 and 15) of a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat line. */
export function parseStatTimes(stat: string): CpuTimes {
  // comm (field 2) is in parentheses and may itself contain spaces and ')'.
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error(`not a /proc stat line: ${stat.slice(0, 80)}`);
  const fields = stat.slice(close + 1).trim().split(/\s+/);
  // fields[0] is field 3 (state), so field n is fields[n - 3].
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isInteger(utime) || !Number.isInteger(stime)) throw new Error(`no utime/stime in stat line: ${stat.slice(0, 80)}`);
  return { utime, stime };
}

/** VmRSS from /proc/<pid>/status, in bytes; null when absent (a zombie). */
export function parseVmRss(status: string): number | null {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return match?.[1] ? Number(match[1]) * 1024 : null;
}

/** utime+stime of all live threads of `pid`, in clock ticks. */
export async function readCpuTicks(pid: number): Promise<number> {
  const tasks = await readdir(`/proc/${pid}/task`);
  let total = 0;
  for (const tid of tasks) {
    // A thread may exit between readdir and read.
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => null);
    if (stat === null) continue;
    const times = parseStatTimes(stat);
    total += times.utime + times.stime;
  }
  return total;
}

export async function readRss(pid: number): Promise<number | null> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => null);
  return status === null ? null : parseVmRss(status);
}

/** Open descriptors of `pid` (threads share one table); null when /proc/<pid>/fd cannot be read. */
export async function readOpenFds(pid: number): Promise<number | null> {
  const entries = await readdir(`/proc/${pid}/fd`).catch(() => null);
  return entries === null ? null : entries.length;
}

export interface CpuSample {
  /** Wall clock, microseconds since the Unix epoch (comparable with pgbench log times). */
  atUs: number;
  ticks: number;
  rssBytes: number | null;
}

export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export interface Sampler {
  /** Stops sampling; resolves with every sample taken (the last at most one interval old), oldest first. */
  stop(): Promise<CpuSample[]>;
}

/** Samples `pid` every `intervalMs` until stop(); a vanished process just ends the series. */
export function sampleProcess(pid: number, intervalMs = 200): Sampler {
  const samples: CpuSample[] = [];
  let stopped = false;
  let inFlight: Promise<void> = Promise.resolve();
  const take = async (): Promise<void> => {
    try {
      const atUs = nowUs();
      const [ticks, rssBytes] = await Promise.all([readCpuTicks(pid), readRss(pid)]);
      samples.push({ atUs, ticks, rssBytes });
    } catch {
      // The process is gone; the samples so far still describe it.
    }
  };
  inFlight = take();
  const timer = setInterval(() => {
    if (stopped) return;
    inFlight = inFlight.then(take);
  }, intervalMs);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await inFlight;
      return samples;
    },
  };
}

export interface CpuWindow {
  /** The first sample at or after the window start and the last at or before its end. */
  from: CpuSample;
  to: CpuSample;
}

/** The pair of samples that spans the most of [startUs, endUs] without leaving it. */
export function samplesWithin(samples: readonly CpuSample[], startUs: number, endUs: number): CpuWindow | null {
  const from = samples.find((s) => s.atUs >= startUs);
  const to = [...samples].reverse().find((s) => s.atUs <= endUs);
  if (!from || !to || to.atUs <= from.atUs) return null;
  return { from, to };
}

/** CPU microseconds per transaction for `transactions` completed between the two samples. */
export function cpuMicrosPerTransaction(window: CpuWindow, transactions: number, ticksPerSecond: number): number | null {
  if (transactions <= 0) return null;
  return ((window.to.ticks - window.from.ticks) * 1_000_000) / ticksPerSecond / transactions;
}
