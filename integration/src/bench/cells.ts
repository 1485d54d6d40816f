import type { Cell, Protocol, TargetName, Workload } from './types.js';

/**
 * The select-only workload: no table access, so the number measures the
 * pooler's per-round-trip cost rather than PostgreSQL's buffer manager.
 */
export const SELECT_ONLY_SCRIPT = '\\set aid random(1,100000)\nSELECT :aid;\n';

export const PROTOCOLS: readonly Protocol[] = ['simple', 'extended', 'prepared'];
export const CLIENT_COUNTS: readonly number[] = [10, 100, 500, 2000];

/** pgbench threads for every run. */
export const PGBENCH_THREADS = 2;

export function cellId(cell: Omit<Cell, 'id'>): string {
  const parts: string[] = [cell.workload, cell.protocol, `c${cell.clients}`];
  if (cell.connect) parts.push('connect');
  if (cell.tls) parts.push('tls');
  if (cell.serverTls) parts.push('server-tls');
  return parts.join('/');
}

export function makeCell(
  workload: Workload,
  protocol: Protocol,
  clients: number,
  extra: { connect?: boolean; tls?: boolean; serverTls?: boolean } = {},
): Cell {
  const shape = { workload, protocol, clients, connect: extra.connect ?? false, tls: extra.tls ?? false, serverTls: extra.serverTls ?? false };
  return { id: cellId(shape), ...shape };
}

/** Every cell of the full suite, in run order. */
export function fullCells(): Cell[] {
  const cells: Cell[] = [];
  for (const protocol of PROTOCOLS) {
    for (const clients of CLIENT_COUNTS) cells.push(makeCell('select-only', protocol, clients));
  }
  cells.push(makeCell('tpcb-like', 'simple', 100));
  cells.push(makeCell('select-only', 'simple', 100, { connect: true }));
  cells.push(makeCell('select-only', 'simple', 100, { tls: true }));
  cells.push(makeCell('select-only', 'simple', 100, { serverTls: true }));
  return cells;
}

/** --quick: select-only simple and extended at 10 and 100 clients. */
export function quickCells(): Cell[] {
  const cells: Cell[] = [];
  for (const protocol of ['simple', 'extended'] as const) {
    for (const clients of [10, 100]) cells.push(makeCell('select-only', protocol, clients));
  }
  return cells;
}

/**
 * --cells: comma-separated patterns; a cell is kept when its id contains any
 * of them, or equals one ending in `$` (so `c100$` does not also pick c1000).
 */
export function filterCells(cells: readonly Cell[], filter: string | undefined): Cell[] {
  const patterns = (filter ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (patterns.length === 0) return [...cells];
  return cells.filter((cell) =>
    patterns.some((p) => (p.endsWith('$') ? cell.id.endsWith(p.slice(0, -1)) : cell.id.includes(p))),
  );
}

/** The cells a run covers: --quick's or the full suite's, narrowed by --cells. Throws when none is left. */
export function selectedCells(quick: boolean, filter: string | undefined): Cell[] {
  const cells = filterCells(quick ? quickCells() : fullCells(), filter);
  if (cells.length === 0) throw new Error(`--cells "${filter ?? ''}" matches no cell`);
  return cells;
}

/**
 * PgBouncer 1.18 does not keep protocol-level prepared statements across transactions in transaction mode.
 * Doorman does: its failing there is a regression, not an expected failure.
 */
export function isExpectedFailure(cell: Cell, target: TargetName): boolean {
  return cell.protocol === 'prepared' && target === 'pgbouncer';
}

/**
 * pgbench's -T also covers the initial connections, which at 2000 SCRAM
 * logins take seconds: add 1 s per 200 clients so the transaction phase keeps
 * about `durationSeconds`. --connect opens no connections up front.
 */
export function pgbenchSeconds(durationSeconds: number, cell: Cell): number {
  return durationSeconds + (cell.connect ? 0 : Math.floor(cell.clients / 200));
}

export interface PgbenchArgsOptions {
  durationSeconds: number;
  /** The select-only script file. */
  scriptPath: string;
  /** --log-prefix: pgbench writes <prefix>.<pid>[.<thread>]; null: no transaction log (a warm-up). */
  logPrefix: string | null;
  threads?: number;
}

/** pgbench arguments for one run (connection options and the database come from the caller). */
export function pgbenchArgs(cell: Cell, options: PgbenchArgsOptions): string[] {
  const args = [
    '-n',
    '-j', String(options.threads ?? PGBENCH_THREADS),
    '-c', String(cell.clients),
    '-T', String(pgbenchSeconds(options.durationSeconds, cell)),
    '-M', cell.protocol,
  ];
  if (options.logPrefix !== null) args.push('--log', `--log-prefix=${options.logPrefix}`);
  if (cell.connect) args.push('--connect');
  if (cell.workload === 'select-only') args.push('-f', options.scriptPath);
  else args.push('-b', 'tpcb-like');
  return args;
}

/** Clients of a warm-up run: enough to drive every path at full rate, few enough to connect at once. */
export const WARMUP_CLIENTS = 10;

/**
 * Cells of one kind take the same code paths in a pooler whatever their client count: the same workload,
 * protocol, --connect and TLS on either side.
 */
export function cellKind(cell: Cell): string {
  return [cell.workload, cell.protocol, cell.connect, cell.tls, cell.serverTls].join('/');
}

/**
 * The unmeasured run that goes before the first cell of each kind against every target. The measured window
 * would otherwise include Doorman's JIT compiling that path (1-6 µs more CPU per transaction over a first
 * 10 s run at 10 clients, measured here): a cost paid once per process, not a steady state.
 */
export function warmupCells(cells: readonly Cell[]): Map<Cell, Cell> {
  const warmups = new Map<Cell, Cell>();
  const seen = new Set<string>();
  for (const cell of cells) {
    const kind = cellKind(cell);
    if (seen.has(kind)) continue;
    seen.add(kind);
    warmups.set(cell, makeCell(cell.workload, cell.protocol, WARMUP_CLIENTS, cell));
  }
  return warmups;
}

/** Clients direct PostgreSQL can take while both poolers hold their server connections. */
export function directCapacity(maxConnections: number, reservedConnections: number, poolerServerConnections: number): number {
  return maxConnections - reservedConnections - poolerServerConnections;
}

/** Open files pgbench needs for `clients` sockets plus its own files, with headroom. */
export function pgbenchOpenFiles(clients: number, currentSoftLimit: number): number {
  return Math.max(currentSoftLimit, clients + 256);
}
