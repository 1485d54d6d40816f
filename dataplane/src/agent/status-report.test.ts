import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataPlaneMessage, type PoolStats, type StatusReport } from '@doorman/proto/api';
import { wireCount, wireDouble, wireStatusReport } from './status-report.js';

/** Figures as the host reports them after clients waited: microsecond totals with fractions. */
function hostPool(): PoolStats {
  return {
    database: 'app',
    user: 'alice',
    poolMode: 'transaction',
    clientsActive: 1,
    clientsWaiting: 0,
    serversActive: 1,
    serversIdle: 2,
    serversOther: 0,
    transactionsTotal: 40,
    queriesTotal: 41,
    bytesReceived: 5_000,
    bytesSent: 9_000,
    waitTimeUsTotal: 6260.434000000032,
    transactionP99Ms: 0.512,
    waitP99Ms: 6.25,
  };
}

function hostReport(): StatusReport {
  return { configVersion: 2, secretsVersion: 1, clients: 1, servers: 3, workers: 1, uptimeSeconds: 12.75, pools: [hostPool()] };
}

test('wireCount rounds to a non-negative integer; wireDouble keeps finite values', () => {
  assert.deepEqual([0, 3, 2.4, 2.5, 6260.434000000032, -1, Number.NaN, Number.POSITIVE_INFINITY].map(wireCount), [0, 3, 2, 3, 6260, 0, 0, 0]);
  assert.deepEqual([0.512, -2, Number.NaN, Number.NEGATIVE_INFINITY].map(wireDouble), [0.512, -2, 0, 0]);
});

test('a report with fractional microsecond totals cannot be encoded as is; its wire form can and keeps every figure', () => {
  // The failure that closed the Discovery stream with INTERNAL on every (re)connect.
  assert.throws(() => DataPlaneMessage.encode({ status: hostReport() }).finish(), /cannot be converted to a BigInt/);
  const wire = wireStatusReport(hostReport());
  assert.deepEqual(wire, { ...hostReport(), pools: [{ ...hostPool(), waitTimeUsTotal: 6260 }] });
  const decoded = DataPlaneMessage.decode(DataPlaneMessage.encode({ status: wire }).finish());
  assert.deepEqual(decoded.status, wire);
});
