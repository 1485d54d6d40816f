/** Shapes shared by the benchmark runner, the report and raw.json. */

export type Workload = 'select-only' | 'tpcb-like';
export type Protocol = 'simple' | 'extended' | 'prepared';
export type TargetName = 'doorman' | 'pgbouncer' | 'direct';

export const TARGETS: readonly TargetName[] = ['doorman', 'pgbouncer', 'direct'];

export const TARGET_LABELS: Record<TargetName, string> = {
  doorman: 'Doorman',
  pgbouncer: 'PgBouncer',
  direct: 'direct',
};

/** One pgbench configuration, run against every target in turn. */
export interface Cell {
  /** e.g. `select-only/simple/c100`, `select-only/simple/c100/tls`, `select-only/simple/c100/server-tls`. */
  id: string;
  workload: Workload;
  protocol: Protocol;
  clients: number;
  /** pgbench --connect: a new connection per transaction. */
  connect: boolean;
  /** PGSSLMODE=require. */
  tls: boolean;
  /** The poolers reach PostgreSQL over TLS (sslmode require); pgbench does too when it connects directly. */
  serverTls: boolean;
}

export type RunStatus = 'ok' | 'failed' | 'skipped';

/** One pgbench run of one cell against one target. Numbers are null when not measured. */
export interface TargetRun {
  target: TargetName;
  status: RunStatus;
  /** Skip reason or the first error line pgbench printed. */
  reason: string | null;
  /** A failure the project expects today (e.g. -M prepared through a transaction-mode pooler). */
  expectedFailure: boolean;
  exitCode: number | null;
  /** pgbench's "tps = ... (without initial connection time)". */
  tps: number | null;
  /** "number of transactions actually processed". */
  processed: number | null;
  /** "number of failed transactions". */
  failedTransactions: number | null;
  /** Latency percentiles over the steady window, from the --log files. */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Transactions that completed inside the steady window, and its length. */
  steadyTransactions: number | null;
  steadySeconds: number | null;
  /** Pooler utime+stime (all threads) over the steady window / steadyTransactions. */
  cpuUsPerTx: number | null;
  /** The kernel part (stime) of cpuUsPerTx, same window. */
  sysUsPerTx: number | null;
  /** Pooler voluntary + involuntary context switches (all threads) over the same window / steadyTransactions. */
  switchesPerTx: number | null;
  /** Pooler resident set size at the last sample before pgbench ended. */
  rssBytes: number | null;
  /** pgbench -T. */
  pgbenchSeconds: number;
  /** Wall-clock seconds the pgbench process ran. */
  wallSeconds: number;
}

export interface CellResult {
  cell: Cell;
  runs: TargetRun[];
}

export interface BenchResults {
  startedAt: string;
  finishedAt: string | null;
  /** How the run was started, e.g. `npm run bench -- --quick`. */
  command: string;
  durationSeconds: number;
  /** Name -> version or fact (PostgreSQL, PgBouncer, node, CPU, load average, ...). */
  environment: Record<string, string>;
  /** How each target was configured, one line each. */
  setup: string[];
  cells: CellResult[];
}
