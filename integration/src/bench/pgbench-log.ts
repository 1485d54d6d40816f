/**
 * pgbench --log files: one line per transaction,
 * `client_id transaction_no time script_no time_epoch time_us [schedule_lag] [retries]`,
 * where `time` is the latency in microseconds (or `failed` / `skipped`) and
 * time_epoch.time_us is when the transaction ended. With -j N, thread 0 writes
 * <prefix>.<pid> and thread k writes <prefix>.<pid>.<k>.
 */

export interface LogRecord {
  client: number;
  /** End of the transaction, microseconds since the Unix epoch. */
  endUs: number;
  /** null for `failed` and `skipped` transactions. */
  latencyUs: number | null;
}

export function parseLogLine(line: string): LogRecord | null {
  const fields = line.trim().split(/\s+/);
  if (fields.length < 6) return null;
  const client = Number(fields[0]);
  const epochSeconds = Number(fields[4]);
  const micros = Number(fields[5]);
  if (!Number.isInteger(client) || !Number.isInteger(epochSeconds) || !Number.isInteger(micros)) return null;
  const time = fields[2] as string;
  let latencyUs: number | null = null;
  if (time !== 'failed' && time !== 'skipped') {
    latencyUs = Number(time);
    if (!Number.isFinite(latencyUs)) return null;
  }
  return { client, endUs: epochSeconds * 1_000_000 + micros, latencyUs };
}

/** Every well-formed line of one log file; other lines are ignored. */
export function parseLog(text: string): LogRecord[] {
  const records: LogRecord[] = [];
  for (const line of text.split('\n')) {
    const record = parseLogLine(line);
    if (record) records.push(record);
  }
  return records;
}

export interface Window {
  startUs: number;
  endUs: number;
}

/**
 * The interval in which every pgbench thread was running transactions,
 * shrunk by `marginUs` at both ends (ramp-up and ramp-down excluded).
 * Null when a file is empty or nothing is left after the margins.
 */
export function steadyWindow(files: readonly (readonly LogRecord[])[], marginUs: number): Window | null {
  if (files.length === 0) return null;
  let latestFirst = -Infinity;
  let earliestLast = Infinity;
  for (const records of files) {
    if (records.length === 0) return null;
    let first = Infinity;
    let last = -Infinity;
    for (const r of records) {
      if (r.endUs < first) first = r.endUs;
      if (r.endUs > last) last = r.endUs;
    }
    latestFirst = Math.max(latestFirst, first);
    earliestLast = Math.min(earliestLast, last);
  }
  const window = { startUs: latestFirst + marginUs, endUs: earliestLast - marginUs };
  return window.endUs > window.startUs ? window : null;
}

/** Records that ended in (startUs, endUs]. */
export function inWindow(records: readonly LogRecord[], window: Window): LogRecord[] {
  return records.filter((r) => r.endUs > window.startUs && r.endUs <= window.endUs);
}

/** Nearest-rank percentile of ascending `sorted`; `p` in (0, 100]. */
export function percentile(sorted: ArrayLike<number>, p: number): number | null {
  if (sorted.length === 0) return null;
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${p}`);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[rank - 1] as number;
}

export interface LatencySummary {
  /** Transactions in the records (failed and skipped included). */
  transactions: number;
  /** `failed` or `skipped` lines (no latency). */
  withoutLatency: number;
  p50Us: number | null;
  p99Us: number | null;
}

export function summarizeLatency(records: readonly LogRecord[]): LatencySummary {
  const latencies = new Float64Array(records.length);
  let n = 0;
  for (const r of records) {
    if (r.latencyUs !== null) latencies[n++] = r.latencyUs;
  }
  const sorted = latencies.subarray(0, n).sort();
  return {
    transactions: records.length,
    withoutLatency: records.length - n,
    p50Us: percentile(sorted, 50),
    p99Us: percentile(sorted, 99),
  };
}
