/**
 * Latency histograms with fixed log-spaced buckets: bucket i counts values in (2^((i-1)/4), 2^(i/4)]
 * microseconds (bucket 0 takes everything up to 1 µs, the last everything above). Fixed bounds make
 * histograms from different shards mergeable by adding counts, and recording is a few comparisons and one
 * array increment: no allocation.
 */

/** Sub-buckets per doubling: bounds step by 2^(1/4), about 19 %. */
const PER_OCTAVE = 4;
/** Bounds run from 1 µs to 2^30 µs (about 18 minutes). */
const OCTAVES = 30;
export const BUCKETS = OCTAVES * PER_OCTAVE + 2;

/** Upper bound of bucket i in microseconds (Infinity for the last). */
export function bucketBound(i: number): number {
  return i >= BUCKETS - 1 ? Infinity : 2 ** (i / PER_OCTAVE);
}

/** Upper bounds by index, so recording compares a few numbers instead of taking a logarithm. */
const BOUNDS = Float64Array.from({ length: BUCKETS }, (_, i) => bucketBound(i));
/** From here on, everything goes to the last bucket (and Math.clz32 below still sees a whole 32-bit number). */
const TOP = 2 ** OCTAVES;

export function bucketIndex(us: number): number {
  if (!(us > 1)) return 0;
  if (us > TOP) return BUCKETS - 1;
  // floor(log2(us)) from the integer part, then at most PER_OCTAVE steps up to the first bound >= us.
  let i = (31 - Math.clz32(us)) * PER_OCTAVE;
  while (us > BOUNDS[i]) i++;
  return i;
}

export function newCounts(): Float64Array {
  return new Float64Array(BUCKETS);
}

/** Adds one value (µs) to `counts`. */
export function record(counts: Float64Array, us: number): void {
  counts[bucketIndex(us)]++;
}

/** into += from, bucket by bucket. */
export function addCounts(into: Float64Array, from: ArrayLike<number>): void {
  for (let i = 0; i < BUCKETS; i++) into[i] += from[i];
}

export function totalCount(counts: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < BUCKETS; i++) n += counts[i];
  return n;
}

/**
 * The q-quantile (0 < q <= 1) in µs, interpolated linearly inside its bucket; 0 when empty. The answer is
 * within one bucket width (19 %) of the true value. Values past the last bound report the last bound.
 */
export function quantile(counts: ArrayLike<number>, q: number): number {
  const n = totalCount(counts);
  if (n === 0) return 0;
  const rank = q * n;
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    const c = counts[i];
    if (c === 0) continue;
    if (seen + c >= rank) {
      const lower = i === 0 ? 0 : bucketBound(i - 1);
      const upper = i === BUCKETS - 1 ? lower : bucketBound(i);
      return lower + ((upper - lower) * (rank - seen)) / c;
    }
    seen += c;
  }
  return bucketBound(BUCKETS - 2);
}
