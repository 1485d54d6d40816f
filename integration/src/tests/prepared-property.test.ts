/**
 * Seeded property test for transparent prepared statements: several raw-protocol clients issue random
 * interleavings of Parse (named and unnamed, sometimes bad SQL, the same text with different parameter
 * types), Bind, Describe, Execute, Close and Sync through Doorman over 2 server connections. The same
 * per-client sequences run on direct connections to PostgreSQL, and each client's replies must match:
 * message types, data rows, row and parameter descriptions, command tags, SQLSTATEs with their messages
 * and transaction status.
 *
 * A failure names the seed; PROPERTY_SEED=<n> replays it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RawClient,
  errorFields,
  fe,
  startDoorman,
  startPostgres,
  type BackendMessage,
  type DoormanConfig,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const DB = 'app';
const ROLE = 'prop';
const SEED = Number(process.env.PROPERTY_SEED ?? 20_240_229);
const CLIENTS = 8;
const SEQUENCES_PER_CLIENT = 25;
/** Bound on one run of all clients through Doorman. */
const RUN_DEADLINE_MS = 40_000;
const POOL_SIZE = 2;

// ---------------------------------------------------------------------------
// Random sequences.

/** Statement texts with their Parse parameter types; several share a text with different types. */
const TEXTS: readonly { sql: string; types: readonly number[]; params: number }[] = [
  { sql: 'select $1::int + 1 as n', types: [], params: 1 },
  { sql: "select $1::text || '!' as t", types: [], params: 1 },
  { sql: 'select $1 as x', types: [23], params: 1 },
  { sql: 'select $1 as x', types: [25], params: 1 },
  { sql: 'select $1 as x', types: [], params: 1 },
  { sql: 'select $1::int as a, $2::int * 2 as b', types: [], params: 2 },
  { sql: 'select generate_series(1, $1::int) as g', types: [], params: 1 },
  // random() keeps the division out of plan-time constant folding, so a zero fails at Execute whatever
  // plan (custom or generic) the shared server statement has settled on.
  { sql: 'select 10 / ($1::int + (random() * 0)::int) as q', types: [], params: 1 },
  { sql: 'select 1 as one', types: [], params: 0 },
  { sql: 'selec 1', types: [], params: 0 },
  { sql: 'select * from no_such_table', types: [], params: 0 },
  { sql: 'begin', types: [], params: 0 },
  { sql: 'commit', types: [], params: 0 },
  { sql: 'rollback', types: [], params: 0 },
  // The client's names in SQL: Doorman must translate them when they come through Parse/Bind/Execute.
  { sql: 'deallocate s1', types: [], params: 0 },
  { sql: 'DEALLOCATE PREPARE "s2"', types: [], params: 0 },
  { sql: 'deallocate all', types: [], params: 0 },
];
const NAMES = ['', 's1', 's2', 's3'];
const PORTALS = ['', '', 'p1'];
const VALUES = ['0', '1', '2', '7', '3', 'x', null];

type Op =
  | { kind: 'parse'; name: string; text: number }
  | { kind: 'bind'; portal: string; statement: string; params: (string | null)[]; binary: boolean }
  | { kind: 'describe'; what: 'S' | 'P'; name: string }
  | { kind: 'execute'; portal: string; maxRows: number }
  | { kind: 'close'; what: 'S' | 'P'; name: string }
  | { kind: 'sync' };

/** mulberry32: small, seedable, good enough to spread choices. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One client's sequences; each is 1-3 batches of 1-6 messages, every batch ending with Sync. */
function generate(seed: number, count: number): Op[][] {
  const rand = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)];
  // What the generator last parsed under each name, to give Bind the right parameter count most of the time.
  const parsed = new Map<string, number>();
  const sequences: Op[][] = [];
  for (let s = 0; s < count; s++) {
    const ops: Op[] = [];
    for (let batches = 1 + Math.floor(rand() * 3); batches > 0; batches--) {
      for (let n = 1 + Math.floor(rand() * 6); n > 0; n--) {
        const r = rand();
        if (r < 0.3) {
          const op: Op = { kind: 'parse', name: pick(NAMES), text: Math.floor(rand() * TEXTS.length) };
          parsed.set(op.name, op.text);
          ops.push(op);
        } else if (r < 0.6) {
          const statement = rand() < 0.05 ? 'nope' : pick(NAMES);
          const known = parsed.get(statement);
          const count = known !== undefined && rand() < 0.85 ? TEXTS[known].params : Math.floor(rand() * 3);
          const params = Array.from({ length: count }, () => (rand() < 0.85 ? pick(VALUES.slice(0, 5)) : pick(VALUES)));
          const portal = pick(PORTALS);
          ops.push({ kind: 'bind', portal, statement, params, binary: rand() < 0.2 });
          if (rand() < 0.7) ops.push({ kind: 'execute', portal, maxRows: rand() < 0.2 ? 1 : 0 });
        } else if (r < 0.75) {
          ops.push({ kind: 'execute', portal: pick(PORTALS), maxRows: rand() < 0.2 ? 1 : 0 });
        } else if (r < 0.88) {
          ops.push(rand() < 0.6 ? { kind: 'describe', what: 'S', name: pick(NAMES) } : { kind: 'describe', what: 'P', name: pick(PORTALS) });
        } else {
          ops.push(rand() < 0.8 ? { kind: 'close', what: 'S', name: pick(NAMES) } : { kind: 'close', what: 'P', name: pick(PORTALS) });
        }
      }
      ops.push({ kind: 'sync' });
    }
    sequences.push(ops);
  }
  return sequences;
}

function frameOf(op: Op): Buffer {
  switch (op.kind) {
    case 'parse':
      return fe.parse(op.name, TEXTS[op.text].sql, TEXTS[op.text].types);
    case 'bind':
      // A single result format code applies to every column.
      return fe.bind(op.statement, op.params, op.portal, op.binary ? [1] : []);
    case 'describe':
      return fe.describe(op.what, op.name);
    case 'execute':
      return fe.execute(op.portal, op.maxRows);
    case 'close':
      return fe.close(op.what, op.name);
    case 'sync':
      return fe.sync();
  }
}

function showOp(op: Op): string {
  switch (op.kind) {
    case 'parse':
      return `Parse(${JSON.stringify(op.name)}, ${JSON.stringify(TEXTS[op.text].sql)}, [${TEXTS[op.text].types.join(',')}])`;
    case 'bind':
      return `Bind(${JSON.stringify(op.portal)}, ${JSON.stringify(op.statement)}, ${JSON.stringify(op.params)}${op.binary ? ', binary' : ''})`;
    case 'describe':
      return `Describe(${op.what}, ${JSON.stringify(op.name)})`;
    case 'execute':
      return `Execute(${JSON.stringify(op.portal)}, ${op.maxRows})`;
    case 'close':
      return `Close(${op.what}, ${JSON.stringify(op.name)})`;
    case 'sync':
      return 'Sync';
  }
}

/** The fields that matter, exactly: data and descriptions as bytes, tags, SQLSTATEs, transaction status. */
function exact(m: BackendMessage): string {
  switch (m.type) {
    case 'E':
    case 'N': {
      const f = errorFields(m.body);
      return `${m.type} ${f.C} ${f.M}`;
    }
    case 'C':
      return `C ${m.body.toString('utf8', 0, m.body.length - 1)}`;
    case 'Z':
      return `Z ${String.fromCharCode(m.body[0])}`;
    case 'D':
    case 'T':
    case 't':
      return `${m.type} ${m.body.toString('hex')}`;
    default:
      return m.type;
  }
}

interface Played {
  replies: string[][];
  error: string | null;
}

/** One client's sequences on one connection; stops starting new ones after `deadline`. */
async function play(port: number, sequences: readonly Op[][], deadline: number): Promise<Played> {
  const replies: string[][] = [];
  let c: RawClient | undefined;
  try {
    c = await RawClient.connect(port, ROLE, DB);
    for (const ops of sequences) {
      if (Date.now() > deadline) break;
      c.send(...ops.map(frameOf));
      replies.push((await c.untilReady(ops.filter((o) => o.kind === 'sync').length)).map(exact));
    }
    return { replies, error: null };
  } catch (err) {
    return { replies, error: `after ${replies.length} sequences: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    await c?.end();
  }
}

function doormanConfig(cluster: PgCluster, general: Record<string, unknown>): DoormanConfig {
  return {
    // One worker shard: these tests assert which backend serves a client (worker shards are covered in workers.test.ts).
    general: { host: '127.0.0.1', port: 0, workers: 1, query_wait_timeout: '30s', pg_hba: 'host all all 127.0.0.1/32 trust\n', ...general },
    pools: {
      [DB]: { server_host: cluster.host, server_port: cluster.port, pool_mode: 'transaction', users: [{ username: ROLE, password: 'unused', pool_size: POOL_SIZE }] },
    },
  };
}

describe('prepared statements: random protocol sequences, direct vs Doorman', { timeout: 115_000 }, () => {
  let cluster: PgCluster | undefined;

  before(async () => {
    cluster = await startPostgres({ hba: ['local all all trust', `host all ${ROLE} 127.0.0.1/32 trust`, 'host all all 127.0.0.1/32 scram-sha-256', ''].join('\n') });
    await cluster.query(`CREATE ROLE ${ROLE} LOGIN;`);
  });

  after(async () => {
    await cluster?.stop();
  });

  async function property(seed: number, general: Record<string, unknown>): Promise<void> {
    assert.ok(cluster, 'PostgreSQL did not start');
    const plans = Array.from({ length: CLIENTS }, (_, i) => generate(seed * 1000 + i, SEQUENCES_PER_CLIENT));
    const far = Date.now() + 10 * RUN_DEADLINE_MS;
    const direct = await Promise.all(plans.map((p) => play(cluster!.port, p, far)));
    direct.forEach((d, i) => assert.equal(d.error, null, `direct client ${i}: ${d.error}`));

    const doorman: DoormanProcess = await startDoorman(doormanConfig(cluster, general));
    let via: Played[];
    try {
      const deadline = Date.now() + RUN_DEADLINE_MS;
      via = await Promise.all(plans.map((p) => play(doorman.port, p, deadline)));
    } finally {
      await doorman.stop();
    }

    const failures: string[] = [];
    via.forEach((v, i) => {
      const at = v.replies.findIndex((r, j) => JSON.stringify(r) !== JSON.stringify(direct[i].replies[j]));
      const where = at >= 0 ? at : v.replies.length;
      if (at < 0 && v.error === null && v.replies.length === SEQUENCES_PER_CLIENT) return;
      const history = plans[i].slice(0, where + 1).map((ops, j) => `  #${j}: ${ops.map(showOp).join(' ')}`);
      const lines = [`client ${i} (seed ${seed}), sequence #${where}:`, ...history.slice(-6)];
      if (at >= 0) {
        lines.push(`  direct:  ${direct[i].replies[at].join(' / ')}`, `  doorman: ${v.replies[at].join(' / ')}`);
      } else {
        lines.push(`  ${v.error ?? `only ${v.replies.length} of ${SEQUENCES_PER_CLIENT} sequences within ${RUN_DEADLINE_MS} ms`}`);
      }
      failures.push(lines.join('\n'));
    });
    assert.equal(failures.length, 0, `${failures.length} of ${CLIENTS} clients differ:\n${failures.slice(0, 3).join('\n')}`);
  }

  test(`${CLIENTS} clients × ${SEQUENCES_PER_CLIENT} sequences over ${POOL_SIZE} servers (default statement limit)`, async () => {
    await property(SEED, {});
  });

  test(`${CLIENTS} clients × ${SEQUENCES_PER_CLIENT} sequences over ${POOL_SIZE} servers, max_prepared_statements: 2 (eviction)`, async () => {
    await property(SEED + 1, { max_prepared_statements: 2 });
  });
});
