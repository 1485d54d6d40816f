import { parseArgs } from 'node:util';
import { TARGETS, type TargetName } from './types.js';

export interface BenchOptions {
  quick: boolean;
  /** Seconds per pgbench run (cells) or measured per trickle (--many-clients). */
  durationSeconds: number;
  /** --warmup N: seconds of unmeasured pgbench before the first cell of each kind (see warmupCells); 0 = none. */
  warmupSeconds: number;
  /** --cells patterns, see filterCells(). */
  cells: string | undefined;
  targets: TargetName[];
  manyClients: boolean;
  /** Connections held open in --many-clients. */
  connections: number;
  /** --connect-cycles N: connect/disconnect cycles through Doorman; null when not asked for. */
  connectCycles: number | null;
  /**
   * --warmup-cycles N: cycles each pooler runs before the measured --connect-cycles, so the verdict sees
   * the heap at its working size; 0 = none. Only used with --connect-cycles.
   */
  warmupCycles: number;
  /** --cycles-peer: run the cycles against PgBouncer too. */
  cyclesPeer: boolean;
  /** Doorman's general.workers; null leaves it unset (one shard per core). */
  workers: number | null;
  /** --io-floor: Doorman and PgBouncer beside bare Node relays (see io-floor.ts). */
  ioFloor: boolean;
  help: boolean;
}

export const DEFAULT_CONNECT_CYCLES = 100_000;
export const DEFAULT_WARMUP_SECONDS = 5;
/** Doorman's heap reaches its working size within about 200,000 cycles (its shards run without V8's memory reducer). */
export const DEFAULT_WARMUP_CYCLES = 200_000;

export const USAGE = `usage: npm run bench -- [options]

  --quick              select-only simple+extended at 10 and 100 clients, 5 s each
  --duration N         seconds per pgbench run (default 15; 5 with --quick; 20 for --many-clients)
  --warmup N           seconds of pgbench at 10 clients against every target before the first cell of each
                       kind (workload, protocol, --connect, TLS), not measured, so that the measured runs
                       see Doorman's code compiled (default ${DEFAULT_WARMUP_SECONDS}; 0 = none)
  --cells LIST         comma-separated patterns matched against cell ids, e.g.
                       "simple/c100$,tls"; a trailing $ anchors at the end
  --targets LIST       subset of doorman,pgbouncer,direct (default all)
  --many-clients       hold ${10_000} connections open; pgbench sends 200 queries/s right after the
                       logins, then again after a 5 s burst at full rate; latency from its log; with
                       the direct target, the same trickles straight to PostgreSQL for reference
  --connections N      connections for --many-clients (default 10000)
  --connect-cycles [N] N connect/disconnect cycles (default ${DEFAULT_CONNECT_CYCLES}) through Doorman with an
                       hba trust rule, sampling its RSS and open descriptors (a leak check)
  --warmup-cycles N    with --connect-cycles: cycles each pooler runs before the measured ones, so that its
                       heap reaches its working size (default ${DEFAULT_WARMUP_CYCLES}; 0 = none); the RSS verdict
                       covers the measured cycles only
  --cycles-peer        with --connect-cycles: run the same cycles against PgBouncer too
  --workers N          Doorman worker shards (default: unset, one per core)
  --io-floor           select-only at 10 clients, simple and extended, two rounds, against PgBouncer,
                       Doorman (one shard per core, and one shard) and bare Node relays: what Node's
                       sockets cost alone (default 10 s per run)
  -h, --help           this text

Results go to results/<timestamp>/ (report.md, chart.svg, raw.json).`;

function positiveInteger(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer, got "${text}"`);
  return value;
}

function nonNegativeInteger(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  // Number('') and Number(' ') are 0: an empty value must not pass as "none".
  const value = text.trim() === '' ? NaN : Number(text);
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer, got "${text}"`);
  return value;
}

function targetList(text: string | undefined): TargetName[] {
  if (text === undefined) return [...TARGETS];
  const names = text.split(',').map((t) => t.trim()).filter((t) => t !== '');
  for (const name of names) {
    if (!(TARGETS as readonly string[]).includes(name)) throw new Error(`--targets: unknown target "${name}" (known: ${TARGETS.join(', ')})`);
  }
  if (names.length === 0) throw new Error('--targets: empty list');
  // Keep the canonical order whatever order was typed.
  return TARGETS.filter((t) => names.includes(t));
}

/**
 * `--connect-cycles` takes an optional count, which parseArgs cannot express: a bare flag (last, or
 * followed by another option) gets the default written in.
 */
function withCycleDefault(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    out.push(arg);
    const next = argv[i + 1];
    if (arg === '--connect-cycles' && (next === undefined || next.startsWith('-'))) out.push(String(DEFAULT_CONNECT_CYCLES));
  }
  return out;
}

/** Parses the bench CLI arguments (without node and the script). Throws with a message on bad input. */
export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: withCycleDefault(argv),
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      cells: { type: 'string' },
      targets: { type: 'string' },
      'many-clients': { type: 'boolean', default: false },
      connections: { type: 'string' },
      'connect-cycles': { type: 'string' },
      'warmup-cycles': { type: 'string' },
      'cycles-peer': { type: 'boolean', default: false },
      workers: { type: 'string' },
      'io-floor': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const manyClients = values['many-clients'] === true;
  const cycles = values['connect-cycles'];
  const cyclesPeer = values['cycles-peer'] === true;
  if (cycles !== undefined && manyClients) throw new Error('--connect-cycles and --many-clients are separate runs; pick one');
  if (cyclesPeer && cycles === undefined) throw new Error('--cycles-peer only applies to --connect-cycles');
  const warmup = values['warmup-cycles'];
  if (warmup !== undefined && cycles === undefined) throw new Error('--warmup-cycles only applies to --connect-cycles');
  const ioFloor = values['io-floor'] === true;
  if (ioFloor && (manyClients || cycles !== undefined)) throw new Error('--io-floor is a separate run; leave out --many-clients and --connect-cycles');
  if (values.warmup !== undefined && (manyClients || cycles !== undefined || ioFloor)) {
    throw new Error('--warmup only applies to the pgbench cells; --many-clients, --connect-cycles and --io-floor have their own');
  }
  const quick = values.quick === true;
  const defaultDuration = manyClients ? 20 : quick ? 5 : ioFloor ? 10 : 15;
  return {
    quick,
    durationSeconds: positiveInteger('duration', values.duration, defaultDuration),
    warmupSeconds: nonNegativeInteger('warmup', values.warmup, DEFAULT_WARMUP_SECONDS),
    cells: values.cells,
    targets: targetList(values.targets),
    manyClients,
    connections: positiveInteger('connections', values.connections, 10_000),
    connectCycles: cycles === undefined ? null : positiveInteger('connect-cycles', cycles, DEFAULT_CONNECT_CYCLES),
    warmupCycles: nonNegativeInteger('warmup-cycles', warmup, DEFAULT_WARMUP_CYCLES),
    cyclesPeer,
    workers: values.workers === undefined ? null : positiveInteger('workers', values.workers, 0),
    ioFloor,
    help: values.help === true,
  };
}
