import { parseArgs } from 'node:util';
import { TARGETS, type TargetName } from './types.js';

export interface BenchOptions {
  quick: boolean;
  /** Seconds per pgbench run (cells) or of the trickle phase (--many-clients). */
  durationSeconds: number;
  /** --cells patterns, see filterCells(). */
  cells: string | undefined;
  targets: TargetName[];
  manyClients: boolean;
  /** Connections held open in --many-clients. */
  connections: number;
  help: boolean;
}

export const USAGE = `usage: npm run bench -- [options]

  --quick              select-only simple+extended at 10 and 100 clients, 5 s each
  --duration N         seconds per pgbench run (default 15; 5 with --quick; 20 for --many-clients)
  --cells LIST         comma-separated patterns matched against cell ids, e.g.
                       "simple/c100$,tls"; a trailing $ anchors at the end
  --targets LIST       subset of doorman,pgbouncer,direct (default all)
  --many-clients       hold ${10_000} connections open and time a trickle of queries
  --connections N      connections for --many-clients (default 10000)
  -h, --help           this text

Results go to results/<timestamp>/ (report.md, chart.svg, raw.json).`;

function positiveInteger(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer, got "${text}"`);
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

/** Parses the bench CLI arguments (without node and the script). Throws with a message on bad input. */
export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      cells: { type: 'string' },
      targets: { type: 'string' },
      'many-clients': { type: 'boolean', default: false },
      connections: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const manyClients = values['many-clients'] === true;
  const quick = values.quick === true;
  const defaultDuration = manyClients ? 20 : quick ? 5 : 15;
  return {
    quick,
    durationSeconds: positiveInteger('duration', values.duration, defaultDuration),
    cells: values.cells,
    targets: targetList(values.targets),
    manyClients,
    connections: positiveInteger('connections', values.connections, 10_000),
    help: values.help === true,
  };
}
