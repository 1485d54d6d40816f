/**
 * The Prometheus metric families. Values are not kept in prom-client metric objects: each scrape takes
 * one merged snapshot of every shard and the families read it (registered as custom collectors on a
 * prom-client Registry, next to prom-client's default process metrics). Counters are totals since start
 * over every shard; histograms come from the shards' fixed log-spaced buckets.
 */
import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import type { ShardSnapshot } from '../admin/view.js';
import { bucketBound, BUCKETS } from '../stats/histogram.js';
import type { PoolStatsSnapshot, StatTotals } from '../stats/pool-stats.js';
import { VERSION } from '../version.js';

/** What one scrape reads. */
export interface MetricsSample {
  snap: Pick<ShardSnapshot, 'pools' | 'stats' | 'mem'>;
  shards: number;
  clients: number;
}

type Labels = Record<string, string | number>;
interface Value {
  value: number;
  labels: Labels;
  metricName?: string;
}
type Kind = 'counter' | 'gauge' | 'histogram';

/** Histogram buckets exported: every 8th internal bound (x4 apart), 16 µs to about 18 minutes. */
const EXPORTED_BUCKETS: readonly number[] = Array.from({ length: 14 }, (_, k) => 16 + 8 * k).filter((i) => i < BUCKETS - 1);

/** A family whose values are read from the current sample when the registry asks (prom-client's collector shape). */
class SampleFamily {
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: Kind,
    private readonly sample: () => MetricsSample,
    private readonly read: (s: MetricsSample) => Value[],
  ) {}

  get(): { name: string; help: string; type: Kind; aggregator: string; values: Value[] } {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.read(this.sample()) };
  }
}

const poolLabels = (p: { database: string; user: string }): Labels => ({ database: p.database, user: p.user });

function histogramValues(name: string, stats: readonly PoolStatsSnapshot[], pick: (s: PoolStatsSnapshot) => Float64Array, sumUs: (t: StatTotals) => number): Value[] {
  const out: Value[] = [];
  for (const s of stats) {
    const counts = pick(s);
    const base = poolLabels(s);
    let cumulative = 0;
    let next = 0;
    for (const i of EXPORTED_BUCKETS) {
      for (; next <= i; next++) cumulative += counts[next];
      out.push({ metricName: `${name}_bucket`, labels: { ...base, le: bucketBound(i) / 1e6 }, value: cumulative });
    }
    for (; next < BUCKETS; next++) cumulative += counts[next];
    out.push({ metricName: `${name}_bucket`, labels: { ...base, le: '+Inf' }, value: cumulative });
    out.push({ metricName: `${name}_sum`, labels: base, value: sumUs(s.totals) / 1e6 });
    out.push({ metricName: `${name}_count`, labels: base, value: cumulative });
  }
  return out;
}

export interface DoormanMetrics {
  registry: Registry;
  /** Doorman's own family names (prom-client's process_* and nodejs_* come on top). */
  families: string[];
}

export function createMetrics(sample: () => MetricsSample): DoormanMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const families: string[] = [];
  const add = (name: string, help: string, type: Kind, read: (s: MetricsSample) => Value[]): void => {
    // prom-client reads any object with name, help, type and get(); its types only name its own classes.
    registry.registerMetric(new SampleFamily(name, help, type, sample, read) as unknown as Metric);
    families.push(name);
  };
  const perPool = (name: string, help: string, type: Kind, value: (t: StatTotals) => number): void =>
    add(name, help, type, (s) => s.snap.stats.map((st) => ({ labels: poolLabels(st), value: value(st.totals) })));

  add('doorman_build_info', 'Doorman version (always 1).', 'gauge', () => [{ labels: { version: VERSION }, value: 1 }]);
  add('doorman_workers', 'Worker shards.', 'gauge', (s) => [{ labels: {}, value: s.shards }]);
  add('doorman_clients', 'Client connections over every shard (logging in included).', 'gauge', (s) => [{ labels: {}, value: s.clients }]);
  add('doorman_shard_heap_used_bytes', 'V8 heap in use per worker shard.', 'gauge', (s) =>
    s.snap.mem.map((m) => ({ labels: { shard: m.shard }, value: m.heapUsed })),
  );
  add('doorman_pool_clients', 'Logged-in clients of the pool by state.', 'gauge', (s) =>
    s.snap.pools.flatMap((p) => [
      { labels: { ...poolLabels(p), state: 'active' }, value: p.clActive },
      { labels: { ...poolLabels(p), state: 'waiting' }, value: p.clWaiting },
    ]),
  );
  add('doorman_pool_servers', 'Server connections of the pool by state (used: idle past server_idle_check_timeout; tested: being reset).', 'gauge', (s) =>
    s.snap.pools.flatMap((p) =>
      (
        [
          ['active', p.svActive],
          ['idle', p.svIdle],
          ['used', p.svUsed],
          ['tested', p.svTested],
          ['login', p.svLogin],
        ] as const
      ).map(([state, value]) => ({ labels: { ...poolLabels(p), state }, value })),
    ),
  );
  add('doorman_pool_size', 'The pool\'s cap on server connections over every shard (pool_size).', 'gauge', (s) =>
    s.snap.pools.map((p) => ({ labels: poolLabels(p), value: p.poolSize })),
  );
  add('doorman_pool_max_wait_seconds', 'How long the oldest waiting client has waited.', 'gauge', (s) =>
    s.snap.pools.map((p) => ({ labels: poolLabels(p), value: p.maxWaitMs / 1000 })),
  );
  add('doorman_pool_paused', '1 while the pool is PAUSEd.', 'gauge', (s) => s.snap.pools.map((p) => ({ labels: poolLabels(p), value: p.paused ? 1 : 0 })));
  perPool('doorman_pool_transactions_total', 'Transactions (session mode: each return to idle).', 'counter', (t) => t.xacts);
  perPool('doorman_pool_queries_total', 'Queries (each ReadyForQuery relayed).', 'counter', (t) => t.queries);
  perPool('doorman_pool_received_bytes_total', 'Bytes received from clients.', 'counter', (t) => t.received);
  perPool('doorman_pool_sent_bytes_total', 'Bytes sent to clients.', 'counter', (t) => t.sent);
  perPool('doorman_pool_transaction_seconds_total', 'Time transactions held a server.', 'counter', (t) => t.xactTime / 1e6);
  perPool('doorman_pool_query_seconds_total', 'Time queries ran on a server.', 'counter', (t) => t.queryTime / 1e6);
  perPool('doorman_pool_wait_seconds_total', 'Time clients waited for a server.', 'counter', (t) => t.waitTime / 1e6);
  perPool('doorman_pool_wait_timeouts_total', 'Clients that gave up waiting (query_wait_timeout).', 'counter', (t) => t.waitTimeouts);
  perPool('doorman_pool_server_connections_opened_total', 'Server connections opened (attempts).', 'counter', (t) => t.serversOpened);
  perPool('doorman_pool_server_logins_total', 'Server logins that succeeded.', 'counter', (t) => t.serverLogins);
  perPool('doorman_pool_prepared_hits_total', 'Prepared statements a server already held.', 'counter', (t) => t.preparedHits);
  perPool('doorman_pool_prepared_misses_total', 'Prepared statements prepared on a server.', 'counter', (t) => t.preparedMisses);
  perPool('doorman_pool_prepared_evictions_total', 'Prepared statements closed on a server to make room.', 'counter', (t) => t.preparedEvictions);
  perPool('doorman_pool_shard_donations_total', 'Server connections closed at check-in so a worker whose clients wait could open one.', 'counter', (t) => t.shardDonations);
  perPool('doorman_pool_shard_evictions_total', 'Idle server connections closed at another worker\'s request.', 'counter', (t) => t.shardEvictions);
  add('doorman_pool_errors_total', 'Errors PostgreSQL sent to clients, by SQLSTATE class.', 'counter', (s) =>
    s.snap.stats.flatMap((st) => Object.entries(st.errors).map(([cls, n]) => ({ labels: { ...poolLabels(st), sqlstate_class: cls }, value: n }))),
  );
  const histogram = (name: string, help: string, pick: (s: PoolStatsSnapshot) => Float64Array, sumUs: (t: StatTotals) => number): void =>
    add(name, help, 'histogram', (s) => histogramValues(name, s.snap.stats, pick, sumUs));
  histogram('doorman_pool_transaction_duration_seconds', 'Transaction durations.', (s) => s.xactHist, (t) => t.xactTime);
  histogram('doorman_pool_query_duration_seconds', 'Query durations.', (s) => s.queryHist, (t) => t.queryTime);
  histogram('doorman_pool_wait_duration_seconds', 'Time clients waited for a server (0 when one was idle).', (s) => s.waitHist, (t) => t.waitTime);
  return { registry, families };
}
