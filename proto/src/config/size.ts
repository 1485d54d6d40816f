import { ConfigError, describeValue } from './errors.js';

const EXPECTED = 'a size such as "64KB", "256 MB", "1GiB" or a whole number of bytes';

/** Multipliers are 1024-based whatever the spelling, as in PgDoorman ("1KB" = 1024 bytes). */
const SUFFIXES: ReadonlyMap<string, bigint> = new Map([
  ['', 1n],
  ['b', 1n],
  ['k', 1024n],
  ['kb', 1024n],
  ['kib', 1024n],
  ['m', 1024n ** 2n],
  ['mb', 1024n ** 2n],
  ['mib', 1024n ** 2n],
  ['g', 1024n ** 3n],
  ['gb', 1024n ** 3n],
  ['gib', 1024n ** 3n],
]);

function fail(path: string, message: string): never {
  throw new ConfigError([{ path, message }]);
}

/** A size in bytes: a bare integer is bytes; strings may carry a case-insensitive unit, optionally after a space. */
export function parseSize(v: unknown, path: string): number {
  let bytes: bigint;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) fail(path, `must be ${EXPECTED}, got ${describeValue(v)}`);
    if (v < 0) fail(path, `must not be negative, got ${describeValue(v)}`);
    if (!Number.isInteger(v)) fail(path, `must be a whole number of bytes, got ${describeValue(v)}`);
    bytes = BigInt(v);
  } else if (typeof v === 'string') {
    const text = v.trim().toLowerCase();
    if (text.startsWith('-')) fail(path, `must not be negative, got ${describeValue(v)}`);
    const m = /^(\d+)\s*([a-z]*)$/.exec(text);
    const multiplier = m === null ? undefined : SUFFIXES.get(m[2]);
    if (m === null || multiplier === undefined) fail(path, `must be ${EXPECTED}, got ${describeValue(v)}`);
    bytes = BigInt(m[1]) * multiplier;
  } else {
    fail(path, `must be ${EXPECTED}, got ${describeValue(v)}`);
  }
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) fail(path, `is too large, got ${describeValue(v)}`);
  return Number(bytes);
}
