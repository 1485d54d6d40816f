import type { NodeStatus, PoolStats, StatsResponse } from '@doorman/proto/api';
import type { NodeRecord, PoolStatsRecord, StoreView } from '../store/store.js';

/**
 * Every known node: records from etcd (any replica's), overlaid with the fresher in-memory records of
 * nodes attached here. A node is connected while its stream is open and its liveness key, held on the
 * lease of the replica it is attached to, exists.
 */
export function fleetRecords(view: StoreView, local: ReadonlyMap<string, NodeRecord>): { record: NodeRecord; connected: boolean }[] {
  const out = new Map<string, { record: NodeRecord; connected: boolean }>();
  for (const [id, record] of view.nodes) {
    out.set(id, { record, connected: record.connected && view.live.get(id) === record.attachedTo });
  }
  for (const [id, record] of local) out.set(id, { record, connected: record.connected });
  return [...out.values()].sort((a, b) => (a.record.nodeId < b.record.nodeId ? -1 : a.record.nodeId > b.record.nodeId ? 1 : 0));
}

export function labelsMatch(record: NodeRecord, filter: Record<string, string>): boolean {
  return Object.entries(filter).every(([k, v]) => record.labels[k] === v);
}

export function toNodeStatus(record: NodeRecord, connected: boolean): NodeStatus {
  return {
    node: { nodeId: record.nodeId, labels: { ...record.labels }, version: record.version, hostname: record.hostname, pid: record.pid },
    connected,
    lastSeenUnixMs: record.lastSeenUnixMs,
    ackedConfigVersion: record.ackedConfigVersion,
    ackedSecretsVersion: record.ackedSecretsVersion,
    nackedVersion: record.nackedVersion,
    nackError: record.nackError,
    attachedTo: record.attachedTo,
    clients: record.clients,
    servers: record.servers,
  };
}

export function toPoolStats(p: PoolStatsRecord): PoolStats {
  return { ...p };
}

/** Per-node pool figures plus totals per (database, user) summed over nodes; percentiles take the worst node. */
export function fleetStats(records: readonly NodeRecord[]): StatsResponse {
  const pools: StatsResponse['pools'] = [];
  const totals = new Map<string, PoolStats>();
  for (const record of records) {
    for (const p of record.pools) {
      pools.push({ nodeId: record.nodeId, pool: toPoolStats(p) });
      const key = `${p.database}\u0000${p.user}`;
      const t = totals.get(key);
      if (!t) {
        totals.set(key, toPoolStats(p));
        continue;
      }
      t.clientsActive += p.clientsActive;
      t.clientsWaiting += p.clientsWaiting;
      t.serversActive += p.serversActive;
      t.serversIdle += p.serversIdle;
      t.serversOther += p.serversOther;
      t.transactionsTotal += p.transactionsTotal;
      t.queriesTotal += p.queriesTotal;
      t.bytesReceived += p.bytesReceived;
      t.bytesSent += p.bytesSent;
      t.waitTimeUsTotal += p.waitTimeUsTotal;
      t.transactionP99Ms = Math.max(t.transactionP99Ms, p.transactionP99Ms);
      t.waitP99Ms = Math.max(t.waitP99Ms, p.waitP99Ms);
      if (t.poolMode !== p.poolMode) t.poolMode = 'mixed';
    }
  }
  const sorted = [...totals.values()].sort((a, b) => `${a.database}\u0000${a.user}`.localeCompare(`${b.database}\u0000${b.user}`));
  return { pools, totals: sorted };
}
