import { ConfigError, describeValue } from './errors.js';

const EXPECTED = 'a duration such as "250ms", "30s", "5m", "1m30s" or a whole number of milliseconds';

/** Unit lengths in microseconds, largest first: the order compound durations must follow. */
const UNITS_US: ReadonlyArray<readonly [string, bigint]> = [
  ['d', 86_400_000_000n],
  ['h', 3_600_000_000n],
  ['m', 60_000_000n],
  ['s', 1_000_000n],
  ['ms', 1_000n],
  ['us', 1n],
];

// `ms`/`us` listed before `m`/`s` so the longer suffix wins.
const COMPONENT = /(\d+)(?:\.(\d+))?\s*(ms|us|d|h|m|s)\s*/y;

function fail(path: string, message: string): never {
  throw new ConfigError([{ path, message }]);
}

function toMillis(us: bigint, path: string, v: unknown): number {
  if (us % 1_000n !== 0n) fail(path, `must be a whole number of milliseconds, got ${describeValue(v)}`);
  const ms = us / 1_000n;
  if (ms > BigInt(Number.MAX_SAFE_INTEGER)) fail(path, `is too large, got ${describeValue(v)}`);
  return Number(ms);
}

/**
 * A duration in milliseconds. A bare integer (or integer string) is milliseconds, as in PgDoorman;
 * strings may carry units d/h/m/s/ms/us, case-insensitive, also compound ("1m30s") and decimal ("1.5s"),
 * as long as the total is a whole number of milliseconds.
 */
export function parseDuration(v: unknown, path: string): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) fail(path, `must be ${EXPECTED}, got ${describeValue(v)}`);
    if (v < 0) fail(path, `must not be negative, got ${describeValue(v)}`);
    if (!Number.isInteger(v)) fail(path, `must be a whole number of milliseconds, got ${describeValue(v)}`);
    if (v > Number.MAX_SAFE_INTEGER) fail(path, `is too large, got ${describeValue(v)}`);
    return v;
  }
  if (typeof v !== 'string') fail(path, `must be ${EXPECTED}, got ${describeValue(v)}`);

  const text = v.trim().toLowerCase();
  if (text.startsWith('-')) fail(path, `must not be negative, got ${describeValue(v)}`);
  if (/^\d+$/.test(text)) return toMillis(BigInt(text) * 1_000n, path, v);
  if (text === '') fail(path, `must be ${EXPECTED}, got ${describeValue(v)}`);

  let totalUs = 0n;
  let nextUnit = 0;
  COMPONENT.lastIndex = 0;
  while (COMPONENT.lastIndex < text.length) {
    const m = COMPONENT.exec(text);
    if (m === null) fail(path, `must be ${EXPECTED}, got ${describeValue(v)}`);
    const [, whole, fraction = '', unit] = m;
    const unitIndex = UNITS_US.findIndex(([name]) => name === unit);
    if (unitIndex < nextUnit) {
      fail(path, `must list units from largest to smallest, each at most once, got ${describeValue(v)}`);
    }
    nextUnit = unitIndex + 1;
    // Exact decimal arithmetic: "1.1s" must be 1100 ms, not 1100.0000000000002.
    const scale = 10n ** BigInt(fraction.length);
    const scaled = (BigInt(whole) * scale + BigInt(fraction || '0')) * UNITS_US[unitIndex][1];
    if (scaled % scale !== 0n) fail(path, `must be a whole number of milliseconds, got ${describeValue(v)}`);
    totalUs += scaled / scale;
  }
  return toMillis(totalUs, path, v);
}
