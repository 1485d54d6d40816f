/** The summary pgbench prints at the end of a run, and the error that explains a failed one. */

export interface PgbenchSummary {
  /** "tps = N (without initial connection time)", or with --connect "tps = N (including reconnection times)". */
  tps: number | null;
  /** "number of transactions actually processed: N" (or N/M with -t). */
  processed: number | null;
  /** "number of failed transactions: N (x%)" (PostgreSQL 15+). */
  failedTransactions: number | null;
  /** pgbench said "Run was aborted; the above results are incomplete.". */
  aborted: boolean;
}

function numberAfter(text: string, pattern: RegExp): number | null {
  const match = pattern.exec(text);
  if (!match?.[1]) return null;
  const value = Number(match[1]);
  return Number.isFinite(value) ? value : null;
}

export function parsePgbenchSummary(stdout: string, stderr: string): PgbenchSummary {
  return {
    tps: numberAfter(stdout, /^tps = ([0-9.]+) \((?:without initial connection time|including reconnection times)\)/m),
    processed: numberAfter(stdout, /^number of transactions actually processed: (\d+)/m),
    failedTransactions: numberAfter(stdout, /^number of failed transactions: (\d+)/m),
    aborted: /Run was aborted/.test(stderr) || /Run was aborted/.test(stdout),
  };
}

const ERROR_PATTERNS: readonly RegExp[] = [/\b(ERROR|FATAL):/, /aborted in command/, /\berror:/i, /\bfatal:/i];

/**
 * The line that best explains a failure: the first server ERROR/FATAL, else
 * the first client abort, else pgbench's own error, else the first stderr line.
 */
export function errorLine(stderr: string, maxLength = 300): string | null {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  for (const pattern of ERROR_PATTERNS) {
    const line = lines.find((l) => pattern.test(l));
    if (line !== undefined) return clip(line, maxLength);
  }
  return lines[0] === undefined ? null : clip(lines[0], maxLength);
}

function clip(line: string, maxLength: number): string {
  return line.length <= maxLength ? line : `${line.slice(0, maxLength - 1)}…`;
}
