import { readdir, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';

/**
 * CPU time, context switches and memory of a process from /proc. Per-thread
 * figures are summed over every thread in /proc/<pid>/task so multi-threaded
 * poolers are charged fully (a task's status counts only its own switches).
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

/** voluntary_ctxt_switches + nonvoluntary_ctxt_switches of a /proc status text; null when either is absent. */
export function parseContextSwitches(status: string): number | null {
  const voluntary = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1];
  const involuntary = /^nonvoluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1];
  return voluntary === undefined || involuntary === undefined ? null : Number(voluntary) + Number(involuntary);
}

export interface ThreadTotals {
  /** utime+stime, clock ticks. */
  ticks: number;
  /** stime alone: time in the kernel on the process's behalf. */
  sysTicks: number;
  /** Voluntary + involuntary context switches. */
  switches: number;
}

/** CPU time and context switches summed over all live threads of `pid`. */
export async function readThreadTotals(pid: number): Promise<ThreadTotals> {
  const tasks = await readdir(`/proc/${pid}/task`);
  const totals: ThreadTotals = { ticks: 0, sysTicks: 0, switches: 0 };
  for (const tid of tasks) {
    const dir = `/proc/${pid}/task/${tid}`;
    // A thread may exit between readdir and read.
    const texts = await Promise.all([readFile(`${dir}/stat`, 'utf8'), readFile(`${dir}/status`, 'utf8')]).catch(() => null);
    if (texts === null) continue;
    const [stat, status] = texts;
    const times = parseStatTimes(stat);
    const switches = parseContextSwitches(status);
    if (switches === null) throw new Error(`no context switch counts in ${dir}/status`);
    totals.ticks += times.utime + times.stime;
    totals.sysTicks += times.stime;
    totals.switches += switches;
  }
  return totals;
}

/** utime+stime of all live threads of `pid`, in clock ticks. */
export async function readCpuTicks(pid: number): Promise<number> {
  return (await readThreadTotals(pid)).ticks;
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

export interface CpuSample extends ThreadTotals {
  /** Wall clock, microseconds since the Unix epoch (comparable with pgbench log times). */
  atUs: number;
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
      const [totals, rssBytes] = await Promise.all([readThreadTotals(pid), readRss(pid)]);
      samples.push({ atUs, ...totals, rssBytes });
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

/** Kernel (stime) microseconds per transaction, over the same samples as cpuMicrosPerTransaction. */
export function sysMicrosPerTransaction(window: CpuWindow, transactions: number, ticksPerSecond: number): number | null {
  if (transactions <= 0) return null;
  return ((window.to.sysTicks - window.from.sysTicks) * 1_000_000) / ticksPerSecond / transactions;
}

/** Context switches per transaction between the two samples. */
export function switchesPerTransaction(window: CpuWindow, transactions: number): number | null {
  if (transactions <= 0) return null;
  return (window.to.switches - window.from.switches) / transactions;
}
