/**
 * The server-connection cap of one pool, shared by every worker shard. Each shard has its own Pool object
 * (its clients and server sockets never leave its thread); what they share is this budget, a few Int32
 * cells in a SharedArrayBuffer:
 *
 *   open                 server connections open or opening, over all shards (moved only by CAS, so the
 *                        cap is never exceeded, not even for a moment)
 *   per shard: idle, waiting, held, demand
 *                        gauges each shard publishes so the others can decide whom to ask for a connection;
 *                        demand is the shard's clients using or wanting a server, averaged over the last
 *                        ticks (x16, fixed point): the instant counts swing with every transaction, and
 *                        rebalancing on them would trade connections back and forth
 *
 * The memory layout is plain index math; the cross-shard messages (please close an idle one, a slot was
 * freed) travel through the `signal` callback, so this file stays free of threads and sockets.
 */

/**
 * Int32 cells per 64-byte cache line. The open count and each shard's gauges get lines of their own: a shard
 * writes its gauges at every check-out and check-in, and on a shared line each write would evict the other
 * cores' copy (false sharing).
 */
const LINE = 16;
const IDLE = 0;
const WAITING = 1;
const HELD = 2;
const DEMAND = 3;
/** Fixed-point scale of the demand cell. */
const DEMAND_SCALE = 16;
/**
 * Ticks in a row a shard must hold a connection beyond its share, while a waiting shard lacks one, before it
 * gives a busy connection up. Shares follow a demand that swings from tick to tick: acting at the first tick,
 * two evenly loaded shards at pool_size 20 moved a connection (a server login each) about once a second.
 */
export const DONATE_AFTER_TICKS = 3;

/** Int32 cells one pool slot needs for `shards` shards. */
export function slotStride(shards: number): number {
  return LINE * (1 + shards);
}

export type BudgetSignal =
  /** Ask shard `to` to close up to `count` idle connections of this slot, for shard `from`. */
  | { kind: 'evict'; from: number; to: number; count: number }
  /** A slot came free while another shard had waiters. */
  | { kind: 'freed' }
  /** The pool's first server told its startup ParameterStatus list: clients of every shard can log in with it. */
  | { kind: 'defaults'; status: [string, string][] };

export class ServerBudget {
  private readonly base: number;
  /** An eviction request is in flight; do not ask again before this time (ms). */
  private askedUntil = 0;
  /** Consecutive ticks at which this shard had a connection to donate (see shouldDonate). */
  private surplusTicks = 0;

  constructor(
    private readonly cells: Int32Array,
    slot: number,
    readonly shards: number,
    readonly shard: number,
    private readonly signal: (s: BudgetSignal) => void,
  ) {
    this.base = slot * slotStride(shards);
  }

  /** Connections open or opening over all shards. */
  get open(): number {
    return Atomics.load(this.cells, this.base);
  }

  /** Takes one slot if fewer than `limit` are in use over all shards. */
  tryTake(limit: number): boolean {
    const c = this.cells;
    const i = this.base;
    for (;;) {
      const n = Atomics.load(c, i);
      if (n >= limit) return false;
      if (Atomics.compareExchange(c, i, n, n + 1) === n) return true;
    }
  }

  /** A connection that held a slot is gone. Tells waiting shards so they can open one. */
  release(): void {
    Atomics.sub(this.cells, this.base, 1);
    if (this.othersWaiting()) this.signal({ kind: 'freed' });
  }

  /** This shard's gauges, read by the others. Plain stores: a slightly stale gauge only delays a decision. */
  publish(idle: number, waiting: number, held: number): void {
    const at = this.base + LINE * (1 + this.shard);
    const c = this.cells;
    c[at + IDLE] = idle;
    c[at + WAITING] = waiting;
    c[at + HELD] = held;
  }

  /** This shard's smoothed demand (clients using or wanting a server). */
  publishDemand(demand: number): void {
    this.cells[this.base + LINE * (1 + this.shard) + DEMAND] = Math.round(demand * DEMAND_SCALE);
  }

  othersWaiting(): boolean {
    const c = this.cells;
    for (let s = 0, at = this.base + LINE; s < this.shards; s++, at += LINE) {
      if (s !== this.shard && c[at + WAITING] > 0) return true;
    }
    return false;
  }

  /** Whether this shard holds at least one connection beyond its fair share of `limit` (shares follow the shards' demand). */
  hasSurplus(limit: number): boolean {
    return this.spares(this.shard, limit, this.totalDemand());
  }

  /** Whether shard `s` has clients waiting and holds no connection: it cannot serve them on its own. */
  starving(s: number): boolean {
    const at = this.base + LINE * (1 + s);
    return this.cells[at + WAITING] > 0 && this.cells[at + HELD] === 0;
  }

  /** Whether another shard is starving (see starving). */
  othersStarving(): boolean {
    const c = this.cells;
    for (let s = 0, at = this.base + LINE; s < this.shards; s++, at += LINE) {
      if (s !== this.shard && c[at + HELD] === 0 && c[at + WAITING] > 0) return true;
    }
    return false;
  }

  /**
   * Whether a connection this shard is about to reuse should be closed so a waiting shard can open one:
   * only while this shard holds at least one more than its share and a waiting shard at least one less,
   * and so at each of the last DONATE_AFTER_TICKS ticks (see tick), so shares settle instead of flapping.
   */
  shouldDonate(limit: number): boolean {
    return this.surplusTicks >= DONATE_AFTER_TICKS && this.canDonate(limit);
  }

  /** The pool's tick, after publishDemand: counts the ticks in a row at which this shard could donate. */
  tick(limit: number): void {
    this.surplusTicks = this.canDonate(limit) ? this.surplusTicks + 1 : 0;
  }

  private canDonate(limit: number): boolean {
    if (!this.othersWaiting()) return false;
    const total = this.totalDemand();
    if (!this.spares(this.shard, limit, total)) return false;
    const c = this.cells;
    for (let s = 0, at = this.base + LINE; s < this.shards; s++, at += LINE) {
      if (s !== this.shard && c[at + WAITING] > 0 && this.lacks(s, limit, total)) return true;
    }
    return false;
  }

  /**
   * Whether a free slot should be left to a waiting shard: whenever this shard has just given a connection up
   * for one (`donated`), to a starving one while this shard still holds a connection, else to one that holds
   * at least one less than its share while this shard, holding `held` now, has its own share. A shard that
   * closed a connection for another has waiters of its own: without this it took the slot back at once
   * (before the other shard heard of it), and closed and reconnected again at every tick.
   */
  owesSlot(limit: number, held: number, donated: boolean): boolean {
    if (!this.othersWaiting()) return false;
    if (donated || (held > 0 && this.othersStarving())) return true;
    const total = this.totalDemand();
    if (total === 0) return false;
    const share = (limit * this.cells[this.base + LINE * (1 + this.shard) + DEMAND]) / total;
    if (held < share) return false;
    const c = this.cells;
    for (let s = 0, at = this.base + LINE; s < this.shards; s++, at += LINE) {
      if (s !== this.shard && c[at + WAITING] > 0 && this.lacks(s, limit, total)) return true;
    }
    return false;
  }

  private totalDemand(): number {
    const c = this.cells;
    let sum = 0;
    for (let s = 0, at = this.base + LINE; s < this.shards; s++, at += LINE) sum += c[at + DEMAND];
    return sum;
  }

  /*
   * Shard s's fair share is limit × demand(s) / totalDemand; with no demand anywhere, every connection is
   * surplus. The comparisons are multiplied out by totalDemand, so no fraction is made: a double returned
   * from here was a heap allocation at every check-in.
   */

  /** Whether shard `s` holds at least one connection more than its share. */
  private spares(s: number, limit: number, totalDemand: number): boolean {
    const at = this.base + LINE * (1 + s);
    const held = this.cells[at + HELD];
    if (totalDemand === 0) return held >= 1;
    return held * totalDemand - limit * this.cells[at + DEMAND] >= totalDemand;
  }

  /** Whether shard `s` holds at least one connection less than its share. */
  private lacks(s: number, limit: number, totalDemand: number): boolean {
    if (totalDemand === 0) return false;
    const at = this.base + LINE * (1 + s);
    return this.cells[at + HELD] * totalDemand - limit * this.cells[at + DEMAND] <= -totalDemand;
  }

  /**
   * This shard has `wanted` clients waiting and the cap is reached: ask the shard with the most idle
   * connections to close some. At most one request in flight (until `now` passes its deadline).
   */
  askForIdle(wanted: number, now: number): boolean {
    if (wanted <= 0 || now < this.askedUntil) return false;
    const c = this.cells;
    let best = -1;
    let bestIdle = 0;
    for (let s = 0, at = this.base + LINE; s < this.shards; s++, at += LINE) {
      if (s !== this.shard && c[at + IDLE] > bestIdle) {
        best = s;
        bestIdle = c[at + IDLE];
      }
    }
    if (best < 0) return false;
    this.askedUntil = now + 50;
    this.signal({ kind: 'evict', from: this.shard, to: best, count: Math.min(wanted, bestIdle) });
    return true;
  }

  /** Tells the other shards the startup ParameterStatus list, so their clients need no server to log in. */
  shareDefaults(status: ReadonlyArray<readonly [string, string]>): void {
    if (this.shards > 1) this.signal({ kind: 'defaults', status: status.map(([k, v]) => [k, v]) });
  }

  /** A slot came free (or idle connections were closed on request): a new request may go out. */
  answered(): void {
    this.askedUntil = 0;
  }
}
