/**
 * Reconnect delays: exponential with full jitter, so a fleet that lost its control plane at the same
 * moment does not reconnect in lockstep when it comes back.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call doubles the ceiling up to maxMs. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    // Never below half the ceiling: full jitter alone can retry a dead address at once, many times over.
    return Math.round(ceiling / 2 + this.random() * (ceiling / 2));
  }

  /** A stream that worked: the next failure starts from the initial delay again. */
  reset(): void {
    this.attempt = 0;
  }
}
