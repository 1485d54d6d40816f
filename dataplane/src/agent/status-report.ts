/**
 * The StatusReport as it goes on the wire. The host's figures are plain JavaScript numbers (wait and
 * transaction times are summed from performance.now() deltas, so they carry fractions); the proto's
 * integer fields do not accept those: grpc-js then fails the whole stream with INTERNAL
 * ("Request message serialization failure"), and because every new stream reports status at once, the
 * node could never stay attached. So every figure is made wire-valid here, in one place.
 */
import type { PoolStats, StatusReport } from '@doorman/proto/api';

/** A non-negative integer for a uint32/uint64 field: rounded; negative or non-finite becomes 0. */
export function wireCount(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.round(n) : 0;
}

/** A finite value for a double field; NaN and infinities become 0. */
export function wireDouble(n: number): number {
  return Number.isFinite(n) ? n : 0;
}

export function wirePoolStats(p: PoolStats): PoolStats {
  return {
    database: p.database,
    user: p.user,
    poolMode: p.poolMode,
    clientsActive: wireCount(p.clientsActive),
    clientsWaiting: wireCount(p.clientsWaiting),
    serversActive: wireCount(p.serversActive),
    serversIdle: wireCount(p.serversIdle),
    serversOther: wireCount(p.serversOther),
    transactionsTotal: wireCount(p.transactionsTotal),
    queriesTotal: wireCount(p.queriesTotal),
    bytesReceived: wireCount(p.bytesReceived),
    bytesSent: wireCount(p.bytesSent),
    waitTimeUsTotal: wireCount(p.waitTimeUsTotal),
    transactionP99Ms: wireDouble(p.transactionP99Ms),
    waitP99Ms: wireDouble(p.waitP99Ms),
  };
}

export function wireStatusReport(r: StatusReport): StatusReport {
  return {
    configVersion: wireCount(r.configVersion),
    secretsVersion: wireCount(r.secretsVersion),
    clients: wireCount(r.clients),
    servers: wireCount(r.servers),
    workers: wireCount(r.workers),
    uptimeSeconds: wireDouble(r.uptimeSeconds),
    pools: r.pools.map(wirePoolStats),
  };
}
