/**
 * The memory series of a connect/disconnect run and the leak verdict drawn from it. The measured cycles
 * may follow warm-up cycles, which let a heap grow to its working size first (Doorman's shards run without
 * V8's memory reducer and take 100,000-200,000 cycles to get there). Growth is judged over the second half
 * of the measured cycles only: the first half may still include warm-up (JIT, the heap, the server
 * connections), which is not a leak.
 */

export type SampleLabel = 'before' | 'warmed' | 'cycles' | 'after';

export interface ProcessSample {
  /**
   * `before` any cycle, `warmed` after the warm-up cycles (absent without warm-up), during the measured
   * `cycles`, `after` the last one and a settle pause.
   */
  label: SampleLabel;
  /**
   * Measured cycles completed (successful or not) when the sample was taken. Warm-up cycles are not
   * counted, so `before` and `warmed` are both at 0.
   */
  cycles: number;
  /** VmRSS (all threads share it); null when the process was gone. */
  rssBytes: number | null;
  /** Entries in /proc/<pid>/fd; null when unreadable. */
  openFds: number | null;
}

export interface SeriesSummary {
  samples: number;
  minBytes: number | null;
  maxBytes: number | null;
  /** The `before` sample's RSS. */
  firstBytes: number | null;
  /** The `warmed` sample's RSS; null without warm-up. */
  warmedBytes: number | null;
  /** The `after` sample's RSS, else the last one taken. */
  lastBytes: number | null;
}

export interface Growth {
  /** The first sample at or after half the cycles and the last one taken during the cycles. */
  fromCycles: number;
  toCycles: number;
  /** Their measured RSS. */
  fromBytes: number;
  toBytes: number;
  /** toBytes - fromBytes: one sawtooth of the garbage collector can move it by tens of MiB either way. */
  endpointGrowthBytes: number;
  /**
   * The least-squares line through every sample of the second half, from its first to its last cycle
   * count: what the verdict uses, since GC noise on the two endpoints averages out over all the samples.
   */
  growthBytes: number;
  /** growthBytes relative to the fitted RSS at fromCycles, percent. */
  growthPercent: number;
  /** Samples the line was fitted to. */
  points: number;
}

export type Verdict = 'flat' | 'growing' | 'unknown';

/** Growth below either bound counts as flat. */
export const FLAT_PERCENT = 5;
export const FLAT_BYTES = 10 * 1024 * 1024;

function rssOf(samples: readonly ProcessSample[]): number[] {
  return samples.flatMap((s) => (s.rssBytes === null ? [] : [s.rssBytes]));
}

export function summarizeSeries(samples: readonly ProcessSample[]): SeriesSummary {
  const values = rssOf(samples);
  const before = samples.find((s) => s.label === 'before');
  const warmed = samples.find((s) => s.label === 'warmed');
  const after = [...samples].reverse().find((s) => s.label === 'after' && s.rssBytes !== null);
  const lastTaken = [...samples].reverse().find((s) => s.rssBytes !== null);
  return {
    samples: samples.length,
    minBytes: values.length > 0 ? Math.min(...values) : null,
    maxBytes: values.length > 0 ? Math.max(...values) : null,
    firstBytes: before?.rssBytes ?? null,
    warmedBytes: warmed?.rssBytes ?? null,
    lastBytes: (after ?? lastTaken)?.rssBytes ?? null,
  };
}

/** Slope and intercept of the least-squares line through (x, y); null with fewer than two distinct x. */
export function fitLine(points: readonly { x: number; y: number }[]): { slope: number; intercept: number } | null {
  const n = points.length;
  if (n < 2) return null;
  const meanX = points.reduce((sum, p) => sum + p.x, 0) / n;
  const meanY = points.reduce((sum, p) => sum + p.y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    sxx += (p.x - meanX) ** 2;
    sxy += (p.x - meanX) * (p.y - meanY);
  }
  if (sxx === 0) return null;
  const slope = sxy / sxx;
  return { slope, intercept: meanY - slope * meanX };
}

/**
 * RSS growth over the second half of `totalCycles` measured cycles: the samples taken during them from the
 * first at or after half of them to the last; null unless the run reached its last cycle with two such
 * samples. The `before` and `warmed` samples never count, so a rise during warm-up does not either.
 */
export function growthOverLastHalf(samples: readonly ProcessSample[], totalCycles: number): Growth | null {
  const half = samples.filter((s) => s.label === 'cycles' && s.rssBytes !== null && s.cycles * 2 >= totalCycles);
  const from = half[0];
  const to = half[half.length - 1];
  if (!from || !to || to.cycles < totalCycles) return null;
  const line = fitLine(half.map((s) => ({ x: s.cycles, y: s.rssBytes as number })));
  if (line === null) return null;
  const fromBytes = from.rssBytes as number;
  const toBytes = to.rssBytes as number;
  const fittedFrom = line.intercept + line.slope * from.cycles;
  const growthBytes = line.slope * (to.cycles - from.cycles);
  return {
    fromCycles: from.cycles,
    toCycles: to.cycles,
    fromBytes,
    toBytes,
    endpointGrowthBytes: toBytes - fromBytes,
    growthBytes,
    growthPercent: fittedFrom > 0 ? (growthBytes / fittedFrom) * 100 : 0,
    points: half.length,
  };
}

/** Flat when the second half of the measured cycles grew less than 5 % or less than 10 MiB (shrinking is flat too). */
export function growthVerdict(growth: Growth | null): Verdict {
  if (growth === null) return 'unknown';
  return growth.growthPercent < FLAT_PERCENT || growth.growthBytes < FLAT_BYTES ? 'flat' : 'growing';
}

/** At the same cycle count (`before` and `warmed` at 0, the last checkpoint and `after`), the order they are taken in. */
const LABEL_ORDER: Record<SampleLabel, number> = { before: 0, warmed: 1, cycles: 2, after: 3 };

/** Sorts in place into the order taken: checkpoint samples are read concurrently and may land out of order. */
export function sortSamples(samples: ProcessSample[]): ProcessSample[] {
  return samples.sort((a, b) => a.cycles - b.cycles || LABEL_ORDER[a.label] - LABEL_ORDER[b.label]);
}

/**
 * The cycle counts at which to sample: every twentieth of `total` (rounded up), ending exactly at `total`.
 * Garbage collection swings single samples by 10-15 MiB; eleven points in the last half keep one swing at
 * the end from deciding the fitted growth.
 */
export function checkpoints(total: number, parts = 20): number[] {
  const out: number[] = [];
  for (let i = 1; i <= parts; i++) {
    const at = Math.ceil((total * i) / parts);
    if (at > 0 && at !== out[out.length - 1]) out.push(at);
  }
  return out;
}
