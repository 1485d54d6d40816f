/**
 * One shard's counters for one pool (database, user). The connections increment plain number fields
 * where they already handle the event (no closures, no per-message objects); a snapshot copies them out
 * for the admin console and /metrics, and snapshots from every shard merge by adding.
 *
 * Times are microseconds. The object outlives Pool objects replaced by a reload, so totals never go back.
 */
import { addCounts, newCounts, record } from './histogram.js';

/** Everything that only grows. */
export interface StatTotals {
  /** Transactions: a server check-in in transaction mode, a ReadyForQuery 'I' in session mode. */
  xacts: number;
  /** Queries: each ReadyForQuery relayed (a Query or a Sync completed). */
  queries: number;
  /** Bytes from clients / to clients. */
  received: number;
  sent: number;
  xactTime: number;
  queryTime: number;
  /** Time clients waited for a server, and how many times a client got one. */
  waitTime: number;
  waits: number;
  waitTimeouts: number;
  serversOpened: number;
  /** Server logins that succeeded. */
  serverLogins: number;
  preparedHits: number;
  preparedMisses: number;
  preparedEvictions: number;
  /** A server connection given up at check-in for a starved shard / closed idle at another shard's request. */
  shardDonations: number;
  shardEvictions: number;
}

export const TOTAL_KEYS: readonly (keyof StatTotals)[] = [
  'xacts', 'queries', 'received', 'sent', 'xactTime', 'queryTime', 'waitTime', 'waits', 'waitTimeouts',
  'serversOpened', 'serverLogins', 'preparedHits', 'preparedMisses', 'preparedEvictions', 'shardDonations',
  'shardEvictions',
];

export function zeroTotals(): StatTotals {
  const t = {} as StatTotals;
  for (const k of TOTAL_KEYS) t[k] = 0;
  return t;
}

/** PgBouncer's stats_period: averages are over the last completed period. */
export const STATS_PERIOD_MS = 15_000;

/** What crosses threads: plain data. */
export interface PoolStatsSnapshot {
  database: string;
  user: string;
  totals: StatTotals;
  /** Growth over the last completed stats period (since start until one has completed). */
  period: StatTotals;
  periodMs: number;
  xactHist: Float64Array;
  queryHist: Float64Array;
  waitHist: Float64Array;
  /** Server errors relayed to clients by SQLSTATE class ("23", "42", ...). */
  errors: Record<string, number>;
}

const CODE_FIELD = 0x43; // 'C'

export class PoolStats implements StatTotals {
  xacts = 0;
  queries = 0;
  received = 0;
  sent = 0;
  xactTime = 0;
  queryTime = 0;
  waitTime = 0;
  waits = 0;
  waitTimeouts = 0;
  serversOpened = 0;
  serverLogins = 0;
  preparedHits = 0;
  preparedMisses = 0;
  preparedEvictions = 0;
  shardDonations = 0;
  shardEvictions = 0;
  readonly xactHist = newCounts();
  readonly queryHist = newCounts();
  readonly waitHist = newCounts();
  /** Keyed by the class's two bytes (c0 << 8 | c1): no string is built per error. */
  readonly errors = new Map<number, number>();
  private periodStartTotals = zeroTotals();
  private lastPeriod: StatTotals | null = null;
  private periodStartedAt: number;
  private lastPeriodMs = 0;

  constructor(
    readonly database: string,
    readonly user: string,
    private readonly startedAt: number,
  ) {
    this.periodStartedAt = startedAt;
  }

  query(us: number): void {
    this.queries++;
    this.queryTime += us;
    record(this.queryHist, us);
  }

  xact(us: number): void {
    this.xacts++;
    this.xactTime += us;
    record(this.xactHist, us);
  }

  wait(us: number): void {
    this.waits++;
    this.waitTime += us;
    record(this.waitHist, us);
  }

  /** An ErrorResponse from the server: only its SQLSTATE class is read. */
  serverError(buf: Buffer, start: number, end: number): void {
    let i = start + 5;
    while (i < end && buf[i] !== 0) {
      if (buf[i] === CODE_FIELD) {
        if (i + 2 >= end) return;
        const key = (buf[i + 1] << 8) | buf[i + 2];
        this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
        return;
      }
      const nul = buf.indexOf(0, i + 1);
      if (nul < 0 || nul >= end) return;
      i = nul + 1;
    }
  }

  /** Closes the current stats period when it is due (called from the coarse ticker). */
  tick(now: number): void {
    if (now - this.periodStartedAt < STATS_PERIOD_MS) return;
    const last = this.lastPeriod ?? zeroTotals();
    const start = this.periodStartTotals;
    for (const k of TOTAL_KEYS) {
      last[k] = this[k] - start[k];
      start[k] = this[k];
    }
    this.lastPeriod = last;
    this.lastPeriodMs = now - this.periodStartedAt;
    this.periodStartedAt = now;
  }

  snapshot(now: number): PoolStatsSnapshot {
    const totals = zeroTotals();
    for (const k of TOTAL_KEYS) totals[k] = this[k];
    const errors: Record<string, number> = {};
    for (const [key, n] of this.errors) errors[String.fromCharCode(key >> 8, key & 0xff)] = n;
    return {
      database: this.database,
      user: this.user,
      totals,
      period: this.lastPeriod === null ? { ...totals } : { ...this.lastPeriod },
      periodMs: this.lastPeriod === null ? Math.max(now - this.startedAt, 1) : this.lastPeriodMs,
      xactHist: this.xactHist.slice(),
      queryHist: this.queryHist.slice(),
      waitHist: this.waitHist.slice(),
      errors,
    };
  }
}

/** Sums snapshots of the same pool from several shards (by database and user, in first-seen order). */
export function mergePoolStats(parts: readonly PoolStatsSnapshot[]): PoolStatsSnapshot[] {
  const out = new Map<string, PoolStatsSnapshot>();
  for (const p of parts) {
    const key = `${p.database}\0${p.user}`;
    const sum = out.get(key);
    if (sum === undefined) {
      out.set(key, {
        ...p,
        totals: { ...p.totals },
        period: { ...p.period },
        xactHist: Float64Array.from(p.xactHist),
        queryHist: Float64Array.from(p.queryHist),
        waitHist: Float64Array.from(p.waitHist),
        errors: { ...p.errors },
      });
      continue;
    }
    addSnapshot(sum, p);
  }
  return [...out.values()];
}

/** into += from; the period length is the longest of the parts (shards' periods end at about the same time). */
export function addSnapshot(into: PoolStatsSnapshot, from: PoolStatsSnapshot): void {
  for (const k of TOTAL_KEYS) {
    into.totals[k] += from.totals[k];
    into.period[k] += from.period[k];
  }
  into.periodMs = Math.max(into.periodMs, from.periodMs);
  addCounts(into.xactHist, from.xactHist);
  addCounts(into.queryHist, from.queryHist);
  addCounts(into.waitHist, from.waitHist);
  for (const [cls, n] of Object.entries(from.errors)) into.errors[cls] = (into.errors[cls] ?? 0) + n;
}
